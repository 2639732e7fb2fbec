"""``updown dashboard``: the operator dashboard over any journal (a past live run, a replay,
an eval that journals), the same pages ``updown run`` serves while it trades.

Read-only except the kill switch (the STOP file of the settings), which needs the token
printed at start; loopback unless DASHBOARD_HOST says otherwise, and then every page needs
the token.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from agent.cli import common
from core.errors import UserError


def dashboard(
    journal: Annotated[Path | None, typer.Option(help="SQLite journal to show "
                                                 "(default JOURNAL_PATH).")] = None,
    port: Annotated[int | None, typer.Option(
        help="Port (default DASHBOARD_PORT; 0 = any free port).", min=0, max=65535)] = None,
    host: Annotated[str | None, typer.Option(
        help="Address to bind (default DASHBOARD_HOST, loopback); any other address "
        "requires the token on every page.")] = None,
    status: Annotated[Path | None, typer.Option(
        help="A running updown run's status file (STATUS_PATH) for the feed connections.")]
    = None,
) -> None:
    """Serve the operator dashboard for a journal until Ctrl-C."""
    import asyncio
    import signal

    from agent.web.data import DashboardData, Limits
    from agent.web.server import DashboardServer

    settings = common.settings()
    data = DashboardData(
        journal or settings.journal_path, stop_file=settings.stop_file,
        limits=Limits(daily_loss_limit_usd=settings.daily_loss_limit,
                      max_orders_per_day=settings.max_orders_per_day),
        status=_status_file(status) if status is not None else None)
    data.check()
    server = DashboardServer(data, host=host or settings.dashboard_host,
                             port=settings.dashboard_port if port is None else port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await server.start()
        announce(server)
        try:
            await stop.wait()
        finally:
            await server.aclose()

    asyncio.run(main())


def announce(server: Any) -> None:
    """Where the dashboard is, and its token: on the terminal only, never in a log."""
    announce_token(server.host, server.port, server.token)


def announce_token(host: str, port: int, token: str) -> None:
    from agent.web.app import is_loopback

    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    if not is_loopback(host):
        url += f"?token={token}"
    if port == 0:
        url += " (any free port: the 'dashboard' log line names it)"
    typer.echo(f"dashboard: {url}  (kill switch token: {token})")


def _status_file(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"--status: no such file: {path}")

    def read() -> dict[str, Any] | None:
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return document if isinstance(document, dict) else None

    return read


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` to the ``updown`` app."""
    app.command()(dashboard)
