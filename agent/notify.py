"""Notifications of an autonomous run through apprise (Telegram, Discord, e-mail, webhooks).

Two parts:

* :class:`Notifier` sends.  ``notify`` never blocks and never raises: a message goes into a
  bounded queue (full: dropped and counted) that one background thread drains, sending with
  a timeout; messages are deduplicated by key (the same event is sent once however often it
  is reported) and rate-limited (a burst beyond ``per_minute`` is dropped and counted).  A
  receiver that is down costs the thread a timeout, never the trading loop anything.
* :class:`RunWatcher` decides what to send.  It watches the journal (read-only), the STOP
  file and the runner's status document from its own thread, so every event is seen wherever
  it was written (the runner's execute step, reconciliation, a manual order, the venue
  adapter's trade statuses): order filled, order failed (killed) or outcome unknown (error),
  trade FAILED after a match (``venue_orders.venue_status`` or an execution status
  ``failed``), position settled, daily loss limit reached, kill switch on or off, a feed
  silent longer than ``NOTIFY_FEED_SILENT_S``, and the run stopping.

The apprise URLs are secret (they carry bot tokens): they live in ``NOTIFY_URLS`` and in the
apprise object, never in a message, a log line or a page.  A message holds only the figures
of the event (market, side, price, P&L).  Time comes from the runner's clock; the rate
limit's spacing uses the monotonic clock (an interval, not a time of day).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import Clock, trading_day_start
from core.logs import get_logger

log = get_logger("updown.notify")

# Apprise logs a failing URL's host and path; our own line names the event instead.
logging.getLogger("apprise").setLevel(logging.CRITICAL)

DEFAULT_QUEUE = 256
DEFAULT_PER_MINUTE = 30
DEFAULT_TIMEOUT_S = 5.0
_REMEMBERED_KEYS = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    key: str
    title: str
    body: str
    # apprise notify types: info | success | warning | failure
    kind: str = "info"


def split_urls(text: str) -> list[str]:
    """``NOTIFY_URLS``: one or more apprise URLs, separated by commas, spaces or newlines."""
    return [u for u in text.replace(",", " ").split() if u]


class Notifier:
    """Sends messages from a background thread; see the module docstring."""

    def __init__(self, urls: list[str], *, max_queue: int = DEFAULT_QUEUE,
                 per_minute: int = DEFAULT_PER_MINUTE, timeout_s: float = DEFAULT_TIMEOUT_S,
                 send: Callable[[Message], bool] | None = None) -> None:
        self.timeout_s = timeout_s
        self.per_minute = per_minute
        self._send = send or self._apprise_sender(urls, timeout_s)
        self._queue: queue.Queue[Message | None] = queue.Queue(maxsize=max_queue)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._sent_at: deque[float] = deque()
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0
        self.dropped_full = 0
        self.dropped_rate = 0
        self.duplicates = 0
        self._thread = threading.Thread(target=self._run, name="updown-notify", daemon=True)
        self._thread.start()

    @staticmethod
    def _apprise_sender(urls: list[str], timeout_s: float) -> Callable[[Message], bool]:
        import apprise

        sender = apprise.Apprise()
        for i, url in enumerate(urls):
            if not sender.add(url):
                # Name the position and scheme only: the rest of the URL is a credential.
                scheme = url.split("://", 1)[0] if "://" in url else "?"
                raise ValueError(f"NOTIFY_URLS: URL {i + 1} ({scheme}://...) is not a "
                                 "notification URL apprise knows")
        for server in sender:
            server.socket_connect_timeout = min(timeout_s, 5.0)
            server.socket_read_timeout = timeout_s

        def send(message: Message) -> bool:
            return bool(sender.notify(body=message.body, title=message.title,
                                      notify_type=message.kind))

        return send

    def notify(self, message: Message) -> bool:
        """Queue ``message`` unless it was queued before; never blocks, never raises."""
        with self._lock:
            if message.key in self._seen:
                self.duplicates += 1
                return False
            self._seen[message.key] = None
            if len(self._seen) > _REMEMBERED_KEYS:
                self._seen.popitem(last=False)
        try:
            self._queue.put_nowait(message)
        except queue.Full:
            self.dropped_full += 1
            log.warning("notification_dropped", key=message.key, reason="queue full")
            return False
        return True

    def _allowed(self) -> bool:
        now = time.monotonic()
        while self._sent_at and now - self._sent_at[0] > 60.0:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.per_minute:
            return False
        self._sent_at.append(now)
        return True

    def _run(self) -> None:
        while True:
            message = self._queue.get()
            if message is None:
                return
            if not self._allowed():
                self.dropped_rate += 1
                log.warning("notification_dropped", key=message.key, reason="rate limit")
                continue
            try:
                ok = self._send(message)
            except Exception as exc:  # a notification must never take the run down
                ok = False
                log.warning("notification_failed", key=message.key, error=type(exc).__name__)
            if ok:
                self.sent += 1
            else:
                self.failed += 1
                log.warning("notification_failed", key=message.key)

    def close(self, timeout_s: float | None = None) -> None:
        """Send what is queued (bounded by ``timeout_s``), then stop the thread."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1.0)
        self._thread.join(self.timeout_s * 2 if timeout_s is None else timeout_s)

    def counters(self) -> dict[str, int]:
        return {"sent": self.sent, "failed": self.failed, "dropped_full": self.dropped_full,
                "dropped_rate": self.dropped_rate, "duplicates": self.duplicates}


# --- what to send ---------------------------------------------------------------------------------


def order_message(order_id: str, market_id: str, side: str, status: str, *,
                  price: float | None, shares: float, notional: float, reason: str | None
                  ) -> Message:
    if status == "filled":
        return Message(f"order:{order_id}:filled", "updown: order filled",
                       f"{market_id}: bought {shares:.2f} {side} at {price:.3f} "
                       f"({notional:.2f} USDC)", "success")
    if status == "killed":
        return Message(f"order:{order_id}:killed", "updown: order failed",
                       f"{market_id}: {side} order not filled ({reason or 'killed'})",
                       "warning")
    if status == "error":
        return Message(f"order:{order_id}:error", "updown: order outcome unknown",
                       f"{market_id}: {side} order outcome unknown ({reason or 'error'}); "
                       "reconciliation decides, it is never resent", "failure")
    return trade_failed_message(order_id, market_id, side, status, reason)


def trade_failed_message(order_id: str, market_id: str, side: str, status: str,
                         reason: str | None = None) -> Message:
    """A trade that matched and then FAILED on chain: the venue adapter may call
    ``RunWatcher.notifier.notify`` with this directly when it records the status."""
    return Message(f"order:{order_id}:failed", "updown: trade FAILED after a match",
                   f"{market_id}: {side} trade {status} after a match"
                   f"{' (' + reason + ')' if reason else ''}", "failure")


class RunWatcher:
    """Watches a run and tells the notifier; see the module docstring."""

    def __init__(self, notifier: Notifier, *, journal_path: Path, stop_file: Path,
                 clock: Clock, account: Callable[[], str], daily_loss_limit_usd: float,
                 feed_silent_s: float,
                 status: Callable[[], dict[str, Any] | None] | None = None,
                 since_ts: float | None = None, poll_s: float = 0.5) -> None:
        self.notifier = notifier
        self.journal_path = journal_path
        self.stop_file = stop_file
        self.clock = clock
        self.account = account
        self.daily_loss_limit_usd = daily_loss_limit_usd
        self.feed_silent_s = feed_silent_s
        self.status = status
        self.since_ts = clock.now() if since_ts is None else since_ts
        self.poll_s = poll_s
        self._kill: bool | None = None
        self._silent: dict[tuple[str, str], int] = {}
        self._episodes = 0
        self._settled_rowid = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="updown-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, *, reason: str = "stopped") -> None:
        """Stop watching (after one last look), report the run stopping, drain the sender."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10.0)
        with contextlib.suppress(Exception):
            self.poll_once()
        self.notifier.notify(Message(f"run:stopping:{self.since_ts}", "updown: run stopping",
                                     f"account {self.account()}: {reason}", "warning"))
        self.notifier.close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll_once()
            except Exception as exc:  # watching is best effort; trading goes on
                log.warning("notify_watch_failed", error=f"{type(exc).__name__}: {exc}")

    def poll_once(self) -> None:
        self._check_kill_switch()
        self._check_feeds()
        if not self.journal_path.is_file():
            return
        conn = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=5.0)
        try:
            conn.row_factory = sqlite3.Row
            self._check_orders(conn)
            self._check_settlements(conn)
            self._check_daily_loss(conn)
        finally:
            conn.close()

    # --- checks -----------------------------------------------------------------------------

    def _check_kill_switch(self) -> None:
        engaged = self.stop_file.exists()
        if engaged != self._kill and (self._kill is not None or engaged):
            # Each transition is its own event (on, off, on again...).
            self._episodes += 1
            self.notifier.notify(Message(
                f"kill:{self._episodes}:{engaged}",
                f"updown: kill switch {'ON' if engaged else 'off'}",
                "STOP file present: no new order" if engaged
                else "STOP file removed: trading may resume", "warning"))
        self._kill = engaged

    def _check_feeds(self) -> None:
        if self.status is None:
            return
        try:
            document = self.status()
        except Exception:
            return
        if document is None:
            return
        ages = {"binance": "price_age_s", "rtds": "reference_age_s", "clob": "book_age_s"}
        for market, view in (document.get("markets") or {}).items():
            for feed, key in ages.items():
                age = view.get(key)
                episode = self._silent.get((market, feed))
                if age is not None and age > self.feed_silent_s:
                    if episode is None:
                        self._episodes += 1
                        self._silent[(market, feed)] = self._episodes
                        self.notifier.notify(Message(
                            f"feed:{market}:{feed}:{self._episodes}",
                            f"updown: feed {feed} silent",
                            f"{market}: no {feed} message for {age:.0f} s "
                            f"(> {self.feed_silent_s:g} s)", "warning"))
                elif episode is not None and age is not None:
                    del self._silent[(market, feed)]  # back: the next silence is new

    def _check_orders(self, conn: sqlite3.Connection) -> None:
        from tools.journal.reads.operator import has_table

        # Schema v4: a match that FAILED on chain is a 'failed' fill whose execution became
        # 'killed'; it is reported once, as the FAILED trade, not also as a failed order.
        fills = has_table(conn, "fills")
        failed_fill = ("(SELECT f.state = 'failed' FROM fills f WHERE f.order_id = e.order_id)"
                       if fills else "0")
        for r in conn.execute(
                "SELECT e.order_id, e.status, e.reason, e.avg_price, e.shares, e.notional_usd,"
                f" i.market_id, i.side, {failed_fill} AS failed_fill FROM executions e"
                " JOIN order_intents i ON i.order_id = e.order_id"
                " WHERE e.ts >= ? AND i.account = ?", (self.since_ts, self.account())):
            if r["failed_fill"]:
                self.notifier.notify(trade_failed_message(r["order_id"], r["market_id"],
                                                          r["side"], "FAILED", r["reason"]))
                continue
            self.notifier.notify(order_message(
                r["order_id"], r["market_id"], r["side"], r["status"], price=r["avg_price"],
                shares=float(r["shares"]), notional=float(r["notional_usd"]),
                reason=r["reason"]))
        for r in conn.execute(
                "SELECT v.order_id, v.venue_status, i.market_id, i.side FROM venue_orders v"
                " JOIN order_intents i ON i.order_id = v.order_id"
                " WHERE v.venue_status LIKE '%FAILED' AND i.account = ?", (self.account(),)):
            self.notifier.notify(trade_failed_message(r["order_id"], r["market_id"],
                                                      r["side"], r["venue_status"]))

    def _check_settlements(self, conn: sqlite3.Connection) -> None:
        for r in conn.execute(
                "SELECT rowid, order_id, market_id, side, outcome, pnl_usd FROM settlements"
                " WHERE rowid > ? AND account = ? AND settled_ts >= ? ORDER BY rowid",
                (self._settled_rowid, self.account(), self.since_ts - 86_400.0)):
            self._settled_rowid = max(self._settled_rowid, int(r["rowid"]))
            won = float(r["pnl_usd"]) >= 0
            self.notifier.notify(Message(
                f"settled:{r['order_id']}", "updown: position settled",
                f"{r['market_id']}: {r['side']} settled {r['outcome']}, P&L "
                f"{float(r['pnl_usd']):+.2f} USDC", "success" if won else "warning"))

    def _check_daily_loss(self, conn: sqlite3.Connection) -> None:
        if self.daily_loss_limit_usd <= 0:
            return
        from tools.journal.reads.operator import day_figures

        now = self.clock.now()
        day = day_figures(conn, account=self.account(), day_start=trading_day_start(now),
                          now=now)
        if day.realized_pnl_today <= -self.daily_loss_limit_usd:
            self.notifier.notify(Message(
                f"daily_loss:{self.account()}:{day.day_start}",
                "updown: daily loss limit reached",
                f"realised P&L today {day.realized_pnl_today:+.2f} USDC <= "
                f"-{self.daily_loss_limit_usd:.2f}: no new order until the next trading day "
                "or a manual reset", "failure"))
