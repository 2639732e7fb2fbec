"""1,000 randomized order-path faults around the POST: timeouts where the venue never got the
order, filled it or killed it, "delayed" answers, 5xx before and after the engine, lookups that
fail for a while or for good.  Every run signs once and posts at most once; lookups resolve the
outcome within 10 s (venue time) or leave it to reconciliation, which resolves the rest.

In-process (the fake venue behind an ``httpx.MockTransport``, simulated time), so the whole
test takes seconds while exercising the real broker, journal and execute path.
"""

from __future__ import annotations

import random
from collections import Counter
from decimal import Decimal
from typing import Any

from eth_account import Account
from fakeclob import FakeClob
from livekit import SimTime, execute_approved, journal_vs_venue, snapshot_for

from core.records import Verdict
from graphs.context import Context
from tools.journal import Journal
from tools.polymarket.broker import LiveClobBroker
from tools.polymarket.http import ApiCreds, ClobHttp
from tools.polymarket.orders import OrderSigner
from tools.polymarket.reconcile import reconcile

RUNS = 1000
SEED = 20260901
FAULTS = ("timeout_lost", "timeout_after_fill", "timeout_after_kill", "delayed",
          "http_500_after_fill", "http_502_lost", None)
START = 1_790_000_000.0



class CountingSigner(OrderSigner):
    signs = 0

    def sign_market_buy(self, *a: Any, **kw: Any) -> Any:
        CountingSigner.signs += 1
        return super().sign_market_buy(*a, **kw)


def test_thousand_randomized_timeouts_no_duplicates_and_journal_equals_venue() -> None:
    rng = random.Random(SEED)
    sim = SimTime(START)
    key = Account.create()
    fake = FakeClob(address=key.address, clock=sim.now)
    creds = fake.issue_creds()
    signer = CountingSigner(key.key.hex(), chain_id=137, signature_type=0, funder=None,
                            clob_url="http://venue.invalid")
    http = ClobHttp("http://venue.invalid", "http://venue.invalid/gamma",
                    transport=fake.transport(), clock=sim)
    journal = Journal(":memory:")
    broker = LiveClobBroker(
        signer, http, creds=ApiCreds(creds["apiKey"], creds["secret"], creds["passphrase"]),
        store=journal, clock=sim, monotonic=sim.monotonic, sleep=sim.sleep,
        lookup_timeout_s=10.0, not_found_grace_s=2.0, poll_interval_s=0.5,
        max_snapshot_age_s=5.0)
    broker.connect()
    account = "live:test"
    run_id = journal.start_run(account=account, mode="live", dataset=None, config={},
                               started_ts=sim.now())
    ctx = Context(account=account, journal=journal, run_id=run_id, broker=broker, clock=sim,
                  stop_file="/nonexistent/STOP")

    outcomes: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    slow = []
    for i in range(RUNS):
        fault = rng.choice(FAULTS)
        depth = rng.choice(["1000", "1000", "1000", "8"])  # thin books make FOK kills
        market = fake.add_market(f"btc-updown-15m-r{i}", window_start=sim.now() - 300.0,
                                 up_ask=rng.choice(["0.45", "0.55", "0.62"]),
                                 down_ask=rng.choice(["0.40", "0.47", "0.55"]), depth=depth)
        if fault is not None:
            fake.inject(fault)
        # Sometimes the lookups fail for a while, sometimes for longer than the budget.
        fake.lookup_failures = rng.choices([0, 3, 10_000], weights=[70, 20, 10])[0]
        side = rng.choice(["up", "down"])
        ask = float(market.asks[market.up_token if side == "up" else market.down_token][0][0])
        verdict = Verdict(approved=True, side=side, stake_usd=float(rng.randint(5, 60)),
                          worst_price=round(ask + 0.02, 2))
        started = sim.monotonic()
        execution = execute_approved({"snapshot": snapshot_for(market, sim.now()),
                                      "verdict": verdict, "decision_id": f"dec-{i}"}, ctx)
        elapsed = sim.monotonic() - started
        outcomes[execution.status] += 1
        faults[str(fault)] += 1
        if execution.status != "error" and elapsed > 10.0 + 1e-9:
            slow.append((i, elapsed))
        fake.lookup_failures = 0
        sim.sleep(1.0)

    # Every run signed exactly once and posted exactly once.
    assert CountingSigner.signs == RUNS
    assert fake.post_count() == RUNS
    assert max(fake.posts_per_hash().values()) == 1
    # Resolved outcomes were resolved within the 10 s lookup budget.
    assert slow == []
    assert outcomes["filled"] > 200
    assert outcomes["killed"] > 200
    assert outcomes["error"] > 30
    # What lookups could not resolve, startup reconciliation does; nothing is left unknown.
    unknown_before = len(journal.pending_intents(account=account, include_errors=True))
    assert unknown_before == outcomes["error"]
    report = reconcile(journal, broker, account=account, clock=sim, monotonic=sim.monotonic)
    assert report.ok, (report.unresolved, report.discrepancies[:5])
    assert len(report.resolved) == unknown_before
    assert journal.pending_intents(account=account, include_errors=True) == []
    # The journal equals the venue's ledger, order by order; no POST after reconciliation.
    assert journal_vs_venue(journal, fake, account) == []
    assert fake.post_count() == RUNS
    filled_at_venue = sum(1 for s, _ in fake.filled_by_hash().values() if s > Decimal(0))
    assert filled_at_venue == sum(1 for e in journal.executions(account=account)
                                  if e.status == "filled")
    print(f"\n{RUNS} runs: faults {dict(faults)}; first answers {dict(outcomes)}; "
          f"{unknown_before} left to reconciliation, all resolved; duplicates 0")
