"""``updown explain``: every logged decision re-runs to the identical output, offline, and a
record that was changed (or whose source changed) is reported, never silently re-decided."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from evalkit import embedded_slice

from agent.explain import Explainer, ExplainError, Explanation
from agent.explain_standins import ReplayedModel
from core.guard import GuardLimits
from core.settings import Settings
from evals.replay_runner import ReplayRunner, decision_record
from feeds.recorded import load_dataset
from feeds.replay import ReplayFeed
from graphs.context import Context
from graphs.graph import compile_graph
from graphs.state import AgentState
from tools.decision_log import read_all
from tools.journal import Journal
from tools.sentiment import embedded_sentiment

ROOT = Path(__file__).resolve().parents[2]
EMBEDDED = ROOT / "data" / "recorded" / "pm15m_20251226_coinbase1m"
UPDOWN = str(Path(sys.executable).with_name("updown"))


def updown(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "POLYMARKET_", "LANGSMITH_", "LANGCHAIN_"))}
    return subprocess.run([UPDOWN, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300, check=False)


def explain_all(records: list[dict[str, Any]]) -> list[Explanation]:
    async def run() -> list[Explanation]:
        with Explainer() as explainer:
            return [await explainer.aexplain(r) for r in records]
    return asyncio.run(run())


@pytest.fixture(scope="module")
def make_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """What `make run` does (the embedded replay, default settings), into its own files."""
    tmp = tmp_path_factory.mktemp("make_run")
    journal, log = tmp / "journal.db", tmp / "decisions.jsonl"
    proc = updown("run", "--replay", str(EMBEDDED), "--no-view", "--journal", str(journal),
                  "--decision-log", str(log), cwd=tmp)
    assert proc.returncode == 0, proc.stderr
    return SimpleNamespace(dir=tmp, journal=journal, log=log, stdout=proc.stdout,
                          records=read_all(log))


def _intents(journal: Path) -> int:
    with sqlite3.connect(journal) as db:
        return int(db.execute("SELECT COUNT(*) FROM order_intents").fetchone()[0])


def test_every_decision_of_make_run_reproduces_exactly(make_run: SimpleNamespace) -> None:
    records = make_run.records
    assert len(records) == 366
    # The summary `make run` prints is unchanged by what the records now keep.
    assert "+6.51" in make_run.stdout
    intents = _intents(make_run.journal)
    results = explain_all(records)
    mismatched = [(e.decision_id, e.differences) for e in results if not e.matches]
    assert mismatched == []
    assert [e.decision_id for e in results] == [r["decision_id"] for r in records]
    # The re-run judged with the ledger the guard saw then, not the journal's state now.
    rejected = Counter(h["rule"] for e in results for h in e.rerun["verdict"]["rules_fired"]
                       if h["action"] == "reject")
    assert rejected["daily_orders"] == 191
    assert rejected["confidence"] == 164
    assert sum(e.rerun["verdict"]["approved"] for e in results) == 24
    # Re-running never placed an order (nothing was journaled, nothing sent).
    assert _intents(make_run.journal) == intents == 24


def test_the_journal_keeps_the_same_self_sufficient_record(make_run: SimpleNamespace) -> None:
    with Journal(make_run.journal) as jr:
        for record in make_run.records[::40]:
            assert jr.decision_record(record["decision_id"]) == record
    first = make_run.records[0]
    assert first["snapshot_source"]["kind"] == "dataset"
    assert first["snapshot_source"]["dataset"] == EMBEDDED.name
    assert len(first["snapshot_sha256"]) == 64
    assert first["context"]["limits"]["max_orders_per_day"] == 24


def test_cli_explains_from_the_journal_and_the_log(make_run: SimpleNamespace) -> None:
    approved = next(r for r in make_run.records if r["verdict"]["approved"])
    proc = updown("explain", approved["decision_id"], "--journal", str(make_run.journal),
                  cwd=make_run.dir)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for node in ("technical_analyst:", "fair_value:", "sentiment_analyst:", "risk_manager:",
                 "trader:", "guard: approved"):
        assert node in out
    assert "execute: not re-run" in out
    assert out.strip().splitlines()[-1] == "matches the log: yes"

    rejected = next(r for r in make_run.records if any(
        h["rule"] == "daily_orders" for h in r["verdict"]["rules_fired"]))
    proc = updown("explain", rejected["decision_id"], "--decision-log", str(make_run.log),
                  "--json", cwd=make_run.dir)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["matches"] is True
    assert doc["differences"] == []
    rules = [h["rule"] for h in doc["nodes"]["guard"]["rules_fired"]]
    assert "daily_orders" in rules
    assert doc["nodes"]["guard"]["ledger"]["orders_today"] >= 24


def test_unknown_decision_and_missing_files_are_one_line(make_run: SimpleNamespace) -> None:
    for args, needle in (
            (("nope", "--journal", str(make_run.journal)), "'nope' is not in the journal"),
            (("nope", "--decision-log", str(make_run.dir / "absent.jsonl")),
             "decision log not found")):
        proc = updown("explain", *args, cwd=make_run.dir)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1
        assert lines[0].startswith("error: ")
        assert needle in lines[0]


def _tampered(make_run: SimpleNamespace, name: str, change: Any) -> tuple[Path, str]:
    record = json.loads(json.dumps(make_run.records[7]))
    change(record)
    path = make_run.dir / name
    path.write_text(json.dumps(record) + "\n")
    return path, str(record["decision_id"])


def test_a_changed_fair_value_is_reported_as_not_matching(make_run: SimpleNamespace) -> None:
    logged = make_run.records[7]["fair_value"]["fair_up"]

    def change(record: dict[str, Any]) -> None:
        record["fair_value"]["fair_up"] = round(logged + 0.027, 3)

    path, decision_id = _tampered(make_run, "tampered.jsonl", change)
    proc = updown("explain", decision_id, "--decision-log", str(path), cwd=make_run.dir)
    assert proc.returncode == 1, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last == "matches the log: no: fair_value.fair_up"
    assert f"re-run {logged:.10g}" in proc.stdout


def test_a_snapshot_that_no_longer_hashes_the_same_is_refused(
        make_run: SimpleNamespace) -> None:
    def change(record: dict[str, Any]) -> None:
        record["snapshot_source"]["as_of"] += 30.0  # another moment of the same window

    path, decision_id = _tampered(make_run, "moved.jsonl", change)
    proc = updown("explain", decision_id, "--decision-log", str(path), cwd=make_run.dir)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "refusing to re-run" in lines[0]


# --- live-shaped records (snapshot copied in), the kill switch and model decisions -------------

def _settings() -> Settings:
    return Settings(_env_file=None)  # type: ignore[call-arg]


def _live_shaped_record(stop_file: Path) -> dict[str, Any]:
    """A decision recorded like the live runner does (no dataset source), with a STOP file."""
    feed = ReplayFeed(load_dataset(EMBEDDED))
    market = feed.markets[0]
    snap = feed.snapshot_at(market, market.start_ts + 270.0)  # an approvable moment
    ctx = Context(account="paper", limits=GuardLimits.for_replay(_settings()),
                  risk_appetite="medium", use_llm=False, stop_file=str(stop_file),
                  sentiment=embedded_sentiment(_settings().sentiment_lookback_s))
    state = cast(AgentState, asyncio.run(compile_graph().ainvoke(
        {"snapshot": snap, "decision_id": "live-shaped"}, context=ctx)))
    record: dict[str, Any] = json.loads(json.dumps(decision_record(state, context=ctx),
                                                   default=str))
    return record


def test_a_live_record_carries_its_snapshot_and_reproduces(tmp_path: Path) -> None:
    stop = tmp_path / "STOP"
    stop.touch()
    record = _live_shaped_record(stop)
    assert record["snapshot_source"]["kind"] == "inline"
    assert len(record["snapshot_source"]["candles"]["close"]) == 120
    assert [h["rule"] for h in record["verdict"]["rules_fired"]] == ["kill_switch"]
    stop.unlink()  # the STOP file is gone now: the re-run still judges as the guard did then
    (result,) = explain_all([record])
    assert result.matches, result.differences
    assert any("injected, not recomputed" in n for n in result.notes)

    record["snapshot_source"]["candles"]["close"][-1] += 1.0
    with pytest.raises(ExplainError, match="refusing to re-run"):
        explain_all([record])


class ScriptedModel:
    """A stand-in chat model with varied answers and failures, offline."""

    model_name = "gpt-4o-mini"

    def __init__(self) -> None:
        self.calls = Counter[str]()

    def with_structured_output(self, schema: type, **_: object) -> ScriptedModel._Call:
        return ScriptedModel._Call(self, schema)

    class _Call:
        def __init__(self, owner: ScriptedModel, schema: type) -> None:
            self.owner, self.schema = owner, schema

        async def ainvoke(self, prompt: str) -> dict[str, object]:
            name = self.schema.__name__
            self.owner.calls[name] += 1
            n = self.owner.calls[name]
            raw = SimpleNamespace(usage_metadata={"input_tokens": 100 + n, "output_tokens": 20},
                                  additional_kwargs={})
            if name == "RiskReview":
                if n % 5 == 0:
                    raise RuntimeError("provider down")
                level = ("low", "medium", "high")[n % 3]
                return {"raw": raw, "parsed": self.schema(risk_level=level,
                                                          factors=[f"factor {n}"]),
                        "parsing_error": None}
            if n % 4 == 1:
                return {"raw": raw, "parsed": self.schema(
                    decision="up" if n % 8 == 1 else "down", confidence=70 + n % 25,
                    risk_level="medium", reasoning=f"answer {n}"), "parsing_error": None}
            if n % 4 == 2:
                raw.additional_kwargs = {"refusal": "no"}
                return {"raw": raw, "parsed": None, "parsing_error": None}
            if n % 4 == 3:
                return {"raw": raw, "parsed": None, "parsing_error": ValueError("bad")}
            raise TimeoutError


def test_model_decisions_reproduce_through_the_logged_answers(tmp_path: Path) -> None:
    data = embedded_slice(tmp_path, 6)
    model = ScriptedModel()
    records: list[dict[str, Any]] = []

    class Sink:
        def append(self, record: dict[str, Any]) -> None:
            records.append(json.loads(json.dumps(record, default=str)))

    with Journal(tmp_path / "j.db") as journal:
        ReplayRunner(ReplayFeed(load_dataset(data)), _settings(), journal=journal,
                     decision_log=Sink(), cadence_s=60.0, use_llm=True, chat_model=model,
                     stop_file=str(tmp_path / "STOP")).run()
    asked = [r for r in records if r["trader"]["decided_by"].startswith("llm:")
             or r["risk"]["llm_usage"] is not None]
    notes = {r["trader"]["note"] for r in asked} | {r["risk"]["factors"][-1] for r in asked
                                                   if r["risk"]["decided_by"] == "policy"}
    # Every path was taken: answers, refusal, invalid output, timeout, a failed risk call.
    assert {None, "llm refused", "llm output invalid: ValueError", "llm call timed out",
            "llm call failed: RuntimeError"} <= notes
    results = explain_all(records)
    assert [(e.decision_id, e.differences) for e in results if not e.matches] == []
    assert all(any("stand-in (no network)" in n for n in e.notes)
               for e, r in zip(results, records, strict=True) if r in asked)

    # A changed model answer is not reproduced by the re-run's deterministic steps.
    answered = next(r for r in asked if r["trader"]["note"] is None
                    and r["trader"]["decided_by"].startswith("llm:"))
    forged = json.loads(json.dumps(answered))
    forged["trader"]["p_up"] = 0.5
    (result,) = explain_all([forged])
    assert result.differences == ["trader.p_up"]


def test_the_stand_in_refuses_a_question_the_log_never_asked() -> None:
    model = ReplayedModel("gpt-4o-mini", {})
    call = model.with_structured_output(type("AIAnalysis", (), {}))
    with pytest.raises(Exception, match="asked no model"):
        asyncio.run(call.ainvoke("prompt"))
