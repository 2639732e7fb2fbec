"""The live sentiment sources on their real clients (tavily-python, tweepy, praw) against
loopback servers speaking the Tavily, X API v2 and Reddit OAuth APIs: valid answers, and each
fault of docs/reliability.md (429 storm with Retry-After, hang, invalid JSON, 5xx, wrong shape)
ending as that source skipped with a fixed reason, the others still counted, nothing raised,
within the fetch budget."""

from __future__ import annotations

import base64
import logging
import secrets
import time
from collections.abc import Iterator
from functools import cache

import pytest
from fakesocial import SCENARIOS, FakeSocial, Post, Scenario

from core.records import AggregatedSentiment, SentimentScore
from core.settings import Settings
from tools.sentiment import PolarityAnalyzer, make_analyzer
from tools.sentiment_http import SkipReason
from tools.sentiment_live import GRACE_S, LiveSentiment

pytestmark = pytest.mark.server

T = 1_766_730_000.0  # 2025-12-26T06:20:00Z
WINDOW = T - T % 900
BUDGET_S = 1.0
# Behavioural bound for a faulty source: its budget, the provider's grace, scheduling slack.
BOUND_S = BUDGET_S + GRACE_S + 1.5
SERVICE_OF = {"tavily": "tavily", "twitter": "x", "reddit": "reddit"}
EXPECTED = {
    "rate_limited": SkipReason.RATE_LIMITED,
    "hang": SkipReason.TIMEOUT,
    "invalid_json": SkipReason.INVALID,
    "server_error": SkipReason.SERVER_ERROR,
    "bad_shape": SkipReason.INVALID,
}
BULLISH = ("Bitcoin soars as delighted investors celebrate strong gains",
           "Great week for BTC: optimism and record inflows",
           "Bitcoin rally wins over happy traders")


@cache
def vader() -> PolarityAnalyzer:
    return make_analyzer()


class Clock:
    def __init__(self, t: float = T) -> None:
        self.t = t

    def now(self) -> float:
        return self.t


def posts() -> list[Post]:
    past = [Post(ts=T - 300 * (i + 1), title=BULLISH[i % 3], text="Analysts are upbeat.")
            for i in range(12)]
    # Stamped after the decision time: a source whose clock is ahead, or a forged date.
    future = [Post(ts=T + 30, title="Bitcoin collapses in a terrible crash"),
              Post(ts=T + 86400, title="Disaster: panic selling destroys Bitcoin")]
    return past + future


class Keys:
    def __init__(self) -> None:
        self.tavily = "tvly-canary" + secrets.token_hex(12)
        self.twitter = "AAAAcanary" + secrets.token_hex(12)
        self.reddit_id = "rid" + secrets.token_hex(6)
        self.reddit_secret = "rsecret" + secrets.token_hex(12)

    def all(self) -> tuple[str, ...]:
        return (self.tavily, self.twitter, self.reddit_id, self.reddit_secret)


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def servers(keys: Keys, clock: Clock) -> Iterator[dict[str, FakeSocial]]:
    srv = {svc: FakeSocial(svc, posts(), clock=clock.now)  # type: ignore[arg-type]
           for svc in ("tavily", "x", "reddit")}
    srv["tavily"].expected_auth = keys.tavily
    srv["x"].expected_auth = keys.twitter
    srv["reddit"].expected_auth = f"{keys.reddit_id}:{keys.reddit_secret}"
    for s in srv.values():
        s.hang_s = 4.0
        s.start()
    yield srv
    for s in srv.values():
        s.stop()


def make_settings(servers: dict[str, FakeSocial], keys: Keys, **kw: object) -> Settings:
    return Settings(  # type: ignore[arg-type]
        _env_file=None, tavily_api_key=keys.tavily, twitter_bearer_token=keys.twitter,
        reddit_client_id=keys.reddit_id, reddit_client_secret=keys.reddit_secret,
        tavily_api_url=servers["tavily"].url, twitter_api_url=servers["x"].url,
        reddit_oauth_url=servers["reddit"].url, reddit_url=servers["reddit"].url,
        sentiment_fetch_timeout_s=BUDGET_S, sentiment_sources="tavily,twitter,reddit", **kw)


def provider(servers: dict[str, FakeSocial], keys: Keys, clock: Clock,
             **kw: object) -> LiveSentiment:
    return LiveSentiment(make_settings(servers, keys, **kw), clock, analyzer=vader())


def by_source(result: AggregatedSentiment) -> dict[str, SentimentScore]:
    return {s.source: s for s in result.sources}


# --- valid answers -----------------------------------------------------------------------------

def test_all_three_sources_on_their_real_clients(servers: dict[str, FakeSocial], keys: Keys,
                                                 clock: Clock) -> None:
    result = provider(servers, keys, clock).score(T)
    sources = by_source(result)
    assert list(sources) == ["tavily", "twitter", "reddit"]
    for s in sources.values():
        # Twelve past posts each; the two stamped after the fetch never count.
        assert (s.items, s.skipped_reason) == (12, None)
        assert s.newest_item_ts == T - 300
        assert s.score > 10
    assert result.label == "bullish"
    assert 0 < result.confidence <= 1

    (search,) = servers["tavily"].requests
    assert (search.method, search.path) == ("POST", "/search")
    assert search.headers["authorization"] == f"Bearer {keys.tavily}"
    assert '"topic": "news"' in search.body
    assert '"include_raw_content": false' in search.body

    (recent,) = servers["x"].requests
    assert (recent.method, recent.path) == ("GET", "/2/tweets/search/recent")
    assert recent.headers["authorization"] == f"Bearer {keys.twitter}"
    assert recent.query["tweet.fields"] == ["created_at,public_metrics"]
    assert recent.query["start_time"] == ["2025-12-26T00:20:00Z"]  # as_of minus the 6 h lookback
    assert recent.query["max_results"] == ["100"]

    token, listing = servers["reddit"].requests
    basic = base64.b64encode(f"{keys.reddit_id}:{keys.reddit_secret}".encode()).decode()
    assert (token.method, token.path) == ("POST", "/api/v1/access_token")
    assert token.headers["authorization"] == f"Basic {basic}"
    assert token.body == "grant_type=client_credentials"
    assert (listing.method, listing.path) == ("GET", "/r/Bitcoin+CryptoCurrency/new")
    assert listing.query["limit"] == ["100"]
    assert listing.headers["authorization"].startswith("bearer fake-reddit-token-")


def test_one_fetch_per_window_on_the_wire(servers: dict[str, FakeSocial], keys: Keys,
                                          clock: Clock) -> None:
    live = provider(servers, keys, clock)
    for dt in range(0, 600, 30):
        clock.t = WINDOW + dt
        live.score(clock.t)
    assert [servers[s].count() for s in ("tavily", "x", "reddit")] == [1, 1, 2]
    clock.t = WINDOW + 900
    live.score(clock.t)
    assert [servers[s].count() for s in ("tavily", "x", "reddit")] == [2, 2, 4]


def test_configured_subreddits_form_the_listing_path(servers: dict[str, FakeSocial],
                                                     keys: Keys, clock: Clock) -> None:
    provider(servers, keys, clock, reddit_subreddits="BitcoinMarkets,btc").score(T)
    assert servers["reddit"].requests[-1].path == "/r/BitcoinMarkets+btc/new"


def test_tavily_research_is_started_once_and_read_in_the_next_window(
        servers: dict[str, FakeSocial], keys: Keys, clock: Clock) -> None:
    live = provider(servers, keys, clock, tavily_research=True)
    clock.t = WINDOW + 10
    first = by_source(live.score(clock.t))["tavily"]
    clock.t = WINDOW + 910
    second = by_source(live.score(clock.t))["tavily"]
    calls = [(r.method, r.path.rsplit("/", 1)[0] if r.method == "GET" else r.path)
             for r in servers["tavily"].requests]
    assert calls == [("POST", "/search"), ("POST", "/research"),
                     ("POST", "/search"), ("GET", "/research"), ("POST", "/research")]
    # A window later the T+30 post is public too; the finished report is one more dated item.
    assert (first.items, second.items) == (12, 12 + 1 + 1)


# --- faults ------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("source", ["tavily", "twitter", "reddit"])
def test_fault_skips_that_source_only(servers: dict[str, FakeSocial], keys: Keys, clock: Clock,
                                      source: str, scenario: Scenario) -> None:
    faulty = servers[SERVICE_OF[source]]
    faulty.scenario = scenario
    live = provider(servers, keys, clock)
    start = time.monotonic()
    result = live.score(T)  # never raises
    elapsed = time.monotonic() - start
    assert elapsed < BOUND_S
    sources = by_source(result)
    assert sources[source].skipped_reason == EXPECTED[scenario]
    assert sources[source].items == 0
    others = [s for name, s in sources.items() if name != source]
    assert [(s.items, s.skipped_reason) for s in others] == [(12, None), (12, None)]
    assert result.label == "bullish"
    # The next decision in the window neither waits nor asks the faulty source again.
    seen = faulty.count()
    clock.t = T + 30
    start = time.monotonic()
    again = live.score(T + 30)
    assert time.monotonic() - start < 0.5
    assert by_source(again)[source].skipped_reason == EXPECTED[scenario]
    assert faulty.count() == seen


@pytest.mark.parametrize("source", ["tavily", "twitter", "reddit"])
def test_429_storm_costs_one_request_per_retry_after(servers: dict[str, FakeSocial],
                                                     keys: Keys, clock: Clock,
                                                     source: str) -> None:
    faulty = servers[SERVICE_OF[source]]
    faulty.scenario = "rate_limited"
    faulty.retry_after_s = 400
    live = provider(servers, keys, clock)
    asked: list[int] = []
    for dt in range(0, 1800, 30):  # two windows of decisions every 30 s
        clock.t = WINDOW + dt
        live.score(clock.t)
        asked.append(faulty.count())
    # Reddit's storm hits its token request; the others' their one data request.
    assert asked[-1] == 5  # at 0, 400, 800, 1200, 1600 s: never sooner than Retry-After
    faulty.scenario = "valid"
    clock.t = WINDOW + 1800 + 401
    assert by_source(live.score(clock.t))[source].items == 13  # the T+30 post is public now


def test_no_secret_in_bodies_or_debug_logs(servers: dict[str, FakeSocial], keys: Keys,
                                          clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    provider(servers, keys, clock).score(T)
    assert caplog.records  # urllib3/prawcore did log at DEBUG
    logged = caplog.text
    bodies = [r.body + r.path + str(r.query) for s in servers.values() for r in s.requests]
    for key in keys.all():
        assert key not in logged
        assert not any(key in b for b in bodies)


def test_wrong_key_is_a_fixed_reason(servers: dict[str, FakeSocial], keys: Keys,
                                     clock: Clock) -> None:
    servers["x"].expected_auth = "someone-else"
    result = provider(servers, keys, clock).score(T)
    assert by_source(result)["twitter"].skipped_reason == SkipReason.AUTH


def test_unreachable_source(servers: dict[str, FakeSocial], keys: Keys, clock: Clock) -> None:
    settings = make_settings(servers, keys).model_copy(
        update={"twitter_api_url": "http://127.0.0.1:9"})
    result = LiveSentiment(settings, clock, analyzer=vader()).score(T)
    assert by_source(result)["twitter"].skipped_reason == SkipReason.UNREACHABLE
    assert by_source(result)["tavily"].items == 12
