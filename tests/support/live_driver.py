"""A live-trading process for the SIGKILL tests: start a live session (connect, then reconcile
the journal with the venue), then place manual orders through the guard and execute path.

``tests/test_live_crash.py`` starts it as a child process (``run``, from a multiprocessing
fork server that has the project imported, so each process starts in milliseconds); it also
runs as a script: ``python tests/live_driver.py --market SLUG``.  Settings come from the
environment (pointed at a loopback fake venue).  Every step is one JSON line on stdout, or in
the events file the test reads.

Test hook: ``UPDOWN_CRASH_AT=<point>`` makes this driver SIGKILL itself when the broker
reaches that checkpoint ("after_sign", "before_post", "after_post", "before_journal_write").
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


if __name__ == "__main__":
    sys.exit(main())
