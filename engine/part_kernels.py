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
    _VOL_FLOOR,
    KIND_OPTION,
    ScenarioColumns,
    _log_ratio,
    _numba_type,
    _scenario_value,
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
    X = book.X
    sigma = book.sigma
    log_xk = np.zeros(n)
    value = np.empty(n)
    for i in range(n):
        if book.kind[i] == KIND_OPTION and X[i] > 0.0 and book.strike[i] > 0.0:
            log_xk[i] = _log_ratio(X[i], book.strike[i])
        value[i] = _scenario_value(book, i, book.T[i], sigma[i], X[i], log_xk[i])
    later = np.maximum(book.T - horizon, 0.0)
    n_und = ret.shape[1]
    for s in prange(ret.shape[0]):
        growth = np.empty(n_und)
        vol_factor = np.empty(n_und)
        for u in range(n_und):
            growth[u] = math.exp(ret[s, u])
            vol_factor[u] = max(1.0 + dvol[s, u], _VOL_FLOOR)
        row = out[s]
        row[:] = 0.0
        for i in range(n):
            k = part[i]
            if k < 0 or not math.isfinite(value[i]):
                continue
            u = book.und[i]
            moved = _scenario_value(
                book, i, later[i], sigma[i] * vol_factor[u], X[i] * growth[u],
                log_xk[i] + ret[s, u],
            )  # fmt: skip
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
    X = book.X
    growth = np.exp(ret)
    vol_factor = np.maximum(1.0 + dvol, _VOL_FLOOR)
    for i in prange(n):
        log_xk = 0.0
        if book.kind[i] == KIND_OPTION and X[i] > 0.0 and book.strike[i] > 0.0:
            log_xk = _log_ratio(X[i], book.strike[i])
        value = _scenario_value(book, i, book.T[i], book.sigma[i], X[i], log_xk)
        for k in range(n_sets):
            out[k, i] = 0.0
        if not math.isfinite(value):
            continue
        u = book.und[i]
        later = max(book.T[i] - horizon, 0.0)
        for s in range(n_scen):
            moved = _scenario_value(
                book, i, later, book.sigma[i] * vol_factor[s, u], X[i] * growth[s, u],
                log_xk + ret[s, u],
            )  # fmt: skip
            pnl = book.weight[i] * (moved - value)
            for k in range(n_sets):
                out[k, i] += weights[k, s] * pnl
