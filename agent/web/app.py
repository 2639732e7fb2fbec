"""The dashboard's ASGI application (Starlette): pages, their JSON API, server-sent events and
the one action, the kill switch.

Access:

* read-only everywhere except ``POST /kill`` (the page's form) and ``POST /api/kill``, which
  create or remove the STOP file and need the token printed at start;
* bound to loopback, pages need no token, but the ``Host`` header must name loopback too (a
  page of another site cannot reach it through a rebound DNS name); bound to any other
  address, every request needs the token (``Authorization: Bearer``, ``X-Updown-Token``, or
  ``?token=`` once, which leaves an HttpOnly cookie);
* the token is never part of a page or an answer.

Every journal query runs in a worker thread, so a page never stalls the trading loop the
server may share (``updown run``).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Route

from agent.web import pages
from agent.web.data import MAX_PAGE, DashboardData, decode_key, json_text
from core.logs import get_logger

log = get_logger("updown.web")

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})
TOKEN_COOKIE = "updown_token"
# How often the event stream looks at the journal: the pages are at most this (plus one
# page fetch) behind it.
EVENT_POLL_S = 0.25
KEEPALIVE_S = 10.0
STATIC_TYPES = {"dashboard.css": "text/css; charset=utf-8",
                "dashboard.js": "text/javascript; charset=utf-8"}

Handler = Callable[[Request], Awaitable[Response]]


class BadRequest(ValueError):
    """A query parameter that cannot be used; the message names it."""


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def _int(request: Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: not an integer ({raw!r})") from None
    if not lo <= value <= hi:
        raise BadRequest(f"{name}: must be between {lo} and {hi} (got {value})")
    return value


class DashboardApp:
    """Builds the Starlette app over one ``DashboardData``."""

    def __init__(self, data: DashboardData, *, token: str, host: str = "127.0.0.1") -> None:
        self.data = data
        self.token = token
        self.host = host
        self.loopback = is_loopback(host)
        self.closing = asyncio.Event()
        self.static = {name: (resources.files("agent.web") / "static" / name).read_bytes()
                       for name in STATIC_TYPES}
        self.app = Starlette(routes=[
            Route("/", self._guard(self.overview_page)),
            Route("/equity", self._guard(self.equity_page)),
            Route("/decisions", self._guard(self.decisions_page)),
            Route("/decisions/{decision_id:path}", self._guard(self.decision_page)),
            Route("/trades", self._guard(self.trades_page)),
            Route("/calibration", self._guard(self.calibration_page)),
            Route("/kill", self._guard(self.kill_form), methods=["POST"]),
            Route("/api/overview", self._guard(self.overview_api)),
            Route("/api/equity", self._guard(self.equity_api)),
            Route("/api/decisions", self._guard(self.decisions_api)),
            Route("/api/decisions/{decision_id:path}", self._guard(self.decision_api)),
            Route("/api/trades", self._guard(self.trades_api)),
            Route("/api/calibration", self._guard(self.calibration_api)),
            Route("/api/events", self._guard(self.events)),
            Route("/api/kill", self._guard(self.kill_api), methods=["POST"]),
            Route("/static/{name}", self._guard(self.static_file)),
        ])

    # --- access -------------------------------------------------------------------------------

    def _token_ok(self, given: str | None) -> bool:
        return given is not None and secrets.compare_digest(given.encode(), self.token.encode())

    def _given_token(self, request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        return (request.headers.get("x-updown-token") or request.cookies.get(TOKEN_COOKIE)
                or request.query_params.get("token"))

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            host = (request.url.hostname or "").lower()
            if self.loopback and not is_loopback(host):
                return self._error(request, 403, "this dashboard answers on loopback only")
            if not self.loopback and not self._token_ok(self._given_token(request)):
                return self._error(request, 401, "token required (printed when the "
                                   "dashboard started)")
            try:
                response = await handler(request)
            except BadRequest as exc:
                return self._error(request, 400, str(exc))
            if (not self.loopback and request.query_params.get("token")
                    and self._token_ok(request.query_params.get("token"))):
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return response

        return guarded

    @staticmethod
    def _error(request: Request, status: int, message: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": message}, status_code=status)
        return HTMLResponse(pages.error_page(status, message), status_code=status)

    # --- helpers ------------------------------------------------------------------------------

    @staticmethod
    async def _call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await asyncio.to_thread(fn, *args, **kw)

    @staticmethod
    def _json(document: Any, status: int = 200) -> Response:
        return Response(json_text(document), status_code=status,
                        media_type="application/json")

    @staticmethod
    def _html(title: str, path: str, body: str, controls: str = "", live: bool = True
              ) -> Response:
        return HTMLResponse(pages.layout(title, path, body, controls=controls, live=live),
                            headers={"Cache-Control": "no-store"})

    def _decision_query(self, request: Request) -> dict[str, Any]:
        before = request.query_params.get("before")
        try:
            key = decode_key(before) if before else None
        except ValueError as exc:
            raise BadRequest(f"before: {exc}") from None
        return {"limit": _int(request, "limit", 50, 1, MAX_PAGE), "before": key,
                "market_id": request.query_params.get("market") or None,
                "run_id": request.query_params.get("run") or None}

    # --- pages --------------------------------------------------------------------------------

    async def overview_page(self, request: Request) -> Response:
        doc = await self._call(self.data.overview, request.query_params.get("account"))
        return self._html("overview", "/", pages.overview(doc),
                          controls=pages.kill_controls(doc["kill_switch"]["engaged"]))

    async def equity_page(self, request: Request) -> Response:
        doc = await self._call(self.data.equity, request.query_params.get("account"),
                               request.query_params.get("run"))
        return self._html("equity", "/equity", pages.equity(doc))

    async def decisions_page(self, request: Request) -> Response:
        query = self._decision_query(request)
        doc = await self._call(self.data.decisions, **query)
        return self._html("decisions", "/decisions",
                          pages.decisions(doc, limit=query["limit"]))

    async def decision_page(self, request: Request) -> Response:
        doc = await self._call(self.data.decision, request.path_params["decision_id"])
        if doc is None:
            return self._error(request, 404, "no such decision in the journal")
        return self._html("decision", "/decisions", pages.decision_detail(doc), live=False)

    async def trades_page(self, request: Request) -> Response:
        doc = await self._call(self.data.trades, **self._trade_query(request))
        return self._html("trades", "/trades", pages.trades(doc))

    async def calibration_page(self, request: Request) -> Response:
        doc = await self._call(self.data.calibration, bins=_int(request, "bins", 10, 2, 50),
                               run_id=request.query_params.get("run"))
        return self._html("calibration", "/calibration", pages.calibration(doc))

    def _trade_query(self, request: Request) -> dict[str, Any]:
        return {"limit": _int(request, "limit", 50, 1, MAX_PAGE),
                "offset": _int(request, "offset", 0, 0, 10_000_000),
                "account": request.query_params.get("account") or None}

    # --- API ----------------------------------------------------------------------------------

    async def overview_api(self, request: Request) -> Response:
        return self._json(await self._call(self.data.overview,
                                           request.query_params.get("account")))

    async def equity_api(self, request: Request) -> Response:
        return self._json(await self._call(self.data.equity, request.query_params.get("account"),
                                           request.query_params.get("run")))

    async def decisions_api(self, request: Request) -> Response:
        return self._json(await self._call(self.data.decisions,
                                           **self._decision_query(request)))

    async def decision_api(self, request: Request) -> Response:
        doc = await self._call(self.data.decision, request.path_params["decision_id"])
        if doc is None:
            return self._json({"error": "no such decision in the journal"}, 404)
        return self._json(doc)

    async def trades_api(self, request: Request) -> Response:
        return self._json(await self._call(self.data.trades, **self._trade_query(request)))

    async def calibration_api(self, request: Request) -> Response:
        return self._json(await self._call(self.data.calibration,
                                           bins=_int(request, "bins", 10, 2, 50),
                                           run_id=request.query_params.get("run")))

    async def static_file(self, request: Request) -> Response:
        name = request.path_params["name"]
        if name not in self.static:
            return self._error(request, 404, "not found")
        return Response(self.static[name], media_type=STATIC_TYPES[name],
                        headers={"Cache-Control": "no-cache"})

    # --- the kill switch ----------------------------------------------------------------------

    def set_kill_switch(self, engaged: bool) -> bool:
        path = self.data.stop_file
        if engaged:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("kill switch engaged from the dashboard\n", encoding="utf-8")
        else:
            path.unlink(missing_ok=True)
        log.warning("kill_switch", engaged=engaged, stop_file=str(path), source="dashboard")
        return path.exists()

    async def kill_api(self, request: Request) -> Response:
        if not self._token_ok(request.headers.get("x-updown-token")
                              or self._bearer(request)):
            return self._json({"error": "the kill switch needs the token"}, 403)
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("engaged"), bool):
            return self._json({"error": 'body must be {"engaged": true|false}'}, 400)
        engaged = await self._call(self.set_kill_switch, body["engaged"])
        return self._json({"engaged": engaged, "stop_file": str(self.data.stop_file)})

    async def kill_form(self, request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        if not self._token_ok((form.get("token") or [""])[0]):
            return self._error(request, 403, "wrong token: the kill switch did not change")
        state = (form.get("state") or [""])[0]
        if state not in ("on", "off"):
            return self._error(request, 400, "state must be on or off")
        await self._call(self.set_kill_switch, state == "on")
        return RedirectResponse("/", status_code=303)

    @staticmethod
    def _bearer(request: Request) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[7:].strip() if auth.lower().startswith("bearer ") else None

    # --- server-sent events ---------------------------------------------------------------------

    async def events(self, request: Request) -> Response:
        return StreamingResponse(self._stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    async def _stream(self) -> AsyncIterator[str]:
        """One ``change`` event whenever the journal, the kill switch or the live status
        changed (checked every EVENT_POLL_S), a keep-alive comment otherwise."""
        import sqlite3

        conn = await asyncio.to_thread(
            sqlite3.connect, f"file:{self.data.journal_path}?mode=ro", uri=True,
            timeout=5.0, check_same_thread=False)
        last: tuple[Any, ...] | None = None
        quiet = 0.0
        try:
            yield "retry: 1000\n\n"
            while not self.closing.is_set():
                version = await asyncio.to_thread(self._version, conn)
                if version != last:
                    last = version
                    quiet = 0.0
                    yield ("event: change\ndata: " + json_text(
                        {"journal": version[0], "kill_switch": version[1],
                         "status_as_of": version[2]}) + "\n\n")
                elif quiet >= KEEPALIVE_S:
                    quiet = 0.0
                    yield ": keep-alive\n\n"
                try:
                    await asyncio.wait_for(self.closing.wait(), EVENT_POLL_S)
                except TimeoutError:
                    quiet += EVENT_POLL_S
        finally:
            conn.close()

    def _version(self, conn: Any) -> tuple[Any, ...]:
        status = self.data.live_status()
        as_of = status.get("as_of") if status else None
        return (self.data.change_token(conn), self.data.stop_file.exists(),
                None if as_of is None else int(float(as_of)))
