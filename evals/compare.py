"""``updown eval --compare quant,llm``: several traders replayed on the same windows.

The dataset is loaded and coverage-checked once; every trader replays that one feed, so the
windows, decision times and forecast rows are identical and only the trader differs.  The
JSON is ``{"dataset", "windows", "traders", "comparison": [row per trader], "results":
{trader: the eval JSON of that trader}}``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.settings import Settings
from evals.replay import Progress
from evals.runner import (
    EvalInputError,
    EvalOptions,
    EvalResult,
    TraderMode,
    load_for_eval,
    resolve_use_llm,
    run_eval,
    summarize,
)
from feeds.replay import ReplayFeed

TRADERS: tuple[TraderMode, ...] = ("auto", "quant", "llm")


def parse_traders(text: str) -> list[TraderMode]:
    """``quant,llm`` -> ["quant", "llm"]; one line naming the problem otherwise."""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    out: list[TraderMode] = []
    for n in names:
        if n not in TRADERS:
            raise EvalInputError(f"--compare: unknown trader {n!r} (use auto, quant or llm)")
        if n in out:
            raise EvalInputError(f"--compare: {n} is listed twice")
        out.append(n)  # type: ignore[arg-type]
    if len(out) < 2:
        raise EvalInputError("--compare needs at least two traders, e.g. quant,llm")
    return out


def check_traders(traders: Sequence[TraderMode], settings: Settings, *,
                  model_given: bool = False) -> None:
    """Fail before any work when a listed trader cannot run (llm without OPENAI_API_KEY)."""
    for t in traders:
        resolve_use_llm(t, settings, model_given=model_given, option="--compare")


def run_comparison(
    dataset_dir: str | Path,
    traders: Sequence[TraderMode],
    options: EvalOptions,
    settings: Settings,
    *,
    chat_model: Any = None,
    progress: Progress | None = None,
    on_start: Callable[[str, ReplayFeed, int], None] | None = None,
) -> list[tuple[str, EvalResult]]:
    """Each trader's eval on one loaded feed, in the order given."""
    check_traders(traders, settings, model_given=chat_model is not None)
    loaded = load_for_eval(dataset_dir, options.cadence_s, settings)
    out: list[tuple[str, EvalResult]] = []
    for trader in traders:
        def started(feed: ReplayFeed, total: int, trader: str = trader) -> None:
            if on_start is not None:
                on_start(trader, feed, total)

        result = run_eval(dataset_dir, replace(options, trader=trader), settings=settings,
                          progress=progress, on_start=started, loaded=loaded,
                          chat_model=chat_model if trader != "quant" else None)
        out.append((trader, result))
    return out


def comparison_rows(summaries: Sequence[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for name, s in summaries:
        agent = s["forecast"].get("agent") or {}
        market = s["forecast"].get("market") or {}
        trading = s.get("trading")
        rows.append({
            "trader": name if name == s["trader"] else f"{name} ({s['trader']})",
            "agent_brier": agent.get("brier"), "market_brier": market.get("brier"),
            "agent_log_loss": agent.get("log_loss"), "n": agent.get("n", 0),
            "trades": trading["trades"] if trading else None,
            "pnl_usd": trading["pnl_usd"] if trading else None,
            "pnl_ci95": trading["pnl_ci95"] if trading else None,
            "hit_rate": trading["hit_rate"] if trading else None,
            "llm_calls": s["cost"]["llm_calls"], "llm_usd": s["cost"]["usd"],
            "decisions": s["decisions"],
        })
    return rows


def comparison_json(dataset: str, windows: Sequence[str],
                    summaries: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    return {"dataset": dataset, "windows": len(windows), "window_ids": list(windows),
            "traders": [n for n, _ in summaries], "comparison": comparison_rows(summaries),
            "results": dict(summaries)}


def compare_summaries(results: Sequence[tuple[str, EvalResult]]
                      ) -> tuple[dict[str, Any], list[tuple[str, dict[str, Any]]]]:
    """The comparison JSON and each trader's eval JSON."""
    summaries = [(name, summarize(r)) for name, r in results]
    first = results[0][1]
    data = comparison_json(first.dataset.name, [m.market_id for m in first.feed.markets],
                           summaries)
    return data, summaries
