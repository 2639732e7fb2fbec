"""Schema step for resting orders: intents before the send, states and fills after."""

from __future__ import annotations

import sqlite3

import pytest

from core.resting import MakerFill, RestingOrder
from tools.journal import SCHEMA_VERSION, Journal
from tools.journal.resting import RestingOrders
from tools.journal.resting_schema import SCHEMA_RESTING
from tools.journal.schema import MIGRATIONS


def test_resting_tables_are_the_last_migration_step() -> None:
    assert MIGRATIONS[-1] == SCHEMA_RESTING
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_intent_state_fills_and_open_rows() -> None:
    journal = Journal(":memory:")
    assert journal.schema_version == SCHEMA_VERSION
    run_id = journal.start_run(account="a", mode="paper", dataset=None, config={})
    resting = RestingOrders(journal)
    resting.record_intent(account="a", run_id=run_id, decision_id="d", order_id="o1",
                          market_id="m", side="up", execution_style="maker", price=0.5,
                          shares=10, post_only=True, expires_at=100.0, replaces=None, ts=1.0)
    with pytest.raises(sqlite3.IntegrityError):
        resting.record_intent(account="a", run_id=run_id, decision_id="d", order_id="o1",
                              market_id="m", side="up", execution_style="maker", price=0.5,
                              shares=10, post_only=True, expires_at=100.0, replaces=None,
                              ts=1.0)
    assert [r.order_id for r in resting.rows(account="a", open_only=True)] == ["o1"]
    fill = MakerFill(ts=2.0, shares=4, price=0.5, rebate_usd=0.01, rule="trade_through")
    order = RestingOrder(order_id="o1", market_id="m", side="up", price=0.5, shares=10,
                         status="resting", created_ts=1.0, fills=(fill,))
    resting.record_state(order, ts=2.0)
    resting.record_state(order.model_copy(update={"status": "cancelled", "fills": (
        fill, fill.model_copy(update={"ts": 3.0}))}), ts=3.0)
    (row,) = resting.rows(account="a")
    assert (row.status, row.filled_shares, row.rebate_usd) == ("cancelled", 8, 0.02)
    assert resting.rows(account="a", open_only=True) == []
    with journal.reading() as conn:
        assert conn.execute("SELECT COUNT(*) FROM maker_fills").fetchone()[0] == 2
