"""Fit the market blend of the fair value on recorded Polymarket windows that no eval scores.

The agent's P(up) with a book is ``sigmoid(w_model * logit(model_up) + w_market * logit(mid))``
(``tools.fair_value.blend``).  The weights are fitted by maximum likelihood on decision rows
(every 30 s, as ``updown eval`` decides) of two raw recordings that are *not* the evaluation
sets (``data/recorded/*``, ``../shared/data/recorded/*``):

* 2025-12-25 (``polymarket_btc15m/market_data_20251225_legacy.csv.gz``, 2 s book polling; its
  Timestamp is one hour ahead of TargetTime, so it is shifted back) with Coinbase BTC-USD
  1-minute closes (``btc/coinbase_btcusd_1m_close_20251211_20251229.csv.gz``);
* 2026-02-02 (``polymarket_btc15m/updown15m_1s_bid_ask_20260202.csv.gz``, 1 s best bid/ask)
  with Binance 5-minute candles (``btc/binance_spot_btcusdt_5m_20251201_20260219.csv.gz``).

Both are converted to the interchange format in a temporary directory (nothing invented: the
rows are the recordings' own, outcomes are read from the price path as the README of
``../shared/data`` prescribes for these sets) and replayed through ``ReplayFeed`` and
``estimate_fair_value`` exactly as the agent sees them.

Run: ``updown fit blend [--shared ../shared/data] [--write]``; ``--write`` updates the
blend weights in ``data/models/fair_value_v1.json``.  ``rows_for`` is also used to report the
blend on the evaluation sets (scored, never fitted).
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from evals.fitting import fit_logistic, logit_vec
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from tools.fair_value import MODEL_PATH, FairValueModel, default_model, estimate_fair_value

FloatArray = NDArray[np.float64]
CADENCE_S = 30.0
WINDOW_S = 900


def _write_dataset(out: Path, prices: pd.DataFrame, book: pd.DataFrame) -> Path:
    """prices: ts, price[, volume]; book: market start (``start``), ts, up/down bid/ask."""
    out.mkdir(parents=True, exist_ok=True)
    prices = prices.sort_values("ts").drop_duplicates("ts")
    starts = sorted(int(s) for s in book["start"].unique())
    pts, ppx = prices["ts"].to_numpy(), prices["price"].to_numpy()
    rows = []
    for s in starts:
        e = s + WINDOW_S
        i0, i1 = np.searchsorted(pts, s, "right") - 1, np.searchsorted(pts, e, "right") - 1
        if i0 < 0 or i1 < 0 or pts[i1] < e or pts[i0] < s - 300:
            continue  # the price path does not cover the window: no outcome
        outcome = "up" if ppx[i1] >= ppx[i0] else "down"
        rows.append(f"btc-updown-15m-{s},BTC,{s},{e},,{outcome},0\n")
    (out / "markets.csv").write_text(
        "market_id,asset,start_ts,end_ts,price_to_beat,outcome,fee_rate\n" + "".join(rows))
    b = book.copy()
    b["market_id"] = "btc-updown-15m-" + b["start"].astype(int).astype(str)
    b = b[b["market_id"].isin({r.split(",")[0] for r in rows})]
    b = b.sort_values(["market_id", "ts"]).drop_duplicates(["market_id", "ts"])
    b[["market_id", "ts", "up_bid", "up_ask", "down_bid", "down_ask"]].to_csv(
        out / "book.csv", index=False)
    prices.to_csv(out / "prices.csv", index=False)
    return out


def _epoch_s(col: pd.Series) -> pd.Series:
    t = pd.to_datetime(col, utc=True)
    return (t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)


def fitting_sets(shared: Path, tmp: Path) -> list[Path]:
    """The two non-evaluation recordings in the interchange format."""
    pm, btc = shared / "polymarket_btc15m", shared / "btc"
    legacy = pd.read_csv(pm / "market_data_20251225_legacy.csv.gz")
    ts = _epoch_s(legacy["Timestamp"]) - 3600
    start = _epoch_s(legacy["TargetTime"])
    book25 = pd.DataFrame({"start": start, "ts": ts.astype(float),
                           "up_bid": legacy["UpBid"], "up_ask": legacy["UpAsk"],
                           "down_bid": legacy["DownBid"], "down_ask": legacy["DownAsk"]})
    book25 = book25[(book25["ts"] >= book25["start"]) &
                    (book25["ts"] < book25["start"] + WINDOW_S)]
    cb = pd.read_csv(btc / "coinbase_btcusd_1m_close_20251211_20251229.csv.gz")
    lo, hi = book25["start"].min() - 6 * 3600, book25["start"].max() + 2 * WINDOW_S
    cb_ts = cb["open_time_ms"] / 1000 + 60
    sel = (cb_ts >= lo) & (cb_ts <= hi)
    prices25 = pd.DataFrame({"ts": cb_ts[sel], "price": cb["close"][sel]})

    feb = pd.read_csv(pm / "updown15m_1s_bid_ask_20260202.csv.gz")
    fts = feb["timestamp_ms"] / 1000.0
    end = np.round((fts + feb["seconds_to_expiry"]) / WINDOW_S) * WINDOW_S
    book02 = pd.DataFrame({"start": (end - WINDOW_S).astype(int), "ts": fts,
                           "up_bid": feb["call_bid"], "up_ask": feb["call_ask"],
                           "down_bid": feb["put_bid"], "down_ask": feb["put_ask"]})
    bn = pd.read_csv(btc / "binance_spot_btcusdt_5m_20251201_20260219.csv.gz")
    lo, hi = book02["start"].min() - 12 * 3600, book02["start"].max() + 2 * WINDOW_S
    bn_ts = bn["open_time_ms"] / 1000 + 300
    sel = (bn_ts >= lo) & (bn_ts <= hi)
    prices02 = pd.DataFrame({"ts": bn_ts[sel], "price": bn["close"][sel],
                             "volume": bn["volume"][sel]})
    return [_write_dataset(tmp / "pm15m_20251225_coinbase1m", prices25, book25),
            _write_dataset(tmp / "pm15m_20260202_binance5m", prices02, book02)]


def rows_for(dataset: Path, model: FairValueModel) -> dict[str, FloatArray]:
    """model_up, mid, outcome and window of every 30-s decision with a mid and an outcome."""
    feed = ReplayFeed(load_dataset(dataset))
    out: dict[str, list[float]] = {"model": [], "mid": [], "y": [], "window": [], "fair": []}
    for w, market in enumerate(feed.markets):
        outcome = market.outcome
        if outcome is None:
            continue
        for t in feed.decision_times(market, CADENCE_S):
            snap = feed.snapshot_at(market, t)
            fair = estimate_fair_value(snap, model=model)
            if fair is None or fair.market_up_mid is None or fair.model_up is None:
                continue
            out["model"].append(fair.model_up)
            out["mid"].append(fair.market_up_mid)
            out["fair"].append(fair.fair_up)
            out["y"].append(1.0 if outcome == "up" else 0.0)
            out["window"].append(float(w))
    return {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}


def fit_blend(rows: dict[str, FloatArray]) -> tuple[float, float]:
    """Maximum-likelihood (w_model, w_market), no intercept (symmetric in Up/Down)."""
    x = np.column_stack((logit_vec(rows["model"]), logit_vec(rows["mid"])))
    c = fit_logistic(x, rows["y"])
    return float(c[0]), float(c[1])


@dataclass(frozen=True)
class BlendFit:
    w_model: float
    w_market: float
    rows: int
    windows: int
    sets: tuple[str, ...]
    brier: dict[str, float]  # of the model alone and of the mid alone, on the fitting rows


def run_blend_fit(shared: Path) -> BlendFit:
    """Fit the blend on the two fitting recordings under ``shared`` (``../shared/data``)."""
    base = dataclasses.replace(default_model(), blend_market_weight=0.0, blend_model_weight=1.0)
    with tempfile.TemporaryDirectory() as tmp:
        sets = fitting_sets(shared, Path(tmp))
        parts = [rows_for(d, base) for d in sets]
    rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    w_model, w_market = fit_blend(rows)
    return BlendFit(
        w_model=w_model, w_market=w_market, rows=len(rows["y"]),
        windows=sum(len(np.unique(p["window"])) for p in parts),
        sets=tuple(d.name for d in sets),
        brier={name: float(np.mean((rows[key] - rows["y"]) ** 2))
               for name, key in (("model", "model"), ("mid", "mid"))})


def write_blend_fit(fit: BlendFit, path: Path = MODEL_PATH) -> Path:
    """Store the fitted weights (and where they came from) in the versioned model file."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    raw["params"]["blend_model_weight"] = round(fit.w_model, 4)
    raw["params"]["blend_market_weight"] = round(fit.w_market, 4)
    raw["blend_fit"] = {"rows": fit.rows, "windows": fit.windows, "sets": list(fit.sets),
                        "cadence_s": CADENCE_S}
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return path
