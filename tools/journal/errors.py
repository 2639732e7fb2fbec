"""The journal's own errors (every part raises these, callers catch them by class)."""

from __future__ import annotations


class JournalError(Exception):
    """Base class of the journal's own errors."""


class DuplicateEntryError(JournalError):
    """A second order intent for the same (account, market) window, decision or order id."""


class DuplicateRecordError(JournalError):
    """A decision id that is already recorded."""


class UnknownRecordError(JournalError, LookupError):
    """A run or order intent that the journal does not hold."""


class ConflictError(JournalError):
    """A write that contradicts what is already recorded (other outcome, other fill)."""
