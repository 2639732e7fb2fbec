"""The live broker: market buys on the Polymarket CLOB V2, exactly once per order id.

``LiveClobBroker`` implements the ``Broker`` protocol.  For one order it:

1. refuses without sending when it is not connected, the snapshot is stale, the venue asked it
   to back off (425 / post-only window / 429 Retry-After / Cloudflare), or the market is closed;
2. reads the market (Gamma: token ids by outcome label, tick, minimum size, neg-risk, fee
   schedule) and the token's current tick (``/tick-size``), and computes the order's terms in
   ``Decimal`` (dollars floored to cents, worst price floored to the tick, venue minimums);
3. signs the order ONCE and journals its EIP-712 hash (the venue's order id) before anything
   is posted; an intent without a journaled hash therefore was never posted;
4. checks the STOP file, then POSTs once, with an explicit read timeout and no retry;
5. maps the answer to an ``ExecutionReport``: a refusal is "killed" with a named state in its
   reason; a match is "filled"; anything ambiguous (timeout, 5xx, "delayed", unreadable) is
   looked up by the order hash until it is resolved or ``lookup_timeout_s`` passes; if still
   unknown it is an "error" report ("outcome unknown"), which the journal lets reconciliation
   replace later.  It never signs or posts a second order for the same order id.

Named states (the first word of a report's reason): ``filled``, ``fok_not_filled``,
``no_match``, ``insufficient_balance``, ``invalid_precision``, ``below_minimum_size``,
``invalid_expiration``, ``market_not_ready``, ``order_rejected`` ... (this order);
``engine_restarting``, ``post_only_mode``, ``trading_disabled``, ``cancel_only``,
``rate_limited``, ``cloudflare_blocked`` (the venue: back off); ``account_banned``,
``account_closed_only``, ``geoblocked`` (this account: every later order is refused
``account_restricted``, never read as market state); ``auth_rejected``; ``delayed`` (held for
the market's taker delay, looked up after it); ``duplicate_order`` / ``execution_error`` /
``delay_failed`` (may exist: looked up); ``not_found_at_venue`` (looked up: the venue never
got it), ``outcome_unknown``; and before sending: ``not_connected``, ``stale_snapshot``,
``account_restricted``, ``backing_off``, ``market_closed``, ``market_lookup_failed``,
``invalid_order_terms``, ``signing_mismatch``, ``journal_refused``, ``kill_switch``,
``connect_failed``.

Crash-test hook: ``checkpoint(name)`` is called at "after_sign", "before_post", "after_post"
and "before_journal_write"; it does nothing unless a test driver injects a hook.
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import httpx

from core.clock import Clock, SystemClock
from core.fees import FeeSchedule
from core.logs import get_logger
from core.records import ExecutionReport, ExecutionStatus, Side
from core.settings import Settings
from core.snapshot import MarketSnapshot
from tools.journal import OrderIntent
from tools.polymarket.heartbeat import BeatResult, OrderHeartbeat
from tools.polymarket.http import (
    BALANCE_ALLOWANCE,
    CANCEL_ALL,
    GET_ORDER,
    TICK_SIZE,
    TRADES,
    VERSION,
    ApiCreds,
    ClobHttp,
    L2Auth,
    VenueUnavailable,
)
from tools.polymarket.orders import (
    LiveSetupError,
    OrderSigner,
    SignedBuy,
    check_signed_terms,
    exchange_address,
)
from tools.polymarket.wire import (
    BASE_UNITS,
    VENUE,
    BuyTerms,
    MarketInfo,
    OrderTermsError,
    PostResult,
    VenueFormatError,
    VenueOrder,
    VenueTrade,
    classify_post,
    dec,
    market_buy_terms,
    parse_gamma_market,
    parse_order,
    parse_trades,
    refusal_scope,
)

log = get_logger("updown.clob")

_MONEY_DP = 6
# Back-offs when the venue gives no Retry-After (venue.md: ~2 min post-only after a restart).
ENGINE_RESTART_BACKOFF_S = 120.0
RATE_LIMIT_BACKOFF_S = 10.0
CLOUDFLARE_BACKOFF_S = 60.0
# The venue's /time has one-second resolution, so offsets are known to about half a second.
MAX_CLOCK_OFFSET_S = 2.0
# Venue-wide states that last at least the restart back-off.
_HALTS = frozenset({"engine_restarting", "post_only_mode", "trading_disabled", "cancel_only"})


class OrderStore(Protocol):
    """Where the broker journals a signed order before posting it (``tools.journal.Journal``)."""

    def record_signed_order(self, *, order_id: str, venue: str, order_hash: str, token_id: str,
                            order_type: str, amount_usd: str, worst_price: str,
                            maker_amount: str, taker_amount: str, signed_ts: float) -> None: ...

    def record_venue_status(self, order_id: str, *, venue_status: str,
                            trade_ids: tuple[str, ...] = (), ts: float) -> None: ...


@dataclass(frozen=True, slots=True)
class StartupCheck:
    """What ``connect`` verified before any order."""

    address: str
    funder: str
    signature_type: int
    balance_usd: Decimal
    allowance_usd: Decimal
    clock_offset_s: float


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the venue says became of one signed order."""

    status: str  # "filled" | "killed" | "unknown"
    code: str
    detail: str
    shares: Decimal = Decimal(0)
    notional_usd: Decimal = Decimal(0)
    fee_usd: Decimal = Decimal(0)
    venue_status: str | None = None
    trade_ids: tuple[str, ...] = ()
    # A fill is provisional until every trade of it is CONFIRMED on chain (venue.md).
    final: bool = True


def _never(_name: str) -> None:
    return None


# The order protocol versions this build signs.  Which domain one order is signed for
# follows its asset id (the SDK's rule: "3" for a protocol-V2 position id, else "2"); the
# venue's /version only has to be one of these.
SUPPORTED_ORDER_VERSIONS = (2, 3)


def venue_order_version(doc: Any) -> int:
    """The venue's ``/version`` answer as a supported order version, or LiveSetupError."""
    raw = doc.get("version") if isinstance(doc, Mapping) else doc
    if raw is None:
        return 2  # an answer without a version predates version 3
    try:
        version = int(raw)
    except (TypeError, ValueError):
        raise LiveSetupError(f"venue order version {str(raw)[:20]!r} unreadable") from None
    if version not in SUPPORTED_ORDER_VERSIONS:
        raise LiveSetupError(f"venue order version {version}; this build signs versions "
                             f"{' and '.join(map(str, SUPPORTED_ORDER_VERSIONS))}")
    return version


def post_once(http: ClobHttp, body: str) -> PostResult:
    """POST one signed order and name the answer.  No retry, whatever happens: only a
    connection that was never established means the order did not leave this machine; a
    timeout or a network error mid-request is "unknown" (looked up, never re-sent)."""
    try:
        answer = http.post_order(body)
    except (httpx.ConnectError, httpx.ConnectTimeout) as err:
        return PostResult("rejected", "connect_failed", type(err).__name__)
    except httpx.TimeoutException as err:
        return PostResult("unknown", "timeout", type(err).__name__)
    except (httpx.HTTPError, VenueUnavailable) as err:
        return PostResult("unknown", "network_error", type(err).__name__)
    return classify_post(answer.status, content_type=answer.content_type, text=answer.text,
                         retry_after=answer.retry_after)


class LiveClobBroker:
    """Polymarket CLOB V2 market buys; construct with ``from_settings`` in ``agent.live``."""

    name = "polymarket-clob"

    def __init__(
        self,
        signer: OrderSigner,
        http: ClobHttp,
        *,
        creds: ApiCreds | None = None,
        order_type: str = "FOK",
        lookup_timeout_s: float = 10.0,
        not_found_grace_s: float = 5.0,
        poll_interval_s: float = 0.25,
        max_snapshot_age_s: float = 5.0,
        store: OrderStore | None = None,
        stop_file: Path | None = None,
        clock: Clock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        checkpoint: Callable[[str], None] = _never,
    ) -> None:
        if order_type not in ("FOK", "FAK"):
            raise ValueError(f"order_type must be FOK or FAK, got {order_type!r}")
        self._signer = signer
        self._http = http
        self._creds = creds
        self.order_type = order_type
        self.lookup_timeout_s = lookup_timeout_s
        self.not_found_grace_s = not_found_grace_s
        self.poll_interval_s = poll_interval_s
        self.max_snapshot_age_s = max_snapshot_age_s
        self.store = store
        self.stop_file = stop_file
        self._clock = clock or SystemClock()
        self._monotonic = monotonic
        self._sleep = sleep
        self._checkpoint = checkpoint
        self._blocked_until = 0.0
        self._blocked_code = ""
        # Set once the venue refuses this account itself (banned, closed-only, region): no
        # order is sent again in this process, whatever the market does.
        self.account_restriction: str | None = None
        self.startup: StartupCheck | None = None
        # The order protocol version the venue's /version announced at connect (2 or 3).
        self.venue_version: int | None = None
        self._heartbeat: OrderHeartbeat | None = None
        # Order ids this broker has signed: a second call for one id is refused unsent.
        self._signed_ids: set[str] = set()
        # Order hash -> order id, so a state met mid-flight (delayed) is journaled at once.
        self._order_ids: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"LiveClobBroker({self._signer!r})"

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        store: OrderStore | None,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
        **kw: Any,
    ) -> LiveClobBroker:
        """The broker for the configured wallet.  The only place the private key is unwrapped:
        it goes straight into the signer and is referenced nowhere else."""
        secret = settings.polymarket_private_key
        if secret is None or not secret.get_secret_value().strip():
            raise LiveSetupError("POLYMARKET_PRIVATE_KEY is not set")
        signer = OrderSigner(secret.get_secret_value().strip(),
                             chain_id=settings.polymarket_chain_id,
                             signature_type=settings.polymarket_signature_type,
                             funder=settings.polymarket_funder,
                             clob_url=settings.polymarket_clob_url)
        parts = (settings.polymarket_api_key, settings.polymarket_api_secret,
                 settings.polymarket_api_passphrase)
        creds = None
        if all(p is not None and p.get_secret_value() for p in parts):
            key, api_secret, passphrase = (p.get_secret_value() for p in parts if p is not None)
            creds = ApiCreds(api_key=key, api_secret=api_secret, api_passphrase=passphrase)
        elif any(p is not None for p in parts):
            raise LiveSetupError("set all of POLYMARKET_API_KEY, POLYMARKET_API_SECRET and "
                                 "POLYMARKET_API_PASSPHRASE, or none (they are then derived)")
        http = ClobHttp(settings.polymarket_clob_url, settings.polymarket_gamma_url,
                        order_timeout_s=settings.polymarket_order_timeout_s,
                        transport=transport, clock=clock)
        kw.setdefault("stop_file", settings.stop_file)
        return cls(signer, http, creds=creds, order_type=settings.polymarket_order_type,
                   lookup_timeout_s=settings.polymarket_lookup_timeout_s, store=store,
                   clock=clock, **kw)

    @property
    def address(self) -> str:
        return self._signer.address

    @property
    def funder(self) -> str:
        return self._signer.funder

    @property
    def connected(self) -> bool:
        return self._http.auth is not None and self.startup is not None

    # --- shared with the resting-order broker (tools.polymarket.resting): one session, one
    # signer, one back-off state for both order paths ---

    @property
    def http(self) -> ClobHttp:
        return self._http

    @property
    def signer(self) -> OrderSigner:
        return self._signer

    @property
    def api_owner(self) -> str:
        """The ``owner`` of posted orders: the API key (not a secret on its own)."""
        return self._creds.api_key if self._creds is not None else ""

    def checkpoint(self, name: str) -> None:
        self._checkpoint(name)

    def refusal(self) -> tuple[str, str] | None:
        """Why no order may be sent now (code, detail), or None."""
        if not self.connected:
            return "not_connected", "broker.connect() has not succeeded"
        if self.account_restriction is not None:
            return "account_restricted", self.account_restriction
        if self._monotonic() < self._blocked_until:
            left = self._blocked_until - self._monotonic()
            return "backing_off", (f"after {self._blocked_code}"
                                   + ("" if math.isinf(left) else f", {left:.0f}s left"))
        return None

    def back_off(self, result: PostResult) -> None:
        """A refusal of either order path sets the back-off of both."""
        self._back_off(result)

    def tick_size(self, token_id: str) -> Decimal:
        return self._tick_size(token_id)

    # --- start ---

    def connect(self, *, min_balance_usd: Decimal = Decimal(1),
                max_clock_offset_s: float = MAX_CLOCK_OFFSET_S) -> StartupCheck:
        """Credentials (derived once if not given), clock offset, venue version, balance and
        allowance.  Raises LiveSetupError; no order can be placed before this succeeded.

        A local clock further than ``max_clock_offset_s`` from the venue's is refused: every
        freshness rule of the guard judges data ages with the local clock.
        """
        if self._creds is None:
            self._creds = self._derive_credentials()
        self._http.auth = L2Auth(self._signer.address, self._creds, self._clock)
        try:
            offset = self._http.sync_clock()
            version = self._http.clob(VERSION)
            balance = self._http.clob(
                BALANCE_ALLOWANCE, auth_path=BALANCE_ALLOWANCE,
                params={"asset_type": "COLLATERAL",
                        "signature_type": str(self._signer.signature_type)})
        except VenueUnavailable as err:
            self._http.auth = None
            raise LiveSetupError(f"venue check failed: {err}") from None
        if abs(offset) > max_clock_offset_s:
            self._http.auth = None
            raise LiveSetupError(f"the local clock is {offset:+.1f}s from the venue's: "
                                 "synchronise it (NTP) before trading")
        try:
            self.venue_version = venue_order_version(version)
        except LiveSetupError:
            self._http.auth = None
            raise
        balance_usd, allowance_usd = self._balance_allowance(balance)
        if balance_usd < min_balance_usd:
            self._http.auth = None
            raise LiveSetupError(f"collateral balance {balance_usd} below {min_balance_usd}")
        if allowance_usd < balance_usd:
            self._http.auth = None
            raise LiveSetupError(f"exchange allowance {allowance_usd} below the balance "
                                 f"{balance_usd}: approve the exchange first")
        self.startup = StartupCheck(
            address=self._signer.address, funder=self._signer.funder,
            signature_type=self._signer.signature_type, balance_usd=balance_usd,
            allowance_usd=allowance_usd, clock_offset_s=offset)
        log.info("live_broker_connected", address=self._signer.address,
                 venue_order_version=self.venue_version,
                 funder=self._signer.funder, signature_type=self._signer.signature_type,
                 balance_usd=str(balance_usd), clock_offset_s=round(offset, 3))
        return self.startup

    def _derive_credentials(self) -> ApiCreds:
        """Create the account's CLOB API key or derive the existing one (L1 auth), once,
        stamped with the venue's time."""
        try:
            offset = self._http.sync_clock()
            auth = self._signer.api_key_auth(timestamp=int(self._clock.now() + offset))
            creds = self._http.api_key(auth)
        except VenueUnavailable as err:
            raise LiveSetupError(f"could not create or derive CLOB API credentials "
                                 f"({err})") from None
        if creds is None:
            raise LiveSetupError("the venue returned no API credentials")
        return creds

    def _balance_allowance(self, doc: Any) -> tuple[Decimal, Decimal]:
        if not isinstance(doc, Mapping) or "balance" not in doc:
            raise LiveSetupError("balance-allowance answer has no balance")
        try:
            balance = dec(str(doc["balance"])) / BASE_UNITS
            allowances = doc.get("allowances")
            if isinstance(allowances, Mapping) and allowances:
                # The spenders: the V2 exchanges and, for protocol-V2 positions, ExchangeV3.
                wanted = {exchange_address(self._signer.chain_id, neg_risk=n).lower()
                          for n in (False, True)}
                wanted.add(exchange_address(self._signer.chain_id, neg_risk=False,
                                            token_id="0").lower())
                values = [dec(str(v)) for k, v in allowances.items() if k.lower() in wanted]
                allowance = (min(values) if values else Decimal(0)) / BASE_UNITS
            else:
                allowance = dec(str(doc.get("allowance") or "0")) / BASE_UNITS
        except VenueFormatError as err:
            raise LiveSetupError(f"balance-allowance answer unreadable: {err}") from None
        return balance, allowance

    # --- Broker protocol ---

    def place_market_buy(
        self,
        *,
        order_id: str,
        snapshot: MarketSnapshot,
        side: Side,
        stake_usd: float,
        worst_price: float,
    ) -> ExecutionReport:
        report = self._place(order_id, snapshot, side, stake_usd, worst_price)
        log.info("live_order", order_id=order_id, market_id=snapshot.market_id, side=side,
                 status=report.status, reason=report.reason, shares=report.shares)
        self._checkpoint("before_journal_write")
        return report

    def _place(self, order_id: str, snap: MarketSnapshot, side: Side, stake_usd: float,
               worst_price: float) -> ExecutionReport:
        def report(res: Resolution, *, sent: bool) -> ExecutionReport:
            return self._report(order_id, snap.market_id, side, stake_usd, worst_price, res,
                                sent=sent)

        def not_sent(code: str, detail: str) -> ExecutionReport:
            return report(Resolution("killed", code, detail), sent=False)

        if not self.connected:
            return not_sent("not_connected", "broker.connect() has not succeeded")
        age = self._clock.now() - snap.as_of
        if age > self.max_snapshot_age_s:
            return not_sent("stale_snapshot", f"snapshot is {age:.1f}s old")
        if self.account_restriction is not None:
            return not_sent("account_restricted", self.account_restriction)
        if self._monotonic() < self._blocked_until:
            left = self._blocked_until - self._monotonic()
            return not_sent("backing_off", f"after {self._blocked_code}"
                            + ("" if math.isinf(left) else f", {left:.0f}s left"))
        try:
            market = self.market(snap.market_id, fallback_fees=snap.fee_schedule)
            token_id = market.token_for(side)
            tick = max(market.tick_size, self._tick_size(token_id))
        except (VenueUnavailable, VenueFormatError) as err:
            return not_sent("market_lookup_failed", str(err))
        if market.closed or not market.accepting_orders:
            return not_sent("market_closed", f"{snap.market_id} is not accepting orders")
        try:
            terms = market_buy_terms(stake_usd, worst_price, tick=tick,
                                     min_order_shares=market.min_order_shares)
        except OrderTermsError as err:
            return not_sent("invalid_order_terms", str(err))

        if order_id in self._signed_ids:
            return not_sent("duplicate_order_id", "this order id was already signed")
        self._signed_ids.add(order_id)
        try:
            signed = self._signer.sign_market_buy(token_id, terms, neg_risk=market.neg_risk,
                                                  order_type=self.order_type)
        except Exception as err:  # nothing exists yet; the message is not echoed (key frames)
            return not_sent("signing_failed", type(err).__name__)
        self._order_ids[signed.order_hash] = order_id
        self._checkpoint("after_sign")
        log.debug("order_signed", order_id=order_id, order_hash=signed.order_hash[:18],
                  token_id=token_id, amount_usd=str(terms.amount_usd),
                  worst_price=str(terms.worst_price), order_type=self.order_type)
        mismatch = check_signed_terms(signed, terms)
        if mismatch is not None:
            return not_sent("signing_mismatch", mismatch)
        if self.store is not None:
            try:
                self.store.record_signed_order(
                    order_id=order_id, venue=VENUE, order_hash=signed.order_hash,
                    token_id=token_id, order_type=self.order_type,
                    amount_usd=str(terms.amount_usd), worst_price=str(terms.worst_price),
                    maker_amount=str(signed.maker_amount),
                    taker_amount=str(signed.taker_amount), signed_ts=self._clock.now())
            except Exception as err:  # without the hash journaled the order must not exist
                return not_sent("journal_refused", type(err).__name__)
        self._checkpoint("before_post")
        if self.stop_file is not None and self.stop_file.exists():
            return not_sent("kill_switch", "STOP file present at send time")

        posted_at = self._monotonic()
        result = self._post_once(signed)
        self._checkpoint("after_post")
        log.debug("order_posted", order_id=order_id, kind=result.kind, code=result.code,
                  venue_status=result.venue_status)
        if result.kind == "rejected" and result.code == "connect_failed":
            res = Resolution("killed", result.code, result.detail, venue_status="not_sent")
            self._remember(order_id, res)
            return report(res, sent=False)
        res = self._conclude(signed, terms, market, result, posted_at)
        self._remember(order_id, res)
        return report(res, sent=True)

    def _post_once(self, signed: SignedBuy) -> PostResult:
        """The one POST of this order.  No retry, whatever happens."""
        owner = self._creds.api_key if self._creds is not None else ""
        return post_once(self._http, signed.body(owner=owner, order_type=self.order_type))

    def _conclude(self, signed: SignedBuy, terms: BuyTerms, market: MarketInfo,
                  result: PostResult, posted_at: float) -> Resolution:
        if result.kind == "rejected":
            self._back_off(result)
            return Resolution("killed", result.code, result.detail,
                              venue_status=f"rejected:{result.code}")
        if result.code == "delayed" or result.venue_status == "delayed":
            return self._await_delayed(signed, market, result, posted_at)
        if result.kind == "accepted":
            if result.order_id and result.order_id.lower() != signed.order_hash.lower():
                # Reconciliation looks orders up by the journaled hash: say so loudly.
                log.error("order_id_mismatch", expected=signed.order_hash[:18],
                            got=str(result.order_id)[:18])
            if result.venue_status == "unmatched":
                return Resolution("killed", "no_match", "venue reports the order unmatched",
                                  venue_status="unmatched")
            if result.venue_status == "matched":
                fill = self._fill_from_answer(result, terms, market)
                if fill is not None:
                    return fill
        # Ambiguous: the order may exist.  Look it up by its id; never send it again.  The id
        # is the hash computed before posting unless the venue named another one.
        order_ref = result.order_id if result.kind == "accepted" and result.order_id \
            else signed.order_hash
        log.warning("order_outcome_unknown", code=result.code, detail=result.detail,
                    order_hash=order_ref[:18])
        return self.resolve(order_ref, market, posted_at=posted_at,
                            deadline=self._monotonic() + self.lookup_timeout_s,
                            first_code=result.code)

    def _await_delayed(self, signed: SignedBuy, market: MarketInfo, result: PostResult,
                       posted_at: float) -> Resolution:
        """A marketable order the venue holds for the market's taker delay: journal it as
        delayed at once, look it up only once the delay has passed, never send it again."""
        order_ref = result.order_id or signed.order_hash
        delayed = Resolution("unknown", "delayed", f"held for the taker delay "
                             f"({market.seconds_delay:g}s): {result.detail or 'delayed'}",
                             venue_status="delayed")
        self._remember_status(signed, delayed)
        log.info("order_delayed", order_hash=order_ref[:18], seconds=market.seconds_delay)
        wait = posted_at + market.seconds_delay - self._monotonic()
        if wait > 0:
            self._sleep(wait)
        res = self.resolve(order_ref, market, posted_at=posted_at,
                           deadline=self._monotonic() + self.lookup_timeout_s,
                           first_code="delayed")
        if res.status == "unknown":
            # Still held or unseen: a named state for reconciliation to finish, not a guess.
            return Resolution("unknown", "delayed", f"{delayed.detail}; {res.detail}",
                              venue_status="delayed")
        return res

    def _remember_status(self, signed: SignedBuy, res: Resolution) -> None:
        order_id = self._order_ids.get(signed.order_hash)
        if order_id is not None:
            self._remember(order_id, res)

    def _fill_from_answer(self, result: PostResult, terms: BuyTerms, market: MarketInfo
                          ) -> Resolution | None:
        """A fill from the POST answer's amounts, if they are plausible; else None (look up)."""
        making, taking = result.making_amount, result.taking_amount
        if making is None or taking is None or taking <= 0 or making <= 0:
            return None
        avg = making / taking
        # Units or rounding the code does not expect: trust the venue's order record instead.
        if making > terms.amount_usd + Decimal("0.01") or avg > terms.worst_price + terms.tick:
            return None
        fee = taking * dec(market.fee_schedule.per_share(float(avg)))
        partial = taking + Decimal("0.01") < terms.min_shares
        # The answer says matched, not mined: provisional until its trades are CONFIRMED.
        return Resolution("filled", "filled",
                          "FAK partial fill" if partial else "matched",
                          shares=taking, notional_usd=making, fee_usd=fee,
                          venue_status="matched", trade_ids=result.trade_ids, final=False)

    def _back_off(self, result: PostResult) -> None:
        if refusal_scope(result.code) == "account":
            # No wait fixes this and it is not the market's state: refuse every later order.
            self.account_restriction = f"{result.code}: {result.detail}"
            self._blocked_until = math.inf
            self._blocked_code = result.code
            log.error("account_restricted", code=result.code, detail=result.detail)
            return
        default = {"engine_restarting": ENGINE_RESTART_BACKOFF_S,
                   "post_only_mode": ENGINE_RESTART_BACKOFF_S,
                   "trading_disabled": ENGINE_RESTART_BACKOFF_S,
                   "cancel_only": ENGINE_RESTART_BACKOFF_S,
                   "rate_limited": RATE_LIMIT_BACKOFF_S,
                   "cloudflare_blocked": CLOUDFLARE_BACKOFF_S}.get(result.code)
        if result.code == "auth_rejected":
            # Most often the clock: measure the venue's time again.  Signed requests would
            # work with the new offset, but the guard judges data ages with the local clock,
            # so a clock this far off stops trading until it is fixed and the session restarts.
            with contextlib.suppress(VenueUnavailable):
                offset = self._http.sync_clock()
                if abs(offset) > MAX_CLOCK_OFFSET_S:
                    self._blocked_until = math.inf
                    self._blocked_code = f"clock_skew ({offset:+.1f}s from the venue)"
                    log.error("clock_skew", offset_s=round(offset, 1))
            return
        if default is None:
            return
        wait = max(default if result.retry_after_s is None else result.retry_after_s, 0.0)
        if result.code in _HALTS:
            # A restart is followed by a post-only window, and a halt lasts as long as it
            # lasts: never shorter than the restart back-off, whatever Retry-After says.
            wait = max(wait, default)
        self._blocked_until = max(self._blocked_until, self._monotonic() + wait)
        self._blocked_code = result.code
        log.warning("venue_back_off", code=result.code, seconds=round(wait, 1))

    # --- lookups (also used by reconciliation) ---

    def market(self, market_id: str, *, fallback_fees: FeeSchedule) -> MarketInfo:
        doc = self._http.gamma_market(market_id)
        if doc is None:
            raise VenueUnavailable(f"no market {market_id!r} at Gamma")
        if isinstance(doc, list):  # some Gamma routes answer a one-element list
            if not doc:
                raise VenueUnavailable(f"no market {market_id!r} at Gamma")
            doc = doc[0]
        if not isinstance(doc, Mapping):
            raise VenueFormatError("Gamma market is not an object")
        return parse_gamma_market(doc, fallback_fees=fallback_fees)

    def _tick_size(self, token_id: str) -> Decimal:
        doc = self._http.clob(TICK_SIZE, params={"token_id": token_id})
        value = doc.get("minimum_tick_size") if isinstance(doc, Mapping) else doc
        if value in (None, ""):
            raise VenueFormatError("tick-size answer has no minimum_tick_size")
        return dec(str(value))

    def lookup_order(self, order_hash: str) -> VenueOrder | None:
        path = f"{GET_ORDER}{order_hash}"
        return parse_order(self._http.clob(path, auth_path=path, not_found_is_none=True))

    def trades(self, **params: str) -> list[VenueTrade]:
        """Every trade of this account matching ``params`` (all pages)."""
        out: list[VenueTrade] = []
        cursor: str | None = "MA=="
        pages = 0
        while cursor is not None and pages < 50:
            page, cursor = parse_trades(self._http.clob(
                TRADES, auth_path=TRADES, params={**params, "next_cursor": cursor}))
            out.extend(page)
            pages += 1
        return out

    def resolve(self, order_hash: str, market: MarketInfo, *, posted_at: float,
                deadline: float, first_code: str = "lookup") -> Resolution:
        """Poll the venue for one order until its outcome is known or ``deadline`` passes.

        Found and terminal: filled (with its trades) or killed.  Not found once
        ``not_found_grace_s`` has passed since the post: the venue never got it (killed).
        Lookups failing until the deadline: unknown, for reconciliation to finish.
        """
        last_error = ""
        while True:
            try:
                order = self.lookup_order(order_hash)
                if order is None:
                    if self._monotonic() - posted_at >= self.not_found_grace_s:
                        # The trade tape is the second witness: a fill always leaves trades.
                        tape = [t for t in self.trades(market=market.condition_id)
                                if t.taker_order_id.lower() == order_hash.lower()]
                        if not tape:
                            return Resolution(
                                "killed", "not_found_at_venue",
                                f"after {first_code}: no order and no trade with this hash",
                                venue_status="not_found")
                        return self._from_trades(tape, market, "MATCHED", first_code)
                elif order.terminal:
                    return self._from_order(order, market, first_code)
                last_error = "" if order is None else f"status {order.status}"
            except (VenueUnavailable, VenueFormatError) as err:
                last_error = str(err)
            if self._monotonic() >= deadline:
                return Resolution("unknown", "outcome_unknown",
                                  f"after {first_code}: not resolved within the lookup time"
                                  f"{'; ' + last_error if last_error else ''}")
            self._sleep(self.poll_interval_s)

    def resolve_intent(self, intent: OrderIntent, order_hash: str, market: MarketInfo, *,
                       signed_ts: float) -> ExecutionReport | None:
        """Reconciliation of one journaled order: its report, or None while still unknown."""
        if not self.connected:
            raise VenueUnavailable("broker not connected")
        age = max(0.0, self._clock.now() - signed_ts)
        now = self._monotonic()
        res = self.resolve(order_hash, market, posted_at=now - age,
                           deadline=now + self.lookup_timeout_s, first_code="reconciliation")
        if res.status == "unknown":
            return None
        self._remember(intent.order_id, res)
        return self._report(intent.order_id, intent.market_id, intent.side, intent.stake_usd,
                            intent.worst_price, res, sent=True)

    def _from_order(self, order: VenueOrder, market: MarketInfo, first_code: str
                    ) -> Resolution:
        if order.size_matched <= 0:
            return Resolution("killed", "fok_not_filled" if self.order_type == "FOK"
                              else "no_match",
                              f"after {first_code}: venue status {order.status}, nothing matched",
                              venue_status=order.status.lower())
        trades = [t for tid in order.trade_ids for t in self.trades(id=tid)]
        if not trades:
            trades = [t for t in self.trades(market=market.condition_id)
                      if t.taker_order_id.lower() == order.order_hash.lower()]
        res = self._from_trades(trades, market, order.status, first_code)
        # The engine's size_matched also counts trades that later failed on chain.
        matched = sum((t.shares for t in trades), Decimal(0))
        if res.status == "filled" and abs(matched - order.size_matched) > Decimal("0.01"):
            raise VenueFormatError(f"trades sum to {matched} shares, order says "
                                   f"{order.size_matched}")
        return res

    def _from_trades(self, trades: list[VenueTrade], market: MarketInfo, status: str,
                     first_code: str) -> Resolution:
        good = {t.trade_id: t for t in trades if not t.failed}
        if not good:
            if trades:
                return Resolution("killed", "trades_failed",
                                  f"after {first_code}: every trade failed on chain",
                                  venue_status=status.lower())
            raise VenueFormatError("order matched but its trades are not visible yet")
        # Final only once every trade that did not fail is CONFIRMED; until then the fill
        # is exposure that reconciliation re-checks (it may still fail on chain).
        final = all(t.final for t in good.values())
        shares = sum((t.shares for t in good.values()), Decimal(0))
        notional = sum((t.shares * t.price for t in good.values()), Decimal(0))
        fee = sum((t.shares * dec(market.fee_schedule.per_share(float(t.price)))
                   for t in good.values()), Decimal(0))
        return Resolution("filled", "filled", f"after {first_code}: venue status {status}",
                          shares=shares, notional_usd=notional, fee_usd=fee,
                          venue_status=status.lower(), trade_ids=tuple(good), final=final)

    def _remember(self, order_id: str, res: Resolution) -> None:
        if self.store is None or res.venue_status is None:
            return
        try:
            self.store.record_venue_status(order_id, venue_status=res.venue_status,
                                           trade_ids=res.trade_ids, ts=self._clock.now())
        except Exception as err:  # an audit detail; the execution report is what counts
            log.warning("venue_status_not_journaled", order_id=order_id,
                        error=type(err).__name__)

    def _report(self, order_id: str, market_id: str, side: Side, stake_usd: float,
                worst_price: float, res: Resolution, *, sent: bool) -> ExecutionReport:
        suffix = "" if sent else " (not sent)"
        if res.status == "filled":
            shares = float(res.shares)
            return ExecutionReport(
                status="filled", broker=self.name, order_id=order_id, market_id=market_id,
                side=side, stake_usd=stake_usd, worst_price=worst_price, shares=shares,
                avg_price=round(float(res.notional_usd / res.shares), _MONEY_DP),
                notional_usd=round(float(res.notional_usd), _MONEY_DP),
                fee_usd=round(float(res.fee_usd), _MONEY_DP),
                reason=f"filled: {res.detail}", final=res.final, trade_ids=res.trade_ids)
        status: ExecutionStatus = "error" if res.status == "unknown" else "killed"
        reason = f"{res.code}: {res.detail}{suffix}"
        if status == "error":
            reason += " - outcome unknown: reconcile before any new order"
        return ExecutionReport(status=status, broker=self.name, order_id=order_id,
                               market_id=market_id, side=side, stake_usd=stake_usd,
                               worst_price=worst_price, reason=reason)

    # --- resting orders: heartbeats and cancels (for the live runner) ---

    def order_heartbeat(self) -> OrderHeartbeat:
        """The heartbeat chain of this API key (send with ``.send()`` or a HeartbeatLoop)."""
        if self._heartbeat is None:
            self._heartbeat = OrderHeartbeat(self._http, monotonic=self._monotonic)
        return self._heartbeat

    def send_heartbeat(self) -> BeatResult:
        if not self.connected:
            return BeatResult("rejected", "not_connected")
        return self.order_heartbeat().send()

    def cancel_all(self) -> tuple[str, ...]:
        """Cancel every open order of this API key (shutdown, kill switch): one request.

        Returns the ids the venue says it cancelled; raises VenueUnavailable when the answer
        is not a clear success - the caller then reads the open orders to verify.
        """
        try:
            answer = self._http.send("DELETE", CANCEL_ALL)
        except httpx.HTTPError as err:
            raise VenueUnavailable(f"DELETE {CANCEL_ALL}: {type(err).__name__}") from None
        if answer.status != 200:
            raise VenueUnavailable(f"DELETE {CANCEL_ALL}: HTTP {answer.status}",
                                   status=answer.status)
        try:
            doc = json.loads(answer.text)
        except ValueError:
            raise VenueUnavailable(f"DELETE {CANCEL_ALL}: not JSON") from None
        canceled = doc.get("canceled") if isinstance(doc, Mapping) else None
        if not isinstance(canceled, list):
            raise VenueUnavailable(f"DELETE {CANCEL_ALL}: no canceled list")
        log.info("orders_cancelled", count=len(canceled))
        return tuple(str(c) for c in canceled)

    def close(self) -> None:
        self._http.close()
