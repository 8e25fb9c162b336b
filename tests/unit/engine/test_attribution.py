"""Risk attribution (engine.risk.attribution, docs/risk.md#attribution): hand-worked textbook
figures, Euler sums (hypothesis), marginal figures against finite differences, incremental
figures against an independent revaluation without the part; the breakdown by strategy
holding (slices of the lots) worked by hand and against books without the holding's slices."""

from __future__ import annotations

import dataclasses
import math
from statistics import NormalDist

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.instruments import parse_deribit_name
from engine.kernels import KIND_FUTURE, KIND_OPTION
from engine.risk.attribution import (
    NO_STRATEGY,
    Parts,
    delta_gamma_allocation,
    delta_normal_allocation,
    parts_of,
    position_greeks,
    scenario_allocation,
    strategy_parts,
    tail_weights,
    var_window_weights,
)
from engine.risk.scenarios import ScenarioBook, scenario_pnl
from engine.risk.strategies import (
    Leg,
    Strategy,
    StrategyHolding,
    StrategyKind,
    format_strategy,
    straddle,
    vertical,
)
from engine.risk.var import delta_gamma, delta_normal, empirical
from engine.state import BookRisk

N01 = NormalDist()


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


# ------------------------------------------------------------------- by strategy holding


def book_risk(book: ScenarioBook, names: list[str], underlyings: list[str]) -> BookRisk:
    """A book of ``book``'s rows, row i holding the instrument ``names[i]``."""
    defs = [parse_deribit_name(name) for name in names]
    return BookRisk(
        book="desk",
        valuation_ns=0,
        underlyings=underlyings,
        positions=book,
        figures=np.zeros((len(underlyings), 1)),
        prices=np.full(len(underlyings), math.nan),
        rows=np.arange(len(names), dtype=np.int64),
        defs=defs,  # type: ignore[arg-type]  # Instrument | None: every name here parses
    )


def test_parts_of_a_book_by_underlying_expiry_and_position() -> None:
    """Five positions over four instruments, in no order of the instruments' rows (two lots of
    one instrument, as the firm's combined book holds them): each position's expiry part is
    its instrument's bucket, the buckets in time order, and each position its own part, named
    by its instrument."""
    defs = ["ETH-28MAR31-3000-P", "BTC-PERPETUAL", "BTC-27DEC30-60000-C", "BTC-28MAR31"]
    rows = [2, 0, 1, 3, 2]
    names = [defs[r] for r in rows]
    book = scenario_book([{"X": 100.0, "und": u} for u in (0, 1, 0, 0, 0)])
    br = book_risk(book, names, ["BTC", "ETH"])
    br = dataclasses.replace(
        br,
        rows=np.array(rows, dtype=np.int64),
        defs=[parse_deribit_name(d) for d in defs],  # type: ignore[misc]  # every name parses
    )
    by_und, by_expiry, by_position = parts_of(br)
    assert by_und.labels == ["BTC", "ETH"]
    assert by_und.of.tolist() == [0, 1, 0, 0, 0]
    assert by_expiry.labels == ["2030-12-27T08:00:00Z", "2031-03-28T08:00:00Z", "perpetual"]
    assert by_expiry.of.tolist() == [0, 1, 2, 1, 0]
    assert by_position.labels == names
    assert by_position.of.tolist() == [0, 1, 2, 3, 4]


def holding(strategy: Strategy, quantity: float, book: str = "desk") -> StrategyHolding:
    return StrategyHolding(book, format_strategy(strategy), strategy, quantity)


C1, C2, P1, E1 = ("BTC-27DEC30-60000-C", "BTC-27DEC30-70000-C", "BTC-27DEC30-60000-P",
                  "ETH-27DEC30-3000-P")  # fmt: skip


def test_delta_normal_by_strategy_by_hand() -> None:
    """Two strategies over three instruments, Deribit options of multiplier 1 (contracts are
    units of the coin). The lots: C1 +10, C2 -4, P1 +3 (BTC), E1 -20 (ETH); USD deltas per
    contract 600, 300, -400, -150, so per lot dᵢ = 6000, -1200, -1200, 3000. Holdings:
    S1 = vertical C1/C2 (+1, -1) x 4, S2 = straddle C1/P1 (+1, +1) x 3. Slices (contracts):
    S1: C1 +4, C2 -4; S2: C1 +3, P1 +3; the rest, (no strategy): C1 +3 (10 - 4 - 3; C2 and
    P1 are held whole) and E1 -20. So C1's lot is split between both strategies and the rest.

    Daily vols 4 % and 5 %, correlation 0.5, one day, VaR 99 %, ES 97.5 %:
    Σ = [[0.0016, 0.001], [0.001, 0.0025]]; d = (3600, 3000) (BTC: 6000 - 1200 - 1200);
    Σd = (8.76, 11.1); σ² = 3600 x 8.76 + 3000 x 11.1 = 64,836, σ = 254.629;
    VaR = z σ = 2.326348 x 254.629 = 592.356; a slice of USD delta δ on underlying u has
    component VaR z δ (Σd)ᵤ / σ:
      S1: δ_BTC = 2400 - 1200 = 1200: 2.326348 x 1200 x 8.76 / 254.629 = 96.040
      S2: δ_BTC = 1800 - 1200 = 600: 48.020
      rest: 2.326348 x (1800 x 8.76 + 3000 x 11.1) / 254.629 = 448.296
      sum: 96.040 + 48.020 + 448.296 = 592.356 = VaR.
    Incremental VaR, the book without the slices: without S1 d = (2400, 3000), σ² = 2400² x
    0.0016 + 2 x 2400 x 3000 x 0.001 + 3000² x 0.0025 = 46,116, σ = 214.746: z (254.629 -
    214.746) = 92.781; without S2 d = (3000, 3000): σ² = 54,900, σ = 234.307: 47.275; without
    the rest d = (1800, 0): σ = 72: z (254.629 - 72) = 424.859. Standalone: S1 alone
    d = (1200, 0), σ = 48: 111.665; S2 σ = 24: 55.832; the rest d = (1800, 3000): σ² = 38,484,
    σ = 196.173: 456.368. Marginal VaR per unit of the
    strategy, Σ legs ratio x the instrument's per contract (z x 600 x 8.76 / σ for C1, ...):
    S1 z (600 - 300) 8.76 / σ = 24.010 (= 96.040 / 4); S2 z (600 - 400) 8.76 / σ = 16.007.
    Component ES: the same with φ(z_ES)/(1 - 0.975) = 2.337803 for z.
    """
    names = [C1, C2, P1, E1]
    book = scenario_book(
        [{"kind": KIND_OPTION, "black": True, "X": 66000.0, "strike": 60000.0, "weight": 10.0},
         {"kind": KIND_OPTION, "black": True, "X": 66000.0, "strike": 70000.0, "weight": -4.0},
         {"kind": KIND_OPTION, "black": True, "X": 66000.0, "strike": 60000.0, "is_call": False,
          "weight": 3.0},
         {"kind": KIND_OPTION, "black": True, "X": 3300.0, "strike": 3000.0, "is_call": False,
          "weight": -20.0, "und": 1}]
    )  # fmt: skip
    s1, s2 = vertical(C1, C2), straddle(C1, P1)
    parts = strategy_parts(
        [book_risk(book, names, ["BTC", "ETH"])], [holding(s2, 3.0), holding(s1, 4.0)]
    )
    assert parts.labels == [format_strategy(s2), format_strategy(s1), NO_STRATEGY]
    assert parts.labels[1] == f"vertical:{C1}/70000"
    d = np.array([6000.0, -1200.0, -1200.0, 3000.0])
    cov = np.array([[0.0016, 0.001], [0.001, 0.0025]])
    [a] = delta_normal_allocation(d, book, cov, [parts], 0.99, 0.975, 1.0)
    assert a.var.var == pytest.approx(592.356, abs=1e-3)
    assert a.component_var == pytest.approx([48.020, 96.040, 448.296], abs=1e-3)
    assert a.component_var.sum() == pytest.approx(a.var.var, rel=1e-12)
    assert a.incremental_var == pytest.approx([47.275, 92.781, 424.859], abs=1e-3)
    assert a.standalone_var == pytest.approx([55.832, 111.665, 456.368], abs=1e-3)
    k_es = 2.3378027922014164 / 2.3263478740408408
    assert a.component_es == pytest.approx(np.array([48.020, 96.040, 448.296]) * k_es, abs=2e-3)
    assert a.marginal_var_unit[:2] == pytest.approx([16.007, 24.010], abs=1e-3)
    assert math.isnan(a.marginal_var_unit[2])  # the rest is no strategy: no units
    # notional: Σ |slice weight x X|: S1 (4 + 4) x 66,000; S2 (3 + 3) x 66,000
    assert a.notional[:2] == pytest.approx([6 * 66000.0, 8 * 66000.0], rel=1e-12)
    assert parts.units is not None
    assert parts.units.tolist()[:2] == [3.0, 4.0]


HELD = {
    0: [f"BTC-27DEC30-{k}-{cp}" for k in (50000, 60000, 70000) for cp in "CP"] + ["BTC-PERPETUAL"],
    1: ["ETH-27DEC30-3000-C", "ETH-27DEC30-3000-P", "ETH-27DEC30-3500-C"],
}
PRICE = {0: 60000.0, 1: 3000.0}


def strategy_book(seed: int, n_holdings: int) -> tuple[BookRisk, list[StrategyHolding]]:
    """A book of BTC and ETH options and BTC's perpetual (multiplier 10), each instrument held
    with probability 0.7, and holdings of 1 to 3 legs of one underlying, some not held (closed
    lots), random ratios and quantities: they may hold more than a lot, or of the other side."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    names: list[str] = []
    for u, insts in HELD.items():
        for name in insts:
            if rng.random() > 0.7 and (names or name != HELD[0][0]):
                continue
            inst = parse_deribit_name(name)
            assert inst is not None
            qty = float(rng.normal(0.0, 10.0)) or 1.0
            row: dict[str, object] = {"X": PRICE[u], "und": u, "weight": qty * inst.multiplier}
            if inst.strike is not None:
                row |= {"kind": KIND_OPTION, "black": True, "is_call": bool(inst.is_call),
                        "strike": inst.strike, "sigma": float(rng.uniform(0.4, 0.9)),
                        "T": float(rng.uniform(0.05, 1.0))}  # fmt: skip
            else:
                row |= {"inverse": True}
            rows.append(row)
            names.append(name)
    holdings = []
    for _ in range(n_holdings):
        u = int(rng.integers(2))
        legs = rng.choice(HELD[u], size=int(rng.integers(1, 4)), replace=False)
        ratios = rng.choice([-2.0, -1.0, -0.5, 1.0, 3.0], size=legs.size)
        strategy = Strategy(
            StrategyKind.LEGS,
            tuple(Leg(parse_deribit_name(str(n)), float(r))  # type: ignore[arg-type]  # they parse
                  for n, r in zip(legs, ratios, strict=True)),
        )  # fmt: skip
        holdings.append(holding(strategy, float(rng.uniform(-5.0, 5.0)) or 1.0))
    return book_risk(scenario_book(rows), names, ["BTC", "ETH"]), holdings


def slice_weights(br: BookRisk, h: StrategyHolding) -> np.ndarray:
    """Each position's weight the holding takes: quantity x ratio x multiplier, by hand."""
    out = np.zeros(br.positions.kind.size)
    for leg in h.strategy.legs:
        if leg.instrument.name in br.instruments:
            i = br.instruments.index(leg.instrument.name)
            out[i] += h.quantity * leg.ratio * leg.instrument.multiplier
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), n_holdings=st.integers(0, 4))
def test_components_by_strategy_sum_to_the_total(seed: int, n_holdings: int) -> None:
    """Every method; the slices of each lot sum to it (shares to 1)."""
    br, holdings = strategy_book(seed, n_holdings)
    book = br.positions
    parts = strategy_parts([br], holdings)
    assert parts.lot is not None
    assert parts.share is not None
    n = book.kind.size
    shares = np.bincount(parts.lot, parts.share, minlength=n)
    assert shares == pytest.approx(np.ones(n), rel=1e-12)
    cov = random_cov(seed, 2)
    d, g = position_greeks(book, 2)
    ret, dvol = scenarios(seed, 300, 2)
    pnl = scenario_pnl(book, ret, dvol, 1.0).pnl
    total = empirical(pnl, 0.99, 0.975)
    allocations = [
        *delta_normal_allocation(d, book, cov, [parts], 0.99, 0.975, 2.0),
        *delta_gamma_allocation(d, g, book, cov, [parts], 0.99, 0.975, 2.0),
        *scenario_allocation(book, ret, dvol, 1.0, total, pnl, [parts]),
    ]
    for a in allocations:
        scale = abs(a.var.var) + abs(a.var.es) + 1.0
        assert a.component_var.sum() == pytest.approx(a.var.var, rel=1e-9, abs=1e-9 * scale)
        assert a.component_es.sum() == pytest.approx(a.var.es, rel=1e-9, abs=1e-9 * scale)


def test_incremental_by_strategy_is_a_revaluation_without_its_slices() -> None:
    """Historical-style scenarios: a holding's incremental VaR and ES are the risk minus that of
    the book with the holding's quantity x ratio taken off each leg's lot (the rest's: of the
    holdings' slices alone), its component ES the mean P&L of its slices over the 2.5 % worst
    scenarios, its standalone risk that of its slices alone; the delta-gamma incremental is
    the closed form without the slices' Greeks."""
    br, holdings = strategy_book(4, 3)
    book = br.positions
    parts = strategy_parts([br], holdings)
    assert parts.labels[-1] == NO_STRATEGY
    assert len(parts.labels) == 4
    ret, dvol = scenarios(4, 1000, 2)
    pnl = scenario_pnl(book, ret, dvol, 1.0).pnl
    total = empirical(pnl, 0.99, 0.975)
    [a] = scenario_allocation(book, ret, dvol, 1.0, total, pnl, [parts], half_width=3)
    cov = random_cov(4, 2)
    d, g = position_greeks(book, 2)
    [dg] = delta_gamma_allocation(d, g, book, cov, [parts], 0.99, 0.975, 1.0)
    order = sorted(holdings, key=lambda h: h.text)
    taken = [slice_weights(br, h) for h in order]
    taken.append(book.weight - np.sum(taken, axis=0))  # the rest
    worst = np.argsort(pnl)[:25]
    for k, w in enumerate(taken):
        mine = scenario_pnl(book._replace(weight=w), ret, dvol, 1.0).pnl
        rest = scenario_pnl(book._replace(weight=book.weight - w), ret, dvol, 1.0).pnl
        without, alone = empirical(rest, 0.99, 0.975), empirical(mine, 0.99, 0.975)
        assert a.incremental_var[k] == pytest.approx(total.var - without.var, rel=1e-9)
        assert a.incremental_es[k] == pytest.approx(total.es - without.es, rel=1e-9)
        assert a.standalone_es[k] == pytest.approx(alone.es, rel=1e-9)
        assert a.component_es[k] == pytest.approx(-mine[worst].mean(), rel=1e-9)
        f = w / book.weight  # the slices' share of each lot's Greeks
        dk, gk = np.bincount(book.und, d * (1 - f), 2), np.bincount(book.und, g * (1 - f), 2)
        keep = delta_gamma(dk, gk, cov, 0.99, 0.975, 1.0)
        assert dg.incremental_var[k] == pytest.approx(dg.var.var - keep.var, rel=1e-9)
    assert np.isfinite(a.marginal_es_unit[:3]).sum() >= 1


def test_the_rest_is_negative_where_holdings_hold_more_than_the_lot() -> None:
    """Lots C1 +2, C2 +1 (a contract of multiplier 100 here: weight 100). Holdings: 3 x C1,
    twice (+6 of the +2 held); 2 x C2, a quarter (+0.5 contracts: weight 50, half the lot); a
    straddle C1/P1 and -1 P1 alone, whose P1 net out (the lot is 0, no position: neither takes
    a slice of it, both lack a leg, so no units); another book's holding, ignored. C1's rest:
    2 - 6 - 1 = -5 contracts, a share of -2.5; C2's rest: half."""
    names = [C1, C2]
    book = scenario_book(
        [{"kind": KIND_OPTION, "black": True, "X": 66000.0, "strike": 60000.0, "weight": 2.0},
         {"kind": KIND_OPTION, "black": True, "X": 66000.0, "strike": 70000.0, "weight": 100.0}]
    )  # fmt: skip
    br = book_risk(book, names, ["BTC"])
    br.defs[1] = msgspec.structs.replace(br.defs[1], multiplier=100.0)
    c1, c2, p1 = parse_deribit_name(C1), parse_deribit_name(C2), parse_deribit_name(P1)
    assert c1 is not None
    assert c2 is not None
    assert p1 is not None
    three = Strategy(StrategyKind.LEGS, (Leg(c1, 3.0),))
    short = Strategy(StrategyKind.LEGS, (Leg(p1, -1.0),))
    two = Strategy(StrategyKind.LEGS, (Leg(c2, 2.0),))
    held = [holding(three, 2.0), holding(short, 1.0), holding(straddle(C1, P1), 1.0),
            holding(two, 0.25), holding(three, 7.0, "other")]  # fmt: skip
    parts = strategy_parts([br], held)
    assert parts.labels == [
        f"legs:{C1}*3", f"legs:{P1}*-1", f"legs:{C2}*2", f"straddle:{C1}/P", NO_STRATEGY
    ]  # fmt: skip
    assert parts.lot is not None
    assert parts.share is not None
    assert parts.units is not None
    assert parts.of.tolist() == [0, 2, 3, 4, 4]
    assert parts.lot.tolist() == [0, 1, 0, 0, 1]
    assert parts.share.tolist() == [3.0, 0.5, 0.5, -2.5, 0.5]
    assert parts.units[[0, 2]].tolist() == [2.0, 0.25]
    assert np.isnan(parts.units[[1, 3, 4]]).all()
    firm = strategy_parts([br, br], [holding(three, 2.0)], prefix=True)
    assert firm.labels == [f"desk/legs:{C1}*3", f"desk/{NO_STRATEGY}"] * 2
    assert firm.lot is not None
    assert firm.lot.tolist() == [0, 0, 1, 2, 2, 3]


def test_pnl_by_part_equals_full_revaluation_part_by_part() -> None:
    """The parts' P&L revalued per distinct instrument (parts as books) is full revaluation's,
    part by part (engine.part_kernels.part_pnl_kernel, the path before), on positions of every
    kind sharing instruments, some that cannot be valued, in parts across underlyings."""
    from engine import part_kernels
    from engine.risk.attribution import _part_pnl
    from engine.risk.var import mc_draws
    from engine.units import DAYS_PER_YEAR
    from tests.unit.engine.test_stress import random_books

    (book,) = random_books(11, 40, 1, 600)
    rng = np.random.default_rng(3)
    n_parts = 9
    of = rng.integers(0, n_parts, book.kind.size).astype(np.int64)
    n_und = int(book.und.max()) + 1
    cov = np.diag(np.r_[np.full(n_und, 0.04), np.full(n_und, 0.05)]) ** 2
    for horizon in (0.0, 1.0, 10.0):
        ret, dvol = mc_draws(cov, 1_000, seed=5, horizon_days=max(horizon, 1.0))
        got = _part_pnl(book, ret, dvol, horizon, of, n_parts)
        ref = np.empty((ret.shape[0], n_parts))
        part_kernels.part_pnl_kernel(book, ret, dvol, horizon / DAYS_PER_YEAR, of, ref)
        bound = np.abs(book.weight) * np.maximum(book.X, book.strike)  # options' values' bound
        scale = np.bincount(of, np.nan_to_num(bound), n_parts) + np.abs(ref).max()
        np.testing.assert_array_less(np.abs(got - ref), np.broadcast_to(1e-11 * scale, got.shape))
