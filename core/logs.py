"""Structured logging: console or JSON lines on stderr, with secrets masked in every event.

``LOG_LEVEL`` and ``LOG_JSON`` configure it once at start.  The redaction processor runs last
before rendering, so no event (whatever a caller put in it) can print a key-shaped string.

While a terminal view owns the screen (``updown run`` on a terminal), :func:`routed_to_file`
sends every line to ``LOG_FILE`` instead: structlog's, the standard library's (third-party
libraries) and Python warnings, so nothing scrolls over the view.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any, TextIO

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


class _Sink:
    """Where rendered lines go: whatever ``sys.stderr`` is at write time (test runners swap
    and close it), or the log file while one is routed to."""

    def __init__(self) -> None:
        self.file: TextIO | None = None

    def write(self, text: str) -> int:
        return (self.file or sys.stderr).write(text)

    def flush(self) -> None:
        (self.file or sys.stderr).flush()

    def colors(self) -> bool:
        # Colour codes only for a person's terminal: never in a file.
        return self.file is None and sys.stderr.isatty()


_SINK = _Sink()


class _Renderer:
    """JSON, or console lines coloured only when they go to a terminal (decided per line: the
    sink can change after loggers were cached)."""

    def __init__(self, json: bool) -> None:
        self.json = structlog.processors.JSONRenderer(sort_keys=True) if json else None
        self.colored = structlog.dev.ConsoleRenderer(colors=True)
        self.plain = structlog.dev.ConsoleRenderer(colors=False)

    def __call__(self, logger: Any, name: str, event: MutableMapping[str, Any]) -> str:
        if self.json is not None:
            return str(self.json(logger, name, event))
        return (self.colored if _SINK.colors() else self.plain)(logger, name, event)


def configure(level: str = "INFO", json: bool = False) -> None:
    """Configure structlog once for the process."""
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redact_processor,
            _Renderer(json),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_SINK),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def open_log_file(path: Path) -> TextIO:
    """``path`` opened for appending (its directory made); OSError when it cannot be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("a", encoding="utf-8", buffering=1)


@contextlib.contextmanager
def routed_to_file(path: Path) -> Iterator[Path]:
    """Every log line goes to ``path`` (appended) until the block ends, then to stderr again.

    Covers structlog (loggers already cached too: they write through the sink), the standard
    library's loggers (third-party libraries; their own level, WARNING unless set) and Python
    warnings."""
    handle = open_log_file(path)
    handler = logging.StreamHandler(handle)
    handler.setFormatter(logging.Formatter("%(asctime)s [%(levelname)s] %(name)s: %(message)s"))
    root = logging.getLogger()
    previous, _SINK.file = _SINK.file, handle
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield path
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        _SINK.file = previous
        handle.close()


def get_logger(name: str) -> Any:
    return structlog.get_logger(name)
