"""Charts drawn on the server as inline SVG: no script, no CDN, the page works offline.

Two charts: a step line of realised P&L after fees over settlement time (the equity curve),
and a reliability diagram (mean predicted P(up) against the observed Up frequency per bin,
with the diagonal of perfect calibration).  Values are escaped like any other text.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

W, H = 760, 300
PAD_L, PAD_R, PAD_T, PAD_B = 64, 16, 16, 40


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) inside [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / max(1, n - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 5.0, 10.0) if m * power >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _spread(lo: float, hi: float, n: int) -> list[float]:
    return [lo + i * (hi - lo) / (n - 1) for i in range(n)] if hi > lo else [lo]


def _time_label(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%m-%d %H:%M")


def equity_chart(points: Sequence[tuple[float, float]], *, title: str) -> str:
    """``points``: (settlement time, cumulative P&L after fees), in time order."""
    if not points:
        return ('<svg class="chart" viewBox="0 0 760 60" role="img" aria-label="no settled '
                'position yet"><text x="10" y="35">no settled position yet</text></svg>')
    xs = [p[0] for p in points]
    ys = [0.0, *(p[1] for p in points)]
    x0, x1 = min(xs), max(xs)
    if x1 <= x0:
        x1 = x0 + 1.0
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 1.0, y1 + 1.0
    pad = (y1 - y0) * 0.08
    y0, y1 = y0 - pad, y1 + pad

    def sx(x: float) -> float:
        return PAD_L + (x - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def sy(y: float) -> float:
        return PAD_T + (y1 - y) / (y1 - y0) * (H - PAD_T - PAD_B)

    # A step line: equity changes only at a settlement.
    path = [f"M{sx(x0):.1f},{sy(0.0):.1f}"]
    for x, y in points:
        path.append(f"H{sx(x):.1f}V{sy(y):.1f}")
    parts = [f'<svg class="chart" id="equity-chart" viewBox="0 0 {W} {H}" role="img" '
             f'aria-label="{escape(title)}">']
    for t in _ticks(y0, y1):
        parts.append(f'<line class="grid" x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(t):.1f}" '
                     f'y2="{sy(t):.1f}"/><text class="tick" x="{PAD_L - 6}" y="{sy(t) + 4:.1f}" '
                     f'text-anchor="end">{t:+.2f}</text>')
    times = _spread(x0, x1, 4)
    for i, t in enumerate(times):
        anchor = "start" if i == 0 else "end" if i == len(times) - 1 else "middle"
        parts.append(f'<text class="tick" x="{sx(t):.1f}" y="{H - PAD_B + 18}" '
                     f'text-anchor="{anchor}">{escape(_time_label(t))}</text>')
    parts.append(f'<line class="zero" x1="{PAD_L}" x2="{W - PAD_R}" y1="{sy(0.0):.1f}" '
                 f'y2="{sy(0.0):.1f}"/>')
    parts.append(f'<path class="equity" d="{"".join(path)}"/>')
    for x, y in points:
        parts.append(f'<circle class="dot" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5"/>')
    parts.append(f'<text class="label" x="{PAD_L + 6}" y="{PAD_T + 12}">{escape(title)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def reliability_chart(series: Sequence[tuple[str, str, Sequence[tuple[float, float, int]]]]
                      ) -> str:
    """``series``: (css class, label, [(mean predicted, observed Up, count)]) per forecaster."""
    size = 320
    pad = 40

    def s(v: float) -> float:
        return pad + v * (size - 2 * pad)

    def sy(v: float) -> float:
        return size - pad - v * (size - 2 * pad)

    parts = [f'<svg class="chart" id="reliability-chart" viewBox="0 0 {size} {size}" '
             'role="img" aria-label="reliability diagram">',
             f'<rect class="frame" x="{pad}" y="{pad}" width="{size - 2 * pad}" '
             f'height="{size - 2 * pad}"/>',
             f'<line class="diagonal" x1="{s(0):.1f}" y1="{sy(0):.1f}" x2="{s(1):.1f}" '
             f'y2="{sy(1):.1f}"/>']
    for v in (0.0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<text class="tick" x="{s(v):.1f}" y="{size - pad + 16}" '
                     f'text-anchor="middle">{v:.2f}</text>'
                     f'<text class="tick" x="{pad - 6}" y="{sy(v) + 4:.1f}" '
                     f'text-anchor="end">{v:.2f}</text>')
    for i, (css, label, pts) in enumerate(series):
        drawn = [(p, o, n) for p, o, n in pts if n > 0]
        if drawn:
            line = " ".join(f"{s(p):.1f},{sy(o):.1f}" for p, o, _ in drawn)
            parts.append(f'<polyline class="{escape(css)}" points="{line}"/>')
            for p, o, n in drawn:
                parts.append(f'<circle class="{escape(css)}" cx="{s(p):.1f}" cy="{sy(o):.1f}" '
                             f'r="{min(7.0, 2.5 + n ** 0.5 / 2):.1f}"><title>{n} decisions'
                             '</title></circle>')
        parts.append(f'<text class="legend {escape(css)}" x="{pad + 8}" '
                     f'y="{pad + 16 + 16 * i}">{escape(label)}</text>')
    parts.append(f'<text class="tick" x="{size / 2}" y="{size - 6}" text-anchor="middle">'
                 'predicted P(up)</text>')
    parts.append("</svg>")
    return "".join(parts)
