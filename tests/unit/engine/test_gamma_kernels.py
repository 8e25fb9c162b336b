"""The gamma kernels called directly, one row per branch (scripts/test runs this module once
more with NUMBA_DISABLE_JIT=1, for coverage of the kernels' bodies)."""

from __future__ import annotations

import math

import numpy as np
from numpy.testing import assert_allclose, assert_array_equal

from engine.gamma_kernels import gamma_profile_kernel, option_gex_kernel
from engine.status import Status

# strike, forward, T, sigma -> status
ROWS = [
    (100.0, 100.0, 0.25, 0.4, Status.OK),
    (100.0, 100.0, 0.0, 0.4, Status.EXPIRED),
    (100.0, 100.0, 0.25, 0.0, Status.BAD_VOL),
    (100.0, 100.0, 0.25, math.nan, Status.BAD_VOL),
    (100.0, math.nan, 0.25, 0.4, Status.BAD_INPUT),
    (-5.0, 100.0, 0.25, 0.4, Status.BAD_INPUT),
    (100.0, 100.0, math.inf, 0.4, Status.BAD_INPUT),
    (100.0, 100.0, 1e-300, 1e-300, Status.BAD_VOL),  # sigma sqrt(T) underflows
]
# phi(0.1) x 100 / 0.2 / 100: the at-the-money row worked by hand (test_positioning.py)
ATM = 1.98476273738506


def columns() -> tuple[np.ndarray, ...]:
    return tuple(np.array([r[i] for r in ROWS], dtype=np.float64) for i in range(4))


def test_option_gex_statuses() -> None:
    strike, forward, T, sigma = columns()
    out = np.empty(len(ROWS))
    status = np.empty(len(ROWS), np.int8)
    option_gex_kernel(strike, forward, T, sigma, out, status)
    assert_array_equal(status, [r[4] for r in ROWS])
    assert_allclose(out[0], ATM, rtol=1e-13)
    assert out[1] == 0.0  # expired: the payoff has no gamma
    assert np.isnan(out[2:]).all()


def test_profile_counts_only_rows_that_are_ok() -> None:
    strike, forward, T, sigma = columns()
    weight = np.ones(len(ROWS))
    weight[0] = 3.0
    moves = np.array([1.0, 0.0, math.nan])
    out = np.empty(3)
    status = np.empty(len(ROWS), np.int8)
    gamma_profile_kernel(strike, forward, T, sigma, weight, moves, out, status)
    assert_array_equal(status, [r[4] for r in ROWS])
    assert_allclose(out[0], 3.0 * ATM, rtol=1e-13)
    assert np.isnan(out[1:]).all()  # a move <= 0 or NaN


def test_profile_row_with_a_bad_weight() -> None:
    one = np.array([100.0])
    out = np.empty(1)
    status = np.empty(1, np.int8)
    gamma_profile_kernel(
        one, one, np.array([0.25]), np.array([0.4]), np.array([math.inf]), np.ones(1), out, status
    )
    assert status[0] == Status.BAD_INPUT
    assert out[0] == 0.0
