"""The 95% band around the equity curve: a by-window bootstrap at every settled window.

The headline interval (``trading.pnl_ci95``) resamples the dataset's *windows* with
replacement and sums their P&L (``evals.metrics.bootstrap_ci``).  The band applies the same
procedure to each prefix of the settled windows: at the k-th settled window (settlement order)
it is the 2.5th..97.5th percentile of the total of k windows drawn with replacement from the
first k, with the same resample count and seed.  So the band's last point *is* the headline
interval, and its width shows how much the curve so far could be luck.  Windows without a
trade count as 0, exactly as in the headline interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from evals import metrics

# Beyond this many settled windows the band is computed at this many evenly spaced windows
# (always including the last): each point costs resamples x k draws.
MAX_BAND_POINTS = 120


@dataclass(frozen=True, slots=True)
class WindowPnl:
    """One settled window: when it settled and its P&L (0 without a trade)."""

    market_id: str
    settled_ts: float
    pnl_usd: float


def band_points(n: int, max_points: int = MAX_BAND_POINTS) -> list[int]:
    """The prefix lengths k (1..n) at which the band is computed."""
    if n <= max_points:
        return list(range(1, n + 1))
    return sorted({round(float(x)) for x in np.linspace(1, n, max_points)})


def equity_band(windows: Sequence[WindowPnl], *, seed: int,
                resamples: int = metrics.BOOTSTRAP_RESAMPLES) -> list[dict[str, object]]:
    """Per computed window: its id, settlement time, the cumulative P&L and the 95% band."""
    values = [w.pnl_usd for w in windows]
    cumulative = np.cumsum(values) if values else np.zeros(0)
    out: list[dict[str, object]] = []
    for k in band_points(len(windows)):
        lo, hi = metrics.bootstrap_ci(values[:k], seed=seed, resamples=resamples)
        w = windows[k - 1]
        out.append({"windows": k, "market_id": w.market_id, "settled_ts": w.settled_ts,
                    "cum_pnl_usd": round(float(cumulative[k - 1]), 6),
                    "ci95": [round(lo, 6), round(hi, 6)]})
    return out
