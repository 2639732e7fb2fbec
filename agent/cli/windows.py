"""``updown threads``: past windows of the live runner, read back from its checkpoints.

Every window is one LangGraph thread (thread id = market slug), every decision one run:

    updown threads                      # list the windows, oldest first
    updown threads SLUG                 # its decisions, one JSON line each
    updown threads SLUG --to URL        # copy its last state to a LangGraph server (Studio)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli import common
from core.errors import UserError


def threads(
    market_id: Annotated[str | None, typer.Argument(
        help="Window (market slug) to show; without it, list the windows.")] = None,
    checkpoints: Annotated[Path | None, typer.Option(
        help="LangGraph SQLite checkpoints of the runner (default CHECKPOINT_PATH).")] = None,
    to: Annotated[str | None, typer.Option(
        "--to", metavar="URL", help="Copy the window's last state to this LangGraph server "
        "(`langgraph dev`), where Studio opens it.")] = None,
) -> None:
    """Past windows of the live runner and their decisions (from its checkpoints)."""
    from agent.threads import copy_to_server, list_windows, window_decisions

    path = checkpoints or common.settings(quiet=True).checkpoint_path
    if not path.is_file():
        raise UserError(f"no checkpoint database at {path}")
    if to is not None and market_id is None:
        raise UserError("--to needs the window (market slug) to copy")
    if market_id is None:
        for slug in asyncio.run(list_windows(path)):
            sys.stdout.write(slug + "\n")
        return
    if to is not None:
        try:
            thread_id = asyncio.run(copy_to_server(path, market_id, to))
        except LookupError as exc:
            raise UserError(str(exc)) from None
        except Exception as exc:  # the server: unreachable, or it refused the state
            raise UserError(f"{to}: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]}") from None
        sys.stdout.write(f"{market_id} -> thread {thread_id} on {to} (metadata "
                         f"market_id={market_id}): open it in Studio\n")
        return
    for row in asyncio.run(window_decisions(path, market_id)):
        sys.stdout.write(json.dumps(row) + "\n")


def register(app: typer.Typer) -> None:
    """Add ``threads`` to the ``updown`` app."""
    app.command()(threads)
