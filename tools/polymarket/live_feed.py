"""The live market in one object: three websocket feeds, Gamma discovery, window roll-over,
price-to-beat resolution and the klines backfill, all writing one :class:`SnapshotStore`.

The reference (Chainlink and its TWAP) comes from the authenticated realtime channel when
the CLOB API credentials are configured (``FeedEndpoints.realtime_credentials``), else from
keyless RTDS; either is ``LiveFeed.rtds`` (the same surface).

``LiveFeed.start`` fails fast (:class:`FeedUnreachable`, one line naming the setting and URL)
when an endpoint cannot be reached at start; after that every fault is the feeds' business
(reconnect, watchdog, counters) and the snapshot's ages tell the guard how fresh things are.
Window boundaries are read from the injected clock; the event loop's timer only waits.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import httpx

from core.clock import Clock
from core.errors import UserError
from core.logs import get_logger
from core.snapshot import MarketSnapshot
from feeds.binance import BinanceTradeFeed, KlinesError, fetch_klines
from feeds.ws import USER_AGENT, Backoff, FeedCounters, WsFeed, public_url
from tools.polymarket.gamma import BTC_15M, GammaClient, GammaError, MarketWindow, WindowSeries
from tools.polymarket.market_channel import ClobMarketFeed, MarketResolved, OrderBooks
from tools.polymarket.price_to_beat import (
    PRICE_TO_BEAT_TOLERANCE_REL,
    CryptoPriceClient,
    GammaEventClient,
    PriceToBeat,
)
from tools.polymarket.realtime import RealtimeCredentials, RealtimeFeed
from tools.polymarket.rtds import ReferenceSymbols, RtdsFeed
from tools.polymarket.store import LiveStatus, ResolvedOutcome, SnapshotStore

if TYPE_CHECKING:
    from core.settings import Settings

log = get_logger("updown.feeds.live")


class FeedError(UserError):
    """The live feed cannot run; the message is one line a user can act on."""


class FeedUnreachable(FeedError):
    """An endpoint could not be reached at start."""

    def __init__(self, setting: str, url: str, reason: str | None) -> None:
        self.setting = setting
        self.url = public_url(url)
        super().__init__(f"cannot reach {setting} ({self.url}): {reason or 'no answer'}")


@dataclass(frozen=True, slots=True)
class FeedEndpoints:
    """Every URL the live feed uses (all from settings, so tests point them at loopback)."""

    binance_ws: str
    binance_rest: str
    rtds: str
    clob_ws: str
    clob_rest: str
    gamma: str
    crypto_price: str
    realtime: str = "wss://ws-live-v2.polymarket.com/ws"
    # With credentials the reference comes from the authenticated channel, not RTDS.
    realtime_credentials: RealtimeCredentials | None = None

    # The setting behind each endpoint, for error messages.
    SETTING: ClassVar[dict[str, str]] = {
        "binance_ws": "BINANCE_WS_URL", "binance_rest": "BINANCE_REST_URL",
        "rtds": "POLYMARKET_RTDS_URL", "clob_ws": "POLYMARKET_CLOB_WS_URL",
        "clob_rest": "POLYMARKET_CLOB_URL", "gamma": "POLYMARKET_GAMMA_URL",
        "crypto_price": "POLYMARKET_CRYPTO_PRICE_URL", "realtime": "POLYMARKET_REALTIME_URL",
    }

    @classmethod
    def from_settings(cls, settings: Settings) -> FeedEndpoints:
        return cls(
            binance_ws=settings.binance_ws_url,
            binance_rest=settings.binance_rest_url,
            rtds=settings.polymarket_rtds_url,
            clob_ws=settings.polymarket_clob_ws_url,
            clob_rest=settings.polymarket_clob_url,
            gamma=settings.polymarket_gamma_url,
            crypto_price=settings.polymarket_crypto_price_url,
            realtime=settings.polymarket_realtime_url,
            realtime_credentials=RealtimeCredentials.from_settings(settings),
        )


@dataclass(frozen=True, slots=True)
class FeedTimings:
    """Watchdogs, heartbeats and start-up budget (tests shorten them)."""

    binance_stale_after_s: float = 2.0
    # Chainlink ticks about once a second; the relay and TWAP topics share the connection.
    rtds_stale_after_s: float = 5.0
    # Book events come in bursts; a quiet book for this long means a dead subscription.
    clob_stale_after_s: float = 15.0
    rtds_heartbeat_s: float = 5.0
    # The authenticated channel: its own ping cadence (the SDK's 30 s); Chainlink ticks about
    # once a second there too.
    realtime_heartbeat_s: float = 30.0
    realtime_stale_after_s: float = 5.0
    clob_heartbeat_s: float = 10.0
    backoff: Backoff = field(default_factory=Backoff)
    startup_timeout_s: float = 8.0
    # At start, this many failed connects in a row means "unreachable" (the second one comes
    # 1 s after the first: a refused or unresolvable endpoint fails the start in about 1 s).
    startup_attempts: int = 2
    http_timeout_s: float = 5.0
    price_to_beat_poll_s: float = 2.0
    outcome_poll_s: float = 10.0
    outcome_give_up_s: float = 600.0
    klines_history: int = 180


class LiveFeed:
    """Keeps a :class:`SnapshotStore` current from the live venues until closed."""

    def __init__(
        self,
        endpoints: FeedEndpoints,
        clock: Clock,
        *,
        series: WindowSeries = BTC_15M,
        timings: FeedTimings | None = None,
        http: httpx.AsyncClient | None = None,
        price_to_beat_tolerance: float = PRICE_TO_BEAT_TOLERANCE_REL,
    ) -> None:
        self.endpoints = endpoints
        self.clock = clock
        self.series = series
        self.timings = t = timings or FeedTimings()
        self.books = OrderBooks(clock)
        self.store = SnapshotStore(clock, books=self.books, asset=series.asset,
                                   price_to_beat_tolerance=price_to_beat_tolerance)
        # Symbols follow the series' asset (BTC: the defaults, "BTCUSDT" and "btc/usd").
        self.symbol = f"{series.asset.upper()}USDT"
        self.binance = BinanceTradeFeed(endpoints.binance_ws, clock, self.store.on_trade,
                                        stale_after_s=t.binance_stale_after_s, backoff=t.backoff,
                                        symbol=self.symbol)
        asset = series.asset.lower()
        symbols = ReferenceSymbols(chainlink=f"{asset}/usd", relay=f"{asset}usdt")
        self.rtds: RtdsFeed | RealtimeFeed
        if endpoints.realtime_credentials is not None:
            self.rtds = RealtimeFeed(endpoints.realtime, clock, self.store.on_reference,
                                     endpoints.realtime_credentials, symbols=symbols,
                                     heartbeat_interval_s=t.realtime_heartbeat_s,
                                     stale_after_s=t.realtime_stale_after_s, backoff=t.backoff)
            self.reference_name = "realtime"
        else:
            self.rtds = RtdsFeed(endpoints.rtds, clock, self.store.on_reference,
                                 heartbeat_interval_s=t.rtds_heartbeat_s,
                                 stale_after_s=t.rtds_stale_after_s, backoff=t.backoff,
                                 symbols=symbols)
            self.reference_name = "rtds"
        self.clob = ClobMarketFeed(endpoints.clob_ws, clock, self.books,
                                   on_resolved=self._on_resolved,
                                   heartbeat_interval_s=t.clob_heartbeat_s,
                                   stale_after_s=t.clob_stale_after_s, backoff=t.backoff)
        self._http = http
        self._own_http = http is None
        self.windows: list[MarketWindow] = []
        self.on_window: list[Callable[[MarketWindow], None]] = []
        self.failure: str | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # --- lifecycle ----------------------------------------------------------------------

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.timings.http_timeout_s, follow_redirects=True,
                headers={"User-Agent": USER_AGENT},  # some hosts answer 403 without one
            )
        return self._http

    @property
    def gamma(self) -> GammaClient:
        return GammaClient(self.endpoints.gamma, self.http, self.series)

    @property
    def crypto_price(self) -> CryptoPriceClient:
        return CryptoPriceClient(self.endpoints.crypto_price, self.http, self.series)

    @property
    def gamma_event(self) -> GammaEventClient:
        return GammaEventClient(self.endpoints.gamma, self.http)

    @property
    def window(self) -> MarketWindow | None:
        return self.store.window

    @property
    def feeds(self) -> dict[str, WsFeed]:
        return {"binance_ws": self.binance.ws, self.reference_name: self.rtds.ws,
                "clob_ws": self.clob.ws}

    @property
    def counters(self) -> dict[str, FeedCounters]:
        return {"binance": self.binance.counters, self.reference_name: self.rtds.counters,
                "clob": self.clob.counters}

    async def __aenter__(self) -> LiveFeed:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Discover the window, connect every feed; FeedUnreachable if one cannot be reached."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timings.startup_timeout_s
        try:
            # Prices need nothing from Gamma: connect them while discovery runs.
            self._spawn(self.binance.run(), "binance")
            self._spawn(self.rtds.run(), self.reference_name)
            backfill = self._spawn(self._fetch_klines(), "klines")
            window = await self._first_window(deadline)
            self._activate(window)
            self._spawn(self.clob.run(), "clob")
            await self._await_connected(deadline)
            # Warm candles are worth a short wait, not a failed start: the feed runs without.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(backfill), max(0.0, deadline - loop.time()))
            if backfill.done() and not backfill.cancelled() and backfill.result() is not None:
                log.warning("klines_backfill_failed",
                            url=public_url(self.endpoints.binance_rest), error=backfill.result())
            self._spawn(self._patch_first_candle(), "klines-patch")
            self._spawn(self._follow_windows(window), "windows")
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        tasks = list(self._tasks)
        self._tasks.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=f"updown-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            # A feed loop only ends by cancellation; anything else is fatal and reported.
            self.failure = f"{task.get_name()}: {exc}"
            log.error("feed_task_failed", task=task.get_name(), error=str(exc))

    async def _first_window(self, deadline: float) -> MarketWindow:
        loop = asyncio.get_running_loop()
        setting, url = FeedEndpoints.SETTING["gamma"], self.endpoints.gamma
        slug = self.series.slug(self.series.start_at(self.clock.now()))
        try:
            window = await asyncio.wait_for(self.gamma.market(slug),
                                            max(0.1, deadline - loop.time()))
        except TimeoutError:
            raise FeedUnreachable(setting, url, "timed out") from None
        except httpx.HTTPStatusError as exc:
            raise FeedUnreachable(setting, url, f"HTTP {exc.response.status_code}") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise FeedUnreachable(setting, url, _reason(exc)) from None
        except GammaError as exc:
            raise FeedError(f"{setting} ({public_url(url)}): {exc}") from None
        if window is None:
            raise FeedError(f"{setting} ({public_url(url)}) lists no market {slug}")
        return window

    async def _await_connected(self, deadline: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            pending = {name: ws for name, ws in self.feeds.items() if not ws.connected.is_set()}
            if isinstance(self.rtds, RealtimeFeed) and not self.rtds.subscribed.is_set():
                # Connected is not enough here: the credentials must be accepted first.
                pending.setdefault(self.reference_name, self.rtds.ws)
            if not pending:
                return
            for name, ws in pending.items():
                if ws.consecutive_failures >= self.timings.startup_attempts:
                    raise FeedUnreachable(FeedEndpoints.SETTING[name], ws.url,
                                          ws.counters.last_error)
            if self.failure is not None:
                raise FeedError(self.failure)
            if loop.time() >= deadline:
                name, ws = next(iter(pending.items()))
                raise FeedUnreachable(FeedEndpoints.SETTING[name], ws.url,
                                      ws.counters.last_error or "timed out")
            await asyncio.sleep(0.05)

    # --- windows ------------------------------------------------------------------------

    def _activate(self, window: MarketWindow) -> None:
        previous = self.store.window
        self.store.set_window(window)
        if (previous is not None and previous.market_id != window.market_id
                and previous.market_id not in self.store.outcomes):
            # Keep listening to the closed window until its market_resolved arrives.
            self.books.linger(previous.token_ids)
        if not self.windows or self.windows[-1].market_id != window.market_id:
            self.windows.append(window)
            del self.windows[:-8]  # the recorder keeps its own list; this one stays small
        log.info("window", market_id=window.market_id, start=window.start_ts,
                 end=window.end_ts, up=window.up_token_id, down=window.down_token_id)
        if previous is not None and previous.market_id != window.market_id:
            self.clob.resubscribe()
        for callback in self.on_window:
            callback(window)

    async def _sleep_until(self, ts: float) -> None:
        # The clock is the authority on time; the loop timer only waits (re-checked after).
        delay = ts - self.clock.now()
        while delay > 0:
            await asyncio.sleep(min(delay, 30.0))
            delay = ts - self.clock.now()

    async def _follow_windows(self, window: MarketWindow) -> None:
        while True:
            resolver = self._spawn(self._resolve_price_to_beat(window), "price-to-beat")
            upcoming = await self._find_next(window)
            await self._sleep_until(window.end_ts)
            resolver.cancel()
            self._spawn(self._resolve_outcome(window), "outcome")
            while upcoming is None or upcoming.end_ts <= self.clock.now():
                upcoming = await self._discover_now()
            self._activate(upcoming)
            window = upcoming

    async def _find_next(self, window: MarketWindow) -> MarketWindow | None:
        """The next window (listed about a day ahead); a few tries before the roll-over."""
        for _ in range(5):
            try:
                found = await self.gamma.next_after(window)
            except (httpx.HTTPError, GammaError) as exc:
                log.warning("gamma_next_failed", market_id=window.market_id,
                            error=_reason(exc))
                found = None
            if found is not None:
                return found
            if self.clock.now() >= window.end_ts:
                return None
            await asyncio.sleep(min(5.0, max(0.0, window.end_ts - self.clock.now())))
        return None

    async def _discover_now(self) -> MarketWindow | None:
        try:
            found = await self.gamma.window_at(self.clock.now())
        except (httpx.HTTPError, GammaError) as exc:
            log.warning("gamma_discovery_failed", error=_reason(exc))
            found = None
        if found is None:
            await asyncio.sleep(self.timings.backoff.cap_s)
        return found

    async def _resolve_price_to_beat(self, window: MarketWindow) -> None:
        """Ask the crypto-price endpoint and Gamma's event until each has stated the open.

        Both are asked even when one already answered: the store compares verified sources
        and leaves the price to beat unverified when they disagree.
        """
        sources: dict[str, Callable[[MarketWindow], Coroutine[Any, Any, PriceToBeat | None]]]
        sources = {"gamma_event": self.gamma_event.price_to_beat}
        if self.crypto_price.supported:
            sources["crypto_price_api"] = self.crypto_price.price_to_beat
        await self._sleep_until(window.start_ts)
        failures: dict[str, int] = {}
        while sources and self.clock.now() < window.end_ts:
            for name, ask in list(sources.items()):
                try:
                    found = await ask(window)
                except httpx.HTTPError as exc:
                    failures[name] = failures.get(name, 0) + 1
                    if failures[name] in (1, 10):
                        log.warning("price_to_beat_source_failed", source=name,
                                    market_id=window.market_id, error=_reason(exc))
                    found = None
                if found is not None:
                    self.store.offer_price_to_beat(found)
                    del sources[name]
            if sources:
                await asyncio.sleep(self.timings.price_to_beat_poll_s)

    async def _resolve_outcome(self, window: MarketWindow) -> None:
        """After the close: the venue's own close price decides the outcome (ties go Up)."""
        client = self.crypto_price
        if not client.supported:
            return
        give_up = window.end_ts + self.timings.outcome_give_up_s
        while self.clock.now() < give_up and window.market_id not in self.store.outcomes:
            try:
                quote = await client.quote(window)
            except httpx.HTTPError:
                quote = None
            if (quote is not None and quote.completed and quote.open_price is not None
                    and quote.close_price is not None):
                up = quote.close_price >= quote.open_price  # ties go Up
                self.store.record_outcome(ResolvedOutcome(
                    window.market_id, "up" if up else "down", "crypto_price_api"))
                return
            await asyncio.sleep(self.timings.outcome_poll_s)

    def _on_resolved(self, event: MarketResolved) -> None:
        self.store.on_resolved(event, self.windows)

    # --- klines -------------------------------------------------------------------------

    async def _patch_first_candle(self) -> None:
        """Fetch klines again after the first minute boundary: the first live candle began
        when we connected, the exchange's complete one replaces it."""
        interval = self.store.candle_interval_s
        boundary = (self.clock.now() // interval + 1) * interval
        await self._sleep_until(boundary + 2.0)
        error = await self._fetch_klines()
        if error is not None:
            log.warning("klines_backfill_failed", url=public_url(self.endpoints.binance_rest),
                        error=error)

    async def _fetch_klines(self) -> str | None:
        """Seed the store's candles from Binance klines; the error, if any (not logged here:
        at start a failed backfill must not print before the start-up verdict)."""
        try:
            klines = await fetch_klines(self.http, self.endpoints.binance_rest, self.clock.now(),
                                        limit=self.timings.klines_history, symbol=self.symbol)
        except (httpx.HTTPError, httpx.InvalidURL, KlinesError) as exc:
            return _reason(exc)
        self.store.seed_klines(klines)
        if klines:
            self.binance.gate.seed(klines[-1].close)
        return None

    # --- readers ------------------------------------------------------------------------

    def snapshot(self) -> MarketSnapshot | None:
        return self.store.snapshot()

    def status(self) -> LiveStatus:
        return self.store.status()

    def health(self) -> dict[str, Any]:
        return {name: c.as_dict() for name, c in self.counters.items()}


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
