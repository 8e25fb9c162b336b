"""VaR and ES (engine.risk.var), scenario revaluation and stress grids: hand computations,
exact moments, the public pricing API and Monte Carlo checks."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.greeks import black76, bsm
from engine.kernels import KIND_FUTURE, KIND_OPTION
from engine.risk.scenarios import ScenarioBook, scenario_pnl
from engine.risk.stress import DEFAULT_SPOT_SHOCKS, DEFAULT_VOL_SHOCKS, stress_grid
from engine.risk.var import (
    Moments,
    cornish_fisher,
    delta_gamma,
    delta_gamma_moments,
    delta_normal,
    empirical,
    historical,
    monte_carlo,
)

# Φ⁻¹(0.99), Φ⁻¹(0.975) and φ(Φ⁻¹(0.975)), rounded from 30 digits (mpmath)
Z99 = 2.3263478740408411
Z975 = 1.9599639845400542
PDF_Z975 = 0.05844506980503536


def test_delta_normal_one_underlying_by_hand() -> None:
    # 1M USD of delta, 2 % daily vol: sigma = 20,000 USD
    r = delta_normal([1e6], [[0.02**2]], confidence=0.99, es_confidence=0.975)
    assert r.var == pytest.approx(20_000.0 * Z99, rel=1e-12)  # 46,526.96
    assert r.es == pytest.approx(20_000.0 * PDF_Z975 / 0.025, rel=1e-12)  # 46,756.06
    assert (r.var_confidence, r.es_confidence, r.horizon_days) == (0.99, 0.975, 1.0)


def test_delta_normal_two_underlyings_and_horizon_by_hand() -> None:
    # d'Σd = 1e12·4e-4 + 2.5e11·9e-4 + 2·1e6·(-5e5)·0.5·0.02·0.03 = 4e8 + 2.25e8 - 3e8
    #      = 3.25e8 per day
    cov = [[0.02**2, 0.5 * 0.02 * 0.03], [0.5 * 0.02 * 0.03, 0.03**2]]
    r = delta_normal([1e6, -5e5], cov, confidence=0.99, horizon_days=10.0)
    assert r.var == pytest.approx(math.sqrt(3.25e9) * Z99, rel=1e-12)  # 132,622
    assert r.horizon_days == 10.0


def test_delta_gamma_without_gamma_is_delta_normal() -> None:
    cov = [[4e-4, 1e-4], [1e-4, 9e-4]]
    dn = delta_normal([3e5, 2e5], cov, horizon_days=2.0)
    dg = delta_gamma([3e5, 2e5], [0.0, 0.0], cov, horizon_days=2.0)
    assert dg.var == pytest.approx(dn.var, rel=1e-14)
    assert dg.es == pytest.approx(dn.es, rel=1e-14)


def test_pure_gamma_moments_are_those_of_a_scaled_chi_square() -> None:
    # P&L = ½ G r², r ~ N(0, s²): ½ G s² χ²(1): mean λ/2, variance λ²/2, skewness √8,
    # excess kurtosis 12, with λ = G s².
    g, s2 = -4e7, 0.03**2
    lam = g * s2
    m = delta_gamma_moments([0.0], [g], [[s2]], 1.0)
    assert m.mean == pytest.approx(lam / 2, rel=1e-14)
    assert m.std == pytest.approx(abs(lam) / math.sqrt(2), rel=1e-14)
    assert m.skew == pytest.approx(-math.sqrt(8), rel=1e-14)  # short gamma: left-skewed
    assert m.kurt == pytest.approx(12.0, rel=1e-14)


def test_one_underlying_moments_by_hand() -> None:
    # P&L = d r + ½ g r², r ~ N(0, s²): κ2 = d²s² + ½ g²s⁴, κ3 = 3 d² g s⁴ + g³ s⁶
    d, g, s2 = 2e5, 3e6, 0.02**2
    m = delta_gamma_moments([d], [g], [[s2]], 1.0)
    k2 = d * d * s2 + 0.5 * g * g * s2 * s2
    k3 = 3 * d * d * g * s2 * s2 + g**3 * s2**3
    k4 = 12 * d * d * g * g * s2**3 + 3 * g**4 * s2**4
    assert m.mean == pytest.approx(0.5 * g * s2, rel=1e-14)
    assert m.std == pytest.approx(math.sqrt(k2), rel=1e-14)
    assert m.skew == pytest.approx(k3 / k2**1.5, rel=1e-13)
    assert m.kurt == pytest.approx(k4 / k2**2, rel=1e-13)


def test_delta_gamma_moments_match_a_simulation() -> None:
    rng = np.random.default_rng(7)
    d = np.array([4e5, -2e5, 1e5])
    g = np.array([-3e6, 5e6, 1e6])
    vol = np.array([0.03, 0.05, 0.02])
    corr = np.array([[1.0, 0.6, 0.2], [0.6, 1.0, 0.3], [0.2, 0.3, 1.0]])
    cov = corr * np.outer(vol, vol)
    r = rng.multivariate_normal(np.zeros(3), cov * 3.0, size=2_000_000)
    pnl = r @ d + 0.5 * (r * r) @ g
    m = delta_gamma_moments(d, g, cov, 3.0)
    c = pnl - pnl.mean()
    sd = c.std()
    assert m.mean == pytest.approx(pnl.mean(), abs=3 * sd / math.sqrt(pnl.size))
    assert m.std == pytest.approx(sd, rel=3e-3)
    assert m.skew == pytest.approx(float(np.mean(c**3)) / sd**3, abs=0.02)
    assert m.kurt == pytest.approx(float(np.mean(c**4)) / sd**4 - 3.0, abs=0.1)


def test_cornish_fisher_var_and_es_against_a_monte_carlo_of_the_quadratic_pnl() -> None:
    # Mild gamma, where the expansion is good: within 2 % of the simulated quantile and ES.
    rng = np.random.default_rng(11)
    d, g, s2 = np.array([1e6]), np.array([-5e6]), 0.02**2
    r = rng.normal(0.0, math.sqrt(s2), 4_000_000)
    pnl = d[0] * r + 0.5 * g[0] * r * r
    mc = empirical(pnl, 0.99, 0.975)
    dg = delta_gamma(d, g, [[s2]], 0.99, 0.975)
    assert dg.var == pytest.approx(mc.var, rel=0.02)
    assert dg.es == pytest.approx(mc.es, rel=0.02)
    assert dg.var > delta_normal(d, [[s2]], 0.99).var  # short gamma adds to the loss


@settings(max_examples=50, deadline=None)
@given(
    skew=st.floats(-1.0, 1.0),
    kurt=st.floats(0.0, 3.0),
    c=st.sampled_from([0.95, 0.975, 0.99]),
)
def test_cornish_fisher_es_is_the_tail_mean_of_its_quantile(
    skew: float, kurt: float, c: float
) -> None:
    """The closed-form ES equals the mean of the Cornish-Fisher quantile over the tail:
    (1/α) ∫ w(t) φ(t) dt from -∞ to Φ⁻¹(α), integrated numerically (trapezoid, 200k points
    from t = -12)."""
    m = Moments(mean=100.0, std=1_000.0, skew=skew, kurt=kurt)
    _, es = cornish_fisher(m, c, c)
    a = 1.0 - c
    t = np.linspace(-12.0, NormalDist().inv_cdf(a), 200_001)
    w = t + (t * t - 1) * skew / 6 + (t**3 - 3 * t) * kurt / 24 - (2 * t**3 - 5 * t) * skew**2 / 36
    f = w * np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)
    tail_mean = float(np.sum((f[1:] + f[:-1]) * 0.5 * np.diff(t))) / a
    assert es == pytest.approx(-(m.mean + m.std * tail_mean), rel=1e-8)


def test_empirical_by_hand() -> None:
    pnl = -np.arange(1.0, 101.0)  # losses 1..100, shuffled below
    rng = np.random.default_rng(0)
    rng.shuffle(pnl)
    r = empirical(pnl, confidence=0.99, es_confidence=0.975)
    assert r.var == 99.0  # the 99th of 100 losses
    # the worst 2.5 %: 100, 99 and half of 98 -> (100 + 99 + 49) / 2.5
    assert r.es == pytest.approx(99.2, rel=1e-15)


def test_empirical_rank_is_exact_when_n_c_is_an_integer() -> None:
    # 1000 x 0.99 rounds to 990.0000000000001: the VaR is still the 990th loss
    losses = np.arange(1.0, 1001.0)
    r = empirical(-losses, confidence=0.99, es_confidence=0.99)
    assert r.var == 990.0
    assert r.es == pytest.approx(np.mean(losses[990:]), rel=1e-15)  # 991..1000


def test_a_book_that_only_gains_has_a_negative_var() -> None:
    r = empirical(np.array([1.0, 2.0, 3.0]), confidence=0.5, es_confidence=0.5)
    assert r.var < 0
    assert r.es < 0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: delta_normal([1.0], [[1e-4]], confidence=1.0), "confidence"),
        (lambda: delta_normal([1.0], [[1e-4]], es_confidence=0.2), "es_confidence"),
        (lambda: delta_normal([1.0, 2.0], [[1e-4]]), "cov must be 2 x 2"),
        (lambda: delta_normal([[1.0]], [[1e-4]]), "delta_usd must be 1-D"),
        (lambda: delta_normal([1.0], [[math.nan]]), "finite"),
        (lambda: delta_normal([1.0, 1.0], [[1e-4, 0.0], [1e-5, 1e-4]]), "symmetric"),
        (lambda: delta_normal([1.0], [[1e-4]], horizon_days=0.0), "horizon_days"),
        (lambda: delta_gamma([1.0], [1.0, 2.0], [[1e-4]]), "gamma_usd"),
        (lambda: empirical([]), "not empty"),
        (lambda: empirical([1.0, math.inf]), "finite"),
        (lambda: monte_carlo(scenario_book([{}]), [[1e-4]], 10, 0), "2U x 2U"),
        (lambda: monte_carlo(scenario_book([{}]), np.eye(2), 0, 0), "n_scenarios"),
        (lambda: monte_carlo(scenario_book([{}]), np.eye(2), 10, 0, 0.99, 0.4), "es_confidence"),
        (lambda: monte_carlo(scenario_book([{}]), [[1.0, 0.0]], 10, 0), "square"),
        (lambda: historical(scenario_book([{}]), [[0.0]], [[0.0]], horizon_days=0.0), "horizon"),
        (lambda: historical(scenario_book([{}]), [[0.0]], [[0.0]], 1.0), "confidence"),
        (lambda: scenario_pnl(scenario_book([{"und": 1}]), [[0.0]], [[0.0]], 1.0), "book.und"),
        (lambda: scenario_pnl(scenario_book([{}]), [[0.0]], [[math.nan]], 1.0), "finite"),
        (lambda: scenario_pnl(scenario_book([{}]), [0.0], [0.0], 1.0), "2-D"),
    ],
)
def test_bad_arguments_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]


# ------------------------------------------------------------------------ full revaluation


def scenario_book(rows: list[dict[str, object]]) -> ScenarioBook:
    """A ScenarioBook from one dict per position (defaults: a linear future on underlying 0)."""
    defaults: dict[str, object] = {
        "kind": KIND_FUTURE, "black": False, "inverse": False, "is_call": True, "american": 0,
        "strike": 1.0, "T": 0.5, "r": 0.0, "q": 0.0, "sigma": 0.5, "X": 100.0, "div_pv": 0.0,
        "weight": 1.0, "und": 0,
    }  # fmt: skip
    dtypes = {
        "kind": np.int8, "black": bool, "inverse": bool, "is_call": bool, "american": np.int8,
        "und": np.int64,
    }  # fmt: skip
    cols = {
        name: np.array([{**defaults, **row}[name] for row in rows], dtype=dtypes.get(name, float))
        for name in defaults
    }
    return ScenarioBook(**cols)


def test_linear_and_inverse_futures_by_hand() -> None:
    book = scenario_book(
        [
            {"X": 60_000.0, "weight": 2.0},  # 2 BTC of a linear future
            {"X": 3_000.0, "weight": -10_000.0, "inverse": True, "und": 1},  # short 10k USD
        ]
    )
    ret = np.array([[0.01, -0.02], [0.0, 0.0]])
    res = scenario_pnl(book, ret, np.zeros_like(ret), horizon_days=1.0)
    expected = 2.0 * 60_000.0 * math.expm1(0.01) - 10_000.0 * math.expm1(-0.02)
    assert res.pnl[0] == pytest.approx(expected, rel=1e-14)
    assert res.pnl[1] == 0.0
    assert res.excluded.size == 0


def test_options_revalue_with_the_public_pricing_api() -> None:
    """An option's scenario P&L is weight x (price at the moved forward, vol and date - price
    now), both from engine.greeks.black76 (an independent path through the typed API)."""
    book = scenario_book(
        [
            {"kind": KIND_OPTION, "black": True, "strike": 62_000.0, "X": 60_000.0,
             "sigma": 0.6, "T": 30 / 365, "r": 0.01, "weight": -3.0},
            {"kind": KIND_OPTION, "black": True, "inverse": True, "is_call": False,
             "strike": 55_000.0, "X": 60_000.0, "sigma": 0.7, "T": 30 / 365, "weight": 5.0},
        ]
    )  # fmt: skip
    ret = np.array([[-0.05], [0.08]])
    dvol = np.array([[0.2], [-0.1]])
    res = scenario_pnl(book, ret, dvol, horizon_days=2.0)
    for s in range(2):
        total = 0.0
        for i in range(2):
            now = black76(
                book.is_call[i], book.X[i], book.strike[i], book.T[i], book.r[i], book.sigma[i]
            ).price
            moved = black76(
                book.is_call[i],
                book.X[i] * math.exp(ret[s, 0]),
                book.strike[i],
                book.T[i] - 2.0 / 365.0,
                book.r[i],
                book.sigma[i] * (1.0 + dvol[s, 0]),
            ).price
            total += book.weight[i] * float(moved - now)
        assert res.pnl[s] == pytest.approx(total, rel=1e-12)


def test_an_option_past_the_horizon_expires_into_its_payoff() -> None:
    book = scenario_book(
        [{"kind": KIND_OPTION, "strike": 100.0, "X": 100.0, "T": 0.5 / 365, "sigma": 0.5}]
    )
    res = scenario_pnl(book, np.array([[math.log(1.1)]]), np.zeros((1, 1)), horizon_days=1.0)
    now = bsm(True, 100.0, 100.0, 0.5 / 365, 0.0, 0.0, 0.5).price
    assert res.pnl[0] == pytest.approx(10.0 - float(now), rel=1e-12)


def test_positions_that_cannot_be_valued_are_left_out_and_listed() -> None:
    book = scenario_book([{"X": 100.0}, {"kind": KIND_OPTION, "sigma": math.nan}])
    res = scenario_pnl(book, np.array([[0.1]]), np.zeros((1, 1)), horizon_days=1.0)
    assert res.pnl[0] == pytest.approx(100.0 * math.expm1(0.1), rel=1e-14)
    assert res.excluded.tolist() == [1]


def test_historical_var_of_a_linear_book_by_hand() -> None:
    # 100 recorded days, returns -0.050, -0.049, ..., 0.049 (shuffled): a long future of
    # weight 1 at X = 100 loses 100 (1 - e^r); at 99 % the 99th loss is the second worst day
    rets = np.linspace(-0.05, 0.049, 100)
    np.random.default_rng(3).shuffle(rets)
    book = scenario_book([{"X": 100.0}])
    var, res = historical(book, rets[:, None], np.zeros((100, 1)), 0.99, 0.975)
    assert var.var == pytest.approx(-100.0 * math.expm1(-0.049), rel=1e-12)
    worst = -100.0 * np.expm1(np.array([-0.05, -0.049, -0.048]))
    assert var.es == pytest.approx((worst[0] + worst[1] + 0.5 * worst[2]) / 2.5, rel=1e-12)
    assert res.pnl.shape == (100,)
    # ten days: each move scaled by √10
    var10, _ = historical(book, rets[:, None], np.zeros((100, 1)), 0.99, 0.975, 10.0)
    assert var10.var == pytest.approx(-100.0 * math.expm1(-0.049 * math.sqrt(10)), rel=1e-12)


def test_monte_carlo_is_reproducible_and_agrees_with_delta_normal_for_a_linear_book() -> None:
    book = scenario_book([{"X": 100.0, "weight": 1e4}, {"X": 50.0, "weight": -5e3, "und": 1}])
    vol = np.array([0.01, 0.015])
    corr = np.array([[1.0, 0.4], [0.4, 1.0]])
    cov = np.zeros((4, 4))
    cov[:2, :2] = corr * np.outer(vol, vol)
    a, _ = monte_carlo(book, cov, 200_000, seed=42)
    b, _ = monte_carlo(book, cov, 200_000, seed=42)
    c, _ = monte_carlo(book, cov, 200_000, seed=43)
    assert (a.var, a.es) == (b.var, b.es)
    assert a.var != c.var
    dn = delta_normal(book.X * book.weight, cov[:2, :2], 0.99, 0.975)
    assert a.var == pytest.approx(dn.var, rel=0.02)  # e^r - 1 ≈ r at 1 % vols
    assert a.es == pytest.approx(dn.es, rel=0.02)


def test_monte_carlo_vol_moves_reach_the_options() -> None:
    """A long straddle gains when vol rises: with vol moves only, its P&L follows them."""
    book = scenario_book(
        [
            {"kind": KIND_OPTION, "strike": 100.0, "X": 100.0, "sigma": 0.5, "is_call": c}
            for c in (True, False)
        ]
    )
    cov = np.diag([0.0, 0.1**2])
    _, res = monte_carlo(book, cov, 1_000, seed=1, horizon_days=1.0)
    # the documented draws: numpy's PCG64 seeded with the seed, N(0, N cov)
    draws = np.random.default_rng(1).multivariate_normal(np.zeros(2), cov, 1_000, method="eigh")
    assert np.all(draws[:, 0] == 0.0)
    assert np.corrcoef(res.pnl, draws[:, 1])[0, 1] > 0.99


def test_stress_grid_by_hand() -> None:
    """A linear future gains w X s whatever the vol; an option is revalued as black76 prices it;
    the unshocked cell is exactly 0."""
    option: dict[str, object] = {
        "kind": KIND_OPTION, "black": True, "strike": 3_000.0, "X": 3_100.0, "sigma": 0.8,
        "T": 10 / 365, "weight": -2.0, "und": 1,
    }  # fmt: skip
    book = scenario_book([{"X": 60_000.0, "weight": 0.5}, option])
    grid = stress_grid(book, n_underlyings=2)
    assert grid.pnl.shape == (13, 7)
    assert grid.spot.tolist() == list(DEFAULT_SPOT_SHOCKS)
    assert grid.vol.tolist() == list(DEFAULT_VOL_SHOCKS)
    assert grid.pnl[6, 2] == 0.0  # spot +0 %, vol +0 %
    now = float(black76(True, 3_100.0, 3_000.0, 10 / 365, 0.0, 0.8).price)
    for i, s in enumerate(DEFAULT_SPOT_SHOCKS):
        for j, v in enumerate(DEFAULT_VOL_SHOCKS):
            moved = float(
                black76(True, 3_100.0 * (1 + s), 3_000.0, 10 / 365, 0.0, 0.8 * (1 + v)).price
            )
            expected = 0.5 * 60_000.0 * s - 2.0 * (moved - now)
            assert grid.pnl[i, j] == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_stress_grid_arguments() -> None:
    book = scenario_book([{}])
    grid = stress_grid(book, 1, spot_shocks=[-0.1, 0.1], vol_shocks=[0.0], horizon_days=1.0)
    assert grid.pnl[:, 0] == pytest.approx([100.0 * -0.1, 100.0 * 0.1], rel=1e-12)
    bad: list[tuple[list[float], list[float]]] = [([-1.0], [0.0]), ([0.1], []), ([math.nan], [0.0])]
    for spot, vol in bad:
        with pytest.raises(ValueError, match="shocks"):
            stress_grid(book, 1, spot_shocks=spot, vol_shocks=vol)
    with pytest.raises(ValueError, match="n_underlyings"):
        stress_grid(book, 0)
