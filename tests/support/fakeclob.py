"""A fake Polymarket CLOB V2 + Gamma venue for tests (synthetic markets, loopback only).

``FakeClob`` is the venue's logic and ledger; two adapters serve it:

* ``serve(fake)``: a real HTTP server on 127.0.0.1 (threaded), for end-to-end tests and for
  the SIGKILL tests' subprocesses;
* ``fake.transport()``: an in-process ``httpx.MockTransport``, for the 1,000-run timeout test
  (same logic, no sockets, timeouts raised instead of waited for).

What it checks on every request, independently of the code under test:

* L1 auth (API-key creation/derivation): the ClobAuth EIP-712 signature must recover the
  configured address;
* L2 auth: the HMAC of timestamp + method + path + body with the issued secret, the API key,
  the passphrase, and the timestamp within ``timestamp_tolerance_s`` of the venue's clock;
* every posted order: the EIP-712 signature is recovered (eth_account's typed-data encoder;
  for signature type 3 the ERC-7739 TypedDataSign wrapper) and must be the configured address,
  with maker/signer as the signature type requires; amounts in cents and on the tick.  The
  domain follows the order's asset: version "3" with ExchangeV3 for a protocol-V2 position id
  (its bits 40..103 are zero), version "2" with the (neg-risk) V2 exchange otherwise.
  ``/version`` answers ``fake.version`` (2 or 3).
* order heartbeats (``POST /v1/heartbeats``): the first accepted send arms the deadline; a
  wrong id is answered 400 "Invalid Heartbeat ID" with the expected id; ``heartbeat_expiry_s``
  (10 s) of the venue's clock without an accepted send cancels every LIVE order (checked on
  every request and by ``check_heartbeat()``).  GTC/GTD orders rest as LIVE when not filled;
  ``DELETE /cancel-all`` cancels them.
* resting (maker) orders: a ``postOnly`` order that would cross the best ask is refused with
  the venue's wording ("invalid post-only order: order crosses book"); a GTD ``expiration``
  less than 180 s ahead is refused, and a LIVE GTD order is cancelled one minute before its
  expiration (the venue's security threshold); ``DELETE /order`` and
  ``DELETE /cancel-market-orders`` cancel one order / a market's orders and answer
  ``{"canceled": [...], "not_canceled": {...}}``; ``GET /data/orders`` lists LIVE orders;
  ``fill_resting(hash, shares)`` is a taker selling into a resting buy (a partial or full
  fill at the order's price, recorded as a trade with ``maker_order_id``); ``cancel_faults``
  makes the next cancels lose their answer (done or not done by the venue).

Its ledger records every POST (accepted or not), every order and every trade, so tests can
compare it with the journal.  Faults are queued per POST (``fake.inject(...)``) or per lookup.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys.backends.native.jacobian import from_jacobian, jacobian_add, jacobian_double
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from polymarket._internal.environment import PRODUCTION_CONFIG

CHAIN_ID = 137
# secp256k1
_P = 2**256 - 2**32 - 977
_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_GX = 0x79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798
_GY = 0x483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8
U = Decimal(1_000_000)
ORDER_FIELDS = [
    ("salt", "uint256"), ("maker", "address"), ("signer", "address"), ("tokenId", "uint256"),
    ("makerAmount", "uint256"), ("takerAmount", "uint256"), ("side", "uint8"),
    ("signatureType", "uint8"), ("timestamp", "uint256"), ("metadata", "bytes32"),
    ("builder", "bytes32"),
]
ORDER_TYPE_STRING = "Order(" + ",".join(f"{t} {n}" for n, t in ORDER_FIELDS) + ")"
DOMAIN_FIELDS = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                 {"name": "chainId", "type": "uint256"},
                 {"name": "verifyingContract", "type": "address"}]
FOK_MESSAGE = "order couldn't be fully filled. FOK orders are fully filled or killed."
HEARTBEAT_MISMATCH = "Invalid Heartbeat ID"
POST_ONLY_MESSAGE = "invalid order: the orderbook is in post only mode"
CLOUDFLARE_HTML = ("<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title>"
                   "</head><body>Sorry, you have been blocked</body></html>")

# Faults a POST can be given (``inject``):
POST_FAULTS = (
    "timeout_lost",        # the request never reaches the engine; the client times out
    "timeout_after_fill",  # the engine matches it; the answer is lost (client times out)
    "timeout_after_kill",  # the engine kills it (no fill); the answer is lost
    "delayed",             # accepted as "delayed"; lookups see DELAYED a few times, then MATCHED
    "http_500_after_fill", # matched, then the gateway answers 500
    "http_502_lost",       # the gateway answers 502 and the engine never saw it
    "http_425",            # matching engine restarting; a post-only window follows
    "http_429",            # rate limited, Retry-After given
    "balance",             # not enough balance / allowance
    "cloudflare_403",      # an HTML block page
    "precision",           # an invalid amount error
    "trading_disabled_503",  # venue-wide halt (docs.polymarket.com error codes, 503)
    "cancel_only_503",     # venue-wide cancel-only period (503)
    "geoblocked_403",      # the account's region may not trade (JSON 403, not Cloudflare)
    "closed_only",         # the account may only close positions
    "ghost_fill",          # matched by the engine, answered as not filled (issue 13)
)
HALT_ANSWERS = {
    "trading_disabled_503": (503, "Trading is currently disabled. Check polymarket.com for "
                                  "updates"),
    "cancel_only_503": (503, "Trading is currently cancel-only. New orders are not accepted, "
                             "but cancels are allowed."),
    "geoblocked_403": (403, "Trading restricted in your region, please refer to available "
                            "regions - https://docs.polymarket.com/developers/CLOB/geoblock"),
    "closed_only": (400, "order rejected: account is in closed only mode"),
}


def ecrecover(digest: bytes, signature: bytes) -> str:
    """The address whose key made ``signature`` (r || s || v) over ``digest``.

    Public-key recovery ``Q = r^-1 (sR - zG)`` computed as one simultaneous multiplication
    (Shamir's trick) on eth_keys' curve arithmetic: the same result as ``ecrecover`` and
    eth_account's ``_recover_hash`` (a test checks that), about three times faster, which
    keeps the 1,000-run test quick.
    """
    if len(signature) != 65:
        raise ValueError("signature must be 65 bytes")
    r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    v = signature[64] - 27 if signature[64] >= 27 else signature[64]
    if not (0 < r < _N and 0 < s < _N and v in (0, 1)):
        raise ValueError("signature out of range")
    y = pow((r * r * r + 7) % _P, (_P + 1) // 4, _P)
    if y % 2 != v:
        y = _P - y
    r_inv = pow(r, -1, _N)
    u1 = (-int.from_bytes(digest, "big") * r_inv) % _N
    u2 = (s * r_inv) % _N
    g, big_r = (_GX, _GY, 1), (r, y, 1)
    both = jacobian_add(g, big_r)
    acc = (0, 0, 1)
    for bit in range(max(u1.bit_length(), u2.bit_length()) - 1, -1, -1):
        acc = jacobian_double(acc)
        pick = ((u1 >> bit) & 1, (u2 >> bit) & 1)
        if pick == (1, 1):
            acc = jacobian_add(acc, both)
        elif pick == (1, 0):
            acc = jacobian_add(acc, g)
        elif pick == (0, 1):
            acc = jacobian_add(acc, big_r)
    qx, qy = from_jacobian(acc)
    public = qx.to_bytes(32, "big") + qy.to_bytes(32, "big")
    return str(to_checksum_address(keccak(public)[-20:]))


def is_v2_position_id(token_id: str) -> bool:
    """A protocol-V2 (PositionManager) position id: module byte, condition, outcome, with
    bits 40..103 reserved as zero; CTF token ids are hashes and almost never are."""
    try:
        value = int(token_id)
    except ValueError:
        return False
    return 0 <= value < 2**256 and (value >> 40) & (2**64 - 1) == 0


def _floor(x: Decimal, step: Decimal) -> Decimal:
    return ((x / step).to_integral_value(rounding=ROUND_FLOOR) * step).quantize(step)


@dataclass
class FakeMarket:
    """A synthetic Up/Down market: Gamma document, books (ask levels) and resolution."""

    slug: str
    condition_id: str
    up_token: str
    down_token: str
    window_start: float
    window_end: float
    # Ask levels per token, best (lowest) first: [(price, shares)].
    asks: dict[str, list[tuple[Decimal, Decimal]]]
    bids: dict[str, list[tuple[Decimal, Decimal]]]
    tick: Decimal = Decimal("0.01")
    min_size: Decimal = Decimal(5)
    neg_risk: bool = False
    fee_rate: float = 0.07
    closed: bool = False
    accepting: bool = True
    outcome_prices: tuple[str, str] = ("0.5", "0.5")
    seconds_delay: int = 0

    def gamma_doc(self) -> dict[str, Any]:
        def iso(ts: float) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))

        return {
            "slug": self.slug, "conditionId": self.condition_id,
            "outcomes": json.dumps(["Up", "Down"]),
            "clobTokenIds": json.dumps([self.up_token, self.down_token]),
            "outcomePrices": json.dumps(list(self.outcome_prices)),
            "orderPriceMinTickSize": float(self.tick), "orderMinSize": float(self.min_size),
            "negRisk": self.neg_risk, "acceptingOrders": self.accepting and not self.closed,
            "closed": self.closed, "feesEnabled": self.fee_rate > 0,
            "feeSchedule": {"rate": self.fee_rate, "exponent": 1, "takerOnly": True,
                            "rebateRate": 0},
            "eventStartTime": iso(self.window_start), "endDate": iso(self.window_end),
            "secondsDelay": self.seconds_delay,
        }


@dataclass
class FakeOrder:
    order_hash: str
    token_id: str
    order_type: str
    maker_amount: int
    taker_amount: int
    status: str  # LIVE / DELAYED / MATCHED / CANCELED
    size_matched: Decimal
    trade_ids: list[str]
    delayed_lookups_left: int = 0
    final_status: str = "MATCHED"
    post_only: bool = False
    # GTD: the wire expiration (Unix s); 0 for every other order type.
    expiration: int = 0


@dataclass
class FakeTrade:
    trade_id: str
    taker_order_id: str
    market: str
    token_id: str
    price: Decimal
    shares: Decimal
    status: str = "CONFIRMED"
    # Set when our resting order was the maker (a taker sold into it).
    maker_order_id: str = ""


@dataclass
class Answer:
    status: int
    body: Any = None
    text: str | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    # The client never gets an answer (the adapter times it out).
    hang: bool = False


@dataclass
class PostRecord:
    """One POST /order the venue saw, whatever became of it."""

    order_hash: str | None
    fault: str | None
    http_status: int | None
    recovered_signer: str | None


# --- trade finality and redemption (issue 13) ----------------------------------------------
# A match is provisional: with ``provisional_trades`` set, new trades start MATCHED and move
# through MINED to CONFIRMED, or end FAILED (the venue gives the dollars back), when the test
# calls ``settle_trades``.  Winning positions are paid out through a relayer-like ledger:
# ``POST /relayer/submit`` opens a transaction (``STATE_NEW``), ``settle_relayer`` makes it
# ``STATE_CONFIRMED`` (the balance is redeemed, dollars credited) or ``STATE_FAILED``, and
# ``GET /relayer/v1/account/transactions/{id}`` / ``GET /data-api/positions`` read them with
# the field names of the relayer's and the Data API's answers.

PROVISIONAL_TRADE_STATUSES = ("MATCHED", "MATCHED_NOT_BROADCASTED", "MINED", "RETRYING")


@dataclass
class RelayerTx:
    tx_id: str
    tx_hash: str
    condition_id: str
    state: str = "STATE_NEW"
    error_msg: str | None = None


class TradeFinalityAndRedemption:
    """The fake venue's trade-status transitions and redemption ledger (mixed into FakeClob)."""

    trades: list[FakeTrade]
    orders: dict[str, FakeOrder]
    markets: dict[str, FakeMarket]
    balance: int
    _lock: threading.RLock

    def _init_finality(self) -> None:
        # False: every trade is CONFIRMED at once (the tests written before finality).
        self.provisional_trades = False
        self.relayer_txs: dict[str, RelayerTx] = {}
        # condition id -> shares already redeemed there (a second redemption pays nothing).
        self.redeemed: dict[str, Decimal] = {}
        self.redemption_payouts: list[tuple[str, Decimal]] = []
        self.submits_per_condition: dict[str, int] = {}
        # The next N relayer submissions answer 503 after opening the transaction (lost).
        self.relayer_lost_answers = 0

    def new_trade_status(self) -> str:
        return "MATCHED" if self.provisional_trades else "CONFIRMED"

    def settle_trades(self, decide: Callable[[FakeTrade], str]) -> None:
        """Every provisional trade takes the status ``decide`` gives it (a provisional one
        moves on, CONFIRMED or FAILED ends it); a FAILED trade returns its dollars."""
        with self._lock:
            for t in self.trades:
                if t.status in ("CONFIRMED", "FAILED"):
                    continue
                new = decide(t)
                if new == "FAILED":
                    self.balance += int(t.shares * t.price * U)
                t.status = new

    def trade_statuses(self) -> dict[str, str]:
        with self._lock:
            return {t.trade_id: t.status for t in self.trades}

    def winning_balance(self, condition_id: str) -> Decimal:
        """Confirmed shares of the winning token of a resolved market not yet redeemed."""
        with self._lock:
            market = next((m for m in self.markets.values()
                           if m.condition_id == condition_id), None)
            if market is None or not market.closed:
                return Decimal(0)
            winner = (market.up_token if market.outcome_prices == ("1", "0")
                      else market.down_token if market.outcome_prices == ("0", "1") else None)
            held = sum((t.shares for t in self.trades
                        if t.market == condition_id and t.token_id == winner
                        and t.status == "CONFIRMED"), Decimal(0))
            return held - self.redeemed.get(condition_id, Decimal(0))

    def settle_relayer(self, decide: Callable[[RelayerTx], str]) -> None:
        """Open relayer transactions take ``decide``'s state; a confirmed one redeems the
        condition's winning balance at that moment (zero if redeemed already)."""
        with self._lock:
            for tx in self.relayer_txs.values():
                if tx.state != "STATE_NEW":
                    continue
                tx.state = decide(tx)
                if tx.state == "STATE_CONFIRMED":
                    paid = self.winning_balance(tx.condition_id)
                    self.redeemed[tx.condition_id] = \
                        self.redeemed.get(tx.condition_id, Decimal(0)) + paid
                    self.balance += int(paid * U)
                    self.redemption_payouts.append((tx.condition_id, paid))
                elif tx.state == "STATE_FAILED":
                    tx.error_msg = "execution reverted"

    def _route_redemption(self, method: str, path: str, q: dict[str, str], body: bytes
                          ) -> Answer:
        if path == "/relayer/submit" and method == "POST":
            condition = str(json.loads(body or b"{}").get("condition_id", ""))
            if self.winning_balance(condition) <= 0:
                return Answer(400, {"error": "no balance to redeem"})
            self.submits_per_condition[condition] = \
                self.submits_per_condition.get(condition, 0) + 1
            tx = RelayerTx(str(uuid.uuid4()), "0x" + secrets.token_hex(32), condition)
            self.relayer_txs[tx.tx_id] = tx
            if self.relayer_lost_answers > 0:
                self.relayer_lost_answers -= 1
                return Answer(503, text="upstream unavailable", content_type="text/plain")
            return Answer(200, {"transactionID": tx.tx_id, "transactionHash": tx.tx_hash,
                                "state": tx.state})
        if path.startswith("/relayer/v1/account/transactions/"):
            found = self.relayer_txs.get(path.rsplit("/", 1)[1])
            if found is None:
                return Answer(404, {"error": "transaction not found"})
            return Answer(200, {"transaction_id": found.tx_id,
                                "transaction_hash": found.tx_hash, "state": found.state,
                                "error_msg": found.error_msg})
        if path == "/data-api/positions":
            condition = q.get("market", "")
            size = self.winning_balance(condition)
            return Answer(200, [{"conditionId": condition, "size": str(size),
                                 "redeemable": size > 0}] if size > 0 else [])
        return Answer(404, {"error": f"no route {method} {path}"})


class FakeClob(TradeFinalityAndRedemption):
    """Venue logic + ledger.  Thread-safe; every public method may be called from tests."""

    def __init__(self, *, address: str, funder: str | None = None, signature_type: int = 0,
                 balance_usd: Decimal = Decimal(10_000), clock: Callable[[], float] = time.time,
                 timestamp_tolerance_s: float = 30.0) -> None:
        self.address: str = to_checksum_address(address)
        self.funder: str = to_checksum_address(funder) if funder else self.address
        self.signature_type = signature_type
        self.balance = int(balance_usd * U)
        self.allowance = 2**256 - 1
        self.clock = clock
        self.clock_skew_s = 0.0
        self.timestamp_tolerance_s = timestamp_tolerance_s
        self._lock = threading.RLock()
        self.creds: dict[str, str] | None = None
        self.markets: dict[str, FakeMarket] = {}
        self.orders: dict[str, FakeOrder] = {}
        self.trades: list[FakeTrade] = []
        self.posts: list[PostRecord] = []
        self.requests: list[tuple[str, str]] = []
        self.rejected_auth = 0
        self.bad_signatures = 0
        self._faults: list[str] = []
        self.lookup_failures = 0  # the next N order/trade lookups answer 503
        self.post_only_until = 0.0
        self.delayed_lookups = 2
        self._init_finality()
        # Called with each posted order's hash before the venue acts on it (test probes).
        self.on_post: Callable[[str], None] | None = None
        # Contract addresses are venue facts (the SDK's production environment).
        self.exchange = {False: PRODUCTION_CONFIG.standard_exchange,
                         True: PRODUCTION_CONFIG.neg_risk_exchange}
        self.exchange_v3 = PRODUCTION_CONFIG.exchange_v3
        # What GET /version answers: the venue's order protocol version.
        self.version = 2
        # Raw bodies of every POST /order, in order (the bytes the client sent).
        self.order_bodies: list[bytes] = []
        # Order heartbeats.
        self.heartbeat_expiry_s = 10.0
        self.heartbeat_id: str | None = None  # None: not armed
        self.last_heartbeat: float | None = None
        self.heartbeats: list[tuple[float, str, bool]] = []  # (venue time, id sent, accepted)
        self.heartbeat_expiries = 0
        self.cancelled_by_expiry: list[str] = []
        # Resting orders: cancels whose answer is lost ("done": the venue cancelled,
        # "not_done": it did not), GTD expiries, cancel requests seen.
        self.cancel_faults: list[str] = []
        self.cancel_faults_used = 0
        self.expired_gtd: list[str] = []
        self.cancel_requests = 0

    # --- setup ---

    def add_market(self, slug: str, *, window_start: float, up_ask: str = "0.55",
                   down_ask: str = "0.47", depth: str = "1000",
                   tokens: tuple[str, str] | None = None, **kw: Any) -> FakeMarket:
        """A market; ``tokens`` (up, down) gives its asset ids, e.g. protocol-V2 position ids
        (signed for domain version "3"); by default hash-sized CTF-like ids (version "2")."""
        n = len(self.markets) + 1
        up, down = tokens or (str(10**70 + 2 * n), str(10**70 + 2 * n + 1))
        market = FakeMarket(
            slug=slug, condition_id="0x" + hashlib.sha256(slug.encode()).hexdigest(),
            up_token=up, down_token=down, window_start=window_start,
            window_end=window_start + 900.0,
            asks={up: [(Decimal(up_ask), Decimal(depth))],
                  down: [(Decimal(down_ask), Decimal(depth))]},
            bids={up: [(Decimal(up_ask) - Decimal("0.02"), Decimal(depth))],
                  down: [(Decimal(down_ask) - Decimal("0.02"), Decimal(depth))]},
            **kw)
        with self._lock:
            self.markets[slug] = market
        return market

    def resolve(self, slug: str, winner: str) -> None:
        with self._lock:
            m = self.markets[slug]
            m.closed = True
            m.outcome_prices = ("1", "0") if winner == "up" else ("0", "1")

    def inject(self, *faults: str) -> None:
        for f in faults:
            if f not in POST_FAULTS:
                raise ValueError(f"unknown fault {f}")
        with self._lock:
            self._faults.extend(faults)

    def issue_creds(self) -> dict[str, str]:
        with self._lock:
            if self.creds is None:
                self.creds = {"apiKey": str(uuid.uuid4()),
                              "secret": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                              "passphrase": secrets.token_hex(16)}
            return dict(self.creds)

    def now(self) -> float:
        return self.clock() + self.clock_skew_s

    # --- ledger views for assertions ---

    def post_count(self) -> int:
        """Every POST to the order endpoint, including ones refused at authentication."""
        with self._lock:
            return sum(1 for r in self.requests if r == ("POST", "/order"))

    def posts_per_hash(self) -> dict[str, int]:
        out: dict[str, int] = {}
        with self._lock:
            for p in self.posts:
                if p.order_hash is not None:
                    out[p.order_hash] = out.get(p.order_hash, 0) + 1
        return out

    def filled_by_hash(self) -> dict[str, tuple[Decimal, Decimal]]:
        """order hash -> (shares, notional) of its non-failed trades."""
        out: dict[str, tuple[Decimal, Decimal]] = {}
        with self._lock:
            for t in self.trades:
                if t.status == "FAILED" or t.maker_order_id:
                    continue
                s, n = out.get(t.taker_order_id, (Decimal(0), Decimal(0)))
                out[t.taker_order_id] = (s + t.shares, n + t.shares * t.price)
        return out

    def market_of_token(self, token_id: str) -> FakeMarket | None:
        for m in self.markets.values():
            if token_id in (m.up_token, m.down_token):
                return m
        return None

    # --- transport adapters ---

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            answer = self.handle(request.method, str(request.url.raw_path.decode()),
                                 {k.lower(): v for k, v in request.headers.items()},
                                 request.content)
            if answer.hang:
                raise httpx.ReadTimeout("fake venue: no answer", request=request)
            return httpx.Response(answer.status, headers={"Content-Type": answer.content_type,
                                                          **answer.headers},
                                  content=_body_bytes(answer))
        return httpx.MockTransport(handle)

    # --- request handling ---

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes
               ) -> Answer:
        split = urlsplit(raw_path)
        path, query = split.path, {k: v[0] for k, v in parse_qs(split.query).items()}
        with self._lock:
            self.requests.append((method, path))
            self.check_heartbeat()
            self.check_gtd()
            try:
                return self._route(method, path, query, headers, body)
            except Exception as err:  # a bug in the fake must be loud, not a silent 500
                return Answer(599, {"error": f"fake venue crashed: {type(err).__name__}: {err}"})

    def _route(self, method: str, path: str, q: dict[str, str], h: dict[str, str],
               body: bytes) -> Answer:
        if path.startswith(("/relayer/", "/data-api/")):
            return self._route_redemption(method, path, q, body)
        if path.startswith("/gamma/markets/slug/"):
            m = self.markets.get(path.rsplit("/", 1)[1])
            return Answer(200, m.gamma_doc()) if m else Answer(404, {"error": "not found"})
        if path == "/time":
            return Answer(200, text=str(int(self.now())), content_type="text/plain")
        if path == "/version":
            return Answer(200, {"version": self.version})
        if path == "/tick-size":
            m = self.market_of_token(q.get("token_id", ""))
            return Answer(200, {"minimum_tick_size": float(m.tick)}) if m else Answer(
                404, {"error": "market not found"})
        if path == "/book":
            return self._book(q.get("token_id", ""))
        if path in ("/auth/api-key", "/auth/derive-api-key"):
            return self._l1(method, path, h)
        auth = self._check_l2(method, path, h, body)
        if auth is not None:
            return auth
        if path == "/balance-allowance":
            return Answer(200, {"balance": str(self.balance),
                                "allowances": {self.exchange[False]: str(self.allowance),
                                               self.exchange[True]: str(self.allowance),
                                               self.exchange_v3: str(self.allowance)}})
        if path == "/order" and method == "POST":
            self.order_bodies.append(body)
            return self._post_order(body)
        if path == "/v1/heartbeats" and method == "POST":
            return self._heartbeat(body)
        if path == "/cancel-all" and method == "DELETE":
            return Answer(200, {"canceled": self._cancel_live(), "not_canceled": {}})
        if path == "/order" and method == "DELETE":
            return self._cancel_answer(self._cancel_one(body))
        if path == "/cancel-market-orders" and method == "DELETE":
            return self._cancel_answer(self._cancel_market(body))
        if path == "/data/orders" and method == "GET":
            return self._open_orders(q)
        if path.startswith("/data/order/"):
            if self.lookup_failures > 0:
                self.lookup_failures -= 1
                return Answer(503, text="upstream unavailable", content_type="text/plain")
            return self._get_order(path.rsplit("/", 1)[1])
        if path == "/data/trades":
            if self.lookup_failures > 0:
                self.lookup_failures -= 1
                return Answer(503, text="upstream unavailable", content_type="text/plain")
            return self._trades(q)
        return Answer(404, {"error": f"no route {method} {path}"})

    def _book(self, token_id: str) -> Answer:
        m = self.market_of_token(token_id)
        if m is None:
            return Answer(404, {"error": "No orderbook exists for the requested token id"})
        asks = sorted(m.asks[token_id], key=lambda lv: lv[0], reverse=True)  # best last
        bids = sorted(m.bids[token_id], key=lambda lv: lv[0])                # best last
        return Answer(200, {
            "market": m.condition_id, "asset_id": token_id,
            "timestamp": str(int(self.now() * 1000)), "hash": "",
            "bids": [{"price": str(p), "size": str(s)} for p, s in bids],
            "asks": [{"price": str(p), "size": str(s)} for p, s in asks],
            "min_order_size": str(m.min_size), "tick_size": str(m.tick),
            "neg_risk": m.neg_risk, "last_trade_price": "0.5"})

    # --- auth ---

    def _l1(self, method: str, path: str, h: dict[str, str]) -> Answer:
        typed = {
            "primaryType": "ClobAuth",
            "types": {"EIP712Domain": DOMAIN_FIELDS[:3],
                      "ClobAuth": [{"name": "address", "type": "address"},
                                   {"name": "timestamp", "type": "string"},
                                   {"name": "nonce", "type": "uint256"},
                                   {"name": "message", "type": "string"}]},
            "domain": {"name": "ClobAuthDomain", "version": "1", "chainId": CHAIN_ID},
            "message": {"address": h.get("poly_address", ""),
                        "timestamp": h.get("poly_timestamp", ""),
                        "nonce": int(h.get("poly_nonce", "0")),
                        "message": "This message attests that I control the given wallet"},
        }
        try:
            signer = Account.recover_message(encode_typed_data(full_message=typed),
                                             signature=h.get("poly_signature", ""))
        except Exception:
            signer = None
        if signer != self.address:
            self.rejected_auth += 1
            return Answer(401, {"error": "Invalid L1 Request headers"})
        if method == "POST" and path == "/auth/api-key" and self.creds is not None:
            return Answer(400, {"error": "Could not create api key"})  # exists: derive it
        creds = self.issue_creds()
        return Answer(200, creds)

    def _check_l2(self, method: str, path: str, h: dict[str, str], body: bytes
                  ) -> Answer | None:
        creds = self.creds
        ok = (creds is not None and h.get("poly_api_key") == creds["apiKey"]
              and h.get("poly_passphrase") == creds["passphrase"]
              and to_checksum_address(h.get("poly_address", "0x" + "0" * 40)) == self.address)
        if ok and creds is not None:
            ts = h.get("poly_timestamp", "")
            message = ts + method + path + (body.decode().replace("'", '"') if body else "")
            digest = hmac.new(base64.urlsafe_b64decode(creds["secret"]), message.encode(),
                              hashlib.sha256).digest()
            ok = hmac.compare_digest(base64.urlsafe_b64encode(digest).decode(),
                                     h.get("poly_signature", ""))
            if ok and abs(float(ts or 0) - self.now()) > self.timestamp_tolerance_s:
                self.rejected_auth += 1
                return Answer(401, {"error": "Unauthorized/Invalid api key"})
        if not ok:
            self.rejected_auth += 1
            return Answer(401, {"error": "Unauthorized/Invalid api key"})
        return None

    def _typed_order(self, order: dict[str, Any], neg_risk: bool) -> Any:
        message = {
            "salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
            "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
            "takerAmount": int(order["takerAmount"]),
            "side": 0 if order["side"] == "BUY" else 1,
            "signatureType": int(order["signatureType"]), "timestamp": int(order["timestamp"]),
            "metadata": bytes.fromhex(order["metadata"][2:].rjust(64, "0")),
            "builder": bytes.fromhex(order["builder"][2:].rjust(64, "0")),
        }
        typed = {"primaryType": "Order",
                 "types": {"EIP712Domain": DOMAIN_FIELDS,
                           "Order": [{"name": n, "type": t} for n, t in ORDER_FIELDS]},
                 "domain": self.order_domain(str(order["tokenId"]), neg_risk),
                 "message": message}
        return encode_typed_data(full_message=typed)

    def order_domain(self, token_id: str, neg_risk: bool) -> dict[str, Any]:
        """The EIP-712 domain an order for ``token_id`` must be signed for."""
        if is_v2_position_id(token_id):
            return {"name": "Polymarket CTF Exchange", "version": "3", "chainId": CHAIN_ID,
                    "verifyingContract": self.exchange_v3}
        return {"name": "Polymarket CTF Exchange", "version": "2", "chainId": CHAIN_ID,
                "verifyingContract": self.exchange[neg_risk]}

    def order_hash_and_signer(self, order: dict[str, Any], neg_risk: bool
                              ) -> tuple[str, str | None]:
        """The order's EIP-712 hash (its id) and the address that signed it (ERC-7739 wrapper
        for signature type 3), both from eth_account's typed-data encoder."""
        signable = self._typed_order(order, neg_risk)
        digest = keccak(b"\x19" + signable.version + signable.header + signable.body)
        sig = bytes.fromhex(order["signature"][2:])
        try:
            if int(order["signatureType"]) != 3:
                signer: str | None = ecrecover(digest, sig)
            else:
                signer = self._recover_erc7739(signable, sig, order)
        except Exception:
            signer = None
        return "0x" + digest.hex(), signer

    def _recover_erc7739(self, signable: Any, sig: bytes, order: dict[str, Any]) -> str | None:
        # signature = inner(65) || appDomainSeparator || contentsHash || contentsType || len(2)
        type_len = int.from_bytes(sig[-2:], "big")
        contents_type = sig[-2 - type_len:-2].decode()
        inner, app_sep, contents = sig[:65], sig[65:97], sig[97:129]
        if contents_type != ORDER_TYPE_STRING or app_sep != signable.header:
            return None
        if contents != signable.body:
            return None
        typed_sign = keccak(text="TypedDataSign(Order contents,string name,string version,"
                                 "uint256 chainId,address verifyingContract,bytes32 salt)"
                                 + ORDER_TYPE_STRING)
        struct = keccak(abi_encode(
            ["bytes32", "bytes32", "bytes32", "bytes32", "uint256", "address", "bytes32"],
            [typed_sign, contents, keccak(text="DepositWallet"), keccak(text="1"), CHAIN_ID,
             to_checksum_address(order["signer"]), b"\0" * 32]))
        digest = keccak(b"\x19\x01" + app_sep + struct)
        return ecrecover(digest, inner)

    def _signer_ok(self, order: dict[str, Any], recovered: str | None) -> bool:
        st = int(order["signatureType"])
        if st != self.signature_type or recovered != self.address:
            return False
        maker, signer = to_checksum_address(order["maker"]), to_checksum_address(order["signer"])
        if st == 0:
            return maker == signer == self.address
        if st in (1, 2):
            return signer == self.address and maker == self.funder
        return maker == signer == self.funder  # 3: the deposit wallet signs via ERC-1271

    # --- orders ---

    def _post_order(self, body: bytes) -> Answer:
        payload = json.loads(body)
        order = payload["order"]
        fault = self._faults.pop(0) if self._faults else None
        market = self.market_of_token(str(order["tokenId"]))
        neg_risk = bool(market and market.neg_risk)
        order_hash, recovered = self.order_hash_and_signer(order, neg_risk)
        record = PostRecord(order_hash, fault, None, recovered)
        self.posts.append(record)
        if self.on_post is not None:
            self.on_post(order_hash)

        def done(answer: Answer) -> Answer:
            record.http_status = None if answer.hang else answer.status
            return answer

        if fault == "timeout_lost":
            return done(Answer(0, hang=True))
        if fault == "http_502_lost":
            return done(Answer(502, text="<html>502 Bad Gateway</html>", content_type="text/html"))
        if fault == "http_425":
            self.post_only_until = self.now() + 120.0
            return done(Answer(425, {"error": "Too Early: matching engine restarting"}))
        if fault == "http_429":
            return done(Answer(429, {"error": "Too Many Requests"}, headers={"Retry-After": "7"}))
        if fault == "cloudflare_403":
            return done(Answer(403, text=CLOUDFLARE_HTML, content_type="text/html"))
        if fault in HALT_ANSWERS:
            status, message = HALT_ANSWERS[fault]
            return done(Answer(status, {"error": message}))
        if fault == "balance":
            return done(Answer(400, {"error": "not enough balance / allowance"}))
        if fault == "precision":
            return done(Answer(400, {"error": "invalid amount for a marketable BUY order, "
                                              "max accuracy of 2 decimals"}))
        if not self._signer_ok(order, recovered):
            self.bad_signatures += 1
            return done(Answer(400, {"error": "invalid signature"}))
        if payload.get("owner") != (self.creds or {}).get("apiKey"):
            return done(Answer(400, {"error": "the order owner must own the API key"}))
        if order_hash in self.orders:
            return done(Answer(400, {"error": "order already exists"}))
        if self.now() < self.post_only_until:
            return done(Answer(400, {"error": POST_ONLY_MESSAGE}))
        if market is None or market.closed or not market.accepting:
            return done(Answer(400, {"error": "market is closed / not accepting orders"}))
        maker, taker = int(order["makerAmount"]), int(order["takerAmount"])
        order_type = str(payload.get("orderType", "FOK"))
        # Market orders are dollars to the cent; limit orders follow the tick's precision.
        if maker % 10_000 != 0 and order_type in ("FOK", "FAK"):
            return done(Answer(400, {"error": "invalid amount, max accuracy of 2 decimals"}))
        if Decimal(taker) / U < market.min_size:
            return done(Answer(400, {"error": f"Size lower than the minimum: {market.min_size}"}))
        if Decimal(maker) > Decimal(self.balance):
            return done(Answer(400, {"error": "not enough balance / allowance"}))
        post_only = payload.get("postOnly") is True
        expiration = int(order.get("expiration") or 0)
        if post_only and order_type not in ("GTC", "GTD"):
            return done(Answer(400, {"error": "invalid post-only order: only GTC and GTD"}))
        if order_type == "GTD" and expiration < self.now() + 180:
            return done(Answer(400, {"error": "INVALID_ORDER_EXPIRATION: invalid expiration"}))
        if post_only:
            asks = market.asks[str(order["tokenId"])]
            limit = Decimal(maker) / Decimal(taker)
            if asks and min(p for p, _ in asks) <= limit + Decimal("1e-9"):
                return done(Answer(400, {"error": "invalid post-only order: order crosses "
                                                  "book"}))
        kill = fault == "timeout_after_kill"
        fills = [] if kill else self._match(market, str(order["tokenId"]), maker, taker,
                                            order_type)
        shares = sum((s for _, s in fills), Decimal(0))
        spent = sum((p * s for p, s in fills), Decimal(0))
        rests = order_type in ("GTC", "GTD") and shares < Decimal(taker) / U
        fo = FakeOrder(order_hash=order_hash, token_id=str(order["tokenId"]),
                       order_type=order_type, maker_amount=maker, taker_amount=taker,
                       status="LIVE" if rests else "MATCHED" if fills else "CANCELED",
                       size_matched=shares, trade_ids=[], post_only=post_only,
                       expiration=expiration if order_type == "GTD" else 0)
        self.orders[order_hash] = fo
        for price, size in fills:
            tid = str(uuid.uuid4())
            self.trades.append(FakeTrade(tid, order_hash, market.condition_id,
                                         fo.token_id, price, size, self.new_trade_status()))
            fo.trade_ids.append(tid)
        self.balance -= int(spent * U)
        if fault == "delayed":
            fo.final_status, fo.status = fo.status, "DELAYED"
            fo.delayed_lookups_left = self.delayed_lookups
            return done(Answer(200, {"success": True, "errorMsg": "", "orderID": order_hash,
                                     "status": "delayed", "transactionsHashes": [],
                                     "tradeIDs": []}))
        if fault == "ghost_fill" and fills:
            # The engine matched it, the answer says it did not (a fill nobody reported).
            return done(Answer(400, {"error": FOK_MESSAGE}))
        if fault in ("timeout_after_fill", "timeout_after_kill"):
            return done(Answer(0, hang=True))
        if fault == "http_500_after_fill":
            return done(Answer(500, {"error": "internal error"}))
        if rests:
            return done(Answer(200, {"success": True, "errorMsg": "", "orderID": order_hash,
                                     "status": "live", "tradeIDs": fo.trade_ids}))
        if not fills:
            if order_type == "FOK":
                return done(Answer(400, {"error": FOK_MESSAGE}))
            return done(Answer(200, {"success": True, "errorMsg": "", "orderID": order_hash,
                                     "status": "unmatched", "tradeIDs": []}))
        return done(Answer(200, {
            "success": True, "errorMsg": "", "orderID": order_hash, "status": "matched",
            "makingAmount": str(spent.normalize()), "takingAmount": str(shares.normalize()),
            "transactionsHashes": ["0x" + secrets.token_hex(32)], "tradeIDs": fo.trade_ids}))

    # --- heartbeats and cancels ---

    def _heartbeat(self, body: bytes) -> Answer:
        try:
            sent = json.loads(body or b"{}").get("heartbeat_id")
        except (ValueError, AttributeError):
            sent = None
        if not isinstance(sent, str):
            return Answer(400, {"error": "heartbeat_id must be a string"})
        expected = self.heartbeat_id
        # Unarmed (never, or expired): any id registers again, as the SDK documents.
        ok = expected is None or sent == expected
        self.heartbeats.append((self.now(), sent, ok))
        if not ok:
            return Answer(400, {"error_msg": HEARTBEAT_MISMATCH,
                                "heartbeat_id": expected if expected is not None else ""})
        self.heartbeat_id = str(uuid.uuid4())
        self.last_heartbeat = self.now()
        return Answer(200, {"heartbeat_id": self.heartbeat_id})

    def check_heartbeat(self) -> None:
        """Past the deadline: cancel every LIVE order and disarm (the next send re-arms)."""
        with self._lock:
            last = self.last_heartbeat
            if last is None or self.now() - last <= self.heartbeat_expiry_s:
                return
            self.heartbeat_expiries += 1
            self.cancelled_by_expiry.extend(self._cancel_live())
            self.heartbeat_id = None
            self.last_heartbeat = None

    def _cancel_live(self) -> list[str]:
        cancelled = [h for h, o in self.orders.items() if o.status == "LIVE"]
        for h in cancelled:
            self.orders[h].status = "CANCELED"
        return cancelled

    def live_orders(self) -> list[str]:
        with self._lock:
            return [h for h, o in self.orders.items() if o.status == "LIVE"]

    # --- resting orders: GTD expiry, cancels, fills by takers ---

    def check_gtd(self) -> None:
        """LIVE GTD orders expire one minute before their wire expiration."""
        with self._lock:
            for h, o in self.orders.items():
                if o.status == "LIVE" and o.expiration and self.now() >= o.expiration - 60:
                    o.status = "CANCELED"
                    self.expired_gtd.append(h)

    def _cancel_one(self, body: bytes) -> tuple[list[str], dict[str, str]]:
        self.cancel_requests += 1
        wanted = str(json.loads(body or b"{}").get("orderID", ""))
        fo = self.orders.get(wanted)
        if fo is None:
            return [], {wanted: "order not found"}
        if fo.status != "LIVE":
            return [], {wanted: "order can't be found - already canceled or matched"}
        fo.status = "CANCELED"
        return [wanted], {}

    def _cancel_market(self, body: bytes) -> tuple[list[str], dict[str, str]]:
        self.cancel_requests += 1
        condition = str(json.loads(body or b"{}").get("market", ""))
        done = []
        for h, o in self.orders.items():
            m = self.market_of_token(o.token_id)
            if o.status == "LIVE" and m is not None and m.condition_id == condition:
                o.status = "CANCELED"
                done.append(h)
        return done, {}

    def _cancel_answer(self, result: tuple[list[str], dict[str, str]]) -> Answer:
        canceled, not_canceled = result
        fault = self.cancel_faults.pop(0) if self.cancel_faults else None
        self.cancel_faults_used += fault is not None
        if fault == "not_done":
            for h in canceled:  # the venue never acted on it; only the answer is lost
                self.orders[h].status = "LIVE"
            return Answer(0, hang=True)
        if fault == "done":
            return Answer(0, hang=True)
        return Answer(200, {"canceled": canceled, "not_canceled": not_canceled})

    def _open_orders(self, q: dict[str, str]) -> Answer:
        out = []
        for h, o in self.orders.items():
            m = self.market_of_token(o.token_id)
            if o.status != "LIVE" or m is None:
                continue
            if "market" in q and m.condition_id != q["market"]:
                continue
            out.append({"id": h, "status": "LIVE", "market": m.condition_id,
                        "asset_id": o.token_id, "side": "BUY",
                        "original_size": str(Decimal(o.taker_amount) / U),
                        "size_matched": str(o.size_matched),
                        "price": str((Decimal(o.maker_amount) / Decimal(o.taker_amount))
                                     .quantize(Decimal("0.000001"))),
                        "order_type": o.order_type, "expiration": str(o.expiration)})
        return Answer(200, {"data": out, "next_cursor": "LTE=", "limit": 500,
                            "count": len(out)})

    def fill_resting(self, order_hash: str, shares: Decimal) -> Decimal:
        """A taker sells ``shares`` into a LIVE resting buy at its price (partial or full);
        the shares actually filled (0 when the order no longer rests)."""
        with self._lock:
            self.check_heartbeat()
            self.check_gtd()
            fo = self.orders.get(order_hash)
            if fo is None or fo.status != "LIVE":
                return Decimal(0)
            total = Decimal(fo.taker_amount) / U
            take = min(shares, total - fo.size_matched)
            if take <= 0:
                return Decimal(0)
            price = Decimal(fo.maker_amount) / Decimal(fo.taker_amount)
            market = self.market_of_token(fo.token_id)
            tid = str(uuid.uuid4())
            self.trades.append(FakeTrade(tid, "taker-" + tid[:8],
                                         market.condition_id if market else "", fo.token_id,
                                         price, take, self.new_trade_status(),
                                         maker_order_id=order_hash))
            fo.trade_ids.append(tid)
            fo.size_matched += take
            self.balance -= int(take * price * U)
            if fo.size_matched >= total:
                fo.status = "MATCHED"
            return take

    def maker_filled_by_hash(self) -> dict[str, Decimal]:
        """order hash -> shares bought by our resting orders (non-failed trades)."""
        out: dict[str, Decimal] = {}
        with self._lock:
            for t in self.trades:
                if t.maker_order_id and t.status != "FAILED":
                    out[t.maker_order_id] = out.get(t.maker_order_id, Decimal(0)) + t.shares
        return out

    def _match(self, market: FakeMarket, token: str, maker: int, taker: int, order_type: str
               ) -> list[tuple[Decimal, Decimal]]:
        """Walk the asks up to the order's price (maker/taker) spending its dollars."""
        limit = Decimal(maker) / Decimal(taker)
        budget = Decimal(maker) / U
        levels = market.asks[token]
        fills: list[tuple[Decimal, Decimal]] = []
        for i, (price, size) in enumerate(levels):
            if price > limit + Decimal("1e-9") or budget < Decimal("0.01"):
                break
            take = min(size, _floor(budget / price, Decimal("0.01")))
            if take <= 0:
                break
            fills.append((price, take))
            budget -= take * price
            levels[i] = (price, size - take)
        market.asks[token] = [(p, s) for p, s in levels if s > 0]
        # FOK: all the dollars (to the cent) must be spent, or nothing happens.
        if order_type == "FOK" and budget >= Decimal("0.01") + max(
                (p for p, _ in fills), default=Decimal(0)):
            for price, take in fills:  # put the liquidity back
                self._restore(market, token, price, take)
            return []
        return fills

    @staticmethod
    def _restore(market: FakeMarket, token: str, price: Decimal, shares: Decimal) -> None:
        levels = dict(market.asks[token])
        levels[price] = levels.get(price, Decimal(0)) + shares
        market.asks[token] = sorted(levels.items())

    def _get_order(self, order_hash: str) -> Answer:
        fo = self.orders.get(order_hash)
        if fo is None:
            return Answer(404, {"error": "order not found"})
        if fo.status == "DELAYED":
            if fo.delayed_lookups_left > 0:
                fo.delayed_lookups_left -= 1
            else:
                fo.status = fo.final_status
        market = self.market_of_token(fo.token_id)
        return Answer(200, {
            "id": fo.order_hash, "status": f"ORDER_STATUS_{fo.status}",
            "market": market.condition_id if market else "", "asset_id": fo.token_id,
            "side": "BUY", "original_size": str(Decimal(fo.taker_amount) / U),
            "size_matched": str(fo.size_matched),
            "price": str((Decimal(fo.maker_amount) / Decimal(fo.taker_amount)).quantize(
                Decimal("0.000001"))),
            "order_type": fo.order_type, "associate_trades": list(fo.trade_ids),
            "maker_address": self.funder, "created_at": int(self.now())})

    def _trades(self, q: dict[str, str]) -> Answer:
        out = []
        for t in self.trades:
            if "id" in q and t.trade_id != q["id"]:
                continue
            if "market" in q and t.market != q["market"]:
                continue
            out.append({"id": t.trade_id, "taker_order_id": t.taker_order_id,
                        "market": t.market, "asset_id": t.token_id, "side": "BUY",
                        "size": str(t.shares), "price": str(t.price), "status": t.status,
                        "trader_side": "TAKER", "maker_address": self.funder})
        return Answer(200, {"data": out, "next_cursor": "LTE=", "limit": 500,
                            "count": len(out)})


def _body_bytes(answer: Answer) -> bytes:
    if answer.text is not None:
        return answer.text.encode()
    return json.dumps(answer.body).encode()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        answer = self.server.fake.handle(self.command, self.path,
                                         {k.lower(): v for k, v in self.headers.items()}, body)
        if answer.hang:
            time.sleep(self.server.hang_s)
            self.close_connection = True
            return
        data = _body_bytes(answer)
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in answer.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_DELETE = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeClob
    hang_s: float


@contextmanager
def serve(fake: FakeClob, *, hang_s: float = 1.0) -> Iterator[str]:
    """Serve ``fake`` on 127.0.0.1; yields the base URL (Gamma lives under /gamma)."""
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.fake = fake
    srv.hang_s = hang_s
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()
