"""``updown run``: the autonomous loop on the live feeds (paper unless ``--live``), or the
replay of a recorded dataset through the whole graph (paper).

Every start-up failure the user can cause (bad setting, dataset or market, live trading
without what it needs, an endpoint that cannot be reached) is a ``UserError``: one line, exit
code 2, before the journal or decision log is written.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live

from agent.cli import common
from core.errors import UserError
from core.logs import get_logger

log = get_logger("updown.run")
out = Console()
err = Console(stderr=True)


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
    dashboard_port: Annotated[int | None, typer.Option(
        help="Port of the operator dashboard of a live run (default DASHBOARD_PORT; 0 = any "
        "free port).", min=0, max=65535)] = None,
    dashboard: Annotated[bool, typer.Option(
        "--dashboard/--no-dashboard", help="Serve the operator dashboard while a live run "
        "lasts (loopback unless DASHBOARD_HOST).")] = True,
) -> None:
    """Run the autonomous loop: live feeds (paper unless --live), or --replay a recording."""
    if replay is None:
        _run_live(cadence=cadence, journal=journal, decision_log=decision_log, view=view,
                  live=live, markets=markets, windows=windows, checkpoints=checkpoints,
                  dashboard_port=dashboard_port if dashboard else -1)
        return
    if dashboard_port is not None:
        raise UserError("--dashboard-port is for live runs: serve a replay's journal with "
                        "`updown dashboard --journal P`")
    if live or markets is not None or windows is not None or checkpoints is not None:
        raise UserError("--replay runs in paper mode over the recording: --live, --markets, "
                        "--windows and --checkpoints are for live runs")
    from agent.limit_notice import LimitWatch
    from agent.view import ReplayView, summary_table
    from core.guard import GuardLimits
    from evals.replay_runner import DecisionEvent, ReplayRunner
    from feeds.recorded import load_dataset
    from feeds.replay import ReplayFeed
    from tools.decision_log import DecisionLog
    from tools.journal import Journal
    from tools.reflection import reflector_for

    settings = common.settings()
    # Validate everything before the journal or log is opened: bad input writes nothing.
    dataset = load_dataset(common.resolve_dataset(replay))
    cadence_s = cadence or settings.decision_cadence_s
    # Coverage at the run's cadence, as `updown eval` checks it: a window whose recording
    # does not cover its decision times is left out with its reason, never half-replayed.
    feed = ReplayFeed(dataset, cadence_s=cadence_s, max_price_age_s=settings.max_price_age_s)
    if not feed.markets:
        skipped = ", ".join(f"{k} {v}" for k, v in sorted(feed.skipped.items())) or "none"
        first = f"; first: {feed.skipped_windows[0].detail}" if feed.skipped_windows else ""
        raise UserError(f"dataset {dataset.name}: no usable window at a {cadence_s:g}s "
                        f"cadence (skipped: {skipped}){first}")
    if not dataset.has_book:
        raise UserError(f"dataset {dataset.name} has no book.csv: nothing to trade against "
                        "(use `updown eval` for forecast-only scoring)")
    journal_path = journal or settings.journal_path
    log_path = decision_log or settings.ai_decision_log_path
    view_on = view and out.is_terminal
    watch = LimitWatch([m.start_ts for m in feed.markets], GuardLimits.for_replay(settings))

    with contextlib.ExitStack() as stack:
        log_file = _route_logs(stack, settings, view_on)
        live_view = (ReplayView(feed.markets, dataset=dataset.name, log_file=log_file,
                                rows=max(6, out.size.height - 8), width=out.size.width)
                     if view_on else None)

        def on_decision(event: DecisionEvent) -> None:
            stop = watch.observe(event.state["verdict"], window_index=event.window_index,
                                 as_of=event.state["snapshot"].as_of)
            if live_view is not None:
                live_view.update(event)
            if stop is None:
                return
            log.warning("trading_stopped", rule=stop.rule, window=stop.window_number,
                        as_of=stop.as_of, note=stop.sentence)
            if live_view is not None:
                live_view.notice(stop.sentence)
            else:
                out.print(stop.sentence, markup=False, highlight=False, soft_wrap=True)

        jr = stack.enter_context(Journal(journal_path))
        dlog = stack.enter_context(DecisionLog(log_path))
        runner = ReplayRunner(feed, settings, journal=jr, decision_log=dlog, cadence_s=cadence_s,
                              speed=speed, observer=on_decision,
                              on_settlement=live_view.settle if live_view else None,
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
    if log_file is not None:
        out.print(f"log: {log_file}")


def _route_logs(stack: contextlib.ExitStack, settings: Any, view_on: bool) -> Path | None:
    """With the terminal view on, log lines go to LOG_FILE (they would scroll over the view)
    until the run ends; otherwise to stderr.  The file's path, or None."""
    if not view_on:
        return None
    from core.logs import routed_to_file

    try:
        stack.enter_context(routed_to_file(settings.log_file))
    except OSError as exc:
        raise UserError(f"LOG_FILE {settings.log_file}: cannot write the log "
                        f"({exc.strerror or exc})") from None
    path: Path = settings.log_file
    return path


def _run_live(*, cadence: float | None, journal: Path | None, decision_log: Path | None,
              view: bool, live: bool, markets: str | None, windows: int | None,
              checkpoints: Path | None, dashboard_port: int | None = -1) -> None:
    """``updown run`` on the live feeds; every start-up failure is a UserError (one line).
    ``dashboard_port``: -1 off, None the DASHBOARD_PORT setting."""
    from agent.autorun import AutoRunner, RunOptions
    from agent.live import mode_for_command
    from tools.decision_log import DecisionLog
    from tools.journal import Journal
    from tools.polymarket.markets import MarketSpecError, parse_markets

    settings = common.settings()
    try:
        specs = parse_markets(markets if markets is not None else settings.markets)
    except MarketSpecError as exc:
        raise UserError(f"{'--markets' if markets is not None else 'MARKETS'}: {exc}") from None
    mode = mode_for_command(settings, live_flag=live, action="trade real money")
    if mode.note:
        err.print(mode.note, markup=False, highlight=False)
    status_path = Path(settings.status_path) if settings.status_path else None
    options = RunOptions(cadence_s=cadence or settings.decision_cadence_s,
                         large_move_pct=settings.large_move_pct, windows=windows,
                         status_path=status_path, status_port=settings.status_port,
                         **_dashboard_options(settings, dashboard_port))
    journal_path = journal or settings.journal_path
    checkpoint_path = checkpoints or settings.checkpoint_path
    dashboard = None
    with contextlib.ExitStack() as stack:
        if view and out.is_terminal:
            from agent.dashboard import Dashboard

            dashboard = Dashboard(log_file=_route_logs(stack, settings, True),
                                  limits=mode.limits(settings))
        jr = stack.enter_context(Journal(journal_path))
        dlog = stack.enter_context(DecisionLog(decision_log or settings.ai_decision_log_path))
        runner = AutoRunner(settings, specs, mode, journal=jr, decision_log=dlog,
                            checkpoint_path=checkpoint_path, options=options,
                            on_status=dashboard.update if dashboard else None)
        report = _serve(runner, dashboard)
    totals = report.counters["totals"]
    out.print(f"updown {report.mode} run {report.run_id}: {report.windows} windows, "
              f"{totals.get('decisions', 0)} decisions, {totals.get('fills', 0)} fills, "
              f"P&L {totals.get('pnl_usd', 0.0):+.2f} USDC; journal {journal_path}, "
              f"checkpoints {checkpoint_path}", markup=False, highlight=False)
    if dashboard is not None and dashboard.log_file is not None:
        out.print(f"log: {dashboard.log_file}", markup=False, highlight=False)
    if report.unresolved_orders:
        raise UserError(f"{len(report.unresolved_orders)} order(s) with unknown outcome: "
                        "run `updown portfolio` to reconcile before trading again")


def _dashboard_options(settings: Any, port: int | None) -> dict[str, Any]:
    """The dashboard's RunOptions; its URL and kill switch token go to the terminal only."""
    if port == -1:
        return {}
    from agent.cli.dashboard import announce_token
    from agent.web.server import new_token

    token = new_token()
    options = {"dashboard_port": settings.dashboard_port if port is None else port,
               "dashboard_host": settings.dashboard_host, "dashboard_token": token}
    announce_token(settings.dashboard_host, options["dashboard_port"], token)
    return options


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
    with Live(dashboard.render({}), console=out, refresh_per_second=4) as display:
        dashboard.attach(display)
        return asyncio.run(main())


def register(app: typer.Typer) -> None:
    """Add ``run`` to the ``updown`` app."""
    app.command()(run)
