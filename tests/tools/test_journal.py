"""Journal on real SQLite files: entry uniqueness, ordering, settlement P&L, read models."""

from __future__ import annotations

import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.records import ExecutionReport, Side
from core.snapshot import BookTop, Candles, MarketSnapshot
from tools.journal import (
    SCHEMA_VERSION,
    ConflictError,
    DuplicateEntryError,
    DuplicateRecordError,
    Journal,
    JournalError,
    UnknownRecordError,
)
from tools.paper_broker import PaperBroker

ACCOUNT = "paper-main"
DAY = 1_780_012_800.0  # a UTC midnight


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "nested" / "dir" / "journal.db"


@pytest.fixture
def journal(db_path: Path) -> Iterator[Journal]:
    with Journal(db_path) as j:
        yield j


@pytest.fixture
def run_id(journal: Journal) -> str:
    return journal.start_run(account=ACCOUNT, mode="paper", dataset="recorded-2026-09",
                             config={"max_position_size": 100.0, "risk_level": "medium"},
                             started_ts=DAY)


def intent(j: Journal, run_id: str, n: int, *, market: str | None = None, side: Side = "up",
           ts: float = DAY + 100, account: str = ACCOUNT, stake: float = 10.0) -> str:
    order_id = f"order-{n}"
    j.record_order_intent(account=account, run_id=run_id, decision_id=f"dec-{n}",
                          order_id=order_id, market_id=market or f"m{n}", side=side,
                          stake_usd=stake, worst_price=0.52, created_ts=ts)
    return order_id


def filled(order_id: str, market: str, *, side: Side = "up", shares: float = 20.0,
           price: float = 0.50, fee: float = 0.35) -> ExecutionReport:
    return ExecutionReport(status="filled", broker="paper", order_id=order_id,
                           market_id=market, side=side, stake_usd=10.0, worst_price=0.52,
                           shares=shares, avg_price=price, notional_usd=shares * price,
                           fee_usd=fee)


def killed(order_id: str, market: str, side: Side = "up") -> ExecutionReport:
    return ExecutionReport(status="killed", broker="paper", order_id=order_id,
                           market_id=market, side=side, stake_usd=10.0, worst_price=0.52,
                           reason="FOK not fully filled")


def trade(j: Journal, run_id: str, n: int, *, win: bool, settled_ts: float,
          created_ts: float | None = None) -> None:
    """One filled $10 Up position at 0.50 settled as a win (+9.65) or a loss (-10.35)."""
    market = f"m{n}"
    oid = intent(j, run_id, n, market=market,
                 ts=created_ts if created_ts is not None else settled_ts - 800)
    j.record_execution(filled(oid, market), ts=settled_ts - 799)
    j.record_settlement(account=ACCOUNT, market_id=market, outcome="up" if win else "down",
                        outcome_verified=True, settled_ts=settled_ts)


def count(path: Path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return int(con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    finally:
        con.close()


# --- file, schema, durability settings ---

def test_creates_parent_dirs_wal_and_schema_version(journal: Journal, db_path: Path) -> None:
    assert db_path.exists()
    assert journal.schema_version == SCHEMA_VERSION
    con = sqlite3.connect(db_path)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()
    assert {"runs", "decisions", "order_intents", "executions", "settlements"} <= tables
    assert journal._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_memory_journal_works() -> None:
    with Journal(":memory:") as j:
        rid = j.start_run(account="a", mode="paper", dataset=None, config={})
        intent(j, rid, 1, account="a")
        assert j.ledger_view(account="a", day_start=DAY, now=DAY + 1000).orders_today == 1


def test_newer_schema_is_refused(db_path: Path) -> None:
    Journal(db_path).close()
    con = sqlite3.connect(db_path)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(db_path)


def test_closed_journal_refuses_use(db_path: Path) -> None:
    j = Journal(db_path)
    j.close()
    j.close()  # idempotent
    with pytest.raises(JournalError, match="closed"):
        j.start_run(account="a", mode="paper", dataset=None, config={})


# --- runs and config ---

@pytest.mark.parametrize("key", ["api_key", "POLYMARKET_API_SECRET", "Passphrase",
                                 "twitter_bearer_token", "privateKey"])
def test_secret_looking_config_keys_refused(journal: Journal, db_path: Path, key: str) -> None:
    with pytest.raises(ValueError, match="looks like a secret") as err:
        journal.start_run(account=ACCOUNT, mode="paper", dataset=None,
                          config={"ok": 1, key: "hunter2"})
    assert "hunter2" not in str(err.value)
    assert count(db_path, "runs") == 0


def test_nested_secret_key_refused(journal: Journal) -> None:
    with pytest.raises(ValueError, match=r"llm\.api_key"):
        journal.start_run(account=ACCOUNT, mode="paper", dataset=None,
                          config={"llm": {"model": "m", "api_key": "x"}})


def test_run_config_round_trips_and_finish(journal: Journal, run_id: str) -> None:
    assert len(run_id) == 32
    assert int(run_id, 16) >= 0
    assert journal.run_config(run_id) == {"max_position_size": 100.0, "risk_level": "medium"}
    journal.finish_run(run_id, ended_ts=DAY + 3600)
    with pytest.raises(UnknownRecordError):
        journal.finish_run("nope", ended_ts=DAY)


# --- decisions ---

def test_decision_id_unique_and_record_kept(journal: Journal, run_id: str) -> None:
    rec: dict[str, object] = {"trader": {"decision": "up", "confidence": 80}, "x": [1, 2]}
    journal.record_decision(run_id=run_id, decision_id="d1", market_id="m1", as_of=DAY,
                            decided_by="llm", decision="up", approved=True, rules_fired=[],
                            record=rec)
    with pytest.raises(DuplicateRecordError):
        journal.record_decision(run_id=run_id, decision_id="d1", market_id="m1", as_of=DAY,
                                decided_by="llm", decision="hold", approved=False,
                                rules_fired=[], record={})
    assert journal.decision_record("d1") == rec
    assert journal.decision_record("d2") is None


def test_decision_for_unknown_run_refused(journal: Journal) -> None:
    with pytest.raises(UnknownRecordError):
        journal.record_decision(run_id="nope", decision_id="d1", market_id="m1", as_of=DAY,
                                decided_by="llm", decision="up", approved=True,
                                rules_fired=[], record={})


# --- order intents ---

def test_duplicate_entry_in_window_rejected_and_nothing_written(
    journal: Journal, run_id: str, db_path: Path
) -> None:
    intent(journal, run_id, 1, market="m1")
    with pytest.raises(DuplicateEntryError, match="already entered"):
        intent(journal, run_id, 2, market="m1", side="down")
    assert count(db_path, "order_intents") == 1
    assert journal.intent("order-2") is None
    # Another account may enter the same window.
    intent(journal, run_id, 3, market="m1", account="other")
    assert count(db_path, "order_intents") == 2


def test_one_intent_per_decision_and_order_id(journal: Journal, run_id: str,
                                              db_path: Path) -> None:
    intent(journal, run_id, 1)
    with pytest.raises(DuplicateEntryError, match="decision"):
        journal.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id="dec-1",
                                    order_id="fresh", market_id="m9", side="up",
                                    stake_usd=5.0, worst_price=0.5, created_ts=DAY)
    with pytest.raises(DuplicateEntryError, match="order id"):
        journal.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id="fresh",
                                    order_id="order-1", market_id="m9", side="up",
                                    stake_usd=5.0, worst_price=0.5, created_ts=DAY)
    assert count(db_path, "order_intents") == 1


def test_unique_window_constraint_is_in_the_schema(journal: Journal, run_id: str,
                                                   db_path: Path) -> None:
    # The pre-check is not the only line of defence: the table itself refuses a second entry.
    intent(journal, run_id, 1, market="m1")
    con = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):
            con.execute(
                "INSERT INTO order_intents (order_id, account, run_id, decision_id, market_id,"
                " side, stake_usd, worst_price, created_ts) VALUES"
                " ('x', ?, ?, 'dx', 'm1', 'up', 1, 0.5, 0)", (ACCOUNT, run_id))
    finally:
        con.close()


def test_execution_requires_intent_first(journal: Journal, run_id: str, db_path: Path) -> None:
    with pytest.raises(UnknownRecordError):
        journal.record_execution(filled("order-1", "m1"), ts=DAY)
    assert count(db_path, "executions") == 0
    oid = intent(journal, run_id, 1, market="m1")
    assert journal.intent(oid).status == "pending"  # type: ignore[union-attr]
    assert [i.order_id for i in journal.pending_intents(account=ACCOUNT)] == [oid]
    journal.record_execution(filled(oid, "m1"), ts=DAY + 101)
    assert journal.intent(oid).status == "filled"  # type: ignore[union-attr]
    assert journal.pending_intents(account=ACCOUNT) == []


def test_execution_idempotent_and_conflicts_refused(journal: Journal, run_id: str) -> None:
    oid = intent(journal, run_id, 1, market="m1")
    journal.record_execution(filled(oid, "m1"), ts=DAY)
    journal.record_execution(filled(oid, "m1"), ts=DAY + 5)  # same report: no-op
    with pytest.raises(ConflictError):
        journal.record_execution(killed(oid, "m1"), ts=DAY)
    other = intent(journal, run_id, 2, market="m2")
    with pytest.raises(ConflictError, match="does not match"):
        journal.record_execution(filled(other, "m2", side="down"), ts=DAY)
    assert journal.executions(account=ACCOUNT) == [filled(oid, "m1")]


def test_error_execution_superseded_once_by_reconciled_report(journal: Journal,
                                                              run_id: str) -> None:
    # The broker raised after sending: outcome unknown.  Reconciliation finds it filled.
    oid = intent(journal, run_id, 1, market="m1")
    unknown = ExecutionReport(status="error", broker="paper", order_id=oid, market_id="m1",
                              side="up", stake_usd=10.0, worst_price=0.52,
                              reason="outcome unknown (TimeoutError)")
    journal.record_execution(unknown, ts=DAY)
    assert journal.pending_intents(account=ACCOUNT) == []
    assert [i.order_id for i in journal.pending_intents(account=ACCOUNT,
                                                        include_errors=True)] == [oid]
    assert journal.unsettled_markets(account=ACCOUNT) == []
    journal.record_execution(filled(oid, "m1"), ts=DAY + 5)
    assert journal.intent(oid).status == "filled"  # type: ignore[union-attr]
    assert journal.pending_intents(account=ACCOUNT, include_errors=True) == []
    assert journal.unsettled_markets(account=ACCOUNT) == ["m1"]
    with pytest.raises(ConflictError):
        journal.record_execution(killed(oid, "m1"), ts=DAY + 6)
    assert journal.executions(account=ACCOUNT) == [filled(oid, "m1")]


def test_killed_order_keeps_blocking_its_window(journal: Journal, run_id: str) -> None:
    oid = intent(journal, run_id, 1, market="m1")
    journal.record_execution(killed(oid, "m1"), ts=DAY)
    assert journal.intent(oid).status == "killed"  # type: ignore[union-attr]
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 1000)
    assert "m1" in view.entered_market_ids
    with pytest.raises(DuplicateEntryError):
        intent(journal, run_id, 2, market="m1")
    assert journal.unsettled_markets(account=ACCOUNT) == []


def test_intent_then_paper_broker_then_execution_matches_ledger(
    journal: Journal, run_id: str
) -> None:
    broker = PaperBroker()
    snapshot = MarketSnapshot(
        market_id="m1", as_of=DAY + 100, window_start=DAY, window_end=DAY + 900,
        price=100_000.0, price_ts=DAY + 99, candles=Candles(interval_s=60),
        up=BookTop(ask=0.5, ask_size=100.0), down=BookTop(ask=0.51, ask_size=100.0),
        book_ts=DAY + 99,
    )
    oid = intent(journal, run_id, 1, market="m1")
    report = broker.place_market_buy(order_id=oid, snapshot=snapshot, side="up",
                                     stake_usd=10.0, worst_price=0.52)
    journal.record_execution(report, ts=DAY + 100)
    assert journal.executions(account=ACCOUNT) == broker.fills


# --- settlement ---

def test_settlement_pnl_by_hand_win_and_loss(journal: Journal, run_id: str) -> None:
    win = intent(journal, run_id, 1, market="m1")
    journal.record_execution(filled(win, "m1"), ts=DAY + 101)
    (pos,) = journal.record_settlement(account=ACCOUNT, market_id="m1", outcome="up",
                                       outcome_verified=True, settled_ts=DAY + 900)
    # 20 shares pay $1 each: 20 - 10.00 notional - 0.35 fee = +9.65.
    assert pos.payout_usd == 20.0
    assert pos.pnl_usd == pytest.approx(9.65)
    assert pos.outcome_verified is True

    loss = intent(journal, run_id, 2, market="m2", side="down")
    journal.record_execution(filled(loss, "m2", side="down", shares=25.0, price=0.40,
                                    fee=25 * 0.07 * 0.4 * 0.6), ts=DAY + 1001)
    (pos2,) = journal.record_settlement(account=ACCOUNT, market_id="m2", outcome="up",
                                        outcome_verified=False, settled_ts=DAY + 1800)
    # Down lost: payout 0, pnl = -(10.00 + 0.42).
    assert pos2.payout_usd == 0.0
    assert pos2.pnl_usd == pytest.approx(-10.42)
    assert pos2.outcome_verified is False
    assert journal.unsettled_markets(account=ACCOUNT) == []


def test_settlement_idempotent(journal: Journal, run_id: str, db_path: Path) -> None:
    oid = intent(journal, run_id, 1, market="m1")
    journal.record_execution(filled(oid, "m1"), ts=DAY)
    assert journal.unsettled_markets(account=ACCOUNT) == ["m1"]
    first = journal.record_settlement(account=ACCOUNT, market_id="m1", outcome="up",
                                      outcome_verified=True, settled_ts=DAY + 900)
    again = journal.record_settlement(account=ACCOUNT, market_id="m1", outcome="up",
                                      outcome_verified=True, settled_ts=DAY + 950)
    assert first == again
    assert count(db_path, "settlements") == 1
    with pytest.raises(ConflictError):
        journal.record_settlement(account=ACCOUNT, market_id="m1", outcome="down",
                                  outcome_verified=True, settled_ts=DAY + 999)
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 2000)
    assert view.realized_pnl_today == pytest.approx(9.65)


def test_settlement_ignores_unfilled_and_other_accounts(journal: Journal, run_id: str) -> None:
    k = intent(journal, run_id, 1, market="m1")
    journal.record_execution(killed(k, "m1"), ts=DAY)
    intent(journal, run_id, 2, market="m1", account="other")  # pending, other account
    assert journal.record_settlement(account=ACCOUNT, market_id="m1", outcome="up",
                                     outcome_verified=True, settled_ts=DAY + 900) == []


# --- ledger view ---

def test_orders_today_at_the_day_boundary(journal: Journal, run_id: str) -> None:
    intent(journal, run_id, 1, ts=DAY - 0.001)  # yesterday
    intent(journal, run_id, 2, ts=DAY)           # exactly midnight counts as today
    intent(journal, run_id, 3, ts=DAY + 500)
    intent(journal, run_id, 4, ts=DAY + 5000)    # after `now`: not seen
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 1000)
    assert view.orders_today == 2
    assert view.entered_market_ids == frozenset({"m1", "m2", "m3", "m4"})
    assert journal.ledger_view(account="other", day_start=DAY, now=DAY + 1000).orders_today == 0


def test_realized_pnl_today_only_counts_today(journal: Journal, run_id: str) -> None:
    trade(journal, run_id, 1, win=False, settled_ts=DAY - 1)       # yesterday: -10.35
    trade(journal, run_id, 2, win=True, settled_ts=DAY + 900)      # +9.65
    trade(journal, run_id, 3, win=False, settled_ts=DAY + 1800)    # -10.35
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 3600)
    assert view.realized_pnl_today == pytest.approx(9.65 - 10.35)


def test_consecutive_losses_broken_by_a_win(journal: Journal, run_id: str) -> None:
    trade(journal, run_id, 1, win=False, settled_ts=DAY + 900)
    trade(journal, run_id, 2, win=False, settled_ts=DAY + 1800)
    trade(journal, run_id, 3, win=True, settled_ts=DAY + 2700)
    trade(journal, run_id, 4, win=False, settled_ts=DAY + 3600)
    trade(journal, run_id, 5, win=False, settled_ts=DAY + 4500)
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 9999)
    assert view.consecutive_losses == 2
    assert view.last_loss_ts == DAY + 4500
    # As of just after the win, the streak is zero but the last loss is still known.
    at_win = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 2700)
    assert at_win.consecutive_losses == 0
    assert at_win.last_loss_ts == DAY + 1800


def test_empty_ledger_view(journal: Journal) -> None:
    view = journal.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 1)
    assert view.entered_market_ids == frozenset()
    assert (view.orders_today, view.realized_pnl_today, view.consecutive_losses) == (0, 0.0, 0)
    assert view.last_loss_ts is None


# --- summary ---

def test_summary_counts(journal: Journal, run_id: str) -> None:
    def decide(n: int, approved: bool, rules: list[str]) -> None:
        journal.record_decision(run_id=run_id, decision_id=f"dec-{n}", market_id=f"m{n}",
                                as_of=DAY + n, decided_by="rules", decision="up",
                                approved=approved, rules_fired=rules, record={"n": n})

    decide(1, True, [])
    decide(2, True, ["size"])  # shrunk, still approved: not a rejection
    decide(3, True, [])
    decide(4, False, ["freshness", "economics"])
    decide(5, False, ["freshness"])
    decide(6, True, [])
    trade(journal, run_id, 1, win=True, settled_ts=DAY + 900)
    trade(journal, run_id, 2, win=False, settled_ts=DAY + 1800)
    k = intent(journal, run_id, 3, market="m3")
    journal.record_execution(killed(k, "m3"), ts=DAY + 2000)
    unsettled = intent(journal, run_id, 6, market="m6")
    journal.record_execution(filled(unsettled, "m6"), ts=DAY + 2100)

    s = journal.summary(run_id=run_id)
    assert (s.decisions, s.approved) == (6, 4)
    assert (s.filled, s.killed, s.errors, s.pending) == (3, 1, 0, 0)
    assert (s.wins, s.losses) == (1, 1)
    assert s.hit_rate == 0.5
    assert s.pnl_usd == pytest.approx(9.65 - 10.35)
    assert s.fees_usd == pytest.approx(3 * 0.35)
    assert s.staked_usd == pytest.approx(30.0)
    assert s.rejections == Counter({"freshness": 2, "economics": 1})


def test_summary_without_trades_has_no_hit_rate(journal: Journal, run_id: str) -> None:
    s = journal.summary(run_id=run_id)
    assert s.hit_rate is None
    assert (s.decisions, s.filled, s.pnl_usd) == (0, 0, 0.0)
    with pytest.raises(UnknownRecordError):
        journal.summary(run_id="nope")


# --- persistence ---

def test_reopened_journal_keeps_everything(db_path: Path) -> None:
    with Journal(db_path) as j:
        rid = j.start_run(account=ACCOUNT, mode="paper", dataset=None, config={"a": 1},
                          started_ts=DAY)
        j.record_decision(run_id=rid, decision_id="dec-1", market_id="m1", as_of=DAY,
                          decided_by="llm", decision="up", approved=True, rules_fired=[],
                          record={"k": "v"})
        trade(j, rid, 1, win=False, settled_ts=DAY + 900)
        oid = intent(j, rid, 2, market="m2", ts=DAY + 1000)
        before_view = j.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 2000)
        before_summary = j.summary(run_id=rid)

    with Journal(db_path) as j2:
        assert j2.ledger_view(account=ACCOUNT, day_start=DAY, now=DAY + 2000) == before_view
        assert j2.summary(run_id=rid) == before_summary
        assert j2.decision_record("dec-1") == {"k": "v"}
        assert [i.order_id for i in j2.pending_intents(account=ACCOUNT)] == [oid]
        with pytest.raises(DuplicateEntryError):
            intent(j2, rid, 3, market="m2")
        assert j2.schema_version == SCHEMA_VERSION


def test_failed_write_rolls_back_whole_call(journal: Journal, run_id: str,
                                            db_path: Path) -> None:
    # record_execution inserts the execution, then updates the intent.  A trigger makes the
    # second statement fail: the first must be rolled back with it.
    oid = intent(journal, run_id, 1, market="m1")
    con = sqlite3.connect(db_path)
    con.execute("CREATE TRIGGER boom BEFORE UPDATE ON order_intents"
                " BEGIN SELECT RAISE(ABORT, 'boom'); END")
    con.commit()
    with pytest.raises(sqlite3.IntegrityError, match="boom"):
        journal.record_execution(filled(oid, "m1"), ts=DAY)
    assert count(db_path, "executions") == 0
    con.execute("DROP TRIGGER boom")
    con.commit()
    con.close()
    # The connection is usable afterwards (no transaction left open).
    journal.record_execution(filled(oid, "m1"), ts=DAY)
    assert journal.unsettled_markets(account=ACCOUNT) == ["m1"]


def test_invalid_outcome_refused(journal: Journal, run_id: str, db_path: Path) -> None:
    a = intent(journal, run_id, 1, market="m1")
    journal.record_execution(filled(a, "m1"), ts=DAY)
    with pytest.raises(ValueError, match="invalid outcome"):
        journal.record_settlement(account=ACCOUNT, market_id="m1",
                                  outcome="sideways",  # type: ignore[arg-type]
                                  outcome_verified=True, settled_ts=DAY + 900)
    assert count(db_path, "settlements") == 0


def test_concurrent_writers_enter_a_window_once(db_path: Path) -> None:
    # Two connections (as two processes would have) race for the same window many times.
    with Journal(db_path) as setup:
        rid = setup.start_run(account=ACCOUNT, mode="paper", dataset=None, config={})
    journals = [Journal(db_path), Journal(db_path)]
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker(w: int) -> None:
        for m in range(40):
            try:
                journals[w].record_order_intent(
                    account=ACCOUNT, run_id=rid, decision_id=f"d{w}-{m}", order_id=f"o{w}-{m}",
                    market_id=f"m{m}", side="up", stake_usd=5.0, worst_price=0.5,
                    created_ts=DAY + m)
                result = "ok"
            except DuplicateEntryError:
                result = "dup"
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for j in journals:
        j.close()
    assert Counter(outcomes) == Counter({"ok": 40, "dup": 40})
    assert count(db_path, "order_intents") == 40
