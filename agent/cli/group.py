"""The one way the ``updown`` program ends: every outcome becomes an exit code here.

``UpdownGroup`` is the root command's class.  Its ``main`` runs the command line in Typer's
non-standalone mode and turns what comes back into the process's exit status, so the console
script and ``CliRunner`` (which calls the same ``main``) behave the same:

* a ``core.errors.UserError`` (bad setting, file, flag, market...): ``error: <message>`` as
  one line on stderr, exit 2;
* a usage mistake (unknown option, missing or invalid value, unknown command): the same one
  line, naming the command, exit 2;
* the command given alone where one is needed (``updown``, ``updown fit``): its help on
  stdout, exit 0, exactly as with ``--help``;
* Ctrl-C: exit 130; ``typer.Exit(n)``: exit n.

Anything else is a bug and keeps its traceback (without local variables: a signing frame
holds the key).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from typer.core import TyperGroup
from typer.exceptions import Abort, TyperException

from core.errors import UserError

USAGE_EXIT = 2


def one_line(text: str) -> str:
    """``text`` on one line (messages of libraries may wrap or list)."""
    return " ".join(text.split())


def report_error(message: str) -> int:
    """Print ``error: <message>`` on stderr as one line; the exit code of a user error."""
    sys.stderr.write(f"error: {one_line(message)}\n")
    sys.stderr.flush()
    return USAGE_EXIT


def _usage_message(exc: TyperException) -> str:
    ctx = getattr(exc, "ctx", None)
    # Typer validates option values with pydantic, whose messages carry its error kind.
    message = exc.format_message().replace("Value error, ", "")
    if ctx is None:
        return message
    return f"{ctx.command_path}: {message} (see '{ctx.command_path} --help')"


def exit_code_of(call: Any) -> int:
    """Run ``call`` (the non-standalone command line) and map its outcome to an exit code."""
    from typer._click.exceptions import NoArgsIsHelpError

    try:
        result = call()
    except NoArgsIsHelpError as exc:
        # The rich help is printed when the exception is made; the plain one is its message.
        if exc.format_message():
            sys.stdout.write(exc.format_message() + "\n")
        return 0
    except UserError as exc:
        return report_error(str(exc))
    except TyperException as exc:  # click's usage errors, bundled with Typer
        return report_error(_usage_message(exc))
    except Abort:
        sys.stderr.write("aborted\n")
        return 130
    # Non-standalone mode returns typer.Exit's code, or the command's own (None) result.
    return result if isinstance(result, int) else 0


class UpdownGroup(TyperGroup):
    """The root group: every run of the command line ends in ``sys.exit`` with one code."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True,
             windows_expand_args: bool = True, **extra: Any) -> NoReturn:
        def call() -> Any:
            return super(UpdownGroup, self).main(
                args=args, prog_name=prog_name, complete_var=complete_var,
                standalone_mode=False, windows_expand_args=windows_expand_args, **extra)

        sys.exit(exit_code_of(call))
