"""Paper by default: with no live settings, 1,000 approved decisions send 0 orders.

The venue endpoints point at a loopback fake CLOB that counts every request; the settings
have no private key and no live mode.  Every decision that the guard approves fills on paper,
and the venue sees nothing at all.  Asking for live without everything it needs is refused.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from eth_account import Account
from fakeclob import FakeClob, serve
from livekit import snapshot_for

from agent.live import LiveOptInError, LiveSession, TradingMode, resolve_mode
from core import settings as settings_module
from core.settings import load_settings
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, graph
from tools.journal import Journal

pytestmark = pytest.mark.server
DECISIONS = 1000


@pytest.fixture
def venue(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeClob]:
    fake = FakeClob(address=Account.create().address)
    with serve(fake) as url:
        for name in ("POLYMARKET_MODE", "POLYMARKET_PRIVATE_KEY", "POLYMARKET_API_KEY",
                     "POLYMARKET_API_SECRET", "POLYMARKET_API_PASSPHRASE", "LIVE_CONFIRM",
                     "OPENAI_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("POLYMARKET_CLOB_URL", url)
        monkeypatch.setenv("POLYMARKET_GAMMA_URL", url + "/gamma")
        # Nodes read settings through this cache: make them see the environment above.
        settings_module.default_settings.cache_clear()
        yield fake
        settings_module.default_settings.cache_clear()


def test_thousand_decisions_without_live_settings_post_nothing(venue: FakeClob,
                                                               tmp_path: Path) -> None:
    settings = load_settings(env_file=None)
    assert settings.polymarket_private_key is None
    mode = resolve_mode(settings, live_flag=False)
    assert mode.mode == "paper"
    now = time.time()
    markets = [venue.add_market(f"btc-updown-15m-p{i}", window_start=now - 300.0,
                                up_ask="0.60", down_ask="0.42") for i in range(DECISIONS)]
    statuses: Counter[str] = Counter()

    async def decide_all() -> None:
        with Journal(":memory:") as jr:
            run_id = jr.start_run(account="paper", mode="paper", dataset=None, config={})
            # The context a paper run builds: no broker given, so the paper broker.  The
            # daily order cap is lifted so that all 1,000 decisions are approved orders.
            limits = replace(mode.limits(settings), max_orders_per_day=10 * DECISIONS)
            ctx = Context(account="paper", limits=limits, journal=jr,
                          run_id=run_id, use_llm=False, stop_file=str(tmp_path / "STOP"))
            for i, market in enumerate(markets):
                out = await graph.ainvoke(
                    {"snapshot": snapshot_for(market, now, price=100_050.0),
                     "decision_id": f"p{i}"},
                    context=ctx, config={"recursion_limit": RECURSION_LIMIT})
                execution = out.get("execution")
                statuses[execution.status if execution else "not approved"] += 1
                if execution is not None:
                    assert execution.broker == "paper"

    asyncio.run(decide_all())
    assert sum(statuses.values()) == DECISIONS
    assert statuses["filled"] == DECISIONS  # every one approved and filled on paper
    assert venue.post_count() == 0
    assert venue.requests == []  # not even a read reached the venue


def test_live_without_everything_it_needs_is_refused(venue: FakeClob, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    settings = load_settings(env_file=None)
    with pytest.raises(LiveOptInError, match="POLYMARKET_MODE=live"):
        resolve_mode(settings, live_flag=True, typed_confirmation="trade real money")
    monkeypatch.setenv("POLYMARKET_MODE", "live")
    live = load_settings(env_file=None)
    with pytest.raises(LiveOptInError, match="confirmation"):
        resolve_mode(live, live_flag=True)
    with pytest.raises(LiveOptInError, match="confirmation"):
        resolve_mode(live, live_flag=True, typed_confirmation="yes")
    with pytest.raises(LiveOptInError, match="POLYMARKET_PRIVATE_KEY"):
        resolve_mode(live, live_flag=True, typed_confirmation="Trade  real money")
    # Mode live but no flag: paper, and the guard's limits say paper.
    paper = resolve_mode(live, live_flag=False)
    assert paper.mode == "paper"
    assert "--live" in paper.note
    assert paper.limits(live).mode == "paper"
    with Journal(tmp_path / "j.db") as jr, pytest.raises(LiveOptInError):
        LiveSession(live, jr, TradingMode("paper", False))
    assert venue.requests == []
