"""Journal queries: ``updown trades``, ``updown profit``, ``updown decisions``.

Read-only views of the SQLite journal (default ``JOURNAL_PATH``) in the manner of a trading
bot's /trades, /profit and /status: Rich tables for people, ``--json`` for scripts (the keys
are the fields of the read models in ``tools.journal.reads``, listed in the README).  Opening
the journal brings an older file to the current schema (indexes only); nothing else is
written.  A missing journal, a bad ``--at``, ``--by`` or ``--limit`` is a ``UserError``: one
line on stderr, exit code 2.
"""

from __future__ import annotations

import json
import math
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from core.errors import UserError
from tools.journal.reads import (
    PROFIT_BY,
    DecisionRow,
    ProfitReport,
    ProfitRow,
    TradeRow,
    decisions,
    profit,
    trades,
)

out = Console()
# Wider than any of these tables: Rich then sizes them to their content instead of folding
# every cell into an 80-column default.
_PIPED_WIDTH = 240

JournalOpt = Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _utc(ts: float | None) -> str | None:
    """ISO 8601 UTC of an epoch time, to the second (the journal's times are epoch seconds)."""
    if ts is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_at(text: str) -> float:
    """``--at``: epoch seconds, or an ISO 8601 time (UTC when it names no offset)."""
    try:
        ts = float(text)
    except ValueError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UserError(f"--at: expected an ISO 8601 time (2025-12-26T10:15:00Z) or epoch "
                            f"seconds, got {text!r}") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    if not math.isfinite(ts) or ts < 0:
        raise UserError(f"--at: epoch seconds must be a finite time after 1970, got {text!r}")
    return ts


def _limit(limit: int) -> int:
    if limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    return limit


@contextmanager
def _reading(journal: Path | None) -> Iterator[sqlite3.Connection]:
    """The journal's connection in one read snapshot; a missing or foreign file is a UserError.

    The file is checked before ``Journal`` opens it: opening would create an empty journal.
    """
    from agent.cli import common
    from tools.journal import Journal, JournalError

    # Settings are read (and validated, logging set up) as by every command, even when
    # --journal makes JOURNAL_PATH unneeded.
    settings = common.settings(quiet=True)
    path = journal if journal is not None else settings.journal_path
    if not path.is_file():
        raise UserError(f"journal not found: {path}"
                        + ("" if journal is not None else " (JOURNAL_PATH)"))
    try:
        jr = Journal(path)
    except (sqlite3.DatabaseError, JournalError) as exc:
        raise UserError(f"journal {path}: {exc}") from None
    try:
        with jr.reading() as conn:
            yield conn
    finally:
        jr.close()


def _show(table: Table) -> None:
    """A terminal's width governs; piped to a file or a pager, rows stay whole (one per line)."""
    (out if out.is_terminal else Console(width=_PIPED_WIDTH)).print(table)


def _dump(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2) + "\n")


def _money(x: float | None, spec: str = ".2f") -> str:
    return "-" if x is None else format(x, spec)


# --- trades ---


def trade_json(t: TradeRow) -> dict[str, Any]:
    return {**asdict(t), "entry_utc": _utc(t.entry_ts), "settled_utc": _utc(t.settled_ts)}


def _status(t: TradeRow) -> str:
    return f"unknown ({t.status})" if t.outcome_unknown else t.status


def trades_command(
    journal: JournalOpt = None,
    account: Annotated[str | None, typer.Option(help="Only this journal account.")] = None,
    market: Annotated[str | None, typer.Option(help="Only this window (market slug).")] = None,
    limit: Annotated[int, typer.Option(help="Show the newest N orders.")] = 50,
    json_out: JsonOpt = False,
) -> None:
    """One row per order, newest first: entry, market, side, fill, status, outcome, P&L."""
    with _reading(journal) as conn:
        rows = trades(conn, account=account, market_id=market, limit=_limit(limit))
    if json_out:
        _dump([trade_json(t) for t in rows])
        return
    table = Table(title=f"trades (newest first, {len(rows)} shown)")
    for col, right in (("entry (UTC)", False), ("market", False), ("side", False),
                       ("price", True), ("shares", True), ("stake $", True), ("fee $", True),
                       ("status", False), ("outcome", False), ("P&L $", True)):
        table.add_column(col, justify="right" if right else "left")
    for t in rows:
        table.add_row(
            (_utc(t.entry_ts) or "").replace("T", " "), t.market_id, t.side,
            _money(t.price, ".3f"), f"{t.shares:.2f}", f"{t.stake_usd:.2f}",
            f"{t.fee_usd:.4f}", _status(t), t.outcome or "-", _money(t.pnl_usd, "+.2f"))
    _show(table)


# --- profit ---


def profit_row_json(r: ProfitRow) -> dict[str, Any]:
    return {**asdict(r), "hit_rate": r.hit_rate, "first_entry_utc": _utc(r.first_entry_ts),
            "last_entry_utc": _utc(r.last_entry_ts)}


def profit_json(report: ProfitReport) -> dict[str, Any]:
    return {"by": report.by, "groups": [profit_row_json(g) for g in report.groups],
            "total": profit_row_json(report.total)}


def _profit_cells(r: ProfitRow) -> list[str]:
    return [r.key, str(r.trades), f"{r.wins} / {r.losses}",
            "-" if r.hit_rate is None else f"{r.hit_rate:.1%}", str(r.open), str(r.unknown),
            f"{r.staked_usd:,.2f}", f"{r.fees_usd:,.2f}", f"{r.pnl_usd:+,.2f}"]


def profit_command(
    journal: JournalOpt = None,
    account: Annotated[str | None, typer.Option(help="Only this journal account.")] = None,
    by: Annotated[str, typer.Option(
        help="Group by day (UTC date of entry), window (market slug) or market (series).")]
    = "day",
    json_out: JsonOpt = False,
) -> None:
    """P&L after fees, trades, wins/losses and fees, grouped, with a totals line."""
    if by not in PROFIT_BY:
        raise UserError(f"--by must be one of {', '.join(PROFIT_BY)}, got {by!r}")
    with _reading(journal) as conn:
        report = profit(conn, by=by, account=account)
    if json_out:
        _dump(profit_json(report))
        return
    table = Table(title=f"profit by {by}" + (f" ({account})" if account else ""),
                  show_footer=True)
    total = _profit_cells(report.total)
    for i, col in enumerate((by, "trades", "won / lost", "hit rate", "open", "unknown",
                             "staked $", "fees $", "P&L after fees $")):
        table.add_column(col, footer=total[i], justify="left" if i == 0 else "right")
    for g in report.groups:
        table.add_row(*_profit_cells(g))
    _show(table)


# --- decisions ---


def decision_json(d: DecisionRow) -> dict[str, Any]:
    return {**asdict(d), "as_of_utc": _utc(d.as_of)}


def _rules(d: DecisionRow) -> str:
    return ", ".join(r.rule if r.action == "reject" else f"{r.rule} ({r.action})"
                     for r in d.rules_fired) or "-"


def decisions_command(
    journal: JournalOpt = None,
    market: Annotated[str | None, typer.Option(help="Only this window (market slug).")] = None,
    at: Annotated[str | None, typer.Option(
        help="The decision nearest at or before this time (ISO 8601 or epoch seconds).")]
    = None,
    limit: Annotated[int | None, typer.Option(
        help="Show N decisions, newest first (default 20; 1 with --at).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Decisions: time, market, fair P(up), market mid, decision, confidence, guard verdict."""
    at_ts = None if at is None else parse_at(at)
    n = _limit(limit) if limit is not None else (1 if at_ts is not None else 20)
    with _reading(journal) as conn:
        rows = decisions(conn, market_id=market, at_or_before=at_ts, limit=n)
    if json_out:
        _dump([decision_json(d) for d in rows])
        return
    if not rows and at_ts is not None:
        out.print(f"no decision at or before {_utc(at_ts)}", highlight=False)
        return
    table = Table(title=f"decisions (newest first, {len(rows)} shown)")
    for col, right in (("time (UTC)", False), ("market", False), ("fair up", True),
                       ("mid", True), ("decision", False), ("conf", True), ("verdict", False),
                       ("rules fired", False), ("by", False)):
        table.add_column(col, justify="right" if right else "left")
    for d in rows:
        table.add_row(
            (_utc(d.as_of) or "").replace("T", " "), d.market_id, _money(d.fair_up, ".3f"),
            _money(d.market_mid, ".3f"), d.decision,
            "-" if d.confidence is None else str(d.confidence), d.verdict, _rules(d),
            d.decided_by)
    _show(table)


COMMANDS: dict[str, Callable[..., None]] = {
    "trades": trades_command,
    "profit": profit_command,
    "decisions": decisions_command,
}


def register(app: typer.Typer) -> None:
    """Add ``trades``, ``profit`` and ``decisions`` to the ``updown`` app."""
    for name, command in COMMANDS.items():
        app.command(name)(command)
