"""CME SPAN (engine.risk.span): McMillan's published risk arrays and their aggregation, NSE's
printing of the scenario table, arrays recomputed by riskd against closed-form Black-76, spread
charge, short option minimum, net option value, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from engine.kernels import KIND_FUTURE, KIND_OPTION
from engine.risk.span import (
    CmeSpanParams,
    RiskArrays,
    risk_arrays,
    scenario_table,
    span_requirement,
)
from tests.unit.engine.test_var import scenario_book

# McMillan, Options as a Strategic Investment (5th ed.), ch. 34, pp. 668-670: S&P 500 futures,
# price scan range $10,000 (20 points x $500), "extreme" move 14 points ($7,000). Profit/loss
# of one long contract per scenario, his sign (profit > 0), CME's order.
MCMILLAN_FUTURE = [0, 0, 3_330, 3_330, -3_330, -3_330, 6_670, 6_670, -6_670, -6_670, 10_000,
                   10_000, -10_000, -10_000, 7_000, -7_000]  # fmt: skip
MCMILLAN_CALL_410 = [460, -610, 2_640, 1_730, -1_270, -2_340, 5_210, 4_540, -2_540, -3_430,
                     8_060, 7_640, -3_380, -3_990, 3_130, -1_500]  # fmt: skip
NO_CHARGES = CmeSpanParams(intra_spread_charge_usd=0.0, short_option_minimum_usd=0.0)


def published(*pnl: list[int], values: tuple[float, ...] = (0.0, 0.0)) -> RiskArrays:
    """Risk arrays in CME's sign (loss > 0) from McMillan's P&L columns (future, then call)."""
    return RiskArrays(
        losses=-np.array(pnl, dtype=np.float64),
        composite_delta=np.array([1.0, 0.5]),
        tier=np.array([0, 0]),
        is_option=np.array([False, True]),
        is_call=np.array([True, True]),
        value_usd=np.array(values),
    )


def test_scenario_table_is_the_published_one() -> None:
    """NSE's SPAN documentation (Table 12.1, as printed in DCOM510 p. 188): 0, +-1/3, +-2/3,
    +-1 of the price scan range with vol up and down (100 %), then +-2 ranges, vol unchanged,
    35 % of the loss."""
    price, vol, weight = scenario_table(2.0, 0.35)
    assert_allclose(price * 3, [0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3, 6, -6])
    assert_allclose(vol, [1, -1] * 7 + [0, 0])
    assert_allclose(weight, [1.0] * 14 + [0.35, 0.35])


def test_mcmillan_covered_write_aggregation() -> None:
    """McMillan's covered write (long 1 S&P future, short 1 Dec 410 call): the arrays add
    scenario by scenario; its worst is 'futures down 3/3 of range, vol up', -6,620; the long
    call alone needs 3,990 ('futures down 3/3; volatility down')."""
    arrays_ = published(MCMILLAN_FUTURE, MCMILLAN_CALL_410)
    covered = span_requirement(arrays_, [1.0, -1.0], NO_CHARGES)
    expected = [-460, 610, 690, 1_600, -2_060, -990, 1_460, 2_130, -4_130, -3_240, 1_940,
                2_360, -6_620, -6_010, 3_870, -5_500]  # fmt: skip
    assert_allclose(-covered.scenario_losses, expected, rtol=0, atol=1e-9)
    assert covered.scan_risk == 6_620.0
    call = span_requirement(arrays_, [0.0, 1.0], NO_CHARGES)
    assert call.scan_risk == 3_990.0
    future = span_requirement(arrays_, [1.0, 0.0], NO_CHARGES)
    assert future.scan_risk == 10_000.0


def test_recomputed_future_array_is_mcmillans() -> None:
    """riskd's array of the same future (20 points x $500): thirds of 10,000 (McMillan rounds
    3,333.33 to 3,330) and the extreme move at 2 ranges x 35 % = 7,000 exactly."""
    book = scenario_book([{"kind": KIND_FUTURE, "X": 400.0, "weight": 500.0}])
    got = risk_arrays(book, price_scan=20.0, vol_scan=0.25, tier=0, delta_unit=500.0)
    assert_allclose(-got.losses[0], MCMILLAN_FUTURE, rtol=0, atol=3.4)
    assert_allclose(-got.losses[0, [2, 6, 10, 14]], [10_000 / 3, 20_000 / 3, 10_000, 7_000],
                    rtol=1e-12)  # fmt: skip
    assert got.composite_delta[0] == 1.0
    assert got.value_usd[0] == 0.0


def black76_call(f: float, k: float, t: float, sigma: float) -> float:
    """Closed-form Black-76 call, r = 0 (the independent reference)."""
    d1 = (math.log(f / k) + 0.5 * sigma**2 * t) / (sigma * math.sqrt(t))
    d2 = d1 - sigma * math.sqrt(t)
    return f * 0.5 * math.erfc(-d1 / math.sqrt(2)) - k * 0.5 * math.erfc(-d2 / math.sqrt(2))


def test_recomputed_option_array_against_closed_form() -> None:
    """An ES-style call (multiplier 50) at its own vol: each scenario's loss is minus the change
    of 50 x Black-76 one day later at the moved price and vol; 15 and 16 at 35 %."""
    f, k, t, sigma, psr, vsr = 5_000.0, 5_100.0, 30 / 365, 0.18, 300.0, 0.3
    book = scenario_book(
        [{"kind": KIND_OPTION, "black": True, "is_call": True, "strike": k, "T": t,
          "sigma": sigma, "X": f, "weight": 50.0}]
    )  # fmt: skip
    got = risk_arrays(book, psr, vsr, tier=3, delta_unit=50.0)
    price, vol, weight = scenario_table(2.0, 0.35)
    now = black76_call(f, k, t, sigma)
    expected = [
        -w * 50.0 * (black76_call(f + p * psr, k, t - 1 / 365, sigma * (1 + v * vsr)) - now)
        for p, v, w in zip(price, vol, weight, strict=True)
    ]
    assert_allclose(got.losses[0], expected, rtol=1e-12, atol=1e-9)
    assert got.value_usd[0] == pytest.approx(50.0 * now, rel=1e-12)
    assert 0.0 < got.composite_delta[0] < 1.0
    assert (got.tier[0], bool(got.is_option[0])) == (3, True)


def test_calendar_spread_charge_short_option_minimum_and_net_option_value() -> None:
    """Long 1 March future, short 1 June (tiers 0 and 1): their arrays cancel, so the scan risk
    is 0 and the intra-commodity spread charge (one spread) is the risk. Short 3 calls and 1
    put: the short option minimum counts 3. Long options' value is a credit."""
    book = scenario_book([{"kind": KIND_FUTURE, "X": 5_000.0, "weight": 50.0},
                          {"kind": KIND_FUTURE, "X": 5_060.0, "weight": 50.0}])  # fmt: skip
    fut = risk_arrays(book, 300.0, 0.3, tier=[0, 1], delta_unit=50.0)
    params = CmeSpanParams(intra_spread_charge_usd=400.0, short_option_minimum_usd=250.0)
    cal = span_requirement(fut, [1.0, -1.0], params)
    assert cal.scan_risk == pytest.approx(0.0, abs=1e-6)
    assert (cal.spreads, cal.intra_spread_charge) == (1.0, 400.0)
    assert cal.risk_requirement == pytest.approx(400.0, abs=1e-6)
    opts = RiskArrays(
        losses=np.zeros((2, 16)), composite_delta=np.array([0.3, -0.3]), tier=np.array([0, 0]),
        is_option=np.array([True, True]), is_call=np.array([True, False]),
        value_usd=np.array([100.0, 80.0]),
    )  # fmt: skip
    short = span_requirement(opts, [-3.0, -1.0], params)
    assert short.short_option_minimum == 750.0
    assert short.risk_requirement == 750.0
    assert short.net_option_value == -380.0
    assert short.total == 750.0 + 380.0
    long_ = span_requirement(opts, [2.0, 0.0], params)
    assert (long_.short_option_minimum, long_.net_option_value, long_.total) == (0.0, 200.0, -200.0)


def test_refusals() -> None:
    with pytest.raises(ValueError, match="intra_spread_charge_usd"):
        CmeSpanParams(intra_spread_charge_usd=-1.0, short_option_minimum_usd=0.0)
    arrays_ = published(MCMILLAN_FUTURE, MCMILLAN_CALL_410)
    with pytest.raises(ValueError, match="positions"):
        span_requirement(arrays_, [1.0], NO_CHARGES)
    with pytest.raises(ValueError, match="losses"):
        RiskArrays(np.zeros((1, 15)), np.zeros(1), np.zeros(1, np.int64), np.zeros(1, bool),
                   np.zeros(1, bool), np.zeros(1))  # fmt: skip
    book = scenario_book([{"kind": KIND_FUTURE, "X": 100.0, "weight": 1.0}])
    with pytest.raises(ValueError, match="<= 0"):
        risk_arrays(book, 60.0, 0.3, 0, 1.0)
    bad = scenario_book([{"kind": KIND_OPTION, "sigma": 0.0, "strike": 100.0}])
    with pytest.raises(ValueError, match="cannot be valued"):
        risk_arrays(bad, 5.0, 0.3, 0, 1.0)


@settings(max_examples=200, deadline=None)
@given(
    arrays(np.float64, (4, 16), elements=st.floats(-1e4, 1e4)),
    arrays(np.float64, 4, elements=st.floats(-20, 20)),
    st.floats(0.5, 10.0),
)
def test_span_properties(losses: np.ndarray, q: np.ndarray, scale: float) -> None:
    """Risk requirement >= short option minimum and >= scan risk >= 0; scaling the positions
    scales every charge."""
    a = RiskArrays(losses, np.array([1.0, -1.0, 0.4, -0.6]), np.array([0, 1, 0, 1]),
                   np.array([False, False, True, True]), np.array([True, True, True, False]),
                   np.array([0.0, 0.0, 120.0, 90.0]))  # fmt: skip
    params = CmeSpanParams(intra_spread_charge_usd=300.0, short_option_minimum_usd=200.0)
    r = span_requirement(a, q, params)
    assert r.risk_requirement >= r.short_option_minimum >= 0.0
    assert r.risk_requirement >= r.scan_risk >= 0.0
    s = span_requirement(a, scale * q, params)
    for name in ("scan_risk", "intra_spread_charge", "short_option_minimum", "risk_requirement",
                 "net_option_value", "total"):  # fmt: skip
        assert getattr(s, name) == pytest.approx(scale * getattr(r, name), rel=1e-9, abs=1e-6)
