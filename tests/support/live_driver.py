"""A live-trading process for the SIGKILL tests: start a live session (connect, then reconcile
the journal with the venue), then place manual orders through the guard and execute path.

``tests/test_live_crash.py`` starts it as a child process (``run``, from a multiprocessing
fork server that has the project imported, so each process starts in milliseconds); it also
runs as a script: ``python tests/live_driver.py --market SLUG``.  Settings come from the
environment (pointed at a loopback fake venue).  Every step is one JSON line on stdout, or in
the events file the test reads.

Test hook: ``UPDOWN_CRASH_AT=<point>`` makes this driver SIGKILL itself when the broker
reaches that checkpoint ("after_sign", "before_post", "after_post", "before_journal_write";
for resting orders "resting_after_sign", "resting_before_post", "resting_after_post").

``--rest PRICE`` (issue 16): instead of market orders, the runner's maker desk is built on the
live resting broker, recovers what a previous process left (``recovered`` event), and rests a
post-only buy of ``--shares`` at PRICE in each market whose window has none resting yet.
The hook lives only here: the broker's checkpoints do nothing unless a caller injects one.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


_events: Any = sys.stdout


def emit(event: str, **fields: Any) -> None:
    # One write per line, flushed: a SIGKILL right after cannot lose it.
    _events.write(json.dumps({"event": event, **fields}) + "\n")
    _events.flush()


def crash_hook(point: str) -> None:
    if point == os.environ.get("UPDOWN_CRASH_AT"):
        emit("crashing", at=point)
        os.kill(os.getpid(), signal.SIGKILL)


def run(argv: list[str], env: dict[str, str], events_path: str) -> None:
    """Entry point of a child process: this environment, these arguments, events to a file."""
    global _events
    os.environ.clear()
    os.environ.update(env)
    with open(events_path, "a", encoding="utf-8") as events:
        _events = events
        sys.exit(main(argv))


def main(argv: list[str] | None = None) -> int:
    from agent.live import LiveSession, resolve_mode
    from agent.manual_order import place_manual_order
    from core.clock import SystemClock
    from core.logs import configure
    from core.settings import load_settings
    from tools.journal import Journal
    from tools.polymarket.http import ClobHttp

    parser = argparse.ArgumentParser()
    parser.add_argument("--market", action="append", default=[])
    parser.add_argument("--usd", type=float, default=10.0)
    parser.add_argument("--grace", type=float, default=0.3)
    parser.add_argument("--rest", type=float, default=None)
    parser.add_argument("--shares", type=float, default=10.0)
    parser.add_argument("--window-end", type=float, default=None)
    args = parser.parse_args(argv)

    settings = load_settings(env_file=None)
    configure("WARNING")
    mode = resolve_mode(settings, live_flag=True)
    clock = SystemClock()
    http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url)
    with Journal(settings.journal_path) as journal:
        session = LiveSession(settings, journal, mode, clock=clock, checkpoint=crash_hook,
                              not_found_grace_s=args.grace, poll_interval_s=0.05)
        report = session.start()
        emit("reconciled", checked=report.checked, ok=report.ok,
             resolved=[{"order_id": e.order_id, "status": e.status, "reason": e.reason}
                       for e in report.resolved])
        assert session.broker is not None
        if args.rest is not None:
            rest(session, journal, settings, clock, args)
            args.market = []
        for market_id in args.market:
            outcome = place_manual_order(
                settings=settings, journal=journal, limits=session.limits(),
                account=session.account, broker=session.broker, http=http, clock=clock,
                market_id=market_id, side="up", stake_usd=args.usd)
            execution = outcome.execution
            emit("order", market_id=market_id, approved=outcome.verdict.approved,
                 rules=[h.rule for h in outcome.verdict.rules_fired if h.action == "reject"],
                 status=execution.status if execution else None,
                 reason=execution.reason if execution else None)
        session.close()
    http.close()
    return 0


def rest(session: Any, journal: Any, settings: Any, clock: Any, args: Any) -> None:
    from agent.maker_live import build_runner_desk
    from core.snapshot import BookTop, Candles, MarketSnapshot
    from tools.execution import resting_order_id, send_resting_order
    from tools.journal.resting import RestingOrders

    now = clock.now()
    run_id = journal.start_run(account=session.account, mode="live", dataset=None, config={},
                               started_ts=now)
    rdesk = build_runner_desk(style="maker", settings=settings, limits=session.limits(),
                              journal=journal, account=session.account, run_id=run_id,
                              stop_file=settings.stop_file, taker=session.broker,
                              live=session.broker)
    report = rdesk.recover(journal, account=session.account, now=now)
    emit("recovered", adopted=report.adopted, cancelled=report.cancelled,
         never_posted=report.never_posted, unresolved=report.unresolved,
         closed=report.closed)
    for market_id in args.market:
        w = rdesk.desk.windows.get(market_id)
        if w is not None and (w.open_orders() or w.has_fill):
            emit("rest_skipped", market_id=market_id,
                 resting=[o.order_id for o in w.open_orders()])
            continue
        snap = MarketSnapshot(market_id=market_id, as_of=now, window_start=now - 300.0,
                              window_end=args.window_end, price_to_beat=100_000.0,
                              price=100_010.0, price_ts=now, candles=Candles(interval_s=60.0),
                              up=BookTop(), down=BookTop(), book_ts=now)
        order = send_resting_order(
            order_id=resting_order_id(f"{market_id}@{now:.3f}"), decision_id=f"{market_id}@",
            snapshot=snap, side="up", price=args.rest, shares=args.shares,
            expires_at=args.window_end - 60.0, execution_style="maker", replaces=None,
            broker=rdesk.broker, journal=RestingOrders(journal), account=session.account,
            run_id=run_id, stop_file=settings.stop_file, now=now)
        emit("rested", market_id=market_id, status=order.status if order else None)


if __name__ == "__main__":
    sys.exit(main())
