"""Terminal rendering of a replay: the live decision table and the final summary."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from rich.live import Live

    from evals.replay_runner import DecisionEvent, ReplayReport


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


class ReplayView:
    """The last few decisions, one row each, refreshed in place."""

    def __init__(self, windows: int, rows: int = 14) -> None:
        self.windows = windows
        self.rows: deque[tuple[str, ...]] = deque(maxlen=rows)
        self.live: Live | None = None
        self.trades = 0

    def attach(self, live: Live) -> None:
        self.live = live

    def update(self, event: DecisionEvent) -> None:
        s: Any = event.state
        snap, verdict, trader = s["snapshot"], s["verdict"], s["trader"]
        fair = s.get("fair_value")
        execution = s.get("execution")
        if execution is not None and execution.status == "filled":
            self.trades += 1
            outcome = f"[green]bought {execution.side} {execution.shares:.2f} @ " \
                      f"{execution.avg_price:.2f}[/]"
        elif verdict.approved:
            outcome = f"[yellow]{execution.status if execution else '?'}[/]"
        elif verdict.rules_fired:
            outcome = "[red]" + ",".join(sorted({h.rule for h in verdict.rules_fired
                                                   if h.action == "reject"})) + "[/]"
        else:
            outcome = "[dim]hold[/]"
        self.rows.append((
            f"{event.window_index + 1}/{event.windows} {snap.market_id[-10:]}",
            f"{snap.time_to_close_s:.0f}s",
            f"{snap.price:,.2f}",
            _fmt(snap.price_to_beat, ",.2f"),
            _fmt(fair.fair_up if fair else None, ".3f"),
            _fmt(snap.up.ask if snap.up else None, ".2f"),
            _fmt(snap.down.ask if snap.down else None, ".2f"),
            f"{trader.analysis.decision} {trader.analysis.confidence}",
            outcome,
        ))
        if self.live is not None:
            self.live.update(self.render())

    def render(self) -> Table:
        table = Table(title=f"updown replay: {self.trades} trades", expand=False)
        for col in ("window", "to close", "BTC", "price to beat", "fair up", "Up ask",
                    "Down ask", "decision", "guard / fill"):
            table.add_column(col, justify="right" if col not in ("window", "guard / fill")
                             else "left")
        for row in self.rows:
            table.add_row(*row)
        return table


def summary_table(report: ReplayReport) -> Table:
    s = report.summary
    table = Table(title=f"replay summary: {report.dataset}", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("windows", f"{report.windows}" + (f" (skipped {report.skipped})" if report.skipped
                                            else "")),
        ("decisions", str(report.decisions)),
        ("decided by", ", ".join(f"{k} {v}" for k, v in report.decided_by.items())),
        ("LLM calls", str(report.llm_calls)),
        ("approved by guard", str(s.approved)),
        ("trades filled", str(s.filled)),
        ("orders killed / unknown", f"{s.killed} / {s.errors}"),
        ("wins / losses", f"{s.wins} / {s.losses}"),
        ("hit rate", "-" if s.hit_rate is None else f"{s.hit_rate:.1%}"),
        ("staked (USDC)", f"{s.staked_usd:,.2f}"),
        ("fees (USDC)", f"{s.fees_usd:,.2f}"),
        ("P&L after fees (USDC)", f"{s.pnl_usd:+,.2f}"),
        ("guard rejections", ", ".join(f"{k} {v}" for k, v in s.rejections.most_common())
         or "none"),
    ]
    if report.unsettled:
        rows.append(("unsettled windows", str(len(report.unsettled))))
    for k, v in rows:
        table.add_row(k, v)
    return table
