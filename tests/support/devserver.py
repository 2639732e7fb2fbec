"""`langgraph dev` on a free loopback port for the Studio tests, stopped afterwards."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def langgraph_dev(workdir: Path, **settings: str) -> Iterator[str]:
    """Start the dev server on this repo's langgraph.json (no tracing, no model key, its own
    STOP file and journal, plus any ``settings``) and yield its URL once ``/ok`` answers."""
    port = free_port()
    env = {**os.environ, "LANGSMITH_TRACING": "false", "LANGCHAIN_TRACING_V2": "false",
           "OPENAI_API_KEY": "", "STOP_FILE": str(workdir / "STOP"),
           "JOURNAL_PATH": str(workdir / "studio.db"), **settings}
    langgraph = Path(sys.executable).with_name("langgraph")
    # The server's output goes to a file, not a pipe nobody reads (a full pipe would block it).
    with tempfile.TemporaryFile(dir=workdir) as out:
        proc = subprocess.Popen(
            [str(langgraph), "dev", "--no-browser", "--no-reload", "--host", "127.0.0.1",
             "--port", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 90  # a hang guard, not a speed assertion
            while True:
                if proc.poll() is not None:
                    out.seek(0)
                    pytest.fail("langgraph dev exited early:\n"
                                + out.read().decode(errors="replace")[-3000:])
                try:
                    if httpx.get(f"{url}/ok", timeout=1.0).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail("langgraph dev did not answer /ok within 90 s")
                time.sleep(0.25)
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
