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

:class:`Portfolio` composes the rooms this takes and runs the cycle: the market inputs
(:class:`engine.market.MarketData`: instruments, ticks, quotes, shared prices, the pricing
step), the positions (:class:`engine.lots.Lots`: lots, fills, settlement) and their sums
(:class:`engine.lots.Groups`), and what the rest reads (:class:`engine.readout.Readout`:
exposure payloads, book copies for the risk measures, chains, priced instruments). Each keeps
its tables as :class:`engine.columns.Columns`; the cycle clears the dirty sets they fill.

Time enters as ``now_ns`` arguments. Every figure is valued at the *valuation time*, which moves
only at a full reprice (:meth:`Portfolio.cycle` with ``full=True``, which the runtime runs
periodically for time decay and which also rebuilds every sum from scratch). So the state always
equals a from-scratch computation at the valuation time from the stored inputs
(:meth:`Portfolio.recompute`), which is what the tests check.

Inputs, per instrument (units: :mod:`engine.instruments`, :mod:`engine.outputs`):

- Deribit options: Black-76 on the forward. The forward is the option's own quote's
  ``underlying_price``, else the price of the future of that expiry, else the index (r = q = 0
  unless configured). Other venues' options: BSM on the index/spot with the underlying's r and q
  (American ones by engine.american_kernels), on the spot less the PV of the underlying's
  discrete dividends before expiry when it has some (:meth:`engine.carries.Carries.
  roll_dividends`).
- Volatility: the quote's ``iv`` when present, else implied from its mark, else from its mid.
- Futures, perpetuals and spot: their own last tick, else the forward or index.
- An instrument is stale when its input is older than ``stale_after_ns`` at the valuation time
  or missing; one that cannot be priced contributes zero and counts as stale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.arguments import PARALLEL_MIN_ROWS
from engine.events import Carry, Fill, Quote, Tick
from engine.instruments import InstrumentRegistry
from engine.lots import (
    FILL_IDS_KEPT,
    HOST_LOT_COLUMNS,
    LOT_SPECS,
    Groups,
    Lots,
    LotState,
    PositionBulk,
    PositionsError,
    SettledLot,
    expiry_label,
)
from engine.market import INSTRUMENT_SPECS, AmericanAccuracy, MarketData, UnderlyingParams
from engine.outputs import METRICS, Exposure, PortfolioStatus
from engine.readout import BookRisk, Chain, Priced, Readout

__all__ = [
    "AGG_FIELDS",
    "FILL_IDS_KEPT",
    "BookRisk",
    "Chain",
    "LotState",
    "Portfolio",
    "PositionBulk",
    "PositionsError",
    "Priced",
    "SettledLot",
    "UnderlyingParams",
    "expiry_label",
]

AGG_FIELDS: tuple[str, ...] = (*METRICS, "n_positions", "n_stale")
"""Columns of a group's sums (:meth:`Portfolio.group_values`)."""
if len(AGG_FIELDS) != kernels.N_AGG:  # the kernel's column count is fixed at compile time
    raise ImportError("engine.state.AGG_FIELDS does not match engine.kernels.N_AGG")

_KERNEL_COLUMNS = (kernels.InstrumentColumns, kernels.PricedColumns, kernels.LotColumns)
if {*INSTRUMENT_SPECS, *LOT_SPECS} - HOST_LOT_COLUMNS != {
    f for group in _KERNEL_COLUMNS for f in group._fields
}:
    raise ImportError("engine.state's columns do not match engine.kernels' column groups")

_reprice_dirty = kernels.unchecked(kernels.reprice_dirty_kernel)
"""Once per incremental cycle, with groups checked when built (kernels.check_group)."""


class Portfolio:
    """Books of positions and their exposures, kept current incrementally.

    It composes the market inputs (:class:`engine.market.MarketData`: instruments, ticks,
    quotes, shared prices, the pricing step), the positions (:class:`engine.lots.Lots`: lots,
    fills, settlement; :class:`engine.lots.Groups`: the compensated sums) and what is read from
    them (:class:`engine.readout.Readout`), and runs the cycle that reprices what changed.

    Args:
        registry: resolves instrument names (Deribit names parse on first sight).
        underlyings: rate and yield per underlying name; missing ones use r = q = 0.
        stale_after_ns: an input older than this (at the valuation time) is stale.
        american_accuracy: the scheme American options are priced with (``"fast"``: 1e-5
            relative; ``"accurate"``: 1e-8, several times the cost; docs/american.md).
    """

    def __init__(
        self,
        registry: InstrumentRegistry,
        underlyings: dict[str, UnderlyingParams] | None = None,
        stale_after_ns: int = 60_000_000_000,
        american_accuracy: AmericanAccuracy = "fast",
    ) -> None:
        self.registry = registry
        self._market = MarketData(registry, underlyings, stale_after_ns, american_accuracy)
        self._groups = Groups()
        self._lots = Lots(self._market, self._groups)
        self._readout = Readout(self._market, self._lots, self._groups)
        self._stamp = 0  # incremental cycles so far: marks the pairs each one touched

    @property
    def valuation_ns(self) -> int:
        """The valuation time of every figure: the last full reprice's ``now_ns`` (0: none)."""
        return self._market.valuation_ns

    @property
    def stale_after_ns(self) -> int:
        """An input older than this (at the valuation time) is stale."""
        return self._market.stale_after_ns

    @property
    def duplicate_fills(self) -> int:
        """Fills ignored because their ``fill_id`` was applied before (at-least-once feeds)."""
        return self._lots.duplicate_fills

    @duplicate_fills.setter
    def duplicate_fills(self, n: int) -> None:  # a strategy's redelivered fill counts here
        self._lots.duplicate_fills = n

    @property
    def unresolved_fills(self) -> list[Fill]:
        """Fills whose instrument is unknown: kept (never dropped), applied once it is known."""
        return self._lots.unresolved_fills

    # ------------------------------------------------------------------ inputs
    def add_position(
        self, book: str, instrument: str, quantity: float, avg_price: float | None = None
    ) -> None:
        """Add a start-of-day position (positions with the same book and instrument merge).

        Raises:
            ValueError: unknown instrument, an index, or a non-finite quantity or price.
        """
        self._lots.add_position(book, instrument, quantity, avg_price)

    def add_positions(self, bulk: PositionBulk) -> None:
        """Add many start-of-day positions at once (:class:`~engine.lots.PositionBulk`):
        exactly the state :meth:`add_position` would make row by row, in order (the same
        lots, groups and rows, in the same order, the same sums to the last bit), with no
        Python object per row or per lot. Before the first cycle (which reprices every
        instrument and lot) nothing is marked dirty.

        Raises:
            PositionsError: a row :meth:`add_position` would refuse (its ``row``: the first);
                nothing is added then.
        """
        self._lots.add_positions(bulk)

    def lot_state(self) -> LotState:
        """Copies of every lot (book, instrument, quantity, cost), in lot order: what a
        checkpoint keeps (:meth:`restore_lots` opens them again)."""
        return self._lots.state()

    def restore_lots(self, state: LotState) -> None:
        """Open the lots of ``state`` (:meth:`lot_state`) in this empty portfolio: the same
        lots, groups and books in the same order, the same quantities and costs to the bit, so
        the same figures after the first full cycle.

        Raises:
            ValueError: lots already held, an unknown instrument or bad columns; nothing is
                changed then.
        """
        self._lots.restore(state)

    def fill_ids(self) -> list[str]:
        """The ids of the fills applied (the last :data:`FILL_IDS_KEPT`), oldest first."""
        return self._lots.fill_ids()

    def restore_fill_ids(self, ids: list[str], duplicates: int) -> None:
        """Remember ``ids`` as applied (redeliveries of them are ignored) and
        ``duplicates`` as :attr:`duplicate_fills`."""
        self._lots.restore_fill_ids(ids, duplicates)

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
        return self._lots.apply_fill(fill)

    def seen_fill(self, fill_id: str) -> bool:
        """Whether a fill with ``fill_id`` was applied (among the last :data:`FILL_IDS_KEPT`)."""
        return self._lots.seen_fill(fill_id)

    def retry_unresolved(self) -> int:
        """Apply the kept fills whose instruments are now known; returns how many applied.
        The others stay kept, in their order."""
        return self._lots.retry_unresolved()

    def apply_tick(self, tick: Tick) -> bool:
        """Store a tick of an index, spot, future or perpetual; False if it is not one."""
        return self._market.apply_tick(tick)

    def apply_quote(self, quote: Quote) -> bool:
        """Store an option quote; False if the instrument is unknown or not an option."""
        return self._market.apply_quotes((quote,)) == 0

    def apply_carry(self, carry: Carry) -> int:
        """Take an expiry's implied dividend yield for the options priced on it
        (:meth:`engine.market.MarketData.set_carry`); returns how many it dirtied."""
        return self._market.set_carry(carry.chain, carry.expiry_ns, carry.dividend_yield)

    def apply_quotes(self, quotes: Iterable[Quote]) -> int:
        """Store option quotes (the latest of an instrument wins); returns how many were
        refused: unknown instruments and instruments that are not options."""
        return self._market.apply_quotes(quotes)

    def settle_expiry(self, index: str, expiry_ns: int) -> list[SettledLot]:
        """Close every open position in the instruments on ``index`` that expire at
        ``expiry_ns``: quantity and cost go to 0, so they leave the book (the next cycle moves
        the sums) and their P&L leaves the ``pnl`` figure (it is realised: the caller settles
        it). Returns what each position held."""
        return self._lots.settle_expiry(index, expiry_ns)

    # ------------------------------------------------------------------ cycle
    def cycle(self, now_ns: int, full: bool = False) -> set[tuple[str, str]]:
        """Reprice what changed (everything, at ``now_ns``, when ``full`` or on the first call)
        and update the sums. Returns the (book, underlying) pairs whose figures changed."""
        market, lots, groups = self._market, self._lots, self._groups
        ia = market.cols.arrays
        pairs = groups.pair_keys
        if full or market.valuation_ns == 0:
            market.valuation_ns = now_ns
            market.carries.roll_rates(now_ns)
            market.carries.roll_dividends(now_ns)
            market.dirty.clear()
            lots.dirty.clear()
            market.price(np.flatnonzero(ia["n_lots"][: market.cols.n]), market.priced())
            # every sum from scratch, threaded for a large book (the same figures either way)
            rebuild = (
                kernels.lot_rebuild_parallel_kernel
                if lots.cols.n >= PARALLEL_MIN_ROWS
                else kernels.lot_rebuild_kernel
            )
            rebuild(
                lots.cols.head(kernels.LotColumns), market.priced(), groups.sums(groups.groups.n)
            )
            return set(pairs)
        dirty_inst, dirty_lots_set = market.dirty, lots.dirty
        if not (dirty_inst or dirty_lots_set):
            return set()
        dirty = np.fromiter(dirty_inst, np.int64, len(dirty_inst))
        dirty_lots = np.fromiter(dirty_lots_set, np.int64, len(dirty_lots_set))
        dirty_inst.clear()
        dirty_lots_set.clear()
        self._stamp += 1
        touched = np.empty(groups.pairs.n, dtype=np.int64)
        moved = np.empty(dirty.size, dtype=np.int64)
        counts = np.zeros(2, dtype=np.int64)
        # Many at once (an index move under a book priced off it): reprice on the thread pool.
        threaded = dirty.size >= PARALLEL_MIN_ROWS or (
            market.n_american > 0 and market.threaded(dirty)
        )
        if threaded:
            market.price(dirty[ia["n_lots"][dirty] > 0], market.priced())
        _reprice_dirty(
            dirty, dirty_lots, market.cols.group(kernels.InstrumentColumns), market.market(),
            market.priced(), lots.cols.group(kernels.LotColumns), groups.sums(), self._stamp,
            not threaded, touched, moved, counts,
        )  # fmt: skip
        n_touched, n_moved = counts.tolist()
        market.track_many(moved[:n_moved])
        return {pairs[k] for k in touched[:n_touched].tolist()}

    def recompute(self) -> npt.NDArray[np.float64]:
        """Sums per group computed from scratch from the stored inputs at the valuation time,
        each an exactly rounded sum (math.fsum); the incremental state must equal these."""
        scratch = self._market.scratch_price(np.arange(self._market.cols.n, dtype=np.int64))
        la = self._lots.cols.arrays
        n_fig = kernels.N_UNIT - 2
        out = np.zeros((self._groups.groups.n, kernels.N_AGG))
        parts: dict[tuple[int, int], list[float]] = {}
        for lot in range(self._lots.cols.n):
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

    # ------------------------------------------------------------------ results
    def group_values(self) -> npt.NDArray[np.float64]:
        """Sums per group, (n_groups, len(AGG_FIELDS)): high part + compensation."""
        return self._groups.values()

    def group_keys(self) -> list[tuple[str, str, str]]:
        """(book, underlying, expiry label) of each group, in group order."""
        return list(self._groups.keys)

    def priced(self, names: list[str]) -> Priced:
        """The instruments ``names`` (held or not: hedge instruments, strategy legs), priced at
        the valuation time from their stored inputs, in copies.

        Raises:
            ValueError: an index among ``names`` (it cannot be held).
        """
        return self._readout.priced(names)

    def quotes(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The latest bid and ask of instruments ``rows`` (e.g. :attr:`BookRisk.rows`), in
        their quote currency, copies; NaN where none came (futures and perpetuals: ticks
        carry no bid or ask)."""
        a = self._market.cols.arrays
        return a["bid"][rows], a["ask"][rows]

    def held_expiries(self) -> list[tuple[str, int]]:
        """(index, expiry_ns) of every expiry with an open position (options, futures)."""
        return self._lots.held_expiries()

    def index_price(self, index: str) -> float:
        """The latest price of ``index`` (NaN: none yet)."""
        return self._market.index_price(index)

    def chains(self) -> list[Chain]:
        """Every option chain (underlying, settlement, expiry) quoted or held, sorted by
        underlying and expiry: what the skew fits take (engine.risk.skew)."""
        return self._readout.chains()

    def positions(self) -> list[tuple[str, str, float]]:
        """(book, instrument, net quantity) of every lot."""
        return self._lots.positions()

    def exposure_payloads(
        self,
        keys: Iterable[tuple[str, str]],
        now_ns: int,
        books: Iterable[str] | None = None,
    ) -> list[tuple[str, Exposure]]:
        """Payloads for the given (book, underlying) pairs, keyed ``{book}:{underlying}``,
        then for ``books`` (default: the books of those pairs), keyed ``{book}``; each group
        sorted (schema: docs/redis.md)."""
        return self._readout.exposure_payloads(keys, now_ns, books)

    def book_risk(self, book: str) -> BookRisk:
        """``book``'s open positions and exposure sums, copied for the risk measures.

        Raises:
            KeyError: no such book.
        """
        return self._readout.books_risk([book])[book]

    def books_risk(self, books: Iterable[str] | None = None) -> dict[str, BookRisk]:
        """:meth:`book_risk` of each of ``books`` (default: every book), the lots sorted by
        book once for all of them.

        Raises:
            KeyError: no such book.
        """
        return self._readout.books_risk(books)

    def books(self) -> list[str]:
        """Every book held, sorted."""
        return self._groups.book_names()

    def bu_keys(self) -> list[tuple[str, str]]:
        """Every (book, underlying) pair held."""
        return self._groups.pairs_held()

    @property
    def lot_count(self) -> int:
        """Lots so far (a lot is a book's net position in one instrument; lots are never
        removed, a closed one holds 0)."""
        return self._lots.cols.n

    def lot_instruments(self, start: int = 0) -> list[str]:
        """Instrument names of the lots from number ``start`` on, in the order they opened."""
        return self._lots.instruments(start)

    def instruments(self) -> list[str]:
        """Names of every instrument held (or quoted) so far."""
        return self._market.instruments()

    def instrument_status(self) -> PortfolioStatus:
        """Counts for health reporting: instruments, lots, groups, stale instruments held."""
        ic = self._market.cols
        held = ic.arrays["n_lots"][: ic.n] > 0
        bad = ic.arrays["bad"][: ic.n]
        return PortfolioStatus(
            instruments=ic.n,
            lots=self._lots.cols.n,
            groups=self._groups.groups.n,
            stale_instruments=int(np.count_nonzero(bad & held)),
            unresolved_fills=len(self._lots.unresolved_fills),
            duplicate_fills=self._lots.duplicate_fills,
        )
