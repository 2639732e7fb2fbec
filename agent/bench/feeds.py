"""Load benchmark of the live price path (``updown bench --suite feeds``).

A local websocket server (a child process, so it has its own core) pushes Binance-format
``btcusdt@trade`` frames at ``--rate`` messages/s; this process consumes them through the real
path (``WsFeed`` -> ``parse_trade`` -> ``TradeGate`` -> ``SnapshotStore.on_trade``) while
building a snapshot 10 times a second and, with ``--graph``, running the trading graph on one
every second.  It reports throughput (msgs/s, and per CPU-second of this process), the
latency from the exchange time ``E`` in each frame to the state update (p50/p90/p99/max),
event-loop lag, garbage-collector pauses, memory (RSS over time and peak), messages the server
had to skip because the consumer fell 8 MB behind, and the machine's load average (on a shared
box other work inflates every latency).  Loopback only; bounded in time.

Like a long-running runner, the bench calls ``gc.freeze()`` once start-up (imports, the
compiled graph) is done: otherwise a full collection walks the whole start-up heap and stops
the event loop for up to ~200 ms (``--no-gc-freeze`` shows it).

The server stamps ``E`` in whole milliseconds at the moment it writes a batch (as Binance
does), so latencies carry up to 1 ms of quantisation.  The server writes raw websocket frames
straight to its transport (1 ms batches): a Python ``send`` per message could not produce
50,000 messages/s on one core, and this benchmark measures the consumer.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import random
import resource
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.clock import SystemClock
from feeds.binance import BinanceTradeFeed, Trade
from tools.polymarket.gamma import MarketWindow
from tools.polymarket.market_channel import BookSnapshot
from tools.polymarket.price_to_beat import PriceToBeat
from tools.polymarket.store import SnapshotStore

# Latency histogram: 0.1 ms buckets up to 2 s, then one overflow bucket.
_BUCKET_S = 0.0001
_BUCKETS = 20_000
# The server stops writing while this much is queued in its transport: the benchmark then
# measures what the consumer sustains instead of growing the server's memory.
_SERVER_BACKLOG_BYTES = 8 * 2**20
BENCH_TOKENS = ("bench-up", "bench-down")


# --- the server (child process) ------------------------------------------------------------------


def _frame(payload: bytes) -> bytes:
    """One unmasked server-to-client text frame (RFC 6455)."""
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    return bytes((0x81, 126)) + struct.pack("!H", n) + payload


def _serve(port_queue: Any, rate: float, seconds: float, skipped_out: Any) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.protocol import State

    clock = SystemClock()
    rng = random.Random(20260101)

    async def push(ws: ServerConnection) -> None:
        transport = ws.transport
        loop = asyncio.get_running_loop()
        began = loop.time()
        sent = 0
        trade_id = 1
        price = 100_000.0  # synthetic
        while loop.time() - began < seconds and ws.state is State.OPEN:
            due = int((loop.time() - began) * rate) - sent
            if due > 0 and transport.get_write_buffer_size() < _SERVER_BACKLOG_BYTES:
                stamp = int(clock.now() * 1000)
                chunks = []
                for _ in range(due):
                    price = round(price + rng.uniform(-0.5, 0.5), 2)
                    chunks.append(_frame(
                        b'{"e":"trade","E":%d,"s":"BTCUSDT","t":%d,"p":"%.2f",'
                        b'"q":"0.00100000","T":%d,"m":false,"M":true}'
                        % (stamp, trade_id, price, stamp)))
                    trade_id += 1
                transport.write(b"".join(chunks))
                sent += due
            elif due > 0:
                sent += due  # backlogged: these messages are skipped, not queued
                with skipped_out.get_lock():
                    skipped_out.value += due
            await asyncio.sleep(0.001)
        if ws.state is State.OPEN:
            await ws.close()

    async def main() -> None:
        async with serve(push, "127.0.0.1", 0, compression=None, ping_interval=None) as server:
            port_queue.put(next(iter(server.sockets)).getsockname()[1])
            await asyncio.sleep(seconds + 30)

    asyncio.run(main())


# --- measurements -------------------------------------------------------------------------------


class Histogram:
    """Fixed-bucket latency histogram: O(1) per sample, bounded memory."""

    def __init__(self) -> None:
        self.counts = [0] * (_BUCKETS + 1)
        self.n = 0
        self.max_s = 0.0

    def add(self, seconds: float) -> None:
        i = int(seconds / _BUCKET_S) if seconds > 0 else 0
        self.counts[i if i < _BUCKETS else _BUCKETS] += 1
        self.n += 1
        if seconds > self.max_s:
            self.max_s = seconds

    def percentile_ms(self, q: float) -> float:
        if not self.n:
            return float("nan")
        rank = q * self.n
        seen = 0
        for i, count in enumerate(self.counts):
            seen += count
            if seen >= rank:
                return (i + 1) * _BUCKET_S * 1000.0  # upper edge: never flatters
        return self.max_s * 1000.0


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _loadavg() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return float("nan")


def _runqueue_wait_s() -> float:
    """Time this process's main thread (the event loop) spent runnable but waiting for a CPU:
    the share of every latency that other processes on the box, not this code, caused."""
    try:
        return int(Path("/proc/self/schedstat").read_text().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return float("nan")


def _steal_s() -> float:
    """CPU time the hypervisor took from this VM, summed over cores (``steal`` in /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class BenchResult:
    seconds: float
    target_rate: float
    messages: int
    accepted: int
    dropped: dict[str, int]
    throughput_msgs_s: float
    msgs_per_cpu_s: float
    cpu_utilisation: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    loop_lag_p50_ms: float
    loop_lag_p99_ms: float
    loop_lag_max_ms: float
    # Loop lag minus the run-queue wait inside the same tick: what this process itself caused.
    own_lag_p99_ms: float
    own_lag_max_ms: float
    runqueue_wait_s: float
    steal_s: float
    snapshots: int
    snapshot_build_us: float
    graph_decisions: int
    graph_p99_ms: float
    rss_start_mb: float
    rss_end_mb: float
    rss_peak_mb: float
    rss_samples_mb: list[float]
    connects: int
    # Messages the server could not write because its 8 MB send buffer was full (the
    # consumer fell that far behind): counted here, never silently.
    server_skipped: int
    gc_frozen: bool
    gc_collections: list[int]
    gc_max_pause_ms: list[float]
    # Context: the server's own CPU, and the machine's load average before/after (a shared
    # box running other work starves both processes and inflates every latency).
    server_cpu_s: float
    loadavg_before: float
    loadavg_after: float

    def to_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in vars(self).items()}


def _bench_window(now: float) -> MarketWindow:
    """A synthetic window around ``now`` so snapshots (and the graph) have something to read."""
    return MarketWindow(
        slug="btc-updown-15m-bench", asset="BTC", condition_id="0xbench",
        start_ts=now - 300.0, end_ts=now + 600.0, up_token_id=BENCH_TOKENS[0],
        down_token_id=BENCH_TOKENS[1], tick_size=0.01, min_order_shares=5.0, fee_rate=0.07,
        fee_exponent=1.0, twap_enabled=True, twap_lookback_s=60, accepting_orders=True,
        closed=False,
    )


async def _graph_runner() -> Callable[[Any], Any] | None:
    from core.guard import GuardLimits
    from core.settings import load_settings
    from graphs.context import Context
    from graphs.graph import RECURSION_LIMIT, compile_graph

    compiled = compile_graph()
    ctx = Context(use_llm=False, clock=SystemClock(),
                  limits=GuardLimits.for_replay(load_settings()))

    async def decide(snapshot: Any) -> Any:
        return await compiled.ainvoke({"snapshot": snapshot, "decision_id": "bench"},
                                      context=ctx, config={"recursion_limit": RECURSION_LIMIT})

    return decide


class GcPauses:
    """Pauses of the cyclic garbage collector by generation (a full collection of a large
    heap stops the event loop for tens of milliseconds: the latency tail this bench hunts)."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.max_s = [0.0, 0.0, 0.0]
        self.total_s = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        took = time.perf_counter() - self._started
        generation = info["generation"]
        self.count[generation] += 1
        self.max_s[generation] = max(self.max_s[generation], took)
        self.total_s += took


async def run_bench(seconds: float, rate: float, *, with_graph: bool = True,
                    gc_freeze: bool = True) -> BenchResult:
    clock = SystemClock()
    store = SnapshotStore(clock)
    store.set_window(_bench_window(clock.now()))
    store.offer_price_to_beat(PriceToBeat("btc-updown-15m-bench", 100_000.0,
                                          "crypto_price_api", True))
    latency = Histogram()
    lag = Histogram()
    own_lag = Histogram()
    graph_latency = Histogram()
    now = clock.now
    store_trade, record = store.on_trade, latency.add

    def on_trade(trade: Trade) -> None:
        store_trade(trade)
        # Stamped after the store holds the trade: exchange time to state, not to parse.
        record(now() - trade.event_ts)

    decide = await _graph_runner() if with_graph else None
    if decide is not None:
        # The first decision pays one-off costs (imports, caches): not what the load measures.
        warm = SnapshotStore(clock)
        warm.set_window(store.window)  # type: ignore[arg-type]
        warm.on_trade(Trade(0, 100_000.0, 0.001, now() - 1.0, now() - 1.0, False))
        snap = warm.snapshot()
        for _ in range(2):
            await decide(snap)

    if gc_freeze:
        # What a long-running runner does once started: move everything allocated at start-up
        # (modules, the compiled graph, caches) out of the collector's reach, so a full
        # collection walks only what the load allocates instead of the whole heap.
        gc.collect()
        gc.freeze()
    pauses = GcPauses()
    load_before = _loadavg()
    children_cpu0 = _children_cpu_s()
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    skipped = ctx.Value("q", 0)
    server = ctx.Process(target=_serve, args=(ports, rate, seconds + 1.0, skipped), daemon=True)
    server.start()
    try:
        port = ports.get(timeout=60)
        feed = BinanceTradeFeed(f"ws://127.0.0.1:{port}/ws/btcusdt@trade", clock, on_trade)
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        snapshots = 0
        snapshot_s = 0.0
        rss: list[float] = []

        async def measure_lag() -> None:
            while not stop.is_set():
                t0, waited0 = loop.time(), _runqueue_wait_s()
                await asyncio.sleep(0.01)
                late = max(0.0, loop.time() - t0 - 0.01)
                lag.add(late)
                own_lag.add(max(0.0, late - (_runqueue_wait_s() - waited0)))

        async def consume() -> None:
            nonlocal snapshots, snapshot_s
            tick = 0
            while not stop.is_set():
                await asyncio.sleep(0.1)
                for token, bid, ask in ((BENCH_TOKENS[0], 0.54, 0.56),
                                        (BENCH_TOKENS[1], 0.44, 0.46)):
                    store.books.apply(BookSnapshot(token, "0xbench", ((bid, 500.0),),
                                                   ((ask, 500.0),), now()))
                t0 = time.perf_counter()
                snap = store.snapshot()
                snapshot_s += time.perf_counter() - t0
                snapshots += 1
                tick += 1
                if decide is not None and snap is not None and tick % 10 == 0:
                    t1 = time.perf_counter()
                    await decide(snap)
                    graph_latency.add(time.perf_counter() - t1)
                if tick % 50 == 0:
                    rss.append(round(_rss_mb(), 1))

        feed_task = asyncio.create_task(feed.run())
        while feed.counters.accepted == 0:
            if loop.time() > 0 and feed.counters.connect_attempts > 5:
                raise RuntimeError(f"bench server unreachable: {feed.counters.last_error}")
            await asyncio.sleep(0.01)
        # Measure from the first message on: connection setup is not throughput.
        rss_start = _rss_mb()
        cpu0, t0 = _cpu_s(), loop.time()
        waited0, steal0 = _runqueue_wait_s(), _steal_s()
        accepted0 = feed.counters.accepted
        skipped0 = skipped.value
        gc.callbacks.append(pauses)
        helpers = [asyncio.create_task(measure_lag()), asyncio.create_task(consume())]
        await asyncio.sleep(seconds)
        elapsed = loop.time() - t0
        cpu = _cpu_s() - cpu0
        waited, steal = _runqueue_wait_s() - waited0, _steal_s() - steal0
        accepted = feed.counters.accepted - accepted0
        server_skipped = skipped.value - skipped0
        gc.callbacks.remove(pauses)
        stop.set()
        for task in (*helpers, feed_task):
            task.cancel()
        for task in (*helpers, feed_task):
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        server.terminate()
        server.join(5)
        if gc_freeze:
            gc.unfreeze()

    counters = feed.counters
    return BenchResult(
        seconds=elapsed, target_rate=rate, messages=counters.frames,
        accepted=counters.accepted, dropped=dict(counters.dropped),
        throughput_msgs_s=accepted / elapsed, msgs_per_cpu_s=accepted / cpu if cpu else 0.0,
        cpu_utilisation=cpu / elapsed,
        latency_p50_ms=latency.percentile_ms(0.50), latency_p90_ms=latency.percentile_ms(0.90),
        latency_p99_ms=latency.percentile_ms(0.99), latency_max_ms=latency.max_s * 1000.0,
        loop_lag_p50_ms=lag.percentile_ms(0.50), loop_lag_p99_ms=lag.percentile_ms(0.99),
        loop_lag_max_ms=lag.max_s * 1000.0, own_lag_p99_ms=own_lag.percentile_ms(0.99),
        own_lag_max_ms=own_lag.max_s * 1000.0, runqueue_wait_s=waited, steal_s=steal,
        snapshots=snapshots,
        snapshot_build_us=snapshot_s / snapshots * 1e6 if snapshots else float("nan"),
        graph_decisions=graph_latency.n, graph_p99_ms=graph_latency.percentile_ms(0.99),
        rss_start_mb=rss_start, rss_end_mb=_rss_mb(),
        rss_peak_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        rss_samples_mb=rss, connects=counters.connects, server_skipped=server_skipped,
        gc_frozen=gc_freeze, gc_collections=pauses.count,
        gc_max_pause_ms=[round(x * 1000.0, 2) for x in pauses.max_s],
        server_cpu_s=_children_cpu_s() - children_cpu0, loadavg_before=load_before,
        loadavg_after=_loadavg(),
    )


def report(result: BenchResult) -> str:
    r = result
    return "\n".join([
        f"feeds load benchmark: {r.target_rate:,.0f} trade msgs/s target for {r.seconds:.0f} s "
        f"(loopback, Binance format)",
        f"  throughput   {r.throughput_msgs_s:,.0f} msgs/s accepted; {r.msgs_per_cpu_s:,.0f} msgs "
        f"per CPU-second ({r.cpu_utilisation:.0%} of one core); drops {r.dropped or 'none'}; "
        f"connects {r.connects}; server skipped {r.server_skipped:,}",
        f"  E->state     p50 {r.latency_p50_ms:.1f} ms  p90 {r.latency_p90_ms:.1f} ms  "
        f"p99 {r.latency_p99_ms:.1f} ms  max {r.latency_max_ms:.1f} ms",
        f"  loop lag     p50 {r.loop_lag_p50_ms:.1f} ms  p99 {r.loop_lag_p99_ms:.1f} ms  "
        f"max {r.loop_lag_max_ms:.1f} ms; less run-queue wait: p99 {r.own_lag_p99_ms:.1f} ms  "
        f"max {r.own_lag_max_ms:.1f} ms",
        f"  snapshots    {r.snapshots} built, {r.snapshot_build_us:.0f} us each; graph "
        f"decisions {r.graph_decisions} (p99 {r.graph_p99_ms:.1f} ms)",
        f"  gc           {'frozen after start-up' if r.gc_frozen else 'not frozen'}; "
        f"collections by generation {r.gc_collections}, max pause {r.gc_max_pause_ms} ms",
        f"  memory       RSS {r.rss_start_mb:.0f} MB at start, {r.rss_end_mb:.0f} MB at end, "
        f"peak {r.rss_peak_mb:.0f} MB; samples {r.rss_samples_mb}",
        f"  context      server process {r.server_cpu_s:.1f} CPU-s; load average "
        f"{r.loadavg_before:.2f} before, {r.loadavg_after:.2f} after (cores: {os.cpu_count()}); "
        f"event loop waited {r.runqueue_wait_s:.2f} s for a CPU; VM steal {r.steal_s:.2f} CPU-s",
    ])


def feeds_bench_command(seconds: float, rate: float, *, with_graph: bool, gc_freeze: bool,
                        json_out: Path | None) -> None:
    """Run and print the feeds suite (``updown bench --suite feeds``)."""
    from core.logs import configure

    configure("WARNING")
    result = asyncio.run(run_bench(seconds, rate, with_graph=with_graph, gc_freeze=gc_freeze))
    sys.stdout.write(report(result) + "\n")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result.to_json(), indent=2) + "\n")
