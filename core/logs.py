"""Structured logging: console or JSON lines on stderr, with secrets masked in every event.

``LOG_LEVEL`` and ``LOG_JSON`` configure it once at start.  The redaction processor runs last
before rendering, so no event (whatever a caller put in it) can print a key-shaped string.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

# Key-shaped strings: EVM private keys / 32-byte hex, OpenAI-style keys, bearer tokens.
_SECRET_PATTERNS = (
    re.compile(r"\b(0x)?[0-9a-fA-F]{64}\b"),
    re.compile(r"\bsk-[A-Za-z0-9_\-]{16,}\b"),
    re.compile(r"(?i)\bbearer\s+[A-Za-z0-9._\-]{16,}"),
)
MASK = "***redacted***"


def redact(text: str) -> str:
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(MASK, text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact_value(v) for v in value)
    return value


def redact_processor(_logger: Any, _name: str, event: MutableMapping[str, Any]
                     ) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = _redact_value(event[key])
    return event


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at write time (test runners swap and close it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure(level: str = "INFO", json: bool = False) -> None:
    """Configure structlog once for the process."""
    renderer: Any = (structlog.processors.JSONRenderer(sort_keys=True) if json
                     else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redact_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
