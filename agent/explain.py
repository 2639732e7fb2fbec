"""Re-run a logged decision and say whether it reproduces (``updown explain DECISION_ID``).

A decision record (journal row or decision-log line, ``evals.replay_runner.decision_record``)
keeps every input the graph read, so the decision is rebuilt from the record alone:

* the snapshot: re-taken from the recorded dataset (replays) or copied in the record (live
  runs), and refused unless it hashes to the logged ``snapshot_sha256``;
* the context: account, sizing appetite, LLM switch and guard limits the run used;
* the guard's ledger, STOP-file state and clock, from the verdict (the journal cannot give
  them back: it now also holds the decision's own order);
* sentiment: replays re-score the embedded corpus; live sources cannot be fetched again as they
  were, so a live record's sentiment is injected as a fixed provider (and the output says so);
* model answers (``decided_by`` ``llm:...``): the logged structured outputs are replayed through
  a stand-in chat model (no network; ``agent.explain_standins``), so every deterministic step
  around them is re-run.  The output is rendered by ``agent.explain_view``.

Nothing can be sent: the graph is streamed node by node and closed after the guard; even if
``execute`` were reached, the context has no journal and a broker that refuses every order.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.explain_standins import FixedSentiment, RefusingBroker, replayed_model
from core.clock import ReplayClock
from core.errors import UserError
from core.guard import GuardLimits
from core.records import AggregatedSentiment, LedgerView
from core.snapshot import MarketSnapshot
from evals.replay_runner import decision_record
from feeds.recorded import RecordedDataset, load_dataset
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import RECURSION_LIMIT, compile_graph
from graphs.state import AgentState
from tools.decision_log import inline_snapshot, read_all, snapshot_sha256
from tools.sentiment import embedded_sentiment

EMBEDDED_DATASETS = Path(__file__).resolve().parents[1] / "data" / "recorded"
# The record keys a re-run must reproduce exactly (execution is never re-run; the snapshot
# is checked by its hash, which new snapshot fields at their defaults leave unchanged).
COMPARED = ("snapshot_sha256", "technical", "fair_value", "sentiment", "risk",
            "trader", "verdict")
# The nodes whose output is shown, in graph order (execute is never run).
NODES = ("technical_analyst", "fair_value", "sentiment_analyst", "risk_manager", "trader",
         "guard")
NODE_KEY = {"technical_analyst": "technical", "fair_value": "fair_value",
            "sentiment_analyst": "sentiment", "risk_manager": "risk", "trader": "trader",
            "guard": "verdict"}


class ExplainError(UserError):
    """The decision cannot be found or rebuilt; one line for the user."""


# --- finding the record ---------------------------------------------------------------------

def find_record(decision_id: str, *, journal: Path | None = None,
                decision_log: Path | None = None) -> dict[str, Any]:
    """The logged record of ``decision_id``: from the JSONL decision log when given, else from
    the journal's ``decisions`` table."""
    if decision_log is not None:
        if not decision_log.is_file():
            raise ExplainError(f"decision log not found: {decision_log}")
        try:
            records = read_all(decision_log)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ExplainError(f"decision log {decision_log}: {exc}") from None
        found = [r for r in records if r.get("decision_id") == decision_id]
        if not found:
            raise ExplainError(f"decision {decision_id!r} is not in the decision log "
                               f"{decision_log} ({len(records)} decisions)")
        return found[-1]
    if journal is None or not journal.is_file():
        raise ExplainError(f"journal not found: {journal}")
    import sqlite3

    from tools.journal import Journal

    try:
        with Journal(journal) as jr:
            record = jr.decision_record(decision_id)
    except sqlite3.DatabaseError as exc:
        raise ExplainError(f"journal {journal}: {exc}") from None
    if record is None:
        raise ExplainError(f"decision {decision_id!r} is not in the journal {journal}")
    return dict(record)


# --- rebuilding the inputs ---------------------------------------------------------------------

@dataclass
class Explanation:
    """One re-run decision: the logged record, the re-run's, and how they compare."""

    decision_id: str
    logged: dict[str, Any]
    rerun: dict[str, Any]
    differences: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def matches(self) -> bool:
        return not self.differences


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str, sort_keys=True))


def differences(logged: Any, rerun: Any, path: str = "") -> list[str]:
    """Dotted paths where the two JSON values differ (exact: floats compare bit for bit)."""
    if isinstance(logged, dict) and isinstance(rerun, dict):
        out: list[str] = []
        for key in sorted(set(logged) | set(rerun)):
            sub = f"{path}.{key}" if path else key
            if key not in logged or key not in rerun:
                out.append(sub)
            else:
                out.extend(differences(logged[key], rerun[key], sub))
        return out
    if isinstance(logged, list) and isinstance(rerun, list) and len(logged) == len(rerun):
        out = []
        for i, (a, b) in enumerate(zip(logged, rerun, strict=True)):
            out.extend(differences(a, b, f"{path}[{i}]"))
        return out
    return [] if logged == rerun else [path]


def value_at(record: Any, path: str) -> Any:
    """The value at a dotted path of ``differences`` (None where it is missing)."""
    current = record
    for part in path.replace("[", ".[").split("."):
        if part.startswith("["):
            index = int(part[1:-1])
            current = current[index] if isinstance(current, list) and index < len(current) \
                else None
        else:
            current = current.get(part) if isinstance(current, dict) else None
    return current


class Explainer:
    """Re-runs logged decisions; datasets are loaded once per explainer (a whole run's
    decisions come from the same one)."""

    def __init__(self) -> None:
        self.graph = compile_graph()
        self._feeds: dict[str, ReplayFeed] = {}
        self._tmp = tempfile.TemporaryDirectory(prefix="updown-explain-")
        # The STOP file the guard checks: present exactly when the logged guard saw one.
        engaged = Path(self._tmp.name) / "engaged"
        engaged.mkdir()
        (engaged / "STOP").touch()
        self._stop_files = {True: str(engaged / "STOP"),
                            False: str(Path(self._tmp.name) / "clear" / "STOP")}

    def close(self) -> None:
        self._tmp.cleanup()

    def __enter__(self) -> Explainer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _feed(self, source: Mapping[str, Any]) -> ReplayFeed:
        path = Path(str(source.get("path", "")))
        name = str(source.get("dataset", ""))
        if not path.is_dir():
            path = EMBEDDED_DATASETS / name
            if not name or not path.is_dir():
                raise ExplainError(f"dataset {name or '?'} not found (neither "
                                   f"{source.get('path')} nor {EMBEDDED_DATASETS / name})")
        key = str(path.resolve())
        if key not in self._feeds:
            dataset: RecordedDataset = load_dataset(path)
            self._feeds[key] = ReplayFeed(dataset)
        return self._feeds[key]

    def snapshot(self, record: Mapping[str, Any]) -> tuple[MarketSnapshot, str]:
        """The logged snapshot rebuilt and checked against its hash, and where it came from."""
        decision_id = record.get("decision_id")
        source = record.get("snapshot_source")
        logged_hash = record.get("snapshot_sha256")
        if not isinstance(source, dict) or not isinstance(logged_hash, str):
            raise ExplainError(f"decision {decision_id!r} was logged without what rebuilds its "
                               "snapshot (no snapshot_sha256/snapshot_source: an older record)")
        kind = source.get("kind")
        try:
            if kind == "dataset":
                feed = self._feed(source)
                try:
                    market = feed.dataset.market(str(source["market_id"]))
                except KeyError:
                    raise ExplainError(f"dataset {feed.dataset.name} has no market "
                                       f"{source.get('market_id')!r}") from None
                snap = feed.snapshot_at(market, float(source["as_of"]))
                origin = f"rebuilt from dataset {feed.dataset.name}"
            elif kind == "inline":
                snap = inline_snapshot(record)
                origin = "copied in the record"
            else:
                raise ExplainError(f"decision {decision_id!r}: unknown snapshot source {kind!r}")
        except (ValueError, KeyError, TypeError) as exc:
            raise ExplainError(f"decision {decision_id!r}: snapshot cannot be rebuilt "
                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:160]})"
                               ) from None
        rebuilt = snapshot_sha256(snap)
        if rebuilt != logged_hash:
            raise ExplainError(f"decision {decision_id!r}: the snapshot {origin} hashes to "
                               f"{rebuilt[:16]}, the log says {logged_hash[:16]} (its source "
                               "changed since the run): refusing to re-run on other data")
        return snap, origin

    def context(self, record: Mapping[str, Any], snap: MarketSnapshot
                ) -> tuple[Context, list[str]]:
        """The run's context as the record keeps it, made safe: no journal, no broker."""
        decision_id = record.get("decision_id")
        logged = record.get("context")
        if not isinstance(logged, dict):
            raise ExplainError(f"decision {decision_id!r} was logged without its context "
                               "(limits, appetite): an older record")
        try:
            limits = GuardLimits(**logged["limits"])
            verdict = record["verdict"]
            ledger = LedgerView.model_validate(verdict.get("ledger") or {})
            sentiment = AggregatedSentiment.model_validate(record["sentiment"])
        except (KeyError, TypeError, ValidationError) as exc:
            raise ExplainError(f"decision {decision_id!r}: malformed record "
                               f"({type(exc).__name__})") from None
        notes: list[str] = []
        if record["snapshot_source"].get("kind") == "dataset":
            provider: Any = embedded_sentiment(sentiment.lookback_s)
            notes.append("sentiment: re-scored from the embedded recorded corpus")
        else:
            provider = FixedSentiment(sentiment)
            notes.append("sentiment: live sources cannot be fetched again as they were; the "
                         "logged sentiment is injected, not recomputed")
        model = replayed_model(record, snap, str(logged["risk_appetite"]),
                               limits.max_position_usd)
        if model is not None:
            notes.append(f"model answers ({model.model_name}): the logged structured outputs "
                         "are replayed through a stand-in (no network); every other step is "
                         "re-run")
        judged_at = verdict.get("judged_at")
        ctx = Context(
            account=str(logged["account"]), limits=limits,
            risk_appetite=str(logged["risk_appetite"]), journal=None, run_id=None,
            broker=RefusingBroker(),
            clock=ReplayClock(float(judged_at)) if judged_at is not None else None,
            sentiment=provider, trader_model=model, risk_model=model,  # type: ignore[arg-type]
            use_llm=bool(logged["use_llm"]),
            stop_file=self._stop_files[bool(verdict.get("kill_switch_engaged"))],
            lessons=None, ledger=ledger)
        return ctx, notes

    async def aexplain(self, record: Mapping[str, Any]) -> Explanation:
        """Re-run one logged decision up to the guard and compare it with the log."""
        decision_id = str(record.get("decision_id"))
        snap, origin = self.snapshot(record)
        ctx, notes = self.context(record, snap)
        state: dict[str, Any] = {"snapshot": snap, "decision_id": decision_id}
        stream: AsyncGenerator[dict[str, Any], None] = self.graph.astream(  # type: ignore[assignment]
            {"snapshot": snap, "decision_id": decision_id}, context=ctx,
            config={"recursion_limit": RECURSION_LIMIT}, stream_mode="updates")
        # Closed right after the guard: execute is never scheduled.
        async with contextlib.aclosing(stream):
            async for chunk in stream:
                for update in chunk.values():
                    if isinstance(update, dict):
                        state.update(update)
                if "guard" in chunk:
                    break
        if state.get("verdict") is None:
            raise RuntimeError(f"the re-run of {decision_id} ended before the guard")
        state.pop("execution", None)
        source = record["snapshot_source"] if origin != "copied in the record" else None
        rerun = _normalised(decision_record(_as_state(state), context=ctx, source=source))
        logged = _normalised(dict(record))
        diffs = [d for key in COMPARED
                 for d in differences(logged.get(key), rerun.get(key), key)]
        notes.insert(0, f"snapshot: {origin}, sha256 {rerun['snapshot_sha256'][:16]} as logged")
        return Explanation(decision_id, logged, rerun, diffs, notes)


def _as_state(values: dict[str, Any]) -> AgentState:
    return values  # type: ignore[return-value]
