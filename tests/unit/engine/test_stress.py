"""Stress grids of many books in one revaluation per distinct instrument
(engine.risk.stress.stress_grids) against full revaluation position by position, book by book
(engine.risk.scenarios.scenario_pnl over the grid's moves, as stress_grid computed it before):
random books of options on spot (some with dividends) and on futures, coin-settled and American
options, futures, perpetuals, spot, options expiring within the horizon, positions that cannot
be valued, several underlyings per book, instruments shared between books, empty books."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernels import (
    AMERICAN_FAST,
    EUROPEAN,
    KIND_FUTURE,
    KIND_OPTION,
    KIND_PERPETUAL,
    KIND_SPOT,
)
from engine.risk.scenarios import ScenarioBook, scenario_pnl
from engine.risk.stress import DEFAULT_SPOT_SHOCKS, DEFAULT_VOL_SHOCKS, stress_grid, stress_grids

SPOTS = np.array([60_000.0, 3_000.0, 150.0])
KINDS = np.array([KIND_OPTION] * 6 + [KIND_FUTURE, KIND_PERPETUAL, KIND_SPOT], np.int8)
REL = 1e-11  # of each cell's scale (scale_of): they agree to about 1e-13


def instruments(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` instruments of every kind on three underlyings; about one in eight with a NaN vol
    or price (cannot be valued now)."""
    und = rng.integers(0, SPOTS.size, n)
    kind = KINDS[rng.integers(0, KINDS.size, n)]
    black = rng.random(n) < 0.6
    american = np.where(rng.random(n) < 0.15, AMERICAN_FAST, EUROPEAN).astype(np.int8)
    T = np.where(rng.random(n) < 0.1, rng.uniform(0.1, 2.0, n) / 365.0, rng.uniform(0.01, 1.5, n))
    sigma = rng.uniform(0.2, 1.3, n)
    sigma[rng.random(n) < 0.08] = math.nan
    X = SPOTS[und] * np.exp(rng.normal(0.0, 0.01, n))
    X[rng.random(n) < 0.05] = math.nan
    return {
        "kind": kind,
        "black": black,
        "inverse": rng.random(n) < 0.5,  # coin-settled options, inverse futures
        "is_call": rng.random(n) < 0.5,
        "american": american,
        "strike": SPOTS[und] * np.exp(rng.normal(0.0, 0.3, n)),
        "T": T,
        "r": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(-0.01, 0.06, n)),
        "q": np.where(black, 0.0, rng.uniform(0.0, 0.03, n)),
        "sigma": sigma,
        "X": X,
        # options on spot, some with dividends before expiry (PV, USD)
        "div_pv": np.where(~black & (rng.random(n) < 0.2), 0.01 * SPOTS[und], 0.0),
        "und": und.astype(np.int64),
    }


def random_books(seed: int, n_inst: int, n_books: int, per_book: int) -> list[ScenarioBook]:
    """``n_books`` books of up to ``per_book`` positions each over ``n_inst`` instruments (so
    shared between books, some held twice in a book), ``und`` numbered per book as the daemon's
    books number their underlyings; a book may be empty."""
    rng = np.random.default_rng(seed)
    cols = instruments(rng, n_inst)
    books = []
    for _ in range(n_books):
        rows = rng.integers(0, n_inst, rng.integers(0, per_book + 1))
        pos = {k: np.ascontiguousarray(v[rows]) for k, v in cols.items()}
        _, pos["und"] = np.unique(pos["und"], return_inverse=True)  # the book's own columns
        pos["und"] = np.ascontiguousarray(pos["und"].reshape(-1), dtype=np.int64)
        books.append(ScenarioBook(**pos, weight=rng.normal(0.0, 10.0, rows.size)))
    return books


def full_revaluation(
    book: ScenarioBook, spot: np.ndarray, vol: np.ndarray, horizon_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """The grid and the rows left out, position by position (stress_grid before the stacking)."""
    n_und = int(book.und.max()) + 1 if book.und.size else 1
    ret = np.repeat(np.log1p(spot), vol.size)
    dvol = np.tile(vol, spot.size)
    res = scenario_pnl(
        book,
        np.repeat(ret[:, None], n_und, axis=1),
        np.repeat(dvol[:, None], n_und, axis=1),
        horizon_days,
    )
    return res.pnl.reshape(spot.size, vol.size), res.excluded


def scale_of(
    book: ScenarioBook, spot: np.ndarray, vol: np.ndarray, horizon_days: float
) -> np.ndarray:
    """Each cell's scale of rounding: the sum over the positions of |P&L| (long and short
    positions cancel in the book's P&L, not in its errors) and, of the options, of |weight| x
    max(X, K), a bound of their value (the per-instrument kernel's normal CDF is accurate to
    about 1e-13 of an option's value, not of its change)."""
    out = np.zeros((spot.size, vol.size))
    for i in range(book.kind.size):
        one = ScenarioBook._make(np.ascontiguousarray(a[i : i + 1]) for a in book)
        out += np.nan_to_num(np.abs(full_revaluation(one, spot, vol, horizon_days)[0]))
    option = (book.kind == KIND_OPTION) & np.isfinite(book.X)
    bound = np.abs(book.weight) * np.maximum(book.X, book.strike)
    return out + float(bound[option].sum())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_inst=st.integers(1, 40),
    n_books=st.integers(1, 6),
    per_book=st.integers(0, 60),
    horizon_days=st.sampled_from([0.0, 0.5, 1.0, 10.0]),
    spot=st.lists(st.floats(-0.9, 1.0), min_size=1, max_size=5),
    vol=st.lists(st.floats(-1.5, 2.0), min_size=1, max_size=4),
)
def test_stacked_grids_equal_full_revaluation_book_by_book(
    seed: int,
    n_inst: int,
    n_books: int,
    per_book: int,
    horizon_days: float,
    spot: list[float],
    vol: list[float],
) -> None:
    books = random_books(seed, n_inst, n_books, per_book)
    spot_a, vol_a = np.array([0.0, *spot]), np.array([0.0, *vol])
    grids = stress_grids(books, spot_a, vol_a, horizon_days)
    assert len(grids) == n_books
    for book, grid in zip(books, grids, strict=True):
        pnl, excluded = full_revaluation(book, spot_a, vol_a, horizon_days)
        assert grid.pnl.shape == (spot_a.size, vol_a.size)
        np.testing.assert_array_equal(grid.excluded, excluded)
        scale = scale_of(book, spot_a, vol_a, horizon_days)
        np.testing.assert_array_less(np.abs(grid.pnl - pnl), REL * scale + 1e-300)
        np.testing.assert_array_equal(grid.spot, spot_a)
        np.testing.assert_array_equal(grid.vol, vol_a)
        assert grid.horizon_days == horizon_days
        if horizon_days == 0.0:
            assert grid.pnl[0, 0] == 0.0  # nothing moved: exactly 0, as full revaluation gives


def test_many_books_over_shared_instruments_default_grid() -> None:
    """32 books of 300 positions over 200 instruments, the default grid: the daemon's case."""
    books = random_books(20261206, 200, 32, 300)
    grids = stress_grids(books)
    spot, vol = np.array(DEFAULT_SPOT_SHOCKS), np.array(DEFAULT_VOL_SHOCKS)
    assert sum(g.excluded.size for g in grids) > 0
    for book, grid in zip(books, grids, strict=True):
        pnl, excluded = full_revaluation(book, spot, vol, 0.0)
        np.testing.assert_array_equal(grid.excluded, excluded)
        scale = scale_of(book, spot, vol, 0.0)
        np.testing.assert_array_less(np.abs(grid.pnl - pnl), REL * scale + 1e-300)
        assert math.isclose(
            -grid.pnl.min(), -pnl.min(), rel_tol=0.0, abs_tol=REL * float(scale.max())
        )


def test_stress_grid_is_the_stacked_grid_of_one_book() -> None:
    books = random_books(5, 30, 3, 50)
    stacked = stress_grids(books)
    for book, grid in zip(books, stacked, strict=True):
        alone = stress_grid(book, int(book.und.max()) + 1)
        np.testing.assert_allclose(alone.pnl, grid.pnl, rtol=1e-14, atol=1e-9)
        np.testing.assert_array_equal(alone.excluded, grid.excluded)
    assert stress_grids([]) == []
