"""The ``updown`` command line: the root app, built from the command modules.

Each command lives in its own module under ``agent/cli/`` with a ``register(app)``; this root
imports them and registers them, and no command module imports it back.  Every way the
program ends goes through one exit path (``agent.cli.group.UpdownGroup``): a mistake the user
can fix (``core.errors.UserError``) or a usage mistake is one line on stderr and exit code 2,
never a traceback.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

import typer

from agent.cli import (
    benchmarks,
    config,
    dashboard,
    evaluate,
    explain,
    fit,
    journal,
    market_data,
    money,
    redeem,
    run,
    windows,
)
from agent.cli.group import UpdownGroup

app = typer.Typer(
    cls=UpdownGroup, add_completion=False, no_args_is_help=True,
    # A frame inside a signing library holds the key: a traceback is no place for locals.
    pretty_exceptions_show_locals=False,
    help="Autonomous trading agent for Polymarket's BTC Up or Down markets.")


def _version(value: bool) -> None:
    if value:
        try:
            installed = version("updown")
        except PackageNotFoundError:  # run from a source tree that was never installed
            installed = "unknown (not installed)"
        typer.echo(f"updown {installed}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: Annotated[bool, typer.Option(
        "--version", help="Print the version and exit.", callback=_version, is_eager=True)]
    = False,
) -> None:
    """Autonomous trading agent for Polymarket's BTC Up or Down markets."""


# One line per command module, in the order `updown --help` lists them.
run.register(app)
evaluate.register(app)
market_data.register(app)
money.register(app)
redeem.register(app)
journal.register(app)
windows.register(app)
explain.register(app)
config.register(app)
fit.register(app)
benchmarks.register(app)
dashboard.register(app)


def main() -> None:
    """Console entry point (``updown``): runs the app; ``UpdownGroup`` decides the exit."""
    app()


if __name__ == "__main__":
    main()
