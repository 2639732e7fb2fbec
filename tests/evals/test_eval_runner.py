"""evals.runner and evals.replay: the eval JSON, agreement with `updown run`, the parallel
replay being exactly the sequential one (including when its speculative ledger is wrong), and
datasets without a book, with unknown outcomes, with 5-minute and overlapping windows.

Real data: the embedded recording.  Synthetic datasets come from ``evalkit.write_synthetic``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from evalkit import EMBEDDED, embedded_slice, row_view, write_synthetic

from core.settings import Settings, load_settings
from evals import metrics
from evals.replay import DecisionRow, cut_points, plan_chunks
from evals.replay_runner import ReplayRunner
from evals.runner import EvalOptions, EvalResult, forecast_rows, run_eval, summarize
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.journal import Journal

SHAPE = {
    "forecast": {"agent", "market", "fair_value", "coin_flip"},
    "trading": {"trades", "pnl_usd", "pnl_ci95", "hit_rate", "fees_usd", "max_stake_usd",
                "max_drawdown_usd", "guard_rejections"},
    "cost": {"llm_calls", "prompt_tokens", "completion_tokens", "usd"},
    "timing": {"decisions_per_s", "decision_ms_p50", "decision_ms_p99"},
}


def _settings(**overrides: object) -> Settings:
    return load_settings().model_copy(update=overrides)


@pytest.fixture(scope="module")
def embedded_seq() -> EvalResult:
    return run_eval(EMBEDDED, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                    settings=_settings())


def _rows(result: EvalResult) -> list[tuple[object, ...]]:
    return [row_view(r) for r in result.decisions]


def test_json_has_the_contract_shape(embedded_seq: EvalResult) -> None:
    s = summarize(embedded_seq)
    assert {"dataset", "windows", "decisions", "forecast", "trading", "cost", "timing"} <= set(s)
    assert s["dataset"] == "pm15m_20251226_coinbase1m"
    assert s["windows"] == 32
    # 14 decision times per 15-minute window at a 60 s cadence, every one of them decided.
    assert s["decisions"] == 32 * 14 == len(embedded_seq.decisions)
    for block, keys in SHAPE.items():
        assert keys <= set(s[block]), block
    for name in SHAPE["forecast"]:
        assert {"brier", "log_loss", "ece", "n"} <= set(s["forecast"][name])
    lo, hi = s["trading"]["pnl_ci95"]
    assert lo <= s["trading"]["pnl_usd"] <= hi
    assert s["cost"]["llm_calls"] == 0
    assert s["trading"]["bootstrap"]["windows"] == 32  # resampled by window, not by row


def test_forecast_metrics_recomputed_from_rows(embedded_seq: EvalResult) -> None:
    s = summarize(embedded_seq)
    outcome = {m.market_id: m.outcome for m in embedded_seq.feed.markets}
    rows = [r for r in embedded_seq.decisions if r.p_market is not None]
    y = np.array([1.0 if outcome[r.market_id] == "up" else 0.0 for r in rows])
    market = np.array([r.p_market for r in rows])
    fair = np.array([r.p_fair for r in rows])
    assert s["forecast"]["market"]["n"] == len(rows) == s["forecast"]["coin_flip"]["n"]
    assert s["forecast"]["market"]["brier"] == pytest.approx(float(np.mean((market - y) ** 2)))
    assert s["forecast"]["fair_value"]["brier"] == pytest.approx(float(np.mean((fair - y) ** 2)))
    assert s["forecast"]["coin_flip"]["brier"] == 0.25
    # Deterministic trader: the agent's P(up) is the fair value's combined P(up) (model and
    # mid); the fair_value row is the model alone.
    agent = np.array([r.p_agent for r in rows])
    assert s["forecast"]["agent"]["brier"] == pytest.approx(float(np.mean((agent - y) ** 2)))
    assert s["forecast"]["agent"] != s["forecast"]["fair_value"]
    # Rows before a window's first book row have no market mid and are left out for everyone.
    assert s["forecast_skipped"] == {"no_market_mid_yet": len(embedded_seq.decisions) - len(rows)}


def test_trading_matches_updown_run(embedded_seq: EvalResult) -> None:
    """Deciding on after an entry changes nothing in trading: same trades, P&L, rejections."""
    feed = ReplayFeed(load_dataset(EMBEDDED))
    with Journal(":memory:") as journal:
        report = ReplayRunner(feed, _settings(), journal=journal, decision_log=None,
                              cadence_s=60.0, use_llm=False).run()
    s = summarize(embedded_seq)["trading"]
    assert s["trades"] == report.summary.filled > 0
    assert s["pnl_usd"] == pytest.approx(report.summary.pnl_usd, abs=1e-6)
    assert s["fees_usd"] == pytest.approx(report.summary.fees_usd, abs=1e-6)
    assert s["wins"] == report.summary.wins
    assert s["guard_rejections"] == dict(report.summary.rejections)
    # `updown run` stops asking after an entry; the eval's extra decisions are all after one.
    extra = sum(1 for r in embedded_seq.decisions if r.after_entry)
    assert len(embedded_seq.decisions) - extra == report.decisions
    assert all(r.decided_by == "policy" for r in embedded_seq.decisions)


def test_trading_metrics_by_hand(embedded_seq: EvalResult) -> None:
    s = summarize(embedded_seq)["trading"]
    pnl = [p.pnl_usd for st in embedded_seq.settlements for p in st.positions]
    assert s["pnl_usd"] == pytest.approx(sum(pnl), abs=1e-6)
    assert s["max_drawdown_usd"] == pytest.approx(metrics.max_drawdown(pnl), abs=1e-6)
    assert s["hit_rate"] == pytest.approx(sum(p >= 0 for p in pnl) / len(pnl))
    per_window = [sum(p.pnl_usd for p in st.positions) for st in embedded_seq.settlements]
    lo, hi = metrics.bootstrap_ci(per_window)
    assert s["pnl_ci95"] == [pytest.approx(lo, abs=1e-6), pytest.approx(hi, abs=1e-6)]
    costs = [r.order.report.notional_usd + r.order.report.fee_usd
             for r in embedded_seq.decisions if r.order is not None]
    # Windows do not overlap here, so the most at risk at once is the largest single entry.
    assert s["max_stake_usd"] == pytest.approx(max(costs), abs=1e-6)


def test_parallel_replay_is_exactly_the_sequential_one(embedded_seq: EvalResult) -> None:
    par = run_eval(EMBEDDED, EvalOptions(cadence_s=60.0, trader="quant", workers=2, chunks=3),
                   settings=_settings())
    assert par.replay.workers == 2
    assert par.replay.chunks == 3
    assert _rows(par) == _rows(embedded_seq)
    a, b = summarize(par), summarize(embedded_seq)
    for key in ("forecast", "trading", "cost", "decisions", "windows"):
        assert a[key] == b[key], key


def test_wrong_speculation_is_detected_and_replayed_again(tmp_path: Path) -> None:
    """With one order a day, the second chunk's empty speculative ledger is wrong (it started
    alongside the first, which trades): the merge must find it and replay it on the exact
    ledger, ending exactly where one process ends."""
    settings = _settings(max_orders_per_day=1)
    data = embedded_slice(tmp_path, 12)
    seq = run_eval(data, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                   settings=settings)
    par = run_eval(data, EvalOptions(cadence_s=60.0, trader="quant", workers=2, chunks=4),
                   settings=settings)
    assert par.replay.reruns >= 1
    assert par.replay.notes
    assert _rows(par) == _rows(seq)
    s = summarize(par)["trading"]
    assert s == summarize(seq)["trading"]
    assert s["trades"] == 1
    assert s["guard_rejections"]["daily_orders"] > 0


def test_chunks_are_cut_only_between_windows() -> None:
    feed = ReplayFeed(load_dataset(EMBEDDED))
    chunks = plan_chunks(feed, 30.0, 3)
    assert [w for c in chunks for w in c] == list(range(32))
    assert len(chunks) == 3
    sizes = [len(c) for c in chunks]
    assert max(sizes) - min(sizes) <= 1


def test_dataset_without_book_scores_forecasts_only(tmp_path: Path) -> None:
    d = write_synthetic(tmp_path, windows=3, book=False)
    result = run_eval(d, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                      settings=_settings())
    s = summarize(result)
    assert s["has_book"] is False
    assert s["trading"] is None
    assert s["forecast"]["market"] is None
    assert s["forecast"]["agent"]["n"] == s["forecast"]["fair_value"]["n"] == 3 * 14
    assert s["forecast"]["coin_flip"]["brier"] == 0.25
    assert all(r.order is None for r in result.decisions)


def test_unknown_outcome_and_unreplayable_windows_are_counted(tmp_path: Path) -> None:
    early = (f"syn-early-{1_700_000_000}", 1_700_000_000.0, 1_700_000_900.0)
    d = write_synthetic(tmp_path, windows=3, outcomes=["up", None, "down"],
                        extra_markets=[early])
    result = run_eval(d, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                      settings=_settings())
    s = summarize(result)
    assert s["windows"] == 3
    assert s["windows_skipped"] == {"price_starts_late": 1}  # no price before its start
    assert s["windows_outcome_unknown"] == 1
    fr = forecast_rows(result)
    assert fr.skipped["outcome_unknown"] == 14
    assert {r.market_id for r in fr.rows} == {result.feed.markets[0].market_id,
                                              result.feed.markets[2].market_id}


def test_five_minute_and_overlapping_windows(tmp_path: Path) -> None:
    """5-minute markets alone, and 5-minute markets inside 15-minute ones, replay on one
    timeline (the replay clock never goes back) and each decision sees its own window."""
    start = 1_800_000_000
    inner = [(f"syn-5m-{start + k * 300}", float(start + k * 300), float(start + (k + 1) * 300))
             for k in range(3)]
    d = write_synthetic(tmp_path, windows=2, window_s=900, extra_markets=inner)
    result = run_eval(d, EvalOptions(cadence_s=60.0, trader="quant", workers=1),
                      settings=_settings())
    s = summarize(result)
    assert s["windows"] == 5
    assert s["decisions"] == 2 * 14 + 3 * 4
    assert [r.t for r in result.decisions] == sorted(r.t for r in result.decisions)
    for r in result.decisions:
        m = result.feed.markets[r.window]
        assert m.start_ts < r.t < m.end_ts
    feed = ReplayFeed(load_dataset(d))
    # No cut inside the first 15-minute window: the 5-minute ones live in it.
    assert cut_points(feed, range(5)) == [4]

    only_5m = write_synthetic(tmp_path, windows=6, window_s=300, name="five")
    s5 = summarize(run_eval(only_5m, EvalOptions(cadence_s=30.0, trader="quant", workers=1),
                            settings=_settings()))
    assert s5["windows"] == 6
    assert s5["decisions"] == 6 * 9


def test_settlements_follow_the_trace(embedded_seq: EvalResult) -> None:
    assert len(embedded_seq.settlements) == 32
    assert all(isinstance(r, DecisionRow) for r in embedded_seq.decisions)
    assert all(s.outcome in ("up", "down") and s.outcome_verified
               for s in embedded_seq.settlements)


class FakeChatModel:
    """A stand-in chat model: answers every trader question "up, 80" and every risk question
    "medium", and reports 100 prompt + 20 completion tokens per call."""

    model_name = "gpt-4o-mini"

    def __init__(self) -> None:
        self.calls = 0

    def with_structured_output(self, schema: type, **_: object) -> FakeChatModel._Runnable:
        return FakeChatModel._Runnable(self, schema)

    class _Runnable:
        def __init__(self, owner: FakeChatModel, schema: type) -> None:
            self.owner, self.schema = owner, schema

        async def ainvoke(self, prompt: str) -> dict[str, object]:
            from types import SimpleNamespace

            self.owner.calls += 1
            if self.schema.__name__ == "AIAnalysis":
                parsed = self.schema(decision="up", confidence=80, risk_level="low",
                                     reasoning="synthetic answer")
            else:
                parsed = self.schema(risk_level="medium", factors=["synthetic"])
            raw = SimpleNamespace(usage_metadata={"input_tokens": 100, "output_tokens": 20},
                                  additional_kwargs={})
            return {"raw": raw, "parsed": parsed, "parsing_error": None}


def test_llm_trader_costs_and_forecast(tmp_path: Path) -> None:
    model = FakeChatModel()
    data = embedded_slice(tmp_path, 4)
    result = run_eval(data, EvalOptions(cadence_s=60.0, trader="llm"), settings=_settings(),
                      chat_model=model)
    s = summarize(result)
    assert s["trader"] == "llm"
    assert result.replay.workers == 1  # network-bound: one process
    consulted = [r for r in result.decisions if r.llm_calls]
    assert consulted
    # The model is asked (risk manager, then trader) only when an edge exists.
    assert s["cost"]["llm_calls"] == model.calls == 2 * len(consulted)
    assert s["cost"]["prompt_tokens"] == 100 * model.calls
    assert s["cost"]["completion_tokens"] == 20 * model.calls
    # gpt-4o-mini list prices: $0.15 / $0.60 per million tokens.
    assert s["cost"]["usd"] == pytest.approx(model.calls * (100 * 0.15 + 20 * 0.60) / 1e6)
    assert s["cost"]["llm_calls_per_window"] == pytest.approx(model.calls / 4)
    assert s["cost"]["model"] == "gpt-4o-mini"
    # The agent's P(up) is the model's stated 0.8 where it was asked: no longer the fair value.
    assert all(r.p_agent == 0.8 for r in consulted)
    assert s["forecast"]["agent"] != s["forecast"]["fair_value"]
    assert all(r.decided_by == "llm:gpt-4o-mini" for r in consulted)


def test_llm_trader_needs_a_key() -> None:
    from evals.runner import EvalInputError

    with pytest.raises(EvalInputError, match="OPENAI_API_KEY"):
        run_eval(EMBEDDED, EvalOptions(trader="llm"),
                 settings=_settings(openai_api_key=None))


@pytest.mark.parametrize("fee_rate", [0.07, ""])
def test_paper_fills_at_the_recorded_ask_with_the_taker_fee(tmp_path: Path,
                                                            fee_rate: float | str) -> None:
    """Synthetic windows in 2027: an empty fee_rate falls back to the dated schedule (0.07)."""
    d = write_synthetic(tmp_path, windows=6, fee_rate=fee_rate)
    result = run_eval(d, EvalOptions(cadence_s=30.0, trader="quant", workers=1),
                      settings=_settings())
    feed = ReplayFeed(load_dataset(d))
    fills = [r for r in result.decisions if r.order and r.order.report.status == "filled"]
    assert len(fills) >= 3
    for r in fills:
        rep = r.order.report if r.order else None
        assert rep is not None
        snap = feed.snapshot_at(feed.markets[r.window], r.t)
        book = snap.book_for(rep.side)
        assert book is not None
        assert rep.avg_price == book.ask  # the recorded best ask at the decision
        assert book.ask_size is not None
        assert rep.shares <= book.ask_size  # never more than the recorded depth
        p = book.ask
        assert rep.fee_usd == pytest.approx(rep.shares * 0.07 * p * (1 - p), abs=1e-6)
    s = summarize(result)["trading"]
    assert s["fees_usd"] == pytest.approx(sum(r.order.report.fee_usd for r in fills
                                              if r.order), abs=1e-6)
    # P&L after fees: payout 1 per winning share, minus price paid and fee.
    outcome = {m.market_id: m.outcome for m in feed.markets}
    by_hand = sum((rep.shares if rep.side == outcome[rep.market_id] else 0.0)
                  - rep.notional_usd - rep.fee_usd
                  for rep in (r.order.report for r in fills if r.order))
    assert s["pnl_usd"] == pytest.approx(by_hand, abs=1e-5)
