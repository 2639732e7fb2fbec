"""Live resting (maker) orders on the fake CLOB (issue 16): post-only GTD limit buys signed as
limit orders, cancels single and market-wide, partial fills, GTD expiry, heartbeat expiry,
start-up recovery, and 1,000 randomized maker cycles with cancel races, disconnects and partial
fills (no order resting after its cut-off or the kill switch, exposure within its limit, the
journal equal to the venue's ledger).

In-process (the fake venue behind an ``httpx.MockTransport``, simulated time).
"""

from __future__ import annotations

import json
import random
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from fakeclob import FakeClob, FakeMarket
from livekit import SimTime, journal_vs_venue, snapshot_for

from agent.maker_live import RunnerDesk
from core.guard import GuardLimits
from core.maker import MakerParams
from core.records import AIAnalysis, FairValueEstimate, RiskAssessment, TraderDecision
from tools.execution import send_resting_order
from tools.journal import Journal
from tools.journal.resting import RestingOrders
from tools.maker import MakerDesk
from tools.polymarket.broker import LiveClobBroker
from tools.polymarket.heartbeat import OrderHeartbeat
from tools.polymarket.http import ApiCreds, ClobHttp
from tools.polymarket.orders import OrderSigner
from tools.polymarket.resting import LiveRestingBroker, RestingVenueStore

START = 1_790_000_000.0
ACCOUNT = "live:test"



class CountingSigner(OrderSigner):
    market_signs = 0
    limit_signs = 0

    def sign_market_buy(self, *a: Any, **kw: Any) -> Any:
        CountingSigner.market_signs += 1
        return super().sign_market_buy(*a, **kw)

    def sign_limit_buy(self, *a: Any, **kw: Any) -> Any:
        CountingSigner.limit_signs += 1
        return super().sign_limit_buy(*a, **kw)


class Venue:
    """A fake CLOB, a connected live broker and its resting broker on one journal."""

    def __init__(self, journal: Journal | None = None, sim: SimTime | None = None,
                 fake: FakeClob | None = None, key: Any = None) -> None:
        self.sim = sim or SimTime(START)
        self.key = key or Account.create()
        self.fake = fake or FakeClob(address=self.key.address, clock=self.sim.now)
        creds = self.fake.issue_creds()
        signer = CountingSigner(self.key.key.hex(), chain_id=137, signature_type=0,
                                funder=None)
        http = ClobHttp("http://venue.invalid", "http://venue.invalid/gamma",
                        transport=self.fake.transport(), clock=self.sim)
        self.journal = journal or Journal(":memory:")
        self.clob = LiveClobBroker(
            signer, http, creds=ApiCreds(creds["apiKey"], creds["secret"],
                                         creds["passphrase"]),
            store=self.journal, clock=self.sim, monotonic=self.sim.monotonic,
            sleep=self.sim.sleep, lookup_timeout_s=10.0, not_found_grace_s=2.0,
            poll_interval_s=0.5)
        self.clob.connect()
        self.broker = LiveRestingBroker(self.clob, RestingVenueStore(self.journal))
        self.run_id = self.journal.start_run(account=ACCOUNT, mode="live", dataset=None,
                                             config={}, started_ts=self.sim.now())

    def market(self, slug: str, **kw: Any) -> FakeMarket:
        kw.setdefault("window_start", self.sim.now() - 300.0)
        return self.fake.add_market(slug, **kw)

    def rest(self, market: FakeMarket, order_id: str, *, price: float, shares: float = 20.0,
             side: str = "up", expires_at: float | None = None) -> Any:
        return send_resting_order(
            order_id=order_id, decision_id=order_id.split("#")[0],
            snapshot=snapshot_for(market, self.sim.now()), side=side,  # type: ignore[arg-type]
            price=price, shares=shares,
            expires_at=market.window_end - 60.0 if expires_at is None else expires_at,
            execution_style="maker", replaces=None, broker=self.broker,
            journal=RestingOrders(self.journal), account=ACCOUNT, run_id=self.run_id,
            stop_file=Path("/nonexistent/STOP"), now=self.sim.now())


def test_post_only_gtd_limit_buy_is_signed_as_a_limit_order() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-a", up_ask="0.55")
    before = CountingSigner.market_signs
    order = v.rest(m, "d1#r1", price=0.52, shares=20.0)
    assert order.status == "resting"
    assert CountingSigner.market_signs == before  # never through the market-order signer
    body = json.loads(v.fake.order_bodies[-1])
    assert body["orderType"] == "GTD"
    assert body["postOnly"] is True
    # The venue expires a GTD order one minute before its wire expiration.
    assert int(body["order"]["expiration"]) == int(m.window_end - 60.0) + 60
    (h,) = v.fake.live_orders()
    fo = v.fake.orders[h]
    # The SDK's limit amounts: 20 shares at exactly 0.52 (10.40 dollars).
    assert (fo.maker_amount, fo.taker_amount) == (10_400_000, 20_000_000)
    assert v.fake.bad_signatures == 0
    assert v.fake.posts[-1].recovered_signer == v.key.address
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []


def test_post_only_that_would_cross_is_rejected_not_filled() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-b", up_ask="0.55")
    order = v.rest(m, "d1#r1", price=0.55)
    assert order.status == "rejected"
    assert (order.reason or "").startswith("post_only_would_cross")
    assert v.fake.live_orders() == []
    assert v.fake.maker_filled_by_hash() == {}
    assert v.fake.trades == []
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []


def test_gtd_expiration_too_near_is_raised_to_the_venue_minimum() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-c", window_start=v.sim.now() - 800.0)
    order = v.rest(m, "d1#r1", price=0.50, expires_at=v.sim.now() + 30.0)
    assert order.status == "resting"
    body = json.loads(v.fake.order_bodies[-1])
    assert int(body["order"]["expiration"]) >= v.sim.now() + 180


def test_partial_fills_race_the_cancel_and_are_all_journaled() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-d")
    v.rest(m, "d1#r1", price=0.50, shares=30.0)
    (h,) = v.fake.live_orders()
    assert v.fake.fill_resting(h, Decimal("7")) == Decimal("7")
    seen = v.broker.lookup_resting("d1#r1")
    assert seen is not None
    assert (seen.status, seen.filled_shares) == ("resting", 7.0)
    # A taker hits the order just before the cancel arrives: the cancel's answer holds it.
    v.fake.fill_resting(h, Decimal("5"))
    final = v.broker.cancel("d1#r1", now=v.sim.now())
    assert final is not None
    assert (final.status, final.filled_shares) == ("cancelled", 12.0)
    assert [f.shares for f in final.fills] == [7.0, 5.0]
    RestingOrders(v.journal).record_state(final, ts=v.sim.now())
    assert v.fake.live_orders() == []
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []


def test_a_full_fill_ends_the_order() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-e")
    v.rest(m, "d1#r1", price=0.50, shares=10.0)
    (h,) = v.fake.live_orders()
    assert v.fake.fill_resting(h, Decimal("25")) == Decimal("10")
    seen = v.broker.lookup_resting("d1#r1")
    assert seen is not None
    assert (seen.status, seen.filled_shares, seen.open_shares) == ("filled", 10.0, 0.0)


def test_cancel_all_of_a_market_leaves_other_markets_alone() -> None:
    v = Venue()
    a, b = v.market("btc-updown-15m-f"), v.market("btc-updown-15m-g")
    v.rest(a, "a#r1", price=0.50)
    v.rest(a, "a#r2", price=0.40, side="down")
    v.rest(b, "b#r1", price=0.50)
    finals = v.broker.cancel_all(a.slug, now=v.sim.now())
    assert sorted((o.order_id, o.status) for o in finals) == [("a#r1", "cancelled"),
                                                              ("a#r2", "cancelled")]
    assert [o.order_id for o in v.broker.open_orders()] == ["b#r1"]


def test_gtd_order_expires_at_the_venue_a_minute_before_its_expiration() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-h")
    v.rest(m, "d1#r1", price=0.50, expires_at=v.sim.now() + 400.0)
    v.sim.sleep(399.0)
    assert v.broker.lookup_resting("d1#r1").status == "resting"  # type: ignore[union-attr]
    v.sim.sleep(2.0)
    assert v.broker.lookup_resting("d1#r1").status == "cancelled"  # type: ignore[union-attr]
    assert len(v.fake.expired_gtd) == 1


def test_heartbeat_expiry_cancels_resting_orders_and_lookup_says_so() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-i")
    v.rest(m, "d1#r1", price=0.50)
    beat = OrderHeartbeat(v.clob.http, monotonic=v.sim.monotonic)
    assert beat.send().status == "accepted"
    v.sim.sleep(11.0)  # no heartbeat for longer than the venue's 10 s
    assert beat.expired()
    seen = v.broker.lookup_resting("d1#r1")
    assert seen is not None
    assert seen.status == "cancelled"
    assert v.fake.heartbeat_expiries == 1


def test_a_lost_post_answer_is_looked_up_never_resent() -> None:
    v = Venue()
    m = v.market("btc-updown-15m-j")
    v.fake.inject("timeout_after_kill")  # the engine takes it (rests), the answer is lost
    order = v.rest(m, "d1#r1", price=0.50)
    assert order is not None
    assert order.status == "resting"
    v.fake.inject("timeout_lost")  # never reaches the engine
    lost = v.rest(m, "d2#r1", price=0.49, side="down")
    assert lost is not None
    assert lost.status == "rejected"
    assert (lost.reason or "").startswith("not_found_at_venue")
    assert max(v.fake.posts_per_hash().values()) == 1
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []


# --- the maker desk on the live broker ----------------------------------------------------

def _fair(up: float) -> FairValueEstimate:
    return FairValueEstimate(fair_up=up, price=100_010.0, price_to_beat=100_000.0,
                             price_to_beat_verified=True, time_to_close_s=400.0,
                             sigma_per_sqrt_s=5e-5, log_moneyness=1e-4)


def _trader(side: str = "up") -> TraderDecision:
    return TraderDecision(analysis=AIAnalysis(decision=side, confidence=80,  # type: ignore[arg-type]
                                              reasoning="x", risk_level="low"),
                          decided_by="policy")


def _desk(v: Venue, stop: Path, *, max_position: float = 100.0) -> RunnerDesk:
    limits = GuardLimits(max_position_usd=max_position, min_confidence=50,
                         max_orders_per_day=100_000, daily_loss_limit_usd=1e9,
                         no_entry_first_s=0.0)
    desk = MakerDesk(style="maker", params=MakerParams(margin=0.02, min_replace_interval_s=2.0),
                     broker=v.broker, limits=limits, stop_file=stop, account=ACCOUNT,
                     run_id=v.run_id, journal=v.journal)
    return RunnerDesk(desk)


def _exposure_usd(fake: FakeClob, market: FakeMarket) -> Decimal:
    """What the venue says the window could cost: open resting dollars plus filled dollars."""
    total = Decimal(0)
    for o in fake.orders.values():
        if o.token_id not in (market.up_token, market.down_token) or o.order_type != "GTD":
            continue
        price = Decimal(o.maker_amount) / Decimal(o.taker_amount)
        size = Decimal(o.taker_amount) / Decimal(1_000_000)
        total += (size if o.status == "LIVE" else o.size_matched) * price
    return total


def test_thousand_randomized_maker_cycles(tmp_path: Path) -> None:
    rng = random.Random(20261216)
    v = Venue(journal=Journal(tmp_path / "journal.db"))
    stop = tmp_path / "STOP"
    rdesk = _desk(v, stop)
    beat = OrderHeartbeat(v.clob.http, monotonic=v.sim.monotonic)
    cycles = 1000
    counts: Counter[str] = Counter()
    after_cutoff: list[str] = []
    after_kill: list[str] = []
    over_limit: list[tuple[str, Decimal]] = []
    for i in range(cycles):
        m = v.market(f"btc-updown-15m-x{i}", window_start=v.sim.now() - 300.0,
                     up_ask=rng.choice(["0.45", "0.52", "0.60"]),
                     down_ask=rng.choice(["0.42", "0.50", "0.57"]))
        fair_up = float(m.asks[m.up_token][0][0]) + rng.choice([0.03, 0.05, 0.08])
        risk = RiskAssessment(risk_level="low", stake_usd=float(rng.randint(10, 100)),
                              decided_by="policy")
        killed = rng.random() < 0.05
        disconnect = rng.random() < 0.1
        halted = False
        rdesk.halted = None
        last_beat = v.sim.t
        beat.send()
        for tick in range(rng.randint(3, 12)):
            now = v.sim.now()
            snap = snapshot_for(m, now)
            fair = _fair(min(0.97, fair_up + rng.uniform(-0.04, 0.04)))
            if tick == 0 or rng.random() < 0.3:
                verdict = rdesk.on_decision(snapshot=snap, fair=fair, trader=_trader(),
                                            risk=risk, decision_id=f"x{i}@{tick}", now=now)
                if verdict is not None and verdict.approved:
                    counts["approved"] += 1
            # Takers sell into whatever rests: partial or full fills, between our calls.
            for h in v.fake.live_orders():
                if rng.random() < 0.35:
                    got = v.fake.fill_resting(h, Decimal(rng.choice(["1", "3", "5", "50"])))
                    counts["fills"] += int(got > 0)
            if rng.random() < 0.3 and not v.fake.cancel_faults:
                # The next cancel's answer is lost, whether or not the venue did it.
                v.fake.cancel_faults.append(rng.choice(["done", "not_done"]))
            if rng.random() < 0.1:
                v.fake.lookup_failures = rng.choice([1, 2])
                counts["lookup_failures"] += 1
            rdesk.on_book(snapshot_for(m, now), fair, now)
            exposure = _exposure_usd(v.fake, m)
            if exposure > Decimal("100.000001"):
                over_limit.append((m.slug, exposure))
            if killed and tick == 1:
                stop.write_text("stop")
                rdesk.on_book(snapshot_for(m, v.sim.now()), fair, v.sim.now())
                after_kill += [h for h in v.fake.live_orders()]
                counts["kills"] += 1
            # Heartbeats every 5 s; a disconnect stops them past the venue's 10 s.
            step = rng.uniform(1.0, 6.0) if not (disconnect and tick == 1) else 11.0
            v.sim.sleep(step)
            if v.sim.t - last_beat >= 5.0 and not (disconnect and tick == 1):
                beat.send()
                last_beat = v.sim.t
            if beat.expired() and not halted:
                halted = True
                counts["heartbeat_failures"] += 1
                v.fake.lookup_failures = 0
                rdesk.halt(v.sim.now(), reason="heartbeat expired")
                beat.send()  # re-register for the next cycle
                last_beat = v.sim.t
        # The window's cut-off.  The heartbeat loop keeps beating through the quiet time
        # in between (unless this cycle's disconnect halted it already), so the cut-off's
        # cancels - not the venue's heartbeat expiry - must clear the book.
        v.fake.lookup_failures = 0
        # Half a second before the venue's GTD expiry (set at the cut-off): the runner's
        # cancels, not the backstop, end the orders.
        cutoff = m.window_end - 60.0 - 0.5
        v.sim.t = max(v.sim.t, cutoff - START)
        if not halted:
            v.fake.last_heartbeat = v.fake.now()
            beat.last_accepted = v.sim.t
        rdesk.close_window(m.slug, v.sim.now())
        v.sim.sleep(1.0)  # past the cut-off: nothing of this window may rest
        left = [h for h in v.fake.live_orders()
                if v.fake.orders[h].token_id in (m.up_token, m.down_token)]
        after_cutoff += left
        if stop.exists():
            stop.unlink()
        v.sim.sleep(1.0)
    rdesk.shutdown(v.sim.now())
    entries = v.journal.intents(account=ACCOUNT)
    posted = len(v.fake.posts)
    assert after_cutoff == []
    assert after_kill == []
    assert over_limit == []
    assert rdesk.left_resting == []
    assert v.fake.live_orders() == []
    assert max(v.fake.posts_per_hash().values()) == 1
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []
    # One entry per window at most, and every window with maker fills has its entry.
    by_window = Counter(e.market_id for e in entries)
    assert max(by_window.values()) == 1
    filled_windows = {r.market_id for r in RestingOrders(v.journal).rows(account=ACCOUNT)
                      if r.filled_shares > 0}
    assert filled_windows == set(by_window)
    assert counts["fills"] > 300
    faults_used = v.fake.cancel_faults_used
    assert faults_used > 100
    assert counts["heartbeat_failures"] > 30
    assert counts["kills"] > 20
    print(f"\n{cycles} maker cycles: {posted} orders posted, {dict(counts)}, "
          f"{faults_used} cancel answers lost, "
          f"{len(by_window)} windows entered, {len(v.fake.expired_gtd)} GTD expiries, "
          f"{v.fake.heartbeat_expiries} heartbeat expiries, {v.fake.cancel_requests} cancel "
          "requests; left resting after cut-off 0, after kill switch 0, over the limit 0, "
          "journal = venue")


@pytest.mark.parametrize("kill_switch", [False, True])
def test_recovery_adopts_or_cancels_never_resends(tmp_path: Path, kill_switch: bool) -> None:
    """A process died with orders resting: the next one finds them from the journal and the
    venue, adopts the one whose window is still open (cancels it when the kill switch is on),
    closes the window past its cut-off (the venue's GTD expiry ended that order at the cut-off;
    its fill becomes the window's entry), calls one without a journaled hash never posted, and
    sends nothing again."""
    path = tmp_path / "journal.db"
    first = Venue(journal=Journal(path))
    live = first.market("btc-updown-15m-live")
    late = first.market("btc-updown-15m-late", window_start=first.sim.now() - 700.0)
    first.rest(live, "live#r1", price=0.50)
    first.rest(late, "late#r1", price=0.50)
    (h_late,) = [h for h, o in first.fake.orders.items() if o.token_id == late.up_token]
    first.fake.fill_resting(h_late, Decimal("4"))
    # An intent journaled, the process killed before signing: never posted.
    RestingOrders(first.journal).record_intent(
        account=ACCOUNT, run_id=first.run_id, decision_id="ghost", order_id="ghost#r1",
        market_id=live.slug, side="down", execution_style="maker", price=0.4, shares=10,
        post_only=True, expires_at=live.window_end - 60.0, replaces=None, ts=first.sim.now())
    first.journal.close()
    posts = len(first.fake.posts)

    first.sim.sleep(200.0)  # "late" is past its cut-off now, "live" is not
    second = Venue(journal=Journal(path), sim=first.sim, fake=first.fake, key=first.key)
    if kill_switch:
        (tmp_path / "STOP").write_text("stop")
    rdesk = _desk(second, tmp_path / "STOP")
    report = rdesk.recover(second.journal, account=ACCOUNT, now=second.sim.now())
    assert report.ok
    assert report.adopted == ([] if kill_switch else ["live#r1"])
    assert report.cancelled == (["live#r1"] if kill_switch else [])
    assert report.never_posted == ["ghost#r1"]
    assert report.closed == [late.slug]
    assert second.fake.expired_gtd == [h_late]
    assert len(second.fake.posts) == posts  # nothing sent again
    if kill_switch:
        assert second.fake.live_orders() == []
        assert journal_vs_venue(second.journal, second.fake, ACCOUNT) == []
        return
    # The late window's fill became its one entry; the adopted order is the desk's own.
    (entry,) = second.journal.intents(account=ACCOUNT)
    assert entry.market_id == late.slug
    assert rdesk.has_open()
    assert rdesk.entered(late.slug)
    # The adopted window gets no second order while its order rests.
    snap = snapshot_for(live, second.sim.now())
    rdesk.on_decision(snapshot=snap, fair=_fair(0.60), trader=_trader(),
                      risk=RiskAssessment(risk_level="low", stake_usd=10.0,
                                          decided_by="policy"),
                      decision_id="after", now=second.sim.now())
    assert len(second.fake.live_orders()) == 1
    rdesk.shutdown(second.sim.now())
    assert second.fake.live_orders() == []
    assert journal_vs_venue(second.journal, second.fake, ACCOUNT) == []


def test_a_foreign_open_order_is_cancelled_at_recovery(tmp_path: Path) -> None:
    v = Venue(journal=Journal(tmp_path / "j.db"))
    m = v.market("btc-updown-15m-k")
    other = Venue(sim=v.sim, fake=v.fake, key=v.key)  # another journal, same API key
    other.rest(m, "x#r1", price=0.45)
    rdesk = _desk(v, tmp_path / "STOP")
    report = rdesk.recover(v.journal, account=ACCOUNT, now=v.sim.now())
    assert len(report.foreign_cancelled) == 1
    assert v.fake.live_orders() == []
