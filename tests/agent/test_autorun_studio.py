"""A past window of the runner opened on the LangGraph dev server (what Studio shows):
``updown threads ... --to URL`` copies the window's checkpointed state there."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import langgraph_dev
from eth_account import Account
from fakeclob import FakeClob
from langgraph_sdk import get_sync_client
from livekit import snapshot_for

from agent.autorun import open_checkpointer, thread_config
from agent.threads import server_thread_id
from core.clock import ReplayClock
from graphs.context import Context
from graphs.graph import compile_graph

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with langgraph_dev(tmp_path_factory.mktemp("devserver")) as url:
        yield url


async def _checkpoint_one_window(path: Path) -> str:
    """A window thread as the runner writes it: two decisions, the second an entry."""
    fake = FakeClob(address=Account.create().address)
    market = fake.add_market("btc-updown-15m-1800000000", window_start=1_800_000_000.0)
    async with open_checkpointer(path) as saver:
        graph = compile_graph(checkpointer=saver)
        for t, ptb in ((1_800_000_100.0, 100_010.0), (1_800_000_130.0, 99_000.0)):
            snap = snapshot_for(market, t, price_to_beat=ptb)
            ctx = Context(use_llm=False, clock=ReplayClock(t), stop_file=str(path.parent / "S"))
            await graph.ainvoke({"snapshot": snap, "decision_id": f"{market.slug}@{t:.3f}"},
                                thread_config(market.slug), context=ctx)
    return market.slug


def test_past_window_opens_on_the_dev_server(server_url: str, tmp_path: Path) -> None:
    checkpoints = tmp_path / "checkpoints.db"
    slug = asyncio.run(_checkpoint_one_window(checkpoints))
    threads = [str(Path(sys.executable).with_name("updown")), "threads", "--checkpoints",
               str(checkpoints)]
    listed = subprocess.run(threads, cwd=ROOT, capture_output=True, text=True, check=True)
    assert listed.stdout.split() == [slug]
    decisions = subprocess.run([*threads, slug], cwd=ROOT, capture_output=True, text=True,
                               check=True)
    assert len(decisions.stdout.splitlines()) == 2
    assert '"execution": "filled"' in decisions.stdout.splitlines()[-1]

    copied = subprocess.run([*threads, slug, "--to", server_url], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert copied.returncode == 0, copied.stderr
    client = get_sync_client(url=server_url)
    found = client.threads.search(metadata={"market_id": slug})
    assert [t["thread_id"] for t in found] == [server_thread_id(slug)]
    values: Any = client.threads.get_state(server_thread_id(slug))["values"]
    assert values["snapshot"]["market_id"] == slug
    assert values["execution"]["status"] == "filled"
    assert values["verdict"]["approved"] is True
