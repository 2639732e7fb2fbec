"""Past windows of the live runner, read back from its LangGraph checkpoint database.

Every window is one thread (thread id = market slug) and every decision in it one run, so
the database answers "what did the agent see and decide in window X" (``updown threads``):

    updown threads --checkpoints updown-checkpoints.db            # list windows
    updown threads --checkpoints updown-checkpoints.db SLUG       # its decisions
    updown threads --checkpoints updown-checkpoints.db SLUG --to http://127.0.0.1:2024

``--to`` copies the window's last state into a thread on a LangGraph server (``langgraph
dev``; the graph ``updown``; thread id a UUID derived from the slug, the slug in its
metadata), where Studio opens it.  Studio's server keeps its
own checkpoints, hence the copy; the runner's database is only read.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from agent.autorun import open_checkpointer, thread_config
from graphs.graph import compile_graph


def _jsonable(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


async def list_windows(path: Path) -> list[str]:
    """Thread ids (market slugs) in the database, oldest first."""
    async with open_checkpointer(path) as saver:
        seen: dict[str, None] = {}
        async for item in saver.alist(None):
            seen.setdefault(str(item.config["configurable"]["thread_id"]), None)
    return sorted(seen, key=lambda slug: (slug.rsplit("-", 1)[-1], slug))


async def window_decisions(path: Path, market_id: str) -> list[dict[str, Any]]:
    """One line per completed decision of the window, oldest first."""
    async with open_checkpointer(path) as saver:
        graph = compile_graph(checkpointer=saver)
        out: list[dict[str, Any]] = []
        async for snap in graph.aget_state_history(thread_config(market_id)):
            values = snap.values
            if snap.next or "verdict" not in values:
                continue  # an intermediate step, or a decision that never finished
            trader, verdict = values["trader"], values["verdict"]
            execution = values.get("execution")
            if execution is not None and not execution.order_id.startswith(
                    values.get("decision_id", "") + "#"):
                execution = None  # an earlier decision's, still in the thread's state
            out.append({"decision_id": values.get("decision_id"),
                        "as_of": values["snapshot"].as_of,
                        "decision": trader.analysis.decision,
                        "confidence": trader.analysis.confidence,
                        "approved": verdict.approved,
                        "rules": [h.rule for h in verdict.rules_fired if h.action == "reject"],
                        "execution": None if execution is None else execution.status,
                        "checkpoint_id": snap.config["configurable"].get("checkpoint_id")})
        # History comes newest first; a decision is listed once (its final checkpoint).
        unique = {d["decision_id"]: d for d in reversed(out)}
        return list(unique.values())


def server_thread_id(market_id: str) -> str:
    """The server's thread id for a window: servers want UUIDs, so a name-based one (the same
    window always maps to the same thread); the slug goes in the thread's metadata."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"updown:{market_id}"))


async def copy_to_server(path: Path, market_id: str, url: str) -> str:
    """Copy the window's last state into a thread on a LangGraph server; its thread id."""
    from langgraph_sdk import get_client

    async with open_checkpointer(path) as saver:
        graph = compile_graph(checkpointer=saver)
        state = await graph.aget_state(thread_config(market_id))
    if not state.values:
        raise LookupError(f"no thread {market_id} in {path}")
    client = get_client(url=url)
    thread_id = server_thread_id(market_id)
    await client.threads.create(thread_id=thread_id, graph_id="updown", if_exists="do_nothing",
                                metadata={"market_id": market_id, "source": str(path)})
    await client.threads.update_state(thread_id, _jsonable(dict(state.values)),
                                      as_node="execute" if "execution" in state.values
                                      else "guard")
    return thread_id
