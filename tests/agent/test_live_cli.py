"""``updown order``, ``updown portfolio`` and ``updown reset-daily-loss`` against a loopback
fake venue (synthetic markets): paper by default, live only with everything it needs, the
guard in the way of a second entry, settlement and P&L, and the manual loss reset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from fakeclob import FakeClob, serve
from typer.testing import CliRunner

from agent.cli.app import app
from tools.journal import Journal

pytestmark = pytest.mark.server
UPDOWN = str(Path(sys.executable).with_name("updown"))


@dataclass
class Cli:
    fake: FakeClob
    key: LocalAccount
    env: dict[str, str]
    journal: Path

    def __call__(self, *args: str, **env: str) -> Any:
        return CliRunner().invoke(app, list(args), env={**self.env, **env},
                                  catch_exceptions=False)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in list(os.environ):
        if name.startswith(("POLYMARKET_", "LIVE_", "OPENAI_")):
            monkeypatch.delenv(name)
    key = Account.create()
    fake = FakeClob(address=key.address)
    with serve(fake) as url:
        journal = tmp_path / "journal.db"
        env = {"POLYMARKET_CLOB_URL": url, "POLYMARKET_GAMMA_URL": url + "/gamma",
               "JOURNAL_PATH": str(journal), "STOP_FILE": str(tmp_path / "STOP"),
               "POLYMARKET_ORDER_TIMEOUT_S": "0.5", "LOG_LEVEL": "WARNING"}
        yield Cli(fake, key, env, journal)


def live_env(cli: Cli) -> dict[str, str]:
    return {"POLYMARKET_MODE": "live", "POLYMARKET_PRIVATE_KEY": cli.key.key.hex(),
            "LIVE_CONFIRM": "trade real money"}


def test_order_is_paper_by_default_and_posts_nothing(cli: Cli) -> None:
    market = cli.fake.add_market("btc-updown-15m-o1", window_start=time.time() - 300.0)
    result = cli("order", "--side", "up", "--usd", "10", "--market", market.slug, "--json")
    assert result.exit_code == 0, result.output
    outcome = json.loads(result.stdout)
    assert outcome["mode"] == "paper"
    assert outcome["execution"]["status"] == "filled"
    assert outcome["execution"]["broker"] == "paper"
    assert {w["rule"] for w in outcome["waived"]} <= {"confidence", "economics", "reference"}
    assert cli.fake.post_count() == 0
    assert {m for m, _ in cli.fake.requests} == {"GET"}


def test_live_order_fills_once_then_the_window_is_refused(cli: Cli) -> None:
    market = cli.fake.add_market("btc-updown-15m-o2", window_start=time.time() - 300.0)
    args = ("order", "--live", "--side", "up", "--usd", "10", "--market", market.slug, "--json")
    first = cli(*args, **live_env(cli))
    assert first.exit_code == 0, first.output
    outcome = json.loads(first.stdout)
    assert outcome["mode"] == "live"
    assert outcome["account"] == f"live:{cli.key.address.lower()}"
    assert outcome["execution"]["status"] == "filled"
    assert outcome["execution"]["broker"] == "polymarket-clob"
    assert cli.fake.post_count() == 1
    second = cli(*args, **live_env(cli))
    assert second.exit_code == 1
    assert "window" in {h["rule"] for h in json.loads(second.stdout)["verdict"]["rules_fired"]}
    assert cli.fake.post_count() == 1

    # Portfolio: one open position; after the venue resolves, --settle records the P&L.
    report = json.loads(cli("portfolio", "--json").stdout)
    [live] = [r for r in report if r["account"].startswith("live:")]
    assert len(live["open_positions"]) == 1
    cli.fake.resolve(market.slug, "up")
    report = json.loads(cli("portfolio", "--settle", "--json").stdout)
    [live] = [r for r in report if r["account"].startswith("live:")]
    assert live["open_positions"] == []
    [settled] = live["settled"]
    execution = outcome["execution"]
    expected = execution["shares"] - execution["notional_usd"] - execution["fee_usd"]
    assert settled["pnl_usd"] == pytest.approx(expected, abs=1e-6)
    table = cli("portfolio")
    assert table.exit_code == 0
    assert "realised P&L" in table.stdout


@pytest.mark.parametrize(("env", "message"), [
    ({}, "POLYMARKET_MODE=live"),
    ({"POLYMARKET_MODE": "live"}, "confirmation"),
    ({"POLYMARKET_MODE": "live", "LIVE_CONFIRM": "yes"}, "confirmation"),
    ({"POLYMARKET_MODE": "live", "LIVE_CONFIRM": "trade real money"},
     "POLYMARKET_PRIVATE_KEY"),
])
def test_live_without_everything_is_one_line_and_no_request(cli: Cli, env: dict[str, str],
                                                            message: str) -> None:
    result = cli("order", "--live", "--side", "up", "--usd", "10", "--market", "x", **env)
    assert result.exit_code == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert cli.fake.requests == []


def test_unknown_market_is_one_line(cli: Cli) -> None:
    result = cli("order", "--side", "up", "--usd", "10", "--market", "btc-updown-15m-nope")
    assert result.exit_code == 2
    assert "no market" in result.stderr


def test_reset_daily_loss_needs_the_account_typed_and_is_journaled(cli: Cli) -> None:
    market = cli.fake.add_market("btc-updown-15m-o3", window_start=time.time() - 300.0)
    assert cli("order", "--side", "up", "--usd", "10", "--market", market.slug).exit_code == 0
    refused = cli("reset-daily-loss", "--account", "paper", "--note", "reviewed",
                  "--confirm", "other")
    assert refused.exit_code == 2
    done = cli("reset-daily-loss", "--account", "paper", "--note", "reviewed",
               "--confirm", "paper")
    assert done.exit_code == 0, done.output
    with Journal(cli.journal) as jr:
        [reset] = jr.daily_loss_resets(account="paper")
        assert reset.note == "reviewed"
    unknown = cli("reset-daily-loss", "--account", "nobody", "--note", "x",
                  "--confirm", "nobody")
    assert unknown.exit_code == 2


def test_registered_on_the_console_entry_point(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("POLYMARKET_", "LIVE_", "OPENAI_"))}
    proc = subprocess.run([UPDOWN, "order", "--live", "--side", "up", "--usd", "5"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: --live needs POLYMARKET_MODE=live in the settings"
    assert app.pretty_exceptions_show_locals is False
