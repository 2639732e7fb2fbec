"""Signed CLOB market buys, built and signed with the official SDK (``polymarket-client``).

``OrderSigner`` is the only object in the project that holds the private key.  It signs one
order per call; every call draws a new salt, so calling it twice for one decision would create
two different orders.  The broker therefore signs once and journals the order's EIP-712 hash
before posting it: the hash is the venue's order id, which is how an unknown outcome is looked
up later.

What the SDK does here (its order pipeline, the same functions its ``SecureClient`` runs):
the unsigned order (salt, maker/signer per wallet type, protocol version by asset id), the
EIP-712 typed data (domain version "2", or "3" = ExchangeV3 for a V2 position id; the ERC-7739
``TypedDataSign`` envelope for deposit wallets), the deposit-wallet signature trailer, the
signed order and the POST payload.

What we keep, and why:

* **The order hash.**  The SDK's ``SignedOrder`` carries no hash and no domain: it never
  exposes the order id before posting, and journal-first needs it.  ``order_hash`` computes it
  from the typed data independently (keccak over the domain separator and struct hash).
* **The amounts.**  ``buy_amounts`` rounds in ``Decimal`` from our ``BuyTerms`` (the guard's
  dollars and worst price) with the venue's per-tick precision.  The SDK's market-order path
  would fetch market metadata over its own transport first (no timeout of ours, wall clock);
  the equivalence tests show both give the same amounts.
* **The timestamp** comes from our clock (time is an argument), not the SDK's wall clock.
* **Signing the digest** with a key object that never prints itself (see ``_QuietKey``);
  the tests show the signature equals the SDK's ``LocalAccount.sign_typed_data`` one.

The SDK's order helpers live in ``polymarket._internal``; the dependency is pinned to the
0.14 series for that reason, and ``tests/tools/polymarket/test_sdk_equivalence.py`` compares
our hashes, signatures and POST bytes with the SDK's own client path.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Literal

from eth_abi.abi import encode as abi_encode
from eth_account.messages import encode_typed_data
from eth_keys.datatypes import PrivateKey
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from polymarket._internal.actions.orders.context import validate_price_on_tick_grid
from polymarket._internal.actions.orders.limit import _compute_limit_order_amounts
from polymarket._internal.actions.orders.orders import create_signed_order, create_unsigned_order
from polymarket._internal.actions.orders.post import build_post_order_request
from polymarket._internal.actions.orders.typed_data import (
    build_order_signature,
    build_order_typed_data,
)
from polymarket._internal.actions.orders.types import OrderDraft
from polymarket._internal.environment import PRODUCTION_CONFIG
from polymarket._internal.l1_auth import ApiKeyAuthSignature, build_api_key_auth_typed_data
from polymarket._internal.protocol import is_v2_position_id
from polymarket._internal.wallet import WalletType
from polymarket.models.types import PositionId, TokenId
from polymarket.types import EvmAddress, HexString

from core.clock import Clock, SystemClock
from core.errors import UserError
from tools.polymarket.wire import BASE_UNITS, BuyTerms, tick_string

EXCHANGE_DOMAIN_NAME = "Polymarket CTF Exchange"
ProtocolVersion = Literal["2", "3"]
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
# The SDK's names for our POLYMARKET_SIGNATURE_TYPE values (venue.md: 0 EOA, 1 email/Magic
# proxy, 2 browser-wallet safe, 3 deposit wallet).
WALLET_TYPES: dict[int, WalletType] = {0: "EOA", 1: "POLY_PROXY", 2: "GNOSIS_SAFE",
                                       3: "DEPOSIT_WALLET"}
# Decimals of the share amount per tick size (the venue's precision table, as in the SDK).
_SHARE_DECIMALS = {"0.1": 3, "0.01": 4, "0.005": 5, "0.0025": 6, "0.001": 5, "0.0001": 6}


class LiveSetupError(UserError):
    """Live trading cannot start (bad key, credentials, balance, allowance, venue version)."""


def protocol_version(token_id: str) -> ProtocolVersion:
    """The order's EIP-712 domain version: "3" (ExchangeV3) for a protocol-V2 position id,
    "2" for a CTF token id - the SDK's rule, so both sign the same domain."""
    return "3" if is_v2_position_id(token_id) else "2"


def exchange_address(chain_id: int, *, neg_risk: bool, token_id: str | None = None) -> str:
    """The exchange contract an order for ``token_id`` is signed for (its verifying contract).

    Without a token id: the V2 exchange for CTF tokens (the allowance spenders)."""
    if chain_id != PRODUCTION_CONFIG.chain_id:
        raise LiveSetupError(f"POLYMARKET_CHAIN_ID {chain_id}: only Polygon "
                             f"({PRODUCTION_CONFIG.chain_id}) has exchange contracts")
    if token_id is not None and is_v2_position_id(token_id):
        return str(PRODUCTION_CONFIG.exchange_v3)
    return str(PRODUCTION_CONFIG.neg_risk_exchange if neg_risk
               else PRODUCTION_CONFIG.standard_exchange)


def _bytes32(hex_text: str) -> bytes:
    raw = bytes.fromhex(hex_text.removeprefix("0x"))
    if len(raw) > 32:
        raise ValueError("bytes32 value longer than 32 bytes")
    return raw.rjust(32, b"\0")


def domain_separator(chain_id: int, verifying_contract: str,
                     version: ProtocolVersion = "2") -> bytes:
    return keccak(abi_encode(
        ["bytes32", "bytes32", "bytes32", "uint256", "address"],
        [_DOMAIN_TYPEHASH, keccak(text=EXCHANGE_DOMAIN_NAME), keccak(text=version), chain_id,
         to_checksum_address(verifying_contract)],
    ))


def order_struct_hash(order: dict[str, Any]) -> bytes:
    """``hashStruct(Order)`` of an order in its wire form (the POST body's "order")."""
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


def order_hash(order: dict[str, Any], *, chain_id: int, verifying_contract: str,
               version: ProtocolVersion = "2") -> str:
    """The order id: the EIP-712 digest of the ``Order`` under the exchange's domain.

    For deposit wallets (type 3) too: the ERC-7739 envelope is how the wallet signs, the order
    the exchange hashes is the same struct."""
    digest = keccak(b"\x19\x01" + domain_separator(chain_id, verifying_contract, version)
                    + order_struct_hash(order))
    return "0x" + digest.hex()


def _places(x: Decimal) -> int:
    exponent = x.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def buy_amounts(terms: BuyTerms) -> tuple[int, int]:
    """(maker, taker) base units of a market buy: dollars to the cent, shares at the tick's
    precision, never rounded so that the implied price falls below the worst price.

    The share count is rounded up at four extra decimals first (so that 18.18189999... from a
    float-free division is read as 18.1819), then down to the tick's precision - the venue's
    rounding, which the equivalence tests pin to the SDK's.
    """
    places = _SHARE_DECIMALS[tick_string(terms.tick)]
    dollars = terms.amount_usd
    shares = dollars / terms.worst_price
    if _places(shares) > places:
        shares = shares.quantize(Decimal(1).scaleb(-(places + 4)), rounding=ROUND_CEILING)
        if _places(shares) > places:
            shares = shares.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR)
    return int(dollars * BASE_UNITS), int(shares * BASE_UNITS)


@dataclass(frozen=True, slots=True)
class SignedBuy:
    """One signed market buy: its hash (the venue's order id) and its wire form."""

    order_hash: str
    token_id: str
    maker_amount: int
    taker_amount: int
    # The "order" object of the POST body (salt, maker, signer, amounts, signature ...).
    wire_order: dict[str, Any]
    protocol_version: ProtocolVersion = "2"
    # Limit orders only: rest without taking (the venue rejects one that would cross).
    post_only: bool = False

    def body(self, *, owner: str, order_type: str) -> str:
        """The exact JSON text that is posted (and HMAC-signed) for this order: the SDK's
        payload, serialised as the SDK's transport does (compact separators)."""
        payload: dict[str, Any] = {"deferExec": False, "order": self.wire_order,
                                   "orderType": order_type, "owner": owner}
        if self.post_only:
            payload["postOnly"] = True  # the SDK adds it last, only when set
        return json.dumps(payload, separators=(",", ":"))

    @property
    def implied_price(self) -> float:
        return self.maker_amount / self.taker_amount if self.taker_amount else float("inf")


class OrderSigner:
    """Signs orders for one wallet.  The key stays inside; nothing here prints it."""

    def __init__(self, private_key: str, *, chain_id: int, signature_type: int,
                 funder: str | None, clob_url: str = "", clock: Clock | None = None) -> None:
        # ``clob_url`` is accepted for the settings' sake; signing needs no venue.
        del clob_url
        if signature_type not in WALLET_TYPES:
            raise LiveSetupError(f"POLYMARKET_SIGNATURE_TYPE {signature_type} is not 0-3")
        if signature_type != 0 and not funder:
            raise LiveSetupError(
                f"POLYMARKET_SIGNATURE_TYPE {signature_type} needs POLYMARKET_FUNDER (the "
                "proxy, safe or deposit wallet that holds the funds)")
        key = _key_or_none(private_key)
        # No frame of an error raised below holds the key (tracebacks may print locals).
        del private_key
        if key is None:
            raise LiveSetupError("POLYMARKET_PRIVATE_KEY is not a valid private key")
        self._key = key
        self.address = str(key.public_key.to_checksum_address())
        self.chain_id = chain_id
        self.signature_type = signature_type
        self.wallet_type = WALLET_TYPES[signature_type]
        try:
            # The wallet that holds the funds and is the order's maker.
            self.funder = str(to_checksum_address(funder)) if funder else self.address
        except ValueError:
            raise LiveSetupError("POLYMARKET_FUNDER is not an address") from None
        exchange_address(chain_id, neg_risk=False)  # refuses a chain without contracts
        self._clock = clock or SystemClock()

    def __repr__(self) -> str:
        return (f"OrderSigner(address={self.address!r}, funder={self.funder!r}, "
                f"signature_type={self.signature_type})")

    def sign_digest(self, digest: bytes) -> str:
        """An Ethereum signature (r || s || v, v = 27/28) of a 32-byte digest."""
        sig = self._key.sign_msg_hash(digest)
        r, s, v = int(sig.r), int(sig.s), int(sig.v)
        return "0x" + (r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes([v + 27])).hex()

    def sign_typed_data(self, typed: dict[str, Any]) -> str:
        """Sign EIP-712 typed data (the SDK's order / auth payloads)."""
        signable = encode_typed_data(full_message=typed)
        return self.sign_digest(keccak(b"\x19" + signable.version + signable.header
                                       + signable.body))

    def api_key_auth(self, *, timestamp: int, nonce: int = 0) -> ApiKeyAuthSignature:
        """The L1 (ClobAuth) signature that creates or derives the account's API key; the
        SDK's typed data, signed by the key (the API key is the signer's, whatever the
        signature type)."""
        typed = build_api_key_auth_typed_data(address=self.address, chain_id=self.chain_id,
                                              timestamp=timestamp, nonce=nonce)
        return ApiKeyAuthSignature(address=self.address, nonce=nonce,
                                   signature=self.sign_typed_data(typed), timestamp=timestamp)

    def sign_market_buy(self, token_id: str, terms: BuyTerms, *, neg_risk: bool,
                        order_type: str = "FOK") -> SignedBuy:
        """Sign one market buy of ``terms.amount_usd`` dollars at prices <= the worst price."""
        maker_amount, taker_amount = buy_amounts(terms)
        return self._sign_buy(token_id, maker_amount, taker_amount, neg_risk=neg_risk,
                              order_type=order_type, expiration=0, post_only=False)

    def sign_limit_buy(self, token_id: str, *, price: Decimal, shares: Decimal, tick: Decimal,
                       neg_risk: bool, expiration: int, post_only: bool = True) -> SignedBuy:
        """Sign one resting limit buy of ``shares`` at ``price``: GTD when ``expiration``
        (Unix seconds, the venue's wire value) is set, else GTC.

        The SDK's limit-order rules, not the market-order ones: the price must lie on the tick
        grid (``validate_price_on_tick_grid``), shares are floored to the tick's size precision
        and the dollars follow from them (``_compute_limit_order_amounts``), so the signed
        price is exactly ``price``.  Raises the SDK's ``UserInputError`` off the grid."""
        validate_price_on_tick_grid(price, tick, "price")
        maker_amount, taker_amount = _compute_limit_order_amounts(
            price=price, size=shares, side="BUY", tick_size=tick)
        return self._sign_buy(token_id, maker_amount, taker_amount, neg_risk=neg_risk,
                              order_type="GTD" if expiration else "GTC",
                              expiration=expiration, post_only=post_only)

    def _sign_buy(self, token_id: str, maker_amount: int, taker_amount: int, *,
                  neg_risk: bool, order_type: str, expiration: int, post_only: bool
                  ) -> SignedBuy:
        version = protocol_version(token_id)
        contract = exchange_address(self.chain_id, neg_risk=neg_risk, token_id=token_id)
        draft = OrderDraft(
            chain_id=self.chain_id, exchange_address=EvmAddress(contract),
            expiration=expiration,
            funder_address=EvmAddress(self.funder), offered_amount=maker_amount,
            order_type=order_type,  # type: ignore[arg-type]
            side="BUY", signer=EvmAddress(self.address), requested_amount=taker_amount,
            asset_id=PositionId(token_id) if version == "3" else TokenId(token_id))
        unsigned = create_unsigned_order(draft, wallet=EvmAddress(self.funder),
                                         wallet_type=self.wallet_type)
        unsigned = dataclasses.replace(unsigned, timestamp=int(self._clock.now() * 1000))
        signature = build_order_signature(
            unsigned, HexString(self.sign_typed_data(build_order_typed_data(unsigned))))
        signed = create_signed_order(unsigned, signature, post_only=post_only)
        wire = build_post_order_request(signed, owner_api_key="")[1]["order"]
        if unsigned.protocol_version != version:  # the SDK and this module must agree
            raise ValueError("protocol version mismatch")
        return SignedBuy(
            order_hash=order_hash(wire, chain_id=self.chain_id, verifying_contract=contract,
                                  version=version),
            token_id=token_id, maker_amount=int(wire["makerAmount"]),
            taker_amount=int(wire["takerAmount"]), wire_order=wire, protocol_version=version,
            post_only=post_only)


class _QuietKey(PrivateKey):
    """A private key that never prints itself (eth_keys' own repr is the key in hex).

    Tracebacks that show local variables (typer's, or ``capture_locals``) would otherwise
    print the key from any signing frame.
    """

    def __repr__(self) -> str:
        return "<private key>"

    def __str__(self) -> str:
        return "<private key>"


def _key_or_none(private_key: str) -> _QuietKey | None:
    """The signing key, or None when unusable.  Errors are swallowed here because their
    messages and tracebacks could carry the key; the caller raises a clean one."""
    try:
        return _QuietKey(bytes.fromhex(private_key.strip().removeprefix("0x")))
    except Exception:
        return None


def check_signed_terms(signed: SignedBuy, terms: BuyTerms) -> str | None:
    """Why the signed amounts differ from the terms (None when they match).

    The Decimal cross-check that the order signs exactly the dollars the guard allowed and no
    worse a price than the worst price.
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
