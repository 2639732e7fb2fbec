"""The tests whose window comes from the wall clock pass whatever the time of day.

They run again here, side by side in pytest subprocesses under libfaketime, whose
``boundary_clock`` plugin moves the clock before each test to shortly before a window
boundary: 3 s before a 15-minute boundary; 3 s before a 5-minute boundary that is not a
15-minute one; and, for the tests whose command runs for seconds, 6 s before a 15-minute
boundary, so that it passes while the command runs (``updown`` takes 2-3 s to start).  The
commands inherit the preload and read the same offset file, so the fakes and the commands agree
on the (fake) time, which runs on from there at the normal rate.

libfaketime is Debian's ``faketime`` package; ``.ci/run`` installs it.  Without it this test
fails under CI (``CI`` set) and skips, saying so, elsewhere.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from boundary_clock import QUARTER_S

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]
FEED_CLI = "tests/agent/test_feed_cli.py::"
# Every test that drives a command reading the wall clock for the current 5- or 15-minute
# window.  (The runners' tests use windows seconds long and cross boundaries in every run; the
# live-order tests place synthetic markets relative to the clock, with no boundary in them.)
LONG_RUNNING = (FEED_CLI + "test_stream_json_prints_the_venue_prices_across_a_disconnect",
                FEED_CLI + "test_record_writes_a_dataset_that_loads")
CLOCK_SENSITIVE = (*LONG_RUNNING,
                   FEED_CLI + "test_markets_lists_current_and_next_with_tokens_and_prices")
LIBFAKETIME_GLOBS = ("/usr/lib/*/faketime/libfaketime.so.1", "/usr/lib/faketime/libfaketime.so.1",
                     "/usr/local/lib/faketime/libfaketime.so.1")


@dataclass(frozen=True)
class Run:
    boundary_s: int
    lead_s: float
    tests: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.boundary_s}s-{self.lead_s:g}s"


RUNS = (Run(QUARTER_S, 3.0, CLOCK_SENSITIVE), Run(300, 3.0, CLOCK_SENSITIVE),
        Run(QUARTER_S, 6.0, LONG_RUNNING))


def libfaketime() -> str | None:
    for pattern in LIBFAKETIME_GLOBS:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


def start(run: Run, lib: str, tmp: Path) -> subprocess.Popen[str]:
    offset = tmp / f"{run.name}.offset"
    offset.write_text("+0\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKETIME")}
    env.update({
        "LD_PRELOAD": " ".join(filter(None, (lib, env.get("LD_PRELOAD")))),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        "FAKETIME_NO_CACHE": "1",  # every process reads each move at once
        "UPDOWN_BOUNDARY_S": str(run.boundary_s),
        "UPDOWN_BOUNDARY_LEAD_S": str(run.lead_s),
        "UPDOWN_BOUNDARY_REPORT": str(tmp / f"{run.name}.json"),
        "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT / "tests" / "support"),
                                                    env.get("PYTHONPATH")))),
    })
    with (tmp / f"{run.name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "boundary_clock",
             "-p", "no:cacheprovider", *run.tests],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)


def forget_shared_memory(pid: int) -> None:
    """libfaketime's first process leaves its shared memory and semaphore behind."""
    for name in (f"faketime_shm_{pid}", f"sem.faketime_sem_{pid}"):
        with contextlib.suppress(OSError):
            (Path("/dev/shm") / name).unlink()


def check(run: Run, report: dict[str, dict[str, float]]) -> None:
    # Every selected test ran its body (none skipped) ...
    assert {nodeid.split("[")[0] for nodeid in report} == set(run.tests), report
    for nodeid, row in report.items():
        b = row["boundary"]
        assert b % run.boundary_s == 0, row
        assert (b % QUARTER_S == 0) == (run.boundary_s == QUARTER_S), row
        # ... set up at the lead before the boundary, on a clock that moved on ...
        assert b - run.lead_s <= row["setup"] < b - run.lead_s + 0.5, (nodeid, row)
        assert row["call_end"] > row["call_start"] > row["setup"], (nodeid, row)
        # ... across the boundary when it runs for seconds.
        if nodeid in LONG_RUNNING:
            assert row["call_end"] > b, (nodeid, row)


def test_clock_sensitive_tests_pass_3s_before_a_5_and_a_15_minute_boundary(
        tmp_path: Path) -> None:
    lib = libfaketime()
    if lib is None:
        message = ("libfaketime not found (" + ", ".join(LIBFAKETIME_GLOBS) + "): "
                   "apt-get install faketime")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    procs = [start(run, lib, tmp_path) for run in RUNS]  # side by side: the time of one
    try:
        codes = [proc.wait(240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            forget_shared_memory(proc.pid)
    for run, code in zip(RUNS, codes, strict=True):
        log = (tmp_path / f"{run.name}.log").read_text()
        assert code == 0, f"{run.name}:\n{log[-6000:]}"
        check(run, json.loads((tmp_path / f"{run.name}.json").read_text()))
