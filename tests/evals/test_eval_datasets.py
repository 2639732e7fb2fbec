"""Bad input to ``updown eval``: one line naming the file and row (exit code 2), before any
replay.  Recorded datasets are validated by feeds.recorded; 1-minute histories by
evals.forecast.  All files here are synthetic fixtures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from evalkit import write_synthetic

from core.settings import load_settings
from evals.forecast import load_minute_candles
from evals.runner import EvalInputError, EvalOptions, run_eval
from feeds.recorded import DatasetError

UPDOWN = str(Path(sys.executable).with_name("updown"))


def _edit(path: Path, change: Callable[[list[str]], None]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    change(lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set_cell(lines: list[str], line: int, column: str, value: str) -> None:
    header = lines[0].split(",")
    cells = lines[line - 1].split(",")
    cells[header.index(column)] = value
    lines[line - 1] = ",".join(cells)


def _swap(lines: list[str], line: int) -> None:
    lines[line - 1], lines[line] = lines[line], lines[line - 1]


def _duplicate_ts(lines: list[str], line: int) -> None:
    prev = lines[line - 2].split(",")
    cells = lines[line - 1].split(",")
    cells[0] = prev[0]
    lines[line - 1] = ",".join(cells)


CASES = [
    ("missing column", "prices.csv",
     lambda ls: ls.__setitem__(0, ls[0].replace("price", "prize")),
     ["prices.csv", "row 1", "'price' missing"]),
    ("unsorted", "prices.csv", lambda ls: _swap(ls, 40), ["prices.csv", "row 41", "unsorted"]),
    ("duplicate ts", "prices.csv", lambda ls: _duplicate_ts(ls, 30),
     ["prices.csv", "row 30", "duplicate"]),
    ("price <= 0", "prices.csv", lambda ls: _set_cell(ls, 12, "price", "0"),
     ["prices.csv", "row 12", "must be > 0"]),
    ("negative price", "prices.csv", lambda ls: _set_cell(ls, 13, "price", "-5.5"),
     ["prices.csv", "row 13", "must be > 0"]),
    ("not a number", "prices.csv", lambda ls: _set_cell(ls, 14, "price", "n/a"),
     ["prices.csv", "row 14", "not a number"]),
    ("book price above 1", "book.csv", lambda ls: _set_cell(ls, 7, "up_ask", "1.2"),
     ["book.csv", "row 7", "up_ask", "outside 0..1"]),
    ("book price below 0", "book.csv", lambda ls: _set_cell(ls, 9, "down_bid", "-0.01"),
     ["book.csv", "row 9", "down_bid", "outside 0..1"]),
    ("unknown market id", "book.csv", lambda ls: _set_cell(ls, 5, "market_id", "syn-nope"),
     ["book.csv", "row 5", "unknown market_id 'syn-nope'"]),
    ("book ts going back", "book.csv", lambda ls: _swap(ls, 20),
     ["book.csv", "row 21", "unsorted"]),
    ("missing book column", "book.csv",
     lambda ls: ls.__setitem__(0, ls[0].replace("down_ask,", "down_asks,", 1)),
     ["book.csv", "row 1", "'down_ask' missing"]),
    ("duplicate market", "markets.csv", lambda ls: ls.append(ls[1]),
     ["markets.csv", "row 4", "duplicate market_id"]),
    ("bad outcome", "markets.csv", lambda ls: _set_cell(ls, 2, "outcome", "sideways"),
     ["markets.csv", "row 2", "outcome 'sideways'"]),
]


@pytest.mark.parametrize(("file", "change", "needles"),
                         [pytest.param(f, c, n, id=i) for i, f, c, n in CASES])
def test_bad_dataset_names_file_and_row(tmp_path: Path, file: str,
                                        change: Callable[[list[str]], None],
                                        needles: list[str]) -> None:
    d = write_synthetic(tmp_path, windows=2)
    _edit(d / file, change)
    with pytest.raises(DatasetError) as info:
        run_eval(d, EvalOptions(trader="quant", workers=1), settings=load_settings())
    message = str(info.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message


def test_no_replayable_window_is_a_user_error(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path, windows=1)
    _edit(d / "markets.csv", lambda ls: _set_cell(ls, 2, "start_ts", "1000")
          or _set_cell(ls, 2, "end_ts", "1900"))
    _edit(d / "book.csv", lambda ls: ls.__delitem__(slice(1, None)))
    with pytest.raises(EvalInputError, match="no usable window"):
        run_eval(d, EvalOptions(trader="quant", workers=1), settings=load_settings())


def _history_csv(path: Path, rows: int = 200) -> Path:
    """A synthetic 1-minute history: flat-ish closes on consecutive minutes."""
    start = 1_800_000_000 * 1000
    lines = ["open_time_ms,open,high,low,close,volume"]
    for i in range(rows):
        p = 100.0 + (i % 7) * 0.1
        lines.append(f"{start + 60_000 * i},{p},{p + 0.2},{p - 0.2},{p + 0.05},{1 + i % 3}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


HISTORY_CASES = [
    ("missing column", lambda ls: ls.__setitem__(0, ls[0].replace("close", "last")),
     ["row 1", "'close' missing"]),
    ("unsorted", lambda ls: _swap(ls, 50), ["row 51", "unsorted"]),
    ("duplicate", lambda ls: _duplicate_ts(ls, 60), ["row 60", "duplicate"]),
    ("close <= 0", lambda ls: _set_cell(ls, 70, "close", "0"), ["row 70", "close", "> 0"]),
    ("not a number", lambda ls: _set_cell(ls, 80, "open", "abc"), ["row 80", "not a number"]),
    ("off minute", lambda ls: _set_cell(ls, 90, "open_time_ms",
                                        str(1_800_000_000 * 1000 + 60_000 * 88 + 5)),
     ["row 90", "minute boundary"]),
]


@pytest.mark.parametrize(("change", "needles"),
                         [pytest.param(c, n, id=i) for i, c, n in HISTORY_CASES])
def test_bad_history_names_file_and_row(tmp_path: Path, change: Callable[[list[str]], None],
                                        needles: list[str]) -> None:
    path = _history_csv(tmp_path / "synthetic_history.csv")
    _edit(path, change)
    with pytest.raises(DatasetError) as info:
        load_minute_candles(path)
    assert str(info.value).startswith("synthetic_history.csv")
    for needle in needles:
        assert needle in str(info.value)


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path, windows=2)
    _edit(d / "book.csv", lambda ls: _set_cell(ls, 7, "up_ask", "1.2"))
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_"))}
    out = tmp_path / "out.json"
    proc = subprocess.run([UPDOWN, "eval", "--dataset", str(d), "--json", str(out)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
                          check=False)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: book.csv row 7: up_ask 1.2 is outside 0..1")
    assert not out.exists()


@pytest.mark.parametrize(("args", "error", "needle"), [
    (["--dataset", "no-such-dataset"], "UserError", "dataset not found: no-such-dataset"),
    ([], "UserError", "exactly one of --dataset"),
    (["--dataset", "x", "--history", "y.csv"], "UserError", "exactly one of --dataset"),
    (["--dataset", "x", "--trader", "gpt"], "UserError", "--trader must be"),
    (["--history", "missing.csv"], "DatasetError", "history file 'missing.csv' does not exist"),
])
def test_cli_user_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str],
                         error: str, needle: str) -> None:
    """What `updown eval` raises for main() to print as one line (exit 2, tested above)."""
    import typer
    from typer.testing import CliRunner

    from agent.cli import evaluate

    # The command alone on a plain app: the root's exit path would turn the error into exit 2.
    app = typer.Typer(callback=lambda: None)
    evaluate.register(app)
    monkeypatch.chdir(tmp_path)
    # Leave the process-wide logger alone (CliRunner's stderr is closed after the call).
    monkeypatch.setattr("core.logs.configure", lambda *a, **k: None)
    result = CliRunner().invoke(app, ["eval", *args])
    assert type(result.exception).__name__ == error
    assert needle in str(result.exception)


def test_history_without_a_scorable_window_is_an_error(tmp_path: Path) -> None:
    from evals.forecast import run_study

    path = _history_csv(tmp_path / "synthetic_history.csv", rows=100)  # < 120 min of history
    with pytest.raises(DatasetError, match="no complete 15-minute window"):
        run_study(path)
