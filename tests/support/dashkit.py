"""Helpers for the dashboard tests: a dashboard served from a thread of its own, headless
Chromium screenshots and rendered DOM, a loopback webhook receiver for notifications, and the
embedded replay's journal (built once per test session with the real ``updown run``).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
UPDOWN = str(ROOT / ".venv" / "bin" / "updown")
CHROMIUM = Path("/usr/bin/chromium")
REPLAY_DATASET = "data/recorded/pm15m_20251226_coinbase1m"
# Canary secrets: set in the settings of the process under test, never to appear anywhere.
CANARY_KEY = "0x" + "c0ffee" * 10 + "abcd"
CANARY_OPENAI = "sk-canary-5b1d7e0f9a"


def build_replay_journal(path: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    """``updown run --replay <embedded> --no-view --journal path`` (the README's replay)."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
           "AI_DECISION_LOG_PATH": str(tmp / "decisions.jsonl"), "LOG_LEVEL": "WARNING",
           "STOP_FILE": str(tmp / "STOP")}
    return subprocess.run([UPDOWN, "run", "--replay", REPLAY_DATASET, "--no-view", "--journal",
                           str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


@contextmanager
def served(data: Any, *, host: str = "127.0.0.1", token: str | None = None
           ) -> Iterator[Any]:
    """A ``DashboardServer`` over ``data`` on a free port, in a thread with its own loop."""
    from agent.web.server import DashboardServer

    server = DashboardServer(data, host=host, port=0, token=token)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    stop = asyncio.Event()
    failure: list[BaseException] = []

    async def main() -> None:
        try:
            await server.start()
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            return
        ready.set()
        await stop.wait()
        await server.aclose()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    ready.wait(30)
    if failure:
        raise failure[0]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def chromium(url: str, out: Path, *, size: str = "1280,1000", dump_dom: bool = False) -> str:
    """Screenshot ``url`` into ``out`` (PNG); with ``dump_dom`` return the rendered DOM."""
    profile = out.parent / f"chromium-profile-{out.stem}"
    args = [str(CHROMIUM), "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--hide-scrollbars", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={profile}", f"--window-size={size}"]
    shot = subprocess.run([*args, f"--screenshot={out}", url], capture_output=True, text=True,
                          timeout=120, check=False)
    assert out.is_file(), shot.stderr[-2000:]
    if not dump_dom:
        return ""
    dom = subprocess.run([*args, "--dump-dom", url], capture_output=True, text=True,
                         timeout=120, check=False)
    return dom.stdout


def keep_screenshot(path: Path) -> None:
    """Copy to $UPDOWN_SCREENSHOT_DIR when set (to look at them after the run)."""
    target = os.environ.get("UPDOWN_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(path, Path(target) / path.name)


class _Hook(BaseHTTPRequestHandler):
    server: WebhookReceiver

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.received.append({"path": self.path, "headers": dict(self.headers),
                                         "body": body.decode("utf-8", "replace")})
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


class WebhookReceiver(ThreadingHTTPServer):
    """A loopback HTTP server recording every POST (apprise ``json://`` notifications)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Hook)
        self.received: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> WebhookReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()

    def messages(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(r["body"]) for r in self.received]
