"""P(up) under point vs TWAP settlement on real 1-minute paths, minutes before the close.

For a few real 15-minute windows of a 1-minute history (``evals.forecast.load_minute_candles``)
and 1..5 minutes left, build the snapshot the agent would see at that minute's close (the
price, the last 120 closes for the volatility) and ask the versioned fair value model for
P(up) twice: with the close a point price (every window before 2026-08-07) and with the close
the 60-second TWAP (since then).  The price to beat is the price at the window start in both,
so the two columns differ only by how the close is modelled.  Reproduce with
``.venv/bin/python -m pytest -s tests/evals/test_twap_study.py``, which prints the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.snapshot import Candles, MarketSnapshot, Settlement
from evals.forecast import HISTORY, MINUTE_S, MinuteCandles
from tools.fair_value import FairValueModel, default_model, estimate_fair_value

WINDOW_S = 900
TWAP_WINDOW_S = 60.0


@dataclass(frozen=True, slots=True)
class TwapRow:
    window_start: int
    minutes_left: int
    price_to_beat: float
    price: float
    sigma_per_sqrt_s: float
    point_up: float
    twap_up: float
    outcome: str  # realised by the point close of the 1-minute path ("up"/"down")


def _snapshot(c: MinuteCandles, start: int, i_now: int, k: float,
              settlement: Settlement) -> MarketSnapshot:
    """The window at the close of candle ``i_now`` (its close time is the decision time)."""
    lo = max(0, i_now + 1 - HISTORY)
    close = tuple(float(v) for v in c.close[lo:i_now + 1])
    close_ts = tuple(float(t + MINUTE_S) for t in c.open_time[lo:i_now + 1])
    as_of = close_ts[-1]
    return MarketSnapshot(
        market_id=f"btc-updown-15m-{start}", as_of=as_of, window_start=float(start),
        window_end=float(start + WINDOW_S), price_to_beat=k, price=close[-1], price_ts=as_of,
        price_source="binance_1m", price_interval_s=float(MINUTE_S),
        candles=Candles(interval_s=float(MINUTE_S), close_ts=close_ts, open=close, high=close,
                        low=close, close=close),
        settlement=settlement, settlement_window_s=TWAP_WINDOW_S)


def twap_table(candles: MinuteCandles, starts: list[int], minutes_left: tuple[int, ...] = (
        1, 2, 3, 4, 5), model: FairValueModel | None = None) -> list[TwapRow]:
    """One row per (window, minutes left); a window whose minutes are not all present is
    skipped (the history has gaps)."""
    m = model if model is not None else default_model()
    rows: list[TwapRow] = []
    for start in starts:
        i0 = int(np.searchsorted(candles.open_time, start))
        n = WINDOW_S // MINUTE_S
        if i0 + n > len(candles) or i0 < HISTORY:
            continue
        got = candles.open_time[i0:i0 + n]
        if not np.array_equal(got, start + MINUTE_S * np.arange(n)):
            continue
        k = float(candles.open[i0])
        outcome = "up" if float(candles.close[i0 + n - 1]) >= k else "down"
        for left in minutes_left:
            i_now = i0 + n - 1 - left  # its close is `left` minutes before the end
            point = estimate_fair_value(_snapshot(candles, start, i_now, k, "point"), model=m)
            twap = estimate_fair_value(_snapshot(candles, start, i_now, k, "twap"), model=m)
            if point is None or twap is None or point.model_up is None \
                    or twap.model_up is None:
                raise ValueError(f"window {start}: no fair value (price to beat {k})")
            rows.append(TwapRow(start, left, k, point.price, point.sigma_per_sqrt_s,
                                point.model_up, twap.model_up, outcome))
    return rows


def format_table(rows: list[TwapRow]) -> str:
    """A markdown table of the rows."""
    from time import gmtime, strftime

    lines = ["| window start (UTC) | min left | K | price | sigma/sqrt(s) | P(up) point | "
             "P(up) TWAP | outcome |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for r in rows:
        lines.append(
            f"| {strftime('%Y-%m-%d %H:%M', gmtime(r.window_start))} | {r.minutes_left} | "
            f"{r.price_to_beat:.2f} | {r.price:.2f} | {r.sigma_per_sqrt_s:.2e} | "
            f"{r.point_up:.3f} | {r.twap_up:.3f} | {r.outcome} |")
    return "\n".join(lines)
