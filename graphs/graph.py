"""The one trading graph: Studio, the autonomous runner and the evals all run this.

START -> intake -> technical_analyst | fair_value | sentiment_analyst (parallel)
      -> risk_manager -> trader -> guard -> execute (only if approved) -> END
"""

from __future__ import annotations

from typing import Any

from langgraph.cache.base import BaseCache
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.types import CachePolicy, RetryPolicy

from graphs import nodes
from graphs.context import Context, StudioContext
from graphs.state import AgentInput, AgentState

ANALYSTS = ("technical_analyst", "fair_value", "sentiment_analyst")
# A decision that loops is a bug: end it long before it could run up a model bill.
RECURSION_LIMIT = 25
# Sentiment is about the window, not the tick, and live sources cost money and rate limit:
# with a cache at compile time (the live runner passes one), it is computed once per window.
# Longer than any window, so a window never refetches; keys of past windows just expire.
SENTIMENT_CACHE_TTL_S = 1800


def sentiment_cache_key(state: Any) -> str:
    """One sentiment per market window: the window's market id.  Also called on the empty
    state LangGraph draws the graph with, so a missing snapshot is a key, not an error (the
    node itself then fails, and a failure is never cached)."""
    snap = state.get("snapshot") if isinstance(state, dict) else None
    market_id = snap.get("market_id") if isinstance(snap, dict) else getattr(
        snap, "market_id", None)
    return f"sentiment:{market_id}"


def build_graph(context_schema: type[Context] = Context) -> StateGraph[Any, Any, Any, Any]:
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        AgentState, context_schema=context_schema, input_schema=AgentInput,
        output_schema=AgentState,
    )
    # Analysts and the decision nodes are idempotent reads: a transient failure may retry once.
    builder.set_node_defaults(retry_policy=RetryPolicy(max_attempts=2, initial_interval=0.05))
    builder.add_node("intake", nodes.intake)
    builder.add_node("technical_analyst", nodes.technical_analyst)
    builder.add_node("fair_value", nodes.fair_value)
    builder.add_node("sentiment_analyst", nodes.sentiment_analyst,
                     cache_policy=CachePolicy(key_func=sentiment_cache_key,
                                              ttl=SENTIMENT_CACHE_TTL_S))
    builder.add_node("risk_manager", nodes.risk_manager)
    builder.add_node("trader", nodes.trader)
    builder.add_node("guard", nodes.guard, retry_policy=RetryPolicy(max_attempts=1))
    # Orders are never retried: an explicit single attempt (None would inherit the default).
    builder.add_node("execute", nodes.execute, retry_policy=RetryPolicy(max_attempts=1))
    builder.add_edge(START, "intake")
    for analyst in ANALYSTS:
        builder.add_edge("intake", analyst)
    builder.add_edge(list(ANALYSTS), "risk_manager")
    builder.add_edge("risk_manager", "trader")
    builder.add_edge("trader", "guard")
    builder.add_conditional_edges("guard", nodes.route_after_guard, {"execute": "execute",
                                                                    END: END})
    builder.add_edge("execute", END)
    return builder


GRAPH_NAME = "updown"


def compile_graph(*, checkpointer: BaseCheckpointSaver[Any] | None = None,
                  cache: BaseCache[Any] | None = None, context_schema: type[Context] = Context,
                  ) -> CompiledStateGraph[Any, Any, Any, Any]:
    """The one compiled graph.  Studio, the runners, the evals and the benches all call this;
    only the checkpointer (the live runner's SQLite threads), the node cache (sentiment once
    per window) and the context's defaults (Studio's journal) differ, and the run's context
    carries everything else."""
    return build_graph(context_schema).compile(checkpointer=checkpointer, cache=cache,
                                               name=GRAPH_NAME)


# For langgraph.json: the dev/API server injects its own checkpointer, and a run that names no
# context gets StudioContext's defaults (paper, journaled).
graph = compile_graph(context_schema=StudioContext)
