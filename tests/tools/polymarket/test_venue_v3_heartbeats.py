"""Order protocol version 3 and order heartbeats, on the fake CLOB (in-process, simulated time).

* The broker starts when the venue's ``/version`` answers 2 or 3, and refuses anything else.
* A market whose asset ids are protocol-V2 position ids is traded with orders signed for
  domain version "3" (ExchangeV3); the fake recovers the configured key from every one, for
  every signature type, and the journaled hash is the venue's order id.
* Heartbeats: the id chain, the mismatch answer, the 10 s expiry that cancels resting orders,
  explicit cancel-all at shutdown, and the loop the runner will use.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils.crypto import keccak
from fakeclob import FakeClob, FakeMarket, is_v2_position_id
from livekit import SimTime, execute_approved, journal_vs_venue, snapshot_for
from polymarket._internal.environment import PRODUCTION_CONFIG

from core.records import Verdict
from graphs.context import Context
from tools.journal import Journal
from tools.polymarket.broker import LiveClobBroker
from tools.polymarket.heartbeat import HeartbeatLoop, OrderHeartbeat
from tools.polymarket.http import ApiCreds, ClobHttp
from tools.polymarket.orders import LiveSetupError, OrderSigner
from tools.polymarket.wire import market_buy_terms

START = 1_790_000_000.0
# Protocol-V2 position ids (module byte 1, a condition, outcome 0 / 1): domain version "3".
V2_UP = str((1 << 248) | (0xBEEF << 104) | 0)
V2_DOWN = str((1 << 248) | (0xBEEF << 104) | 1)



class Rig:
    def __init__(self, *, signature_type: int = 0, version: int = 2) -> None:
        self.sim = SimTime(START)
        self.key: LocalAccount = Account.create()
        self.funder = None if signature_type == 0 else Account.create().address
        self.fake = FakeClob(address=self.key.address, funder=self.funder,
                             signature_type=signature_type, clock=self.sim.now)
        self.fake.version = version
        raw = self.fake.issue_creds()
        self.creds = ApiCreds(raw["apiKey"], raw["secret"], raw["passphrase"])
        self.signer = OrderSigner(self.key.key.hex(), chain_id=137,
                                  signature_type=signature_type, funder=self.funder,
                                  clock=self.sim)
        self.http = ClobHttp("http://venue.invalid", "http://venue.invalid/gamma",
                             transport=self.fake.transport(), clock=self.sim)
        self.journal = Journal(":memory:")
        self.broker = LiveClobBroker(
            self.signer, self.http, creds=self.creds, store=self.journal, clock=self.sim,
            monotonic=self.sim.monotonic, sleep=self.sim.sleep, not_found_grace_s=1.0,
            poll_interval_s=0.5)

    def v3_market(self) -> FakeMarket:
        return self.fake.add_market("btc-updown-15m-v3", window_start=self.sim.now() - 300,
                                    tokens=(V2_UP, V2_DOWN))

    def rest_order(self, market: FakeMarket) -> str:
        """A GTC buy below the ask, posted once: it rests on the book (LIVE)."""
        terms = market_buy_terms(10.0, 0.40, tick=Decimal("0.01"),
                                 min_order_shares=Decimal(5))
        signed = self.signer.sign_market_buy(market.up_token, terms, neg_risk=False,
                                             order_type="GTC")
        answer = self.http.post_order(signed.body(owner=self.creds.api_key, order_type="GTC"))
        assert answer.status == 200
        assert '"live"' in answer.text
        return signed.order_hash


# --- protocol version 3 ------------------------------------------------------------------

@pytest.mark.parametrize("version", [2, 3])
def test_connect_accepts_venue_order_versions_2_and_3(version: int) -> None:
    rig = Rig(version=version)
    rig.broker.connect()
    assert rig.broker.venue_version == version
    assert rig.broker.connected


@pytest.mark.parametrize("answer", [4, 1, "x"])
def test_connect_refuses_an_order_version_it_cannot_sign(answer: object) -> None:
    rig = Rig()
    rig.fake.version = answer  # type: ignore[assignment]
    with pytest.raises(LiveSetupError, match="venue order version"):
        rig.broker.connect()
    assert not rig.broker.connected


@pytest.mark.parametrize("signature_type", [0, 1, 2, 3])
def test_v2_position_market_is_traded_with_version_3_orders(signature_type: int) -> None:
    rig = Rig(signature_type=signature_type, version=3)
    rig.broker.connect()
    market = rig.v3_market()
    run_id = rig.journal.start_run(account="live:test", mode="live", dataset=None, config={},
                                   started_ts=rig.sim.now())
    ctx = Context(account="live:test", journal=rig.journal, run_id=run_id, broker=rig.broker,
                  clock=rig.sim, stop_file="/nonexistent/STOP")
    verdict = Verdict(approved=True, side="up", stake_usd=10.0, worst_price=0.57)
    report = execute_approved({"snapshot": snapshot_for(market, rig.sim.now()),
                               "verdict": verdict, "decision_id": "d-v3"}, ctx)
    assert report.status == "filled", report.reason
    (post,) = rig.fake.posts
    assert post.recovered_signer == rig.key.address
    assert rig.fake.bad_signatures == 0
    # The fake hashed it under the version-3 domain with ExchangeV3 as verifying contract.
    assert is_v2_position_id(market.up_token)
    assert rig.fake.order_domain(market.up_token, False) == {
        "name": "Polymarket CTF Exchange", "version": "3", "chainId": 137,
        "verifyingContract": PRODUCTION_CONFIG.exchange_v3}
    # Journal first: the hash recorded before the POST is the venue's order id.
    journaled = rig.journal.signed_order(report.order_id)
    assert journaled is not None
    assert journaled.order_hash == post.order_hash
    assert list(rig.fake.orders) == [post.order_hash]
    assert journal_vs_venue(rig.journal, rig.fake, "live:test") == []

def test_a_version_2_signature_on_a_v2_position_is_refused_by_the_venue() -> None:
    """The domain matters: the same order signed for version "2" recovers another address."""
    rig = Rig(version=3)
    market = rig.v3_market()
    terms = market_buy_terms(10.0, 0.57, tick=Decimal("0.01"), min_order_shares=Decimal(5))
    signed = rig.signer.sign_market_buy(market.up_token, terms, neg_risk=False)
    assert signed.protocol_version == "3"
    order = dict(signed.wire_order)
    legacy = dict(order)
    # Re-sign the same struct under the version-2 domain of the V2 exchange.
    domain = {"name": "Polymarket CTF Exchange", "version": "2", "chainId": 137,
              "verifyingContract": PRODUCTION_CONFIG.standard_exchange}
    fields = [{"name": n, "type": t} for n, t in (
        ("salt", "uint256"), ("maker", "address"), ("signer", "address"),
        ("tokenId", "uint256"), ("makerAmount", "uint256"), ("takerAmount", "uint256"),
        ("side", "uint8"), ("signatureType", "uint8"), ("timestamp", "uint256"),
        ("metadata", "bytes32"), ("builder", "bytes32"))]
    message = {"salt": int(order["salt"]), "maker": order["maker"], "signer": order["signer"],
               "tokenId": int(order["tokenId"]), "makerAmount": int(order["makerAmount"]),
               "takerAmount": int(order["takerAmount"]), "side": 0,
               "signatureType": int(order["signatureType"]),
               "timestamp": int(order["timestamp"]), "metadata": b"\0" * 32,
               "builder": b"\0" * 32}
    s = encode_typed_data(full_message={
        "primaryType": "Order", "domain": domain, "message": message,
        "types": {"EIP712Domain": [{"name": "name", "type": "string"},
                                   {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  "Order": fields}})
    legacy["signature"] = rig.signer.sign_digest(keccak(b"\x19" + s.version + s.header + s.body))
    good_hash, good_signer = rig.fake.order_hash_and_signer(order, False)
    bad_hash, bad_signer = rig.fake.order_hash_and_signer(legacy, False)
    assert good_hash == signed.order_hash
    assert good_signer == rig.key.address
    assert bad_hash == good_hash  # same order id ...
    assert bad_signer != rig.key.address  # ... but not signed for the venue's domain


# --- heartbeats ----------------------------------------------------------------------------

def test_heartbeats_chain_their_ids_and_arm_the_deadline() -> None:
    rig = Rig()
    rig.broker.connect()
    beat = rig.broker.order_heartbeat()
    assert not beat.armed
    ids = []
    for _ in range(4):
        result = rig.broker.send_heartbeat()
        assert result.status == "accepted"
        ids.append(result.heartbeat_id)
        rig.sim.sleep(5.0)
    sent = [s for _, s, _ok in rig.fake.heartbeats]
    assert sent == ["", *ids[:-1]]  # each send carries the id the previous one returned
    assert all(ok for *_, ok in rig.fake.heartbeats)
    assert beat.armed
    assert not beat.expired()


def test_heartbeat_id_mismatch_adopts_the_venues_id_and_resends_once() -> None:
    rig = Rig()
    rig.broker.connect()
    beat = rig.broker.order_heartbeat()
    assert beat.send().status == "accepted"
    expected = rig.fake.heartbeat_id
    beat.heartbeat_id = "stale-id-from-another-process"
    result = beat.send()
    assert result.status == "accepted"
    assert [(s, ok) for _, s, ok in rig.fake.heartbeats][-2:] == [
        ("stale-id-from-another-process", False), (expected, True)]
    assert beat.sent == 3


def test_a_lost_heartbeat_is_reported_not_retried() -> None:
    rig = Rig()
    rig.broker.connect()

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    lost = ClobHttp("http://venue.invalid", "http://venue.invalid/gamma",
                    transport=httpx.MockTransport(refuse), clock=rig.sim)
    lost.auth = rig.http.auth
    beat = OrderHeartbeat(lost, monotonic=rig.sim.monotonic)
    result = beat.send()
    assert result.status == "unknown"
    assert beat.sent == 1


def test_resting_order_lives_with_heartbeats_and_is_cancelled_10s_after_they_stop() -> None:
    rig = Rig()
    rig.broker.connect()
    market = rig.fake.add_market("btc-updown-15m-r", window_start=rig.sim.now() - 300)
    order_hash = rig.rest_order(market)
    beat = rig.broker.order_heartbeat()
    for _ in range(12):  # a minute of heartbeats every 5 s
        assert beat.send().status == "accepted"
        rig.sim.sleep(5.0)
    assert rig.fake.live_orders() == [order_hash]
    rig.sim.sleep(6.0)  # 11 s since the last accepted send
    assert beat.expired()
    found = rig.broker.lookup_order(order_hash)  # any request: the venue's deadline passed
    assert found is not None
    assert found.status.endswith("CANCELED")
    assert rig.fake.cancelled_by_expiry == [order_hash]
    assert rig.fake.heartbeat_expiries == 1
    # A later accepted send registers again (with the stale id: the venue had disarmed).
    assert beat.send().status == "accepted"
    assert not beat.expired()


def test_cancel_all_at_shutdown_leaves_nothing_resting() -> None:
    rig = Rig()
    rig.broker.connect()
    market = rig.fake.add_market("btc-updown-15m-s", window_start=rig.sim.now() - 300)
    hashes = {rig.rest_order(market), rig.rest_order(market)}
    assert rig.broker.send_heartbeat().status == "accepted"
    assert set(rig.broker.cancel_all()) == hashes
    assert rig.fake.live_orders() == []
    rig.sim.sleep(30.0)
    rig.broker.lookup_order(next(iter(hashes)))
    assert rig.fake.cancelled_by_expiry == []  # nothing was left for the deadline


def test_heartbeat_loop_sends_until_stopped() -> None:
    rig = Rig()
    rig.broker.connect()
    loop = HeartbeatLoop(rig.broker.order_heartbeat(), interval_s=0.01)

    async def run() -> None:
        task = asyncio.create_task(loop.run())
        for _ in range(500):
            if loop.beat.accepted >= 3:
                break
            await asyncio.sleep(0.01)
        loop.stop()
        await asyncio.wait_for(task, timeout=5.0)

    asyncio.run(run())
    assert loop.beat.accepted >= 3
    sent = [s for _, s, _ok in rig.fake.heartbeats]
    assert sent[0] == ""
    assert all(ok for *_, ok in rig.fake.heartbeats)
    assert loop.expiries == 0
