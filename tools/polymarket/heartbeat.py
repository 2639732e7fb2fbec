"""Order heartbeats: what keeps resting orders alive, and what cancels them when we stop.

The venue's rule (venue.md, and the SDK's ``send_order_heartbeat`` documentation):
``POST /v1/heartbeats`` with the last returned ``heartbeat_id`` (empty at first).  The first
accepted send arms cancel-on-timeout for ALL open orders of the API key; after 10 s without an
accepted send the venue attempts cancel-all (not guaranteed).  There is no disarm: at shutdown
the runner must cancel explicitly and verify.

``OrderHeartbeat.send`` is one request.  A 400 "Invalid Heartbeat ID" names the id the venue
expects: that id is adopted and sent once more at once (a heartbeat is not an order, so a
resend cannot duplicate anything, and waiting for the next tick could let the deadline pass).
Every other failure is reported, never retried here; a lost answer may follow an accepted
send, so a failure does not prove the registration is inactive.

``HeartbeatLoop`` sends every ``interval_s`` from an asyncio task (the request runs in a
thread, so a slow venue never stalls the event loop) and says when the venue may have
cancelled everything (``expired``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from core.logs import get_logger
from tools.polymarket.http import HEARTBEATS, ClobHttp, HttpAnswer, VenueUnavailable

log = get_logger("updown.heartbeat")

HEARTBEAT_INTERVAL_S = 5.0
# After this long without an accepted send the venue attempts to cancel every open order.
HEARTBEAT_EXPIRY_S = 10.0
_MISMATCH = "Invalid Heartbeat ID"

BeatStatus = Literal["accepted", "rejected", "unknown"]


@dataclass(frozen=True, slots=True)
class BeatResult:
    status: BeatStatus
    detail: str
    heartbeat_id: str = ""


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def parse_beat(answer: HttpAnswer) -> tuple[BeatResult, str | None]:
    """One heartbeat answer: the result and, for a mismatch, the id the venue expects."""
    doc = _json(answer.text)
    if answer.status == 200 and isinstance(doc, dict):
        beat_id = doc.get("heartbeat_id")
        if isinstance(beat_id, str) and beat_id:
            return BeatResult("accepted", "accepted", beat_id), None
        return BeatResult("unknown", "answer without a heartbeat_id"), None
    if (answer.status == 400 and isinstance(doc, dict) and doc.get("error_msg") == _MISMATCH
            and isinstance(doc.get("heartbeat_id"), str)):
        return BeatResult("rejected", "heartbeat_id_mismatch"), str(doc["heartbeat_id"])
    if answer.status >= 500 or answer.status == 429:
        return BeatResult("unknown", f"HTTP {answer.status}"), None
    return BeatResult("rejected", f"HTTP {answer.status}"), None


class OrderHeartbeat:
    """The heartbeat chain of one API key."""

    def __init__(self, http: ClobHttp, *, monotonic: Callable[[], float] = time.monotonic,
                 expiry_s: float = HEARTBEAT_EXPIRY_S) -> None:
        self._http = http
        self._monotonic = monotonic
        self.expiry_s = expiry_s
        self.heartbeat_id = ""
        self.last_accepted: float | None = None
        self.sent = 0
        self.accepted = 0

    def send(self) -> BeatResult:
        """Send one heartbeat (and, after an id mismatch, one with the venue's id)."""
        result, expected = self._send_once()
        if expected is not None:
            self.heartbeat_id = expected
            result, _ = self._send_once()
        if result.status != "accepted":
            log.warning("heartbeat_failed", status=result.status, detail=result.detail)
        return result

    def _send_once(self) -> tuple[BeatResult, str | None]:
        self.sent += 1
        try:
            answer = self._http.send("POST", HEARTBEATS, {"heartbeat_id": self.heartbeat_id})
        except (httpx.HTTPError, VenueUnavailable) as err:
            return BeatResult("unknown", type(err).__name__), None
        result, expected = parse_beat(answer)
        if result.status == "accepted":
            self.heartbeat_id = result.heartbeat_id
            self.last_accepted = self._monotonic()
            self.accepted += 1
        return result, expected

    @property
    def armed(self) -> bool:
        """True once a send was accepted: from then on the venue's deadline runs."""
        return self.last_accepted is not None

    def expired(self) -> bool:
        """True when the venue may have cancelled every open order (no accepted send for
        ``expiry_s``).  Resting orders must then be read again, not assumed."""
        last = self.last_accepted
        return last is not None and self._monotonic() - last >= self.expiry_s


class HeartbeatLoop:
    """Sends heartbeats every ``interval_s`` until ``stop()``; for the live runner.

    Stopping the loop does not disarm the venue's deadline: cancel resting orders explicitly
    (``LiveClobBroker.cancel_all``) and verify before exit.
    """

    def __init__(self, beat: OrderHeartbeat, *, interval_s: float = HEARTBEAT_INTERVAL_S,
                 on_expired: Callable[[], None] | None = None) -> None:
        self.beat = beat
        self.interval_s = interval_s
        self._on_expired = on_expired
        self._stop = asyncio.Event()
        self.expiries = 0

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        while not self._stop.is_set():
            was_expired = self.beat.expired()
            await asyncio.to_thread(self.beat.send)
            if self.beat.expired() and not was_expired:
                self.expiries += 1
                log.error("heartbeat_expired", seconds=self.beat.expiry_s)
                if self._on_expired is not None:
                    self._on_expired()
            try:
                await asyncio.wait_for(self._stop.wait(), timeout=self.interval_s)
            except TimeoutError:
                continue
