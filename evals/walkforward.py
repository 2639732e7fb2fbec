"""Walk-forward forecast study over the 1-minute history: nothing is scored by what it fitted.

Expanding window by calendar month: every parameter used on month M (a fixed sigma, the
Student-t degrees of freedom, a logistic combination with technical features) is chosen on
rows of months strictly before M.  The first month with data only fits; every later month is
scored.  Rows (``WF_FORECASTERS``):

* ``coin_flip``: 0.5.
* ``moneyness``: Phi(ln(S/K) / (sigma_fixed sqrt(tau))), sigma_fixed the RMS EWMA sigma of all
  earlier months (one number per month).
* ``+vol``: the EWMA(0.94) sigma of the decision's own 120-candle history (normal tails).
* ``+tails``: as ``+vol`` with a Student-t whose degrees of freedom minimise Brier on the
  earlier months (grid ``DOF_GRID``; None = normal).
* ``+technicals``: logistic on [logit(+tails), technical features] fitted on the earlier months
  (features: ``FEATURES``, 1-minute and 15-minute frame).
* ``agent``: the agent's model on this path (no book here): ``+tails`` with the basis/lag
  allowance of ``data/models/fair_value_v1.json`` (its tails chosen the same walk-forward way),
  then the diffusion variance scaled per minutes left by the factor of ``VARIANCE_SCALE_GRID``
  that minimised Brier at that minutes-left on the earlier months (the month's tails fixed).

``indicator_skill``: Brier of [logit(+vol), feature] minus Brier of [logit(+vol)] alone, each
fitted walk-forward: what each indicator adds beyond moneyness (negative = it helps).

Grid choices are cheap: each candidate's loss is summed per month once, and a cumulative sum
gives every month's choice.  Logistic fits train on every 16th window (deterministic), enough
for 2-12 coefficients, so the whole study stays a few seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import talib
from numpy.typing import NDArray
from scipy import special

from evals import metrics
from evals.fitting import fit_logistic, logit_vec
from tools.fair_value import PROB_MAX, PROB_MIN

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

DOF_GRID: tuple[float | None, ...] = (None, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0, 20.0)
WF_FORECASTERS = ("coin_flip", "moneyness", "+vol", "+tails", "+technicals", "agent")
FEATURES = ("rsi", "macd_hist", "ema_cross", "sma_cross", "bb_percent_b", "volume_ratio",
            "rsi_15m", "macd_hist_15m")
TRAIN_EVERY = 16
VARIANCE_SCALE_GRID = (0.4, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3, 1.4,
                       1.5, 1.6)


def prob_up_var(x: FloatArray, var: FloatArray, dof: float | None) -> FloatArray:
    """P(up) for log moneyness x and total variance var (normal or unit-variance t)."""
    z = np.abs(x) / np.sqrt(var)
    if dof is None:
        tail = 0.5 * special.erfc(z / math.sqrt(2.0))
    else:
        tail = special.stdtr(dof, -z * math.sqrt(dof / (dof - 2.0)))
    p = np.where(x > 0.0, 1.0 - tail, tail)
    p = np.where(x == 0.0, 0.5, p)
    return np.clip(p, PROB_MIN, PROB_MAX)


def month_index(window_start: IntArray) -> IntArray:
    """Calendar month of each row as 0, 1, ... over the months present (in time order)."""
    months = (window_start // 86400).astype("datetime64[D]").astype("datetime64[M]")
    _, idx = np.unique(months, return_inverse=True)
    return np.asarray(idx, dtype=np.int64)


def _choose_by_prior_months(losses: FloatArray, month: IntArray, n_months: int) -> IntArray:
    """losses: (candidates, rows).  For each month, the candidate with the least summed loss
    over strictly earlier months (-1 for the first month: nothing to choose on)."""
    per_month = np.stack([np.bincount(month, weights=row, minlength=n_months)
                          for row in losses])
    prior = np.cumsum(per_month, axis=1) - per_month
    choice = np.argmin(prior, axis=0)
    choice[0] = -1
    return np.asarray(choice, dtype=np.int64)


def _walk_forward_logistic(design: FloatArray, y: FloatArray, month: IntArray, n_months: int,
                           train_rows: NDArray[np.bool_]) -> tuple[FloatArray, list[list[float]]]:
    out = np.full(len(y), 0.5)
    coefs: list[list[float]] = []
    for m in range(1, n_months):
        train = train_rows & (month < m)
        test = month == m
        c = fit_logistic(design[train], y[train], iterations=8)
        out[test] = 1.0 / (1.0 + np.exp(-np.clip(design[test] @ c, -30.0, 30.0)))
        coefs.append([float(v) for v in c])
    return out, coefs


@dataclass
class WalkForward:
    p: dict[str, FloatArray]
    scored: NDArray[np.bool_]
    months: int
    chosen_dof: list[float | None]
    agent_dof: list[float | None]
    fixed_sigma: list[float]
    technical_coefs: list[list[float]]
    indicator_skill: dict[str, float]
    final_dof: float | None
    # Per minutes left (1, 2, ...): the scale chosen for each scored month, and on all months.
    variance_scale_by_month: dict[int, list[float | None]]
    final_variance_scale: list[float]


def block_features(close: FloatArray, volume: FloatArray | None, open_time: IntArray,
                   sigma: FloatArray) -> dict[str, FloatArray]:
    """Technical features of every minute of one gap-free block, as of that minute's close.

    TA-Lib batch over the block: exactly what ``tools.indicators_stream.IndicatorStream``
    gives when fed the same candles (the live path's values differ only by where the stream
    was seeded).  Trend features are scaled by the 1-minute move (price * sigma * sqrt(60)).
    """
    n = len(close)
    scale = close * sigma * math.sqrt(60.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f: dict[str, FloatArray] = {
            "rsi": (talib.RSI(close, 14) - 50.0) / 50.0,
            "macd_hist": talib.MACD(close, 12, 26, 9)[2] / scale,
            "ema_cross": (talib.EMA(close, 9) - talib.EMA(close, 21)) / scale,
            "sma_cross": (talib.SMA(close, 9) - talib.SMA(close, 21)) / scale,
        }
        u, _, lo = talib.BBANDS(close, 20, 2.0, 2.0)
        f["bb_percent_b"] = (close - lo) / (u - lo) - 0.5
        vr = np.full(n, np.nan)
        if volume is not None and n > 21:
            prev = np.convolve(volume, np.ones(20), mode="valid")[:-1] / 20.0
            vr[20:] = np.log(volume[20:] / prev)
        f["volume_ratio"] = vr
        # 15-minute frame: closes of complete 900-aligned candles, held until the next one.
        end15 = np.flatnonzero((open_time + 60) % 900 == 0)
        rsi15 = np.full(n, np.nan)
        macd15 = np.full(n, np.nan)
        if len(end15) > 40:
            c15 = close[end15]
            rsi15[end15] = (talib.RSI(c15, 14) - 50.0) / 50.0
            macd15[end15] = talib.MACD(c15, 12, 26, 9)[2] / (scale[end15] * math.sqrt(15.0))
            idx = np.maximum.accumulate(np.where(np.isin(np.arange(n), end15),
                                                 np.arange(n), 0))
            rsi15, macd15 = rsi15[idx], macd15[idx]
        f["rsi_15m"], f["macd_hist_15m"] = rsi15, macd15
    for k, v in f.items():
        f[k] = np.clip(np.where(np.isfinite(v), v, 0.0), -5.0, 5.0)
    return f


def run_walk_forward(x: FloatArray, sigma: FloatArray, tau: FloatArray, y: FloatArray,
                     window_start: IntArray, feats: dict[str, FloatArray], basis_sd: float,
                     window_id: IntArray) -> WalkForward:
    month = month_index(window_start)
    n_months = int(month.max()) + 1
    scored = month >= 1
    var_vol = sigma * sigma * tau
    p: dict[str, FloatArray] = {"coin_flip": np.full(len(y), 0.5)}

    # moneyness with one fixed sigma per month: the RMS sigma of the earlier months.
    s2 = np.bincount(month, weights=sigma * sigma, minlength=n_months)
    cnt = np.bincount(month, minlength=n_months).astype(np.float64)
    prior_s2 = np.cumsum(s2) - s2
    prior_n = np.cumsum(cnt) - cnt
    fixed = np.sqrt(np.where(prior_n > 0, prior_s2 / np.maximum(prior_n, 1.0),
                             s2[0] / max(cnt[0], 1.0)))
    p["moneyness"] = prob_up_var(x, fixed[month] ** 2 * tau, None)
    p["+vol"] = prob_up_var(x, var_vol, None)

    def tails(var: FloatArray) -> tuple[FloatArray, list[float | None], float | None]:
        cands = [prob_up_var(x, var, d) for d in DOF_GRID]
        losses = np.stack([(c - y) ** 2 for c in cands])
        choice = _choose_by_prior_months(losses, month, n_months)
        out = np.array(cands[0])
        for m in range(1, n_months):
            sel = month == m
            out[sel] = cands[int(choice[m])][sel]
        final = int(np.argmin(losses.sum(axis=1)))  # all months: the agent's versioned pick
        return out, [DOF_GRID[int(c)] if c >= 0 else None for c in choice], DOF_GRID[final]

    p["+tails"], chosen, _ = tails(var_vol)
    _, agent_dof, final_dof = tails(var_vol + basis_sd * basis_sd)
    p["agent"], scale_by_month, final_scale = _variance_scaled(
        x, var_vol, basis_sd * basis_sd, y, tau, month, n_months, agent_dof, final_dof)

    train = (window_id % TRAIN_EVERY) == 0
    ones = np.ones(len(y))
    lt = logit_vec(p["+tails"])
    design = np.column_stack([lt] + [feats[k] for k in FEATURES])
    p["+technicals"], coefs = _walk_forward_logistic(design, y, month, n_months, train)

    base_design = logit_vec(p["+vol"])[:, None]
    base, _ = _walk_forward_logistic(base_design, y, month, n_months, train)
    base_brier = float(np.mean((base[scored] - y[scored]) ** 2))
    skill: dict[str, float] = {}
    for k in FEATURES:
        d = np.column_stack((base_design[:, 0], feats[k], ones))
        pk, _ = _walk_forward_logistic(d, y, month, n_months, train)
        skill[k] = float(np.mean((pk[scored] - y[scored]) ** 2)) - base_brier
    return WalkForward(p=p, scored=scored, months=n_months, chosen_dof=chosen,
                       agent_dof=agent_dof, fixed_sigma=[float(v) for v in fixed],
                       technical_coefs=coefs, indicator_skill=skill, final_dof=final_dof,
                       variance_scale_by_month=scale_by_month, final_variance_scale=final_scale)


def _variance_scaled(x: FloatArray, var_vol: FloatArray, basis_var: float, y: FloatArray,
                     tau: FloatArray, month: IntArray, n_months: int,
                     dof_by_month: list[float | None], final_dof: float | None
                     ) -> tuple[FloatArray, dict[int, list[float | None]], list[float]]:
    """The agent's P(up): for each minutes left, the diffusion variance times the grid factor
    with the least Brier on strictly earlier months (each month with its own walk-forward
    tails); and the factor per minutes left on all months with ``final_dof`` (versioned)."""
    minutes_left = np.maximum(1, np.ceil(tau / 60.0)).astype(np.int64)
    out = np.full(len(y), 0.5)
    by_month: dict[int, list[float | None]] = {}
    final: list[float] = []
    dof_row = np.array([dof_by_month[m] if dof_by_month[m] is not None else np.nan
                        for m in range(n_months)])[month]
    for ml in range(1, int(minutes_left.max()) + 1):
        rows = np.flatnonzero(minutes_left == ml)
        if not len(rows):
            final.append(1.0)
            continue
        xs, vv, ys, ms = x[rows], var_vol[rows], y[rows], month[rows]
        cands = np.empty((len(VARIANCE_SCALE_GRID), len(rows)))
        finals = np.empty(len(VARIANCE_SCALE_GRID))
        for i, k in enumerate(VARIANCE_SCALE_GRID):
            var = k * vv + basis_var
            for d in np.unique(dof_row[rows]):
                sel = np.isnan(dof_row[rows]) if np.isnan(d) else dof_row[rows] == d
                cands[i, sel] = prob_up_var(xs[sel], var[sel], None if np.isnan(d) else float(d))
            finals[i] = float(np.sum((prob_up_var(xs, var, final_dof) - ys) ** 2))
        choice = _choose_by_prior_months((cands - ys) ** 2, ms, n_months)
        picked: list[float | None] = [None]
        for m in range(1, n_months):
            sel = ms == m
            out[rows[sel]] = cands[int(choice[m]), sel]
            picked.append(VARIANCE_SCALE_GRID[int(choice[m])])
        by_month[ml] = picked
        final.append(VARIANCE_SCALE_GRID[int(np.argmin(finals))])
    return out, by_month, final


def _block(p: FloatArray, y: FloatArray) -> dict[str, Any]:
    s = metrics.forecast_scores(p, y)
    return {k: (float(v) if isinstance(v, float) else v) for k, v in s.items()}


def summarize_walk_forward(wf: WalkForward, y: FloatArray, minute: IntArray, sigma: FloatArray,
                           minutes: int) -> dict[str, Any]:
    sc = wf.scored
    yy = y[sc]
    if not yy.size:  # one month of history: everything fits, nothing is scored
        return {"months": wf.months, "decisions_scored": 0}
    out: dict[str, Any] = {
        "scheme": "expanding window by calendar month: fit on months strictly before, score "
                  "the month; the first month is fit-only",
        "months": wf.months, "decisions_scored": int(sc.sum()),
        "overall": {k: _block(wf.p[k][sc], yy) for k in WF_FORECASTERS},
    }
    rows: list[dict[str, Any]] = []
    for m in range(1, minutes):
        sel = sc & (minute == m)
        rows.append({"minutes_left": minutes - m, "n": int(sel.sum()),
                     **{k: _block(wf.p[k][sel], y[sel]) for k in WF_FORECASTERS}})
    out["by_minutes_left"] = rows
    th = np.quantile(sigma[sc], [1 / 3, 2 / 3])
    regimes = []
    for label, lo, hi in (("low", -np.inf, th[0]), ("mid", th[0], th[1]),
                          ("high", th[1], np.inf)):
        sel = sc & (sigma > lo) & (sigma <= hi)
        regimes.append({"regime": label, "n": int(sel.sum()),
                        **{k: _block(wf.p[k][sel], y[sel]) for k in WF_FORECASTERS}})
    out["by_vol_regime"] = regimes
    out["chosen_tail_dof_by_month"] = wf.chosen_dof
    out["agent_tail_dof_by_month"] = wf.agent_dof
    out["final_tail_dof_all_months"] = wf.final_dof
    out["agent_variance_scale_by_minutes_left_all_months"] = wf.final_variance_scale
    out["agent_variance_scale_last_month"] = {
        str(ml): picked[-1] for ml, picked in sorted(wf.variance_scale_by_month.items())}
    out["fixed_sigma_by_month"] = wf.fixed_sigma
    out["indicator_skill_brier_delta"] = wf.indicator_skill
    out["technicals_features"] = list(FEATURES)
    out["technicals_coefficients_last_month"] = wf.technical_coefs[-1] if wf.technical_coefs \
        else []
    agent_ece = [float(r["agent"]["ece"]) for r in rows]
    out["agent_max_ece_by_minutes_left"] = max(agent_ece) if agent_ece else None
    out["final_technicals_in_agent"] = False  # no indicator adds skill: see indicator_skill
    return out
