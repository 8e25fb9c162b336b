"""The portfolio's positions: lots (a book's net position in one instrument), the fills that move
them (de-duplicated; those on unknown instruments kept), expiries settled, and the groups whose
sums the lots' contributions move.

A group is a (book, underlying, expiry) triple; the sums of each group, each (book, underlying)
pair and each book are kept compensated (high part + Neumaier compensation, ``hi`` + ``lo``)
by the kernels the portfolio's cycle runs (:mod:`engine.state`).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.columns import Columns, Specs
from engine.events import Fill
from engine.instruments import Instrument, Kind
from engine.market import MarketData

__all__ = ["FILL_IDS_KEPT", "Groups", "Lots", "SettledLot", "expiry_label"]

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
}
"""The lots' columns (:class:`engine.kernels.LotColumns`)."""
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
        pair = (book, inst.underlying)
        g = self.groups.append()
        bu = self.pair_rows.get(pair)
        if bu is None:
            bu = self.pairs.append()
            self.pair_rows[pair] = bu
            self.pair_keys.append(pair)
        brow = self.book_rows.get(book)
        if brow is None:
            brow = self.books.append()
            self.book_rows[book] = brow
        self.groups.arrays["bu"][g] = bu
        self.groups.arrays["book"][g] = brow
        self._rows[key] = g
        self.keys.append(key)
        # kept sorted by key (expiry labels sort in time), so payloads need no sorting
        bisect.insort(self._pair_groups.setdefault(pair, []), g, key=self.keys.__getitem__)
        self._pair_columns.pop(pair, None)
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


class Lots:
    """Every lot: its instrument, group, quantity and cost; the fills applied to them.

    Args:
        market: the instruments (a lot's instrument row is added there).
        groups: the sums (a lot's group is added there).

    Attributes:
        cols: the lots' columns (:data:`LOT_SPECS`); ``book``: each lot's book.
        dirty: lots changed since the last cycle.
        duplicate_fills: fills ignored because their ``fill_id`` was applied before.
        unresolved_fills: fills whose instrument is unknown: kept (never dropped), applied
            once it is known.
    """

    def __init__(self, market: MarketData, groups: Groups) -> None:
        self._market = market
        self._groups = groups
        self.cols = Columns(LOT_SPECS)
        self._rows: dict[tuple[str, int], int] = {}
        self.book: list[str] = []
        self.dirty: set[int] = set()
        self._fill_ids: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self.duplicate_fills = 0
        self.unresolved_fills: list[Fill] = []

    def row(self, book: str, inst_row: int) -> int:
        """The lot of ``book`` in instrument ``inst_row``, added when new."""
        key = (book, inst_row)
        lot = self._rows.get(key)
        if lot is not None:
            return lot
        g = self._groups.row(book, self._market.defs[inst_row])
        lot = self.cols.append()
        la = self.cols.arrays
        la["inst"][lot] = inst_row
        la["group"][lot] = g
        self._rows[key] = lot
        self.book.append(book)
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
                            book=self.book[lot],
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
        la, defs = self.cols.arrays, self._market.defs
        return [
            (self.book[lot], defs[int(la["inst"][lot])].name, float(la["qty"][lot]))
            for lot in range(self.cols.n)
        ]

    def instruments(self, start: int = 0) -> list[str]:
        """Instrument names of the lots from number ``start`` on, in the order they opened."""
        la = self.cols.arrays["inst"]
        return [self._market.defs[int(i)].name for i in la[start : self.cols.n]]


def _check_book(book: str) -> None:
    if not book or ":" in book:
        raise ValueError(f"a book name is not empty and has no ':' (snapshot keys), got {book!r}")


def _check_fill(quantity: float, price: float | None) -> None:
    if not math.isfinite(quantity):
        raise ValueError(f"quantity must be finite, got {quantity}")
    if price is not None and not (math.isfinite(price) and price > 0.0):
        raise ValueError(f"price must be finite and > 0, got {price}")
