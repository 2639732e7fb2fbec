"""LangSmith tracing with key-shaped strings masked, installed only when tracing is on.

LangChain/LangGraph send traces by themselves once ``LANGSMITH_TRACING`` and an API key are in
the environment, through one cached LangSmith client.  ``install_redacting_tracing`` replaces
that client with one whose anonymizer runs every traced input and output through
``mask_secrets``: records are turned into plain data and every string passes the same
redaction as the logs (``agent.logs.redact``: private-key-shaped hex, ``sk-`` keys, bearer
tokens).  Secrets are not in graph state to begin with (the canary test proves it); this is
the second line of defence.  Nothing here touches the network unless tracing is switched on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from agent.logs import redact

_TRUE = ("1", "true", "yes", "on")


def mask_secrets(data: Any, _depth: int = 0) -> Any:
    """``data`` with every string redacted; records become plain data first."""
    if _depth > 20:
        return "***depth***"
    if isinstance(data, BaseModel):
        data = data.model_dump(mode="json")
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, Mapping):
        return {str(k): mask_secrets(v, _depth + 1) for k, v in data.items()}
    if isinstance(data, list | tuple | set | frozenset):
        return [mask_secrets(v, _depth + 1) for v in data]
    if data is None or isinstance(data, bool | int | float):
        return data
    return redact(repr(data))  # anything else is traced as its (redacted) text


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    on = any(env.get(k, "").strip().lower() in _TRUE
             for k in ("LANGSMITH_TRACING", "LANGCHAIN_TRACING_V2"))
    return on and bool(env.get("LANGSMITH_API_KEY") or env.get("LANGCHAIN_API_KEY"))


def install_redacting_tracing(env: Mapping[str, str] | None = None) -> bool:
    """Make every trace of this process go through ``mask_secrets``; False when tracing is
    off (then nothing is sent anywhere and nothing is installed)."""
    if not tracing_enabled(env):
        return False
    import langsmith

    langsmith.configure(client=langsmith.Client(anonymizer=mask_secrets))
    return True
