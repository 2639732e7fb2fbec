"""One exit path for the whole ``updown`` program: every usage mistake and every user error is
one line on stderr and exit code 2, never a traceback; help and the version go to stdout."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from agent.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
UPDOWN = str(Path(sys.executable).with_name("updown"))
OURS = ("POLYMARKET_", "LIVE_", "OPENAI_", "MAX_", "MIN_", "LOG_", "MARKETS", "LANGSMITH_",
        "LANGCHAIN_")


def clean_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith(OURS)}
    return {**base, **(extra or {})}


def updown(*args: str, cwd: Path, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([UPDOWN, *args], cwd=cwd, env=clean_env(env), capture_output=True,
                          text=True, timeout=120, check=False)


def assert_one_line(proc: subprocess.CompletedProcess[str], *needles: str) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


USAGE_MISTAKES = [
    (["run", "--bogus"], ("updown run", "No such option: --bogus")),
    (["order"], ("updown order", "Missing option '--side'")),
    (["order", "--usd", "5"], ("Missing option '--side'", "up, down")),
    (["order", "--side", "sideways", "--usd", "5"], ("--side", "'sideways' is not one of")),
    (["run", "--speed", "-1"], ("--speed", "greater than or equal to 0")),
    (["stream", "--window", "1h"], ("--window", "'1h' is not one of '15m', '5m'")),
    (["bench", "--suite", "nope"], ("--suite", "graph")),
    (["frobnicate"], ("No such command 'frobnicate'",)),
    (["fit", "blend", "--bogus"], ("updown fit blend", "--bogus")),
]


@pytest.mark.parametrize(("args", "needles"), USAGE_MISTAKES)
def test_usage_mistake_is_one_line_exit_2(tmp_path: Path, args: list[str],
                                          needles: tuple[str, ...]) -> None:
    proc = updown(*args, cwd=tmp_path)
    assert_one_line(proc, *needles)
    assert proc.stdout == ""


@pytest.mark.parametrize(("args", "needles"), USAGE_MISTAKES[:3])
def test_in_process_runs_take_the_same_exit_path(args: list[str],
                                                 needles: tuple[str, ...]) -> None:
    """CliRunner calls the same root ``main`` as the console script."""
    result = CliRunner().invoke(app, args, catch_exceptions=False)
    assert result.exit_code == 2
    [line] = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert all(n.split()[-1] in line for n in needles)


@pytest.mark.parametrize("args", [[], ["--help"], ["fit"]])
def test_help_goes_to_stdout_exit_0(tmp_path: Path, args: list[str]) -> None:
    proc = updown(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert "Usage: updown" in proc.stdout
    if args != ["fit"]:
        for command in ("run", "eval", "order", "config", "threads", "fit", "bench"):
            assert f" {command} " in proc.stdout


def test_version(tmp_path: Path) -> None:
    proc = updown("--version", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"updown {version('updown')}\n"
    assert proc.stderr == ""


def test_help_lists_choices_and_defaults(tmp_path: Path) -> None:
    order = updown("order", "--help", cwd=tmp_path, env={"COLUMNS": "160"})
    assert "<up|down>" in order.stdout
    bench = updown("bench", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "<graph|analysts|eval|feeds|latency|dashboard>" in bench.stdout
    assert "[default: graph]" in bench.stdout
    assert "[default: 2000]" in bench.stdout
    run = updown("run", "--help", cwd=tmp_path, env={"COLUMNS": "200"})
    assert "[default: 0.0]" in run.stdout  # --speed


@pytest.mark.parametrize(("args", "needles"), [
    (["bench", "--suite", "feeds", "--seconds", "0"], ("--seconds must be in (0, 600]",)),
    (["bench", "--suite", "feeds", "--rate", "1e9"], ("--rate must be in",)),
    (["threads", "--checkpoints", "missing.db"], ("no checkpoint database at missing.db",)),
    (["fit", "blend", "--shared", "nowhere"], ("--shared nowhere: missing",)),
    (["fit", "walkforward", "missing.csv"], ("history file 'missing.csv' does not exist",)),
    (["eval", "--trader", "gpt", "--dataset", "x"], ("--trader must be auto, quant or llm",)),
])
def test_user_errors_of_commands_are_one_line(tmp_path: Path, args: list[str],
                                              needles: tuple[str, ...]) -> None:
    assert_one_line(updown(*args, cwd=tmp_path), *needles)


def test_misspelled_setting_in_env_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MAX_POSITON_SIZE=5\n")
    assert_one_line(updown("config", cwd=tmp_path), "MAX_POSITON_SIZE", "MAX_POSITION_SIZE")
    # ... for every command, not only config: nothing runs on a misspelled limit.
    assert_one_line(updown("eval", "--dataset", "x", cwd=tmp_path), "MAX_POSITON_SIZE")


def test_unsupported_market_is_refused_at_load(tmp_path: Path) -> None:
    assert_one_line(updown("config", cwd=tmp_path, env={"MARKETS": "btc-15m,doge-5m"}),
                    "invalid setting MARKETS", "doge-5m", "btc, eth, sol, xrp")


def test_config_never_shows_an_invalid_key_as_set(tmp_path: Path) -> None:
    secret = "hunter2-not-a-key-at-all"
    proc = updown("config", cwd=tmp_path, env={"POLYMARKET_PRIVATE_KEY": secret,
                                               "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    [row] = [line for line in proc.stdout.splitlines() if "POLYMARKET_PRIVATE_KEY" in line]
    assert "(set, invalid: not 32-byte hex)" in row
    assert secret not in proc.stdout + proc.stderr


def test_config_live_names_every_missing_item(tmp_path: Path) -> None:
    proc = updown("config", "--live", cwd=tmp_path, env={
        "POLYMARKET_MODE": "live", "POLYMARKET_SIGNATURE_TYPE": "2",
        "POLYMARKET_CLOB_URL": "http://clob.example.com"})
    line = assert_one_line(proc, "not ready for live trading")
    for item in ("POLYMARKET_PRIVATE_KEY not set", "POLYMARKET_FUNDER not set",
                 "POLYMARKET_SIGNATURE_TYPE 2", "POLYMARKET_CLOB_URL must be a https:// URL",
                 "LIVE_CONFIRM must be 'trade real money'"):
        assert item in line
    assert "POLYMARKET_MODE" not in line  # that one is right
    assert "POLYMARKET_GAMMA_URL" not in line  # the public default is https


def test_config_live_rejects_a_non_hex_key_without_showing_it(tmp_path: Path) -> None:
    secret = "zz" * 32
    line = assert_one_line(updown("config", "--live", cwd=tmp_path, env={
        "POLYMARKET_MODE": "live", "POLYMARKET_PRIVATE_KEY": secret,
        "LIVE_CONFIRM": "trade real money"}), "POLYMARKET_PRIVATE_KEY not 32-byte hex")
    assert "POLYMARKET_MODE" not in line
    assert "LIVE_CONFIRM" not in line
    assert secret not in line


def test_config_live_passes_with_everything(tmp_path: Path) -> None:
    key = Account.create()
    proc = updown("config", "--live", cwd=tmp_path, env={
        "POLYMARKET_MODE": "live", "POLYMARKET_PRIVATE_KEY": "0x" + key.key.hex().removeprefix(
            "0x"), "POLYMARKET_SIGNATURE_TYPE": "1", "POLYMARKET_FUNDER": key.address,
        "LIVE_CONFIRM": "trade real money", "MARKETS": "btc-15m,eth-5m",
        # A loopback test venue may be plain http: nothing leaves the machine.
        "POLYMARKET_CLOB_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 0, proc.stderr
    assert "ready for live trading" in proc.stdout
    assert key.key.hex().removeprefix("0x") not in proc.stdout


def test_no_tracebacks_show_locals() -> None:
    assert app.pretty_exceptions_show_locals is False


def test_command_modules_do_not_import_the_root() -> None:
    """The root builds the app from the command modules; none imports it back (no cycle,
    no ``__import__``) and no side entry point keeps its own argparse."""
    for path in (ROOT / "agent" / "cli").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                     for a in node.names}
        assert "agent.cli.app" not in imported, path
        assert "__import__" not in path.read_text(), path
    for folder in ("agent", "evals"):
        for path in (ROOT / folder).rglob("*.py"):
            assert "argparse" not in path.read_text(), path
