"""``updown explain DECISION_ID``: re-run a logged decision and say whether it reproduces.

The record comes from the journal (default JOURNAL_PATH) or, with ``--decision-log``, the
JSONL decision log.  Exit 0 when the re-run matches the log, 1 when it differs, 2 when the
decision cannot be found or rebuilt (one line).  Never places an order (``agent.explain``).
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


def explain(
    decision_id: Annotated[str, typer.Argument(
        help="The decision's id, as in the journal and the decision log.")],
    journal: Annotated[Path | None, typer.Option(
        help="SQLite journal to read the decision from (default JOURNAL_PATH).")] = None,
    decision_log: Annotated[Path | None, typer.Option(
        help="Read the decision from this JSONL decision log instead of the journal.")]
    = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="One JSON object: every node's output, the differences, notes.")]
    = False,
) -> None:
    """Re-run a logged decision on its own inputs: every node's output, every guard rule, and
    whether the result matches the log."""
    from agent.explain import Explainer, find_record
    from agent.explain_view import render_json, render_text

    if journal is not None and decision_log is not None:
        raise UserError("give either --journal or --decision-log, not both")
    if decision_log is None and journal is None:
        journal = common.settings(quiet=True).journal_path
    else:
        common.settings(quiet=True)  # logging configured like every command
    record = find_record(decision_id, journal=journal, decision_log=decision_log)
    with Explainer() as explainer:
        result = asyncio.run(explainer.aexplain(record))
    if as_json:
        sys.stdout.write(json.dumps(render_json(result), sort_keys=True) + "\n")
    else:
        sys.stdout.write(render_text(result) + "\n")
    if not result.matches:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``explain`` to the ``updown`` app."""
    app.command()(explain)
