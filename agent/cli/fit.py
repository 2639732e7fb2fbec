"""``updown fit``: refit the fair value's versioned parameters (``data/models/fair_value_v1.json``).

* ``updown fit blend [--shared DIR] [--write]``: the market blend weights, fitted on the two
  recorded Polymarket sets no eval scores (``evals.blend_fit``).
* ``updown fit walkforward HISTORY [--write]``: the tails and the variance scale by minutes
  left, chosen on all months of the 1-minute history by the walk-forward study
  (``evals.walkforward`` through ``evals.forecast``).
* ``updown fit maker [--shared DIR] [--write]``: the maker quote margin and replace threshold,
  fitted on the same two recordings in the ``maker`` style (``evals.maker_fit``;
  ``data/models/maker_v1.json``).

Without ``--write`` nothing is written: the figures are printed for review.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli import common
from core.errors import UserError

fit_app = typer.Typer(no_args_is_help=True, help="Refit the fair value's versioned parameters "
                      "(prints the fit; --write stores it in the model file).")

# The blend's fitting recordings, relative to --shared (see evals.blend_fit).
BLEND_INPUTS = ("polymarket_btc15m/market_data_20251225_legacy.csv.gz",
                "polymarket_btc15m/updown15m_1s_bid_ask_20260202.csv.gz",
                "btc/coinbase_btcusd_1m_close_20251211_20251229.csv.gz",
                "btc/binance_spot_btcusdt_5m_20251201_20260219.csv.gz")


@fit_app.command("blend")
def blend(
    shared: Annotated[Path, typer.Option(
        help="The shared data directory holding the fitting recordings.")]
    = Path("../shared/data"),
    write: Annotated[bool, typer.Option(
        "--write", help="Store the weights in the versioned model file.")] = False,
) -> None:
    """Fit the market blend of the fair value on recordings that no eval scores."""
    from evals.blend_fit import run_blend_fit, write_blend_fit

    common.settings(quiet=True)
    missing = [name for name in BLEND_INPUTS if not (shared / name).is_file()]
    if missing:
        raise UserError(f"--shared {shared}: missing {', '.join(missing)}")
    fit = run_blend_fit(shared)
    sys.stdout.write(f"fitting rows {fit.rows} in {fit.windows} windows: w_model "
                     f"{fit.w_model:.4f} w_market {fit.w_market:.4f}\n")
    for name, brier in fit.brier.items():
        sys.stdout.write(f"  {name} Brier {brier:.4f}\n")
    if not math.isfinite(fit.w_model + fit.w_market):
        raise UserError("the blend fit did not converge: nothing written")
    if write:
        sys.stdout.write(f"wrote {write_blend_fit(fit)}\n")


@fit_app.command("walkforward")
def walkforward(
    history: Annotated[Path, typer.Argument(
        help="1-minute candle CSV, e.g. "
             "../shared/data/btc/binance_btcusdt_spot_1m_2021_2025.csv.gz")],
    write: Annotated[bool, typer.Option(
        "--write", help="Store the tails and variance scales in the versioned model file.")]
    = False,
) -> None:
    """Tails and variance scale by minutes left, chosen walk-forward on the 1-minute history."""
    from evals.forecast import load_minute_candles, run_study, summarize_study

    common.settings(quiet=True)
    candles = load_minute_candles(history)  # validates first: bad input fails before output
    summary = summarize_study(run_study(history, candles=candles))
    wf: dict[str, Any] | None = summary.get("walk_forward")
    if not wf or not wf.get("decisions_scored"):
        raise UserError(f"{history}: the walk-forward study needs more than one calendar month "
                        "of history")
    dof = wf["final_tail_dof_all_months"]
    scale = wf["agent_variance_scale_by_minutes_left_all_months"]
    sys.stdout.write(f"tail_dof {dof}; variance scale by minutes left 1..: {scale}\n"
                     f"walk-forward agent: {wf['overall']['agent']}\n")
    if write:
        sys.stdout.write(f"wrote {_write_walk_forward(history, wf)}\n")


@fit_app.command("maker")
def maker(
    shared: Annotated[Path, typer.Option(
        help="The shared data directory holding the fitting recordings.")]
    = Path("../shared/data"),
    write: Annotated[bool, typer.Option(
        "--write", help="Store the maker parameters in data/models/maker_v1.json.")] = False,
) -> None:
    """Fit the maker quote margin and replace threshold on recordings that no eval scores."""
    from evals.maker_fit import run_maker_fit, write_maker_fit

    common.settings(quiet=True)
    missing = [name for name in BLEND_INPUTS if not (shared / name).is_file()]
    if missing:
        raise UserError(f"--shared {shared}: missing {', '.join(missing)}")
    fit = run_maker_fit(shared)
    best = fit["best"]
    sys.stdout.write(f"{fit['windows']} windows in {len(fit['sets'])} sets; best margin "
                     f"{best['margin']} replace_threshold {best['replace_threshold']}: P&L "
                     f"{best['pnl_usd']:+.2f} over {best['trades']} trades\n")
    for point in fit["grid"]:
        sys.stdout.write(f"  margin {point['margin']:.2f} threshold "
                         f"{point['replace_threshold']:.2f}: P&L {point['pnl_usd']:+.2f}, "
                         f"{point['trades']} trades, fill rate {point['fill_rate']}\n")
    if write:
        sys.stdout.write(f"wrote {write_maker_fit(fit)}\n")


def _write_walk_forward(history: Path, wf: dict[str, Any]) -> Path:
    from tools.fair_value import MODEL_PATH

    raw = json.loads(MODEL_PATH.read_text(encoding="utf-8"))
    raw["params"]["tail_dof"] = wf["final_tail_dof_all_months"]
    raw["params"]["variance_scale_by_minutes_left"] = \
        wf["agent_variance_scale_by_minutes_left_all_months"]
    raw["walk_forward_fit"] = {"history": history.name, "decisions": wf["decisions_scored"],
                               "months": wf["months"]}
    MODEL_PATH.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return MODEL_PATH


def register(app: typer.Typer) -> None:
    """Add the ``fit`` group to the ``updown`` app."""
    app.add_typer(fit_app, name="fit")
