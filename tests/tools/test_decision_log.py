"""DecisionLog: one JSON object per line, durable appends, torn last lines survived."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.records import AIAnalysis
from core.snapshot import Candles, MarketSnapshot
from tools.decision_log import (
    DecisionLog,
    canonical_snapshot_json,
    inline_snapshot,
    read_all,
    snapshot_fields,
    snapshot_sha256,
)


def test_appends_one_sorted_json_line_per_record(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "deep" / "decisions.jsonl"
    with DecisionLog(path) as log:
        log.append({"b": 2, "a": "multi\nline", "when": Path("x")})
        log.append(AIAnalysis(decision="hold", confidence=10, reasoning="r", risk_level="low"))
    text = path.read_text()
    lines = text.splitlines()
    assert len(lines) == 2
    assert text.endswith("\n")
    assert lines[0] == json.dumps({"a": "multi\nline", "b": 2, "when": "x"}, sort_keys=True)
    assert read_all(path) == [
        {"a": "multi\nline", "b": 2, "when": "x"},
        {"confidence": 10, "decision": "hold", "reasoning": "r", "risk_level": "low"},
    ]


def test_reopen_appends_after_existing_records(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DecisionLog(path) as log:
        log.append({"n": 1})
    with DecisionLog(path) as log:
        log.append({"n": 2})
    assert [r["n"] for r in read_all(path)] == [1, 2]


def test_missing_file_reads_empty(tmp_path: Path) -> None:
    assert read_all(tmp_path / "none.jsonl") == []


def test_closed_log_refuses_append(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl")
    log.close()
    log.close()
    with pytest.raises(ValueError, match="closed"):
        log.append({"n": 1})


def test_partial_write_is_ignored_then_repaired(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    with DecisionLog(path) as log:
        log.append({"n": 1})
        log.append({"n": 2})
    # A crash half-way through the third record leaves an unterminated line.
    with path.open("ab") as f:
        f.write(b'{"n": 3, "reas')
    assert [r["n"] for r in read_all(path)] == [1, 2]
    # Opening for append cuts the torn tail, so the next record is a clean line of its own.
    with DecisionLog(path) as log:
        log.append({"n": 4})
    assert [r["n"] for r in read_all(path)] == [1, 2, 4]
    raw = path.read_bytes()
    assert raw.count(b"\n") == 3
    assert raw.endswith(b"\n")


def test_file_holding_only_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"n": ' + b"x" * 10_000)  # longer than one read chunk, no newline
    assert read_all(path) == []
    with DecisionLog(path) as log:
        log.append({"n": 1})
    assert path.read_bytes() == b'{"n": 1}\n'


def test_corrupt_complete_line_raises_with_line_number(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"n": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"d\.jsonl:2"):
        read_all(path)
    path.write_bytes(b"[1, 2]\n")
    with pytest.raises(ValueError, match="not a JSON object"):
        read_all(path)


def test_killed_writer_leaves_a_readable_log(tmp_path: Path) -> None:
    # A real process is SIGKILLed while appending; every line it finished must read back, and
    # the count must agree with the number of complete lines on disk.
    path = tmp_path / "d.jsonl"
    child = (
        "import sys\n"
        "from tools.decision_log import DecisionLog\n"
        "log = DecisionLog(sys.argv[1])\n"
        "n = 0\n"
        "while True:\n"
        "    log.append({'n': n, 'pad': 'x' * 5000})\n"
        "    n += 1\n"
    )
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", child, str(path)], cwd=root)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if path.exists() and path.stat().st_size > 50_000:
                break
            time.sleep(0.01)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    records = read_all(path)
    assert len(records) >= 5
    assert [r["n"] for r in records] == list(range(len(records)))
    assert len(records) == path.read_bytes().count(b"\n")
    with DecisionLog(path) as log:
        log.append({"n": len(records)})
    assert [r["n"] for r in read_all(path)] == list(range(len(records) + 1))


def _snapshot(**overrides: object) -> MarketSnapshot:
    base: dict[str, object] = dict(
        market_id="btc-updown-15m-1766745000", as_of=1766745270.0, window_start=1766745000.0,
        window_end=1766745900.0, price_to_beat=88756.01, price=88632.64, price_ts=1766745240.0,
        candles=Candles(interval_s=60.0, close_ts=(1766745180.0, 1766745240.0),
                        open=(88650.1, 88640.0), high=(88660.0, 88641.3),
                        low=(88630.0, 88600.2), close=(88640.0, 88632.64)))
    base.update(overrides)
    return MarketSnapshot.model_validate(base)


def test_inline_snapshot_fields_rebuild_the_snapshot_exactly(tmp_path: Path) -> None:
    snap = _snapshot()
    fields = snapshot_fields(snap, None)
    # The summary is for reading; the candles themselves travel in snapshot_source.
    assert fields["snapshot"]["candles"] == {"count": 2, "interval_s": 60.0,
                                             "last_close_ts": 1766745240.0}
    assert fields["snapshot_source"]["kind"] == "inline"
    with DecisionLog(tmp_path / "d.jsonl") as log:
        log.append({"decision_id": "d", **fields})
    (record,) = read_all(tmp_path / "d.jsonl")
    rebuilt = inline_snapshot(record)
    assert rebuilt == snap
    assert snapshot_sha256(rebuilt) == record["snapshot_sha256"] == snapshot_sha256(snap)


def test_snapshot_hash_changes_with_any_value_and_not_with_defaults() -> None:
    snap = _snapshot()
    assert snapshot_sha256(_snapshot(price=88632.65)) != snapshot_sha256(snap)
    assert snapshot_sha256(_snapshot(candles=Candles(interval_s=60.0))) != snapshot_sha256(snap)
    # A field at its default is left out, so fields added with defaults keep old hashes.
    assert snapshot_sha256(_snapshot(tick_size=0.01)) == snapshot_sha256(snap)
    assert "tick_size" not in json.loads(canonical_snapshot_json(snap))


def test_a_dataset_source_is_kept_as_given() -> None:
    source = {"kind": "dataset", "dataset": "x", "path": "/d/x", "market_id": "m",
              "as_of": 1.0}
    fields = snapshot_fields(_snapshot(), source)
    assert fields["snapshot_source"] == source
    assert "close" not in json.dumps(fields["snapshot_source"])
