"""The venue edge without a network: order terms in Decimal, every POST answer classified,
Gamma markets parsed by label, order hashes, and signatures of every signature type recovered
by the fake venue (synthetic markets and keys only)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak
from fakeclob import FakeClob

from core.fees import FeeSchedule
from tools.polymarket.orders import (
    LiveSetupError,
    OrderSigner,
    SignedBuy,
    check_signed_terms,
    exchange_address,
)
from tools.polymarket.wire import (
    OrderTermsError,
    classify_post,
    market_buy_terms,
    parse_gamma_market,
    parse_order,
    parse_trades,
)

TICK = Decimal("0.01")


# --- order terms ---------------------------------------------------------------------------

def test_terms_floor_dollars_to_cents_and_price_to_the_tick() -> None:
    terms = market_buy_terms(10.0099, 0.5789, tick=TICK, min_order_shares=Decimal(5))
    assert terms.amount_usd == Decimal("10.00")
    assert terms.worst_price == Decimal("0.57")
    assert terms.maker_amount == 10_000_000
    assert terms.min_shares == Decimal("17.54")


def test_terms_float_noise_does_not_lose_a_cent() -> None:
    # 4.35 is 4.3499999999999996 in binary; the floor works on its shortest repr, 4.35.
    terms = market_buy_terms(4.35, 0.29, tick=TICK, min_order_shares=Decimal(5))
    assert (terms.amount_usd, terms.worst_price) == (Decimal("4.35"), Decimal("0.29"))


def test_terms_use_the_fine_tick_near_the_extremes() -> None:
    terms = market_buy_terms(20.0, 0.9678, tick=Decimal("0.001"), min_order_shares=Decimal(5))
    assert terms.worst_price == Decimal("0.967")


@pytest.mark.parametrize(("stake", "worst", "message"), [
    (0.99, 0.5, "minimum"),
    (2.0, 0.5, "below the minimum 5"),     # 4 shares at the worst price
    (10.0, 0.005, "outside"),              # floors to 0.00
    (10.0, 1.0, "invalid worst price"),
    (float("nan"), 0.5, "invalid stake"),
    (-5.0, 0.5, "invalid stake"),
])
def test_terms_refuse_what_the_venue_would_reject(stake: float, worst: float, message: str
                                                  ) -> None:
    with pytest.raises(OrderTermsError, match=message):
        market_buy_terms(stake, worst, tick=TICK, min_order_shares=Decimal(5))


# --- POST answers ----------------------------------------------------------------------------

def _json(status: int, body: Any, retry_after: str | None = None) -> Any:
    return classify_post(status, content_type="application/json", text=json.dumps(body),
                         retry_after=retry_after)


@pytest.mark.parametrize(("status", "body", "kind", "code"), [
    (400, {"error": "not enough balance / allowance"}, "rejected", "insufficient_balance"),
    (400, {"error": "order couldn't be fully filled. FOK orders are fully filled or killed."},
     "rejected", "fok_not_filled"),
    (400, {"error": "invalid order: the orderbook is in post only mode"}, "rejected",
     "post_only_mode"),
    (400, {"error": "invalid amount for a marketable BUY order, max accuracy of 2 decimals"},
     "rejected", "invalid_precision"),
    (400, {"error": "order_version_mismatch"}, "rejected", "order_version_mismatch"),
    (425, {"error": "Too Early"}, "rejected", "engine_restarting"),
    (401, {"error": "Unauthorized/Invalid api key"}, "rejected", "auth_rejected"),
    (500, {"error": "internal"}, "unknown", "venue_5xx"),
    (503, {"error": "unavailable"}, "unknown", "venue_5xx"),
    (200, {"success": True, "orderID": "0xab", "status": "delayed"}, "accepted", "delayed"),
    (200, {"success": True, "orderID": "0xab", "status": "unmatched"}, "accepted",
     "unmatched"),
    (200, {"success": False, "errorMsg": "not enough balance / allowance"}, "rejected",
     "insufficient_balance"),
    (200, {"weird": 1}, "unknown", "unreadable_response"),
])
def test_every_answer_has_a_named_state(status: int, body: Any, kind: str, code: str) -> None:
    result = _json(status, body)
    assert (result.kind, result.code) == (kind, code)


def test_rate_limit_keeps_retry_after() -> None:
    result = _json(429, {"error": "Too Many Requests"}, retry_after="7")
    assert (result.kind, result.code, result.retry_after_s) == ("rejected", "rate_limited", 7.0)


def test_cloudflare_html_is_a_block_not_an_order() -> None:
    html = "<!DOCTYPE html><html><title>Attention Required! | Cloudflare</title></html>"
    result = classify_post(403, content_type="text/html", text=html, retry_after=None)
    assert (result.kind, result.code) == ("rejected", "cloudflare_blocked")
    gateway = classify_post(502, content_type="text/html", text="<html>bad gateway</html>",
                            retry_after=None)
    assert gateway.kind == "unknown"  # a gateway error may follow an accepted order


def test_matched_answer_carries_amounts_and_trades() -> None:
    result = _json(200, {"success": True, "orderID": "0xab", "status": "matched",
                         "makingAmount": "9.999", "takingAmount": "18.18",
                         "tradeIDs": ["t1"]})
    assert result.kind == "accepted"
    assert result.venue_status == "matched"
    assert (result.making_amount, result.taking_amount) == (Decimal("9.999"), Decimal("18.18"))
    assert result.trade_ids == ("t1",)


def test_error_details_are_redacted() -> None:
    leaked = "0x" + "ab" * 32
    result = _json(400, {"error": f"bad signature from {leaked}"})
    assert leaked not in result.detail


# --- Gamma and lookups -----------------------------------------------------------------------

def _gamma(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "slug": "btc-updown-15m-synthetic", "conditionId": "0xc0",
        "outcomes": '["Down", "Up"]', "clobTokenIds": '["222", "111"]',
        "outcomePrices": '["0.4", "0.6"]', "orderPriceMinTickSize": 0.01, "orderMinSize": 5,
        "negRisk": False, "acceptingOrders": True, "closed": False,
        "feeSchedule": {"rate": 0.07, "exponent": 1, "takerOnly": True},
        "eventStartTime": "2026-09-01T12:00:00Z", "endDate": "2026-09-01T12:15:00Z",
    }
    doc.update(overrides)
    return doc


def test_gamma_tokens_are_mapped_by_label_not_position() -> None:
    market = parse_gamma_market(_gamma(), fallback_fees=FeeSchedule())
    assert (market.up_token_id, market.down_token_id) == ("111", "222")
    assert market.window_end is not None
    assert market.window_start is not None
    assert market.window_end - market.window_start == 900.0
    assert market.fee_schedule == FeeSchedule(0.07, 1.0)
    assert market.resolved_outcome is None


@pytest.mark.parametrize(("prices", "outcome"), [
    ('["0", "1"]', "up"), ('["1", "0"]', "down"), ('["0.5", "0.5"]', None)])
def test_resolution_only_from_clean_prices(prices: str, outcome: str | None) -> None:
    market = parse_gamma_market(_gamma(closed=True, outcomePrices=prices),
                                fallback_fees=FeeSchedule())
    assert market.resolved_outcome == outcome


def test_order_and_trade_lookups_parse() -> None:
    assert parse_order(None) is None
    order = parse_order({"id": "0xab", "status": "ORDER_STATUS_MATCHED", "size_matched": "18.18",
                         "price": "0.57", "associate_trades": ["t1"]})
    assert order is not None
    assert order.terminal
    assert order.size_matched == Decimal("18.18")
    trades, cursor = parse_trades({"data": [{"id": "t1", "taker_order_id": "0xab",
                                             "price": "0.55", "size": "18.18",
                                             "status": "CONFIRMED"}], "next_cursor": "LTE="})
    assert cursor is None
    assert trades[0].shares == Decimal("18.18")


# --- signing and hashes ------------------------------------------------------------------------

def _typed_hash(wire: dict[str, Any]) -> str:
    fields = [("salt", "uint256"), ("maker", "address"), ("signer", "address"),
              ("tokenId", "uint256"), ("makerAmount", "uint256"), ("takerAmount", "uint256"),
              ("side", "uint8"), ("signatureType", "uint8"), ("timestamp", "uint256"),
              ("metadata", "bytes32"), ("builder", "bytes32")]
    message = {n: (int(wire[n]) if t.startswith("uint") and n != "side" else wire[n])
               for n, t in fields}
    message["side"] = 0
    message["metadata"] = bytes(32)
    message["builder"] = bytes(32)
    typed = {"primaryType": "Order",
             "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                        {"name": "version", "type": "string"},
                                        {"name": "chainId", "type": "uint256"},
                                        {"name": "verifyingContract", "type": "address"}],
                       "Order": [{"name": n, "type": t} for n, t in fields]},
             "domain": {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137,
                        "verifyingContract": exchange_address(137, neg_risk=False)},
             "message": message}
    s = encode_typed_data(full_message=typed)
    return "0x" + keccak(b"\x19" + s.version + s.header + s.body).hex()


CTF_TOKEN = str(10**70 + 2)


@pytest.mark.parametrize("signature_type", [0, 1, 2, 3])
def test_signed_order_hash_and_signer_for_every_signature_type(signature_type: int) -> None:
    key = Account.create()
    funder = None if signature_type == 0 else Account.create().address
    signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=signature_type,
                         funder=funder, clob_url="http://venue.invalid")
    terms = market_buy_terms(10.0, 0.55, tick=TICK, min_order_shares=Decimal(5))
    # A CTF token id (hash-like, so domain version "2"); a small number such as 123456789
    # is a protocol-V2 position id, signed for version "3" (test_sdk_equivalence.py).
    signed = signer.sign_market_buy(CTF_TOKEN, terms, neg_risk=False)
    assert signed.order_hash == _typed_hash(signed.wire_order)
    assert check_signed_terms(signed, terms) is None
    venue = FakeClob(address=key.address, funder=funder, signature_type=signature_type)
    order_hash, recovered = venue.order_hash_and_signer(signed.wire_order, False)
    assert order_hash == signed.order_hash
    assert recovered == key.address
    assert venue._signer_ok(signed.wire_order, recovered)
    # A different configured key is refused.
    other = FakeClob(address=Account.create().address, funder=funder,
                     signature_type=signature_type)
    assert not other._signer_ok(signed.wire_order, recovered)


def test_every_sign_draws_a_new_salt_so_resending_would_be_a_new_order() -> None:
    key = Account.create()
    signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=0, funder=None,
                         clob_url="http://venue.invalid")
    terms = market_buy_terms(10.0, 0.55, tick=TICK, min_order_shares=Decimal(5))
    hashes = {signer.sign_market_buy("1", terms, neg_risk=False).order_hash for _ in range(5)}
    assert len(hashes) == 5


def test_signed_terms_mismatch_is_caught() -> None:
    terms = market_buy_terms(10.0, 0.55, tick=TICK, min_order_shares=Decimal(5))
    forged = SignedBuy(order_hash="0x", token_id="1", maker_amount=10_010_000,
                       taker_amount=18_181_800, wire_order={})
    assert "expected 10000000" in (check_signed_terms(forged, terms) or "")
    pricey = SignedBuy(order_hash="0x", token_id="1", maker_amount=10_000_000,
                       taker_amount=17_000_000, wire_order={})
    assert "fewer than" in (check_signed_terms(pricey, terms) or "")


@pytest.mark.parametrize(("key", "signature_type", "funder", "message"), [
    ("not-a-key", 0, None, "not a valid private key"),
    ("0x" + "00" * 32, 0, None, "not a valid private key"),
    (None, 1, None, "needs POLYMARKET_FUNDER"),
    (None, 7, None, "is not 0-3"),
])
def test_bad_wallet_settings_are_one_clean_error(key: str | None, signature_type: int,
                                                 funder: str | None, message: str) -> None:
    secret = key or Account.create().key.hex()
    with pytest.raises(LiveSetupError, match=message) as info:
        OrderSigner(secret, chain_id=137, signature_type=signature_type, funder=funder,
                    clob_url="http://venue.invalid")
    assert secret not in str(info.value)
    assert info.value.__cause__ is None
