"""Fit the maker parameters on recorded windows that no eval scores (as ``evals.blend_fit``).

The two fitting recordings of the blend (2025-12-25 legacy polling + Coinbase 1 m, 2026-02-02
1 s book + Binance 5 m; ``evals.blend_fit.fitting_sets``) are replayed through the whole graph
in the ``maker`` style for each point of a small grid of the quote margin and the replace
threshold; the point with the highest total P&L after fees and rebates over both sets is
kept (ties: the larger margin, the more conservative).  The scored sets
(``data/recorded/pm15m_20251226_coinbase1m``, ``../shared/data/recorded/pm15m_20251229_binance``)
are never read.

Not fitted, stated in the file: ``queue_fill_fraction`` (top-of-book recordings carry no trade
prints, so the share of the displayed size that trades at our price cannot be measured; 0.2
is an assumption), ``rebate_share`` (venue.md: about 20% of taker fees on crypto markets),
``cancel_last_s`` (the guard's no-entry window, 60 s), ``taker_deadline_s``, the replace rate
limits and the exit margins (exits are off by default).

Run: ``updown fit maker [--shared ../shared/data] [--write]`` (``agent.cli.fit``).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from core.maker import MAKER_PARAMS_PATH, MakerParams
from core.settings import Settings
from evals.blend_fit import fitting_sets
from evals.execution_compare import run_style, style_summary
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed

MARGINS = (0.0, 0.01, 0.02, 0.03, 0.05)
REPLACE_THRESHOLDS = (0.01, 0.03)
CADENCE_S = 30.0
VERSION = "maker_v1"


def run_maker_fit(shared: Path, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings(_env_file=None)  # type: ignore[call-arg]
    base = MakerParams()
    grid: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        sets = fitting_sets(shared, Path(tmp))
        feeds = [ReplayFeed(load_dataset(d), cadence_s=CADENCE_S,
                            max_price_age_s=settings.max_price_age_s) for d in sets]
        for margin in MARGINS:
            for threshold in REPLACE_THRESHOLDS:
                params = replace(base, margin=margin, replace_threshold=threshold)
                rows = [style_summary(run_style(f, settings, "maker", cadence_s=CADENCE_S,
                                                use_llm=False, params=params),
                                      params.rebate_share) for f in feeds]
                grid.append({"margin": margin, "replace_threshold": threshold,
                             "pnl_usd": round(sum(r["pnl_usd"] for r in rows), 4),
                             "trades": sum(r["trades"] for r in rows),
                             "fill_rate": [r["fill_rate"] for r in rows]})
        names = [d.name for d in sets]
        windows = sum(len(f.markets) for f in feeds)
    best = max(grid, key=lambda g: (g["pnl_usd"], g["margin"], g["replace_threshold"]))
    return {"best": best, "grid": grid, "sets": names, "windows": windows}


def write_maker_fit(fit: dict[str, Any], path: Path = MAKER_PARAMS_PATH) -> Path:
    base = MakerParams()
    params = {**{k: v for k, v in base.as_dict().items() if k != "version"},
              "margin": fit["best"]["margin"],
              "replace_threshold": fit["best"]["replace_threshold"]}
    path.write_text(json.dumps({
        "version": VERSION, "params": params,
        "fit": {"sets": fit["sets"], "windows": fit["windows"], "cadence_s": CADENCE_S,
                "style": "maker", "trader": "quant", "objective": "total P&L after fees and "
                "rebates", "grid": fit["grid"],
                "fitted": ["margin", "replace_threshold"],
                "assumed": {"queue_fill_fraction": "no trade prints in top-of-book data",
                            "rebate_share": "venue.md, about 20% on crypto markets",
                            "cancel_last_s": "the guard's no-entry window"}}},
        indent=2) + "\n", encoding="utf-8")
    return path

