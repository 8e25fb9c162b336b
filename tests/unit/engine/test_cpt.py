"""Cumulative prospect theory (engine/risk/cpt.py) against prospects worked by hand from
Tversky and Kahneman (1992), and its properties."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.risk.cpt import CptParams, certainty_equivalent, cpt_value, weight

# Worked by hand, the paper's parameters (alpha = beta = 0.88, lambda = 2.25, gamma = 0.61,
# delta = 0.69):
#   w+(1/2) = 0.5^0.61 / (2 x 0.5^0.61)^(1/0.61) = 0.655197 / 1.557621 = 0.420639
#   w-(1/2) = 0.5^0.69 / (2 x 0.5^0.69)^(1/0.69) = 0.619854 / 1.365354 = 0.453988
#   v(100) = 100^0.88 = 57.5440, v(-100) = -2.25 x 57.5440 = -129.474
W_GAIN_HALF = 0.420639
W_LOSS_HALF = 0.453988
V_100 = 57.5440


def test_the_weights_of_one_half() -> None:
    """The paper's Figure 3 reads w+(0.5) = 0.42 and w-(0.5) = 0.45."""
    assert float(weight(0.5, 0.61)) == pytest.approx(W_GAIN_HALF, abs=1e-6)
    assert float(weight(0.5, 0.69)) == pytest.approx(W_LOSS_HALF, abs=1e-6)
    assert float(weight(0.0, 0.61)) == 0.0
    assert float(weight(1.0, 0.61)) == 1.0


def test_a_fifty_fifty_bet_worked_by_hand() -> None:
    """(-100, +100) at 1/2 each: V = w+(1/2) v(100) + w-(1/2) v(-100)
    = 57.5440 x (0.420639 - 2.25 x 0.453988) = -34.5743: a loss-averse desk refuses it."""
    want = V_100 * (W_GAIN_HALF - 2.25 * W_LOSS_HALF)
    assert want == pytest.approx(-34.5743, abs=1e-3)
    assert cpt_value([100.0, -100.0]) == pytest.approx(want, rel=1e-5)
    assert cpt_value([-100.0, 100.0]) == cpt_value([100.0, -100.0])


def test_a_three_outcome_prospect_worked_by_hand() -> None:
    """(-50, 10, 100) at 1/3 each. Gains from the best: 100 weighs
    w+(1/3) = 0.511630 / 1.522925 = 0.335952, 10 weighs w+(2/3) - w+(1/3) = 0.780880 / 1.522925
    - 0.335952 = 0.512750 - 0.335952 = 0.176798; the loss -50 weighs
    w-(1/3) = 0.468583 / 1.341210 = 0.349373. v(100) = 57.5440, v(10) = 7.58578,
    v(-50) = -2.25 x 31.2675 = -70.3519. V = 19.3320 + 1.34115 - 24.5791 = -3.9059."""
    assert float(weight(1 / 3, 0.61)) == pytest.approx(0.335952, abs=1e-6)
    assert float(weight(2 / 3, 0.61)) == pytest.approx(0.512750, abs=1e-6)
    assert float(weight(1 / 3, 0.69)) == pytest.approx(0.349373, abs=1e-6)
    assert cpt_value([10.0, -50.0, 100.0]) == pytest.approx(-3.9059, abs=2e-4)


def test_without_distortion_it_is_the_expected_value() -> None:
    """alpha = beta = lambda = gamma = delta = 1: V is the mean P&L."""
    linear = CptParams(alpha=1.0, beta=1.0, loss_aversion=1.0, gamma=1.0, delta=1.0)
    x = np.random.default_rng(5).normal(0.0, 1_000.0, 301)
    assert cpt_value(x, linear) == pytest.approx(float(x.mean()), rel=1e-12, abs=1e-9)


_pnl = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40)


@settings(max_examples=100, deadline=None)
@given(pnl=_pnl, shift=st.floats(1e-3, 1e5))
def test_it_increases_with_a_shift_of_every_outcome(pnl: list[float], shift: float) -> None:
    x = np.array(pnl)
    assert cpt_value(x + shift) > cpt_value(x)


@settings(max_examples=100, deadline=None)
@given(size=st.floats(1e-3, 1e6))
def test_a_symmetric_bet_has_negative_value(size: float) -> None:
    assert cpt_value([size, -size]) < 0.0
    assert cpt_value([size, -size, size, -size, 0.0]) < 0.0


@settings(max_examples=100, deadline=None)
@given(pnl=_pnl)
def test_the_certainty_equivalent_is_worth_the_value(pnl: list[float]) -> None:
    v = cpt_value(pnl)
    ce = certainty_equivalent(v)
    assert cpt_value([ce]) == pytest.approx(v, rel=1e-9, abs=1e-9)
    assert min(pnl) - 1e-6 <= ce <= max(pnl) + 1e-6 or v < 0.0


def test_it_refuses_an_empty_or_non_finite_distribution() -> None:
    with pytest.raises(ValueError, match="pnl"):
        cpt_value([])
    with pytest.raises(ValueError, match="pnl"):
        cpt_value([1.0, float("nan")])
