"""The streaming portfolio: struct-of-arrays state that reprices only what an update touched.

Data flow of one engine cycle (:meth:`Portfolio.cycle`):

1. ``apply_tick`` / ``apply_quote`` / ``apply_fill`` store the latest inputs in per-instrument
   columns and mark the instruments (or lots) they change as dirty. They are cheap: the inbox
   already conflated market data to the latest per instrument.
2. One call of :func:`engine.kernels.reprice_dirty_kernel` reprices the dirty instruments that
   are held (their underlying price, time to expiry and volatility derived from the stored
   inputs, then the exposure of one unit of position in each), recomputes the contribution of
   every lot (a book's net position in one instrument) on them or changed by a fill, and moves
   its group's sums from the old contribution to the new one. Sums are compensated (Neumaier),
   so they stay within about one rounding of the exact sum however many updates they absorb.

A group is a (book, underlying, expiry) triple; (book, underlying) and book figures are sums of
their groups, taken when published.

Time enters as ``now_ns`` arguments. Every figure is valued at the *valuation time*, which moves
only at a full reprice (:meth:`Portfolio.cycle` with ``full=True``, which the runtime runs
periodically for time decay and which also rebuilds every sum from scratch). So the state always
equals a from-scratch computation at the valuation time from the stored inputs
(:meth:`Portfolio.recompute`), which is what the tests check.

Inputs, per instrument (units: :mod:`engine.instruments`, :mod:`engine.outputs`):

- Deribit options: Black-76 on the forward. The forward is the option's own quote's
  ``underlying_price``, else the price of the future of that expiry, else the index (r = q = 0
  unless configured). Other venues' options: BSM on the index/spot with the underlying's r and q.
- Volatility: the quote's ``iv`` when present, else implied from its mark, else from its mid.
- Futures, perpetuals and spot: their own last tick, else the forward or index.
- An instrument is stale when its input is older than ``stale_after_ns`` at the valuation time
  or missing; one that cannot be priced contributes zero and counts as stale.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.arguments import PARALLEL_MIN_ROWS
from engine.events import Fill, Quote, Tick
from engine.instruments import DERIBIT, Instrument, InstrumentRegistry, Kind
from engine.outputs import (
    METRICS,
    UNITS,
    BookExposure,
    ExpiryColumns,
    Exposure,
    PortfolioStatus,
    UnderlyingExposure,
)
from engine.positions import ScenarioBook

__all__ = [
    "AGG_FIELDS",
    "FILL_IDS_KEPT",
    "BookRisk",
    "Chain",
    "Portfolio",
    "Priced",
    "SettledLot",
    "UnderlyingParams",
]

F64 = npt.NDArray[np.float64]

AGG_FIELDS: tuple[str, ...] = (*METRICS, "n_positions", "n_stale")
"""Columns of a group's sums (:meth:`Portfolio.group_values`)."""
_N_FLOAT = len(METRICS)  # the columns before the two counts
if len(AGG_FIELDS) != kernels.N_AGG:  # the kernel's column count is fixed at compile time
    raise ImportError("engine.state.AGG_FIELDS does not match engine.kernels.N_AGG")

_KIND_CODE = {
    Kind.OPTION: kernels.KIND_OPTION,
    Kind.FUTURE: kernels.KIND_FUTURE,
    Kind.PERPETUAL: kernels.KIND_PERPETUAL,
    Kind.SPOT: kernels.KIND_SPOT,
}
_NAN = math.nan
_reprice_dirty = kernels.unchecked(kernels.reprice_dirty_kernel)
"""Once per incremental cycle, with groups checked when built (kernels.check_group)."""
FILL_IDS_KEPT = 1_000_000
"""Fill ids remembered to recognise redelivered fills (about 100 MB at most)."""


@dataclass(frozen=True, slots=True)
class UnderlyingParams:
    """Rate and yield of an underlying (continuously compounded decimals), for BSM and for
    forwards implied from the index. Deribit's conventions are r = q = 0."""

    rate: float = 0.0
    dividend_yield: float = 0.0


@dataclass(frozen=True, slots=True)
class BookRisk:
    """A book as the risk measures take it (:mod:`engine.risk`), at the valuation time: its open
    positions for full revaluation (``positions.und`` indexes ``underlyings``), and per
    underlying its exposure sums (``figures[u, AGG_FIELDS.index(name)]``) and reference price
    (the index's latest price; NaN when none came yet). Copies: the portfolio may move on
    (``defs``, the portfolio's instruments by row, only grows)."""

    book: str
    valuation_ns: int
    underlyings: list[str]
    positions: ScenarioBook
    figures: F64
    prices: F64
    rows: npt.NDArray[np.int64]
    defs: list[Instrument]

    def instrument(self, i: int) -> str:
        """The instrument of position ``i``."""
        return self.defs[int(self.rows[i])].name

    @property
    def instruments(self) -> list[str]:
        """The instrument of every position, in order."""
        return [self.defs[i].name for i in self.rows.tolist()]


@dataclass(frozen=True, slots=True)
class Chain:
    """One expiry's options of one underlying and settlement, as quoted, priced at the valuation
    time from their own stored quotes (arrays: one entry per option, held or only quoted).

    Attributes:
        underlying: the underlying, with the quote currency for linear options
            (``BTC``: Deribit's coin-settled options; ``BTC_USDC``: its linear ones).
        expiry_ns, expiry: the expiry, int UNIX ns and its label.
        coin_settled: inverse (coin-settled) options.
        sigma: each option's vol from its own quote; NaN where it has none usable or its quote
            is stale (older than the portfolio's ``stale_after_ns``).
        forward, T: each option's forward (or spot) and years to expiry.
        held: which options are held.
        quote_ns: each option's last quote's receipt time (0: none).
    """

    underlying: str
    expiry_ns: int
    expiry: str
    coin_settled: bool
    instruments: list[str]
    strike: F64
    is_call: npt.NDArray[np.bool_]
    sigma: F64
    forward: F64
    T: F64
    held: npt.NDArray[np.bool_]
    quote_ns: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class SettledLot:
    """A position closed at its expiry (:meth:`Portfolio.settle_expiry`): what it held.

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


@dataclass(frozen=True, slots=True)
class Priced:
    """Instruments priced at the valuation time (:meth:`Portfolio.priced`), one row each:
    whether it could be (``ok``; unknown or without market data: False and NaN figures), its
    figures per 1 unit of position quantity in the units and order of :data:`AGG_FIELDS` (all
    but ``pnl`` and the counts), and a :class:`ScenarioBook` of one unit of each (``weight``
    its contract multiplier, ``und`` 0) for revaluation."""

    names: list[str]
    ok: npt.NDArray[np.bool_]
    units: F64
    positions: ScenarioBook


def expiry_label(expiry_ns: int | None, kind: Kind) -> str:
    """The expiry bucket of an instrument: ISO 8601 UTC time, ``perpetual`` or ``spot``."""
    if expiry_ns is None:
        return "perpetual" if kind == Kind.PERPETUAL else "spot"
    return datetime.fromtimestamp(expiry_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_G = TypeVar("_G", bound=NamedTuple)  # a kernel's column group (engine.kernels)


class _Columns:
    """Named 1-D (or row-major 2-D) numpy columns that grow together, amortised doubling."""

    def __init__(self, specs: dict[str, tuple[Any, Any, int]], capacity: int = 64) -> None:
        self._specs = specs
        self.capacity = capacity
        self.n = 0
        self.arrays: dict[str, npt.NDArray[Any]] = {
            name: np.full((capacity, width) if width else capacity, fill, dtype=dtype)
            for name, (dtype, fill, width) in specs.items()
        }
        self._groups: dict[type[Any], Any] = {}

    def group(self, cls: type[_G]) -> _G:
        """The columns named by the fields of ``cls`` (a kernel's column group), whole
        capacity; the same object until the columns grow."""
        group: _G | None = self._groups.get(cls)
        if group is None:
            group = self._groups[cls] = cls._make(self.arrays[f] for f in cls._fields)
            kernels.check_group(group)  # once: the hot path calls the kernels unchecked
        return group

    def head(self, cls: type[_G]) -> _G:
        """As :meth:`group`, the first :attr:`n` rows only (a new object)."""
        return cls._make(self.arrays[f][: self.n] for f in cls._fields)

    def append(self) -> int:
        if self.n == self.capacity:
            new_cap = 2 * self.capacity
            for name, (dtype, fill, width) in self._specs.items():
                old = self.arrays[name]
                arr = np.full((new_cap, width) if width else new_cap, fill, dtype=dtype)
                arr[: self.n] = old[: self.n]
                self.arrays[name] = arr
            self.capacity = new_cap
            self._groups.clear()
        row = self.n
        self.n += 1
        return row


_INST_SPECS: dict[str, tuple[Any, Any, int]] = {
    "kind": (np.int8, 0, 0),
    "black": (np.bool_, False, 0),
    "inverse": (np.bool_, False, 0),
    "is_call": (np.bool_, False, 0),
    "strike": (np.float64, 1.0, 0),
    "mult": (np.float64, 1.0, 0),
    "expiry_ns": (np.int64, 0, 0),
    "has_expiry": (np.bool_, False, 0),
    "spot_row": (np.int64, 0, 0),
    "fwd_row": (np.int64, -1, 0),
    "n_lots": (np.int64, 0, 0),
    "first_lot": (np.int64, -1, 0),  # its newest lot; the others follow through lots' next_lot
    "r": (np.float64, 0.0, 0),
    "q": (np.float64, 0.0, 0),
    # latest own market data
    "own_px": (np.float64, _NAN, 0),  # option: quote's underlying_price; others: tick price
    "own_ts": (np.int64, 0, 0),
    "bid": (np.float64, _NAN, 0),
    "ask": (np.float64, _NAN, 0),
    "mark": (np.float64, _NAN, 0),
    "iv": (np.float64, _NAN, 0),
    # derived at the last reprice
    "X": (np.float64, _NAN, 0),
    "T": (np.float64, _NAN, 0),
    "sigma": (np.float64, _NAN, 0),
    "uses_spot": (np.bool_, False, 0),
    "uses_fwd": (np.bool_, False, 0),
    "status": (np.int8, kernels.BAD_INPUT, 0),
    "bad": (np.bool_, True, 0),
    "unit": (np.float64, 0.0, kernels.N_UNIT),
}
_LOT_SPECS: dict[str, tuple[Any, Any, int]] = {
    "inst": (np.int64, 0, 0),
    "group": (np.int64, 0, 0),
    "qty": (np.float64, 0.0, 0),
    "cost": (np.float64, 0.0, 0),
    "has_cost": (np.bool_, True, 0),
    "next_lot": (np.int64, -1, 0),  # the next older lot of the same instrument
    "contrib": (np.float64, 0.0, kernels.N_AGG),
}
_SUM_SPECS: dict[str, tuple[Any, Any, int]] = {
    "hi": (np.float64, 0.0, kernels.N_AGG),
    "lo": (np.float64, 0.0, kernels.N_AGG),
}
_GROUP_SPECS: dict[str, tuple[Any, Any, int]] = {
    **_SUM_SPECS,
    "bu": (np.int64, 0, 0),
    "book": (np.int64, 0, 0),
}
_BU_SPECS: dict[str, tuple[Any, Any, int]] = {
    **_SUM_SPECS,
    "stamp": (np.int64, 0, 0),  # the last incremental cycle that touched the pair
}

_KERNEL_COLUMNS = (kernels.InstrumentColumns, kernels.PricedColumns, kernels.LotColumns)
if {*_INST_SPECS, *_LOT_SPECS} != {f for group in _KERNEL_COLUMNS for f in group._fields}:
    raise ImportError("engine.state's columns do not match engine.kernels' column groups")


_SOURCE_SPECS: dict[str, tuple[Any, Any, int]] = {
    "px": (np.float64, _NAN, 0),
    "ts": (np.int64, 0, 0),
    "from_tick": (np.bool_, False, 0),
}


class _Sources:
    """Shared prices: indices/spot (keyed by index name) or forwards (index, expiry). Each
    knows the instruments that depend on it and those priced off it at their last reprice, so
    a new price dirties only those."""

    def __init__(self) -> None:
        self.cols = _Columns(_SOURCE_SPECS, capacity=8)
        self.ids: dict[Any, int] = {}
        self.dependents: list[list[int]] = []
        self.users: list[set[int]] = []

    def row(self, key: Any) -> int:
        row = self.ids.get(key)
        if row is None:
            row = self.cols.append()
            self.ids[key] = row
            self.dependents.append([])
            self.users.append(set())
        return row


class Portfolio:
    """Books of positions and their exposures, kept current incrementally.

    Args:
        registry: resolves instrument names (Deribit names parse on first sight).
        underlyings: rate and yield per underlying name; missing ones use r = q = 0.
        stale_after_ns: an input older than this (at the valuation time) is stale.
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        underlyings: dict[str, UnderlyingParams] | None = None,
        stale_after_ns: int = 60_000_000_000,
    ) -> None:
        self.registry = registry
        self._params = dict(underlyings or {})
        self.stale_after_ns = stale_after_ns
        self.valuation_ns = 0
        self._inst = _Columns(_INST_SPECS)
        self._inst_rows: dict[str, int] = {}
        self._quote_rows: dict[str, int] = {}  # options quoted so far, by name
        self._inst_defs: list[Instrument] = []
        self._spots = _Sources()  # by index name
        self._fwds = _Sources()  # by (index, expiry_ns)
        self._lots = _Columns(_LOT_SPECS)
        self._lot_rows: dict[tuple[str, int], int] = {}
        self._lot_book: list[str] = []
        self._groups = _Columns(_GROUP_SPECS, capacity=16)
        self._bus = _Columns(_BU_SPECS, capacity=16)  # (book, underlying) sums
        self._bu_rows: dict[tuple[str, str], int] = {}
        self._books = _Columns(_SUM_SPECS, capacity=8)  # book sums
        self._book_rows: dict[str, int] = {}
        self._group_rows: dict[tuple[str, str, str], int] = {}
        self._group_keys: list[tuple[str, str, str]] = []
        self._bu_pairs: list[tuple[str, str]] = []  # (book, underlying) of each row of _bus
        self._bu_groups: dict[tuple[str, str], list[int]] = {}
        # (book, underlying) -> its groups as an index array and their expiry labels, in order
        self._bu_columns: dict[tuple[str, str], tuple[npt.NDArray[np.int64], list[str]]] = {}
        self._dirty_inst: set[int] = set()
        self._dirty_lots: set[int] = set()
        self._stamp = 0  # incremental cycles so far: marks the pairs each one touched
        # the kernels' column groups that span tables, by the state they were built from
        self._sums_cache: tuple[tuple[int, int, int], kernels.GroupSums] | None = None
        self._market_cache: tuple[tuple[int, int, int, int], kernels.Market] | None = None
        self._fill_ids: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self.duplicate_fills = 0
        """Fills ignored because their ``fill_id`` was applied before (at-least-once feeds)."""
        self.unresolved_fills: list[Fill] = []
        """Fills whose instrument is unknown: kept (never dropped), applied once it is known."""

    # ------------------------------------------------------------------ rows
    def _instrument_row(self, inst: Instrument) -> int:
        row = self._inst_rows.get(inst.name)
        if row is not None:
            return row
        if inst.kind == Kind.INDEX:
            raise ValueError(f"an index ({inst.name}) cannot be held")
        row = self._inst.append()
        a = self._inst.arrays
        params = self._params.get(inst.underlying, UnderlyingParams())
        a["kind"][row] = _KIND_CODE[inst.kind]
        a["black"][row] = inst.venue == DERIBIT and inst.kind != Kind.SPOT
        a["inverse"][row] = inst.is_inverse
        a["is_call"][row] = bool(inst.is_call)
        a["strike"][row] = inst.strike if inst.strike is not None else 1.0
        a["mult"][row] = inst.multiplier
        a["expiry_ns"][row] = inst.expiry_ns or 0
        a["has_expiry"][row] = inst.expiry_ns is not None
        a["r"][row] = params.rate
        a["q"][row] = params.dividend_yield
        spot_row = self._spots.row(inst.index)
        a["spot_row"][row] = spot_row
        self._spots.dependents[spot_row].append(row)
        if inst.expiry_ns is not None:
            fwd_row = self._fwds.row((inst.index, inst.expiry_ns))
            a["fwd_row"][row] = fwd_row
            self._fwds.dependents[fwd_row].append(row)
        self._inst_rows[inst.name] = row
        self._inst_defs.append(inst)
        return row

    def _lot_row(self, book: str, inst_row: int) -> int:
        key = (book, inst_row)
        lot = self._lot_rows.get(key)
        if lot is not None:
            return lot
        inst = self._inst_defs[inst_row]
        gkey = (book, inst.underlying, expiry_label(inst.expiry_ns, inst.kind))
        g = self._group_rows.get(gkey)
        if g is None:
            g = self._groups.append()
            bu = self._bu_rows.get((book, inst.underlying))
            if bu is None:
                bu = self._bus.append()
                self._bu_rows[(book, inst.underlying)] = bu
                self._bu_pairs.append((book, inst.underlying))
            brow = self._book_rows.get(book)
            if brow is None:
                brow = self._books.append()
                self._book_rows[book] = brow
            self._groups.arrays["bu"][g] = bu
            self._groups.arrays["book"][g] = brow
            self._group_rows[gkey] = g
            self._group_keys.append(gkey)
            # kept sorted by key (expiry labels sort in time), so payloads need no sorting
            by_key = self._group_keys.__getitem__
            bisect.insort(self._bu_groups.setdefault((book, inst.underlying), []), g, key=by_key)
            self._bu_columns.pop((book, inst.underlying), None)
        lot = self._lots.append()
        self._lots.arrays["inst"][lot] = inst_row
        self._lots.arrays["group"][lot] = g
        self._lot_rows[key] = lot
        self._lot_book.append(book)
        ia = self._inst.arrays
        self._lots.arrays["next_lot"][lot] = ia["first_lot"][inst_row]
        ia["first_lot"][inst_row] = lot
        ia["n_lots"][inst_row] += 1
        self._dirty_inst.add(inst_row)  # it may never have been priced: nobody held it
        return lot

    # ------------------------------------------------------------------ inputs
    def add_position(
        self, book: str, instrument: str, quantity: float, avg_price: float | None = None
    ) -> None:
        """Add a start-of-day position (positions with the same book and instrument merge).

        Raises:
            ValueError: unknown instrument, an index, or a non-finite quantity or price.
        """
        _check_fill(quantity, avg_price)
        _check_book(book)
        inst = self.registry.get(instrument)
        if inst is None:
            raise ValueError(f"unknown instrument {instrument!r}")
        self._change(book, inst, quantity, avg_price)

    def apply_fill(self, fill: Fill) -> bool:
        """Apply a fill. Returns False when its instrument is unknown: the fill is then kept in
        :attr:`unresolved_fills` (and applied by :meth:`retry_unresolved`), never dropped.
        A fill whose ``fill_id`` is among the last :data:`FILL_IDS_KEPT` applied is a
        redelivery: it is counted in :attr:`duplicate_fills` and not applied again.

        Raises:
            ValueError: an empty book name or one with ``:``, a non-finite quantity, or a price
                that is not finite and > 0 (checked
                before anything is kept, so a kept fill always applies once its instrument is
                known).
        """
        _check_fill(fill.quantity, fill.price)
        _check_book(fill.book)
        inst = self.registry.get(fill.instrument)
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
        lot = self._lot_row(book, self._instrument_row(inst))
        a = self._lots.arrays
        a["qty"][lot] += quantity
        if price is None:
            a["has_cost"][lot] = False
        elif inst.is_inverse and inst.kind != Kind.OPTION:
            a["cost"][lot] += quantity / price  # inverse futures: USD notional / price = coin
        else:
            a["cost"][lot] += quantity * price
        self._dirty_lots.add(lot)

    def apply_tick(self, tick: Tick) -> bool:
        """Store a tick of an index, spot, future or perpetual; False if it is not one."""
        inst = self.registry.get(tick.instrument)
        if inst is None or inst.kind == Kind.OPTION:
            return False
        if inst.kind == Kind.INDEX:
            self._set_source(self._spots, inst.index, tick.price, tick.ts_recv, from_tick=True)
            return True
        row = self._instrument_row(inst)
        a = self._inst.arrays
        a["own_px"][row] = tick.price
        a["own_ts"][row] = tick.ts_recv
        self._dirty_inst.add(row)
        if inst.kind == Kind.FUTURE and inst.expiry_ns is not None:
            key = (inst.index, inst.expiry_ns)
            self._set_source(self._fwds, key, tick.price, tick.ts_recv, from_tick=True)
        elif inst.kind == Kind.SPOT:
            self._set_source(self._spots, inst.index, tick.price, tick.ts_recv, from_tick=False)
        return True

    def apply_quote(self, quote: Quote) -> bool:
        """Store an option quote; False if the instrument is unknown or not an option."""
        return self.apply_quotes((quote,)) == 0

    def apply_quotes(self, quotes: Iterable[Quote]) -> int:
        """Store option quotes (the latest of an instrument wins); returns how many were
        refused: unknown instruments and instruments that are not options."""
        known = self._quote_rows
        latest: dict[int, Quote] = {}
        refused = 0
        for quote in quotes:
            row = known.get(quote.instrument)
            if row is None:
                inst = self.registry.get(quote.instrument)
                if inst is None or inst.kind != Kind.OPTION:
                    refused += 1
                    continue
                row = known[quote.instrument] = self._instrument_row(inst)
            latest[row] = quote
            if quote.index_price is not None:
                index = self._inst_defs[row].index
                self._set_source(self._spots, index, quote.index_price, quote.ts_recv, False)
        if not latest:
            return refused
        rows = np.fromiter(latest, np.int64, len(latest))
        qs = latest.values()
        a = self._inst.arrays
        # None (a field the quote lacks) becomes NaN in a float64 column
        a["bid"][rows] = [q.bid for q in qs]
        a["ask"][rows] = [q.ask for q in qs]
        a["mark"][rows] = [q.mark for q in qs]
        a["iv"][rows] = [q.iv for q in qs]
        a["own_px"][rows] = [q.underlying_price for q in qs]
        a["own_ts"][rows] = [q.ts_recv for q in qs]
        self._dirty_inst.update(latest)
        return refused

    def _set_source(self, table: _Sources, key: Any, px: float, ts: int, from_tick: bool) -> None:
        """Store a shared price and dirty the instruments priced off it. A dedicated tick feed
        wins over copies in quotes (``from_tick``). Its first price dirties every dependent:
        each may now prefer it to what it used before."""
        row = table.row(key)
        cols = table.cols.arrays
        if cols["from_tick"][row] and not from_tick:
            return
        first = not cols["px"][row] > 0.0
        cols["px"][row] = px
        cols["ts"][row] = ts
        if from_tick:
            cols["from_tick"][row] = True
        if first:
            self._dirty_inst.update(table.dependents[row])
        else:
            self._dirty_inst.update(table.users[row])

    # ------------------------------------------------------------------ cycle
    def cycle(self, now_ns: int, full: bool = False) -> set[tuple[str, str]]:
        """Reprice what changed (everything, at ``now_ns``, when ``full`` or on the first call)
        and update the sums. Returns the (book, underlying) pairs whose figures changed."""
        ia = self._inst.arrays
        pairs = self._bu_pairs
        if full or self.valuation_ns == 0:
            self.valuation_ns = now_ns
            self._dirty_inst.clear()
            self._dirty_lots.clear()
            self._price(np.flatnonzero(ia["n_lots"][: self._inst.n]), self._priced())
            # every sum from scratch, threaded (the result does not depend on threads)
            kernels.lot_rebuild_parallel_kernel(
                self._lots.head(kernels.LotColumns), self._priced(), self._sums(self._groups.n)
            )
            return set(pairs)
        if not (self._dirty_inst or self._dirty_lots):
            return set()
        dirty = np.fromiter(self._dirty_inst, np.int64, len(self._dirty_inst))
        dirty_lots = np.fromiter(self._dirty_lots, np.int64, len(self._dirty_lots))
        self._dirty_inst.clear()
        self._dirty_lots.clear()
        self._stamp += 1
        touched = np.empty(self._bus.n, dtype=np.int64)
        moved = np.empty(dirty.size, dtype=np.int64)
        counts = np.zeros(2, dtype=np.int64)
        # Many at once (an index move under a book priced off it): reprice on the thread pool.
        threaded = dirty.size >= PARALLEL_MIN_ROWS
        if threaded:
            self._price(dirty[ia["n_lots"][dirty] > 0], self._priced())
        _reprice_dirty(
            dirty, dirty_lots, self._inst.group(kernels.InstrumentColumns), self._market(),
            self._priced(), self._lots.group(kernels.LotColumns), self._sums(), self._stamp,
            not threaded, touched, moved, counts,
        )  # fmt: skip
        n_touched, n_moved = counts.tolist()
        for i in moved[:n_moved].tolist():
            self._track_users(i)
        return {pairs[k] for k in touched[:n_touched].tolist()}

    def _track_users(self, row: int) -> None:
        """Record whether instrument ``row`` is priced off its index and off its forward, so a
        move of either dirties it."""
        ia = self._inst.arrays
        for flag, table, col in (
            ("uses_spot", self._spots, "spot_row"),
            ("uses_fwd", self._fwds, "fwd_row"),
        ):
            source = int(ia[col][row])
            if source < 0:
                continue
            users = table.users[source]
            if ia[flag][row]:
                users.add(row)
            else:
                users.discard(row)

    def _priced(self) -> kernels.PricedColumns:
        """The live columns the pricing step writes."""
        return self._inst.group(kernels.PricedColumns)

    def _market(self) -> kernels.Market:
        """The shared prices and the valuation's clock, as the pricing kernels take them: the
        same object until the valuation time, the staleness limit or the prices' columns
        change."""
        sc, fc = self._spots.cols, self._fwds.cols
        key = (sc.capacity, fc.capacity, self.valuation_ns, self.stale_after_ns)
        cached = self._market_cache
        if cached is None or cached[0] != key:
            if cached is not None and cached[0][:2] == key[:2]:  # the same (checked) columns
                market = cached[1]._replace(
                    valuation_ns=self.valuation_ns, stale_after_ns=self.stale_after_ns
                )
            else:
                sa, fa = sc.arrays, fc.arrays
                market = kernels.Market(
                    sa["px"], sa["ts"], fa["px"], fa["ts"], self.valuation_ns, self.stale_after_ns
                )
                kernels.check_group(market)
            cached = self._market_cache = (key, market)
        return cached[1]

    def _sums(self, n_groups: int | None = None) -> kernels.GroupSums:
        """The sums of the groups (the first ``n_groups`` only, when given), of the (book,
        underlying) pairs and of the books, as the kernels take them; without ``n_groups``,
        the same object until one of the three grows."""
        key = (self._groups.capacity, self._bus.capacity, self._books.capacity)
        if n_groups is None and self._sums_cache is not None and self._sums_cache[0] == key:
            return self._sums_cache[1]
        ga, ua, ba = self._groups.arrays, self._bus.arrays, self._books.arrays
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

    def _price(self, rows: npt.NDArray[np.int64], out: kernels.PricedColumns) -> None:
        """Derive X, T, sigma and staleness for ``rows`` from the stored inputs, then write
        their unit exposures, statuses and bad flags into ``out`` (one numba pass:
        :func:`engine.kernels.price_rows_kernel`)."""
        ia = self._inst.arrays
        live = out is self._priced()
        if live:
            was_spot = ia["uses_spot"][rows]
            was_fwd = ia["uses_fwd"][rows]
        parallel = rows.size >= PARALLEL_MIN_ROWS
        kernel = kernels.price_rows_parallel_kernel if parallel else kernels.price_rows_kernel
        kernel(rows, self._inst.group(kernels.InstrumentColumns), self._market(), out)
        if live:  # who is priced off which shared price, for dirtying on its next move
            moved = (ia["uses_spot"][rows] != was_spot) | (ia["uses_fwd"][rows] != was_fwd)
            for i in rows[moved].tolist():
                self._track_users(i)

    # ------------------------------------------------------------------ results
    def group_values(self) -> npt.NDArray[np.float64]:
        """Sums per group, (n_groups, len(AGG_FIELDS)): high part + compensation."""
        g = self._groups
        values: npt.NDArray[np.float64] = g.arrays["hi"][: g.n] + g.arrays["lo"][: g.n]
        return values

    def group_keys(self) -> list[tuple[str, str, str]]:
        """(book, underlying, expiry label) of each group, in group order."""
        return list(self._group_keys)

    def _scratch_price(self, rows: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
        """Outputs of pricing ``rows`` from the stored inputs at the valuation time, in new
        arrays (meaningful at ``rows`` only): the live columns are untouched."""
        scratch = {
            name: np.empty_like(self._inst.arrays[name]) for name in kernels.PricedColumns._fields
        }
        self._price(rows, kernels.PricedColumns(**scratch))
        return scratch

    def priced(self, names: list[str]) -> Priced:
        """The instruments ``names`` (held or not: hedge instruments, strategy legs), priced at
        the valuation time from their stored inputs, in copies.

        Raises:
            ValueError: an index among ``names`` (it cannot be held).
        """
        rows = []
        for name in names:
            inst = self.registry.get(name)
            rows.append(-1 if inst is None else self._instrument_row(inst))
        r = np.array(rows, dtype=np.int64)
        known = r[r >= 0]
        scratch = self._scratch_price(known)
        ia = self._inst.arrays
        at = np.where(r >= 0, r, 0)
        ok = (r >= 0) & (scratch["status"][at] == kernels.OK)
        nan = np.where(ok, 0.0, np.nan)  # NaN where not priced
        one = self._scenario_book(at, scratch, ia["mult"][at].copy(), np.zeros_like(at))
        return Priced(
            names=list(names),
            ok=ok,
            units=scratch["unit"][at, : kernels.N_UNIT - 2] + nan[:, None],
            positions=one._replace(T=one.T + nan, sigma=one.sigma + nan, X=one.X + nan),
        )

    def _scenario_book(
        self,
        rows: npt.NDArray[np.int64],
        priced: dict[str, npt.NDArray[Any]],
        weight: F64,
        und: npt.NDArray[np.int64],
    ) -> ScenarioBook:
        """Instruments ``rows`` as a :class:`ScenarioBook`, their X, T and sigma taken from
        ``priced`` (the live columns or a scratch copy)."""
        ia = self._inst.arrays
        return ScenarioBook(
            kind=ia["kind"][rows],
            black=ia["black"][rows],
            inverse=ia["inverse"][rows],
            is_call=ia["is_call"][rows],
            strike=ia["strike"][rows],
            T=priced["T"][rows],
            r=ia["r"][rows],
            q=ia["q"][rows],
            sigma=priced["sigma"][rows],
            X=priced["X"][rows],
            weight=weight,
            und=und,
        )

    def held_expiries(self) -> list[tuple[str, int]]:
        """(index, expiry_ns) of every expiry with an open position (options, futures)."""
        n = self._lots.n
        la, ia = self._lots.arrays, self._inst.arrays
        rows = np.unique(ia["fwd_row"][la["inst"][:n][la["qty"][:n] != 0.0]])
        keys = list(self._fwds.ids)
        return [keys[r] for r in rows.tolist() if r >= 0]

    def index_price(self, index: str) -> float:
        """The latest price of ``index`` (NaN: none yet)."""
        row = self._spots.ids.get(index)
        return math.nan if row is None else float(self._spots.cols.arrays["px"][row])

    def settle_expiry(self, index: str, expiry_ns: int) -> list[SettledLot]:
        """Close every open position in the instruments on ``index`` that expire at
        ``expiry_ns``: quantity and cost go to 0, so they leave the book (the next cycle moves
        the sums) and their P&L leaves the ``pnl`` figure (it is realised: the caller settles
        it). Returns what each position held."""
        row = self._fwds.ids.get((index, expiry_ns))
        if row is None:
            return []
        la, ia = self._lots.arrays, self._inst.arrays
        out = []
        for i in self._fwds.dependents[row]:
            inst = self._inst_defs[i]
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
                            book=self._lot_book[lot],
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
                    self._dirty_lots.add(lot)
                lot = int(la["next_lot"][lot])
        return out

    def chains(self) -> list[Chain]:
        """Every option chain (underlying, settlement, expiry) quoted or held, sorted by
        underlying and expiry: what the skew fits take (engine.risk.skew)."""
        ia = self._inst.arrays
        rows = np.fromiter(self._quote_rows.values(), np.int64, len(self._quote_rows))
        held = np.flatnonzero(ia["n_lots"][: self._inst.n])
        rows = np.union1d(rows, held[ia["kind"][held] == kernels.KIND_OPTION])
        scratch = self._scratch_price(rows)
        groups: dict[tuple[str, int, bool], list[int]] = {}
        for i in rows.tolist():
            inst = self._inst_defs[i]
            name = (
                inst.underlying if inst.is_inverse else f"{inst.underlying}_{inst.quote_currency}"
            )
            groups.setdefault((name, inst.expiry_ns or 0, inst.is_inverse), []).append(i)
        out = []
        for (und, expiry_ns, inverse), members in sorted(groups.items()):
            if expiry_ns <= self.valuation_ns:
                continue  # expired
            r = np.array(members, dtype=np.int64)
            usable = (scratch["status"][r] == kernels.OK) & ~scratch["bad"][r]
            out.append(
                Chain(
                    underlying=und,
                    expiry_ns=expiry_ns,
                    expiry=expiry_label(expiry_ns, Kind.OPTION),
                    coin_settled=inverse,
                    instruments=[self._inst_defs[i].name for i in members],
                    strike=ia["strike"][r],
                    is_call=ia["is_call"][r],
                    sigma=np.where(usable, scratch["sigma"][r], np.nan),
                    forward=scratch["X"][r],
                    T=scratch["T"][r],
                    held=ia["n_lots"][r] > 0,
                    quote_ns=ia["own_ts"][r],
                )
            )
        return out

    def recompute(self) -> npt.NDArray[np.float64]:
        """Sums per group computed from scratch from the stored inputs at the valuation time,
        each an exactly rounded sum (math.fsum); the incremental state must equal these."""
        n_inst = self._inst.n
        scratch = self._scratch_price(np.arange(n_inst, dtype=np.int64))
        la = self._lots.arrays
        n_fig = kernels.N_UNIT - 2
        out = np.zeros((self._groups.n, kernels.N_AGG))
        parts: dict[tuple[int, int], list[float]] = {}
        for lot in range(self._lots.n):
            i = int(la["inst"][lot])
            grp = int(la["group"][lot])
            qn = float(la["qty"][lot])
            u = scratch["unit"][i]
            vals = [qn * float(u[c]) for c in range(n_fig)]
            vals.append(
                qn * float(u[n_fig]) + float(la["cost"][lot]) * float(u[n_fig + 1])
                if la["has_cost"][lot]
                else 0.0
            )
            vals.append(1.0 if qn != 0.0 else 0.0)
            vals.append(1.0 if qn != 0.0 and scratch["bad"][i] else 0.0)
            for c, v in enumerate(vals):
                parts.setdefault((grp, c), []).append(v)
        for (grp, c), vs in parts.items():
            out[grp, c] = math.fsum(vs)
        return out

    def positions(self) -> list[tuple[str, str, float]]:
        """(book, instrument, net quantity) of every lot."""
        la = self._lots.arrays
        return [
            (self._lot_book[lot], self._inst_defs[int(la["inst"][lot])].name, float(la["qty"][lot]))
            for lot in range(self._lots.n)
        ]

    def exposure_payloads(
        self,
        keys: Iterable[tuple[str, str]],
        now_ns: int,
        books: Iterable[str] | None = None,
    ) -> list[tuple[str, Exposure]]:
        """Payloads for the given (book, underlying) pairs, keyed ``{book}:{underlying}``,
        then for ``books`` (default: the books of those pairs), keyed ``{book}``; each group
        sorted (schema: docs/redis.md)."""
        valuation = self.valuation_ns
        pairs = sorted(keys)
        book_names = sorted({b for b, _ in pairs} if books is None else set(books))
        out: list[tuple[str, Exposure]] = []
        if pairs:
            ua = self._bus.arrays
            rows = [self._bu_rows[k] for k in pairs]
            sums = (ua["hi"][rows] + ua["lo"][rows]).tolist()
            for (book, und), row, expiries in zip(
                pairs, sums, self._expiry_columns(pairs), strict=True
            ):
                d, d_usd, d_adj, g, cg, vega, theta, rho, vanna, volga, mv, pnl, n, n_stale = row
                payload = UnderlyingExposure(
                    ts_ns=now_ns,
                    valuation_ts_ns=valuation,
                    book=book,
                    underlying=und,
                    delta=d,
                    delta_usd=d_usd,
                    delta_adj=d_adj,
                    gamma=g,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    vanna=vanna,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=round(n),
                    n_stale=round(n_stale),
                    expiries=expiries,
                    units=UNITS,
                )
                out.append((f"{book}:{und}", payload))
        if book_names:
            ba = self._books.arrays
            rows = [self._book_rows[b] for b in book_names]
            sums = (ba["hi"][rows] + ba["lo"][rows]).tolist()
            for book, row in zip(book_names, sums, strict=True):
                # delta, delta_adj, gamma, vanna: underlying units, they do not add up here
                _, d_usd, _, _, cg, vega, theta, rho, _, volga, mv, pnl, n, n_stale = row
                payload_book = BookExposure(
                    ts_ns=now_ns,
                    valuation_ts_ns=valuation,
                    book=book,
                    delta_usd=d_usd,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=round(n),
                    n_stale=round(n_stale),
                    units=UNITS,
                )
                out.append((book, payload_book))
        return out

    def _expiry_columns(self, pairs: list[tuple[str, str]]) -> list[ExpiryColumns]:
        """Each pair's ``expiries``: ``expiry`` (labels, in time order) and one column per
        figure with a value per expiry. The columns of all the pairs are gathered in one pass,
        then converted to Python numbers one pair at a time."""
        cached = []
        for key in pairs:
            entry = self._bu_columns.get(key)
            if entry is None:
                groups = self._bu_groups.get(key, [])
                labels = [self._group_keys[g][2] for g in groups]
                entry = self._bu_columns[key] = (np.array(groups, dtype=np.int64), labels)
            cached.append(entry)
        index = np.concatenate([c[0] for c in cached])
        ga = self._groups.arrays
        values = (ga["hi"][index] + ga["lo"][index]).T.copy()  # C order: each row contiguous
        counts = np.rint(values[_N_FLOAT:]).astype(np.int64)  # n_positions, n_stale
        out: list[ExpiryColumns] = []
        start = 0
        for _, labels in cached:
            stop = start + len(labels)
            # one call each: the pair's columns as lists of Python numbers
            d, d_usd, d_adj, g, cg, vega, theta, rho, vanna, volga, mv, pnl = values[
                :_N_FLOAT, start:stop
            ].tolist()
            n, n_stale = counts[:, start:stop].tolist()
            out.append(
                ExpiryColumns(
                    expiry=labels,
                    delta=d,
                    delta_usd=d_usd,
                    delta_adj=d_adj,
                    gamma=g,
                    cash_gamma=cg,
                    vega=vega,
                    theta=theta,
                    rho=rho,
                    vanna=vanna,
                    volga=volga,
                    market_value=mv,
                    pnl=pnl,
                    n_positions=n,
                    n_stale=n_stale,
                )
            )
            start = stop
        return out

    def book_risk(self, book: str) -> BookRisk:
        """``book``'s open positions and exposure sums, copied for the risk measures.

        Raises:
            KeyError: no such book.
        """
        return self.books_risk([book])[book]

    def books_risk(self, books: Iterable[str] | None = None) -> dict[str, BookRisk]:
        """:meth:`book_risk` of each of ``books`` (default: every book), the lots sorted by
        book once for all of them.

        Raises:
            KeyError: no such book.
        """
        la, ia, ga = self._lots.arrays, self._inst.arrays, self._groups.arrays
        n = self._lots.n
        groups = la["group"][:n]
        lots = np.flatnonzero(la["qty"][:n] != 0.0)
        owner = ga["book"][groups[lots]]
        # a stable sort of 16-bit keys is a radix sort: a fifth of the time of int64's
        keys = owner.astype(np.uint16) if self._books.n <= 1 << 16 else owner
        order = np.argsort(keys, kind="stable")
        lots, owner = lots[order], owner[order]
        bounds = np.searchsorted(owner, np.arange(self._books.n + 1))
        ua = self._bus.arrays
        spot_px = self._spots.cols.arrays["px"]
        out = {}
        for book in self.books() if books is None else books:
            brow = self._book_rows[book]
            mine = lots[bounds[brow] : bounds[brow + 1]]
            pairs = sorted((u, row) for (b, u), row in self._bu_rows.items() if b == book)
            rows = [row for _, row in pairs]
            und_of_bu = np.full(self._bus.n, -1, dtype=np.int64)
            und_of_bu[rows] = np.arange(len(pairs))
            inst = la["inst"][mine]
            und = und_of_bu[ga["bu"][groups[mine]]]
            prices = np.full(len(pairs), _NAN)  # each underlying's index, from one of its lots
            first = np.full(len(pairs), -1, dtype=np.int64)
            first[und[::-1]] = np.arange(len(und) - 1, -1, -1)  # each one's first lot
            held = first >= 0
            prices[held] = spot_px[ia["spot_row"][inst[first[held]]]]
            out[book] = BookRisk(
                book=book,
                valuation_ns=self.valuation_ns,
                underlyings=[u for u, _ in pairs],
                positions=self._scenario_book(inst, ia, la["qty"][mine] * ia["mult"][inst], und),
                figures=ua["hi"][rows] + ua["lo"][rows],
                prices=prices,
                rows=inst,
                defs=self._inst_defs,
            )
        return out

    def books(self) -> list[str]:
        """Every book held, sorted."""
        return sorted(self._book_rows)

    def bu_keys(self) -> list[tuple[str, str]]:
        """Every (book, underlying) pair held."""
        return sorted(self._bu_groups)

    @property
    def lot_count(self) -> int:
        """Lots so far (a lot is a book's net position in one instrument; lots are never
        removed, a closed one holds 0)."""
        return self._lots.n

    def lot_instruments(self, start: int = 0) -> list[str]:
        """Instrument names of the lots from number ``start`` on, in the order they opened."""
        la = self._lots.arrays["inst"]
        return [self._inst_defs[int(i)].name for i in la[start : self._lots.n]]

    def instruments(self) -> list[str]:
        """Names of every instrument held (or quoted) so far."""
        return [inst.name for inst in self._inst_defs]

    def instrument_status(self) -> PortfolioStatus:
        """Counts for health reporting: instruments, lots, groups, stale instruments held."""
        held = self._inst.arrays["n_lots"][: self._inst.n] > 0
        bad = self._inst.arrays["bad"][: self._inst.n]
        return PortfolioStatus(
            instruments=self._inst.n,
            lots=self._lots.n,
            groups=self._groups.n,
            stale_instruments=int(np.count_nonzero(bad & held)),
            unresolved_fills=len(self.unresolved_fills),
            duplicate_fills=self.duplicate_fills,
        )


def _check_book(book: str) -> None:
    if not book or ":" in book:
        raise ValueError(f"a book name is not empty and has no ':' (snapshot keys), got {book!r}")


def _check_fill(quantity: float, price: float | None) -> None:
    if not math.isfinite(quantity):
        raise ValueError(f"quantity must be finite, got {quantity}")
    if price is not None and not (math.isfinite(price) and price > 0.0):
        raise ValueError(f"price must be finite and > 0, got {price}")
