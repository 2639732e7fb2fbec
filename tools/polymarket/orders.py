"""Signed CLOB V2 market buys: signing through ``py-clob-client-v2``, hashing done here.

``OrderSigner`` is the only object in the project that holds the private key (inside the
library's client, which needs it to sign).  It signs one order per call; every call draws a
new salt, so calling it twice for one decision would create two different orders.  The broker
therefore signs once and journals the order's EIP-712 hash before posting it: the hash is the
venue's order id, which is how an unknown outcome is looked up later.

The hash follows EIP-712 (``keccak(0x1901 || domainSeparator || structHash)``) over the V2
``Order`` struct and the "Polymarket CTF Exchange" domain, version "2".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from py_clob_client_v2 import ClobClient, MarketOrderArgsV2
from py_clob_client_v2.clob_types import ApiCreds, CreateOrderOptions
from py_clob_client_v2.config import get_contract_config
from py_clob_client_v2.order_utils.model.order_data_v2 import order_to_json_v2

from core.errors import UserError
from tools.polymarket.wire import BASE_UNITS, BuyTerms, tick_string

EXCHANGE_DOMAIN_NAME = "Polymarket CTF Exchange"
EXCHANGE_DOMAIN_VERSION = "2"
ORDER_VERSION = 2
_DOMAIN_TYPE = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
_ORDER_TYPE = (
    "Order(uint256 salt,address maker,address signer,uint256 tokenId,uint256 makerAmount,"
    "uint256 takerAmount,uint8 side,uint8 signatureType,uint256 timestamp,bytes32 metadata,"
    "bytes32 builder)"
)
_DOMAIN_TYPEHASH = keccak(text=_DOMAIN_TYPE)
_ORDER_TYPEHASH = keccak(text=_ORDER_TYPE)
SIDE_BUY = 0


class LiveSetupError(UserError):
    """Live trading cannot start (bad key, credentials, balance, allowance, venue version)."""


def exchange_address(chain_id: int, *, neg_risk: bool) -> str:
    config = get_contract_config(chain_id)
    return str(config.neg_risk_exchange_v2 if neg_risk else config.exchange_v2)


def _bytes32(hex_text: str) -> bytes:
    raw = bytes.fromhex(hex_text.removeprefix("0x"))
    if len(raw) > 32:
        raise ValueError("bytes32 value longer than 32 bytes")
    return raw.rjust(32, b"\0")


def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    return keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [_DOMAIN_TYPEHASH, keccak(text=EXCHANGE_DOMAIN_NAME),
         keccak(text=EXCHANGE_DOMAIN_VERSION), chain_id,
         to_checksum_address(verifying_contract)],
    ))


def order_struct_hash(order: dict[str, Any]) -> bytes:
    """``hashStruct(Order)`` of a V2 order in its wire form (``order_to_json_v2``'s "order")."""
    side = order["side"]
    side_num = SIDE_BUY if side in ("BUY", 0) else 1
    return keccak(abi_encode(
        ["bytes32", "uint256", "address", "address", "uint256", "uint256", "uint256",
         "uint8", "uint8", "uint256", "bytes32", "bytes32"],
        [_ORDER_TYPEHASH, int(order["salt"]), to_checksum_address(order["maker"]),
         to_checksum_address(order["signer"]), int(order["tokenId"]),
         int(order["makerAmount"]), int(order["takerAmount"]), side_num,
         int(order["signatureType"]), int(order["timestamp"]),
         _bytes32(order["metadata"]), _bytes32(order["builder"])],
    ))


def order_hash(order: dict[str, Any], *, chain_id: int, verifying_contract: str) -> str:
    digest = keccak(b"\x19\x01" + domain_separator(chain_id, verifying_contract)
                    + order_struct_hash(order))
    return "0x" + digest.hex()


@dataclass(frozen=True, slots=True)
class SignedBuy:
    """One signed market buy: its hash (the venue's order id) and its wire form."""

    order_hash: str
    token_id: str
    maker_amount: int
    taker_amount: int
    # The "order" object of the POST body (salt, maker, signer, amounts, signature ...).
    wire_order: dict[str, Any]

    def body(self, *, owner: str, order_type: str) -> str:
        """The exact JSON text that is posted (and HMAC-signed) for this order."""
        payload = {"order": self.wire_order, "owner": owner, "orderType": order_type,
                   "deferExec": False, "postOnly": False}
        return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)

    @property
    def implied_price(self) -> float:
        return self.maker_amount / self.taker_amount if self.taker_amount else float("inf")


class OrderSigner:
    """Signs V2 orders for one wallet.  The key stays inside; nothing here prints it."""

    def __init__(self, private_key: str, *, chain_id: int, signature_type: int,
                 funder: str | None, clob_url: str) -> None:
        if signature_type not in (0, 1, 2, 3):
            raise LiveSetupError(f"POLYMARKET_SIGNATURE_TYPE {signature_type} is not 0-3")
        if signature_type != 0 and not funder:
            raise LiveSetupError(
                f"POLYMARKET_SIGNATURE_TYPE {signature_type} needs POLYMARKET_FUNDER (the "
                "proxy, safe or deposit wallet that holds the funds)")
        client = _client_or_none(private_key, clob_url, chain_id, signature_type, funder)
        # No frame of an error raised below holds the key (tracebacks may print locals).
        del private_key
        if client is None:
            raise LiveSetupError("POLYMARKET_PRIVATE_KEY is not a valid private key")
        self._client = client
        self.address = str(client.get_address())
        self.chain_id = chain_id
        self.signature_type = signature_type
        # The wallet that holds the funds and is the order's maker.
        self.funder = to_checksum_address(funder) if funder else self.address

    def __repr__(self) -> str:
        return (f"OrderSigner(address={self.address!r}, funder={self.funder!r}, "
                f"signature_type={self.signature_type})")

    def derive_api_creds(self) -> ApiCreds:
        """Create the account's CLOB API key or derive the existing one (L1 auth), once."""
        try:
            creds = self._client.create_or_derive_api_key()
        except Exception as err:
            status = getattr(err, "status_code", None)
            raise LiveSetupError(
                f"could not create or derive CLOB API credentials ({type(err).__name__}"
                f"{f', HTTP {status}' if status else ''})") from None
        if not isinstance(creds, ApiCreds) or not creds.api_key:
            raise LiveSetupError("the venue returned no API credentials")
        return creds

    def sign_market_buy(self, token_id: str, terms: BuyTerms, *, neg_risk: bool) -> SignedBuy:
        """Sign one market buy of ``terms.amount_usd`` dollars at prices <= the worst price."""
        args = MarketOrderArgsV2(token_id=token_id, amount=float(terms.amount_usd), side="BUY",
                                 price=float(terms.worst_price))
        options = CreateOrderOptions(tick_size=tick_string(terms.tick),  # type: ignore[arg-type]
                                     neg_risk=neg_risk)
        signed = self._client.builder.build_market_order(args, options, version=ORDER_VERSION)
        wire = order_to_json_v2(signed, "", "FOK")["order"]
        contract = exchange_address(self.chain_id, neg_risk=neg_risk)
        return SignedBuy(
            order_hash=order_hash(wire, chain_id=self.chain_id, verifying_contract=contract),
            token_id=token_id,
            maker_amount=int(wire["makerAmount"]),
            taker_amount=int(wire["takerAmount"]),
            wire_order=wire,
        )


class _QuietKey(PrivateKey):
    """A private key that never prints itself (eth_keys' own repr is the key in hex).

    Tracebacks that show local variables (typer's, or ``capture_locals``) would otherwise
    print the key from any signing frame of the libraries it passes through.
    """

    def __repr__(self) -> str:
        return "<private key>"

    def __str__(self) -> str:
        return "<private key>"


def _client_or_none(private_key: str, clob_url: str, chain_id: int, signature_type: int,
                    funder: str | None) -> ClobClient | None:
    """The library client for this key, or None when the key is unusable.

    The key is handed over as an eth_keys ``PrivateKey`` that does not print itself: the
    library then signs without re-deriving the public key for every order (half the signing
    time), and no hex copy of the key is kept beside it.  Errors are swallowed here because
    their messages and tracebacks could carry the key; the caller raises a clean one.
    """
    try:
        key = _QuietKey(bytes.fromhex(private_key.strip().removeprefix("0x")))
        return ClobClient(clob_url, chain_id, key=key, signature_type=signature_type,  # type: ignore[arg-type]
                          funder=funder, use_server_time=True)
    except Exception:
        return None


def check_signed_terms(signed: SignedBuy, terms: BuyTerms) -> str | None:
    """Why the signed amounts differ from the terms (None when they match).

    The library rounds with floats; this is the Decimal cross-check that the order signs
    exactly the dollars the guard allowed and no worse a price than the worst price.
    """
    if signed.maker_amount != terms.maker_amount:
        return f"signed {signed.maker_amount} base units, expected {terms.maker_amount}"
    shares = signed.taker_amount / float(BASE_UNITS)
    if shares + 1e-9 < float(terms.min_shares):
        return f"signed {shares} shares, fewer than {terms.min_shares}"
    # Rounding the share amount may move the implied price by a hair, never by a tick.
    if signed.implied_price > float(terms.worst_price) + float(terms.tick) / 100.0:
        return f"implied price {signed.implied_price:.6f} above {terms.worst_price}"
    return None
