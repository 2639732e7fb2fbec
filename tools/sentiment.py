"""Text sentiment for the sentiment_analyst: dated text items in, numbers out.

This module owns
  * ``TextItem`` / ``TextCorpus``: dated headlines and posts (``ts`` UTC epoch seconds, ``source``
    ``"<family>:<outlet>"``), loaded from the ``texts.csv.gz`` interchange CSV, kept sorted so a
    time window is two binary searches;
  * ``score_items``: VADER scores per source family aggregated into ``AggregatedSentiment``;
  * ``RecordedSentiment``: the replay-time source over a static corpus, cached per time bucket.

Two invariants matter more than the scoring itself:
  * No look-ahead.  An item counts for a decision at ``as_of`` only if
    ``as_of - lookback_s < item.ts <= as_of``; anything newer is dropped before scoring and the
    aggregation re-checks it.  ``RecordedSentiment`` scores at ``as_of`` rounded *down* to its
    bucket, which can only leave out recent items, never add future ones.
  * Text is untrusted (headlines and Reddit titles are written by strangers, and the trader LLM
    reads our output).  Nothing returned carries text: only numbers, counts, timestamps and the
    source *family* name, which must match ``[a-z][a-z0-9_]*`` or loading fails.

Scoring, per family (recorded ``news``, ``reddit``; live ``tavily``, ``twitter``, ``reddit``
from ``tools.sentiment_live``, which reuses ``score_items``):
  * each item's VADER compound score ``c`` in -1..1 on ``title + "\\n" + text``;
  * recency weight ``w = 0.5 ** (age / half_life)`` with ``half_life = lookback_s / 4``, so an
    item at the far edge of the lookback weighs 1/16 of a fresh one;
  * ``score = 100 * sum(w c) / sum(w)`` (-100 bearish .. +100 bullish);
  * ``confidence = n_eff / (n_eff + k) * (1 - sd)`` where ``n_eff = (sum w)^2 / sum(w^2)`` is the
    effective item count under those weights (equals n when all weights are equal), ``k`` is
    ``CONFIDENCE_K`` (5 items give 0.5 before the agreement factor), and ``sd`` the weighted
    standard deviation of ``c`` (0..1 because ``c`` lies in -1..1): many items that agree give
    confidence near 1, a few or contradictory ones near 0.
The blend over families is confidence-weighted: ``score = sum(conf_s score_s) / sum(conf_s)`` and
``confidence = (sum conf_s^2 / sum conf_s) * (1 - sd_s)`` with ``sd_s`` the confidence-weighted
standard deviation of ``score_s / 100`` (so two confident families that disagree give a low
confidence).  Label: ``bullish`` above +``DEAD_BAND``, ``bearish`` below -``DEAD_BAND``, else
``neutral``.

VADER's general-purpose lexicon misses much market vocabulary ("dives", "falls below"): many real
headlines score exactly 0.  That is a known limit of the method, not a bug here.
"""

from __future__ import annotations

import csv
import gzip
import io
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
from numpy.typing import NDArray

from core.records import AggregatedSentiment, SentimentScore

DEFAULT_FAMILIES: tuple[str, ...] = ("news", "reddit")
DEFAULT_LOOKBACK_S = 6 * 3600.0
DEFAULT_BUCKET_S = 60.0
# Effective item count at which a family's confidence reaches half (before the agreement factor).
CONFIDENCE_K = 5.0
# |score| at or below this is "neutral": VADER noise on a handful of headlines easily reaches it.
DEAD_BAND = 10.0

REQUIRED_COLUMNS: tuple[str, ...] = ("ts", "source", "title", "text")
# The family is the only part of ``source`` that ever leaves this module, so it is held to a
# strict identifier shape; the outlet part is free text but bounded and single-line.
_FAMILY_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_MAX_SOURCE_CHARS = 200
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")

Label = Literal["bullish", "bearish", "neutral"]


class PolarityAnalyzer(Protocol):
    """What we need of VADER's ``SentimentIntensityAnalyzer`` (lets tests pass a stand-in)."""

    def polarity_scores(self, text: str) -> dict[str, float]: ...


def make_analyzer() -> PolarityAnalyzer:
    """A VADER analyzer.  Construction reads the lexicon files: do it once, not per call."""
    from vaderSentiment.vaderSentiment import (  # type: ignore[import-untyped, unused-ignore]
        SentimentIntensityAnalyzer,
    )

    analyzer: PolarityAnalyzer = SentimentIntensityAnalyzer()
    return analyzer


# ---------------------------------------------------------------------------------------------
# Items and corpus


def _parse_ts(value: object) -> float:
    # bool is an int: reject it rather than read True as 1970-01-01T00:00:01.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"not a timestamp: {_preview(value)}")
    try:
        ts = float(value)
    except ValueError:
        raise ValueError(f"not a number: {_preview(value)}") from None
    if not math.isfinite(ts) or ts < 0:
        raise ValueError(f"not a finite non-negative epoch time: {_preview(value)}")
    return ts


def _check_source(source: object) -> str:
    if not isinstance(source, str):
        raise ValueError(f"source must be a string, got {type(source).__name__}")
    family, sep, outlet = source.partition(":")
    if not sep or not outlet.strip():
        raise ValueError(f"source must look like '<family>:<outlet>': {_preview(source)}")
    if not _FAMILY_RE.fullmatch(family):
        raise ValueError(f"source family must match [a-z][a-z0-9_]*: {_preview(source)}")
    if len(source) > _MAX_SOURCE_CHARS or _CONTROL_RE.search(source):
        raise ValueError(f"source too long or has control characters: {_preview(source)}")
    return source


def _preview(value: object) -> str:
    """A short repr for error messages (they go to logs, not to the LLM)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def family_of(source: str) -> str:
    """``"news:CoinTelegraph"`` -> ``"news"``."""
    return source.partition(":")[0]


@dataclass(frozen=True, slots=True)
class TextItem:
    """One dated piece of text.  ``ts``: UTC epoch seconds at which it was certainly public."""

    ts: float
    source: str
    title: str
    text: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _parse_ts(self.ts))
        _check_source(self.source)
        if not isinstance(self.title, str) or not isinstance(self.text, str):
            raise ValueError("title and text must be strings")
        if not (self.title.strip() or self.text.strip()):
            raise ValueError("title and text are both empty")

    @property
    def family(self) -> str:
        return family_of(self.source)

    @property
    def content(self) -> str:
        """What VADER reads."""
        return f"{self.title}\n{self.text}".strip()


class TextCorpus:
    """Items sorted by ``ts`` (stable, so equal stamps keep file order) with a numpy index."""

    def __init__(self, items: Iterable[TextItem], *, name: str = "<memory>") -> None:
        self.name = name
        self.items: tuple[TextItem, ...] = tuple(sorted(items, key=lambda it: it.ts))
        ts = np.fromiter((it.ts for it in self.items), dtype=np.float64, count=len(self.items))
        ts.setflags(write=False)
        self.ts: NDArray[np.float64] = ts
        self.families: tuple[str, ...] = tuple(sorted({it.family for it in self.items}))
        codes = {fam: i for i, fam in enumerate(self.families)}
        family_codes = np.fromiter((codes[it.family] for it in self.items), dtype=np.int64,
                                   count=len(self.items))
        family_codes.setflags(write=False)
        self.family_codes: NDArray[np.int64] = family_codes

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"TextCorpus({self.name!r}, {len(self)} items)"

    @property
    def start_ts(self) -> float | None:
        return float(self.ts[0]) if len(self.ts) else None

    @property
    def end_ts(self) -> float | None:
        return float(self.ts[-1]) if len(self.ts) else None

    def index_range(self, start: float, end: float) -> tuple[int, int]:
        """Indices ``[lo, hi)`` of the items with ``start < ts <= end``."""
        lo = int(np.searchsorted(self.ts, start, side="right"))
        hi = int(np.searchsorted(self.ts, end, side="right"))
        return lo, max(lo, hi)

    def items_between(self, start: float, end: float) -> tuple[TextItem, ...]:
        """Items with ``start < ts <= end``: nothing stamped after ``end``."""
        lo, hi = self.index_range(start, end)
        return self.items[lo:hi]

    @classmethod
    def load(cls, path: str | Path) -> TextCorpus:
        """Read a ``ts,source,title,text[,url]`` CSV (gzip if the name ends in ``.gz``).

        Raises ``ValueError`` naming the file, the data row (1 = first row after the header) and
        the column for any bad value, and the file for unreadable or header-less input.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
            if path.suffix == ".gz":
                raw = gzip.decompress(raw)
            content = raw.decode("utf-8-sig")
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: cannot read as UTF-8 CSV: {exc}") from exc
        return cls(_parse_rows(path, content), name=path.name)


def _parse_rows(path: Path, content: str) -> list[TextItem]:
    reader = csv.DictReader(io.StringIO(content, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as exc:
        raise ValueError(f"{path}: bad CSV header: {exc}") from exc
    if not header:
        raise ValueError(f"{path}: empty file, expected header {','.join(REQUIRED_COLUMNS)}")
    missing = [col for col in REQUIRED_COLUMNS if col not in header]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing} in header {header}")

    items: list[TextItem] = []
    row_no = 0
    while True:
        row_no += 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise ValueError(f"{path}: row {row_no}: malformed CSV: {exc}") from exc
        if None in row:  # DictReader files surplus fields under the key None
            raise ValueError(f"{path}: row {row_no}: more fields than the header has columns")

        values = {col: row.get(col) for col in REQUIRED_COLUMNS}
        for col, value in values.items():
            if value is None:
                raise _row_error(path, row_no, col, "missing (fewer fields than the header)")
        try:
            ts = _parse_ts(values["ts"])
        except ValueError as exc:
            raise _row_error(path, row_no, "ts", str(exc)) from None
        try:
            source = _check_source(values["source"])
        except ValueError as exc:
            raise _row_error(path, row_no, "source", str(exc)) from None
        title, text = values["title"] or "", values["text"] or ""
        if not (title.strip() or text.strip()):
            raise _row_error(path, row_no, "title", "title and text are both empty")
        items.append(TextItem(ts=ts, source=source, title=title, text=text))
    return items


def _row_error(path: Path, row: int, column: str, problem: str) -> ValueError:
    return ValueError(f"{path}: row {row}, column {column!r}: {problem}")


# ---------------------------------------------------------------------------------------------
# Scoring


def item_compound(item: TextItem, analyzer: PolarityAnalyzer) -> float:
    """VADER compound score of one item, clamped to -1..1 (NaN from a stand-in counts as 0)."""
    value = float(analyzer.polarity_scores(item.content)["compound"])
    if not math.isfinite(value):
        return 0.0
    return min(1.0, max(-1.0, value))


def describe_span(seconds: float) -> str:
    """``21600`` -> ``"6h"``; used in skip reasons the LLM reads."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}min"
    return f"{seconds:g}s"


def _label(score: float) -> Label:
    if score > DEAD_BAND:
        return "bullish"
    if score < -DEAD_BAND:
        return "bearish"
    return "neutral"


def _weighted_mean_sd(values: NDArray[np.float64],
                      weights: NDArray[np.float64]) -> tuple[float, float]:
    total = float(weights.sum())
    mean = float((weights * values).sum()) / total
    var = float((weights * (values - mean) ** 2).sum()) / total
    return mean, math.sqrt(max(var, 0.0))


def _score_family(family: str, ts: NDArray[np.float64], compound: NDArray[np.float64], *,
                  as_of: float, lookback_s: float, confidence_k: float) -> SentimentScore:
    if len(ts) == 0:
        return SentimentScore(
            source=family,
            skipped_reason=f"no items in the {describe_span(lookback_s)} before as_of",
        )
    half_life = lookback_s / 4.0
    weights = np.power(0.5, (as_of - ts) / half_life)
    mean, sd = _weighted_mean_sd(compound, weights)
    n_eff = float(weights.sum()) ** 2 / float((weights**2).sum())
    confidence = n_eff / (n_eff + confidence_k) * (1.0 - min(sd, 1.0))
    return SentimentScore(
        source=family,
        score=round(min(100.0, max(-100.0, 100.0 * mean)), 2),
        confidence=round(min(1.0, max(0.0, confidence)), 4),
        items=len(ts),
        newest_item_ts=float(ts.max()),
    )


def _aggregate(ts: NDArray[np.float64], compound: NDArray[np.float64],
               family_codes: NDArray[np.int64], family_names: Sequence[str],
               report: Sequence[str], *, as_of: float, lookback_s: float,
               confidence_k: float) -> AggregatedSentiment:
    """Score items already cut to the lookback window.  ``family_codes`` index ``family_names``;
    ``report`` lists the families to return, in order (missing ones come back skipped)."""
    # Second line of defence: callers cut the window, but a future item here would be a bug that
    # silently leaks the outcome into a backtest, so refuse loudly (not ``assert``: -O strips it).
    if len(ts) and (float(ts.max()) > as_of or float(ts.min()) <= as_of - lookback_s):
        raise RuntimeError("sentiment window contains items outside (as_of - lookback, as_of]")

    sources: list[SentimentScore] = []
    for family in report:
        if family in family_names:
            mask = family_codes == family_names.index(family)
            fam_ts, fam_c = ts[mask], compound[mask]
        else:
            fam_ts, fam_c = ts[:0], compound[:0]
        sources.append(_score_family(family, fam_ts, fam_c, as_of=as_of,
                                     lookback_s=lookback_s, confidence_k=confidence_k))

    used = [s for s in sources if s.items > 0 and s.confidence > 0]
    if not used:
        return AggregatedSentiment(sources=tuple(sources), lookback_s=lookback_s)
    conf = np.array([s.confidence for s in used])
    scores = np.array([s.score for s in used]) / 100.0
    mean, sd = _weighted_mean_sd(scores, conf)
    confidence = float((conf**2).sum() / conf.sum()) * (1.0 - min(sd, 1.0))
    score = round(min(100.0, max(-100.0, 100.0 * mean)), 2)
    return AggregatedSentiment(
        score=score,
        confidence=round(min(1.0, max(0.0, confidence)), 4),
        label=_label(score),
        sources=tuple(sources),
        lookback_s=lookback_s,
    )


def _check_window_args(as_of: float, lookback_s: float) -> None:
    if not math.isfinite(as_of):
        raise ValueError(f"as_of must be finite, got {as_of}")
    if not (math.isfinite(lookback_s) and lookback_s > 0):
        raise ValueError(f"lookback_s must be positive and finite, got {lookback_s}")


def _report_order(configured: Sequence[str], seen: Iterable[str]) -> tuple[str, ...]:
    """Configured families first (stable record shape), then any other family present."""
    extra = sorted(set(seen) - set(configured))
    return (*configured, *extra)


def score_items(items: Iterable[TextItem], *, as_of: float, lookback_s: float,
                analyzer: PolarityAnalyzer, families: Sequence[str] = DEFAULT_FAMILIES,
                confidence_k: float = CONFIDENCE_K) -> AggregatedSentiment:
    """Sentiment at ``as_of`` from the items with ``as_of - lookback_s < ts <= as_of``.

    Items outside that window (in particular any stamped after ``as_of``) are ignored, so a
    caller may pass a superset.  Every family in ``families`` appears in the result, skipped
    with a reason when it has no items; other families found in the window are appended.
    """
    _check_window_args(as_of, lookback_s)
    window = [it for it in items if as_of - lookback_s < it.ts <= as_of]
    names = sorted({it.family for it in window})
    codes = {fam: i for i, fam in enumerate(names)}
    return _aggregate(
        np.array([it.ts for it in window], dtype=np.float64),
        np.array([item_compound(it, analyzer) for it in window], dtype=np.float64),
        np.array([codes[it.family] for it in window], dtype=np.int64),
        names,
        _report_order(families, names),
        as_of=as_of, lookback_s=lookback_s, confidence_k=confidence_k,
    )


class RecordedSentiment:
    """Sentiment over a static corpus for replays: cheap enough to call on every decision tick.

    ``score(as_of)`` scores at ``as_of`` rounded down to a multiple of ``bucket_s`` and caches the
    result per bucket (LRU, ``cache_size`` entries); the rounding can only drop items younger
    than ``bucket_s``, never admit future ones.  Each item's VADER score is computed at most once
    (the corpus never changes) and the analyzer is built once, here.
    """

    def __init__(self, corpus: TextCorpus, lookback_s: float = DEFAULT_LOOKBACK_S, *,
                 bucket_s: float = DEFAULT_BUCKET_S, analyzer: PolarityAnalyzer | None = None,
                 families: Sequence[str] = DEFAULT_FAMILIES,
                 confidence_k: float = CONFIDENCE_K, cache_size: int = 4096) -> None:
        _check_window_args(0.0, lookback_s)
        if not (math.isfinite(bucket_s) and bucket_s > 0):
            raise ValueError(f"bucket_s must be positive and finite, got {bucket_s}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be >= 1, got {cache_size}")
        self.corpus = corpus
        self.lookback_s = float(lookback_s)
        self.bucket_s = float(bucket_s)
        self.confidence_k = confidence_k
        self.families = _report_order(families, corpus.families)
        self._analyzer = analyzer if analyzer is not None else make_analyzer()
        # NaN = not scored yet.
        self._compound = np.full(len(corpus), np.nan, dtype=np.float64)
        self._cache: OrderedDict[float, AggregatedSentiment] = OrderedDict()
        self._cache_size = cache_size
        # LangGraph may run nodes on worker threads; the LRU bookkeeping is not atomic.
        self._lock = threading.Lock()

    def effective_as_of(self, as_of: float) -> float:
        """The bucket start actually scored for ``as_of`` (never later than ``as_of``)."""
        return math.floor(as_of / self.bucket_s) * self.bucket_s

    def score(self, as_of: float) -> AggregatedSentiment:
        _check_window_args(as_of, self.lookback_s)
        key = self.effective_as_of(as_of)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None:
                self._cache.move_to_end(key)
                return cached
            result = self._score_uncached(key)
            self._cache[key] = result
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
            return result

    def _score_uncached(self, as_of: float) -> AggregatedSentiment:
        lo, hi = self.corpus.index_range(as_of - self.lookback_s, as_of)
        compound = self._compound[lo:hi]  # a view: filling it fills the memo
        for offset in np.flatnonzero(np.isnan(compound)):
            compound[offset] = item_compound(self.corpus.items[lo + int(offset)], self._analyzer)
        return _aggregate(
            self.corpus.ts[lo:hi], compound.copy(), self.corpus.family_codes[lo:hi],
            self.corpus.families, self.families,
            as_of=as_of, lookback_s=self.lookback_s, confidence_k=self.confidence_k,
        )


# The embedded corpus of real dated headlines and posts (data/news_social/PROVENANCE.md).
EMBEDDED_TEXTS = Path(__file__).resolve().parent.parent / "data" / "news_social" / "texts.csv.gz"


@lru_cache(maxsize=4)
def embedded_sentiment(lookback_s: float = DEFAULT_LOOKBACK_S) -> RecordedSentiment:
    """Sentiment over the embedded corpus: what replays, evals and benches score.  Loaded
    once per process and lookback (it reads a file: callers on an event loop use a thread)."""
    return RecordedSentiment(TextCorpus.load(EMBEDDED_TEXTS), lookback_s)
