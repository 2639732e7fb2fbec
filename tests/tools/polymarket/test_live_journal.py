"""Journal schema v2 for live trading: migration from v1, signed orders journaled once before
posting, reconciliation records, and the manual-only reset of the daily loss limit."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from core.guard import GuardLimits, evaluate
from core.records import ExecutionReport, FairValueEstimate, TradeProposal
from core.snapshot import MarketSnapshot
from tools.journal import (
    _SCHEMA_V1,
    SCHEMA_VERSION,
    DuplicateEntryError,
    Journal,
    UnknownRecordError,
)

ROOT = Path(__file__).resolve().parents[3]
DAY = 1_780_012_800.0
ACCOUNT = "live:0xabc"


def _v1_file(path: Path) -> None:
    con = sqlite3.connect(path)
    con.executescript(_SCHEMA_V1)
    con.execute("INSERT INTO runs VALUES ('r1', 'acct', 'paper', NULL, '{}', 1.0, NULL)")
    con.execute("INSERT INTO order_intents (order_id, account, run_id, decision_id, market_id,"
                " side, stake_usd, worst_price, created_ts) VALUES ('o1', 'acct', 'r1', 'd1',"
                " 'm1', 'up', 10.0, 0.52, 2.0)")
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()


def test_version_1_journal_is_migrated_in_place_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    _v1_file(path)
    with Journal(path) as jr:
        assert SCHEMA_VERSION >= 2  # migrated past v2 to the current version
        assert jr.schema_version == SCHEMA_VERSION
        intent = jr.intent("o1")
        assert intent is not None
        assert intent.market_id == "m1"
        assert jr.signed_order("o1") is None
        assert jr.daily_loss_resets(account="acct") == []
    with Journal(path) as again:  # idempotent
        assert again.schema_version == SCHEMA_VERSION


def _journal_with_intent(tmp_path: Path, order_id: str = "o1", market: str = "m1"
                         ) -> tuple[Journal, str]:
    jr = Journal(tmp_path / "j.db")
    run_id = jr.start_run(account=ACCOUNT, mode="live", dataset=None, config={},
                          started_ts=DAY)
    jr.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id=f"d-{order_id}",
                           order_id=order_id, market_id=market, side="up", stake_usd=10.0,
                           worst_price=0.57, created_ts=DAY + 10)
    return jr, run_id


def _sign(jr: Journal, order_id: str, order_hash: str) -> None:
    jr.record_signed_order(order_id=order_id, venue="v", order_hash=order_hash, token_id="1",
                           order_type="FOK", amount_usd="10.00", worst_price="0.57",
                           maker_amount="10000000", taker_amount="17543800",
                           signed_ts=DAY + 11)


def test_an_intent_is_signed_once(tmp_path: Path) -> None:
    jr, _ = _journal_with_intent(tmp_path)
    with pytest.raises(UnknownRecordError):
        _sign(jr, "no-such-order", "0x01")
    _sign(jr, "o1", "0x01")
    with pytest.raises(DuplicateEntryError):
        _sign(jr, "o1", "0x02")  # a second signature for the same intent
    record = jr.signed_order("o1")
    assert record is not None
    assert record.order_hash == "0x01"
    assert record.trade_ids == ()
    jr.record_venue_status("o1", venue_status="matched", trade_ids=("t1", "t2"), ts=DAY + 12)
    record = jr.signed_order("o1")
    assert record is not None
    assert record.trade_ids == ("t1", "t2")
    assert [s.order_id for s in jr.signed_orders(account=ACCOUNT)] == ["o1"]
    jr.close()


def test_the_same_hash_cannot_serve_two_intents(tmp_path: Path) -> None:
    jr, run_id = _journal_with_intent(tmp_path)
    jr.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id="d-o2", order_id="o2",
                           market_id="m2", side="up", stake_usd=10.0, worst_price=0.57,
                           created_ts=DAY + 20)
    _sign(jr, "o1", "0x01")
    with pytest.raises(DuplicateEntryError):
        _sign(jr, "o2", "0x01")
    jr.close()


def test_reconciliation_records_are_kept(tmp_path: Path) -> None:
    jr, _ = _journal_with_intent(tmp_path)
    jr.record_reconciliation(account=ACCOUNT, order_id="o1", outcome="killed",
                             detail="never_sent", ts=DAY + 30)
    [rec] = jr.reconciliations(account=ACCOUNT)
    assert (rec.order_id, rec.outcome) == ("o1", "killed")
    jr.close()


def _lose(jr: Journal, run_id: str, n: int, settled_ts: float) -> None:
    oid, market = f"loss-{n}", f"lm{n}"
    jr.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id=f"dl-{n}", order_id=oid,
                           market_id=market, side="up", stake_usd=100.0, worst_price=0.52,
                           created_ts=settled_ts - 800)
    jr.record_execution(ExecutionReport(
        status="filled", broker="b", order_id=oid, market_id=market, side="up",
        stake_usd=100.0, worst_price=0.52, shares=200.0, avg_price=0.5, notional_usd=100.0,
        fee_usd=3.5), ts=settled_ts - 799)
    jr.record_settlement(account=ACCOUNT, market_id=market, outcome="down",
                         outcome_verified=True, settled_ts=settled_ts)


def test_daily_loss_halt_lifts_only_after_the_manual_reset(
        tmp_path: Path, make_snapshot: Callable[..., MarketSnapshot]) -> None:
    jr, run_id = _journal_with_intent(tmp_path)
    for n in range(3):
        _lose(jr, run_id, n, DAY + 1000 + n * 900)  # three losses of 103.50
    now = DAY + 5000
    view = jr.ledger_view(account=ACCOUNT, day_start=DAY, now=now)
    assert view.realized_pnl_today == pytest.approx(-310.5)
    limits = GuardLimits(require_verified_price_to_beat=False, max_consecutive_losses=10)
    snap = make_snapshot(as_of=now, price_ts=now, book_ts=now, window_start=now - 300,
                              window_end=now + 600)
    proposal = TradeProposal(side="up", stake_usd=10.0, confidence=90, fair_p=0.7, ask=0.6,
                             worst_price=0.62)
    fair = FairValueEstimate(fair_up=0.7, price=100_010.0, price_to_beat=100_000.0,
                             price_to_beat_verified=True, time_to_close_s=600.0,
                             sigma_per_sqrt_s=0.0001, log_moneyness=0.0001)

    def rules() -> set[str]:
        v = jr.ledger_view(account=ACCOUNT, day_start=DAY, now=now)
        return {h.rule for h in evaluate(proposal, snap, fair, limits, v, now,
                                         kill_switch_engaged=False).rules_fired}

    assert "daily_loss" in rules()
    # Time alone does not lift it within the day; only the recorded manual reset does.
    with pytest.raises(ValueError, match="note"):
        jr.record_daily_loss_reset(account=ACCOUNT, reset_ts=now - 10, note="  ")
    jr.record_daily_loss_reset(account=ACCOUNT, reset_ts=now - 10, note="reviewed the losses")
    assert jr.ledger_view(account=ACCOUNT, day_start=DAY, now=now).realized_pnl_today == 0.0
    assert "daily_loss" not in rules()
    # A reset never reaches back before it was made (read at an earlier time).
    assert jr.ledger_view(account=ACCOUNT, day_start=DAY,
                          now=now - 20).realized_pnl_today == pytest.approx(-310.5)
    # Later losses count again.
    _lose(jr, run_id, 9, now + 100)
    assert jr.ledger_view(account=ACCOUNT, day_start=DAY,
                          now=now + 200).realized_pnl_today == pytest.approx(-103.5)
    jr.close()


def test_no_graph_or_model_path_can_reset_the_daily_loss() -> None:
    """Only the operator command and the journal itself mention the reset."""
    users = {p.relative_to(ROOT).as_posix()
             for folder in ("agent", "graphs", "tools", "feeds", "evals")
             for p in (ROOT / folder).rglob("*.py")
             if "record_daily_loss_reset" in p.read_text()}
    assert users == {"agent/cli/money.py", "tools/journal/ledger.py"}
    # And no model schema carries anything like it.
    from core.records import AIAnalysis

    assert set(AIAnalysis.model_fields) == {"decision", "confidence", "reasoning", "risk_level"}
