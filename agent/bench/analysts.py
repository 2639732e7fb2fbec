"""Per-tick cost of the analysts on the live path: incremental indicators + fair value.

``updown bench --suite analysts``: every recorded price/book tick of a dataset (each second of
its book, replayed in time order through ``ReplayFeed``) is one call of the technical analyst
(``tools.indicators_stream.TechnicalAnalyst``: a cache hit inside a minute, one O(1) update on
a new candle, a rebuild of at most 120 candles when the hourly anchor moves) and of
``estimate_fair_value``.  Snapshot construction is not timed (the feed builds it either way).
Timing lives here, never in tests.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.fair_value import estimate_fair_value
from tools.indicators_stream import TechnicalAnalyst


def run_analyst_bench(dataset_dir: Path, ticks: int = 20_000, cadence_s: float = 1.0
                      ) -> dict[str, Any]:
    feed = ReplayFeed(load_dataset(dataset_dir))
    snaps = []
    for market in feed.markets:
        for t in feed.decision_times(market, cadence_s):
            snaps.append(feed.snapshot_at(market, t))
            if len(snaps) >= ticks:
                break
        if len(snaps) >= ticks:
            break
    analyst = TechnicalAnalyst()
    tech_ns = np.empty(len(snaps))
    fair_ns = np.empty(len(snaps))
    both_ns = np.empty(len(snaps))
    clock = time.perf_counter_ns
    for i, snap in enumerate(snaps):
        t0 = clock()
        analyst.analyse(snap.candles)
        t1 = clock()
        estimate_fair_value(snap)
        t2 = clock()
        tech_ns[i], fair_ns[i], both_ns[i] = t1 - t0, t2 - t1, t2 - t0

    def pct(a: np.ndarray) -> dict[str, float]:
        ms = a / 1e6
        return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                "max_ms": float(ms.max())}

    return {"dataset": dataset_dir.name, "ticks": len(snaps), "cadence_s": cadence_s,
            "analysts": pct(both_ns), "technical_analyst": pct(tech_ns),
            "fair_value": pct(fair_ns)}


def analyst_bench_command(dataset_dir: Path, json_out: Path | None) -> None:
    import json

    from rich.console import Console
    from rich.table import Table

    result = run_analyst_bench(dataset_dir)
    table = Table(title=f"analysts per tick on {result['dataset']} ({result['ticks']} ticks, "
                        f"every {result['cadence_s']:g}s)", title_justify="left")
    for col in ("path", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right")
    for key in ("analysts", "technical_analyst", "fair_value"):
        r = result[key]
        table.add_row(key, f"{r['p50_ms']:.4f}", f"{r['p99_ms']:.4f}", f"{r['max_ms']:.3f}")
    Console().print(table)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
