"""Fair value of the Up token and its edge against the book after taker fees.

Owns ``estimate_fair_value`` and its pure building blocks:

* ``ewma_sigma_per_sqrt_s``: volatility of log price per sqrt-second from an EWMA of candle
  log returns, with a floor;
* ``prob_up``: P(close >= price to beat) = F(ln(S/K) / (sigma * sqrt(tau))), F the standard
  normal CDF or a unit-variance Student-t CDF;
* ``settlement_moments``: the mean and variance of ln(close / K) under point or TWAP
  settlement, which ``model_prob_up`` turns into P(up).

The model is driftless Brownian log price: over 15 minutes any drift is negligible next to the
volatility, and on 1,440 real BTC windows this form scored Brier 0.155 (docs/venue.md).

Settlement as an average (derivation)
-------------------------------------
Since 2026-08-07 the close is not the reference at the end T but its mean over the last L
seconds (L = 60, the market's ``twapLookbackSeconds``), and the price to beat is the same mean
at the start (what the venue reports, so K is a known number).  Write X_t = ln(price) =
x0 + sigma W_t with W a standard Brownian motion started now (t = 0, tau = T seconds left) and
take the close as Y = (1/L) int_{T-L}^{T} X_t dt.  (Chainlink averages prices, not log prices;
over one minute the two differ by O(sigma^2 L) ~ 3e-7 relative, far below a tick.)

* Window entirely ahead (tau >= L), a = tau - L to its start:
  W_t = W_a + B_{t-a} with B a Brownian motion independent of W_a, so
  Y - x0 = sigma (W_a + (1/L) int_0^L B_s ds).  Var W_a = a and
  Var (1/L) int_0^L B_s ds = (1/L^2) int int min(s, u) ds du = L/3, hence
  Var Y = sigma^2 (tau - L + L/3) = sigma^2 (tau - 2L/3).  The mean stays x0.
* Inside the window (r = tau < L seconds of it left): the first L - r seconds are observed;
  with M their time-weighted mean price, Y = ((L - r) ln M + int_0^r X_t dt) / L and
  int_0^r X_t dt = r x0 + sigma int_0^r W_t dt with Var int_0^r W_t dt = r^3/3.  So with the
  weight w = r / L of the part still to come:
      E[Y] = (1 - w) ln M + w x0,   Var Y = sigma^2 r^3 / (3 L^2) = w^2 sigma^2 r / 3.
  At r = L both cases give sigma^2 L / 3 (continuous); at r = 0 the close is known.
* Inside the window with M unknown (no reference ticks for the elapsed part): given only x0,
  the path before now is a time-reversed Brownian motion independent of the one ahead, so the
  elapsed part adds (1 - w)^2 sigma^2 (L - r) / 3 and the mean is x0.

The allowances of the point model carry over with the weight of what is still random: the
price's age (lag) moves x0, so it adds w^2 sigma^2 lag (weight 1 before the window); the
basis between the exchange price and the reference applies to the exchange-priced part,
w^2 basis^2 (the observed mean M is the reference itself).  The per-minutes-left variance
scale multiplies the diffusion terms as in the point model.  P(up) = F(E[ln(Y/K)] / sqrt(Var)).
Monte Carlo on synthetic Brownian paths checks these moments in tests/tools/test_fair_value_twap.py.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import special

from core.records import FairValueEstimate
from core.snapshot import MarketSnapshot, Settlement

# RiskMetrics' 0.94 on 1-minute returns: half-life ln(0.5)/ln(0.94) ~ 11 minutes, about one
# window, so the estimate follows the current regime without resting on a handful of returns.
# Other candle intervals get lambda ** (interval / 60) so the half-life in seconds is the same.
DEFAULT_EWMA_LAMBDA_1M = 0.94
# BTC 1-minute volatility is typically ~6.5e-5 per sqrt-second (0.05%/min).  The floor sits well
# below that so it only bites on flat or coarse data (repeated closes), where an estimate near
# zero would make the model claim near-certainty from a few dollars of moneyness.
DEFAULT_SIGMA_FLOOR_PER_SQRT_S = 2e-5
# Normal by default: Student-t tails are said to help but have not been fitted or verified here.
DEFAULT_TAIL_DOF: float | None = None
# Away from expiry no 15-minute outcome is certain; clipping also keeps log-loss finite.
PROB_MIN = 0.001
PROB_MAX = 0.999

_SQRT2 = math.sqrt(2.0)
# Versioned parameters (fitted walk-forward; see data/models/PROVENANCE.md).
MODEL_PATH = Path(__file__).resolve().parent.parent / "data" / "models" / "fair_value_v1.json"


@dataclass(frozen=True, slots=True)
class FairValueModel:
    """The fair-value model's parameters: volatility, tails, basis/lag and the market blend.

    * ``tail_dof``: Student-t degrees of freedom of the standardised move (None: normal).
    * ``basis_sd``: sd of ln(reference / exchange price) at the close; the window settles on
      the Chainlink reference while we see an exchange price, so its variance is added.
    * ``reference_lag_s``: seconds the reference lags the exchange; the snapshot's price age is
      added to it: the price can have moved by sigma * sqrt(lag) since it was observed.
    * ``blend_model_weight`` / ``blend_market_weight``: the agent's P(up) when a book is present
      is sigmoid(w_model * logit(model) + w_market * logit(mid)), fitted on recorded Polymarket
      windows that are not the evaluation sets.  The mid is used only while the Up book's
      spread is at most ``blend_max_spread`` (a wide book's mid says little).
    * ``variance_scale_by_minutes_left``: a multiplier of the diffusion variance
      sigma^2 (tau + lag) for 1, 2, ... minutes left (``ceil(tau / 60)``, the last entry for
      anything longer; empty: 1).  EWMA sigma from the last two hours is not the variance still
      to come in the last minutes of a window (the model was underconfident near the close:
      predicted 0.25, realised 0.17 with 1 minute left), so the scale is chosen per minutes
      left, walk-forward, on the 1-minute history (``updown fit walkforward``).
    """

    version: str = "builtin"
    ewma_lambda_1m: float = DEFAULT_EWMA_LAMBDA_1M
    sigma_floor_per_sqrt_s: float = DEFAULT_SIGMA_FLOOR_PER_SQRT_S
    tail_dof: float | None = DEFAULT_TAIL_DOF
    basis_sd: float = 0.0
    reference_lag_s: float = 0.0
    blend_model_weight: float = 1.0
    blend_market_weight: float = 0.0
    blend_max_spread: float = 0.10
    variance_scale_by_minutes_left: tuple[float, ...] = ()

    def variance_scale(self, tau_s: float) -> float:
        """The diffusion-variance multiplier for ``tau_s`` seconds left."""
        table = self.variance_scale_by_minutes_left
        if not table:
            return 1.0
        minutes_left = min(len(table), max(1, math.ceil(max(0.0, tau_s) / 60.0)))
        return table[minutes_left - 1]

    @classmethod
    def load(cls, path: Path) -> FairValueModel:
        """Read a parameter file; a bad one is a one-line error naming the file and field."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read model parameters: {exc}") from None
        params = raw.get("params")
        if not isinstance(params, dict):
            raise ValueError(f"{path}: field 'params' missing or not an object")
        known = set(cls.__dataclass_fields__) - {"version"}
        unknown = set(params) - known
        if unknown:
            raise ValueError(f"{path}: unknown field(s) {sorted(unknown)} in 'params'")
        table = params.pop("variance_scale_by_minutes_left", [])
        if not (isinstance(table, list) and all(
                isinstance(v, int | float) and math.isfinite(v) and v > 0.0 for v in table)):
            raise ValueError(f"{path}: params.variance_scale_by_minutes_left must be a list of "
                             "positive numbers")
        for name, value in params.items():
            if value is not None and not (isinstance(value, int | float)
                                          and math.isfinite(value)):
                raise ValueError(f"{path}: params.{name} {value!r} is not a finite number")
        model = cls(version=str(raw.get("version", path.stem)),
                    variance_scale_by_minutes_left=tuple(float(v) for v in table), **params)
        if model.tail_dof is not None and not model.tail_dof > 2.0:
            raise ValueError(f"{path}: params.tail_dof {model.tail_dof} must be > 2")
        if not model.sigma_floor_per_sqrt_s > 0.0:
            raise ValueError(f"{path}: params.sigma_floor_per_sqrt_s must be > 0")
        if model.basis_sd < 0.0 or model.reference_lag_s < 0.0:
            raise ValueError(f"{path}: params.basis_sd and reference_lag_s must be >= 0")
        return model


@lru_cache(maxsize=1)
def default_model() -> FairValueModel:
    """The versioned model the agent trades on."""
    return FairValueModel.load(MODEL_PATH)


def logit(p: float) -> float:
    q = min(PROB_MAX, max(PROB_MIN, p))
    return math.log(q / (1.0 - q))


def blend(model_up: float, market_up: float, w_model: float, w_market: float) -> float:
    """sigmoid(w_model * logit(model_up) + w_market * logit(market_up)), clipped."""
    z = w_model * logit(model_up) + w_market * logit(market_up)
    p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
    return min(PROB_MAX, max(PROB_MIN, p))


def settlement_moments(
    log_moneyness: float, sigma_per_sqrt_s: float, tau_s: float, lag_s: float,
    basis_sd: float, variance_scale: float = 1.0, *, settlement: Settlement = "point",
    window_s: float = 60.0, partial_log_moneyness: float | None = None,
) -> tuple[float, float]:
    """(mean, variance) of ln(close / K) seen from now (see the module docstring).

    ``log_moneyness`` is ln(S/K) of the price we see; ``partial_log_moneyness`` is ln(M/K) of
    the mean reference over the part of a TWAP window already elapsed (None: not known).
    Point: (x, k sigma^2 (tau + lag) + basis^2).  TWAP: the window ahead, the window under
    way with M known, or with M unknown.
    """
    tau = max(0.0, tau_s)
    diffusion = variance_scale * sigma_per_sqrt_s * sigma_per_sqrt_s
    basis_var = basis_sd * basis_sd
    if settlement == "point":
        return log_moneyness, diffusion * (tau + lag_s) + basis_var
    if not window_s > 0.0:
        raise ValueError(f"window_s {window_s} must be > 0")
    if tau >= window_s:
        return log_moneyness, diffusion * (tau - 2.0 * window_s / 3.0 + lag_s) + basis_var
    w = tau / window_s
    ahead = w * w * (diffusion * (tau / 3.0 + lag_s) + basis_var)
    if partial_log_moneyness is not None:
        return (1.0 - w) * partial_log_moneyness + w * log_moneyness, ahead
    # The elapsed part unknown: a reversed Brownian path behind the price we see, priced
    # on the exchange like the part ahead (so the basis and lag apply to all of it).
    behind = (1.0 - w) ** 2 * diffusion * (window_s - tau) / 3.0
    lag_and_basis = (1.0 - w * w) * (diffusion * lag_s + basis_var)
    return log_moneyness, ahead + behind + lag_and_basis


def prob_up_from_moments(mean: float, variance: float, tail_dof: float | None) -> float:
    """F(mean / sqrt(variance)); decided (ties go Up) when nothing is left random."""
    if variance <= 0.0:
        return 1.0 if mean >= 0.0 else 0.0
    return prob_up(mean, 1.0, variance, tail_dof)


def model_prob_up(log_moneyness: float, sigma_per_sqrt_s: float, tau_s: float, lag_s: float,
                  basis_sd: float, tail_dof: float | None, variance_scale: float = 1.0, *,
                  settlement: Settlement = "point", window_s: float = 60.0,
                  partial_log_moneyness: float | None = None) -> float:
    """P(up) with the basis/lag allowance: variance scale * sigma^2 (tau + lag) + basis^2
    under point settlement, the moments of ``settlement_moments`` under TWAP.

    With no allowance (point) this is ``prob_up``; with one, the outcome is uncertain even at
    expiry (the reference, not the price we see, settles), so it is never a hard 0 or 1.
    """
    if settlement == "twap":
        mean, var = settlement_moments(
            log_moneyness, sigma_per_sqrt_s, tau_s, lag_s, basis_sd, variance_scale,
            settlement="twap", window_s=window_s, partial_log_moneyness=partial_log_moneyness)
        return prob_up_from_moments(mean, var, tail_dof)
    tau = max(0.0, tau_s)
    var = variance_scale * sigma_per_sqrt_s * sigma_per_sqrt_s * (tau + lag_s) \
        + basis_sd * basis_sd
    if var <= 0.0 or sigma_per_sqrt_s <= 0.0:
        return prob_up(log_moneyness, sigma_per_sqrt_s, tau_s, tail_dof)
    # The same closed form at an effective time left carrying the extra variance.
    return prob_up(log_moneyness, sigma_per_sqrt_s, var / (sigma_per_sqrt_s ** 2), tail_dof)


def prob_up(
    log_moneyness: float,
    sigma_per_sqrt_s: float,
    tau_s: float,
    tail_dof: float | None = None,
) -> float:
    """P(up) for log moneyness ln(S/K), volatility per sqrt-second and seconds to close.

    At or past expiry (``tau_s <= 0``) or with zero volatility the outcome is decided: 1.0 when
    ``log_moneyness >= 0`` (ties go Up), else 0.0.  Otherwise exactly 0.5 at the money and
    clipped to [PROB_MIN, PROB_MAX].  ``tail_dof`` (> 2) switches F to a Student-t with that
    many degrees of freedom, rescaled to unit variance so ``sigma`` keeps its meaning.
    """
    if not math.isfinite(log_moneyness):
        raise ValueError(f"log_moneyness {log_moneyness} is not finite")
    if not (sigma_per_sqrt_s >= 0.0 and math.isfinite(sigma_per_sqrt_s)):
        raise ValueError(f"sigma_per_sqrt_s {sigma_per_sqrt_s} must be finite and >= 0")
    if math.isnan(tau_s):
        raise ValueError("tau_s is NaN")
    if tail_dof is not None and not tail_dof > 2.0:
        raise ValueError(f"tail_dof {tail_dof} must be > 2 for a finite variance")

    scale = sigma_per_sqrt_s * math.sqrt(tau_s) if tau_s > 0.0 else 0.0
    if scale == 0.0:
        return 1.0 if log_moneyness >= 0.0 else 0.0
    if log_moneyness == 0.0:
        return 0.5
    # Compute the smaller tail directly and take its complement, so the result is accurate far
    # out of the money and prob_up(x) + prob_up(-x) == 1 up to one rounding.
    z = abs(log_moneyness) / scale
    if tail_dof is None:
        tail = 0.5 * math.erfc(z / _SQRT2)
    else:
        tail = float(special.stdtr(tail_dof, -z * math.sqrt(tail_dof / (tail_dof - 2.0))))
    p = 1.0 - tail if log_moneyness > 0.0 else tail
    return min(PROB_MAX, max(PROB_MIN, p))


def ewma_sigma_per_sqrt_s(
    close: npt.NDArray[np.float64], interval_s: float, lam: float, floor: float
) -> float:
    """EWMA volatility of log returns of ``close`` (oldest first), per sqrt-second.

    Zero-mean RiskMetrics variance with normalised weights: the newest squared return weighs 1,
    the one before ``lam``, then ``lam**2`` ..., divided by the weights' sum.  Normalising (rather
    than seeding a recursion) keeps short histories unbiased.  The per-interval variance is
    divided by ``interval_s`` to get per-second units.  Non-finite or non-positive closes are
    dropped; fewer than two usable closes, or a result below ``floor``, give ``floor``.
    """
    if not interval_s > 0.0:
        raise ValueError(f"interval_s {interval_s} must be > 0")
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam {lam} must be in (0, 1)")
    c = np.asarray(close, dtype=np.float64)
    good = np.isfinite(c) & (c > 0.0)
    if not good.all():
        c = c[good]
    if c.shape[0] < 2:
        return floor
    r = np.diff(np.log(c))
    w = lam ** np.arange(r.shape[0] - 1, -1, -1, dtype=np.float64)
    var = float(np.dot(w, r * r) / w.sum())
    sigma = math.sqrt(var / interval_s)
    if not math.isfinite(sigma):
        return floor
    return max(floor, sigma)


def estimate_fair_value(
    snapshot: MarketSnapshot,
    *,
    model: FairValueModel | None = None,
    sigma_floor_per_sqrt_s: float | None = None,
    tail_dof: float | None = None,
    ewma_lambda_1m: float | None = None,
) -> FairValueEstimate | None:
    """The agent's P(up) for ``snapshot`` and each side's edge after fees at its best ask.

    ``model`` defaults to the versioned parameters; the keyword overrides replace single
    parameters (studies and tests).  None when the snapshot has no usable (present and finite)
    price to beat: without it there is no fair value and the agent must not trade.
    """
    m = model if model is not None else default_model()
    floor = m.sigma_floor_per_sqrt_s if sigma_floor_per_sqrt_s is None else sigma_floor_per_sqrt_s
    dof = m.tail_dof if tail_dof is None else tail_dof
    lam_1m = m.ewma_lambda_1m if ewma_lambda_1m is None else ewma_lambda_1m
    if not (floor > 0.0 and math.isfinite(floor)):
        # A zero floor lets flat candles give sigma 0, i.e. certainty long before the close.
        raise ValueError(f"sigma_floor_per_sqrt_s {floor} must be finite and > 0")
    k = snapshot.price_to_beat
    if k is None or not math.isfinite(k):
        return None
    s = snapshot.price
    tau = snapshot.time_to_close_s
    candles = snapshot.candles
    lam = lam_1m ** (candles.interval_s / 60.0)
    sigma = ewma_sigma_per_sqrt_s(
        np.asarray(candles.close, dtype=np.float64),
        candles.interval_s,
        lam,
        floor,
    )
    x = math.log(s / k)
    # The price is as old as its stamp (a 5-minute candle's close can be minutes old): it can
    # have moved since, as can the reference relative to it.
    lag = max(0.0, snapshot.as_of - snapshot.price_ts) + m.reference_lag_s
    partial = snapshot.settlement_partial_mean
    model_up = model_prob_up(
        x, sigma, tau, lag, m.basis_sd, dof, m.variance_scale(tau),
        settlement=snapshot.settlement, window_s=snapshot.settlement_window_s,
        partial_log_moneyness=None if partial is None else math.log(partial / k))

    market_up_mid = snapshot.up.mid if snapshot.up is not None else None
    if market_up_mid is None and snapshot.down is not None:
        down_mid = snapshot.down.mid
        market_up_mid = None if down_mid is None else 1.0 - down_mid
    fair_up, weight = model_up, 0.0
    if market_up_mid is not None and m.blend_market_weight > 0.0 and _book_usable(snapshot, m):
        fair_up = blend(model_up, market_up_mid, m.blend_model_weight, m.blend_market_weight)
        weight = m.blend_market_weight

    fees = snapshot.fee_schedule
    up_ask = snapshot.up.ask if snapshot.up is not None else None
    down_ask = snapshot.down.ask if snapshot.down is not None else None
    fee_up = edge_up = fee_down = edge_down = None
    if up_ask is not None:
        fee_up = fees.per_share(up_ask)
        edge_up = fair_up - (up_ask + fee_up)
    if down_ask is not None:
        fee_down = fees.per_share(down_ask)
        edge_down = (1.0 - fair_up) - (down_ask + fee_down)

    return FairValueEstimate(
        fair_up=fair_up,
        price=s,
        price_to_beat=k,
        price_to_beat_verified=snapshot.price_to_beat_verified,
        time_to_close_s=tau,
        sigma_per_sqrt_s=sigma,
        log_moneyness=x,
        up_ask=up_ask,
        down_ask=down_ask,
        market_up_mid=market_up_mid,
        fee_up_per_share=fee_up,
        fee_down_per_share=fee_down,
        edge_after_fees_up=edge_up,
        edge_after_fees_down=edge_down,
        model_up=model_up,
        market_weight=weight,
        lag_s=lag,
        basis_sd=m.basis_sd,
        tail_dof=dof,
        model_version=m.version,
    )


def _book_usable(snapshot: MarketSnapshot, m: FairValueModel) -> bool:
    """A two-sided Up (or Down) book no wider than the blend's limit."""
    for book in (snapshot.up, snapshot.down):
        if book is not None and book.bid is not None and book.ask is not None:
            return book.ask - book.bid <= m.blend_max_spread + 1e-12
    return False
