"""HTTP plumbing shared by the live sentiment sources: bounded fetches and fixed failure reasons.

This module owns
  * ``SourceHttp``: the transport every live client (tavily-python, tweepy, praw) sends through.
    It is a ``requests`` transport adapter mounted on the client's session (the extension point
    ``requests`` documents), so each client keeps its own request logic and we add:
      - a whole-fetch deadline (``arm(budget_s)``): each request's timeout is capped at what is
        left of the budget and a request after the deadline fails at once, so a client that
        retries (prawcore retries 5xx and read timeouts) cannot stretch a fetch past it;
      - an explicit timeout on every request even when the client passes none (tweepy never
        does; tavily's ``get_research`` does not);
      - an optional origin rewrite for a client whose host is not configurable (tweepy's v2
        ``Client`` hard-codes ``https://api.twitter.com``): tests and proxies point it elsewhere;
      - a record of the last HTTP status and rate-limit headers, because some clients drop the
        response when they raise (tavily's ``UsageLimitExceededError`` carries only a message);
      - a refusal of bodies that declare more than ``MAX_RESPONSE_BYTES``.
  * ``SkipReason``: the fixed sentences a skipped source reports.  Only these (never an exception
    message, which may quote the response) leave the live provider.
  * ``classify_failure``: exception + last status -> one fixed reason.
  * ``parse_timestamp`` / ``bounded_text``: the per-item parsing every source shares.

A read timeout bounds each socket read, not a whole response: a server dripping one byte per
second never trips it.  The live provider therefore also abandons a fetch thread at the deadline
(see ``tools.sentiment_live``); the deadline here makes that thread finish soon after.
"""

from __future__ import annotations

import email.utils
import math
import re
import threading
import time
from datetime import UTC, datetime
from typing import Final

import requests
from requests.adapters import HTTPAdapter
from requests.models import PreparedRequest, Response

# A source's whole answer; real ones are tens of kilobytes.  Larger declared bodies are refused.
MAX_RESPONSE_BYTES: Final = 4 * 1024 * 1024
# What VADER reads of one item: enough for a headline plus a paragraph, bounded so one hostile
# item cannot make scoring slow.
MAX_ITEM_CHARS: Final = 4000
# Connection set-up gets at most this much of the budget: a dead host should fail fast.
CONNECT_TIMEOUT_S: Final = 5.0


class SkipReason:
    """Fixed skip reasons (the only free-form-looking strings the provider emits)."""

    DISABLED: Final = "not in SENTIMENT_SOURCES"
    SENTIMENT_OFF: Final = "sentiment disabled by settings"
    NO_TAVILY_KEY: Final = "TAVILY_API_KEY not set"
    NO_TWITTER_KEY: Final = "TWITTER_BEARER_TOKEN not set"
    NO_REDDIT_KEY: Final = "REDDIT_CLIENT_ID or REDDIT_CLIENT_SECRET not set"
    TIMEOUT: Final = "fetch timed out"
    RATE_LIMITED: Final = "rate limited (429)"
    SERVER_ERROR: Final = "server error (5xx)"
    AUTH: Final = "credentials rejected (401/403)"
    REJECTED: Final = "request rejected (4xx)"
    INVALID: Final = "invalid response"
    UNREACHABLE: Final = "source unreachable"
    FAILED: Final = "fetch failed"

    @classmethod
    def all(cls) -> frozenset[str]:
        return frozenset(v for k, v in vars(cls).items() if k.isupper() and isinstance(v, str))


class InvalidResponse(ValueError):
    """A response that parsed but does not have the API's shape (or is too large)."""


class FetchDeadlineExceeded(requests.exceptions.Timeout):
    """A request attempted after the fetch's budget ran out.

    A plain ``Timeout`` (not ``ReadTimeout``/``ConnectionError``) on purpose: prawcore retries
    those two, and this one must end the fetch at once.
    """


class _BoundedAdapter(HTTPAdapter):
    def __init__(self, owner: SourceHttp) -> None:
        super().__init__(max_retries=0)  # retries are the client's business, within our budget
        self._owner = owner

    def send(self, request: PreparedRequest, stream: bool = False,
             timeout: float | tuple[float | None, float | None] | None = None,
             verify: bool | str = True, cert: str | tuple[str, str] | None = None,
             proxies: dict[str, str] | None = None) -> Response:
        owner = self._owner
        remaining = owner.remaining_s()
        if remaining <= 0:
            raise FetchDeadlineExceeded("sentiment fetch budget exhausted", request=request)
        read = min(_read_part(timeout, remaining), remaining)
        bounded = (min(CONNECT_TIMEOUT_S, read), read)
        if owner.rewrite is not None and request.url is not None:
            old, new = owner.rewrite
            if request.url.startswith(old):
                request.url = new + request.url[len(old):]
        response = super().send(request, stream=stream, timeout=bounded, verify=verify,
                                cert=cert, proxies=proxies)
        owner.observe(response)
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_RESPONSE_BYTES:
            response.close()
            raise InvalidResponse("response larger than the sentiment fetch accepts")
        return response


def _read_part(timeout: float | tuple[float | None, float | None] | None,
               default: float) -> float:
    if isinstance(timeout, tuple):
        timeout = timeout[1]
    if timeout is None or not math.isfinite(timeout) or timeout <= 0:
        return default
    return float(timeout)


class SourceHttp:
    """One live source's transport: budget, timeouts, optional origin rewrite, last status.

    A source runs one fetch at a time (the live provider never starts a second while the first
    is alive), so the per-fetch fields need no more than a lock for readers on other threads.
    """

    def __init__(self, *, rewrite: tuple[str, str] | None = None) -> None:
        if rewrite is not None:
            old, new = (part.rstrip("/") for part in rewrite)
            rewrite = None if old == new else (old, new)
        self.rewrite = rewrite
        self._lock = threading.Lock()
        self._deadline = math.inf
        self._status: int | None = None
        self._headers: dict[str, str] = {}
        self.adapter = _BoundedAdapter(self)

    def mount(self, session: requests.Session) -> requests.Session:
        """Route every request of ``session`` through this transport."""
        session.mount("https://", self.adapter)
        session.mount("http://", self.adapter)
        return session

    def new_session(self) -> requests.Session:
        return self.mount(requests.Session())

    def arm(self, budget_s: float) -> None:
        """Start a fetch: forget the last response and allow ``budget_s`` seconds from now."""
        with self._lock:
            self._deadline = time.monotonic() + budget_s
            self._status = None
            self._headers = {}

    def shorten(self, budget_s: float) -> None:
        """Bring the deadline forward to at most ``budget_s`` from now (never extend it)."""
        with self._lock:
            self._deadline = min(self._deadline, time.monotonic() + budget_s)

    def remaining_s(self) -> float:
        with self._lock:
            return self._deadline - time.monotonic()

    def observe(self, response: Response) -> None:
        keep = ("retry-after", "x-rate-limit-reset", "x-ratelimit-reset")
        with self._lock:
            self._status = int(response.status_code)
            self._headers = {k: str(response.headers[k]) for k in keep if k in response.headers}

    @property
    def last_status(self) -> int | None:
        with self._lock:
            return self._status

    def retry_after_s(self, now: float) -> float | None:
        """Seconds the server asked us to wait, from the last response's headers, if any."""
        with self._lock:
            headers = dict(self._headers)
        return retry_after_from_headers(headers, now)


def retry_after_from_headers(headers: dict[str, str], now: float) -> float | None:
    """``Retry-After`` (seconds or HTTP date), X's ``x-rate-limit-reset`` (epoch seconds) or
    Reddit's ``x-ratelimit-reset`` (seconds left); the first that parses wins."""
    value = headers.get("retry-after", "").strip()
    if value:
        if _NUMBER_RE.fullmatch(value):
            return max(0.0, float(value))
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None and when.tzinfo is not None:
            return max(0.0, when.timestamp() - now)
    value = headers.get("x-rate-limit-reset", "").strip()
    if _NUMBER_RE.fullmatch(value):
        return max(0.0, float(value) - now)
    value = headers.get("x-ratelimit-reset", "").strip()
    if _NUMBER_RE.fullmatch(value):
        return max(0.0, float(value))
    return None


_NUMBER_RE = re.compile(r"\d{1,12}(\.\d{1,6})?")


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception, its causes and contexts, and prawcore's ``original_exception``."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo and len(seen) < 16:
        cur = todo.pop()
        if cur is None or any(cur is s for s in seen):
            continue
        seen.append(cur)
        original = getattr(cur, "original_exception", None)
        todo.extend([cur.__cause__, cur.__context__,
                     original if isinstance(original, BaseException) else None])
    return seen


def _is_timeout(exc: BaseException) -> bool:
    if isinstance(exc, requests.exceptions.Timeout | TimeoutError):
        return True
    # tavily-python raises its own TimeoutError class (not the builtin) on requests' Timeout.
    return type(exc).__name__ == "TimeoutError" and type(exc).__module__.startswith("tavily")


def classify_failure(exc: BaseException, status: int | None) -> str:
    """One fixed reason for a failed fetch, from the exception and the last HTTP status seen."""
    if status == 429:
        return SkipReason.RATE_LIMITED
    if status is not None and status >= 500:
        return SkipReason.SERVER_ERROR
    chain = _chain(exc)
    if any(_is_timeout(e) for e in chain):
        return SkipReason.TIMEOUT
    if status in (401, 403):
        return SkipReason.AUTH
    if status is not None and 400 <= status < 500:
        return SkipReason.REJECTED
    if any(isinstance(e, requests.exceptions.ConnectionError | ConnectionError) for e in chain):
        return SkipReason.UNREACHABLE
    if status is not None and 200 <= status < 300:
        # The body did not parse, or parsed into something that is not the API's shape.
        return SkipReason.INVALID
    if any(isinstance(e, InvalidResponse | ValueError) for e in chain):
        return SkipReason.INVALID
    return SkipReason.FAILED


# --- per-item parsing ------------------------------------------------------------------------

_DATE_ONLY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
DAY_S: Final = 86400.0


def parse_timestamp(value: object) -> float | None:
    """UTC epoch seconds at which an item was certainly public, or None if unusable.

    Accepts epoch numbers (Reddit's ``created_utc``), ISO 8601 (X's ``created_at``; a naive time
    is read as UTC) and RFC 2822 (Tavily's ``published_date``).  A date without a time could be
    any moment of that day, so it counts from the day's end: later, never earlier, than the truth.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        ts = float(value)
    elif isinstance(value, str) and 0 < len(value) <= 64:
        text = value.strip()
        try:
            if _DATE_ONLY_RE.fullmatch(text):
                day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
                ts = day.timestamp() + DAY_S - 1
            else:
                ts = _parse_datetime(text)
        except (ValueError, OverflowError, IndexError, TypeError):
            return None
    else:
        return None
    return ts if math.isfinite(ts) and ts > 0 else None


def _parse_datetime(text: str) -> float:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = email.utils.parsedate_to_datetime(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


_SPACE_RE = re.compile(r"\s+")


def bounded_text(value: object, limit: int = MAX_ITEM_CHARS) -> str:
    """A string field cut to ``limit`` characters with whitespace collapsed; "" if not a string."""
    if not isinstance(value, str):
        return ""
    return _SPACE_RE.sub(" ", value[: limit * 2]).strip()[:limit]
