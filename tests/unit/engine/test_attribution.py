"""Risk attribution (engine.risk.attribution, docs/risk.md#attribution): hand-worked textbook
figures, Euler sums (hypothesis), marginal figures against finite differences, incremental
figures against an independent revaluation without the part."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.kernels import KIND_FUTURE, KIND_OPTION
from engine.risk.attribution import (
    Parts,
    delta_gamma_allocation,
    delta_normal_allocation,
    position_greeks,
    scenario_allocation,
    tail_weights,
    var_window_weights,
)
from engine.risk.scenarios import ScenarioBook, scenario_pnl
from engine.risk.var import delta_gamma, delta_normal, empirical

N01 = NormalDist()


def scenario_book(rows: list[dict[str, object]]) -> ScenarioBook:
    """A ScenarioBook from one dict per position (defaults: a linear future on underlying 0)."""
    defaults: dict[str, object] = {
        "kind": KIND_FUTURE, "black": False, "inverse": False, "is_call": True, "strike": 1.0,
        "T": 0.5, "r": 0.0, "q": 0.0, "sigma": 0.5, "X": 100.0, "weight": 1.0, "und": 0,
    }  # fmt: skip
    dtypes = {"kind": np.int8, "black": bool, "inverse": bool, "is_call": bool, "und": np.int64}
    cols = {
        name: np.array([{**defaults, **row}[name] for row in rows], dtype=dtypes.get(name, float))
        for name in defaults
    }
    return ScenarioBook(**cols)


def each(book: ScenarioBook, kind: str = "position") -> Parts:
    n = book.kind.size
    return Parts(kind, [str(i) for i in range(n)], np.arange(n, dtype=np.int64))


# Jorion, Value at Risk (3rd ed., 2007), ch. 7 "Portfolio Risk: Analytical Methods", 7.2 (VaR
# tools), two-currency example: $2M in CAD and $1M in EUR, vols 5 % and 12 %, correlation 0.5,
# 95 % with alpha = 1.65. By hand: Σx = (0.008, 0.0204) ($M), x'Σx = 0.0364, σ_p = 0.190788;
# VaR = 1.65 σ_p = 0.3148; marginal VaR α(Σx)/σ_p = (0.0692, 0.1764); component VaR
# (0.1384, 0.1764), summing to the VaR; individual VaRs 0.165 and 0.198; incremental VaR of a
# currency = VaR minus the other one's individual VaR: CAD 0.1168, EUR 0.1498.
JORION_COV = np.array([[0.05**2, 0.5 * 0.05 * 0.12], [0.5 * 0.05 * 0.12, 0.12**2]])


def jorion() -> tuple[ScenarioBook, np.ndarray]:
    book = scenario_book([{"X": 1.0, "weight": 2e6}, {"X": 1.0, "weight": 1e6, "und": 1}])
    return book, np.array([2e6, 1e6])


def test_jorion_component_marginal_and_incremental_var_by_hand() -> None:
    book, d = jorion()
    [a] = delta_normal_allocation(d, book, JORION_COV, [each(book)], 0.95, 0.975, 1.0)
    scale = N01.inv_cdf(0.95) / 1.65  # Jorion rounds α to 1.65; the code uses Φ⁻¹(0.95)
    assert a.var.var == pytest.approx(0.3148e6 * scale, rel=1e-3)
    assert a.component_var == pytest.approx(np.array([0.1384e6, 0.1764e6]) * scale, rel=1e-3)
    assert a.marginal_var == pytest.approx(np.array([0.0692, 0.1764]) * scale, rel=1e-3)
    alpha = N01.inv_cdf(0.95)
    assert a.incremental_var == pytest.approx(
        [a.var.var - alpha * 0.12e6, a.var.var - alpha * 0.1e6], rel=1e-12
    )
    assert a.incremental_var == pytest.approx(np.array([0.1168e6, 0.1498e6]) * scale, rel=2e-3)
    # individual VaRs 0.165 and 0.198 ($M); undiversified 0.363, diversification 0.048
    assert a.standalone_var == pytest.approx(np.array([0.165e6, 0.198e6]) * scale, rel=1e-12)
    benefit = a.standalone_var.sum() - a.var.var
    assert benefit == pytest.approx(0.048e6 * scale, rel=2e-2)


def test_normal_component_es_is_the_closed_form() -> None:
    """ES of N(0, σ²) is σ φ(z)/(1 - c); its Euler components are x_i (Σx)_i / σ φ(z)/(1 - c)."""
    book, d = jorion()
    [a] = delta_normal_allocation(d, book, JORION_COV, [each(book)], 0.99, 0.975, 1.0)
    sigma = math.sqrt(0.0364) * 1e6
    k = N01.pdf(N01.inv_cdf(0.025)) / 0.025
    assert a.var.es == pytest.approx(sigma * k, rel=1e-12)
    assert a.component_es == pytest.approx(np.array([2 * 0.008, 0.0204]) * 1e12 / sigma * k)


def random_book(seed: int, n: int, n_und: int) -> ScenarioBook:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for i in range(n):
        u = int(rng.integers(n_und))
        x = float(rng.uniform(50.0, 150.0))
        if i % 3 == 0:
            rows.append({"X": x, "weight": float(rng.normal(0, 10)), "und": u})
        else:
            rows.append(
                {"kind": KIND_OPTION, "black": True, "is_call": bool(i % 2), "X": x,
                 "strike": x * float(rng.uniform(0.8, 1.2)), "sigma": float(rng.uniform(0.3, 1)),
                 "T": float(rng.uniform(0.02, 1.0)), "weight": float(rng.normal(0, 10)), "und": u}
            )  # fmt: skip
    return scenario_book(rows)


def random_cov(seed: int, n_und: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    a = rng.normal(0, 0.03, (n_und, n_und))
    cov: np.ndarray = a @ a.T + np.eye(n_und) * 1e-4
    return cov


def groups(book: ScenarioBook, k: int, seed: int) -> Parts:
    of = np.random.default_rng(seed + 2).integers(k, size=book.kind.size).astype(np.int64)
    return Parts("group", [str(i) for i in range(k)], of)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30), n_und=st.integers(1, 4))
def test_parametric_components_sum_to_the_total(seed: int, n: int, n_und: int) -> None:
    book = random_book(seed, n, n_und)
    cov = random_cov(seed, n_und)
    d, g = position_greeks(book, n_und)
    parts = [each(book), groups(book, 3, seed)]
    for a in delta_normal_allocation(d, book, cov, parts, 0.99, 0.975, 2.0):
        assert a.component_var.sum() == pytest.approx(a.var.var, rel=1e-9, abs=1e-9)
        assert a.component_es.sum() == pytest.approx(a.var.es, rel=1e-9, abs=1e-9)
    for a in delta_gamma_allocation(d, g, book, cov, parts, 0.99, 0.975, 2.0):
        assert a.component_var.sum() == pytest.approx(a.var.var, rel=1e-9, abs=1e-6)
        assert a.component_es.sum() == pytest.approx(a.var.es, rel=1e-9, abs=1e-6)


def test_delta_gamma_components_are_the_derivatives_by_finite_differences() -> None:
    book = random_book(7, 12, 3)
    cov = random_cov(7, 3)
    d, g = position_greeks(book, 3)
    parts = groups(book, 4, 7)
    [a] = delta_gamma_allocation(d, g, book, cov, [parts], 0.99, 0.975, 1.0)
    h = 1e-5
    for k in range(4):

        def risk(s: float, k: int = k) -> tuple[float, float]:
            w = np.where(parts.of == k, s, 1.0)
            f = delta_gamma(np.bincount(book.und, d * w, 3), np.bincount(book.und, g * w, 3),
                            cov, 0.99, 0.975, 1.0)  # fmt: skip
            return f.var, f.es

        (v1, e1), (v0, e0) = risk(1 + h), risk(1 - h)
        assert a.component_var[k] == pytest.approx((v1 - v0) / (2 * h), rel=1e-5, abs=1e-3)
        assert a.component_es[k] == pytest.approx((e1 - e0) / (2 * h), rel=1e-5, abs=1e-3)
        keep = parts.of != k
        dk, gk = np.bincount(book.und, d * keep, 3), np.bincount(book.und, g * keep, 3)
        without = delta_gamma(dk, gk, cov, 0.99, 0.975, 1.0)
        assert a.incremental_var[k] == pytest.approx(a.var.var - without.var, rel=1e-12)


def test_delta_normal_marginal_by_finite_differences() -> None:
    book, d = jorion()
    [a] = delta_normal_allocation(d, book, JORION_COV, [each(book)], 0.99, 0.975, 1.0)
    h = 1.0  # USD of position
    for i in range(2):
        up, dn = d.copy(), d.copy()
        up[i] += h
        dn[i] -= h
        fd = (delta_normal(up, JORION_COV, 0.99).var - delta_normal(dn, JORION_COV, 0.99).var) / 2
        assert a.marginal_var[i] == pytest.approx(fd, rel=1e-7)


def scenarios(seed: int, n: int, n_und: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed + 3)
    return rng.normal(0, 0.04, (n, n_und)), rng.normal(0, 0.05, (n, n_und))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 25), n_und=st.integers(1, 3),
       n_s=st.integers(20, 400))  # fmt: skip
def test_scenario_components_sum_to_the_total(seed: int, n: int, n_und: int, n_s: int) -> None:
    book = random_book(seed, n, n_und)
    ret, dvol = scenarios(seed, n_s, n_und)
    pnl = scenario_pnl(book, ret, dvol, 1.0).pnl
    total = empirical(pnl, 0.99, 0.975)
    for a in scenario_allocation(
        book, ret, dvol, 1.0, total, pnl, [each(book), groups(book, 3, seed)]
    ):
        assert a.component_var.sum() == pytest.approx(total.var, rel=1e-9, abs=1e-9)
        assert a.component_es.sum() == pytest.approx(total.es, rel=1e-9, abs=1e-9)


def test_component_es_is_the_mean_tail_pnl_and_the_derivative() -> None:
    book = random_book(11, 20, 2)
    ret, dvol = scenarios(11, 1000, 2)
    pnl = scenario_pnl(book, ret, dvol, 1.0).pnl
    total = empirical(pnl, 0.99, 0.975)
    parts = groups(book, 3, 11)
    [a] = scenario_allocation(book, ret, dvol, 1.0, total, pnl, [parts], half_width=3)
    worst = np.argsort(pnl)[:25]  # 1000 x 2.5 %: exactly the 25 worst scenarios
    for k in range(3):
        sub = scenario_pnl(book._replace(weight=book.weight * (parts.of == k)), ret, dvol, 1.0)
        assert a.component_es[k] == pytest.approx(-sub.pnl[worst].mean(), rel=1e-9)
        h = 1e-7
        up = empirical(pnl + h * sub.pnl, 0.99, 0.975).es
        dn = empirical(pnl - h * sub.pnl, 0.99, 0.975).es
        assert a.component_es[k] == pytest.approx((up - dn) / (2 * h), rel=1e-5)
        without = empirical(pnl - sub.pnl, 0.99, 0.975)
        assert a.incremental_var[k] == pytest.approx(total.var - without.var, rel=1e-9)
        assert a.incremental_es[k] == pytest.approx(total.es - without.es, rel=1e-9)


def test_component_var_is_the_window_mean_rescaled() -> None:
    """Hand-made: four positions' P&L in 100 scenarios; at 99 % the VaR is the second-worst
    loss; with half-width 1 the window is the 1st, 2nd and 3rd worst with weights 1, 2, 1."""
    rng = np.random.default_rng(5)
    ret = rng.normal(0, 0.05, (100, 4))
    book = scenario_book([{"X": 100.0, "weight": 1.0 + i, "und": i} for i in range(4)])
    pnl = scenario_pnl(book, ret, np.zeros_like(ret), 1.0).pnl
    total = empirical(pnl, 0.99, 0.975)
    [a] = scenario_allocation(book, ret, np.zeros_like(ret), 1.0, total, pnl, [each(book)], 1)
    worst = np.argsort(pnl)[:3]
    per = (1.0 + np.arange(4)) * 100.0 * np.expm1(ret[worst])  # (3 scenarios, 4 positions)
    window = -(np.array([1.0, 2.0, 1.0]) @ per[::-1]) / 4.0  # 3rd, 2nd, worst
    assert a.component_var == pytest.approx(window * total.var / window.sum(), rel=1e-9)
    w = var_window_weights(pnl, 0.99, 1)
    assert w[worst[1]] == 0.5
    assert w[worst[0]] == 0.25
    assert w[worst[2]] == 0.25


def test_tail_weights_are_acerbi_tasche() -> None:
    pnl = -np.arange(100.0)  # losses 0..99
    w = tail_weights(pnl, 0.975)
    assert w[99] == w[98] == pytest.approx(1 / 2.5)
    assert w[97] == pytest.approx(0.5 / 2.5)
    assert float(w @ -pnl) == pytest.approx(empirical(pnl, 0.99, 0.975).es)


def test_position_greeks_of_futures_by_hand() -> None:
    """A linear future of weight w at X: P&L w X (e^r - 1): dP/dr = w X, d²P/dr² = w X."""
    book = scenario_book([{"X": 100.0, "weight": 3.0}, {"X": 50.0, "weight": -2.0, "und": 1}])
    d, g = position_greeks(book, 2)
    assert d == pytest.approx([300.0, -100.0], rel=1e-6)  # central differences: O(h²)
    assert g == pytest.approx([300.0, -100.0], rel=1e-4)
    d, _ = position_greeks(book, 2, np.array([0.0, 0.0]), np.array([0.0, 0.0]))
    assert d == pytest.approx([0.0, 0.0], abs=1e-9)  # adjusted to the exposures' sums given
