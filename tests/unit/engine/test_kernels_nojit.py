"""The numba kernels called directly on small arrays, one row per branch of their bodies.

scripts/test runs this module once more with NUMBA_DISABLE_JIT=1, where the kernels are plain
Python and coverage sees every line of them; it passes with the JIT on as well. Keep it small
and fast (the oracle is mpmath, and Python-mode kernels are slow): it checks that each kernel
and each status branch does the right thing, not accuracy over the whole domain
(test_greeks.py does that through the wrappers).
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from engine import kernels
from engine.status import Status
from tests import oracle

F64 = npt.NDArray[np.float64]
Kernel = Callable[..., None]
# Under NUMBA_DISABLE_JIT=1 the @njit decorators hand back the plain Python functions.
PYTHON_MODE = isinstance(kernels.bsm_kernel, types.FunctionType)
NAN = math.nan
INF = math.inf

# Tolerances against the oracle, as in test_greeks.py: figures per unit of spot (currency
# figures / S, gamma * S, delta, vanna and charm as they are); second-order Greeks are
# differentiated numerically by the oracle and compared more loosely.
RTOL_FIRST, ATOL_FIRST = 1e-11, 1e-13
RTOL_SECOND, ATOL_SECOND = 1e-9, 1e-11
_IN_CURRENCY = frozenset({"price", "vega", "theta", "rho", "volga"})


class Row(NamedTuple):
    is_call: bool
    S: float  # F for Black-76 and inverse
    K: float
    T: float
    r: float
    q: float  # BSM only
    sigma: float
    status: Status


PRICED = [
    Row(True, 100.0, 80.0, 0.5, 0.03, 0.01, 0.25, Status.OK),
    Row(True, 100.0, 100.0, 1.0 / 8760.0, 0.05, 0.0, 0.6, Status.OK),
    Row(True, 100.0, 160.0, 2.0, -0.01, 0.04, 0.9, Status.OK),
    Row(False, 100.0, 80.0, 0.25, 0.03, 0.01, 0.25, Status.OK),
    Row(False, 100.0, 120.0, 5.0, 0.1, 0.02, 0.05, Status.OK),
]
# At expiry: the payoff, a step delta (half at the strike), every other Greek 0.
EXPIRED = [
    Row(True, 110.0, 100.0, 0.0, 0.03, 0.01, 0.25, Status.EXPIRED),
    Row(True, 100.0, 100.0, -0.0, 0.03, 0.01, 0.25, Status.EXPIRED),
    Row(True, 90.0, 100.0, -1.0, 0.03, 0.01, NAN, Status.EXPIRED),
    Row(False, 110.0, 100.0, 0.0, 0.03, 0.01, 0.25, Status.EXPIRED),
    Row(False, 100.0, 100.0, -0.5, 0.03, 0.01, 0.0, Status.EXPIRED),
    Row(False, 90.0, 100.0, 0.0, 0.03, 0.01, 0.25, Status.EXPIRED),
]
EXPIRED_PRICE = [10.0, 0.0, 0.0, 0.0, 0.0, 10.0]
EXPIRED_DELTA = [1.0, 0.5, 0.0, 0.0, -0.5, -1.0]
BAD = [
    Row(True, 100.0, 100.0, 0.5, 0.03, 0.01, 0.0, Status.BAD_VOL),
    Row(False, 100.0, 100.0, 0.5, 0.03, 0.01, NAN, Status.BAD_VOL),
    Row(True, 100.0, 100.0, 0.5, 0.03, 0.01, -INF, Status.BAD_VOL),
    Row(True, NAN, 100.0, 0.5, 0.03, 0.01, 0.25, Status.BAD_INPUT),
    Row(False, 0.0, 100.0, 0.5, 0.03, 0.01, 0.25, Status.BAD_INPUT),
    Row(True, 100.0, -1.0, 0.5, 0.03, 0.01, 0.25, Status.BAD_INPUT),
    Row(True, 100.0, 100.0, INF, 0.03, 0.01, 0.25, Status.BAD_INPUT),
    Row(False, 100.0, 100.0, 0.0, NAN, 0.01, 0.25, Status.BAD_INPUT),
]
BAD_BSM_ONLY = [Row(True, 100.0, 100.0, 0.5, 0.03, INF, 0.25, Status.BAD_INPUT)]


def _columns(rows: list[Row]) -> dict[str, Any]:
    return {
        "is_call": np.array([r.is_call for r in rows], dtype=np.bool_),
        **{name: np.array([getattr(r, name) for r in rows]) for name in "SKTrq"},
        "sigma": np.array([r.sigma for r in rows]),
    }


@functools.cache
def _reference(model: str, row: Row) -> oracle.RefGreeks:
    if model == "bsm":
        return oracle.ref_bsm(row.is_call, row.S, row.K, row.T, row.r, row.q, row.sigma)
    return oracle.ref_black76(row.is_call, row.S, row.K, row.T, row.r, row.sigma)


def _run(model: str, kernel: Kernel, rows: list[Row]) -> tuple[F64, npt.NDArray[np.int8]]:
    c = _columns(rows)
    n = len(rows)
    nrows = len(kernels.INVERSE_FIELDS if model == "inverse" else kernels.GREEK_FIELDS)
    out = np.full((nrows, n), -999.0)  # every cell must be written
    status = np.full(n, -1, dtype=np.int8)
    if model == "bsm":
        kernel(c["is_call"], c["S"], c["K"], c["T"], c["r"], c["q"], c["sigma"], out, status)
    else:
        kernel(c["is_call"], c["S"], c["K"], c["T"], c["r"], c["sigma"], out, status)
    return out, status


PRICING_KERNELS = [
    ("bsm", kernels.bsm_kernel),
    ("bsm", kernels.bsm_parallel_kernel),
    ("black76", kernels.black76_kernel),
    ("black76", kernels.black76_parallel_kernel),
    ("inverse", kernels.inverse_kernel),
    ("inverse", kernels.inverse_parallel_kernel),
]
PRICING_IDS = [
    "bsm_kernel",
    "bsm_parallel_kernel",
    "black76_kernel",
    "black76_parallel_kernel",
    "inverse_kernel",
    "inverse_parallel_kernel",
]


@pytest.mark.parametrize(("model", "kernel"), PRICING_KERNELS, ids=PRICING_IDS)
def test_pricing_kernel(model: str, kernel: Kernel) -> None:
    rows = PRICED + EXPIRED + BAD + (BAD_BSM_ONLY if model == "bsm" else [])
    out, status = _run(model, kernel, rows)
    assert_array_equal(status, [r.status for r in rows])

    n_priced, n_expired = len(PRICED), len(EXPIRED)
    priced = slice(0, n_priced)
    expired = slice(n_priced, n_priced + n_expired)
    bad = slice(n_priced + n_expired, None)
    S = np.array([r.S for r in PRICED])
    ref_model = "bsm" if model == "bsm" else "black76"
    refs = [_reference(ref_model, r) for r in PRICED]
    for j, name in enumerate(kernels.GREEK_FIELDS):
        first = j < 6
        want = np.array([getattr(ref, name) for ref in refs])
        got = out[j, priced]
        if name in _IN_CURRENCY:
            got, want = got / S, want / S
        elif name == "gamma":
            got, want = got * S, want * S
        assert_allclose(
            got,
            want,
            rtol=RTOL_FIRST if first else RTOL_SECOND,
            atol=ATOL_FIRST if first else ATOL_SECOND,
            err_msg=name,
        )

    assert_array_equal(out[0, expired], EXPIRED_PRICE)
    assert_array_equal(out[1, expired], EXPIRED_DELTA)
    assert_array_equal(out[2:9, expired], 0.0)
    assert np.isnan(out[:, bad]).all()

    if model == "inverse":
        coin_delta = [oracle.ref_inverse(r.is_call, r.S, r.K, r.T, r.r, r.sigma) for r in PRICED]
        assert_allclose(
            out[9, priced], [c for c, _ in coin_delta], rtol=RTOL_FIRST, atol=ATOL_FIRST
        )
        assert_allclose(
            out[10, priced], [d for _, d in coin_delta], rtol=RTOL_FIRST, atol=ATOL_FIRST
        )
        F = np.array([r.S for r in EXPIRED])
        assert_array_equal(out[9, expired], out[0, expired] / F)
        assert_array_equal(out[10, expired], out[1, expired] - out[9, expired])


# ------------------------------------------------------------------------- implied volatility


class IvRow(NamedTuple):
    price: float  # discounted: df · Black(F, K, T, sigma)
    is_call: bool
    F: float
    K: float
    T: float
    df: float
    sigma: float  # expected (NaN when the status is not OK)
    status: Status


def _solvable(is_call: bool, F: float, K: float, T: float, r: float, sigma: float) -> IvRow:
    """A row whose price comes from the oracle at a known sigma."""
    price = oracle.ref_price(is_call, F, K, T, r, r, sigma)
    return IvRow(price, is_call, F, K, T, math.exp(-r * T), sigma, Status.OK)


@functools.cache
def _iv_rows() -> list[IvRow]:
    solvable = [
        # Jäckel's three regions of the normalised price: lowest (deep out of the money, low
        # vol: worked in logs), middle, and upper (very high vol: b near its maximum).
        _solvable(True, 100.0, 150.0, 0.1, 0.03, 0.2),
        _solvable(False, 100.0, 60.0, 0.05, 0.0, 0.15),
        _solvable(True, 100.0, 100.0, 1.0, 0.03, 0.3),
        _solvable(False, 100.0, 110.0, 0.5, 0.01, 0.4),
        _solvable(True, 100.0, 80.0, 0.5, 0.02, 0.25),  # in the money: via parity
        _solvable(False, 100.0, 120.0, 2.0, 0.05, 0.35),
        _solvable(True, 100.0, 120.0, 4.0, 0.01, 3.0),
        _solvable(False, 100.0, 90.0, 9.0, 0.01, 2.5),
        # Rows that reach particular corners of the solver: a price of ~1e-304 deep in the
        # lowest region (the asymptotic series of erfcx), the lowest region near the money,
        # a step that leaves the bracket, and a stop on rounding noise.
        _solvable(False, 100.0, 43.78035860873629, 1.0, 0.0, 0.02221983522841642),
        _solvable(True, 100.0, 117.37480117828596, 1.0, 0.0, 0.15207366088860866),
        _solvable(False, 100.0, 129.51399927229994, 1.0, 0.0, 0.15721615715876788),
    ]
    nan = NAN
    bad = [
        IvRow(NAN, True, 100.0, 100.0, 1.0, 1.0, nan, Status.BAD_INPUT),
        IvRow(INF, True, 100.0, 100.0, 1.0, 1.0, nan, Status.BAD_INPUT),
        IvRow(5.0, True, 0.0, 100.0, 1.0, 1.0, nan, Status.BAD_INPUT),
        IvRow(5.0, False, 100.0, -1.0, 1.0, 1.0, nan, Status.BAD_INPUT),
        IvRow(5.0, True, 100.0, 100.0, NAN, 1.0, nan, Status.BAD_INPUT),
        IvRow(5.0, True, 100.0, 100.0, 1.0, 0.0, nan, Status.BAD_INPUT),
        IvRow(5.0, True, 100.0, 100.0, 0.0, 1.0, nan, Status.EXPIRED),
        IvRow(5.0, False, 100.0, 100.0, -1.0, 1.0, nan, Status.EXPIRED),
        # At or below the discounted intrinsic value.
        IvRow(0.0, True, 100.0, 120.0, 1.0, 0.99, nan, Status.PRICE_BELOW_INTRINSIC),
        IvRow(19.8, True, 120.0, 100.0, 1.0, 0.99, nan, Status.PRICE_BELOW_INTRINSIC),
        IvRow(5.0, False, 100.0, 110.0, 1.0, 0.99, nan, Status.PRICE_BELOW_INTRINSIC),
        # Above intrinsic, but the time value underflows once normalised by sqrt(F K).
        IvRow(5e-324, True, 1e150, 2e150, 1.0, 1.0, nan, Status.PRICE_BELOW_INTRINSIC),
        # At or above the discounted upper bound (F for a call, K for a put).
        IvRow(99.0, True, 100.0, 120.0, 1.0, 0.99, nan, Status.PRICE_ABOVE_MAX),
        IvRow(120.0, False, 100.0, 110.0, 1.0, 0.99, nan, Status.PRICE_ABOVE_MAX),
        # Just below the bound, where the normalised time value rounds onto its maximum.
        IvRow(
            math.nextafter(19.685353973418493, 0.0),
            True,
            19.685353973418493,
            112.18671722433636,
            1.0,
            1.0,
            nan,
            Status.PRICE_ABOVE_MAX,
        ),
    ]
    return solvable + bad


@pytest.mark.parametrize(
    "kernel",
    [kernels.implied_vol_kernel, kernels.implied_vol_parallel_kernel],
    ids=["implied_vol_kernel", "implied_vol_parallel_kernel"],
)
def test_implied_vol_kernel(kernel: Kernel) -> None:
    rows = _iv_rows()
    cols = {name: np.array([getattr(r, name) for r in rows]) for name in IvRow._fields}
    n = len(rows)
    sigma = np.full(n, -999.0)
    status = np.full(n, -1, dtype=np.int8)
    kernel(
        cols["price"],
        cols["is_call"].astype(np.bool_),
        cols["F"],
        cols["K"],
        cols["T"],
        cols["df"],
        sigma,
        status,
    )
    assert_array_equal(status, [r.status for r in rows])
    ok = status == Status.OK
    # Prices carry the oracle's 50 digits rounded once; sigma is recovered to ~1e-14 here.
    assert_allclose(sigma[ok], cols["sigma"][ok], rtol=1e-12, atol=0)
    assert np.isnan(sigma[~ok]).all()


def test_implied_vol_kernel_first_guess_stays_in_domain() -> None:
    """An ordinary out-of-the-money call (F 100, K 441.69, T 1, sigma 0.905) whose asymptotic
    first guess has h² < s²/4. The kernel must not depend on the error model to get through it."""
    row = _solvable(True, 100.0, 441.6922242723656, 1.0, 0.0, 0.9050747800052014)
    sigma = np.full(1, -999.0)
    status = np.full(1, -1, dtype=np.int8)
    kernels.implied_vol_kernel(
        np.array([row.price]),
        np.array([row.is_call]),
        np.array([row.F]),
        np.array([row.K]),
        np.array([row.T]),
        np.array([row.df]),
        sigma,
        status,
    )
    assert status[0] == Status.OK
    assert_allclose(sigma, [row.sigma], rtol=1e-12, atol=0)


MAX_PARAMETERS = 12


def test_no_kernel_takes_more_than_12_parameters() -> None:
    """Kernels take grouped columns (engine.kernels' NamedTuples, american_kernels' Solver),
    not loose arrays: every function of every ``engine/*kernels.py`` module, compiled or not,
    takes at most MAX_PARAMETERS (a new kernel module is covered by default)."""
    counts = {}
    for path in sorted(Path(kernels.__file__).parent.glob("*kernels.py")):
        module = importlib.import_module(f"engine.{path.stem}")
        for name, obj in vars(module).items():
            fn = getattr(obj, "py_func", obj)  # a numba dispatcher's Python function
            if inspect.isfunction(fn) and fn.__module__ == module.__name__:
                counts[f"{path.stem}.{name}"] = len(inspect.signature(fn).parameters)
    assert "kernels.reprice_dirty_kernel" in counts
    assert "american_kernels._american_row" in counts
    assert {n: c for n, c in counts.items() if c > MAX_PARAMETERS} == {}


def test_check_group_refuses_columns_the_kernels_are_not_compiled_for() -> None:
    """The state calls reprice_dirty_kernel without numba's per-call type checks
    (kernels.unchecked): check_group must catch a column of another dtype, rank or layout."""

    def market(px: npt.NDArray[Any]) -> kernels.Market:
        ts = np.zeros(3, dtype=np.int64)
        return kernels.Market(px, ts, np.zeros(3), ts, 0, 1, np.zeros((1, 3)), np.zeros((1, 0)))

    kernels.check_group(market(np.zeros(3)))
    for bad in (np.zeros(3, dtype=np.float32), np.zeros((3, 1)), np.zeros(6)[::2]):
        with pytest.raises(TypeError, match="Market"):
            kernels.check_group(market(bad))


def test_american_kernels_run_as_plain_python() -> None:
    """The American kernels hand their rows views that hold no reference (a numba intrinsic,
    engine.american_kernels._borrow, which plain Python cannot call): as plain Python they
    take the arrays themselves and give the compiled figures (Haug's put, 6.3670 at 1e-5)."""
    from engine import american_kernels as ak

    one = np.ones(1)
    out = np.empty(1)
    status = np.empty(1, dtype=np.int8)
    ak.american_price_kernel(
        np.array([False]), 100.0 * one, 100.0 * one, one, 0.05 * one, 0.01 * one, 0.2 * one,
        ak.FAST, out, status, ak.NO_TABLES,
    )  # fmt: skip
    assert status[0] == Status.OK
    assert out[0] == pytest.approx(6.36703187, rel=1e-8)
