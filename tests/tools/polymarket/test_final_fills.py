"""Final fills and redemption (issue 13): matches are provisional until their trades are
CONFIRMED or FAILED on chain, orders and trades are read again after every disconnect,
ghost fills are adopted from the venue's trades, and every winning position is redeemed once.

The 1,000-run test mixes POST timeouts, ghost fills (the engine matched, the answer said
not filled), lookups failing, disconnects (the session reads orders and trades again before
its next decision), trades that stay MATCHED / MINED for a while, turn CONFIRMED or FAILED,
markets resolving, and relayer transactions that confirm, fail or lose their answer.
In-process (``httpx.MockTransport``) with simulated time, like ``test_live_timeouts``.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

import pytest
from eth_account import Account
from fakeclob import FakeClob, FakeMarket, FakeTrade, RelayerTx
from livekit import SimTime, execute_approved, journal_vs_venue, snapshot_for
from redeemkit import FakeSdkClient, SdkRejected

from core.fees import dated_fee_schedule
from core.records import Side, Verdict
from graphs.context import Context
from tools.journal import Journal
from tools.polymarket.broker import LiveClobBroker
from tools.polymarket.http import ApiCreds, ClobHttp
from tools.polymarket.orders import OrderSigner
from tools.polymarket.reconcile import recheck_provisional, reconcile
from tools.polymarket.redeem import SdkRedeemer
from tools.polymarket.settlement import settle_resolved
from tools.redemption import redeem_due

RUNS = 1000
SEED = 20261213
FAULTS = ("timeout_lost", "timeout_after_fill", "timeout_after_kill", "delayed",
          "http_500_after_fill", "ghost_fill", "ghost_fill", None, None, None)
START = 1_790_000_000.0
ACCOUNT = "live:test"



class Venue:
    """The fake venue, a connected live broker on it, the journal and the redeemer."""

    def __init__(self, sim: SimTime, *, provisional: bool = True) -> None:
        key = Account.create()
        self.sim = sim
        self.fake = FakeClob(address=key.address, clock=sim.now)
        self.fake.provisional_trades = provisional
        creds = self.fake.issue_creds()
        signer = OrderSigner(key.key.hex(), chain_id=137, signature_type=0, funder=None,
                             clob_url="http://venue.invalid")
        http = ClobHttp("http://venue.invalid", "http://venue.invalid/gamma",
                        transport=self.fake.transport(), clock=sim)
        self.journal = Journal(":memory:")
        self.broker = LiveClobBroker(
            signer, http, creds=ApiCreds(creds["apiKey"], creds["secret"], creds["passphrase"]),
            store=self.journal, clock=sim, monotonic=sim.monotonic, sleep=sim.sleep,
            lookup_timeout_s=10.0, not_found_grace_s=2.0, poll_interval_s=0.5)
        self.broker.connect()
        self.run_id = self.journal.start_run(account=ACCOUNT, mode="live", dataset=None,
                                             config={}, started_ts=sim.now())
        self.ctx = Context(account=ACCOUNT, journal=self.journal, run_id=self.run_id,
                           broker=self.broker, clock=sim, stop_file="/nonexistent/STOP")
        self.sdk = FakeSdkClient(self.fake)
        self.redeemer = SdkRedeemer(self.sdk, condition_of=self.condition_of,
                                    transaction_of=self.sdk.transaction,
                                    rejections=(SdkRejected,))

    def condition_of(self, market_id: str) -> str:
        return self.broker.market(market_id, fallback_fees=dated_fee_schedule(
            self.sim.now())).condition_id

    def buy(self, market: FakeMarket, rng: random.Random, decision_id: str) -> Any:
        side: Side = rng.choice(["up", "down"])
        ask = float(market.asks[market.up_token if side == "up" else market.down_token][0][0])
        verdict = Verdict(approved=True, side=side, stake_usd=float(rng.randint(5, 60)),
                          worst_price=round(ask + 0.02, 2))
        return execute_approved({"snapshot": snapshot_for(market, self.sim.now()),
                                 "verdict": verdict, "decision_id": decision_id}, self.ctx)

    def reread(self, *, audit_window_s: float = 2 * 86400.0) -> Any:
        """After a reconnect or restart: orders and trades read again."""
        return reconcile(self.journal, self.broker, account=ACCOUNT, clock=self.sim,
                         monotonic=self.sim.monotonic, audit_window_s=audit_window_s)

    def settle_and_redeem(self) -> Any:
        """The live runner's sweep: provisional fills re-checked, settled, redeemed."""
        now = self.sim.now()
        recheck_provisional(self.journal, self.broker, account=ACCOUNT, now=now)
        settle_resolved(self.journal, self.broker_market, account=ACCOUNT, now=now)
        return redeem_due(self.journal, self.redeemer, account=ACCOUNT, now=now)

    def broker_market(self, market_id: str) -> Any:
        return self.broker.market(market_id, fallback_fees=dated_fee_schedule(self.sim.now()))


def test_a_match_is_provisional_until_confirmed_and_failed_reverses_it() -> None:
    sim = SimTime(START)
    v = Venue(sim)
    rng = random.Random(1)
    markets = [v.fake.add_market(f"btc-updown-15m-f{i}", window_start=sim.now() - 300.0)
               for i in range(2)]
    reports = [v.buy(m, rng, f"dec-{i}") for i, m in enumerate(markets)]
    assert [r.status for r in reports] == ["filled", "filled"]
    assert [r.final for r in reports] == [False, False]
    view = v.journal.ledger_view(account=ACCOUNT, day_start=0.0, now=sim.now())
    # Exposure from the moment of the match: windows entered, orders counted, cost open.
    assert view.provisional_fills == 2
    assert view.orders_today == 2
    assert len(view.entered_market_ids) == 2
    cost = sum(r.notional_usd + r.fee_usd for r in reports)
    assert view.provisional_exposure_usd == pytest.approx(cost, abs=1e-6)
    # A provisional fill is no position yet: a resolved market settles nothing.
    for m in markets:
        v.fake.resolve(m.slug, "up")
    assert v.settle_and_redeem().confirmed == []
    assert v.journal.settlements(account=ACCOUNT) == []
    # MINED is still provisional; then one CONFIRMED, one FAILED.
    v.fake.settle_trades(lambda t: "MINED")
    assert v.reread().provisional_fills == [reports[0].order_id, reports[1].order_id]
    balance_before = v.fake.balance
    v.fake.settle_trades(lambda t: "CONFIRMED" if t.market == markets[0].condition_id
                         else "FAILED")
    report = v.reread()
    assert report.ok
    assert report.confirmed_fills == [reports[0].order_id]
    assert report.failed_fills == [reports[1].order_id]
    assert v.fake.balance == balance_before + int(reports[1].notional_usd * 1_000_000)
    failed = v.journal.fill(reports[1].order_id)
    assert failed is not None
    assert failed.state == "failed"
    assert failed.matched_shares == reports[1].shares  # the match kept for the audit trail
    execs = {e.order_id: e for e in v.journal.executions(account=ACCOUNT)}
    assert execs[reports[1].order_id].status == "killed"
    assert execs[reports[1].order_id].reason is not None
    assert str(execs[reports[1].order_id].reason).startswith("trades_failed")
    assert [r.outcome for r in v.journal.reconciliations(account=ACCOUNT)
            if r.order_id == reports[1].order_id] == ["fill_failed"]
    view = v.journal.ledger_view(account=ACCOUNT, day_start=0.0, now=sim.now())
    assert view.provisional_fills == 0
    assert view.orders_today == 2
    # Settlement and redemption: the confirmed one only; the failed one has no P&L.
    redeemed = v.settle_and_redeem()
    settled = v.journal.settlements(account=ACCOUNT)
    assert [p.order_id for p in settled] == [reports[0].order_id]
    assert redeemed.submitted == [markets[0].slug]
    v.fake.settle_relayer(lambda tx: "STATE_CONFIRMED")
    assert [r.order_id for r in v.settle_and_redeem().confirmed] == [reports[0].order_id]
    assert v.fake.redemption_payouts == [(markets[0].condition_id,
                                          Decimal(repr(reports[0].shares)))]
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []


def test_ghost_fill_is_adopted_on_the_next_reread() -> None:
    sim = SimTime(START)
    v = Venue(sim, provisional=False)
    market = v.fake.add_market("btc-updown-15m-ghost", window_start=sim.now() - 300.0)
    v.fake.inject("ghost_fill")
    report = v.buy(market, random.Random(2), "dec-ghost")
    assert report.status == "killed"  # what the answer said
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) != []
    again = v.reread()
    assert again.ok
    assert again.adopted_fills == [report.order_id]
    assert journal_vs_venue(v.journal, v.fake, ACCOUNT) == []
    fill = v.journal.fill(report.order_id)
    assert fill is not None
    assert fill.state == "confirmed"
    assert [r.outcome for r in v.journal.reconciliations(account=ACCOUNT)] == ["ghost_fill"]


def test_failed_redemption_is_retried_and_a_lost_answer_never_pays_twice() -> None:
    sim = SimTime(START)
    v = Venue(sim, provisional=False)
    rng = random.Random(3)
    a, b = (v.fake.add_market(f"btc-updown-15m-rd{i}", window_start=sim.now() - 300.0)
            for i in range(2))
    ra, rb = v.buy(a, rng, "dec-a"), v.buy(b, rng, "dec-b")
    v.fake.resolve(a.slug, ra.side)
    v.fake.resolve(b.slug, rb.side)
    v.fake.relayer_lost_answers = 1  # a's submission goes out, its answer is lost
    first = v.settle_and_redeem()
    assert a.slug in first.waiting
    assert first.submitted == [b.slug]
    v.fake.settle_relayer(lambda tx: "STATE_CONFIRMED" if tx.condition_id == a.condition_id
                          else "STATE_FAILED")
    second = v.settle_and_redeem()
    assert second.failed == [b.slug]
    assert a.slug in second.waiting
    sim.sleep(121.0)
    third = v.settle_and_redeem()
    # a: the venue holds no balance any more -> confirmed without a new transaction.
    assert [r.order_id for r in third.confirmed] == [ra.order_id]
    assert third.submitted == [b.slug]  # b retried after its failure
    v.fake.settle_relayer(lambda tx: "STATE_CONFIRMED")
    assert [r.order_id for r in v.settle_and_redeem().confirmed] == [rb.order_id]
    assert v.settle_and_redeem().confirmed == []  # nothing left, nothing twice
    assert v.fake.submits_per_condition == {a.condition_id: 1, b.condition_id: 2}
    paid = Counter(c for c, amount in v.fake.redemption_payouts if amount > 0)
    assert paid == {a.condition_id: 1, b.condition_id: 1}
    states = {r.order_id: (r.state, r.attempts) for r in v.journal.redemptions(account=ACCOUNT)}
    assert states == {ra.order_id: ("confirmed", 1), rb.order_id: ("confirmed", 2)}


def _trade_fate(rng: random.Random) -> Any:
    def decide(t: FakeTrade) -> str:
        return rng.choices(["CONFIRMED", "FAILED", "MINED", "RETRYING", t.status],
                           weights=[70, 8, 8, 4, 10])[0]
    return decide


def _relayer_fate(rng: random.Random) -> Any:
    def decide(tx: RelayerTx) -> str:
        return rng.choices(["STATE_CONFIRMED", "STATE_FAILED", "STATE_NEW"],
                           weights=[75, 15, 10])[0]
    return decide


def test_thousand_randomized_runs_final_fills_ghosts_disconnects_and_redemptions() -> None:
    rng = random.Random(SEED)
    sim = SimTime(START)
    v = Venue(sim)
    fake, journal = v.fake, v.journal
    markets: list[FakeMarket] = []
    figures: Counter[str] = Counter()
    disconnected = False
    for i in range(RUNS):
        # Before the next decision: after a disconnect, orders and trades are read again;
        # an order whose outcome is unknown is reconciled first (as agent.autorun does).
        if disconnected:
            report = v.reread(audit_window_s=900.0)
            figures["rereads"] += 1
            figures["adopted_on_reread"] += len(report.adopted_fills)
            disconnected = False
        elif journal.pending_intents(account=ACCOUNT, include_errors=True):
            reconcile(journal, v.broker, account=ACCOUNT, clock=sim, audit=False,
                      monotonic=sim.monotonic)
        fault = rng.choice(FAULTS)
        market = fake.add_market(f"btc-updown-15m-r{i}", window_start=sim.now() - 300.0,
                                 up_ask=rng.choice(["0.45", "0.55", "0.62"]),
                                 down_ask=rng.choice(["0.40", "0.47", "0.55"]),
                                 depth=rng.choice(["1000", "1000", "1000", "8"]))
        markets.append(market)
        if fault is not None:
            fake.inject(fault)
        fake.lookup_failures = rng.choices([0, 3, 10_000], weights=[80, 12, 8])[0]
        execution = v.buy(market, rng, f"dec-{i}")
        fake.lookup_failures = 0
        figures[f"fault:{fault}"] += 1
        figures[f"first:{execution.status}"] += 1
        disconnected = rng.random() < 0.05
        # The chain moves on; old windows resolve, get settled and redeemed.
        fake.settle_trades(_trade_fate(rng))
        if i % 10 == 9:
            for m in markets[max(0, i - 40):i - 20]:
                if not m.closed:
                    fake.resolve(m.slug, rng.choice(["up", "down"]))
            fake.relayer_lost_answers = rng.choices([0, 1], weights=[85, 15])[0]
            v.settle_and_redeem()
            fake.settle_relayer(_relayer_fate(rng))
        sim.sleep(1.0)

    # Drain: the chain finishes, a restart reads everything again, every window resolves,
    # redemption is swept until nothing is owed (the relayer keeps failing some at random).
    fake.settle_trades(lambda t: rng.choice(["CONFIRMED", "FAILED"]))
    final = v.reread()
    assert final.ok, (final.unresolved, final.discrepancies[:5])
    for m in markets:
        if not m.closed:
            fake.resolve(m.slug, rng.choice(["up", "down"]))
    sweeps = 0
    while journal.redemptions(account=ACCOUNT, states=("pending", "submitted", "failed")) \
            or journal.unsettled_markets(account=ACCOUNT):
        sweeps += 1
        assert sweeps < 100
        fake.relayer_lost_answers = rng.choices([0, 1], weights=[85, 15])[0]
        v.settle_and_redeem()
        fake.settle_relayer(_relayer_fate(rng))
        sim.sleep(60.0)

    # 0 duplicate orders: one signature and one POST per decision.
    assert fake.post_count() == RUNS
    assert max(fake.posts_per_hash().values()) == 1
    # The journal equals the venue's ledger (failed trades are not fills on either side).
    assert journal_vs_venue(journal, fake, ACCOUNT) == []
    assert journal.pending_intents(account=ACCOUNT, include_errors=True) == []
    assert journal.fills(account=ACCOUNT, state="provisional") == []
    # No FAILED trade in P&L: every settled position's trades are all CONFIRMED, and every
    # fill whose trades all failed is a killed execution with no settlement.
    status = fake.trade_statuses()
    by_order: dict[str, list[str]] = {}
    signed = {s.order_id: s.order_hash for s in journal.signed_orders(account=ACCOUNT)}
    hashes = {h: o for o, h in signed.items()}
    for t in fake.trades:
        if t.taker_order_id in hashes:
            by_order.setdefault(hashes[t.taker_order_id], []).append(status[t.trade_id])
    settled = journal.settlements(account=ACCOUNT)
    for p in settled:
        assert set(by_order[p.order_id]) == {"CONFIRMED"}, p.order_id
    failed = journal.fills(account=ACCOUNT, state="failed")
    for f in failed:
        assert set(by_order[f.order_id]) == {"FAILED"}
    assert not {f.order_id for f in failed} & {p.order_id for p in settled}
    # Every winning position redeemed once: one confirmed row each, one non-zero payout per
    # winning condition at the venue, equal to the shares journaled.
    wins = {p.order_id: p for p in settled if p.payout_usd > 0}
    rows = journal.redemptions(account=ACCOUNT)
    assert {r.order_id for r in rows} == set(wins)
    assert {r.state for r in rows} == {"confirmed"}
    paid: dict[str, list[Decimal]] = {}
    for condition, amount in fake.redemption_payouts:
        if amount > 0:
            paid.setdefault(condition, []).append(amount)
    conditions = {fake.markets[p.market_id].condition_id: p for p in wins.values()}
    assert set(paid) == set(conditions)
    for condition, amounts in paid.items():
        assert amounts == [Decimal(repr(conditions[condition].shares))]
    figures.update({"fills_failed": len(failed), "settled": len(settled), "wins": len(wins),
                    "ghost_fills": sum(1 for r in journal.reconciliations(account=ACCOUNT)
                                       if r.outcome == "ghost_fill"),
                    "fill_failed_rows": sum(1 for r in journal.reconciliations(
                        account=ACCOUNT) if r.outcome == "fill_failed"),
                    "redemption_submits": sum(fake.submits_per_condition.values()),
                    "redemption_attempts": sum(r.attempts for r in rows),
                    "drain_sweeps": sweeps})
    assert figures["ghost_fills"] > 30
    assert figures["fills_failed"] > 30
    assert figures["rereads"] > 20
    assert figures["wins"] > 100
    assert figures["redemption_submits"] > figures["wins"]  # failures were retried
    print(f"\n{RUNS} runs: {dict(sorted(figures.items()))}")
