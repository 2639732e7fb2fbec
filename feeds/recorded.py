"""Loader and validator for the recorded-markets interchange format.

This module owns reading a dataset directory (``markets.csv``, ``prices.csv``, optional
``book.csv``; each may be ``.csv.gz``) into immutable numpy-backed records, and rejecting bad
input with one-line :class:`DatasetError` messages such as::

    prices.csv.gz row 17: ts 1766723460.0 is not after the previous row (unsorted)

"row N" is the line number in the file, the header being line 1 (so the first data row is
row 2).  Blank lines are ignored but still counted, so the number matches what an editor shows.

Choices the format leaves open:

* Columns are matched after stripping whitespace and lower-casing; unknown columns are ignored.
* ``outcome`` is read case-insensitively (``Up`` == ``up``).
* An empty ``up_bid``/``up_ask``/``down_bid``/``down_ask`` cell means "no level on that side"
  and is kept as NaN (the replay turns it into ``None``); a value must lie in 0..1.  A price of
  exactly 0 also means "no level" (no order can rest at 0; recorders such as the embedded one
  write 0 with size 0 for an empty side), so it is loaded as NaN together with its size.
  Empty size cells are NaN too; a size must be >= 0.
* Book rows repeating a ts within a market are accepted (sub-second polls stamped to the
  second); the last such row in the file is the book at that ts and the earlier ones are
  dropped.  A ts going backwards is an error.
* An empty ``volume`` cell is NaN (unknown, not zero); a ``volume`` column that is entirely empty
  counts as absent.
* Price rows must be strictly increasing per asset in file order (a repeat is an error); book
  rows must not go back in time within a market (rows of different markets may interleave).
* Without an ``asset`` column (or with an empty cell) a price row belongs to the only asset in
  ``markets.csv``; if there are several assets that is an error.

Nothing here interprets the data (no derived price_to_beat or outcome): that is the replay's job.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, NoReturn

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from core.errors import UserError

Outcome = Literal["up", "down"]
FloatArray = NDArray[np.float64]
ObjectArray = NDArray[np.object_]

# The real dataset embedded in the repository (see its PROVENANCE.md); not shipped in the wheel.
EMBEDDED_DATASET_DIR = (
    Path(__file__).resolve().parents[1] / "data" / "recorded" / "pm15m_20251226_coinbase1m"
)

_MARKETS_REQUIRED = ("market_id", "asset", "start_ts", "end_ts")
_PRICES_REQUIRED = ("ts", "price")
_BOOK_PRICES = ("up_bid", "up_ask", "down_bid", "down_ask")
_BOOK_SIZES = ("up_bid_size", "up_ask_size", "down_bid_size", "down_ask_size")
_BOOK_REQUIRED = ("market_id", "ts", *_BOOK_PRICES)
_TEXT_COLUMNS = frozenset({"market_id", "asset", "outcome", "source"})
_FIELD_COUNT_ERROR = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


class DatasetError(UserError):
    """The dataset is missing or malformed; the message is one line naming file and row."""


@dataclass(frozen=True, slots=True)
class RecordedMarket:
    """One window as ``markets.csv`` states it (nothing derived)."""

    market_id: str
    asset: str
    start_ts: float
    end_ts: float
    price_to_beat: float | None = None
    outcome: Outcome | None = None
    fee_rate: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_ts - self.start_ts


@dataclass(frozen=True, eq=False, slots=True)
class PriceSeries:
    """One asset's price path, ``ts`` strictly increasing."""

    asset: str
    ts: FloatArray
    price: FloatArray
    # None when prices.csv has no volume column (NaN cells = unknown for that row).
    volume: FloatArray | None
    # Per-row source label ('' where the cell was empty); None when there is no source column.
    source: ObjectArray | None

    def __len__(self) -> int:
        return len(self.ts)

    def index_at(self, t: float) -> int:
        """Index of the last row with ``ts <= t``, or -1 if none."""
        return int(np.searchsorted(self.ts, t, side="right")) - 1


@dataclass(frozen=True, eq=False, slots=True)
class BookSeries:
    """One market's best bid/ask over time, ``ts`` strictly increasing; NaN = no value."""

    market_id: str
    ts: FloatArray
    up_bid: FloatArray
    up_ask: FloatArray
    down_bid: FloatArray
    down_ask: FloatArray
    up_bid_size: FloatArray
    up_ask_size: FloatArray
    down_bid_size: FloatArray
    down_ask_size: FloatArray

    def __len__(self) -> int:
        return len(self.ts)

    def index_at(self, t: float) -> int:
        """Index of the last row with ``ts <= t``, or -1 if none."""
        return int(np.searchsorted(self.ts, t, side="right")) - 1


@dataclass(frozen=True, eq=False, slots=True)
class RecordedDataset:
    """A loaded dataset directory: markets in start order, price paths, per-market books."""

    name: str
    path: Path
    markets: tuple[RecordedMarket, ...]
    prices: Mapping[str, PriceSeries]
    books: Mapping[str, BookSeries]
    has_book: bool
    _by_id: Mapping[str, RecordedMarket] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_id", MappingProxyType({m.market_id: m for m in self.markets}))

    def market(self, market_id: str) -> RecordedMarket:
        """The market with this id (KeyError if absent)."""
        return self._by_id[market_id]

    def book(self, market_id: str) -> BookSeries | None:
        """The market's book rows, or None when book.csv has none for it."""
        return self.books.get(market_id)


# --- reading ------------------------------------------------------------------------------


def _find_file(directory: Path, stem: str) -> Path | None:
    plain = directory / f"{stem}.csv"
    gz = directory / f"{stem}.csv.gz"
    if plain.is_file() and gz.is_file():
        # Two candidates could disagree; picking one silently would hide that.
        raise DatasetError(f"{directory}: both {plain.name} and {gz.name} exist; keep one")
    if plain.is_file():
        return plain
    return gz if gz.is_file() else None


def _require_file(directory: Path, stem: str) -> Path:
    found = _find_file(directory, stem)
    if found is None:
        raise DatasetError(
            f"{directory}: {stem}.csv missing (expected {stem}.csv or {stem}.csv.gz)"
        )
    return found


class _Table:
    """A CSV file read for validation: normalised columns plus each row's line number."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        try:
            header = pd.read_csv(path, nrows=0)
        except pd.errors.EmptyDataError:
            raise DatasetError(f"{self.name}: file is empty (no header)") from None
        except Exception as exc:  # gzip, encoding and parser errors all mean "unreadable"
            raise DatasetError(f"{self.name}: cannot read: {_one_line(exc)}") from None
        raw_by_norm: dict[str, str] = {}
        for raw in header.columns:
            raw_by_norm.setdefault(str(raw).strip().lower(), str(raw))
        # Text columns stay text even when every value looks numeric (e.g. ids "1", "2").
        dtypes = {raw: str for norm, raw in raw_by_norm.items() if norm in _TEXT_COLUMNS}
        try:
            with warnings.catch_warnings():
                # pandas only warns (and drops data) when the first data row is longer than
                # the header; that is a malformed file, not something to read around.
                warnings.simplefilter("error", pd.errors.ParserWarning)
                df = pd.read_csv(
                    path,
                    dtype=dtypes,
                    # Otherwise a first row with one field too many silently becomes the index
                    # and shifts every column.
                    index_col=False,
                    keep_default_na=False,
                    na_values=[""],
                    skip_blank_lines=False,
                )
        except pd.errors.ParserWarning:
            raise DatasetError(f"{self.name} row 2: more fields than the header") from None
        except Exception as exc:
            found = _FIELD_COUNT_ERROR.search(str(exc))
            if found:
                want, line, saw = found.groups()
                raise DatasetError(
                    f"{self.name} row {line}: {saw} fields where the header has {want}"
                ) from None
            raise DatasetError(f"{self.name}: cannot read: {_one_line(exc)}") from None
        df = df[[raw_by_norm[n] for n in raw_by_norm]]
        df.columns = pd.Index(list(raw_by_norm))
        # Data row k (0-based) sits on line k + 2; blank lines are dropped but keep numbering.
        lines = np.arange(2, len(df) + 2)
        blank = df.isna().all(axis=1).to_numpy() if len(df.columns) else np.zeros(0, bool)
        if blank.any():
            df = df.loc[~blank].reset_index(drop=True)
            lines = lines[~blank]
        self.df = df
        self.lines = lines

    def __len__(self) -> int:
        return len(self.df)

    def has(self, col: str) -> bool:
        return col in self.df.columns

    def fail(self, pos: int, problem: str) -> NoReturn:
        raise DatasetError(f"{self.name} row {int(self.lines[pos])}: {problem}")

    def require(self, cols: tuple[str, ...]) -> None:
        for col in cols:
            if col not in self.df.columns:
                present = ", ".join(self.df.columns) or "none"
                raise DatasetError(
                    f"{self.name} row 1: required column '{col}' missing (columns: {present})"
                )

    def numbers(self, col: str, *, required: bool) -> FloatArray:
        """The column as float64; empty cells are NaN (an error when ``required``)."""
        if col not in self.df.columns:
            return np.full(len(self.df), np.nan)
        series = self.df[col]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(
            series.dtype
        ):
            values = series.to_numpy(dtype=np.float64, na_value=np.nan, copy=True)
            empty = np.isnan(values)
        else:
            # pandas left the column as text: some cell is not a plain number; find which.
            raw = series.to_numpy(dtype=object)
            values = np.full(len(raw), np.nan)
            empty = np.zeros(len(raw), dtype=bool)
            for i, cell in enumerate(raw):
                text = "" if cell is None or cell is pd.NA or cell != cell else str(cell).strip()
                if not text:
                    empty[i] = True
                    continue
                number = _parse_float(text)
                if number is None:
                    self.fail(i, f"{col} {text!r} is not a number")
                values[i] = number
                if not math.isfinite(number):
                    self.fail(i, f"{col} {text!r} is not finite")
        bad = np.flatnonzero(~empty & ~np.isfinite(values))
        if len(bad):
            self.fail(int(bad[0]), f"{col} {_num(values[bad[0]])} is not finite")
        if required:
            missing = np.flatnonzero(empty)
            if len(missing):
                self.fail(int(missing[0]), f"{col} is empty")
        return values

    def texts(self, col: str, *, required: bool) -> ObjectArray:
        """The column as stripped strings ('' for empty; an error when ``required``)."""
        if col not in self.df.columns:
            return np.full(len(self.df), "", dtype=object)
        out = self.df[col].fillna("").astype(str).str.strip().to_numpy(dtype=object, copy=True)
        if required:
            missing = np.flatnonzero(out == "")
            if len(missing):
                self.fail(int(missing[0]), f"{col} is empty")
        return out


def _parse_float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _first(mask: NDArray[np.bool_]) -> int | None:
    hits = np.flatnonzero(mask)
    return int(hits[0]) if len(hits) else None


def _check_increasing(
    table: _Table,
    ts: FloatArray,
    group_codes: NDArray[np.intp],
    describe: list[str],
    *,
    allow_equal: bool,
) -> NDArray[np.bool_]:
    """Fail on the first row (in file order) whose ts is not after its group's previous row.

    With ``allow_equal`` a repeated ts is accepted and the returned mask marks the earlier rows
    of each repeat (the ones a later row at the same ts supersedes).
    """
    superseded = np.zeros(len(ts), dtype=bool)
    if len(ts) < 2:
        return superseded
    order = np.argsort(group_codes, kind="stable")
    same_group = group_codes[order][1:] == group_codes[order][:-1]
    step = np.diff(ts[order])
    bad = np.flatnonzero(same_group & (step < 0 if allow_equal else ~(step > 0)))
    if len(bad):
        positions = order[bad + 1]
        k = int(np.argmin(positions))
        pos = int(positions[k])
        kind = "duplicate" if step[bad[k]] == 0 else "unsorted"
        table.fail(
            pos,
            f"ts {_num(ts[pos])} is not after the previous {describe[group_codes[pos]]} ({kind})",
        )
    if allow_equal:
        superseded[order[np.flatnonzero(same_group & (step == 0))]] = True
    return superseded


def _num(x: float | np.floating) -> str:
    return repr(float(x))


def _load_markets(path: Path) -> tuple[RecordedMarket, ...]:
    t = _Table(path)
    t.require(_MARKETS_REQUIRED)
    if not len(t):
        raise DatasetError(f"{t.name}: no data rows")
    ids = t.texts("market_id", required=True)
    assets = t.texts("asset", required=True)
    start = t.numbers("start_ts", required=True)
    end = t.numbers("end_ts", required=True)
    ptb = t.numbers("price_to_beat", required=False)
    outcomes = np.char.lower(t.texts("outcome", required=False).astype(str))
    fee = t.numbers("fee_rate", required=False)

    seen: dict[str, int] = {}
    for pos, mid in enumerate(ids):
        if mid in seen:
            t.fail(pos, f"duplicate market_id {mid!r} (first on row {int(t.lines[seen[mid]])})")
        seen[mid] = pos
    if (i := _first(~(start < end))) is not None:
        t.fail(i, f"start_ts {_num(start[i])} is not before end_ts {_num(end[i])}")
    if (i := _first(ptb <= 0)) is not None:
        t.fail(i, f"price_to_beat {_num(ptb[i])} must be > 0")
    if (i := _first(~np.isin(outcomes, ["up", "down", ""]))) is not None:
        raw = t.texts("outcome", required=False)[i]
        t.fail(i, f"outcome {raw!r} is not up, down or empty")
    if (i := _first((fee < 0) | (fee > 1))) is not None:
        t.fail(i, f"fee_rate {_num(fee[i])} is outside 0..1")

    markets = [
        RecordedMarket(
            market_id=str(ids[i]),
            asset=str(assets[i]),
            start_ts=float(start[i]),
            end_ts=float(end[i]),
            price_to_beat=None if math.isnan(ptb[i]) else float(ptb[i]),
            outcome="up" if outcomes[i] == "up" else "down" if outcomes[i] == "down" else None,
            fee_rate=None if math.isnan(fee[i]) else float(fee[i]),
        )
        for i in range(len(t))
    ]
    markets.sort(key=lambda m: (m.start_ts, m.market_id))
    return tuple(markets)


def _load_prices(path: Path, market_assets: list[str]) -> dict[str, PriceSeries]:
    t = _Table(path)
    t.require(_PRICES_REQUIRED)
    if not len(t):
        raise DatasetError(f"{t.name}: no data rows")
    ts = t.numbers("ts", required=True)
    price = t.numbers("price", required=True)
    if (i := _first(price <= 0)) is not None:
        t.fail(i, f"price {_num(price[i])} must be > 0")
    raw_volume = t.numbers("volume", required=False)
    if (i := _first(raw_volume < 0)) is not None:
        t.fail(i, f"volume {_num(raw_volume[i])} is negative")
    volume = None if np.isnan(raw_volume).all() else raw_volume
    source = t.texts("source", required=False) if t.has("source") else None

    assets = t.texts("asset", required=False)
    if (i := _first(assets == "")) is not None:
        if len(market_assets) != 1:
            listed = ", ".join(market_assets)
            where = "no asset column" if not t.has("asset") else "asset is empty"
            t.fail(i, f"{where} but markets.csv has several assets ({listed})")
        assets[assets == ""] = market_assets[0]
    codes, names = pd.factorize(assets)
    names_list = [str(n) for n in names]
    # Only name the asset in the message when there is more than one to confuse.
    describe = [f"{n} row" if len(names_list) > 1 else "row" for n in names_list]
    _check_increasing(t, ts, codes, describe, allow_equal=False)

    out: dict[str, PriceSeries] = {}
    for code, asset in enumerate(names_list):
        sel = np.flatnonzero(codes == code)
        out[asset] = PriceSeries(
            asset=asset,
            ts=np.ascontiguousarray(ts[sel]),
            price=np.ascontiguousarray(price[sel]),
            volume=None if volume is None else np.ascontiguousarray(volume[sel]),
            source=None if source is None else source[sel],
        )
    return out


def _load_book(path: Path, market_ids: set[str]) -> dict[str, BookSeries]:
    t = _Table(path)
    t.require(_BOOK_REQUIRED)
    ids = t.texts("market_id", required=True)
    if (i := _first(~pd.Series(ids).isin(market_ids).to_numpy())) is not None:
        t.fail(i, f"unknown market_id {ids[i]!r} (not in markets.csv)")
    ts = t.numbers("ts", required=True)
    cols: dict[str, FloatArray] = {}
    for col in _BOOK_PRICES:
        v = t.numbers(col, required=False)
        if (i := _first((v < 0) | (v > 1))) is not None:
            t.fail(i, f"{col} {_num(v[i])} is outside 0..1")
        cols[col] = v
    for col in _BOOK_SIZES:
        v = t.numbers(col, required=False)
        if (i := _first(v < 0)) is not None:
            t.fail(i, f"{col} {_num(v[i])} is negative")
        cols[col] = v
    # No order can rest at 0 (the venue's smallest tick is 0.001); recorders write 0 (with size
    # 0) for an empty side, and a replay must not let anyone buy at that "price".
    for col in _BOOK_PRICES:
        empty_side = cols[col] == 0
        cols[col][empty_side] = np.nan
        cols[f"{col}_size"][empty_side] = np.nan
    codes, names = pd.factorize(ids)
    names_list = [str(n) for n in names]
    # The embedded recording has rows sharing a second (sub-second polls stamped to the
    # second); the last one is the book as of that second, so earlier repeats are dropped.
    superseded = _check_increasing(
        t, ts, codes, [f"row of market {n!r}" for n in names_list], allow_equal=True
    )
    keep = ~superseded
    codes, ts = codes[keep], ts[keep]
    cols = {c: v[keep] for c, v in cols.items()}

    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(names_list) + 1))
    sorted_ts = ts[order]
    sorted_cols = {c: v[order] for c, v in cols.items()}
    out: dict[str, BookSeries] = {}
    for code, mid in enumerate(names_list):
        a, b = int(bounds[code]), int(bounds[code + 1])
        out[mid] = BookSeries(
            market_id=mid,
            ts=sorted_ts[a:b],
            up_bid=sorted_cols["up_bid"][a:b],
            up_ask=sorted_cols["up_ask"][a:b],
            down_bid=sorted_cols["down_bid"][a:b],
            down_ask=sorted_cols["down_ask"][a:b],
            up_bid_size=sorted_cols["up_bid_size"][a:b],
            up_ask_size=sorted_cols["up_ask_size"][a:b],
            down_bid_size=sorted_cols["down_bid_size"][a:b],
            down_ask_size=sorted_cols["down_ask_size"][a:b],
        )
    return out


def load_dataset(path: str | Path) -> RecordedDataset:
    """Read and validate a dataset directory; raises :class:`DatasetError` on any problem."""
    directory = Path(path)
    if not directory.is_dir():
        raise DatasetError(f"dataset directory {str(directory)!r} does not exist")
    markets_path = _require_file(directory, "markets")
    prices_path = _require_file(directory, "prices")
    book_path = _find_file(directory, "book")

    markets = _load_markets(markets_path)
    market_assets = sorted({m.asset for m in markets})
    prices = _load_prices(prices_path, market_assets)
    books = {} if book_path is None else _load_book(book_path, {m.market_id for m in markets})
    return RecordedDataset(
        name=directory.resolve().name,
        path=directory,
        markets=markets,
        prices=MappingProxyType(prices),
        books=MappingProxyType(books),
        has_book=book_path is not None,
    )
