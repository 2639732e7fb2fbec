"""The offline eval of a recorded dataset: replay, then score forecasts, trading, cost, speed.

``run_eval`` loads and validates the dataset (``feeds.recorded``), replays every window through
the live graph (``evals.replay``), and ``summarize`` turns the trace into the eval JSON:

``{"dataset", "windows", "decisions", "forecast": {agent|market|fair_value|coin_flip: {brier,
log_loss, ece, n} or null}, "trading": {trades, pnl_usd, pnl_ci95, hit_rate, fees_usd,
max_stake_usd, max_drawdown_usd, guard_rejections}, "cost": {llm_calls, prompt_tokens,
completion_tokens, usd}, "timing": {decisions_per_s, decision_ms_p50, decision_ms_p99}}``
plus more keys (per-window costs, skips, reliability curves ...).

Scoring rules (see ``evals.metrics`` for the formulas):

* Forecasts are scored at every decision point of every window whose ``markets.csv`` states the
  outcome (the interchange format: an empty outcome means unknown, so the window is skipped).
  All forecasters are scored on the *same* rows: those where the agent and the fair value have
  a probability and, when the dataset has a book, the market has a mid (before a window's
  first book row there is none).  Rows left out are counted by reason in ``forecast_skipped``.
* The agent's P(up) is the trader's ``p_up``: on the deterministic path the fair-value node's
  P(up), which with a usable book is the logit blend of the model with the market mid (weights
  in the fair-value model file; ``fair_value`` here is the model alone); the model's stated
  probability when an LLM decides.  ``market`` is the Up mid (or one minus the
  Down mid); ``coin_flip`` is 0.5.  Without ``book.csv`` the market baseline is null and there
  is no trading block (``"trading": null``): nothing can be bought without a book.
* Trading counts the decisions `updown run` would make (up to a window's entry): guard
  rejections by rule are counted there; decisions after an entry exist only to score forecasts
  and are counted in ``decisions_after_entry``.  P&L is after fees, settled from the recorded
  outcome (or, when a window has none, the outcome derived from the price path, counted in
  ``settled_on_derived_outcome``).  ``max_stake_usd`` is the most capital (price paid plus fee)
  committed at one time; ``return_on_capital`` is P&L over it (return on capital at risk) and
  ``return_on_staked`` is P&L over all capital staked.
"""

from __future__ import annotations

import itertools
import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import UserError
from core.settings import Settings, load_settings
from evals import equity_band, fee_scenarios, methods, metrics
from evals.replay import (
    DecisionRow,
    Progress,
    ReplayResult,
    ReplaySpec,
    SettleRow,
    default_workers,
    replay_dataset,
)
from feeds.recorded import RecordedDataset, load_dataset
from feeds.replay import ReplayFeed

TraderMode = Literal["auto", "quant", "llm"]
FORECASTERS = ("agent", "market", "fair_value", "coin_flip")


class EvalInputError(UserError):
    """The eval cannot run as asked (e.g. no replayable window); one line for the user."""


@dataclass(frozen=True, slots=True)
class EvalOptions:
    cadence_s: float = 30.0
    trader: TraderMode = "auto"
    # None: one per core on the deterministic path, 1 with an LLM.
    workers: int | None = None
    # None: one chunk per worker.
    chunks: int | None = None
    bootstrap_seed: int = metrics.BOOTSTRAP_SEED


@dataclass
class EvalResult:
    dataset: RecordedDataset
    feed: ReplayFeed
    options: EvalOptions
    use_llm: bool
    model: str | None
    replay: ReplayResult
    load_s: float
    replay_s: float
    decisions: list[DecisionRow] = field(default_factory=list)
    settlements: list[SettleRow] = field(default_factory=list)
    # The settings the replay ran with (limits, MAX_PRICE_AGE_S ... for the methods note).
    settings: Settings | None = None


def resolve_use_llm(trader: TraderMode, settings: Settings, *, model_given: bool = False,
                    option: str = "--trader") -> bool:
    if trader == "quant":
        return False
    if trader == "llm":
        if not (settings.llm_enabled or model_given):
            hint = "or use --trader quant" if option == "--trader" else "or leave llm out"
            raise EvalInputError(f"{option} llm needs OPENAI_API_KEY ({hint})")
        return True
    return settings.llm_enabled


@dataclass(frozen=True, slots=True)
class LoadedDataset:
    """A validated dataset and its replay feed, holding only the windows the coverage check
    accepts at the eval's cadence (the rest are counted in ``feed.skipped`` by reason)."""

    dataset: RecordedDataset
    feed: ReplayFeed
    cadence_s: float
    load_s: float


def load_for_eval(dataset_dir: str | Path, cadence_s: float, settings: Settings
                  ) -> LoadedDataset:
    """Load, validate and coverage-check a dataset; DatasetError / EvalInputError (one line)
    when it is malformed or has no usable window."""
    if not cadence_s > 0:
        raise EvalInputError(f"cadence must be > 0 seconds, got {cadence_s}")
    started = time.perf_counter()
    dataset = load_dataset(dataset_dir)
    feed = ReplayFeed(dataset, cadence_s=cadence_s, max_price_age_s=settings.max_price_age_s)
    if not feed.markets:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(feed.skipped.items())) or "none"
        first = f"; first: {feed.skipped_windows[0].detail}" if feed.skipped_windows else ""
        raise EvalInputError(f"dataset {dataset.name}: no usable window (skipped: {skipped})"
                             f"{first}")
    return LoadedDataset(dataset, feed, cadence_s, time.perf_counter() - started)


def run_eval(
    dataset_dir: str | Path,
    options: EvalOptions,
    *,
    settings: Settings | None = None,
    progress: Progress | None = None,
    on_start: Callable[[ReplayFeed, int], None] | None = None,
    chat_model: Any = None,
    loaded: LoadedDataset | None = None,
) -> EvalResult:
    """Load, validate and replay a dataset.  Raises DatasetError / EvalInputError on bad input
    before any work.  ``on_start(feed, decisions)`` is told the total before the replay.
    ``chat_model`` replaces the model built from settings (tests, other providers).
    ``loaded``: a dataset already loaded at this cadence (``--compare`` replays one feed for
    every trader, so all of them decide on the same windows)."""
    if not options.cadence_s > 0:
        raise EvalInputError(f"cadence must be > 0 seconds, got {options.cadence_s}")
    settings = settings or load_settings()
    use_llm = resolve_use_llm(options.trader, settings, model_given=chat_model is not None)
    if loaded is None:
        loaded = load_for_eval(dataset_dir, options.cadence_s, settings)
    elif loaded.cadence_s != options.cadence_s:
        raise ValueError(f"dataset checked at cadence {loaded.cadence_s}, eval at "
                         f"{options.cadence_s}")
    dataset, feed, load_s = loaded.dataset, loaded.feed, loaded.load_s
    total = sum(len(feed.decision_times(m, options.cadence_s)) for m in feed.markets)
    if on_start is not None:
        on_start(feed, total)

    workers = options.workers if options.workers is not None else default_workers(use_llm)
    # The kill switch points into a private directory nothing writes to: a STOP file in the
    # user's working directory is an operational control for live orders, not an eval input.
    with tempfile.TemporaryDirectory(prefix="updown-eval-") as private:
        spec = ReplaySpec(cadence_s=options.cadence_s, use_llm=use_llm,
                          stop_file=str(Path(private) / "STOP-never-created"),
                          chat_model=chat_model)
        started = time.perf_counter()
        replay = replay_dataset(feed, settings, spec, workers=workers, chunks=options.chunks,
                                progress=progress)
        replay_s = time.perf_counter() - started
    model = getattr(chat_model, "model_name", None) or settings.openai_model
    result = EvalResult(dataset=dataset, feed=feed, options=options, use_llm=use_llm,
                        model=str(model) if use_llm else None, replay=replay,
                        load_s=load_s, replay_s=replay_s, settings=settings)
    for item in replay.trace:
        if isinstance(item, DecisionRow):
            result.decisions.append(item)
        else:
            result.settlements.append(item)
    return result


# --- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ForecastRows:
    """The paired rows every forecaster is scored on, plus why others were left out."""

    rows: list[DecisionRow]
    outcome: np.ndarray  # 1.0 Up, 0.0 Down, aligned with rows
    skipped: dict[str, int]
    market_available: bool

    def probabilities(self, forecaster: str) -> np.ndarray:
        if forecaster == "coin_flip":
            return np.full(len(self.rows), 0.5)
        attr = {"agent": "p_agent", "market": "p_market", "fair_value": "p_fair"}[forecaster]
        return np.array([getattr(r, attr) for r in self.rows], dtype=np.float64)


def forecast_rows(result: EvalResult) -> ForecastRows:
    recorded = {m.market_id: m.outcome for m in result.feed.markets}
    market_available = result.dataset.has_book
    rows: list[DecisionRow] = []
    y: list[float] = []
    skipped: Counter[str] = Counter()
    for r in result.decisions:
        outcome = recorded.get(r.market_id)
        if outcome is None:
            skipped["outcome_unknown"] += 1
        elif r.p_agent is None or r.p_fair is None:
            skipped["no_agent_or_fair_value"] += 1
        elif market_available and r.p_market is None:
            skipped["no_market_mid_yet"] += 1
        else:
            rows.append(r)
            y.append(1.0 if outcome == "up" else 0.0)
    return ForecastRows(rows=rows, outcome=np.array(y, dtype=np.float64),
                        skipped=dict(sorted(skipped.items())), market_available=market_available)


def _clean(x: float | None) -> float | None:
    """JSON has no NaN: an undefined number is null."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return None
    return float(x)


def forecast_block(fr: ForecastRows) -> dict[str, dict[str, Any] | None]:
    out: dict[str, dict[str, Any] | None] = {}
    for name in FORECASTERS:
        if (name == "market" and not fr.market_available) or not fr.rows:
            out[name] = None
            continue
        scores = metrics.forecast_scores(fr.probabilities(name), fr.outcome)
        out[name] = {k: (_clean(v) if k != "n" else v) for k, v in scores.items()}
    return out


# Bins of |agent - mid| (probability points): where the agent and the market disagree.
DISAGREEMENT_EDGES = (0.0, 0.02, 0.05, 0.10, 1.0)


def disagreement_block(fr: ForecastRows) -> list[dict[str, Any]] | None:
    """Where the agent's P(up) and the market's mid disagree, who was right?

    Per bin of ``|agent - mid|``: rows, the mean signed disagreement ``agent - mid`` and the
    realised ``outcome - mid`` (the edge a trade toward the agent would have earned before
    fees and spread), plus each forecaster's Brier on those rows.  With no book: None.
    """
    if not fr.market_available or not fr.rows:
        return None
    agent, market, y = fr.probabilities("agent"), fr.probabilities("market"), fr.outcome
    gap = agent - market
    out: list[dict[str, Any]] = []
    for lo, hi in itertools.pairwise(DISAGREEMENT_EDGES):
        sel = (np.abs(gap) >= lo) & (np.abs(gap) < hi)
        n = int(sel.sum())
        if not n:
            out.append({"abs_gap_from": lo, "abs_gap_to": hi, "n": 0})
            continue
        # Signed so that positive means "the outcome moved the way the agent leaned".
        lean = np.sign(gap[sel])
        out.append({
            "abs_gap_from": lo, "abs_gap_to": hi, "n": n,
            "mean_gap": float(np.mean(gap[sel])),
            "realised_edge_toward_agent": float(np.mean(lean * (y[sel] - market[sel]))),
            "agent_brier": float(np.mean((agent[sel] - y[sel]) ** 2)),
            "market_brier": float(np.mean((market[sel] - y[sel]) ** 2)),
        })
    return out


def reliability_block(fr: ForecastRows) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {}
    for name in FORECASTERS:
        if (name == "market" and not fr.market_available) or not fr.rows:
            continue
        out[name] = [
            {"lower": b.lower, "upper": b.upper, "n": b.n, "mean_p": b.mean_p,
             "frequency": b.frequency}
            for b in metrics.reliability_curve(fr.probabilities(name), fr.outcome)
        ]
    return out


@dataclass(frozen=True, slots=True)
class Trade:
    """One filled entry and, when its window settled, its result."""

    window: int
    market_id: str
    t: float
    side: str
    shares: float
    avg_price: float
    notional_usd: float
    fee_usd: float
    edge_after_fees: float | None
    settled_ts: float | None
    outcome: str | None
    outcome_verified: bool
    pnl_usd: float | None


def trades(result: EvalResult) -> list[Trade]:
    """Filled entries in time order, joined with their settlement."""
    settled: dict[str, tuple[SettleRow, dict[str, float]]] = {}
    for s in result.settlements:
        settled[s.market_id] = (s, {p.order_id: p.pnl_usd for p in s.positions})
    out: list[Trade] = []
    for r in result.decisions:
        if r.order is None or r.order.report.status != "filled":
            continue
        rep = r.order.report
        s_row, pnl_by_order = settled.get(r.market_id, (None, {}))
        pnl = pnl_by_order.get(rep.order_id)
        out.append(Trade(
            window=r.window, market_id=r.market_id, t=r.t, side=rep.side, shares=rep.shares,
            avg_price=rep.avg_price or 0.0, notional_usd=rep.notional_usd, fee_usd=rep.fee_usd,
            edge_after_fees=r.edge_after_fees,
            settled_ts=s_row.ts if s_row is not None and pnl is not None else None,
            outcome=s_row.outcome if s_row is not None else None,
            outcome_verified=bool(s_row.outcome_verified) if s_row is not None else False,
            pnl_usd=pnl))
    return out


def trading_block(result: EvalResult, seed: int) -> dict[str, Any]:
    tr = trades(result)
    settled = sorted((t for t in tr if t.pnl_usd is not None),
                     key=lambda t: (t.settled_ts or 0.0, t.t))
    pnl = [t.pnl_usd or 0.0 for t in settled]
    wins = sum(1 for p in pnl if p >= 0)  # the journal's rule: pnl < 0 is a loss
    # P&L per window (0 for windows without a settled trade) for the window bootstrap.
    by_window = dict.fromkeys(
        (s.market_id for s in result.settlements if s.outcome is not None), 0.0)
    settled_at = {s.market_id: s.ts for s in result.settlements if s.outcome is not None}
    for t in settled:
        by_window[t.market_id] = by_window.get(t.market_id, 0.0) + (t.pnl_usd or 0.0)
    lo, hi = metrics.bootstrap_ci(list(by_window.values()), seed=seed)
    band = equity_band.equity_band(
        [equity_band.WindowPnl(mid, settled_at.get(mid, 0.0), v) for mid, v in by_window.items()],
        seed=seed)
    markets = {m.market_id: m for m in result.feed.markets}
    exposure = metrics.max_concurrent_exposure(
        [(t.t, markets[t.market_id].end_ts, t.notional_usd + t.fee_usd) for t in tr])
    pnl_total = float(sum(pnl))
    staked = sum(t.notional_usd + t.fee_usd for t in tr)
    rejections: Counter[str] = Counter()
    for r in result.decisions:
        if not r.after_entry and not r.approved:
            rejections.update(r.rejected_by)
    return {
        "trades": len(tr),
        "pnl_usd": round(pnl_total, 6),
        "pnl_ci95": [round(lo, 6), round(hi, 6)],
        "hit_rate": (wins / len(settled)) if settled else None,
        "fees_usd": round(sum(t.fee_usd for t in tr), 6),
        "max_stake_usd": round(exposure, 6),
        "max_drawdown_usd": round(metrics.max_drawdown(pnl), 6),
        "guard_rejections": dict(sorted(rejections.items())),
        "wins": wins,
        "losses": len(settled) - wins,
        "unsettled": len(tr) - len(settled),
        "settled_on_derived_outcome": sum(1 for t in settled if not t.outcome_verified),
        "staked_usd": round(staked, 6),
        "return_on_capital": (pnl_total / exposure) if exposure > 0 else None,
        "return_on_staked": (pnl_total / staked) if staked > 0 else None,
        "windows_traded": len({t.market_id for t in tr}),
        "bootstrap": {"by": "window", "windows": len(by_window),
                      "resamples": metrics.BOOTSTRAP_RESAMPLES, "seed": seed},
        "equity_band": band,
        "pnl_by_fee_rate": fee_scenarios.fee_scenarios(
            [fee_scenarios.FeeTrade(t.avg_price, t.shares, t.fee_usd, t.pnl_usd) for t in tr],
            [result.feed.fee_schedule(m) for m in result.feed.markets]),
    }


def trade_log(result: EvalResult) -> list[dict[str, Any]]:
    """Every filled entry: time, side, price, shares, fee, edge at entry, outcome, P&L."""
    return [{"market_id": t.market_id, "entry_ts": t.t, "side": t.side,
             "price": t.avg_price, "shares": t.shares, "fee_usd": t.fee_usd,
             "edge_after_fees": t.edge_after_fees, "outcome": t.outcome,
             "outcome_verified": t.outcome_verified, "pnl_usd": t.pnl_usd}
            for t in trades(result)]


def fees_block(result: EvalResult) -> dict[str, Any]:
    markets = result.feed.markets
    schedules = [result.feed.fee_schedule(m) for m in markets]
    return {
        "charged": fee_scenarios.dataset_fee_label(schedules),
        "rates": sorted({s.rate for s in schedules}),
        "stated_in_markets_csv": all(m.fee_rate is not None for m in markets),
        "explanation": fee_scenarios.fee_explanation(
            schedules, [m.start_ts for m in markets], [m.fee_rate for m in markets]),
    }


def cost_block(result: EvalResult) -> dict[str, Any]:
    calls = sum(r.llm_calls for r in result.decisions)
    prompt = sum(r.prompt_tokens for r in result.decisions)
    completion = sum(r.completion_tokens for r in result.decisions)
    usd = sum(r.llm_usd for r in result.decisions)
    windows = max(1, len(result.feed.markets))
    decisions = len(result.decisions)
    return {
        "llm_calls": calls, "prompt_tokens": prompt, "completion_tokens": completion,
        "usd": round(float(usd), 6),
        "llm_calls_per_window": calls / windows,
        "tokens_per_window": (prompt + completion) / windows,
        "usd_per_window": usd / windows,
        # The budget is per decision point: at most two (risk manager and trader),
        # and none where no side has an edge after fees.
        "llm_calls_per_decision": calls / max(1, decisions),
        "max_llm_calls_per_decision": max((r.llm_calls for r in result.decisions), default=0),
        "decisions_with_llm": sum(1 for r in result.decisions if r.llm_calls > 0),
        "model": result.model,
    }


def timing_block(result: EvalResult) -> dict[str, Any]:
    lat = [r.latency_s for r in result.decisions]
    n = len(result.decisions)
    rep = result.replay
    return {
        "decisions_per_s": _clean(n / result.replay_s if result.replay_s > 0 else None),
        "decision_ms_p50": _clean(metrics.percentile_ms(lat, 50)),
        "decision_ms_p99": _clean(metrics.percentile_ms(lat, 99)),
        "replay_s": result.replay_s,
        "load_s": result.load_s,
        "workers": rep.workers,
        "chunks": rep.chunks,
        "reruns": rep.reruns,
        "rerun_windows": rep.rerun_windows,
        "graph_decisions": rep.graph_decisions,
    }


def summarize(result: EvalResult) -> dict[str, Any]:
    """The eval JSON (see the module docstring for the contract)."""
    fr = forecast_rows(result)
    unknown = sum(1 for m in result.feed.markets if m.outcome is None)
    forecast = forecast_block(fr)
    settings = result.settings or load_settings()
    feed = result.feed
    config = methods.config_block(
        trader="llm" if result.use_llm else "quant", model=result.model,
        cadence_s=result.options.cadence_s, settings=settings, fees=fees_block(result),
        price_age_bound_s={a: feed.price_age_bound_s(a, settings.max_price_age_s)
                           for a in sorted({m.asset for m in feed.markets})})
    return {
        "dataset": result.dataset.name,
        "windows": len(result.feed.markets),
        "decisions": len(result.decisions),
        "forecast": forecast,
        "disagreement": disagreement_block(fr),
        "trading": trading_block(result, result.options.bootstrap_seed)
        if result.dataset.has_book else None,
        "cost": cost_block(result),
        "timing": timing_block(result),
        "cadence_s": result.options.cadence_s,
        "trader": "llm" if result.use_llm else "quant",
        "has_book": result.dataset.has_book,
        # Windows not replayed at all (ReplayFeed's reasons), and replayed but not scored.
        "windows_skipped": dict(sorted(result.feed.skipped.items())),
        "windows_outcome_unknown": unknown,
        "forecast_skipped": fr.skipped,
        "decisions_after_entry": sum(1 for r in result.decisions if r.after_entry),
        "reliability": reliability_block(fr),
        "notes": list(result.replay.notes),
        "windows_skipped_detail": [
            {"market_id": g.market_id, "reason": g.reason, "at_ts": g.at_ts, "detail": g.detail}
            for g in feed.skipped_windows],
        "verdict": methods.verdict(forecast),
        "trade_log": trade_log(result) if result.dataset.has_book else [],
        "config": config,
    }
