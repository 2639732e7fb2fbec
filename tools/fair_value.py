"""Fair value of the Up token and its edge against the book after taker fees.

Owns ``estimate_fair_value`` and its two pure building blocks:

* ``ewma_sigma_per_sqrt_s``: volatility of log price per sqrt-second from an EWMA of candle
  log returns, with a floor;
* ``prob_up``: P(close >= price to beat) = F(ln(S/K) / (sigma * sqrt(tau))), F the standard
  normal CDF or a unit-variance Student-t CDF.

The model is driftless Brownian log price: over 15 minutes any drift is negligible next to the
volatility, and on 1,440 real BTC windows this form scored Brier 0.155 (docs/venue.md).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy import special

from agent.records import FairValueEstimate
from feeds.snapshot import MarketSnapshot

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
    sigma_floor_per_sqrt_s: float = DEFAULT_SIGMA_FLOOR_PER_SQRT_S,
    tail_dof: float | None = DEFAULT_TAIL_DOF,
    ewma_lambda_1m: float = DEFAULT_EWMA_LAMBDA_1M,
) -> FairValueEstimate | None:
    """Fair P(up) for ``snapshot`` and each side's edge after fees at its best ask.

    None when the snapshot has no usable (present and finite) price to beat: without it there
    is no fair value and the agent must not trade.
    """
    if not (sigma_floor_per_sqrt_s > 0.0 and math.isfinite(sigma_floor_per_sqrt_s)):
        # A zero floor lets flat candles give sigma 0, i.e. certainty long before the close.
        raise ValueError(f"sigma_floor_per_sqrt_s {sigma_floor_per_sqrt_s} must be finite and > 0")
    k = snapshot.price_to_beat
    if k is None or not math.isfinite(k):
        return None
    s = snapshot.price
    tau = snapshot.time_to_close_s
    candles = snapshot.candles
    lam = ewma_lambda_1m ** (candles.interval_s / 60.0)
    sigma = ewma_sigma_per_sqrt_s(
        np.asarray(candles.close, dtype=np.float64),
        candles.interval_s,
        lam,
        sigma_floor_per_sqrt_s,
    )
    x = math.log(s / k)
    fair_up = prob_up(x, sigma, tau, tail_dof)

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

    market_up_mid = snapshot.up.mid if snapshot.up is not None else None
    if market_up_mid is None and snapshot.down is not None:
        down_mid = snapshot.down.mid
        market_up_mid = None if down_mid is None else 1.0 - down_mid

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
    )
