"""The ``updown`` command end to end: the replay, and bad input failing cleanly."""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tools.decision_log import read_all

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
UPDOWN = str(Path(sys.executable).with_name("updown"))


def updown(*args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_"))}
    return subprocess.run([UPDOWN, *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=300, check=False)


def outputs(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    journal, log = tmp_path / "out" / "journal.db", tmp_path / "out" / "decisions.jsonl"
    return journal, log, ["--journal", str(journal), "--decision-log", str(log), "--no-view"]


def assert_clean_failure(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0]


def summary_rows(stdout: str) -> dict[str, str]:
    """The replay summary table as {metric: value} (a value wrapped over rows rejoined)."""
    rows: dict[str, str] = {}
    key = ""
    for line in stdout.splitlines():
        if not line.startswith("│"):
            continue
        name, value = (cell.strip() for cell in line.strip().strip("│").split("│"))
        if name:
            key = name
            rows[key] = value
        else:
            rows[key] += " " + value
    return rows


def test_replay_runs_and_journal_matches_decision_log(tmp_path: Path) -> None:
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(EMBEDDED), "--cadence", "60", *opts, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "replay summary" in proc.stdout
    assert "P&L after fees" in proc.stdout
    records = read_all(log)
    with sqlite3.connect(journal) as db:
        decisions = db.execute("SELECT decision_id, approved FROM decisions").fetchall()
        entries = db.execute("SELECT market_id, COUNT(*) FROM order_intents GROUP BY market_id"
                             ).fetchall()
        settled = db.execute("SELECT COUNT(*) FROM settlements").fetchone()[0]
        filled = db.execute("SELECT COUNT(*) FROM executions WHERE status = 'filled'"
                            ).fetchone()[0]
    assert len(records) == len(decisions) > 0
    assert {r["decision_id"] for r in records} == {d[0] for d in decisions}
    # Every logged decision carries every analyst's record.
    assert all({"technical", "fair_value", "sentiment", "risk", "trader", "verdict"} <= r.keys()
               for r in records)
    assert all(count == 1 for _, count in entries)  # one entry per window
    assert settled == filled  # every window's outcome is recorded, so every fill settles

    # A second replay into the same journal is a separate run and account: it appends.
    again = updown("run", "--replay", str(EMBEDDED), "--cadence", "60", *opts, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
        assert db.execute("SELECT COUNT(*) FROM decisions").fetchone()[0] == 2 * len(decisions)
    assert len(read_all(log)) == 2 * len(records)


def test_invalid_env_value_names_the_variable(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MIN_CONFIDENCE_THRESHOLD=seventy\n")
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(EMBEDDED), *opts, cwd=tmp_path)
    assert_clean_failure(proc, "MIN_CONFIDENCE_THRESHOLD")
    assert not journal.exists()
    assert not log.exists()


def test_invalid_environment_variable_names_it(tmp_path: Path) -> None:
    proc = updown("config", cwd=tmp_path, env={"MAX_POSITION_SIZE": "-5"})
    assert_clean_failure(proc, "MAX_POSITION_SIZE")


def test_missing_dataset(tmp_path: Path) -> None:
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(tmp_path / "nope"), *opts, cwd=tmp_path)
    assert_clean_failure(proc, "dataset not found", "nope")
    assert not journal.exists()
    assert not log.exists()


def _copy_with_prices(tmp_path: Path, edit_line: int, new_line: str | None) -> Path:
    """A copy of the embedded dataset with one prices row replaced (None: swap with next)."""
    dst = tmp_path / "bad"
    shutil.copytree(EMBEDDED, dst)
    with gzip.open(dst / "prices.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    i = edit_line - 1
    if new_line is None:
        lines[i], lines[i + 1] = lines[i + 1], lines[i]
    else:
        lines[i] = new_line
    with gzip.open(dst / "prices.csv.gz", "wt") as f:
        f.write("\n".join(lines) + "\n")
    return dst


def test_corrupt_dataset_row_names_file_and_row(tmp_path: Path) -> None:
    bad = _copy_with_prices(tmp_path, 10, "1766723940.0,not-a-price,coinbase_btcusd_1m")
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(bad), *opts, cwd=tmp_path)
    assert_clean_failure(proc, "prices.csv.gz", "row 10")
    assert not journal.exists()
    assert not log.exists()


def test_unsorted_dataset_row_names_file_and_row(tmp_path: Path) -> None:
    bad = _copy_with_prices(tmp_path, 20, None)
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(bad), *opts, cwd=tmp_path)
    assert_clean_failure(proc, "prices.csv.gz", "row 21", "unsorted")
    assert not journal.exists()
    assert not log.exists()


@pytest.mark.parametrize("column", ["price"])
def test_missing_column_is_named(tmp_path: Path, column: str) -> None:
    dst = tmp_path / "nocol"
    shutil.copytree(EMBEDDED, dst)
    with gzip.open(dst / "prices.csv.gz", "rt") as f:
        text = f.read().replace(f",{column},", ",other,", 1)
    with gzip.open(dst / "prices.csv.gz", "wt") as f:
        f.write(text)
    proc = updown("run", "--replay", str(dst), "--no-view", "--journal",
                  str(tmp_path / "j.db"), cwd=tmp_path)
    assert_clean_failure(proc, "prices.csv.gz", column)
    assert not (tmp_path / "j.db").exists()


def test_make_run_says_when_the_daily_order_cap_ends_trading(tmp_path: Path) -> None:
    """`make run`'s replay at the demo's limits: the summary figures and the one line saying
    why the last 8 windows were not traded.  Without the view, logs go to stderr."""
    _, _, opts = outputs(tmp_path)
    log_file = tmp_path / "logs" / "updown.log"
    proc = updown("run", "--replay", str(EMBEDDED), *opts, cwd=tmp_path,
                  env={"LOG_FILE": str(log_file)})
    assert proc.returncode == 0, proc.stderr
    summary = summary_rows(proc.stdout)
    assert (summary["decisions"], summary["trades filled"], summary["P&L after fees (USDC)"],
            summary["guard rejections"]) == (
        "366", "24", "+6.51", "daily_orders 191, confidence 164, economics 130, timing 2")
    sentence = ("trading stopped at window 25 of 32 (16:30 UTC): daily order cap reached "
                "(MAX_ORDERS_PER_DAY=24); the 32 recorded windows fall on one UTC day — run "
                "with MAX_ORDERS_PER_DAY=32 to trade them all")
    assert [line for line in proc.stdout.splitlines() if "trading stopped" in line] == [sentence]
    assert sentence in (ROOT / "README.md").read_text()
    # --no-view: the log lines on stderr as always, no log file.
    assert proc.stderr.count("decision_id=") == 366
    assert "trading_stopped" in proc.stderr
    assert not log_file.exists()


def test_replay_without_a_usable_window_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A recording whose prices stop 5 minutes into its first window covers no decision
    times: nothing to replay, said in one line, nothing written."""
    short = tmp_path / "short"
    shutil.copytree(EMBEDDED, short)
    first_start = 1766745000.0
    with gzip.open(EMBEDDED / "prices.csv.gz", "rt") as f:
        lines = f.read().splitlines()
    kept = [lines[0]] + [line for line in lines[1:]
                         if float(line.split(",")[0]) < first_start + 300.0]
    with gzip.open(short / "prices.csv.gz", "wt") as f:
        f.write("\n".join(kept) + "\n")
    journal, log, opts = outputs(tmp_path)
    proc = updown("run", "--replay", str(short), *opts, cwd=tmp_path)
    assert_clean_failure(proc, "dataset short: no usable window at a 30s cadence",
                         "price_ends_early 32")
    assert not journal.exists()
    assert not log.exists()
