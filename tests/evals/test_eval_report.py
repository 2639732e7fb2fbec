"""`updown eval --dataset <embedded>` end to end: the JSON contract, and the HTML report as a
headless Chromium renders it (a screenshot whose four plot areas must hold real plots), with
its per-trade table, the 95% band on the equity curve and the tables behind the JSON."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from html import escape as html_escape
from pathlib import Path

import numpy as np
import pytest
from evalkit import EMBEDDED

from evals.report import LAYOUT

CHROMIUM = Path("/usr/bin/chromium")
PLOTS = ("reliability", "equity", "edge", "timeline")
PNG_PLOTS = ("reliability", "edge", "timeline")  # the equity curve is inline SVG


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, object], str, Path]:
    from typer.testing import CliRunner

    from agent.cli.app import app

    d = tmp_path_factory.mktemp("eval")
    out, report = d / "eval.json", d / "eval.html"
    with pytest.MonkeyPatch.context() as mp:
        # In-process the command must not point the process-wide logger at CliRunner's
        # captured stderr (closed after the call); `updown` itself configures it normally.
        mp.setattr("core.logs.configure", lambda *a, **k: None)
        result = CliRunner().invoke(app, ["eval", "--dataset", EMBEDDED.name, "--json",
                                          str(out), "--report", str(report), "--cadence",
                                          "60", "--trader", "quant", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "eval of pm15m_20251226_coinbase1m" in result.output
    return json.loads(out.read_text()), report.read_text(encoding="utf-8"), report


def test_json_is_the_contract(outputs: tuple[dict[str, object], str, Path]) -> None:
    data, _, _ = outputs
    assert data["dataset"] == "pm15m_20251226_coinbase1m"
    assert (data["windows"], data["decisions"]) == (32, 448)
    forecast = data["forecast"]
    assert isinstance(forecast, dict)
    assert set(forecast) == {"agent", "market", "fair_value", "coin_flip"}
    for block in forecast.values():
        assert set(block) == {"brier", "log_loss", "ece", "n"}
    trading = data["trading"]
    assert isinstance(trading, dict)
    assert {"trades", "pnl_usd", "pnl_ci95", "hit_rate", "fees_usd", "max_stake_usd",
            "max_drawdown_usd", "guard_rejections"} <= set(trading)
    assert len(trading["pnl_ci95"]) == 2
    assert {"llm_calls", "prompt_tokens", "completion_tokens", "usd"} <= set(
        data["cost"])  # type: ignore[arg-type]
    assert {"decisions_per_s", "decision_ms_p50", "decision_ms_p99"} <= set(
        data["timing"])  # type: ignore[arg-type]


def test_html_is_self_contained_with_four_plots(
        outputs: tuple[dict[str, object], str, Path]) -> None:
    _, html, _ = outputs
    for name in PNG_PLOTS:
        found = re.search(rf'<img id="plot-{name}" alt="[^"]*" src="data:image/png;base64,'
                          r'([A-Za-z0-9+/=]+)"', html)
        assert found, name
        assert base64.b64decode(found.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?https?:""", html)


def _table(html: str, table_id: str) -> list[list[str]]:
    """The body rows of the table with this id, as cell texts."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    assert found, table_id
    body = found.group(1).split("<tbody>")[1]
    return [re.findall(r"<td>(.*?)</td>", row) for row in body.split("<tr>")[1:]]


def test_per_trade_table_band_and_json_tables(
        outputs: tuple[dict[str, object], str, Path]) -> None:
    data, html, _ = outputs
    trading = data["trading"]
    assert isinstance(trading, dict)
    trades = _table(html, "trades")
    assert len(trades) == trading["trades"] == len(data["trade_log"]) > 0  # type: ignore[arg-type]
    for row, t in zip(trades, data["trade_log"], strict=True):  # type: ignore[call-overload]
        assert row[1] == t["market_id"]
        assert row[2] == t["side"]
        assert row[3] == f"{t['price']:.3f}"
        assert row[7].startswith(t["outcome"])
    # The band: an element of the inline equity SVG, its last point the headline interval.
    svg = re.search(r'<svg id="plot-equity".*?</svg>', html, re.S)
    assert svg
    band = re.search(r'<g id="ci-band">.*?<path[^>]* d="([^"]+)"', svg.group(0), re.S)
    assert band
    assert len(band.group(1)) > 200  # a real filled polygon, not a stub
    last = trading["equity_band"][-1]  # type: ignore[index]
    assert last["ci95"] == trading["pnl_ci95"]
    assert len(trading["equity_band"]) == trading["bootstrap"]["windows"]  # type: ignore[index]
    # The JSON's disagreement block is shown, one row per bin.
    assert len(_table(html, "disagreement")) == len(data["disagreement"])  # type: ignore[arg-type]
    # P&L under fee rates 0, the dataset's (0: the recordings predate fees) and 0.07.
    fees = _table(html, "fees")
    assert [r[0] for r in fees] == ["no fee", "dataset (0)", "today (0.07)"]
    assert "predate" in html
    # The methods note states the blend actually used, not "agent = fair value".
    assert "sigmoid(0.4871 logit(model) + 0.8751 logit(mid))" in html
    assert "equal to fair_value" not in html
    verdict = data["verdict"]
    assert isinstance(verdict, str)
    assert '<p id="verdict"' in html
    assert html_escape(verdict) in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="headless Chromium not installed at "
                    "/usr/bin/chromium (CI installs it via .ci/run)")
def test_report_renders_in_headless_chromium(
        outputs: tuple[dict[str, object], str, Path], tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    _, _, report = outputs
    shot = tmp_path / "report.png"
    profile = tmp_path / "chromium-profile"
    proc = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--hide-scrollbars", "--disable-background-networking",
         "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", f"--screenshot={shot}",
         "--window-size=1400,3000", f"file://{report}"],
        capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    assert shot.exists(), proc.stderr
    img = np.asarray(mpimg.imread(shot))[:, :, :3]  # floats in [0, 1]
    assert img.shape[:2] == (3000, 1400)
    assert img.std() > 0.05  # not a blank page
    # The band is drawn: inside the equity plot, pixels of the band's light blue
    # (C_AGENT at alpha 0.16 on white, about (0.87, 0.92, 0.96)).
    left, top, right, bottom = LAYOUT.plot_box(PLOTS.index("equity"))
    eq = img[top:bottom, left:right]
    light_blue = (np.abs(eq - np.array([0.87, 0.92, 0.96])) < 0.04).all(axis=2).sum()
    assert light_blue > 5000, light_blue
    for i, name in enumerate(PLOTS):
        left, top, right, bottom = LAYOUT.plot_box(i)
        area = img[top:bottom, left:right]
        ink = (area < 0.94).any(axis=2).mean()
        colourful = (area.max(axis=2) - area.min(axis=2) > 0.3).sum()
        colours = len(np.unique((area * 255).astype(np.uint8).reshape(-1, 3), axis=0))
        assert ink > 0.03, (name, ink)  # axes, labels and data, not an empty box
        assert colourful > 300, (name, colourful)  # coloured data marks, not just text
        assert colours > 40, (name, colours)
    # Between the header and the first plot row there is only page: the plots sit where the
    # layout says they do.
    gap = img[LAYOUT.header_height - 8:LAYOUT.header_height - 2, :]
    assert (gap > 0.97).all()
