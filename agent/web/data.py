"""What every dashboard page and API answer shows, as JSON-ready dicts.

One ``DashboardData`` per served journal.  Every call opens its own read-only SQLite
connection (``mode=ro``: the dashboard can never write the journal, and a connection per call
keeps the threads of the web server apart) and reads through ``tools.journal.reads``.

"Now" is an argument, never the wall clock read here: with a live run attached it is the
runner's clock (the ``as_of`` of its status document); for a past journal it is the journal's
last event, so "today" is the trading day the journal ended in.

Only figures leave this module: no setting is read except the kill switch's path and the
fallback limits, and no secret is ever part of a run's config or a decision record (the
journal refuses secret-looking config keys).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from core.clock import trading_day_start
from core.errors import UserError
from tools.journal.reads import DecisionKey, decisions, profit, trades
from tools.journal.reads import operator as reads

StatusSource = Callable[[], dict[str, Any] | None]

# Which status-document age stands for which feed connection (agent.autorun.status_document).
FEED_AGES = {"binance": "price_age_s", "rtds": "reference_age_s", "clob": "book_age_s"}
MAX_PAGE = 500


class JournalMissing(UserError):
    """The journal to serve does not exist or is not a journal."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The fallback limits when the journal's run recorded none (from the settings)."""

    daily_loss_limit_usd: float
    max_orders_per_day: int


class DashboardData:
    def __init__(self, journal_path: Path, *, stop_file: Path, limits: Limits,
                 status: StatusSource | None = None) -> None:
        self.journal_path = Path(journal_path)
        self.stop_file = Path(stop_file)
        self.limits = limits
        self.status = status

    # --- connection -------------------------------------------------------------------------

    def check(self) -> None:
        """Raise JournalMissing (one line) unless the journal can be read."""
        if not self.journal_path.is_file():
            raise JournalMissing(f"journal not found: {self.journal_path}")
        try:
            with self.connect() as conn:
                conn.execute("SELECT 1 FROM decisions LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise JournalMissing(f"{self.journal_path} is not an updown journal ({exc})"
                                 ) from None

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(f"file:{self.journal_path}?mode=ro", uri=True, timeout=5.0,
                               check_same_thread=False)
        try:
            conn.execute("BEGIN")  # one snapshot for every query of the answer
            yield conn
        finally:
            conn.close()

    def live_status(self) -> dict[str, Any] | None:
        if self.status is None:
            return None
        try:
            return self.status()
        except Exception:  # a status that cannot be built is shown as missing, never a 500
            return None

    # --- pages --------------------------------------------------------------------------------

    def overview(self, account: str | None = None) -> dict[str, Any]:
        status = self.live_status()
        with self.connect() as conn:
            run_list = reads.runs(conn, limit=20)
            if account is None and status and status.get("account"):
                account = str(status["account"])
            if account is None and run_list:
                account = reads.run_account(conn, run_list[0])
            run = next((r for r in run_list
                        if account in (r.account, reads.run_account(conn, r))), None)
            now = (float(status["as_of"]) if status and status.get("as_of") is not None
                   else reads.latest_ts(conn))
            limits = self._limits(run)
            total = profit(conn, by="day", account=account).total
            day = (reads.day_figures(conn, account=account, day_start=trading_day_start(now),
                                     now=now) if account is not None and now is not None
                   else None)
            positions = reads.open_positions(conn, account=account) if account else []
            venue = reads.has_venue_orders(conn, account=account) if account else False
            owed = reads.unredeemed(conn, account=account) if account else None
            decision_count = int(conn.execute("SELECT COUNT(*) FROM decisions").fetchone()[0])
        provisional = [p for p in positions if p.provisional]
        return {
            "source": "live run" if status else "journal",
            "as_of": now,
            "account": account,
            "mode": (status or {}).get("mode") or (run.mode if run else None),
            "run": _run(run),
            "runs": len(run_list),
            "markets": self._markets(status, run),
            "kill_switch": {"engaged": self.stop_file.exists(), "stop_file": str(self.stop_file)},
            "today": None if day is None else {
                "day_start": day.day_start, "pnl_usd": day.realized_pnl_today,
                "daily_loss_limit_usd": limits.daily_loss_limit_usd,
                "loss_limit_used": (max(0.0, -day.realized_pnl_today)
                                    / limits.daily_loss_limit_usd
                                    if limits.daily_loss_limit_usd > 0 else None),
                "orders": day.orders_today, "max_orders_per_day": limits.max_orders_per_day},
            "totals": {"decisions": decision_count, "orders": total.orders,
                       "trades": total.trades, "wins": total.wins, "losses": total.losses,
                       "unknown_outcome": total.unknown, "fees_usd": total.fees_usd,
                       "staked_usd": total.staked_usd, "pnl_usd": total.pnl_usd},
            "open_positions": [dict(asdict(p), provisional=p.provisional) for p in positions],
            "provisional": {
                "count": len(provisional),
                "notional_usd": round(sum(p.notional_usd for p in provisional), 6),
                "note": None if venue else
                "paper fills are final: the journal holds no venue trade status"},
            "unredeemed": {
                "usd": None, "positions": None,
                "note": "n/a: this journal records no redemptions (schema before v4)"}
            if owed is None else {
                "usd": owed.payout_usd, "positions": owed.positions,
                "note": f"{owed.positions} winning position(s) not yet redeemed"},
            "counters": (status or {}).get("counters"),
        }

    def equity(self, account: str | None = None, run_id: str | None = None) -> dict[str, Any]:
        with self.connect() as conn:
            points = reads.equity(conn, account=account, run_id=run_id)
            total = profit(conn, by="day", account=account, run_id=run_id).total
        return {"account": account, "run_id": run_id, "pnl_usd": total.pnl_usd,
                "fees_usd": total.fees_usd, "settled": len(points),
                "points": [asdict(p) for p in points]}

    def decisions(self, *, limit: int = 50, before: DecisionKey | None = None,
                  market_id: str | None = None, run_id: str | None = None) -> dict[str, Any]:
        with self.connect() as conn:
            page = decisions(conn, limit=limit, before=before, market_id=market_id,
                             run_id=run_id)
            extras = reads.decision_extras(conn, [d.decision_id for d in page])
        out = []
        for d in page:
            extra = extras.get(d.decision_id)
            out.append({
                "decision_id": d.decision_id, "run_id": d.run_id, "market_id": d.market_id,
                "as_of": d.as_of, "decided_by": d.decided_by, "decision": d.decision,
                "confidence": d.confidence, "fair_up": d.fair_up, "market_mid": d.market_mid,
                "approved": d.approved, "verdict": d.verdict,
                "rules_fired": [asdict(r) for r in d.rules_fired],
                "reasoning": extra.reasoning if extra else None,
                "llm_usd": extra.llm_usd if extra else 0.0,
                "llm_calls": extra.llm_calls if extra else 0})
        next_key = (encode_key(page[-1].key) if len(page) == limit else None)
        return {"decisions": out, "next": next_key}

    def decision(self, decision_id: str) -> dict[str, Any] | None:
        with self.connect() as conn:
            record = reads.decision_record(conn, decision_id)
            row = conn.execute("SELECT run_id, market_id, as_of, decided_by, approved"
                               " FROM decisions WHERE decision_id = ?",
                               (decision_id,)).fetchone()
        if record is None or row is None:
            return None
        return {"decision_id": decision_id, "run_id": row[0], "market_id": row[1],
                "as_of": row[2], "decided_by": row[3], "approved": bool(row[4]),
                "record": record}

    def trades(self, *, limit: int = 50, offset: int = 0, account: str | None = None
               ) -> dict[str, Any]:
        with self.connect() as conn:
            page = trades(conn, limit=limit, offset=offset, account=account)
        return {"trades": [asdict(t) for t in page], "offset": offset, "limit": limit,
                "next_offset": offset + limit if len(page) == limit else None}

    def calibration(self, *, bins: int = 10, run_id: str | None = None) -> dict[str, Any]:
        with self.connect() as conn:
            cal = reads.calibration(conn, bins=bins, run_id=run_id)
        return dict(asdict(cal), note=(
            "Windows whose outcome the journal knows: those with a settled position. "
            "The journal records no outcome for windows the agent did not trade, so the "
            "sample leans towards windows where the agent saw an edge."))

    # --- helpers ------------------------------------------------------------------------------

    def _limits(self, run: reads.RunRow | None) -> Limits:
        recorded = run.limits if run else {}
        loss = recorded.get("daily_loss_limit_usd", self.limits.daily_loss_limit_usd)
        orders = recorded.get("max_orders_per_day", self.limits.max_orders_per_day)
        return Limits(daily_loss_limit_usd=float(loss), max_orders_per_day=int(orders))

    @staticmethod
    def _markets(status: dict[str, Any] | None, run: reads.RunRow | None
                 ) -> list[dict[str, Any]]:
        if status is None:
            return [{"name": run.dataset if run else None, "market_id": None, "feeds": None,
                     "note": "no live run attached: feed connections n/a"}]
        out = []
        for name, m in (status.get("markets") or {}).items():
            counters = m.get("feeds") or {}
            feeds = [{"feed": feed, "last_message_age_s": m.get(age_key),
                      "reconnects": (counters.get(feed) or {}).get("reconnects"),
                      "dropped": sum((counters.get(feed) or {}).get("dropped", {}).values()),
                      "last_error": (counters.get(feed) or {}).get("last_error")}
                     for feed, age_key in FEED_AGES.items()]
            out.append({"name": name, "market_id": m.get("market_id"),
                        "time_to_close_s": m.get("time_to_close_s"), "price": m.get("price"),
                        "price_to_beat": m.get("price_to_beat"),
                        "price_to_beat_verified": m.get("price_to_beat_verified"),
                        "entered": m.get("entered"), "last_decision": m.get("last_decision"),
                        "feeds": feeds})
        return out

    def change_token(self, conn: sqlite3.Connection) -> int:
        """Changes whenever another connection commits to the journal (SQLite data_version)."""
        return int(conn.execute("PRAGMA data_version").fetchone()[0])


def _run(run: reads.RunRow | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"run_id": run.run_id, "mode": run.mode, "dataset": run.dataset,
            "started_ts": run.started_ts, "ended_ts": run.ended_ts}


def encode_key(key: DecisionKey) -> str:
    """The keyset cursor of the decisions list as one query value: ``<as_of>,<decision_id>``."""
    return f"{key.as_of!r},{key.decision_id}"


def decode_key(text: str) -> DecisionKey:
    as_of, sep, decision_id = text.partition(",")
    if not sep or not decision_id:
        raise ValueError("before must be '<as_of>,<decision_id>' (the 'next' of a page)")
    return DecisionKey(float(as_of), decision_id)


def json_text(document: Any) -> str:
    return json.dumps(document, default=str, sort_keys=False)
