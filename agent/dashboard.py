"""The live terminal dashboard of ``updown run``: one row per market, counters underneath.

It renders the runner's status document (``AutoRunner.status_document``), the same JSON the
status file and the health endpoint carry, so what the terminal shows is what a monitor reads.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text


def _num(value: Any, fmt: str = "{:.2f}") -> str:
    return "-" if value is None else fmt.format(value)


def render(doc: dict[str, Any]) -> RenderableType:
    title = (f"updown {doc.get('mode', '?')} run {str(doc.get('run_id', ''))[:12]}  "
             f"account {doc.get('account', '?')}")
    table = Table(title=title, expand=False)
    for col in ("market", "window", "to close", "price", "to beat", "entered", "decisions",
                "last decision", "ages p/r/b s"):
        table.add_column(col, justify="right" if col in ("to close", "price", "to beat",
                                                         "decisions") else "left")
    for name, m in doc.get("markets", {}).items():
        last = m.get("last_decision") or {}
        decision = "-" if not last else (
            f"{last.get('decision')} {last.get('confidence')}% "
            f"{'approved' if last.get('approved') else ','.join(last.get('rules') or []) or 'hold'}"
            f"{' -> ' + last['execution'] if last.get('execution') else ''}")
        ptb = _num(m.get("price_to_beat"))
        if m.get("price_to_beat") is not None and not m.get("price_to_beat_verified"):
            ptb += " (unverified)"
        entered = "yes" if m.get("entered") else "no"
        if m.get("resumed_from"):
            entered += f" ({m['resumed_from']})"
        ages = "/".join(_num(m.get(k), "{:.1f}") for k in ("price_age_s", "reference_age_s",
                                                           "book_age_s"))
        table.add_row(name, str(m.get("market_id") or "-"), _num(m.get("time_to_close_s"),
                                                                 "{:.0f}s"),
                      _num(m.get("price")), ptb, entered, str(m.get("window_decisions", 0)),
                      decision, ages)
    totals = doc.get("counters", {}).get("totals", {})
    rss = doc.get("rss_kb")
    line = Text(
        f"windows {totals.get('windows', 0)}  decisions {totals.get('decisions', 0)}  "
        f"orders {totals.get('orders', 0)}  fills {totals.get('fills', 0)}  "
        f"settled {totals.get('settled', 0)}  P&L {totals.get('pnl_usd', 0.0):+.2f} USDC  "
        f"LLM {totals.get('llm_calls', 0)} calls ${totals.get('llm_usd', 0.0):.4f}  "
        f"RSS {'-' if rss is None else f'{rss / 1024:.0f} MiB'}", style="dim")
    return Group(table, line)


class Dashboard:
    """Feeds status documents into a rich ``Live`` display."""

    def __init__(self) -> None:
        self.live: Live | None = None

    def attach(self, live: Live) -> None:
        self.live = live

    def update(self, doc: dict[str, Any]) -> None:
        if self.live is not None:
            self.live.update(render(doc))
