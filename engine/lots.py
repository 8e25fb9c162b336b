"""The portfolio's positions: lots (a book's net position in one instrument), the fills that move
them (de-duplicated; those on unknown instruments kept), expiries settled, and the groups whose
sums the lots' contributions move.

A group is a (book, underlying, expiry) triple; the sums of each group, each (book, underlying)
pair and each book are kept compensated (high part + Neumaier compensation, ``hi`` + ``lo``)
by the kernels the portfolio's cycle runs (:mod:`engine.state`).
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.columns import Columns, Specs, distinct
from engine.events import Fill
from engine.instruments import Instrument, Kind
from engine.market import MarketData

__all__ = [
    "FILL_IDS_KEPT",
    "Groups",
    "LotIndex",
    "LotState",
    "Lots",
    "PositionBulk",
    "PositionsError",
    "SettledLot",
    "expiry_label",
]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

FILL_IDS_KEPT = 1_000_000
"""Fill ids remembered to recognise redelivered fills (about 100 MB at most)."""

LOT_SPECS: Specs = {
    "inst": (np.int64, 0, 0),
    "group": (np.int64, 0, 0),
    "qty": (np.float64, 0.0, 0),
    "cost": (np.float64, 0.0, 0),
    "has_cost": (np.bool_, True, 0),
    "next_lot": (np.int64, -1, 0),  # the next older lot of the same instrument
    "contrib": (np.float64, 0.0, kernels.N_AGG),
    "book": (np.int64, 0, 0),  # its book: a row of Lots.book_names (not a kernel's column)
}
"""The lots' columns (:class:`engine.kernels.LotColumns`, and :data:`HOST_LOT_COLUMNS`)."""
HOST_LOT_COLUMNS = frozenset({"book"})
"""Lot columns that only Python reads (no kernel takes them)."""
_SUM_SPECS: Specs = {
    "hi": (np.float64, 0.0, kernels.N_AGG),
    "lo": (np.float64, 0.0, kernels.N_AGG),
}
_GROUP_SPECS: Specs = {
    **_SUM_SPECS,
    "bu": (np.int64, 0, 0),
    "book": (np.int64, 0, 0),
}
_BU_SPECS: Specs = {
    **_SUM_SPECS,
    "stamp": (np.int64, 0, 0),  # the last incremental cycle that touched the pair
}


@dataclass(frozen=True, slots=True)
class SettledLot:
    """A position closed at its expiry (:meth:`Lots.settle_expiry`): what it held.

    Attributes:
        weight: quantity x contract multiplier (inverse futures: USD notional).
        avg_price: its average entry price in its price currency (coin per option for
            coin-settled options, USD per coin for futures); NaN when it has no cost.
    """

    book: str
    instrument: str
    quantity: float
    weight: float
    is_option: bool
    inverse: bool
    is_call: bool
    strike: float
    avg_price: float


class PositionBulk(NamedTuple):
    """Positions to add at once (:meth:`Lots.add_positions`): row ``k`` is
    ``books[book[k]]``, ``instruments[instrument[k]]``, ``quantity[k]`` and ``avg_price[k]``
    (NaN: none)."""

    books: Sequence[str]
    book: I64
    instruments: Sequence[Instrument]
    instrument: I64
    quantity: F64
    avg_price: F64


class LotState(NamedTuple):
    """Every lot, in lot order (what a checkpoint keeps): lot ``k`` is ``books[book[k]]``'s
    position in ``instruments[instrument[k]]``, ``quantity[k]`` with ``cost[k]`` (quantity x
    price; inverse futures: USD notional / price), ``has_cost[k]`` False once a fill without a
    price moved it. ``books`` in the order their first lot opened."""

    books: Sequence[str]
    book: I64
    instruments: Sequence[str]
    instrument: I64
    quantity: F64
    cost: F64
    has_cost: npt.NDArray[np.bool_]


class PositionsError(ValueError):
    """A bulk of positions (:meth:`Lots.add_positions`) refused, nothing of it applied.

    Attributes:
        row: the first refused row of the bulk.
    """

    def __init__(self, row: int, detail: str) -> None:
        super().__init__(detail)
        self.row = row


@functools.lru_cache(maxsize=4096)  # few distinct expiries; a big book asks once per lot
def expiry_label(expiry_ns: int | None, kind: Kind) -> str:
    """The expiry bucket of an instrument: ISO 8601 UTC time, ``perpetual`` or ``spot``."""
    if expiry_ns is None:
        return "perpetual" if kind == Kind.PERPETUAL else "spot"
    return datetime.fromtimestamp(expiry_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Groups:
    """The sums of the groups, of the (book, underlying) pairs and of the books, with their keys.

    Attributes:
        groups, pairs, books: the sums' tables (``hi``, ``lo``; a group's ``bu`` and ``book``
            rows; a pair's ``stamp``).
        keys: (book, underlying, expiry label) of each group; ``pair_keys``: (book, underlying)
            of each pair; ``pair_rows`` and ``book_rows``: their rows.
    """

    def __init__(self) -> None:
        self.groups = Columns(_GROUP_SPECS, capacity=16)
        self.pairs = Columns(_BU_SPECS, capacity=16)  # (book, underlying) sums
        self.books = Columns(_SUM_SPECS, capacity=8)  # book sums
        self.keys: list[tuple[str, str, str]] = []
        self.pair_keys: list[tuple[str, str]] = []
        self.pair_rows: dict[tuple[str, str], int] = {}
        self.book_rows: dict[str, int] = {}
        self._rows: dict[tuple[str, str, str], int] = {}
        self._pair_groups: dict[tuple[str, str], list[int]] = {}
        # (book, underlying) -> its groups as an index array and their expiry labels, in order
        self._pair_columns: dict[tuple[str, str], tuple[npt.NDArray[np.int64], list[str]]] = {}
        self._sums_cache: tuple[tuple[int, int, int], kernels.GroupSums] | None = None

    def row(self, book: str, inst: Instrument) -> int:
        """The group of a lot of ``book`` in ``inst``, added (with its pair and book) when new."""
        key = (book, inst.underlying, expiry_label(inst.expiry_ns, inst.kind))
        g = self._rows.get(key)
        if g is not None:
            return g
        g = self._add(key)
        # kept sorted by key (expiry labels sort in time), so payloads need no sorting
        pair = (book, inst.underlying)
        bisect.insort(self._pair_groups.setdefault(pair, []), g, key=self.keys.__getitem__)
        self._pair_columns.pop(pair, None)
        return g

    def rows(self, keys: Sequence[tuple[str, str, str]]) -> I64:
        """The groups of ``keys`` (book, underlying, expiry label), each added (with its pair
        and book) when new, in the order of ``keys``: as :meth:`row` one by one, with the new
        groups' columns written at once and each pair's groups sorted once at the end."""
        known = self._rows
        new: list[tuple[str, str, str]] = []
        out = []
        for key in keys:
            g = known.get(key)
            if g is None:
                g = known[key] = self.groups.n + len(new)
                new.append(key)
            out.append(g)
        start = self.groups.extend(len(new))
        ga = self.groups.arrays
        pairs = [self._pair_row((b, u)) for b, u, _ in new]
        ga["bu"][start : start + len(new)] = pairs
        ga["book"][start : start + len(new)] = [self._book_row(b) for b, _, _ in new]
        self.keys.extend(new)
        touched = set()
        for g, (b, u, _) in enumerate(new, start):
            self._pair_groups.setdefault((b, u), []).append(g)
            touched.add((b, u))
        for pair in touched:
            self._pair_groups[pair].sort(key=self.keys.__getitem__)
            self._pair_columns.pop(pair, None)
        return np.array(out, dtype=np.int64)

    def _pair_row(self, pair: tuple[str, str]) -> int:
        bu = self.pair_rows.get(pair)
        if bu is None:
            bu = self.pair_rows[pair] = self.pairs.append()
            self.pair_keys.append(pair)
        return bu

    def _book_row(self, book: str) -> int:
        brow = self.book_rows.get(book)
        if brow is None:
            brow = self.book_rows[book] = self.books.append()
        return brow

    def _add(self, key: tuple[str, str, str]) -> int:
        """A new group (its pair and book added when new), not yet among its pair's groups."""
        book, underlying, _ = key
        g = self.groups.append()
        self.groups.arrays["bu"][g] = self._pair_row((book, underlying))
        self.groups.arrays["book"][g] = self._book_row(book)
        self._rows[key] = g
        self.keys.append(key)
        return g

    def of_pair(self, pair: tuple[str, str]) -> tuple[npt.NDArray[np.int64], list[str]]:
        """The groups of ``pair`` (an index array) and their expiry labels, in time order."""
        entry = self._pair_columns.get(pair)
        if entry is None:
            groups = self._pair_groups.get(pair, [])
            labels = [self.keys[g][2] for g in groups]
            entry = self._pair_columns[pair] = (np.array(groups, dtype=np.int64), labels)
        return entry

    def sums(self, n_groups: int | None = None) -> kernels.GroupSums:
        """The sums of the groups (the first ``n_groups`` only, when given), of the (book,
        underlying) pairs and of the books, as the kernels take them; without ``n_groups``,
        the same object until one of the three grows."""
        key = (self.groups.capacity, self.pairs.capacity, self.books.capacity)
        if n_groups is None and self._sums_cache is not None and self._sums_cache[0] == key:
            return self._sums_cache[1]
        ga, ua, ba = self.groups.arrays, self.pairs.arrays, self.books.arrays
        rows = slice(n_groups)
        sums = kernels.GroupSums(
            group_bu=ga["bu"][rows],
            group_book=ga["book"][rows],
            group_hi=ga["hi"][rows],
            group_lo=ga["lo"][rows],
            bu_hi=ua["hi"],
            bu_lo=ua["lo"],
            book_hi=ba["hi"],
            book_lo=ba["lo"],
            bu_stamp=ua["stamp"],
        )
        if n_groups is None:
            kernels.check_group(sums)
            self._sums_cache = (key, sums)
        return sums

    def values(self) -> npt.NDArray[np.float64]:
        """Sums per group, (n_groups, N_AGG): high part + compensation."""
        g = self.groups
        values: npt.NDArray[np.float64] = g.arrays["hi"][: g.n] + g.arrays["lo"][: g.n]
        return values

    def book_names(self) -> list[str]:
        """Every book held, sorted."""
        return sorted(self.book_rows)

    def pairs_held(self) -> list[tuple[str, str]]:
        """Every (book, underlying) pair held, sorted."""
        return sorted(self._pair_groups)


class LotIndex:
    """(book row, instrument row) -> lot, without a Python object per lot: the keys of the lots
    added in bulk in one sorted int64 array, those added one at a time in a dict.

    A key is ``book_row << 32 | inst_row`` (:func:`lot_key`).
    """

    def __init__(self) -> None:
        self._keys: I64 = np.empty(0, dtype=np.int64)
        self._lots: I64 = np.empty(0, dtype=np.int64)
        self._recent: dict[int, int] = {}

    def get(self, key: int) -> int | None:
        """The lot of ``key``; None when there is none."""
        lot = self._recent.get(key)
        if lot is None and self._keys.size:
            i = int(np.searchsorted(self._keys, key))
            if i < self._keys.size and self._keys[i] == key:
                lot = int(self._lots[i])
        return lot

    def add(self, key: int, lot: int) -> None:
        """Index a new lot."""
        self._recent[key] = lot

    def find(self, keys: I64) -> I64:
        """The lot of each of ``keys``; -1 where there is none."""
        self.add_many(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64))
        out = np.full(keys.size, -1, dtype=np.int64)
        if self._keys.size:
            i = np.minimum(np.searchsorted(self._keys, keys), self._keys.size - 1)
            hit = self._keys[i] == keys
            out[hit] = self._lots[i[hit]]
        return out

    def add_many(self, keys: I64, lots: I64) -> None:
        """Index new lots (and those added one at a time so far): one sort."""
        recent = self._recent
        keys = np.concatenate((self._keys, keys, np.fromiter(recent, np.int64, len(recent))))
        lots = np.concatenate(
            (self._lots, lots, np.fromiter(recent.values(), np.int64, len(recent)))
        )
        order = np.argsort(keys, kind="stable")
        self._keys, self._lots = keys[order], lots[order]
        recent.clear()


def lot_key(book_row: I64, inst_row: I64) -> I64:
    """The :class:`LotIndex` keys of lots of ``book_row`` in ``inst_row``."""
    return (book_row << 32) | inst_row


class Lots:
    """Every lot: its instrument, group, quantity and cost; the fills applied to them.

    Args:
        market: the instruments (a lot's instrument row is added there).
        groups: the sums (a lot's group is added there).

    Attributes:
        cols: the lots' columns (:data:`LOT_SPECS`); a lot's ``book`` is a row of
            ``book_names``.
        dirty: lots changed since the last cycle.
        duplicate_fills: fills ignored because their ``fill_id`` was applied before.
        unresolved_fills: fills whose instrument is unknown: kept (never dropped), applied
            once it is known.
    """

    def __init__(self, market: MarketData, groups: Groups) -> None:
        self._market = market
        self._groups = groups
        self.cols = Columns(LOT_SPECS)
        self._index = LotIndex()
        self.book_names: list[str] = []
        self._book_rows: dict[str, int] = {}
        self.dirty: set[int] = set()
        self._fill_ids: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self.duplicate_fills = 0
        self.unresolved_fills: list[Fill] = []

    def book_row(self, book: str) -> int:
        """The row of ``book`` in :attr:`book_names`, added when new."""
        b = self._book_rows.get(book)
        if b is None:
            b = self._book_rows[book] = len(self.book_names)
            self.book_names.append(book)
        return b

    def row(self, book: str, inst_row: int) -> int:
        """The lot of ``book`` in instrument ``inst_row``, added when new."""
        b = self.book_row(book)
        key = b << 32 | inst_row
        lot = self._index.get(key)
        if lot is not None:
            return lot
        g = self._groups.row(book, self._market.defs[inst_row])
        lot = self.cols.append()
        la = self.cols.arrays
        la["inst"][lot] = inst_row
        la["group"][lot] = g
        la["book"][lot] = b
        self._index.add(key, lot)
        ia = self._market.cols.arrays
        la["next_lot"][lot] = ia["first_lot"][inst_row]
        ia["first_lot"][inst_row] = lot
        ia["n_lots"][inst_row] += 1
        self._market.dirty.add(inst_row)  # it may never have been priced: nobody held it
        return lot

    def add_position(
        self, book: str, instrument: str, quantity: float, avg_price: float | None = None
    ) -> None:
        """See :meth:`engine.state.Portfolio.add_position`."""
        _check_fill(quantity, avg_price)
        _check_book(book)
        inst = self._market.registry.get(instrument)
        if inst is None:
            raise ValueError(f"unknown instrument {instrument!r}")
        self._change(book, inst, quantity, avg_price)

    def add_positions(self, bulk: PositionBulk) -> None:
        """See :meth:`engine.state.Portfolio.add_positions`."""
        books, book, insts, inst, quantity, price = bulk
        refused = _first_refusal(bulk)
        if refused is not None:
            raise PositionsError(*refused)
        if quantity.size == 0:
            return
        inst_rows = self._instrument_rows(inst, insts)
        book_rows = self._rows_in_order(book, lambda c: self.book_row(books[c]))
        lot = self._lots_of(book_rows[book], inst_rows[inst])
        la = self.cols.arrays
        # row by row, in order, from each lot's value: the sums add exactly as add_position's
        np.add.at(la["qty"], lot, quantity)
        ia = self._market.cols.arrays
        inverse_future = ia["inverse"] & (ia["kind"] != kernels.KIND_OPTION)
        no_price = np.isnan(price)
        cost = np.where(inverse_future[inst_rows][inst], quantity / price, quantity * price)
        np.add.at(la["cost"], lot, np.where(no_price, 0.0, cost))
        la["has_cost"][lot[no_price]] = False
        if self._market.valuation_ns:  # before the first cycle, which reprices all, none is
            self.dirty.update(np.unique(lot).tolist())

    def state(self) -> LotState:
        """Copies of every lot's columns and the names they refer to (:class:`LotState`)."""
        n, la = self.cols.n, self.cols.arrays
        inst = la["inst"][:n]
        first, code = distinct(inst)
        defs = self._market.defs
        return LotState(
            books=list(self.book_names),
            book=la["book"][:n].copy(),
            instruments=[defs[i].name for i in inst[first].tolist()],
            instrument=code,
            quantity=la["qty"][:n].copy(),
            cost=la["cost"][:n].copy(),
            has_cost=la["has_cost"][:n].copy(),
        )

    def restore(self, state: LotState) -> None:
        """Open the lots of ``state`` in an empty book, in its order, with its quantities and
        costs exactly: the lots, groups, books and sums of the book it was taken from.

        Raises:
            ValueError: the book has lots already, an instrument is unknown or an index, a
                code is out of range, or two lots are the same book's in the same instrument;
                nothing is changed then.
        """
        if self.cols.n:
            raise ValueError("lots are restored into an empty book only")
        n = state.quantity.size
        if not (state.book.size == state.instrument.size == state.cost.size == n):
            raise ValueError("the lot columns differ in length")
        if state.has_cost.size != n:
            raise ValueError("the lot columns differ in length")
        if n == 0:
            return
        resolved = self._market.registry.resolve(state.instruments)
        insts = [i for i in resolved if i is not None and i.kind != Kind.INDEX]
        if len(insts) != len(resolved):
            pairs = zip(state.instruments, resolved, strict=True)
            bad = next(n for n, i in pairs if i is None or i.kind == Kind.INDEX)
            raise ValueError(f"unknown instrument (or an index) {bad!r}")
        for codes, names in ((state.book, state.books), (state.instrument, insts)):
            if int(codes.min()) < 0 or int(codes.max()) >= len(names):
                raise ValueError("a lot's code is out of range")
        if any(not b or ":" in b for b in state.books):
            raise ValueError("a bad book name")
        keys = np.sort(state.book * len(insts) + state.instrument)
        if np.any(keys[1:] == keys[:-1]):
            raise ValueError("two lots of the same book in the same instrument")
        self.cols.reserve(n + n // 4)  # room for the day's new lots: no doubling at once
        inst_rows = self._instrument_rows(state.instrument, insts)
        book_rows = self._rows_in_order(state.book, lambda c: self.book_row(state.books[c]))
        self._lots_of(book_rows[state.book], inst_rows[state.instrument])
        la = self.cols.arrays
        la["qty"][:n] = state.quantity
        la["cost"][:n] = state.cost
        la["has_cost"][:n] = state.has_cost
        if self._market.valuation_ns:
            self.dirty.update(range(n))

    def fill_ids(self) -> list[str]:
        """The ids of the fills applied (the last :data:`FILL_IDS_KEPT`), oldest first; copied
        in slices, so that a worker thread copying them lets the event loop run between."""
        it, out = iter(self._fill_ids), []
        while chunk := list(itertools.islice(it, 8192)):
            out.extend(chunk)
        return out

    def restore_fill_ids(self, ids: Sequence[str], duplicates: int) -> None:
        """Remember ``ids`` (oldest first) as applied, and ``duplicates`` redelivered fills."""
        self._fill_ids = dict.fromkeys(ids[-FILL_IDS_KEPT:])
        self.duplicate_fills = duplicates

    def _instrument_rows(self, codes: I64, insts: Sequence[Instrument]) -> I64:
        """The market row of each instrument code in ``codes`` (``insts[code]``), the new ones
        added at once (:meth:`~engine.market.MarketData.rows`) in the order the codes first
        appear, as adding them one by one would; -1 for codes that do not appear."""
        first, _ = distinct(codes)
        seen = codes[first]
        rows = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        rows[seen] = self._market.rows([insts[c] for c in seen.tolist()])
        return rows

    @staticmethod
    def _rows_in_order(codes: I64, row_of: Callable[[int], int]) -> I64:
        """``row_of`` each code in ``codes``, called in the order the codes first appear (so
        rows are added as row-by-row adds would); -1 for codes that do not appear."""
        first, _ = distinct(codes)
        rows = np.full(int(codes.max()) + 1, -1, dtype=np.int64)
        for c in codes[first].tolist():
            rows[c] = row_of(c)
        return rows

    def _lots_of(self, book_row: I64, inst_row: I64) -> I64:
        """The lot of each (book, instrument) row pair, the new ones added in the order they
        first appear, with their groups and instrument links."""
        first, which = distinct(book_row * (int(inst_row.max()) + 1) + inst_row)
        keys = lot_key(book_row[first], inst_row[first])
        lots = self._index.find(keys)
        new = np.flatnonzero(lots < 0)
        if not new.size:
            return lots[which]
        start = self.cols.extend(new.size)
        added = np.arange(start, start + new.size, dtype=np.int64)
        lots[new] = added
        la = self.cols.arrays
        la["inst"][added] = inst_row[first[new]]
        la["book"][added] = book_row[first[new]]
        la["group"][added] = self._group_rows(added)
        self._link(added)
        self._index.add_many(keys[new], added)
        return lots[which]

    def _group_rows(self, lots: I64) -> I64:
        """The groups of new ``lots`` (in order), added in the order their first lot opened."""
        place, places = self._places(self.cols.arrays["inst"][lots])
        book = self.cols.arrays["book"][lots]
        first, which = distinct(book * len(places) + place)
        keys = [
            (self.book_names[b], *places[p])
            for b, p in zip(book[first].tolist(), place[first].tolist(), strict=True)
        ]
        return self._groups.rows(keys)[which]

    def _places(self, inst: I64) -> tuple[I64, list[tuple[str, str]]]:
        """The (underlying, expiry label) of instrument rows ``inst``: each one's number, and
        the pairs by number. A label is made once per distinct (underlying, expiry)."""
        defs, ia = self._market.defs, self._market.cols.arrays
        first_inst, of_row = distinct(inst)
        rows = inst[first_inst]
        underlying = [defs[i].underlying for i in rows.tolist()]
        number = {u: k for k, u in enumerate(dict.fromkeys(underlying))}
        code = np.fromiter(map(number.__getitem__, underlying), np.int64, len(underlying))
        no_expiry = np.where(ia["kind"][rows] == kernels.KIND_PERPETUAL, -1, -2)
        when = np.where(ia["has_expiry"][rows], ia["expiry_ns"][rows], no_expiry)
        _, when_code = np.unique(when, return_inverse=True)
        first, pair = distinct(code * (int(when_code.max()) + 1) + when_code.ravel())
        places: dict[tuple[str, str], int] = {}  # (underlying, expiry label) -> its number
        place = np.array(
            [
                places.setdefault((d.underlying, expiry_label(d.expiry_ns, d.kind)), len(places))
                for d in map(defs.__getitem__, rows[first].tolist())
            ],
            dtype=np.int64,
        )
        return place[pair][of_row], list(places)

    def _link(self, lots: I64) -> None:
        """Chain new ``lots`` (in order) to their instruments, as :meth:`row` does one by one:
        an instrument's ``first_lot`` is its newest lot, ``next_lot`` the next older."""
        la, ia = self.cols.arrays, self._market.cols.arrays
        inst = la["inst"][lots]
        order = np.lexsort((lots, inst))
        s_inst, s_lot = inst[order], lots[order]
        starts = np.r_[True, s_inst[1:] != s_inst[:-1]]
        ends = np.r_[starts[1:], True]
        la["next_lot"][s_lot] = np.where(starts, ia["first_lot"][s_inst], np.r_[-1, s_lot[:-1]])
        ia["first_lot"][s_inst[ends]] = s_lot[ends]
        np.add.at(ia["n_lots"], inst, 1)
        if self._market.valuation_ns:  # it may never have been priced: nobody held it
            self._market.dirty.update(np.unique(inst).tolist())

    def apply_fill(self, fill: Fill) -> bool:
        """See :meth:`engine.state.Portfolio.apply_fill`."""
        _check_fill(fill.quantity, fill.price)
        _check_book(fill.book)
        inst = self._market.registry.get(fill.instrument)
        if inst is None or inst.kind == Kind.INDEX:
            self.unresolved_fills.append(fill)
            return False
        fid = fill.fill_id
        if fid is not None:
            if fid in self._fill_ids:
                self.duplicate_fills += 1
                return True
            self._fill_ids[fid] = None
            if len(self._fill_ids) > FILL_IDS_KEPT:
                del self._fill_ids[next(iter(self._fill_ids))]
        self._change(fill.book, inst, fill.quantity, fill.price)
        return True

    def seen_fill(self, fill_id: str) -> bool:
        """Whether a fill with ``fill_id`` was applied (among the last :data:`FILL_IDS_KEPT`)."""
        return fill_id in self._fill_ids

    def retry_unresolved(self) -> int:
        """Apply the kept fills whose instruments are now known; returns how many applied.
        The others stay kept, in their order."""
        pending, self.unresolved_fills = self.unresolved_fills, []
        return sum(self.apply_fill(f) for f in pending)

    def _change(self, book: str, inst: Instrument, quantity: float, price: float | None) -> None:
        """Move a lot by ``quantity`` at ``price``; the callers have checked both and the book."""
        lot = self.row(book, self._market.row(inst))
        a = self.cols.arrays
        a["qty"][lot] += quantity
        if price is None:
            a["has_cost"][lot] = False
        elif inst.is_inverse and inst.kind != Kind.OPTION:
            a["cost"][lot] += quantity / price  # inverse futures: USD notional / price = coin
        else:
            a["cost"][lot] += quantity * price
        self.dirty.add(lot)

    def held_expiries(self) -> list[tuple[str, int]]:
        """(index, expiry_ns) of every expiry with an open position (options, futures)."""
        n = self.cols.n
        la, ia = self.cols.arrays, self._market.cols.arrays
        rows = np.unique(ia["fwd_row"][la["inst"][:n][la["qty"][:n] != 0.0]])
        keys = list(self._market.fwds.ids)
        return [keys[r] for r in rows.tolist() if r >= 0]

    def settle_expiry(self, index: str, expiry_ns: int) -> list[SettledLot]:
        """See :meth:`engine.state.Portfolio.settle_expiry`."""
        fwds = self._market.fwds
        row = fwds.ids.get((index, expiry_ns))
        if row is None:
            return []
        la, ia = self.cols.arrays, self._market.cols.arrays
        out = []
        for i in fwds.dependents[row]:
            inst = self._market.defs[i]
            lot = int(ia["first_lot"][i])
            while lot >= 0:
                qty = float(la["qty"][lot])
                if qty != 0.0:
                    cost = float(la["cost"][lot])
                    # cost: quantity x price; inverse futures: USD notional / price, in coin
                    inverse_future = inst.is_inverse and inst.kind != Kind.OPTION
                    avg = (qty / cost if cost else math.nan) if inverse_future else cost / qty
                    out.append(
                        SettledLot(
                            book=self.book_names[int(la["book"][lot])],
                            instrument=inst.name,
                            quantity=qty,
                            weight=qty * inst.multiplier,
                            is_option=inst.kind == Kind.OPTION,
                            inverse=inst.is_inverse,
                            is_call=bool(inst.is_call),
                            strike=inst.strike or math.nan,
                            avg_price=avg if la["has_cost"][lot] else math.nan,
                        )
                    )
                    la["qty"][lot] = 0.0
                    la["cost"][lot] = 0.0
                    la["has_cost"][lot] = True
                    self.dirty.add(lot)
                lot = int(la["next_lot"][lot])
        return out

    def positions(self) -> list[tuple[str, str, float]]:
        """(book, instrument, net quantity) of every lot."""
        la, defs, books = self.cols.arrays, self._market.defs, self.book_names
        return [
            (books[int(la["book"][lot])], defs[int(la["inst"][lot])].name, float(la["qty"][lot]))
            for lot in range(self.cols.n)
        ]

    def instruments(self, start: int = 0) -> list[str]:
        """Instrument names of the lots from number ``start`` on, in the order they opened."""
        la = self.cols.arrays["inst"]
        return [self._market.defs[int(i)].name for i in la[start : self.cols.n]]


def _first_refusal(bulk: PositionBulk) -> tuple[int, str] | None:
    """The first row of a bulk :meth:`Lots.add_position` would refuse and its reason (the
    same checks in the same order), or None."""
    books, book, insts, inst, quantity, price = bulk
    n = quantity.size
    if not (book.size == inst.size == price.size == n):
        raise ValueError("book, inst, quantity and price must have the same length")
    bad_book = np.array([not b or ":" in b for b in books], dtype=np.bool_)
    index = np.array([i.kind == Kind.INDEX for i in insts], dtype=np.bool_)
    bad = ~np.isfinite(quantity) | ~(np.isnan(price) | ((price > 0.0) & np.isfinite(price)))
    bad |= bad_book[book] | index[inst]
    if not bad.any():
        return None
    row = int(np.argmax(bad))
    p = float(price[row])
    try:
        _check_fill(float(quantity[row]), None if math.isnan(p) else p)
        _check_book(books[int(book[row])])
    except ValueError as exc:
        return row, str(exc)
    return row, f"an index ({insts[int(inst[row])].name}) cannot be held"


def _check_book(book: str) -> None:
    if not book or ":" in book:
        raise ValueError(f"a book name is not empty and has no ':' (snapshot keys), got {book!r}")


def _check_fill(quantity: float, price: float | None) -> None:
    if not math.isfinite(quantity):
        raise ValueError(f"quantity must be finite, got {quantity}")
    if price is not None and not (math.isfinite(price) and price > 0.0):
        raise ValueError(f"price must be finite and > 0, got {price}")
