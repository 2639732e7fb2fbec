"""Live sentiment from Tavily news, X recent search and Reddit: fetched once per window, scored
to numbers.

``LiveSentiment(settings, clock=None).score(as_of) -> AggregatedSentiment`` is the provider the
sentiment_analyst node calls (``Context.sentiment``).  ``score`` is synchronous and does network
I/O on the first call of each 15-minute window (at most ``SENTIMENT_FETCH_TIMEOUT_S`` plus a
short grace): the node must call it off the event loop, ``await asyncio.to_thread(p.score, t)``.
Later calls in the window only re-score the held items at the new ``as_of`` (VADER results are
memoised), which takes milliseconds.

What holds, whatever the sources do:
  * Only numbers, counts, timestamps, the fixed family names (``tavily``, ``twitter``,
    ``reddit``, and the recorded corpus's own families when one is given) and the fixed sentences
    of ``SkipReason`` leave this module.  Fetched text is reduced to VADER scores here
    (``tools.sentiment.score_items``) and dropped.
  * No look-ahead: an item stamped after the clock's time at fetch is discarded for good (a source
    whose clock runs ahead of ours, or a forged date), and scoring counts only items with
    ``as_of - lookback < ts <= as_of``.
  * Every source is optional: without its key, or not listed in ``SENTIMENT_SOURCES``, it is
    reported skipped with a fixed reason and never contacted.
  * A fetch failure (timeout, 429, 5xx, invalid JSON or shape, refused connection) makes that
    source skipped with a fixed reason for the window; the others still count; nothing raises.
    Sources are fetched in parallel threads and a fetch still running at the deadline is
    abandoned (its thread is never joined again and no second fetch of that source starts while
    it lives).  After a failure the source is not asked again for ``max(Retry-After,
    failure_backoff_s)`` (capped at ``max_backoff_s``), so a 429 storm costs one request per
    backoff, not one per tick.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.clock import Clock, SystemClock
from core.records import AggregatedSentiment
from core.settings import Settings
from tools.sentiment import (
    EMBEDDED_TEXTS,
    PolarityAnalyzer,
    RecordedSentiment,
    TextCorpus,
    TextItem,
    embedded_sentiment,
    make_analyzer,
    score_items,
)
from tools.sentiment_http import SkipReason, SourceHttp, classify_failure

LIVE_SOURCES: tuple[str, ...] = ("tavily", "twitter", "reddit")
WINDOW_S = 900.0
FAILURE_BACKOFF_S = 120.0
MAX_BACKOFF_S = 3600.0
# Time a fetch thread gets beyond its budget to hand back a result it already has.
GRACE_S = 0.25
# Per source and window: more than enough for one search page; bounds scoring cost.
MAX_ITEMS_PER_SOURCE = 200

# Standard logging, not structlog: a logging failure (a closed stream) must never turn into an
# exception out of score().  Messages carry the source, a fixed reason and an exception class name.
log = logging.getLogger("updown.sentiment")


class LiveSource(Protocol):
    """One live source: a family name, its transport, and a blocking fetch."""

    name: str
    http: SourceHttp

    def fetch(self, now: float, lookback_s: float) -> tuple[TextItem, ...]: ...


def _secret(value: Any) -> str | None:
    raw = value.get_secret_value() if value is not None else ""
    return raw or None


def build_sources(settings: Settings) -> tuple[dict[str, LiveSource], dict[str, str]]:
    """The configured live sources, and a fixed skip reason for each one left out."""
    from tools.news_tavily import TavilyNews
    from tools.social_reddit import RedditNew
    from tools.social_x import XRecentSearch

    sources: dict[str, LiveSource] = {}
    skipped: dict[str, str] = {}
    for name in LIVE_SOURCES:
        if not settings.sentiment_enabled:
            skipped[name] = SkipReason.SENTIMENT_OFF
        elif name not in settings.sentiment_sources:
            skipped[name] = SkipReason.DISABLED
        elif name == "tavily":
            key = _secret(settings.tavily_api_key)
            if key is None:
                skipped[name] = SkipReason.NO_TAVILY_KEY
            else:
                sources[name] = TavilyNews(key, base_url=settings.tavily_api_url,
                                           research=settings.tavily_research)
        elif name == "twitter":
            token = _secret(settings.twitter_bearer_token)
            if token is None:
                skipped[name] = SkipReason.NO_TWITTER_KEY
            else:
                sources[name] = XRecentSearch(token, base_url=settings.twitter_api_url)
        else:
            client_id = _secret(settings.reddit_client_id)
            client_secret = _secret(settings.reddit_client_secret)
            if client_id is None or client_secret is None:
                skipped[name] = SkipReason.NO_REDDIT_KEY
            else:
                sources[name] = RedditNew(
                    client_id, client_secret, user_agent=settings.reddit_user_agent,
                    subreddits=settings.reddit_subreddits, oauth_url=settings.reddit_oauth_url,
                    reddit_url=settings.reddit_url)
    return sources, skipped


class _MemoAnalyzer:
    """VADER with a bounded memo: the same posts come back window after window."""

    def __init__(self, inner: PolarityAnalyzer, max_entries: int = 20_000) -> None:
        self._inner = inner
        self._memo: dict[str, dict[str, float]] = {}
        self._max = max_entries

    def polarity_scores(self, text: str) -> dict[str, float]:
        hit = self._memo.get(text)
        if hit is None:
            if len(self._memo) >= self._max:
                self._memo.clear()
            hit = {"compound": float(self._inner.polarity_scores(text)["compound"])}
            self._memo[text] = hit
        return hit


@dataclass(frozen=True, slots=True)
class FetchReport:
    """What the last fetch of one source did (numbers and fixed strings only)."""

    window: float
    reason: str | None
    items: int = 0
    future_dropped: int = 0
    elapsed_s: float = 0.0


@dataclass
class _SourceState:
    window: float | None = None
    items: tuple[TextItem, ...] = ()
    reason: str | None = None
    retry_at: float = -math.inf
    worker: threading.Thread | None = None
    fetches: int = 0


@dataclass
class _Outcome:
    items: tuple[TextItem, ...] | None = None
    error: Exception | None = None
    elapsed_s: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


class LiveSentiment:
    """Sentiment from the live sources, cached per window; see the module docstring."""

    # score() may wait on the network: callers on an event loop must use a thread.
    blocking = True

    def __init__(self, settings: Settings, clock: Clock | None = None, *,
                 sources: Mapping[str, LiveSource] | None = None,
                 skipped: Mapping[str, str] | None = None,
                 corpus: TextCorpus | None = None,
                 analyzer: PolarityAnalyzer | None = None,
                 window_s: float = WINDOW_S,
                 failure_backoff_s: float = FAILURE_BACKOFF_S,
                 max_backoff_s: float = MAX_BACKOFF_S) -> None:
        if sources is None:
            built, built_skipped = build_sources(settings)
            sources, skipped = built, {**built_skipped, **(skipped or {})}
        for name, source in sources.items():
            if name not in LIVE_SOURCES or source.name != name:
                raise ValueError(f"unknown live source {name!r}")
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be positive, got {window_s}")
        self._sources = dict(sources)
        self._skipped = {k: v for k, v in (skipped or {}).items() if k not in self._sources}
        self._clock: Clock = clock if clock is not None else SystemClock()
        self.lookback_s = float(settings.sentiment_lookback_s)
        self.budget_s = float(settings.sentiment_fetch_timeout_s)
        self.window_s = float(window_s)
        self.failure_backoff_s = float(failure_backoff_s)
        self.max_backoff_s = max(float(max_backoff_s), self.failure_backoff_s)
        use_corpus = (corpus is not None and settings.sentiment_enabled
                      and "recorded" in settings.sentiment_sources)
        self._corpus = corpus if use_corpus else None
        corpus_families = self._corpus.families if self._corpus is not None else ()
        self._report = tuple(dict.fromkeys((*corpus_families, *LIVE_SOURCES)))
        self._analyzer = _MemoAnalyzer(analyzer if analyzer is not None else make_analyzer())
        self._state = {name: _SourceState() for name in self._sources}
        self.reports: dict[str, FetchReport] = {}
        # score() may be called from several worker threads at once; one of them fetches.
        self._lock = threading.Lock()

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(self._sources)

    def window_of(self, as_of: float) -> float:
        return math.floor(as_of / self.window_s) * self.window_s

    def score(self, as_of: float) -> AggregatedSentiment:
        """Sentiment at ``as_of``; blocking (fetches on the window's first call): run it in a
        worker thread.  Never raises for anything a source does."""
        if not math.isfinite(as_of):
            raise ValueError(f"as_of must be finite, got {as_of}")
        with self._lock:
            now = float(self._clock.now())
            window = self.window_of(as_of)
            due = [n for n, st in self._state.items() if self._due(st, window, now)]
            if due:
                self._fetch(due, window, now)
            for st in self._state.values():
                if st.window != window:  # not due (backing off or busy): nothing for this window
                    st.window, st.items = window, ()
            items: list[TextItem] = [it for st in self._state.values() if st.reason is None
                                     for it in st.items]
            if self._corpus is not None:
                items.extend(self._corpus.items_between(as_of - self.lookback_s, as_of))
            result = score_items(items, as_of=as_of, lookback_s=self.lookback_s,
                                 analyzer=self._analyzer, families=self._report)
            return self._with_reasons(result)

    # --- fetching ------------------------------------------------------------------------

    @staticmethod
    def _due(st: _SourceState, window: float, now: float) -> bool:
        if st.worker is not None:
            if st.worker.is_alive():
                return False  # an abandoned fetch still runs: never two at once
            st.worker = None
        if now < st.retry_at:
            return False
        return st.window != window or st.reason is not None

    def _fetch(self, names: Sequence[str], window: float, now: float) -> None:
        outcomes = {name: _Outcome() for name in names}
        workers = {}
        for name in names:
            worker = threading.Thread(target=self._run, args=(name, now, outcomes[name]),
                                      name=f"sentiment-{name}", daemon=True)
            workers[name] = worker
            self._state[name].fetches += 1
            worker.start()
        deadline = time.monotonic() + self.budget_s + GRACE_S
        for name in names:
            outcomes[name].done.wait(max(0.0, deadline - time.monotonic()))
        for name in names:
            self._settle(name, window, now, outcomes[name], workers[name])

    def _run(self, name: str, now: float, out: _Outcome) -> None:
        source = self._sources[name]
        start = time.monotonic()
        try:
            source.http.arm(self.budget_s)
            out.items = tuple(source.fetch(now, self.lookback_s))
        except Exception as exc:  # every failure becomes a fixed skip reason in _settle
            out.error = exc
        finally:
            out.elapsed_s = time.monotonic() - start
            out.done.set()

    def _settle(self, name: str, window: float, now: float, out: _Outcome,
                worker: threading.Thread) -> None:
        st = self._state[name]
        st.window, st.items = window, ()
        if not out.done.is_set():
            st.worker = worker
            self._fail(name, st, window, now, SkipReason.TIMEOUT, None, "deadline")
            return
        if out.error is not None or out.items is None:
            http = self._sources[name].http
            reason = (classify_failure(out.error, http.last_status) if out.error is not None
                      else SkipReason.FAILED)
            self._fail(name, st, window, now, reason, http.retry_after_s(now),
                       type(out.error).__name__, out.elapsed_s)
            return
        # Only this source's family, only items already public at fetch time.
        own = [it for it in out.items if isinstance(it, TextItem) and it.family == name]
        kept = tuple(it for it in own if it.ts <= now)[:MAX_ITEMS_PER_SOURCE]
        st.items, st.reason, st.retry_at = kept, None, -math.inf
        self.reports[name] = FetchReport(window=window, reason=None, items=len(kept),
                                         future_dropped=sum(1 for it in own if it.ts > now),
                                         elapsed_s=round(out.elapsed_s, 3))

    def _fail(self, name: str, st: _SourceState, window: float, now: float, reason: str,
              retry_after_s: float | None, error: str, elapsed_s: float | None = None) -> None:
        wait = min(self.max_backoff_s, max(self.failure_backoff_s, retry_after_s or 0.0))
        st.reason, st.retry_at = reason, now + wait
        elapsed = self.budget_s + GRACE_S if elapsed_s is None else elapsed_s
        self.reports[name] = FetchReport(window=window, reason=reason,
                                         elapsed_s=round(elapsed, 3))
        log.warning("sentiment source %s skipped: %s (%s); next try in %.0f s",
                    name, reason, error, wait)

    # --- output --------------------------------------------------------------------------

    def _with_reasons(self, result: AggregatedSentiment) -> AggregatedSentiment:
        reasons = dict(self._skipped)
        reasons.update({n: st.reason for n, st in self._state.items() if st.reason is not None})
        sources = tuple(
            s.model_copy(update={"skipped_reason": reasons[s.source]})
            if s.source in reasons and s.items == 0 else s
            for s in result.sources
        )
        return result.model_copy(update={"sources": sources})


def default_provider(settings: Settings) -> LiveSentiment | RecordedSentiment:
    """The sentiment a run gets when none is injected: the live sources whose keys are set,
    with the recorded corpus beside them when "recorded" is listed; with no live source
    configured, the embedded recorded corpus alone."""
    built, skipped = build_sources(settings)
    if not built:
        return embedded_sentiment(settings.sentiment_lookback_s)
    corpus = TextCorpus.load(EMBEDDED_TEXTS) if "recorded" in settings.sentiment_sources else None
    return LiveSentiment(settings, sources=built, skipped=skipped, corpus=corpus)
