"""Serving the dashboard: uvicorn inside the caller's event loop.

``updown run`` starts one as a task of its own loop (``start`` / ``aclose``), so the server
shares nothing with trading but the loop; every journal read runs in a worker thread.
``updown dashboard`` runs ``serve`` until interrupted.  A port that cannot be bound is a
``DashboardError`` naming the address (one line for the user).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
from collections.abc import Iterator
from typing import Any

import uvicorn

from agent.web.app import DashboardApp, is_loopback
from agent.web.data import DashboardData
from core.errors import UserError
from core.logs import get_logger

log = get_logger("updown.web")


class DashboardError(UserError):
    """The dashboard cannot serve (address in use, not allowed)."""


def new_token() -> str:
    """The kill switch's token (and every page's, off loopback): printed once at start."""
    return secrets.token_urlsafe(24)


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers: the caller's stay in charge (``updown run``'s
    SIGINT/SIGTERM is the graceful stop of trading, not of the dashboard alone)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class DashboardServer:
    def __init__(self, data: DashboardData, *, host: str = "127.0.0.1", port: int = 8765,
                 token: str | None = None) -> None:
        self.host = host
        self.port = port
        self.token = token or new_token()
        self.web = DashboardApp(data, token=self.token, host=host)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[Any] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections (Linux): a response's head and body go out at
        # once instead of the body waiting ~40 ms for the client's delayed ACK (Nagle).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise DashboardError(f"dashboard cannot listen on {self.host}:{self.port} "
                                 f"({exc.strerror or exc}): set DASHBOARD_PORT or "
                                 "--dashboard-port, or --no-dashboard") from None
        sock.listen(64)
        sock.setblocking(False)
        self.port = int(sock.getsockname()[1])
        return sock

    async def start(self) -> None:
        """Bind (DashboardError if the address is taken), then serve in the background."""
        self._sock = self._bind()
        config = uvicorn.Config(self.web.app, log_level="warning", access_log=False,
                                lifespan="off", timeout_graceful_shutdown=1,
                                log_config=None)
        self._server = _QuietServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]),
                                         name="updown-dashboard")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise DashboardError(f"dashboard on {self.url} stopped at start")
            await asyncio.sleep(0.01)
        log.info("dashboard", url=self.url, loopback=self.loopback)

    async def aclose(self) -> None:
        self.web.closing.set()  # ends the event streams
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
        if self._sock is not None:
            self._sock.close()
        self._server = self._task = self._sock = None

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        await self.start()
        try:
            await stop.wait()
        finally:
            await self.aclose()
