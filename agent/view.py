"""Terminal rendering of a replay: one row per window, kept current while it replays, and
the final summary.

A row is a window as a trader follows it: its start (UTC time of day), the last decision and
what the guard made of it, the position bought, and once the window closes whether it was
won or lost.  Above the rows: the running P&L and won/lost count; below: where the log
lines go (they would scroll over the view) and, when a daily limit ended trading, why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from agent.timeofday import spans_days, utc_date, utc_label

if TYPE_CHECKING:
    from rich.live import Live

    from core.records import RuleHit
    from evals.replay_runner import DecisionEvent, ReplayReport, SettlementEvent
    from feeds.recorded import RecordedMarket


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


# The rule a reader most needs first: limits that end trading, then why this entry failed.
_RULE_ORDER = ("kill_switch", "mode", "daily_loss", "daily_orders", "cooldown", "window",
               "timing", "reference", "freshness", "economics", "confidence", "worst_price",
               "size")


def _rejected(hits: Sequence[RuleHit]) -> str:
    """The first rejecting rule by ``_RULE_ORDER``, and how many more fired (``timing +2``)."""
    def rank(rule: str) -> tuple[int, str]:
        return (_RULE_ORDER.index(rule) if rule in _RULE_ORDER else len(_RULE_ORDER), rule)

    rules = sorted({h.rule for h in hits if h.action == "reject"}, key=rank)
    if not rules:
        return "-"
    return rules[0] + (f" +{len(rules) - 1}" if len(rules) > 1 else "")


def _clock(seconds: float) -> str:
    """Time to close as ``7m30s`` (``7:30`` would read as a time of day next to the start)."""
    whole = max(0, int(seconds))
    return f"{whole // 60}m{whole % 60:02d}s"


@dataclass
class _Position:
    side: str
    shares: float
    price: float
    cost_usd: float  # notional plus fee: what the position cost


@dataclass
class _WindowRow:
    """What the view knows about one window so far."""

    decisions: int = 0
    # The last decision's market columns, by column name.
    cells: dict[str, str] = field(default_factory=dict)
    decision: str = ""
    guard: str = ""
    position: _Position | None = None
    outcome: str | None = None
    pnl_usd: float | None = None
    settled: bool = False


class ReplayView:
    """The replay's windows, one row each, refreshed in place."""

    def __init__(self, markets: Sequence[RecordedMarket], *, dataset: str = "",
                 log_file: Path | None = None, rows: int = 14, width: int = 120) -> None:
        self.markets = tuple(markets)
        self.windows = len(self.markets)
        self.dataset = dataset
        self.log_file = log_file
        self.max_rows = max(1, rows)
        self.width = width
        self.with_date = spans_days(m.start_ts for m in self.markets)
        self.by_id = {m.market_id: i for i, m in enumerate(self.markets)}
        self.rows: dict[int, _WindowRow] = {}
        self.current: int | None = None
        self.decisions = 0
        self.trades = 0
        self.wins = 0
        self.losses = 0
        self.pnl_usd = 0.0
        self.notices: list[str] = []
        self.live: Live | None = None

    def attach(self, live: Live) -> None:
        self.live = live

    def _refresh(self) -> None:
        if self.live is not None:
            self.live.update(self.render())

    def update(self, event: DecisionEvent) -> None:
        s: Any = event.state
        snap, verdict, trader = s["snapshot"], s["verdict"], s["trader"]
        fair = s.get("fair_value")
        execution = s.get("execution")
        row = self.rows.setdefault(event.window_index, _WindowRow())
        self.current = event.window_index
        self.decisions += 1
        row.decisions += 1
        analysis = trader.analysis
        row.decision = (f"{analysis.decision} {analysis.confidence}%"
                        if analysis.decision != "hold" else f"hold {analysis.confidence}%")
        if execution is not None and execution.status == "filled":
            self.trades += 1
            row.guard = "[green]filled[/]"
            row.position = _Position(execution.side, execution.shares,
                                     execution.avg_price or 0.0,
                                     execution.notional_usd + execution.fee_usd)
        elif verdict.approved:
            row.guard = f"[yellow]{execution.status if execution else 'not sent'}[/]"
        elif verdict.rules_fired:
            row.guard = "[red]" + _rejected(verdict.rules_fired) + "[/]"
        else:
            row.guard = "[dim]-[/]"
        beat = snap.price_to_beat
        vs_beat = None if beat is None else snap.price - beat
        asks = f"{_fmt(snap.up.ask if snap.up else None, '.2f')}/" \
               f"{_fmt(snap.down.ask if snap.down else None, '.2f')}"
        row.cells = {"to close": _clock(snap.time_to_close_s), "BTC": f"{snap.price:,.0f}",
                     "vs beat": _fmt(vs_beat, "+,.0f"),
                     "P(up)": _fmt(fair.fair_up if fair else None, ".2f"), "asks": asks}
        self._refresh()

    def settle(self, event: SettlementEvent) -> None:
        index = self.by_id.get(event.market.market_id)
        if index is None:
            return
        row = self.rows.setdefault(index, _WindowRow())
        row.settled = True
        row.outcome = event.outcome
        if event.positions:
            pnl = sum(p.pnl_usd for p in event.positions)
            row.pnl_usd = pnl
            self.pnl_usd += pnl
            for position in event.positions:
                if position.side == position.outcome:
                    self.wins += 1
                else:
                    self.losses += 1
        self._refresh()

    def notice(self, sentence: str) -> None:
        """A line that stays under the rows (a limit that ended trading)."""
        self.notices.append(sentence)
        self._refresh()

    # --- rendering -----------------------------------------------------------------------

    def _position_cell(self, row: _WindowRow, *, cost: bool) -> str:
        p = row.position
        if p is None:
            return "[dim]no trade[/]" if row.settled else ""
        text = f"{p.side} {p.shares:.2f} @ {p.price:.2f}"
        return text + f" = ${p.cost_usd:,.2f}" if cost else text

    def _result_cell(self, row: _WindowRow) -> str:
        if not row.settled:
            return "[yellow]open[/]" if row.position is not None else ""
        if row.outcome is None:
            return "[yellow]outcome unknown[/]"
        if row.pnl_usd is None:
            return f"[dim]went {row.outcome}[/]"
        won = row.position is not None and row.position.side == row.outcome
        return (f"[green]won {row.pnl_usd:+,.2f}[/]" if won
                else f"[red]lost {row.pnl_usd:+,.2f}[/]")

    def header(self) -> Text:
        text = Text()
        text.append("updown replay", style="bold")
        if self.dataset:
            text.append(f"  {self.dataset}", style="cyan")
        if self.markets and not self.with_date:
            text.append(f"  {utc_date(self.markets[0].start_ts)} (times UTC)")
        elif self.markets:
            text.append("  (times UTC)")
        text.append("\n")
        if self.current is not None:
            start = self.markets[self.current].start_ts
            text.append(f"window {self.current + 1} of {self.windows} "
                        f"({utc_label(start, with_date=self.with_date)})   ")
        text.append("P&L ")
        text.append(f"{self.pnl_usd:+,.2f} USDC", style="bold green" if self.pnl_usd >= 0
                    else "bold red")
        text.append(f"   won {self.wins}  lost {self.losses}   trades {self.trades}   "
                    f"decisions {self.decisions}")
        return text

    def table(self) -> Table:
        # No box: a column costs two spaces, so the widest layout fits 120 columns.
        table = Table(box=None, expand=False, pad_edge=False, header_style="bold underline")
        # Narrower terminals lose the market columns first: the trade and its result matter
        # most (about 82 columns from 90 on, 65 below).
        wide, medium = self.width >= 110, self.width >= 90
        market = (["to close", "BTC", "vs beat", "P(up)", "asks"] if wide
                  else ["to close", "vs beat"] if medium else [])
        table.add_column("start", no_wrap=True, min_width=11 if self.with_date else 5)
        for col in market:
            table.add_column(col, justify="right", no_wrap=True)
        for col in ("decision", "guard", "position"):
            table.add_column(col, no_wrap=True, overflow="ellipsis")
        table.add_column("result", no_wrap=True, min_width=11)
        for index in sorted(self.rows)[-self.max_rows:]:
            row = self.rows[index]
            label = utc_label(self.markets[index].start_ts, with_date=self.with_date)
            style = "bold" if index == self.current and not row.settled else None
            table.add_row(label, *(row.cells.get(col, "") for col in market), row.decision,
                          row.guard, self._position_cell(row, cost=wide),
                          self._result_cell(row), style=style)
        return table

    def footer(self) -> Text:
        text = Text()
        if self.log_file is not None:
            text.append(f"log: {self.log_file} (tail -f to follow)", style="dim")
        for sentence in self.notices:
            if text:
                text.append("\n")
            text.append(sentence, style="bold yellow")
        return text

    def render(self) -> RenderableType:
        return Group(self.header(), self.table(), self.footer())


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
