"""The journal's schema across the split and the v3 migration: versions 1 and 2 byte-identical
to the single-module journal, v3 adds only its indexes, migration is idempotent, and the read
models' queries are served by those indexes (no full scan of the decisions)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tools.journal import SCHEMA_VERSION, Journal
from tools.journal.schema import MIGRATIONS

GOLDEN = json.loads((Path(__file__).with_name("schema_v2_c077bd9.json")).read_text())
V3_INDEXES = {
    "decisions_as_of": "CREATE INDEX decisions_as_of ON decisions(as_of, decision_id)",
    "decisions_market_as_of":
        "CREATE INDEX decisions_market_as_of ON decisions(market_id, as_of, decision_id)",
    "order_intents_created":
        "CREATE INDEX order_intents_created ON order_intents(created_ts, order_id)",
}


def master(path: Path) -> list[list[object]]:
    con = sqlite3.connect(path)
    try:
        return [list(r) for r in con.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE tbl_name != 'lessons'"
            " ORDER BY type, name")]
    finally:
        con.close()


def v2_file(path: Path) -> None:
    """A journal as the pre-split code left it: its golden schema, version 2, one decision."""
    con = sqlite3.connect(path)
    # Tables before their indexes; autoindexes (no SQL) and sqlite_sequence come with the
    # constraints and AUTOINCREMENT columns that made them.
    objects = sorted(GOLDEN["objects"], key=lambda o: o[0] != "table")
    for _type, name, _tbl, sql in objects:
        if sql is not None and name != "sqlite_sequence":
            con.execute(sql)
    con.execute("INSERT INTO runs VALUES ('r1', 'acct', 'paper', NULL, '{}', 1.0, NULL)")
    con.execute("INSERT INTO decisions VALUES ('d1', 'r1', 'm1', 5.0, 'policy', 'hold', 0,"
                " '[]', '{}')")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()


def test_versions_1_and_2_are_byte_identical_to_the_single_module_journal(tmp_path: Path
                                                                          ) -> None:
    path = tmp_path / "v2.db"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:2]:
        con.executescript(script)
    con.close()
    assert GOLDEN["user_version"] == 2
    assert master(path) == GOLDEN["objects"]


V4_OBJECTS = {"fills", "fills_state", "sqlite_autoindex_fills_1", "redemptions",
              "redemptions_account_state", "sqlite_autoindex_redemptions_1"}


def test_fresh_journal_is_the_v2_schema_plus_the_v3_indexes_plus_v4_tables(tmp_path: Path
                                                                           ) -> None:
    path = tmp_path / "fresh.db"
    with Journal(path) as jr:
        # Later versions append their steps (version 5: resting orders).
        assert jr.schema_version == SCHEMA_VERSION == len(MIGRATIONS) >= 4
    fresh = master(path)
    added = [o for o in fresh if o not in GOLDEN["objects"]]
    assert [o for o in GOLDEN["objects"] if o not in fresh] == []
    assert {str(o[1]): o[3] for o in added if str(o[1]) in V3_INDEXES} == V3_INDEXES
    assert {str(o[1]) for o in added} >= V4_OBJECTS


def test_v3_journal_migrates_to_v4_with_filled_orders_confirmed_and_wins_owed(
        tmp_path: Path) -> None:
    """A v3 file's filled executions were final when written (confirmed fills); its winning
    settlements become pending redemptions, its losing ones owe nothing."""
    path = tmp_path / "v3.db"
    con = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        con.executescript(script)
    con.execute("PRAGMA user_version = 3")
    con.execute("INSERT INTO runs VALUES ('r1', 'acct', 'paper', NULL, '{}', 1.0, NULL)")
    for n, (side, outcome) in enumerate((("up", "up"), ("down", "up"))):
        oid = f"o{n}"
        con.execute("INSERT INTO order_intents (order_id, account, run_id, decision_id,"
                    " market_id, side, stake_usd, worst_price, created_ts, status)"
                    " VALUES (?, 'acct', 'r1', ?, ?, ?, 10, 0.6, 2.0, 'filled')",
                    (oid, f"d{n}", f"m{n}", side))
        con.execute("INSERT INTO executions VALUES (?, 'filled', 'paper', 20, 0.5, 10, 0.1,"
                    " NULL, 3.0, '{}', NULL)", (oid,))
        payout = 20.0 if side == outcome else 0.0
        con.execute("INSERT INTO settlements VALUES (?, 'acct', ?, ?, ?, 1, 20, 10, 0.1, ?,"
                    " ?, 900.0)", (oid, f"m{n}", side, outcome, payout, payout - 10.1))
    con.commit()
    con.close()
    with Journal(path) as jr:
        assert jr.schema_version == SCHEMA_VERSION
        assert [(f.order_id, f.state, f.matched_shares) for f in jr.fills(account="acct")] \
            == [("o0", "confirmed", 20.0), ("o1", "confirmed", 20.0)]
        owed = jr.redemptions(account="acct")
        assert [(r.order_id, r.state, r.payout_usd) for r in owed] == [("o0", "pending", 20.0)]
    with Journal(path) as again:  # idempotent
        assert len(again.redemptions(account="acct")) == 1


def test_v2_journal_migrates_in_place_idempotently_and_keeps_its_rows(tmp_path: Path) -> None:
    fresh, old = tmp_path / "fresh.db", tmp_path / "old.db"
    Journal(fresh).close()
    v2_file(old)
    with Journal(old) as jr:
        assert jr.schema_version == SCHEMA_VERSION
        assert jr.decision_record("d1") == {}
    assert master(old) == master(fresh)
    with Journal(old) as again:  # a second open changes nothing
        assert again.schema_version == SCHEMA_VERSION
    assert master(old) == master(fresh)


def test_v2_journal_with_one_index_made_by_hand_still_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    v2_file(path)
    con = sqlite3.connect(path)
    con.execute(V3_INDEXES["decisions_as_of"])
    con.commit()
    con.close()
    with Journal(path) as jr:
        assert jr.schema_version == SCHEMA_VERSION
    assert {str(o[1]) for o in master(path)} >= set(V3_INDEXES)


@pytest.mark.parametrize(("sql", "args", "index"), [
    ("SELECT * FROM decisions d ORDER BY d.as_of DESC, d.decision_id DESC LIMIT 50",
     (), "decisions_as_of"),
    ("SELECT * FROM decisions d WHERE (d.as_of, d.decision_id) < (?, ?)"
     " ORDER BY d.as_of DESC, d.decision_id DESC LIMIT 50", (5.0, "d"), "decisions_as_of"),
    ("SELECT * FROM decisions d WHERE d.as_of <= ?"
     " ORDER BY d.as_of DESC, d.decision_id DESC LIMIT 1", (5.0,), "decisions_as_of"),
    ("SELECT * FROM decisions d WHERE d.market_id = ? AND d.as_of <= ?"
     " ORDER BY d.as_of DESC, d.decision_id DESC LIMIT 1", ("m", 5.0),
     "decisions_market_as_of"),
    ("SELECT * FROM order_intents i ORDER BY i.created_ts DESC, i.order_id DESC LIMIT 50",
     (), "order_intents_created"),
])
def test_read_model_orderings_are_served_by_an_index(
    tmp_path: Path, sql: str, args: tuple[object, ...], index: str
) -> None:
    """The shapes ``tools.journal.reads`` runs: no full scan and no sort of every row."""
    with Journal(tmp_path / "j.db") as jr, jr.reading() as conn:
        plan = " | ".join(str(r[3]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, args))
    assert f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan
