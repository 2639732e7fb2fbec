"""Window times as a person reads them: UTC time of day, with the date only when it matters."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from core.clock import trading_day_start


def spans_days(timestamps: Iterable[float]) -> bool:
    """Whether the times fall on more than one UTC day (then every label carries its date)."""
    return len({trading_day_start(t) for t in timestamps}) > 1


def utc_label(ts: float, *, with_date: bool = False) -> str:
    """``10:30``, or ``12-26 10:30`` with the date (UTC)."""
    moment = datetime.fromtimestamp(ts, UTC)
    return moment.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def utc_date(ts: float) -> str:
    """``2025-12-26`` (UTC)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d")
