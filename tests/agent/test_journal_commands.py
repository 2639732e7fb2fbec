"""``updown trades`` / ``profit`` / ``decisions`` on the journal of a real replay of the embedded
recording: the figures agree with the replay's printed summary and the journal's own
settlement and decision rows; bad input is one line and exit code 2."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from agent.cli.app import app
from tools.journal import Journal

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
UPDOWN = str(Path(sys.executable).with_name("updown"))


@dataclass(frozen=True)
class Replay:
    journal: Path
    run_id: str
    # The replay summary's printed rows: metric -> value as shown.
    printed: dict[str, str]


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_",
                                 "JOURNAL_PATH"))}


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory) -> Replay:
    """One real ``updown run --replay`` of the embedded recording into a fresh journal."""
    tmp = tmp_path_factory.mktemp("replay")
    journal = tmp / "journal.db"
    proc = subprocess.run(
        [UPDOWN, "run", "--replay", str(EMBEDDED), "--cadence", "60", "--journal", str(journal),
         "--decision-log", str(tmp / "decisions.jsonl"), "--no-view"],
        cwd=tmp, env={**_clean_env(), "COLUMNS": "200"}, capture_output=True, text=True,
        timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    printed = {m.group(1).strip(): m.group(2).strip()
               for m in re.finditer(r"^│ (.+?)│(.+?)│$", proc.stdout, re.MULTILINE)}
    con = sqlite3.connect(journal)
    runs = [str(r[0]) for r in con.execute("SELECT run_id FROM runs")]
    con.close()
    assert len(runs) == 1
    assert f"(run {runs[0]})" in proc.stdout
    return Replay(journal, runs[0], printed)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> CliRunner:
    # Settings come from the environment and a .env in the working directory: use neither.
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_")):
            monkeypatch.delenv(name)
    monkeypatch.delenv("JOURNAL_PATH", raising=False)
    return CliRunner()


def run_json(cli: CliRunner, *args: str) -> Any:
    result = cli.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def settlement_rows(journal: Path) -> dict[str, sqlite3.Row]:
    con = sqlite3.connect(journal)
    con.row_factory = sqlite3.Row
    try:
        return {str(r["order_id"]): r for r in con.execute("SELECT * FROM settlements")}
    finally:
        con.close()


def test_profit_totals_equal_the_replay_summary(replay: Replay, cli: CliRunner) -> None:
    total = run_json(cli, "profit", "--journal", str(replay.journal))["total"]
    printed = replay.printed
    assert total["trades"] > 0
    assert str(total["trades"]) == printed["trades filled"]
    assert f"{total['wins']} / {total['losses']}" == printed["wins / losses"]
    assert f"{total['hit_rate']:.1%}" == printed["hit rate"]
    assert f"{total['staked_usd']:,.2f}" == printed["staked (USDC)"]
    assert f"{total['fees_usd']:,.2f}" == printed["fees (USDC)"]
    assert f"{total['pnl_usd']:+,.2f}" == printed["P&L after fees (USDC)"]
    # And exactly, not only as printed: the run summary the replay printed from.
    with Journal(replay.journal) as jr:
        summary = jr.summary(run_id=replay.run_id)
    assert (total["pnl_usd"], total["fees_usd"], total["staked_usd"]) == (
        summary.pnl_usd, summary.fees_usd, summary.staked_usd)
    assert (total["trades"], total["wins"], total["losses"], total["killed"]) == (
        summary.filled, summary.wins, summary.losses, summary.killed)


def test_profit_table_has_a_totals_line_with_the_summary_pnl(replay: Replay, cli: CliRunner
                                                             ) -> None:
    result = cli.invoke(app, ["profit", "--journal", str(replay.journal)])
    assert result.exit_code == 0, result.stderr
    total_line = next(line for line in result.stdout.splitlines() if "total" in line)
    assert replay.printed["P&L after fees (USDC)"] in total_line
    assert "2025-12-26" in result.stdout


def test_trades_agree_with_the_journals_settlement_rows(replay: Replay, cli: CliRunner) -> None:
    rows = run_json(cli, "trades", "--journal", str(replay.journal), "--limit", "1000")
    settled = settlement_rows(replay.journal)
    assert len(rows) == int(replay.printed["trades filled"]) == len(settled)
    for t in rows:
        s = settled[t["order_id"]]
        assert (t["outcome"], t["pnl_usd"], t["payout_usd"], t["fee_usd"], t["shares"]) == (
            s["outcome"], s["pnl_usd"], s["payout_usd"], s["fee_usd"], s["shares"])
        assert t["market_id"] == s["market_id"]
        assert t["status"] == "filled"
        assert t["outcome_unknown"] is False
        assert re.fullmatch(r"2025-12-26T\d\d:\d\d:\d\dZ", t["entry_utc"])
        assert t["price"] == pytest.approx(s["notional_usd"] / s["shares"], abs=1e-3)
    entries = [t["entry_ts"] for t in rows]
    assert entries == sorted(entries, reverse=True)  # newest first


def test_trades_limit_and_market_filter(replay: Replay, cli: CliRunner) -> None:
    every = run_json(cli, "trades", "--journal", str(replay.journal), "--limit", "1000")
    first3 = run_json(cli, "trades", "--journal", str(replay.journal), "--limit", "3")
    market = every[5]["market_id"]
    one = run_json(cli, "trades", "--journal", str(replay.journal), "--market", market)
    assert first3 == every[:3]
    assert [t["order_id"] for t in one] == [every[5]["order_id"]]
    account = every[0]["account"]
    assert run_json(cli, "trades", "--journal", str(replay.journal), "--account", account,
                    "--limit", "1000") == every
    assert run_json(cli, "trades", "--journal", str(replay.journal), "--account", "nobody") == []
    table = cli.invoke(app, ["trades", "--journal", str(replay.journal), "--limit", "2"])
    assert every[0]["market_id"] in table.stdout
    assert every[1]["market_id"] in table.stdout


def test_profit_by_window_and_market_agree_with_settlements(replay: Replay, cli: CliRunner
                                                            ) -> None:
    pnl_by_window: dict[str, float] = defaultdict(float)
    for s in settlement_rows(replay.journal).values():
        pnl_by_window[str(s["market_id"])] += float(s["pnl_usd"])
    windows = run_json(cli, "profit", "--journal", str(replay.journal), "--by", "window")
    assert {g["key"]: g["pnl_usd"] for g in windows["groups"]} == pytest.approx(pnl_by_window)
    markets = run_json(cli, "profit", "--journal", str(replay.journal), "--by", "market")
    assert [g["key"] for g in markets["groups"]] == ["btc-updown-15m"]
    assert markets["groups"][0]["pnl_usd"] == markets["total"]["pnl_usd"]
    assert markets["total"] == windows["total"]


def test_decisions_at_picks_the_nearest_at_or_before(replay: Replay, cli: CliRunner) -> None:
    con = sqlite3.connect(replay.journal)
    (count,) = con.execute("SELECT COUNT(*) FROM decisions").fetchone()
    decision_id, market, as_of, record = con.execute(
        "SELECT decision_id, market_id, as_of, record_json FROM decisions WHERE approved = 1"
        " ORDER BY as_of LIMIT 1").fetchone()
    con.close()
    path = str(replay.journal)
    # 30 s after a decision at a 60 s cadence: that decision is the nearest at or before.
    picked = run_json(cli, "decisions", "--journal", path, "--market", market,
                      "--at", str(as_of + 30))
    iso = run_json(cli, "decisions", "--journal", path, "--market", market, "--at",
                   picked[0]["as_of_utc"])
    assert [d["decision_id"] for d in picked] == [decision_id]
    assert iso == picked
    d, rec = picked[0], json.loads(record)
    assert d["verdict"] == "approved"
    assert d["approved"] is True
    assert d["fair_up"] == rec["fair_value"]["fair_up"]
    assert d["market_mid"] == rec["fair_value"]["market_up_mid"]
    assert d["confidence"] == rec["trader"]["analysis"]["confidence"]
    assert d["decided_by"] == "policy"
    assert run_json(cli, "decisions", "--journal", path, "--at", "2025-12-25T00:00:00Z") == []
    newest = run_json(cli, "decisions", "--journal", path, "--limit", str(count + 5))
    assert len(newest) == count
    rejected = [x for x in newest if x["verdict"] == "rejected"]
    assert rejected
    assert all(r["rules_fired"] and r["rules_fired"][0]["action"] == "reject"
               for r in rejected)


def test_journal_defaults_to_the_journal_path_setting(replay: Replay, cli: CliRunner,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNAL_PATH", str(replay.journal))
    default = run_json(cli, "profit")
    assert default == run_json(cli, "profit", "--journal", str(replay.journal))


@pytest.mark.parametrize(("args", "needle"), [
    (["trades", "--journal", "missing.db"], "journal not found: missing.db"),
    (["profit"], "JOURNAL_PATH"),  # the default from the settings, which does not exist
    (["profit", "--by", "week"], "--by must be one of day, window, market"),
    (["decisions", "--at", "yesterday"], "--at"),
    (["decisions", "--at", "nan"], "--at"),
    (["decisions", "--limit", "0"], "--limit"),
])
def test_bad_input_is_one_line_and_exit_code_2(replay: Replay, cli: CliRunner, tmp_path: Path,
                                               args: list[str], needle: str) -> None:
    if "--journal" not in args and args != ["profit"]:
        args = [*args, "--journal", str(replay.journal)]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "missing.db").exists()  # a query never creates a journal
    assert not (tmp_path / "updown.db").exists()


def test_a_file_that_is_not_a_journal_is_one_line(cli: CliRunner, tmp_path: Path) -> None:
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"this is not an SQLite file at all" * 100)
    result = cli.invoke(app, ["decisions", "--journal", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: journal {bad}: ")
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_installed_command_exits_2_on_a_missing_journal(tmp_path: Path) -> None:
    proc = subprocess.run([UPDOWN, "profit", "--journal", str(tmp_path / "none.db")],
                          cwd=tmp_path, env=_clean_env(), capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 2
    assert proc.stderr == f"error: journal not found: {tmp_path / 'none.db'}\n"


def _documented_keys(command: str) -> list[set[str]]:
    """The key sets the README lists for a command's ``--json`` (each ``{...}`` group)."""
    text = (ROOT / "README.md").read_text()
    item = re.search(rf"^- `{command}`: (.+?)(?=^- `|^\s*$)", text, re.MULTILINE | re.DOTALL)
    assert item is not None, command
    groups = re.findall(r"\{([^{}]*)\}", re.sub(r"\[\{[^{}]*\}\]", "", item.group(1)))
    return [{k.strip() for k in g.replace("\n", " ").split(",")} for g in groups]


def test_json_keys_are_the_ones_the_readme_documents(replay: Replay, cli: CliRunner) -> None:
    path = str(replay.journal)
    trade = run_json(cli, "trades", "--journal", path, "--limit", "1")[0]
    report = run_json(cli, "profit", "--journal", path)
    decision = next(d for d in run_json(cli, "decisions", "--journal", path, "--limit", "50")
                    if d["rules_fired"])
    assert _documented_keys("trades") == [set(trade)]
    assert _documented_keys("profit") == [{"by", "groups: [row]", "total: row"},
                                          set(report["total"])]
    assert set(report["groups"][0]) == set(report["total"])
    # "rules_fired: [{rule, action, detail}]": the list's items are stripped before grouping.
    assert _documented_keys("decisions") == [set(decision) - {"rules_fired"}
                                             | {"rules_fired:"}]
    assert set(decision["rules_fired"][0]) == {"rule", "action", "detail"}
