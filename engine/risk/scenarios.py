"""Full revaluation of a book under market scenarios: the engine of historical and Monte Carlo
VaR (:mod:`engine.risk.var`) and of stress grids (:mod:`engine.risk.stress`); conventions in
docs/risk.md."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.units import DAYS_PER_YEAR

__all__ = ["ScenarioBook", "ScenarioPnL", "scenario_pnl"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScenarioBook:
    """Positions to revalue, one row each (struct of arrays, C-contiguous): what
    :func:`engine.kernels.scenario_pnl_kernel` takes. ``und`` is each position's column in the
    scenario moves; ``weight`` its quantity x contract multiplier; ``X`` the price it is valued
    on now (spot, or the forward for Black-76 options and futures); ``kind`` the
    ``engine.kernels.KIND_*`` code."""

    kind: npt.NDArray[np.int8]
    black: npt.NDArray[np.bool_]
    inverse: npt.NDArray[np.bool_]
    is_call: npt.NDArray[np.bool_]
    strike: FloatArray
    T: FloatArray
    r: FloatArray
    q: FloatArray
    sigma: FloatArray
    X: FloatArray
    weight: FloatArray
    und: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = self.kind.shape[0]
        for name in ScenarioBook.__slots__:
            a = getattr(self, name)
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
    kernels.scenario_pnl_kernel(
        book.kind, book.black, book.inverse, book.is_call, book.strike, book.T, book.r, book.q,
        book.sigma, book.X, book.weight, book.und, r, v, horizon_days / DAYS_PER_YEAR, value,
        pnl,
    )  # fmt: skip
    return ScenarioPnL(pnl=pnl, excluded=np.flatnonzero(~np.isfinite(value)))
