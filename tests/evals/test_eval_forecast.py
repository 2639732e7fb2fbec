"""evals.forecast: the vectorised study equals the agent's own scalar code, window by window.

Histories here are synthetic (seeded random walks, files named synthetic_*), never market
data.  The strongest check converts a synthetic history into a recorded dataset and compares
the study with what ReplayFeed + tools.fair_value + tools.indicators give at each decision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from core.snapshot import Candles
from evals import forecast as fc
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.fair_value import (
    DEFAULT_EWMA_LAMBDA_1M,
    DEFAULT_SIGMA_FLOOR_PER_SQRT_S,
    FairValueModel,
    estimate_fair_value,
    ewma_sigma_per_sqrt_s,
    prob_up,
)
from tools.indicators import analyse_candles

START_MS = 1_800_000_000 * 1000  # a multiple of 900 s


def synthetic_history(path: Path, minutes: int = 700, gap_after: int | None = None,
                      seed: int = 11, volume: bool = True) -> Path:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, minutes)))
    opens = np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 1e-5, minutes))
    vol = rng.gamma(2.0, 5.0, minutes)
    rows = ["open_time_ms,open_time_utc,open,high,low,close,volume,source"]
    for i in range(minutes):
        shift = 20 if gap_after is not None and i >= gap_after else 0  # a 20-minute gap
        t = START_MS + 60_000 * (i + shift)
        v = f"{vol[i]:.4f}" if volume else ""
        rows.append(f"{t},x,{opens[i]:.2f},0,0,{close[i]:.2f},{v},synthetic")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def candles(tmp_path_factory: pytest.TempPathFactory) -> fc.MinuteCandles:
    return fc.load_minute_candles(
        synthetic_history(tmp_path_factory.mktemp("h") / "synthetic_history.csv"))


def _tail(c: fc.MinuteCandles, j: int, with_volume: bool = True) -> Candles:
    sl = slice(j - fc.HISTORY + 1, j + 1)
    close = tuple(c.close[sl].tolist())
    vol = tuple(c.volume[sl].tolist()) if with_volume and c.volume is not None else None
    return Candles(interval_s=60.0, close_ts=tuple(float(t + 60) for t in c.open_time[sl]),
                   open=close, high=close, low=close, close=close, volume=vol)


def test_vectorised_sigma_equals_the_scalar_function(candles: fc.MinuteCandles) -> None:
    sigma = fc.ewma_sigma_tail(candles.close)
    assert np.isnan(sigma[: fc.HISTORY - 1]).all()
    for j in range(fc.HISTORY - 1, len(candles), 37):
        expected = ewma_sigma_per_sqrt_s(candles.close[j - fc.HISTORY + 1: j + 1], 60.0,
                                         DEFAULT_EWMA_LAMBDA_1M, DEFAULT_SIGMA_FLOOR_PER_SQRT_S)
        assert sigma[j] == pytest.approx(expected, rel=1e-12)
    flat = np.full(200, 100.0)  # zero volatility: the floor, like the scalar function
    assert fc.ewma_sigma_tail(flat)[-1] == DEFAULT_SIGMA_FLOOR_PER_SQRT_S


def test_vectorised_prob_up_equals_the_scalar_function() -> None:
    rng = np.random.default_rng(5)
    x = np.concatenate((rng.normal(0, 0.003, 300), [0.0, 1e-9, -1e-9, 0.05, -0.05]))
    sigma = rng.uniform(2e-5, 2e-4, len(x))
    tau = rng.choice(np.arange(60.0, 900.0, 60.0), len(x))
    got = fc.prob_up_vec(x, sigma, tau)
    for i in range(len(x)):
        assert got[i] == pytest.approx(prob_up(float(x[i]), float(sigma[i]), float(tau[i])),
                                       rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("with_volume", [True, False])
def test_vectorised_technical_score_equals_analyse_candles(candles: fc.MinuteCandles,
                                                           with_volume: bool) -> None:
    volume = candles.volume if with_volume else None
    score = fc.technical_score_tail(candles.close, volume)
    checked = 0
    for j in range(fc.HISTORY - 1, len(candles), 11):
        expected = analyse_candles(_tail(candles, j, with_volume)).score
        assert score[j] == pytest.approx(expected, abs=1e-9), j
        checked += 1
    assert checked > 40
    assert len(set(np.round(score[fc.HISTORY - 1:], 6))) > 5  # the votes do vary


def test_study_equals_the_agents_replay(tmp_path: Path) -> None:
    """Write the synthetic history as a recorded dataset (1-minute closes stamped at the close,
    price to beat = the window's first open) and compare every decision of the study with the
    fair value and technical score the graph's tools compute on ReplayFeed's snapshot."""
    path = synthetic_history(tmp_path / "synthetic_history.csv", minutes=420)
    c = fc.load_minute_candles(path)
    study = fc.run_study(path)
    d = tmp_path / "synthetic_dataset"
    d.mkdir()
    assert c.volume is not None
    (d / "prices.csv").write_text("ts,price,volume\n" + "".join(
        f"{t + 60},{p!r},{v!r}\n" for t, p, v in
        zip(c.open_time.tolist(), c.close.tolist(), c.volume.tolist(), strict=True)))
    starts = sorted(set(study.window_start.tolist()))
    index = {int(t): i for i, t in enumerate(c.open_time.tolist())}
    (d / "markets.csv").write_text("market_id,asset,start_ts,end_ts,price_to_beat\n" + "".join(
        f"syn-{s},BTC,{s},{s + 900},{float(c.open[index[s]])!r}\n" for s in starts))
    feed = ReplayFeed(load_dataset(d))
    by_start = {int(m.start_ts): m for m in feed.markets}
    assert len(starts) == study.windows > 5
    for k in range(len(study.minute)):
        m = by_start[int(study.window_start[k])]
        snap = feed.snapshot_at(m, m.start_ts + 60.0 * int(study.minute[k]))
        # The study's fair_value row is the closed form (no basis, normal tails, no blend).
        fair = estimate_fair_value(snap, model=FairValueModel())
        assert fair is not None
        assert study.p["fair_value"][k] == pytest.approx(fair.fair_up, rel=1e-12, abs=1e-15)
        assert study.sigma[k] == pytest.approx(fair.sigma_per_sqrt_s, rel=1e-12)
        assert study.score[k] == pytest.approx(analyse_candles(snap.candles).score, abs=1e-9)


def test_windows_outcomes_and_skips_by_hand(tmp_path: Path) -> None:
    # 700 synthetic minutes from a 900-aligned start with a 20-minute gap after minute 400.
    path = synthetic_history(tmp_path / "synthetic_history.csv", minutes=700, gap_after=400)
    c = fc.load_minute_candles(path)
    assert fc.blocks(c) == [(0, 400), (400, 700)]
    study = fc.run_study(path)
    # Brute force: a window is scored when all its 15 minutes are in one block and the block
    # holds the 119 minutes before its first minute.
    expected = []
    for a, b in fc.blocks(c):
        for i in range(a, b):
            if c.open_time[i] % 900 == 0 and i + 15 <= b and i - a >= fc.HISTORY - 1:
                expected.append((int(c.open_time[i]), c.close[i + 14] >= c.open[i]))
    assert study.windows == len(expected) > 10
    assert study.minute.tolist()[:14] == list(range(1, 15))
    got = sorted(set(zip(study.window_start.tolist(), study.outcome.tolist(), strict=True)))
    assert got == sorted((s, 1.0 if up else 0.0) for s, up in expected)
    summary = fc.summarize_study(study)
    assert summary["decisions"] == 14 * len(expected)
    assert [r["minutes_left"] for r in summary["by_minutes_left"]] == list(range(14, 0, -1))
    assert sum(r["n"] for r in summary["by_vol_regime"]) == summary["decisions"]
    assert summary["forecast"]["coin_flip"]["brier"] == 0.25
    touched = len(set((c.open_time // 900).tolist()))
    warm = sum(1 for a, b in fc.blocks(c) for i in range(a, b)
               if c.open_time[i] % 900 == 0 and i + 15 <= b and i - a < fc.HISTORY - 1)
    complete = len(expected) + warm
    assert summary["windows_skipped"] == {"incomplete_window": touched - complete,
                                          "warm_up": warm}


def test_logistic_fit_recovers_known_coefficients() -> None:
    rng = np.random.default_rng(2)
    x = rng.uniform(-1, 1, 20_000)
    y = (rng.uniform(size=x.size) < 1 / (1 + np.exp(-(0.3 + 1.2 * x)))).astype(float)
    a, b = fc.fit_logistic(np.column_stack((np.ones_like(x), x)), y)
    assert a == pytest.approx(0.3, abs=0.08)
    assert b == pytest.approx(1.2, abs=0.12)


def test_history_cli_writes_json_and_report(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from agent.cli.app import app

    monkeypatch.setattr("core.logs.configure", lambda *a, **k: None)

    path = synthetic_history(tmp_path / "synthetic_history.csv", minutes=500)
    out, report = tmp_path / "h.json", tmp_path / "h.html"
    result = CliRunner().invoke(app, ["eval", "--history", str(path), "--json", str(out),
                                      "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["history"] == "synthetic_history.csv"
    assert set(data["forecast"]) >= {"fair_value", "technical", "coin_flip"}
    assert {"brier", "log_loss", "ece", "n", "auc"} <= set(data["forecast"]["fair_value"])
    assert len(data["by_minutes_left"]) == 14
    assert [r["regime"] for r in data["by_vol_regime"]] == ["low", "mid", "high"]
    html = report.read_text()
    for name in ("reliability", "brier-by-minutes", "regimes", "auc-by-minutes"):
        assert f'id="plot-{name}" ' in html
    assert html.count("data:image/png;base64,") == 4
    assert "http://" not in html
    assert "https://" not in html
