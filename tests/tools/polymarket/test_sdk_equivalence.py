"""Our order path against the official SDK's (``polymarket-client``) own client path.

For identical inputs (key, wallet, asset, amounts, salt, timestamp) the order our
``OrderSigner`` signs and the order the SDK's ``SecureClient`` signs must be the same order:
same signature, same wire form, same order hash, and the same POST bytes on the wire - for
both protocol versions (EIP-712 domain "2" for a CTF token id, "3" = ExchangeV3 for a
protocol-V2 position id) and all four signature types (0 EOA, 1 POLY_PROXY, 2 GNOSIS_SAFE,
3 DEPOSIT_WALLET, the SDK's names).

The SDK's repository ships no golden order digests (its order tests assert shapes only), so
the reference is the SDK's client itself, run against the loopback fake CLOB, whose order hash
and signer recovery use eth_account's typed-data encoder (a third, independent
implementation).  The SDK's private helpers are used here only to drive the SDK's client
deterministically (a fixed salt and timestamp) and to build it without network calls.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fakeclob import FakeClob, serve
from polymarket import SecureClient
from polymarket._internal.actions.orders import orders as sdk_orders
from polymarket._internal.actions.orders.context import resolve_order_exchange_address
from polymarket._internal.actions.orders.market import _compute_market_order_amounts
from polymarket._internal.actions.orders.post import build_post_order_request
from polymarket._internal.actions.orders.types import OrderDraft
from polymarket._internal.environment import (
    PRODUCTION_CONFIG,
    create_environment,
    get_environment_config,
)
from polymarket._internal.hmac import build_hmac_signature
from polymarket._internal.l1_auth import sign_api_key_auth
from polymarket._internal.protocol import is_v2_position_id
from polymarket._internal.wallet import (
    derive_beacon_deposit_wallet_address,
    derive_proxy_wallet_address,
    derive_safe_wallet_address,
)
from polymarket.models.clob import ApiKeyCreds
from polymarket.models.types import PositionId, TokenId
from polymarket.types import EvmAddress

from core.clock import ReplayClock as FixedClock
from tools.polymarket.http import ApiCreds, ClobHttp, L2Auth
from tools.polymarket.orders import (
    WALLET_TYPES,
    OrderSigner,
    buy_amounts,
    check_signed_terms,
    exchange_address,
    protocol_version,
)
from tools.polymarket.wire import KNOWN_TICKS, market_buy_terms

pytestmark = pytest.mark.server

CTF_TOKEN = str(10**70 + 2)  # hash-sized, like real CTF token ids: domain "2"
# A protocol-V2 position id: module byte 1, a condition, outcome index 1; bits 40..103 zero.
V2_POSITION = str((1 << 248) | (0xC0FFEE << 104) | 1)
SALT = 123_456_789_012_345
TIMESTAMP_MS = 1_767_225_600_123
CREDS = {"apiKey": "00000000-1111-2222-3333-444444444444",
         "secret": "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3I=",
         "passphrase": "a" * 32}


def funder_for(key: LocalAccount, signature_type: int) -> str | None:
    """The wallet the SDK derives for this signer and type (so it classifies it as ours)."""
    cfg = PRODUCTION_CONFIG.wallet_derivation
    return {0: None,
            1: derive_proxy_wallet_address(key.address, cfg),
            2: derive_safe_wallet_address(key.address, cfg),
            3: derive_beacon_deposit_wallet_address(key.address, cfg)}[signature_type]


def sdk_client(key: LocalAccount, wallet: str, clob_url: str) -> SecureClient:
    """The SDK's SecureClient for a loopback CLOB, built without its network bootstrap
    (given credentials, not validated; no relayer deployment check)."""
    config = dataclasses.replace(get_environment_config(
        create_environment(name="loopback", config=PRODUCTION_CONFIG)), clob_url=clob_url)
    env = create_environment(name="loopback", config=config)
    return SecureClient._create(private_key=key.key.hex(), wallet=wallet, environment=env,
                                credentials=ApiKeyCreds.model_validate(CREDS),
                                validate_credentials=False)


@pytest.fixture
def fixed_salt_and_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK draws both inside create_unsigned_order; fixing them makes its order ours.
    monkeypatch.setattr(sdk_orders, "_generate_salt", lambda: SALT)
    monkeypatch.setattr(sdk_orders, "_current_timestamp_ms", lambda: TIMESTAMP_MS)


def test_token_namespaces_pick_the_protocol_version() -> None:
    assert is_v2_position_id(V2_POSITION)
    assert not is_v2_position_id(CTF_TOKEN)
    assert protocol_version(V2_POSITION) == "3"
    assert protocol_version(CTF_TOKEN) == "2"
    assert exchange_address(137, neg_risk=False, token_id=V2_POSITION) == \
        PRODUCTION_CONFIG.exchange_v3
    assert exchange_address(137, neg_risk=True, token_id=CTF_TOKEN) == \
        PRODUCTION_CONFIG.neg_risk_exchange


@pytest.mark.parametrize("tick", KNOWN_TICKS)
def test_buy_amounts_equal_the_sdks_for_every_tick(tick: str) -> None:
    step = Decimal(tick)
    checked = 0
    steps = int(1 / step)
    prices = [k * step for k in range(1, steps, max(1, steps // 40))]
    for stake in ("1", "1.37", "5", "9.99", "10", "33.33", "100", "123.45"):
        for price in prices:
            try:
                terms = market_buy_terms(float(stake), float(price), tick=step,
                                         min_order_shares=Decimal(0))
            except ValueError:
                continue
            ours = buy_amounts(terms)
            sdk = _compute_market_order_amounts(amount=terms.amount_usd,
                                                price=terms.worst_price, side="BUY",
                                                tick_size=step)
            assert ours == sdk, (stake, str(price))
            checked += 1
    assert checked > 20


@pytest.fixture
def loopback() -> Iterator[tuple[FakeClob, str]]:
    fake = FakeClob(address=Account.create().address)
    with serve(fake) as url:
        yield fake, url


@pytest.mark.parametrize("token", [CTF_TOKEN, V2_POSITION], ids=["version2", "version3"])
@pytest.mark.parametrize("signature_type", [0, 1, 2, 3])
@pytest.mark.parametrize("neg_risk", [False, True], ids=["standard", "neg_risk"])
def test_order_hash_signature_and_post_bytes_equal_the_sdk_client(
        fixed_salt_and_time: None, loopback: tuple[FakeClob, str], token: str,
        signature_type: int, neg_risk: bool) -> None:
    fake, url = loopback
    key = Account.create()
    funder = funder_for(key, signature_type)
    fake.address = key.address
    fake.funder = funder or key.address
    fake.signature_type = signature_type
    fake.creds = dict(CREDS)
    fake.add_market("btc-updown-15m-eq", window_start=time.time() - 60,
                    tokens=(token, str(int(token) + 2)), neg_risk=neg_risk)

    # Our path: terms from the guard's numbers, our clock at the same millisecond.
    terms = market_buy_terms(10.0, 0.55, tick=Decimal("0.01"), min_order_shares=Decimal(5))
    signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=signature_type,
                         funder=funder, clock=FixedClock(TIMESTAMP_MS / 1000))
    ours = signer.sign_market_buy(token, terms, neg_risk=neg_risk, order_type="FOK")
    assert check_signed_terms(ours, terms) is None

    # The SDK's path: its client, its draft (its amounts, its exchange choice), its signing.
    client = sdk_client(key, funder or key.address, url)
    try:
        assert client.wallet_type == WALLET_TYPES[signature_type]
        maker, taker = _compute_market_order_amounts(
            amount=Decimal("10"), price=Decimal("0.55"), side="BUY", tick_size=Decimal("0.01"))
        asset = PositionId(token) if is_v2_position_id(token) else TokenId(token)
        draft = OrderDraft(
            chain_id=137, exchange_address=resolve_order_exchange_address(
                get_environment_config(client.environment), asset_id=asset, neg_risk=neg_risk),
            expiration=0, funder_address=client.wallet, offered_amount=maker,
            order_type="FOK", side="BUY", signer=EvmAddress(client.signer),
            requested_amount=taker, asset_id=asset)
        sdk_signed = client._sign_order(draft, post_only=False)
        sdk_wire = build_post_order_request(sdk_signed, owner_api_key=CREDS["apiKey"])[1]
        assert ours.wire_order == sdk_wire["order"]
        assert ours.protocol_version == ("3" if token == V2_POSITION else "2")

        # The POST bytes: the SDK's client posts its order, we post ours.
        client.post_order(sdk_signed)
    finally:
        client.close()
    http = ClobHttp(url, url + "/gamma")
    http.auth = L2Auth(key.address, ApiCreds(CREDS["apiKey"], CREDS["secret"],
                                             CREDS["passphrase"]), FixedClock(time.time()))
    try:
        http.post_order(ours.body(owner=CREDS["apiKey"], order_type="FOK"))
    finally:
        http.close()
    sdk_bytes, our_bytes = fake.order_bodies
    assert our_bytes == sdk_bytes
    # The venue saw one order id twice: the hash we journal is the order the SDK signs.
    first, second = fake.posts
    assert first.order_hash == second.order_hash == ours.order_hash
    assert first.recovered_signer == key.address
    assert fake.bad_signatures == 0
    assert list(fake.orders) == [ours.order_hash]


def test_l2_headers_equal_the_sdks(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = ApiCreds(CREDS["apiKey"], CREDS["secret"], CREDS["passphrase"])
    auth = L2Auth("0x" + "ab" * 20, creds, FixedClock(1_767_225_600.0))
    body = '{"heartbeat_id":""}'
    headers = auth.headers("POST", "/v1/heartbeats", body)
    assert headers["POLY_TIMESTAMP"] == "1767225600"
    assert headers["POLY_SIGNATURE"] == build_hmac_signature(
        secret=CREDS["secret"], timestamp=1_767_225_600, method="POST",
        path="/v1/heartbeats", body=body)
    assert headers["POLY_API_KEY"] == CREDS["apiKey"]
    assert CREDS["secret"] not in repr(creds)
    assert CREDS["secret"] not in repr(auth)


def test_l1_api_key_signature_equals_the_sdks() -> None:
    key = Account.create()
    signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=0, funder=None)
    ours = signer.api_key_auth(timestamp=1_767_225_600, nonce=0)
    sdk = sign_api_key_auth(key, chain_id=137, timestamp=1_767_225_600, nonce=0)
    assert (ours.address, ours.nonce, ours.timestamp) == (sdk.address, sdk.nonce, sdk.timestamp)
    assert ours.signature == sdk.signature


def test_api_key_is_created_then_derived_on_the_loopback_venue() -> None:
    key = Account.create()
    fake = FakeClob(address=key.address)
    signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=0, funder=None)
    with serve(fake) as url:
        http = ClobHttp(url, url + "/gamma")
        try:
            first = http.api_key(signer.api_key_auth(timestamp=int(time.time())))
            again = http.api_key(signer.api_key_auth(timestamp=int(time.time())))
        finally:
            http.close()
    assert first is not None
    assert again == first
    assert fake.creds is not None
    assert first.api_key == fake.creds["apiKey"]
    # Created once (POST), then derived (the create answers 400, then GET derive).
    assert [r for r in fake.requests if r[1].startswith("/auth/")] == [
        ("POST", "/auth/api-key"), ("POST", "/auth/api-key"), ("GET", "/auth/derive-api-key")]


def test_order_path_never_reaches_the_sdks_retrying_or_side_effect_calls() -> None:
    """Structural: the SDK calls that would post twice (``place_*``: a second POST after an
    allowance approval), retry (data-API reads retry 429s), or act on chain while connecting
    (``SecureClient.create``: relayer deployment check, deposit-wallet deployment) are not
    imported by the order path; it uses the SDK's order, auth and HMAC builders only."""
    import ast

    import tools.polymarket as pkg

    root = Path(pkg.__file__).parent
    imported: dict[str, set[str]] = {}
    for name in ("orders.py", "http.py", "broker.py", "heartbeat.py"):
        tree = ast.parse((root / name).read_text(encoding="utf-8"))
        imported[name] = {f"{node.module}.{alias.name}" for node in ast.walk(tree)
                          if isinstance(node, ast.ImportFrom) and node.module
                          and node.module.startswith("polymarket")
                          for alias in node.names}
    every = set().union(*imported.values())
    assert every  # the SDK is used ...
    allowed = ("polymarket._internal.actions.orders.", "polymarket._internal.environment.",
               "polymarket._internal.protocol.", "polymarket._internal.wallet.WalletType",
               "polymarket._internal.l1_auth.", "polymarket._internal.hmac.",
               "polymarket._internal.actions.auth.build_l1_auth_headers",
               "polymarket.models.", "polymarket.types.")
    assert sorted(n for n in every if not n.startswith(allowed)) == []  # ... builders only
    banned = ("SecureClient", "place_", "allowance_recovery", "retry", "Transport")
    assert sorted(n for n in every if any(b in n for b in banned)) == []
