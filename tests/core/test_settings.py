"""Settings: misspelled variables are errors naming the closest setting, other programs'
variables are left alone, MARKETS is checked at load, and key checks never show the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from core.settings import (
    KNOWN_VARIABLES,
    MARKET_ASSETS,
    OUR_PREFIXES,
    ConfigError,
    address_problem,
    load_settings,
    private_key_problem,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only what a test sets: the developer's own variables must not decide the outcome."""
    import os

    for name in list(os.environ):
        if name.upper().startswith(tuple(OUR_PREFIXES)) or name.upper() == "MARKETS":
            monkeypatch.delenv(name)


def env_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / ".env"
    path.write_text(text, encoding="utf-8")
    return path


def test_prefixes_come_from_the_setting_names() -> None:
    assert {"POLYMARKET_", "MAX_", "OPENAI_", "NO_", "LOG_"} <= OUR_PREFIXES
    assert "LANGSMITH_" not in OUR_PREFIXES  # LangSmith's own variables are not ours
    assert all(any(name.startswith(p) for name in KNOWN_VARIABLES) for p in OUR_PREFIXES)


def test_misspelled_variable_in_env_file_names_it_and_the_closest(tmp_path: Path) -> None:
    path = env_file(tmp_path, "MAX_POSITON_SIZE=5\n")
    with pytest.raises(ConfigError) as info:
        load_settings(path, environ={})
    message = str(info.value)
    assert message == f"unknown setting MAX_POSITON_SIZE in {path}: did you mean MAX_POSITION_SIZE?"


def test_misspelled_lower_case_variable_in_env_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"polymarket_privatekey .*POLYMARKET_PRIVATE_KEY"):
        load_settings(env_file(tmp_path, "polymarket_privatekey=abc\n"), environ={})


def test_unknown_variable_with_nothing_close_says_so(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown setting LOG_FORMAT in .*no setting has"):
        load_settings(env_file(tmp_path, "LOG_FORMAT=json\n"), environ={})


def test_several_unknown_variables_are_counted(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"MAX_POSITON_SIZE .*\(\+1 more\)$"):
        load_settings(env_file(tmp_path, "MAX_POSITON_SIZE=5\nMIN_EDGEE=0.1\n"), environ={})


def test_third_party_and_foreign_variables_in_env_file_are_accepted(tmp_path: Path) -> None:
    text = ("OPENAI_ORG_ID=org-1\nOPENAI_API_BASE=http://127.0.0.1:9\nNO_COLOR=1\n"
            "LANGSMITH_API_KEY=lsv2_x\nLANGSMITH_TRACING=false\nPATH_EXTRA=/x\n"
            "MAX_POSITION_SIZE=5\n")
    settings = load_settings(env_file(tmp_path, text), environ={})
    assert settings.max_position_size == 5.0


def test_misspelled_variable_in_the_environment(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_POSITON_SIZE", "5")
    with pytest.raises(ConfigError, match="unknown setting MAX_POSITON_SIZE in the environment: "
                                          "did you mean MAX_POSITION_SIZE"):
        load_settings(None)


@pytest.mark.parametrize("name", ["MAX_JOBS", "NO_PROXY", "LOG_FORMAT", "OPENAI_ORG_ID",
                                  "OPENAI_API_BASE", "STATUS_COLOR", "LANGSMITH_ENDPOINT"])
def test_other_programs_variables_in_the_environment_are_left_alone(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment is shared: only a near-miss of one of our names is refused there."""
    monkeypatch.setenv(name, "1")
    assert load_settings(None).max_position_size == 100.0


def test_environ_argument_is_what_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="MIN_CONFIDENCE_TRESHOLD"):
        load_settings(None, environ={"MIN_CONFIDENCE_TRESHOLD": "70"})


def test_env_example_documents_only_settings() -> None:
    """Copying .env.example to .env must load: every variable in it is a setting."""
    load_settings(ROOT / ".env.example", environ={})


@pytest.mark.parametrize("markets", ["btc-15m", "btc-15m, eth-5m,sol-15m,xrp-5m",
                                     "BTC-15M", "btc-3s:synthetic", "eth-15m:fifteen"])
def test_supported_markets_load(tmp_path: Path, markets: str) -> None:
    assert load_settings(env_file(tmp_path, f"MARKETS={markets}\n"), environ={}).markets == markets


@pytest.mark.parametrize(("markets", "needle"), [
    ("doge-15m", "asset must be one of btc, eth, sol, xrp"),
    ("btc-15", "is not <asset>-<length>"),
    ("btc-15m,BTC-15m", "listed twice"),
    ("btc-0m", "window length must be > 0"),
    (" , ", "no market given"),
])
def test_unsupported_markets_fail_at_load(tmp_path: Path, markets: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(env_file(tmp_path, f"MARKETS={markets}\n"), environ={})
    assert str(info.value).startswith("invalid setting MARKETS: ")
    assert needle in str(info.value)


@pytest.mark.parametrize("spec", ["btc-15m", "eth-5m", "xrp-1m", "sol-30s:x", "doge-15m",
                                  "btc-15", "btc15m", "btc-15h", "btc-15m:Fifteen!", "btc-0s"])
def test_load_rule_agrees_with_the_runner_parser(spec: str) -> None:
    """core cannot import the venue adapter; this keeps its copy of the rule in step."""
    from core.settings import check_markets
    from tools.polymarket.gamma import ASSETS
    from tools.polymarket.markets import MarketSpecError, parse_markets

    assert MARKET_ASSETS == ASSETS

    def accepted(check: object) -> bool:
        try:
            check(spec)  # type: ignore[operator]
        except (ValueError, MarketSpecError):
            return False
        return True

    assert accepted(check_markets) == accepted(parse_markets)


def test_private_key_check_never_shows_the_key() -> None:
    good = "ab" * 32
    assert private_key_problem(SecretStr(good)) is None
    assert private_key_problem(SecretStr("0x" + good)) is None
    assert private_key_problem(None) == "not set"
    assert private_key_problem(SecretStr("  ")) == "not set"
    bad = "my-secret-passphrase-not-a-key"
    problem = private_key_problem(SecretStr(bad))
    assert problem is not None
    assert "32-byte hex" in problem
    assert bad not in problem
    assert private_key_problem(SecretStr("ab" * 31)) is not None  # 31 bytes


def test_address_check() -> None:
    assert address_problem("0x" + "aB" * 20) is None
    assert address_problem(None) == "not set"
    assert address_problem("0x123") is not None
