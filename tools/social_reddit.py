"""Reddit's newest posts in configured subreddits as dated ``TextItem``s for sentiment scoring.

Speaks Reddit's OAuth API through praw in read-only (application-only) mode:
  * ``POST {reddit_url}/api/v1/access_token`` with HTTP basic auth (client id and secret) and
    ``grant_type=client_credentials`` -> ``{"access_token", "token_type": "bearer",
    "expires_in", "scope"}``;
  * ``GET {oauth_url}/r/<sub>+<sub>/new?limit=100&raw_json=1`` with the bearer token ->
    ``{"kind": "Listing", "data": {"children": [{"kind": "t3", "data": {"title", "selftext",
    "created_utc", ...}}], "after", ...}}``.

Hosts are praw's own ``oauth_url``/``reddit_url`` settings and the session is ours through
``requestor_kwargs={"session": ...}`` (both documented ``praw.Reddit`` options), so every call runs
inside ``SourceHttp``'s budget and timeouts.

A fresh ``praw.Reddit`` is built per fetch (once per 15-minute window): prawcore's rate limiter
sleeps before a request when an earlier response said the quota was spent, and that sleep must not
outlive one fetch; we honour ``Retry-After`` ourselves between fetches.  Post attributes are read
from the object's ``__dict__`` because a missing attribute on a praw object triggers a lazy fetch
(another request) instead of an error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tools.sentiment import TextItem
from tools.sentiment_http import SourceHttp, bounded_text, parse_timestamp

FAMILY = "reddit"
OUTLET = "reddit:new"
DEFAULT_OAUTH_URL = "https://oauth.reddit.com"
DEFAULT_REDDIT_URL = "https://www.reddit.com"
LIMIT = 100  # one listing page


def items_from_posts(posts: Sequence[Any]) -> tuple[TextItem, ...]:
    """praw submissions (or anything with the same ``__dict__`` fields) -> items."""
    items: list[TextItem] = []
    for post in posts:
        fields = vars(post) if hasattr(post, "__dict__") else {}
        ts = parse_timestamp(fields.get("created_utc"))
        title = bounded_text(fields.get("title"))
        body = bounded_text(fields.get("selftext"))
        if ts is None or not (title or body):
            continue
        items.append(TextItem(ts=ts, source=OUTLET, title=title, text=body))
    return tuple(items)


class RedditNew:
    """Live source ``reddit``: one token request and one listing request per fetch."""

    name = FAMILY

    def __init__(self, client_id: str, client_secret: str, *, user_agent: str,
                 subreddits: Sequence[str], oauth_url: str = DEFAULT_OAUTH_URL,
                 reddit_url: str = DEFAULT_REDDIT_URL, limit: int = LIMIT) -> None:
        if not subreddits:
            raise ValueError("at least one subreddit is needed")
        self.http = SourceHttp()
        self._client_id = client_id
        self._client_secret = client_secret
        self._user_agent = user_agent
        self._multireddit = "+".join(subreddits)
        self._oauth_url = oauth_url.rstrip("/")
        self._reddit_url = reddit_url.rstrip("/")
        self._limit = max(1, min(LIMIT, limit))

    def fetch(self, now: float, lookback_s: float) -> tuple[TextItem, ...]:
        import praw

        session = self.http.new_session()
        try:
            reddit = praw.Reddit(
                client_id=self._client_id, client_secret=self._client_secret,
                user_agent=self._user_agent, oauth_url=self._oauth_url,
                reddit_url=self._reddit_url, check_for_updates=False, check_for_async=False,
                requestor_kwargs={"session": session,
                                  "timeout": max(0.1, self.http.remaining_s())},
            )
            posts = list(reddit.subreddit(self._multireddit).new(limit=self._limit))
        finally:
            session.close()
        return items_from_posts(posts)
