"""Polymarket CLOB V2 and Gamma wire formats, parsed at the edge into frozen domain records.

This module owns what the venue's JSON means and the money arithmetic of a market buy:

* ``MarketInfo`` from a Gamma market (token ids mapped by outcome label, never by position;
  tick, minimum size, neg-risk flag, fee schedule, window times, resolution prices).
* ``market_buy_terms``: the dollars and the worst price that get signed, in ``Decimal``:
  dollars floored to cents, worst price floored to the market's tick, the venue minimums.
* ``classify_post``: every answer to ``POST /order`` mapped to one named state, and whether the
  order is known to be absent ("rejected"), known to exist ("accepted") or unknown.
* Order and trade lookups (``GET /data/order/{hash}``, ``GET /data/trades``).

Nothing here does I/O; ``tools/polymarket/http.py`` moves the bytes and
``tools/polymarket/broker.py``
decides what to do with the answers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any, Literal

from core.fees import FeeSchedule
from core.logs import redact
from core.records import Side
from tools.polymarket.gamma import GammaError, parse_iso, stated_fees, up_down_tokens

VENUE = "polymarket-clob-v2"
CENT = Decimal("0.01")
# USDC and conditional tokens both have 6 decimals on the CTF exchange.
BASE_UNITS = Decimal(1_000_000)
MIN_ORDER_USD = Decimal(1)
# Tick sizes the V2 order builder knows how to round for (its rounding table's keys).
KNOWN_TICKS = ("0.1", "0.01", "0.005", "0.0025", "0.001", "0.0001")

# Order statuses after which nothing more happens to a market order.
TERMINAL_ORDER_STATUSES = frozenset({
    "MATCHED", "CANCELED", "CANCELLED", "UNMATCHED", "EXPIRED", "INVALID",
    "CANCELED_MARKET_RESOLVED",
})
# A trade that failed on chain never became a position.
FAILED_TRADE_STATUS = "FAILED"
# A trade is provisional until one of these: MATCHED, MATCHED_NOT_BROADCASTED, MINED and
# RETRYING can still end FAILED on chain (venue.md; REST may prefix ``TRADE_STATUS_``).
FINAL_TRADE_STATUSES = frozenset({"CONFIRMED", FAILED_TRADE_STATUS})
TRADE_STATUSES = frozenset({"MATCHED", "MATCHED_NOT_BROADCASTED", "MINED", "RETRYING",
                            "CONFIRMED", FAILED_TRADE_STATUS})

# Who an order refusal is about.  "order": this order only; "market": this market (closed,
# not ready); "venue": the whole exchange for a while (restart, halt, cancel-only, rate limit:
# back off); "account": this account or its region (banned, closed-only, geoblocked), which
# no waiting fixes - the session must stop and say why, never read it as market state.
RefusalScope = Literal["order", "market", "venue", "account"]
ACCOUNT_RESTRICTIONS = frozenset({"account_banned", "account_closed_only", "geoblocked"})
VENUE_HALTS = frozenset({"engine_restarting", "post_only_mode", "trading_disabled",
                         "cancel_only", "rate_limited", "cloudflare_blocked"})
MARKET_STATES = frozenset({"market_closed", "market_not_ready"})


def refusal_scope(code: str) -> RefusalScope:
    """Whether a refusal named ``code`` is about the order, the market, the venue or us."""
    if code in ACCOUNT_RESTRICTIONS:
        return "account"
    if code in VENUE_HALTS:
        return "venue"
    if code in MARKET_STATES:
        return "market"
    return "order"


class VenueFormatError(ValueError):
    """The venue answered with JSON this code does not understand: treat as unknown."""


class OrderTermsError(ValueError):
    """The order cannot be expressed within the venue's rules; nothing is signed."""


def dec(x: float | str | int) -> Decimal:
    """A float as the shortest decimal that round-trips (0.29 -> Decimal('0.29'))."""
    if isinstance(x, float):
        if not math.isfinite(x):
            raise OrderTermsError(f"non-finite number {x!r}")
        return Decimal(repr(x))
    try:
        return Decimal(str(x).strip())
    except InvalidOperation:
        raise VenueFormatError(f"not a number: {str(x)[:40]!r}") from None


def floor_to(x: Decimal, step: Decimal) -> Decimal:
    return ((x / step).to_integral_value(rounding=ROUND_FLOOR) * step).quantize(step)


def tick_string(tick: Decimal) -> str:
    """The canonical text of a tick ('0.01'), as the order builder's rounding table keys it."""
    text = format(tick.normalize(), "f")
    if text not in KNOWN_TICKS:
        raise OrderTermsError(f"tick size {text} is not one the V2 order format supports")
    return text


# --- markets (Gamma) ---------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class MarketInfo:
    """One Up/Down market as the venue describes it."""

    slug: str
    condition_id: str
    up_token_id: str
    down_token_id: str
    tick_size: Decimal
    min_order_shares: Decimal
    neg_risk: bool
    accepting_orders: bool
    closed: bool
    fee_schedule: FeeSchedule
    window_start: float | None
    window_end: float | None
    # Index-aligned outcome prices mapped to sides ("1"/"0" once resolved).
    up_price: Decimal | None
    down_price: Decimal | None
    # Gamma's ``secondsDelay``: how long a marketable order is held before matching (taker
    # delay); an answer "delayed" is looked up only after it has passed.
    seconds_delay: float = 0.0

    def token_for(self, side: Side) -> str:
        return self.up_token_id if side == "up" else self.down_token_id

    def side_of_token(self, token_id: str) -> Side | None:
        if token_id == self.up_token_id:
            return "up"
        if token_id == self.down_token_id:
            return "down"
        return None

    @property
    def resolved_outcome(self) -> Side | None:
        """The winning side once the market is closed with prices 1 and 0; else None."""
        if not self.closed or self.up_price is None or self.down_price is None:
            return None
        if self.up_price == 1 and self.down_price == 0:
            return "up"
        if self.down_price == 1 and self.up_price == 0:
            return "down"
        return None  # closed but not cleanly resolved (e.g. 50/50): never guess


def _iso_ts(value: Any) -> float | None:
    # A time without a zone is ambiguous: the live broker does not use it.
    return parse_iso(value, naive_is_utc=False)


def _seconds(value: Any) -> float:
    """A non-negative number of seconds (Gamma sends an integer); absent or bad is 0."""
    if value is None or isinstance(value, bool):
        return 0.0
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return 0.0
    return seconds if math.isfinite(seconds) and seconds >= 0 else 0.0


def parse_gamma_market(doc: Mapping[str, Any], *, fallback_fees: FeeSchedule) -> MarketInfo:
    """A Gamma ``/markets/slug/{slug}`` document as a ``MarketInfo``."""
    try:
        try:
            by_label, raw_prices = up_down_tokens(doc)
        except GammaError as exc:
            raise VenueFormatError(f"Gamma market: {exc}") from None
        price_by_label = {label: dec(p) for label, p in raw_prices.items()}
        stated = stated_fees(doc)
        schedule = FeeSchedule(*stated) if stated is not None else fallback_fees
        return MarketInfo(
            slug=str(doc.get("slug") or ""),
            condition_id=str(doc["conditionId"]),
            up_token_id=by_label["up"],
            down_token_id=by_label["down"],
            tick_size=dec(str(doc.get("orderPriceMinTickSize") or "0.01")),
            min_order_shares=dec(str(doc.get("orderMinSize") or "5")),
            neg_risk=bool(doc.get("negRisk") or False),
            accepting_orders=bool(doc.get("acceptingOrders", False)),
            closed=bool(doc.get("closed", False)),
            fee_schedule=schedule,
            window_start=_iso_ts(doc.get("eventStartTime")),
            window_end=_iso_ts(doc.get("endDate")),
            up_price=price_by_label.get("up"),
            down_price=price_by_label.get("down"),
            seconds_delay=_seconds(doc.get("secondsDelay")),
        )
    except (KeyError, TypeError, ValueError) as err:
        if isinstance(err, VenueFormatError):
            raise
        raise VenueFormatError(f"unexpected Gamma market: {err}") from None


# --- order terms -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class BuyTerms:
    """What a market buy signs: dollars, the worst price, and the least it buys if it fills."""

    amount_usd: Decimal
    worst_price: Decimal
    tick: Decimal
    min_shares: Decimal

    @property
    def maker_amount(self) -> int:
        """Dollars in base units: exactly what the signed order must carry."""
        return int(self.amount_usd * BASE_UNITS)


def market_buy_terms(
    stake_usd: float, worst_price: float, *, tick: Decimal, min_order_shares: Decimal
) -> BuyTerms:
    """The venue's form of a buy, or OrderTermsError saying which rule it breaks."""
    if not (math.isfinite(stake_usd) and stake_usd > 0):
        raise OrderTermsError(f"invalid stake {stake_usd!r}")
    if not (math.isfinite(worst_price) and 0.0 < worst_price < 1.0):
        raise OrderTermsError(f"invalid worst price {worst_price!r}")
    # Dollars are rounded down: the order can only be smaller than the guard allowed.
    amount = floor_to(dec(stake_usd), CENT)
    if amount < MIN_ORDER_USD:
        raise OrderTermsError(f"amount {amount} below the ${MIN_ORDER_USD} minimum")
    price = floor_to(dec(worst_price), tick)
    if not tick <= price <= 1 - tick:
        raise OrderTermsError(f"worst price {price} outside {tick}..{1 - tick}")
    shares = floor_to(amount / price, CENT)
    if shares < min_order_shares:
        raise OrderTermsError(
            f"{shares} shares at worst price {price} below the minimum {min_order_shares}")
    return BuyTerms(amount_usd=amount, worst_price=price, tick=tick, min_shares=shares)


# --- POST /order ---------------------------------------------------------------------------

PostKind = Literal["accepted", "rejected", "unknown"]


@dataclass(frozen=True, slots=True)
class PostResult:
    """One answer to ``POST /order``, classified.

    ``rejected``: the venue refused the order, so it does not exist (a named ``code`` says why).
    ``accepted``: the order exists; ``venue_status`` says whether it matched yet.
    ``unknown``: it may or may not exist (5xx, timeout, unreadable body): look it up.
    """

    kind: PostKind
    code: str
    detail: str
    order_id: str | None = None
    venue_status: str | None = None
    # BUY: making = dollars spent, taking = shares received (decimal strings from the venue).
    making_amount: Decimal | None = None
    taking_amount: Decimal | None = None
    trade_ids: tuple[str, ...] = ()
    retry_after_s: float | None = None


def _short(text: str, limit: int = 160) -> str:
    return redact(" ".join(text.split()))[:limit]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: the caller's default back-off applies
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


# The venue's documented refusals (docs.polymarket.com order errors and error codes), matched
# by their code name or their wording, most specific first.  Account restrictions come before
# anything that mentions "closed": "closed only mode" is about the account, not the market.
_ERROR_RULES: tuple[tuple[tuple[str, ...], str], ...] = (
    (("banned", "blocked address", "sanctioned"), "account_banned"),
    (("closed only", "closed-only", "close only", "close-only", "closed_only"),
     "account_closed_only"),
    (("geoblock", "your region", "your country", "jurisdiction", "restricted in"),
     "geoblocked"),
    (("trading is currently disabled", "trading disabled", "trading_disabled"),
     "trading_disabled"),
    (("cancel-only", "cancel only", "cancel_only"), "cancel_only"),
    (("invalid post-only order", "crosses book", "would cross"), "post_only_would_cross"),
    (("post only mode", "post-only mode", "postonly mode", "only post-only orders"),
     "post_only_mode"),
    (("duplicated", "already been placed"), "duplicate_order"),
    (("delaying_order_error", "error delaying"), "delay_failed"),
    (("order_delayed", "match delayed"), "delayed"),
    (("execution_error", "could not run the execution"), "execution_error"),
    (("fok_order_not_filled", "fully filled", "fok"), "fok_not_filled"),
    (("market_not_ready", "not yet ready", "not ready"), "market_not_ready"),
    (("not_enough_balance", "balance", "allowance"), "insufficient_balance"),
    (("invalid_order_expiration", "expiration"), "invalid_expiration"),
    (("invalid nonce",), "invalid_nonce"),
    (("no match", "no orders found to match"), "no_match"),
    (("version",), "order_version_mismatch"),
    (("min_tick_size", "tick", "precision", "decimal", "invalid amount"),
     "invalid_precision"),
    (("invalid_order_min_size", "lower than the minimum", "min size", "minimum size"),
     "below_minimum_size"),
    (("signature", "signer"), "invalid_signature"),
    (("market is closed", "closed", "not accepting", "resolved"), "market_closed"),
)
# Refusals after which the order may nonetheless exist (or match later): look it up, never
# conclude "rejected".  A duplicate means this very order was already placed.
_MAY_EXIST = frozenset({"duplicate_order", "execution_error", "delay_failed", "delayed"})


def _error_code(message: str) -> str:
    """The named state of a venue error message (its code name or its wording)."""
    m = message.lower()
    for needles, code in _ERROR_RULES:
        if any(n in m for n in needles):
            return code
    return "order_rejected"


def _refusal(status: int, message: str, retry_after: str | None) -> PostResult:
    code = _error_code(message)
    detail = f"HTTP {status}: {_short(message)}" if status != 200 else _short(message)
    kind: PostKind = "unknown" if code in _MAY_EXIST else "rejected"
    return PostResult(kind, code, detail, retry_after_s=_retry_after(retry_after))


def _message(body: Any, text: str) -> str:
    if isinstance(body, Mapping):
        for key in ("error", "errorMsg", "message", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return text


def classify_post(
    status: int, *, content_type: str, text: str, retry_after: str | None
) -> PostResult:
    """Map one HTTP answer to ``POST /order`` to a ``PostResult``."""
    body: Any = None
    if "json" in content_type.lower() or text.lstrip().startswith(("{", "[")):
        try:
            body = json.loads(text)
        except json.JSONDecodeError:
            body = None
    html = body is None and "<html" in text[:2048].lower()

    if status in (503, 403) and not html and body is not None:
        # The venue's own answer (JSON, not a gateway page): a trading halt, cancel-only
        # period or an account/region restriction is a refusal - the order does not exist.
        code = _error_code(_message(body, text))
        if code in VENUE_HALTS or code in ACCOUNT_RESTRICTIONS:
            return _refusal(status, _message(body, text), retry_after)
    if status >= 500:
        # A gateway error can come after the engine accepted the order: unknown, look it up.
        return PostResult("unknown", "venue_5xx", f"HTTP {status}: {_short(text)}",
                          retry_after_s=_retry_after(retry_after))
    if status == 425:
        return PostResult("rejected", "engine_restarting",
                          f"HTTP 425 (matching engine restarting): {_short(text)}",
                          retry_after_s=_retry_after(retry_after))
    if status == 429:
        return PostResult("rejected", "rate_limited", f"HTTP 429: {_short(text)}",
                          retry_after_s=_retry_after(retry_after))
    if status == 403 and html:
        return PostResult("rejected", "cloudflare_blocked",
                          "HTTP 403 HTML page (Cloudflare): request blocked before the venue",
                          retry_after_s=_retry_after(retry_after))
    if status == 401:
        return PostResult("rejected", "auth_rejected",
                          f"HTTP 401 (credentials or clock skew): {_short(text)}")
    if status != 200:
        return _refusal(status, _message(body, text), retry_after)

    if not isinstance(body, Mapping):
        return PostResult("unknown", "unreadable_response", f"HTTP 200: {_short(text)}")
    error_msg = str(body.get("errorMsg") or body.get("error") or "")
    order_id = body.get("orderID") or body.get("orderId")
    if not body.get("success", False) or not order_id:
        if error_msg:
            return _refusal(200, error_msg, retry_after)
        if str(body.get("status") or "").lower() == "unmatched":
            return PostResult("rejected", "no_match", "venue reports the order unmatched")
        return PostResult("unknown", "unreadable_response", f"HTTP 200: {_short(text)}")
    venue_status = str(body.get("status") or "").lower()
    try:
        making = dec(str(body["makingAmount"])) if body.get("makingAmount") else None
        taking = dec(str(body["takingAmount"])) if body.get("takingAmount") else None
    except VenueFormatError:
        making = taking = None
    trades = body.get("tradeIDs") or body.get("tradeIds") or []
    return PostResult(
        "accepted", venue_status or "accepted", error_msg,
        order_id=str(order_id), venue_status=venue_status,
        making_amount=making, taking_amount=taking,
        trade_ids=tuple(str(t) for t in trades) if isinstance(trades, list) else (),
    )


# --- lookups -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class VenueOrder:
    order_hash: str
    status: str
    size_matched: Decimal
    limit_price: Decimal | None
    trade_ids: tuple[str, ...]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_ORDER_STATUSES


@dataclass(frozen=True, slots=True)
class VenueTrade:
    trade_id: str
    taker_order_id: str
    token_id: str
    side: str
    price: Decimal
    shares: Decimal
    status: str

    @property
    def failed(self) -> bool:
        return self.status == FAILED_TRADE_STATUS

    @property
    def final(self) -> bool:
        """CONFIRMED or FAILED: nothing more will happen to this trade on chain."""
        return self.status in FINAL_TRADE_STATUSES


def normalise_status(status: Any) -> str:
    text = str(status or "").strip().upper()
    return text.removeprefix("ORDER_STATUS_")


def normalise_trade_status(status: Any) -> str:
    """A trade status without REST's ``TRADE_STATUS_`` prefix, upper case."""
    return str(status or "").strip().upper().removeprefix("TRADE_STATUS_")


def parse_order(doc: Any) -> VenueOrder | None:
    """``GET /data/order/{hash}``: the order, or None when the venue does not know it."""
    if doc in (None, "", "null") or (isinstance(doc, Mapping) and not doc):
        return None
    if not isinstance(doc, Mapping) or not doc.get("id"):
        raise VenueFormatError("order lookup returned something other than an order")
    trades = doc.get("associate_trades") or []
    price = doc.get("price")
    try:
        return VenueOrder(
            order_hash=str(doc["id"]),
            status=normalise_status(doc.get("status")),
            size_matched=dec(str(doc.get("size_matched") or "0")),
            limit_price=dec(str(price)) if price not in (None, "") else None,
            trade_ids=tuple(str(t) for t in trades) if isinstance(trades, list) else (),
        )
    except (KeyError, TypeError, AttributeError) as err:
        raise VenueFormatError(f"unexpected order record: {err!r}") from None


def parse_trades(doc: Any) -> tuple[list[VenueTrade], str | None]:
    """``GET /data/trades``: one page of trades and the next cursor."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("data"), list):
        raise VenueFormatError("trades lookup returned no data list")
    out = []
    try:
        for t in doc["data"]:
            out.append(VenueTrade(
                trade_id=str(t["id"]),
                taker_order_id=str(t.get("taker_order_id") or ""),
                token_id=str(t.get("asset_id") or ""),
                side=str(t.get("side") or "").upper(),
                price=dec(str(t["price"])),
                shares=dec(str(t["size"])),
                status=normalise_trade_status(t.get("status")),
            ))
    except (KeyError, TypeError, AttributeError) as err:
        raise VenueFormatError(f"unexpected trade record: {err!r}") from None
    cursor = doc.get("next_cursor")
    return out, None if cursor in (None, "", "LTE=") else str(cursor)
