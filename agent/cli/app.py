"""The ``updown`` command line: replay runs, benchmarks and configuration checks.

Every failure the user can cause (bad setting, missing or corrupt dataset) ends in one line
on stderr naming the problem and a non-zero exit, before anything is written.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from core.settings import ConfigError, Settings, load_settings
from feeds.recorded import DatasetError

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Autonomous trading agent for Polymarket's BTC Up or Down markets.")
out = Console()
err = Console(stderr=True)

EMBEDDED_DATASETS = Path(__file__).resolve().parents[2] / "data" / "recorded"


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""


def resolve_dataset(name_or_dir: str) -> Path:
    """A dataset directory, or the name of one embedded under data/recorded."""
    path = Path(name_or_dir)
    if path.is_dir():
        return path
    embedded = EMBEDDED_DATASETS / name_or_dir
    if embedded.is_dir():
        return embedded
    raise UserError(f"dataset not found: {name_or_dir} (no such directory, and no embedded "
                    f"dataset of that name in {EMBEDDED_DATASETS})")


def _settings() -> Settings:
    from core.logs import configure

    settings = load_settings()
    configure(settings.log_level, settings.log_json)
    return settings


@app.command()
def run(
    replay: Annotated[str | None, typer.Option(
        "--replay", help="Recorded dataset directory (interchange format) or embedded name; "
        "without it, trade the live feeds.")] = None,
    speed: Annotated[float, typer.Option(
        help="Replay speed: 0 = as fast as possible, 60 = one minute per second.", min=0)] = 0.0,
    cadence: Annotated[float | None, typer.Option(
        help="Seconds between decisions in a window (default DECISION_CADENCE_S).",
        min=1)] = None,
    journal: Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
    = None,
    decision_log: Annotated[Path | None, typer.Option(
        help="JSONL decision log (default AI_DECISION_LOG_PATH).")] = None,
    view: Annotated[bool, typer.Option(help="Live terminal view of each decision.")] = True,
    live: Annotated[bool, typer.Option(
        "--live", help="Live feeds, real money: needs POLYMARKET_MODE=live and the "
        "confirmation (default: paper trading against the live book).")] = False,
    markets: Annotated[str | None, typer.Option(
        help="Markets to trade, e.g. btc-15m,eth-5m (default MARKETS).")] = None,
    windows: Annotated[int | None, typer.Option(
        help="Stop after this many windows per market (default: run until stopped).",
        min=1)] = None,
    checkpoints: Annotated[Path | None, typer.Option(
        help="LangGraph SQLite checkpoints, one thread per window (default CHECKPOINT_PATH).")]
    = None,
) -> None:
    """Run the autonomous loop: live feeds (paper unless --live), or --replay a recording."""
    if replay is None:
        _run_live(cadence=cadence, journal=journal, decision_log=decision_log, view=view,
                  live=live, markets=markets, windows=windows, checkpoints=checkpoints)
        return
    if live or markets is not None or windows is not None or checkpoints is not None:
        raise UserError("--replay runs in paper mode over the recording: --live, --markets, "
                        "--windows and --checkpoints are for live runs")
    from agent.view import ReplayView, summary_table
    from evals.replay_runner import ReplayRunner
    from feeds.recorded import load_dataset
    from feeds.replay import ReplayFeed
    from tools.decision_log import DecisionLog
    from tools.journal import Journal
    from tools.reflection import reflector_for

    settings = _settings()
    # Validate everything before the journal or log is opened: bad input writes nothing.
    dataset = load_dataset(resolve_dataset(replay))
    feed = ReplayFeed(dataset)
    if not feed.markets:
        raise UserError(f"dataset {dataset.name}: no replayable window "
                        f"(skipped: {feed.skipped or 'none'})")
    if not dataset.has_book:
        raise UserError(f"dataset {dataset.name} has no book.csv: nothing to trade against "
                        "(use `updown eval` for forecast-only scoring)")
    cadence_s = cadence or settings.decision_cadence_s
    journal_path = journal or settings.journal_path
    log_path = decision_log or settings.ai_decision_log_path

    live_view = ReplayView(len(feed.markets)) if view and out.is_terminal else None
    with Journal(journal_path) as jr, DecisionLog(log_path) as dlog:
        runner = ReplayRunner(feed, settings, journal=jr, decision_log=dlog, cadence_s=cadence_s,
                              speed=speed, observer=live_view.update if live_view else None,
                              reflector=reflector_for(settings, journal_path))
        mode = "LLM " + settings.openai_model if runner.use_llm else "deterministic policy"
        out.print(f"[bold]updown[/] replay of [cyan]{dataset.name}[/]: {len(feed.markets)} "
                  f"windows, decision every {cadence_s:.0f}s, paper mode, trader: {mode}")
        out.print("[dim]price to beat derived from the recorded price path (unverified): the "
                  "verified-reference rule is relaxed for this paper replay only[/]")
        if live_view is not None:
            with Live(live_view.render(), console=out, refresh_per_second=8) as live_display:
                live_view.attach(live_display)
                report = runner.run()
        else:
            report = runner.run()
    out.print(summary_table(report))
    out.print(f"journal: {journal_path}  (run {report.run_id})   decision log: {log_path}")


def _run_live(*, cadence: float | None, journal: Path | None, decision_log: Path | None,
              view: bool, live: bool, markets: str | None, windows: int | None,
              checkpoints: Path | None) -> None:
    """``updown run`` on the live feeds; every start-up failure is one line (UserError)."""
    from agent.autorun import AutoRunner, RunnerError, RunOptions
    from agent.live import LiveOptInError, mode_for_command
    from tools.decision_log import DecisionLog
    from tools.journal import Journal
    from tools.polymarket.live_feed import FeedError
    from tools.polymarket.markets import MarketSpecError, parse_markets
    from tools.polymarket.orders import LiveSetupError

    settings = _settings()
    try:
        specs = parse_markets(markets if markets is not None else settings.markets)
    except MarketSpecError as exc:
        raise UserError(f"{'--markets' if markets is not None else 'MARKETS'}: {exc}") from None
    try:
        mode = mode_for_command(settings, live_flag=live, action="trade real money")
    except LiveOptInError as exc:
        raise UserError(str(exc)) from None
    if mode.note:
        err.print(mode.note, markup=False, highlight=False)
    status_path = Path(settings.status_path) if settings.status_path else None
    options = RunOptions(cadence_s=cadence or settings.decision_cadence_s,
                         large_move_pct=settings.large_move_pct, windows=windows,
                         status_path=status_path, status_port=settings.status_port)
    journal_path = journal or settings.journal_path
    checkpoint_path = checkpoints or settings.checkpoint_path
    dashboard = None
    if view and out.is_terminal:
        from agent.dashboard import Dashboard

        dashboard = Dashboard()
    with Journal(journal_path) as jr, DecisionLog(decision_log or settings.ai_decision_log_path
                                                  ) as dlog:
        runner = AutoRunner(settings, specs, mode, journal=jr, decision_log=dlog,
                            checkpoint_path=checkpoint_path, options=options,
                            on_status=dashboard.update if dashboard else None)
        try:
            report = _serve(runner, dashboard)
        except (FeedError, LiveSetupError, RunnerError) as exc:
            raise UserError(str(exc)) from None
    totals = report.counters["totals"]
    out.print(f"updown {report.mode} run {report.run_id}: {report.windows} windows, "
              f"{totals.get('decisions', 0)} decisions, {totals.get('fills', 0)} fills, "
              f"P&L {totals.get('pnl_usd', 0.0):+.2f} USDC; journal {journal_path}, "
              f"checkpoints {checkpoint_path}", markup=False, highlight=False)
    if report.unresolved_orders:
        raise UserError(f"{len(report.unresolved_orders)} order(s) with unknown outcome: "
                        "run `updown portfolio` to reconcile before trading again")


def _serve(runner: Any, dashboard: Any) -> Any:
    """Run until done or SIGINT/SIGTERM (a graceful stop: windows settle, files close)."""
    import asyncio
    import signal

    async def main() -> Any:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, runner.request_stop)
        return await runner.run()

    if dashboard is None:
        return asyncio.run(main())
    from agent.dashboard import render

    with Live(render({}), console=out, refresh_per_second=4) as display:
        dashboard.attach(display)
        return asyncio.run(main())


@app.command()
def bench(
    dataset: Annotated[str, typer.Option(help="Dataset to draw snapshots from.")]
    = "pm15m_20251226_coinbase1m",
    decisions: Annotated[int, typer.Option(help="Decisions to time.", min=10)] = 2000,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write figures as JSON.")]
    = None,
    suite: Annotated[str, typer.Option(
        help="graph: decision latency; eval: full-graph eval replay and forecast-only study; "
             "analysts: per-tick cost of the indicators and fair value.")]
    = "graph",
) -> None:
    """Decision latency of the whole graph on the deterministic path (p50/p99)."""
    from agent.bench.graph import run_decision_bench

    # -- suite eval: owned by agent/bench/eval.py --
    if suite == "eval":
        from agent.bench.eval import eval_bench_command

        eval_bench_command(resolve_dataset(dataset), json_out)
        return
    if suite == "analysts":
        from agent.bench.analysts import analyst_bench_command

        analyst_bench_command(resolve_dataset(dataset), json_out)
        return
    if suite != "graph":
        raise UserError(f"--suite must be graph, eval or analysts (got {suite!r})")

    result = run_decision_bench(resolve_dataset(dataset), decisions)
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
        import json

        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")


@app.command()
def config() -> None:
    """Validate the configuration and show it (secrets masked)."""
    settings = _settings()
    table = Table(title="updown settings")
    table.add_column("variable")
    table.add_column("value")
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        shown = "(set)" if value is not None and "SecretStr" in type(value).__name__ else value
        table.add_row(name.upper(), "" if shown is None else str(shown))
    out.print(table)


# Command groups owned by other packages register themselves here (one line each).
# -- register: feeds --
__import__("agent.cli.market_data", fromlist=["register"]).register(app)
# -- register: evals --
__import__("agent.cli.evaluate", fromlist=["register"]).register(app)
# -- register: live --
__import__("agent.cli.money", fromlist=["register"]).register(app)


def main() -> None:
    """Console entry point: user errors become one line and exit code 2."""
    from agent.tracing import install_redacting_tracing

    install_redacting_tracing()  # no-op unless LangSmith tracing is on: hide and mask traces
    try:
        app(standalone_mode=False)
    except (ConfigError, DatasetError, UserError) as exc:
        err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
