"""LangSmith tracing with key-shaped strings masked, installed only when tracing is on.

LangChain/LangGraph send traces by themselves once ``LANGSMITH_TRACING`` and an API key are in
the environment, through one cached LangSmith client.  ``install_redacting_tracing`` replaces
that client with one whose anonymizer runs every traced input and output through
``mask_secrets``: records are turned into plain data and every string passes the same
redaction as the logs (``core.logs.redact``: private-key-shaped hex, ``sk-`` keys, bearer
tokens; here also LangSmith/Tavily-shaped keys and the exact values of the configured
secrets).  Secrets are not in graph state to begin with (the canary test proves it); this is
the second line of defence.  Nothing here touches the network unless tracing is switched on.

The execution path never leaves the process at all: runs named in ``HIDDEN_RUNS`` (the
``execute`` node) are sent with their inputs and outputs replaced by a marker, and the
``execution`` report is replaced by the marker in every other run that carries it (the
graph's own output).  LangSmith's ``hide_inputs``/``hide_outputs`` see only the payload, not
the run, and are skipped when an anonymizer is set, so the client's ``create_run`` and
``update_run`` (which every tracer path goes through, with the run's name) do the hiding.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from core.logs import MASK, redact
from core.settings import Settings

_TRUE = ("1", "true", "yes", "on")
# Node runs whose inputs and outputs are never traced (the order path).
HIDDEN_RUNS = frozenset({"execute"})
# State keys written by the execution path: hidden wherever a run carries them.
HIDDEN_KEYS = frozenset({"execution"})
HIDDEN = "***hidden: execution path***"
# Key shapes beyond the logs' own: LangSmith and Tavily API keys.
_EXTRA_PATTERNS = (
    re.compile(r"\blsv2_[A-Za-z0-9_]{16,}\b"),
    re.compile(r"\btvly-[A-Za-z0-9_\-]{16,}\b"),
)
# Exact secret values of this process's settings (set by install_redacting_tracing).
_SECRET_VALUES: tuple[str, ...] = ()
_client: Any = None


def _redact(text: str) -> str:
    text = redact(text)
    for pattern in _EXTRA_PATTERNS:
        text = pattern.sub(MASK, text)
    for value in _SECRET_VALUES:
        text = text.replace(value, MASK)
    return text


def mask_secrets(data: Any, _depth: int = 0) -> Any:
    """``data`` with every string redacted; records become plain data first."""
    if _depth > 20:
        return "***depth***"
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if isinstance(data, str):
        return _redact(data)
    if isinstance(data, Mapping):
        return {str(k): mask_secrets(v, _depth + 1) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [mask_secrets(v, _depth + 1) for v in data]
    if data is None or isinstance(data, bool | int | float):
        return data
    return _redact(repr(data))  # anything else is traced as its (redacted) text


def hide_execution(run_name: str | None, payload: Any) -> Any:
    """A run's inputs or outputs as they may leave the process: nothing of the execution
    path (the whole payload of a hidden run, the execution report anywhere else)."""
    if not isinstance(payload, Mapping):
        return payload
    if run_name in HIDDEN_RUNS:
        return {"hidden": HIDDEN}
    return {k: (HIDDEN if k in HIDDEN_KEYS else v) for k, v in payload.items()}


def _secret_values(settings: Any) -> tuple[str, ...]:
    """The configured secrets' values (long enough to be unambiguous), longest first."""
    from pydantic import SecretStr

    found: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr) and len(value.get_secret_value()) >= 8:
            found.append(value.get_secret_value())
    return tuple(sorted(found, key=len, reverse=True))


def _client_class() -> type[Any]:
    import langsmith

    class RedactingClient(langsmith.Client):
        """A LangSmith client that hides the execution path before anything is queued."""

        def create_run(self, name: str, inputs: dict[str, Any], run_type: Any,
                       **kwargs: Any) -> None:
            if kwargs.get("outputs") is not None:
                kwargs["outputs"] = hide_execution(name, kwargs["outputs"])
            super().create_run(name, hide_execution(name, inputs), run_type, **kwargs)

        def update_run(self, run_id: Any, **kwargs: Any) -> None:
            name = kwargs.get("name")
            for part in ("inputs", "outputs"):
                if kwargs.get(part) is not None:
                    kwargs[part] = hide_execution(name, kwargs[part])
            super().update_run(run_id, **kwargs)

    return RedactingClient


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    on = any(env.get(k, "").strip().lower() in _TRUE
             for k in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"))
    return on and bool(env.get("LANGSMITH_API_KEY") or env.get("LANGCHAIN_API_KEY"))


def install_redacting_tracing(env: Mapping[str, str] | None = None,
                              secrets: Iterable[str] = (),
                              settings: Settings | None = None) -> bool:
    """Make every trace of this process go through ``hide_execution`` and ``mask_secrets``;
    False when tracing is off (then nothing is sent anywhere and nothing is installed).
    ``settings``: the process's settings, whose secrets' exact values are masked (the CLI
    passes the ones it loaded; without them they are loaded here, by the same loader).
    ``secrets``: exact values to mask besides the configured settings' secrets."""
    global _SECRET_VALUES, _client
    if not tracing_enabled(env):
        return False
    if _client is not None:
        return True  # installed once per process (the CLI, then the live session)
    import atexit

    import langsmith

    if settings is None:
        from core.settings import ConfigError, load_settings

        try:
            settings = load_settings()
        except ConfigError:
            settings = None  # the caller reports bad settings; tracing still masks by shape
    configured = () if settings is None else _secret_values(settings)
    extra = tuple(s for s in secrets if len(s) >= 8)
    _SECRET_VALUES = tuple(sorted({*configured, *extra}, key=len, reverse=True))
    _client = _client_class()(anonymizer=mask_secrets)
    langsmith.configure(client=_client)
    atexit.register(flush_tracing)  # short commands exit before the background sender
    return True


def flush_tracing() -> None:
    """Send what is queued (before a short-lived process exits); no-op when tracing is off."""
    if _client is not None:
        _client.flush()
