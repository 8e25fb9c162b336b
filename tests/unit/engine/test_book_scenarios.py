"""Scenario P&L per distinct instrument, summed into books (engine.risk.scenarios.
book_scenario_pnl, engine.scenario_kernels), against full revaluation position by position
(engine.risk.scenarios.scenario_pnl): the P&L vectors, and the Monte Carlo and historical VaR
and ES of every book and of the total, on books with options on spot and on futures,
coin-settled and American options, futures, perpetuals, spot, options expiring within the
horizon, an unvaluable row, and one instrument held in many books."""

from __future__ import annotations

import math
from collections.abc import Callable

import mpmath
import numba
import numpy as np
import pytest

from engine.kernels import (
    AMERICAN_FAST,
    EUROPEAN,
    KIND_FUTURE,
    KIND_OPTION,
    KIND_PERPETUAL,
    KIND_SPOT,
)
from engine.risk import scenarios
from engine.risk.scenarios import (
    BookScenarioPnL,
    InstrumentValues,
    ScenarioBook,
    book_scenario_pnl,
    distinct_instruments,
    scenario_pnl,
)
from engine.risk.var import empirical, historical, mc_draws, monte_carlo, monte_carlo_books
from engine.scenario_kernels import ncdf_kernel

SPOTS = np.array([60_000.0, 3_000.0, 150.0])
N_BOOKS = 7
REL = 1e-6  # the brief's bound; the figures agree to about 1e-12


def _instruments(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """``n`` instruments of every kind on three underlyings (one of each special kind first)."""
    und = rng.integers(0, SPOTS.size, n)
    kind = np.full(n, KIND_OPTION, np.int8)
    kind[:6] = [KIND_FUTURE, KIND_PERPETUAL, KIND_SPOT, KIND_FUTURE, KIND_OPTION, KIND_OPTION]
    black = rng.random(n) < 0.6
    inverse = black & (rng.random(n) < 0.5)
    inverse[3] = True  # an inverse future
    american = np.full(n, EUROPEAN, np.int8)
    american[6:9] = AMERICAN_FAST  # American puts and calls, on spot and on a future
    black[6:8] = False
    T = rng.uniform(1.0 / 365.0, 1.5, n)
    T[9] = 0.5 / 365.0  # expires within the one-day horizon: valued at its payoff
    sigma = rng.uniform(0.2, 1.3, n)
    sigma[4] = math.nan  # cannot be valued now: left out
    return {
        "kind": kind,
        "black": black,
        "inverse": inverse,
        "is_call": rng.random(n) < 0.5,
        "american": american,
        "strike": SPOTS[und] * np.exp(rng.normal(0.0, 0.3, n)),  # deep in and out too
        "T": T,
        "r": np.where(rng.random(n) < 0.5, 0.0, rng.uniform(-0.01, 0.06, n)),
        "q": np.where(black, 0.0, rng.uniform(0.0, 0.03, n)),
        "sigma": sigma,
        "X": SPOTS[und] * np.exp(rng.normal(0.0, 0.01, n)),
        "div_pv": np.zeros(n),
        "und": und.astype(np.int64),
    }


def mixed_book(
    seed: int = 7, n_inst: int = 60, n_pos: int = 400
) -> tuple[ScenarioBook, np.ndarray]:
    """``n_pos`` positions over ``n_inst`` instruments in ``N_BOOKS`` books: every instrument
    held several times, in many books (one of them twice in one book, netting to zero)."""
    rng = np.random.default_rng(seed)
    cols = _instruments(rng, n_inst)
    row = np.concatenate([np.arange(n_inst), rng.integers(0, n_inst, n_pos - n_inst)])
    weight = rng.normal(0.0, 10.0, n_pos)
    books = rng.integers(0, N_BOOKS, n_pos).astype(np.int64)
    row[-2:], books[-2:], weight[-2:] = 10, 3, [5.0, -5.0]
    pos = {k: np.ascontiguousarray(v[row]) for k, v in cols.items()}
    return ScenarioBook(**pos, weight=weight), books


def sub_book(book: ScenarioBook, rows: np.ndarray) -> ScenarioBook:
    return ScenarioBook._make(np.ascontiguousarray(a[rows]) for a in book)


COV = np.diag([0.03, 0.04, 0.02, 0.05, 0.05, 0.05]) ** 2 + 0.3 * np.outer(
    [0.03, 0.04, 0.02, 0, 0, 0], [0.03, 0.04, 0.02, 0, 0, 0]
)


def test_distinct_instruments_sums_the_weights_of_equal_rows() -> None:
    book, _ = mixed_book()
    inst, at = distinct_instruments(book)
    assert inst.kind.size == 59 + np.isnan(book.sigma).sum()  # each NaN row its own
    np.testing.assert_allclose(np.bincount(at, book.weight), inst.weight, rtol=1e-13)
    for name in ScenarioBook._fields:  # every position's row is its instrument
        if name != "weight":
            np.testing.assert_array_equal(getattr(inst, name)[at], getattr(book, name))


def test_distinct_instruments_come_sorted_by_their_columns() -> None:
    """In the order of their columns, the first column first (the order np.unique of a
    structured array gave, which the P&L's sums follow)."""
    book, _ = mixed_book()
    inst, _ = distinct_instruments(book)
    cols = [getattr(inst, f) for f in ScenarioBook._fields if f != "weight"]
    np.testing.assert_array_equal(np.lexsort(cols[::-1]), np.arange(inst.kind.size))


def test_book_pnl_equals_full_revaluation_per_book_and_total() -> None:
    book, books = mixed_book()
    ret, dvol = mc_draws(COV, 2_000, seed=11, horizon_days=1.0)
    new = book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS)
    full = scenario_pnl(book, ret, dvol, 1.0)
    assert new.instruments == 59 + np.isnan(book.sigma).sum()
    np.testing.assert_array_equal(new.excluded, full.excluded)
    assert new.excluded.size > 0  # the NaN-vol option, in every position of it
    scale = np.abs(full.pnl).max()
    np.testing.assert_allclose(new.total, full.pnl, rtol=0.0, atol=1e-11 * scale)
    for b in range(N_BOOKS):
        ref = scenario_pnl(sub_book(book, np.flatnonzero(books == b)), ret, dvol, 1.0).pnl
        np.testing.assert_allclose(new.pnl[b], ref, rtol=0.0, atol=1e-11 * scale)


def test_instrument_values_share_each_instrument_among_the_books_that_ask() -> None:
    """Book after book, by parts: the P&L of full revaluation; an instrument met again (in
    another book) is not revalued again; a NaN-vol option counts for nothing wherever held."""
    book, books = mixed_book()
    ret, dvol = mc_draws(COV, 1_000, seed=3, horizon_days=1.0)
    values = InstrumentValues(ret, dvol, 1.0)
    scale = np.abs(scenario_pnl(book, ret, dvol, 1.0).pnl).max()
    seen: set[int] = set()
    _, at = distinct_instruments(book)
    for b in range(N_BOOKS):
        rows = np.flatnonzero(books == b)
        sub = sub_book(book, rows)
        parts = rows % 3  # any partition of the book's positions
        got = values.pnl(sub, parts, 3)
        for k in range(3):
            ref = scenario_pnl(sub_book(sub, np.flatnonzero(parts == k)), ret, dvol, 1.0).pnl
            np.testing.assert_allclose(got[:, k], ref, rtol=0.0, atol=1e-11 * scale)
        seen |= set(at[rows].tolist())  # a NaN row is an instrument of its own
        assert values.instruments == len(seen)
    assert values.instruments < book.kind.size / 2  # far fewer than the positions


def test_instrument_values_beyond_their_budget_are_revalued_not_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    book, _ = mixed_book()
    ret, dvol = mc_draws(COV, 100, seed=3, horizon_days=1.0)
    monkeypatch.setattr(scenarios, "MAX_SHARED_VALUES", 100 * 10)  # ten instruments' worth
    values = InstrumentValues(ret, dvol, 1.0)
    got = values.pnl(book, np.zeros(book.kind.size, np.int64), 1)[:, 0]
    assert values.instruments == 0
    full = scenario_pnl(book, ret, dvol, 1.0).pnl
    np.testing.assert_allclose(got, full, rtol=0.0, atol=1e-11 * np.abs(full).max())


def test_each_kind_alone_equals_full_revaluation() -> None:
    """Instrument by instrument (a book each): no error of one kind hides in another's P&L."""
    book, _ = mixed_book()
    inst, _ = distinct_instruments(book)
    ret, dvol = mc_draws(COV * 9.0, 300, seed=5, horizon_days=1.0)  # 3x the moves: far tails
    n = inst.kind.size
    new = book_scenario_pnl(inst, ret, dvol, 1.0, np.arange(n), n)
    for i in range(n):
        ref = scenario_pnl(sub_book(inst, np.array([i])), ret, dvol, 1.0).pnl
        tol = 1e-12 * max(np.abs(ref).max(), 1e-300) + 1e-12 * inst.X[i] * abs(inst.weight[i])
        np.testing.assert_allclose(new.pnl[i], ref, rtol=0.0, atol=tol, err_msg=f"row {i}")


def test_monte_carlo_books_var_and_es_equal_full_revaluation() -> None:
    book, books = mixed_book(seed=3)
    got = monte_carlo_books(book, books, N_BOOKS, COV, 5_000, seed=17, horizon_days=2.0)
    ret, dvol = mc_draws(COV, 5_000, seed=17, horizon_days=2.0)

    def full(rows: np.ndarray) -> tuple[float, float]:
        v = empirical(scenario_pnl(sub_book(book, rows), ret, dvol, 2.0).pnl, 0.99, 0.975, 2.0)
        return v.var, v.es

    for b in range(N_BOOKS):
        var, es = full(np.flatnonzero(books == b))
        assert got.books[b].var == pytest.approx(var, rel=REL)
        assert got.books[b].es == pytest.approx(es, rel=REL)
    var, es = full(np.arange(books.size))
    assert got.total.var == pytest.approx(var, rel=REL)
    assert got.total.es == pytest.approx(es, rel=REL)
    single, _ = monte_carlo(book, COV, 5_000, seed=17, horizon_days=2.0)
    assert single.var == pytest.approx(got.total.var, rel=1e-12)


def test_historical_equals_full_revaluation() -> None:
    book, _ = mixed_book(seed=5)
    ret, dvol = mc_draws(COV, 250, seed=2, horizon_days=1.0)
    got, res = historical(book, ret, dvol, horizon_days=10.0)
    full = scenario_pnl(book, ret * math.sqrt(10.0), dvol * math.sqrt(10.0), 10.0).pnl
    ref = empirical(full, 0.99, 0.975, 10.0)
    assert got.var == pytest.approx(ref.var, rel=REL)
    assert got.es == pytest.approx(ref.es, rel=REL)
    np.testing.assert_allclose(res.pnl, full, rtol=0.0, atol=1e-11 * np.abs(full).max())


def test_the_figures_do_not_depend_on_the_number_of_threads() -> None:
    book, books = mixed_book(seed=9)
    ret, dvol = mc_draws(COV, 1_500, seed=4, horizon_days=1.0)
    one = _on_one_thread(lambda: book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS))
    np.testing.assert_array_equal(
        book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS).pnl, one.pnl
    )


def _on_one_thread(run: Callable[[], BookScenarioPnL]) -> BookScenarioPnL:
    """``run()`` with numba on one thread."""
    most = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        return run()
    finally:
        numba.set_num_threads(most)


def test_normal_cdf_against_mpmath() -> None:
    """The branch-free CDF: relative accuracy through the lower tail (to where erfc's
    exponent leaves the normal floats), absolute above."""
    x = np.concatenate([np.linspace(-37.0, 0.0, 3_001), np.linspace(0.0, 9.0, 901), [-1e-9, 1e-9]])
    got = np.empty_like(x)
    ncdf_kernel(x, got)
    mpmath.mp.dps = 40
    ref = np.array([float(mpmath.ncdf(mpmath.mpf(float(v)))) for v in x])
    low = x <= 0.0
    np.testing.assert_allclose(got[low], ref[low], rtol=5e-13, atol=0.0)
    np.testing.assert_allclose(got[~low], ref[~low], rtol=0.0, atol=1e-13)


def test_bad_books_argument_is_refused() -> None:
    book, books = mixed_book()
    ret, dvol = mc_draws(COV, 10, seed=1, horizon_days=1.0)
    with pytest.raises(ValueError, match="books must"):
        book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS - 1)
    with pytest.raises(ValueError, match="n_books"):
        book_scenario_pnl(book, ret, dvol, 1.0, books, 0)


def test_few_scenarios_over_many_instruments_are_summed_in_fixed_ranges() -> None:
    """A margin's or a stress grid's few dozen scenarios over more than 1,024 instruments: the
    sums run over 16 fixed ranges of instruments on the thread pool; per book and in total
    they equal full revaluation's, and do not depend on the number of threads."""
    book, books = mixed_book(seed=13, n_inst=1_500, n_pos=3_000)
    ret, dvol = mc_draws(COV, 40, seed=5, horizon_days=1.0)
    one = _on_one_thread(lambda: book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS))
    new = book_scenario_pnl(book, ret, dvol, 1.0, books, N_BOOKS)
    assert new.instruments > 1_024
    np.testing.assert_array_equal(new.pnl, one.pnl)
    full = scenario_pnl(book, ret, dvol, 1.0)
    scale = np.abs(full.pnl).max()
    np.testing.assert_allclose(new.total, full.pnl, rtol=0.0, atol=1e-11 * scale)
    for b in range(N_BOOKS):
        ref = scenario_pnl(sub_book(book, np.flatnonzero(books == b)), ret, dvol, 1.0).pnl
        np.testing.assert_allclose(new.pnl[b], ref, rtol=0.0, atol=1e-11 * scale)
