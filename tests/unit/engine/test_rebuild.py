"""The from-scratch rebuild of the portfolio sums (``lot_rebuild_kernel`` and its threaded
twin ``lot_rebuild_parallel_kernel``) on synthetic arrays: equal to exactly rounded sums, and
the same bits whatever the kernel, the thread count and however many partial sums the book's
size calls for."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from engine import kernels

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class Book:
    inst: I64  # lot -> instrument
    group: I64  # lot -> group
    qty: F64
    cost: F64
    has_cost: Bools
    unit: F64  # (instruments, N_UNIT)
    bad: Bools
    group_bu: I64
    group_book: I64
    n_bu: int
    n_books: int


def _book(n_lots: int, seed: int) -> Book:
    rng = np.random.default_rng(seed)
    n_inst, n_groups, n_bu, n_books = 500, 60, 6, 3
    group_bu = rng.integers(0, n_bu, n_groups)
    magnitude = 10.0 ** rng.integers(-6, 6, (n_inst, 1))
    return Book(
        inst=rng.integers(0, n_inst, n_lots),
        group=rng.integers(0, n_groups, n_lots),
        qty=rng.choice([-50.0, -1.0, 0.0, 1.0, 7.0, 1e4], n_lots),
        cost=rng.normal(0.0, 1e3, n_lots),
        has_cost=rng.random(n_lots) < 0.7,
        # mixed magnitudes and signs: cancellation is where compensation matters
        unit=rng.normal(0.0, 1.0, (n_inst, kernels.N_UNIT)) * magnitude,
        bad=rng.random(n_inst) < 0.1,
        group_bu=group_bu,
        group_book=group_bu % n_books,
        n_bu=n_bu,
        n_books=n_books,
    )


def _rebuild(
    b: Book, kernel: Callable[..., None] = kernels.lot_rebuild_parallel_kernel
) -> tuple[F64, F64, F64, F64]:
    """(contributions, group sums, (book, underlying) sums, book sums); every output starts
    as NaN, so whatever the kernel leaves unwritten shows."""
    contrib = np.full((b.qty.shape[0], kernels.N_AGG), np.nan)
    rows = (b.group_bu.shape[0],) * 2 + (b.n_bu,) * 2 + (b.n_books,) * 2
    sums = [np.full((n, kernels.N_AGG), np.nan) for n in rows]
    n_inst = b.unit.shape[0]
    lots = kernels.LotColumns(
        inst=b.inst,
        group=b.group,
        qty=b.qty,
        cost=b.cost,
        has_cost=b.has_cost,
        next_lot=np.full(b.inst.shape[0], -1, dtype=np.int64),
        contrib=contrib,
    )
    priced = kernels.PricedColumns(
        X=np.full(n_inst, np.nan),
        T=np.full(n_inst, np.nan),
        sigma=np.full(n_inst, np.nan),
        uses_spot=np.zeros(n_inst, dtype=np.bool_),
        uses_fwd=np.zeros(n_inst, dtype=np.bool_),
        unit=b.unit,
        status=np.zeros(n_inst, dtype=np.int8),
        bad=b.bad,
    )
    group_hi, group_lo, bu_hi, bu_lo, book_hi, book_lo = sums
    group_sums = kernels.GroupSums(
        group_bu=b.group_bu,
        group_book=b.group_book,
        group_hi=group_hi,
        group_lo=group_lo,
        bu_hi=bu_hi,
        bu_lo=bu_lo,
        book_hi=book_hi,
        book_lo=book_lo,
        bu_stamp=np.zeros(b.n_bu, dtype=np.int64),
    )
    kernel(lots, priced, group_sums)
    return contrib, sums[0] + sums[1], sums[2] + sums[3], sums[4] + sums[5]


def _exact(b: Book, contrib: F64) -> list[F64]:
    """Exactly rounded sums (math.fsum) of the contributions per group, (book, underlying) and
    book, the contributions checked against their definition first."""
    n_fig = kernels.N_UNIT - 2
    unit = b.unit[b.inst]
    want = np.empty_like(contrib)
    want[:, :n_fig] = b.qty[:, None] * unit[:, :n_fig]
    priced = b.qty * unit[:, n_fig] + b.cost * unit[:, n_fig + 1]
    want[:, n_fig] = np.where(b.has_cost, priced, 0.0)
    want[:, n_fig + 1] = b.qty != 0.0
    want[:, n_fig + 2] = (b.qty != 0.0) & b.bad[b.inst]
    assert_array_equal(contrib, want)
    out = []
    for key, n in (
        (b.group, b.group_bu.shape[0]),
        (b.group_bu[b.group], b.n_bu),
        (b.group_book[b.group], b.n_books),
    ):
        exact = np.zeros((n, kernels.N_AGG))
        for k in range(n):
            mine = contrib[key == k]
            for c in range(kernels.N_AGG):
                exact[k, c] = math.fsum(mine[:, c].tolist())
        out.append(exact)
    return out


@pytest.mark.parametrize("n_lots", [1, 1_000, 3 * kernels._REBUILD_CHUNK_LOTS + 17])
def test_rebuild_equals_exact_sums_whatever_the_threads(n_lots: int) -> None:
    b = _book(n_lots, seed=n_lots)
    threads = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = _rebuild(b)
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
        many = _rebuild(b)
    finally:
        numba.set_num_threads(threads)
    serial = _rebuild(b, kernels.lot_rebuild_kernel)
    for a, c, d in zip(one, many, serial, strict=True):
        assert_array_equal(a, c)  # bit for bit
        assert_array_equal(a, d)
    contrib, *sums = one
    for got, exact in zip(sums, _exact(b, contrib), strict=True):
        # compensated sums: within a rounding or two of the exact sum, cancellation or not
        assert_allclose(got, exact, rtol=4e-16, atol=0.0)


def _neumaier_branch(h: float, lo: float, x: float) -> tuple[float, float]:
    """Neumaier's step as it was written before the branch-free TwoSum: the reference."""
    s = h + x
    lo += (h - s) + x if abs(h) >= abs(x) else (x - s) + h
    return s, lo


@settings(deadline=None)  # the first example compiles the step
@given(
    st.floats(-1e300, 1e300, allow_subnormal=True),
    st.floats(-1e-3, 1e-3),
    st.floats(-1e300, 1e300, allow_subnormal=True),
)
def test_branch_free_compensation_is_neumaiers_to_the_bit(h: float, lo: float, x: float) -> None:
    """The sums' step (``_neumaier_add``, TwoSum without a branch) keeps the very figures of
    Neumaier's branch on |h| >= |x|: both compute the rounding error of h + x exactly."""
    hi_a, lo_a = np.array([[h]]), np.array([[lo]])
    kernels._neumaier_add(hi_a, lo_a, 0, 0, x)
    want = _neumaier_branch(h, lo, x)
    assert (hi_a[0, 0], lo_a[0, 0]) == want
