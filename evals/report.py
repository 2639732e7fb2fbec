"""Self-contained HTML reports of an eval: headline numbers, four plots, the tables behind them.

Plots are drawn with matplotlib (Agg, no display) into PNGs embedded as base64 ``data:`` URIs,
so one ``.html`` file is the whole report: no network, no CDN, no scripts.  The equity curve
is inline SVG instead, so its 95% band is an element of the page (``<g id="ci-band">``) that
a reader's tools, and the tests, can find.

The page layout has fixed pixel geometry (``LAYOUT``): a header of fixed height, then the four
plots in a 2 x 2 grid of fixed-size cells, then the tables.  A user gets the pictures first;
the headless-browser test uses the same numbers to find each plot in a screenshot.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: never try to open a display

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from evals.methods import methods_note


@dataclass(frozen=True, slots=True)
class Layout:
    """Pixel geometry of the page (CSS pixels; the screenshot test relies on it)."""

    page_padding: int = 12
    header_height: int = 215
    cell_width: int = 670
    cell_height: int = 500
    image_height: int = 460
    gap: int = 16

    def plot_box(self, i: int) -> tuple[int, int, int, int]:
        """(left, top, right, bottom) of plot ``i`` (0..3, row by row) on the page."""
        col, row = i % 2, i // 2
        left = self.page_padding + col * (self.cell_width + self.gap)
        top = self.header_height + row * (self.cell_height + self.gap)
        return left, top, left + self.cell_width, top + self.image_height


LAYOUT = Layout()
DPI = 100

# Colours with enough saturation to tell apart (and to find in a screenshot).
C_AGENT = "#1f77b4"
C_MARKET = "#ff7f0e"
C_FAIR = "#2ca02c"
C_COIN = "#9467bd"
C_TECH = "#d62728"
C_UP = "#2ca02c"
C_DOWN = "#d62728"
C_HOLD = "#7fa7d6"


@dataclass(frozen=True, slots=True)
class Plot:
    """One embedded figure: ``name`` is its stable id (``<img id="plot-<name>">``)."""

    name: str
    title: str
    caption: str
    png: bytes = b""
    # Inline SVG markup instead of a PNG (the equity curve: its band is a page element).
    svg: str = ""


@dataclass(frozen=True, slots=True)
class TableSpec:
    title: str
    headers: Sequence[str]
    rows: Sequence[Sequence[Any]]
    note: str = ""
    # The table element's id (stable, for readers' tools and the tests).
    id: str = ""


def new_figure() -> tuple[Figure, Any]:
    fig = plt.figure(figsize=(LAYOUT.cell_width / DPI, LAYOUT.image_height / DPI), dpi=DPI)
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def to_svg(fig: Figure) -> str:
    """The figure as inline SVG markup (no XML prolog), element ids (gid) kept."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "updown", "svg.fonttype": "path"}):
        fig.savefig(buf, format="svg", dpi=DPI)
    plt.close(fig)
    text = buf.getvalue()
    return text[text.index("<svg"):]


def to_png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI)
    plt.close(fig)
    return buf.getvalue()


def fmt(x: Any, spec: str = ".4f") -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        if not math.isfinite(x):
            return "-"
        return format(x, spec)
    return str(x)


def money(x: float | None) -> str:
    return "-" if x is None else f"${x:,.2f}"


_CSS = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; padding: 0 {LAYOUT.page_padding}px 24px; background: #ffffff; color: #1b1f24;
       font: 14px/1.4 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       width: {2 * LAYOUT.cell_width + LAYOUT.gap + 2 * LAYOUT.page_padding}px; }}
header {{ height: {LAYOUT.header_height}px; overflow: hidden; padding-top: 10px; }}
h1 {{ font-size: 22px; margin: 0 0 2px; }}
.sub {{ color: #57606a; margin: 0 0 10px; white-space: nowrap; overflow: hidden;
        text-overflow: ellipsis; }}
.cards {{ display: flex; gap: 10px; }}
.card {{ flex: 1; border: 1px solid #d0d7de; border-radius: 6px; padding: 8px 10px;
         height: 96px; overflow: hidden; }}
.card .k {{ color: #57606a; font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }}
.card .v {{ font-size: 22px; font-weight: 600; margin: 2px 0; }}
.card .d {{ color: #57606a; font-size: 12px; }}
.grid {{ display: grid; gap: {LAYOUT.gap}px;
         grid-template-columns: {LAYOUT.cell_width}px {LAYOUT.cell_width}px;
         grid-auto-rows: {LAYOUT.cell_height}px; }}
figure {{ margin: 0; width: {LAYOUT.cell_width}px; height: {LAYOUT.cell_height}px;
          overflow: hidden; }}
figure img, figure svg {{ display: block; width: {LAYOUT.cell_width}px;
                          height: {LAYOUT.image_height}px; }}
.verdict {{ margin: 8px 0 0; font-weight: 600; white-space: nowrap; overflow: hidden;
            text-overflow: ellipsis; }}
.verdict.worse {{ color: #cf222e; }}
figcaption {{ height: {LAYOUT.cell_height - LAYOUT.image_height}px; overflow: hidden;
              font-size: 12px; color: #57606a; padding: 2px 4px; }}
h2 {{ font-size: 17px; margin: 26px 0 6px; }}
table {{ border-collapse: collapse; margin: 4px 0 4px; }}
th, td {{ border-bottom: 1px solid #d8dee4; padding: 4px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
th {{ background: #f6f8fa; }}
.note {{ color: #57606a; font-size: 12px; max-width: 1200px; }}
ul.defs {{ color: #57606a; font-size: 12px; max-width: 1250px; }}
"""


def render_html(
    *,
    title: str,
    subtitle: str,
    cards: Sequence[tuple[str, str, str]],
    plots: Sequence[Plot],
    tables: Sequence[TableSpec],
    definitions: Sequence[str] = (),
    verdict: str | None = None,
    verdict_worse: bool = False,
) -> str:
    """The whole report as one HTML string (cards: (label, value, detail)); ``verdict`` is a
    plain sentence under the cards (red when the agent is worse than the market)."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header>",
        f"<h1>{e(title)}</h1>",
        f'<p class="sub">{e(subtitle)}</p>',
        '<div class="cards">',
    ]
    for label, value, detail in cards:
        parts.append(f'<div class="card"><div class="k">{e(label)}</div>'
                     f'<div class="v">{e(value)}</div><div class="d">{e(detail)}</div></div>')
    parts.append("</div>")
    if verdict:
        cls = "verdict worse" if verdict_worse else "verdict"
        parts.append(f'<p id="verdict" class="{cls}">{e(verdict)}</p>')
    parts += ["</header>", '<div class="grid">']
    for p in plots:
        caption = f"<figcaption><b>{e(p.title)}.</b> {e(p.caption)}</figcaption></figure>"
        if p.svg:
            # matplotlib's own markup: the figure's id goes on the root <svg> element.
            svg = p.svg.replace("<svg ", f'<svg id="plot-{e(p.name)}" role="img" '
                                        f'aria-label="{e(p.title)}" ', 1)
            parts.append(f"<figure>{svg}{caption}")
            continue
        data = base64.b64encode(p.png).decode("ascii")
        parts.append(
            f'<figure><img id="plot-{e(p.name)}" alt="{e(p.title)}" '
            f'src="data:image/png;base64,{data}">{caption}')
    parts.append("</div>")
    for t in tables:
        table_id = f' id="{e(t.id)}"' if t.id else ""
        parts.append(f"<h2>{e(t.title)}</h2><table{table_id}><thead><tr>")
        parts += [f"<th>{e(str(h))}</th>" for h in t.headers]
        parts.append("</tr></thead><tbody>")
        for row in t.rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>")
        parts.append("</tbody></table>")
        if t.note:
            parts.append(f'<p class="note">{e(t.note)}</p>')
    if definitions:
        parts.append("<h2>How the numbers are computed</h2><ul class=\"defs\">")
        parts += [f"<li>{e(d)}</li>" for d in definitions]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts)


# --- the recorded-dataset eval ---------------------------------------------------------------

METRIC_DEFINITIONS = (
    "Brier = mean((p - y)^2); log loss clips p to [0.001, 0.999]; ECE uses 10 equal-width "
    "bins (sum of bin share x |mean p - frequency of Up|).",
    "Every forecaster is scored on the same decision points: windows with a recorded outcome, "
    "where the agent and the fair value have a probability and (with a book) the market a mid.",
    "market = mid of the Up token (or 1 - mid of Down); fair_value = the fair_value node alone "
    "(Phi model); agent = the trader's P(up) (equal to fair_value on the deterministic path); "
    "coin_flip = 0.5.",
    "P&L is after taker fees, filled FOK at the recorded best ask and its size, settled from "
    "the recorded outcome.  The 95% interval resamples windows (not decisions) 10,000 times.",
    "Max drawdown: largest fall of cumulative settled P&L from its running peak (from 0).  Max "
    "stake: most capital (price paid + fee) committed at one time.",
    "Guard rejections count the decisions `updown run` makes (up to a window's entry); the eval "
    "keeps deciding after an entry only to score forecasts.",
)


def _reliability_plot(reliability: dict[str, list[dict[str, float]]],
                      forecast: dict[str, Any], names: Sequence[tuple[str, str, str]]) -> bytes:
    fig, ax = new_figure()
    ax.plot([0, 1], [0, 1], color="#8c959f", linestyle=":", linewidth=1, label="perfect")
    styles = {"agent": ("-", 3.0, 0.55), "market": ("-", 2.0, 1.0), "fair_value": ("--", 1.6, 1.0),
              "technical": ("-", 1.6, 1.0), "coin_flip": ("", 0, 1.0)}
    drawn = 0
    for key, label, color in names:
        bins = reliability.get(key)
        if not bins:
            continue
        x = [b["mean_p"] for b in bins]
        y = [b["frequency"] for b in bins]
        n = np.array([b["n"] for b in bins], dtype=float)
        sizes = 20 + 180 * n / n.max()
        ls, lw, alpha = styles.get(key, ("-", 1.6, 1.0))
        score = forecast.get(key) or {}
        text = (f"{label} (Brier {fmt(score.get('brier'), '.3f')}, "
                f"ECE {fmt(score.get('ece'), '.3f')})")
        if ls:
            ax.plot(x, y, linestyle=ls, linewidth=lw, color=color, alpha=alpha, label=text)
        else:
            ax.plot([], [], color=color, label=text)
        ax.scatter(x, y, s=sizes, color=color, alpha=0.6 if key != "agent" else 0.35,
                   edgecolors="none")
        drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no scored decision points", ha="center", va="center",
                transform=ax.transAxes, color=C_DOWN)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("forecast P(up) (bin mean; marker area ~ decision points)")
    ax.set_ylabel("observed frequency of Up")
    ax.set_title("Reliability: are the probabilities right?")
    ax.grid(alpha=0.25)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def _equity_plot(times: Sequence[float], pnl: Sequence[float], total: float,
                 ci: Sequence[float] | None, drawdown: float,
                 band: Sequence[dict[str, Any]] = ()) -> str:
    """Cumulative P&L at each settled trade, the drawdown, and (``band``: per settled window,
    ``evals.equity_band``) the 95% by-window bootstrap band, shaded (``<g id="ci-band">``)."""
    fig, ax = new_figure()
    if pnl or band:
        xs = [datetime.fromtimestamp(t, UTC) for t in times]
        if band:
            bx = [datetime.fromtimestamp(float(b["settled_ts"]), UTC) for b in band]
            lo = [b["ci95"][0] for b in band]
            hi = [b["ci95"][1] for b in band]
            ax.fill_between(bx, lo, hi, step="post", color=C_AGENT, alpha=0.16, linewidth=0,
                            gid="ci-band", label="95% CI, bootstrap by window")
        if pnl:
            equity = np.cumsum(pnl)
            peak = np.maximum.accumulate(np.concatenate(([0.0], equity)))[1:]
            ax.step(xs, equity, where="post", color=C_AGENT, linewidth=2,
                    label="cumulative P&L")
            ax.fill_between(xs, equity, peak, step="post", color=C_DOWN, alpha=0.25,
                            label=f"drawdown (max {money(drawdown)})")
            ax.scatter(xs, equity, c=[C_UP if p >= 0 else C_DOWN for p in pnl], s=22, zorder=3)
        x = bx if band else xs
        ax.axhline(0, color="#8c959f", linewidth=1)
        one_day = x[0].date() == x[-1].date()
        ax.xaxis.set_major_formatter(
            mdates.DateFormatter("%H:%M" if one_day else "%m-%d %H:%M"))  # type: ignore[no-untyped-call]
        fig.autofmt_xdate()
        ax.set_xlabel("settlement time (UTC)" + (f", {x[0]:%Y-%m-%d}" if one_day else ""))
        ax.legend(loc="upper left", fontsize=8, frameon=False)
    if not pnl:
        ax.axhline(0, color=C_AGENT, linewidth=2)
        ax.text(0.5, 0.6, "no settled trades", ha="center", va="center",
                transform=ax.transAxes, color=C_DOWN, fontsize=14)
    ci_text = "" if ci is None else f", 95% CI [{money(ci[0])}, {money(ci[1])}]"
    ax.set_title(f"Equity after fees: {money(total)}{ci_text}")
    ax.set_ylabel("USD")
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return to_svg(fig)


def _edge_plot(edges_win: Sequence[float], edges_loss: Sequence[float], min_edge: float
               ) -> bytes:
    fig, ax = new_figure()
    allv = [*edges_win, *edges_loss]
    if allv:
        lo, hi = min(*allv, min_edge), max(*allv, min_edge)
        bins = np.linspace(lo - 0.005, hi + 0.005, 21)
        ax.hist([edges_win, edges_loss], bins=bins, stacked=True, color=[C_UP, C_DOWN],
                label=[f"won ({len(edges_win)})", f"lost ({len(edges_loss)})"],
                edgecolor="white")
        ax.axvline(min_edge, color=C_COIN, linestyle="--", linewidth=1.5,
                   label=f"min edge {min_edge:.3f}")
        ax.legend(loc="best", fontsize=8, frameon=False)
    else:
        ax.text(0.5, 0.5, "no trades", ha="center", va="center", transform=ax.transAxes,
                color=C_DOWN, fontsize=14)
    ax.set_xlabel("fair value - (ask + fee) of the side bought, at entry")
    ax.set_ylabel("trades")
    ax.set_title("Edge at entry (after fees)")
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return to_png(fig)


def _timeline_plot(windows: Sequence[tuple[str, float, float, str | None, float | None]],
                   rows: Sequence[Any], max_windows: int = 40) -> bytes:
    """windows: (market_id, start, end, outcome, pnl); rows: DecisionRow-like objects."""
    fig, ax = new_figure()
    shown = list(windows[:max_windows])
    index = {w[0]: i for i, w in enumerate(shown)}
    hold_x: list[float] = []
    hold_y: list[int] = []
    rej: dict[str, tuple[list[float], list[int]]] = {"up": ([], []), "down": ([], [])}
    fill: dict[str, tuple[list[float], list[int]]] = {"up": ([], []), "down": ([], [])}
    for r in rows:
        i = index.get(r.market_id)
        if i is None:
            continue
        x = r.seconds_in / 60.0
        if r.order is not None and r.order.report.status == "filled":
            fill[r.order.report.side][0].append(x)
            fill[r.order.report.side][1].append(i)
        elif r.proposal_side is not None:
            rej[r.proposal_side][0].append(x)
            rej[r.proposal_side][1].append(i)
        else:
            hold_x.append(x)
            hold_y.append(i)
    ax.scatter(hold_x, hold_y, s=6, color=C_HOLD, label="hold")
    ax.scatter(*rej["up"], s=14, marker="^", facecolors="none", edgecolors=C_UP, linewidths=0.8,
               label="wants Up, refused")
    ax.scatter(*rej["down"], s=14, marker="v", facecolors="none", edgecolors=C_DOWN,
               linewidths=0.8, label="wants Down, refused")
    ax.scatter(*fill["up"], s=70, marker="^", color=C_UP, label="bought Up", zorder=3)
    ax.scatter(*fill["down"], s=70, marker="v", color=C_DOWN, label="bought Down", zorder=3)
    duration = max((w[2] - w[1] for w in shown), default=900.0) / 60.0
    for i, (_, _, _, outcome, pnl) in enumerate(shown):
        if outcome is not None:
            ax.scatter([duration + 0.4], [i], s=40, marker="^" if outcome == "up" else "v",
                       color=C_UP if outcome == "up" else C_DOWN, zorder=3)
        if pnl is not None:
            ax.text(duration + 0.9, i, f"{pnl:+.1f}", va="center", fontsize=6,
                    color=C_UP if pnl >= 0 else C_DOWN)
    step = max(1, len(shown) // 16)
    ax.set_yticks(range(0, len(shown), step))
    ax.set_yticklabels([datetime.fromtimestamp(shown[i][1], UTC).strftime("%m-%d %H:%M")
                        for i in range(0, len(shown), step)], fontsize=7)
    ax.set_ylim(len(shown) - 0.5 if shown else 1, -0.5)
    ax.set_xlim(0, duration + 2.2)
    ax.set_xlabel("minutes into the window (right: outcome and P&L)")
    more = f" (first {max_windows} of {len(windows)})" if len(windows) > max_windows else ""
    ax.set_title(f"Decisions per window{more}")
    ax.grid(alpha=0.2)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.06), ncol=5, fontsize=7,
              frameon=False, borderaxespad=1.2)
    fig.tight_layout()
    return to_png(fig)


def eval_report(result: Any, summary: dict[str, Any], *, min_edge: float,
                comparison: Sequence[dict[str, Any]] = ()) -> str:
    """The recorded-dataset report (``result``: evals.runner.EvalResult); ``comparison``:
    the rows of ``evals.compare.comparison_rows`` when traders were compared."""
    from evals.runner import trades as list_trades

    compared = [comparison_table(comparison)] if comparison else []

    forecast = summary["forecast"]
    trading = summary.get("trading")
    timing, cost = summary["timing"], summary["cost"]
    tr = list_trades(result)
    settled = sorted((t for t in tr if t.pnl_usd is not None),
                     key=lambda t: (t.settled_ts or 0.0, t.t))
    pnl_by_market: dict[str, float] = {}
    for t in settled:
        pnl_by_market[t.market_id] = pnl_by_market.get(t.market_id, 0.0) + (t.pnl_usd or 0.0)
    settle_by_market = {s.market_id: s.outcome for s in result.settlements}
    windows = [(m.market_id, m.start_ts, m.end_ts, settle_by_market.get(m.market_id),
                pnl_by_market.get(m.market_id)) for m in result.feed.markets]

    series = (("agent", "agent", C_AGENT), ("market", "market mid", C_MARKET),
              ("fair_value", "fair value", C_FAIR))
    plots = [
        Plot("reliability", "Reliability diagram",
             "Forecast P(up) against how often Up happened, per 0.1-wide bin; on the dotted "
             "diagonal a forecaster is calibrated.  Agent vs market vs the fair-value node.",
             _reliability_plot(summary.get("reliability", {}), forecast, series)),
        Plot("equity", "Equity curve",
             "Cumulative P&L after fees at each settlement; blue band: 95% interval by the "
             "window bootstrap at each settled window; red: drawdown from the running peak.",
             svg=_equity_plot(
                 [t.settled_ts or 0.0 for t in settled], [t.pnl_usd or 0.0 for t in settled],
                 trading["pnl_usd"] if trading else 0.0,
                 trading["pnl_ci95"] if trading else None,
                 trading["max_drawdown_usd"] if trading else 0.0,
                 trading.get("equity_band", ()) if trading else ())),
        Plot("edge", "Edge-at-entry histogram",
             "The agent's edge after fees when it bought, split by whether the trade won.",
             _edge_plot([t.edge_after_fees for t in settled
                         if t.edge_after_fees is not None and (t.pnl_usd or 0) >= 0],
                        [t.edge_after_fees for t in settled
                         if t.edge_after_fees is not None and (t.pnl_usd or 0) < 0],
                        min_edge)),
        Plot("timeline", "Per-window decision timeline",
             "Each row is a window, each mark a decision: holds, proposals the guard refused, "
             "and fills; at the right the outcome and the window's P&L.",
             _timeline_plot(windows, result.decisions)),
    ]

    agent, market = forecast.get("agent") or {}, forecast.get("market") or {}
    cards = [
        ("agent Brier", fmt(agent.get("brier"), ".4f"),
         f"market {fmt(market.get('brier'), '.4f')}, coin flip 0.2500"),
        ("agent log loss", fmt(agent.get("log_loss"), ".4f"),
         f"market {fmt(market.get('log_loss'), '.4f')}, n = {agent.get('n', 0)}"),
    ]
    if trading:
        ci = trading["pnl_ci95"]
        cards += [
            ("P&L after fees", money(trading["pnl_usd"]),
             f"95% CI [{money(ci[0])}, {money(ci[1])}]"),
            ("trades", str(trading["trades"]),
             f"hit rate {fmt(trading['hit_rate'], '.1%')}, fees {money(trading['fees_usd'])}"),
        ]
    else:
        cards.append(("trading", "not scored", "dataset has no book.csv"))
    cards.append(("speed", f"{fmt(timing['decisions_per_s'], '.0f')}/s",
                  f"p50 {fmt(timing['decision_ms_p50'], '.1f')} ms, "
                  f"p99 {fmt(timing['decision_ms_p99'], '.1f')} ms"))

    tables = [*compared, forecast_table(forecast, summary.get("forecast_skipped", {}))]
    if summary.get("disagreement"):
        tables.append(disagreement_table(summary["disagreement"]))
    if trading:
        tables.append(TableSpec("Trading", ["metric", "value"], [
            ["trades", trading["trades"]],
            ["wins / losses", f"{trading['wins']} / {trading['losses']}"],
            ["hit rate", fmt(trading["hit_rate"], ".1%")],
            ["P&L after fees", money(trading["pnl_usd"])],
            ["95% CI (bootstrap by window)",
             f"[{money(trading['pnl_ci95'][0])}, {money(trading['pnl_ci95'][1])}]"],
            ["fees paid", money(trading["fees_usd"])],
            ["capital staked (price + fees)", money(trading["staked_usd"])],
            ["max stake at one time", money(trading["max_stake_usd"])],
            ["return on capital at risk (P&L / max stake)",
             fmt(trading["return_on_capital"], ".1%")],
            ["return per dollar staked", fmt(trading["return_on_staked"], ".1%")],
            ["max drawdown", money(trading["max_drawdown_usd"])],
            ["unsettled trades", trading["unsettled"]],
        ]))
        rej = trading["guard_rejections"]
        tables.append(TableSpec(
            "Guard rejections by rule", ["rule", "decisions refused"],
            [[k, v] for k, v in sorted(rej.items(), key=lambda kv: -kv[1])] or [["none", 0]],
            note="A refused decision can fire several rules."))
        tables.append(trades_table(summary.get("trade_log", [])))
        tables.append(fee_table(trading.get("pnl_by_fee_rate", []),
                                summary["config"]["fees"]["explanation"]))
    tables.append(skipped_table(summary))
    tables.append(TableSpec("Cost and speed", ["metric", "value"], [
        ["LLM calls", cost["llm_calls"]],
        ["prompt / completion tokens", f"{cost['prompt_tokens']} / {cost['completion_tokens']}"],
        ["LLM cost", f"${cost['usd']:.4f}"],
        ["per window: calls / tokens / USD",
         f"{cost['llm_calls_per_window']:.2f} / {cost['tokens_per_window']:.0f} / "
         f"${cost['usd_per_window']:.5f}"],
        ["decisions per second", fmt(timing["decisions_per_s"], ".0f")],
        ["decision latency p50 / p99",
         f"{fmt(timing['decision_ms_p50'], '.2f')} / {fmt(timing['decision_ms_p99'], '.2f')} ms"],
        ["workers / chunks / re-runs",
         f"{timing['workers']} / {timing['chunks']} / {timing['reruns']}"],
    ]))
    subtitle = (f"{summary['windows']} windows, {summary['decisions']} decisions every "
                f"{summary['cadence_s']:g} s, trader {summary['trader']}"
                + (f" ({cost['model']})" if cost.get("model") else "")
                + f"; windows skipped {summary['windows_skipped'] or 'none'}")
    agent_b, market_b = agent.get("brier"), market.get("brier")
    return render_html(title=f"updown eval: {summary['dataset']}", subtitle=subtitle,
                       cards=cards, plots=plots, tables=tables,
                       definitions=methods_note(summary), verdict=summary.get("verdict"),
                       verdict_worse=agent_b is not None and market_b is not None
                       and agent_b > market_b)


def _ts(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def trades_table(log: Sequence[dict[str, Any]]) -> TableSpec:
    """One row per filled entry (``summary["trade_log"]``)."""
    rows = [[_ts(t["entry_ts"]), t["market_id"], t["side"], fmt(t["price"], ".3f"),
             fmt(t["shares"], ".2f"), money(t["fee_usd"]), fmt(t["edge_after_fees"], "+.4f"),
             (t["outcome"] or "unknown") + ("" if t["outcome_verified"] else " (derived)"),
             money(t["pnl_usd"])] for t in log]
    return TableSpec("Trades", ["entry time (UTC)", "window", "side", "price", "shares", "fee",
                                "edge at entry", "outcome", "P&L"],
                     rows or [["no trades", "", "", "", "", "", "", "", ""]],
                     note="Price = average fill price (the recorded best ask); edge at entry = "
                          "the agent's P(side) - (ask + fee); P&L = payout - cost - fee.",
                     id="trades")


def disagreement_table(block: Sequence[dict[str, Any]]) -> TableSpec:
    """The JSON's ``disagreement`` block: who was right where agent and market disagree."""
    rows = []
    for b in block:
        span = f"{b['abs_gap_from']:.2f}-{b['abs_gap_to']:.2f}"
        if not b["n"]:
            rows.append([span, 0, "-", "-", "-", "-"])
            continue
        rows.append([span, b["n"], fmt(b["mean_gap"], "+.4f"),
                     fmt(b["realised_edge_toward_agent"], "+.4f"), fmt(b["agent_brier"]),
                     fmt(b["market_brier"])])
    return TableSpec(
        "Where the agent and the market disagree",
        ["|agent - mid|", "decision points", "mean agent - mid", "realised edge toward agent",
         "agent Brier", "market Brier"], rows,
        note="Realised edge toward agent = mean of sign(agent - mid) x (outcome - mid): "
             "positive means the outcome moved the way the agent leaned (before fees and "
             "spread).", id="disagreement")


def fee_table(scenarios: Sequence[dict[str, Any]], explanation: str) -> TableSpec:
    rows = [[s["label"], money(s["fees_usd"]), money(s["pnl_usd"])] for s in scenarios]
    return TableSpec("P&L under other fee rates (same trades)", ["fee rate", "fees", "P&L"],
                     rows, note=explanation + "  Each trade's fee is recomputed as rate x p x "
                     "(1 - p) per share; the trades are held fixed (with higher fees some "
                     "would not have been taken).", id="fees")


def skipped_table(summary: dict[str, Any]) -> TableSpec:
    rows = [[d["market_id"], d["reason"], d["detail"]]
            for d in summary.get("windows_skipped_detail", [])]
    return TableSpec("Windows skipped by the coverage check", ["window", "reason", "detail"],
                     rows or [["none", "", "every window is covered"]],
                     note="Checked before any decision: " + methods_note(summary)[-1],
                     id="skipped")


def comparison_table(rows: Sequence[dict[str, Any]]) -> TableSpec:
    """``--compare``: the traders side by side on the same windows."""
    body = [[r["trader"], fmt(r["agent_brier"]), fmt(r["market_brier"]),
             fmt(r["agent_log_loss"]), r["trades"] if r["trades"] is not None else "-",
             money(r["pnl_usd"]),
             "-" if r["pnl_ci95"] is None else
             f"[{money(r['pnl_ci95'][0])}, {money(r['pnl_ci95'][1])}]",
             fmt(r["hit_rate"], ".1%"), r["llm_calls"], f"${r['llm_usd']:.4f}"]
            for r in rows]
    return TableSpec("Traders compared on the same windows",
                     ["trader", "agent Brier", "market Brier", "agent log loss", "trades",
                      "P&L", "95% CI", "hit rate", "LLM calls", "LLM cost"], body,
                     id="comparison")


def forecast_table(forecast: dict[str, Any], skipped: dict[str, int]) -> TableSpec:
    rows = []
    for name, block in forecast.items():
        if block is None:
            rows.append([name, "-", "-", "-", "not scored"])
        else:
            rows.append([name, fmt(block["brier"]), fmt(block["log_loss"]), fmt(block["ece"]),
                         block["n"]])
    note = "Lower is better for all three.  "
    if skipped:
        note += "Decision points left out: " + ", ".join(f"{k} {v}" for k, v in skipped.items())
    return TableSpec("Forecasts (same decision points for every forecaster)",
                     ["forecaster", "Brier", "log loss", "ECE", "n"], rows, note=note)


# --- the forecast-only history study ---------------------------------------------------------

HISTORY_SERIES = (("fair_value", "fair value", C_FAIR), ("technical", "technical (fixed map)",
                                                          C_TECH),
                  ("technical_fit", "technical (fitted map)", C_MARKET),
                  ("fair_value+technical", "fair value + technical", C_AGENT))


def _by_minutes_plot(rows: Sequence[dict[str, Any]], metric: str, title: str, ylabel: str,
                     baseline: float | None) -> bytes:
    fig, ax = new_figure()
    x = [r["minutes_left"] for r in rows]
    for key, label, color in HISTORY_SERIES:
        y = [(r.get(key) or {}).get(metric) for r in rows]
        ax.plot(x, [math.nan if v is None else v for v in y], marker="o", markersize=4,
                color=color, label=label, linewidth=2 if key == "fair_value" else 1.5)
    if baseline is not None:
        ax.axhline(baseline, color=C_COIN, linestyle="--", linewidth=1.5, label="coin flip")
    ax.invert_xaxis()
    ax.set_xlabel("minutes left in the window at the decision")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.25)
    ax.legend(loc="best", fontsize=8, frameon=False)
    fig.tight_layout()
    return to_png(fig)


def _regime_plot(regimes: Sequence[dict[str, Any]]) -> bytes:
    fig, ax = new_figure()
    names = [*HISTORY_SERIES, ("coin_flip", "coin flip", C_COIN)]
    width = 0.8 / len(names)
    for i, (key, label, color) in enumerate(names):
        y = [(r.get(key) or {}).get("brier") or math.nan for r in regimes]
        ax.bar(np.arange(len(regimes)) + (i - (len(names) - 1) / 2) * width, y, width,
               color=color, label=label)
    ax.set_xticks(range(len(regimes)))
    ax.set_xticklabels([f"{r['regime']} volatility\n(n={r['n']:,})" for r in regimes])
    ax.set_ylabel("Brier (lower is better)")
    ax.set_title("Brier by volatility regime (terciles of ex-ante EWMA sigma)")
    ax.grid(alpha=0.25, axis="y")
    ax.legend(loc="lower right", fontsize=8, frameon=True)
    fig.tight_layout()
    return to_png(fig)


def history_report(summary: dict[str, Any], study: Any) -> str:
    """The forecast-only study report (``study``: evals.forecast.Study)."""
    from evals import metrics

    reliability = {
        key: [{"mean_p": b.mean_p, "frequency": b.frequency, "n": b.n}
              for b in metrics.reliability_curve(study.p[key], study.outcome)]
        for key, _, _ in HISTORY_SERIES if len(study.outcome)
    }
    rows = summary["by_minutes_left"]
    plots = [
        Plot("reliability", "Reliability diagram",
             "Forecast P(up) against how often Up happened, all decisions.",
             _reliability_plot(reliability, summary["forecast"], HISTORY_SERIES)),
        Plot("brier-by-minutes", "Brier by minutes left",
             "Each decision scored against the window's outcome; the coin flip is 0.25.",
             _by_minutes_plot(rows, "brier", "Brier by time left", "Brier (lower is better)",
                              0.25)),
        Plot("regimes", "Volatility regimes",
             "The same forecasts split by the volatility the model saw at decision time.",
             _regime_plot(summary["by_vol_regime"])),
        Plot("auc-by-minutes", "Discrimination by minutes left",
             "Area under the ROC curve: how well each forecast ranks Up above Down "
             "(0.5 = none), whatever its calibration.",
             _by_minutes_plot(rows, "auc", "AUC by time left", "AUC (higher is better)", 0.5)),
    ]
    fv, tech = summary["forecast"]["fair_value"] or {}, summary["forecast"]["technical"] or {}
    both = summary["forecast"]["fair_value+technical"] or {}
    recal = summary["forecast"]["fair_value_recal"] or {}
    cards = [
        ("fair value Brier", fmt(fv.get("brier")),
         f"coin flip 0.2500, AUC {fmt(fv.get('auc'), '.3f')}"),
        ("technical Brier", fmt(tech.get("brier")), f"AUC {fmt(tech.get('auc'), '.3f')}"),
        ("technical adds", fmt((recal.get("brier") or 0) - (both.get("brier") or 0), "+.5f"),
         "Brier gain over the recalibrated fair value"),
        ("windows", f"{summary['windows']:,}", f"{summary['decisions']:,} decisions"),
        ("time", f"{summary['timing']['total_s']:.1f} s",
         f"load {summary['timing']['load_s']:.1f} s"),
    ]
    headers = ["minutes left", "n", "fair_value", "technical", "technical_fit", "coin_flip",
               "fair_value_recal", "fair_value+technical"]
    keys = headers[2:]

    def table_rows(blocks: Sequence[dict[str, Any]], label: str) -> list[list[Any]]:
        return [[b[label], b["n"], *(fmt((b.get(k) or {}).get("brier")) for k in keys)]
                for b in blocks]

    tables = [
        TableSpec("Brier by minutes left", headers, table_rows(rows, "minutes_left")),
        TableSpec("Brier by volatility regime", ["regime", *headers[1:]],
                  table_rows(summary["by_vol_regime"], "regime"),
                  note="Thresholds (sigma per sqrt-second): "
                       + ", ".join(fmt(x, ".3e") for x in
                                   summary["vol_regime_thresholds_sigma_per_sqrt_s"])),
        TableSpec("All decisions", ["forecaster", "Brier", "log loss", "ECE", "AUC", "n"],
                  [[k, fmt(v["brier"]), fmt(v["log_loss"]), fmt(v["ece"]), fmt(v["auc"], ".3f"),
                    v["n"]] for k, v in summary["forecast"].items() if v]),
    ]
    definitions = (
        *METRIC_DEFINITIONS[:1],
        "Windows start on multiples of the window length; price to beat = open of the first "
        "minute; Up iff the last minute's close >= it.  Decisions at 1..W-1 minutes in see the "
        "last 120 closed one-minute candles, exactly what the agent's replay gives its nodes.",
        f"technical = 0.5 + score/4 (fixed); technical_fit, fair_value_recal and "
        f"fair_value+technical are logistic maps fitted per minutes left with 2-fold "
        f"chronological cross-fitting: {summary['technical_mapping']['technical_fit']}.",
    )
    subtitle = (f"{summary['history']}: {summary['blocks']} gap-free blocks, "
                f"{summary['window_s'] // 60}-minute windows, Up rate "
                f"{fmt(summary['up_rate'], '.3f')}; skipped {summary['windows_skipped']}")
    return render_html(title="updown forecast-only study", subtitle=subtitle, cards=cards,
                       plots=plots, tables=tables, definitions=definitions)
