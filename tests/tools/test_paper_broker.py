"""PaperBroker fill rules: worst price, FOK/FAK against top-of-book depth, size, fees."""

from __future__ import annotations

import pytest

from core.records import ExecutionReport
from core.snapshot import BookTop, Candles, MarketSnapshot
from tools.broker import Broker
from tools.paper_broker import PaperBroker

T0 = 1_780_000_200.0


def snap(
    *,
    up_ask: float | None = 0.50,
    up_size: float | None = 1000.0,
    down_ask: float | None = 0.52,
    down_size: float | None = 1000.0,
    fee_rate: float = 0.07,
    min_shares: float = 5.0,
    up: bool = True,
) -> MarketSnapshot:
    return MarketSnapshot(
        market_id="btc-updown-15m-1780000200",
        as_of=T0 + 100,
        window_start=T0,
        window_end=T0 + 900,
        price_to_beat=100_000.0,
        price_to_beat_verified=True,
        price=100_010.0,
        price_ts=T0 + 99.5,
        candles=Candles(interval_s=60),
        up=BookTop(bid=None if up_ask is None else max(up_ask - 0.01, 0.0), ask=up_ask,
                   ask_size=up_size) if up else None,
        down=BookTop(ask=down_ask, ask_size=down_size),
        book_ts=T0 + 99.0,
        fee_rate=fee_rate,
        min_order_shares=min_shares,
    )


def buy(broker: PaperBroker, s: MarketSnapshot, *, order_id: str = "o1", side: str = "up",
        stake: float = 10.0, worst: float = 0.52) -> ExecutionReport:
    return broker.place_market_buy(order_id=order_id, snapshot=s, side=side,  # type: ignore[arg-type]
                                   stake_usd=stake, worst_price=worst)


def test_satisfies_broker_protocol() -> None:
    b: Broker = PaperBroker()
    assert b.name == "paper"


def test_fee_by_hand_ten_dollars_at_half() -> None:
    # $10 at 0.50: 20 shares, notional 10.00, fee 20 * 0.07 * 0.5 * 0.5 = 0.35.
    r = buy(PaperBroker(), snap(), stake=10.0, worst=0.50)
    assert r.status == "filled"
    assert r.shares == 20.0
    assert r.avg_price == 0.50
    assert r.notional_usd == pytest.approx(10.0)
    assert r.fee_usd == pytest.approx(0.35)
    assert r.broker == "paper"
    assert r.reason is None


def test_fee_uses_snapshot_schedule() -> None:
    # $7.77 at 0.37 -> 21 shares (7.77/0.37 = 21.0), fee 21 * 0.05 * 0.37 * 0.63.
    r = buy(PaperBroker(), snap(up_ask=0.37, fee_rate=0.05), stake=7.77, worst=0.40)
    assert r.shares == 21.0
    assert r.notional_usd == pytest.approx(7.77)
    assert r.fee_usd == pytest.approx(21 * 0.05 * 0.37 * 0.63, abs=1e-6)


def test_stake_rounded_down_to_cents_and_shares_to_two_decimals() -> None:
    # 10.009 -> $10.00; 10.00 / 0.33 = 30.303... -> 30.30 shares.
    r = buy(PaperBroker(), snap(up_ask=0.33), stake=10.009, worst=0.33)
    assert r.stake_usd == 10.00
    assert r.shares == 30.30
    assert r.notional_usd == pytest.approx(30.30 * 0.33)
    # 0.29 is 0.28999... in binary; rounding down must still keep the cent.
    r2 = buy(PaperBroker(), snap(up_ask=0.05), order_id="o2", stake=0.29, worst=0.05)
    assert r2.stake_usd == 0.29
    assert r2.shares == 5.8


def test_ask_equal_to_worst_price_fills() -> None:
    assert buy(PaperBroker(), snap(up_ask=0.52), worst=0.52).status == "filled"


def test_worst_price_from_float_arithmetic_still_fills_at_that_tick() -> None:
    worst = 0.7 - 0.02  # 0.6799999999999999 in binary
    assert worst < 0.68
    assert buy(PaperBroker(), snap(up_ask=0.68), worst=worst).status == "filled"


def test_ask_just_above_worst_price_is_killed() -> None:
    b = PaperBroker()
    r = buy(b, snap(up_ask=0.53), worst=0.52)
    assert r.status == "killed"
    assert "worst price" in (r.reason or "")
    assert r.shares == 0.0
    assert r.fee_usd == 0.0
    assert r.avg_price is None
    r2 = buy(b, snap(up_ask=0.521), order_id="o2", worst=0.52)
    assert r2.status == "killed"
    assert b.fills == []


@pytest.mark.parametrize("book", ["missing side", "no ask"])
def test_no_ask_is_killed(book: str) -> None:
    s = snap(up=False) if book == "missing side" else snap(up_ask=None)
    r = buy(PaperBroker(), s)
    assert r.status == "killed"
    assert r.reason == "no ask"


@pytest.mark.parametrize("mode", ["FOK", "FAK"])
def test_depth_unknown_is_killed(mode: str) -> None:
    r = buy(PaperBroker(mode), snap(up_size=None))  # type: ignore[arg-type]
    assert r.status == "killed"
    assert r.reason == "depth unknown"


@pytest.mark.parametrize(("depth", "status"), [(20.0, "filled"), (25.0, "filled"),
                                               (19.99, "killed")])
def test_fok_at_above_below_depth(depth: float, status: str) -> None:
    b = PaperBroker("FOK")
    r = buy(b, snap(up_size=depth), stake=10.0, worst=0.50)  # wants 20 shares
    assert r.status == status
    if status == "filled":
        assert r.shares == 20.0
        assert len(b.fills) == 1
    else:
        assert r.reason == "FOK not fully filled"
        assert b.fills == []


@pytest.mark.parametrize(("depth", "shares"), [(25.0, 20.0), (20.0, 20.0), (12.345, 12.34)])
def test_fak_fills_what_the_top_level_offers(depth: float, shares: float) -> None:
    r = buy(PaperBroker("FAK"), snap(up_size=depth), stake=10.0, worst=0.50)
    assert r.status == "filled"
    assert r.shares == shares
    assert r.notional_usd == pytest.approx(shares * 0.50)
    assert r.fee_usd == pytest.approx(shares * 0.07 * 0.25, abs=1e-6)
    assert r.stake_usd == 10.0
    if shares < 20.0:
        assert "partial" in (r.reason or "")


def test_fak_partial_fill_below_minimum_is_killed() -> None:
    b = PaperBroker("FAK")
    r = buy(b, snap(up_size=4.99), stake=10.0, worst=0.50)
    assert r.status == "killed"
    assert "below minimum" in (r.reason or "")
    assert b.fills == []


def test_order_below_minimum_size_is_killed() -> None:
    # $2.49 at 0.50 = 4.98 shares < 5; $2.50 = 5 shares exactly is allowed.
    b = PaperBroker()
    r = buy(b, snap(), stake=2.49, worst=0.50)
    assert r.status == "killed"
    assert "below minimum" in (r.reason or "")
    assert buy(b, snap(), order_id="o2", stake=2.50, worst=0.50).shares == 5.0


def test_minimum_comes_from_snapshot() -> None:
    r = buy(PaperBroker(), snap(min_shares=25.0), stake=10.0, worst=0.50)
    assert r.status == "killed"


def test_down_side_uses_down_book() -> None:
    r = buy(PaperBroker(), snap(down_ask=0.40), side="down", stake=4.0, worst=0.41)
    assert r.status == "filled"
    assert r.side == "down"
    assert r.shares == 10.0
    assert r.avg_price == 0.40


@pytest.mark.parametrize(("stake", "worst"), [(float("nan"), 0.5), (-1.0, 0.5),
                                               (10.0, float("inf")), (10.0, 1.5), (10.0, 0.0)])
def test_malformed_orders_are_error_reports_not_exceptions(stake: float, worst: float) -> None:
    b = PaperBroker()
    r = buy(b, snap(), stake=stake, worst=worst)
    assert r.status == "error"
    assert b.fills == []


def test_sub_cent_stake_is_killed() -> None:
    assert buy(PaperBroker(), snap(), stake=0.009, worst=0.5).status == "killed"


def test_duplicate_order_id_never_fills_twice() -> None:
    b = PaperBroker()
    first = buy(b, snap())
    again = buy(b, snap())
    assert first.status == "filled"
    assert again.status == "error"
    assert again.reason == "duplicate order id"
    assert len(b.fills) == 1
    assert b.lookup("o1") == first
    assert b.lookup("nope") is None


def test_deterministic_and_ledger_is_a_copy() -> None:
    a, b = PaperBroker("FAK"), PaperBroker("FAK")
    for i, (ask, size) in enumerate([(0.5, 30.0), (0.31, 7.0), (0.6, 2.0), (0.45, None)]):
        s = snap(up_ask=ask, up_size=size)
        assert buy(a, s, order_id=f"x{i}", worst=0.7) == buy(b, s, order_id=f"x{i}", worst=0.7)
    assert a.fills == b.fills
    assert [f.order_id for f in a.fills] == ["x0", "x1"]
    a.fills.clear()
    assert len(a.fills) == 2


def test_invalid_fill_mode_rejected() -> None:
    with pytest.raises(ValueError, match="fill_mode"):
        PaperBroker("GTC")  # type: ignore[arg-type]
