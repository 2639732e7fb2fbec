"""Boundary tests for every guard rule: just below, at, and just above each limit."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from conftest import synthetic_snapshot

from core.guard import GuardLimits, evaluate
from core.records import FairValueEstimate, LedgerView, TradeProposal, Verdict

NOW = 1_000_300.0
LIMITS = GuardLimits(require_verified_price_to_beat=True)


def fair(fair_up: float = 0.80) -> FairValueEstimate:
    return FairValueEstimate(
        fair_up=fair_up, price=100_010.0, price_to_beat=100_000.0, price_to_beat_verified=True,
        time_to_close_s=600.0, sigma_per_sqrt_s=1e-4, log_moneyness=1e-4,
    )


def proposal(**kw: Any) -> TradeProposal:
    base: dict[str, Any] = {"side": "up", "stake_usd": 50.0, "confidence": 80, "fair_p": 0.8,
                            "ask": 0.60, "worst_price": 0.62}
    base.update(kw)
    return TradeProposal(**base)


def run(*, prop: TradeProposal | None = None, snap: Any = None, fv: Any = "default",
        limits: GuardLimits = LIMITS, ledger: LedgerView | None = None, now: float = NOW,
        kill: bool = False) -> Verdict:
    return evaluate(
        proposal() if prop is None else prop,
        synthetic_snapshot() if snap is None else snap,
        fair() if fv == "default" else fv,
        limits, ledger or LedgerView(), now, kill_switch_engaged=kill,
    )


def fired(v: Verdict) -> set[str]:
    return {h.rule for h in v.rules_fired if h.action == "reject"}


def test_baseline_passes_every_rule() -> None:
    v = run()
    assert v.approved, v.rules_fired
    assert v.rules_fired == ()
    assert v.side == "up"
    assert v.stake_usd == 50.0
    assert v.worst_price == 0.62


def test_hold_is_not_approved_and_fires_nothing() -> None:
    v = evaluate(None, synthetic_snapshot(), fair(), LIMITS, LedgerView(), NOW,
                 kill_switch_engaged=False)
    assert not v.approved
    assert v.rules_fired == ()


@pytest.mark.parametrize(("confidence", "ok"), [(69, False), (70, True), (71, True)])
def test_confidence_threshold(confidence: int, ok: bool) -> None:
    v = run(prop=proposal(confidence=confidence))
    assert v.approved is ok
    assert ("confidence" in fired(v)) is (not ok)


# Up ask 0.60 at rate 0.07: all-in cost 0.60 + 0.07*0.6*0.4 = 0.6168; min_edge 0.02.
@pytest.mark.parametrize(("fair_up", "ok"), [(0.6367, False), (0.6368, True), (0.6369, True)])
def test_economics_edge_after_fees(fair_up: float, ok: bool) -> None:
    v = run(fv=fair(fair_up))
    assert ("economics" in fired(v)) is (not ok)


def test_economics_uses_snapshot_ask_not_the_proposal() -> None:
    # A proposal lying about the ask cannot buy edge: the guard prices from the snapshot.
    snap = synthetic_snapshot(up={"bid": 0.77, "ask": 0.79, "ask_size": 1000.0})
    v = run(prop=proposal(ask=0.10, worst_price=0.81), snap=snap)
    assert "economics" in fired(v)


def test_economics_without_fair_value_or_ask() -> None:
    assert "economics" in fired(run(fv=None))
    assert "economics" in fired(run(snap=synthetic_snapshot(up={"bid": 0.5})))


@pytest.mark.parametrize(("stake", "expected"), [(99.99, 99.99), (100.0, 100.0), (100.01, 100.0)])
def test_size_cap_shrinks_never_enlarges(stake: float, expected: float) -> None:
    v = run(prop=proposal(stake_usd=stake))
    assert v.approved
    assert v.stake_usd == pytest.approx(expected)
    assert v.stake_usd <= stake
    assert any(h.rule == "size" and h.action == "shrink" for h in v.rules_fired) is (stake > 100)


@pytest.mark.parametrize(("ask_size", "expected"), [(83.0, 49.8), (83.34, 50.0), (100.0, 50.0)])
def test_size_shrinks_to_visible_depth(ask_size: float, expected: float) -> None:
    snap = synthetic_snapshot(up={"bid": 0.58, "ask": 0.60, "ask_size": ask_size})
    v = run(snap=snap)
    assert v.approved
    assert v.stake_usd == pytest.approx(expected)


# Venue minimum at ask 0.60: max($1, 5 shares * 0.60) = $3.00.
@pytest.mark.parametrize(("stake", "ok"), [(2.99, False), (3.0, True), (3.01, True)])
def test_size_venue_minimum(stake: float, ok: bool) -> None:
    v = run(prop=proposal(stake_usd=stake))
    assert v.approved is ok
    assert ("size" in fired(v)) is (not ok)


@pytest.mark.parametrize(("age", "ok"), [(1.99, True), (2.0, True), (2.01, False)])
def test_freshness_price_age(age: float, ok: bool) -> None:
    snap = synthetic_snapshot(price_ts=NOW - age)
    assert ("freshness" in fired(run(snap=snap))) is (not ok)


def test_freshness_allows_the_sources_own_cadence() -> None:
    # 1-minute closes: a 61.9 s old close is as fresh as that source gets; 62.1 s is not.
    assert "freshness" not in fired(run(snap=synthetic_snapshot(price_ts=NOW - 61.9,
                                                                 price_interval_s=60.0)))
    assert "freshness" in fired(run(snap=synthetic_snapshot(price_ts=NOW - 62.1,
                                                             price_interval_s=60.0)))


@pytest.mark.parametrize(("age", "ok"), [(4.99, True), (5.0, True), (5.01, False)])
def test_freshness_book_age(age: float, ok: bool) -> None:
    snap = synthetic_snapshot(book_ts=NOW - age)
    assert ("freshness" in fired(run(snap=snap))) is (not ok)


def test_freshness_no_book_and_clock_skew() -> None:
    assert "freshness" in fired(run(snap=synthetic_snapshot(book_ts=None)))
    # Guard clock 1.01 s behind the snapshot: skew over 1 s.
    assert "freshness" in fired(run(now=NOW - 1.01))
    assert "freshness" not in fired(run(now=NOW - 0.99))


def test_window_one_entry_per_window() -> None:
    entered = LedgerView(entered_market_ids=frozenset({"btc-updown-15m-synthetic"}))
    assert "window" in fired(run(ledger=entered))
    other = LedgerView(entered_market_ids=frozenset({"btc-updown-15m-other"}))
    assert run(ledger=other).approved


@pytest.mark.parametrize(("orders", "ok"), [(23, True), (24, False), (25, False)])
def test_daily_orders(orders: int, ok: bool) -> None:
    assert ("daily_orders" in fired(run(ledger=LedgerView(orders_today=orders)))) is (not ok)


@pytest.mark.parametrize(("pnl", "ok"), [(-249.99, True), (-250.0, False), (-250.01, False)])
def test_daily_loss_limit(pnl: float, ok: bool) -> None:
    assert ("daily_loss" in fired(run(ledger=LedgerView(realized_pnl_today=pnl)))) is (not ok)


@pytest.mark.parametrize(
    ("losses", "since_loss", "ok"),
    [(3, 10.0, True), (4, 10.0, False), (4, 3599.9, False), (4, 3600.0, True), (5, 3600.1, True)],
)
def test_consecutive_loss_cooldown(losses: int, since_loss: float, ok: bool) -> None:
    ledger = LedgerView(consecutive_losses=losses, last_loss_ts=NOW - since_loss)
    assert ("cooldown" in fired(run(ledger=ledger))) is (not ok)


@pytest.mark.parametrize(("since_open", "ok"), [(29.99, False), (30.0, True), (30.01, True)])
def test_timing_no_entry_during_warm_up(since_open: float, ok: bool) -> None:
    t = 1_000_000.0 + since_open
    snap = synthetic_snapshot(as_of=t, price_ts=t, book_ts=t)
    assert ("timing" in fired(run(snap=snap, now=t))) is (not ok)


@pytest.mark.parametrize(("to_close", "ok"), [(59.99, False), (60.0, True), (60.01, True)])
def test_timing_no_entry_in_last_minute(to_close: float, ok: bool) -> None:
    t = 1_000_900.0 - to_close
    snap = synthetic_snapshot(as_of=t, price_ts=t, book_ts=t)
    assert ("timing" in fired(run(snap=snap, now=t))) is (not ok)


def test_kill_switch() -> None:
    v = run(kill=True)
    assert not v.approved
    assert "kill_switch" in fired(v)


def test_mode_live_needs_confirmation() -> None:
    assert "mode" in fired(run(limits=GuardLimits(mode="live")))
    assert "mode" not in fired(run(limits=GuardLimits(mode="live", live_confirmed=True)))


def test_reference_rules() -> None:
    assert "reference" in fired(run(snap=synthetic_snapshot(price_to_beat=None)))
    unverified = synthetic_snapshot(price_to_beat_verified=False)
    assert "reference" in fired(run(snap=unverified))
    relaxed = GuardLimits(require_verified_price_to_beat=False)
    assert "reference" not in fired(run(snap=unverified, limits=relaxed))
    # Live never trades on an unverified reference, whatever the setting says.
    live = GuardLimits(mode="live", live_confirmed=True, require_verified_price_to_beat=False)
    assert "reference" in fired(run(snap=unverified, limits=live))


# price 100,010: reference 99,513 is a 0.4994% gap (allowed), 99,512 is 0.5004% (refused).
@pytest.mark.parametrize(("reference", "ok"), [(99_513.0, True), (99_512.0, False)])
def test_reference_gap(reference: float, ok: bool) -> None:
    snap = synthetic_snapshot(reference_price=reference, reference_ts=NOW)
    assert ("reference" in fired(run(snap=snap))) is (not ok)


@pytest.mark.parametrize(("asked", "expected"), [(0.61, 0.61), (0.62, 0.62), (0.70, 0.62)])
def test_worst_price_capped_at_ask_plus_slippage(asked: float, expected: float) -> None:
    v = run(prop=proposal(worst_price=asked))
    assert v.worst_price == pytest.approx(expected)


def test_worst_price_below_ask_rejects() -> None:
    assert "worst_price" in fired(run(prop=proposal(worst_price=0.59)))


def test_every_failing_rule_is_listed() -> None:
    v = run(prop=proposal(confidence=10), kill=True, ledger=LedgerView(orders_today=99))
    assert {"confidence", "kill_switch", "daily_orders"} <= fired(v)


def test_guard_module_is_pure_python() -> None:
    tree = ast.parse(Path("core/guard.py").read_text())
    imported = {
        (n.module or "") if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [n])  # type: ignore[attr-defined]
    }
    assert not any(m.startswith(("langchain", "langgraph", "openai")) for m in imported)
