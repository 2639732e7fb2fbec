"""Configuration from the environment and ``.env``; secrets are ``SecretStr`` and stay there.

Every endpoint is a setting with the venue's public default, so tests point them at loopback.
``load_settings`` turns a validation failure into one line naming the variable.

Misspelled settings are errors, not silently ignored.  Our prefixes are the first word of
every setting whose name has more than one (``POLYMARKET_``, ``MAX_``, ``OPENAI_``, ``NO_``,
...: ``OUR_PREFIXES``).  A variable with one of them that is not a setting and not a known
third-party variable (``THIRD_PARTY_VARIABLES``: ``OPENAI_ORG_ID`` of the OpenAI SDK,
``NO_COLOR``, ``NO_PROXY``, ...) is an error naming it and the closest setting:

* in ``.env`` (the project's own file) always;
* in the process environment only when it is within a typo of a setting (difflib ratio
  ``ENV_TYPO_RATIO``): the environment is shared with every other program (``MAX_JOBS`` of a
  build, ``LOG_FORMAT`` of something else), so only what is evidently meant for us is refused.

Variables without one of our prefixes (``LANGSMITH_*``, ``PATH``) are never looked at.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from core.errors import UserError

SentimentSource = Literal["recorded", "tavily", "twitter", "reddit"]
_SUBREDDIT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{1,20}")
# MARKETS: "<asset>-<length>[:<variant>]" (the grammar of tools.polymarket.markets, which
# builds the series; checked here so a bad value fails at load, in every command).
MARKET_ASSETS = ("BTC", "ETH", "SOL", "XRP")
_MARKET_SPEC_RE = re.compile(r"([a-z]+)-(\d+)([sm])(?::([a-z0-9_]+))?")
# Private key: 32 bytes of hex (the 0x prefix is optional, as the signer accepts both).
_PRIVATE_KEY_RE = re.compile(r"(0x)?[0-9a-fA-F]{64}")
_ADDRESS_RE = re.compile(r"0x[0-9a-fA-F]{40}")


class ConfigError(UserError):
    """A setting is missing or invalid; the message is one line naming it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- mode and venue credentials (used only inside the live broker) ---
    polymarket_mode: Literal["paper", "live"] = "paper"
    polymarket_private_key: SecretStr | None = None
    polymarket_api_key: SecretStr | None = None
    polymarket_api_secret: SecretStr | None = None
    polymarket_api_passphrase: SecretStr | None = None
    polymarket_signature_type: int = Field(default=0, ge=0, le=3)
    polymarket_funder: str | None = None
    live_confirm: str | None = None

    # --- live execution (tools/polymarket/broker.py) ---
    polymarket_chain_id: int = 137
    # Market buys are FOK (all or nothing) unless FAK (fill what the book has) is chosen.
    polymarket_order_type: Literal["FOK", "FAK"] = "FOK"
    # Read timeout of the one POST of an order; after it the outcome is looked up, never resent.
    polymarket_order_timeout_s: float = Field(default=5.0, gt=0, le=60)
    # How long the broker keeps looking an unknown outcome up before leaving it to reconciliation.
    polymarket_lookup_timeout_s: float = Field(default=10.0, gt=0, le=60)

    # --- endpoints ---
    polymarket_gamma_url: str = "https://gamma-api.polymarket.com"
    polymarket_clob_url: str = "https://clob.polymarket.com"
    polymarket_rtds_url: str = "wss://ws-live-data.polymarket.com"
    # Authenticated realtime prices (prices.crypto / prices.crypto.twap): used instead of RTDS
    # for the settlement reference when POLYMARKET_API_KEY/SECRET/PASSPHRASE are all set.
    polymarket_realtime_url: str = "wss://ws-live-v2.polymarket.com/ws"
    polymarket_clob_ws_url: str = "wss://ws-subscriptions-clob.polymarket.com/ws/market"
    binance_ws_url: str = "wss://stream.binance.com:9443/ws/btcusdt@trade"
    binance_rest_url: str = "https://api.binance.com"
    # Undocumented endpoint that states a window's price to beat (openPrice); fallible.
    polymarket_crypto_price_url: str = "https://polymarket.com/api/crypto/crypto-price"

    # --- models ---
    openai_api_key: SecretStr | None = None
    openai_model: str = "gpt-4o-mini"
    openai_base_url: str | None = None
    openai_timeout_s: float = Field(default=20.0, gt=0, le=300)
    openai_max_retries: int = Field(default=1, ge=0, le=5)
    # After a traded window settles, write a short lesson and offer the last few to the
    # trader (`updown run` only; evals never reflect, so they stay reproducible).
    reflection_enabled: bool = False
    reflection_lessons: int = Field(default=3, ge=0, le=10)

    # --- sentiment ---
    sentiment_enabled: bool = True
    # Comma-separated in the environment: "recorded,tavily,twitter,reddit".
    sentiment_sources: Annotated[tuple[SentimentSource, ...], NoDecode] = (
        "recorded", "tavily", "twitter", "reddit",
    )
    sentiment_lookback_s: float = Field(default=6 * 3600.0, gt=0)
    twitter_bearer_token: SecretStr | None = None
    reddit_client_id: SecretStr | None = None
    reddit_client_secret: SecretStr | None = None
    reddit_user_agent: str = "updown/0.1"
    # Comma-separated in the environment: "Bitcoin,CryptoCurrency" (names without "r/").
    reddit_subreddits: Annotated[tuple[str, ...], NoDecode] = ("Bitcoin", "CryptoCurrency")
    tavily_api_key: SecretStr | None = None
    # Tavily deep research (one task per 15-minute window, read in the next one): costs credits.
    tavily_research: bool = False
    # Whole-fetch budget per live source and window (all sources are fetched in parallel).
    sentiment_fetch_timeout_s: float = Field(default=10.0, gt=0, le=120)
    # Live sentiment endpoints (tests point them at loopback).
    tavily_api_url: str = "https://api.tavily.com"
    twitter_api_url: str = "https://api.twitter.com"
    reddit_oauth_url: str = "https://oauth.reddit.com"
    reddit_url: str = "https://www.reddit.com"

    # --- trading limits (the guard's; no model output can change them) ---
    min_confidence_threshold: int = Field(default=70, ge=0, le=100)
    max_position_size: float = Field(default=100.0, gt=0, le=1_000_000)
    risk_level: Literal["low", "medium", "high"] = "medium"
    min_edge: float = Field(default=0.02, ge=0, le=1)
    max_slippage: float = Field(default=0.02, ge=0, le=0.2)
    max_price_age_s: float = Field(default=2.0, gt=0)
    max_book_age_s: float = Field(default=5.0, gt=0)
    max_reference_gap_pct: float = Field(default=0.5, gt=0)
    no_entry_first_s: float = Field(default=30.0, ge=0)
    no_entry_last_s: float = Field(default=60.0, ge=0)
    max_orders_per_day: int = Field(default=24, ge=0)
    daily_loss_limit: float = Field(default=250.0, ge=0)
    max_consecutive_losses: int = Field(default=4, ge=1)
    loss_cooldown_s: float = Field(default=3600.0, ge=0)
    require_verified_price_to_beat: bool = True
    price_to_beat_tolerance_rel: float = Field(default=1e-4, gt=0, lt=0.01)  # sources agree
    stop_file: Path = Path("STOP")

    # --- execution style (core.maker): taker (marketable FOK), maker (post-only resting buy)
    # or maker_then_taker (rest, then take near the deadline if the edge after fees holds).
    # The maker knobs default to the fitted data/models/maker_v1.json; set one to override it.
    execution_style: Literal["taker", "maker", "maker_then_taker"] = "taker"
    maker_margin: float | None = Field(default=None, ge=0, le=0.5)
    maker_replace_threshold: float | None = Field(default=None, ge=0, le=0.5)
    maker_min_replace_interval_s: float | None = Field(default=None, ge=0)
    maker_max_replaces_per_window: int | None = Field(default=None, ge=0)
    maker_cancel_last_s: float | None = Field(default=None, ge=0)
    maker_queue_fill_fraction: float | None = Field(default=None, ge=0, le=1)
    maker_rebate_share: float | None = Field(default=None, ge=0, le=1)
    maker_taker_deadline_s: float | None = Field(default=None, ge=0)
    # Exits before expiry (off by default): sell held shares at the bid net of the fee.
    exits_enabled: bool = False
    exit_take_profit_margin: float | None = Field(default=None, ge=0, le=1)
    exit_stop_margin: float | None = Field(default=None, ge=0, le=1)

    # --- runner and records ---
    decision_cadence_s: float = Field(default=30.0, gt=0)
    # Decide before the next cadence tick when the price moved this much (percent) since the
    # window's last decision.
    large_move_pct: float = Field(default=0.1, gt=0)
    # Live runner: which series to trade, comma-separated "<asset>-<length>" (btc-15m,eth-5m).
    markets: str = "btc-15m"
    # LangGraph SQLite checkpoints of the live runner: one thread per window (Studio, replay).
    checkpoint_path: Path = Path("updown-checkpoints.db")
    # Live runner status (JSON, atomically replaced); empty = none.
    status_path: str = "logs/status.json"
    # Loopback health endpoint of the live runner (GET /health); 0 = off.
    status_port: int = Field(default=0, ge=0, le=65535)
    # Operator dashboard of `updown run` / `updown dashboard` (agent.web): loopback unless
    # configured; any other address requires the printed token on every page.
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8765, ge=0, le=65535)
    # Notifications (agent.notify): apprise URLs, comma or space separated (tg://, discord://,
    # mailto://, json://...).  Secret: the URLs carry bot tokens and passwords.
    notify_urls: SecretStr | None = None
    # A feed whose last message is older than this is reported silent (once per silence).
    notify_feed_silent_s: float = Field(default=30.0, gt=0)
    journal_path: Path = Path("updown.db")
    ai_decision_log_path: Path = Path("logs/decisions.jsonl")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = False
    # Where log lines go while `updown run` shows its terminal view (else stderr).
    log_file: Path = Path("logs/updown.log")

    @field_validator("markets")
    @classmethod
    def _markets(cls, v: str) -> str:
        check_markets(v)
        return v

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, v: object) -> object:
        return v.upper() if isinstance(v, str) else v

    @field_validator("sentiment_sources", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            return tuple(p.strip().lower() for p in v.split(",") if p.strip())
        return v

    @field_validator("reddit_subreddits", mode="before")
    @classmethod
    def _subreddits(cls, v: object) -> object:
        if isinstance(v, str):
            v = tuple(p.strip().removeprefix("r/") for p in v.split(",") if p.strip())
        if isinstance(v, list | tuple):
            if not v:
                raise ValueError("at least one subreddit is needed")
            for name in v:
                # Reddit's own name rule; it also keeps the listing path free of injection.
                if not isinstance(name, str) or not _SUBREDDIT_RE.fullmatch(name):
                    raise ValueError(f"not a subreddit name: {name!r}")
        return v

    @property
    def llm_enabled(self) -> bool:
        return self.openai_api_key is not None and bool(self.openai_api_key.get_secret_value())


_SECRET_FIELDS = frozenset(
    name for name, field in Settings.model_fields.items() if "SecretStr" in str(field.annotation)
)
KNOWN_VARIABLES = frozenset(name.upper() for name in Settings.model_fields)
OUR_PREFIXES = frozenset(name.split("_")[0] + "_" for name in KNOWN_VARIABLES if "_" in name)
# Other programs' variables under our prefixes: the OpenAI SDK and LangChain's OpenAI client,
# and the conventions every terminal program honours.
THIRD_PARTY_VARIABLES = frozenset({
    "OPENAI_ORG_ID", "OPENAI_ORGANIZATION", "OPENAI_PROJECT_ID", "OPENAI_API_BASE",
    "OPENAI_API_TYPE", "OPENAI_API_VERSION", "OPENAI_LOG", "OPENAI_PROXY",
    "OPENAI_WEBHOOK_SECRET", "OPENAI_ADMIN_KEY",
    "NO_COLOR", "NO_PROXY",
})
ENV_TYPO_RATIO = 0.85


def check_markets(text: str) -> None:
    """Raise ValueError naming the first market spec of ``text`` that cannot be traded."""
    seen: set[tuple[str, int]] = set()
    for part in text.split(","):
        spec = part.strip().lower()
        if not spec:
            continue
        found = _MARKET_SPEC_RE.fullmatch(spec)
        if found is None:
            raise ValueError(f"market {part.strip()!r} is not <asset>-<length> "
                             "(e.g. btc-15m, eth-5m)")
        asset = found.group(1).upper()
        if asset not in MARKET_ASSETS:
            raise ValueError(f"market {part.strip()!r}: asset must be one of "
                             f"{', '.join(a.lower() for a in MARKET_ASSETS)}")
        length_s = int(found.group(2)) * (60 if found.group(3) == "m" else 1)
        if length_s <= 0:
            raise ValueError(f"market {part.strip()!r}: window length must be > 0")
        if (asset, length_s) in seen:
            raise ValueError(f"market {part.strip()!r} is listed twice")
        seen.add((asset, length_s))
    if not seen:
        raise ValueError("no market given (e.g. MARKETS=btc-15m)")


def private_key_problem(key: SecretStr | None) -> str | None:
    """Why the configured private key cannot sign (None if it can); never shows the key."""
    if key is None or not key.get_secret_value().strip():
        return "not set"
    if not _PRIVATE_KEY_RE.fullmatch(key.get_secret_value().strip()):
        return "not 32-byte hex (64 hex digits, optionally 0x-prefixed)"
    return None


def address_problem(address: str | None) -> str | None:
    """Why ``address`` is not a wallet address (None if it is one)."""
    if not address or not address.strip():
        return "not set"
    if not _ADDRESS_RE.fullmatch(address.strip()):
        return f"not an address (0x and 40 hex digits, got {address.strip()!r})"
    return None


def _closest(name: str) -> list[str]:
    return difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1, cutoff=0.6)


def unknown_variables(names: Iterable[str], *, typos_only: bool) -> list[tuple[str, str | None]]:
    """Names with one of our prefixes that are no setting and no third party's, each with the
    closest setting (None: nothing close).  ``typos_only``: only those close to a setting."""
    found: list[tuple[str, str | None]] = []
    for raw in names:
        name = raw.upper()
        if (name in KNOWN_VARIABLES or name in THIRD_PARTY_VARIABLES
                or not name.startswith(tuple(OUR_PREFIXES))):
            continue
        if typos_only:
            close = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1,
                                              cutoff=ENV_TYPO_RATIO)
            if close:
                found.append((raw, close[0]))
        else:
            close = _closest(name)
            found.append((raw, close[0] if close else None))
    return found


def _check_names(env_file: str | Path | None, environ: Mapping[str, str]) -> None:
    from dotenv import dotenv_values

    sources: list[tuple[str, list[tuple[str, str | None]]]] = []
    if env_file is not None and Path(env_file).is_file():
        names = dotenv_values(env_file, encoding="utf-8").keys()
        sources.append((str(env_file), unknown_variables(names, typos_only=False)))
    sources.append(("the environment", unknown_variables(environ.keys(), typos_only=True)))
    for where, unknown in sources:
        if unknown:
            name, close = unknown[0]
            hint = f"did you mean {close}?" if close else "no setting has that name"
            more = f" (+{len(unknown) - 1} more)" if len(unknown) > 1 else ""
            raise ConfigError(f"unknown setting {name} in {where}: {hint}{more}")


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "settings"
    value = first.get("input")
    # Never echo a secret's value, even a malformed one.
    secret = name.lower() in _SECRET_FIELDS
    shown = "" if isinstance(value, dict) or secret else f" (got {value!r})"
    more = f" (+{err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid setting {name}: {first['msg']}{shown}{more}"


def load_settings(env_file: str | Path | None = ".env",
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate settings; raises ConfigError with one line naming the bad variable
    (a value that does not validate, or a misspelled name: see the module docstring).
    ``environ``: the environment to check names in (default ``os.environ``)."""
    _check_names(env_file, os.environ if environ is None else environ)
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as err:
        raise ConfigError(_one_line(err)) from None
    except SettingsError as err:  # a value the source could not even parse
        raise ConfigError(f"invalid setting: {err}") from None


@lru_cache(maxsize=1)
def default_settings() -> Settings:
    """Settings for contexts that cannot be handed them (Studio); cached once per process."""
    return load_settings()
