"""The ``updown eval`` command: offline evaluation on recorded markets or a long price history.

Two modes, exactly one of:

* ``--dataset DIR|NAME``: replay every window of a recorded dataset (interchange format, or the
  name of one embedded under ``data/recorded``) through the live graph and score forecasts,
  trading, cost and speed (``evals.runner``).
* ``--history CSV``: the forecast-only study over a 1-minute candle history
  (``evals.forecast``): the fair value and the technical signal by time left and volatility.

Both print a summary table and can write ``--json PATH`` and a self-contained ``--report
PATH.html``.  Bad input is one line naming file and row, exit code 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console, Group
from rich.table import Table

from agent.cli import common
from core.errors import UserError

out = Console()
err = Console(stderr=True)

TRADERS: dict[str, Literal["auto", "quant", "llm"]] = {
    "auto": "auto", "quant": "quant", "llm": "llm"}
# Long runs get a progress bar (on a terminal only).
_PROGRESS_MIN_DECISIONS = 200


def _f(x: Any, spec: str = ".4f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "-"
    return format(x, spec)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


class _Bar:
    """evals.replay.Progress on a rich progress bar."""

    def __init__(self, progress: Any, task: Any) -> None:
        self.progress, self.task = progress, task

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def add_total(self, n: int) -> None:
        total = self.progress.tasks[0].total or 0
        self.progress.update(self.task, total=total + n)


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to the ``updown`` app."""
    app.command("eval")(eval_command)


def eval_command(
    dataset: Annotated[str | None, typer.Option(
        help="Recorded dataset directory (interchange format) or embedded name.")] = None,
    history: Annotated[Path | None, typer.Option(
        help="Forecast-only study over a 1-minute candle CSV (open_time_ms, open, close[, "
             "volume]) instead of a recorded dataset.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics as JSON.")]
    = None,
    report: Annotated[Path | None, typer.Option(
        help="Write a self-contained HTML report (plots embedded).")] = None,
    cadence: Annotated[float | None, typer.Option(
        help="Seconds between decisions in a window (default DECISION_CADENCE_S).",
        min=1)] = None,
    # A plain string checked here (not a Literal): a wrong value is this command's own
    # UserError naming the choices, the same as every other input it refuses.
    trader: Annotated[str, typer.Option(
        metavar="[auto|quant|llm]",
        help="auto: LLM iff OPENAI_API_KEY; quant: deterministic policy; llm: force the LLM.")]
    = "auto",
    workers: Annotated[int | None, typer.Option(
        help="Processes for the replay (default: one per core on the deterministic path, 1 "
             "with an LLM).", min=1)] = None,
    window_minutes: Annotated[int, typer.Option(
        help="--history only: window length in minutes (15 for the 15-minute markets).",
        min=2)] = 15,
    progress: Annotated[bool, typer.Option(help="Progress bar on long runs.")] = True,
    compare: Annotated[str | None, typer.Option(
        help="Traders side by side on the same windows, e.g. quant,llm (any of auto, quant, "
             "llm).")] = None,
    execution: Annotated[str | None, typer.Option(
        metavar="[taker|maker|maker_then_taker]",
        help="Execution style to evaluate (default EXECUTION_STYLE); reports trades, fill "
             "rate, P&L after fees and rebates with its CI, markouts and drawdown.")] = None,
    compare_execution: Annotated[bool, typer.Option(
        "--compare-execution",
        help="Every execution style side by side on the same windows.")] = False,
) -> None:
    """Offline eval: does the agent beat the market on recorded data?"""
    if (dataset is None) == (history is None):
        raise UserError("give exactly one of --dataset DIR|NAME or --history CSV")
    if trader not in TRADERS:
        raise UserError(f"--trader must be auto, quant or llm (got {trader!r})")
    if history is not None:
        _history(history, window_minutes, json_out, report)
    elif dataset is not None and (execution is not None or compare_execution):
        _execution(dataset, execution, compare_execution, json_out, report, cadence,
                   TRADERS[trader])
    elif dataset is not None and compare is not None:
        _compare(dataset, compare, json_out, report, cadence, workers)
    elif dataset is not None:
        _dataset(dataset, json_out, report, cadence, TRADERS[trader], workers, progress)


def _dataset(name: str, json_out: Path | None, report: Path | None, cadence: float | None,
             trader: Literal["auto", "quant", "llm"], workers: int | None, show_progress: bool
             ) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from evals.report import eval_report
    from evals.runner import EvalOptions, resolve_use_llm, run_eval, summarize
    from evals.tracking import log_to_langsmith

    # Quiet: a per-decision INFO line for thousands of decisions would bury the summary.
    settings = common.settings(quiet=True)
    options = EvalOptions(cadence_s=cadence or settings.decision_cadence_s, trader=trader,
                          workers=workers)
    mode = (f"LLM {settings.openai_model}" if resolve_use_llm(options.trader, settings)
            else "deterministic policy")
    bar: Progress | None = None
    sink: _Bar | None = None

    def on_start(feed: Any, total: int) -> None:
        nonlocal bar, sink
        err.print(f"[bold]updown eval[/] {feed.dataset.name}: {len(feed.markets)} windows, "
                  f"{total} decision points every {options.cadence_s:g}s, trader {mode}",
                  highlight=False)
        if show_progress and err.is_terminal and total >= _PROGRESS_MIN_DECISIONS:
            bar = Progress("{task.description}", BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), console=err, transient=True)
            sink = _Bar(bar, bar.add_task("replaying", total=total))
            bar.start()

    class _Forward:
        def advance(self, n: int) -> None:
            if sink is not None:
                sink.advance(n)

        def add_total(self, n: int) -> None:
            if sink is not None:
                sink.add_total(n)

    try:
        result = run_eval(common.resolve_dataset(name), options, settings=settings,
                          progress=_Forward(), on_start=on_start)
    finally:
        if bar is not None:
            bar.stop()
    summary = summarize(result)
    out.print(eval_tables(summary))
    if json_out is not None:
        _write_json(json_out, summary)
        out.print(f"json: {json_out}")
    if report is not None:
        limits_min_edge = settings.min_edge
        _write_text(report, eval_report(result, summary, min_edge=limits_min_edge))
        out.print(f"report: {report}")
    url = log_to_langsmith(summary)
    if url:
        out.print(f"LangSmith experiment: {url}")


def _execution(name: str, execution: str | None, compare_all: bool, json_out: Path | None,
               report: Path | None, cadence: float | None,
               trader: Literal["auto", "quant", "llm"]) -> None:
    from rich.table import Table

    from evals.execution_compare import (
        ExecutionInputError,
        compare_execution,
        comparison_html,
        comparison_lines,
        parse_styles,
    )
    from evals.runner import load_for_eval, resolve_use_llm

    settings = common.settings(quiet=True)
    try:
        styles = parse_styles("taker,maker,maker_then_taker" if compare_all
                              else execution or settings.execution_style)
    except ExecutionInputError as exc:
        raise UserError(f"--execution: {exc}") from None
    cadence_s = cadence or settings.decision_cadence_s
    loaded = load_for_eval(common.resolve_dataset(name), cadence_s, settings)
    err.print(f"[bold]updown eval[/] {loaded.feed.dataset.name}: {len(loaded.feed.markets)} "
              f"windows, execution {', '.join(styles)}", highlight=False)
    summary = compare_execution(loaded.feed, settings, styles, cadence_s=cadence_s,
                                use_llm=resolve_use_llm(trader, settings))
    rows = comparison_lines(summary)
    table = Table(title=f"execution styles, {summary['dataset']} "
                  f"({len(summary['windows'])} windows)")
    for col in rows[0]:
        table.add_column(col)
    for row in rows[1:]:
        table.add_row(*row)
    out.print(table)
    if json_out is not None:
        _write_json(json_out, summary)
        out.print(f"json: {json_out}")
    if report is not None:
        _write_text(report, comparison_html(summary))
        out.print(f"report: {report}")


def _compare(name: str, traders: str, json_out: Path | None, report: Path | None,
             cadence: float | None, workers: int | None) -> None:
    from agent.cli.common import resolve_dataset
    from agent.cli.common import settings as load
    from evals.console import compare_command
    from evals.runner import EvalOptions

    settings = load(quiet=True)
    options = EvalOptions(cadence_s=cadence or settings.decision_cadence_s, workers=workers)
    compare_command(resolve_dataset(name), traders, options, settings, out=out, err=err,
                    json_out=json_out, report=report)


def eval_tables(summary: dict[str, Any]) -> Group:
    """The terminal summary of a recorded-dataset eval: forecasts, trading, cost and speed."""
    f = Table(title=f"eval of {summary['dataset']}: {summary['windows']} windows, "
                    f"{summary['decisions']} decisions every {summary['cadence_s']:g}s, "
                    f"trader {summary['trader']}", title_justify="left")
    f.add_column("forecaster")
    for col in ("Brier", "log loss", "ECE", "n"):
        f.add_column(col, justify="right")
    for name, block in summary["forecast"].items():
        if block is None:
            f.add_row(name, "-", "-", "-", "not scored")
        else:
            f.add_row(name, _f(block["brier"]), _f(block["log_loss"]), _f(block["ece"]),
                      str(block["n"]))
    tables: list[Any] = [f]
    trading = summary["trading"]
    if trading is None:
        tables.append("trading: not scored (the dataset has no book.csv)")
    else:
        t = Table(title="trading (paper, after fees)", title_justify="left")
        t.add_column("metric")
        t.add_column("value", justify="right")
        lo, hi = trading["pnl_ci95"]
        rejections = ", ".join(f"{k} {v}" for k, v in sorted(
            trading["guard_rejections"].items(), key=lambda kv: -kv[1])) or "none"
        for label, value in (
            ("trades (wins/losses)",
             f"{trading['trades']} ({trading['wins']}/{trading['losses']})"),
            ("hit rate", _f(trading["hit_rate"], ".1%")),
            ("P&L after fees", f"${trading['pnl_usd']:,.2f}"),
            ("95% CI, bootstrap by window", f"[${lo:,.2f}, ${hi:,.2f}]"),
            ("fees paid", f"${trading['fees_usd']:,.2f}"),
            ("max stake at one time", f"${trading['max_stake_usd']:,.2f}"),
            ("return on capital at risk", _f(trading["return_on_capital"], ".1%")),
            ("max drawdown", f"${trading['max_drawdown_usd']:,.2f}"),
            ("guard rejections", rejections),
        ):
            t.add_row(label, value)
        tables.append(t)
    cost, timing = summary["cost"], summary["timing"]
    c = Table(title="cost and speed", title_justify="left")
    c.add_column("metric")
    c.add_column("value", justify="right")
    c.add_row("LLM calls / tokens / USD",
              f"{cost['llm_calls']} / {cost['prompt_tokens'] + cost['completion_tokens']} / "
              f"${cost['usd']:.4f}")
    c.add_row("per window", f"{cost['llm_calls_per_window']:.2f} calls, "
                            f"{cost['tokens_per_window']:.0f} tokens, "
                            f"${cost['usd_per_window']:.5f}")
    c.add_row("LLM calls per decision", f"{cost['llm_calls_per_decision']:.2f} "
                                        f"(max {cost['max_llm_calls_per_decision']})")
    c.add_row("decisions/s", f"{_f(timing['decisions_per_s'], '.0f')} "
                             f"({timing['workers']} worker(s))")
    c.add_row("decision latency p50 / p99",
              f"{_f(timing['decision_ms_p50'], '.2f')} / {_f(timing['decision_ms_p99'], '.2f')} "
              "ms")
    tables.append(c)
    from evals.console import summary_lines

    tables += summary_lines(summary)
    return Group(*tables)


def _history(path: Path, window_minutes: int, json_out: Path | None, report: Path | None
             ) -> None:
    import time

    from evals.forecast import load_minute_candles, run_study, summarize_study
    from evals.report import history_report

    common.settings(quiet=True)  # the study reads none, but bad settings fail every command
    started = time.perf_counter()
    candles = load_minute_candles(path)  # validates first: bad input fails before output
    load_s = time.perf_counter() - started
    err.print(f"[bold]updown eval[/] forecast-only study of {path.name}: {len(candles):,} "
              f"minutes, {window_minutes}-minute windows", highlight=False)
    study = run_study(path, window_s=window_minutes * 60, candles=candles)
    study.load_s = load_s
    summary = summarize_study(study)
    out.print(history_tables(summary))
    if summary.get("walk_forward", {}).get("decisions_scored"):
        out.print(walk_forward_table(summary["walk_forward"]))
    if json_out is not None:
        _write_json(json_out, summary)
        out.print(f"json: {json_out}")
    if report is not None:
        _write_text(report, history_report(summary, study))
        out.print(f"report: {report}")


def history_tables(summary: dict[str, Any]) -> Table:
    """Brier (and log loss of the fair value) by minutes left, plus the overall row."""
    t = Table(title=f"Brier by minutes left: {summary['windows']:,} windows, "
                    f"{summary['decisions']:,} decisions ({summary['timing']['total_s']:.1f} s)",
              title_justify="left")
    t.add_column("left")
    t.add_column("n", justify="right")
    # Short headers so the table fits 80 columns: fair value, technical (fixed map), technical
    # (fitted map), coin flip, fair value + technical (fitted), fair value's log loss.
    for col in ("fair", "tech", "tech fit", "coin", "fair+tech", "fair LL"):
        t.add_column(col, justify="right")

    def row(label: str, block: dict[str, Any]) -> None:
        t.add_row(label, str(block["fair_value"]["n"] if block["fair_value"] else 0),
                  *(_f((block[k] or {}).get("brier")) for k in
                    ("fair_value", "technical", "technical_fit", "coin_flip",
                     "fair_value+technical")),
                  _f((block["fair_value"] or {}).get("log_loss")))

    for r in summary["by_minutes_left"]:
        row(str(r["minutes_left"]), r)
    t.add_section()
    for r in summary["by_vol_regime"]:
        row(f"{r['regime']} vol", r)
    t.add_section()
    row("all", summary["forecast"])
    return t


WF_COLUMNS = (("coin", "coin_flip"), ("money", "moneyness"), ("+vol", "+vol"),
              ("+tails", "+tails"), ("+tech", "+technicals"), ("agent", "agent"))


def walk_forward_table(wf: dict[str, Any]) -> Table:
    """The walk-forward study: Brier (and the agent's ECE) by minutes left, regime and overall;
    every forecast scored by parameters chosen on earlier months only."""
    t = Table(title=f"Walk-forward Brier: {wf['decisions_scored']:,} decisions in "
                    f"{wf['months'] - 1} scored months (each fitted on earlier months only)",
              title_justify="left")
    t.add_column("left")
    for header, _ in WF_COLUMNS:
        t.add_column(header, justify="right")
    t.add_column("agent ECE", justify="right")

    def row(label: str, block: dict[str, Any]) -> None:
        t.add_row(label, *(_f(block[k]["brier"]) for _, k in WF_COLUMNS),
                  _f(block["agent"]["ece"]))

    for r in wf["by_minutes_left"]:
        row(str(r["minutes_left"]), r)
    t.add_section()
    for r in wf["by_vol_regime"]:
        row(f"{r['regime']} vol", r)
    t.add_section()
    row("all", wf["overall"])
    return t
