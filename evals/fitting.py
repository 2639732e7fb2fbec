"""Fitting helpers shared by the forecast studies (``evals.forecast``, ``evals.walkforward``)
and the blend fit (``evals.blend_fit``): a logistic fit and the clipped logit.

They live below the studies so that neither study imports the other for them.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tools.fair_value import PROB_MAX, PROB_MIN

FloatArray = NDArray[np.float64]


def fit_logistic(x: FloatArray, y: FloatArray, iterations: int = 30) -> FloatArray:
    """Maximum-likelihood coefficients of P(y=1) = 1 / (1 + exp(-(X @ c))) by Newton's method
    (``x`` is the design matrix, one row per observation; add a ones column for an intercept).
    """
    c = np.zeros(x.shape[1])
    for _ in range(iterations):
        z = np.clip(x @ c, -30.0, 30.0)
        p = 1.0 / (1.0 + np.exp(-z))
        grad = x.T @ (y - p)
        hess = (x * (p * (1.0 - p))[:, None]).T @ x
        try:
            step = np.linalg.solve(hess, grad)
        except np.linalg.LinAlgError:
            break
        c = c + step
        if float(np.abs(step).sum()) < 1e-10:
            break
    return c


def logit_vec(p: FloatArray) -> FloatArray:
    """``tools.fair_value.logit`` elementwise (clipped to [PROB_MIN, PROB_MAX])."""
    q = np.clip(p, PROB_MIN, PROB_MAX)
    return np.asarray(np.log(q / (1.0 - q)), dtype=np.float64)
