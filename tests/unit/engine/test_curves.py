"""Tests for engine.curves: zero curves linear in r·t, and the ``[rates]`` configuration."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import QuantLib as ql  # noqa: N813  # the name QuantLib's own docs and examples use
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.curves import RateCurveConfig, ZeroCurve
from engine.daycount import NS_PER_DAY, year_fraction
from engine.errors import ConfigError
from engine.events import Quote, Tick
from engine.greeks import bsm
from engine.instruments import Instrument, InstrumentRegistry, Kind
from engine.runtime.config import load_config, new_portfolio, rate_curves
from engine.state import AGG_FIELDS, Portfolio, UnderlyingParams

# years 0.5, 1, 2 at 4 %, 5 %, 4.5 %: r·t = 0.02, 0.05, 0.09 at the nodes
CURVE = ZeroCurve(np.array([0.5, 1.0, 2.0]), np.array([0.04, 0.05, 0.045]))


@pytest.mark.parametrize(
    ("t", "rt"),
    [
        (0.0, 0.0),
        (0.25, 0.01),  # before the first node: the first zero rate, 4 %
        (0.5, 0.02),
        (0.75, 0.035),  # halfway from 0.02 to 0.05
        (1.0, 0.05),
        (1.5, 0.07),  # halfway from 0.05 to 0.09
        (2.0, 0.09),
        (3.0, 0.135),  # after the last node: its zero rate, 4.5 %
    ],
)
def test_interpolation_matches_hand_computed_values(t: float, rt: float) -> None:
    assert_allclose(CURVE.rt(t), rt, rtol=1e-15, atol=1e-17)
    assert_allclose(CURVE.discount(t), math.exp(-rt), rtol=1e-15)
    want_rate = 0.04 if t == 0.0 else rt / t
    assert_allclose(CURVE.zero_rate(t), want_rate, rtol=1e-15)


def test_forward_rates_are_flat_between_nodes() -> None:
    # (0.05 - 0.02) / 0.5 and (0.09 - 0.05) / 1
    assert_allclose(CURVE.forward_rate([0.5, 0.6, 1.0, 1.2], [0.6, 1.0, 1.2, 2.0]),
                    [0.06, 0.06, 0.04, 0.04], rtol=1e-13)  # fmt: skip
    assert_allclose(CURVE.forward_rate(2.5, 4.0), 0.045, rtol=1e-13)  # flat zero beyond


def test_arrays_in_arrays_out_and_negative_times_use_the_first_rate() -> None:
    t = np.array([[-1.0, 0.0], [0.75, 5.0]])
    assert CURVE.zero_rate(t).shape == (2, 2)
    assert_allclose(CURVE.zero_rate(t), [[0.04, 0.04], [0.035 / 0.75, 0.045]], rtol=1e-15)
    assert_allclose(CURVE.discount(-1.0), math.exp(0.04), rtol=1e-15)


def test_against_quantlibs_log_linear_discount_curve() -> None:
    """Linear in r·t is log-linear in the discount factor: QuantLib's DiscountCurve."""
    days = [7, 30, 91, 182, 365, 730, 1825]
    rates = [0.0431, 0.0433, 0.0428, 0.0415, 0.0398, 0.0372, 0.0365]
    ours = RateCurveConfig(days=[float(d) for d in days], zero_rates=rates).curve()
    today = ql.Date(15, 1, 2025)
    dc = ql.Actual365Fixed()
    dfs = [1.0] + [math.exp(-r * d / 365) for r, d in zip(rates, days, strict=True)]
    theirs = ql.DiscountCurve([today] + [today + d for d in days], dfs, dc)
    for t in np.linspace(0.0, days[-1] / 365, 97):
        assert_allclose(ours.discount(t), theirs.discount(float(t)), rtol=1e-14)
        if t > 0:
            assert_allclose(ours.zero_rate(t), -math.log(theirs.discount(float(t))) / t,
                            rtol=1e-12)  # fmt: skip


def test_flat_curve_and_days_equal_years() -> None:
    flat = ZeroCurve.flat(0.045)
    assert_allclose(flat.discount([0.1, 1.0, 30.0]), np.exp(-0.045 * np.array([0.1, 1.0, 30.0])))
    by_days = RateCurveConfig(days=[365.0, 730.0], zero_rates=[0.01, 0.02]).curve()
    by_years = RateCurveConfig(years=[1.0, 2.0], zero_rates=[0.01, 0.02]).curve()
    assert_allclose(by_days.years, by_years.years, rtol=0, atol=0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.01, 30.0), min_size=1, max_size=8, unique=True),
    st.data(),
)
def test_nodes_are_repriced_and_the_curve_is_continuous(
    nodes: list[float], data: st.DataObject
) -> None:
    years = np.array(sorted(nodes))
    if years.size > 1 and np.min(np.diff(years)) < 1e-6:
        return
    rates = np.array(data.draw(st.lists(st.floats(-0.02, 0.2), min_size=years.size,
                                        max_size=years.size)))  # fmt: skip
    curve = ZeroCurve(years, rates)
    assert_allclose(curve.zero_rate(years), rates, rtol=1e-12, atol=1e-15)
    # r·t moves by at most the steepest forward rate times the step across a node
    fwd = np.diff(np.r_[0.0, years * rates]) / np.diff(np.r_[0.0, years])
    eps = 1e-9
    jump = 2 * eps * max(float(np.max(np.abs(fwd))), abs(rates[-1])) + 1e-13
    assert_allclose(curve.rt(years - eps), curve.rt(years + eps), rtol=0, atol=jump)
    assert_allclose(curve.discount(years) * np.exp(rates * years), 1.0, rtol=1e-14)


@pytest.mark.parametrize(
    ("years", "rates"),
    [([], []), ([1.0, 0.5], [0.01, 0.02]), ([1.0], [math.nan]), ([0.0], [0.01]), ([1.0], [1, 2])],
)
def test_a_bad_curve_is_refused(years: list[float], rates: list[float]) -> None:
    with pytest.raises(ValueError, match="curve"):
        ZeroCurve(np.array(years, dtype=float), np.array(rates, dtype=float))


def _config(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "riskd.toml"
    path.write_text(body, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("body", "where", "what"),
    [
        ("[rates.USD]\ndays = [30, 10]\nzero_rates = [0.04, 0.05]",
         "$.rates.USD`", "`days` must increase strictly: days[1] = 10.0"),
        ("[rates.USD]\nyears = [0.5, 0.5]\nzero_rates = [0.04, 0.05]",
         "$.rates.USD`", "`years` must increase strictly"),
        ("[rates.USD]\ndays = [30]\nzero_rates = [nan]", "$.rates.USD.zero_rates[0]`", ">= -1.0"),
        ("[rates.USD]\ndays = [30]\nzero_rates = [inf]", "$.rates.USD.zero_rates[0]`", "<= 1.0"),
        ("[rates.USD]\ndays = [-30]\nzero_rates = [0.04]", "$.rates.USD.days[0]`", "> 0.0"),
        ("[rates.USD]\nzero_rates = []", "$.rates.USD`", "`days` or in `years`"),
        ("[rates.USD]\ndays = [30]\nyears = [1.0]\nzero_rates = [0.04]",
         "$.rates.USD`", "`days` or in `years`"),
        ("[rates.USD]\ndays = [30, 60]\nzero_rates = [0.04]",
         "$.rates.USD`", "`days` has 2 nodes but `zero_rates` 1"),
        ("[rates.USD]\ndays = [30]\nrates = [0.04]", "$.rates.USD`", "unknown field `rates`"),
        ("[rates.EUR]\ndays = [30]\nzero_rates = [0.04]\n"
         "[portfolio.underlyings.SPX]\ncurve = 'USD'",
         "$.portfolio.underlyings.SPX.curve`", "no [rates.USD] curve"),
        ("[rates.USD]\ndays = [30]\nzero_rates = [0.04]\n"
         "[portfolio.underlyings.SPX]\ncurve = 'USD'\nrate = 0.05",
         "$.portfolio.underlyings.SPX`", "give `rate` or `curve`, not both"),
    ],
)  # fmt: skip
def test_a_bad_curve_in_config_names_its_key(
    tmp_path: Path, body: str, where: str, what: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(_config(tmp_path, body))
    assert what in info.value.detail
    assert info.value.detail.endswith(f"- at `{where}")


def test_curves_and_flat_rates_from_config(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        "[rates.USD]\ndays = [30, 365]\nzero_rates = [0.043, 0.040]\n"
        "[portfolio.underlyings.SPX]\ncurve = 'USD'\ndividend_yield = 0.013\n"
        "[portfolio.underlyings.BTC]\nrate = 0.05\n",
    )
    config = load_config(path)
    curves = rate_curves(config)
    assert_allclose(curves["USD"].zero_rate([30 / 365, 1.0]), [0.043, 0.040], rtol=1e-15)
    spx = config.portfolio.underlyings["SPX"].zero_curve(curves)
    assert spx is curves["USD"]
    btc = config.portfolio.underlyings["BTC"].zero_curve(curves)
    assert_allclose(btc.zero_rate([0.1, 3.0]), 0.05, rtol=1e-15)
    new_portfolio(config)  # the flat [portfolio.underlyings] keep working


def test_an_option_on_a_curve_is_priced_at_the_zero_rate_to_its_expiry() -> None:
    """An SPX call on a USD curve: its figures are BSM's at the curve's zero rate to its expiry
    (ACT/365 from the valuation time), and a later full reprice rolls the rate down the curve."""
    expiry = 1_734_728_400 * 10**9  # 2024-12-20T21:00:00Z
    now = 1_719_792_000 * 10**9  # 2024-07-01T00:00:00Z
    index = Instrument(name="SPX", kind=Kind.INDEX, underlying="SPX", index="SPX")
    call = Instrument(name="SPXW241220C05500000", kind=Kind.OPTION, underlying="SPX",
                      index="SPX", expiry_ns=expiry, strike=5_500.0, is_call=True,
                      multiplier=100.0, venue="cboe")  # fmt: skip
    curve = RateCurveConfig(days=[30.0, 91.0, 182.0, 365.0],
                            zero_rates=[0.053, 0.052, 0.050, 0.047]).curve()  # fmt: skip
    p = Portfolio(InstrumentRegistry([index, call]),
                  {"SPX": UnderlyingParams(dividend_yield=0.013, curve=curve)})  # fmt: skip
    p.add_position("a", call.name, 1.0)
    for at in (now, now + 60 * NS_PER_DAY):
        ts = at - 10**9
        p.apply_tick(Tick(instrument="SPX", price=5_460.0, ts_event=ts, ts_recv=ts))
        p.apply_quote(Quote(instrument=call.name, iv=0.16, ts_event=ts, ts_recv=ts))
        p.cycle(at, full=True)
        T = year_fraction(at, expiry)
        r = float(curve.zero_rate(T))
        assert 0.047 < r < 0.052
        want = bsm(True, 5_460.0, 5_500.0, T, r, 0.013, 0.16)
        got = p.priced([call.name])
        assert_allclose(got.units[0, AGG_FIELDS.index("delta")], 100.0 * float(want.delta),
                        rtol=1e-13)  # fmt: skip
        assert_allclose(got.units[0, AGG_FIELDS.index("rho")], 100.0 * float(want.rho) / 100.0,
                        rtol=1e-13)  # fmt: skip
