"""The versioned forecasting model: incremental indicators equal TA-Lib's batch on a recorded
price path, the fair value's closed-form cases with the basis/lag allowance, the market blend,
and that every trade the agent takes on a recorded set had positive edge after fees."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import talib

from core.settings import load_settings
from core.snapshot import BookTop, Candles, MarketSnapshot
from evals.runner import EvalOptions, run_eval
from tools import fair_value as fv
from tools.indicators import batch_values
from tools.indicators_stream import ANCHOR_S, IndicatorStream, TechnicalAnalyst, frame_15m

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
FIELDS = ("rsi", "macd", "macd_signal", "macd_hist", "sma_fast", "sma_slow", "ema_fast",
          "ema_slow", "bb_upper", "bb_middle", "bb_lower", "bb_percent_b", "volume_ratio")


@pytest.fixture(scope="module")
def recorded() -> tuple[np.ndarray, np.ndarray]:
    with gzip.open(EMBEDDED / "prices.csv.gz", "rt", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return (np.array([float(r["ts"]) for r in rows]), np.array([float(r["price"]) for r in rows]))


def _candles(ts: np.ndarray, px: np.ndarray, volume: np.ndarray | None = None) -> Candles:
    c = tuple(float(v) for v in px)
    return Candles(interval_s=60.0, close_ts=tuple(float(t) for t in ts), open=c, high=c, low=c,
                   close=c, volume=None if volume is None else tuple(float(v) for v in volume))


def _close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return bool(np.isclose(a, b, rtol=1e-7, atol=1e-6))


# --- incremental indicators ----------------------------------------------------------------


def test_stream_equals_talib_batch_at_every_candle_of_a_recorded_path(
        recorded: tuple[np.ndarray, np.ndarray]) -> None:
    ts, px = recorded
    # The recorded Coinbase closes carry no volume; a deterministic volume column exercises the
    # ratio (it is not market data and only feeds the volume ratio).
    vol = 1.0 + (np.arange(len(px)) % 7)
    stream = IndicatorStream()
    for i in range(len(px)):
        stream.update(float(px[i]), float(vol[i]))
        got = stream.values()
        want = batch_values(_candles(ts[: i + 1], px[: i + 1], vol[: i + 1]))
        for name in FIELDS:
            assert _close(getattr(got, name), getattr(want, name)), (i, name)
    # And directly against TA-Lib on the whole path (not via batch_values).
    v = stream.values()
    assert v.rsi == pytest.approx(float(talib.RSI(px, 14)[-1]), rel=1e-9)
    assert v.macd_hist == pytest.approx(float(talib.MACD(px, 12, 26, 9)[2][-1]), rel=1e-6)
    assert v.ema_slow == pytest.approx(float(talib.EMA(px, 21)[-1]), rel=1e-12)
    assert v.bb_upper == pytest.approx(float(talib.BBANDS(px, 20, 2.0, 2.0)[0][-1]), rel=1e-9)


def test_analyst_is_incremental_and_a_pure_function_of_the_candles(
        recorded: tuple[np.ndarray, np.ndarray]) -> None:
    ts, px = recorded
    live = TechnicalAnalyst()
    for end in range(120, len(px) + 1, 7):
        window = _candles(ts[end - 120: end], px[end - 120: end])
        sig = live.analyse(window)
        fresh = TechnicalAnalyst().analyse(window)
        assert sig == fresh  # the cached/advanced stream gives what a rebuild gives
        anchor = next(i for i, t in enumerate(window.close_ts) if t % ANCHOR_S == 0.0)
        want = batch_values(_candles(ts[end - 120 + anchor: end], px[end - 120 + anchor: end]))
        assert sig.candles_used == 120 - anchor
        for name in FIELDS:
            assert _close(getattr(sig, name), getattr(want, name)), (end, name)


def test_15_minute_frame_takes_only_complete_aligned_candles(
        recorded: tuple[np.ndarray, np.ndarray]) -> None:
    ts, px = recorded
    closes, _ = frame_15m(_candles(ts, px))
    want = [float(p) for t, p in zip(ts, px, strict=True) if t % 900 == 0 and t - 840 >= ts[0]]
    assert closes == want


# --- the fair value: closed-form cases with the versioned model -----------------------------

START = 1_766_723_400.0


def _snapshot(price: float, as_of: float, up: BookTop | None = None,
              down: BookTop | None = None) -> MarketSnapshot:
    c = tuple([100_000.0 + 10.0 * math.sin(i) for i in range(60)])
    ts = tuple(START - 60.0 * (59 - i) for i in range(60))
    return MarketSnapshot(market_id="m", as_of=as_of, window_start=START, window_end=START + 900,
                          price_to_beat=100_000.0, price_to_beat_verified=True, price=price,
                          price_ts=as_of, candles=Candles(interval_s=60.0, close_ts=ts, open=c,
                                                          high=c, low=c, close=c),
                          up=up, down=down, book_ts=as_of, fee_rate=0.07)


def test_versioned_model_closed_form_cases() -> None:
    m = fv.default_model()
    assert m.basis_sd > 0.0
    at = fv.estimate_fair_value(_snapshot(100_000.0, START + 300.0))
    assert at is not None
    assert at.fair_up == 0.5
    assert at.model_up == 0.5
    deep_in = fv.estimate_fair_value(_snapshot(102_000.0, START + 300.0))
    deep_out = fv.estimate_fair_value(_snapshot(98_000.0, START + 300.0))
    assert deep_in is not None
    assert deep_in.fair_up == fv.PROB_MAX
    assert deep_out is not None
    assert deep_out.fair_up == fv.PROB_MIN
    # tau -> 0: without an allowance the price decides (ties Up); with the basis allowance a
    # gap well inside the basis stays uncertain, one far outside it is decided.
    assert fv.model_prob_up(1e-6, 5e-5, 0.0, 0.0, 0.0, None) == 1.0
    assert fv.model_prob_up(0.0, 5e-5, 0.0, 0.0, 0.0, None) == 1.0
    assert fv.model_prob_up(-1e-6, 5e-5, 0.0, 0.0, 0.0, None) == 0.0
    near = fv.model_prob_up(1e-6, 5e-5, 0.0, 0.0, m.basis_sd, m.tail_dof)
    assert 0.5 < near < 0.52
    assert fv.model_prob_up(0.01, 5e-5, 0.0, 0.0, m.basis_sd, m.tail_dof) == fv.PROB_MAX
    # The allowance only widens: the same moneyness is less certain with it.
    assert fv.model_prob_up(5e-4, 5e-5, 60.0, 0.0, m.basis_sd, None) < \
        fv.prob_up(5e-4, 5e-5, 60.0)


def test_without_a_book_the_agent_is_the_model_and_with_one_the_logit_blend() -> None:
    m = fv.default_model()
    t = START + 300.0
    alone = fv.estimate_fair_value(_snapshot(100_030.0, t))
    assert alone is not None
    assert alone.fair_up == alone.model_up
    assert alone.market_weight == 0.0
    up, down = BookTop(bid=0.40, ask=0.42), BookTop(bid=0.58, ask=0.60)
    est = fv.estimate_fair_value(_snapshot(100_030.0, t, up, down))
    assert est is not None
    assert est.model_up == alone.model_up
    z = m.blend_model_weight * fv.logit(alone.fair_up) + m.blend_market_weight * fv.logit(0.41)
    assert est.fair_up == pytest.approx(1.0 / (1.0 + math.exp(-z)), rel=1e-12)
    assert est.market_weight == m.blend_market_weight
    # Edges are computed with the combined P(up).
    assert est.edge_after_fees_up == pytest.approx(
        est.fair_up - (0.42 + 0.07 * 0.42 * 0.58), abs=1e-12)
    # A book wider than the limit is not blended.
    wide = fv.estimate_fair_value(_snapshot(100_030.0, t, BookTop(bid=0.2, ask=0.6), None))
    assert wide is not None
    assert wide.fair_up == wide.model_up


def test_bad_parameter_file_is_one_line_naming_the_field(tmp_path: Path) -> None:
    p = tmp_path / "m.json"
    p.write_text(json.dumps({"params": {"tail_dof": 1.5}}))
    with pytest.raises(ValueError, match=r"params.tail_dof"):
        fv.FairValueModel.load(p)
    p.write_text(json.dumps({"params": {"nope": 1}}))
    with pytest.raises(ValueError, match="unknown field"):
        fv.FairValueModel.load(p)


def test_every_trade_on_the_recorded_set_had_edge_after_fees() -> None:
    settings = load_settings()
    result = run_eval(EMBEDDED, EvalOptions(cadence_s=30.0, trader="quant", workers=1),
                      settings=settings)
    rows = [r for r in result.decisions if r.order is not None]
    assert rows, "the recorded set should produce at least one trade"
    for r in rows:
        assert r.edge_after_fees is not None
        assert r.edge_after_fees >= settings.min_edge - 1e-12 > 0.0
        # The agent scored is the combined P(up); the model is kept beside it.
        assert r.p_agent is not None
        assert r.p_fair is not None


@pytest.mark.parametrize("dataset", [
    EMBEDDED,
    Path(__file__).resolve().parents[3] / "shared" / "data" / "recorded" / "pm15m_20251229_binance",
], ids=["embedded_20251226", "shared_20251229"])
def test_agent_is_within_0_005_brier_of_the_market_mid_on_recorded_sets(dataset: Path) -> None:
    from evals.runner import disagreement_block, forecast_block, forecast_rows

    result = run_eval(dataset, EvalOptions(cadence_s=30.0, trader="quant", workers=1),
                      settings=load_settings())
    fr = forecast_rows(result)
    block = forecast_block(fr)
    # Where agent and mid disagree by 10+ points, the realised edge toward the agent is the
    # mean of sign(agent - mid) * (outcome - mid) over exactly those rows.
    bins = disagreement_block(fr)
    assert bins is not None
    assert sum(b["n"] for b in bins) == len(fr.rows)
    a, mid = fr.probabilities("agent"), fr.probabilities("market")
    wide = np.abs(a - mid) >= 0.10
    if wide.any():
        expected = float(np.mean(np.sign(a - mid)[wide] * (fr.outcome - mid)[wide]))
        assert bins[-1]["realised_edge_toward_agent"] == pytest.approx(expected)
    agent, market, model = block["agent"], block["market"], block["fair_value"]
    assert agent is not None
    assert market is not None
    assert model is not None
    assert agent["n"] == market["n"] > 500
    assert agent["brier"] - market["brier"] <= 0.005
    # The blend is what closes the gap: the model alone is further from the mid.
    assert model["brier"] > agent["brier"]


def test_variance_scale_is_looked_up_by_whole_minutes_left(tmp_path: Path) -> None:
    m = fv.FairValueModel(variance_scale_by_minutes_left=(0.5, 0.8, 1.3))
    assert [m.variance_scale(t) for t in (0.0, 1.0, 60.0)] == [0.5, 0.5, 0.5]
    assert [m.variance_scale(t) for t in (60.5, 120.0, 121.0, 5000.0)] == [0.8, 0.8, 1.3, 1.3]
    assert fv.FairValueModel().variance_scale(300.0) == 1.0
    # A smaller diffusion variance makes the same moneyness more decisive.
    wide = fv.model_prob_up(3e-4, 6e-5, 60.0, 0.0, 0.0, None, 1.0)
    narrow = fv.model_prob_up(3e-4, 6e-5, 60.0, 0.0, 0.0, None, 0.5)
    assert 0.5 < wide < narrow < 1.0
    raw = json.loads(fv.MODEL_PATH.read_text(encoding="utf-8"))
    raw["params"]["variance_scale_by_minutes_left"] = [1.0, -0.2]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(raw), encoding="utf-8")
    with pytest.raises(ValueError, match="variance_scale_by_minutes_left") as err:
        fv.FairValueModel.load(bad)
    assert "\n" not in str(err.value)


def test_walk_forward_variance_scale_never_sees_the_month_it_scores() -> None:
    """Synthetic rows (unit test only): changing the outcomes of the last month leaves every
    earlier month's forecasts unchanged, and the last month's forecasts too (they are chosen
    on earlier months); the all-months fit is what moves."""
    from evals.walkforward import _variance_scaled

    rng = np.random.default_rng(7)
    months, per = 4, 3000
    month = np.repeat(np.arange(months), per).astype(np.int64)
    tau = rng.choice([60.0, 120.0, 300.0], size=month.size)
    sigma = np.full(month.size, 6e-5)
    x = rng.normal(0.0, 6e-5 * np.sqrt(tau))
    # Outcomes from a narrower distribution than sigma claims: a scale below 1 should win.
    y = (x + rng.normal(0.0, 3e-5 * np.sqrt(tau)) >= 0.0).astype(np.float64)
    dof: list[float | None] = [None] * months
    p1, by_month, final1 = _variance_scaled(x, sigma**2 * tau, 0.0, y, tau, month, months,
                                            dof, None)
    y2 = y.copy()
    last = month == months - 1
    y2[last] = 1.0 - y2[last]
    p2, _, _ = _variance_scaled(x, sigma**2 * tau, 0.0, y2, tau, month, months, dof, None)
    assert np.array_equal(p1, p2)
    assert all(s is not None and s < 1.0 for s in by_month[1][1:])
    # Minutes left 1, 2 and 5 have rows; 3 and 4 have none and keep the neutral 1.0.
    assert [final1[i] < 1.0 for i in range(5)] == [True, True, False, False, True]
    assert final1[2] == final1[3] == 1.0


def test_walk_forward_agent_on_the_real_minute_history_meets_the_forecast_bar() -> None:
    """The issue's bar on the 1-minute BTC history (../shared/data/btc), every forecast scored
    by parameters fitted on earlier months: Brier <= 0.160 overall, ECE <= 0.02 at every
    minutes-left of the 1..14 grid, and no worse than the plain +vol model."""
    from evals.forecast import run_study, summarize_study

    history = (Path(__file__).resolve().parents[3] / "shared" / "data" / "btc"
               / "binance_btcusdt_spot_1m_2021_2025.csv.gz")
    wf = summarize_study(run_study(history))["walk_forward"]
    assert wf["decisions_scored"] > 500_000
    assert wf["overall"]["agent"]["brier"] <= 0.160
    assert [r["minutes_left"] for r in wf["by_minutes_left"]] == list(range(14, 0, -1))
    assert max(r["agent"]["ece"] for r in wf["by_minutes_left"]) <= 0.02
    assert wf["overall"]["agent"]["brier"] <= wf["overall"]["+vol"]["brier"]
