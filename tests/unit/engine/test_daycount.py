"""Tests for engine.daycount: nanosecond timestamps to ACT/365 year fractions."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal, assert_array_max_ulp

from engine.daycount import NS_PER_DAY, NS_PER_YEAR, year_fraction

NS_PER_MS = 1_000_000
# A realistic "now": 2024-03-01 12:34:56.789 UTC, in ns.
NOW_NS = 1_709_296_496_789 * NS_PER_MS
INT64 = st.integers(-(2**62), 2**62)  # differences of two of these stay inside int64


def _exact(ts_from_ns: int, ts_to_ns: int) -> float:
    """The correctly rounded year fraction, from exact rational arithmetic."""
    return float(Fraction(ts_to_ns - ts_from_ns, NS_PER_YEAR))


def test_constants() -> None:
    assert NS_PER_DAY == 86_400 * 10**9
    assert NS_PER_YEAR == 365 * NS_PER_DAY


@pytest.mark.parametrize(
    ("days", "want"),
    [(1, 1 / 365), (7, 7 / 365), (365, 1.0), (366, 366 / 365), (3650, 10.0), (0, 0.0)],
)
def test_whole_days_are_exact(days: int, want: float) -> None:
    got = year_fraction(NOW_NS, NOW_NS + days * NS_PER_DAY)
    assert isinstance(got, float)
    assert got == want  # Python ints divide exactly, then round once


def test_one_hour_and_one_nanosecond() -> None:
    assert year_fraction(NOW_NS, NOW_NS + 3_600 * 10**9) == 1 / 8760
    assert year_fraction(0, 1) == 1 / NS_PER_YEAR


def test_negative_once_past() -> None:
    assert year_fraction(NOW_NS + NS_PER_DAY, NOW_NS) == -1 / 365
    got = year_fraction(np.array([NOW_NS + NS_PER_DAY, NOW_NS], dtype=np.int64), np.int64(NOW_NS))
    assert_array_equal(got, [-1 / 365, 0.0])


@settings(max_examples=300, deadline=None)
@given(a=INT64, b=INT64)
def test_python_ints_round_once(a: int, b: int) -> None:
    assert year_fraction(a, b) == _exact(a, b)


def test_int64_arrays() -> None:
    expiries = NOW_NS + np.array([1, 7, 30, 365], dtype=np.int64) * NS_PER_DAY
    got = year_fraction(np.int64(NOW_NS), expiries)
    assert got.dtype == np.float64
    assert_array_equal(got, [1 / 365, 7 / 365, 30 / 365, 1.0])
    # Broadcasting, both ways round.
    grid = year_fraction(expiries[:, None] - NS_PER_DAY, expiries[None, :])
    assert grid.shape == (4, 4)
    assert_array_equal(np.diag(grid), np.full(4, 1 / 365))


@settings(max_examples=300, deadline=None)
@given(a=st.lists(INT64, min_size=1, max_size=10), data=st.data())
def test_int64_arrays_agree_with_exact(a: list[int], data: st.DataObject) -> None:
    b = data.draw(st.lists(INT64, min_size=len(a), max_size=len(a)), label="b")
    if any(not -(2**63) <= y - x < 2**63 for x, y in zip(a, b, strict=True)):
        with pytest.raises(ValueError, match="does not fit in int64"):
            year_fraction(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
        return
    got = year_fraction(np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))
    want = np.array([_exact(x, y) for x, y in zip(a, b, strict=True)])
    # Differences up to 2**53 ns (104 days) convert to float exactly, so one rounding: exact.
    small = np.array([abs(y - x) <= 2**53 for x, y in zip(a, b, strict=True)])
    assert_array_equal(got[small], want[small])
    # Beyond that the int -> float conversion rounds too: within one ulp of exact.
    assert_array_max_ulp(got, want, maxulp=1)


@pytest.mark.parametrize(
    ("ts_from", "ts_to", "name"),
    [
        (np.array([0.0]), np.array([1], dtype=np.int64), "ts_from_ns"),
        (np.array([0], dtype=np.int64), np.array([1.5e18]), "ts_to_ns"),
        (0.0, 10, "ts_from_ns"),  # a Python float is not nanoseconds either
        (0, np.float64(1e18), "ts_to_ns"),
        (np.array(["2024-01-01"]), 0, "ts_from_ns"),
    ],
)
def test_non_integer_input_is_refused_by_name(ts_from: object, ts_to: object, name: str) -> None:
    with pytest.raises(ValueError, match=rf"^{name} must be integer nanoseconds"):
        year_fraction(ts_from, ts_to)


def test_deribit_example() -> None:
    """Deribit publishes T = (expiry_ms - timestamp_ms) / (365 × 86 400 000); the same instant in
    ns gives the same float, to the bit.

    BTC-28JUN24 expires 2024-06-28 08:00 UTC; the quote is from 2024-03-01 12:34:56.789 UTC.
    """
    expiry_ms = 1_719_561_600_000
    timestamp_ms = 1_709_296_496_789
    assert expiry_ms == int(datetime(2024, 6, 28, 8, tzinfo=UTC).timestamp()) * 1000
    assert (
        timestamp_ms == int(datetime(2024, 3, 1, 12, 34, 56, tzinfo=UTC).timestamp()) * 1000 + 789
    )
    deribit = (expiry_ms - timestamp_ms) / (365 * 86_400_000)
    assert deribit == 0.3255042875126839
    assert year_fraction(timestamp_ms * NS_PER_MS, expiry_ms * NS_PER_MS) == deribit
    arr = year_fraction(
        np.array([timestamp_ms], dtype=np.int64) * NS_PER_MS,
        np.array([expiry_ms], dtype=np.int64) * NS_PER_MS,
    )
    assert_array_equal(arr, [deribit])


def test_difference_beyond_int64_is_refused() -> None:
    with pytest.raises(ValueError, match="does not fit in int64"):
        year_fraction(np.array([-(2**62)], dtype=np.int64), np.array([2**62], dtype=np.int64))
