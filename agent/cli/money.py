"""Commands for money: ``updown portfolio``, ``updown order``, ``updown reset-daily-loss``.

Registered on the main app by one line in ``agent/cli/app.py`` (``register(app)``).  Every
refusal is a ``UserError`` (one line on stderr, exit code 2); nothing is written before the
input is valid.  An order the guard refuses exits 1, so a script can tell.

* ``portfolio``: positions, P&L and journal summary per account (read-only unless
  ``--settle``, which records the venue's resolutions first).
* ``order``: a manual market buy through the guard and the execute path; paper unless
  ``--live`` with ``POLYMARKET_MODE=live`` and the typed confirmation (or ``LIVE_CONFIRM``).
  Live, the session connects and reconciles the journal with the venue before the order.
* ``reset-daily-loss``: the manual reset of the daily loss limit, confirmed by typing the
  account; recorded in the journal.  Only this command can do it.
"""

from __future__ import annotations

import json
import sys
import time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.cli import common
from core.errors import UserError

out = Console()


class Side(StrEnum):
    up = "up"
    down = "down"


def _ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts)) + "Z"


def portfolio(
    journal: Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
    = None,
    account: Annotated[str | None, typer.Option(
        help="Journal account (default: every account in the journal).")] = None,
    settle: Annotated[bool, typer.Option(
        help="First record the venue's resolution of every unsettled window (Gamma).")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
    = False,
) -> None:
    """Positions, P&L and the journal summary (the original portfolio_status)."""
    from agent.portfolio import build_portfolio, portfolio_json
    from core.clock import SystemClock
    from core.fees import dated_fee_schedule
    from core.guard import GuardLimits
    from tools.journal import Journal
    from tools.polymarket.http import ClobHttp
    from tools.polymarket.settlement import settle_resolved
    from tools.polymarket.wire import parse_gamma_market

    settings = common.settings()
    path = journal or settings.journal_path
    if not path.exists():
        raise UserError(f"journal not found: {path}")
    limits = GuardLimits.from_settings(settings)
    now = SystemClock().now()
    with Journal(path) as jr:
        accounts = [account] if account else jr.accounts()
        if settle:
            http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url)
            try:
                def market_of(market_id: str) -> Any:
                    from tools.polymarket.http import VenueUnavailable

                    doc = http.gamma_market(market_id)
                    if doc is None:
                        raise VenueUnavailable(f"no market {market_id!r} at Gamma")
                    return parse_gamma_market(doc, fallback_fees=dated_fee_schedule(now))

                for acct in accounts:
                    settled = settle_resolved(jr, market_of, account=acct, now=now)
                    if settled and not json_out:
                        out.print(f"settled {len(settled)} position(s) of {acct}")
            finally:
                http.close()
        reports = [build_portfolio(jr, account=a, limits=limits, now=now) for a in accounts]
    if json_out:
        sys.stdout.write(json.dumps([portfolio_json(r) for r in reports], indent=2) + "\n")
        return
    if not reports:
        out.print("journal holds no account yet")
    for r in reports:
        summary = Table(title=f"portfolio {r.account}", show_header=False)
        summary.add_column("what")
        summary.add_column("value", justify="right")
        rows = [
            ("orders by status", ", ".join(f"{k} {v}" for k, v in
                                           sorted(r.intents_by_status.items())) or "none"),
            ("open positions", f"{len(r.open_positions)} (cost {r.open_cost_usd:.2f} USDC)"),
            ("settled", f"{len(r.settled)}: {r.wins} won, {r.losses} lost"),
            ("realised P&L", f"{r.realized_pnl_usd:+.2f} USDC (fees {r.fees_usd:.2f})"),
            ("realised P&L today", f"{r.realized_pnl_today_usd:+.2f} / limit "
                                   f"-{r.daily_loss_limit_usd:.2f}"
                                   + ("  HALTED (reset-daily-loss)" if r.daily_loss_halted
                                      else "")),
            ("orders today", f"{r.orders_today} / {r.max_orders_per_day}"),
            ("losing streak", str(r.consecutive_losses)
             + (f", cooling down until {_ts(r.cooldown_until)}" if r.cooldown_until else "")),
            ("outcome unknown", ", ".join(i.order_id for i in r.unknown) or "none"),
            ("provisional fills", f"{len(r.provisional)} (matched, not final on chain)"),
            ("failed fills", f"{len(r.failed_fills)} (failed on chain: no position, no P&L)"),
            ("unredeemed winnings", f"{r.unredeemed_usd:.2f} USDC in {len(r.unredeemed)} "
                                    "position(s) (updown redeem)"),
        ]
        if r.resets:
            rows.append(("last daily-loss reset", f"{_ts(r.resets[-1].reset_ts)} "
                                                  f"({r.resets[-1].note})"))
        for k, v in rows:
            summary.add_row(k, v)
        out.print(summary)
        if r.open_positions:
            table = Table(title="open positions")
            for col in ("order", "market", "side", "shares", "avg price", "cost"):
                table.add_column(col)
            for e in r.open_positions:
                table.add_row(e.order_id, e.market_id, e.side, f"{e.shares:.2f}",
                              f"{e.avg_price or 0:.3f}", f"{e.notional_usd + e.fee_usd:.2f}")
            out.print(table)
        if r.settled:
            table = Table(title="settled positions (latest 20)")
            for col in ("market", "side", "outcome", "shares", "P&L", "settled"):
                table.add_column(col)
            for p in r.settled[-20:]:
                table.add_row(p.market_id, p.side, p.outcome, f"{p.shares:.2f}",
                              f"{p.pnl_usd:+.2f}", _ts(p.settled_ts))
            out.print(table)
        for f in r.failed_fills:
            out.print(f"[yellow]fill failed on chain[/]: {f.order_id} {f.market_id} "
                      f"{f.matched_shares:.2f} shares: {f.detail or ''}", highlight=False)
        problems = [x for x in r.reconciliations if x.outcome in ("unresolved", "discrepancy")]
        for x in problems:
            out.print(f"[yellow]reconciliation {x.outcome}[/]: {x.order_id or ''} {x.detail}",
                      highlight=False)


def order(
    side: Annotated[Side, typer.Option(help="The outcome to buy.")],
    usd: Annotated[float, typer.Option(help="Dollars to spend (the guard may shrink it).")],
    market: Annotated[str | None, typer.Option(
        help="Market slug (default: the 15-minute BTC window open now).")] = None,
    worst_price: Annotated[float | None, typer.Option(
        help="Worst price (default: ask + MAX_SLIPPAGE, capped by the guard).")] = None,
    live: Annotated[bool, typer.Option(
        "--live", help="Real money: needs POLYMARKET_MODE=live and the confirmation.")] = False,
    journal: Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
    = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.")]
    = False,
) -> None:
    """A manual market buy through the same guard (the original place_order)."""
    from agent.live import LiveSession, mode_for_command
    from agent.manual_order import current_window_slug, place_manual_order
    from core.clock import SystemClock
    from tools.journal import Journal
    from tools.paper_broker import PaperBroker
    from tools.polymarket.http import ClobHttp

    if not (usd > 0 and usd < 1e7):
        raise UserError(f"--usd must be a positive amount, not {usd}")
    if worst_price is not None and not 0 < worst_price < 1:
        raise UserError(f"--worst-price must be between 0 and 1, not {worst_price}")
    settings = common.settings()
    mode = mode_for_command(settings, live_flag=live, action="place a real-money order")
    if mode.note and not json_out:
        out.print(f"[yellow]{mode.note}[/]")
    clock = SystemClock()
    market_id = market or current_window_slug(clock.now())
    http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url)
    session = None
    try:
        with Journal(journal or settings.journal_path) as jr:
            if mode.mode == "live":
                session = LiveSession(settings, jr, mode, clock=clock)
                session.start()  # connect, then reconcile: before anything is decided
                assert session.broker is not None
                broker: Any = session.broker
                account = session.account
            else:
                broker, account = PaperBroker(fill_mode=settings.polymarket_order_type), "paper"
            outcome = place_manual_order(
                settings=settings, journal=jr, limits=mode.limits(settings),
                account=account, broker=broker, http=http, clock=clock,
                market_id=market_id, side="up" if side is Side.up else "down",
                stake_usd=usd, worst_price=worst_price)
    finally:
        http.close()
        if session is not None:
            session.close()
    verdict, execution = outcome.verdict, outcome.execution
    if json_out:
        sys.stdout.write(json.dumps({
            "mode": mode.mode, "account": account, "market_id": market_id,
            "decision_id": outcome.decision_id, "approved": verdict.approved,
            "verdict": verdict.model_dump(mode="json"),
            "waived": [h.model_dump(mode="json") for h in outcome.waived],
            "execution": execution.model_dump(mode="json") if execution else None},
            indent=2) + "\n")
    else:
        out.print(f"[bold]{mode.mode}[/] order {side.value} {usd:.2f} USDC in {market_id} "
                  f"(account {account})", highlight=False)
        for h in outcome.waived:
            out.print(f"  waived for a manual order: {h.rule}: {h.detail}", highlight=False)
        for h in verdict.rules_fired:
            out.print(f"  {h.action} {h.rule}: {h.detail}", highlight=False)
        if not verdict.approved:
            out.print("[red]refused by the guard[/]")
        elif execution is not None:
            out.print(f"  {execution.status}: {execution.shares:.2f} shares at "
                      f"{execution.avg_price or 0:.3f}, fee {execution.fee_usd:.4f}"
                      f"{' - ' + execution.reason if execution.reason else ''}",
                      highlight=False)
    if not verdict.approved:
        raise typer.Exit(1)  # refused by the guard: a script must be able to tell


def reset_daily_loss(
    account: Annotated[str, typer.Option(help="Journal account whose daily loss is reset.")],
    note: Annotated[str, typer.Option(help="Why (kept in the journal).")],
    confirm: Annotated[str | None, typer.Option(
        help="The account id again, to confirm without a prompt.")] = None,
    journal: Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
    = None,
) -> None:
    """Manually reset the daily loss limit: losses before now stop counting today."""
    from core.clock import SystemClock
    from tools.journal import Journal

    settings = common.settings()
    path = journal or settings.journal_path
    if not path.exists():
        raise UserError(f"journal not found: {path}")
    if not note.strip():
        raise UserError("--note must say why the daily loss limit is reset")
    if confirm is None and sys.stdin.isatty():
        confirm = typer.prompt(f"Type the account id ({account}) to reset its daily loss")
    if confirm != account:
        raise UserError("reset not confirmed: pass --confirm with the account id (or type it)")
    now = SystemClock().now()
    with Journal(path) as jr:
        if account not in jr.accounts():
            raise UserError(f"no account {account!r} in {path}")
        jr.record_daily_loss_reset(account=account, reset_ts=now, note=note)
    out.print(f"daily loss of {account} reset at {_ts(now)}: {note.strip()}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add the live/money commands to the ``updown`` app."""
    app.command("portfolio")(portfolio)
    app.command("order")(order)
    app.command("reset-daily-loss")(reset_daily_loss)
