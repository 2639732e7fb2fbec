"""``updown record``: what the live feed sees, written in the recorded-markets interchange
format (``../shared/docs/recorded-markets.md``) so users build their own eval datasets.

Files (plain CSV, flushed every sample so an interrupted recording is still a dataset):

* ``prices.csv`` — ``ts, price, asset, volume, source``: first the klines backfill as warm-up
  history (1-minute closes stamped at the candle close, ``binance_kline_1m``), then the last
  Binance trade of each sample interval stamped with its own trade time (``binance_spot``),
  volume being the traded quantity since the previous row.  Strictly increasing ``ts``.
* ``book.csv`` — best bid/ask and the size at that level of both tokens, one row per sample
  while the market channel is connected and both books are valid (like a poller would see
  them: the row's ``ts`` is the sample time, the book holds only events received by then).
* ``markets.csv`` — every window seen, rewritten at each change: ``price_to_beat`` when known
  (its source and whether it is verified in extra columns the loader ignores), ``outcome``
  only when the venue stated it (``market_resolved`` or the crypto-price close), ``fee_rate``
  when the schedule is linear.
* ``recording.json`` — when, from where (URLs without credentials) and the feed counters.

Nothing here is invented: a value that was not observed is left empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from core.clock import Clock
from core.errors import UserError
from feeds.binance import KLINE_SOURCE, PRICE_SOURCE
from feeds.ws import public_url
from tools.polymarket.gamma import MarketWindow, iso_z
from tools.polymarket.live_feed import LiveFeed
from tools.polymarket.price_to_beat import PriceToBeat

PRICE_COLUMNS = ("ts", "price", "asset", "volume", "source")
BOOK_COLUMNS = ("market_id", "ts", "up_bid", "up_ask", "down_bid", "down_ask",
                "up_bid_size", "up_ask_size", "down_bid_size", "down_ask_size")
MARKET_COLUMNS = ("market_id", "asset", "start_ts", "end_ts", "price_to_beat", "outcome",
                  "fee_rate", "price_to_beat_source", "price_to_beat_verified",
                  "outcome_source", "condition_id", "up_token_id", "down_token_id")
_DATASET_FILES = ("markets.csv", "prices.csv", "book.csv", "markets.csv.gz", "prices.csv.gz",
                  "book.csv.gz")


class RecordError(UserError):
    """The recording cannot be made or is empty; one line saying why."""


@dataclass
class RecordingSummary:
    out_dir: Path
    windows: int
    price_rows: int
    warmup_rows: int
    book_rows: int
    started: float
    ended: float


def _cell(value: float | None, digits: int | None = None) -> str:
    if value is None:
        return ""
    return repr(round(value, digits) if digits is not None else value)


class Recorder:
    """Samples a started :class:`LiveFeed` into a dataset directory."""

    def __init__(self, out_dir: Path, feed: LiveFeed, clock: Clock, *,
                 sample_s: float = 1.0) -> None:
        if not sample_s > 0:
            raise ValueError(f"sample_s must be > 0, got {sample_s}")
        self.out_dir = out_dir
        self.feed = feed
        self.clock = clock
        self.sample_s = sample_s
        self.windows: dict[str, MarketWindow] = {}
        self.prices_to_beat: dict[str, PriceToBeat] = {}
        self.price_rows = self.warmup_rows = self.book_rows = 0
        self._prices: IO[str] | None = None
        self._prices_csv: Any = None
        self._book: IO[str] | None = None
        self._book_csv: Any = None
        self._last_trade_count = 0
        self._last_price_ts: float | None = None
        self._last_volume = 0.0
        self._last_book_ts: dict[str, float] = {}
        self._written_outcomes: set[str] = set()
        self._warm = False
        self._started = clock.now()

    def prepare(self) -> None:
        """Check and create the directory; refuse one that already holds a dataset."""
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise RecordError(f"{self.out_dir} exists and is not a directory")
        existing = [n for n in _DATASET_FILES if (self.out_dir / n).exists()]
        if existing:
            raise RecordError(f"{self.out_dir} already holds a dataset ({', '.join(existing)}); "
                              "choose an empty directory")
        self.out_dir.mkdir(parents=True, exist_ok=True)

    async def run(self, stop: asyncio.Event, duration_s: float | None = None
                  ) -> RecordingSummary:
        """Sample every ``sample_s`` until ``stop`` is set or ``duration_s`` has passed.

        Files are created here, once the feed is up: a start-up failure leaves nothing behind.
        """
        loop = asyncio.get_running_loop()
        self._prices = (self.out_dir / "prices.csv").open("w", newline="", encoding="utf-8")
        self._prices_csv = csv.writer(self._prices)
        self._prices_csv.writerow(PRICE_COLUMNS)
        self._started = self.clock.now()
        end = None if duration_s is None else loop.time() + duration_s
        try:
            while not stop.is_set():
                self.sample()
                wait = self.sample_s
                if end is not None:
                    wait = min(wait, end - loop.time())
                    if wait <= 0:
                        break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
                if self.feed.failure is not None:
                    raise RecordError(self.feed.failure)
        finally:
            self.sample()
            summary = self.close()
        return summary

    # --- sampling -----------------------------------------------------------------------

    def sample(self) -> None:
        store = self.feed.store
        window = store.window
        if window is not None and window.market_id not in self.windows:
            self.windows[window.market_id] = window
            self._write_markets()
        ptb = store.price_to_beat
        if ptb is not None and self.prices_to_beat.get(ptb.market_id) != ptb:
            self.prices_to_beat[ptb.market_id] = ptb
            self._write_markets()
        outcomes = {m for m in self.windows if m in store.outcomes}
        if outcomes != self._written_outcomes:
            self._written_outcomes = outcomes
            self._write_markets()
        self._sample_price()
        if window is not None:
            self._sample_book(window)
        if self._prices is not None:
            self._prices.flush()
        if self._book is not None:
            self._book.flush()

    def _sample_price(self) -> None:
        store = self.feed.store
        writer = self._prices_csv
        if writer is None or store.price is None or store.trade_count == self._last_trade_count:
            return
        ts = round(min(store.price_ts, self.clock.now()), 3)
        if not self._warm:
            self._warm = True
            for k in store.warmup:
                if k.close_ts < ts:
                    writer.writerow((_cell(k.close_ts, 3), _cell(k.close), store.asset,
                                     _cell(k.volume, 8), KLINE_SOURCE))
                    self.warmup_rows += 1
                    self._last_price_ts = k.close_ts
        if self._last_price_ts is not None and ts <= self._last_price_ts:
            return
        volume = store.cum_volume - self._last_volume
        writer.writerow((_cell(ts), _cell(store.price), store.asset, _cell(volume, 8),
                         PRICE_SOURCE))
        self.price_rows += 1
        self._last_price_ts = ts
        self._last_trade_count = store.trade_count
        self._last_volume = store.cum_volume

    def _sample_book(self, window: MarketWindow) -> None:
        if not self.feed.clob.ws.is_connected:
            return  # a disconnected channel's book is not known to be current
        up, down, book_ts = self.feed.store.book_tops()
        if up is None or down is None or book_ts is None:
            return
        now = round(self.clock.now(), 3)
        # The wall clock may step back (NTP); a book row must never go back in time.
        ts = max(now, self._last_book_ts.get(window.market_id, now))
        self._last_book_ts[window.market_id] = ts
        if self._book is None:
            path = self.out_dir / "book.csv"
            self._book = path.open("w", newline="", encoding="utf-8")
            self._book_csv = csv.writer(self._book)
            self._book_csv.writerow(BOOK_COLUMNS)
        self._book_csv.writerow((
            window.market_id, _cell(ts), _cell(up.bid), _cell(up.ask), _cell(down.bid),
            _cell(down.ask), _cell(up.bid_size), _cell(up.ask_size), _cell(down.bid_size),
            _cell(down.ask_size),
        ))
        self.book_rows += 1

    # --- files --------------------------------------------------------------------------

    def _write_markets(self) -> None:
        outcomes = self.feed.store.outcomes
        rows = []
        for window in sorted(self.windows.values(), key=lambda w: w.start_ts):
            ptb = self.prices_to_beat.get(window.market_id)
            outcome = outcomes.get(window.market_id)
            rows.append((
                window.market_id, window.asset, _cell(window.start_ts), _cell(window.end_ts),
                "" if ptb is None else _cell(ptb.value),
                "" if outcome is None else outcome.outcome,
                _cell(window.fee_rate) if window.fee_exponent == 1.0 else "",
                "" if ptb is None else ptb.source,
                "" if ptb is None else str(ptb.verified).lower(),
                "" if outcome is None else outcome.source,
                window.condition_id, window.up_token_id, window.down_token_id,
            ))
        path = self.out_dir / "markets.csv"
        tmp = path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(MARKET_COLUMNS)
            writer.writerows(rows)
        os.replace(tmp, path)  # readers never see a half-written markets.csv

    def close(self) -> RecordingSummary:
        ended = self.clock.now()
        for handle in (self._prices, self._book):
            if handle is not None:
                handle.close()
        self._prices = self._book = None
        if self.windows:
            self._write_markets()
        meta = {
            "format": "recorded-markets interchange (../shared/docs/recorded-markets.md)",
            "recorded_by": "updown record",
            "started": iso_z(self._started),
            "ended": iso_z(ended),
            "series": self.feed.series.slug_prefix,
            # URLs only: the endpoints may also hold the realtime channel's credentials.
            "endpoints": {name: public_url(url)
                          for name, url in asdict(self.feed.endpoints).items()
                          if isinstance(url, str)},
            "rows": {"prices_live": self.price_rows, "prices_warmup": self.warmup_rows,
                     "book": self.book_rows, "markets": len(self.windows)},
            "feeds": self.feed.health(),
        }
        (self.out_dir / "recording.json").write_text(json.dumps(meta, indent=2) + "\n",
                                                     encoding="utf-8")
        if not self.windows:
            raise RecordError("no market window was discovered: nothing recorded")
        if self.price_rows + self.warmup_rows == 0:
            raise RecordError("no BTC price was received: prices.csv is empty")
        return RecordingSummary(self.out_dir, len(self.windows), self.price_rows,
                                self.warmup_rows, self.book_rows, self._started, ended)
