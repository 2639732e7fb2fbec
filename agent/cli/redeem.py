"""``updown redeem``: pay out winning positions that are not redeemed yet, exactly once.

Paper (default): every owed redemption of the journal's paper accounts becomes a ledger
entry.  ``--live`` (``POLYMARKET_MODE=live`` and the confirmation): the live session connects
and reconciles first, then redeems the wallet's winnings through the official SDK
(``tools.polymarket.redeem``); a failed redemption stays owed and is retried by the next run
or command, after asking the venue whether it already went through.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agent.cli import common
from core.errors import UserError

out = Console()


def redeem(
    journal: Annotated[Path | None, typer.Option(help="SQLite journal (default JOURNAL_PATH).")]
    = None,
    account: Annotated[str | None, typer.Option(
        help="Journal account (paper default: every non-live account).")] = None,
    live: Annotated[bool, typer.Option(
        "--live", help="Redeem the wallet's winnings at the venue (needs the confirmation).")]
    = False,
    json_out: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Redeem winning positions not redeemed yet (each exactly once)."""
    from agent.live import LiveSession, mode_for_command
    from core.clock import SystemClock
    from tools.journal import Journal
    from tools.redemption import PaperRedeemer, RedeemReport, redeem_due

    settings = common.settings(quiet=json_out)
    path = journal or settings.journal_path
    if not path.exists():
        raise UserError(f"journal not found: {path}")
    mode = mode_for_command(settings, live_flag=live, action="redeem real positions")
    clock = SystemClock()
    reports: list[RedeemReport] = []
    with Journal(path) as jr:
        if mode.mode == "live":
            session = LiveSession(settings, jr, mode, clock=clock)
            try:
                session.start()
                if account is not None and account != session.account:
                    raise UserError(f"--account {account} is not this wallet's account "
                                    f"({session.account})")
                reports.append(session.redeem_due())
            finally:
                session.close()
        else:
            accounts = [account] if account else [a for a in jr.accounts()
                                                    if not a.startswith("live:")]
            if account is not None and account.startswith("live:"):
                raise UserError(f"--account {account} is a live account: add --live")
            if account is not None and account not in jr.accounts():
                raise UserError(f"no account {account!r} in {path}")
            reports = [redeem_due(jr, PaperRedeemer(), account=a, now=clock.now())
                       for a in accounts]
        owed = {r.account: jr.redemptions(account=r.account,
                                          states=("pending", "submitted", "failed"))
                for r in reports}
    doc: list[dict[str, Any]] = [{
        "account": r.account, "mode": mode.mode, "redeemed_usd": r.redeemed_usd,
        "redeemed": [{"order_id": x.order_id, "market_id": x.market_id,
                      "payout_usd": x.payout_usd} for x in r.confirmed],
        "submitted": r.submitted, "failed": r.failed, "waiting": r.waiting,
        "still_owed_usd": round(sum(x.payout_usd for x in owed[r.account]), 6),
    } for r in reports]
    if json_out:
        sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        return
    if not doc:
        out.print("nothing to redeem")
    for d in doc:
        out.print(f"{d['account']} ({d['mode']}): redeemed {len(d['redeemed'])} position(s), "
                  f"{d['redeemed_usd']:.2f} USDC; submitted {len(d['submitted'])}, "
                  f"failed {len(d['failed'])} (retried later), still owed "
                  f"{d['still_owed_usd']:.2f} USDC", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("redeem")(redeem)
