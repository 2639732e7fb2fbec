"""Execution styles in the replay: nothing rests after a cut-off or the kill switch, the
taker default is unchanged, and the comparison runs on the same windows."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from evals.execution_compare import compare_execution, comparison_html, parse_styles
from evals.replay_runner import DecisionEvent, ReplayRunner
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.journal import Journal
from tools.journal.resting import RestingOrders

DATASET = Path(__file__).resolve().parents[2] / "data" / "recorded" / "pm15m_20251226_coinbase1m"


def _feed() -> ReplayFeed:
    return ReplayFeed(load_dataset(DATASET), cadence_s=30.0, max_price_age_s=2.0)


def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_maker_replay_leaves_nothing_resting_after_any_cutoff(tmp_path: Path) -> None:
    feed = _feed()
    journal = Journal(":memory:")
    runner = ReplayRunner(feed, _settings(), journal=journal, decision_log=None, cadence_s=30.0,
                          use_llm=False, execution_style="maker", markets=feed.markets[:8],
                          stop_file=str(tmp_path / "STOP"))
    report = runner.run()
    assert runner.desk is not None
    venue = runner.desk.venue
    assert venue.orders(), "the maker replay placed resting orders"
    assert venue.open_orders() == []
    assert runner.desk.left_resting == []
    end = {m.market_id: m.end_ts for m in runner.markets}
    cutoff = runner.maker_params.cancel_last_s
    for order in venue.orders():
        for fill in order.fills:  # no fill after the window's cut-off
            assert fill.ts <= end[order.market_id] - cutoff
    rows = RestingOrders(journal).rows(account=report.account)
    assert {r.status for r in rows} <= {"cancelled", "filled", "rejected"}
    assert len(rows) == len(venue.orders())


def test_kill_switch_mid_replay_cancels_and_stops_new_orders(tmp_path: Path) -> None:
    feed = _feed()
    stop = tmp_path / "STOP"
    placed_at_kill: list[int] = []
    runner: ReplayRunner

    def observe(event: DecisionEvent) -> None:
        desk = runner.desk
        if desk is not None and desk.venue.open_orders() and not stop.exists():
            stop.write_text("stop")
            placed_at_kill.append(len(desk.venue.orders()))

    runner = ReplayRunner(feed, _settings(), journal=Journal(":memory:"), decision_log=None,
                          cadence_s=30.0, use_llm=False, execution_style="maker",
                          markets=feed.markets[:8], stop_file=str(stop), observer=observe)
    runner.run()
    assert runner.desk is not None
    assert placed_at_kill, "an order was resting when the STOP file appeared"
    venue = runner.desk.venue
    assert venue.open_orders() == []
    assert len(venue.orders()) == placed_at_kill[0]  # nothing new after the kill switch
    desk_orders = [o for w in runner.desk.desk.windows.values() for o in w.orders]
    assert any(o.reason == "kill switch" for o in desk_orders)


def test_compare_execution_same_windows_and_a_plot_per_style() -> None:
    feed = _feed()
    sub = ReplayFeed(load_dataset(DATASET), cadence_s=30.0, max_price_age_s=2.0)
    assert [m.market_id for m in sub.markets] == [m.market_id for m in feed.markets]
    summary = compare_execution(feed, _settings(), parse_styles("taker,maker"), cadence_s=30.0,
                                use_llm=False)
    rows = {r["style"]: r for r in summary["styles"]}
    assert set(rows) == {"taker", "maker"}
    assert rows["taker"]["windows"] == rows["maker"]["windows"] == len(feed.markets)
    # The taker default is what `make run` reports on this set.
    assert rows["taker"]["trades"] == 24
    assert round(rows["taker"]["pnl_usd"], 2) == 6.51
    assert rows["maker"]["resting_orders"] > 0
    assert rows["maker"]["left_resting_after_cutoff"] == 0
    lo, hi = rows["maker"]["pnl_ci95"]
    assert lo <= rows["maker"]["pnl_usd"] <= hi
    page = comparison_html(summary)
    assert 'id="equity-taker"' in page
    assert 'id="equity-maker"' in page


def test_bad_style_is_one_line() -> None:
    import pytest

    from evals.execution_compare import ExecutionInputError

    with pytest.raises(ExecutionInputError, match="taker, maker, maker_then_taker"):
        parse_styles("makr")
