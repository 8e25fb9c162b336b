"""engine.columns: the growing tables of the portfolio state."""

from __future__ import annotations

import numpy as np

from engine.columns import Columns, grown

SPECS = {
    "x": (np.float64, np.nan, 0),
    "k": (np.int64, -1, 0),
    "m": (np.float64, 7.0, 3),
}


def test_growth_keeps_every_row_and_fills_the_new_ones() -> None:
    """Rows written before a growth are kept; every new row starts at its fill values, never at
    whatever memory the table got (a row at a time, and in bulks)."""
    t = Columns(SPECS, capacity=4)
    for step in [1] * 9 + [50, 1, 3, 1000, 1]:
        start = t.extend(step)
        rows = slice(start, start + step)
        assert np.isnan(t.arrays["x"][rows]).all()
        assert (t.arrays["k"][rows] == -1).all()
        assert (t.arrays["m"][rows] == 7.0).all()
        t.arrays["x"][rows] = np.arange(start, start + step)
        t.arrays["k"][rows] = np.arange(start, start + step)
        t.arrays["m"][rows] = np.arange(start, start + step)[:, None]
    n = t.n
    assert n == 9 + 50 + 1 + 3 + 1000 + 1
    assert t.arrays["x"][:n].tolist() == list(range(n))
    assert t.arrays["k"][:n].tolist() == list(range(n))
    assert (t.arrays["m"][:n] == np.arange(n)[:, None]).all()
    assert np.isnan(t.arrays["x"][n:]).all()  # the room beyond, at the fill value too


def test_room_after_growth() -> None:
    """A row at a time the table grows by half; a bulk gets an eighth more than it needs; a
    reservation gets exactly what it asks for."""
    assert grown(64, 65) == 96
    assert grown(64, 1_000_000) == 1_125_000
    t = Columns(SPECS, capacity=64)
    t.extend(64)
    t.append()
    assert t.capacity == 96
    t.extend(1_000_000)
    assert t.capacity == (1_000_065 * 9) // 8
    t.reserve(2_000_000)
    assert t.capacity == 2_000_000
    t.reserve(10)
    assert t.capacity == 2_000_000
    assert t.n == 1_000_065
