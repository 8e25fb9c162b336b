"""Hedge ratios (engine.risk.hedge): worked examples from Deribit and Hull, hand computations
with Black-76 Greeks, and properties checked by recomputing the hedged book's Greeks and by
finite differences of its coin and USD values (full revaluation, engine.risk.scenarios)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.greeks import black76, inverse
from engine.kernels import KIND_OPTION, KIND_PERPETUAL, KIND_SPOT
from engine.risk.hedge import (
    DERIBIT_INVERSE_CONTRACT_USD,
    inverse_hedge,
    linear_hedge,
    option_hedge,
)
from engine.risk.scenarios import ScenarioBook, scenario_pnl

# ----------------------------------------------------------------------- futures: by hand


def test_linear_hedge_by_hand() -> None:
    # delta 2.3456 BTC, contracts of 0.01 BTC: sell 234.56 -> 235 contracts, leaving
    # 2.3456 - 2.35 = -0.0044 BTC
    h = linear_hedge(2.3456, 0.01)
    assert_allclose(h.exact, -234.56, rtol=1e-14)
    assert h.contracts == -235.0
    assert_allclose(h.residual_delta, -0.0044, rtol=1e-9)


def test_inverse_hedge_by_hand() -> None:
    # F = 60,000, 10 USD contracts (c / F = 1/6,000 BTC each), delta_adj -0.51234 BTC,
    # equity 1.25 BTC:
    #   coin-flat: 0.51234 x 6,000 = 3,074.04 -> buy 3,074, leaving
    #              -0.51234 + 3,074 / 6,000 = -0.51234 + 0.5123333... = -0.0000066667
    #   USD-flat: -(1.25 - 0.51234) x 6,000 = -4,425.96 -> sell 4,426, leaving
    #              0.73766 - 4,426 / 6,000 = 0.73766 - 0.7376666... = -0.0000066667
    h = inverse_hedge(-0.51234, 1.25, 60_000.0, DERIBIT_INVERSE_CONTRACT_USD["BTC"])
    assert_allclose(h.coin_flat.exact, 3_074.04, rtol=1e-13)
    assert h.coin_flat.contracts == 3_074.0
    assert_allclose(h.coin_flat.residual_delta, -0.04 / 6_000, rtol=1e-8)
    assert_allclose(h.usd_flat.exact, -4_425.96, rtol=1e-13)
    assert h.usd_flat.contracts == -4_426.0
    assert_allclose(h.usd_flat.residual_delta, -0.04 / 6_000, rtol=1e-8)
    # ETH contracts are 1 USD: 10 x the contracts for the same notional
    eth = inverse_hedge(-0.51234, 1.25, 60_000.0, DERIBIT_INVERSE_CONTRACT_USD["ETH"])
    assert_allclose(eth.coin_flat.exact, 30_740.4, rtol=1e-13)


def test_usd_flat_hedge_locks_the_collateral_in_usd() -> None:
    """2 BTC held at 8,000 USD, nothing else (the "short on inverse 1x to lock in USD" example,
    R. RNR, "Trading bitcoin inverse futures contracts"): coin-flat is no trade; USD-flat sells
    16,000 USD = 1,600 contracts. At 10,000 the short loses 16,000 (1/8,000 - 1/10,000) = 0.4
    BTC: 1.6 BTC = 16,000 USD; at 5,000 it gains 1.2 BTC: 3.2 BTC = 16,000 USD."""
    h = inverse_hedge(0.0, 2.0, 8_000.0, 10.0)
    assert h.coin_flat.contracts == 0.0
    assert h.usd_flat.contracts == -1_600.0
    notional = float(h.usd_flat.contracts) * 10.0
    for price, coin_pnl in ((10_000.0, -0.4), (5_000.0, 1.2)):
        pnl = notional * (1 / 8_000 - 1 / price)
        assert pnl == pytest.approx(coin_pnl, rel=1e-12)
        assert (2.0 + pnl) * price == pytest.approx(16_000.0, rel=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    delta=st.floats(-50.0, 50.0),
    equity=st.floats(0.0, 50.0),
    F=st.floats(500.0, 200_000.0),
    c=st.sampled_from([10.0, 1.0]),
)
def test_whole_contracts_leave_at_most_half_a_contract(
    delta: float, equity: float, F: float, c: float
) -> None:
    h = inverse_hedge(delta, equity, F, c)
    for hedge, target in ((h.coin_flat, delta), (h.usd_flat, delta + equity)):
        n = float(hedge.contracts)
        assert n == round(n)
        assert abs(n - float(hedge.exact)) <= 0.5
        slack = 1e-12 * (1.0 + abs(target))
        assert abs(float(hedge.residual_delta)) <= 0.5 * c / F + slack
        assert_allclose(hedge.residual_delta, target + n * c / F, rtol=0, atol=slack)
    assert_allclose(
        h.usd_flat.exact - h.coin_flat.exact,
        -equity * F / c,
        rtol=1e-12,
        atol=1e-12 * F / c * (1.0 + abs(delta) + equity),
    )


# --------------------------------------------- coin-flat and USD-flat by finite differences


def _book(rows: list[tuple[int, bool, bool, float, float, float, float]], F: float) -> ScenarioBook:
    """(kind, inverse, is_call, strike, T, sigma, weight) rows, all on one underlying at F."""
    cols = list(zip(*rows, strict=True))
    n = len(rows)
    return ScenarioBook(
        kind=np.array(cols[0], dtype=np.int8),
        black=np.array([k == KIND_OPTION for k in cols[0]]),
        inverse=np.array(cols[1], dtype=bool),
        is_call=np.array(cols[2], dtype=bool),
        american=np.zeros(n, dtype=np.int8),
        strike=np.array(cols[3]),
        T=np.array(cols[4]),
        r=np.zeros(n),
        q=np.zeros(n),
        sigma=np.array(cols[5]),
        X=np.full(n, F),
        div_pv=np.zeros(n),
        weight=np.array(cols[6]),
        und=np.zeros(n, dtype=np.int64),
    )


def test_the_value_oracle_reproduces_deribits_futures_example() -> None:
    """Deribit, "Example (futures)": 100 contracts of 10 USD bought at 600 USD and sold at
    700 USD make 1000/600 - 1000/700 = 0.238095 BTC, 166.66 USD at 700. The USD value
    revaluation used below (scenario_pnl) gives the same."""
    book = _book([(KIND_PERPETUAL, True, True, 0.0, 0.0, 0.0, 1_000.0)], 600.0)
    pnl = scenario_pnl(book, [[math.log(700 / 600)]], [[0.0]], 0.0).pnl[0]
    assert pnl == pytest.approx(1_000 * (700 / 600 - 1), rel=1e-12)
    assert pnl == pytest.approx(166.66, abs=0.01)
    assert pnl / 700 == pytest.approx(1_000 / 600 - 1_000 / 700, rel=1e-12)
    assert pnl / 700 == pytest.approx(0.238095, abs=1e-6)


def _slopes(book: ScenarioBook, F: float, value_usd: float) -> tuple[float, float]:
    """dW_usd/dF and F dW_coin/dF (underlying units) of an account worth ``value_usd`` now,
    holding ``book``: central differences at F e^{±h} by full revaluation."""
    h = 1e-5
    w = value_usd + scenario_pnl(book, [[-h], [h]], [[0.0], [0.0]], 0.0).pnl
    lo, hi = F * math.exp(-h), F * math.exp(h)
    return (w[1] - w[0]) / (hi - lo), F * (w[1] / hi - w[0] / lo) / (hi - lo)


option_rows = st.lists(
    st.tuples(
        st.booleans(),  # is_call
        st.floats(0.7, 1.3),  # strike / F
        st.floats(0.02, 1.0),  # T
        st.floats(0.3, 1.2),  # sigma
        st.floats(-5.0, 5.0),  # quantity, coin
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=50, deadline=None)
@given(
    options=option_rows,
    F=st.floats(2_000.0, 100_000.0),
    cash=st.floats(0.0, 20.0),
    future_usd=st.floats(-100_000.0, 100_000.0),
    c=st.sampled_from([10.0, 1.0]),
)
def test_coin_flat_and_usd_flat_match_finite_differences(
    options: list[tuple[bool, float, float, float, float]],
    F: float,
    cash: float,
    future_usd: float,
    c: float,
) -> None:
    """A coin-margined account: coin-settled options, an inverse perpetual, ``cash`` coin.
    Each target's contracts are found independently, from finite differences of the account's
    USD value W_usd and coin value W_usd / F with and without one USD of inverse notional, and
    their difference is the derived -equity F / c."""
    rows = [(KIND_OPTION, True, call, k * F, t, v, w) for call, k, t, v, w in options]
    rows += [(KIND_PERPETUAL, True, True, 0.0, 0.0, 0.0, future_usd)]
    rows += [(KIND_SPOT, False, True, 0.0, 0.0, 0.0, cash)]
    book = _book(rows, F)
    g = inverse(book.is_call[:-2], F, book.strike[:-2], book.T[:-2], 0.0, book.sigma[:-2])
    q = book.weight[:-2]
    delta_adj = float(q @ g.delta_adj) + future_usd / F
    equity = cash + float(q @ g.price_coin)

    usd0, coin0 = _slopes(book, F, equity * F)
    usd1, coin1 = _slopes(
        _book([(KIND_PERPETUAL, True, True, 0.0, 0.0, 0.0, 1.0)], F), F, 0.0
    )  # 1 USD of notional
    fd_coin = -coin0 / coin1 / c
    fd_usd = -usd0 / usd1 / c

    h = inverse_hedge(delta_adj, equity, F, c)
    scale = (1.0 + float(np.abs(q).sum()) + cash + abs(future_usd) / F) * F / c
    assert_allclose(h.coin_flat.exact, fd_coin, rtol=1e-6, atol=1e-6 * scale)
    assert_allclose(h.usd_flat.exact, fd_usd, rtol=1e-6, atol=1e-6 * scale)
    assert_allclose(fd_usd - fd_coin, -equity * F / c, rtol=1e-6, atol=1e-6 * scale)


# ------------------------------------------------------------ option hedges: worked examples


def test_hull_gamma_neutral_example() -> None:
    """Hull, Options, Futures, and Other Derivatives (8th ed., ch. 18, "The Greek Letters"):
    a delta-neutral portfolio with gamma -3,000; a traded call of delta 0.62 and gamma 1.50.
    A long position of 3,000 / 1.5 = 2,000 calls makes it gamma neutral; its delta moves to
    2,000 x 0.62 = 1,240, so 1,240 units of the underlying are sold."""
    h = option_hedge([0.0, -3_000.0, 0.0], [[0.62, 1.50, 0.0]], ("gamma",), 1.0, 1.0)
    assert_allclose(h.quantity, [2_000.0], rtol=1e-14)
    assert h.future is not None
    assert_allclose(h.future.exact, -1_240.0, rtol=1e-14)
    assert_allclose(h.residual, [0.0, 0.0, 0.0], atol=1e-10)
    assert not h.singular


def test_hull_gamma_vega_neutral_example() -> None:
    """Hull (8th ed., ch. 18): a delta-neutral portfolio with gamma -5,000 and vega -8,000;
    option 1 has delta 0.6, gamma 0.5, vega 2.0, option 2 delta 0.5, gamma 0.8, vega 1.2.
    -5,000 + 0.5 w1 + 0.8 w2 = 0 and -8,000 + 2.0 w1 + 1.2 w2 = 0 give w1 = 400,
    w2 = 6,000; a short position of 400 x 0.6 + 6,000 x 0.5 = 3,240 in the asset then makes
    the portfolio delta neutral."""
    options = [[0.6, 0.5, 2.0], [0.5, 0.8, 1.2]]
    h = option_hedge([0.0, -5_000.0, -8_000.0], options, ("gamma", "vega"), 1.0, 1.0)
    assert_allclose(h.quantity, [400.0, 6_000.0], rtol=1e-12)
    assert h.future is not None
    assert_allclose(h.future.exact, -3_240.0, rtol=1e-12)
    assert h.future.contracts == -3_240.0
    assert_allclose(h.residual, [0.0, 0.0, 0.0], atol=1e-9)
    assert_allclose(h.residual_rounded, [0.0, 0.0, 0.0], atol=1e-9)


@pytest.mark.parametrize(
    ("target", "option", "future"), [("gamma", 4_000.0, -1_950.0), ("vega", 5_000.0, -2_550.0)]
)
def test_hull_sterling_problem(target: str, option: float, future: float) -> None:
    """Hull (8th ed., ch. 18, end-of-chapter problem): OTC options on sterling, positions
    -1,000 (delta 0.50, gamma 2.2, vega 1.8), -500 (0.80, 0.6, 0.2), -2,000 (-0.40, 1.3, 0.7),
    -500 (0.70, 1.8, 1.4): delta -450, gamma -6,000, vega -4,000. A traded option of delta 0.6,
    gamma 1.5, vega 0.8: gamma neutral with +4,000 options and -1,950 sterling; vega neutral
    with +5,000 options and -2,550 sterling."""
    positions = np.array([-1_000.0, -500.0, -2_000.0, -500.0])
    greeks = np.array([[0.50, 2.2, 1.8], [0.80, 0.6, 0.2], [-0.40, 1.3, 0.7], [0.70, 1.8, 1.4]])
    book = positions @ greeks
    assert_allclose(book, [-450.0, -6_000.0, -4_000.0], rtol=1e-14)
    h = option_hedge(book, [[0.6, 1.5, 0.8]], (target,), 1.0, 1.0)
    assert_allclose(h.quantity, [option], rtol=1e-12)
    assert h.future is not None
    assert_allclose(h.future.exact, future, rtol=1e-12)


def _phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_delta_gamma_hedge_of_black76_calls_by_hand() -> None:
    """Long 10 calls K = 60,000 on F = 60,000, T = 0.25, σ = 0.6, r = 0, gamma-hedged with the
    70,000 call and delta-hedged with a linear future of 1 BTC.

    σ√T = 0.3. K = 60,000: d1 = (0 + 0.045) / 0.3 = 0.15. K = 70,000:
    d1 = (ln(6/7) + 0.045) / 0.3 = -0.3638356. Γ = φ(d1) / (F σ √T) = φ(d1) / 18,000, so the
    calls to sell are 10 Γ1/Γ2 = 10 exp((d1₂² - d1₁²) / 2) = 10.56475; delta left
    10 N(0.15) - 10.56475 N(-0.36384) = 5.59618 - 3.78208 = 1.81410: sell 1.81410 BTC. Rounded
    to 0.1 calls: -10.6, leaving delta 1.80148, gamma -7.3117e-7 and vega -3.9483 USD per vol
    point (10 x 118.34380 - 10.6 x 112.01757); whole futures: -2, leaving delta -0.19852.
    """
    F, T, sigma = 60_000.0, 0.25, 0.6
    d1 = [0.15, (math.log(6 / 7) + 0.045) / 0.3]
    delta = [_cdf(d) for d in d1]
    gamma = [_phi(d) / 18_000.0 for d in d1]
    vega = [F * _phi(d) * 0.5 / 100.0 for d in d1]  # USD per vol point
    g = black76(True, F, [60_000.0, 70_000.0], T, 0.0, sigma)
    assert_allclose(g.delta, delta, rtol=1e-12)
    assert_allclose(g.gamma, gamma, rtol=1e-12)
    assert_allclose(g.vega / 100.0, vega, rtol=1e-12)

    book = 10.0 * np.array([delta[0], gamma[0], vega[0]])
    h = option_hedge(book, [[delta[1], gamma[1], vega[1]]], ("gamma",), 0.1, 1.0)
    x = -10.0 * math.exp((d1[1] ** 2 - d1[0] ** 2) / 2)
    assert_allclose(h.quantity, [x], rtol=1e-12)
    assert_allclose(h.quantity, [-10.56475], rtol=1e-6)
    assert h.future is not None
    assert_allclose(h.future.exact, -(10 * delta[0] + x * delta[1]), rtol=1e-12)
    assert_allclose(h.future.exact, -1.81410, rtol=1e-5)
    # vega goes too: one expiry and vol, so Γ/ν = 1/(F² σ T) is the same for both strikes
    assert_allclose(h.residual, [0.0, 0.0, 0.0], atol=1e-9)
    assert_allclose(h.rounded, [-10.6], rtol=1e-14)
    assert h.future.contracts == -2.0
    left = 10 * delta[0] - 10.6 * delta[1]
    assert_allclose(left, 1.80148, rtol=1e-5)
    assert_allclose(
        h.residual_rounded,
        [left - 2.0, 10 * gamma[0] - 10.6 * gamma[1], 10 * vega[0] - 10.6 * vega[1]],
        rtol=1e-12,
    )
    assert_allclose(h.residual_rounded, [-0.19852, -7.3117e-7, -3.9483], rtol=1e-4)


def test_more_options_than_targets_takes_the_least_quantities() -> None:
    # gamma -10 with two options of gamma 1 and 2: x1 + 2 x2 = 10, least x1² + x2²:
    # x = 10 (1, 2) / (1 + 4) = (2, 4)
    h = option_hedge([0.0, -10.0, 0.0], [[0.0, 1.0, 0.0], [0.0, 2.0, 0.0]], ("gamma",), 1.0)
    assert_allclose(h.quantity, [2.0, 4.0], rtol=1e-14)
    assert h.future is None
    assert_allclose(h.residual, [0.0, 0.0, 0.0], atol=1e-14)


def test_fewer_options_than_targets_is_least_squares() -> None:
    # gamma -1, vega -3, one option of gamma 1 and vega 1 (rows already of unit length):
    # least (x - 1)² + (x - 3)²: x = 2, leaving gamma 1 and vega -1
    h = option_hedge([0.0, -1.0, -3.0], [[0.0, 1.0, 1.0]], ("gamma", "vega"), 1.0)
    assert_allclose(h.quantity, [2.0], rtol=1e-14)
    assert_allclose(h.residual, [0.0, 1.0, -1.0], atol=1e-14)


def test_a_singular_hedge_is_flagged_per_row() -> None:
    """Two options of one expiry and vol have Γ/ν = 1/(F² σ T) whatever the strike: they
    cannot set gamma and vega apart. The second book's pair (two expiries) can."""
    g = black76(True, 60_000.0, [[55_000.0, 65_000.0], [55_000.0, 65_000.0]],
                [[0.25, 0.25], [0.25, 0.75]], 0.0, 0.6)  # fmt: skip
    options = np.stack([g.delta, g.gamma, g.vega / 100.0], axis=-1)  # (2 books, 2 options, 3)
    book = np.array([[1.0, -1e-4, -300.0], [1.0, -1e-4, -300.0]])
    h = option_hedge(book, options, ("gamma", "vega"), 0.1, 1.0)
    assert h.singular.tolist() == [True, False]
    assert np.isnan(h.quantity[0]).all()
    assert h.future is not None
    assert np.isnan(h.future.exact[0])
    one = option_hedge(book[1], options[1], ("gamma", "vega"), 0.1, 1.0)
    assert_allclose(h.quantity[1], one.quantity, rtol=1e-14)
    assert_allclose(h.residual[1], [0.0, 0.0, 0.0], atol=1e-9)


# -------------------------------------------------- option hedges: the hedged book's Greeks


@settings(max_examples=100, deadline=None)
@given(
    book_rows=st.lists(
        st.tuples(st.booleans(), st.floats(0.6, 1.5), st.floats(0.02, 2.0), st.floats(-20, 20)),
        min_size=1,
        max_size=5,
    ),
    targets=st.sampled_from([("gamma",), ("vega",), ("gamma", "vega"), ("delta", "gamma", "vega")]),
    extra=st.integers(0, 1),
    strikes=st.lists(st.floats(0.8, 1.25), min_size=4, max_size=4),
    sigma=st.floats(0.3, 1.2),
)
def test_the_hedged_book_has_zero_targets(
    book_rows: list[tuple[bool, float, float, float]],
    targets: tuple[str, ...],
    extra: int,
    strikes: list[float],
    sigma: float,
) -> None:
    """Hedge a Black-76 book with options of distinct expiries (as many as targets, or one
    more) and a linear future, then price book + hedge again: the targets and the delta are 0
    before rounding; rounding moves each quantity by at most half its lot."""
    F = 60_000.0
    n = len(targets) + extra
    calls, k, t, qty = (np.array(c) for c in zip(*book_rows, strict=True))
    hedge_k = np.array(strikes[:n]) * F
    hedge_t = np.array([0.1, 0.4, 0.9, 1.6][:n])
    per_unit = black76(
        np.concatenate([calls.astype(bool), np.ones(n, bool)]),
        F, np.concatenate([k * F, hedge_k]), np.concatenate([t, hedge_t]), 0.0, sigma,
    )  # fmt: skip
    greeks = np.stack([per_unit.delta, per_unit.gamma, per_unit.vega / 100.0], axis=-1)
    book = qty @ greeks[: len(qty)]
    lots = 0.1
    h = option_hedge(book, greeks[len(qty) :], targets, lots, 1.0)
    assert not h.singular
    assert h.future is not None
    # the hedged book, priced again: its positions are the book's and the hedge's quantities
    positions = np.concatenate([qty, h.quantity])
    hedged = positions @ greeks + np.array([float(h.future.exact), 0.0, 0.0])
    size = np.abs(positions) @ np.abs(greeks) + 1e-300
    zeroed = [0, *(("delta", "gamma", "vega").index(x) for x in targets)]
    assert np.all(np.abs(hedged[zeroed]) <= 1e-9 * size[zeroed])
    assert np.all(np.abs(h.residual - hedged) <= 1e-9 * size)
    assert np.all(np.abs(h.rounded - h.quantity) <= lots / 2 * (1 + 1e-12))
    assert abs(float(h.residual_rounded[0])) <= 0.5 + 1e-9


# -------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: linear_hedge(1.0, 0.0), "multiplier must be finite and > 0, got 0.0"),
        (lambda: linear_hedge(math.nan, 1.0), "delta must be finite, got nan"),
        (lambda: linear_hedge([1.0, 2.0, 3.0], [1.0, 2.0]), "multiplier has shape"),
        (lambda: linear_hedge("1", 1.0), "delta must be a real number"),
        (lambda: inverse_hedge(0.1, 1.0, -5.0, 10.0), "F must be finite and > 0, got -5.0"),
        (lambda: inverse_hedge(0.1, math.inf, 5.0, 10.0), "equity_coin must be finite"),
        (lambda: inverse_hedge(0.1, 1.0, 5.0, 0.0), "contract_usd must be finite and > 0"),
        (lambda: option_hedge([1.0, 2.0], [[1.0, 1.0, 1.0]], ("gamma",), 1.0), "book must"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], ("gamma",), 1.0), "options must"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], ("theta",), 1.0), "targets"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], "gamma", 1.0), "targets"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], (), 1.0), "targets"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], ("gamma",), 0.0), "lots must"),
        (lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], ("gamma",), [1.0, 1.0]), "lots"),
        (
            lambda: option_hedge([1.0, 2.0, 3.0], [[1.0, 1.0, 1.0]], ("gamma",), 1.0, -1.0),
            "future_delta must be finite and > 0",
        ),
        (
            lambda: option_hedge(np.ones((2, 3)), np.ones((3, 1, 3)), ("gamma",), 1.0),
            "options has shape",
        ),
    ],
)
def test_bad_arguments_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
