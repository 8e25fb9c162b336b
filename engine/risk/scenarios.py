"""Full revaluation of a book under market scenarios: the engine of historical and Monte Carlo
VaR (:mod:`engine.risk.var`) and of stress grids (:mod:`engine.risk.stress`); conventions in
docs/risk.md.

:class:`ScenarioBook` is declared below the portfolio state (:mod:`engine.positions`), which
builds it; it is re-exported here, with what revalues it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.positions import ScenarioBook
from engine.units import DAYS_PER_YEAR

__all__ = ["Revaluation", "ScenarioBook", "ScenarioPnL", "scenario_pnl"]

FloatArray = npt.NDArray[np.float64]


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
    value = np.empty(book.kind.shape[0])
    pnl = np.empty(r.shape[0])
    kernels.scenario_pnl_kernel(book, r, v, horizon_days / DAYS_PER_YEAR, value, pnl)
    return ScenarioPnL(pnl=pnl, excluded=np.flatnonzero(~np.isfinite(value)))


Revaluation = Callable[[ScenarioBook, npt.ArrayLike, npt.ArrayLike, float], ScenarioPnL]
"""What revalues a book under scenarios: :func:`scenario_pnl` (European BSM / Black-76), or any
function of its signature (the hook for an American pricer)."""
