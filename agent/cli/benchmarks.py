"""``updown bench``: every benchmark suite behind one command (timing lives in benchmarks,
never in tests).

* ``graph`` (default): decision latency of the whole graph on the deterministic path.
* ``analysts``: per-tick cost of the incremental indicators and the fair value.
* ``eval``: full-graph eval replay and the forecast-only study.
* ``feeds``: a loopback server (a child process) pushes Binance-format trades at ``--rate``
  for ``--seconds`` into the live price path.
"""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from agent.cli import common
from core.errors import UserError

out = Console()

# The feeds suite's bounds: long enough to see GC and memory, short enough for a shared box.
MAX_FEEDS_SECONDS = 600.0
MAX_FEEDS_RATE = 200_000.0


class Suite(StrEnum):
    graph = "graph"
    analysts = "analysts"
    eval = "eval"
    feeds = "feeds"
    latency = "latency"
    dashboard = "dashboard"


def bench(
    suite: Annotated[Suite, typer.Option(
        help="graph: decision latency; analysts: per-tick cost; eval: eval replay and the "
             "forecast study; feeds: live price path under a loopback trade flood; latency: "
             "maker trade-to-cancel and decision-to-order on loopback; dashboard: the "
             "decisions page and API over a large journal.")]
    = Suite.graph,
    dataset: Annotated[str, typer.Option(
        help="graph, analysts, eval: dataset to draw snapshots from.")]
    = "pm15m_20251226_coinbase1m",
    decisions: Annotated[int, typer.Option(
        help="graph: decisions to time; latency: samples per path.", min=10)] = 2000,
    journal_decisions: Annotated[int, typer.Option(
        help="dashboard: decisions in the benchmark's journal.", min=1000)] = 100_000,
    seconds: Annotated[float, typer.Option(
        help=f"feeds: seconds of load (at most {MAX_FEEDS_SECONDS:g}).")] = 60.0,
    rate: Annotated[float, typer.Option(
        help=f"feeds: trade messages per second (at most {MAX_FEEDS_RATE:,.0f}).")] = 50_000.0,
    graph: Annotated[bool, typer.Option(
        help="feeds: run the trading graph once a second during the load.")] = True,
    gc_freeze: Annotated[bool, typer.Option(
        help="feeds: freeze the start-up heap (gc.freeze) as the live runner does.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write figures as JSON.")]
    = None,
) -> None:
    """Benchmarks: graph decision latency (p50/p99), analysts, eval replay, feed load."""
    if suite is Suite.latency:
        from agent.bench.latency import latency_bench_command

        latency_bench_command(decisions, json_out)
        return
    if suite is Suite.dashboard:
        from agent.bench.dashboard import dashboard_bench_command

        if dashboard_bench_command(journal_decisions, json_out) != 0:
            raise typer.Exit(1)
        return
    if suite is Suite.feeds:
        if not (0 < seconds <= MAX_FEEDS_SECONDS):
            raise UserError(f"--seconds must be in (0, {MAX_FEEDS_SECONDS:g}], not {seconds:g}")
        if not (0 < rate <= MAX_FEEDS_RATE):
            raise UserError(f"--rate must be in (0, {MAX_FEEDS_RATE:.0f}], not {rate:g}")
        from agent.bench.feeds import feeds_bench_command

        feeds_bench_command(seconds, rate, with_graph=graph, gc_freeze=gc_freeze,
                            json_out=json_out)
        return
    dataset_dir = common.resolve_dataset(dataset)
    if suite is Suite.eval:
        from agent.bench.eval import eval_bench_command

        eval_bench_command(dataset_dir, json_out)
        return
    if suite is Suite.analysts:
        from agent.bench.analysts import analyst_bench_command

        analyst_bench_command(dataset_dir, json_out)
        return
    _graph_bench(dataset_dir, decisions, json_out)


def _graph_bench(dataset_dir: Path, decisions: int, json_out: Path | None) -> None:
    from agent.bench.graph import run_decision_bench

    result = run_decision_bench(dataset_dir, decisions)
    table = Table(title="graph decision latency (deterministic path)")
    for col in ("decisions", "p50 ms", "p90 ms", "p99 ms", "max ms", "decisions/s"):
        table.add_column(col, justify="right")
    table.add_row(str(result["decisions"]), f"{result['p50_ms']:.3f}", f"{result['p90_ms']:.3f}",
                  f"{result['p99_ms']:.3f}", f"{result['max_ms']:.3f}",
                  f"{result['decisions_per_s']:.0f}")
    out.print(table)
    out.print(f"LangGraph floor (same topology, no-op nodes): p50 "
              f"{result['langgraph_floor_p50_ms']:.3f} ms, p99 "
              f"{result['langgraph_floor_p99_ms']:.3f} ms; snapshot build "
              f"{result['snapshot_build_us']:.0f} us/decision")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``bench`` to the ``updown`` app."""
    app.command()(bench)
