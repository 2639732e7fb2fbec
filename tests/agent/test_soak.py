"""A small soak (8 accelerated windows) of ``updown run --live`` against loopback feeds and the
fake CLOB venue with faults sprinkled in; the 96-window run is ``tests/soak.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from soakkit import run_soak

pytestmark = pytest.mark.server


def test_soak_eight_windows_live_with_faults(tmp_path: Path) -> None:
    result = run_soak(tmp_path, windows=8, length_s=3, seed=8)
    report = "\n".join(result.lines())
    assert result.exit_code == 0, report + "\n" + (tmp_path / "runner.log").read_text()[-3000:]
    assert result.crashes == 0, report
    assert result.windows == 8, report
    assert sum(result.faults.values()) > 0, report
    assert result.decisions > 0, report
    assert result.orders > 0, report
    assert result.ledger_problems == [], report
    assert result.unresolved == [], report
    # Every filled order the venue knows is in the journal and every one was settled.
    assert result.venue_fills == result.fills or result.order_errors > 0, report
    assert result.unsettled == [], report
