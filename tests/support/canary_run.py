"""The canary scenario: a whole live session run by a child process whose private key is a
per-run canary, with every output it can produce written under one directory.

``tests/test_live_canary.py`` runs ``run`` in a fresh process (so logging is configured here,
at DEBUG, before anything logs) against a loopback fake venue, then searches every byte
written for the key.  Outputs: structlog JSON and stdlib logging at DEBUG (``all.log``), the
journal (with its WAL), the JSONL decision log, a LangGraph SQLite checkpoint, a trace of
every graph callback event (what a tracer would receive), and tracebacks formatted with their
local variables (``exceptions.txt``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.TracebackException.from_exception(exc,
                                                               capture_locals=True).format())


def run(env: dict[str, str], out_dir: str, markets: list[str], rejecting_url: str) -> None:
    os.environ.clear()
    os.environ.update(env)
    out = Path(out_dir)
    sink = (out / "all.log").open("a", encoding="utf-8")
    sys.stdout = sys.stderr = sink
    logging.basicConfig(level=logging.DEBUG, stream=sink, force=True)
    try:
        _scenario(out, markets, rejecting_url)
    except BaseException as exc:  # the test reads it; nothing may escape unrecorded
        (out / "exceptions.txt").open("a").write("UNEXPECTED\n" + _traceback(exc))
        raise
    finally:
        sink.flush()


def _scenario(out: Path, markets: list[str], rejecting_url: str) -> None:
    from langchain_core.callbacks import BaseCallbackHandler
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    from agent.live import LiveSession, resolve_mode
    from agent.manual_order import place_manual_order
    from agent.portfolio import build_portfolio, portfolio_json
    from core.clock import SystemClock
    from core.logs import configure, get_logger
    from core.settings import load_settings
    from evals.replay_runner import decision_record
    from graphs.graph import RECURSION_LIMIT, compile_graph
    from tools.decision_log import DecisionLog
    from tools.journal import Journal
    from tools.polymarket.http import ClobHttp
    from tools.polymarket.orders import LiveSetupError

    configure("DEBUG", json=True)
    log = get_logger("canary")
    settings = load_settings(env_file=None)
    log.debug("settings_loaded", settings=repr(settings),
              dump=settings.model_dump(mode="json"))
    trace = (out / "trace.jsonl").open("a", encoding="utf-8")

    class TraceRecorder(BaseCallbackHandler):
        """Everything a tracer is handed: every chain's inputs, outputs and errors."""

        def on_chain_start(self, serialized: Any, inputs: Any, **kw: Any) -> None:
            trace.write(json.dumps({"start": repr(inputs), "kw": repr(kw)}) + "\n")

        def on_chain_end(self, outputs: Any, **kw: Any) -> None:
            trace.write(json.dumps({"end": repr(outputs), "kw": repr(kw)}) + "\n")

        def on_chain_error(self, error: BaseException, **kw: Any) -> None:
            trace.write(json.dumps({"error": repr(error)}) + "\n")

    clock = SystemClock()
    mode = resolve_mode(settings, live_flag=True)
    with Journal(settings.journal_path) as jr, DecisionLog(settings.ai_decision_log_path) as dl:
        session = LiveSession(settings, jr, mode, clock=clock, not_found_grace_s=0.3,
                              poll_interval_s=0.05)
        session.start()
        log.debug("session_started", session=repr(session), broker=repr(session.broker),
                  startup=repr(session.startup))
        assert session.broker is not None

        async def decide() -> None:
            async with AsyncSqliteSaver.from_conn_string(str(out / "checkpoints.db")) as saver:
                compiled = compile_graph(checkpointer=saver)
                for i, market_id in enumerate(markets):
                    run_id = jr.start_run(account=session.account, mode="live", dataset=None,
                                          config={"canary": True})
                    snapshot = _snapshot_from_venue(settings, market_id, clock.now())
                    state = await compiled.ainvoke(
                        {"snapshot": snapshot, "decision_id": f"canary-{i}"},
                        context=session.context(run_id=run_id, use_llm=False),
                        config={"configurable": {"thread_id": f"canary-{i}"},
                                "callbacks": [TraceRecorder()],
                                "recursion_limit": RECURSION_LIMIT})
                    dl.append(decision_record(state))
                    log.debug("decision", record=decision_record(state))

        asyncio.run(decide())
        # Settle what the venue resolved, reconcile again, show the portfolio.
        (out / "resolve.request").write_text("go")
        for _ in range(200):
            if (out / "resolve.done").exists():
                break
            time.sleep(0.02)
        log.info("settled", positions=[repr(p) for p in session.settle_due()])
        log.info("portfolio", report=portfolio_json(build_portfolio(
            jr, account=session.account, limits=session.limits(), now=clock.now())))
        # A manual order on a window already entered: refused by the guard, journaled.
        http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url)
        manual = place_manual_order(settings=settings, journal=jr, limits=session.limits(),
                                    account=session.account, broker=session.broker, http=http,
                                    clock=clock, market_id=markets[0], side="up",
                                    stake_usd=5.0)
        log.info("manual_order", outcome=repr(manual))
        http.close()
        session.close()
        again = LiveSession(settings, jr, mode, clock=clock, not_found_grace_s=0.3)
        log.info("restart_reconciliation", report=repr(again.start()))
        again.close()

    # Errors, formatted with every local variable of every frame.
    errors = (out / "exceptions.txt").open("a", encoding="utf-8")
    rejecting = settings.model_copy(update={"polymarket_clob_url": rejecting_url})
    try:
        LiveSession(rejecting, Journal(out / "other.db"), mode).start()
    except LiveSetupError as exc:
        errors.write(f"{exc!s}\n{exc!r}\n{_traceback(exc)}\n")
        log.error("live_setup_failed", error=str(exc), exc_info=True)
    from eth_account import Account

    assert session.broker is not None
    key_holder: Any = session.broker._signer._key
    try:
        Account.sign_message("not a signable message", private_key=key_holder)  # type: ignore[arg-type]
    except Exception as exc:  # inside the signing library, with the key as a local
        errors.write(f"{exc!s}\n{exc!r}\n{_traceback(exc)}\n")
        log.error("library_failure", error=str(exc), exc_info=True)
    errors.close()
    trace.close()


def _snapshot_from_venue(settings: Any, market_id: str, now: float) -> Any:
    """A snapshot with the venue's window and book and a synthetic BTC price well above a
    synthetic price to beat (so the deterministic policy trades Up)."""
    from agent.manual_order import venue_snapshot
    from tools.polymarket.http import ClobHttp

    http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url)
    try:
        _, snap = venue_snapshot(http, market_id, now=now)
    finally:
        http.close()
    return snap.model_copy(update={"price_to_beat": 100_000.0, "price_to_beat_verified": True,
                                   "price": 100_050.0, "price_ts": now,
                                   "price_source": "synthetic"})
