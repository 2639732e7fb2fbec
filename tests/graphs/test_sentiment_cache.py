"""The sentiment node's CachePolicy: with a cache at compile time (the live runner's), one
sentiment per market window, whatever the number of decisions in it; without one (replays,
evals), every decision scores its own time."""

from __future__ import annotations

from typing import Any

from conftest import synthetic_snapshot
from langgraph.cache.memory import InMemoryCache

from core.records import AggregatedSentiment, SentimentScore
from graphs.context import Context
from graphs.graph import compile_graph


class CountingSentiment:
    """A sentiment provider that records the decision times it was asked about."""

    blocking = False

    def __init__(self) -> None:
        self.asked: list[float] = []

    def score(self, as_of: float) -> AggregatedSentiment:
        self.asked.append(as_of)
        return AggregatedSentiment(score=10.0 * len(self.asked), confidence=0.5,
                                   label="bullish",
                                   sources=(SentimentScore(source="recorded", items=3),))


async def _decide(compiled: Any, provider: CountingSentiment, market_id: str,
                  as_of: float) -> AggregatedSentiment:
    snap = synthetic_snapshot(market_id=market_id, as_of=as_of)
    out = await compiled.ainvoke({"snapshot": snap},
                                 context=Context(use_llm=False, sentiment=provider))
    sentiment: AggregatedSentiment = out["sentiment"]
    return sentiment


async def test_cached_graph_scores_sentiment_once_per_window() -> None:
    provider = CountingSentiment()
    compiled = compile_graph(cache=InMemoryCache())
    first = await _decide(compiled, provider, "btc-updown-15m-1000000", 1_000_300.0)
    again = await _decide(compiled, provider, "btc-updown-15m-1000000", 1_000_600.0)
    assert provider.asked == [1_000_300.0]
    assert again == first
    other = await _decide(compiled, provider, "btc-updown-15m-other", 1_000_700.0)
    assert provider.asked == [1_000_300.0, 1_000_700.0]
    assert other.score == 20.0


async def test_uncached_graph_scores_every_decision() -> None:
    provider = CountingSentiment()
    compiled = compile_graph()
    await _decide(compiled, provider, "btc-updown-15m-1000000", 1_000_300.0)
    await _decide(compiled, provider, "btc-updown-15m-1000000", 1_000_600.0)
    assert provider.asked == [1_000_300.0, 1_000_600.0]
