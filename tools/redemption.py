"""Redemption of winning positions: each paid out exactly once, retried until it is.

After a window resolves, its winning shares pay $1 each only once redeemed.  The journal
holds one ``redemptions`` row per winning position (opened by the settlement); ``redeem_due``
moves them on with a ``Redeemer``: the paper one (a ledger entry, confirmed at once) or the
live one (``tools.polymarket.redeem``: the official SDK's ``redeem_positions``, through the
relayer).  One market's rows are redeemed together: the venue redeems by condition.

Exactly once, whatever fails:

* a row is marked ``submitted`` in the journal BEFORE the venue is called, and its
  transaction id recorded after; a ``confirmed`` row never moves again;
* a submitted row with a transaction id is settled by asking the venue about that
  transaction (``status``), never by submitting again;
* anything else (pending, failed, or submitted without an id because the answer was lost)
  first asks the venue whether the position still holds a redeemable balance
  (``holds_winnings``): none left means it was redeemed (by us or by the venue's
  auto-redeem) and is confirmed without a new transaction; a lost answer is given
  ``resubmit_after_s`` before it is asked about, so an in-flight one can land first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from core.logs import get_logger
from tools.journal import Journal, RedemptionRecord
from tools.journal.redemptions import OPEN_STATES

log = get_logger("updown.redemption")

TxStatus = Literal["pending", "confirmed", "failed"]
# A submission whose answer was lost is left this long before the venue is asked about it.
RESUBMIT_AFTER_S = 120.0


class RedemptionRejected(Exception):
    """The venue refused the redemption: nothing was submitted, it can be retried later."""


@dataclass(frozen=True, slots=True)
class Submission:
    tx_id: str | None
    tx_hash: str | None


class Redeemer(Protocol):
    """Who pays winning positions out (paper ledger or the venue)."""

    name: str

    def holds_winnings(self, market_id: str) -> bool | None:
        """Whether the account still holds a redeemable winning balance in the market
        (None: the venue cannot tell now)."""
        ...

    def submit(self, market_id: str) -> Submission:
        """Submit the redemption of the market's winning positions once.  Raises
        RedemptionRejected when it certainly did not go out; any other exception leaves the
        outcome unknown."""
        ...

    def status(self, tx_id: str) -> TxStatus:
        """What became of a submitted redemption."""
        ...


class PaperRedeemer:
    """Paper trading: the redemption is a ledger entry, confirmed at once."""

    name = "paper"

    def holds_winnings(self, market_id: str) -> bool | None:
        return True

    def submit(self, market_id: str) -> Submission:
        return Submission(tx_id=f"paper:{market_id}", tx_hash=None)

    def status(self, tx_id: str) -> TxStatus:
        return "confirmed"


@dataclass
class RedeemReport:
    account: str
    confirmed: list[RedemptionRecord] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    # Market ids left for a later sweep (venue could not tell, answer lost recently ...).
    waiting: list[str] = field(default_factory=list)

    @property
    def redeemed_usd(self) -> float:
        return round(sum(r.payout_usd for r in self.confirmed), 6)


def redeem_due(journal: Journal, redeemer: Redeemer, *, account: str, now: float,
               resubmit_after_s: float = RESUBMIT_AFTER_S) -> RedeemReport:
    """Move every open redemption of ``account`` on by one step (see the module doc)."""
    report = RedeemReport(account=account)
    rows = journal.redemptions(account=account, states=OPEN_STATES)
    by_market: dict[str, list[RedemptionRecord]] = {}
    for r in rows:
        by_market.setdefault(r.market_id, []).append(r)
    for market_id, group in by_market.items():
        _redeem_market(journal, redeemer, market_id, group, report, now=now,
                       resubmit_after_s=resubmit_after_s)
    if rows:
        log.info("redemption_sweep", account=account, redeemer=redeemer.name,
                 confirmed=len(report.confirmed), submitted=len(report.submitted),
                 failed=len(report.failed), waiting=len(report.waiting),
                 redeemed_usd=report.redeemed_usd)
    return report


def _confirm(journal: Journal, group: Sequence[RedemptionRecord], report: RedeemReport, *,
             detail: str, now: float, redeemer: str, tx_hash: str | None = None) -> None:
    changed = set(journal.record_redemption_outcome(
        [r.order_id for r in group], state="confirmed", detail=detail, ts=now,
        redeemer=redeemer, tx_hash=tx_hash))
    report.confirmed.extend(r for r in group if r.order_id in changed)


def _redeem_market(journal: Journal, redeemer: Redeemer, market_id: str,
                   group: list[RedemptionRecord], report: RedeemReport, *, now: float,
                   resubmit_after_s: float) -> None:
    ids = [r.order_id for r in group]
    with_tx = [r for r in group if r.state == "submitted" and r.tx_id]
    if with_tx:
        # A known transaction: its outcome decides, never a second submission.
        try:
            status = redeemer.status(str(with_tx[0].tx_id))
        except Exception as err:  # the venue is down: ask again next sweep
            log.warning("redemption_status_failed", market_id=market_id,
                        error=f"{type(err).__name__}: {err}")
            report.waiting.append(market_id)
            return
        if status == "confirmed":
            _confirm(journal, group, report, detail=f"transaction {with_tx[0].tx_id} confirmed",
                     now=now, redeemer=redeemer.name)
        elif status == "failed":
            journal.record_redemption_outcome(ids, state="failed", ts=now,
                                              detail=f"transaction {with_tx[0].tx_id} failed")
            report.failed.append(market_id)
            log.warning("redemption_failed", market_id=market_id, tx_id=with_tx[0].tx_id)
        else:
            report.waiting.append(market_id)
        return
    lost = [r for r in group if r.state == "submitted"]
    if lost and now - max(r.updated_ts for r in lost) < resubmit_after_s:
        report.waiting.append(market_id)  # an answer lost recently may still land
        return
    try:
        holds = redeemer.holds_winnings(market_id)
    except Exception as err:
        log.warning("redemption_check_failed", market_id=market_id,
                    error=f"{type(err).__name__}: {err}")
        holds = None
    if holds is None:
        report.waiting.append(market_id)
        return
    if not holds:
        _confirm(journal, group, report, now=now, redeemer=redeemer.name,
                 detail="the venue holds no redeemable balance: already redeemed")
        return
    journal.begin_redemption(ids, redeemer=redeemer.name, ts=now)
    try:
        submission = redeemer.submit(market_id)
    except RedemptionRejected as err:
        journal.record_redemption_outcome(ids, state="failed", ts=now,
                                          detail=f"rejected: {err}"[:300])
        report.failed.append(market_id)
        log.warning("redemption_rejected", market_id=market_id, error=str(err)[:200])
        return
    except Exception as err:  # outcome unknown: stays submitted, asked about later
        log.warning("redemption_outcome_unknown", market_id=market_id,
                    error=f"{type(err).__name__}: {err}"[:200])
        report.waiting.append(market_id)
        return
    journal.record_redemption_tx(ids, tx_id=submission.tx_id, tx_hash=submission.tx_hash,
                                 ts=now)
    report.submitted.append(market_id)
    if submission.tx_id is None:
        return
    try:
        status = redeemer.status(submission.tx_id)
    except Exception:
        return  # asked again next sweep
    if status == "confirmed":
        _confirm(journal, group, report, now=now, redeemer=redeemer.name,
                 detail=f"transaction {submission.tx_id} confirmed",
                 tx_hash=submission.tx_hash)
    elif status == "failed":
        journal.record_redemption_outcome(ids, state="failed", ts=now,
                                          detail=f"transaction {submission.tx_id} failed")
        report.failed.append(market_id)
