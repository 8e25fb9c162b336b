"""Numba kernels: Black-Scholes-Merton, Black-76, coin-settled Black-76 and implied volatility.

Kernels take contiguous 1-D arrays of equal length, write into a preallocated ``out`` block and a
per-row ``status`` array, return ``None`` and never raise. They know nothing of units beyond the
raw derivatives documented in :mod:`engine.units`; the typed wrappers live in :mod:`engine.greeks`
and :mod:`engine.iv`.

Row layout of ``out`` (``out[GREEK_ROW, i]``): see :data:`GREEK_FIELDS`.

Status codes (one int8 per row; their meaning is documented once, in
:class:`engine.status.Status`): 0 OK, 1 EXPIRED, 2 BAD_VOL, 3 BAD_INPUT, and for implied
volatility only 4 PRICE_BELOW_INTRINSIC, 5 PRICE_ABOVE_MAX, 6 NO_CONVERGENCE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ForwardRef, NamedTuple, ParamSpec

import numpy as np
import numpy.typing as npt
from numba import boolean, float64, int8, int64, njit, prange, typeof, types, void
from numba.np.ufunc.parallel import get_thread_id

# engine.american_kernels builds on engine.european_kernels, not on this module: no cycle. Only
# its row functions are called here (its own kernels loop them over arrays).
from engine import american_kernels as _ak

# The status codes (and the European IV solver, which tests reach through here) are re-exported:
# engine.kernels is where callers find them.
from engine.european_kernels import BAD_INPUT as BAD_INPUT
from engine.european_kernels import BAD_VOL as BAD_VOL
from engine.european_kernels import EXPIRED as EXPIRED
from engine.european_kernels import NO_CONVERGENCE as NO_CONVERGENCE
from engine.european_kernels import OK as OK
from engine.european_kernels import PRICE_ABOVE_MAX as PRICE_ABOVE_MAX
from engine.european_kernels import PRICE_BELOW_INTRINSIC as PRICE_BELOW_INTRINSIC
from engine.european_kernels import _gbs_price, _gbs_row, _iv_row, _log_ratio
from engine.european_kernels import _solve_norm_call as _solve_norm_call

__all__ = [
    "GREEK_FIELDS",
    "INVERSE_FIELDS",
    "GroupSums",
    "InstrumentColumns",
    "LotColumns",
    "Market",
    "PricedColumns",
    "ScenarioColumns",
    "black76_kernel",
    "black76_parallel_kernel",
    "bsm_kernel",
    "bsm_parallel_kernel",
    "check_group",
    "implied_vol_kernel",
    "implied_vol_parallel_kernel",
    "inverse_kernel",
    "inverse_parallel_kernel",
    "lot_rebuild_kernel",
    "lot_rebuild_parallel_kernel",
    "price_rows_kernel",
    "price_rows_parallel_kernel",
    "reprice_dirty_kernel",
    "scenario_pnl_kernel",
    "svi_linear_kernel",
    "svi_residual_kernel",
    "unchecked",
]

GREEK_FIELDS: tuple[str, ...] = (
    "price",
    "delta",
    "gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "volga",
    "charm",
)
"""Rows of the ``out`` block written by the pricing kernels, in order."""

INVERSE_FIELDS: tuple[str, ...] = (*GREEK_FIELDS, "price_coin", "delta_adj")
"""Rows written by the coin-settled kernels: the Black-76 rows, then coin premium and
price-adjusted delta."""

_NAN = math.nan

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]
_P = ParamSpec("_P")
BoolArray = npt.NDArray[np.bool_]


_PRICE_SIG = void(
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[:, ::1],
    int8[::1],
)
_B76_SIG = void(
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[:, ::1],
    int8[::1],
)
_IV_SIG = void(
    float64[::1],
    boolean[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    float64[::1],
    int8[::1],
)


# ------------------------------------------------------------------------------------ pricing
# Each model has a serial and a prange kernel with the same body: numba compiles the loop body
# once per kernel, so the row functions above carry all the mathematics.


@njit(_PRICE_SIG, cache=True, nogil=True, error_model="numpy")
def bsm_kernel(
    is_call: BoolArray, S: F64, K: F64, T: F64, r: F64, q: F64, sigma: F64, out: F64, status: I8
) -> None:
    """Generalised Black-Scholes-Merton on spot, single thread. Raw derivatives (engine.units)."""
    for i in range(S.shape[0]):
        status[i] = _gbs_row(is_call[i], S[i], K[i], T[i], r[i], q[i], sigma[i], False, out, i)


@njit(_PRICE_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def bsm_parallel_kernel(
    is_call: BoolArray, S: F64, K: F64, T: F64, r: F64, q: F64, sigma: F64, out: F64, status: I8
) -> None:
    """:func:`bsm_kernel` over numba's thread pool (``prange``)."""
    for i in prange(S.shape[0]):
        status[i] = _gbs_row(is_call[i], S[i], K[i], T[i], r[i], q[i], sigma[i], False, out, i)


@njit(_B76_SIG, cache=True, nogil=True, error_model="numpy")
def black76_kernel(
    is_call: BoolArray, F: F64, K: F64, T: F64, r: F64, sigma: F64, out: F64, status: I8
) -> None:
    """Black-76 on a forward, single thread; delta and gamma are with respect to F."""
    for i in range(F.shape[0]):
        status[i] = _gbs_row(is_call[i], F[i], K[i], T[i], r[i], r[i], sigma[i], True, out, i)


@njit(_B76_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def black76_parallel_kernel(
    is_call: BoolArray, F: F64, K: F64, T: F64, r: F64, sigma: F64, out: F64, status: I8
) -> None:
    """:func:`black76_kernel` over numba's thread pool (``prange``)."""
    for i in prange(F.shape[0]):
        status[i] = _gbs_row(is_call[i], F[i], K[i], T[i], r[i], r[i], sigma[i], True, out, i)


@njit(cache=True, nogil=True, error_model="numpy")
def _inverse_row(
    is_call: bool,
    f: float,
    k: float,
    t: float,
    r: float,
    v: float,
    out: npt.NDArray[np.float64],
    i: int,
) -> int:
    st = _gbs_row(is_call, f, k, t, r, r, v, True, out, i)
    price_coin = out[0, i] / f
    out[9, i] = price_coin
    out[10, i] = out[1, i] - price_coin
    return st


@njit(_B76_SIG, cache=True, nogil=True, error_model="numpy")
def inverse_kernel(
    is_call: BoolArray, F: F64, K: F64, T: F64, r: F64, sigma: F64, out: F64, status: I8
) -> None:
    """Coin-settled (inverse) option: Black-76 rows in USD, then coin premium V/F and the
    price-adjusted delta (Black delta minus the coin premium)."""
    for i in range(F.shape[0]):
        status[i] = _inverse_row(is_call[i], F[i], K[i], T[i], r[i], sigma[i], out, i)


@njit(_B76_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def inverse_parallel_kernel(
    is_call: BoolArray, F: F64, K: F64, T: F64, r: F64, sigma: F64, out: F64, status: I8
) -> None:
    """:func:`inverse_kernel` over numba's thread pool (``prange``)."""
    for i in prange(F.shape[0]):
        status[i] = _inverse_row(is_call[i], F[i], K[i], T[i], r[i], sigma[i], out, i)


@njit(_IV_SIG, cache=True, nogil=True, error_model="numpy")
def implied_vol_kernel(
    price: F64, is_call: BoolArray, F: F64, K: F64, T: F64, df: F64, sigma: F64, status: I8
) -> None:
    """Black-76 implied volatility from discounted prices: price = df · Black(F, K, T, σ).

    BSM prices are solved by the wrapper with F = S e^{(r-q)T}, df = e^{-rT}.
    """
    for i in range(price.shape[0]):
        sigma[i], status[i] = _iv_row(price[i], is_call[i], F[i], K[i], T[i], df[i])


@njit(_IV_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def implied_vol_parallel_kernel(
    price: F64, is_call: BoolArray, F: F64, K: F64, T: F64, df: F64, sigma: F64, status: I8
) -> None:
    """:func:`implied_vol_kernel` over numba's thread pool (``prange``)."""
    for i in prange(price.shape[0]):
        sigma[i], status[i] = _iv_row(price[i], is_call[i], F[i], K[i], T[i], df[i])


# ------------------------------------------------------------------------- portfolio exposure
# The streaming engine (engine.state) prices each instrument once per unit of position, then
# scales by each lot's quantity into per-group sums. Both steps touch only the rows they are
# given, so one quote costs the same however large the book.
#
# Their columns travel in groups: each group is a NamedTuple of arrays, declared once below, that
# numba passes as one struct. The kernels' signatures use the groups' numba types
# (:func:`_numba_type`, read from the annotations); engine.state stores its columns under the
# groups' field names and hands the kernels the groups.

KIND_OPTION = 0
KIND_FUTURE = 1
KIND_PERPETUAL = 2
KIND_SPOT = 3

EUROPEAN = 0
AMERICAN_FAST = 1
AMERICAN_ACCURATE = 2
AMERICAN_TABLED = 3
"""An option's exercise code (the ``american`` columns): European, or American under the fast
(1e-5 relative) or accurate (1e-8 relative) scheme of engine.american_kernels
(docs/american.md); AMERICAN_TABLED: the fast scheme with its boundaries interpolated from
``Market.tables`` (an option of a chain: engine.market.TABLED_MIN_OPTIONS)."""

UNIT_FIELDS: tuple[str, ...] = (
    "delta",
    "delta_usd",
    "delta_adj",
    "gamma",
    "cash_gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "volga",
    "market_value",
    "pnl_a",
    "pnl_b",
)
"""Columns of the per-instrument ``unit`` block: exposure per 1 unit of position quantity in
the desk units of engine.outputs.UNITS, then the two P&L coefficients: a lot's P&L in USD is
``quantity * pnl_a + cost * pnl_b`` (``cost`` is the lot's sum of quantity x fill price, or of
quantity / fill price for inverse futures, whose quantity is USD)."""

LOT_FIELDS_EXTRA: tuple[str, ...] = ("n_positions", "n_stale")
"""Columns after the 12 exposure figures in a lot's contribution and a group's sum."""

N_UNIT = len(UNIT_FIELDS)
N_AGG = N_UNIT - 2 + 1 + len(LOT_FIELDS_EXTRA)  # 11 figures, pnl, the two counts

I64 = npt.NDArray[np.int64]
F64_2D = npt.NDArray[np.float64]
"""A row-major 2-D block (numba ``float64[:, ::1]``); :data:`F64` is 1-D (``float64[::1]``)."""


class InstrumentColumns(NamedTuple):
    """What engine.state keeps per instrument (one row each) that the pricing step reads: its
    definition, where its shared prices and lots are, and its latest own market data."""

    kind: I8  # KIND_*
    black: BoolArray  # an option on the forward (Black-76), else on spot (BSM)
    inverse: BoolArray  # coin-settled
    is_call: BoolArray
    american: I8  # EUROPEAN or an AMERICAN_ code (options; others EUROPEAN)
    memo_row: I64  # an American option's row of Market.memo; -1: none
    strike: F64
    mult: F64  # contract multiplier
    has_expiry: BoolArray
    expiry_ns: I64
    r: F64
    q: F64
    div_pv: F64  # PV of the dividends paid before expiry, taken off the spot (options on spot)
    div_rho: F64  # their rate sensitivity, Σ D_i t_i e^{-r t_i} (engine.american.Dividends)
    spot_row: I64  # row of its index in Market.spot_px, spot_ts
    fwd_row: I64  # row of its (index, expiry) in Market.fwd_px, fwd_ts; -1: none
    n_lots: I64  # lots held in it
    first_lot: I64  # its newest lot (-1: none); the older ones follow LotColumns.next_lot
    own_px: F64  # an option quote's underlying_price, else its own last tick
    own_ts: I64
    bid: F64
    ask: F64
    mark: F64
    iv: F64


class PricedColumns(NamedTuple):
    """What the pricing step writes per instrument (one row each)."""

    X: F64  # the price it is valued on: spot, or the forward
    T: F64  # years to expiry
    sigma: F64
    uses_spot: BoolArray  # priced off its index
    uses_fwd: BoolArray  # priced off its forward
    unit: F64_2D  # (instruments, N_UNIT): exposure of one unit of position, UNIT_FIELDS
    status: I8
    bad: BoolArray  # unpriced or stale


class Market(NamedTuple):
    """The shared prices instruments are priced off, the valuation's clock, and the American
    options' exercise boundaries kept from one repricing to the next."""

    spot_px: F64  # per index
    spot_ts: I64
    fwd_px: F64  # per (index, expiry)
    fwd_ts: I64
    valuation_ns: int
    stale_after_ns: int  # an input older than this at the valuation time is stale
    memo: F64_2D  # a row per American option (InstrumentColumns.memo_row): its boundaries
    tables: F64_2D  # a row per numba thread: the fast scheme's boundary tables (empty: none)


class LotColumns(NamedTuple):
    """What engine.state keeps per lot (a book's net position in one instrument)."""

    inst: I64  # its instrument
    group: I64  # its (book, underlying, expiry) group
    qty: F64
    cost: F64  # sum of quantity x price (inverse futures: quantity / price)
    has_cost: BoolArray  # every fill had a price
    next_lot: I64  # the instrument's next older lot (-1: none)
    contrib: F64_2D  # (lots, N_AGG): its current contribution to the sums


class GroupSums(NamedTuple):
    """The compensated sums (high parts and compensation, (rows, N_AGG) each) of the groups,
    of the (book, underlying) pairs and of the books, which pair and book each group is in, and
    the incremental cycle that last touched each pair."""

    group_bu: I64
    group_book: I64
    group_hi: F64_2D
    group_lo: F64_2D
    bu_hi: F64_2D
    bu_lo: F64_2D
    book_hi: F64_2D
    book_lo: F64_2D
    bu_stamp: I64


class ScenarioColumns(NamedTuple):
    """Positions to revalue under scenarios, one row each (:func:`scenario_pnl_kernel`)."""

    kind: I8  # KIND_*
    black: BoolArray  # an option on the forward (Black-76), else on spot (BSM)
    inverse: BoolArray  # coin-settled (options: valued in USD all the same)
    is_call: BoolArray
    american: I8  # EUROPEAN or an AMERICAN_ code (InstrumentColumns')
    strike: F64
    T: F64  # years
    r: F64
    q: F64
    sigma: F64
    X: F64  # the price the position is valued on (spot, or forward)
    div_pv: F64  # options on spot: PV of the dividends before expiry, off the (moved) spot
    weight: F64  # quantity x contract multiplier (inverse futures: USD notional)
    und: I64  # the position's column in the scenario moves


_FIELD_TYPES = {
    "I8": int8[::1],
    "I64": int64[::1],
    "F64": float64[::1],
    "F64_2D": float64[:, ::1],
    "BoolArray": boolean[::1],
    "int": int64,
}


def _numba_type(cls: type[tuple[Any, ...]]) -> types.Type:
    """The numba type of a column group (a NamedTuple class above), read from the names of
    its fields' annotations (kept as text: ``from __future__ import annotations``)."""
    hints = [
        h.__forward_arg__ if isinstance(h, ForwardRef) else h for h in cls.__annotations__.values()
    ]
    fields = [_FIELD_TYPES[h] for h in hints]
    # numba's type constructors carry no annotations
    nb_type: types.Type = types.BaseTuple.from_types(fields, cls)  # type: ignore[no-untyped-call]
    return nb_type


def check_group(group: tuple[Any, ...]) -> None:
    """Raise TypeError unless every column of ``group`` (an instance of a column group above)
    has the dtype, dimensions and layout the kernels are compiled for.

    Raises:
        TypeError: a column that does not.
    """
    want = _numba_type(type(group))
    got = typeof(group)  # type: ignore[no-untyped-call]  # numba carries no annotations here
    if got != want:
        raise TypeError(f"{type(group).__name__} columns are {got}, the kernels take {want}")


def unchecked(kernel: Callable[_P, None]) -> Callable[_P, None]:
    """``kernel``'s compiled code (for its one explicit signature), called without numba's
    dispatcher, which types every argument on every call: for a column group that costs about
    0.5 µs plus 0.05 µs a column, 5 µs for :func:`reprice_dirty_kernel`'s groups (a third of
    an incremental cycle of one quote). The compiled code converts the arguments without
    checking their types: pass only groups checked by :func:`check_group` (or built from
    columns that were). Under ``NUMBA_DISABLE_JIT=1``: ``kernel`` itself."""
    overloads = getattr(kernel, "overloads", None)
    if overloads is None:
        return kernel
    (compiled,) = overloads.values()
    entry: Callable[_P, None] = compiled.entry_point
    return entry


_INSTRUMENTS = _numba_type(InstrumentColumns)
_PRICED = _numba_type(PricedColumns)
_MARKET = _numba_type(Market)
_LOTS = _numba_type(LotColumns)
_SUMS = _numba_type(GroupSums)


_FAST_SCHEME = _ak.FAST  # numba freezes these into the compiled code
_ACCURATE_SCHEME = _ak.ACCURATE


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _solver_for(american: int, tables: F64) -> tuple[_ak.Solver, F64]:
    """The solver of exercise code ``american`` (its scheme, with the thread's boundary
    ``tables`` where the code is AMERICAN_TABLED) and the owner of its scratch, which the
    caller keeps alive past its last use (engine.american_kernels._scratch)."""
    scheme = _ACCURATE_SCHEME if american == AMERICAN_ACCURATE else _FAST_SCHEME
    solver, owner = _ak._scratch(scheme)
    if american == AMERICAN_TABLED:
        solver = _ak._tabled(solver, tables)
    return solver, owner


# The American rows are called, never inlined: they cost 1e3 times a European row, and inlined
# they would grow every loop that holds them (the European rows' included).
@njit(cache=True, nogil=True, error_model="numpy")
def _american_greeks(
    american: int,
    is_call: bool,
    x: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    black: bool,
    out: npt.NDArray[np.float64],
    memo: npt.NDArray[np.float64],
    tables: npt.NDArray[np.float64],
) -> int:
    """American price and Greeks (engine.american_kernels' row, raw units, GREEK_FIELDS) of
    one option into ``out[:, 0]`` under the scheme of its exercise code ``american``; on a
    future (q = r) when ``black``; ``memo``: its row of the boundaries' memo (empty: none);
    ``tables``: the thread's boundary tables the fast scheme reads (Market.tables).
    Returns the row's status."""
    solver, owner = _solver_for(american, tables)
    st = _ak._american_row(is_call, x, k, t, r, q, v, black, solver, out, 0, memo)
    _ak._keep(owner)
    return st


@njit(cache=True, nogil=True, error_model="numpy")
def _american_iv(
    american: int, price: float, is_call: bool, x: float, k: float, t: float, r: float, q: float,
    tables: npt.NDArray[np.float64],
) -> tuple[float, int]:  # fmt: skip
    """The American implied vol of ``price`` (quote currency) and its status, under the
    scheme of ``american`` (engine.american_kernels' solver: at most 48 prices; the fast
    scheme's boundaries read from ``tables``, as :func:`_american_greeks`)."""
    solver, owner = _solver_for(american, tables)
    res = _ak._american_iv(price, is_call, x, k, t, r, q, solver)
    _ak._keep(owner)
    return res


SCENARIO_MEMO_ROWS = 8
"""Boundaries an American instrument keeps across a block of scenarios (a memo of
engine.american_kernels per distinct vol, rates and time left; engine.scenario_kernels): a
stress grid's vol levels (7 by default) each solve one, which all its spot levels read."""
_MEMO_WIDTH = max(_ak.memo_width(_ak.FAST), _ak.memo_width(_ak.ACCURATE))
_SOLVER_ROOM = max(_ak.solver_room(_ak.FAST), _ak.solver_room(_ak.ACCURATE))


@njit(cache=True, nogil=True, error_model="numpy")
def scenario_memo() -> npt.NDArray[np.float64]:
    """An empty memo for :func:`_american_price`: the solver's room, then
    :data:`SCENARIO_MEMO_ROWS` rows (:func:`_memo_row`)."""
    memo = np.full(_SOLVER_ROOM + SCENARIO_MEMO_ROWS * _MEMO_WIDTH + 1, _NAN)
    memo[-1] = 0.0
    return memo


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _memo_row(memo: F64, tb: float, r: float, q: float, v: float, is_call: bool) -> F64:
    """The row of a scenario memo (:func:`scenario_memo`: rows of :data:`_MEMO_WIDTH`, then
    the next row to take) keyed by these inputs, else the next row in turn, keyed by them
    with nothing held; an empty row when ``memo`` is empty."""
    if memo.shape[0] == 0:
        return memo
    rows = (memo.shape[0] - 1) // _MEMO_WIDTH
    for k in range(rows):
        row = memo[k * _MEMO_WIDTH : (k + 1) * _MEMO_WIDTH]
        if _ak._memo_keyed(row, tb, r, q, v, False, is_call):
            return row
    k = int(memo[-1])
    memo[-1] = (k + 1) % rows
    row = memo[k * _MEMO_WIDTH : (k + 1) * _MEMO_WIDTH]
    _ak._memo_key(row, tb, r, q, v, False, is_call)
    return row


@njit(cache=True, nogil=True, error_model="numpy")
def _american_price(
    american: int, is_call: bool, x: float, k: float, t: float, r: float, q: float, v: float,
    memo: F64,
) -> float:  # fmt: skip
    """The American price alone (NaN where its status is an error; the payoff at expiry),
    for full revaluation: engine.american_kernels' price, without the Greeks; its boundary
    read from ``memo`` (:func:`scenario_memo`; empty: none) where held there, else solved and
    kept there: the same price to the bit either way."""
    if memo.shape[0] == 0:  # room of its own, no rows
        room = np.empty(_SOLVER_ROOM)
        return _american_price_in(american, is_call, x, k, t, r, q, v, room, room[:0])
    return _american_price_in(
        american, is_call, x, k, t, r, q, v, memo[:_SOLVER_ROOM], memo[_SOLVER_ROOM:]
    )


@_ak._uncounted
def _american_price_in(
    american: int, is_call: bool, x: float, k: float, t: float, r: float, q: float, v: float,
    room: F64, rows: F64,
) -> float:  # fmt: skip
    """:func:`_american_price`, its solver working in ``room`` and its memo's ``rows``
    (:func:`_memo_row`): without numba's reference counting, which would count each of the
    scheme's arrays on every price (engine.american_kernels._uncounted)."""
    st = _ak._row_status(x, k, t, r, q, v)
    if st == EXPIRED:
        return max((x - k) if is_call else (k - x), 0.0)
    if st != OK:
        return _NAN
    scheme = _ACCURATE_SCHEME if american == AMERICAN_ACCURATE else _FAST_SCHEME
    solver = _ak._solver_in(scheme, room)  # scenarios: no tables
    row = _memo_row(rows, _ak._boundary_years(t, scheme.log_ratio), r, q, v, is_call)
    pick = (-1, -1, _ak._panel_of(v))
    price: float = _ak._american_full(
        is_call, x, k, t, r, q, v, solver, False, pick, _ak._memo_slot(row, 0), False
    )[0]
    return price


# inline: a call passing arrays costs a reference-count update per array, per row
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _unit_row(
    contract: tuple[int, bool, bool, bool, int, float, float],
    x: float,
    dividends: tuple[float, float],
    t: float,
    r: float,
    q: float,
    v: float,
    scratch: npt.NDArray[np.float64],
    unit: npt.NDArray[np.float64],
    i: int,
    memo: npt.NDArray[np.float64],
    tables: npt.NDArray[np.float64],
) -> int:
    """Exposure per unit of position of a ``contract`` (kind, black, inverse, is_call,
    exercise code, strike, multiplier: instrument ``i``'s scalars, not its row of
    InstrumentColumns, which read inside the caller's loop would cost half again as much)
    into ``unit[i]``, valued at ``x`` with ``t`` years left, rates ``r``, ``q`` and vol ``v``
    (``scratch[:, 0]``: room for the option's Greeks); American (engine.american_kernels) when
    its exercise code says so, with its ``memo`` of boundaries and the thread's boundary
    ``tables``; returns its status. An option
    with ``dividends`` (the PV of those paid before expiry and its rate sensitivity,
    InstrumentColumns' div_pv and div_rho; (0, 0): none) is priced on x - PV, its Greeks with
    respect to x (engine.american's escrowed model)."""
    kind, black, inverse, is_call, american, k, m = contract
    for c in range(N_UNIT):
        unit[i, c] = 0.0
    if not (math.isfinite(x) and x > 0.0 and math.isfinite(m)):
        return BAD_INPUT
    if kind == KIND_OPTION:
        pv, pv_rho = dividends
        xe = x - pv  # the escrowed spot (x itself when pv is 0)
        if american != EUROPEAN:
            st = _american_greeks(
                american, is_call, xe, k, t, r, r if black else q, v, black, scratch, memo,
                tables,
            )  # fmt: skip
        else:
            st = _gbs_row(is_call, xe, k, t, r, r if black else q, v, black, scratch, 0)
        if st != OK and st != EXPIRED:
            return st
        price = scratch[0, 0]
        delta = scratch[1, 0]
        gamma = scratch[2, 0]
        theta = scratch[4, 0]
        rho = scratch[5, 0]
        if pv != 0.0:  # the escrowed spot drifts by r PV a year and moves with r by -pv_rho
            theta -= delta * r * pv
            rho += delta * pv_rho
        unit[i, 0] = m * delta
        unit[i, 1] = m * delta * x
        unit[i, 2] = m * (delta - price / x) if inverse else m * delta
        unit[i, 3] = m * gamma
        unit[i, 4] = m * gamma * x * x * 0.01
        unit[i, 5] = m * scratch[3, 0] * 0.01
        unit[i, 6] = m * theta / 365.0
        unit[i, 7] = m * rho * 0.01
        unit[i, 8] = m * scratch[6, 0] * 0.01
        unit[i, 9] = m * scratch[7, 0] * 0.0001
        unit[i, 10] = m * price
        unit[i, 11] = m * price
        # cost is in the quote currency: coin for inverse options, converted at the forward
        unit[i, 12] = -m * x if inverse else -m
        return st
    if inverse and kind != KIND_SPOT:
        # Inverse future: quantity is USD notional N; value in coin N/x, P&L in USD
        # N (x / avg - 1) = -N + x sum(N / avg).
        unit[i, 0] = m / x
        unit[i, 1] = m
        unit[i, 2] = m / x
        unit[i, 11] = -m
        unit[i, 12] = m * x
        return OK
    unit[i, 0] = m
    unit[i, 1] = m * x
    unit[i, 2] = m
    if kind == KIND_SPOT:
        unit[i, 10] = m * x
    unit[i, 11] = m * x
    unit[i, 12] = -m
    return OK


_NS_PER_YEAR = 365.0 * 86_400.0 * 1e9  # engine.daycount.NS_PER_YEAR (ACT/365)
_CHUNK = 1024  # rows per chunk of the threaded pricing kernel

_PRICE_ROWS_SIG = void(int64[::1], _INSTRUMENTS, _MARKET, _PRICED)


# One call per range of rows, not per row: a call passing arrays costs a reference-count update
# per array.
@njit(cache=True, nogil=True, error_model="numpy")
def _price_range(
    start: int,
    stop: int,
    rows: npt.NDArray[np.int64],
    inst: InstrumentColumns,
    market: Market,
    out: PricedColumns,
    scratch: F64,
    thread: int,
) -> None:
    """For ``rows[start:stop]``: each instrument's inputs from the stored market data
    (engine.state's rules), then its unit exposure (:func:`_unit_row`), on numba thread
    ``thread``'s boundary tables."""
    # The columns as locals: read through its group inside the loop, a column costs about half
    # again as much (measured on a full reprice of 100k instruments).
    kind_ = inst.kind
    mult_ = inst.mult
    black_ = inst.black
    inverse_ = inst.inverse
    is_call_ = inst.is_call
    american_ = inst.american
    strike_ = inst.strike
    has_expiry_ = inst.has_expiry
    expiry_ns_ = inst.expiry_ns
    r_ = inst.r
    q_ = inst.q
    div_pv_ = inst.div_pv
    div_rho_ = inst.div_rho
    spot_row_ = inst.spot_row
    fwd_row_ = inst.fwd_row
    own_px_ = inst.own_px
    own_ts_ = inst.own_ts
    bid_ = inst.bid
    ask_ = inst.ask
    mark_ = inst.mark
    iv_ = inst.iv
    memo_row_ = inst.memo_row
    memo_ = market.memo
    tables = _ak._thread_tables(market.tables, thread)
    spot_px_ = market.spot_px
    spot_ts_ = market.spot_ts
    fwd_px_ = market.fwd_px
    fwd_ts_ = market.fwd_ts
    stale_after_ns_ = market.stale_after_ns
    X_out = out.X
    T_out = out.T
    sigma_out = out.sigma
    uses_spot_out = out.uses_spot
    uses_fwd_out = out.uses_fwd
    unit_out = out.unit
    status_out = out.status
    bad_out = out.bad
    valuation_ns = market.valuation_ns
    for j in range(start, stop):
        i = rows[j]
        k = kind_[i]
        t = (expiry_ns_[i] - valuation_ns) / _NS_PER_YEAR if has_expiry_[i] else 0.0
        tt = max(t, 0.0)
        ri = r_[i]
        qi = q_[i]
        s = spot_px_[spot_row_[i]]
        s_ts = spot_ts_[spot_row_[i]]
        f = _NAN
        f_ts = 0
        if fwd_row_[i] >= 0:
            f = fwd_px_[fwd_row_[i]]
            f_ts = fwd_ts_[fwd_row_[i]]
        own = own_px_[i]
        has_own = math.isfinite(own) and own > 0.0
        has_fwd = math.isfinite(f) and f > 0.0
        black = black_[i]
        on_forward = black or KIND_FUTURE <= k <= KIND_PERPETUAL  # futures, perpetuals
        used_spot = False
        used_fwd = False
        if has_own and (on_forward or k == KIND_SPOT):
            x = own
            input_ts = own_ts_[i]
        elif on_forward and has_fwd:
            x = f
            input_ts = f_ts
            used_fwd = True
        elif on_forward:  # the index carried forward
            x = s * math.exp((ri - qi) * tt)
            input_ts = s_ts
            used_spot = True
        else:
            x = s
            input_ts = s_ts
            used_spot = True
        v = _NAN
        dividends = (0.0, 0.0)
        if k == KIND_OPTION:
            input_ts = own_ts_[i]  # an option's own quote is its input
            dividends = (div_pv_[i], div_rho_[i])
            v = iv_[i]
            if not (math.isfinite(v) and v > 0.0):
                # implied from the mark, else from the mid
                px = mark_[i]
                if not (math.isfinite(px) and px > 0.0):
                    px = 0.5 * (bid_[i] + ask_[i])
                xe = x - dividends[0]  # on the price it is valued on, as it is valued
                fw = xe if black else xe * math.exp((ri - qi) * tt)
                px_usd = px * fw if inverse_[i] else px
                if american_[i] != EUROPEAN:
                    v, _ = _american_iv(
                        american_[i], px_usd, is_call_[i], xe, strike_[i], t, ri,
                        ri if black else qi, tables,
                    )  # fmt: skip
                else:
                    v, _ = _iv_row(px_usd, is_call_[i], fw, strike_[i], t, math.exp(-ri * tt))
        X_out[i] = x
        T_out[i] = t
        sigma_out[i] = v
        uses_spot_out[i] = used_spot
        uses_fwd_out[i] = used_fwd
        contract = (k, black, inverse_[i], is_call_[i], american_[i], strike_[i], mult_[i])
        row = memo_row_[i]
        memo = memo_[row] if row >= 0 else memo_[0, :0]
        st = _unit_row(contract, x, dividends, t, ri, qi, v, scratch, unit_out, i, memo, tables)
        status_out[i] = st
        stale = input_ts == 0 or valuation_ns - input_ts > stale_after_ns_
        bad_out[i] = st > EXPIRED or stale  # OK and EXPIRED (0, 1) are priced


@njit(_PRICE_ROWS_SIG, cache=True, nogil=True, error_model="numpy")
def price_rows_kernel(
    rows: npt.NDArray[np.int64], inst: InstrumentColumns, market: Market, out: PricedColumns
) -> None:
    """Derive each row's underlying price, time to expiry and volatility from the stored
    market data, solve implied vols where the quote gives none, and write its unit exposure,
    status and bad flag into ``out``: engine.state's whole repricing step in one pass."""
    _price_range(0, rows.shape[0], rows, inst, market, out, np.empty((9, 1)), 0)


@njit(cache=True, nogil=True, error_model="numpy")
def _bit_reversed(k: int, bits: int) -> int:
    """``k`` with its lowest ``bits`` bits in reverse order: k = 0, 1, 2, 3 of 2 bits give 0, 2, 1,
    3, so that any half (quarter...) of consecutive k spreads over the whole range."""
    out = 0
    for _ in range(bits):
        out = (out << 1) | (k & 1)
        k >>= 1
    return out


@njit(_PRICE_ROWS_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def price_rows_parallel_kernel(
    rows: npt.NDArray[np.int64], inst: InstrumentColumns, market: Market, out: PricedColumns
) -> None:
    """:func:`price_rows_kernel` over numba's thread pool (``prange``), in chunks of rows that
    each have their own small scratch block (a block per row would stride through memory).
    The chunks are taken in bit-reversed order (:func:`_bit_reversed`): numba deals each thread
    a contiguous run of iterations, and rows that cost a hundred times more than others (American
    options) often sit together; so each thread gets every other chunk (every fourth...)."""
    n = rows.shape[0]
    n_chunks = (n + _CHUNK - 1) // _CHUNK
    bits = 0
    while (1 << bits) < n_chunks:
        bits += 1
    for k in prange(1 << bits):
        c = _bit_reversed(k, bits)
        if c < n_chunks:
            stop = min(n, (c + 1) * _CHUNK)
            thread = get_thread_id()  # type: ignore[no-untyped-call]  # numba's is untyped
            _price_range(c * _CHUNK, stop, rows, inst, market, out, np.empty((9, 1)), thread)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _neumaier_add(hi: F64, lo: F64, g: int, c: int, x: float) -> None:
    """hi[g, c] + lo[g, c] += x, with Neumaier's compensation: the running sum stays within
    about one rounding of the exact sum of everything ever added, however many updates. The
    rounding error of the new high part is computed by Knuth's TwoSum, without a branch: it is
    exact, so it is the very error Neumaier's branch on |h| >= |x| computes (the same figures
    to the bit), and a loop over columns vectorises."""
    h = hi[g, c]
    s = h + x
    bp = s - h
    lo[g, c] += (h - (s - bp)) + (x - bp)
    hi[g, c] = s


# Called once per lot, not once per column: in a serial loop, each call of an inlined function
# that takes arrays updates their reference counts (atomically), which cost 40x the arithmetic
# when this was called per column. Threaded (prange) loops do not pay it. It takes the columns
# themselves, not their groups: read through a group inside a loop, a column costs about half
# again as much (measured on the threaded rebuild of 100k lots).
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _lot_contribution(
    lot: int,
    lot_inst: I64,
    qty: F64,
    cost: F64,
    has_cost: BoolArray,
    unit: F64_2D,
    bad: BoolArray,
    out: F64_2D,
    row: int,
) -> None:
    """A lot's contribution into ``out[row]`` (N_AGG values), in the column order of
    ``contrib`` and of the sums (``engine.state.AGG_FIELDS``): quantity x each unit figure,
    P&L, held (1/0), stale (1/0). The columns are those of LotColumns and PricedColumns. It
    takes the 2-D block and a row, not the row: a row view made per lot costs a reference count
    per lot in a serial loop."""
    n_fig = N_UNIT - 2
    i = lot_inst[lot]
    qn = qty[lot]
    for c in range(n_fig):
        out[row, c] = qn * unit[i, c]
    has = has_cost[lot]
    out[row, n_fig] = qn * unit[i, n_fig] + cost[lot] * unit[i, n_fig + 1] if has else 0.0
    held = qn != 0.0
    out[row, n_fig + 1] = 1.0 if held else 0.0
    out[row, n_fig + 2] = 1.0 if held and bad[i] else 0.0


_REPRICE_DIRTY_SIG = void(
    int64[::1],  # dirty instruments (held or not)
    int64[::1],  # dirty lots (changed by fills)
    _INSTRUMENTS,
    _MARKET,
    _PRICED,  # in/out
    _LOTS,  # in/out: contrib
    _SUMS,  # in/out
    int64,  # this cycle's stamp (never used before)
    boolean,  # reprice the held dirty instruments (False: the caller did, on the thread pool)
    int64[::1],  # out: the (book, underlying) rows touched (room for every row)
    int64[::1],  # out: the instruments whose use of the spot or the forward changed
    int64[::1],  # out: [number of rows touched, number of such instruments]
)


@njit(_REPRICE_DIRTY_SIG, cache=True, nogil=True, error_model="numpy")
def reprice_dirty_kernel(
    dirty: npt.NDArray[np.int64],
    dirty_lots: npt.NDArray[np.int64],
    inst: InstrumentColumns,
    market: Market,
    priced: PricedColumns,
    lots: LotColumns,
    sums: GroupSums,
    stamp: int,
    reprice: bool,
    touched: npt.NDArray[np.int64],
    moved: npt.NDArray[np.int64],
    counts: npt.NDArray[np.int64],
) -> None:
    """An incremental cycle in one call: reprice the held instruments among ``dirty`` (as
    :func:`price_rows_kernel`; not when ``reprice`` is False), then update every lot on them
    and every lot in ``dirty_lots`` (remove the old contribution, add the new one,
    compensated), listing the (book, underlying) rows touched (once each) and the instruments
    that switched
    between the index and the forward (the caller tracks who uses which shared price)."""
    n_lots = inst.n_lots
    uses_spot = priced.uses_spot
    uses_fwd = priced.uses_fwd
    held = np.empty(dirty.shape[0], dtype=np.int64)
    was = np.empty(dirty.shape[0], dtype=np.int8)
    m = 0
    for i in dirty:
        if n_lots[i] > 0:
            held[m] = i
            was[m] = uses_spot[i] + 2 * uses_fwd[i]
            m += 1
    if reprice:
        _price_range(0, m, held, inst, market, priced, np.empty((9, 1)), 0)
    # Every lot to update: those on the held dirty instruments, then those fills changed. A
    # lot in both is updated twice, which is harmless: the second finds nothing changed.
    n_update = dirty_lots.shape[0]
    for j in range(m):
        n_update += n_lots[held[j]]
    todo = np.empty(n_update, dtype=np.int64)
    k = 0
    n_moved = 0
    for j in range(m):
        i = held[j]
        if uses_spot[i] + 2 * uses_fwd[i] != was[j]:
            moved[n_moved] = i
            n_moved += 1
        lot = inst.first_lot[i]
        while lot >= 0:
            todo[k] = lot
            k += 1
            lot = lots.next_lot[lot]
    todo[k:] = dirty_lots
    # Move the sums of each lot's group, (book, underlying) and book from the old contribution
    # to the new one: the change, taken exactly, added to each, compensated (an unchanged
    # value adds 0 and leaves them as they were).
    lot_inst, qty, cost, has_cost, contrib = (
        lots.inst,
        lots.qty,
        lots.cost,
        lots.has_cost,
        lots.contrib,
    )
    unit, bad = priced.unit, priced.bad
    lot_group, group_bu, group_book, bu_stamp = (
        lots.group,
        sums.group_bu,
        sums.group_book,
        sums.bu_stamp,
    )
    levels = (
        (sums.group_hi, sums.group_lo),
        (sums.bu_hi, sums.bu_lo),
        (sums.book_hi, sums.book_lo),
    )
    new = np.empty((1, N_AGG))
    change = np.empty((2, N_AGG))
    n_touched = 0
    for j in range(n_update):
        lot = todo[j]
        _lot_contribution(lot, lot_inst, qty, cost, has_cost, unit, bad, new, 0)
        g = lot_group[lot]
        u = group_bu[g]
        # the change of each column, exactly: change[0] + change[1] == new - old (TwoSum)
        for c in range(N_AGG):
            old = contrib[lot, c]
            x = new[0, c]
            d = x - old
            bp = d - x
            change[0, c] = d
            change[1, c] = (x - (d - bp)) + (-old - bp)
            contrib[lot, c] = x
        # ... added to the sums of the lot's group, (book, underlying) and book, compensated:
        # _neumaier_add's arithmetic written out (a call per column costs reference counts)
        for level, row in enumerate((g, u, group_book[g])):
            hi, lo = levels[level]
            for c in range(N_AGG):
                d = change[0, c]
                h = hi[row, c]
                s = h + d
                bp = s - h
                lo[row, c] += ((h - (s - bp)) + (d - bp)) + change[1, c]
                hi[row, c] = s
        if bu_stamp[u] != stamp:
            bu_stamp[u] = stamp
            touched[n_touched] = u
            n_touched += 1
    counts[0] = n_touched
    counts[1] = n_moved


_REBUILD_CHUNKS = 16
"""Most partial sums of a threaded rebuild. Their number depends on the number of lots only, not
on the thread count, so neither does the result (each chunk is a fixed range of lots, merged in
chunk order)."""
_REBUILD_CHUNK_LOTS = 32_768
"""Fewest lots per chunk: merging costs chunks x groups, which for a small book outweighs the
lots themselves."""
_REBUILD_PART_GROUPS = 131_072
"""Most chunks x groups: the partial sums take 2 x N_AGG x 8 bytes (224) each, so at most
about 30 MB (16 chunks of 200k groups would take 700 MB, more than the book itself)."""


@njit(cache=True, nogil=True, error_model="numpy")
def _rebuild_chunk(
    ch: int,
    size: int,
    chunks: int,
    lots: LotColumns,
    priced: PricedColumns,
    part_hi: F64,
    part_lo: F64,
) -> None:
    """Chunk ``ch`` of a rebuild (lots ``ch * size`` up to ``(ch + 1) * size``): each lot's
    contribution, and the chunk's compensated partial sums per group (its rows of ``part_hi``
    and ``part_lo``, one block of groups per chunk)."""
    lot_inst, lot_group, qty, cost = lots.inst, lots.group, lots.qty, lots.cost
    has_cost, contrib, unit, bad = lots.has_cost, lots.contrib, priced.unit, priced.bad
    base = ch * (part_hi.shape[0] // chunks)
    for lot in range(ch * size, min(lot_inst.shape[0], (ch + 1) * size)):
        g = base + lot_group[lot]
        _lot_contribution(lot, lot_inst, qty, cost, has_cost, unit, bad, contrib, lot)
        # _neumaier_add's arithmetic written out (a call per column costs reference counts):
        # branch-free, so the loop over the columns vectorises
        for c in range(N_AGG):
            h = part_hi[g, c]
            x = contrib[lot, c]
            s = h + x
            bp = s - h
            part_lo[g, c] += (h - (s - bp)) + (x - bp)
            part_hi[g, c] = s


@njit(cache=True, nogil=True, error_model="numpy")
def _rebuild_merge(chunks: int, part_hi: F64, part_lo: F64, sums: GroupSums) -> None:
    """Every group's, (book, underlying)'s and book's sums (overwritten) from the chunks'
    partial sums, merged in chunk order (a compensated sum of their high and low parts)."""
    n_groups = sums.group_hi.shape[0]
    hi, lo = sums.group_hi, sums.group_lo
    bu_hi, bu_lo = sums.bu_hi, sums.bu_lo
    book_hi, book_lo = sums.book_hi, sums.book_lo
    hi[:, :] = 0.0
    lo[:, :] = 0.0
    bu_hi[:, :] = 0.0
    bu_lo[:, :] = 0.0
    book_hi[:, :] = 0.0
    book_lo[:, :] = 0.0
    for g in range(n_groups):
        u = sums.group_bu[g]
        b = sums.group_book[g]
        for ch in range(chunks):
            row = ch * n_groups + g
            for c in range(N_AGG):
                for x in (part_hi[row, c], part_lo[row, c]):
                    if x == 0.0:
                        continue
                    _neumaier_add(hi, lo, g, c, x)
                    _neumaier_add(bu_hi, bu_lo, u, c, x)
                    _neumaier_add(book_hi, book_lo, b, c, x)


@njit(cache=True, nogil=True, error_model="numpy")
def rebuild_chunks(n_lots: int, n_groups: int) -> int:
    """How many chunks a rebuild of ``n_lots`` lots in ``n_groups`` groups sums in: a function
    of the book only (not of the threads), so that the serial and the threaded rebuild give
    the same figures; few enough that the partial sums stay small."""
    by_memory = _REBUILD_PART_GROUPS // max(n_groups, 1)
    return max(1, min(_REBUILD_CHUNKS, n_lots // _REBUILD_CHUNK_LOTS, by_memory))


@njit(void(_LOTS, _PRICED, _SUMS), cache=True, nogil=True, error_model="numpy")
def lot_rebuild_kernel(lots: LotColumns, priced: PricedColumns, sums: GroupSums) -> None:
    """Every lot's contribution (``lots.contrib``, overwritten) and every group's, (book,
    underlying)'s and book's sums (overwritten; ``bu_stamp`` is left alone) from scratch, for
    every lot of ``lots`` and every group of ``sums.group_hi``: :func:`rebuild_chunks`
    compensated partial sums over fixed ranges of lots, then merged in order. One thread: for
    a book too small to gain from the pool (waking it costs more)."""
    n_lots = lots.inst.shape[0]
    chunks = rebuild_chunks(n_lots, sums.group_hi.shape[0])
    part_hi = np.zeros((chunks * sums.group_hi.shape[0], N_AGG))
    part_lo = np.zeros_like(part_hi)
    size = (n_lots + chunks - 1) // chunks
    for ch in range(chunks):
        _rebuild_chunk(ch, size, chunks, lots, priced, part_hi, part_lo)
    _rebuild_merge(chunks, part_hi, part_lo, sums)


@njit(void(_LOTS, _PRICED, _SUMS), parallel=True, cache=True, nogil=True, error_model="numpy")
def lot_rebuild_parallel_kernel(lots: LotColumns, priced: PricedColumns, sums: GroupSums) -> None:
    """:func:`lot_rebuild_kernel` with its chunks over the thread pool: the same figures,
    whatever the number of threads."""
    n_lots = lots.inst.shape[0]
    chunks = rebuild_chunks(n_lots, sums.group_hi.shape[0])
    part_hi = np.zeros((chunks * sums.group_hi.shape[0], N_AGG))
    part_lo = np.zeros_like(part_hi)
    size = (n_lots + chunks - 1) // chunks
    for ch in prange(chunks):
        _rebuild_chunk(ch, size, chunks, lots, priced, part_hi, part_lo)
    _rebuild_merge(chunks, part_hi, part_lo, sums)


# ---------------------------------------------------------------------------------- SVI fit


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _clip_nan(v: float, lo: float, hi: float) -> float:
    """``v`` clipped to [lo, hi], NaN kept (numpy's clip)."""
    if v != v:
        return v
    return lo if v < lo else hi if v > hi else v


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _svi_linear_row(
    m: float, s: float, rho: float, k: F64, y: F64, om: F64, b_cap: float, h: F64
) -> tuple[float, float, float]:
    """(c, b, weighted sum of squares) of :func:`svi_linear_kernel` for one (m, σ, ρ); ``h``
    (scratch, one per point) is left holding h(k)."""
    n = 0.0
    ny = 0.0
    nh = 0.0
    nhh = 0.0
    nhy = 0.0
    shift = s * math.sqrt(1.0 - rho * rho)
    for i in range(k.shape[0]):
        d = k[i] - m
        hi = rho * d + math.hypot(d, s) - shift
        h[i] = hi
        n += om[i]
        ny += om[i] * y[i]
        nh += hi * om[i]
        nhh += hi * hi * om[i]
        nhy += hi * y[i] * om[i]
    b_max = b_cap / (1.0 + abs(rho))
    b_free = (n * nhy - nh * ny) / (n * nhh - nh * nh)
    # candidates: the free optimum's b clipped, c = 0 with its best b, b = 0, b on its bound;
    # the first smallest sum wins (a NaN never does), the first candidate where none is finite
    best_c, best_b, best_sse, bar = math.nan, math.nan, math.nan, math.inf
    for j in range(4):
        if j == 0:
            b, c = _clip_nan(b_free, 0.0, b_max), (ny - b_free * nh) / n
        elif j == 1:
            b, c = _clip_nan(nhy / nhh, 0.0, b_max), 0.0
        elif j == 2:
            b, c = 0.0, ny / n
        else:
            b, c = b_max, (ny - b_max * nh) / n
        c = c if c != c or c >= 0.0 else 0.0  # max(c, 0), NaN kept
        sse = 0.0
        for i in range(k.shape[0]):
            e = c + b * h[i] - y[i]
            sse += e * e * om[i]
        if j == 0 or sse < bar:
            best_c, best_b, best_sse = c, b, sse
            bar = sse if sse < bar else bar
    return best_c, best_b, best_sse


@njit(
    void(float64[:, ::1], float64[::1], float64[::1], float64[::1], float64, float64[:, ::1]),
    cache=True,
    nogil=True,
    error_model="numpy",
)
def svi_linear_kernel(x: F64, k: F64, y: F64, om: F64, b_cap: float, out: F64) -> None:
    """The inner step of an SVI fit (engine.risk.skew): for each row (m, σ, ρ) of ``x``, the
    best c >= 0 and 0 <= b <= ``b_cap`` / (1 + |ρ|) of w = c + b h(k), h = ρ (k - m) +
    √((k - m)² + σ²) - σ √(1 - ρ²), in weighted least squares (weights ``om``) against
    ``y`` over log-strikes ``k``: the free optimum's b clipped to the box, or the best of the
    box's edges (b on its upper bound or 0; c free). Writes c, b and the weighted sum of
    squares into ``out`` (rows of ``x``, 3 columns); the first candidate's where no sum is
    finite."""
    h = np.empty(k.shape[0])
    for r in range(x.shape[0]):
        out[r, 0], out[r, 1], out[r, 2] = _svi_linear_row(
            x[r, 0], x[r, 1], x[r, 2], k, y, om, b_cap, h
        )


@njit(
    void(float64[:, ::1], float64[::1], float64[::1], float64[::1], float64, float64[:, ::1]),
    cache=True,
    nogil=True,
    error_model="numpy",
)
def svi_residual_kernel(x: F64, k: F64, y: F64, om: F64, b_cap: float, res: F64) -> None:
    """For each row (m, σ, ρ) of ``x``, the weighted residuals √om (c + b h(k) - y), c and b
    the best of :func:`svi_linear_kernel`, into that row of ``res`` (one column per point):
    what the outer least squares of an SVI fit minimises."""
    for r in range(x.shape[0]):
        row = res[r]
        c, b, _ = _svi_linear_row(x[r, 0], x[r, 1], x[r, 2], k, y, om, b_cap, row)
        for i in range(k.shape[0]):
            row[i] = math.sqrt(om[i]) * (c + b * row[i] - y[i])


# --------------------------------------------------------------------------------- scenarios
# Full revaluation of a book under market scenarios (historical simulation, Monte Carlo VaR,
# stress grids): each position's value at moved prices, vols and a later date, minus its value
# now. engine.risk.var holds the conventions and the typed wrapper.

_SCENARIO_SIG = void(
    _numba_type(ScenarioColumns),
    float64[:, ::1],  # ret: log-return, (scenarios, underlyings)
    float64[:, ::1],  # dvol: relative vol move, (scenarios, underlyings)
    float64,  # horizon, years
    float64[::1],  # out: value now per unit of weight, USD (NaN: cannot be valued)
    float64[::1],  # out: P&L per scenario, USD
)
VOL_FLOOR = 0.01  # a scenario's vol is at least 1 % of the vol now


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scenario_value(
    book: ScenarioColumns, i: int, t: float, v: float, x: float, log_xk: float, memo: F64
) -> float:
    """Position ``i``'s USD value per unit of weight at price ``x`` (``log_xk`` = ln(x/k)),
    ``t`` years to expiry and vol ``v``. Options: the model's USD price (a coin-settled
    option's coin premium x F is its Black-76 USD price; an American option's, engine.
    american_kernels' price under its scheme), on x less its dividends' PV now (``div_pv``)
    when it has some; linear futures and spot: ``x``; inverse futures (weight = USD
    notional): ``x`` over the price now. ``memo``: an American option's boundaries across
    scenarios (:func:`scenario_memo`; empty: none)."""
    kind = book.kind[i]
    if kind == KIND_OPTION:
        pv = book.div_pv[i]
        if pv != 0.0:  # escrowed dividends: the moved spot less the same PV
            x -= pv
            if x > 0.0 and book.strike[i] > 0.0:
                log_xk = _log_ratio(x, book.strike[i])
        r = book.r[i]
        q = r if book.black[i] else book.q[i]
        american = book.american[i]
        if american != EUROPEAN:
            return _american_price(american, book.is_call[i], x, book.strike[i], t, r, q, v, memo)
        return _gbs_price(book.is_call[i], x, book.strike[i], log_xk, t, r, q, v)
    if book.inverse[i] and kind != KIND_SPOT:
        x0: float = book.X[i]
        return x / x0
    return x


# The pieces every scenario kernel (here and engine.part_kernels) shares, inlined: the same
# compiled loops as when each kernel wrote them out.
@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _value_now(book: ScenarioColumns, i: int) -> tuple[float, float]:
    """Position ``i``'s ln(X/K) (options with X and K > 0; else 0), which a scenario moves by
    its log-return, and its value now per unit of weight (:func:`_scenario_value`)."""
    x = book.X[i]
    log_xk = 0.0
    if book.kind[i] == KIND_OPTION and x > 0.0 and book.strike[i] > 0.0:
        log_xk = _log_ratio(x, book.strike[i])
    return log_xk, _scenario_value(book, i, book.T[i], book.sigma[i], x, log_xk, book.X[:0])


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _values_now(book: ScenarioColumns, log_xk: F64, value: F64) -> None:
    """:func:`_value_now` of every position into ``log_xk`` and ``value``."""
    for i in range(book.kind.shape[0]):
        log_xk[i], value[i] = _value_now(book, i)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _scenario_factors(ret: F64, dvol: F64, growth: F64, vol_factor: F64) -> None:
    """One scenario's factors per underlying (once per scenario rather than per position):
    the price's growth e^ret and the vol's factor 1 + dvol, at least :data:`VOL_FLOOR`."""
    for u in range(ret.shape[0]):
        growth[u] = math.exp(ret[u])
        vol_factor[u] = max(1.0 + dvol[u], VOL_FLOOR)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _moved_value(
    book: ScenarioColumns,
    i: int,
    later: float,
    ret: float,
    growth: float,
    vol_factor: float,
    log_xk: float,
    memo: F64,
) -> float:
    """Position ``i``'s value per unit of weight in a scenario: ``later`` years to expiry, its
    underlying moved by log-return ``ret`` (``growth`` = e^ret), its vol times ``vol_factor``
    (``log_xk``: its :func:`_value_now`; ``memo``: :func:`_scenario_value`'s)."""
    return _scenario_value(
        book, i, later, book.sigma[i] * vol_factor, book.X[i] * growth, log_xk + ret, memo
    )


@njit(_SCENARIO_SIG, parallel=True, cache=True, nogil=True, error_model="numpy")
def scenario_pnl_kernel(
    book: ScenarioColumns, ret: F64, dvol: F64, horizon: float, value: F64, pnl: F64
) -> None:
    """Each scenario's P&L: the sum over positions of weight x (value at X e^ret, vol
    sigma (1 + dvol), floored at 1 % of sigma, and T - horizon) minus weight x value now.
    A position that cannot be valued now (value NaN) is left out of every scenario."""
    n = book.kind.shape[0]
    log_xk = np.zeros(n)  # ln(X/K) of each option now; a scenario adds its log-return
    _values_now(book, log_xk, value)
    later = np.maximum(book.T - horizon, 0.0)
    n_und = ret.shape[1]
    for s in prange(ret.shape[0]):
        growth = np.empty(n_und)
        vol_factor = np.empty(n_und)
        _scenario_factors(ret[s], dvol[s], growth, vol_factor)
        total = 0.0
        for i in range(n):
            if not math.isfinite(value[i]):
                continue
            u = book.und[i]
            moved = _moved_value(
                book, i, later[i], ret[s, u], growth[u], vol_factor[u], log_xk[i], book.X[:0]
            )
            total += book.weight[i] * (moved - value[i])
        pnl[s] = total
