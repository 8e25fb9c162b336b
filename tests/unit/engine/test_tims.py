"""Cboe/OCC customer portfolio margin (engine.risk.tims): the valuation points, Cboe's published
long-straddle figure (the per-contract minimum), closed-form BSM losses, class groups, the
revaluation hook, and properties."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.kernels import KIND_OPTION, KIND_SPOT
from engine.risk.scenarios import ScenarioBook, ScenarioPnL
from engine.risk.tims import (
    BROAD_INDEX_PM,
    EQUITY_PM,
    PortfolioMarginParams,
    portfolio_margin,
    valuation_moves,
)
from tests.unit.engine.test_var import scenario_book

T = 30 / 365


def option(call: bool, strike: float, contracts: float, s: float = 97.73, und: int = 0,
           sigma: float = 0.25) -> dict[str, object]:  # fmt: skip
    """A BSM option on spot ``s``, multiplier 100."""
    return {"kind": KIND_OPTION, "black": False, "is_call": call, "strike": strike, "T": T,
            "r": 0.05, "sigma": sigma, "X": s, "weight": 100.0 * contracts, "und": und}  # fmt: skip


def bsm_call(s: float, k: float, t: float, r: float, sigma: float) -> float:
    """Closed-form BSM call, no dividends (the independent reference)."""
    d1 = (math.log(s / k) + (r + 0.5 * sigma**2) * t) / (sigma * math.sqrt(t))

    def n(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    return s * n(d1) - k * math.exp(-r * t) * n(d1 - sigma * math.sqrt(t))


def test_valuation_points() -> None:
    """Ten points: +-15 % in 3 % steps (equities, ETFs); -8 % .. +6 % for broad-based
    indices, five equal steps each side."""
    assert_allclose(
        valuation_moves(EQUITY_PM), np.array([-15, -12, -9, -6, -3, 3, 6, 9, 12, 15]) / 100
    )
    broad = [-0.08, -0.064, -0.048, -0.032, -0.016, 0.012, 0.024, 0.036, 0.048, 0.06]
    assert_allclose(valuation_moves(BROAD_INDEX_PM), broad)


@pytest.mark.parametrize(
    ("s", "k", "params"), [(97.73, 100.0, EQUITY_PM), (1451.19, 1450.0, BROAD_INDEX_PM)]
)
def test_cboe_long_straddle_is_the_minimum(
    s: float, k: float, params: PortfolioMarginParams
) -> None:
    """Cboe, "Margin Requirement Examples for Sample Options-based Positions" (2007): long 100
    IBM April 100 puts and 100 calls, and long 100 SPX April 1450 puts and 100 calls: portfolio
    margin $7,500 each, i.e. 200 contracts x $0.375 x 100: the straddle's worst loss over the
    points is below that minimum, which binds."""
    book = scenario_book([option(True, k, 100, s), option(False, k, 100, s)])
    pm = portfolio_margin(book, [params])
    assert 0.0 <= pm.worst_loss[0] < 7_500.0
    assert pm.total == pytest.approx(7_500.0, rel=1e-12)


def test_short_call_worst_loss_against_closed_form() -> None:
    """Short 100 calls: the worst point is +15 %: 10,000 x (C(1.15 S) - C(S))."""
    book = scenario_book([option(True, 100.0, -100)])
    pm = portfolio_margin(book, [EQUITY_PM])
    loss = 10_000 * (
        bsm_call(97.73 * 1.15, 100, T, 0.05, 0.25) - bsm_call(97.73, 100, T, 0.05, 0.25)
    )
    assert pm.worst_loss[0] == pytest.approx(loss, rel=1e-10)
    assert pm.class_requirement[0] == pytest.approx(loss, rel=1e-10)
    assert pm.minimum[0] == pytest.approx(3_750.0)


def test_class_group_offsets() -> None:
    """SPX-like short calls (class 0) and long SPY-like shares (class 1) moved together: alone
    each class pays its worst; grouped at offset 1 a gain nets a loss point by point, at 0 it
    does not (the sum of each point's losses)."""
    shares: dict[str, object] = {"kind": KIND_SPOT, "X": 145.3, "weight": 10_000.0, "und": 1}
    book = scenario_book([option(True, 1450.0, -10, 1451.19), shares])
    params = [BROAD_INDEX_PM, BROAD_INDEX_PM]
    alone = portfolio_margin(book, params)
    full = portfolio_margin(book, params, groups=[(0, 1)], group_offset=1.0)
    none = portfolio_margin(book, params, groups=[(0, 1)], group_offset=0.0)
    assert alone.groups == ((0,), (1,))
    net = alone.pnl.sum(axis=0)
    assert full.total == pytest.approx(max(-net.min(), alone.minimum.sum()), rel=1e-12)
    losses = np.minimum(alone.pnl, 0.0).sum(axis=0)
    assert none.total == pytest.approx(-losses.min(), rel=1e-12)
    assert full.total <= none.total <= alone.total


def intrinsic_revaluation(book: ScenarioBook, ret: npt.ArrayLike, dvol: npt.ArrayLike,
                          horizon_days: float) -> ScenarioPnL:  # fmt: skip
    """Another pricer behind the hook: options at intrinsic value, spot at its price."""
    r = np.asarray(ret, dtype=np.float64)
    x = book.X[None, :] * np.exp(r[:, book.und])
    sign = np.where(book.is_call, 1.0, -1.0)

    def value(p: np.ndarray) -> np.ndarray:
        return np.where(book.kind == KIND_OPTION, np.maximum(sign * (p - book.strike), 0.0), p)

    pnl = (value(x) - value(book.X[None, :])) @ book.weight
    return ScenarioPnL(pnl=np.asarray(pnl, dtype=np.float64), excluded=np.zeros(0, np.int64))


def test_revaluation_hook_is_used() -> None:
    """The pricer is a parameter (the hook for American options): at intrinsic, a short 100
    call at 97.73 loses 100 x 100 x (97.73 x 1.15 - 100) at +15 %."""
    book = scenario_book([option(True, 100.0, -100)])
    pm = portfolio_margin(book, [EQUITY_PM], revalue=intrinsic_revaluation)
    assert pm.worst_loss[0] == pytest.approx(10_000 * (97.73 * 1.15 - 100.0), rel=1e-12)


def test_refusals() -> None:
    book = scenario_book([option(True, 100.0, -1)])
    with pytest.raises(ValueError, match="down"):
        PortfolioMarginParams(down=1.0, up=0.1)
    with pytest.raises(ValueError, match="index"):
        portfolio_margin(scenario_book([option(True, 100.0, -1, und=1)]), [EQUITY_PM])
    with pytest.raises(ValueError, match="group_offset"):
        portfolio_margin(book, [EQUITY_PM], group_offset=1.5)
    with pytest.raises(ValueError, match="groups"):
        portfolio_margin(book, [EQUITY_PM], groups=[(0,), (0,)])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.floats(70, 130), st.floats(-50, 50)), min_size=1, max_size=6
    ),
    st.floats(0.5, 5.0),
)
def test_portfolio_margin_properties(legs: list[tuple[bool, float, float]], scale: float) -> None:
    """Requirement >= the minimum >= 0 and >= the worst loss; scaling the book scales both."""
    rows = [option(c, k, n) for c, k, n in legs]
    pm = portfolio_margin(scenario_book(rows), [EQUITY_PM])
    assert pm.class_requirement[0] >= pm.minimum[0] >= 0.0
    assert pm.class_requirement[0] >= pm.worst_loss[0] >= 0.0
    assert pm.minimum[0] == pytest.approx(0.375 * 100 * sum(abs(n) for _, _, n in legs))
    big = portfolio_margin(scenario_book([{**r, "weight": scale * r["weight"]} for r in rows]),  # type: ignore[operator]
                           [EQUITY_PM])  # fmt: skip
    assert big.total == pytest.approx(scale * pm.total, rel=1e-9, abs=1e-9)
