"""Edge checks shared by every feed: the drop reasons, and the jump filter behind "no spikes".

Each parser turns a wire frame into a frozen record or one of these reasons; the counters in
``feeds.ws`` tally them so a run says exactly what it threw away and why.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

# str | bytes -> object; raises ValueError (orjson.JSONDecodeError) on garbage, including
# invalid UTF-8 and the NaN / Infinity constants the stdlib would accept.
json_loads: Callable[[str | bytes], Any] = orjson.loads

NOT_JSON = "not_json"
MISSING_FIELD = "missing_field"
BAD_PRICE = "bad_price"
BAD_SIZE = "bad_size"
SPIKE = "spike"
FUTURE_TS = "future_ts"
DUPLICATE = "duplicate"
OUT_OF_ORDER = "out_of_order"
UNKNOWN_EVENT = "unknown_event"
WRONG_SYMBOL = "wrong_symbol"
UNKNOWN_ASSET = "unknown_asset"
NO_BOOK = "no_book"


class JumpFilter:
    """Rejects a value more than ``max_jump`` (relative) away from the last accepted one.

    A real move (after a long outage, say) is accepted once ``reanchor_after`` consecutive
    rejected values agree with each other within ``max_jump``; so one bad first value cannot
    lock a feed out, and isolated spikes never get in.
    """

    __slots__ = ("_candidate", "_count", "last", "max_jump", "reanchor_after")

    def __init__(self, max_jump: float = 0.10, reanchor_after: int = 20) -> None:
        if not max_jump > 0 or reanchor_after < 1:
            raise ValueError("max_jump must be > 0 and reanchor_after >= 1")
        self.max_jump = max_jump
        self.reanchor_after = reanchor_after
        self.last: float | None = None
        self._candidate: float | None = None
        self._count = 0

    def seed(self, value: float) -> None:
        """Anchor before the first value (e.g. on a backfilled close)."""
        if self.last is None and value > 0:
            self.last = value

    def admits(self, value: float) -> bool:
        """True when ``value`` is accepted; it then becomes the anchor."""
        last = self.last
        if last is not None and abs(value / last - 1.0) > self.max_jump:
            candidate = self._candidate
            if candidate is not None and abs(value / candidate - 1.0) <= self.max_jump:
                self._count += 1
            else:
                self._candidate, self._count = value, 1
            if self._count < self.reanchor_after:
                return False
        self._candidate, self._count = None, 0
        self.last = value
        return True
