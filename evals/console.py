"""Terminal output of the eval that the CLI prints as is: skipped windows, the verdict, and the
``--compare`` flow with its side-by-side table (rich renderables; no argument parsing here)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from core.settings import Settings
from evals.compare import compare_summaries, comparison_rows, parse_traders, run_comparison
from evals.runner import EvalOptions


def _f(x: Any, spec: str = ".4f") -> str:
    return "-" if x is None else format(x, spec)


def skipped_line(summary: dict[str, Any]) -> str:
    """``windows skipped: price_gap 1, no_book 2`` (or ``none``), and the first reason's detail."""
    skipped = summary.get("windows_skipped") or {}
    if not skipped:
        return "windows skipped: none"
    text = "windows skipped: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
    details = summary.get("windows_skipped_detail") or []
    if details:
        text += f" (first: {details[0]['market_id']}: {details[0]['detail']})"
    return text


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The lines printed under the eval's tables: skips, the verdict, the fee note."""
    lines = [skipped_line(summary)]
    if summary.get("verdict"):
        lines.append(summary["verdict"])
    fees = (summary.get("config") or {}).get("fees")
    if fees and summary.get("trading"):
        by_rate = summary["trading"].get("pnl_by_fee_rate") or []
        lines.append("P&L by fee rate (same trades): " + ", ".join(
            f"{s['label']} ${s['pnl_usd']:,.2f}" for s in by_rate))
    return lines


def comparison_table(rows: list[dict[str, Any]], dataset: str, windows: int) -> Table:
    t = Table(title=f"traders compared on the same {windows} windows of {dataset}",
              title_justify="left")
    for col in ("trader", "Brier", "mid Brier", "trades", "P&L", "95% CI", "hit", "LLM calls",
                "LLM $"):
        t.add_column(col, justify="left" if col == "trader" else "right")
    for r in rows:
        ci = r["pnl_ci95"]
        t.add_row(r["trader"], _f(r["agent_brier"]), _f(r["market_brier"]),
                  "-" if r["trades"] is None else str(r["trades"]),
                  "-" if r["pnl_usd"] is None else f"${r['pnl_usd']:,.2f}",
                  "-" if ci is None else f"[${ci[0]:,.2f}, ${ci[1]:,.2f}]",
                  _f(r["hit_rate"], ".1%"), str(r["llm_calls"]), f"${r['llm_usd']:.4f}")
    return t


def compare_command(dataset_dir: str | Path, traders_text: str, options: EvalOptions,
                    settings: Settings, *, out: Console, err: Console,
                    json_out: Path | None, report: Path | None) -> None:
    """``updown eval --dataset D --compare quant,llm``: replay, print, write JSON/report.
    Bad input raises EvalInputError / DatasetError (one line, exit 2) before any replay."""
    from evals.report import eval_report

    traders = parse_traders(traders_text)

    def on_start(trader: str, feed: Any, total: int) -> None:
        err.print(f"[bold]updown eval[/] {feed.dataset.name}: trader {trader}, "
                  f"{len(feed.markets)} windows, {total} decision points every "
                  f"{options.cadence_s:g}s", highlight=False)

    results = run_comparison(dataset_dir, traders, options, settings, on_start=on_start)
    data, summaries = compare_summaries(results)
    out.print(comparison_table(data["comparison"], data["dataset"], data["windows"]))
    out.print(skipped_line(summaries[0][1]), highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n",
                            encoding="utf-8")
        out.print(f"json: {json_out}")
    if report is not None:
        first_name, first = results[0]
        html = eval_report(first, summaries[0][1], min_edge=settings.min_edge,
                           comparison=comparison_rows(summaries))
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(html, encoding="utf-8")
        out.print(f"report: {report} (details of {first_name}, all traders compared)")
