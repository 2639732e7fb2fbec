"""Forecast-only study over a long 1-minute price history: is the fair value any good, by time
left and by volatility regime, and does the technical signal add anything?

Input: a 1-minute candle CSV (``open_time_ms, open, close`` required, ``volume`` optional;
others ignored), e.g. ``../shared/data/btc/binance_btcusdt_spot_1m_2021_2025.csv.gz``.  Rows must
be strictly increasing in time and on minute boundaries; gaps split the history into gap-free
blocks.

Windows (15 minutes by default) start on multiples of the window length (epoch-aligned like the
venue's slugs) and must lie wholly inside one block.  Price to beat = open of the window's first
minute; outcome = Up iff the close of its last minute >= the price to beat (ties go Up).
Decisions are made at 1, 2, ... (W - 1) minutes in: at ``start + 60 m`` the minute that opened at
``start + 60 (m - 1)`` has just closed, and that close is the price.  Nothing later is used.

Every decision sees exactly what the agent's replay gives its nodes: the last 120 one-minute
candles (``feeds.replay.ReplayFeed``'s history), so only windows with 120 candles of history
inside their block before the first decision are scored (the rest are counted as skipped).

Forecasters, all computed vectorised over the whole history:

* ``fair_value``: ``tools.fair_value`` exactly: EWMA(0.94) volatility of the 120 closes' log
  returns (floored), ``prob_up(ln(S/K), sigma, tau)``; the test checks equality with the
  scalar functions on a sample.
* ``technical``: the technical analyst's vote ``tools.indicators.analyse_candles(...).score``
  (in [-1, 1]) on the same 120 candles, mapped to a probability by the fixed rule
  ``P(up) = 0.5 + score / 4`` (the strongest possible vote says 75 %).  The vote is built for a
  direction, not a probability; this map keeps its sign and order and is deliberately modest.
  TA-Lib's recursive indicators (EMA, MACD, RSI) on a 120-candle tail are linear in the closes
  (or in the gains and losses, for RSI), so they are computed as exact 120-tap convolutions;
  the test checks the score against ``analyse_candles`` itself on a sample.
* ``technical_fit``: the same score through a logistic map ``1 / (1 + exp(-(a + b score)))``
  fitted by maximum likelihood for each minutes-left separately, with 2-fold chronological
  cross-fitting (each half of the windows is scored with coefficients fitted on the other
  half), so its calibration is out-of-sample: about the best a monotone use of the signal can
  do.
* ``fair_value_recal`` and ``fair_value+technical``: the same cross-fitted logistic on
  ``logit(fair_value)`` alone, and on ``logit(fair_value)`` plus the score.  Their difference is
  what the technical signal adds *beyond* the fair value (the recalibration alone would
  otherwise get the credit).
* ``coin_flip``: 0.5.

Volatility regimes are terciles of the ex-ante EWMA sigma over all scored decisions (the
thresholds are reported); they split the scoring, not the forecasts.
"""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import talib
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from scipy import special

from evals import metrics
from evals.fitting import fit_logistic, logit_vec
from evals.walkforward import block_features, run_walk_forward, summarize_walk_forward
from feeds.recorded import DatasetError
from tools import indicators as ind
from tools.fair_value import (
    DEFAULT_EWMA_LAMBDA_1M,
    DEFAULT_SIGMA_FLOOR_PER_SQRT_S,
    PROB_MAX,
    PROB_MIN,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

# The candles every decision sees: ReplayFeed's default candle history.
HISTORY = 120
MINUTE_S = 60
TECH_PROB_SLOPE = 0.25
FORECASTERS = ("fair_value", "technical", "technical_fit", "coin_flip", "fair_value_recal",
               "fair_value+technical")


@dataclass(frozen=True, eq=False, slots=True)
class MinuteCandles:
    """A validated 1-minute history: open times (epoch s), open, close, volume (NaN unknown)."""

    name: str
    open_time: IntArray
    open: FloatArray
    close: FloatArray
    volume: FloatArray | None

    def __len__(self) -> int:
        return len(self.open_time)


# --- loading -------------------------------------------------------------------------------


def load_minute_candles(path: str | Path) -> MinuteCandles:
    """Read and validate a 1-minute candle CSV; DatasetError names file and row on bad input."""
    p = Path(path)
    name = p.name
    if not p.is_file():
        raise DatasetError(f"history file {str(p)!r} does not exist")
    try:
        header = pd.read_csv(p, nrows=0)
    except Exception as exc:
        raise DatasetError(f"{name}: cannot read: {' '.join(str(exc).split())}") from None
    cols = {str(c).strip().lower(): str(c) for c in header.columns}
    for required in ("open_time_ms", "open", "close"):
        if required not in cols:
            raise DatasetError(f"{name} row 1: required column '{required}' missing "
                               f"(columns: {', '.join(cols) or 'none'})")
    wanted = [cols[c] for c in ("open_time_ms", "open", "close", "volume") if c in cols]
    try:
        # Fast path: the C parser straight to floats.  Anything it cannot parse sends us to the
        # slow path below, whose only job is to name the offending row.
        fast = pd.read_csv(p, usecols=wanted, dtype=dict.fromkeys(wanted, "float64"),
                           skip_blank_lines=False)
    except Exception:
        fast = None
    if fast is not None:
        lines = np.arange(2, len(fast) + 2)
        blank = fast.isna().all(axis=1).to_numpy()
        if blank.any():
            fast, lines = fast.loc[~blank].reset_index(drop=True), lines[~blank]
        if not len(fast):
            raise DatasetError(f"{name}: no data rows")
        columns = {c: fast[cols[c]].to_numpy(dtype=np.float64) for c in cols
                   if cols[c] in wanted}
        for col in ("open_time_ms", "open", "close"):
            empty = np.flatnonzero(np.isnan(columns[col]))
            if len(empty):
                raise DatasetError(f"{name} row {lines[empty[0]]}: {col} is empty")
        return _validated(name, lines, columns["open_time_ms"], columns["open"],
                          columns["close"], columns.get("volume"))
    try:
        df = pd.read_csv(p, usecols=wanted, dtype=str, keep_default_na=False,
                         skip_blank_lines=False)
    except Exception as exc:
        raise DatasetError(f"{name}: cannot read: {' '.join(str(exc).split())}") from None
    lines = np.arange(2, len(df) + 2)
    blank = (df == "").all(axis=1).to_numpy()
    if blank.any():
        df, lines = df.loc[~blank].reset_index(drop=True), lines[~blank]
    if not len(df):
        raise DatasetError(f"{name}: no data rows")

    def numbers(col: str, *, required: bool) -> FloatArray:
        raw = df[cols[col]].str.strip()
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        empty = (raw == "").to_numpy()
        bad = np.flatnonzero(~empty & ~np.isfinite(values))
        if len(bad):
            i = int(bad[0])
            raise DatasetError(f"{name} row {lines[i]}: {col} {raw.iloc[i]!r} is not a number")
        if required and empty.any():
            raise DatasetError(f"{name} row {lines[int(np.argmax(empty))]}: {col} is empty")
        return values

    return _validated(name, lines, numbers("open_time_ms", required=True),
                      numbers("open", required=True), numbers("close", required=True),
                      numbers("volume", required=False) if "volume" in cols else None)


def _validated(name: str, lines: NDArray[np.int64], t_ms: FloatArray, o: FloatArray,
               c: FloatArray, v: FloatArray | None) -> MinuteCandles:
    for label, arr in (("open_time_ms", t_ms), ("open", o), ("close", c)):
        bad = np.flatnonzero(~np.isfinite(arr))
        if len(bad):
            raise DatasetError(f"{name} row {lines[bad[0]]}: {label} {arr[bad[0]]!r} is not "
                               "finite")
    for label, arr in (("open", o), ("close", c)):
        bad = np.flatnonzero(arr <= 0)
        if len(bad):
            raise DatasetError(f"{name} row {lines[bad[0]]}: {label} {float(arr[bad[0]])!r} "
                               "must be > 0")
    if v is not None:
        bad = np.flatnonzero(v < 0)
        if len(bad):
            raise DatasetError(f"{name} row {lines[bad[0]]}: volume {float(v[bad[0]])!r} is "
                               "negative")
    off = np.flatnonzero(np.mod(t_ms, MINUTE_S * 1000) != 0)
    if len(off):
        raise DatasetError(f"{name} row {lines[off[0]]}: open_time_ms {int(t_ms[off[0]])} is "
                           "not on a minute boundary")
    step = np.diff(t_ms)
    back = np.flatnonzero(step <= 0)
    if len(back):
        i = int(back[0]) + 1
        kind = "duplicate" if step[back[0]] == 0 else "unsorted"
        raise DatasetError(f"{name} row {lines[i]}: open_time_ms {int(t_ms[i])} is not after "
                           f"the previous row ({kind})")
    if v is not None and np.isnan(v).all():
        v = None
    return MinuteCandles(name=name, open_time=(t_ms // 1000).astype(np.int64), open=o, close=c,
                         volume=v)


def blocks(candles: MinuteCandles) -> list[tuple[int, int]]:
    """[start, stop) index ranges of gap-free runs of consecutive minutes."""
    gaps = np.flatnonzero(np.diff(candles.open_time) != MINUTE_S) + 1
    bounds = [0, *gaps.tolist(), len(candles)]
    return [(a, b) for a, b in itertools.pairwise(bounds) if b > a]


# --- per-minute features (as of each minute's close, from the last HISTORY candles) --------


def _tail_kernel(fn: Any, n: int = HISTORY) -> FloatArray:
    """Weights k such that fn(x)[-1] == k @ x for any length-n x (fn linear in x)."""
    eye = np.eye(n)
    return np.array([float(fn(eye[i])) for i in range(n)])


def _causal(x: FloatArray, kernel: FloatArray) -> FloatArray:
    """out[j] = kernel @ x[j - n + 1 : j + 1] (NaN for j < n - 1)."""
    n = len(kernel)
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = np.convolve(x, kernel[::-1], mode="valid")
    return out


def _rsi_kernel(n: int = HISTORY, period: int = ind.RSI_PERIOD) -> FloatArray:
    """TA-Lib's RSI smoothing (mean of the first ``period`` moves, then Wilder's recursion)
    as weights on the n - 1 moves of an n-close tail: avg = w @ moves."""
    moves = n - 1
    w = np.empty(moves)
    decay = (period - 1) / period
    w[:period] = decay ** (moves - period) / period
    w[period:] = decay ** (moves - 1 - np.arange(period, moves)) / period
    return w


@dataclass(frozen=True, eq=False, slots=True)
class Features:
    """Per-minute values as of that minute's close (NaN where fewer than HISTORY candles)."""

    sigma: FloatArray
    score: FloatArray


def ewma_sigma_tail(close: FloatArray, lam: float = DEFAULT_EWMA_LAMBDA_1M,
                    floor: float = DEFAULT_SIGMA_FLOOR_PER_SQRT_S) -> FloatArray:
    """``ewma_sigma_per_sqrt_s`` of the last HISTORY closes at every index (1-minute candles)."""
    r2 = np.diff(np.log(close)) ** 2
    w = lam ** np.arange(HISTORY - 2, -1, -1, dtype=np.float64)  # oldest return first
    out = np.full(len(close), np.nan)
    if len(r2) >= HISTORY - 1:
        var = np.convolve(r2, w[::-1], mode="valid") / w.sum()
        sigma = np.sqrt(var / MINUTE_S)
        out[HISTORY - 1:] = np.maximum(floor, np.where(np.isfinite(sigma), sigma, floor))
    return out


def technical_score_tail(close: FloatArray, volume: FloatArray | None) -> FloatArray:
    """``analyse_candles(last HISTORY candles).score`` at every index, vectorised."""
    n = len(close)
    score = np.full(n, np.nan)
    if n < HISTORY:
        return score
    ema_fast = _causal(close, _tail_kernel(lambda x: talib.EMA(x, ind.MA_FAST)[-1]))
    ema_slow = _causal(close, _tail_kernel(lambda x: talib.EMA(x, ind.MA_SLOW)[-1]))
    hist_kernel = _tail_kernel(lambda x: talib.MACD(x, ind.MACD_FAST, ind.MACD_SLOW,
                                                    ind.MACD_SIGNAL)[2][-1])
    macd_hist = _causal(close, hist_kernel)
    windows_fast = sliding_window_view(close, ind.MA_FAST)
    windows_slow = sliding_window_view(close, ind.MA_SLOW)
    windows_bb = sliding_window_view(close, ind.BB_PERIOD)
    sma_fast = np.full(n, np.nan)
    sma_fast[ind.MA_FAST - 1:] = windows_fast.mean(axis=1)
    sma_slow = np.full(n, np.nan)
    sma_slow[ind.MA_SLOW - 1:] = windows_slow.mean(axis=1)
    mid = np.full(n, np.nan)
    sd = np.full(n, np.nan)
    mid[ind.BB_PERIOD - 1:] = windows_bb.mean(axis=1)
    sd[ind.BB_PERIOD - 1:] = windows_bb.std(axis=1)  # population std, as TA-Lib's BBANDS
    upper, lower = mid + ind.BB_NBDEV * sd, mid - ind.BB_NBDEV * sd
    width = upper - lower
    with np.errstate(invalid="ignore", divide="ignore"):
        percent_b = np.where(width > 1e-12 * np.abs(mid), (close - lower) / width, np.nan)

    moves = np.diff(close)
    rsi_w = _rsi_kernel()
    gain = np.full(n, np.nan)
    loss = np.full(n, np.nan)
    gain[HISTORY - 1:] = np.convolve(np.maximum(moves, 0.0), rsi_w[::-1], mode="valid")
    loss[HISTORY - 1:] = np.convolve(np.maximum(-moves, 0.0), rsi_w[::-1], mode="valid")
    tail = sliding_window_view(close, HISTORY)
    flat = np.ones(n, dtype=bool)
    flat[HISTORY - 1:] = tail.min(axis=1) == tail.max(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rsi = np.where(flat, np.nan, 100.0 * gain / (gain + loss))

    noise = ind.NOISE_REL * np.abs(close)
    vote = np.zeros(n)
    vote += np.where(np.abs(macd_hist) > noise, np.sign(macd_hist) * ind.W_MACD, 0.0)
    diff_ema = ema_fast - ema_slow
    vote += np.where(np.abs(diff_ema) > noise, np.sign(diff_ema) * ind.W_EMA, 0.0)
    diff_sma = sma_fast - sma_slow
    vote += np.where(np.abs(diff_sma) > noise, np.sign(diff_sma) * ind.W_SMA, 0.0)
    vote -= np.where(rsi > ind.RSI_OVERBOUGHT, ind.W_RSI, 0.0)
    vote += np.where(rsi < ind.RSI_OVERSOLD, ind.W_RSI, 0.0)
    vote -= np.where(percent_b > 1.0, ind.W_BB, 0.0)
    vote += np.where(percent_b < 0.0, ind.W_BB, 0.0)
    raw = vote / (ind.W_MACD + ind.W_EMA + ind.W_SMA + ind.W_RSI + ind.W_BB)

    if volume is not None:
        prev = sliding_window_view(volume, ind.VOLUME_LOOKBACK + 1)[:, :-1]
        ratio = np.full(n, np.nan)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_prev = prev.mean(axis=1)
            last = volume[ind.VOLUME_LOOKBACK:]
            ok = (mean_prev > 0) & np.isfinite(mean_prev) & np.isfinite(last)
            ratio[ind.VOLUME_LOOKBACK:] = np.where(ok, last / mean_prev, np.nan)
        boost = (ratio > 1.0) & (raw != 0.0)
        gain_v = np.minimum(ind.VOLUME_MAX_GAIN,
                            1.0 + ind.VOLUME_GAIN_PER_RATIO * (ratio - 1.0))
        raw = np.where(boost, raw * gain_v, raw)
    score[HISTORY - 1:] = np.clip(raw, -1.0, 1.0)[HISTORY - 1:]
    return score


def features(candles: MinuteCandles) -> Features:
    """Features of every minute, computed block by block (nothing crosses a gap)."""
    sigma = np.full(len(candles), np.nan)
    score = np.full(len(candles), np.nan)
    for a, b in blocks(candles):
        close = candles.close[a:b]
        volume = None if candles.volume is None else candles.volume[a:b]
        sigma[a:b] = ewma_sigma_tail(close)
        score[a:b] = technical_score_tail(close, volume)
    return Features(sigma=sigma, score=score)


def prob_up_vec(log_moneyness: FloatArray, sigma: FloatArray, tau_s: FloatArray) -> FloatArray:
    """``tools.fair_value.prob_up`` elementwise (normal tails, tau > 0, sigma > 0)."""
    z = np.abs(log_moneyness) / (sigma * np.sqrt(tau_s))
    tail = 0.5 * special.erfc(z / math.sqrt(2.0))
    p = np.where(log_moneyness > 0.0, 1.0 - tail, tail)
    p = np.where(log_moneyness == 0.0, 0.5, p)
    return np.clip(p, PROB_MIN, PROB_MAX)


# --- the study -----------------------------------------------------------------------------


@dataclass
class Study:
    """Decision rows of every scored window (one row per window and minute)."""

    name: str
    window_s: int
    window_start: IntArray  # per row
    minute: IntArray  # minutes into the window at the decision (1 .. W-1)
    outcome: FloatArray
    sigma: FloatArray
    p: dict[str, FloatArray]
    score: FloatArray
    windows: int
    blocks: int
    skipped: dict[str, int]
    load_s: float = 0.0
    compute_s: float = 0.0
    fit: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    walk_forward: Any = None


def _cross_fit(design: FloatArray, y: FloatArray, minute: IntArray, fold: NDArray[np.bool_],
               minutes: int) -> tuple[FloatArray, dict[str, list[float]]]:
    """Out-of-sample logistic probabilities: for each minute, each fold is scored with
    coefficients fitted on the other fold.  Returns them and the coefficients by minutes left
    (the later-half fit first)."""
    out = np.full(len(y), 0.5)
    coefs: dict[str, list[float]] = {}
    for m in range(1, minutes):
        at = minute == m
        fitted: list[float] = []
        for f in (False, True):
            train, test = at & (fold != f), at & (fold == f)
            if train.any() and test.any():
                c = fit_logistic(design[train], y[train])
                out[test] = 1.0 / (1.0 + np.exp(-np.clip(design[test] @ c, -30.0, 30.0)))
                fitted += [float(v) for v in c]
        coefs[f"minutes_left_{minutes - m}"] = fitted
    return out, coefs


def run_study(path: str | Path, window_s: int = 900,
              candles: MinuteCandles | None = None) -> Study:
    """Load the history (unless ``candles`` is given) and build every scored decision row."""
    if window_s % MINUTE_S or window_s < 2 * MINUTE_S:
        raise ValueError(f"window must be a whole number of minutes >= 2, got {window_s} s")
    started = time.perf_counter()
    if candles is None:
        candles = load_minute_candles(path)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    feats = features(candles)
    minutes = window_s // MINUTE_S
    starts: list[NDArray[np.int64]] = []
    skipped = {"incomplete_window": 0, "warm_up": 0}
    block_list = blocks(candles)
    complete_total = 0
    for a, b in block_list:
        t = candles.open_time[a:b]
        aligned = np.flatnonzero(t % window_s == 0)
        complete = aligned[aligned + minutes <= (b - a)]
        complete_total += len(complete)
        warm = complete >= HISTORY - 1
        skipped["warm_up"] += int((~warm).sum())
        starts.append(a + complete[warm])
    # Window slots the history touches but does not cover whole (cut by a gap or an end).
    touched = len(np.unique(candles.open_time // window_s))
    skipped["incomplete_window"] = touched - complete_total
    s = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
    if not len(s):
        raise DatasetError(f"{candles.name}: no complete {minutes}-minute window with "
                           f"{HISTORY} minutes of history before it (skipped: {skipped})")
    m = np.arange(1, minutes)
    j = s[:, None] + (m[None, :] - 1)  # the minute that just closed at each decision
    k = candles.open[s]
    y_window = (candles.close[s + minutes - 1] >= k).astype(np.float64)
    price = candles.close[j]
    sigma = feats.sigma[j]
    tau = (window_s - MINUTE_S * m)[None, :].astype(np.float64).repeat(len(s), axis=0)
    p_fair = prob_up_vec(np.log(price / k[:, None]), sigma, tau)
    score = feats.score[j]
    rows = p_fair.size
    study = Study(
        name=candles.name, window_s=window_s,
        window_start=np.repeat(candles.open_time[s], len(m)),
        minute=np.tile(m, len(s)).astype(np.int64),
        outcome=np.repeat(y_window, len(m)),
        sigma=sigma.ravel(), score=score.ravel(),
        p={"fair_value": p_fair.ravel(),
           "technical": 0.5 + TECH_PROB_SLOPE * score.ravel(),
           "coin_flip": np.full(rows, 0.5)},
        windows=len(s), blocks=len(block_list), skipped=skipped, load_s=load_s)
    # Fitted maps: per minutes left, 2-fold chronological cross-fitting on window halves.
    fold = np.repeat(np.arange(len(s)) >= len(s) // 2, len(m))
    ones = np.ones(rows)
    logit_fair = logit_vec(study.p["fair_value"])
    for key, design in (
        ("technical_fit", np.column_stack((ones, study.score))),
        ("fair_value_recal", np.column_stack((ones, logit_fair))),
        ("fair_value+technical", np.column_stack((ones, logit_fair, study.score))),
    ):
        study.p[key], study.fit[key] = _cross_fit(design, study.outcome, study.minute, fold,
                                                  minutes)
    # Walk-forward study (evals.walkforward): baselines, tails, technicals and the agent.
    from tools.fair_value import default_model

    feat_all: dict[str, FloatArray] = {}
    for a, b in block_list:
        vol = None if candles.volume is None else candles.volume[a:b]
        bf = block_features(candles.close[a:b], vol, candles.open_time[a:b], feats.sigma[a:b])
        for key, v in bf.items():
            feat_all.setdefault(key, np.zeros(len(candles)))[a:b] = v
    study.walk_forward = run_walk_forward(
        np.log(price / k[:, None]).ravel(), sigma.ravel(), tau.ravel(), study.outcome,
        study.window_start, {key: v[j].ravel() for key, v in feat_all.items()},
        default_model().basis_sd, np.repeat(np.arange(len(s)), len(m)))
    study.compute_s = time.perf_counter() - started
    return study


def _scores(p: FloatArray, y: FloatArray) -> dict[str, Any]:
    out: dict[str, Any] = {k: (float(v) if isinstance(v, float) and math.isfinite(v) else v)
                           for k, v in metrics.forecast_scores(p, y).items()}
    auc = metrics.auc(p, y)
    out["auc"] = auc if math.isfinite(auc) else None
    for key in ("brier", "log_loss", "ece"):
        if isinstance(out[key], float) and not math.isfinite(out[key]):
            out[key] = None
    return out


def summarize_study(study: Study) -> dict[str, Any]:
    """The forecast-only JSON: overall, by minutes left, by volatility regime."""
    y = study.outcome
    overall = {name: _scores(study.p[name], y) for name in FORECASTERS} if y.size else \
        dict.fromkeys(FORECASTERS)
    minutes = study.window_s // MINUTE_S
    by_left = []
    for m in range(1, minutes):
        sel = study.minute == m
        by_left.append({"minutes_left": minutes - m, "n": int(sel.sum()),
                        **{name: _scores(study.p[name][sel], y[sel]) for name in FORECASTERS}})
    thresholds = [float(q) for q in np.quantile(study.sigma, [1 / 3, 2 / 3])] if y.size \
        else [math.nan, math.nan]
    regimes = []
    bounds = [(-math.inf, thresholds[0]), (thresholds[0], thresholds[1]),
              (thresholds[1], math.inf)]
    for label, (lo, hi) in zip(("low", "mid", "high"), bounds, strict=True):
        sel = (study.sigma > lo) & (study.sigma <= hi)
        regimes.append({"regime": label, "sigma_per_sqrt_s": [lo if math.isfinite(lo) else None,
                                                               hi if math.isfinite(hi) else None],
                        "n": int(sel.sum()),
                        **{name: _scores(study.p[name][sel], y[sel]) for name in FORECASTERS}})
    walk_forward = None
    if study.walk_forward is not None and y.size:
        walk_forward = summarize_walk_forward(study.walk_forward, y, study.minute, study.sigma,
                                              minutes)
    return {
        "walk_forward": walk_forward,
        "history": study.name,
        "window_s": study.window_s,
        "windows": study.windows,
        "decisions": int(y.size),
        "blocks": study.blocks,
        "windows_skipped": study.skipped,
        "up_rate": float(y.mean()) if y.size else None,
        "forecast": overall,
        "by_minutes_left": by_left,
        "by_vol_regime": regimes,
        "vol_regime_thresholds_sigma_per_sqrt_s": thresholds,
        "technical_mapping": {
            "technical": f"P(up) = 0.5 + {TECH_PROB_SLOPE} * score",
            "technical_fit": "logistic on [1, score] per minutes left, 2-fold chronological "
                             "cross-fit (coefficients fitted on the later half, then the "
                             "earlier)",
            "fair_value_recal": "logistic on [1, logit(fair_value)], same cross-fit",
            "fair_value+technical": "logistic on [1, logit(fair_value), score], same cross-fit",
            "coefficients": study.fit,
        },
        "timing": {"load_s": study.load_s, "compute_s": study.compute_s,
                   "total_s": study.load_s + study.compute_s,
                   "decisions_per_s": (y.size / (study.load_s + study.compute_s))
                   if y.size else None},
    }
