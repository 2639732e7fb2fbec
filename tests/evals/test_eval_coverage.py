"""Coverage of recorded datasets: windows whose price path (or book) does not cover their
decision times are skipped with a reason, counted in the JSON, never crash the eval or the
replay runner.  Every dataset here is a slice of the REAL embedded recording
(``data/recorded/pm15m_20251226_coinbase1m``), only cut: prices start late, end early, have a
hole, or a window's book is dropped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from evalkit import cut_embedded

from core.settings import load_settings
from evals.replay_runner import ReplayRunner
from evals.runner import EvalInputError, EvalOptions, run_eval, summarize
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.journal import Journal

UPDOWN = str(Path(sys.executable).with_name("updown"))
W0 = 1766745000.0  # the first embedded window's start; windows are 900 s apart


def _w(i: int) -> float:
    return W0 + 900.0 * i


def _updown(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "LOG_LEVEL": "WARNING"}
    return subprocess.run([UPDOWN, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=300, check=False)


def test_every_kind_of_hole_is_skipped_by_reason_and_counted(tmp_path: Path) -> None:
    # Six real windows: prices start 5 minutes into window 0, a 10-minute hole inside window 2,
    # window 3's book dropped, prices end 5 minutes into window 5.
    d = cut_embedded(tmp_path, "holes", windows=6, price_from=_w(0) + 300,
                     price_to=_w(5) + 300, holes=[(_w(2) + 120, _w(2) + 720)], drop_book=[3])
    out = tmp_path / "eval.json"
    proc = _updown("eval", "--dataset", str(d), "--json", str(out), "--cadence", "60",
                   "--trader", "quant", "--workers", "1", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    data = json.loads(out.read_text())
    assert data["windows_skipped"] == {"no_book": 1, "price_ends_early": 1, "price_gap": 1,
                                       "price_starts_late": 1}
    assert data["windows"] == 2
    assert data["decisions"] == 2 * 14
    by_window = {x["market_id"]: x["reason"] for x in data["windows_skipped_detail"]}
    ids = [f"btc-updown-15m-{int(_w(i))}" for i in range(6)]
    assert by_window == {ids[0]: "price_starts_late", ids[2]: "price_gap", ids[3]: "no_book",
                         ids[5]: "price_ends_early"}
    # The CLI summary says so too, in one line.
    assert "windows skipped: no_book 1, price_ends_early 1, price_gap 1, price_starts_late 1" \
        in proc.stdout.replace("\n", " ")


def test_given_price_to_beat_and_a_late_path_used_to_crash(tmp_path: Path) -> None:
    # With price_to_beat stated, nothing needs a price at the start: before the coverage
    # check the first decisions raised "no BTC price at or before ..." from feeds/replay.py.
    d = cut_embedded(tmp_path, "late", windows=3, price_from=_w(0) + 420, price_to_beat=True)
    result = run_eval(d, EvalOptions(cadence_s=30.0, trader="quant", workers=1),
                      settings=load_settings())
    s = summarize(result)
    assert s["windows_skipped"] == {"price_starts_late": 1}
    gap = s["windows_skipped_detail"][0]
    assert gap["at_ts"] == _w(0) + 30  # the first decision time without a price
    assert "the path starts at 1766745420" in gap["detail"]
    assert s["windows"] == 2


def test_prices_ending_hours_before_the_windows_is_one_line_exit_2(tmp_path: Path) -> None:
    d = cut_embedded(tmp_path, "stale", windows=4, price_to=_w(0) - 3 * 3600)
    out = tmp_path / "eval.json"
    proc = _updown("eval", "--dataset", str(d), "--json", str(out), "--trader", "quant",
                   "--no-progress", cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "no usable window" in lines[0]
    assert "price_ends_early 4" in lines[0]
    assert not out.exists()  # nothing written


def test_coverage_bound_is_the_guards_freshness_bound(tmp_path: Path) -> None:
    # 1-minute closes: a price 62 s old is present (MAX_PRICE_AGE_S 2 + interval 60), a
    # 63 s old one is not.  A hole of one missing close leaves decisions at :30 with a
    # 90 s old price; at cadence 60 (decisions on the minute) it is 120 s old.
    d = cut_embedded(tmp_path, "one_gap", windows=2, holes=[(_w(1) + 300, _w(1) + 420)])
    ds = load_dataset(d)
    feed = ReplayFeed(ds)
    assert feed.price_age_bound_s("BTC") == 62.0
    assert feed.price_age_bound_s("BTC", 5.0) == 65.0
    first, second = feed.markets
    assert feed.coverage_gap(first, 30.0) is None
    gap = feed.coverage_gap(second, 30.0)
    assert gap is not None
    assert (gap.reason, gap.at_ts) == ("price_gap", _w(1) + 390)
    # The same dataset at a cadence whose decisions avoid the hole's old prices.
    assert feed.coverage_gap(second, 450.0) is None  # decisions at +450 only
    assert [m.market_id for m in ReplayFeed(ds, cadence_s=30.0).markets] == [first.market_id]


def test_replay_runner_skips_uncovered_windows_with_the_reason_logged(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `updown run --replay` builds the feed without a cadence: the runner checks coverage
    # itself before any decision, logs each skip and never raises.
    d = cut_embedded(tmp_path, "late_run", windows=3, price_from=_w(0) + 420,
                     price_to_beat=True)
    feed = ReplayFeed(load_dataset(d))
    assert len(feed.markets) == 3  # nothing checked yet: the stated price_to_beat suffices
    with Journal(tmp_path / "j.db") as journal:
        runner = ReplayRunner(feed, load_settings(), journal=journal, decision_log=None,
                              cadence_s=60.0, use_llm=False)
        report = runner.run()
    assert report.windows == 2
    assert report.skipped == {"price_starts_late": 1}
    assert report.decisions >= 2
    logged = capsys.readouterr()
    assert "window_skipped" in logged.out + logged.err
    assert "price_starts_late" in logged.out + logged.err


def test_no_usable_window_in_process_is_an_input_error(tmp_path: Path) -> None:
    d = cut_embedded(tmp_path, "nobook", windows=2, drop_book=[0, 1])
    with pytest.raises(EvalInputError, match=r"no usable window \(skipped: no_book 2\)"):
        run_eval(d, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                 settings=load_settings())
