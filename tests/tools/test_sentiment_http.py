"""tools.sentiment_http and the sources' parsers: timestamps, Retry-After, failure reasons, shapes,
the fetch deadline, and the new sentiment settings.  No network."""

from __future__ import annotations

import types

import prawcore
import pytest
import requests
from tavily.errors import TimeoutError as TavilyTimeout

from core.settings import ConfigError, Settings, load_settings
from tools.news_tavily import parse_research, parse_search
from tools.sentiment_http import (
    MAX_ITEM_CHARS,
    FetchDeadlineExceeded,
    InvalidResponse,
    SkipReason,
    SourceHttp,
    bounded_text,
    classify_failure,
    parse_timestamp,
    retry_after_from_headers,
)
from tools.social_reddit import items_from_posts
from tools.social_x import parse_recent

T = 1_766_730_000.0  # 2025-12-26T06:20:00Z


@pytest.mark.parametrize(("value", "expected"), [
    (T, T),
    (int(T), T),
    ("2025-12-26T06:20:00Z", T),
    ("2025-12-26T06:20:00.000Z", T),
    ("2025-12-26T07:20:00+01:00", T),
    ("2025-12-26T06:20:00", T),  # naive: read as UTC
    ("Fri, 26 Dec 2025 06:20:00 GMT", T),
    ("Fri, 26 Dec 2025 06:20:00 +0000", T),
    # A bare date could be any time that day: counted from its last second, never earlier.
    ("2025-12-26", 1_766_793_599.0),
    ("yesterday", None),
    ("", None),
    (True, None),
    (None, None),
    (-5, None),
    (float("inf"), None),
    (float("nan"), None),
    ("x" * 100, None),
    (["2025-12-26"], None),
])
def test_parse_timestamp(value: object, expected: float | None) -> None:
    assert parse_timestamp(value) == expected


@pytest.mark.parametrize(("headers", "expected"), [
    ({"retry-after": "120"}, 120.0),
    ({"retry-after": "Fri, 26 Dec 2025 06:25:00 GMT"}, 300.0),
    ({"retry-after": "Fri, 26 Dec 2025 06:00:00 GMT"}, 0.0),  # already passed
    ({"x-rate-limit-reset": str(int(T) + 900)}, 900.0),  # X: epoch seconds
    ({"x-ratelimit-reset": "42"}, 42.0),  # Reddit: seconds left
    ({"retry-after": "soon", "x-ratelimit-reset": "7"}, 7.0),
    ({"retry-after": "-1"}, None),
    ({}, None),
])
def test_retry_after_from_headers(headers: dict[str, str], expected: float | None) -> None:
    assert retry_after_from_headers(headers, T) == expected


def _praw_wrapped(exc: Exception) -> Exception:
    return prawcore.exceptions.RequestException(exc, (), {})


@pytest.mark.parametrize(("exc", "status", "reason"), [
    (Exception("429"), 429, SkipReason.RATE_LIMITED),
    (Exception("boom"), 503, SkipReason.SERVER_ERROR),
    (Exception("boom"), 500, SkipReason.SERVER_ERROR),
    (requests.exceptions.ReadTimeout(), None, SkipReason.TIMEOUT),
    (FetchDeadlineExceeded(), 200, SkipReason.TIMEOUT),
    (TavilyTimeout(1.0), None, SkipReason.TIMEOUT),
    (_praw_wrapped(requests.exceptions.ReadTimeout()), 200, SkipReason.TIMEOUT),
    (Exception("unauthorized"), 401, SkipReason.AUTH),
    (Exception("forbidden"), 403, SkipReason.AUTH),
    (Exception("not found"), 404, SkipReason.REJECTED),
    (requests.exceptions.ConnectionError(), None, SkipReason.UNREACHABLE),
    (_praw_wrapped(requests.exceptions.ConnectionError()), None, SkipReason.UNREACHABLE),
    (requests.exceptions.JSONDecodeError("x", "y", 0), 200, SkipReason.INVALID),
    (KeyError("data"), 200, SkipReason.INVALID),
    (InvalidResponse("shape"), None, SkipReason.INVALID),
    (RuntimeError("?"), None, SkipReason.FAILED),
])
def test_classify_failure(exc: Exception, status: int | None, reason: str) -> None:
    assert classify_failure(exc, status) == reason
    assert reason in SkipReason.all()


def test_skip_reasons_are_fixed_short_sentences() -> None:
    reasons = SkipReason.all()
    assert len(reasons) == 13
    assert all(r.isprintable() and len(r) <= 60 for r in reasons)


def test_bounded_text() -> None:
    assert bounded_text("  Bitcoin \n\n rallies\t ") == "Bitcoin rallies"
    assert bounded_text(None) == ""
    assert bounded_text(42) == ""
    assert len(bounded_text("x" * 100_000)) == MAX_ITEM_CHARS


def test_request_after_deadline_fails_at_once_without_network() -> None:
    http = SourceHttp()
    http.arm(0.0)
    session = http.new_session()
    # Port 9 (discard) is never contacted: the adapter refuses before connecting.
    with pytest.raises(FetchDeadlineExceeded):
        session.get("http://127.0.0.1:9/never")
    http.arm(5.0)
    http.shorten(1.0)
    assert 0 < http.remaining_s() <= 1.0
    http.shorten(10.0)  # never extends
    assert http.remaining_s() <= 1.0


def test_rewrite_is_dropped_when_it_changes_nothing() -> None:
    assert SourceHttp(rewrite=("https://api.twitter.com", "https://api.twitter.com/")).rewrite \
        is None
    assert SourceHttp(rewrite=("https://api.twitter.com", "http://127.0.0.1:1")).rewrite == \
        ("https://api.twitter.com", "http://127.0.0.1:1")


# --- parsers -----------------------------------------------------------------------------------

def test_parse_search_keeps_dated_results_only() -> None:
    response = {"results": [
        {"title": "Bitcoin climbs", "content": "Gains", "published_date":
            "Fri, 26 Dec 2025 06:00:00 GMT"},
        {"title": "Undated", "content": "no date"},
        {"title": "", "content": "", "published_date": "Fri, 26 Dec 2025 06:00:00 GMT"},
        "not an object",
        {"title": "Bad date", "published_date": "someday"},
    ]}
    items = parse_search(response)
    assert [(i.title, i.source, i.ts) for i in items] == [
        ("Bitcoin climbs", "tavily:news", T - 1200)]
    for bad in ({"results": "none"}, {"answer": "x"}, [], "x", None):
        with pytest.raises(InvalidResponse):
            parse_search(bad)


def test_parse_research() -> None:
    done = {"status": "completed", "content": "Bullish tone", "completed_at":
            "2025-12-26T06:20:00Z"}
    item = parse_research(done)
    assert item is not None
    assert item.ts == T
    assert item.source == "tavily:research"
    assert parse_research({**done, "status": "pending"}) is None
    assert parse_research({**done, "completed_at": None}) is None
    assert parse_research("x") is None


def test_parse_recent() -> None:
    response = {"data": [
        {"id": "1", "text": "BTC up", "created_at": "2025-12-26T06:20:00.000Z",
         "public_metrics": {"like_count": 3}},
        {"id": "2", "text": "no date"},
        {"id": "3", "text": "bad metrics", "created_at": "2025-12-26T06:20:00.000Z",
         "public_metrics": "lots"},
    ], "meta": {"result_count": 3}}
    assert [(i.title, i.ts, i.source) for i in parse_recent(response)] == [
        ("BTC up", T, "twitter:x")]
    assert parse_recent({"meta": {"result_count": 0}}) == ()
    for bad in ({"data": {"id": "1"}}, {"errors": [{"title": "x"}]}, [], None):
        with pytest.raises(InvalidResponse):
            parse_recent(bad)


def test_items_from_posts_reads_only_present_fields() -> None:
    class Lazy:
        """Like a praw object: a missing attribute would trigger a fetch (here: fail)."""

        def __init__(self, **fields: object) -> None:
            self.__dict__.update(fields)

        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"lazy fetch of {name}")

    posts = [Lazy(created_utc=T, title="Bitcoin up", selftext="body"),
             Lazy(created_utc=T, title="no body"),
             Lazy(title="undated"),
             Lazy(created_utc="x", title="bad date"),
             types.SimpleNamespace(created_utc=T, title="", selftext="")]
    items = items_from_posts(posts)
    assert [(i.title, i.text) for i in items] == [("Bitcoin up", "body"), ("no body", "")]


# --- settings ----------------------------------------------------------------------------------

def test_sentiment_settings_defaults_and_parsing(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings(_env_file=None)
    assert s.reddit_subreddits == ("Bitcoin", "CryptoCurrency")
    assert s.tavily_api_url == "https://api.tavily.com"
    assert s.twitter_api_url == "https://api.twitter.com"
    assert (s.reddit_oauth_url, s.reddit_url) == ("https://oauth.reddit.com",
                                                  "https://www.reddit.com")
    assert s.sentiment_fetch_timeout_s == 10.0
    assert s.tavily_research is False
    monkeypatch.setenv("REDDIT_SUBREDDITS", " r/Bitcoin , BitcoinMarkets,")
    assert Settings(_env_file=None).reddit_subreddits == ("Bitcoin", "BitcoinMarkets")


@pytest.mark.parametrize("value", ["", "Bitcoin,a/b", "x", "Bitcoin;drop", "../etc"])
def test_bad_subreddits_fail_at_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("REDDIT_SUBREDDITS", value)
    with pytest.raises(ConfigError, match="REDDIT_SUBREDDITS"):
        load_settings(env_file=None)
