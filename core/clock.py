"""Clocks and the trading day.  ``SystemClock`` is the only place in the project that reads
the wall clock; everything else is handed a time."""

from __future__ import annotations

import math
import time
from typing import Protocol, runtime_checkable

DAY_S = 86_400.0


def trading_day_start(now: float) -> float:
    """Start of the trading day holding ``now``: UTC midnight.  The daily loss limit and the
    daily order cap count from here, in the guard, the portfolio and the eval alike."""
    return math.floor(now / DAY_S) * DAY_S


@runtime_checkable
class Clock(Protocol):
    def now(self) -> float:
        """UTC epoch seconds."""
        ...


class SystemClock:
    """The live runner's clock."""

    def now(self) -> float:
        return time.time()


class ReplayClock:
    """A clock the replay moves forward; it never goes back."""

    def __init__(self, start: float) -> None:
        self._t = start

    def now(self) -> float:
        return self._t

    def advance_to(self, t: float) -> None:
        if t < self._t:
            raise ValueError(f"replay clock cannot go back from {self._t} to {t}")
        self._t = t
