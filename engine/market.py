"""The portfolio's market inputs: one row per instrument seen (held or quoted), its latest own
market data, the prices instruments share (indices/spot and forwards), and the pricing step
that turns them into each instrument's unit exposure at the valuation time.

Part of the streaming portfolio (:mod:`engine.state`, whose docstring states the pricing
rules): ticks and quotes are stored here and dirty the instruments they move; the portfolio's
cycle reprices the dirty ones.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any, Literal

import numba
import numpy as np
import numpy.typing as npt

from engine import american_kernels as _ak
from engine import kernels
from engine.arguments import PARALLEL_MIN_ROWS
from engine.carries import Carries, UnderlyingParams
from engine.columns import Columns, Specs, distinct
from engine.events import Quote, Tick
from engine.instruments import (
    DERIBIT,
    Exercise,
    Instrument,
    InstrumentRegistry,
    Kind,
    Settlement,
)

__all__ = ["AmericanAccuracy", "MarketData", "Sources", "UnderlyingParams"]

AmericanAccuracy = Literal["fast", "accurate"]
"""The scheme American options are priced with (engine.american_kernels; docs/american.md):
``"fast"`` within 1e-5 relative of the converged price, ``"accurate"`` within 1e-8."""
_AMERICAN_CODE = {"fast": kernels.AMERICAN_FAST, "accurate": kernels.AMERICAN_ACCURATE}
TABLED_MIN_OPTIONS = 16
"""American options of one underlying and expiry from which the fast scheme reads their
boundaries from tables (kernels.AMERICAN_TABLED; docs/american.md, "Boundary tables"): a
table costs 8 solves, which a chain's options share; fewer options solve their own."""

_NAN = math.nan
_KIND_CODE = {
    Kind.OPTION: kernels.KIND_OPTION,
    Kind.FUTURE: kernels.KIND_FUTURE,
    Kind.PERPETUAL: kernels.KIND_PERPETUAL,
    Kind.SPOT: kernels.KIND_SPOT,
}

INSTRUMENT_SPECS: Specs = {
    "kind": (np.int8, 0, 0),
    "black": (np.bool_, False, 0),
    "inverse": (np.bool_, False, 0),
    "is_call": (np.bool_, False, 0),
    "american": (np.int8, kernels.EUROPEAN, 0),
    "memo_row": (np.int64, -1, 0),
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
    "div_pv": (np.float64, 0.0, 0),
    "div_rho": (np.float64, 0.0, 0),
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
"""The instruments' columns (:class:`engine.kernels.InstrumentColumns` and
:class:`engine.kernels.PricedColumns`)."""

AMERICAN_PARALLEL_MIN_ROWS = 64
"""American options in a repricing from which it runs on the thread pool: 64 of them take
about 2 ms with their Greeks under the fast scheme, far above the pool's wake-up."""

_SOURCE_SPECS: Specs = {
    "px": (np.float64, _NAN, 0),
    "ts": (np.int64, 0, 0),
    "from_tick": (np.bool_, False, 0),
}


class Sources:
    """Shared prices: indices/spot (keyed by index name) or forwards (index, expiry). Each
    knows the instruments that depend on it and those priced off it at their last reprice, so
    a new price dirties only those."""

    def __init__(self) -> None:
        self.cols = Columns(_SOURCE_SPECS, capacity=8)
        self.ids: dict[Any, int] = {}
        self.dependents: list[list[int]] = []
        self.users: list[set[int]] = []

    def row(self, key: Any) -> int:
        """The row of ``key``, added when new."""
        row = self.ids.get(key)
        if row is None:
            row = self.cols.append()
            self.ids[key] = row
            self.dependents.append([])
            self.users.append(set())
        return row


I64 = npt.NDArray[np.int64]
_FILL_CHUNK = 65_536
"""Instruments whose columns :meth:`MarketData.rows` writes at once (their fields gathered into
lists in between: a bound on that memory)."""


_TRACK_ONE_BY_ONE = 64
"""Rows from which :meth:`MarketData.track_many` groups them by shared price."""


def _or(values: list[Any], default: float) -> npt.NDArray[Any]:
    """``values`` with None replaced by ``default``, as an array of ``default``'s type."""
    out = np.array(values, dtype=object)
    out[np.fromiter(map(operator.is_, values, repeat(None)), bool, len(values))] = default
    return out.astype(type(default))


class MarketData:
    """The instruments seen so far (one row each), their market inputs, and their pricing.

    Args:
        registry: resolves instrument names (Deribit names parse on first sight).
        underlyings: rate and yield per underlying name; missing ones use r = q = 0.
        stale_after_ns: an input older than this (at the valuation time) is stale.
        american_accuracy: the scheme of American options (:data:`AmericanAccuracy`).

    Attributes:
        cols: the instruments' columns (:data:`INSTRUMENT_SPECS`).
        defs: each row's instrument.
        spots: index/spot prices, by index name; ``fwds``: forwards, by (index, expiry_ns).
        dirty: rows whose inputs changed since the last cycle (the portfolio's lots add theirs).
        valuation_ns: the valuation time; the portfolio's cycle moves it.
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        underlyings: dict[str, UnderlyingParams] | None = None,
        stale_after_ns: int = 60_000_000_000,
        american_accuracy: AmericanAccuracy = "fast",
    ) -> None:
        if american_accuracy not in _AMERICAN_CODE:
            raise ValueError(
                f"american_accuracy must be 'fast' or 'accurate', got {american_accuracy!r}"
            )
        self.registry = registry
        self._american = _AMERICAN_CODE[american_accuracy]
        self.n_american = 0
        """American options among the rows (none: no repricing step looks for them)."""
        scheme = _ak.ACCURATE if american_accuracy == "accurate" else _ak.FAST
        self.memos = Columns({"memo": (np.float64, math.nan, _ak.memo_width(scheme))}, capacity=1)
        """Each American option's exercise boundaries from its last repricing
        (engine.american_kernels: read back while its vol, rates and time left allow)."""
        self._chains: dict[tuple[str, int], list[int]] = {}
        """The fast scheme's American options by underlying and expiry (their rows)."""
        self.tables = np.empty((1, 0))
        """The fast scheme's boundary tables, a row per numba thread (engine.american_kernels:
        each option's boundaries interpolated in vol from those of its expiry, rates and vol
        octave); allocated with the first American option."""
        self.stale_after_ns = stale_after_ns
        self.valuation_ns = 0
        self.cols = Columns(INSTRUMENT_SPECS)
        self._rows: dict[str, int] = {}
        self.quote_rows: dict[str, int] = {}  # options quoted so far, by name
        self.defs: list[Instrument] = []
        self.spots = Sources()  # by index name
        self.fwds = Sources()  # by (index, expiry_ns)
        self.dirty: set[int] = set()
        self.carries = Carries(self.cols, dict(underlyings or {}))
        """Each row's r, q and dividends' PV (:mod:`engine.carries`)."""
        # the kernels' Market group, by the state it was built from
        self._market_cache: tuple[tuple[int, ...], kernels.Market] | None = None

    def row(self, inst: Instrument) -> int:
        """The row of ``inst``, added when new.

        Raises:
            ValueError: an index (it cannot be held).
        """
        row = self._rows.get(inst.name)
        if row is not None:
            return row
        if inst.kind == Kind.INDEX:
            raise ValueError(f"an index ({inst.name}) cannot be held")
        row = self.cols.append()
        a = self.cols.arrays
        a["kind"][row] = _KIND_CODE[inst.kind]
        a["black"][row] = inst.on_forward
        a["inverse"][row] = inst.is_inverse
        a["is_call"][row] = bool(inst.is_call)
        if inst.kind == Kind.OPTION and inst.exercise == Exercise.AMERICAN:
            a["american"][row] = self._american
            a["memo_row"][row] = self.memos.append()
            self.join_chains([inst], [row])
            self.n_american += 1
        a["strike"][row] = inst.strike if inst.strike is not None else 1.0
        a["mult"][row] = inst.multiplier
        a["expiry_ns"][row] = inst.expiry_ns or 0
        a["has_expiry"][row] = inst.expiry_ns is not None
        self.carries.add([inst], row, self.valuation_ns)
        spot_row = self.spots.row(inst.index)
        a["spot_row"][row] = spot_row
        self.spots.dependents[spot_row].append(row)
        if inst.expiry_ns is not None:
            fwd_row = self.fwds.row((inst.index, self._forward_expiry_ns(inst, inst.expiry_ns)))
            a["fwd_row"][row] = fwd_row
            self.fwds.dependents[fwd_row].append(row)
        self._rows[inst.name] = row
        self.defs.append(inst)
        return row

    def rows(self, insts: Sequence[Instrument]) -> npt.NDArray[np.int64]:
        """:meth:`row` of each of ``insts``: the same rows and the same state as one by one,
        the new rows' columns written at once and their shared prices' dependents extended
        once per price.

        Raises:
            ValueError: an index among ``insts`` (then none is added).
        """
        for inst in insts:
            if inst.kind == Kind.INDEX:
                raise ValueError(f"an index ({inst.name}) cannot be held")
        names = [inst.name for inst in insts]
        known, start = self._rows, self.cols.n
        if not known:  # the usual bulk: a first load, each name once
            ints = list(range(start, start + len(names)))
            known.update(zip(names, ints, strict=True))
            if len(known) == len(names):
                self._add(list(insts), ints)
                return np.arange(start, start + len(names), dtype=np.int64)
            known.clear()
        new = dict.fromkeys(names)  # in the order they first appear
        for name in known.keys() & new.keys():
            del new[name]
        if new:
            first = dict(zip(reversed(names), reversed(insts), strict=True))  # first of each
            ints = list(range(start, start + len(new)))
            self._add(list(map(first.__getitem__, new)), ints)
            known.update(zip(new, ints, strict=True))
        return np.fromiter(map(known.__getitem__, names), np.int64, len(names))

    def _add(self, insts: list[Instrument], ints: list[int]) -> None:
        """New rows for ``insts`` (in order, none known, none twice, no index): rows
        ``ints`` (the next ones, as the int objects ``_rows`` holds: the sources' dependents
        share them)."""
        self.cols.extend(len(insts))
        for k in range(0, len(insts), _FILL_CHUNK):
            _fill(self, insts[k : k + _FILL_CHUNK], ints[k : k + _FILL_CHUNK])
        self.defs.extend(insts)

    def set_carry(self, chain: str, expiry_ns: int, dividend_yield: float) -> int:
        """Price the options of ``chain`` expiring at ``expiry_ns`` whose underlying takes its
        carry from the chain (:meth:`engine.carries.Carries.set_carry`) with
        ``dividend_yield``; returns how many rows it dirtied (a yield that did not change
        dirties none). A non-finite yield is ignored."""
        if not math.isfinite(dividend_yield):
            return 0
        rows = self.carries.set_carry(chain, expiry_ns, dividend_yield)
        self.dirty.update(rows.tolist())
        return int(rows.size)

    def _forward_expiry_ns(self, inst: Instrument, expiry_ns: int) -> int:
        """The expiry of the forward ``inst`` is priced on: its own, or for an option on a
        future the future's (an ES weekly on ESH5 is priced on ESH5's price)."""
        if inst.underlying_future is not None:
            future = self.registry.get(inst.underlying_future)
            if future is not None and future.expiry_ns is not None:
                return future.expiry_ns
        return expiry_ns

    # ------------------------------------------------------------------ inputs
    def apply_tick(self, tick: Tick) -> bool:
        """Store a tick of an index, spot, future or perpetual; False if it is not one."""
        inst = self.registry.get(tick.instrument)
        if inst is None or inst.kind == Kind.OPTION:
            return False
        if inst.kind == Kind.INDEX:
            self.set_source(self.spots, inst.index, tick.price, tick.ts_recv, from_tick=True)
            return True
        row = self.row(inst)
        a = self.cols.arrays
        a["own_px"][row] = tick.price
        a["own_ts"][row] = tick.ts_recv
        self.dirty.add(row)
        if inst.kind == Kind.FUTURE and inst.expiry_ns is not None:
            key = (inst.index, inst.expiry_ns)
            self.set_source(self.fwds, key, tick.price, tick.ts_recv, from_tick=True)
        elif inst.kind == Kind.SPOT:
            self.set_source(self.spots, inst.index, tick.price, tick.ts_recv, from_tick=False)
        return True

    def apply_quotes(self, quotes: Iterable[Quote]) -> int:
        """Store option quotes (the latest of an instrument wins); returns how many were
        refused: unknown instruments and instruments that are not options."""
        known = self.quote_rows
        latest: dict[int, Quote] = {}
        refused = 0
        for quote in quotes:
            row = known.get(quote.instrument)
            if row is None:
                inst = self.registry.get(quote.instrument)
                if inst is None or inst.kind != Kind.OPTION:
                    refused += 1
                    continue
                row = known[quote.instrument] = self.row(inst)
            latest[row] = quote
            if quote.index_price is not None:
                index = self.defs[row].index
                self.set_source(self.spots, index, quote.index_price, quote.ts_recv, False)
        if not latest:
            return refused
        rows = np.fromiter(latest, np.int64, len(latest))
        qs = latest.values()
        a = self.cols.arrays
        # None (a field the quote lacks) becomes NaN in a float64 column
        a["bid"][rows] = [q.bid for q in qs]
        a["ask"][rows] = [q.ask for q in qs]
        a["mark"][rows] = [q.mark for q in qs]
        a["iv"][rows] = [q.iv for q in qs]
        a["own_px"][rows] = [q.underlying_price for q in qs]
        a["own_ts"][rows] = [q.ts_recv for q in qs]
        self.dirty.update(latest)
        return refused

    def set_source(self, table: Sources, key: Any, px: float, ts: int, from_tick: bool) -> None:
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
            self.dirty.update(table.dependents[row])
        else:
            self.dirty.update(table.users[row])

    def index_price(self, index: str) -> float:
        """The latest price of ``index`` (NaN: none yet)."""
        row = self.spots.ids.get(index)
        return math.nan if row is None else float(self.spots.cols.arrays["px"][row])

    # ------------------------------------------------------------------ pricing
    def track_users(self, row: int) -> None:
        """Record whether instrument ``row`` is priced off its index and off its forward, so a
        move of either dirties it."""
        ia = self.cols.arrays
        for flag, table, col in (
            ("uses_spot", self.spots, "spot_row"),
            ("uses_fwd", self.fwds, "fwd_row"),
        ):
            source = int(ia[col][row])
            if source < 0:
                continue
            users = table.users[source]
            if ia[flag][row]:
                users.add(row)
            else:
                users.discard(row)

    def track_many(self, rows: npt.NDArray[np.int64]) -> None:
        """:meth:`track_users` of each of ``rows``, each shared price's users updated once."""
        if rows.size < _TRACK_ONE_BY_ONE:
            for i in rows.tolist():
                self.track_users(i)
            return
        ia = self.cols.arrays
        for flag, table, col in (
            ("uses_spot", self.spots, "spot_row"),
            ("uses_fwd", self.fwds, "fwd_row"),
        ):
            source = ia[col][rows]
            held = source >= 0
            key = source[held] * 2 + ia[flag][rows][held]  # per price: users to drop, to add
            order = np.argsort(key, kind="stable")
            s_key, s_rows = key[order], rows[held][order]
            cuts = np.flatnonzero(s_key[1:] != s_key[:-1]) + 1
            for k, part in zip(s_key[np.r_[0, cuts]].tolist(), np.split(s_rows, cuts), strict=True):
                users, dependents = table.users[k >> 1], table.dependents[k >> 1]
                if k & 1 and part.size == len(dependents) == np.unique(part).size:
                    users.update(dependents)  # all of them: the same int objects, no copies
                elif k & 1:
                    users.update(part.tolist())
                else:
                    users.difference_update(part.tolist())

    def priced(self) -> kernels.PricedColumns:
        """The live columns the pricing step writes."""
        return self.cols.group(kernels.PricedColumns)

    def join_chains(self, insts: Sequence[Instrument], rows: Sequence[int]) -> None:
        """Count new American options ``insts`` (at ``rows``) in their underlying's chain at
        their expiry; a chain of TABLED_MIN_OPTIONS or more reads its boundaries from tables
        (its options' memos emptied when it gets there: they held solved boundaries)."""
        if self._american != kernels.AMERICAN_FAST:  # the fast scheme's alone
            return
        code = self.cols.arrays["american"]
        memo_row = self.cols.arrays["memo_row"]
        for inst, row in zip(insts, rows, strict=True):
            chain = self._chains.setdefault((inst.underlying, inst.expiry_ns or 0), [])
            chain.append(row)
            if len(chain) == TABLED_MIN_OPTIONS:
                members = np.array(chain)
                code[members] = kernels.AMERICAN_TABLED
                self.memos.arrays["memo"][memo_row[members]] = math.nan
            elif len(chain) > TABLED_MIN_OPTIONS:
                code[row] = kernels.AMERICAN_TABLED

    def market(self) -> kernels.Market:
        """The shared prices and the valuation's clock, as the pricing kernels take them: the
        same object until the valuation time, the staleness limit or the prices' columns
        change."""
        sc, fc = self.spots.cols, self.fwds.cols
        fast = self._american == kernels.AMERICAN_FAST
        if self.n_american and fast and self.tables.shape[1] == 0:
            threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # untyped
            self.tables = _ak.boundary_tables(_ak.FAST, threads)
        key = (sc.capacity, fc.capacity, self.memos.capacity, self.tables.shape[1],
               self.valuation_ns, self.stale_after_ns)  # fmt: skip
        cached = self._market_cache
        if cached is None or cached[0] != key:
            if cached is not None and cached[0][:4] == key[:4]:  # the same (checked) columns
                market = cached[1]._replace(
                    valuation_ns=self.valuation_ns, stale_after_ns=self.stale_after_ns
                )
            else:
                sa, fa = sc.arrays, fc.arrays
                market = kernels.Market(
                    sa["px"], sa["ts"], fa["px"], fa["ts"], self.valuation_ns,
                    self.stale_after_ns, self.memos.arrays["memo"], self.tables,
                )  # fmt: skip
                kernels.check_group(market)
            cached = self._market_cache = (key, market)
        return cached[1]

    def price(self, rows: npt.NDArray[np.int64], out: kernels.PricedColumns) -> None:
        """Derive X, T, sigma and staleness for ``rows`` from the stored inputs, then write
        their unit exposures, statuses and bad flags into ``out`` (one numba pass:
        :func:`engine.kernels.price_rows_kernel`)."""
        ia = self.cols.arrays
        live = out is self.priced()
        # Every row (a full reprice of a book holding every instrument): the columns' heads,
        # copied whole, rather than gathered row by row (rows are distinct, so then they are
        # a permutation of all rows).
        at: npt.NDArray[np.int64] | slice = (
            slice(0, rows.size) if rows.size == self.cols.n else rows
        )
        if live:
            was_spot = ia["uses_spot"][at].copy()
            was_fwd = ia["uses_fwd"][at].copy()
        parallel = self.threaded(rows)
        kernel = kernels.price_rows_parallel_kernel if parallel else kernels.price_rows_kernel
        kernel(rows, self.cols.group(kernels.InstrumentColumns), self.market(), out)
        if live:  # who is priced off which shared price, for dirtying on its next move
            moved = (ia["uses_spot"][at] != was_spot) | (ia["uses_fwd"][at] != was_fwd)
            self.track_many(np.flatnonzero(moved) if isinstance(at, slice) else rows[moved])

    def threaded(self, rows: npt.NDArray[np.int64]) -> bool:
        """Whether repricing ``rows`` is worth the thread pool: :data:`PARALLEL_MIN_ROWS` of
        them, or :data:`AMERICAN_PARALLEL_MIN_ROWS` American options (each costs about as
        much as a thousand European ones). A book without American options pays nothing for
        the second test."""
        if rows.size >= PARALLEL_MIN_ROWS:
            return True
        if self.n_american == 0 or rows.size < AMERICAN_PARALLEL_MIN_ROWS:
            return False
        american = np.count_nonzero(self.cols.arrays["american"][rows])
        return bool(american >= AMERICAN_PARALLEL_MIN_ROWS)

    def scratch_price(self, rows: npt.NDArray[np.int64]) -> dict[str, npt.NDArray[Any]]:
        """Outputs of pricing ``rows`` from the stored inputs at the valuation time, in new
        arrays (meaningful at ``rows`` only): the live columns are untouched."""
        scratch = {
            name: np.empty_like(self.cols.arrays[name]) for name in kernels.PricedColumns._fields
        }
        self.price(rows, kernels.PricedColumns(**scratch))
        return scratch

    def instruments(self) -> list[str]:
        """Names of every instrument held (or quoted) so far."""
        return [inst.name for inst in self.defs]


def _fill(m: MarketData, insts: list[Instrument], ints: list[int]) -> None:
    """The columns of new rows ``start``... of ``m`` (``insts``, in order), as
    :meth:`MarketData.row` writes them; no Python statement per row unless an underlying has
    a curve or an implied carry, or an option is on a future."""
    n, a, start = len(insts), m.cols.arrays, ints[0]
    rows = slice(start, start + n)
    kind = np.fromiter(map(_KIND_CODE.__getitem__, [i.kind for i in insts]), np.int8, n)
    futures = [i.underlying_future for i in insts]
    on_future = np.fromiter(map(operator.is_not, futures, repeat(None)), bool, n)
    deribit = np.fromiter(map(DERIBIT.__eq__, [i.venue for i in insts]), bool, n)
    a["kind"][rows] = kind
    a["black"][rows] = on_future | (deribit & (kind != kernels.KIND_SPOT))
    coin = map(Settlement.COIN.__eq__, [i.settlement for i in insts])
    a["inverse"][rows] = np.fromiter(coin, bool, n)
    a["is_call"][rows] = np.fromiter(map(bool, [i.is_call for i in insts]), bool, n)
    exercise = map(Exercise.AMERICAN.__eq__, [i.exercise for i in insts])
    american = (kind == kernels.KIND_OPTION) & np.fromiter(exercise, bool, n)
    a["american"][rows][american] = m._american
    n_american = int(np.count_nonzero(american))
    first_memo = m.memos.extend(n_american)
    a["memo_row"][rows][american] = np.arange(first_memo, first_memo + n_american)
    m.n_american += n_american
    if n_american:
        picked = np.flatnonzero(american)
        m.join_chains([insts[j] for j in picked], (start + picked).tolist())
    a["strike"][rows] = _or([i.strike for i in insts], 1.0)
    a["mult"][rows] = np.fromiter([i.multiplier for i in insts], np.float64, n)
    expiry = [i.expiry_ns for i in insts]
    dated = np.fromiter(map(operator.is_not, expiry, repeat(None)), bool, n)
    a["expiry_ns"][rows] = _or(expiry, 0)
    a["has_expiry"][rows] = dated
    m.carries.add(insts, start, m.valuation_ns)
    index = [i.index for i in insts]
    of_index = {key: k for k, key in enumerate(dict.fromkeys(index))}
    group = np.fromiter(map(of_index.__getitem__, index), np.int64, n)
    _depend(m.spots, list(of_index), group, np.arange(n), ints, a["spot_row"])
    dated_rows = np.flatnonzero(dated)
    on = a["expiry_ns"][rows][dated_rows]  # the forward's expiry
    for k in np.flatnonzero(on_future[dated_rows]).tolist():  # priced on its future's
        inst = insts[int(dated_rows[k])]
        on[k] = m._forward_expiry_ns(inst, int(on[k]))
    if not dated_rows.size:
        return
    _, expiry_code = np.unique(on, return_inverse=True)
    spot = group[dated_rows]
    first, group = distinct(spot * (int(expiry_code.max()) + 1) + expiry_code.ravel())
    at = zip(first.tolist(), dated_rows[first].tolist(), strict=True)
    keys = [(index[d], int(on[f])) for f, d in at]
    _depend(m.fwds, keys, group, dated_rows, ints, a["fwd_row"])


def _depend(
    table: Sources,
    keys: list[Any],
    group: I64,
    at: I64,
    ints: list[int],
    column: npt.NDArray[np.int64],
) -> None:
    """Rows ``ints[at]`` (ints: consecutive rows) priced off shared prices: ``keys`` (added
    when new, in this order), ``group`` each row's number in ``keys``. Their ``column`` set,
    the prices' dependents extended (in row order, with the int objects of ``ints``)."""
    sources = np.array([table.row(key) for key in keys], dtype=np.int64)
    column[at + ints[0]] = sources[group]
    order = np.argsort(group, kind="stable")
    s_group, s_at = group[order], at[order]
    cuts = np.flatnonzero(s_group[1:] != s_group[:-1]) + 1
    for g, part in zip(s_group[np.r_[0, cuts]].tolist(), np.split(s_at, cuts), strict=True):
        table.dependents[int(sources[g])].extend(map(ints.__getitem__, part.tolist()))
