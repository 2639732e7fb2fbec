"""X (Twitter) recent search as dated ``TextItem``s for sentiment scoring.

Speaks X API v2 ``GET /2/tweets/search/recent`` through tweepy's ``Client`` with
``tweet.fields=created_at,public_metrics``: ``{"data": [{"id", "text", "created_at",
"public_metrics", ...}], "meta": {"result_count", "newest_id", ...}}``; ``data`` is absent when
nothing matched.  Rate limits come back as 429 with ``x-rate-limit-reset`` (epoch seconds).

tweepy's ``Client`` has neither a timeout nor a host option: it sends everything through its
``session`` attribute (a ``requests.Session``) to ``https://api.twitter.com``.  We mount
``SourceHttp``'s transport adapter on that session, which adds the timeout and budget and, when
``TWITTER_API_URL`` differs from the default, sends the request to that origin instead.
``wait_on_rate_limit`` stays off: a 429 must end the fetch, not sleep inside it.

``public_metrics`` is requested and validated but not used as a weight yet: every post counts
once, weighted by recency like the other sources.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from tools.sentiment import TextItem
from tools.sentiment_http import InvalidResponse, SourceHttp, bounded_text, parse_timestamp

FAMILY = "twitter"
OUTLET = "twitter:x"
TWEEPY_HOST = "https://api.twitter.com"
DEFAULT_QUERY = "(bitcoin OR btc) lang:en -is:retweet"
MAX_RESULTS = 100  # the endpoint's maximum per request
# Recent search reaches 7 days back; stay clear of the edge.
MAX_LOOKBACK_S = 6.5 * 86400


def parse_recent(response: object, *, limit: int = MAX_RESULTS) -> tuple[TextItem, ...]:
    """Recent-search JSON -> items; raises ``InvalidResponse`` when the envelope is not X's."""
    if not isinstance(response, dict):
        raise InvalidResponse("x recent search: not an object")
    data = response.get("data", [])
    if not isinstance(data, list):
        raise InvalidResponse("x recent search: data is not a list")
    if "data" not in response and not isinstance(response.get("meta"), dict):
        raise InvalidResponse("x recent search: neither data nor meta")
    items: list[TextItem] = []
    for tweet in data[:limit]:
        if not isinstance(tweet, dict):
            continue
        ts = parse_timestamp(tweet.get("created_at"))
        text = bounded_text(tweet.get("text"))
        if ts is None or not text or not isinstance(tweet.get("public_metrics", {}), dict):
            continue
        items.append(TextItem(ts=ts, source=OUTLET, title=text))
    return tuple(items)


def _x_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class XRecentSearch:
    """Live source ``twitter``: one recent-search request per fetch."""

    name = FAMILY

    def __init__(self, bearer_token: str, *, base_url: str = TWEEPY_HOST,
                 query: str = DEFAULT_QUERY, max_results: int = MAX_RESULTS) -> None:
        import tweepy  # type: ignore[import-untyped, unused-ignore]

        # tweepy logs every request's headers, bearer token included, at DEBUG: keep that
        # logger above DEBUG whatever the root level is.
        logging.getLogger("tweepy.client").setLevel(logging.INFO)
        self.http = SourceHttp(rewrite=(TWEEPY_HOST, base_url))
        self._client: Any = tweepy.Client(bearer_token=bearer_token, return_type=dict,
                                          wait_on_rate_limit=False)
        self.http.mount(self._client.session)
        self._query = query
        self._max_results = max(10, min(MAX_RESULTS, max_results))

    def fetch(self, now: float, lookback_s: float) -> tuple[TextItem, ...]:
        response = self._client.search_recent_tweets(
            self._query, max_results=self._max_results, sort_order="recency",
            tweet_fields=["created_at", "public_metrics"],
            start_time=_x_time(now - min(lookback_s, MAX_LOOKBACK_S)),
        )
        return parse_recent(response, limit=self._max_results)
