"""Paper fill rules of resting orders, the maker desk's cut-off / kill switch / cancel races,
and a randomized check that exposure never passes its limit."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from core.guard import GuardLimits
from core.maker import MakerParams
from core.records import (
    AIAnalysis,
    FairValueEstimate,
    RiskAssessment,
    TraderDecision,
)
from core.snapshot import BookTop, Candles, MarketSnapshot
from tools.journal import Journal
from tools.journal.resting import RestingOrders
from tools.maker import MakerDesk
from tools.paper_broker import PaperRestingBook

START = 1_766_750_400.0
END = START + 900.0


def snap(t: float, *, up: BookTop | None = None, down: BookTop | None = None,
         market: str = "m1", fee_rate: float = 0.0) -> MarketSnapshot:
    return MarketSnapshot(
        market_id=market, as_of=t, window_start=START, window_end=END, price_to_beat=100_000.0,
        price=100_050.0, price_ts=t, candles=Candles(interval_s=60.0),
        up=up or BookTop(bid=0.48, ask=0.52, bid_size=100.0, ask_size=100.0),
        down=down or BookTop(bid=0.46, ask=0.50, bid_size=100.0, ask_size=100.0),
        book_ts=t, fee_rate=fee_rate)


def fair(up: float) -> FairValueEstimate:
    return FairValueEstimate(fair_up=up, price=100_050.0, price_to_beat=100_000.0,
                             price_to_beat_verified=False, time_to_close_s=400.0,
                             sigma_per_sqrt_s=5e-5, log_moneyness=5e-4)


def test_post_only_never_crosses() -> None:
    venue = PaperRestingBook()
    o = venue.place_limit_buy(order_id="a", snapshot=snap(START + 100), side="up", price=0.52,
                              shares=10, post_only=True, expires_at=None, now=START + 100)
    assert o.status == "rejected"
    assert "cross" in (o.reason or "")
    ok = venue.place_limit_buy(order_id="b", snapshot=snap(START + 100), side="up", price=0.51,
                               shares=10, post_only=True, expires_at=None, now=START + 100)
    assert ok.status == "resting"
    assert venue.open_orders() == [ok]


def test_trade_through_fills_at_our_price_up_to_displayed_size() -> None:
    venue = PaperRestingBook(rebate_share=0.2)
    venue.place_limit_buy(order_id="a", snapshot=snap(START + 100), side="up", price=0.50,
                          shares=30, post_only=True, expires_at=None, now=START + 100)
    # The ask stays above: nothing.
    assert venue.match(snap(START + 101), START + 101) == []
    # The ask falls strictly below our price with 12 shares shown: 12 fill at 0.50.
    through = snap(START + 102, up=BookTop(bid=0.47, ask=0.49, bid_size=50, ask_size=12),
                   fee_rate=0.07)
    (o,) = venue.match(through, START + 102)
    assert o.filled_shares == 12
    assert o.fills[0].price == 0.50
    assert o.fills[0].rule == "trade_through"
    assert o.status == "resting"
    assert o.fills[0].rebate_usd == pytest.approx(12 * 0.07 * 0.25 * 0.2, abs=1e-6)
    (o,) = venue.match(snap(START + 103, up=BookTop(bid=0.47, ask=0.48, ask_size=500)),
                       START + 103)
    assert o.filled_shares == 30
    assert o.status == "filled"


def test_touch_at_price_serves_the_queue_ahead_first() -> None:
    venue = PaperRestingBook(queue_fill_fraction=0.5)
    # We join the best bid (0.48, 40 shares ahead of us).
    joined = snap(START + 100, up=BookTop(bid=0.48, ask=0.52, bid_size=40, ask_size=100))
    venue.place_limit_buy(order_id="a", snapshot=joined, side="up", price=0.48,
                          shares=20, post_only=True, expires_at=None, now=START + 100)
    touch = snap(START + 101, up=BookTop(bid=0.47, ask=0.48, bid_size=10, ask_size=60))
    assert venue.match(touch, START + 101) == []  # 30 traded, all to the 40 ahead
    # An unchanged touch never fills again.
    assert venue.match(touch.model_copy(update={"as_of": START + 102}), START + 102) == []
    away = snap(START + 103, up=BookTop(bid=0.47, ask=0.49, bid_size=10, ask_size=60))
    assert venue.match(away, START + 103) == []
    (o,) = venue.match(touch.model_copy(update={"as_of": START + 104}), START + 104)
    # 30 more traded: 10 finish the queue, 20 reach us.
    assert o.filled_shares == 20
    assert o.fills[0].rule == "at_price"


def test_below_best_bid_fills_only_on_trade_through() -> None:
    venue = PaperRestingBook(queue_fill_fraction=1.0)
    venue.place_limit_buy(order_id="a", snapshot=snap(START + 100), side="up", price=0.45,
                          shares=10, post_only=True, expires_at=None, now=START + 100)
    touch = snap(START + 101, up=BookTop(bid=0.44, ask=0.45, bid_size=5, ask_size=500))
    assert venue.match(touch, START + 101) == []


def test_cancel_reports_fills_that_raced_it_and_expiry() -> None:
    venue = PaperRestingBook()
    venue.place_limit_buy(order_id="a", snapshot=snap(START + 100), side="up", price=0.50,
                          shares=30, post_only=True, expires_at=START + 200, now=START + 100)
    venue.match(snap(START + 101, up=BookTop(bid=0.4, ask=0.49, ask_size=7)), START + 101)
    final = venue.cancel("a", now=START + 101)
    assert final is not None
    assert final.status == "cancelled"
    assert final.filled_shares == 7
    assert venue.cancel("nope", now=START + 101) is None
    venue.place_limit_buy(order_id="b", snapshot=snap(START + 100), side="up", price=0.50,
                          shares=30, post_only=True, expires_at=START + 200, now=START + 100)
    venue.match(snap(START + 200), START + 200)
    b = venue.lookup_resting("b")
    assert b is not None
    assert (b.status, b.reason) == ("cancelled", "expired")


def test_exit_sells_at_the_bid_and_its_size_paying_the_fee() -> None:
    venue = PaperRestingBook()
    s = snap(START + 300, up=BookTop(bid=0.70, ask=0.72, bid_size=8, ask_size=50), fee_rate=0.07)
    fill = venue.place_market_sell(order_id="x", snapshot=s, side="up", shares=20,
                                   worst_price=0.70, now=START + 300)
    assert (fill.status, fill.shares, fill.price) == ("filled", 8, 0.70)
    assert fill.fee_usd == pytest.approx(8 * 0.07 * 0.21, abs=1e-6)


def _desk(tmp_path: Path, venue: PaperRestingBook, *, max_position: float = 100.0,
          params: MakerParams | None = None) -> tuple[MakerDesk, Journal]:
    journal = Journal(":memory:")
    run_id = journal.start_run(account="acct", mode="paper", dataset=None, config={})
    limits = GuardLimits(max_position_usd=max_position, min_confidence=50,
                         require_verified_price_to_beat=False)
    desk = MakerDesk(style="maker", params=params or MakerParams(margin=0.02),
                     broker=venue, limits=limits, stop_file=tmp_path / "STOP", account="acct",
                     run_id=run_id, journal=journal, exit_broker=venue)
    return desk, journal


def _trader(decision: str = "up", by: str = "policy") -> TraderDecision:
    return TraderDecision(analysis=AIAnalysis(decision=decision, confidence=80, reasoning="x",  # type: ignore[arg-type]
                                              risk_level="low"), decided_by=by)


RISK = RiskAssessment(risk_level="low", stake_usd=20.0, decided_by="policy")


def test_desk_rests_then_cancels_at_cutoff_and_journals_entry(tmp_path: Path) -> None:
    venue = PaperRestingBook()
    desk, journal = _desk(tmp_path, venue)
    t = START + 300
    v = desk.on_decision(snapshot=snap(t), fair=fair(0.62), trader=_trader(), risk=RISK,
                         decision_id="d1", now=t)
    assert v is not None
    assert v.approved
    (o,) = venue.open_orders()
    assert o.side == "up"
    assert o.price == 0.51  # min(0.62 - 0.02, ask 0.52 - tick)
    venue.match(snap(t + 1, up=BookTop(bid=0.4, ask=0.50, ask_size=10)), t + 1)
    desk.on_book(snap(t + 1, up=BookTop(bid=0.4, ask=0.50, ask_size=10)), fair(0.62), t + 1)
    desk.on_book(snap(END - 60), fair(0.62), END - 60)
    assert venue.open_orders() == []
    assert desk.verify_none_open() == []
    rows = RestingOrders(journal).rows(account="acct")
    assert rows[0].status == "cancelled"
    assert rows[0].filled_shares == 10
    (ex,) = journal.executions(account="acct")
    assert ex.shares == 10
    assert ex.avg_price == pytest.approx(0.51)


def test_llm_veto_and_kill_switch_leave_nothing_resting(tmp_path: Path) -> None:
    venue = PaperRestingBook()
    desk, _ = _desk(tmp_path, venue)
    t = START + 300
    assert desk.on_decision(snapshot=snap(t), fair=fair(0.62), trader=_trader("hold", "llm"),
                            risk=RISK, decision_id="d1", now=t) is None
    assert venue.open_orders() == []
    desk.on_decision(snapshot=snap(t), fair=fair(0.62), trader=_trader(), risk=RISK,
                     decision_id="d2", now=t)
    assert len(venue.open_orders()) == 1
    (tmp_path / "STOP").write_text("")
    desk.on_book(snap(t + 1), fair(0.62), t + 1)
    assert venue.open_orders() == []
    # With the STOP file present nothing new is sent.
    desk.on_decision(snapshot=snap(t + 30), fair=fair(0.62), trader=_trader(), risk=RISK,
                     decision_id="d3", now=t + 30)
    assert venue.open_orders() == []


def test_replace_when_fair_value_moves_and_stale_data_cancels(tmp_path: Path) -> None:
    venue = PaperRestingBook()
    desk, _ = _desk(tmp_path, venue, params=MakerParams(margin=0.05, replace_threshold=0.02,
                                                        min_replace_interval_s=0.0))
    t = START + 300
    desk.on_decision(snapshot=snap(t), fair=fair(0.56), trader=_trader(), risk=RISK,
                     decision_id="d1", now=t)
    (first,) = venue.open_orders()
    assert first.price == 0.51
    desk.on_book(snap(t + 1), fair(0.50), t + 1)  # quote 0.45: past the threshold
    (second,) = venue.open_orders()
    assert second.order_id != first.order_id
    assert second.price == 0.45
    stale = snap(t + 20).model_copy(update={"book_ts": t + 2})
    desk.on_book(stale, fair(0.50), t + 20)
    assert venue.open_orders() == []


@pytest.mark.parametrize("seed", range(40))
def test_randomized_maker_cycles_never_pass_exposure(tmp_path: Path, seed: int) -> None:
    """Random books, decisions, fair values, cancels and partial fills over many windows:
    per window, dollars filled + dollars resting never pass MAX_POSITION_SIZE, at most one
    order rests per side, and nothing rests after a window's cut-off."""
    rng = random.Random(seed)
    venue = PaperRestingBook(queue_fill_fraction=rng.choice([0.1, 0.5, 1.0]))
    cap = rng.choice([10.0, 25.0, 60.0])
    desk, _ = _desk(tmp_path, venue, max_position=cap,
                    params=MakerParams(margin=rng.choice([0.0, 0.02]), replace_threshold=0.01,
                                       min_replace_interval_s=rng.choice([0.0, 3.0])))
    for w in range(6):
        start = START + w * 900
        market = f"m{w}"
        end = start + 900

        def book(t: float, mid: float, market: str = market, start: float = start,
                 end: float = end) -> MarketSnapshot:
            a = round(min(0.97, mid + rng.choice([0.01, 0.02, 0.03])), 2)
            b = round(max(0.02, mid - rng.choice([0.01, 0.02])), 2)
            return snap(t, market=market, up=BookTop(bid=b, ask=a, bid_size=rng.uniform(0, 80),
                                                     ask_size=rng.uniform(0, 80)),
                        down=BookTop(bid=round(1 - a - 0.01, 2), ask=round(1 - b + 0.01, 2),
                                     bid_size=rng.uniform(0, 80),
                                     ask_size=rng.uniform(0, 80))).model_copy(update={
                                         "window_start": start, "window_end": end})

        mid = 0.5
        for t in range(int(start) + 31, int(end) + 1, 3):
            mid = min(0.9, max(0.1, mid + rng.uniform(-0.03, 0.03)))
            s = book(float(t), round(mid, 2))
            f = fair(min(0.95, max(0.05, mid + rng.uniform(-0.1, 0.1))))
            venue.match(s, t)
            if rng.random() < 0.05:
                for o in venue.open_orders():  # a cancel racing the fills above
                    desk._cancel(desk.windows[market], o, t, reason="race")
            desk.on_book(s, f, t)
            if t % 30 == 1:
                risk = RiskAssessment(risk_level="low", stake_usd=rng.uniform(5, 2 * cap),
                                      decided_by="policy")
                desk.on_decision(snapshot=s, fair=f, trader=_trader(), risk=risk,
                                 decision_id=f"{market}@{t}", now=t)
            wd = desk.windows.get(market)
            if wd is None:
                continue
            venue_orders = [o for o in venue.orders() if o.market_id == market]
            spent = sum(o.filled_usd + o.resting_usd for o in venue_orders)
            assert spent <= cap + 1e-6
            for side in ("up", "down"):
                assert sum(1 for o in venue.open_orders()
                           if o.market_id == market and o.side == side) <= 1
            if end - t <= desk.params.cancel_last_s:
                assert not [o for o in venue.open_orders() if o.market_id == market]
        desk.close_window(market, end)
        assert not [o for o in venue.open_orders() if o.market_id == market]
    assert desk.shutdown(START + 6 * 900) == []
    assert venue.open_orders() == []
    assert any(o.fills for o in venue.orders())  # the cycles did fill (partly or fully)
