"""The graph's structure and its money path, run in-process on real recorded snapshots."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from core.guard import GuardLimits
from core.records import ExecutionReport, Side
from core.snapshot import MarketSnapshot
from feeds.recorded import EMBEDDED_DATASET_DIR, load_dataset
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import ANALYSTS, graph
from tools.journal import Journal
from tools.paper_broker import PaperBroker


def invoke(compiled: Any, payload: Any, **kw: Any) -> Any:
    """Run the async graph to completion from synchronous test code."""
    return asyncio.run(compiled.ainvoke(payload, **kw))


EMBEDDED = EMBEDDED_DATASET_DIR
NODES = {"intake", "technical_analyst", "fair_value", "sentiment_analyst", "risk_manager", "trader",
         "guard", "execute"}
# Replays relax only the verified-reference rule (recorded prices to beat are derived).
REPLAY_LIMITS = GuardLimits(require_verified_price_to_beat=False)


@pytest.fixture(scope="module")
def feed() -> ReplayFeed:
    return ReplayFeed(load_dataset(EMBEDDED))


@pytest.fixture
def tradable(tradable_snapshot: MarketSnapshot) -> MarketSnapshot:
    return tradable_snapshot


def test_graph_has_exactly_the_named_nodes() -> None:
    assert set(graph.get_graph().nodes) - {"__start__", "__end__"} == NODES


def test_analysts_fan_out_from_start_and_fan_in_to_risk_manager() -> None:
    edges = {(e.source, e.target) for e in graph.get_graph().edges}
    # The intake takes the snapshot in (and clears a reused thread's last decision) first.
    assert ("__start__", "intake") in edges
    for analyst in ANALYSTS:
        assert ("intake", analyst) in edges
        assert (analyst, "risk_manager") in edges
    assert ("risk_manager", "trader") in edges
    assert ("trader", "guard") in edges


def test_only_the_guard_leads_to_execute() -> None:
    into_execute = {e.source for e in graph.get_graph().edges if e.target == "execute"}
    assert into_execute == {"guard"}


def test_execute_has_no_retry() -> None:
    policies = graph.nodes["execute"].retry_policy
    assert policies, "execute must carry an explicit single-attempt policy, not the default"
    assert all(p.max_attempts == 1 for p in policies)


class CountingBroker:
    """A broker that records calls; ``fail`` makes it raise like a lost connection."""

    name = "counting"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail
        self.paper = PaperBroker()

    def place_market_buy(self, *, order_id: str, snapshot: MarketSnapshot, side: Side,
                         stake_usd: float, worst_price: float) -> ExecutionReport:
        self.calls += 1
        if self.fail:
            raise ConnectionError("connection reset after send")
        return self.paper.place_market_buy(order_id=order_id, snapshot=snapshot, side=side,
                                           stake_usd=stake_usd, worst_price=worst_price)


def _journal(tmp_path: Path) -> tuple[Journal, str]:
    jr = Journal(tmp_path / "journal.db")
    run_id = jr.start_run(account="test", mode="paper", dataset="embedded", config={},
                          started_ts=0.0)
    return jr, run_id


def test_approved_decision_fills_on_paper_and_is_journaled(tradable: MarketSnapshot,
                                                           tmp_path: Path) -> None:
    jr, run_id = _journal(tmp_path)
    broker = CountingBroker()
    out: Any = invoke(graph, {"snapshot": tradable}, context=Context(
        use_llm=False, limits=REPLAY_LIMITS, journal=jr, run_id=run_id, broker=broker,
        account="acct", stop_file=str(tmp_path / "STOP")))
    execution = out["execution"]
    assert broker.calls == 1
    assert execution.status == "filled"
    side = out["verdict"].side
    book = tradable.book_for(side)
    assert book is not None
    assert execution.avg_price == book.ask
    assert execution.shares > 0
    assert execution.fee_usd == pytest.approx(execution.shares * tradable.fee_schedule
                                              .per_share(book.ask), abs=1e-6)
    intent = jr.intent(execution.order_id)
    assert intent is not None
    assert intent.status == "filled"
    assert tradable.market_id in jr.ledger_view(account="acct", day_start=0.0,
                                                now=tradable.as_of).entered_market_ids


def test_second_decision_in_the_same_window_is_refused(tradable: MarketSnapshot,
                                                       tmp_path: Path) -> None:
    jr, run_id = _journal(tmp_path)
    broker = CountingBroker()
    ctx = Context(use_llm=False, limits=REPLAY_LIMITS, journal=jr, run_id=run_id,
                  broker=broker, account="acct", stop_file=str(tmp_path / "STOP"))
    invoke(graph, {"snapshot": tradable}, context=ctx)
    again: Any = invoke(graph, {"snapshot": tradable, "decision_id": "second"}, context=ctx)
    assert broker.calls == 1
    assert not again["verdict"].approved
    assert "window" in {h.rule for h in again["verdict"].rules_fired}


def test_broker_error_is_unknown_outcome_and_never_retried(tradable: MarketSnapshot,
                                                          tmp_path: Path) -> None:
    jr, run_id = _journal(tmp_path)
    broker = CountingBroker(fail=True)
    out: Any = invoke(graph, {"snapshot": tradable}, context=Context(
        use_llm=False, limits=REPLAY_LIMITS, journal=jr, run_id=run_id, broker=broker,
        account="acct", stop_file=str(tmp_path / "STOP")))
    assert broker.calls == 1
    assert out["execution"].status == "error"
    assert "outcome unknown" in (out["execution"].reason or "")
    intent = jr.intent(out["execution"].order_id)
    assert intent is not None
    assert intent.status == "error"


def test_kill_switch_file_stops_the_order(tradable: MarketSnapshot, tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    stop.write_text("halt\n")
    broker = CountingBroker()
    out: Any = invoke(graph, {"snapshot": tradable}, context=Context(
        use_llm=False, limits=REPLAY_LIMITS, broker=broker, stop_file=str(stop)))
    assert broker.calls == 0
    assert "kill_switch" in {h.rule for h in out["verdict"].rules_fired}
    assert out.get("execution") is None


def test_default_limits_refuse_an_unverified_price_to_beat(tradable: MarketSnapshot,
                                                            tmp_path: Path) -> None:
    broker = CountingBroker()
    out: Any = invoke(graph, {"snapshot": tradable}, context=Context(
        use_llm=False, limits=GuardLimits(), broker=broker, stop_file=str(tmp_path / "S")))
    assert broker.calls == 0
    assert "reference" in {h.rule for h in out["verdict"].rules_fired}


def test_no_look_ahead_in_any_record(feed: ReplayFeed) -> None:
    market = feed.markets[0]
    t = market.start_ts + 120.0
    out: Any = invoke(graph, {"snapshot": feed.snapshot_at(market, t)},
                            context=Context(use_llm=False))
    snap = out["snapshot"]
    assert snap.price_ts <= t
    assert snap.book_ts is None or snap.book_ts <= t
    # The indicator stream starts at the oldest whole-hour candle of the snapshot's history.
    assert 0 < out["technical"].candles_used <= min(120, sum(
        1 for ts in feed.dataset.prices["BTC"].ts if ts <= t))
    newest = [s.newest_item_ts for s in out["sentiment"].sources if s.newest_item_ts]
    assert all(ts <= t for ts in newest)
