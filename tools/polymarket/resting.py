"""Resting (maker) orders on the live CLOB: post-only GTD limit buys, cancels, fills by lookup.

``LiveRestingBroker`` implements ``tools.broker.RestingBroker`` on a connected
``LiveClobBroker`` (same session, signer, back-off and kill switch); the taker path is not
touched.  For one resting order it:

1. refuses without sending (status "rejected") when the broker may not send (not connected,
   account restricted, backing off), the market is closed, or the price is off the tick grid;
2. signs it ONCE as a limit order (``OrderSigner.sign_limit_buy``: the SDK's limit amounts,
   GTD, post-only) and journals its hash (``resting_venue_orders``) before anything is posted;
3. checks the STOP file, POSTs once; "live" rests, a post-only order that would cross is
   "rejected" by the venue; anything ambiguous (timeout, 5xx, unreadable) is looked up by the
   hash until known or ``lookup_timeout_s`` passes, then raises ``RestingOutcomeUnknown``
   (``send_resting_order`` journals "unknown"; the runner looks it up before anything else).

Fills are read from the venue's order record (``size_matched``): a maker buy fills at its own
limit price; each increase becomes one ``MakerFill`` (rule "venue").  Rebates are paid by the
venue's program daily, not per fill, so live fills carry none.

GTD expiry: the venue expires an order one minute before its wire ``expiration`` (a security
threshold) and refuses an expiration less than three minutes ahead (docs.polymarket.com, "Place
orders").  The wire value is therefore ``expires_at + 60``, raised to ``now + 180`` when the
cut-off is nearer: the runner's cancel at the cut-off is the rule, GTD only the backstop when
the process is gone (with order heartbeats, after 10 s).

Crash-test hook: the broker's ``checkpoint`` is called at "resting_after_sign",
"resting_before_post" and "resting_after_post".
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

from core.fees import dated_fee_schedule
from core.logs import get_logger
from core.records import Side
from core.resting import MakerFill, RestingOrder, RestingStatus
from core.snapshot import MarketSnapshot
from tools.journal.base import JournalBase
from tools.polymarket.broker import LiveClobBroker, post_once
from tools.polymarket.http import GET_ORDER, VenueUnavailable
from tools.polymarket.wire import (
    PostResult,
    VenueFormatError,
    VenueOrder,
    dec,
    parse_order,
)

log = get_logger("updown.resting")

CANCEL_ORDER = "/order"
CANCEL_MARKET_ORDERS = "/cancel-market-orders"
OPEN_ORDERS = "/data/orders"
# The venue's GTD rules (docs.polymarket.com "Place orders"): expiry one minute before the
# wire value; the wire value at least three minutes ahead.
GTD_SECURITY_THRESHOLD_S = 60
GTD_MIN_AHEAD_S = 180
_OPEN = frozenset({"LIVE", "DELAYED", "UNMATCHED"})
_SIZE_DP = 6

SCHEMA = """
CREATE TABLE IF NOT EXISTS resting_venue_orders (
    order_id      TEXT PRIMARY KEY REFERENCES resting_orders(order_id),
    order_hash    TEXT NOT NULL UNIQUE,
    market_id     TEXT NOT NULL,
    token_id      TEXT NOT NULL,
    side          TEXT NOT NULL,
    price         TEXT NOT NULL,
    shares        TEXT NOT NULL,
    maker_amount  TEXT NOT NULL,
    taker_amount  TEXT NOT NULL,
    expiration    INTEGER NOT NULL,
    signed_ts     REAL NOT NULL
);
"""


class RestingOutcomeUnknown(Exception):
    """The venue's answer was lost and lookups did not settle it: look the order up later
    by its journaled hash, never send it again."""


@dataclass(frozen=True, slots=True)
class SignedResting:
    """What was signed for one resting order (journaled before the POST)."""

    order_id: str
    order_hash: str
    market_id: str
    token_id: str
    side: Side
    price: Decimal
    shares: Decimal
    expiration: int
    signed_ts: float


class RestingVenueStore:
    """The signed resting orders of one journal (hash before POST), outside the versioned
    schema like ``tools.journal.lessons``: a journal without the table is still valid."""

    def __init__(self, journal: JournalBase) -> None:
        self._journal = journal
        with journal._tx() as cur:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)

    def record_signed(self, s: SignedResting, *, maker_amount: int, taker_amount: int) -> None:
        """Must commit BEFORE the POST; a second hash for one order id raises."""
        with self._journal._tx() as cur:
            cur.execute(
                "INSERT INTO resting_venue_orders (order_id, order_hash, market_id, token_id,"
                " side, price, shares, maker_amount, taker_amount, expiration, signed_ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (s.order_id, s.order_hash, s.market_id, s.token_id, s.side, str(s.price),
                 str(s.shares), str(maker_amount), str(taker_amount), s.expiration,
                 s.signed_ts))

    def signed(self, order_id: str) -> SignedResting | None:
        with self._journal._read() as cur:
            row = cur.execute("SELECT * FROM resting_venue_orders WHERE order_id = ?",
                              (order_id,)).fetchone()
        return None if row is None else _signed(row)

    def all_signed(self) -> list[SignedResting]:
        with self._journal._read() as cur:
            rows = cur.execute("SELECT * FROM resting_venue_orders ORDER BY signed_ts"
                               ).fetchall()
        return [_signed(r) for r in rows]

    def journaled_fills(self, order_id: str) -> tuple[MakerFill, ...]:
        """The fills ``tools.journal.resting`` holds for an order (a restart's starting point)."""
        with self._journal._read() as cur:
            rows = cur.execute("SELECT ts, shares, price, rebate_usd, rule FROM maker_fills"
                               " WHERE order_id = ? ORDER BY seq", (order_id,)).fetchall()
        return tuple(MakerFill(ts=r[0], shares=r[1], price=r[2], rebate_usd=r[3], rule=r[4])
                     for r in rows)


def _signed(r: sqlite3.Row) -> SignedResting:
    side: Side = "up" if r["side"] == "up" else "down"
    return SignedResting(order_id=r["order_id"], order_hash=r["order_hash"],
                         market_id=r["market_id"], token_id=r["token_id"], side=side,
                         price=Decimal(r["price"]), shares=Decimal(r["shares"]),
                         expiration=int(r["expiration"]), signed_ts=float(r["signed_ts"]))


def wire_expiration(expires_at: float | None, now: float) -> int:
    """The GTD ``expiration`` that makes the venue expire the order at ``expires_at`` (never
    less than the venue's minimum ahead of ``now``)."""
    wanted = math.ceil(expires_at if expires_at is not None else now) + GTD_SECURITY_THRESHOLD_S
    return max(wanted, math.ceil(now) + GTD_MIN_AHEAD_S)


class LiveRestingBroker:
    """Post-only GTD limit buys on the CLOB for the maker desk (``tools.maker.MakerDesk``)."""

    name = "polymarket-clob"

    def __init__(self, clob: LiveClobBroker, store: RestingVenueStore) -> None:
        self.clob = clob
        self.store = store
        # The last state the venue reported, per order id (what lookups fall back to when
        # the venue cannot be read: a stale state, never an invented one).
        self._known: dict[str, RestingOrder] = {}
        self._created: dict[str, float] = {}

    # --- placing -------------------------------------------------------------------------

    def place_limit_buy(self, *, order_id: str, snapshot: MarketSnapshot, side: Side,
                        price: float, shares: float, post_only: bool,
                        expires_at: float | None, now: float) -> RestingOrder:
        def rejected(code: str, detail: str) -> RestingOrder:
            order = RestingOrder(
                order_id=order_id, market_id=snapshot.market_id, side=side,
                price=min(max(price, 0.001), 0.999) if math.isfinite(price) else 0.5,
                shares=max(shares, 0.01) if math.isfinite(shares) else 0.01,
                post_only=post_only, expires_at=expires_at, status="rejected",
                created_ts=now, reason=f"{code}: {detail}")
            self._known[order_id] = order
            return order

        if order_id in self._known or self.store.signed(order_id) is not None:
            return rejected("duplicate_order_id", "this order id was already signed")
        refusal = self.clob.refusal()
        if refusal is not None:
            return rejected(*refusal)
        try:
            market = self.clob.market(snapshot.market_id, fallback_fees=snapshot.fee_schedule)
            token_id = market.token_for(side)
            tick = max(market.tick_size, self.clob.tick_size(token_id))
        except (VenueUnavailable, VenueFormatError) as err:
            return rejected("market_lookup_failed", str(err))
        if market.closed or not market.accepting_orders:
            return rejected("market_closed", f"{snapshot.market_id} is not accepting orders")
        price_d, shares_d = dec(price).quantize(tick), dec(shares)
        if abs(price_d - dec(price)) > Decimal("1e-9") or shares_d < market.min_order_shares:
            return rejected("invalid_order_terms", f"{shares} shares at {price} (tick {tick}, "
                            f"minimum {market.min_order_shares})")
        expiration = wire_expiration(expires_at, self.clob.http.venue_now())
        try:
            signed = self.clob.signer.sign_limit_buy(
                token_id, price=price_d, shares=shares_d, tick=tick, neg_risk=market.neg_risk,
                expiration=expiration, post_only=post_only)
        except Exception as err:  # nothing exists yet; the message is not echoed (key frames)
            return rejected("signing_failed", type(err).__name__)
        record = SignedResting(order_id=order_id, order_hash=signed.order_hash,
                               market_id=snapshot.market_id, token_id=token_id, side=side,
                               price=price_d, shares=dec(signed.taker_amount) / 1_000_000,
                               expiration=expiration, signed_ts=now)
        self.clob.checkpoint("resting_after_sign")
        try:
            self.store.record_signed(record, maker_amount=signed.maker_amount,
                                     taker_amount=signed.taker_amount)
        except Exception as err:  # without the hash journaled the order must not exist
            return rejected("journal_refused", type(err).__name__)
        self._created[order_id] = now
        self.clob.checkpoint("resting_before_post")
        stop = self.clob.stop_file
        if stop is not None and stop.exists():
            return rejected("kill_switch", "STOP file present at send time")
        result = self._post_once(signed.body(owner=self.clob.api_owner,
                                             order_type="GTD" if expiration else "GTC"))
        self.clob.checkpoint("resting_after_post")
        log.info("resting_posted", order_id=order_id, kind=result.kind, code=result.code,
                 venue_status=result.venue_status, price=str(price_d), shares=str(shares_d))
        if result.kind == "rejected":
            if result.code == "connect_failed":
                return rejected(result.code, result.detail)
            self.clob.back_off(result)
            return rejected(result.code, result.detail)
        if result.kind == "accepted" and result.venue_status == "live":
            return self._state(record, "resting", Decimal(0), now, reason=None)
        return self._settle_unknown(record, result, now)

    def _post_once(self, body: str) -> PostResult:
        """The one POST of this order.  No retry, whatever happens."""
        return post_once(self.clob.http, body)

    def _settle_unknown(self, record: SignedResting, result: PostResult, now: float
                        ) -> RestingOrder:
        """An answer that does not say "live": the order may exist.  Look it up by its hash
        until known; never send it again."""
        clob = self.clob
        deadline = clob._monotonic() + clob.lookup_timeout_s
        posted = clob._monotonic()
        while True:
            try:
                venue = self._lookup(record.order_hash)
                if venue is not None:
                    return self._from_venue(record, venue, now)
                if clob._monotonic() - posted >= clob.not_found_grace_s:
                    return self._state(record, "rejected", Decimal(0), now,
                                       reason=f"not_found_at_venue: after {result.code}")
            except (VenueUnavailable, VenueFormatError):
                pass
            if clob._monotonic() >= deadline:
                raise RestingOutcomeUnknown(f"after {result.code}: not resolved in time")
            clob._sleep(clob.poll_interval_s)

    # --- reading -------------------------------------------------------------------------

    def _lookup(self, order_hash: str) -> VenueOrder | None:
        path = f"{GET_ORDER}{order_hash}"
        return parse_order(self.clob.http.clob(path, auth_path=path, not_found_is_none=True))

    def _state(self, record: SignedResting, status: RestingStatus, matched: Decimal,
               now: float, *, reason: str | None) -> RestingOrder:
        """The order with fills up to ``matched`` shares (each increase one fill)."""
        before = self._known.get(record.order_id)
        fills = before.fills if before is not None else \
            self.store.journaled_fills(record.order_id)
        have = dec(sum(f.shares for f in fills)) if fills else Decimal(0)
        new = (matched - have).quantize(Decimal(1).scaleb(-_SIZE_DP))
        if new > 0:
            fills = (*fills, MakerFill(ts=now, shares=float(new), price=float(record.price),
                                       rule="venue"))
        if status == "resting" and matched >= record.shares:
            status = "filled"
        order = RestingOrder(
            order_id=record.order_id, market_id=record.market_id, side=record.side,
            price=float(record.price), shares=float(record.shares), post_only=True,
            expires_at=record.expiration - GTD_SECURITY_THRESHOLD_S, status=status,
            created_ts=self._created.get(record.order_id, record.signed_ts), fills=fills,
            reason=reason if reason is not None else (before.reason if before else None))
        self._known[record.order_id] = order
        return order

    def _from_venue(self, record: SignedResting, venue: VenueOrder, now: float,
                    *, reason: str | None = None) -> RestingOrder:
        if venue.status in _OPEN:
            status: RestingStatus = "resting"
        elif venue.size_matched >= record.shares:
            status = "filled"
        else:
            status = "cancelled"
            reason = reason or f"venue status {venue.status.lower()}"
        return self._state(record, status, venue.size_matched, now, reason=reason)

    def lookup_resting(self, order_id: str) -> RestingOrder | None:
        record = self.store.signed(order_id)
        if record is None:
            return self._known.get(order_id)
        try:
            venue = self._lookup(record.order_hash)
        except (VenueUnavailable, VenueFormatError) as err:
            log.warning("resting_lookup_failed", order_id=order_id, error=str(err)[:120])
            return self._known.get(order_id)
        now = self.clob.http.venue_now()
        if venue is None:
            known = self._known.get(order_id)
            if known is not None and not known.is_open:
                return known
            if now - record.signed_ts < self.clob.not_found_grace_s:
                return known
            return self._state(record, "rejected", Decimal(0), now,
                               reason="not_found_at_venue")
        return self._from_venue(record, venue, now)

    def open_orders(self) -> list[RestingOrder]:
        """Our journaled orders the venue lists as open (every page)."""
        by_hash = {s.order_hash.lower(): s for s in self.store.all_signed()}
        now = self.clob.http.venue_now()
        out = []
        for doc in self.venue_open_orders():
            record = by_hash.get(str(doc.get("id", "")).lower())
            if record is None:
                continue
            matched = dec(str(doc.get("size_matched") or "0"))
            out.append(self._state(record, "resting", matched, now, reason=None))
        return out

    def venue_open_orders(self) -> list[Mapping[str, Any]]:
        """Every open order of the API key as the venue lists it (ours or not)."""
        out: list[Mapping[str, Any]] = []
        cursor: str | None = "MA=="
        for _ in range(50):
            if cursor is None:
                break
            doc = self.clob.http.clob(OPEN_ORDERS, auth_path=OPEN_ORDERS,
                                      params={"next_cursor": cursor})
            if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
                raise VenueFormatError("open orders answer has no data list")
            out.extend(d for d in doc["data"] if isinstance(d, Mapping))
            nxt = doc.get("next_cursor")
            cursor = None if nxt in (None, "", "LTE=") else str(nxt)
        return out

    # --- cancelling ----------------------------------------------------------------------

    def cancel_foreign(self) -> list[str]:
        """Cancel every open venue order of the API key this journal never signed (found at
        start-up: never adopted, since nothing journaled says what it is for)."""
        ours = {s.order_hash.lower() for s in self.store.all_signed()}
        out = []
        for doc in self.venue_open_orders():
            order_hash = str(doc.get("id") or "")
            if not order_hash or order_hash.lower() in ours:
                continue
            try:
                self.clob.http.send("DELETE", CANCEL_ORDER, {"orderID": order_hash})
                out.append(order_hash)
            except (httpx.HTTPError, VenueUnavailable) as err:
                log.warning("cancel_unknown", order_hash=order_hash[:18],
                            error=type(err).__name__)
        return out

    def cancel(self, order_id: str, *, now: float) -> RestingOrder | None:
        """Cancel, then read the order back: the answer holds every fill that raced it.  A
        cancel the venue may not have done leaves the order "resting" (the caller verifies)."""
        record = self.store.signed(order_id)
        if record is None:
            return self._known.get(order_id)
        known = self._known.get(order_id)
        if known is not None and not known.is_open:
            return known
        try:
            answer = self.clob.http.send("DELETE", CANCEL_ORDER, {"orderID": record.order_hash})
            if answer.status != 200:
                log.warning("cancel_refused", order_id=order_id, status=answer.status)
        except (httpx.HTTPError, VenueUnavailable) as err:
            log.warning("cancel_unknown", order_id=order_id, error=type(err).__name__)
        return self.lookup_resting(order_id) or known

    def cancel_all(self, market_id: str, *, now: float) -> list[RestingOrder]:
        """Cancel every open order of the window (one request), then read each of ours."""
        try:
            condition = self.clob.market(market_id,
                                         fallback_fees=dated_fee_schedule(now)).condition_id
            self.clob.http.send("DELETE", CANCEL_MARKET_ORDERS, {"market": condition})
        except (httpx.HTTPError, VenueUnavailable, VenueFormatError) as err:
            log.warning("cancel_market_unknown", market_id=market_id,
                        error=type(err).__name__)
        out = []
        for record in self.store.all_signed():
            if record.market_id != market_id:
                continue
            seen = self.lookup_resting(record.order_id)
            if seen is not None:
                out.append(seen)
        return out

