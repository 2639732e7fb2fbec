"""``updown run`` in a maker style (issue 16): the maker desk owns resting orders across
decision ticks on the live feed - post-only bids rest, every one is cancelled at its window's
cut-off (verified), nothing is left resting at exit, and a restart finds what the previous
process left in the journal."""

from __future__ import annotations

import math
import subprocess
import time
from pathlib import Path

from autorunkit import UPDOWN, journal_rows, runner_env
from feedfakes import ThreadedVenue


def _run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    # The timeout only stops a hung child; it is not a speed assertion.
    return subprocess.run([UPDOWN, "run", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=90, check=False)


def test_paper_maker_run_rests_bids_and_cancels_them_at_each_cut_off(tmp_path: Path) -> None:
    length = 6
    with ThreadedVenue(length_s=length, prefix=f"btc-updown-{length}s") as venue:
        venue.http.default_open_price = 99_000.0
        now = math.floor(time.time() / length) * length
        for start in range(now - length, now + 40 * length, length):
            venue.http.close_prices[start] = 99_500.0
        env = runner_env(venue.env(), tmp_path, MARKETS=f"btc-{length}s:synthetic",
                         EXECUTION_STYLE="maker", MAKER_CANCEL_LAST_S="1.5",
                         MAKER_MIN_REPLACE_INTERVAL_S="0.5")
        done = _run(["--windows", "2", "--no-view"], env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    journal = tmp_path / "journal.db"
    rows = journal_rows(journal, "SELECT order_id, market_id, status, reason, post_only,"
                                 " execution_style FROM resting_orders WHERE account = 'paper'")
    assert rows, done.stderr[-3000:]
    assert {r["execution_style"] for r in rows} == {"maker"}
    assert all(r["post_only"] == 1 for r in rows)
    # Nothing is left open: every order filled, was cancelled (cut-off, replace, shutdown)
    # or refused; none rests past its window.
    assert {r["status"] for r in rows} <= {"filled", "cancelled", "rejected"}
    cancelled = [r for r in rows if r["status"] == "cancelled"]
    assert cancelled
    # The execute node sent no taker order in a maker style.
    taker = journal_rows(journal, "SELECT order_id FROM order_intents WHERE account = 'paper'"
                                  " AND order_id NOT LIKE '%/entry'")
    assert taker == []
