"""Scenario P&L per distinct instrument, summed into books: the kernel of Monte Carlo and
historical VaR at scale (:func:`engine.risk.scenarios.book_scenario_pnl`, docs/risk.md).

:func:`engine.kernels.scenario_pnl_kernel` revalues every position in every scenario. This one
revalues every distinct instrument once per scenario and adds its value change, times each
book's net weight in it, into the books' P&L; and it uses what the scenarios share: the moves
are per underlying, so a European option's revaluation needs no logarithm (ln(X e^r / K) is its
ln(X/K) + r) and no exponential of its own beyond the normal CDF's. Its loop over scenarios
is written so that LLVM vectorises it (AVX2 / AVX-512): the normal CDF is computed here,
branch-free, from a Chebyshev series of erfc (Numerical Recipes' ``erfccheb`` form, to about
1e-13 relative) and an exponential built from a polynomial and the float's exponent bits,
rather than through libm's erfc and exp, which LLVM cannot vectorise without a vector math
library. The figures equal full revaluation's to about 1e-13 relative (tests). Other rows
(American options, futures, options expiring within the horizon, inputs out of the model's
domain) are valued as :func:`engine.kernels.scenario_pnl_kernel` values them.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any, NamedTuple, cast

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir  # type: ignore[import-untyped]  # llvmlite ships no types
from numba import float64, int64, njit, prange, void
from numba.extending import intrinsic

from engine.european_kernels import OK, _gbs_status
from engine.kernels import (
    EUROPEAN,
    KIND_OPTION,
    ScenarioColumns,
    _moved_value,
    _numba_type,
    _values_now,
    scenario_memo,
)

__all__ = ["BookWeights", "ScenarioMoves", "book_pnl_kernel", "ncdf_kernel"]

F64 = npt.NDArray[np.float64]
F64_2D = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class ScenarioMoves(NamedTuple):
    """The scenarios, one row per underlying and one column per scenario (transposed from the
    (scenarios, underlyings) arrays of :func:`engine.risk.scenarios.scenario_pnl`, so that an
    instrument reads its underlying's moves contiguously)."""

    ret: F64_2D  # log-return
    growth: F64_2D  # e^ret
    vol_factor: F64_2D  # max(1 + dvol, 0.01): the vol's factor
    inv_factor: F64_2D  # 1 / vol_factor


class BookWeights(NamedTuple):
    """Which books hold each instrument, and how much (compressed sparse rows): instrument
    ``i``'s entries are ``start[i]:start[i + 1]`` of ``book`` and ``weight`` (its net weight,
    quantity x multiplier, in that book)."""

    start: I64
    book: I64
    weight: F64


# ln(erfc(z) / t) + z² with t = 2 / (2 + z), as a polynomial in x = 2t - 1 (on [-1, 1], z on
# [0, ∞)): numpy.polynomial.chebyshev.chebinterpolate of scipy's erfcx at degree 20, converted to
# the power basis (its coefficients stay below 0.7: well conditioned), split into the even and
# the odd powers so that it evaluates as two independent Horner chains in x² (half the latency
# of one). To 1.3e-13 relative on [0, 8] and 1e-12 beyond (tests check it against mpmath).
_ERFC_EVEN = (
    -0.6717940840566915, 0.04734330684153343, -0.00987268934415514, 0.001758933098368652,
    -0.00014624220213914878, -9.376235018490398e-05, 7.150191167066415e-05,
    -3.0434128887811035e-05, 8.968494465898285e-06, -1.724425196405002e-06,
    1.6441889741647025e-07,
)  # fmt: skip
_ERFC_ODD = (
    0.6726432239803338, -0.046895610428044375, 0.008824942839600008, -0.002345855422309722,
    0.000673916652695008, -0.00017510148489694946, 3.344421116471526e-05,
    -2.183917065304112e-06, -9.471076371898027e-07, 2.3241857933129785e-07,
)  # fmt: skip
_INV_SQRT2 = 1.0 / math.sqrt(2.0)
_LOG2E = 1.0 / math.log(2.0)
_LN2_HI = 0.6931471803691238  # ln 2 in two parts (fdlibm's): k * _LN2_HI is exact
_LN2_LO = 1.9082149292705877e-10
_EXP_MIN = -708.0  # e^-708 is still a normal float; erfc there is 0 to any caller's purpose
_BLOCK = 512  # scenarios per block: a block's value changes stay in L1
_CONTRACT = {"contract"}  # fused multiply-adds (one rounding for two): no other fast-math flag


@intrinsic
def _bitcast_intrinsic(typingctx: Any, bits: Any) -> Any:
    """The float64 whose IEEE bits are the int64 ``bits`` (a bit cast, which LLVM vectorises;
    numba has none for scalars)."""
    sig = float64(int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


def _bitcast_python(bits: Any) -> float:
    """:func:`_bitcast_intrinsic` in plain Python (``NUMBA_DISABLE_JIT=1``)."""
    value: float = struct.unpack("<d", struct.pack("<q", int(bits)))[0]
    return value


# numba.config sets its attributes from the environment at import: mypy cannot see them
_NO_JIT: bool = numba.config.DISABLE_JIT  # type: ignore[attr-defined]
# Either is called as a function of the bits; the intrinsic's typing is numba's own
_float_from_bits = cast(Callable[[Any], float], _bitcast_python if _NO_JIT else _bitcast_intrinsic)


@njit(cache=True, nogil=True, error_model="numpy", inline="always", fastmath=_CONTRACT)
def _exp_nonpositive(a: float) -> float:
    """e^a for a <= 0 (below -708: e^-708), to a few ulp, without a libm call: a = k ln 2 + f
    with |f| <= ln 2 / 2, e^f by its Taylor series to f¹¹ (error below 1e-14; even and odd
    terms as two chains in f²), times 2^k from the exponent bits."""
    a = max(a, _EXP_MIN)
    k = math.floor(a * _LOG2E + 0.5)
    f = (a - k * _LN2_HI) - k * _LN2_LO
    f2 = f * f
    even = 1.0 / 3628800.0
    even = even * f2 + 1.0 / 40320.0
    even = even * f2 + 1.0 / 720.0
    even = even * f2 + 1.0 / 24.0
    even = even * f2 + 0.5
    even = even * f2 + 1.0
    odd = 1.0 / 39916800.0
    odd = odd * f2 + 1.0 / 362880.0
    odd = odd * f2 + 1.0 / 5040.0
    odd = odd * f2 + 1.0 / 120.0
    odd = odd * f2 + 1.0 / 6.0
    odd = odd * f2 + 1.0
    return (even + f * odd) * _float_from_bits((np.int64(k) + 1023) << 52)


@njit(cache=True, nogil=True, error_model="numpy", inline="always", fastmath=_CONTRACT)
def _erfc_nonnegative(z: float) -> float:
    """erfc(z) for z >= 0: t e^(-z² + P(x)), t = 2 / (2 + z), x = 2t - 1, P the polynomial
    of :data:`_ERFC_EVEN` and :data:`_ERFC_ODD`."""
    t = 2.0 / (2.0 + z)
    x = 2.0 * t - 1.0
    x2 = x * x
    even = _ERFC_EVEN[10]
    for j in range(9, -1, -1):
        even = even * x2 + _ERFC_EVEN[j]
    odd = _ERFC_ODD[9]
    for j in range(8, -1, -1):
        odd = odd * x2 + _ERFC_ODD[j]
    return t * _exp_nonpositive(-z * z + even + x * odd)


@njit(cache=True, nogil=True, error_model="numpy", inline="always", fastmath=_CONTRACT)
def _ncdf(x: float) -> float:
    """The standard normal CDF, branch-free: half erfc(|x| / √2) below 0, one minus it above
    (relative accuracy in the lower tail, absolute near 1)."""
    e = 0.5 * _erfc_nonnegative(abs(x) * _INV_SQRT2)
    return e if x < 0.0 else 1.0 - e


@njit(void(float64[::1], float64[::1]), cache=True, nogil=True, error_model="numpy")
def ncdf_kernel(x: F64, out: F64) -> None:
    """``out[i]``: the standard normal CDF of ``x[i]`` as :func:`book_pnl_kernel` computes it
    (for tests and benchmarks)."""
    for i in range(x.shape[0]):
        out[i] = _ncdf(x[i])


@njit(cache=True, nogil=True, error_model="numpy", fastmath=_CONTRACT)
def _european_block(
    book: ScenarioColumns, i: int, later: float, log_xk: float, moves: ScenarioMoves,
    s0: int, value: float, dv: F64,
) -> None:  # fmt: skip
    """``dv[j]``: European option ``i``'s value change in scenario ``s0 + j`` (its inputs in
    the model's domain now and at ``later``): generalised BSM (Black-76 when ``book.black``)
    with the scenario's log-return added to ln(X/K), its vol factor on sigma."""
    u = book.und[i]
    r = book.r[i]
    q = r if book.black[i] else book.q[i]
    w = 1.0 if book.is_call[i] else -1.0
    sqrt_t = math.sqrt(later)
    a = log_xk + (r - q) * later
    sdfq = book.X[i] * math.exp(-q * later)
    kdfr = book.strike[i] * math.exp(-r * later)
    vol_sqrt_t = book.sigma[i] * sqrt_t
    inv_vol_sqrt_t = 1.0 / vol_sqrt_t
    ret = moves.ret[u, s0 : s0 + dv.shape[0]]
    growth = moves.growth[u, s0 : s0 + dv.shape[0]]
    factor = moves.vol_factor[u, s0 : s0 + dv.shape[0]]
    inv_factor = moves.inv_factor[u, s0 : s0 + dv.shape[0]]
    for j in range(dv.shape[0]):
        vs = vol_sqrt_t * factor[j]
        d1 = (a + ret[j]) * (inv_vol_sqrt_t * inv_factor[j]) + 0.5 * vs
        d2 = d1 - vs
        price = w * (sdfq * growth[j] * _ncdf(w * d1) - kdfr * _ncdf(w * d2))
        dv[j] = max(price, 0.0) - value


@njit(cache=True, nogil=True, error_model="numpy")
def _instrument_block(
    book: ScenarioColumns, i: int, later: float, log_xk: float, moves: ScenarioMoves,
    s0: int, value: float, dv: F64,
) -> None:  # fmt: skip
    """``dv[j]``: instrument ``i``'s value change per unit of weight in scenario ``s0 + j``:
    :func:`_european_block` where it applies (an option without dividends; 0 exactly in a
    scenario that moves nothing, at no horizon), else (and for any scenario it leaves
    non-finite) as :func:`engine.kernels.scenario_pnl_kernel` values it. An American option
    keeps its boundaries across these scenarios (:func:`engine.kernels.scenario_memo`): the
    scenarios of one vol (a stress grid's spot levels) solve one."""
    fast = (
        book.kind[i] == KIND_OPTION
        and book.american[i] == EUROPEAN
        and book.div_pv[i] == 0.0  # its scenarios move X, not X less the dividends
        and _gbs_status(
            book.X[i], book.strike[i], later, book.r[i], book.q[i], book.sigma[i] * 0.01
        ) == OK
    )  # fmt: skip
    if fast:
        _european_block(book, i, later, log_xk, moves, s0, value, dv)
    u = book.und[i]
    now = later == book.T[i]
    american = book.kind[i] == KIND_OPTION and book.american[i] != EUROPEAN
    memo = scenario_memo() if american else book.X[:0]
    for j in range(dv.shape[0]):
        if fast and math.isfinite(dv[j]):
            if now and moves.ret[u, s0 + j] == 0.0 and moves.vol_factor[u, s0 + j] == 1.0:
                dv[j] = 0.0  # nothing moved: no change, exactly, as full revaluation gives
            continue
        s = s0 + j
        moved = _moved_value(
            book, i, later, moves.ret[u, s], moves.growth[u, s], moves.vol_factor[u, s], log_xk,
            memo,
        )  # fmt: skip
        dv[j] = moved - value


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _add_instrument(
    book: ScenarioColumns, i: int, later: F64, log_xk: F64, moves: ScenarioMoves, s0: int,
    value: F64, held: BookWeights, dv: F64, out: F64_2D, col: int,
) -> None:  # fmt: skip
    """Instrument ``i``'s value changes in scenarios ``s0`` on (as many as ``dv`` holds:
    :func:`_instrument_block`, into ``dv``), each book's weight in it times them, added to
    that book's row of ``out`` from column ``col``; nothing when it cannot be valued now or
    no book holds it."""
    if not math.isfinite(value[i]) or held.start[i] == held.start[i + 1]:
        return
    _instrument_block(book, i, later[i], log_xk[i], moves, s0, value[i], dv)
    for e in range(held.start[i], held.start[i + 1]):
        row = out[held.book[e]]
        w = held.weight[e]
        for j in range(dv.shape[0]):
            row[col + j] += w * dv[j]


_CHUNKS = 16  # instrument ranges of a one-block book_pnl_kernel: fixed, whatever the threads
_CHUNK_MIN = 64  # instruments a range holds at least (fewer: one thread does them all)
_CHUNKED_MAX = 1 << 22  # partial sums at most (32 MiB); more: threaded over scenarios only


@njit(cache=True, nogil=True, error_model="numpy", parallel=True)
def _chunked_pnl(
    book: ScenarioColumns, moves: ScenarioMoves, held: BookWeights, value: F64, log_xk: F64,
    later: F64, pnl: F64_2D,
) -> None:  # fmt: skip
    """:func:`book_pnl_kernel`'s sums for scenarios of one block: each of :data:`_CHUNKS`
    fixed ranges of instruments summed apart on the thread pool, then the ranges added in
    order."""
    n = book.kind.shape[0]
    m = pnl.shape[1]
    part = np.zeros((_CHUNKS, pnl.shape[0], m))
    size = (n + _CHUNKS - 1) // _CHUNKS
    for c in prange(_CHUNKS):
        dv = np.empty(m)
        for i in range(c * size, min(n, (c + 1) * size)):
            _add_instrument(book, i, later, log_xk, moves, 0, value, held, dv, part[c], 0)
    for b in range(pnl.shape[0]):
        for j in range(m):
            total = 0.0
            for c in range(_CHUNKS):
                total += part[c, b, j]
            pnl[b, j] = total


_BOOK_PNL_SIG = void(
    _numba_type(ScenarioColumns),  # the distinct instruments (weight unused)
    _numba_type(ScenarioMoves),
    float64,  # horizon, years
    _numba_type(BookWeights),
    float64[::1],  # out: each instrument's value now per unit of weight (NaN: cannot be valued)
    float64[:, ::1],  # out: P&L per (book, scenario), USD
)


@njit(_BOOK_PNL_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def book_pnl_kernel(
    book: ScenarioColumns,
    moves: ScenarioMoves,
    horizon: float,
    held: BookWeights,
    value: F64,
    pnl: F64_2D,
) -> None:
    """``pnl[b, s]``: Σ over the instruments i that book b holds of its weight in i x (i's
    value in scenario s - its value now), each instrument valued once per scenario; an
    instrument that cannot be valued now counts 0. Threaded over blocks of scenarios: each
    thread writes its own columns, and the sums run in instrument order, whatever the number
    of threads. Scenarios of one block (a margin's or a stress grid's few dozen) over many
    instruments: threaded over :data:`_CHUNKS` fixed ranges of instruments instead, each
    summed apart and the ranges added in order (:func:`_chunked_pnl`), also whatever the
    number of threads."""
    n = book.kind.shape[0]
    n_scen = moves.ret.shape[1]
    log_xk = np.zeros(n)
    _values_now(book, log_xk, value)
    later = np.maximum(book.T - horizon, 0.0)
    n_blocks = (n_scen + _BLOCK - 1) // _BLOCK
    if n_blocks == 1 and n >= _CHUNKS * _CHUNK_MIN and _CHUNKS * pnl.size <= _CHUNKED_MAX:
        _chunked_pnl(book, moves, held, value, log_xk, later, pnl)
        return
    for blk in prange(n_blocks):
        s0 = blk * _BLOCK
        m = min(n_scen, s0 + _BLOCK) - s0
        for b in range(pnl.shape[0]):
            pnl[b, s0 : s0 + m] = 0.0
        dv = np.empty(m)
        for i in range(n):
            _add_instrument(book, i, later, log_xk, moves, s0, value, held, dv, pnl, s0)
