"""The positions file (``[portfolio] positions``): CSV rows ``book,instrument,quantity
[,avg_price]``, read as columns and loaded into the portfolio in bulk.

:func:`read_positions` reads a *plain* file (printable ASCII without ``"`` or ``#``, a header
and rows of unquoted cells without padding) with pyarrow's CSV reader: no Python object per
row, each distinct book and instrument name decoded once. Any other file goes to
:func:`load_positions`, the row reader (the csv module), which takes everything the format
allows (quoted cells, comments, padded cells, UTF-8) and names the line and column of the first
bad cell: a bad file is always reported by the row reader, with the message it always gave.

:func:`load_book` resolves each distinct instrument once (the registry parses its name) and
adds the rows in one bulk (:meth:`engine.state.Portfolio.add_positions`), a strategy's row as
its legs' rows in its place. When a row would be refused (an unknown instrument, an index, a
bad book name or strategy), the file is loaded row by row instead, which stops at the first
such row and names its line, as it always did.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
from pyarrow import csv as pa_csv

from engine.errors import ConfigError
from engine.instruments import InstrumentRegistry
from engine.risk.strategies import Strategy, StrategyBook, parse_strategy
from engine.runtime.shard_gate import ShardGate
from engine.state import Portfolio, PositionBulk, PositionsError

__all__ = ["Position", "PositionColumns", "load_book", "load_positions", "read_positions"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

_HEADERS: Final = {
    b"book,instrument,quantity": ("book", "instrument", "quantity"),
    b"book,instrument,quantity,avg_price": ("book", "instrument", "quantity", "avg_price"),
}
_NAMES: Final = ("book", "instrument")  # the columns of names; the others are numbers
_MAX_CELL: Final = 256  # a longer cell goes to the row reader (the csv module's own limit)


class Position(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One row of the positions file."""

    book: str
    instrument: str
    quantity: float
    avg_price: float | None = None
    line: int = 0
    """Line of the positions file, for error messages."""


@dataclass(frozen=True, slots=True)
class PositionColumns:
    """The positions file's rows as columns; names coded by their first appearance.

    Attributes:
        books, instruments: the distinct names, in the order they first appear.
        book, instrument: each row's name, a row of ``books`` / ``instruments``.
        quantity: each row's quantity; ``avg_price``: NaN where none is given.
        line: each row's line in the file (1-based), for error messages.
    """

    books: list[str]
    book: I64
    instruments: list[str]
    instrument: I64
    quantity: F64
    avg_price: F64
    line: I64

    @classmethod
    def from_rows(cls, rows: Sequence[Position]) -> PositionColumns:
        """The columns of rows read by :func:`load_positions`."""
        books: dict[str, int] = {}
        names: dict[str, int] = {}
        book = np.array([books.setdefault(r.book, len(books)) for r in rows], np.int64)
        inst = np.array([names.setdefault(r.instrument, len(names)) for r in rows], np.int64)
        return cls(
            books=list(books),
            book=book,
            instruments=list(names),
            instrument=inst,
            quantity=np.array([r.quantity for r in rows], np.float64),
            avg_price=np.array(
                [math.nan if r.avg_price is None else r.avg_price for r in rows], np.float64
            ),
            line=np.array([r.line for r in rows], np.int64),
        )


def read_positions(path: Path) -> PositionColumns:
    """Read a positions CSV (header ``book,instrument,quantity[,avg_price]``) as columns.

    Raises:
        ConfigError: unreadable file, a bad header, or a bad row (named by line and column).
    """
    try:
        raw = path.read_bytes()
    except OSError:
        raw = b""  # the row reader says why
    columns = _plain(raw)
    return columns if columns is not None else PositionColumns.from_rows(load_positions(path))


def _plain(raw: bytes) -> PositionColumns | None:
    """The columns of a plain file whose every cell is good, read by pyarrow's CSV reader;
    None for any other file (the row reader then reads it, or names its first bad cell)."""
    if not raw or b'"' in raw or b"#" in raw or not raw.isascii():
        return None
    data = np.frombuffer(raw, dtype=np.uint8)
    if int(np.count_nonzero(data < 0x20)) != raw.count(b"\n"):  # control bytes, CR
        return None
    nl = np.flatnonzero(data == ord("\n"))
    starts = np.concatenate(([0], nl + 1))
    ends = np.concatenate((nl, [data.size]))
    lines = np.flatnonzero(ends > starts)  # an empty line is no row (the csv module's [])
    if not lines.size or (header := _HEADERS.get(raw[starts[lines[0]] : ends[lines[0]]])) is None:
        return None
    table = _table(memoryview(raw)[ends[lines[0]] :], header)
    try:
        return _columns(table, header, lines[1:] + 1)
    finally:
        del table
        pa.default_memory_pool().release_unused()  # the reader's buffers, back to the system


def _columns(table: pa.Table | None, header: tuple[str, ...], line: I64) -> PositionColumns | None:
    """The columns of a table read by :func:`_table`, each row at its ``line``; None unless
    every cell is good."""
    if table is None or table.num_rows != line.size:
        return None
    book, book_code = _coded(table.column("book"))
    names, inst_code = _coded(table.column("instrument"))
    quantity, given_qty = _numbers(table.column("quantity"))
    avg, given = (
        _numbers(table.column("avg_price"))
        if "avg_price" in header
        else (np.full(table.num_rows, np.nan), np.zeros(table.num_rows, dtype=bool))
    )
    if not (
        _clean(book)
        and _clean(names)
        and np.all(given_qty)
        and np.all(np.isfinite(quantity))
        and np.all(np.isfinite(avg[given]) & (avg[given] > 0.0))
    ):
        return None
    return PositionColumns(book, book_code, names, inst_code, quantity.copy(), avg.copy(), line)


def _table(body: memoryview, header: tuple[str, ...]) -> pa.Table | None:
    """The rows after the header as a table (names as strings, numbers as float64, an empty
    cell a null); None when a row has another number of cells or a number does not parse."""
    try:
        return pa_csv.read_csv(
            pa.BufferReader(body),
            read_options=pa_csv.ReadOptions(column_names=list(header)),
            parse_options=pa_csv.ParseOptions(quote_char=False, ignore_empty_lines=True),
            convert_options=pa_csv.ConvertOptions(
                column_types={c: pa.string() if c in _NAMES else pa.float64() for c in header},
                null_values=[""],
                strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:
        return None


def _coded(column: pa.ChunkedArray) -> tuple[list[str], I64]:
    """The distinct cells of a column of names, in the order they first appear, and each
    cell's number among them."""
    coded = column.combine_chunks().dictionary_encode()
    return coded.dictionary.to_pylist(), coded.indices.to_numpy().astype(np.int64)


def _numbers(column: pa.ChunkedArray) -> tuple[F64, npt.NDArray[np.bool_]]:
    """A column of numbers (NaN where a cell is empty) and where a cell is given."""
    array = column.combine_chunks()
    values = array.to_numpy(zero_copy_only=False)
    return values, ~array.is_null().to_numpy(zero_copy_only=False)


def _clean(names: list[str]) -> bool:
    """Whether every name is given, unpadded and within the csv module's cell size."""
    return all(0 < len(n) <= _MAX_CELL and n == n.strip() for n in names)


def load_positions(path: Path) -> list[Position]:
    """Read a positions CSV row by row: header ``book,instrument,quantity[,avg_price]``.

    Raises:
        ConfigError: unreadable file, a bad header, or a bad row (named by line and column).
    """
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(source, f"cannot read: {exc}") from exc
    reader = csv.reader(text.splitlines())
    header: list[str] | None = None
    out: list[Position] = []
    rows = enumerate(reader, start=1)
    while True:
        try:
            lineno, row = next(rows)
        except StopIteration:
            break
        except csv.Error as exc:  # a field over the csv module's limit (found by fuzzing)
            raise ConfigError(source, f"line {reader.line_num}: {exc}") from None
        if not row or row[0].lstrip().startswith("#"):
            continue
        cells = [c.strip() for c in row]
        if header is None:
            header = cells
            if header[:3] != ["book", "instrument", "quantity"] or header[3:] not in (
                [],
                ["avg_price"],
            ):
                raise ConfigError(
                    source,
                    f"line {lineno}: header must be book,instrument,quantity[,avg_price], "
                    f"got {','.join(header)}",
                )
            continue
        out.append(_row(source, lineno, cells, len(header)))
    if header is None:
        raise ConfigError(source, "empty file: needs the header book,instrument,quantity")
    return out


def _row(source: str, lineno: int, cells: list[str], n_cols: int) -> Position:
    if len(cells) != n_cols:
        raise ConfigError(source, f"line {lineno}: {len(cells)} columns, expected {n_cols}")
    book, instrument, qty_s = cells[0], cells[1], cells[2]
    if not book:
        raise ConfigError(source, f"line {lineno}, column book: empty")
    if not instrument:
        raise ConfigError(source, f"line {lineno}, column instrument: empty")
    quantity = _number(source, lineno, "quantity", qty_s)
    avg: float | None = None
    if len(cells) > 3 and cells[3]:
        avg = _number(source, lineno, "avg_price", cells[3])
        if avg <= 0.0:
            raise ConfigError(source, f"line {lineno}, column avg_price: must be > 0")
    return Position(book=book, instrument=instrument, quantity=quantity, avg_price=avg, line=lineno)


def _number(source: str, lineno: int, column: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(
            source, f"line {lineno}, column {column}: not a number: {text!r}"
        ) from None
    if not math.isfinite(value):
        raise ConfigError(source, f"line {lineno}, column {column}: not finite: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class _Bulk:
    """The rows to add in one bulk (strategies expanded into their legs) and the strategy
    holdings, in file order."""

    rows: PositionBulk
    holdings: list[tuple[str, Strategy, float, float | None]]


def load_book(
    path: Path | None,
    portfolio: Portfolio,
    registry: InstrumentRegistry,
    gate: ShardGate | None = None,
) -> StrategyBook:
    """The positions file (:func:`read_positions`) into ``portfolio``; the strategy holdings
    it names. With a shard's ``gate``, rows of other shards' underlyings are skipped (counted
    in its ``foreign_positions``).

    Raises:
        ConfigError: a bad row (its line), an unknown instrument or strategy.
    """
    strategies = StrategyBook(registry.get)
    if path is None:
        return strategies
    columns = read_positions(path)
    if gate is not None:
        columns = _owned_rows(columns, gate)
    bulk = _resolve(columns, registry)
    try:
        if bulk is None:
            raise PositionsError(0, "a row is refused")
        portfolio.add_positions(bulk.rows)
    except PositionsError:  # nothing was added: row by row, to name the line at fault
        _load_rows(columns, str(path), portfolio, strategies)
        return strategies
    for book, strategy, quantity, avg in bulk.holdings:
        strategies.holding(book, strategy).add(quantity, avg)
    return strategies


def _owned_rows(columns: PositionColumns, gate: ShardGate) -> PositionColumns:
    """The rows of the shard's underlyings, and of instruments it cannot name (the load then
    refuses them by their line); the others counted in ``gate.foreign_positions``. Each
    distinct instrument is looked at once; the names no row keeps are dropped."""
    owned = np.array([gate.owns(n) for n in columns.instruments], dtype=np.bool_)
    keep = owned[columns.instrument]
    skipped = int(keep.size - np.count_nonzero(keep))
    if not skipped:
        return columns
    gate.foreign_positions += skipped
    books, book = np.unique(columns.book[keep], return_inverse=True)
    insts, inst = np.unique(columns.instrument[keep], return_inverse=True)
    return PositionColumns(
        books=[columns.books[b] for b in books.tolist()],
        book=book.astype(np.int64),
        instruments=[columns.instruments[i] for i in insts.tolist()],
        instrument=inst.astype(np.int64),
        quantity=columns.quantity[keep],
        avg_price=columns.avg_price[keep],
        line=columns.line[keep],
    )


def _resolve(columns: PositionColumns, registry: InstrumentRegistry) -> _Bulk | None:
    """Each distinct instrument resolved once, each strategy row replaced by its legs' rows;
    None when a name is unknown or a strategy bad."""
    names = columns.instruments
    # None: a strategy (its rows become its legs')
    insts = registry.resolve("" if ":" in n else n for n in names)
    if any(i is None and ":" not in n for i, n in zip(insts, names, strict=True)):
        return None
    strategy_rows = np.flatnonzero(
        np.array([":" in n for n in columns.instruments], dtype=np.bool_)[columns.instrument]
    )
    book, inst = columns.book, columns.instrument
    quantity, price = columns.quantity, columns.avg_price
    holdings: list[tuple[str, Strategy, float, float | None]] = []
    if strategy_rows.size:
        legs: dict[int, list[tuple[int, float]]] = {}
        for r in strategy_rows.tolist():
            try:
                strategy = parse_strategy(columns.instruments[inst[r]], registry.get)
            except ValueError:
                return None
            legs[r] = []
            for leg in strategy.legs:
                leg_inst = registry.get(leg.instrument.name)
                if leg_inst is None:
                    return None
                legs[r].append((len(insts), leg.ratio))
                insts.append(leg_inst)
            p = float(price[r])
            holdings.append((columns.books[book[r]], strategy, float(quantity[r]),
                             None if math.isnan(p) else p))  # fmt: skip
        book, inst, quantity, price = _expand(book, inst, quantity, price, legs)
    if not strategy_rows.size:
        held = [i for i in insts if i is not None]
        return _Bulk(PositionBulk(columns.books, book, held, inst, quantity, price), holdings)
    used, inst = np.unique(inst, return_inverse=True)  # the strategies' own names go
    held = [i for c in used.tolist() if (i := insts[c]) is not None]
    if len(held) != used.size:
        return None
    rows = PositionBulk(columns.books, book, held, inst.astype(np.int64), quantity, price)
    return _Bulk(rows, holdings)


def _expand(
    book: I64, inst: I64, quantity: F64, price: F64, legs: dict[int, list[tuple[int, float]]]
) -> tuple[I64, I64, F64, F64]:
    """The rows with row ``r`` of ``legs`` replaced by one row per leg (instrument number,
    ratio): quantity x ratio, no price, as a strategy's position adds its legs."""
    counts = np.ones(book.size, dtype=np.int64)
    for r, parts in legs.items():
        counts[r] = len(parts)
    source = np.repeat(np.arange(book.size), counts)
    book, inst = book[source], inst[source]
    quantity, price = quantity[source], price[source]
    starts = np.cumsum(counts) - counts
    for r, parts in legs.items():
        for j, (code, ratio) in enumerate(parts):
            k = starts[r] + j
            inst[k] = code
            quantity[k] = quantity[k] * ratio
            price[k] = math.nan
    return book, inst, quantity, price


def _load_rows(
    columns: PositionColumns, source: str, portfolio: Portfolio, strategies: StrategyBook
) -> None:
    """Row by row, as the daemon always did: stops at the first refused row, by its line."""
    for k in range(columns.quantity.size):
        book = columns.books[columns.book[k]]
        name = columns.instruments[columns.instrument[k]]
        quantity, p = float(columns.quantity[k]), float(columns.avg_price[k])
        avg = None if math.isnan(p) else p
        try:
            if ":" in name:  # a strategy's text form
                strategies.add_position(portfolio, book, name, quantity, avg)
            else:
                portfolio.add_position(book, name, quantity, avg)
        except ValueError as exc:
            raise ConfigError(source, f"line {columns.line[k]}: {exc}") from exc
