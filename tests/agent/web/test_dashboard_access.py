"""Who may see the dashboard and who may press the kill switch (agent/web/app.py).

On loopback the pages are open but only to a loopback ``Host`` (a rebound DNS name of another
site is refused); on any other address every request needs the token; the kill switch always
does.  The app is driven in-process (Starlette's test client); nothing is bound.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent.web.app import DashboardApp
from agent.web.data import DashboardData, Limits
from tools.journal import Journal

TOKEN = "synthetic-token-1234"


@pytest.fixture
def data(tmp_path: Path) -> DashboardData:
    with Journal(tmp_path / "journal.db") as jr:
        jr.start_run(account="paper", mode="paper", dataset=None, config={}, started_ts=1.0)
    return DashboardData(tmp_path / "journal.db", stop_file=tmp_path / "STOP",
                         limits=Limits(daily_loss_limit_usd=250.0, max_orders_per_day=24))


def test_loopback_pages_are_open_to_loopback_hosts_only(data: DashboardData) -> None:
    app = DashboardApp(data, token=TOKEN, host="127.0.0.1").app
    with TestClient(app, base_url="http://127.0.0.1:8765") as local:
        assert local.get("/").status_code == 200
        assert local.get("/api/overview").json()["account"] == "paper"
    with TestClient(app, base_url="http://localhost:8765") as named:
        assert named.get("/api/trades").status_code == 200
    with TestClient(app, base_url="http://attacker.example") as rebound:
        refused = rebound.get("/api/overview")
        assert refused.status_code == 403
        assert "loopback" in refused.json()["error"]


def test_other_binds_need_the_token_everywhere(data: DashboardData) -> None:
    app = DashboardApp(data, token=TOKEN, host="0.0.0.0").app
    with TestClient(app, base_url="http://192.0.2.10:8765") as client:
        for path in ("/", "/equity", "/decisions", "/api/overview", "/api/events",
                     "/static/dashboard.js"):
            assert client.get(path).status_code == 401, path
        assert client.get("/api/overview", headers={"Authorization": "Bearer wrong"}
                          ).status_code == 401
        assert client.get("/api/overview", headers={"Authorization": f"Bearer {TOKEN}"}
                          ).status_code == 200
        first = client.get("/", params={"token": TOKEN})
        assert first.status_code == 200
        assert TOKEN not in first.text  # the token is a cookie, never part of the page
        # The cookie it left lets the next pages in.
        assert client.get("/trades").status_code == 200


def test_kill_switch_needs_the_token(data: DashboardData) -> None:
    app = DashboardApp(data, token=TOKEN, host="127.0.0.1").app
    stop = data.stop_file
    with TestClient(app, base_url="http://127.0.0.1", follow_redirects=False) as client:
        assert client.post("/kill", data={"token": "guess", "state": "on"}).status_code == 403
        assert client.post("/api/kill", json={"engaged": True}).status_code == 403
        assert not stop.exists()
        pressed = client.post("/kill", data={"token": TOKEN, "state": "on"})
        assert pressed.status_code == 303
        assert stop.exists()
        assert "ON: no new order" in client.get("/").text
        assert client.get("/api/overview").json()["kill_switch"]["engaged"] is True
        bad = client.post("/api/kill", json={"engaged": "yes"},
                          headers={"X-Updown-Token": TOKEN})
        assert bad.status_code == 400
        released = client.post("/api/kill", json={"engaged": False},
                               headers={"X-Updown-Token": TOKEN})
        assert released.json()["engaged"] is False
        assert not stop.exists()
        # Read-only otherwise: no other method is served.
        assert client.post("/api/overview").status_code == 405
        assert client.delete("/api/decisions/x").status_code == 405
