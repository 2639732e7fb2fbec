"""The operator services of ``updown run``: the dashboard and the notifications, started with
the run and stopped after it.

The runner's status document is built on the event loop (``refresh``, every
``STATUS_REFRESH_S``) and handed to the dashboard's and the watcher's threads as a finished
dict, so no other thread walks the runner's live state.  Neither service can stop trading: a
dashboard port that is taken is one warning and the run goes on without it; a notification
that cannot be sent is dropped by the notifier's own thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.notify import Notifier, RunWatcher, split_urls
from agent.web.data import DashboardData, Limits
from agent.web.server import DashboardError, DashboardServer
from core.errors import UserError
from core.logs import get_logger

log = get_logger("updown.web")

STATUS_REFRESH_S = 0.25


@dataclass
class RunServices:
    dashboard: DashboardServer | None = None
    watcher: RunWatcher | None = None
    latest: dict[str, Any] | None = None
    _task: asyncio.Task[None] | None = field(default=None, repr=False)

    def status(self) -> dict[str, Any] | None:
        return self.latest

    async def aclose(self, *, reason: str = "run finished") -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.dashboard is not None:
            await self.dashboard.aclose()
        if self.watcher is not None:
            # Joins threads and drains the queue with a bounded wait: off the loop.
            await asyncio.to_thread(self.watcher.close, reason=reason)


def journal_file(journal: Any) -> Path | None:
    """The file behind a ``tools.journal.Journal`` (None for an in-memory one)."""
    with journal.reading() as conn:
        for row in conn.execute("PRAGMA database_list").fetchall():
            if row[1] == "main" and row[2]:
                return Path(row[2])
    return None


async def start_run_services(runner: Any) -> RunServices:
    """Start what ``runner.options`` and its settings ask for (an ``agent.autorun.AutoRunner``
    after ``start()``: its account is known)."""
    options, settings = runner.options, runner.settings
    services = RunServices(latest=runner.status_document())

    async def refresh() -> None:
        while True:
            await asyncio.sleep(STATUS_REFRESH_S)
            try:
                services.latest = runner.status_document()
            except Exception as exc:  # a status that cannot be built is shown stale
                log.warning("status_refresh_failed", error=type(exc).__name__)

    services._task = asyncio.create_task(refresh(), name="updown-status-refresh")
    path = journal_file(runner.journal)
    if path is None:
        log.warning("dashboard_not_started", error="the journal is in memory")
    if path is not None and getattr(options, "dashboard_port", None) is not None:
        data = DashboardData(
            path, stop_file=settings.stop_file,
            limits=Limits(daily_loss_limit_usd=runner.limits.daily_loss_limit_usd,
                          max_orders_per_day=runner.limits.max_orders_per_day),
            status=services.status)
        server = DashboardServer(data, host=options.dashboard_host,
                                 port=options.dashboard_port, token=options.dashboard_token)
        try:
            await server.start()
            services.dashboard = server
        except DashboardError as exc:
            log.warning("dashboard_not_started", error=str(exc))
    urls = settings.notify_urls.get_secret_value() if settings.notify_urls else ""
    if path is not None and urls.strip():
        try:
            notifier = Notifier(split_urls(urls))
        except ValueError as exc:
            await services.aclose()
            raise UserError(str(exc)) from None
        services.watcher = RunWatcher(
            notifier, journal_path=path, stop_file=settings.stop_file,
            clock=runner.clock, account=lambda: str(runner.account),
            daily_loss_limit_usd=runner.limits.daily_loss_limit_usd,
            feed_silent_s=settings.notify_feed_silent_s, status=services.status)
        services.watcher.start()
    return services
