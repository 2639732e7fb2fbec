"""Pure metric functions of the offline eval: forecasts, trading, latency.

Everything here is a plain function of arrays so each number can be checked by hand.
Conventions (also stated in the report):

* ``p`` is a forecast probability that the window resolves Up, ``y`` the outcome (1 Up, 0 Down).
* **Brier** = mean((p - y)^2), on the forecasts as given (no clipping).
* **Log loss** = -mean(y ln p + (1 - y) ln(1 - p)) with p clipped to [0.001, 0.999] first: the
  bounds ``tools.fair_value`` itself puts on a probability before expiry, so one certain and
  wrong forecast (a market mid of 0.0005, an LLM confident at 100) costs at most
  -ln(0.001) = 6.9 instead of infinity, and every forecaster is clipped alike.
* **ECE** (expected calibration error) uses 10 equal-width bins on [0, 1] (bin i holds
  i/10 <= p < (i+1)/10; p = 1 falls in the last bin): sum over bins of
  (n_bin / n) * |mean p in bin - frequency of Up in bin|.  The reliability curve is the same
  bins' (mean p, frequency of Up, n).
* **Max drawdown** is on the equity curve of settled P&L: cumulative P&L in settlement order,
  starting from 0; the largest fall from a running peak (a positive number of dollars).
* **Bootstrap 95% interval** of total P&L resamples *windows* with replacement (all decisions
  and the trade of a window move together, so within-window dependence is kept), 10,000
  resamples with a fixed seed, percentile method (2.5th and 97.5th percentiles).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

LOG_LOSS_CLIP = 0.001
ECE_BINS = 10
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20251226


def _pair(p: ArrayLike, y: ArrayLike) -> tuple[FloatArray, FloatArray]:
    pa = np.asarray(p, dtype=np.float64).ravel()
    ya = np.asarray(y, dtype=np.float64).ravel()
    if pa.shape != ya.shape:
        raise ValueError(f"{pa.shape[0]} forecasts but {ya.shape[0]} outcomes")
    if pa.size and not (np.all(np.isfinite(pa)) and pa.min() >= 0.0 and pa.max() <= 1.0):
        raise ValueError("forecasts must be finite probabilities in [0, 1]")
    if ya.size and not np.all((ya == 0.0) | (ya == 1.0)):
        raise ValueError("outcomes must be 0 or 1")
    return pa, ya


def brier(p: ArrayLike, y: ArrayLike) -> float:
    """Mean squared error of the forecast against the 0/1 outcome (NaN when empty)."""
    pa, ya = _pair(p, y)
    if not pa.size:
        return math.nan
    return float(np.mean((pa - ya) ** 2))


def log_loss(p: ArrayLike, y: ArrayLike, clip: float = LOG_LOSS_CLIP) -> float:
    """Mean negative log-likelihood, p clipped to [clip, 1 - clip] (NaN when empty)."""
    pa, ya = _pair(p, y)
    if not pa.size:
        return math.nan
    pc = np.clip(pa, clip, 1.0 - clip)
    return float(-np.mean(ya * np.log(pc) + (1.0 - ya) * np.log(1.0 - pc)))


def _bin_index(p: FloatArray, bins: int) -> NDArray[np.intp]:
    # floor(p * bins), with p = 1 put in the last bin rather than a bin of its own.
    return np.minimum((p * bins).astype(np.intp), bins - 1)


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    lower: float
    upper: float
    n: int
    mean_p: float
    frequency: float


def reliability_curve(p: ArrayLike, y: ArrayLike, bins: int = ECE_BINS
                      ) -> list[ReliabilityBin]:
    """Equal-width bins with at least one forecast: (mean forecast, observed Up frequency)."""
    pa, ya = _pair(p, y)
    idx = _bin_index(pa, bins)
    n = np.bincount(idx, minlength=bins)
    sum_p = np.bincount(idx, weights=pa, minlength=bins)
    sum_y = np.bincount(idx, weights=ya, minlength=bins)
    return [
        ReliabilityBin(lower=i / bins, upper=(i + 1) / bins, n=int(n[i]),
                       mean_p=float(sum_p[i] / n[i]), frequency=float(sum_y[i] / n[i]))
        for i in range(bins) if n[i]
    ]


def ece(p: ArrayLike, y: ArrayLike, bins: int = ECE_BINS) -> float:
    """Expected calibration error over equal-width bins (NaN when empty)."""
    pa, ya = _pair(p, y)
    if not pa.size:
        return math.nan
    total = pa.size
    return float(sum(b.n / total * abs(b.mean_p - b.frequency)
                     for b in reliability_curve(pa, ya, bins)))


def forecast_scores(p: ArrayLike, y: ArrayLike) -> dict[str, float | int]:
    """The JSON block of one forecaster: brier, log_loss, ece, n."""
    pa, ya = _pair(p, y)
    return {"brier": brier(pa, ya), "log_loss": log_loss(pa, ya), "ece": ece(pa, ya),
            "n": int(pa.size)}


def auc(p: ArrayLike, y: ArrayLike) -> float:
    """Area under the ROC curve (rank form; ties count one half); NaN without both classes."""
    pa, ya = _pair(p, y)
    pos = int(ya.sum())
    neg = int(ya.size - pos)
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(pa, kind="mergesort")
    ranks = np.empty(pa.size, dtype=np.float64)
    sorted_p = pa[order]
    # Average ranks over ties (1-based).
    starts = np.flatnonzero(np.concatenate(([True], sorted_p[1:] != sorted_p[:-1])))
    ends = np.concatenate((starts[1:], [pa.size]))
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[ya == 1.0].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


# --- trading ----------------------------------------------------------------------------


def equity_curve(pnl: ArrayLike) -> FloatArray:
    """Cumulative P&L after each settled position (without the starting 0)."""
    return np.cumsum(np.asarray(pnl, dtype=np.float64))


def max_drawdown(pnl: ArrayLike) -> float:
    """Largest fall of cumulative P&L from its running peak; the curve starts at 0."""
    equity = np.concatenate(([0.0], equity_curve(pnl)))
    peak = np.maximum.accumulate(equity)
    return float(np.max(peak - equity))


def bootstrap_ci(
    per_window: ArrayLike,
    *,
    level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the *total* over windows, resampling windows.

    ``per_window`` holds one number per window (its P&L, 0 when it did not trade).  Each
    resample draws as many windows as there are, with replacement, and sums them.
    """
    values = np.asarray(per_window, dtype=np.float64).ravel()
    if not values.size:
        return (0.0, 0.0)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level {level} must be in (0, 1)")
    rng = np.random.default_rng(seed)
    totals = np.empty(resamples, dtype=np.float64)
    # In blocks so memory stays bounded for long datasets.
    block = max(1, 2_000_000 // values.size)
    for start in range(0, resamples, block):
        stop = min(resamples, start + block)
        picks = rng.integers(0, values.size, size=(stop - start, values.size))
        totals[start:stop] = values[picks].sum(axis=1)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(totals, [alpha, 1.0 - alpha])
    return (float(lo), float(hi))


def max_concurrent_exposure(intervals: Sequence[tuple[float, float, float]]) -> float:
    """Largest sum of ``amount`` over positions open at once; a position is open on
    [opened, closed) so one closing at t and another opening at t do not overlap."""
    events: list[tuple[float, int, float]] = []
    for opened, closed, amount in intervals:
        events.append((opened, 1, amount))
        events.append((closed, 0, -amount))
    level = best = 0.0
    for _, _, delta in sorted(events):
        level += delta
        best = max(best, level)
    return best


def percentile_ms(latencies_s: ArrayLike, q: float) -> float:
    """The q-th percentile (linear interpolation) of latencies, in milliseconds."""
    values = np.asarray(latencies_s, dtype=np.float64)
    if not values.size:
        return math.nan
    return float(np.percentile(values, q) * 1000.0)
