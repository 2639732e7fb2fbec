"""The eval suite's benchmarks (``updown bench --suite eval``).  Timing lives here, not in tests.

* Full-graph replay: ``updown eval`` of a recorded dataset on the deterministic path, several
  times (the machine is shared; the best and the median are both reported), with the parallel
  replay and, for comparison, once in a single process.
* Forecast-only: the whole 1-minute history study, load included.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from core.settings import load_settings
from evals.forecast import run_study
from evals.runner import EvalOptions, run_eval, summarize

DEFAULT_HISTORY = (Path(__file__).resolve().parents[3] / "shared" / "data" / "btc"
                   / "binance_btcusdt_spot_1m_2021_2025.csv.gz")


def _replay(dataset_dir: Path, cadence_s: float, workers: int | None) -> dict[str, Any]:
    result = run_eval(dataset_dir, EvalOptions(cadence_s=cadence_s, trader="quant",
                                               workers=workers), settings=load_settings())
    timing = summarize(result)["timing"]
    return {k: timing[k] for k in ("decisions_per_s", "decision_ms_p50", "decision_ms_p99",
                                   "replay_s", "workers", "chunks", "reruns",
                                   "graph_decisions")} | {"decisions": len(result.decisions)}


def run_eval_bench(dataset_dir: Path, cadence_s: float, history: Path | None,
                   repeats: int = 3) -> dict[str, Any]:
    runs = [_replay(dataset_dir, cadence_s, None) for _ in range(repeats)]
    rates = [r["decisions_per_s"] for r in runs]
    single = _replay(dataset_dir, cadence_s, 1)
    out: dict[str, Any] = {
        "dataset": dataset_dir.name,
        "cadence_s": cadence_s,
        "replay": {
            "decisions": runs[0]["decisions"],
            "decisions_per_s_best": max(rates),
            "decisions_per_s_median": statistics.median(rates),
            "decisions_per_s_runs": rates,
            "decision_ms_p50": statistics.median(r["decision_ms_p50"] for r in runs),
            "decision_ms_p99": statistics.median(r["decision_ms_p99"] for r in runs),
            "workers": runs[0]["workers"],
            "reruns": [r["reruns"] for r in runs],
        },
        "replay_single_process": single,
        "forecast_only": None,
    }
    if history is not None and history.is_file():
        started = time.perf_counter()
        study = run_study(history)
        total = time.perf_counter() - started
        out["forecast_only"] = {"history": history.name, "seconds": total,
                                "load_s": study.load_s, "compute_s": study.compute_s,
                                "windows": study.windows, "decisions": int(study.outcome.size)}
    return out


def eval_bench_command(dataset_dir: Path, json_out: Path | None,
                       history: Path | None = DEFAULT_HISTORY) -> None:
    """Run and print the eval suite (``updown bench --suite eval``)."""
    import json

    from rich.console import Console
    from rich.table import Table

    from core.logs import configure

    configure("WARNING")  # per-decision INFO lines would swamp the figures
    settings = load_settings()
    out = Console()
    result = run_eval_bench(dataset_dir, settings.decision_cadence_s, history)
    r, single = result["replay"], result["replay_single_process"]
    table = Table(title=f"eval suite: full-graph replay of {result['dataset']} "
                        f"({r['decisions']} decisions, cadence {result['cadence_s']:g}s, "
                        "deterministic)", title_justify="left")
    for col in ("mode", "decisions/s", "p50 ms", "p99 ms", "note"):
        table.add_column(col, justify="right")
    table.add_row(f"{r['workers']} workers", f"{r['decisions_per_s_best']:.0f} best / "
                  f"{r['decisions_per_s_median']:.0f} median",
                  f"{r['decision_ms_p50']:.2f}", f"{r['decision_ms_p99']:.2f}",
                  f"re-runs {r['reruns']}")
    table.add_row("1 process", f"{single['decisions_per_s']:.0f}",
                  f"{single['decision_ms_p50']:.2f}", f"{single['decision_ms_p99']:.2f}", "")
    out.print(table)
    fo = result["forecast_only"]
    if fo is None:
        out.print(f"forecast-only: history not found at {history} (skipped)")
    else:
        out.print(f"forecast-only over {fo['history']}: {fo['windows']:,} windows, "
                  f"{fo['decisions']:,} decisions in {fo['seconds']:.1f} s "
                  f"(load {fo['load_s']:.1f} s, compute {fo['compute_s']:.1f} s)")
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(result, indent=2) + "\n")
