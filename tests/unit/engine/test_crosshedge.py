"""Cross hedges (engine/risk/crosshedge.py): the minimum-variance hedge ratio, its R² and
contracts, betas and beta-weighted Greeks, on synthetic series with a known beta and on
examples worked by hand."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernels import KIND_FUTURE, KIND_PERPETUAL
from engine.risk.crosshedge import (
    beta_weighted,
    beta_weighted_usd,
    betas,
    contract_pnl,
    min_variance_hedge,
    regression,
)
from engine.risk.hedge import inverse_hedge, linear_hedge
from engine.risk.history import MoveHistory
from engine.risk.scenarios import ScenarioBook, scenario_pnl


def _book(kind: int, inverse: bool, weight: float, F: float) -> ScenarioBook:
    """One futures position on underlying 0 at F."""
    return ScenarioBook(
        kind=np.array([kind], dtype=np.int8),
        black=np.array([False]),
        inverse=np.array([inverse]),
        is_call=np.array([True]),
        american=np.zeros(1, dtype=np.int8),
        strike=np.zeros(1),
        T=np.zeros(1),
        r=np.zeros(1),
        q=np.zeros(1),
        sigma=np.zeros(1),
        X=np.full(1, F),
        div_pv=np.zeros(1),
        weight=np.full(1, weight),
        und=np.zeros(1, dtype=np.int64),
    )


def test_regression_worked_by_hand() -> None:
    """x = 1, 2, 3, 4 and y = 2, 1, 4, 3: deviations ±1.5, ±0.5 and -0.5, -1.5, 1.5, 0.5;
    Cov = 3 / 4 = 0.75, Var x = Var y = 5 / 4 = 1.25, slope 0.6, R² = 0.75² / 1.25² = 0.36,
    residuals 0.4, -1.2, 1.2, -0.4: residual vol sqrt(3.2 / 4) = sqrt(0.8)."""
    reg = regression([2.0, 1.0, 4.0, 3.0], [1.0, 2.0, 3.0, 4.0])
    assert reg.slope == pytest.approx(0.6, rel=1e-14)
    assert reg.r2 == pytest.approx(0.36, rel=1e-14)
    assert reg.vol_y == pytest.approx(math.sqrt(1.25), rel=1e-14)
    assert reg.residual_vol == pytest.approx(math.sqrt(0.8), rel=1e-14)
    assert reg.n == 4


def test_a_known_beta_is_recovered_exactly_without_noise() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 0.03, 250)
    reg = regression(1.7 * x + 0.001, x)
    assert reg.slope == pytest.approx(1.7, rel=1e-12)
    assert reg.r2 == pytest.approx(1.0, rel=1e-12)
    assert reg.residual_vol == pytest.approx(0.0, abs=1e-15)


@settings(max_examples=30, deadline=None)
@given(
    beta=st.floats(-3.0, 3.0),
    noise=st.floats(0.001, 0.05),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_known_beta_is_recovered_within_sampling_error(
    beta: float, noise: float, seed: int
) -> None:
    """y = beta x + e: the OLS slope's standard error is sd(e) / (sd(x) sqrt(n)); the estimate
    lies within 5 of them (a chance of about 6e-7 per example to fail on correct code); R² is
    beta² var x / (beta² var x + var e) within sampling error."""
    rng = np.random.default_rng(seed)
    n = 2_000
    x = rng.normal(0.0, 0.03, n)
    e = rng.normal(0.0, noise, n)
    reg = regression(beta * x + e, x)
    se = e.std() / (x.std() * math.sqrt(n))
    assert abs(reg.slope - beta) < 5.0 * se
    r2 = beta**2 * 0.03**2 / (beta**2 * 0.03**2 + noise**2)
    assert reg.r2 == pytest.approx(r2, abs=0.05)


def test_regression_refuses_a_constant_hedge() -> None:
    with pytest.raises(ValueError, match="constant"):
        regression([1.0, 2.0, 3.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="length"):
        regression([1.0, 2.0], [1.0, 2.0, 3.0])


def _moves(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, 0.04, (n, 1))


def test_one_asset_linear_equals_the_plain_delta_hedge() -> None:
    """A book of 7 linear futures (multiplier 0.1) hedged in the same future: the book's P&L
    is 7 hedge contracts' on every day, so h* = 7, R² = 1, and the contracts are the delta
    hedge's, -delta / multiplier."""
    F, m, q = 60_000.0, 0.1, 7.0
    ret = _moves(120, 1)
    book = scenario_pnl(_book(KIND_FUTURE, False, q * m, F), ret, np.zeros_like(ret), 1.0).pnl
    h = min_variance_hedge(book, contract_pnl(ret[:, 0], m * F))
    plain = linear_hedge(q * m, m)
    assert h.contracts_exact == pytest.approx(float(plain.exact), rel=1e-12)
    assert h.contracts == float(plain.contracts) == -7.0
    assert h.r2 == pytest.approx(1.0, rel=1e-12)
    assert h.residual_vol == pytest.approx(0.0, abs=1e-6 * h.book_vol)


def test_one_asset_inverse_equals_the_usd_flat_hedge() -> None:
    """An inverse perpetual of 25,000 USD hedged in contracts of 10 USD: -2,500 contracts,
    the USD-flat hedge of its price-adjusted delta (25,000 / F) with no equity."""
    F = 3_000.0
    ret = _moves(90, 2)
    book = scenario_pnl(_book(KIND_PERPETUAL, True, 25_000.0, F), ret, np.zeros_like(ret), 1.0)
    h = min_variance_hedge(book.pnl, contract_pnl(ret[:, 0], 10.0))
    plain = inverse_hedge(25_000.0 / F, 0.0, F, 10.0).usd_flat
    assert h.contracts_exact == pytest.approx(float(plain.exact), rel=1e-12)
    assert h.contracts == -2_500.0


def test_a_cross_hedge_of_a_beta_book() -> None:
    """An ETH book whose returns are 1.2 x BTC's plus noise, hedged in BTC contracts of
    notional N: h* is about 1.2 x (book notional) / N, the rounded hedge's residual vol is no
    less than the exact one's, and R² matches the returns' correlation²."""
    rng = np.random.default_rng(3)
    btc = rng.normal(0.0, 0.03, 500)
    eth = 1.2 * btc + rng.normal(0.0, 0.01, 500)
    book = 1_000_000.0 * np.expm1(eth)
    h = min_variance_hedge(book, contract_pnl(btc, 10.0))
    assert h.contracts_exact == pytest.approx(-1.2 * 100_000.0, rel=0.05)
    assert h.residual_vol <= h.residual_vol_rounded
    assert h.residual_vol < h.book_vol
    assert h.r2 == pytest.approx(np.corrcoef(book, btc)[0, 1] ** 2, abs=1e-3)


def test_contract_pnl_refuses_a_bad_notional() -> None:
    with pytest.raises(ValueError, match="notional_usd"):
        contract_pnl([0.01], 0.0)


def test_betas_from_the_recorded_history() -> None:
    """Levels recorded so ETH's log-return is exactly 1.5 x BTC's and SOL's -0.5 x: betas
    1.5, -0.5 and 1 for BTC itself."""
    rng = np.random.default_rng(4)
    r = rng.normal(0.0, 0.03, 40)
    hist = MoveHistory(60)
    day = dt.date(2026, 1, 1)
    for i in range(41):
        c = float(r[:i].sum())
        hist.record(day + dt.timedelta(days=i), "BTC", 50_000.0 * math.exp(c), None)
        hist.record(day + dt.timedelta(days=i), "ETH", 3_000.0 * math.exp(1.5 * c), None)
        hist.record(day + dt.timedelta(days=i), "SOL", 100.0 * math.exp(-0.5 * c), None)
    ret, _ = hist.moves(["ETH", "SOL", "BTC"])
    b = betas(ret, ret[:, 2])
    np.testing.assert_allclose(b, [1.5, -0.5, 1.0], rtol=1e-9)


def test_beta_weighted_greeks_worked_by_hand() -> None:
    """10 ETH of delta at 3,000 with beta 1.5 against BTC at 60,000: 10 x 3,000 x 1.5 /
    60,000 = 0.75 BTC. Gamma 2 ETH per ETH: 2 x 1.5² x (3,000 / 60,000)² = 0.01125 BTC per
    BTC. BTC itself (beta 1) is unchanged."""
    d, g = beta_weighted([10.0, 4.0], [2.0, 0.5], [3_000.0, 60_000.0], [1.5, 1.0], 60_000.0)
    np.testing.assert_allclose(d, [0.75, 4.0], rtol=1e-14)
    np.testing.assert_allclose(g, [0.01125, 0.5], rtol=1e-14)


@settings(max_examples=50, deadline=None)
@given(
    delta=st.floats(-100.0, 100.0),
    gamma=st.floats(-1.0, 1.0),
    beta=st.floats(-2.0, 3.0),
    s=st.floats(1.0, 1e5),
    sb=st.floats(1.0, 1e5),
    move=st.floats(-1e-4, 1e-4),
)
def test_beta_weighted_greeks_give_the_second_order_pnl(
    delta: float, gamma: float, beta: float, s: float, sb: float, move: float
) -> None:
    """A benchmark move dS_b = move x S_b moves the underlying by dS = beta x move x S; the
    underlying's second-order P&L, delta dS + gamma dS² / 2, equals the benchmark-weighted
    one, delta_b dS_b + gamma_b dS_b² / 2."""
    d, g = beta_weighted([delta], [gamma], [s], [beta], sb)
    ds, dsb = beta * move * s, move * sb
    want = delta * ds + 0.5 * gamma * ds * ds
    got = float(d[0]) * dsb + 0.5 * float(g[0]) * dsb * dsb
    assert got == pytest.approx(want, rel=1e-9, abs=1e-12)


def test_beta_weighting_from_usd_figures_is_the_same() -> None:
    """delta_usd = delta S and cash_gamma = gamma S² / 100 give the same weighted Greeks."""
    d, g, s, b = np.array([10.0, -3.0]), np.array([2.0, 0.4]), np.array([3e3, 140.0]), [1.5, 2.0]
    want = beta_weighted(d, g, s, b, 60_000.0)
    got = beta_weighted_usd(d * s, g * s * s / 100.0, b, 60_000.0)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-14)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-14)


@settings(max_examples=50, deadline=None)
@given(scale=st.floats(-1e4, 1e4).filter(lambda k: abs(k) > 1e-3), seed=st.integers(0, 2**32 - 1))
def test_the_hedge_scales_with_the_book_and_its_effectiveness_does_not(
    scale: float, seed: int
) -> None:
    """k times the book: k times h*, the same R² (an independent check of the formulas)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, 60)
    y = 0.7 * x + rng.normal(0.0, 0.5, 60)
    one, k = min_variance_hedge(y, x), min_variance_hedge(scale * y, x)
    assert k.ratio == pytest.approx(scale * one.ratio, rel=1e-9)
    assert k.r2 == pytest.approx(one.r2, rel=1e-9)
    assert k.residual_vol == pytest.approx(abs(scale) * one.residual_vol, rel=1e-9)
