"""Maker execution policy: where a resting buy is priced, when it moves, when to exit.

Pure code, like ``core.policy``: price and size of a resting order come from here and from the
risk manager's stake, never from a model (a model may only veto a side or shrink the stake).

* ``quote_price``: a post-only bid for one side at or below fair value minus a margin, never
  crossing the book (at most best ask - one tick), on the venue's tick grid.
* ``needs_replace``: the resting price is stale when fair value or the book moved past a
  threshold (a new quote differs from the resting one by more than the threshold).
* ``exit_signal``: sell held shares at the bid before expiry when the bid net of the taker fee
  beats fair value by a margin (take profit) or fair value falls below it (stop).
* ``taker_fallback``: maker_then_taker takes near the deadline only if the edge after fees at
  the ask still clears ``min_edge``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from core.records import FairValueEstimate, Side
from core.snapshot import MarketSnapshot

if TYPE_CHECKING:
    from core.settings import Settings

ExecutionStyle = Literal["taker", "maker", "maker_then_taker"]
EXECUTION_STYLES: tuple[ExecutionStyle, ...] = ("taker", "maker", "maker_then_taker")
ExitReason = Literal["take_profit", "stop"]

# The fitted parameter file (``updown fit maker``, ``evals.maker_fit``); see
# data/models/PROVENANCE.md.
MAKER_PARAMS_PATH = Path(__file__).resolve().parents[1] / "data" / "models" / "maker_v1.json"
# Lowest and highest prices the venue's grid allows for a resting bid.
_MIN_PRICE = 0.01
_MAX_PRICE = 0.99


@dataclass(frozen=True, slots=True)
class MakerParams:
    """Every knob of maker execution; defaults are overridden by the fitted file."""

    # Bid at most fair value minus this (probability points).
    margin: float = 0.02
    # Replace the resting order when the new quote differs from it by more than this.
    replace_threshold: float = 0.02
    # At least this many seconds between two replaces of one window's order (rate limit).
    min_replace_interval_s: float = 5.0
    # At most this many replaces per window.
    max_replaces_per_window: int = 10
    # Cancel every resting order of a window this many seconds before its close.
    cancel_last_s: float = 60.0
    # Fraction of the displayed ask size assumed to trade against our bid level when the ask
    # touches our price (paper fill rule; the queue ahead of us is served first).
    queue_fill_fraction: float = 0.2
    # Share of the taker fee returned to makers (rebate program, venue.md: about 20%).
    rebate_share: float = 0.2
    # maker_then_taker: take (cancel the rest, cross) this many seconds before the cut-off.
    taker_deadline_s: float = 120.0
    # Exits (off by default): sell held shares before expiry.
    exits_enabled: bool = False
    take_profit_margin: float = 0.03
    stop_margin: float = 0.0
    version: str = "defaults"

    @classmethod
    def load(cls, path: Path = MAKER_PARAMS_PATH) -> MakerParams:
        """The fitted parameters; a missing file gives the defaults (said by ``version``)."""
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.get("params", {}).items() if k in known}
        return cls(**values, version=str(data.get("version", path.stem)))

    def with_overrides(self, **overrides: float | int | bool | None) -> MakerParams:
        """Settings that are set (not None) win over the fitted values."""
        chosen: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **chosen)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def floor_to_tick(price: float, tick: float) -> float:
    # The epsilon absorbs binary noise such as 0.52 / 0.01 = 51.99999.
    return round(math.floor(price / tick + 1e-9) * tick, 6)


def quote_price(fair: FairValueEstimate, snapshot: MarketSnapshot, side: Side,
                params: MakerParams) -> float | None:
    """The post-only bid for ``side``: min(fair - margin, best ask - tick) on the tick grid.

    None when there is no ask to stay below or the price would leave the venue's grid."""
    book = snapshot.book_for(side)
    if book is None or book.ask is None or book.ask <= 0.0:
        return None
    tick = snapshot.tick_size
    price = min(floor_to_tick(fair.fair_for(side) - params.margin, tick),
                floor_to_tick(book.ask - tick, tick))
    if price < _MIN_PRICE - 1e-12:
        return None
    return min(price, _MAX_PRICE)


def maker_side(fair: FairValueEstimate, snapshot: MarketSnapshot, params: MakerParams,
               min_edge: float) -> tuple[Side, float] | None:
    """The side whose quote leaves the larger edge (fair - price, makers pay no fee) of at
    least ``min_edge``, with its price; None when neither does."""
    best: tuple[float, Side, float] | None = None
    for side in ("up", "down"):
        price = quote_price(fair, snapshot, side, params)  # type: ignore[arg-type]
        if price is None:
            continue
        edge = fair.fair_for(side) - price  # type: ignore[arg-type]
        if edge >= min_edge - 1e-12 and (best is None or edge > best[0]):
            best = (edge, side, price)  # type: ignore[assignment]
    return None if best is None else (best[1], best[2])


def needs_replace(resting_price: float, new_price: float | None, params: MakerParams) -> bool:
    """The quote moved past the threshold (or vanished): the resting order is stale."""
    return new_price is None or abs(new_price - resting_price) > params.replace_threshold + 1e-12


def exit_signal(fair: FairValueEstimate, snapshot: MarketSnapshot, side: Side,
                entry_price: float, params: MakerParams) -> ExitReason | None:
    """Sell held ``side`` shares at the bid? Net of the taker fee a sale would pay: a take
    profit when that is above the entry price and beats fair value by the margin, a stop when
    it is at or below the entry price and fair value has fallen below it."""
    if not params.exits_enabled:
        return None
    book = snapshot.book_for(side)
    if book is None or book.bid is None or book.bid <= 0.0:
        return None
    net = book.bid - snapshot.fee_schedule.per_share(book.bid)
    fair_p = fair.fair_for(side)
    if net > entry_price and net - fair_p >= params.take_profit_margin - 1e-12:
        return "take_profit"
    if net <= entry_price and fair_p < net - params.stop_margin - 1e-12:
        return "stop"
    return None


def taker_fallback(fair: FairValueEstimate, snapshot: MarketSnapshot, side: Side,
                   min_edge: float) -> bool:
    """Near the deadline: does buying at the ask still clear ``min_edge`` after fees?"""
    book = snapshot.book_for(side)
    if book is None or book.ask is None or book.ask <= 0.0:
        return False
    edge = fair.fair_for(side) - snapshot.fee_schedule.all_in_cost(book.ask)
    return edge >= min_edge - 1e-12


def maker_params(settings: Settings, path: Path = MAKER_PARAMS_PATH) -> MakerParams:
    """The fitted parameters with any MAKER_* / EXIT_* setting that is set taking precedence."""
    return MakerParams.load(path).with_overrides(
        margin=settings.maker_margin, replace_threshold=settings.maker_replace_threshold,
        min_replace_interval_s=settings.maker_min_replace_interval_s,
        max_replaces_per_window=settings.maker_max_replaces_per_window,
        cancel_last_s=settings.maker_cancel_last_s,
        queue_fill_fraction=settings.maker_queue_fill_fraction,
        rebate_share=settings.maker_rebate_share,
        taker_deadline_s=settings.maker_taker_deadline_s,
        exits_enabled=settings.exits_enabled,
        take_profit_margin=settings.exit_take_profit_margin,
        stop_margin=settings.exit_stop_margin)
