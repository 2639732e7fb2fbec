"""The live broker against a loopback fake CLOB V2 (real HTTP, real EIP-712 signatures).

Every order-path fault of reliability.md ends in a named state with exactly one POST, and
after each test the journal equals the venue's ledger (at most one order per decision and per
window, every posted hash journaled first, fills equal).  Synthetic markets only.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fakeclob import FakeClob, FakeMarket, serve
from livekit import execute_approved, journal_vs_venue, live_settings, snapshot_for

from agent.live import LiveSession, resolve_mode
from core.records import ExecutionReport, Side, Verdict
from core.settings import Settings
from graphs.graph import RECURSION_LIMIT, graph
from tools.journal import Journal
from tools.polymarket.orders import LiveSetupError

pytestmark = pytest.mark.server


class FakeMonotonic:
    """Wall-clock monotonic plus a jump, so back-off expiry is tested without waiting."""

    def __init__(self) -> None:
        self.jump = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.jump


@dataclass
class Venue:
    fake: FakeClob
    url: str
    key: LocalAccount
    tmp: Path

    def settings(self, **kw: Any) -> Settings:
        return live_settings(self.url, self.key.key.hex(), self.tmp, **kw)

    def market(self, n: int = 1, **kw: Any) -> FakeMarket:
        return self.fake.add_market(f"btc-updown-15m-t{n}", window_start=time.time() - 300.0,
                                    **kw)


@contextmanager
def open_venue(tmp_path: Path, **fake_kw: Any) -> Iterator[Venue]:
    key = Account.create()
    fake = FakeClob(address=key.address, **fake_kw)
    with serve(fake, hang_s=1.0) as url:
        yield Venue(fake, url, key, tmp_path)


@pytest.fixture
def venue(tmp_path: Path) -> Iterator[Venue]:
    with open_venue(tmp_path) as v:
        yield v


def start_session(venue: Venue, journal: Journal, **kw: Any) -> LiveSession:
    settings = kw.pop("settings", None) or venue.settings()
    broker_kw = {"not_found_grace_s": 0.3, "poll_interval_s": 0.05, **kw}
    session = LiveSession(settings, journal, resolve_mode(settings, live_flag=True), **broker_kw)
    session.start()
    return session


def place(session: LiveSession, market: FakeMarket, *, decision: str, side: Side = "up",
          stake: float = 10.0, worst: float | None = None) -> ExecutionReport:
    run_id = session.journal.start_run(account=session.account, mode="live", dataset=None,
                                       config={})
    ask = float(market.asks[market.up_token if side == "up" else market.down_token][0][0]) \
        if market.asks[market.up_token if side == "up" else market.down_token] else 0.5
    verdict = Verdict(approved=True, side=side, stake_usd=stake,
                      worst_price=worst if worst is not None else round(ask + 0.02, 2))
    return execute_approved({"snapshot": snapshot_for(market, time.time()), "verdict": verdict,
                             "decision_id": decision}, session.context(run_id=run_id))


def check_invariants(session: LiveSession, venue: Venue) -> None:
    assert journal_vs_venue(session.journal, venue.fake, session.account) == []
    assert venue.fake.bad_signatures == 0


# --- the happy path, per signature type --------------------------------------------------

@pytest.mark.parametrize("signature_type", [0, 1, 2, 3])
def test_order_fills_once_signed_by_the_configured_key(tmp_path: Path, signature_type: int
                                                       ) -> None:
    funder = None if signature_type == 0 else Account.create().address
    with open_venue(tmp_path, funder=funder, signature_type=signature_type) as venue:
        settings = venue.settings(polymarket_signature_type=signature_type,
                                  polymarket_funder=funder)
        journaled_first: list[bool] = []

        def probe(order_hash: str) -> None:
            # At the moment the venue receives the POST the hash is already committed.
            con = sqlite3.connect(settings.journal_path)
            try:
                row = con.execute("SELECT 1 FROM venue_orders WHERE order_hash = ?",
                                  (order_hash,)).fetchone()
            finally:
                con.close()
            journaled_first.append(row is not None)

        venue.fake.on_post = probe
        with Journal(settings.journal_path) as jr:
            session = start_session(venue, jr, settings=settings)
            market = venue.market()
            report = place(session, market, decision="d1")
            assert report.status == "filled"
            assert report.shares == pytest.approx(18.18)
            assert report.avg_price == pytest.approx(0.55)
            assert report.fee_usd == pytest.approx(18.18 * 0.07 * 0.55 * 0.45, abs=1e-6)
            assert journaled_first == [True]
            [post] = venue.fake.posts
            assert post.recovered_signer == venue.key.address
            assert session.account == f"live:{(funder or venue.key.address).lower()}"
            check_invariants(session, venue)
            session.close()


def test_credentials_are_derived_once_at_start(venue: Venue) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        for n in range(3):
            assert place(session, venue.market(n), decision=f"d{n}").status == "filled"
        auth = [r for r in venue.fake.requests if r[1].startswith("/auth/")]
        assert 1 <= len(auth) <= 2  # create, or create refused then derive
        assert venue.fake.rejected_auth == 0
        check_invariants(session, venue)


def test_configured_credentials_skip_derivation(venue: Venue) -> None:
    creds = venue.fake.issue_creds()
    settings = venue.settings(polymarket_api_key=creds["apiKey"],
                              polymarket_api_secret=creds["secret"],
                              polymarket_api_passphrase=creds["passphrase"])
    with Journal(settings.journal_path) as jr:
        session = start_session(venue, jr, settings=settings)
        assert place(session, venue.market(), decision="d1").status == "filled"
        assert not [r for r in venue.fake.requests if r[1].startswith("/auth/")]


@pytest.mark.parametrize(("setup", "message"), [
    ("other_key", "could not create or derive"),
    ("no_balance", "balance"),
    ("no_allowance", "allowance"),
    ("skewed_clock", "local clock"),
])
def test_startup_checks_refuse_before_any_order(tmp_path: Path, setup: str, message: str
                                                ) -> None:
    with open_venue(tmp_path) as venue:
        settings = venue.settings()
        if setup == "other_key":
            settings = venue.settings(polymarket_private_key=Account.create().key.hex())
        elif setup == "no_balance":
            venue.fake.balance = 500_000  # $0.50
        elif setup == "no_allowance":
            venue.fake.allowance = 0
        else:
            venue.fake.clock_skew_s = 10.0  # the venue is 10 s ahead of this machine
            venue.fake.timestamp_tolerance_s = 60.0
        with Journal(settings.journal_path) as jr:
            session = LiveSession(settings, jr, resolve_mode(settings, live_flag=True))
            with pytest.raises(LiveSetupError, match=message):
                session.start()
            assert not session.ready
            with pytest.raises(LiveSetupError):
                session.context(run_id="r")
        assert venue.fake.post_count() == 0


# --- order-path faults ---------------------------------------------------------------------

FAULTS = [
    # fault, status, reason prefix
    ("http_425", "killed", "engine_restarting"),
    ("http_429", "killed", "rate_limited"),
    ("balance", "killed", "insufficient_balance"),
    ("cloudflare_403", "killed", "cloudflare_blocked"),
    ("precision", "killed", "invalid_precision"),
    ("http_500_after_fill", "filled", "filled: after venue_5xx"),
    ("http_502_lost", "killed", "not_found_at_venue"),
    ("timeout_lost", "killed", "not_found_at_venue"),
    ("timeout_after_fill", "filled", "filled: after timeout"),
    ("timeout_after_kill", "killed", "fok_not_filled"),
    ("delayed", "filled", "filled: after delayed"),
]


@pytest.mark.parametrize(("fault", "status", "reason"), FAULTS)
def test_each_fault_ends_in_a_named_state_with_one_post(venue: Venue, fault: str, status: str,
                                                        reason: str) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        market = venue.market()
        venue.fake.inject(fault)
        started = time.monotonic()
        report = place(session, market, decision="d1")
        assert time.monotonic() - started < 10.0
        assert report.status == status, report.reason
        assert (report.reason or "").startswith(reason), report.reason
        assert venue.fake.post_count() == 1
        check_invariants(session, venue)


def test_fok_not_filled_on_a_thin_book(venue: Venue) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        report = place(session, venue.market(depth="6"), decision="d1")
        assert report.status == "killed"
        assert (report.reason or "").startswith("fok_not_filled")
        assert venue.fake.post_count() == 1
        check_invariants(session, venue)


def test_fak_fills_what_the_book_has(venue: Venue) -> None:
    settings = venue.settings(polymarket_order_type="FAK")
    with Journal(settings.journal_path) as jr:
        session = start_session(venue, jr, settings=settings)
        report = place(session, venue.market(depth="10"), decision="d1")
        assert report.status == "filled"
        assert report.shares == pytest.approx(10.0)
        assert "partial" in (report.reason or "")
        check_invariants(session, venue)


@pytest.mark.parametrize(("fault", "blocked_s"), [("http_425", 120.0), ("http_429", 7.0)])
def test_back_off_after_restart_or_rate_limit_honours_the_venue(venue: Venue, fault: str,
                                                                blocked_s: float) -> None:
    clock = FakeMonotonic()
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr, monotonic=clock)
        venue.fake.inject(fault)
        assert place(session, venue.market(1), decision="d1").status == "killed"
        # Inside the window: refused without a POST.
        clock.jump = blocked_s - 1.0
        refused = place(session, venue.market(2), decision="d2")
        assert (refused.reason or "").startswith("backing_off")
        assert venue.fake.post_count() == 1
        # After it (and after the venue's post-only window): trading resumes.
        clock.jump = blocked_s + 1.0
        venue.fake.post_only_until = 0.0
        assert place(session, venue.market(3), decision="d3").status == "filled"
        assert venue.fake.post_count() == 2
        check_invariants(session, venue)


def test_post_only_window_is_a_named_refusal(venue: Venue) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        venue.fake.post_only_until = venue.fake.now() + 60.0
        report = place(session, venue.market(), decision="d1")
        assert (report.reason or "").startswith("post_only_mode")
        check_invariants(session, venue)


def test_clock_skew_401_is_named_and_stops_trading(venue: Venue) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        venue.fake.clock_skew_s = 120.0  # this machine's clock is now 2 minutes off
        report = place(session, venue.market(1), decision="d1")
        assert report.status == "killed"
        assert (report.reason or "").startswith("auth_rejected")
        assert venue.fake.post_count() == 1
        # The broker measured the venue's time again: too far off to judge data ages.
        refused = place(session, venue.market(2), decision="d2")
        assert (refused.reason or "").startswith("backing_off: after clock_skew")
        assert venue.fake.post_count() == 1
        check_invariants(session, venue)


def test_stop_file_right_before_the_post_sends_nothing(venue: Venue) -> None:
    settings = venue.settings()

    def stop_now(point: str) -> None:
        if point == "before_post":
            settings.stop_file.write_text("halt\n")

    with Journal(settings.journal_path) as jr:
        session = start_session(venue, jr, settings=settings, checkpoint=stop_now)
        report = place(session, venue.market(), decision="d1")
        assert (report.reason or "").startswith("kill_switch")
        assert venue.fake.post_count() == 0


def test_unresolved_lookup_is_error_then_reconciled_at_the_next_start(venue: Venue) -> None:
    settings = venue.settings(polymarket_lookup_timeout_s=0.5)
    with Journal(settings.journal_path) as jr:
        session = start_session(venue, jr, settings=settings)
        venue.fake.inject("timeout_after_fill")
        venue.fake.lookup_failures = 10_000
        report = place(session, venue.market(), decision="d1")
        assert report.status == "error"
        assert "outcome unknown" in (report.reason or "")
        intent = jr.intent(report.order_id)
        assert intent is not None
        assert intent.status == "error"
        session.close()
        # A restart while the venue still cannot answer: reconciliation refuses to trade.
        blocked = LiveSession(settings, jr, resolve_mode(settings, live_flag=True),
                              not_found_grace_s=0.3, poll_interval_s=0.05)
        with pytest.raises(LiveSetupError, match="unresolved"):
            blocked.start()
        with pytest.raises(LiveSetupError):
            blocked.context(run_id="r")
        # Once the venue answers, the restart resolves it before anything else.
        venue.fake.lookup_failures = 0
        again = start_session(venue, jr, settings=settings)
        [resolved] = again.reconciliation.resolved if again.reconciliation else []
        assert resolved.status == "filled"
        assert venue.fake.post_count() == 1
        check_invariants(again, venue)


# --- through the graph -------------------------------------------------------------------

def _decide(session: LiveSession, snapshot: Any, decision: str) -> dict[str, Any]:
    run_id = session.journal.start_run(account=session.account, mode="live", dataset=None,
                                       config={})
    ctx = session.context(run_id=run_id, use_llm=False)
    out: dict[str, Any] = asyncio.run(graph.ainvoke(
        {"snapshot": snapshot, "decision_id": decision}, context=ctx,
        config={"recursion_limit": RECURSION_LIMIT}))
    return out


def test_graph_decision_fills_live_and_a_second_one_in_the_window_is_refused(venue: Venue
                                                                            ) -> None:
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        market = venue.market(up_ask="0.60", down_ask="0.42")
        out = _decide(session, snapshot_for(market, time.time(), price=100_050.0), "g1")
        assert out["verdict"].approved, out["verdict"].rules_fired
        assert out["execution"].status == "filled"
        again = _decide(session, snapshot_for(market, time.time(), price=100_050.0), "g2")
        assert "window" in {h.rule for h in again["verdict"].rules_fired}
        assert venue.fake.post_count() == 1
        check_invariants(session, venue)


@pytest.mark.parametrize("variant", ["stale_book", "kill_switch", "unverified_reference",
                                     "last_minute", "low_confidence"])
def test_no_order_while_any_guard_rule_fails(venue: Venue, variant: str) -> None:
    settings = venue.settings()
    with Journal(settings.journal_path) as jr:
        session = start_session(venue, jr, settings=settings)
        market = venue.market(up_ask="0.60", down_ask="0.42")
        now = time.time()
        # Without a variant this snapshot is approved (see the test above).
        overrides: dict[str, Any] = {"price": 100_050.0}
        if variant == "stale_book":
            overrides["book_ts"] = now - 30.0
        elif variant == "kill_switch":
            settings.stop_file.write_text("halt\n")
        elif variant == "unverified_reference":
            overrides["price_to_beat_verified"] = False
        elif variant == "last_minute":
            overrides.update(window_start=now - 870.0, window_end=now + 30.0)
        else:
            overrides["price"] = 100_000.0  # at the price to beat: a coin flip
        out = _decide(session, snapshot_for(market, now, **overrides), "g1")
        assert not out["verdict"].approved
        assert out.get("execution") is None
        assert venue.fake.post_count() == 0


def test_money_amounts_are_exact_at_the_boundary(venue: Venue) -> None:
    """The signed order carries exactly the floored dollars and a price on the tick."""
    with Journal(venue.tmp / "j.db") as jr:
        session = start_session(venue, jr)
        report = place(session, venue.market(), decision="d1", stake=12.3456, worst=0.5789)
        assert report.status == "filled"
        signed = jr.signed_order(report.order_id)
        assert signed is not None
        assert (signed.amount_usd, signed.worst_price) == ("12.34", "0.57")
        assert Decimal(signed.maker_amount) == Decimal("12340000")
        check_invariants(session, venue)
