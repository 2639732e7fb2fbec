"""The guard's rules for resting (maker) orders and the maker pricing policy."""

from __future__ import annotations

from core.guard import GuardLimits
from core.maker import MakerParams, exit_signal, maker_side, quote_price, taker_fallback
from core.records import FairValueEstimate, LedgerView, TradeProposal
from core.resting import RestingExposure, RestingVerdict
from core.resting_guard import evaluate_resting
from core.snapshot import BookTop, Candles, MarketSnapshot

START = 1_766_750_400.0
NOW = START + 300.0
LIMITS = GuardLimits(max_position_usd=50.0, min_confidence=50, max_orders_per_day=5,
                     daily_loss_limit_usd=40.0, require_verified_price_to_beat=False)
PARAMS = MakerParams(margin=0.02, max_replaces_per_window=2, min_replace_interval_s=5.0)


def snap(ask: float = 0.52, fee_rate: float = 0.0, bid: float = 0.48) -> MarketSnapshot:
    return MarketSnapshot(
        market_id="m", as_of=NOW, window_start=START, window_end=START + 900,
        price_to_beat=100_000.0, price=100_050.0, price_ts=NOW,
        candles=Candles(interval_s=60.0),
        up=BookTop(bid=bid, ask=ask, bid_size=100, ask_size=500),
        down=BookTop(bid=0.46, ask=0.50, bid_size=100, ask_size=500), book_ts=NOW,
        fee_rate=fee_rate)


def fair(up: float = 0.62) -> FairValueEstimate:
    return FairValueEstimate(fair_up=up, price=100_050.0, price_to_beat=100_000.0,
                             price_to_beat_verified=False, time_to_close_s=600.0,
                             sigma_per_sqrt_s=5e-5, log_moneyness=5e-4)


def proposal(stake: float = 20.0, ask: float = 0.52) -> TradeProposal:
    return TradeProposal(side="up", stake_usd=stake, confidence=62, fair_p=0.62, ask=ask,
                         worst_price=ask + 0.02)


def judge(price: float | None = 0.51, *, exposure: RestingExposure | None = None,
          ledger: LedgerView | None = None, now: float = NOW, kill: bool = False,
          replacing: float | None = None, stake: float = 20.0, s: MarketSnapshot | None = None,
          f: FairValueEstimate | None = None) -> RestingVerdict:
    s = s or snap()
    assert s.up is not None
    assert s.up.ask is not None
    return evaluate_resting(proposal(stake, s.up.ask), s, f or fair(), LIMITS,
                            ledger or LedgerView(), now, price=price,
                            exposure=exposure or RestingExposure(), params=PARAMS,
                            kill_switch_engaged=kill, replacing_usd=replacing)


def rejected(v: RestingVerdict) -> set[str]:
    return {h.rule for h in v.rules_fired if h.action == "reject"}


def test_approves_a_post_only_bid_below_fair_value_with_shares_from_the_stake() -> None:
    v = judge()
    assert v.approved
    assert v.price == 0.51
    assert v.shares == 39.21  # floor(20 / 0.51, 2 dp): size from the stake, never a model


def test_post_only_never_crosses_the_book() -> None:
    assert "post_only" in rejected(judge(0.52))
    assert "post_only" in rejected(judge(0.53))
    assert "post_only" in rejected(judge(None))


def test_maker_economics_at_own_price_without_fee() -> None:
    # Taker economics would refuse (0.62 - 0.52 - fee at 0.07 ~ 0.08 fine); here the maker
    # edge at 0.61 is 0.01 < min_edge 0.02.
    assert "economics" in rejected(judge(0.61, s=snap(ask=0.65)))
    assert judge(0.60, s=snap(ask=0.65)).approved


def test_one_resting_order_per_side_per_window() -> None:
    assert "resting_per_side" in rejected(judge(exposure=RestingExposure(open_up=1,
                                                                         resting_usd_up=10)))
    # A replace swaps the existing order and is allowed.
    assert judge(exposure=RestingExposure(open_up=1, resting_usd_up=10), replacing=10).approved


def test_replaces_are_rate_limited() -> None:
    too_soon = RestingExposure(open_up=1, resting_usd_up=10, replaces=1,
                               last_replace_ts=NOW - 2)
    assert "replace_rate" in rejected(judge(exposure=too_soon, replacing=10))
    too_many = RestingExposure(open_up=1, resting_usd_up=10, replaces=2,
                               last_replace_ts=NOW - 60)
    assert "replace_rate" in rejected(judge(exposure=too_many, replacing=10))


def test_resting_and_filled_dollars_count_toward_exposure() -> None:
    v = judge(stake=40.0, exposure=RestingExposure(filled_usd=30.0, resting_usd_down=5.0))
    assert v.approved
    assert v.stake_usd <= 15.0 + 1e-9  # 50 cap - 35 committed
    assert any(h.rule == "exposure" and h.action == "shrink" for h in v.rules_fired)
    full = judge(exposure=RestingExposure(filled_usd=49.0))
    assert not full.approved  # 1 dollar of room is below the venue minimum


def test_resting_dollars_count_toward_daily_loss_and_orders() -> None:
    ledger = LedgerView(realized_pnl_today=-25.0)
    assert "daily_loss" in rejected(judge(ledger=ledger,
                                          exposure=RestingExposure(resting_usd_total=10.0)))
    assert "daily_orders" in rejected(judge(ledger=LedgerView(orders_today=3),
                                            exposure=RestingExposure(pending_windows=2)))


def test_cutoff_kill_switch_and_window_rules_apply() -> None:
    assert "cutoff" in rejected(judge(now=START + 900 - 59,
                                      s=snap().model_copy(update={"as_of": START + 841,
                                                                  "price_ts": START + 841,
                                                                  "book_ts": START + 841})))
    assert "kill_switch" in rejected(judge(kill=True))
    assert "window" in rejected(judge(ledger=LedgerView(entered_market_ids=frozenset({"m"}))))


def test_quote_price_is_on_the_tick_below_fair_and_below_the_ask() -> None:
    assert quote_price(fair(0.62), snap(), "up", PARAMS) == 0.51  # capped at ask - tick
    assert quote_price(fair(0.55), snap(ask=0.60), "up", PARAMS) == 0.53
    assert maker_side(fair(0.50), snap(), PARAMS, 0.03) is None  # edge 0.02 < 0.03
    assert maker_side(fair(0.62), snap(), PARAMS, 0.02) == ("up", 0.51)


def test_taker_fallback_needs_edge_after_fees() -> None:
    assert taker_fallback(fair(0.62), snap(), "up", 0.02)
    assert not taker_fallback(fair(0.55), snap(fee_rate=0.07), "up", 0.02)


def test_exit_signals_are_off_by_default_and_net_of_fee() -> None:
    rich = snap(bid=0.80, ask=0.82, fee_rate=0.07)
    assert exit_signal(fair(0.70), rich, "up", 0.50, PARAMS) is None  # exits off
    on = MakerParams(exits_enabled=True, take_profit_margin=0.03)
    assert exit_signal(fair(0.70), rich, "up", 0.50, on) == "take_profit"
    assert exit_signal(fair(0.78), rich, "up", 0.50, on) is None  # 0.789 net - 0.78 < 0.03
    low = snap(bid=0.40, ask=0.42, fee_rate=0.07)
    assert exit_signal(fair(0.30), low, "up", 0.50, on) == "stop"
    assert exit_signal(fair(0.45), low, "up", 0.50, on) is None
