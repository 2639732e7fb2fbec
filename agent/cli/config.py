"""``updown config``: validate the settings and show them, secrets masked; ``--live`` also
checks everything live trading needs and names each missing item (exit 2 if any).

Loading already refuses what no command can use (a value that does not validate, a
misspelled variable, an unsupported market: ``core.settings.load_settings``).  What only live
trading needs is checked here, so a paper user is not asked for keys.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import typer
from pydantic import SecretStr
from rich.console import Console
from rich.table import Table

from agent.cli import common
from core.errors import UserError
from core.settings import Settings, address_problem, private_key_problem

out = Console()

# Endpoints of the venue and the price feed, by the scheme live trading needs.
HTTPS_ENDPOINTS = ("polymarket_gamma_url", "polymarket_clob_url", "polymarket_crypto_price_url",
                   "binance_rest_url")
WSS_ENDPOINTS = ("polymarket_rtds_url", "polymarket_clob_ws_url", "binance_ws_url")
# Plain http/ws is accepted only on this machine (loopback test venues): nothing leaves it.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def shown_value(name: str, value: object) -> str:
    """A setting as ``updown config`` shows it: secrets only as set/unset, never their value."""
    if isinstance(value, SecretStr):
        if name == "polymarket_private_key":
            problem = private_key_problem(value)
            if problem is not None and problem != "not set":
                return "(set, invalid: not 32-byte hex)"
        return "(set)" if value.get_secret_value() else "(set, empty)"
    return "" if value is None else str(value)


def _endpoint_problem(url: str, secure: str) -> str | None:
    parts = urlsplit(url)
    plain = {"https": "http", "wss": "ws"}[secure]
    if parts.scheme == secure and parts.hostname:
        return None
    if parts.scheme == plain and parts.hostname in LOOPBACK_HOSTS:
        return None
    return f"must be a {secure}:// URL (got {url!r})"


def live_problems(settings: Settings) -> list[str]:
    """Everything live trading lacks, one item per variable; empty when it has it all."""
    from agent.live import CONFIRM_PHRASE, confirmation_ok
    from tools.polymarket.markets import MarketSpecError, parse_markets

    problems: list[str] = []
    try:
        parse_markets(settings.markets)
    except MarketSpecError as exc:  # load checks the grammar; this is the runner's own parser
        problems.append(f"MARKETS {exc}")
    if settings.polymarket_mode != "live":
        problems.append(f"POLYMARKET_MODE must be live (is {settings.polymarket_mode})")
    key = private_key_problem(settings.polymarket_private_key)
    if key is not None:
        problems.append(f"POLYMARKET_PRIVATE_KEY {key}")
    if settings.polymarket_signature_type in (1, 2, 3):
        funder = address_problem(settings.polymarket_funder)
        if funder is not None:
            problems.append(f"POLYMARKET_FUNDER {funder} (POLYMARKET_SIGNATURE_TYPE "
                            f"{settings.polymarket_signature_type} signs for a funder wallet)")
    elif settings.polymarket_funder:
        funder = address_problem(settings.polymarket_funder)
        if funder is not None:
            problems.append(f"POLYMARKET_FUNDER {funder}")
    for names, scheme in ((HTTPS_ENDPOINTS, "https"), (WSS_ENDPOINTS, "wss")):
        for name in names:
            problem = _endpoint_problem(getattr(settings, name), scheme)
            if problem is not None:
                problems.append(f"{name.upper()} {problem}")
    if not confirmation_ok(settings.live_confirm):
        problems.append(f"LIVE_CONFIRM must be {CONFIRM_PHRASE!r} (or type it when asked)")
    return problems


def config(
    live: Annotated[bool, typer.Option(
        "--live", help="Also check everything live trading needs (exit 2 if anything lacks).")]
    = False,
) -> None:
    """Validate the configuration and show it (secrets masked)."""
    settings = common.settings()
    table = Table(title="updown settings")
    table.add_column("variable")
    table.add_column("value")
    for name in type(settings).model_fields:
        table.add_row(name.upper(), shown_value(name, getattr(settings, name)))
    out.print(table)
    if not live:
        return
    problems = live_problems(settings)
    if problems:
        raise UserError(f"not ready for live trading: {'; '.join(problems)}")
    out.print("ready for live trading: mode, key, funder, markets, endpoints and confirmation "
              "check out (the venue itself is checked when a live command connects)")


def register(app: typer.Typer) -> None:
    """Add ``config`` to the ``updown`` app."""
    app.command()(config)
