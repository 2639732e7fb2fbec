"""``updown redeem`` (paper) and what ``updown portfolio`` shows of final fills: winnings owed
until redeemed, redeemed exactly once; provisional fills as exposure, failed fills reversed
(no position, no P&L); bad input one line and exit code 2."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli.app import app
from core.records import ExecutionReport
from tools.journal import Journal

ACCOUNT = "paper"


def _env(tmp: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_"))}
    return {**keep, "JOURNAL_PATH": str(tmp / "unused.db"), "STOP_FILE": str(tmp / "STOP")}


def _filled(jr: Journal, run_id: str, n: int, side: str, *, final: bool = True) -> str:
    oid = f"d{n}#1"
    jr.record_order_intent(account=ACCOUNT, run_id=run_id, decision_id=f"d{n}", order_id=oid,
                           market_id=f"btc-updown-15m-{n}", side=side,  # type: ignore[arg-type]
                           stake_usd=10.0, worst_price=0.6, created_ts=100.0 + n)
    jr.record_execution(ExecutionReport(
        status="filled", broker="paper", order_id=oid, market_id=f"btc-updown-15m-{n}",
        side=side, stake_usd=10.0, worst_price=0.6, shares=20.0,  # type: ignore[arg-type]
        avg_price=0.5, notional_usd=10.0, fee_usd=0.175, final=final,
        trade_ids=() if final else (f"t{n}",)), ts=101.0 + n)
    return oid


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    with Journal(path) as jr:
        run_id = jr.start_run(account=ACCOUNT, mode="paper", dataset=None, config={},
                              started_ts=1.0)
        _filled(jr, run_id, 1, "up")    # wins
        _filled(jr, run_id, 2, "down")  # loses
        for n in (1, 2):
            jr.record_settlement(account=ACCOUNT, market_id=f"btc-updown-15m-{n}",
                                 outcome="up", outcome_verified=True, settled_ts=900.0 + n)
        _filled(jr, run_id, 3, "up", final=False)  # provisional, then failed on chain
        jr.record_fill_final("d3#1", state="failed", shares=0, notional_usd=0, fee_usd=0,
                             trade_ids=("t3",), detail="every trade FAILED", ts=950.0)
        _filled(jr, run_id, 4, "up", final=False)  # still provisional
    return path


def _json(runner: CliRunner, args: list[str], env: dict[str, str]) -> Any:
    result = runner.invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_portfolio_shows_unredeemed_provisional_and_failed_fills(journal_path: Path,
                                                                 tmp_path: Path) -> None:
    runner = CliRunner()
    [doc] = _json(runner, ["portfolio", "--journal", str(journal_path), "--json"],
                  _env(tmp_path))
    assert doc["unredeemed_usd"] == 20.0
    assert [r["order_id"] for r in doc["unredeemed"]] == ["d1#1"]
    assert [f["order_id"] for f in doc["failed_fills"]] == ["d3#1"]
    assert [f["order_id"] for f in doc["provisional_fills"]] == ["d4#1"]
    # The failed fill is no position and no P&L; the provisional one is not a position yet.
    assert [p["order_id"] for p in doc["open_positions"]] == []
    assert doc["realized_pnl_usd"] == pytest.approx((20.0 - 10.175) + (0.0 - 10.175))
    assert doc["intents_by_status"] == {"filled": 3, "killed": 1}
    text = runner.invoke(app, ["portfolio", "--journal", str(journal_path)],
                         env={**_env(tmp_path), "COLUMNS": "200"})
    assert text.exit_code == 0
    assert "unredeemed winnings" in text.stdout
    assert "20.00 USDC" in text.stdout
    assert "fill failed on chain" in text.stdout


def test_redeem_pays_each_win_once(journal_path: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    env = _env(tmp_path)
    [first] = _json(runner, ["redeem", "--journal", str(journal_path), "--json"], env)
    assert first["redeemed_usd"] == 20.0
    assert [r["order_id"] for r in first["redeemed"]] == ["d1#1"]
    assert first["still_owed_usd"] == 0.0
    [again] = _json(runner, ["redeem", "--journal", str(journal_path), "--json"], env)
    assert again["redeemed"] == []
    assert again["redeemed_usd"] == 0.0
    with Journal(journal_path) as jr:
        rows = jr.redemptions(account=ACCOUNT)
    assert [(r.order_id, r.state, r.attempts, r.redeemer) for r in rows] == [
        ("d1#1", "confirmed", 1, "paper")]
    [doc] = _json(runner, ["portfolio", "--journal", str(journal_path), "--json"], env)
    assert doc["unredeemed_usd"] == 0.0


@pytest.mark.parametrize(("args", "message"), [
    (["--account", "nobody"], "no account 'nobody'"),
    (["--account", "live:0xabc"], "is a live account: add --live"),
])
def test_redeem_bad_input_is_one_line_exit_2(journal_path: Path, tmp_path: Path,
                                             args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["redeem", "--journal", str(journal_path), *args],
                                env=_env(tmp_path))
    assert result.exit_code == 2
    assert message in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_redeem_without_journal_is_one_line_exit_2(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["redeem", "--journal", str(tmp_path / "none.db")],
                                env=_env(tmp_path))
    assert result.exit_code == 2
    assert "journal not found" in result.output
