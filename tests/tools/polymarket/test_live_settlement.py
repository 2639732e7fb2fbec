"""Settlement from the venue's verdict only: Gamma closed with clean prices, or a
``market_resolved`` event; never from a half-resolved market; P&L recorded by hand-checked
numbers (synthetic markets)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from core.fees import FeeSchedule
from core.records import ExecutionReport
from tools.journal import Journal
from tools.polymarket.http import VenueUnavailable
from tools.polymarket.settlement import outcome_from_market_resolved, settle_resolved
from tools.polymarket.wire import MarketInfo

ACCOUNT = "live:0xabc"
END = 1_790_000_900.0


def market(slug: str, *, closed: bool, up: str, down: str) -> MarketInfo:
    return MarketInfo(slug=slug, condition_id=f"0x{slug}", up_token_id=f"{slug}-up",
                      down_token_id=f"{slug}-down", tick_size=Decimal("0.01"),
                      min_order_shares=Decimal(5), neg_risk=False, accepting_orders=not closed,
                      closed=closed, fee_schedule=FeeSchedule(), window_start=END - 900,
                      window_end=END, up_price=Decimal(up), down_price=Decimal(down))


def filled_position(jr: Journal, run_id: str, n: int, market_id: str) -> None:
    oid = f"o{n}"
    jr.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id=f"d{n}", order_id=oid,
                           market_id=market_id, side="up", stake_usd=10.0, worst_price=0.57,
                           created_ts=END - 600)
    jr.record_execution(ExecutionReport(
        status="filled", broker="polymarket-clob", order_id=oid, market_id=market_id,
        side="up", stake_usd=10.0, worst_price=0.57, shares=18.18, avg_price=0.55,
        notional_usd=9.999, fee_usd=0.314968), ts=END - 599)


def test_only_cleanly_resolved_windows_settle(tmp_path: Path) -> None:
    venue = {"won": market("won", closed=True, up="1", down="0"),
             "lost": market("lost", closed=True, up="0", down="1"),
             "open": market("open", closed=False, up="0.6", down="0.4"),
             "void": market("void", closed=True, up="0.5", down="0.5")}

    def market_of(market_id: str) -> MarketInfo:
        if market_id == "down":
            raise VenueUnavailable("gamma unreachable")
        return venue[market_id]

    with Journal(tmp_path / "j.db") as jr:
        run_id = jr.start_run(account=ACCOUNT, mode="live", dataset=None, config={},
                              started_ts=END - 900)
        for n, m in enumerate(["won", "lost", "open", "void", "down"]):
            filled_position(jr, run_id, n, m)
        settled = settle_resolved(jr, market_of, account=ACCOUNT, now=END + 120)
        by_market = {p.market_id: p for p in settled}
        assert set(by_market) == {"won", "lost"}
        # 18.18 shares bought for 9.999 + 0.314968 fee.
        assert by_market["won"].pnl_usd == pytest.approx(18.18 - 9.999 - 0.314968)
        assert by_market["lost"].pnl_usd == pytest.approx(-9.999 - 0.314968)
        assert all(p.outcome_verified for p in settled)
        assert all(p.settled_ts == END for p in settled)  # the window's end, not the lookup
        assert set(jr.unsettled_markets(account=ACCOUNT)) == {"open", "void", "down"}
        # Idempotent.
        assert settle_resolved(jr, market_of, account=ACCOUNT, now=END + 240) == []


def test_market_resolved_event_names_the_winner() -> None:
    m = market("ev", closed=False, up="0.6", down="0.4")
    event = {"event_type": "market_resolved", "market": "0xev", "winning_asset_id": "ev-down"}
    assert outcome_from_market_resolved(event, m) == "down"
    assert outcome_from_market_resolved({**event, "market": "0xother"}, m) is None
    assert outcome_from_market_resolved({"event_type": "market_resolved", "market": "0xev",
                                         "winning_outcome": "Up"}, m) == "up"
    assert outcome_from_market_resolved({"event_type": "book", "market": "0xev"}, m) is None
