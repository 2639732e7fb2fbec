"""Schema version 5: the resting-order tables (read by ``tools.journal.schema``; the
entity's SQL lives in ``tools.journal.resting``)."""

SCHEMA_RESTING = """
CREATE TABLE resting_orders (
    order_id         TEXT PRIMARY KEY,
    account          TEXT NOT NULL,
    run_id           TEXT NOT NULL REFERENCES runs(run_id),
    decision_id      TEXT NOT NULL,
    market_id        TEXT NOT NULL,
    side             TEXT NOT NULL CHECK (side IN ('up', 'down')),
    execution_style  TEXT NOT NULL CHECK (execution_style IN ('maker', 'maker_then_taker')),
    price            REAL NOT NULL,
    shares           REAL NOT NULL,
    post_only        INTEGER NOT NULL CHECK (post_only IN (0, 1)),
    expires_at       REAL,
    status           TEXT NOT NULL DEFAULT 'intent'
                     CHECK (status IN ('intent', 'resting', 'filled', 'cancelled', 'rejected',
                                       'unknown')),
    filled_shares    REAL NOT NULL DEFAULT 0,
    rebate_usd       REAL NOT NULL DEFAULT 0,
    -- The order this one replaced (a replace is a cancel and a new order).
    replaces         TEXT,
    reason           TEXT,
    created_ts       REAL NOT NULL,
    updated_ts       REAL NOT NULL
);
CREATE INDEX resting_orders_open ON resting_orders(account, status, market_id);
CREATE TABLE maker_fills (
    order_id    TEXT NOT NULL REFERENCES resting_orders(order_id),
    seq         INTEGER NOT NULL,
    ts          REAL NOT NULL,
    shares      REAL NOT NULL,
    price       REAL NOT NULL,
    rebate_usd  REAL NOT NULL,
    rule        TEXT NOT NULL,
    PRIMARY KEY (order_id, seq)
);
"""
