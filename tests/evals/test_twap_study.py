"""P(up) under point vs TWAP settlement on real 1-minute BTC paths (evals.twap_study).

Run with ``-s`` to see the table.  Real data: the shared Binance BTCUSDT 1-minute history;
skipped when it is not on this machine.
"""

from __future__ import annotations

import calendar
import time
from pathlib import Path

import pytest

from evals.forecast import load_minute_candles
from evals.twap_study import format_table, twap_table

HISTORY = Path(__file__).resolve().parents[3] / "shared" / "data" / "btc" / \
    "binance_btcusdt_spot_1m_2021_2025.csv.gz"
# A few real windows: calm and busy hours in different years (chosen by date, not outcome).
WINDOWS = ("2021-05-12T13:00:00Z", "2022-07-13T15:15:00Z", "2023-04-20T12:00:00Z",
           "2024-08-05T03:30:00Z", "2025-03-10T14:45:00Z", "2025-07-14T20:00:00Z")


def _ts(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%SZ"))


@pytest.mark.skipif(not HISTORY.is_file(), reason="shared 1-minute history not present")
def test_point_vs_twap_on_real_windows() -> None:
    rows = twap_table(load_minute_candles(HISTORY), [_ts(w) for w in WINDOWS])
    print("\n" + format_table(rows))
    assert len(rows) == 5 * len(WINDOWS)
    for r in rows:
        # The average is less uncertain than a point: same side of 1/2, further from it
        # (the clip at PROB_MAX aside).
        assert (r.point_up - 0.5) * (r.twap_up - 0.5) >= 0.0
        assert abs(r.twap_up - 0.5) >= abs(r.point_up - 0.5) - 1e-12
    # The gap is largest when the average is most of what is left (1 minute left).
    by_left = {left: [abs(r.twap_up - r.point_up) for r in rows if r.minutes_left == left]
               for left in (1, 5)}
    assert sum(by_left[1]) > sum(by_left[5])
