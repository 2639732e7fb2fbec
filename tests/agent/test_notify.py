"""Notifications (agent/notify.py): every event reaches a loopback webhook exactly once through
apprise's real ``json://`` plugin, with no secret in any payload; a receiver that is down or
hangs never blocks the caller.

The journal is real SQLite written through ``tools.journal.Journal`` (synthetic orders); the
status document and the clock are handed in.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
from dashkit import CANARY_KEY, WebhookReceiver

from agent.notify import Message, Notifier, RunWatcher, split_urls
from core.records import ExecutionReport
from tools.journal import Journal

pytestmark = pytest.mark.server

T0 = 1_800_000_000.0  # synthetic times


class FixedClock:
    def __init__(self, t: float) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def _order(jr: Journal, run_id: str, n: int, status: str, *, price: float = 0.5,
           reason: str | None = None) -> str:
    market = f"btc-updown-15m-{int(T0) + 900 * n}"
    order_id = f"{market}@{T0 + n}/r#1"
    jr.record_decision(run_id=run_id, decision_id=f"{market}@{T0 + n}/r", market_id=market,
                       as_of=T0 + n, decided_by="policy", decision="up", approved=True,
                       rules_fired=[], record={"synthetic": True})
    jr.record_order_intent(account="paper", run_id=run_id, decision_id=f"{market}@{T0 + n}/r",
                           order_id=order_id, market_id=market, side="up", stake_usd=10.0,
                           worst_price=0.6, created_ts=T0 + n)
    shares = 20.0 if status == "filled" else 0.0
    jr.record_execution(ExecutionReport(
        status=status, broker="paper", order_id=order_id, market_id=market, side="up",
        stake_usd=10.0, worst_price=0.6, shares=shares,
        avg_price=price if status == "filled" else None,
        notional_usd=shares * price, fee_usd=0.0, reason=reason), ts=T0 + n)
    return market


def test_every_event_arrives_once_without_secrets(tmp_path: Path) -> None:
    stop_file = tmp_path / "STOP"
    ages = {"price_age_s": 0.5, "reference_age_s": 0.5, "book_age_s": 0.5}
    with WebhookReceiver() as hook, Journal(tmp_path / "journal.db") as jr:
        # The URL is the secret: a canary stands in for a webhook token in its path.
        url = f"json://127.0.0.1:{hook.port}/hooks/{CANARY_KEY}"
        notifier = Notifier(split_urls(url + ", "), timeout_s=5.0)
        watcher = RunWatcher(
            notifier, journal_path=tmp_path / "journal.db", stop_file=stop_file,
            clock=FixedClock(T0 + 3600), account=lambda: "paper", daily_loss_limit_usd=5.0,
            feed_silent_s=30.0, status=lambda: {"markets": {"btc-15m": dict(ages)}},
            since_ts=T0 - 1)
        run_id = jr.start_run(account="paper", mode="paper", dataset=None, config={},
                              started_ts=T0 - 1)
        filled = _order(jr, run_id, 1, "filled", price=0.5)
        _order(jr, run_id, 2, "killed", reason="FOK not filled")
        _order(jr, run_id, 3, "error", reason="timeout after send")
        lost = _order(jr, run_id, 4, "filled", price=0.4)
        order4 = f"{lost}@{T0 + 4}/r#1"
        jr.record_signed_order(order_id=order4, venue="polymarket", order_hash="0x" + "ab" * 32,
                               token_id="1", order_type="FOK", amount_usd="8", worst_price="0.6",
                               maker_amount="8000000", taker_amount="20000000",
                               signed_ts=T0 + 4)
        watcher.poll_once()
        jr.record_venue_status(order4, venue_status="FAILED", ts=T0 + 5)
        jr.record_settlement(account="paper", market_id=filled, outcome="down",
                             outcome_verified=True, settled_ts=T0 + 900)
        jr.record_settlement(account="paper", market_id=lost, outcome="down",
                             outcome_verified=True, settled_ts=T0 + 1000)
        for _ in range(3):  # a repeated look finds nothing new to send
            watcher.poll_once()
        stop_file.write_text("x")
        watcher.poll_once()
        watcher.poll_once()
        stop_file.unlink()
        watcher.poll_once()
        ages["reference_age_s"] = 45.0
        watcher.poll_once()
        watcher.poll_once()
        watcher.close(reason="test over")
        deadline = time.monotonic() + 30  # only stops a hung test
        while len(hook.received) < 12 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        received = hook.messages()
        raw = [r["body"] + json.dumps(r["headers"]) + r["path"] for r in hook.received]
    titles = sorted(m["title"] for m in received)
    assert titles == sorted([
        "updown: order filled", "updown: order filled", "updown: order failed",
        "updown: order outcome unknown", "updown: trade FAILED after a match",
        "updown: position settled", "updown: position settled",
        "updown: daily loss limit reached", "updown: kill switch ON", "updown: kill switch off",
        "updown: feed rtds silent", "updown: run stopping"]), titles
    bodies = " | ".join(m["message"] for m in received)
    assert "-10.00 USDC" in bodies  # 20 shares at 0.50 lost
    assert "-8.00 USDC" in bodies  # 20 shares at 0.40 lost
    assert "no rtds message for 45 s" in bodies
    assert notifier.counters()["failed"] == 0
    # The webhook token lives in the URL path only: never inside a payload.
    assert all(CANARY_KEY not in r["body"] for r in hook.received)
    assert all(CANARY_KEY not in json.dumps(m) for m in received)
    assert raw  # (the path itself carries the token, as the URL said)


def test_receiver_down_or_hanging_never_blocks(tmp_path: Path) -> None:
    # Down: nothing listens on the port; every send fails, the caller is never held.
    with WebhookReceiver() as hook:
        port = hook.port
    notifier = Notifier([f"json://127.0.0.1:{port}/hook"], timeout_s=1.0)
    started = threading.Event()
    for i in range(5):
        assert notifier.notify(Message(f"k{i}", "t", "b"))
    started.set()
    notifier.close(timeout_s=20)
    assert notifier.counters()["failed"] == 5
    assert notifier.counters()["sent"] == 0

    # Hanging: a sender that never returns until released; the queue is bounded, the excess
    # is dropped and counted, and notify() still returns at once every time.
    release = threading.Event()

    def hang(message: Message) -> bool:
        release.wait(30)
        return True

    stuck = Notifier([], max_queue=3, send=hang)
    accepted = [stuck.notify(Message(f"h{i}", "t", "b")) for i in range(10)]
    assert accepted.count(True) in (3, 4)  # one may already be in the sender's hands
    assert stuck.counters()["dropped_full"] == 10 - accepted.count(True)
    # Deduplicated: the same key is queued once.
    assert stuck.notify(Message("h0", "t", "b")) is False
    release.set()
    stuck.close(timeout_s=10)


def test_rate_limit_drops_a_burst() -> None:
    sent: list[str] = []

    def record(message: Message) -> bool:
        sent.append(message.key)
        return True

    notifier = Notifier([], per_minute=5, send=record)
    for i in range(12):
        notifier.notify(Message(f"r{i}", "t", "b"))
    notifier.close(timeout_s=10)
    assert len(sent) == 5
    assert notifier.counters()["dropped_rate"] == 7


def test_a_bad_url_is_named_without_its_secret() -> None:
    with pytest.raises(ValueError, match=r"URL 2 \(nosuchscheme://\.\.\.\)") as info:
        Notifier(["json://127.0.0.1:9/ok", f"nosuchscheme://{CANARY_KEY}@host"])
    assert CANARY_KEY not in str(info.value)

