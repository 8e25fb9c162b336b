"""Scenario P&L summed by part of a book: the kernel of risk attribution
(:mod:`engine.risk.attribution`, docs/risk.md#attribution).

Kept beside :mod:`engine.kernels` (whose pricing it reuses) rather than in it: one kernel, and
the other families of issue 17 grow that module too. Same rules as there: explicit signature,
``out`` arrays, no raising, no Python objects.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import float64, int64, njit, prange, void

from engine.kernels import (
    ScenarioColumns,
    _moved_value,
    _numba_type,
    _scenario_factors,
    _value_now,
    _values_now,
)

__all__ = ["part_pnl_kernel", "weighted_pnl_kernel"]

F64 = npt.NDArray[np.float64]
F64_2D = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

_PART_SIG = void(
    _numba_type(ScenarioColumns),
    float64[:, ::1],  # ret: log-return, (scenarios, underlyings)
    float64[:, ::1],  # dvol: relative vol move, (scenarios, underlyings)
    float64,  # horizon, years
    int64[::1],  # part of each position, in [0, parts); -1: left out
    float64[:, ::1],  # out: P&L per (scenario, part), USD
)


@njit(_PART_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def part_pnl_kernel(
    book: ScenarioColumns, ret: F64_2D, dvol: F64_2D, horizon: float, part: I64, out: F64_2D
) -> None:
    """``out[s, k]``: the P&L of the positions of part ``k`` in scenario ``s``, valued as
    :func:`engine.kernels.scenario_pnl_kernel` values them (a position that cannot be valued
    now counts 0). With ``part = arange(n)`` a row is each position's P&L."""
    n = book.kind.shape[0]
    log_xk = np.zeros(n)
    value = np.empty(n)
    _values_now(book, log_xk, value)
    later = np.maximum(book.T - horizon, 0.0)
    n_und = ret.shape[1]
    for s in prange(ret.shape[0]):
        growth = np.empty(n_und)
        vol_factor = np.empty(n_und)
        _scenario_factors(ret[s], dvol[s], growth, vol_factor)
        row = out[s]
        row[:] = 0.0
        for i in range(n):
            k = part[i]
            if k < 0 or not math.isfinite(value[i]):
                continue
            u = book.und[i]
            moved = _moved_value(
                book, i, later[i], ret[s, u], growth[u], vol_factor[u], log_xk[i], book.X[:0]
            )
            row[k] += book.weight[i] * (moved - value[i])


_WEIGHTED_SIG = void(
    _numba_type(ScenarioColumns),
    float64[:, ::1],  # ret: log-return, (scenarios, underlyings)
    float64[:, ::1],  # dvol: relative vol move, (scenarios, underlyings)
    float64,  # horizon, years
    float64[:, ::1],  # weights: (sets, scenarios)
    float64[:, ::1],  # out: per (set, position), Σ_s weight x P&L, USD
)


@njit(_WEIGHTED_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def weighted_pnl_kernel(
    book: ScenarioColumns, ret: F64_2D, dvol: F64_2D, horizon: float, weights: F64_2D,
    out: F64_2D,
) -> None:  # fmt: skip
    """``out[k, i]``: Σₛ ``weights[k, s]`` x position i's P&L in scenario s (valued as
    :func:`part_pnl_kernel` values it; 0 for a position that cannot be valued now). Threaded
    over positions: a few weighted means of every position, with no (scenario, position)
    matrix in memory."""
    n = book.kind.shape[0]
    n_sets, n_scen = weights.shape
    growth = np.empty_like(ret)
    vol_factor = np.empty_like(dvol)
    for s in range(n_scen):
        _scenario_factors(ret[s], dvol[s], growth[s], vol_factor[s])
    for i in prange(n):
        log_xk, value = _value_now(book, i)
        for k in range(n_sets):
            out[k, i] = 0.0
        if not math.isfinite(value):
            continue
        u = book.und[i]
        later = max(book.T[i] - horizon, 0.0)
        for s in range(n_scen):
            moved = _moved_value(
                book, i, later, ret[s, u], growth[s, u], vol_factor[s, u], log_xk, book.X[:0]
            )
            pnl = book.weight[i] * (moved - value)
            for k in range(n_sets):
                out[k, i] += weights[k, s] * pnl
