"""The live terminal dashboard of ``updown run``: the running P&L and won/lost on top, one row
per market (its window as a UTC time of day, the open position, the last decision), the last
settled windows and the counters underneath.

It renders the runner's status document (``AutoRunner.status_document``), the same JSON the
status file and the health endpoint carry, so what the terminal shows is what a monitor reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from agent.limit_notice import limit_reason, limit_rule
from agent.timeofday import utc_label
from core.clock import trading_day_start
from core.guard import GuardLimits


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def _price(value: Any) -> str:
    """BTC in whole dollars (cents are noise at that size), smaller assets with cents."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(float(value)) >= 10_000 else f"{value:,.2f}"


def _spans_days(doc: dict[str, Any]) -> bool:
    started, now = doc.get("started_ts"), doc.get("as_of")
    if not started or not now:
        return False
    return trading_day_start(float(started)) != trading_day_start(float(now))


def _window(start: Any, with_date: bool) -> str:
    return "-" if start is None else utc_label(float(start), with_date=with_date)


def _position(position: dict[str, Any] | None) -> str:
    if not position:
        return "-"
    return (f"{position.get('side')} {_num(position.get('shares'))} @ "
            f"{_num(position.get('price'))} = ${_num(position.get('cost_usd'))}")


def _settled_line(doc: dict[str, Any], with_date: bool) -> Text | None:
    recent = (doc.get("settled") or {}).get("recent") or []
    if not recent:
        return None
    line = Text("settled: ")
    for i, item in enumerate(reversed(recent[-5:])):
        if i:
            line.append("   ")
        won = bool(item.get("won"))
        line.append(f"{_window(item.get('window_start'), with_date)} {item.get('market')} "
                    f"{item.get('side')} ")
        line.append(f"{'won' if won else 'lost'} {float(item.get('pnl_usd', 0.0)):+.2f}",
                    style="green" if won else "red")
    return line


def render(doc: dict[str, Any], *, log_file: Path | None = None,
           limits: GuardLimits | None = None) -> RenderableType:
    """The dashboard of one status document; ``log_file`` (where log lines go while it is
    shown) and ``limits`` (to name the setting of a limit that stopped trading) are optional."""
    with_date = _spans_days(doc)
    title = (f"updown {doc.get('mode', '?')} run {str(doc.get('run_id', ''))[:12]}  "
             f"account {doc.get('account', '?')}  (times UTC)")
    totals = doc.get("counters", {}).get("totals", {})
    settled = doc.get("settled") or {}
    pnl = float(totals.get("pnl_usd", 0.0))
    head = Text()
    head.append(title, style="bold")
    head.append("\nP&L ")
    head.append(f"{pnl:+.2f} USDC", style="bold green" if pnl >= 0 else "bold red")
    head.append(f"   won {settled.get('wins', 0)}  lost {settled.get('losses', 0)}   "
                f"fills {totals.get('fills', 0)}")
    # One line per market (about 110 columns; narrower, long cells end in an ellipsis).
    table = Table(box=None, expand=False, pad_edge=False, header_style="bold underline")
    for col in ("market", "window", "to close", "price", "to beat", "position", "n",
                "last decision", "ages p/r/b"):
        table.add_column(col, justify="right" if col in ("to close", "price", "to beat", "n")
                         else "left", no_wrap=True, overflow="ellipsis")
    unverified = False
    stopped: list[str] = []
    for name, m in doc.get("markets", {}).items():
        last = m.get("last_decision") or {}
        if not last:
            decision = "-"
        elif last.get("approved"):
            decision = (f"{last.get('decision')} {last.get('confidence')}% -> "
                        f"{last.get('execution') or 'approved'}")
        else:
            decision = (f"{last.get('decision')} {last.get('confidence')}% "
                        f"{','.join(last.get('rules') or []) or 'hold'}")
        rule = limit_rule(last.get("rules") or [])
        if rule is not None and limits is not None:
            stopped.append(f"{name}: trading stopped, {limit_reason(rule, limits)}")
        ptb = _price(m.get("price_to_beat"))
        if m.get("price_to_beat") is not None and not m.get("price_to_beat_verified"):
            ptb += "*"
            unverified = True
        position = _position(m.get("position"))
        if position == "-" and m.get("entered"):
            position = "entered" + (f" ({m['resumed_from']})" if m.get("resumed_from") else "")
        ages = "/".join(_num(m.get(k), "{:.1f}") for k in ("price_age_s", "reference_age_s",
                                                           "book_age_s"))
        table.add_row(name, _window(m.get("window_start"), with_date),
                      _num(m.get("time_to_close_s"), "{:.0f}s"), _price(m.get("price")), ptb,
                      position, str(m.get("window_decisions", 0)), decision, ages)
    rss = doc.get("rss_kb")
    line = Text(
        f"windows {totals.get('windows', 0)}  decisions {totals.get('decisions', 0)}  "
        f"orders {totals.get('orders', 0)}  fills {totals.get('fills', 0)}  "
        f"settled {totals.get('settled', 0)}  P&L {pnl:+.2f} USDC  "
        f"LLM {totals.get('llm_calls', 0)} calls ${totals.get('llm_usd', 0.0):.4f}  "
        f"RSS {'-' if rss is None else f'{rss / 1024:.0f} MiB'}", style="dim")
    parts: list[RenderableType] = [head, table]
    if unverified:
        parts.append(Text("* price to beat unverified: no entry on it", style="dim"))
    settled_line = _settled_line(doc, with_date)
    if settled_line is not None:
        parts.append(settled_line)
    parts.append(line)
    if log_file is not None:
        parts.append(Text(f"log: {log_file} (tail -f to follow)", style="dim"))
    parts.extend(Text(s, style="bold yellow") for s in stopped)
    return Group(*parts)


class Dashboard:
    """Feeds status documents into a rich ``Live`` display."""

    def __init__(self, *, log_file: Path | None = None, limits: GuardLimits | None = None
                 ) -> None:
        self.live: Live | None = None
        self.log_file = log_file
        self.limits = limits

    def attach(self, live: Live) -> None:
        self.live = live

    def render(self, doc: dict[str, Any]) -> RenderableType:
        return render(doc, log_file=self.log_file, limits=self.limits)

    def update(self, doc: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(self.render(doc))
