"""The JSONL decision log: one JSON object per line, one line per decision, append only.

It owns the on-disk format and its crash safety.  Each record is serialised to a single line
(``json.dumps(..., default=str, sort_keys=True)`` never emits a raw newline), written with one
``os.write`` to an ``O_APPEND`` descriptor and ``fsync``-ed before ``append`` returns, so a
record that ``append`` reported is on disk.

Each record keeps what rebuilds its snapshot exactly (``updown explain`` re-runs the graph on
it): ``snapshot_sha256``, the SHA-256 of the snapshot's canonical JSON, and ``snapshot_source``,
either ``{"kind": "dataset", ...}`` (a replay: the recorded dataset, market and time it was
taken from; a rebuild must hash the same or is refused) or ``{"kind": "inline", "candles": ...}``
(a live run: nothing else can rebuild it, so its candles are copied, and ``snapshot`` holds the
rest).  ``snapshot`` itself always shows the candles as a summary, for people reading the log.

A crash in the middle of a write can still leave an unterminated last line.  ``read_all``
ignores such a tail, and opening the log truncates it back to the last newline before the
first append, so a new record is never glued onto a broken one.  That assumes one writer per
file, which is how the runner uses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from pydantic import BaseModel

from core.snapshot import MarketSnapshot


def canonical_snapshot_json(snapshot: MarketSnapshot) -> str:
    """The snapshot's canonical JSON (sorted keys, no spaces, floats as repr): what is hashed.

    JSON floats round-trip exactly, so a snapshot rebuilt from it hashes the same.  Fields at
    their default are left out, so a field added to ``MarketSnapshot`` later (with a default
    that keeps the old behaviour) leaves the hashes of earlier records valid."""
    return json.dumps(snapshot.model_dump(mode="json", exclude_defaults=True), sort_keys=True,
                      separators=(",", ":"))


def snapshot_sha256(snapshot: MarketSnapshot) -> str:
    return hashlib.sha256(canonical_snapshot_json(snapshot).encode("utf-8")).hexdigest()


def snapshot_fields(snapshot: MarketSnapshot, source: Mapping[str, Any] | None
                    ) -> dict[str, Any]:
    """The record's snapshot keys: a readable summary, its hash and what rebuilds it.

    ``source`` names the recording a replay took it from (kind "dataset"); None copies the
    candles into the record (kind "inline"): a live snapshot exists nowhere else."""
    summary = snapshot.model_dump(mode="json", exclude={"candles"})
    candles = snapshot.candles
    summary["candles"] = {
        "count": len(candles), "interval_s": candles.interval_s,
        "last_close_ts": candles.close_ts[-1] if len(candles) else None,
    }
    rebuild = dict(source) if source is not None else {
        "kind": "inline", "candles": candles.model_dump(mode="json")}
    return {"snapshot": summary, "snapshot_sha256": snapshot_sha256(snapshot),
            "snapshot_source": rebuild}


def inline_snapshot(record: Mapping[str, Any]) -> MarketSnapshot:
    """The snapshot of a record whose source is inline: its fields plus its copied candles."""
    fields = {k: v for k, v in record["snapshot"].items() if k != "candles"}
    return MarketSnapshot.model_validate({**fields,
                                          "candles": record["snapshot_source"]["candles"]})


def _encode(record: Mapping[str, Any] | BaseModel) -> bytes:
    data = record.model_dump(mode="json") if isinstance(record, BaseModel) else dict(record)
    return (json.dumps(data, default=str, sort_keys=True) + "\n").encode("utf-8")


def _fsync_dir(directory: Path) -> None:
    # A new file's directory entry must be durable too, or a crash can lose the whole file.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate_partial_tail(fd: int) -> None:
    """Cut an unterminated last line (left by a crash) back to the last newline."""
    size = os.lseek(fd, 0, os.SEEK_END)
    if size == 0:
        return
    pos = size
    chunk = 4096
    while pos > 0:
        start = max(0, pos - chunk)
        os.lseek(fd, start, os.SEEK_SET)
        block = os.read(fd, pos - start)
        if start + len(block) == size and block.endswith(b"\n"):
            return  # the file ends cleanly
        nl = block.rfind(b"\n")
        if nl >= 0:
            os.ftruncate(fd, start + nl + 1)
            os.fsync(fd)
            return
        pos = start
    # No newline at all: the whole file is one broken line.
    os.ftruncate(fd, 0)
    os.fsync(fd)


class DecisionLog:
    """Append-only JSONL file; ``append`` is durable when it returns."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Nodes may log from worker threads; a partial os.write must not interleave lines.
        self._lock = threading.Lock()
        existed = self.path.exists()
        # O_RDWR (not O_WRONLY) so the partial tail can be read and cut; O_APPEND makes every
        # write land at the end even if another descriptor moved the offset.
        self._fd: int | None = os.open(
            self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600
        )
        try:
            _truncate_partial_tail(self._fd)
            if not existed:
                _fsync_dir(self.path.parent)
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def append(self, record: Mapping[str, Any] | BaseModel) -> None:
        """Write one record as one line and fsync it."""
        line = _encode(record)
        with self._lock:
            if self._fd is None:
                raise ValueError("decision log is closed")
            view = memoryview(line)
            # os.write may write less than asked (signals, full disk); loop until all is out.
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_all(path: str | Path) -> list[dict[str, Any]]:
    """Every complete record in the log, oldest first; [] when the file does not exist.

    An unterminated last line is a write cut short by a crash and is skipped.  A complete line
    that is not a JSON object is corruption, and raises ValueError naming the line.
    """
    p = Path(path)
    if not p.exists():
        return []
    data = p.read_bytes()
    lines = data.split(b"\n")
    # After split, the last element is b"" when the file ends with a newline, else the tail.
    complete = lines[:-1]
    records: list[dict[str, Any]] = []
    for number, raw in enumerate(complete, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as err:
            raise ValueError(f"{p}:{number}: not JSON ({err.msg})") from None
        if not isinstance(obj, dict):
            raise ValueError(f"{p}:{number}: not a JSON object")
        records.append(obj)
    return records
