"""The live-market commands: ``updown stream``, ``updown markets`` and ``updown record``.

``register(app)`` adds them to the ``updown`` CLI.  Every failure a user can cause (an
endpoint that cannot be reached, an output directory that already holds a dataset) is a
``UserError`` (``FeedError``, ``RecordError``): one line on stderr and exit code 2, like the
rest of the CLI.  ``stream`` and ``markets`` keep
stderr to warnings unless ``LOG_LEVEL=DEBUG``: their output is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agent.cli import common

if TYPE_CHECKING:
    import httpx

    from core.settings import Settings
    from core.snapshot import BookTop
    from tools.polymarket.gamma import WindowSeries
    from tools.polymarket.live_feed import LiveFeed
    from tools.polymarket.store import LiveStatus


class WindowLength(StrEnum):
    m15 = "15m"
    m5 = "5m"


def _series(window: WindowLength) -> WindowSeries:
    from tools.polymarket.gamma import SERIES

    return SERIES[window.value]


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> Iterator[None]:
    """Ctrl-C / SIGTERM end the command cleanly (files closed, exit 0) instead of a traceback."""
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


def _run(main: Callable[[], Any]) -> Any:
    return asyncio.run(main())


def _live_feed(settings: Settings, series: WindowSeries) -> LiveFeed:
    from core.clock import SystemClock
    from tools.polymarket.live_feed import FeedEndpoints, LiveFeed

    return LiveFeed(FeedEndpoints.from_settings(settings), SystemClock(), series=series)


# --- stream ---------------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _age(value: float | None) -> str:
    return "" if value is None else f" ({value:.1f}s)"


def status_line(status: LiveStatus) -> str:
    """One human-readable line of the live market."""
    from tools.polymarket.gamma import iso_z

    ttc = status.time_to_close_s
    close = "-" if ttc is None else f"{int(ttc) // 60}:{int(ttc) % 60:02d}"
    if status.price_to_beat is None:
        beat = "beat -"
    else:
        trust = "verified" if status.price_to_beat_verified else "UNVERIFIED"
        beat = f"beat {status.price_to_beat:.2f} {trust} ({status.price_to_beat_source})"
    return (
        f"{iso_z(status.as_of)} {status.market_id or '-'}  "
        f"BTC {_fmt(status.btc_price)}{_age(status.btc_price_age_s)}  "
        f"CL {_fmt(status.reference_price)}{_age(status.reference_age_s)}  {beat}  "
        f"Up {_fmt(status.up_bid, 3)}/{_fmt(status.up_ask, 3)}  "
        f"Down {_fmt(status.down_bid, 3)}/{_fmt(status.down_ask, 3)}{_age(status.book_age_s)}  "
        f"close in {close}"
    )


def status_json(feed: LiveFeed) -> dict[str, Any]:
    out = feed.status().to_json()
    out["feeds"] = {
        name: {"connected": ws.is_connected, "reconnects": max(0, ws.counters.connects - 1),
               "dropped": ws.counters.dropped_total}
        for name, ws in (("binance", feed.binance.ws), ("rtds", feed.rtds.ws),
                         ("clob", feed.clob.ws))
    }
    return out


def _write(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _stream(settings: Settings, series: WindowSeries, as_json: bool,
                  duration: float | None, interval: float) -> None:
    from tools.polymarket.live_feed import FeedError

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    feed = _live_feed(settings, series)
    with _stop_on_signals(loop, stop):
        await feed.start()
        try:
            end = None if duration is None else loop.time() + duration
            while not stop.is_set():
                if feed.failure is not None:
                    raise FeedError(feed.failure)
                _write(json.dumps(status_json(feed)) if as_json else status_line(feed.status()))
                wait = interval if end is None else min(interval, end - loop.time())
                if wait <= 0:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), wait)
        finally:
            await feed.aclose()


def stream(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: until Ctrl-C).", min=0)] = None,
    interval: Annotated[float, typer.Option(help="Seconds between lines.", min=0.05)] = 1.0,
    window: Annotated[WindowLength, typer.Option(help="Window series.")] = WindowLength.m15,
) -> None:
    """Live BTC, the Chainlink reference, the window, its price to beat and the Up/Down book."""
    settings = common.settings(quiet=True)
    _run(lambda: _stream(settings, _series(window), as_json, duration, interval))


# --- markets --------------------------------------------------------------------------------


async def _markets(settings: Settings, series: WindowSeries) -> list[dict[str, Any]]:
    import httpx

    from core.clock import SystemClock
    from feeds.ws import USER_AGENT
    from tools.polymarket.gamma import GammaClient, GammaError, iso_z
    from tools.polymarket.live_feed import FeedEndpoints, FeedError, FeedUnreachable

    now = SystemClock().now()
    current_start = series.start_at(now)
    async with httpx.AsyncClient(timeout=5.0, follow_redirects=True,
                                 headers={"User-Agent": USER_AGENT}) as http:
        gamma = GammaClient(settings.polymarket_gamma_url, http, series)
        rows: list[dict[str, Any]] = []
        for label, start in (("current", current_start),
                             ("next", current_start + series.length_s)):
            slug = series.slug(start)
            try:
                window = await gamma.market(slug)
            except httpx.HTTPError as exc:
                raise FeedUnreachable(FeedEndpoints.SETTING["gamma"],
                                      settings.polymarket_gamma_url,
                                      f"{type(exc).__name__}: {exc}") from None
            except GammaError as exc:
                raise FeedError(f"POLYMARKET_GAMMA_URL: {exc}") from None
            row: dict[str, Any] = {"window": label, "market_id": slug,
                                   "listed": window is not None}
            if window is not None:
                row.update({
                    "start": iso_z(window.start_ts), "end": iso_z(window.end_ts),
                    "time_to_close_s": round(max(0.0, window.end_ts - now), 1),
                    "condition_id": window.condition_id,
                    "up_token_id": window.up_token_id, "down_token_id": window.down_token_id,
                    "up_price": window.up_price, "down_price": window.down_price,
                    "tick_size": window.tick_size, "min_order_shares": window.min_order_shares,
                    "fee_rate": window.fee_rate, "fee_exponent": window.fee_exponent,
                    "accepting_orders": window.accepting_orders,
                })
                for side, token in (("up", window.up_token_id), ("down", window.down_token_id)):
                    top, error = await _book_top(http, settings.polymarket_clob_url, token)
                    row[f"{side}_bid"] = None if top is None else top.bid
                    row[f"{side}_ask"] = None if top is None else top.ask
                    if error is not None:  # the listing is still worth showing without the book
                        row[f"{side}_book_error"] = error
            rows.append(row)
    return rows


async def _book_top(http: httpx.AsyncClient, clob_url: str, token: str
                    ) -> tuple[BookTop | None, str | None]:
    """A token's best bid/ask for the listing, and why it is missing when it is.  A read, so a
    transport failure (timeout, dropped connection) is tried once more; an HTTP error answer
    is not."""
    import httpx

    from tools.polymarket.market_channel import fetch_book_top

    for attempt in range(2):
        try:
            return await fetch_book_top(http, clob_url, token), None
        except httpx.TransportError as exc:
            if attempt == 1:
                return None, type(exc).__name__
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
    raise AssertionError("unreachable")


def markets(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    window: Annotated[WindowLength, typer.Option(help="Window series.")] = WindowLength.m15,
) -> None:
    """The current and next windows: token ids, Gamma prices and the CLOB best bid/ask."""
    from rich.console import Console
    from rich.table import Table

    settings = common.settings(quiet=True)
    rows: list[dict[str, Any]] = _run(lambda: _markets(settings, _series(window)))
    if as_json:
        _write(json.dumps(rows, indent=2))
        return
    console = Console()
    for row in rows:
        table = Table(title=f"{row['window']} window: {row['market_id']}", show_header=False)
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        if not row["listed"]:
            table.add_row("listed", "no (Gamma does not list this window yet)")
        for key, value in row.items():
            if key in ("window", "market_id", "listed"):
                continue
            table.add_row(key, "-" if value is None else str(value))
        console.print(table)


# --- record ---------------------------------------------------------------------------------


async def _record(settings: Settings, series: WindowSeries, out: Path,
                  duration: float | None) -> None:
    from core.clock import SystemClock
    from tools.polymarket.live_feed import FeedEndpoints, LiveFeed
    from tools.polymarket.recorder import Recorder

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    clock = SystemClock()
    feed = LiveFeed(FeedEndpoints.from_settings(settings), clock, series=series)
    recorder = Recorder(out, feed, clock)
    recorder.prepare()  # a bad directory fails before anything connects
    with _stop_on_signals(loop, stop):
        await feed.start()
        try:
            until = "Ctrl-C" if duration is None else f"{duration:g}s"
            sys.stderr.write(f"recording {series.slug_prefix} to {out} (until {until})\n")
            summary = await recorder.run(stop, duration)
        finally:
            await feed.aclose()
    _write(f"recorded {summary.windows} window(s): {summary.price_rows} live price rows "
           f"(+{summary.warmup_rows} warm-up), {summary.book_rows} book rows -> {out}")


def record(
    out: Annotated[Path, typer.Option("--out", help="Output dataset directory (new or empty).")],
    duration: Annotated[float | None, typer.Option(
        help="Stop after this many seconds (default: until Ctrl-C).", min=1)] = None,
    window: Annotated[WindowLength, typer.Option(help="Window series.")] = WindowLength.m15,
) -> None:
    """Record live markets in the recorded-markets interchange format (for `updown eval`)."""
    settings = common.settings()
    _run(lambda: _record(settings, _series(window), out, duration))


def register(app: typer.Typer) -> None:
    """Add ``stream``, ``markets`` and ``record`` to the ``updown`` CLI."""
    app.command()(stream)
    app.command()(markets)
    app.command()(record)
