"""Full revaluation of a book under market scenarios: the engine of historical and Monte Carlo
VaR (:mod:`engine.risk.var`) and of stress grids (:mod:`engine.risk.stress`); conventions in
docs/risk.md.

:class:`ScenarioBook` is declared below the portfolio state (:mod:`engine.positions`), which
builds it; it is re-exported here, with what revalues it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
from scipy import sparse

from engine import kernels, scenario_kernels
from engine.positions import ScenarioBook
from engine.units import DAYS_PER_YEAR

__all__ = [
    "NO_PRICES",
    "BookScenarioPnL",
    "Revaluation",
    "ScenarioBook",
    "ScenarioPnL",
    "any_valued",
    "book_scenario_pnl",
    "distinct_instruments",
    "scenario_pnl",
    "stacked",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


NO_PRICES: Final = "no prices yet: none of its positions can be valued"
"""The status of a book none of whose positions has a price (and, an option, a vol) yet, as
at a start before the first quotes: every method would give it a VaR of 0."""


def any_valued(book: ScenarioBook) -> bool:
    """Whether any position of ``book`` can be valued now: its price is finite and > 0 and,
    an option's, its vol too (the others are left out of every revaluation)."""
    priced = np.isfinite(book.X) & (book.X > 0.0)
    vol = np.isfinite(book.sigma) & (book.sigma > 0.0)
    return bool(np.any(priced & ((book.kind != kernels.KIND_OPTION) | vol)))


def _check_book(book: ScenarioBook) -> None:
    n = book.kind.shape[0] if isinstance(book.kind, np.ndarray) else -1
    for name, a in zip(book._fields, book, strict=True):
        if not isinstance(a, np.ndarray) or a.shape != (n,) or not a.flags.c_contiguous:
            raise ValueError(f"ScenarioBook.{name} must be a C-contiguous 1-D array of {n}")


@dataclass(frozen=True, slots=True)
class ScenarioPnL:
    """P&L per scenario (USD) and the positions left out because they cannot be valued now
    (no price or vol: their count and rows)."""

    pnl: FloatArray
    excluded: npt.NDArray[np.int64]


def _check_moves(
    book: ScenarioBook, ret: npt.ArrayLike, dvol: npt.ArrayLike, horizon_days: float
) -> tuple[FloatArray, FloatArray]:
    """``ret`` and ``dvol`` as C-contiguous float arrays, checked against ``book``."""
    _check_book(book)
    r = np.ascontiguousarray(ret, dtype=np.float64)
    v = np.ascontiguousarray(dvol, dtype=np.float64)
    if r.ndim != 2 or v.shape != r.shape:
        raise ValueError(f"ret and dvol must be 2-D of one shape, got {r.shape} and {v.shape}")
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(v))):
        raise ValueError("ret and dvol must be finite")
    if book.und.size and not (int(book.und.min()) >= 0 and int(book.und.max()) < r.shape[1]):
        raise ValueError(f"book.und must index the {r.shape[1]} columns of ret")
    if not (math.isfinite(horizon_days) and horizon_days >= 0.0):
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days!r}")
    return r, v


def scenario_pnl(
    book: ScenarioBook, ret: npt.ArrayLike, dvol: npt.ArrayLike, horizon_days: float
) -> ScenarioPnL:
    """Full revaluation of ``book`` under each scenario.

    Args:
        book: the positions.
        ret: log-return of each underlying, shape (scenarios, underlyings).
        dvol: relative move of each position's vol by underlying, same shape: a position's vol
            becomes sigma (1 + dvol), at least 1 % of sigma.
        horizon_days: calendar days the scenario's date lies ahead (options decay by it).
    """
    r, v = _check_moves(book, ret, dvol, horizon_days)
    value = np.empty(book.kind.shape[0])
    pnl = np.empty(r.shape[0])
    kernels.scenario_pnl_kernel(book, r, v, horizon_days / DAYS_PER_YEAR, value, pnl)
    return ScenarioPnL(pnl=pnl, excluded=np.flatnonzero(~np.isfinite(value)))


_INSTRUMENT_FIELDS = tuple(f for f in ScenarioBook._fields if f != "weight")


def distinct_instruments(book: ScenarioBook) -> tuple[ScenarioBook, IntArray]:
    """The distinct instruments of ``book`` (rows equal in every column but ``weight``; a row
    with a NaN is its own) with their weights summed, and each position's row among them.
    The instruments come in the order of their columns, the first column first (ties: the
    first position first), found by ``np.lexsort`` over the columns (a structured array's
    ``np.unique`` sorts field by field through a generic comparison: 50x slower)."""
    cols = [getattr(book, f) for f in _INSTRUMENT_FIELDS]
    n = book.kind.shape[0]
    order = np.lexsort(cols[::-1])  # lexsort's primary key is its last
    first_of_run = np.ones(n, dtype=np.bool_)
    if n > 1:
        same = np.ones(n - 1, dtype=np.bool_)
        for c in cols:
            sorted_c = c[order]
            same &= sorted_c[1:] == sorted_c[:-1]  # NaN != NaN: a row with a NaN is its own
        first_of_run[1:] = ~same
    inverse = np.empty(n, dtype=np.int64)
    inverse[order] = np.cumsum(first_of_run) - 1
    first = order[first_of_run]
    weight = np.asarray(np.bincount(inverse, book.weight, first.size), dtype=np.float64)
    inst = ScenarioBook._make(np.ascontiguousarray(a[first]) for a in book)
    return inst._replace(weight=weight), inverse


def stacked(books: Sequence[ScenarioBook]) -> tuple[ScenarioBook, IntArray]:
    """``books``' positions in one book, in order, and each position's book (its index in
    ``books``): what :func:`book_scenario_pnl` takes to revalue many books at once."""
    sizes = np.array([b.kind.shape[0] for b in books], dtype=np.int64)
    which = np.repeat(np.arange(len(books), dtype=np.int64), sizes)
    return ScenarioBook._make(np.concatenate(c) for c in zip(*books, strict=True)), which


@dataclass(frozen=True, slots=True)
class BookScenarioPnL:
    """P&L per book and scenario (USD, shape (books, scenarios)), its sum over the books
    (``total``), the positions left out because they cannot be valued now, and how many
    distinct instruments were revalued."""

    pnl: FloatArray
    total: FloatArray
    excluded: npt.NDArray[np.int64]
    instruments: int


def book_scenario_pnl(
    book: ScenarioBook,
    ret: npt.ArrayLike,
    dvol: npt.ArrayLike,
    horizon_days: float,
    books: npt.ArrayLike | None = None,
    n_books: int = 1,
) -> BookScenarioPnL:
    """Each book's P&L in each scenario, the figures of :func:`scenario_pnl` per book (to
    about 1e-13 relative), computed per distinct instrument rather than per position
    (:mod:`engine.scenario_kernels`): each instrument is revalued once per scenario, and its
    value change goes to each book in proportion to the book's net weight in it.

    Args:
        book: the positions (an instrument may appear in many rows: many books, many lots).
        ret, dvol, horizon_days: as :func:`scenario_pnl`'s.
        books: each position's book, in [0, n_books) (None: all in book 0).
        n_books: the number of books (rows of the result).
    """
    r, v = _check_moves(book, ret, dvol, horizon_days)
    n = book.kind.shape[0]
    if n_books < 1:
        raise ValueError(f"n_books must be >= 1, got {n_books!r}")
    which = np.zeros(n, np.int64) if books is None else np.asarray(books, dtype=np.int64)
    if which.shape != (n,) or (n and not (int(which.min()) >= 0 and int(which.max()) < n_books)):
        raise ValueError(f"books must give each of the {n} positions a book in [0, {n_books})")
    inst, inverse = distinct_instruments(book)
    pair, at = np.unique(inverse * n_books + which, return_inverse=True)
    held = scenario_kernels.BookWeights(
        start=np.searchsorted(pair // n_books, np.arange(inst.kind.shape[0] + 1)).astype(np.int64),
        book=(pair % n_books).astype(np.int64),
        weight=np.asarray(np.bincount(at.reshape(-1), book.weight, pair.size), np.float64),
    )
    rt = np.ascontiguousarray(r.T)
    factor = np.ascontiguousarray(np.maximum(1.0 + v.T, kernels.VOL_FLOOR))
    moves = scenario_kernels.ScenarioMoves(
        ret=rt, growth=np.exp(rt), vol_factor=factor, inv_factor=1.0 / factor
    )
    value = np.empty(inst.kind.shape[0])
    pnl = np.empty((n_books, r.shape[0]))
    scenario_kernels.book_pnl_kernel(inst, moves, horizon_days / DAYS_PER_YEAR, held, value, pnl)
    return BookScenarioPnL(
        pnl=pnl,
        total=pnl.sum(axis=0),
        excluded=np.flatnonzero(~np.isfinite(value[inverse])),
        instruments=int(inst.kind.shape[0]),
    )


MAX_SHARED_VALUES: Final = 1 << 24
"""At most this many value changes (128 MiB) are kept by :class:`InstrumentValues`; a book
whose instruments would take more is revalued without keeping them."""


class InstrumentValues:
    """Each distinct instrument's value change per unit of weight in one scenario set (USD,
    (instruments, scenarios)), revalued the first time a book holding it asks and shared by
    every later book and part that holds it: what many books over the same underlyings, and
    their partitions, cost once (:meth:`pnl`). An instrument is its row in every column but
    ``weight``; ``und`` indexes the scenario set's columns, so the books asking must index
    the same underlyings (a row with a NaN is its own each time)."""

    def __init__(self, ret: npt.ArrayLike, dvol: npt.ArrayLike, horizon_days: float) -> None:
        self._ret = np.ascontiguousarray(ret, dtype=np.float64)
        self._dvol = np.ascontiguousarray(dvol, dtype=np.float64)
        self._horizon_days = horizon_days
        self._index: dict[tuple[object, ...], int] = {}
        self._dv = np.empty((0, self._ret.shape[0]))
        self.instruments = 0
        """How many distinct instruments were revalued."""

    def pnl(self, book: ScenarioBook, of: npt.ArrayLike, n_parts: int) -> FloatArray:
        """P&L (USD) per (scenario, part) of ``book``'s positions, position ``i`` in part
        ``of[i]`` of ``n_parts``: :func:`book_scenario_pnl`'s figures (to about 1e-13
        relative), the instruments not seen before revalued now."""
        inst, inverse = distinct_instruments(book)
        keys = list(zip(*(getattr(inst, f).tolist() for f in _INSTRUMENT_FIELDS), strict=True))
        at = np.array([self._index.get(k, -1) for k in keys], dtype=np.int64)
        new = np.flatnonzero(at < 0)
        if (self.instruments + new.size) * self._ret.shape[0] > MAX_SHARED_VALUES:
            res = book_scenario_pnl(book, self._ret, self._dvol, self._horizon_days, of, n_parts)
            return np.ascontiguousarray(res.pnl.T)  # beyond the budget: revalued, not kept
        if new.size:
            at[new] = self._revalue(ScenarioBook._make(a[new] for a in inst))
            self._index.update(zip((keys[i] for i in new.tolist()), at[new].tolist(), strict=True))
        held = sparse.csr_array(  # (parts, instruments): the weights, duplicates summed
            (book.weight, (np.asarray(of, dtype=np.int64), at[inverse])),
            shape=(n_parts, self.instruments),
        )
        return np.ascontiguousarray((held @ self._dv[: self.instruments]).T)

    def _revalue(self, new: ScenarioBook) -> IntArray:
        """Revalue ``new`` (distinct, unseen); their rows among the instruments."""
        n = new.kind.shape[0]
        unit = new._replace(weight=np.ones(n))
        res = book_scenario_pnl(
            unit, self._ret, self._dvol, self._horizon_days, np.arange(n, dtype=np.int64), max(n, 1)
        )
        start = self.instruments
        if start + n > self._dv.shape[0]:  # capacity doubles: each book adds a few
            grown = np.empty((max(2 * self._dv.shape[0], start + n), self._ret.shape[0]))
            grown[:start] = self._dv[:start]
            self._dv = grown
        self._dv[start : start + n] = res.pnl
        self.instruments = start + n
        return np.arange(start, start + n, dtype=np.int64)


Revaluation = Callable[[ScenarioBook, npt.ArrayLike, npt.ArrayLike, float], ScenarioPnL]
"""What revalues a book under scenarios: :func:`scenario_pnl` (European BSM / Black-76), or any
function of its signature (the hook for an American pricer)."""
