"""A pytest plugin for ``tests/agent/test_window_boundaries.py`` (loaded there with ``-p
boundary_clock``, never by the ordinary suite): before each test it moves the clock to
``LEAD_S`` seconds before a window boundary at least ``MIN_JUMP_S`` ahead.

The clock is libfaketime's, preloaded into the pytest process by the caller and inherited by
every process it starts (the ``updown`` commands under test), all reading one offset from the
file named by ``FAKETIME_TIMESTAMP_FILE`` (``FAKETIME_NO_CACHE=1``: read on every call).  So
the fakes in the test process and the command in its child agree on the time, and the time
runs on at the normal rate from where it was put.

Settings (environment): ``UPDOWN_BOUNDARY_S`` — 900 for a 15-minute boundary, 300 for a
5-minute one that is not also a 15-minute one; ``UPDOWN_BOUNDARY_LEAD_S`` — the lead (3 s
unless given); ``UPDOWN_BOUNDARY_REPORT`` — a JSON file written at the end: per test, the
boundary and the clock at set-up, at the start and at the end of the test body.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

LEAD_S = float(os.environ.get("UPDOWN_BOUNDARY_LEAD_S", "3"))
# Every move takes the clock at least this far forward: a process that did not follow the fake
# clock would be in another window, and the test it serves would fail.
MIN_JUMP_S = 3600.0
QUARTER_S = 900


class BoundaryClock:
    def __init__(self, offset_file: Path, boundary_s: int) -> None:
        self.file = offset_file
        self.boundary_s = boundary_s
        self.offset = float(offset_file.read_text().strip() or 0)
        self.report: dict[str, dict[str, float]] = {}

    def next_boundary(self, after: float) -> int:
        b = math.ceil(after / self.boundary_s) * self.boundary_s
        while self.boundary_s < QUARTER_S and b % QUARTER_S == 0:
            b += self.boundary_s  # a 5-minute boundary that is not a 15-minute one
        return b

    def move_before_a_boundary(self) -> int:
        """Set the clock to ``LEAD_S`` before the next boundary at least MIN_JUMP_S ahead."""
        now = time.time()
        boundary = self.next_boundary(now + MIN_JUMP_S)
        target = boundary - LEAD_S
        self.offset += target - now
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(f"{self.offset:+.6f}\n")
        tmp.replace(self.file)  # whole, for the processes reading it concurrently
        moved = time.time()
        if not target <= moved < target + 1.0:
            raise RuntimeError(
                f"the clock did not move to {target} (reads {moved}): is libfaketime preloaded "
                "with FAKETIME_TIMESTAMP_FILE and FAKETIME_NO_CACHE=1?")
        return boundary


CLOCK = pytest.StashKey[BoundaryClock]()


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("FAKETIME_TIMESTAMP_FILE")
    boundary = os.environ.get("UPDOWN_BOUNDARY_S")
    if not path or boundary not in ("300", "900"):
        raise pytest.UsageError("boundary_clock needs FAKETIME_TIMESTAMP_FILE and "
                                "UPDOWN_BOUNDARY_S=300|900")
    config.stash[CLOCK] = BoundaryClock(Path(path), int(boundary))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    clock = item.config.stash[CLOCK]
    boundary = clock.move_before_a_boundary()
    clock.report[item.nodeid] = {"boundary": boundary, "setup": time.time()}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, Any, Any]:
    row = item.config.stash[CLOCK].report[item.nodeid]
    row["call_start"] = time.time()
    try:
        return (yield)
    finally:
        row["call_end"] = time.time()


def pytest_sessionfinish(session: pytest.Session) -> None:
    report = os.environ.get("UPDOWN_BOUNDARY_REPORT")
    if report and CLOCK in session.config.stash:
        Path(report).write_text(json.dumps(session.config.stash[CLOCK].report, indent=1))
