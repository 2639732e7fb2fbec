"""The one error type the user can fix.

A ``UserError`` is a mistake in what the user gave (a setting, a file, a flag, a market): the
command line prints its message as one line, ``error: <message>``, and exits with code 2.
Every module's user-facing error subclasses it, so the CLI has one exit path and never shows
a traceback for input it can name.  Messages name the file, field or variable and never
carry a secret's value.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix; printed as one line, exit code 2."""
