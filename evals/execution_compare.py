"""Execution styles side by side on the same windows: ``updown eval --execution`` and
``--compare-execution``.

Each style replays the same coverage-checked windows through the same graph (same decisions,
same risk stakes); only the execution differs.  Per style: entries (windows traded), resting
orders and their fill rate, P&L after fees and maker rebates with the 95% interval of a
by-window bootstrap (``evals.metrics.bootstrap_ci``), maximum drawdown, markouts of every fill
(fair value of the bought side 5, 30 and 60 s after the fill minus the price paid: negative
means adverse selection; computed here from the recording after the fact, never seen by a
decision; past the close the settled outcome stands in), and orders left resting after a
cut-off (must be 0).

The recorded 2025 sets predate taker fees (fee_rate 0), so each style is also re-priced at
today's crypto fee (rate 0.07: takers pay ``rate * p(1-p)`` per share, makers receive the
rebate share of it) on the same fills; that line re-prices, it does not re-decide.
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.fees import DEFAULT_FEE_RATE, fee_per_share
from core.maker import EXECUTION_STYLES, ExecutionStyle, MakerParams, maker_params
from core.settings import Settings
from evals.metrics import bootstrap_ci, max_drawdown
from evals.replay_runner import ReplayRunner, SettlementEvent
from feeds.recorded import RecordedMarket
from feeds.replay import ReplayFeed
from tools.fair_value import estimate_fair_value
from tools.journal import Journal

MARKOUT_HORIZONS_S = (5.0, 30.0, 60.0)


class ExecutionInputError(ValueError):
    """A bad ``--execution`` / ``--compare-execution`` value (one line, exit 2)."""


def parse_styles(text: str) -> list[ExecutionStyle]:
    styles = [s.strip() for s in text.split(",") if s.strip()]
    bad = [s for s in styles if s not in EXECUTION_STYLES]
    if bad or not styles:
        raise ExecutionInputError(f"execution style must be one of {', '.join(EXECUTION_STYLES)}"
                                  f" (got {text!r})")
    return [s for s in EXECUTION_STYLES if s in styles]  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class Fill:
    """One buy: a taker fill or one maker fill."""

    market_id: str
    ts: float
    side: str
    price: float
    shares: float
    maker: bool
    rebate_usd: float = 0.0


@dataclass
class StyleResult:
    style: ExecutionStyle
    windows: list[str]
    pnl_by_window: dict[str, float] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    resting_orders: int = 0
    resting_filled: int = 0
    windows_quoted: int = 0
    windows_filled: int = 0
    taker_fallbacks: int = 0
    exits: int = 0
    left_resting: list[str] = field(default_factory=list)
    decisions: int = 0
    markouts: dict[str, float | None] = field(default_factory=dict)


def run_style(feed: ReplayFeed, settings: Settings, style: ExecutionStyle, *,
              cadence_s: float, use_llm: bool, params: MakerParams | None = None,
              stop_file: str | None = None) -> StyleResult:
    """Replay the feed's windows with one execution style (in-memory journal)."""
    journal = Journal(":memory:")
    settled: list[SettlementEvent] = []
    runner = ReplayRunner(feed, settings, journal=journal, decision_log=None,
                          cadence_s=cadence_s, use_llm=use_llm, journal_decisions=False,
                          on_settlement=settled.append, execution_style=style,
                          maker=params or maker_params(settings),
                          stop_file=stop_file)
    report = runner.run()
    windows = [m.market_id for m in runner.markets]
    out = StyleResult(style=style, windows=windows, decisions=report.decisions)
    for ev in settled:
        out.pnl_by_window[ev.market.market_id] = sum(p.pnl_usd for p in ev.positions)
    intents = {i.order_id: i for i in journal.intents(account=report.account)}
    desk = runner.desk
    maker_entries = set() if desk is None else {
        f"{o.order_id}/entry" for w in desk.desk.windows.values() for o in w.orders}
    for ex in journal.executions(account=report.account):
        intent = intents.get(ex.order_id)
        if (ex.status != "filled" or intent is None or ex.avg_price is None
                or ex.order_id in maker_entries):
            continue
        out.fills.append(Fill(ex.market_id, intent.created_ts, ex.side, ex.avg_price,
                              ex.shares, maker=False))
    if desk is not None:
        out.left_resting = list(desk.left_resting)
        for w in desk.desk.windows.values():
            if w.orders:
                out.windows_quoted += 1
            if w.has_fill:
                out.windows_filled += 1
            if w.taker is not None and w.taker.status == "filled":
                out.taker_fallbacks += 1
            out.exits += len(w.exits)
            rebate = 0.0
            for o in w.orders:
                if o.status == "rejected":
                    continue
                out.resting_orders += 1
                out.resting_filled += 1 if o.fills else 0
                for f in o.fills:
                    out.fills.append(Fill(w.market_id, f.ts, o.side, f.price, f.shares,
                                          maker=True, rebate_usd=f.rebate_usd))
                    rebate += f.rebate_usd
            if w.market_id in out.pnl_by_window:
                out.pnl_by_window[w.market_id] += rebate
    out.markouts = markouts(feed, out.fills)
    return out


def markouts(feed: ReplayFeed, fills: list[Fill]) -> dict[str, float | None]:
    """Share-weighted mean of (fair value of the side at fill + h) - price, in cents."""
    by_id: dict[str, RecordedMarket] = {m.market_id: m for m in feed.markets}
    sums: dict[float, float] = defaultdict(float)
    weight = 0.0
    for f in fills:
        market = by_id.get(f.market_id)
        if market is None:
            continue
        outcome, _ = feed.settlement(market)
        weight += f.shares
        for h in MARKOUT_HORIZONS_S:
            t = f.ts + h
            if t >= market.end_ts and outcome is not None:
                value = 1.0 if outcome == f.side else 0.0
            else:
                fair = estimate_fair_value(feed.snapshot_at(market, min(t, market.end_ts - 1)))
                if fair is None:
                    continue
                value = fair.fair_up if f.side == "up" else 1.0 - fair.fair_up
            sums[h] += f.shares * (value - f.price)
    return {f"{h:g}s": (round(100.0 * sums[h] / weight, 3) if weight > 0 else None)
            for h in MARKOUT_HORIZONS_S}


def _repriced(result: StyleResult, rebate_share: float, rate: float = DEFAULT_FEE_RATE
              ) -> list[float]:
    """Per-window P&L with the recorded fees replaced by ``rate`` on the same fills."""
    pnl = dict(result.pnl_by_window)
    for f in result.fills:
        if f.market_id not in pnl:
            continue
        fee = f.shares * fee_per_share(f.price, rate)
        pnl[f.market_id] += rebate_share * fee - f.rebate_usd if f.maker else -fee
    return [pnl.get(m, 0.0) for m in result.windows]


def style_summary(result: StyleResult, rebate_share: float) -> dict[str, Any]:
    per_window = [result.pnl_by_window.get(m, 0.0) for m in result.windows]
    lo, hi = bootstrap_ci(per_window)
    repriced = _repriced(result, rebate_share)
    rlo, rhi = bootstrap_ci(repriced)
    traded = [m for m in result.windows if m in result.pnl_by_window
              and any(f.market_id == m for f in result.fills)]
    return {
        "style": result.style,
        "windows": len(result.windows),
        "decisions": result.decisions,
        "trades": len(traded),
        "fills": len(result.fills),
        "resting_orders": result.resting_orders,
        "resting_orders_filled": result.resting_filled,
        "fill_rate": (round(result.windows_filled / result.windows_quoted, 4)
                      if result.windows_quoted else None),
        "windows_quoted": result.windows_quoted,
        "taker_fallbacks": result.taker_fallbacks,
        "exits": result.exits,
        "pnl_usd": round(sum(per_window), 4),
        "pnl_ci95": [round(lo, 4), round(hi, 4)],
        "rebates_usd": round(sum(f.rebate_usd for f in result.fills), 6),
        "max_drawdown_usd": round(max_drawdown(per_window), 4),
        "pnl_at_fee_0_07_usd": round(sum(repriced), 4),
        "pnl_at_fee_0_07_ci95": [round(rlo, 4), round(rhi, 4)],
        "markout_cents": result.markouts,
        "left_resting_after_cutoff": len(result.left_resting),
        "equity": [round(x, 4) for x in np.cumsum(per_window).tolist()],
    }


def compare_execution(feed: ReplayFeed, settings: Settings, styles: list[ExecutionStyle], *,
                      cadence_s: float, use_llm: bool, params: MakerParams | None = None
                      ) -> dict[str, Any]:
    chosen = params or maker_params(settings)
    rows = [style_summary(run_style(feed, settings, s, cadence_s=cadence_s, use_llm=use_llm,
                                    params=chosen), chosen.rebate_share) for s in styles]
    return {"dataset": feed.dataset.name, "windows": [m.market_id for m in feed.markets],
            "cadence_s": cadence_s, "maker_params": chosen.as_dict(), "styles": rows}


def _fmt(x: float | None, spec: str = "+.2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def comparison_lines(summary: dict[str, Any]) -> list[tuple[str, ...]]:
    """The table's rows: a header then one row per style."""
    head = ("style", "trades", "resting", "fill rate", "P&L", "95% CI", "max DD",
            "P&L @0.07", "markout 5/30/60s (c)", "left resting")
    rows: list[tuple[str, ...]] = [head]
    for r in summary["styles"]:
        mk = r["markout_cents"]
        rows.append((
            r["style"], str(r["trades"]), str(r["resting_orders"]),
            _fmt(r["fill_rate"], ".0%") if r["fill_rate"] is not None else "-",
            _fmt(r["pnl_usd"]), f"[{r['pnl_ci95'][0]:+.2f}, {r['pnl_ci95'][1]:+.2f}]",
            _fmt(r["max_drawdown_usd"], ".2f"), _fmt(r["pnl_at_fee_0_07_usd"]),
            "/".join(_fmt(mk[k], "+.1f") for k in ("5s", "30s", "60s")),
            str(r["left_resting_after_cutoff"])))
    return rows


def _equity_svg(equity: list[float], width: int = 420, height: int = 140) -> str:
    values = [0.0, *equity]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    step = width / max(1, len(values) - 1)
    points = " ".join(f"{i * step:.1f},{height - (v - lo) / span * height:.1f}"
                      for i, v in enumerate(values))
    zero = height - (0.0 - lo) / span * height
    return (f'<svg class="equity" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}"><line x1="0" x2="{width}" y1="{zero:.1f}" '
            f'y2="{zero:.1f}" stroke="#bbb"/><polyline fill="none" stroke="#1f77b4" '
            f'stroke-width="2" points="{points}"/></svg>')


def comparison_html(summary: dict[str, Any]) -> str:
    """A self-contained page: the table and one equity plot per style."""
    rows = comparison_lines(summary)
    table = "<table><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in rows[0]) + "</tr>"
    for row in rows[1:]:
        table += "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
    table += "</table>"
    plots = "".join(
        f'<figure id="equity-{html.escape(r["style"])}"><figcaption>{html.escape(r["style"])}: '
        f'cumulative P&amp;L by window (USDC)</figcaption>{_equity_svg(r["equity"])}</figure>'
        for r in summary["styles"])
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>execution styles: "
            f"{html.escape(summary['dataset'])}</title></head><body><h1>Execution styles on "
            f"{html.escape(summary['dataset'])}</h1><p>{len(summary['windows'])} windows, same "
            f"decisions; maker parameters version "
            f"{html.escape(str(summary['maker_params']['version']))}.</p>{table}{plots}"
            f"</body></html>")
