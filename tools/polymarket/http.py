"""HTTP to the Polymarket CLOB and Gamma APIs: explicit timeouts, L2 auth, no hidden retries.

It owns moving bytes and authenticating requests, nothing else:

* Reads (``get``) are idempotent; the caller decides whether to poll again.
* ``post_order`` sends exactly one request and never retries: a lost answer is the caller's
  "outcome unknown", and a resend would be a second order.
* L1 headers (API-key creation/derivation: the ClobAuth EIP-712 signature) and L2 headers
  (HMAC of timestamp + method + path + body with the API secret) are built with the official
  SDK's primitives (``polymarket-client``); the timestamp is the local clock corrected by the
  venue's ``/time``, so a skewed machine clock does not get every request refused with 401.
* Why not the SDK's own transport: its L2 resolver stamps requests with the uncorrected wall
  clock, its ``SecureClient`` cannot be built without network side effects (a credential
  probe, a relayer deployment check that may deploy a deposit wallet), and ``place_*`` posts a
  second time after an allowance approval.  Here every request is one request with an
  explicit timeout; the SDK's transport has no retry of its own for CLOB calls, and its
  data-API 429 retry is never reached from here.

Secrets: the API credentials are held here (they sign requests); the private key never is.
Error messages carry status codes and short, redacted bodies only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from polymarket._internal.actions.auth import build_l1_auth_headers
from polymarket._internal.hmac import build_hmac_signature
from polymarket._internal.l1_auth import ApiKeyAuthSignature

from core.clock import Clock, SystemClock
from core.logs import redact

USER_AGENT = "updown/0.1"

# Venue paths (one place; the hosts come from settings).
TIME = "/time"
VERSION = "/version"
TICK_SIZE = "/tick-size"
BOOK = "/book"
POST_ORDER = "/order"
GET_ORDER = "/data/order/"
TRADES = "/data/trades"
BALANCE_ALLOWANCE = "/balance-allowance"
CREATE_API_KEY = "/auth/api-key"
DERIVE_API_KEY = "/auth/derive-api-key"
HEARTBEATS = "/v1/heartbeats"
CANCEL_ALL = "/cancel-all"
GAMMA_MARKET_BY_SLUG = "/markets/slug/"


class VenueUnavailable(Exception):
    """A read did not get a usable answer (network, 5xx, 429, HTML page): try again later."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after_s = retry_after_s


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    status: int
    content_type: str
    text: str
    retry_after: str | None


@dataclass(frozen=True, slots=True)
class ApiCreds:
    """The account's CLOB API credentials (L2).  Never printed."""

    api_key: str
    api_secret: str
    api_passphrase: str

    def __repr__(self) -> str:
        return "ApiCreds(<redacted>)"

    @classmethod
    def from_answer(cls, doc: Any) -> ApiCreds | None:
        """From the venue's ``{"apiKey", "secret", "passphrase"}`` answer; None if absent."""
        if not isinstance(doc, Mapping):
            return None
        parts = (doc.get("apiKey"), doc.get("secret"), doc.get("passphrase"))
        if not all(isinstance(p, str) and p for p in parts):
            return None
        return cls(*(str(p) for p in parts))


class L2Auth:
    """API-key authentication of CLOB requests, with the venue's clock."""

    def __init__(self, address: str, creds: ApiCreds, clock: Clock) -> None:
        self._address = address
        self._creds = creds
        self._clock = clock
        # venue time - local time, seconds; set by ``ClobHttp.sync_clock``.
        self.clock_offset_s = 0.0

    def headers(self, method: str, path: str, serialized_body: str | None = None
                ) -> dict[str, str]:
        ts = int(self._clock.now() + self.clock_offset_s)
        signature = build_hmac_signature(secret=self._creds.api_secret, timestamp=ts,
                                         method=method, path=path, body=serialized_body)
        return {"POLY_ADDRESS": self._address, "POLY_API_KEY": self._creds.api_key,
                "POLY_PASSPHRASE": self._creds.api_passphrase, "POLY_SIGNATURE": signature,
                "POLY_TIMESTAMP": str(ts)}

    def __repr__(self) -> str:  # never print credentials
        return f"L2Auth(address={self._address!r})"


def _short(text: str, limit: int = 160) -> str:
    return redact(" ".join(text.split()))[:limit]


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class ClobHttp:
    """One HTTP client for the CLOB and Gamma hosts (loopback in tests)."""

    def __init__(
        self,
        clob_url: str,
        gamma_url: str,
        *,
        read_timeout_s: float = 5.0,
        order_timeout_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.clob_url = clob_url.rstrip("/")
        self.gamma_url = gamma_url.rstrip("/")
        self._clock = clock or SystemClock()
        self._order_timeout = httpx.Timeout(connect=min(3.0, order_timeout_s),
                                            read=order_timeout_s, write=order_timeout_s,
                                            pool=order_timeout_s)
        self._client = httpx.Client(
            timeout=httpx.Timeout(read_timeout_s, connect=min(3.0, read_timeout_s)),
            transport=transport, follow_redirects=False,
            headers={"User-Agent": USER_AGENT, "Accept": "application/json"},
        )
        self.auth: L2Auth | None = None

    def close(self) -> None:
        self._client.close()

    # --- reads ---

    def get(self, url: str, *, params: Mapping[str, str] | None = None,
            auth_path: str | None = None, not_found_is_none: bool = False) -> Any:
        """GET JSON; ``auth_path`` signs the request (L2).  Raises VenueUnavailable."""
        headers = None
        if auth_path is not None:
            if self.auth is None:
                raise VenueUnavailable("no API credentials for an authenticated read")
            headers = self.auth.headers("GET", auth_path)
        try:
            resp = self._client.get(url, params=dict(params or {}), headers=headers)
        except httpx.HTTPError as err:
            raise VenueUnavailable(f"GET {_path(url)}: {type(err).__name__}") from None
        if not_found_is_none and resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise VenueUnavailable(
                f"GET {_path(url)}: HTTP {resp.status_code} {_short(resp.text)}",
                status=resp.status_code,
                retry_after_s=_retry_after(resp.headers.get("Retry-After")))
        text = resp.text
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            # /time answers a bare number; anything else unparseable is not an answer.
            try:
                return float(text)
            except ValueError:
                raise VenueUnavailable(f"GET {_path(url)}: not JSON ({_short(text, 60)})"
                                       ) from None

    def clob(self, path: str, **kw: Any) -> Any:
        return self.get(self.clob_url + path, **kw)

    def gamma_market(self, slug: str) -> Any:
        return self.get(f"{self.gamma_url}{GAMMA_MARKET_BY_SLUG}{slug}", not_found_is_none=True)

    def server_time(self) -> float:
        answer = self.clob(TIME)
        if isinstance(answer, Mapping):
            answer = answer.get("time") or answer.get("timestamp")
        try:
            return float(answer)
        except (TypeError, ValueError):
            raise VenueUnavailable("GET /time: no time in the answer") from None

    def sync_clock(self) -> float:
        """Measure venue time - local time (seconds) and use it for auth timestamps."""
        before = self._clock.now()
        venue = self.server_time()
        after = self._clock.now()
        if venue.is_integer():
            venue += 0.5  # whole seconds, truncated: the middle of that second is the estimate
        offset = venue - (before + after) / 2.0
        if self.auth is not None:
            self.auth.clock_offset_s = offset
        return offset

    def venue_now(self) -> float:
        """The venue's time as this client estimates it (local clock + measured offset)."""
        return self._clock.now() + (self.auth.clock_offset_s if self.auth else 0.0)

    # --- L1: the account's API key ---

    def api_key(self, auth: ApiKeyAuthSignature) -> ApiCreds | None:
        """Create the API key, or derive it when it exists (the venue answers 400 to the
        create).  One request each, no retry.  None when the venue gives no credentials."""
        headers = build_l1_auth_headers(auth)
        try:
            resp = self._client.post(self.clob_url + CREATE_API_KEY, headers=headers)
            if resp.status_code == 400:
                resp = self._client.get(self.clob_url + DERIVE_API_KEY, headers=headers)
        except httpx.HTTPError as err:
            raise VenueUnavailable(f"API key: {type(err).__name__}") from None
        if resp.status_code != 200:
            raise VenueUnavailable(f"API key: HTTP {resp.status_code} {_short(resp.text)}",
                                   status=resp.status_code)
        try:
            return ApiCreds.from_answer(resp.json())
        except ValueError:
            return None

    # --- authenticated writes other than orders (heartbeats, cancels) ---

    def send(self, method: str, path: str, payload: Any | None = None) -> HttpAnswer:
        """One authenticated JSON request, once, with the order timeout.  httpx errors
        propagate: whether the venue acted on it is then unknown to the caller."""
        if self.auth is None:
            raise VenueUnavailable(f"no API credentials for {method} {path}")
        body = None if payload is None else json.dumps(payload, separators=(",", ":"))
        headers = self.auth.headers(method, path, body)
        if body is not None:
            headers["Content-Type"] = "application/json"
        resp = self._client.request(method, self.clob_url + path,
                                    content=None if body is None else body.encode(),
                                    headers=headers, timeout=self._order_timeout)
        return HttpAnswer(status=resp.status_code,
                          content_type=resp.headers.get("Content-Type", ""),
                          text=resp.text, retry_after=resp.headers.get("Retry-After"))

    # --- the one write ---

    def post_order(self, serialized_body: str) -> HttpAnswer:
        """Send one signed order once.  httpx errors propagate: the caller classifies them."""
        if self.auth is None:
            raise VenueUnavailable("no API credentials to post an order")
        headers = self.auth.headers("POST", POST_ORDER, serialized_body)
        headers["Content-Type"] = "application/json"
        resp = self._client.post(self.clob_url + POST_ORDER, content=serialized_body.encode(),
                                 headers=headers, timeout=self._order_timeout)
        return HttpAnswer(status=resp.status_code,
                          content_type=resp.headers.get("Content-Type", ""),
                          text=resp.text, retry_after=resp.headers.get("Retry-After"))


def _path(url: str) -> str:
    # Only the path goes into messages: hosts are config, queries may carry addresses.
    return httpx.URL(url).path
