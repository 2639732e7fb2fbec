"""Read models the operator dashboard needs beyond trades, profit and decisions.

Pure functions of a ``sqlite3.Connection`` (read-only is enough), like the rest of
``tools.journal.reads``:

* ``runs`` — the runs a journal holds, newest first, with their recorded limits;
* ``latest_ts`` — the time of the journal's last event (a past journal's "now");
* ``day_figures`` — orders and realised P&L of one trading day, counted exactly as the
  guard's ``Ledger.ledger_view`` counts them (a manual reset moves the start of the losses);
* ``open_positions`` — filled positions whose window is not settled, and whether the venue
  has confirmed the trade on chain (provisional otherwise);
* ``equity`` — realised P&L after fees, cumulated in settlement order;
* ``decision_record`` / ``decision_extras`` — a decision's full record, and the reasoning and
  LLM cost of a page of decisions (one query for the page);
* ``calibration`` — reliability bins of the agent's P(up) and of the market's Up mid over the
  decisions of windows whose outcome the journal knows.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from tools.journal.base import money
from tools.journal.reads.common import rows

# Venue trade statuses after a match that are not final yet (venue.md: MATCHED -> MINED ->
# CONFIRMED, or RETRYING -> FAILED); a position in one of them is provisional.
PROVISIONAL_VENUE_STATUSES = ("MATCHED", "MINED", "RETRYING")


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    account: str
    mode: str
    dataset: str | None
    started_ts: float
    ended_ts: float | None
    # The guard's limits the run was started with (empty when the run recorded none).
    limits: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DayFigures:
    day_start: float
    orders_today: int
    realized_pnl_today: float


@dataclass(frozen=True, slots=True)
class OpenPosition:
    order_id: str
    market_id: str
    side: str
    shares: float
    notional_usd: float
    fee_usd: float
    entry_ts: float
    # Last trade status the venue reported (None: paper, or never looked up).
    venue_status: str | None

    @property
    def provisional(self) -> bool:
        return self.venue_status in PROVISIONAL_VENUE_STATUSES


@dataclass(frozen=True, slots=True)
class EquityPoint:
    ts: float
    order_id: str
    market_id: str
    pnl_usd: float
    # Realised P&L after fees up to and including this settlement.
    equity_usd: float


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float | None
    observed_up: float | None


@dataclass(frozen=True, slots=True)
class Calibration:
    windows: int
    decisions: int
    agent: tuple[ReliabilityBin, ...]
    market: tuple[ReliabilityBin, ...]
    # Mean squared error of P(up) against the outcome (lower is better); None without data.
    agent_brier: float | None
    market_brier: float | None
    # Decisions scored by the market's Brier (those with a recorded mid).
    market_decisions: int


def runs(conn: sqlite3.Connection, *, limit: int = 100) -> list[RunRow]:
    found = rows(conn, "SELECT run_id, account, mode, dataset, started_ts, ended_ts, config_json"
                 " FROM runs ORDER BY started_ts DESC, run_id DESC LIMIT ?", [limit])
    out = []
    for r in found:
        try:
            config = json.loads(r["config_json"])
        except ValueError:
            config = {}
        limits = config.get("limits") if isinstance(config, dict) else None
        out.append(RunRow(run_id=str(r["run_id"]), account=str(r["account"]),
                          mode=str(r["mode"]), dataset=r["dataset"],
                          started_ts=float(r["started_ts"]),
                          ended_ts=None if r["ended_ts"] is None else float(r["ended_ts"]),
                          limits=limits if isinstance(limits, dict) else {}))
    return out


def run_account(conn: sqlite3.Connection, run: RunRow) -> str:
    """The account a run's orders went under (a replay's is ``replay:<run id>``, not the
    run's own ``replay``); the run's account when it placed no order."""
    found = rows(conn, "SELECT account FROM order_intents WHERE run_id = ?"
                 " ORDER BY created_ts DESC LIMIT 1", [run.run_id])
    return str(found[0]["account"]) if found else run.account


def latest_ts(conn: sqlite3.Connection) -> float | None:
    """The newest time stamped in the journal (decision, entry or settlement)."""
    found = rows(conn, "SELECT MAX(t) AS t FROM ("
                 " SELECT MAX(as_of) AS t FROM decisions"
                 " UNION ALL SELECT MAX(created_ts) FROM order_intents"
                 " UNION ALL SELECT MAX(settled_ts) FROM settlements)", [])
    value = found[0]["t"] if found else None
    return None if value is None else float(value)


def day_figures(conn: sqlite3.Connection, *, account: str, day_start: float, now: float
                ) -> DayFigures:
    """Orders entered and P&L realised in the trading day from ``day_start`` up to ``now``."""
    orders = rows(conn, "SELECT COUNT(*) AS n FROM order_intents"
                  " WHERE account = ? AND created_ts >= ? AND created_ts <= ?",
                  [account, day_start, now])[0]["n"]
    reset = rows(conn, "SELECT MAX(reset_ts) AS t FROM daily_loss_resets"
                 " WHERE account = ? AND reset_ts <= ?", [account, now])[0]["t"]
    counted_from = day_start if reset is None else max(day_start, float(reset))
    pnl = rows(conn, "SELECT COALESCE(SUM(pnl_usd), 0.0) AS p FROM settlements"
               " WHERE account = ? AND settled_ts >= ? AND settled_ts <= ?",
               [account, counted_from, now])[0]["p"]
    return DayFigures(day_start=day_start, orders_today=int(orders),
                      realized_pnl_today=money(float(pnl)))


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the journal has ``name`` (tables added by a later schema version)."""
    return bool(rows(conn, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                     [name]))


def open_positions(conn: sqlite3.Connection, *, account: str) -> list[OpenPosition]:
    """Filled, unsettled positions; provisional when the journal's ``fills`` row (schema v4)
    says so, else when the venue's last trade status is not final."""
    fills = has_table(conn, "fills")
    state = "CASE WHEN f.state = 'provisional' THEN 'MATCHED' ELSE v.venue_status END" \
        if fills else "v.venue_status"
    join = " LEFT JOIN fills f ON f.order_id = i.order_id" if fills else ""
    found = rows(conn,
                 "SELECT i.order_id, i.market_id, i.side, i.created_ts, e.shares,"
                 f" e.notional_usd, e.fee_usd, {state} AS venue_status"
                 " FROM order_intents i JOIN executions e ON e.order_id = i.order_id"
                 " LEFT JOIN settlements s ON s.order_id = i.order_id"
                 f" LEFT JOIN venue_orders v ON v.order_id = i.order_id{join}"
                 " WHERE i.account = ? AND e.status = 'filled' AND s.order_id IS NULL"
                 " ORDER BY i.created_ts DESC", [account])
    return [OpenPosition(order_id=str(r["order_id"]), market_id=str(r["market_id"]),
                         side=str(r["side"]), shares=float(r["shares"]),
                         notional_usd=float(r["notional_usd"]), fee_usd=float(r["fee_usd"]),
                         entry_ts=float(r["created_ts"]), venue_status=r["venue_status"])
            for r in found]


@dataclass(frozen=True, slots=True)
class Unredeemed:
    positions: int
    payout_usd: float


def unredeemed(conn: sqlite3.Connection, *, account: str) -> Unredeemed | None:
    """Winning positions not yet paid out (redemption pending, submitted or failed); None when
    the journal predates the ``redemptions`` table (schema v4)."""
    if not has_table(conn, "redemptions"):
        return None
    found = rows(conn, "SELECT COUNT(*) AS n, COALESCE(SUM(payout_usd), 0.0) AS usd"
                 " FROM redemptions WHERE account = ? AND state != 'confirmed'", [account])[0]
    return Unredeemed(positions=int(found["n"]), payout_usd=money(float(found["usd"])))


def has_venue_orders(conn: sqlite3.Connection, *, account: str) -> bool:
    """Whether any order of the account went to a venue (paper fills have no trade status)."""
    return bool(rows(conn, "SELECT 1 FROM venue_orders v JOIN order_intents i"
                     " ON i.order_id = v.order_id WHERE i.account = ? LIMIT 1", [account]))


def equity(conn: sqlite3.Connection, *, account: str | None = None,
           run_id: str | None = None) -> list[EquityPoint]:
    where: list[str] = []
    args: list[object] = []
    if account is not None:
        where.append("s.account = ?")
        args.append(account)
    if run_id is not None:
        where.append("i.run_id = ?")
        args.append(run_id)
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    found = rows(conn, "SELECT s.order_id, s.market_id, s.settled_ts, s.pnl_usd"
                 " FROM settlements s JOIN order_intents i ON i.order_id = s.order_id"
                 f"{clause} ORDER BY s.settled_ts, i.created_ts, s.order_id", args)
    total = 0.0
    points = []
    for r in found:
        total += float(r["pnl_usd"])
        points.append(EquityPoint(ts=float(r["settled_ts"]), order_id=str(r["order_id"]),
                                  market_id=str(r["market_id"]), pnl_usd=float(r["pnl_usd"]),
                                  equity_usd=money(total)))
    return points


def decision_record(conn: sqlite3.Connection, decision_id: str) -> dict[str, Any] | None:
    """The decision's full record as the runner journaled it (every node's output)."""
    found = rows(conn, "SELECT record_json FROM decisions WHERE decision_id = ?", [decision_id])
    if not found:
        return None
    record = json.loads(found[0]["record_json"])
    return record if isinstance(record, dict) else {"record": record}


@dataclass(frozen=True, slots=True)
class DecisionExtras:
    reasoning: str | None
    # LLM dollars of the decision (risk manager and trader); 0 when no model was asked.
    llm_usd: float
    llm_calls: int


def decision_extras(conn: sqlite3.Connection, decision_ids: list[str]
                    ) -> dict[str, DecisionExtras]:
    if not decision_ids:
        return {}
    marks = ",".join("?" * len(decision_ids))
    found = rows(conn,
                 "SELECT decision_id,"
                 " json_extract(record_json, '$.trader.analysis.reasoning') AS reasoning,"
                 " json_extract(record_json, '$.risk.llm_usage.usd') AS risk_usd,"
                 " json_extract(record_json, '$.trader.llm_usage.usd') AS trader_usd,"
                 " json_type(record_json, '$.risk.llm_usage') AS risk_call,"
                 " json_type(record_json, '$.trader.llm_usage') AS trader_call"
                 f" FROM decisions WHERE decision_id IN ({marks})", decision_ids)
    out = {}
    for r in found:
        calls = sum(1 for k in ("risk_call", "trader_call") if r[k] not in (None, "null"))
        usd = sum(float(r[k]) for k in ("risk_usd", "trader_usd")
                  if isinstance(r[k], int | float))
        out[str(r["decision_id"])] = DecisionExtras(
            reasoning=None if r["reasoning"] is None else str(r["reasoning"]),
            llm_usd=round(usd, 6), llm_calls=calls)
    return out


def calibration(conn: sqlite3.Connection, *, bins: int = 10, run_id: str | None = None
                ) -> Calibration:
    """Reliability of P(up) on windows with a known outcome (a settled position's)."""
    if bins < 1:
        raise ValueError(f"bins must be at least 1 (got {bins})")
    where = " AND d.run_id = ?" if run_id is not None else ""
    found = rows(conn,
                 "WITH outcomes AS (SELECT market_id, MIN(outcome) AS outcome"
                 " FROM settlements GROUP BY market_id)"
                 " SELECT d.market_id, o.outcome,"
                 " json_extract(d.record_json, '$.fair_value.fair_up') AS fair_up,"
                 " json_extract(d.record_json, '$.fair_value.market_up_mid') AS mid"
                 " FROM decisions d JOIN outcomes o ON o.market_id = d.market_id"
                 f" WHERE json_extract(d.record_json, '$.fair_value.fair_up') IS NOT NULL{where}",
                 [run_id] if run_id is not None else [])
    agent = [(float(r["fair_up"]), r["outcome"] == "up") for r in found]
    market = [(float(r["mid"]), r["outcome"] == "up") for r in found
              if isinstance(r["mid"], int | float)]
    return Calibration(windows=len({r["market_id"] for r in found}), decisions=len(agent),
                       agent=_bins(agent, bins), market=_bins(market, bins),
                       agent_brier=_brier(agent), market_brier=_brier(market),
                       market_decisions=len(market))


def _bins(pairs: list[tuple[float, bool]], n: int) -> tuple[ReliabilityBin, ...]:
    sums = [[0, 0.0, 0] for _ in range(n)]
    for p, up in pairs:
        i = min(n - 1, max(0, int(p * n)))
        sums[i][0] += 1
        sums[i][1] += p
        sums[i][2] += int(up)
    return tuple(ReliabilityBin(lower=i / n, upper=(i + 1) / n, count=int(c),
                                mean_predicted=None if not c else s / c,
                                observed_up=None if not c else ups / c)
                 for i, (c, s, ups) in enumerate(sums))


def _brier(pairs: list[tuple[float, bool]]) -> float | None:
    if not pairs:
        return None
    return sum((p - float(up)) ** 2 for p, up in pairs) / len(pairs)
