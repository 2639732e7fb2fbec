"""The operator's read models on a real SQLite journal: one row per order with its fill and
settlement, P&L grouped by day / window / market that agrees with the run summary, and
decisions paged by keyset and picked at a time."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records import ExecutionReport, ExecutionStatus, Side
from tools.journal import Journal
from tools.journal.reads import (
    DecisionKey,
    decision_at,
    decisions,
    profit,
    trades,
)

DAY = 1_780_012_800.0  # a UTC midnight (2026-05-29)
A, B = "paper-a", "paper-b"


def window(series: str, start: float) -> str:
    return f"{series}-{start:.0f}"


class Book:
    """Writes orders through the journal's own API, as the execute node and runner do."""

    def __init__(self, jr: Journal, account: str) -> None:
        self.jr, self.account = jr, account
        self.run_id = jr.start_run(account=account, mode="paper", dataset=None, config={},
                                   started_ts=DAY)

    def order(self, market: str, side: Side, at: float, *, status: ExecutionStatus | None,
              shares: float = 0.0, price: float = 0.0, fee: float = 0.0) -> str:
        order_id = f"{market}#{self.account}"
        self.jr.record_decision(run_id=self.run_id, decision_id=order_id, market_id=market,
                                as_of=at, decided_by="policy", decision=side, approved=True,
                                rules_fired=[], record={})
        self.jr.record_order_intent(account=self.account, run_id=self.run_id,
                                    decision_id=order_id, order_id=order_id, market_id=market,
                                    side=side, stake_usd=10.0, worst_price=0.9, created_ts=at)
        if status is not None:
            filled = status == "filled"
            self.jr.record_execution(ExecutionReport(
                status=status, broker="paper", order_id=order_id, market_id=market,
                side=side, stake_usd=10.0, worst_price=0.9, shares=shares if filled else 0.0,
                avg_price=price if filled else None,
                notional_usd=round(shares * price, 6) if filled else 0.0,
                fee_usd=fee if filled else 0.0, reason=None if filled else "test"), ts=at)
        return order_id

    def settle(self, market: str, outcome: Side, at: float) -> None:
        self.jr.record_settlement(account=self.account, market_id=market, outcome=outcome,
                                  outcome_verified=True, settled_ts=at)


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    with Journal(tmp_path / "j.db") as jr:
        a = Book(jr, A)
        m1, m2 = window("btc-updown-15m", DAY), window("btc-updown-15m", DAY + 900)
        a.order(m1, "up", DAY + 60, status="filled", shares=20, price=0.5, fee=0.1)
        a.settle(m1, "up", DAY + 900)  # won: 20 - 10 - 0.1
        a.order(m2, "down", DAY + 960, status="filled", shares=10, price=0.6, fee=0.05)
        a.settle(m2, "up", DAY + 1800)  # lost: -6.05
        # Entered before midnight, settled after: stays in the day of its entry.
        m3 = window("eth-updown-5m", DAY + 86_100)
        a.order(m3, "up", DAY + 86_200, status="filled", shares=10, price=0.4, fee=0.02)
        a.settle(m3, "down", DAY + 86_400)  # lost: -4.02
        a.order(window("btc-updown-15m", DAY + 86_400), "up", DAY + 86_430, status="killed")
        a.order(window("btc-updown-15m", DAY + 87_300), "up", DAY + 87_360, status=None)
        a.order(window("btc-updown-15m", DAY + 88_200), "down", DAY + 88_260, status="error")
        a.order(window("btc-updown-15m", DAY + 89_100), "up", DAY + 89_160, status="filled",
                shares=5, price=0.7, fee=0.01)  # open: its window is not settled
        b = Book(jr, B)
        b.order(m1, "down", DAY + 70, status="filled", shares=10, price=0.5)
        b.settle(m1, "up", DAY + 900)
        yield jr


def test_one_row_per_order_newest_first_with_fill_and_settlement(journal: Journal) -> None:
    with journal.reading() as conn:
        rows = trades(conn, account=A)
        settled = {r["order_id"]: r for r in conn.execute("SELECT * FROM settlements")}
    assert [r.entry_ts for r in rows] == sorted((r.entry_ts for r in rows), reverse=True)
    assert len(rows) == 7
    by_status = {r.status: r for r in rows}
    assert {r.status for r in rows} == {"filled", "killed", "pending", "error"}
    assert by_status["pending"].outcome_unknown
    assert by_status["error"].outcome_unknown
    assert not by_status["killed"].outcome_unknown
    assert by_status["killed"].shares == 0
    assert by_status["killed"].price is None
    for r in rows:
        s = settled.get(r.order_id)
        assert (r.pnl_usd, r.outcome) == ((s["pnl_usd"], s["outcome"]) if s else (None, None))
    won = next(r for r in rows if r.outcome == "up" and r.side == "up")
    assert (won.price, won.shares, won.notional_usd, won.fee_usd) == (0.5, 20, 10.0, 0.1)
    assert won.pnl_usd == pytest.approx(9.9)
    assert won.payout_usd == 20


def test_trades_page_and_filter(journal: Journal) -> None:
    m1 = window("btc-updown-15m", DAY)
    with journal.reading() as conn:
        every = trades(conn)
        pages = [trades(conn, limit=3, offset=o) for o in (0, 3, 6)]
        in_m1 = trades(conn, market_id=m1)
        of_b = trades(conn, account=B)
        with pytest.raises(ValueError, match="limit"):
            trades(conn, limit=0)
    assert [r.order_id for p in pages for r in p] == [r.order_id for r in every]
    assert len(every) == 8
    assert {r.account for r in in_m1} == {A, B}
    assert {r.market_id for r in in_m1} == {m1}
    assert [r.account for r in of_b] == [B]


def test_profit_by_day_groups_by_entry_and_totals_equal_the_run_summary(journal: Journal
                                                                        ) -> None:
    run_a = journal.intents(account=A)[0].run_id
    summary = journal.summary(run_id=run_a)
    with journal.reading() as conn:
        report = profit(conn, by="day", account=A)
    assert [g.key for g in report.groups] == ["2026-05-29", "2026-05-30"]
    day0, day1 = report.groups
    assert (day0.trades, day0.wins, day0.losses) == (3, 1, 2)
    assert day0.pnl_usd == pytest.approx(9.9 - 6.05 - 4.02)
    assert day0.fees_usd == pytest.approx(0.17)
    assert (day1.orders, day1.trades, day1.killed, day1.unknown, day1.open) == (4, 1, 1, 2, 1)
    assert (day1.pnl_usd, day1.fees_usd) == (0.0, 0.01)
    t = report.total
    assert (t.trades, t.wins, t.losses, t.killed, t.errors) == (
        summary.filled, summary.wins, summary.losses, summary.killed, summary.errors)
    assert (t.pnl_usd, t.fees_usd, t.staked_usd) == (
        summary.pnl_usd, summary.fees_usd, summary.staked_usd)
    assert t.hit_rate == summary.hit_rate
    assert t.pnl_usd == pytest.approx(sum(g.pnl_usd for g in report.groups))


def test_profit_by_window_and_by_market_series(journal: Journal) -> None:
    with journal.reading() as conn:
        windows = profit(conn, by="window", account=A)
        markets = profit(conn, by="market")
        with pytest.raises(ValueError, match="day, window, market"):
            profit(conn, by="week")
    assert len(windows.groups) == 7
    assert windows.groups[0].key == window("btc-updown-15m", DAY)
    assert [g.key for g in markets.groups] == ["btc-updown-15m", "eth-updown-5m"]
    btc, eth = markets.groups
    assert (btc.orders, btc.trades, btc.wins, btc.losses) == (7, 4, 1, 2)  # B's loss included
    assert (eth.trades, eth.losses) == (1, 1)
    assert markets.total.pnl_usd == pytest.approx(9.9 - 6.05 - 4.02 - 5.0)
    assert markets.total.orders == btc.orders + eth.orders


def test_profit_of_an_empty_selection_is_zero(journal: Journal) -> None:
    with journal.reading() as conn:
        report = profit(conn, account="nobody")
    assert report.groups == ()
    assert (report.total.trades, report.total.pnl_usd, report.total.hit_rate) == (0, 0.0, None)


@pytest.fixture
def decided(tmp_path: Path) -> Iterator[Journal]:
    """240 decisions over two markets, some at the same instant (ties broken by id)."""
    with Journal(tmp_path / "d.db") as jr:
        run = jr.start_run(account=A, mode="paper", dataset=None, config={}, started_ts=DAY)
        for i in range(120):
            for market in ("m-a", "m-b"):
                approved = i % 7 == 0
                record = {
                    "fair_value": {"fair_up": 0.5 + i / 1000, "market_up_mid": 0.49},
                    "trader": {"analysis": {"confidence": i % 100}},
                    "verdict": {"rules_fired": [] if approved or i % 3 == 0 else [
                        {"rule": "confidence", "action": "reject", "detail": "below 70"}]},
                }
                jr.record_decision(
                    run_id=run, decision_id=f"{market}@{i}", market_id=market,
                    as_of=DAY + 60 * i, decided_by="policy",
                    decision="hold" if i % 3 == 0 and not approved else "up",
                    approved=approved,
                    rules_fired=[] if approved or i % 3 == 0 else ["confidence"],
                    record=record)
        yield jr


def test_decisions_keyset_pages_cover_every_decision_once_in_order(decided: Journal) -> None:
    with decided.reading() as conn:
        every = decisions(conn, limit=1000)
        seen, key = [], None
        while True:
            page = decisions(conn, before=key, limit=37)
            if not page:
                break
            seen.extend(page)
            key = page[-1].key
    assert len(every) == 240
    assert [d.decision_id for d in seen] == [d.decision_id for d in every]
    assert [d.key for d in every] == sorted((d.key for d in every), reverse=True)
    assert every[0].decision_id == "m-b@119"  # the same instant: higher id first


def test_decision_fields_come_from_the_record(decided: Journal) -> None:
    with decided.reading() as conn:
        rows = {d.decision_id: d for d in decisions(conn, market_id="m-a", limit=1000)}
    assert len(rows) == 120
    d = rows["m-a@8"]
    assert d.fair_up == pytest.approx(0.508)
    assert (d.market_mid, d.confidence) == (0.49, 8)
    assert d.verdict == "rejected"
    assert d.rules_fired[0].rule == "confidence"
    assert d.rules_fired[0].detail == "below 70"
    assert rows["m-a@7"].verdict == "approved"
    assert rows["m-a@3"].verdict == "hold"


def test_decision_at_picks_the_nearest_at_or_before(decided: Journal) -> None:
    with decided.reading() as conn:
        exact = decision_at(conn, DAY + 600, market_id="m-a")
        between = decision_at(conn, DAY + 659.9, market_id="m-a")
        any_market = decision_at(conn, DAY + 659.9)
        before_all = decision_at(conn, DAY - 1)
    assert exact is not None
    assert exact.decision_id == "m-a@10"
    assert between is not None
    assert between.decision_id == "m-a@10"
    assert any_market is not None
    assert any_market.decision_id == "m-b@10"
    assert before_all is None


def test_reads_work_on_a_plain_read_only_connection(decided: Journal, tmp_path: Path) -> None:
    """The dashboard may open its own connection: no row factory, read-only."""
    conn = sqlite3.connect(f"file:{tmp_path / 'd.db'}?mode=ro", uri=True)
    try:
        page = decisions(conn, limit=5)
        assert conn.row_factory is None
    finally:
        conn.close()
    assert [d.decision_id for d in page] == ["m-b@119", "m-a@119", "m-b@118", "m-a@118",
                                             "m-b@117"]
    assert page[0].key == DecisionKey(DAY + 60 * 119, "m-b@119")
