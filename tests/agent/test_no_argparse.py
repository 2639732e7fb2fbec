"""Every command line of the application is a typer command of ``updown`` (one-line errors,
exit code 2, one help system): no module of ``agent/`` or ``evals/`` parses arguments with
argparse.  ``python -m evals.maker_fit`` became ``updown fit maker``."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _uses_argparse(path: Path) -> bool:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom) and node.module == "argparse":
            return True
    return False


def test_no_argparse_in_agent_or_evals() -> None:
    users = {str(p.relative_to(ROOT)) for package in ("agent", "evals")
             for p in (ROOT / package).rglob("*.py") if _uses_argparse(p)}
    assert users == set()


def test_maker_fit_is_an_updown_fit_command() -> None:
    from typer.testing import CliRunner

    from agent.cli.app import app

    result = CliRunner().invoke(app, ["fit", "maker", "--help"])
    assert result.exit_code == 0, result.output
    assert "--write" in result.output
    assert "--shared" in result.output
    import evals.maker_fit as maker_fit

    assert not hasattr(maker_fit, "main")


def test_fit_maker_with_missing_recordings_is_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from agent.cli.app import app

    result = CliRunner().invoke(app, ["fit", "maker", "--shared", str(tmp_path)])
    assert result.exit_code == 2
    assert "missing" in result.output
    assert "Traceback" not in result.output
