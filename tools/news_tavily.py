"""Tavily news search (and optional deep research) as dated ``TextItem``s for sentiment scoring.

Speaks the Tavily REST API through tavily-python's ``TavilyClient``:
  * ``POST {base}/search`` with ``topic="news"``: ``{"results": [{"title", "url", "content",
    "score", "published_date", ...}], ...}``.  News results carry ``published_date`` (RFC 2822);
    a result without a parseable date is dropped, because an undated item cannot be placed
    before the decision time.
  * optional deep research: ``POST {base}/research`` starts a task (``{"request_id", "status",
    ...}``); ``GET {base}/research/{request_id}`` answers ``{"status": "completed", "content",
    "completed_at", "sources", ...}`` when done.  A task started in one fetch is read once in the
    next one (a window later), so a fetch never waits for it; an unfinished task is dropped.
    Research costs far more credits than a search: off unless ``TAVILY_RESEARCH`` is set.

The host comes from ``TavilyClient(api_base_url=...)`` and the HTTP session is ours
(``session=``, a documented constructor option), so every call runs inside ``SourceHttp``'s
budget and timeouts.  Nothing here returns text except inside ``TextItem``s, which the provider
reduces to numbers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from tools.sentiment import TextItem
from tools.sentiment_http import InvalidResponse, SourceHttp, bounded_text, parse_timestamp

FAMILY = "tavily"
SEARCH_OUTLET = "tavily:news"
RESEARCH_OUTLET = "tavily:research"
DEFAULT_BASE_URL = "https://api.tavily.com"
DEFAULT_QUERY = "Bitcoin BTC price"
RESEARCH_INPUT = ("Summarise the news about Bitcoin (BTC) and its price published in the last "
                  "few hours, and how positive or negative it is for the price.")
MAX_RESULTS = 20
# The id goes into a URL path: accept only the shape Tavily uses (a UUID-like token).
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")

log = logging.getLogger("updown.sentiment")


def parse_search(response: object, *, limit: int = MAX_RESULTS) -> tuple[TextItem, ...]:
    """``/search`` JSON -> items; raises ``InvalidResponse`` when the envelope is not Tavily's."""
    if not isinstance(response, dict) or not isinstance(response.get("results"), list):
        raise InvalidResponse("tavily search: no results list")
    items: list[TextItem] = []
    for result in response["results"][:limit]:
        if not isinstance(result, dict):
            continue
        ts = parse_timestamp(result.get("published_date"))
        title, content = bounded_text(result.get("title")), bounded_text(result.get("content"))
        if ts is None or not (title or content):
            continue
        items.append(TextItem(ts=ts, source=SEARCH_OUTLET, title=title, text=content))
    return tuple(items)


def parse_research(response: object) -> TextItem | None:
    """A finished ``/research/{id}`` JSON -> one item dated at completion; None otherwise."""
    if not isinstance(response, dict) or response.get("status") != "completed":
        return None
    ts = parse_timestamp(response.get("completed_at"))
    content = bounded_text(response.get("content"))
    if ts is None or not content:
        return None
    return TextItem(ts=ts, source=RESEARCH_OUTLET, title="", text=content)


class TavilyNews:
    """Live source ``tavily``: one news search per fetch (plus research when enabled)."""

    name = FAMILY

    def __init__(self, api_key: str, *, base_url: str = DEFAULT_BASE_URL,
                 research: bool = False, query: str = DEFAULT_QUERY,
                 max_results: int = MAX_RESULTS) -> None:
        from tavily import TavilyClient  # type: ignore[import-untyped, unused-ignore]

        self.http = SourceHttp()
        self._client: Any = TavilyClient(api_key=api_key, api_base_url=base_url.rstrip("/"),
                                         session=self.http.new_session(),
                                         client_source="updown")
        self._query = query
        self._max_results = max_results
        self._research = research
        self._pending_research: str | None = None

    def fetch(self, now: float, lookback_s: float) -> tuple[TextItem, ...]:
        budget = max(0.1, self.http.remaining_s())
        response = self._client.search(
            self._query, topic="news", search_depth="basic",
            time_range="day" if lookback_s <= 86400 else "week",
            max_results=self._max_results, include_answer=False, include_raw_content=False,
            include_images=False, timeout=budget,
        )
        items = parse_search(response, limit=self._max_results)
        if not self._research:
            return items
        # Research is extra: it gets half of what is left and never fails the search.
        self.http.shorten(self.http.remaining_s() / 2)
        try:
            extra = self._research_step()
        except Exception as exc:
            log.warning("tavily research skipped: %s", type(exc).__name__)
            self._pending_research = None
            return items
        return items if extra is None else (*items, extra)

    def _research_step(self) -> TextItem | None:
        finished = None
        pending, self._pending_research = self._pending_research, None
        if pending is not None:
            finished = parse_research(self._client.get_research(pending))
        started = self._client.research(input=RESEARCH_INPUT, model="mini",
                                        timeout=max(0.1, self.http.remaining_s()))
        request_id = started.get("request_id") if isinstance(started, dict) else None
        if isinstance(request_id, str) and _REQUEST_ID_RE.fullmatch(request_id):
            self._pending_research = request_id
        return finished
