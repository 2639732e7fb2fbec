"""The replay runner's side of maker execution: step the maker desk through recorded books.

Between two decision ticks a resting order meets every recorded book (about one a second):
``DeskDriver.advance_to`` replays them, in time order and never past the replay clock, into
the paper venue (fills) and the desk (cut-off, stale data, kill switch, replaces, the taker
deadline, exits).  Books are only stepped for windows where something rests or exits watch
held shares, so a taker-like quiet window costs nothing.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from pathlib import Path

from core.guard import GuardLimits
from core.maker import ExecutionStyle, MakerParams
from core.records import FairValueEstimate, RiskAssessment, TraderDecision
from core.resting import RestingVerdict
from core.snapshot import MarketSnapshot
from feeds.recorded import RecordedMarket
from feeds.replay import ReplayFeed
from tools.fair_value import estimate_fair_value
from tools.journal import Journal
from tools.ledger import guard_ledger
from tools.maker import MakerDesk
from tools.paper_broker import PaperBroker, PaperRestingBook


@dataclass
class DeskDriver:
    """The maker desk of one replay and the recorded books it is stepped through."""

    feed: ReplayFeed
    desk: MakerDesk
    venue: PaperRestingBook
    markets: dict[str, RecordedMarket]
    _stepped: dict[str, float] = field(default_factory=dict)
    # Orders found still resting after a cut-off or at the end (must stay empty).
    left_resting: list[str] = field(default_factory=list)
    _times: dict[str, list[float]] = field(default_factory=dict)

    @classmethod
    def build(cls, feed: ReplayFeed, markets: tuple[RecordedMarket, ...], *,
              style: ExecutionStyle, params: MakerParams, limits: GuardLimits,
              journal: Journal, account: str, run_id: str, stop_file: Path,
              taker: PaperBroker) -> DeskDriver:
        venue = PaperRestingBook(queue_fill_fraction=params.queue_fill_fraction,
                                 rebate_share=params.rebate_share)
        desk = MakerDesk(style=style, params=params, broker=venue, limits=limits,
                         stop_file=stop_file, account=account, run_id=run_id, journal=journal,
                         taker=taker, exit_broker=venue,
                         ledger=lambda now: guard_ledger(journal, account=account, now=now))
        return cls(feed, desk, venue, {m.market_id: m for m in markets})

    def _book_times(self, market_id: str) -> list[float]:
        if market_id not in self._times:
            book = self.feed.dataset.book(market_id)
            self._times[market_id] = [] if book is None else [float(t) for t in book.ts]
        return self._times[market_id]

    def advance_to(self, t: float) -> None:
        """Replay every book after the last one seen and at or before ``t``."""
        for market_id, market in self.markets.items():
            if not self.desk.needs_books(market_id):
                self._stepped[market_id] = t
                continue
            times = self._book_times(market_id)
            since = self._stepped.get(market_id, market.start_ts)
            for bt in times[bisect.bisect_right(times, since):bisect.bisect_right(times, t)]:
                if not self.desk.needs_books(market_id):
                    break
                self.step(market, bt)
            self._stepped[market_id] = t

    def step(self, market: RecordedMarket, t: float) -> None:
        snapshot = self.feed.snapshot_at(market, t)
        self.venue.match(snapshot, t)
        self.desk.on_book(snapshot, estimate_fair_value(snapshot), t)

    def after_decision(self, *, snapshot: MarketSnapshot, fair: FairValueEstimate | None,
                       trader: TraderDecision, risk: RiskAssessment | None, decision_id: str,
                       now: float) -> RestingVerdict | None:
        verdict = self.desk.on_decision(snapshot=snapshot, fair=fair, trader=trader, risk=risk,
                                        decision_id=decision_id, now=now)
        self._stepped[snapshot.market_id] = now
        return verdict

    def entered(self, market_id: str) -> bool:
        w = self.desk.windows.get(market_id)
        return w is not None and (w.has_fill or (w.taker is not None
                                                 and w.taker.status == "filled"))

    def close(self, market_id: str, t: float) -> None:
        """The window's end: nothing may rest past it."""
        self.advance_to(t)
        self.left_resting.extend(o.order_id for o in self.desk.close_window(market_id, t))

    def finish(self, t: float) -> None:
        self.left_resting.extend(o.order_id for o in self.desk.shutdown(t))
