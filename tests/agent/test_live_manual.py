"""The manual order's guard: only the forecast rules can be waived, every money-safety rule
still applies, and the placeholder BTC price of a manual snapshot changes nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from agent.manual_order import MANUAL_SOURCE, NO_BTC_PRICE, current_window_slug
from core import guard
from core.records import LedgerView, TradeProposal
from core.snapshot import MarketSnapshot

NOW = 1_000_300.0
LIMITS = guard.GuardLimits()


def manual_snapshot(make: Callable[..., MarketSnapshot], **kw: object) -> MarketSnapshot:
    base: dict[str, object] = {"price_to_beat": None, "price_to_beat_verified": False,
                               "price": NO_BTC_PRICE, "price_ts": NOW,
                               "price_source": MANUAL_SOURCE, "as_of": NOW}
    base.update(kw)
    return make(**base)


def proposal(stake: float = 10.0) -> TradeProposal:
    return TradeProposal(side="up", stake_usd=stake, confidence=100, fair_p=0.60, ask=0.60,
                         worst_price=0.62)


def verdict(snap: MarketSnapshot, *, kill: bool = False, ledger: LedgerView | None = None,
            stake: float = 10.0, waived: frozenset[str] = guard.MANUAL_WAIVABLE
            ) -> guard.Verdict:
    return guard.evaluate(proposal(stake), snap, None, LIMITS, ledger or LedgerView(), NOW,
                          kill_switch_engaged=kill, waived=waived)


def test_only_forecast_rules_can_be_waived(make_snapshot: Callable[..., MarketSnapshot]
                                           ) -> None:
    snap = manual_snapshot(make_snapshot)
    for rule in ("kill_switch", "mode", "size", "daily_loss", "window", "freshness"):
        with pytest.raises(ValueError, match="never be waived"):
            verdict(snap, waived=frozenset({rule}))
    # Without waivers a manual order (no forecast) is refused by exactly the forecast rules.
    full = verdict(snap, waived=frozenset())
    assert {h.rule for h in full.rules_fired} == {"economics", "reference"}
    assert verdict(snap).approved


@pytest.mark.parametrize(("case", "rule"), [
    ("kill", "kill_switch"), ("stale_book", "freshness"), ("window", "window"),
    ("orders", "daily_orders"), ("loss", "daily_loss"), ("last_minute", "timing"),
    ("tiny", "size"),
])
def test_money_rules_still_refuse_a_manual_order(make_snapshot: Callable[..., MarketSnapshot],
                                                 case: str, rule: str) -> None:
    snap = manual_snapshot(make_snapshot)
    ledger = LedgerView()
    kill, stake = False, 10.0
    if case == "kill":
        kill = True
    elif case == "stale_book":
        snap = manual_snapshot(make_snapshot, book_ts=NOW - 60.0)
    elif case == "window":
        ledger = LedgerView(entered_market_ids=frozenset({snap.market_id}))
    elif case == "orders":
        ledger = LedgerView(orders_today=LIMITS.max_orders_per_day)
    elif case == "loss":
        ledger = LedgerView(realized_pnl_today=-LIMITS.daily_loss_limit_usd)
    elif case == "last_minute":
        snap = manual_snapshot(make_snapshot, window_start=NOW - 870.0, window_end=NOW + 30.0)
    else:
        stake = 2.0
    v = verdict(snap, kill=kill, ledger=ledger, stake=stake)
    assert not v.approved
    assert rule in {h.rule for h in v.rules_fired}


def test_size_is_still_capped(make_snapshot: Callable[..., MarketSnapshot]) -> None:
    v = verdict(manual_snapshot(make_snapshot), stake=5_000.0)
    assert v.approved
    assert v.stake_usd == LIMITS.max_position_usd


def test_the_placeholder_price_is_read_by_no_rule_that_applies(
        make_snapshot: Callable[..., MarketSnapshot]) -> None:
    # (Its timestamp is the decision time, so the BTC price-age check has nothing to judge:
    # a manual order reads no BTC price.  The book's age is judged as always.)
    verdicts = {verdict(manual_snapshot(make_snapshot, price=p))
                for p in (NO_BTC_PRICE, 0.01, 50_000.0, 123_456.0, 10**9)}
    assert len(verdicts) == 1


def test_current_window_slug() -> None:
    assert current_window_slug(1_766_745_899.0) == "btc-updown-15m-1766745000"
    assert current_window_slug(1_766_745_900.0) == "btc-updown-15m-1766745900"
