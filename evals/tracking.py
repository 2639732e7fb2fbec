"""Optional: log an eval as a LangSmith experiment (only when ``LANGSMITH_API_KEY`` is set).

The experiment is a LangSmith project tied to a one-example dataset named after the recorded
dataset (``updown-eval/<name>``), holding one run whose outputs are the eval JSON and whose
feedback carries the headline numbers (Brier and log loss of each forecaster, P&L, hit rate,
decisions per second), so experiments on the same data line up side by side in the UI.

Failure to log never fails the eval: the metrics are already printed and written; a warning
says what went wrong.  The key is read by the LangSmith client itself and never printed.
"""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime
from typing import Any

from rich.console import Console

from core.clock import SystemClock

err = Console(stderr=True)


def _feedback(summary: dict[str, Any]) -> dict[str, float]:
    scores: dict[str, float] = {}
    for name, block in (summary.get("forecast") or {}).items():
        if block:
            for key in ("brier", "log_loss", "ece"):
                if block.get(key) is not None:
                    scores[f"{name}_{key}"] = float(block[key])
    trading = summary.get("trading") or {}
    for key in ("pnl_usd", "hit_rate", "fees_usd", "max_drawdown_usd"):
        if trading.get(key) is not None:
            scores[key] = float(trading[key])
    timing = summary.get("timing") or {}
    if timing.get("decisions_per_s") is not None:
        scores["decisions_per_s"] = float(timing["decisions_per_s"])
    return scores


def log_to_langsmith(summary: dict[str, Any], *, client: Any = None,
                     now: datetime | None = None) -> str | None:
    """Create the experiment; returns its project name, or None when not configured/failed.

    ``client`` is a ``langsmith.Client`` (built from the environment when None); ``now`` stamps
    the run (defaults to the current time: this is bookkeeping, not a decision input).
    """
    if client is None and not os.environ.get("LANGSMITH_API_KEY"):
        return None
    try:
        if client is None:
            from langsmith import Client

            client = Client()
        dataset_name = f"updown-eval/{summary['dataset']}"
        if client.has_dataset(dataset_name=dataset_name):
            dataset = client.read_dataset(dataset_name=dataset_name)
        else:
            dataset = client.create_dataset(
                dataset_name, description="updown offline eval on a recorded dataset")
            client.create_examples(dataset_id=dataset.id, examples=[{
                "inputs": {"dataset": summary["dataset"], "windows": summary["windows"]},
                "outputs": {"windows": summary["windows"]}}])
        example_id = next(iter(client.list_examples(dataset_id=dataset.id, limit=1))).id
        stamp = (now or datetime.fromtimestamp(SystemClock().now(), UTC)).replace(microsecond=0)
        project = (f"updown-eval {summary['dataset']} {summary.get('trader', '')} "
                   f"cadence {summary.get('cadence_s', '')}s {stamp.isoformat()} "
                   f"{uuid.uuid4().hex[:6]}")
        client.create_project(project, reference_dataset_id=dataset.id,
                              metadata={"trader": summary.get("trader"),
                                        "cadence_s": summary.get("cadence_s"),
                                        "decisions": summary.get("decisions")})
        run_id = uuid.uuid4()
        client.create_run(
            "updown eval", {"dataset": summary["dataset"], "windows": summary["windows"]},
            "chain", project_name=project, id=run_id, reference_example_id=example_id,
            outputs={k: v for k, v in summary.items() if k != "reliability"},
            start_time=stamp, end_time=stamp)
        for key, score in _feedback(summary).items():
            client.create_feedback(run_id, key, score=score)
        return project
    except Exception as exc:  # logging is optional: say why and carry on
        err.print(f"warning: LangSmith logging failed ({type(exc).__name__}); the eval "
                  "results above are complete", highlight=False)
        return None
