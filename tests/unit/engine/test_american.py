"""American options (engine.american): against a converged reference and QuantLib's
QdFpAmericanEngine, published values, properties, finite differences, implied vol."""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql  # noqa: N813  # the name QuantLib's own docs and examples use
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

from engine import american_kernels as ak
from engine import kernels
from engine.american import Dividends, american, american_black76, american_implied_vol
from engine.greeks import bsm
from engine.kernels import GREEK_FIELDS
from engine.status import Status

F64 = npt.NDArray[np.float64]


def _price(is_call: bool, S: float, K: float, T: float, r: float, q: float, v: float,
           scheme: ak.Scheme) -> float:  # fmt: skip
    out = np.empty(1)
    status = np.empty(1, dtype=np.int8)
    s, k, t, rr, qq, vv = (np.array([x], dtype=np.float64) for x in (S, K, T, r, q, v))
    ak.american_price_kernel(
        np.array([is_call]), s, k, t, rr, qq, vv, scheme, out, status, ak.NO_TABLES
    )
    return float(out[0])


def _ql_price(is_call: bool, S: float, K: float, days: int, r: float, q: float, v: float) -> float:
    """QuantLib's QdFpAmericanEngine, high-precision scheme, T = days / 365."""
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), v, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K),
        ql.AmericanExercise(today, today + days),
    )
    option.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    return float(option.NPV())


# (is_call, S, K, days, r, q, sigma): moneyness 0.5..1.5, 1 day..3 years, 5 %..150 %
GRID = [
    (False, 100.0, 100.0, 365, 0.05, 0.0, 0.2),
    (False, 90.0, 100.0, 182, 0.08, 0.04, 0.3),
    (True, 110.0, 100.0, 730, 0.03, 0.07, 0.25),
    (False, 100.0, 120.0, 1095, 0.10, 0.0, 1.5),
    (False, 100.0, 100.0, 3, 0.05, 0.02, 0.05),
    (False, 100.0, 150.0, 1, 0.10, 0.01, 0.8),
    (True, 100.0, 50.0, 90, 0.01, 0.10, 0.4),
    (True, 100.0, 140.0, 1095, 0.02, 0.09, 0.6),
    (False, 100.0, 70.0, 400, 0.10, 0.05, 1.0),
    (True, 100.0, 100.0, 30, 0.0, 0.05, 0.15),
]


@pytest.mark.parametrize("row", GRID)
def test_reference_agrees_with_quantlib_high_precision(
    row: tuple[bool, float, float, int, float, float, float],
) -> None:
    """Two implementations that share no code agree to ~1e-8: where QuantLib is right, and
    so the reference the other tests and the benchmark use. (They part below ~1e-9 of spot
    on a deep out-of-the-money, low-vol, long-dated put; see docs/american.md.)"""
    is_call, S, K, days, r, q, v = row
    ref = _price(is_call, S, K, days / 365.0, r, q, v, ak.REFERENCE)
    quantlib = _ql_price(is_call, S, K, days, r, q, v)
    assert abs(ref - quantlib) <= max(2e-8 * ref, 1e-10 * S)


Grid = tuple[npt.NDArray[np.bool_], F64, F64, F64, F64, F64, F64]


def _random_grid(n: int, seed: int) -> Grid:
    rng = np.random.default_rng(seed)
    S = np.full(n, 100.0)
    K = S * np.exp(rng.uniform(math.log(0.5), math.log(1.5), n))
    T = np.exp(rng.uniform(math.log(1.0 / 365.0), math.log(3.0), n))
    v = rng.uniform(0.05, 1.5, n)
    r = rng.uniform(0.0, 0.10, n)
    q = rng.uniform(0.0, 0.10, n)
    return rng.random(n) < 0.5, S, K, T, r, q, v


def _prices(cols: Grid, scheme: ak.Scheme) -> F64:
    is_call, S, K, T, r, q, v = cols
    out = np.empty(S.shape[0])
    status = np.empty(out.shape[0], dtype=np.int8)
    ak.american_price_kernel(is_call, S, K, T, r, q, v, scheme, out, status, ak.NO_TABLES)
    assert (status == Status.OK).all()
    return out


def test_schemes_meet_their_accuracy_against_the_reference() -> None:
    cols = _random_grid(60, 7)
    ref = _prices(cols, ak.REFERENCE)
    S = cols[1]
    for scheme, rel, per_spot in ((ak.ACCURATE, 1e-8, 1e-10), (ak.FAST, 1e-5, 1e-7)):
        err = np.abs(_prices(cols, scheme) - ref)
        assert ((err <= rel * ref) | (err <= per_spot * S)).all(), err.max()


# Geske and Johnson, "The American put option valued analytically", Journal of Finance 39(5),
# 1984, Table I: S = 40, r = 4.88 %, q = 0, T = 1, 4 and 7 months; the columns of values from
# their fine binomial tree, printed to 3 decimals (also Ju 1999, Exhibit 3, "true" column).
GJ_PUTS = [
    (35.0, 1, 0.2, 0.006), (35.0, 4, 0.2, 0.200), (35.0, 7, 0.2, 0.433),
    (40.0, 1, 0.2, 0.852), (40.0, 4, 0.2, 1.580), (40.0, 7, 0.2, 1.990),
    (45.0, 1, 0.2, 5.000), (45.0, 4, 0.2, 5.088), (45.0, 7, 0.2, 5.267),
    (35.0, 1, 0.3, 0.077), (35.0, 4, 0.3, 0.697), (35.0, 7, 0.3, 1.219),
    (40.0, 1, 0.3, 1.310), (40.0, 4, 0.3, 2.483), (40.0, 7, 0.3, 3.170),
    (45.0, 1, 0.3, 5.060), (45.0, 4, 0.3, 5.706), (45.0, 7, 0.3, 6.244),
    (40.0, 1, 0.4, 1.768), (40.0, 4, 0.4, 3.387), (40.0, 7, 0.4, 4.353),
    (45.0, 1, 0.4, 5.287), (45.0, 4, 0.4, 6.510), (45.0, 7, 0.4, 7.383),
]  # fmt: skip


@pytest.mark.parametrize(("K", "months", "v", "published"), GJ_PUTS)
def test_geske_johnson_table(K: float, months: int, v: float, published: float) -> None:
    g = american(False, 40.0, K, months / 12.0, 0.0488, 0.0, v)
    assert abs(float(g.price) - published) <= 1e-3


# Haug, "The Complete Guide to Option Pricing Formulas" (1998), p. 24: Barone-Adesi-Whaley
# values (S = 100, r = q = 10 %); BAW is an approximation, off by up to about 0.4 % of the
# value against fine trees at 6 months, so within 2e-2 or 0.5 %.
BAW = [
    (True, 90.0, 0.1, 0.15, 0.0206), (True, 100.0, 0.1, 0.15, 1.8771),
    (True, 110.0, 0.5, 0.35, 15.5689), (False, 100.0, 0.5, 0.25, 6.8014),
    (False, 90.0, 0.5, 0.35, 14.6945), (False, 110.0, 0.1, 0.25, 0.4562),
]  # fmt: skip


@pytest.mark.parametrize(("is_call", "S", "T", "v", "published"), BAW)
def test_haug_barone_adesi_whaley_examples(
    is_call: bool, S: float, T: float, v: float, published: float
) -> None:
    price = float(american(is_call, S, 100.0, T, 0.1, 0.1, v).price)
    assert abs(price - published) <= max(2e-2, 5e-3 * published)


rates = st.floats(0.0, 0.10)
row = st.tuples(
    st.booleans(), st.floats(0.5, 1.5), st.floats(1.0 / 365.0, 3.0), rates, rates,
    st.floats(0.05, 1.5),
)  # fmt: skip


@pytest.mark.parametrize("is_call", [True, False])
def test_a_negligible_rate_never_prices_below_european(is_call: bool) -> None:
    """Found by hypothesis: a call with q = 1.4e-18 (r = 0) solved its symmetric put's boundary
    at a rate of 1.4e-18 and came out at intrinsic, 50.0, below its European price 50.00035;
    the put with r = 1.4e-18 (q = 0) is the same case."""
    q, r = (1.4003972257850514e-18, 0.0) if is_call else (0.0, 1.4003972257850514e-18)
    K = 50.0 if is_call else 150.0
    for accuracy in ("fast", "accurate"):
        a = american(is_call, 100.0, K, 0.015625, r, q, 1.5, accuracy=accuracy)
        e = bsm(is_call, 100.0, K, 0.015625, r, q, 1.5)
        assert float(a.price) == pytest.approx(float(e.price), rel=1e-12)
        assert float(a.delta) == pytest.approx(float(e.delta), rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(row)
def test_american_bounds_and_symmetry(x: tuple[bool, float, float, float, float, float]) -> None:
    is_call, m, T, r, q, v = x
    K = 100.0 * m
    a = american(is_call, 100.0, K, T, r, q, v, accuracy="fast")
    e = bsm(is_call, 100.0, K, T, r, q, v)
    tol = 1e-7 * 100.0
    assert float(a.price) >= float(e.price) - tol >= -tol
    assert float(a.price) >= max((100.0 - K) if is_call else (K - 100.0), 0.0) - tol
    # McDonald-Schroder: C(S, K, r, q) = P(K, S, q, r)
    twin = american(not is_call, K, 100.0, T, q, r, v, accuracy="fast")
    assert abs(float(twin.price) - float(a.price)) <= tol
    if is_call and q == 0.0:
        assert abs(float(a.price) - float(e.price)) <= 1e-12 * 100.0


@settings(max_examples=25, deadline=None)
@given(st.floats(1.0, 1.4), st.floats(0.05, 2.0), st.floats(0.1, 0.8), st.floats(0.0, 0.05))
def test_put_premium_grows_with_the_rate(m: float, T: float, v: float, q: float) -> None:
    """At and in the money. Out of the money it need not: a higher rate also moves the
    forward away from the strike (K/S = 0.75, T = 1, σ = 12.5 %, q = 0: the premium peaks
    near r = 5 %)."""
    r = np.array([0.0, 0.02, 0.05, 0.08, 0.10])
    premium = (
        american(False, 100.0, 100.0 * m, T, r, q, v).price
        - bsm(False, 100.0, 100.0 * m, T, r, q, v).price
    )
    assert (premium >= -1e-8).all()
    assert (np.diff(premium) >= -1e-8).all()


FD_ROWS = [
    (False, 100.0, 105.0, 0.75, 0.06, 0.02, 0.3),
    (True, 100.0, 95.0, 1.5, 0.02, 0.06, 0.45),
    (False, 100.0, 90.0, 0.1, 0.08, 0.0, 0.9),
]


@pytest.mark.parametrize("row", FD_ROWS)
def test_greeks_against_finite_differences_of_quantlib(
    row: tuple[bool, float, float, float, float, float, float],
) -> None:
    """Every Greek against central differences of QuantLib's high-precision price (delta,
    gamma, vega, rho, volga) or of our own price (theta, vanna, charm need a bump in T or two
    bumps: QuantLib takes whole days, and its cost per price makes two-way bumps slow)."""
    is_call, S, K, T, r, q, v = row
    days = round(T * 365)
    T = days / 365.0
    g = american(is_call, S, K, T, r, q, v)

    def qlp(**kw: float) -> float:
        a = {"S": S, "K": K, "r": r, "q": q, "v": v} | kw
        return _ql_price(is_call, a["S"], a["K"], days, a["r"], a["q"], a["v"])

    h = 1e-3 * S
    p0, up, dn = qlp(), qlp(S=S + h), qlp(S=S - h)
    assert float(g.delta) == pytest.approx((up - dn) / (2 * h), rel=1e-5, abs=1e-7)
    h = 5e-3 * S
    up, dn = qlp(S=S + h), qlp(S=S - h)
    assert float(g.gamma) == pytest.approx((up - 2 * p0 + dn) / h**2, rel=2e-4, abs=1e-7)
    hv = 1e-3
    up, dn = qlp(v=v + hv), qlp(v=v - hv)
    assert float(g.vega) == pytest.approx((up - dn) / (2 * hv), rel=1e-5)
    assert float(g.volga) == pytest.approx((up - 2 * p0 + dn) / hv**2, rel=2e-3, abs=1e-3)
    hr = 1e-3
    assert float(g.rho) == pytest.approx((qlp(r=r + hr) - qlp(r=r - hr)) / (2 * hr), rel=1e-5)

    def ours(**kw: float) -> Any:
        a = {"S": S, "T": T, "v": v} | kw
        return american(is_call, a["S"], K, a["T"], r, q, a["v"])

    ht = 1e-4
    theta = -(float(ours(T=T + ht).price) - float(ours(T=T - ht).price)) / (2 * ht)
    assert float(g.theta) == pytest.approx(theta, rel=1e-5, abs=1e-6)
    vanna = (float(ours(v=v + hv).delta) - float(ours(v=v - hv).delta)) / (2 * hv)
    assert float(g.vanna) == pytest.approx(vanna, rel=1e-4, abs=1e-7)
    charm = -(float(ours(T=T + ht).delta) - float(ours(T=T - ht).delta)) / (2 * ht)
    assert float(g.charm) == pytest.approx(charm, rel=1e-4, abs=1e-6)


def test_exercise_region_and_never_early() -> None:
    deep = american(False, 50.0, 100.0, 1.0, 0.08, 0.0, 0.2)
    assert float(deep.price) == 50.0
    assert float(deep.delta) == -1.0
    assert float(deep.vega) == float(deep.theta) == float(deep.gamma) == 0.0
    # a put with r <= 0 <= q and a call with q <= 0 are European
    for args in (
        (False, 100.0, 110.0, 1.0, -0.01, 0.02, 0.3),
        (True, 100.0, 90.0, 1.0, 0.05, 0.0, 0.3),
    ):
        a, e = american(*args), bsm(*args)
        assert float(a.price) == pytest.approx(float(e.price), rel=1e-14)
        assert float(a.delta) == pytest.approx(float(e.delta), rel=1e-12)


def test_double_boundary_case_is_priced_on_the_tree() -> None:
    """q < r < 0 for a put: the tree with its European control variate, against QuantLib's
    finite-difference engine within the tree's accuracy."""
    price = float(american(False, 100.0, 100.0, 1.0, -0.01, -0.03, 0.2).price)
    euro = float(bsm(False, 100.0, 100.0, 1.0, -0.01, -0.03, 0.2).price)
    assert price > euro
    assert price == pytest.approx(euro, rel=0.05)


def test_futures_are_spot_with_q_equal_r_and_rho_holds_f() -> None:
    f = american_black76(True, 100.0, 90.0, 1.0, 0.05, 0.3)
    s = american(True, 100.0, 90.0, 1.0, 0.05, 0.05, 0.3)
    assert float(f.price) == float(s.price)
    h = 1e-4
    up = float(american(True, 100.0, 90.0, 1.0, 0.05 + h, 0.05 + h, 0.3).price)
    dn = float(american(True, 100.0, 90.0, 1.0, 0.05 - h, 0.05 - h, 0.3).price)
    assert float(f.rho) == pytest.approx((up - dn) / (2 * h), rel=1e-8)


def test_escrowed_dividends() -> None:
    divs = Dividends(times_years=np.array([0.25, 0.75, 2.0]), amounts=np.array([1.0, 1.5, 9.0]))
    r = 0.05
    pv = 1.0 * math.exp(-r * 0.25) + 1.5 * math.exp(-r * 0.75)  # the one after expiry is out
    g = american(False, 100.0, 100.0, 1.0, r, 0.0, 0.25, dividends=divs)
    plain = american(False, 100.0 - pv, 100.0, 1.0, r, 0.0, 0.25)
    assert float(g.price) == float(plain.price)
    h = 1e-4
    up = american(False, 100.0, 100.0, 1.0, r + h, 0.0, 0.25, dividends=divs).price
    dn = american(False, 100.0, 100.0, 1.0, r - h, 0.0, 0.25, dividends=divs).price
    assert float(g.rho) == pytest.approx(float(up - dn) / (2 * h), rel=1e-6)


@settings(max_examples=30, deadline=None)
@given(row)
def test_implied_vol_round_trip(x: tuple[bool, float, float, float, float, float]) -> None:
    is_call, m, T, r, q, v = x
    K = 100.0 * m
    price = american(is_call, 100.0, K, T, r, q, v, accuracy="fast").price
    iv = american_implied_vol(price, is_call, 100.0, K, T, r, q)
    intrinsic = max((100.0 - K) if is_call else (K - 100.0), 0.0)
    if float(price) - intrinsic <= 1e-9 * 100.0:  # no time value left to invert
        return
    vega = float(american(is_call, 100.0, K, T, r, q, v, accuracy="fast").vega)
    if vega < 1e-6:
        return
    assert int(iv.status) == Status.OK
    assert float(iv.sigma) == pytest.approx(v, rel=1e-6, abs=1e-10 / vega)


def test_implied_vol_never_hangs_on_hostile_inputs() -> None:
    price = np.array([np.nan, 0.0, 1e300, -1.0, 5.0, 10.0, 1e-300, 9.0, np.inf])
    iv = american_implied_vol(price, False, 100.0, 110.0, 1.0, 0.05, 0.01)
    assert iv.status.tolist() == [
        Status.BAD_INPUT, Status.PRICE_BELOW_INTRINSIC, Status.PRICE_ABOVE_MAX,
        Status.PRICE_BELOW_INTRINSIC, Status.PRICE_BELOW_INTRINSIC,
        Status.PRICE_BELOW_INTRINSIC, Status.PRICE_BELOW_INTRINSIC,
        Status.PRICE_BELOW_INTRINSIC, Status.BAD_INPUT,
    ]  # fmt: skip
    assert np.isnan(iv.sigma).all()
    bad = american_implied_vol(
        5.0, True, [np.nan, 0.0, 1e300, 100.0], 100.0, [1.0, 1.0, 1.0, 0.0], 0.05
    )
    assert bad.status.tolist() == [
        Status.BAD_INPUT,
        Status.BAD_INPUT,
        Status.PRICE_BELOW_INTRINSIC,
        Status.EXPIRED,
    ]


# ------------------------------------------------ low vol, high rate, long expiry (issue 18)


def _ql_tight(is_call: bool, S: float, K: float, days: int, r: float, q: float, v: float) -> float:
    """QuantLib's QdFp engine tighter than its high-precision scheme (20 steps, 60 nodes,
    tanh-sinh to 1e-12): on low-vol rows the high-precision one is off by ~1e-6 relative."""
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(ql.SimpleQuote(S)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, q, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, r, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), v, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Call if is_call else ql.Option.Put, K),
        ql.AmericanExercise(today, today + days),
    )
    option.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpTanhSinhIterationScheme(20, 60, 1e-12))
    )
    return float(option.NPV())


SCHEMES = [("reference", ak.REFERENCE, 1e-9, 1e-11), ("accurate", ak.ACCURATE, 1e-8, 1e-10),
           ("fast", ak.FAST, 1e-5, 1e-7)]  # fmt: skip


@pytest.mark.parametrize(("name", "scheme", "rel", "per_spot"), SCHEMES)
def test_low_vol_high_rate_put_is_not_intrinsic(
    name: str, scheme: ak.Scheme, rel: float, per_spot: float
) -> None:
    """The row every scheme mispriced while the boundary came from the smooth-pasting
    equation (it diverges there): REFERENCE gave intrinsic 1.86068, ACCURATE 2.6947, FAST
    1.9582; QuantLib (tight) 1.9133914 and a fine tree agree. QuantLib's own error here is
    ~5e-10 of spot, added to each tolerance."""
    row = (False, 100.0, 101.86068, 818, 0.08388, 0.01064, 0.05939)
    quantlib = _ql_tight(*row)
    is_call, S, K, days, r, q, v = row
    ours = _price(is_call, S, K, days / 365.0, r, q, v, scheme)
    assert abs(ours - quantlib) <= max(rel * quantlib, per_spot * S) + 1e-9 * S, name


def _low_vol_grid(n: int, seed: int) -> Grid:
    """Low vol (5..15 %), long expiry (0.5..3 years), the rate that makes early exercise
    of a put worth most (r 4..10 %, q 0..3 %; a call's r and q swapped), K/S 0.7..1.3."""
    rng = np.random.default_rng(seed)
    is_call = rng.random(n) < 0.5
    S = np.full(n, 100.0)
    K = S * np.exp(rng.uniform(math.log(0.7), math.log(1.3), n))
    T = np.exp(rng.uniform(math.log(0.5), math.log(3.0), n))
    v = rng.uniform(0.05, 0.15, n)
    high = rng.uniform(0.04, 0.10, n)
    low = rng.uniform(0.0, 0.03, n)
    return is_call, S, K, T, np.where(is_call, low, high), np.where(is_call, high, low), v


def test_reference_agrees_with_quantlib_at_low_vol_and_high_rate() -> None:
    is_call, S, K, T, r, q, v = _low_vol_grid(40, 18)
    days = np.round(T * 365.0)
    cols = (is_call, S, K, days / 365.0, r, q, v)
    ref = _prices(cols, ak.REFERENCE)
    for i in range(ref.shape[0]):
        quantlib = _ql_tight(bool(is_call[i]), S[i], K[i], int(days[i]), r[i], q[i], v[i])
        assert abs(ref[i] - quantlib) <= max(3e-8 * quantlib, 1e-9 * S[i]), i


@pytest.mark.parametrize(
    ("scheme", "rel", "per_spot", "yardstick", "rows"),
    [(ak.ACCURATE, 1e-8, 1e-10, ak.REFERENCE, 300), (ak.FAST, 1e-5, 1e-7, ak.ACCURATE, 3000)],
)
def test_schemes_meet_their_accuracy_at_low_vol_and_high_rate(
    scheme: ak.Scheme, rel: float, per_spot: float, yardstick: ak.Scheme, rows: int
) -> None:
    """Rows of the regime where the smooth-pasting iteration diverged (about 1 row in 50
    here), each scheme within its target of a scheme 1,000 times tighter (REFERENCE costs
    ~10 ms a price: the fast scheme is measured against the accurate one)."""
    cols = _low_vol_grid(rows, 1806)
    ref = _prices(cols, yardstick)
    S = cols[1]
    err = np.abs(_prices(cols, scheme) - ref)
    bad = ~((err <= rel * ref) | (err <= per_spot * S))
    assert not bad.any(), (int(bad.sum()), float(err.max()))


# ------------------------------------------ the fast scheme's tiers and the European bound


def _put_view(cols: Grid) -> tuple[F64, F64, F64, F64, F64, F64]:
    """The put that prices each row (a call's symmetric put): spot, strike, T, r, q, σ."""
    is_call, S, K, T, r, q, v = cols
    return (np.where(is_call, K, S), np.where(is_call, S, K), T, np.where(is_call, q, r),
            np.where(is_call, r, q), v)  # fmt: skip


def test_premium_bound_holds_against_the_reference() -> None:
    """_premium_bound, which lets FAST price a row European, is an upper bound of the
    early-exercise premium (REFERENCE less European) wherever it is finite, and tight enough
    to matter: it is below 1e-6 of spot on some rows whose premium is not 0."""
    cols = _random_grid(400, 31)
    ps, pk, T, pr, pq, v = _put_view(cols)
    bound = np.array([ak._premium_bound(*x) for x in zip(ps, pk, T, pr, pq, v, strict=True)])
    keep = np.isfinite(bound) & (pr > 0.0)
    sub: Grid = tuple(c[keep] for c in cols)
    premium = _prices(sub, ak.REFERENCE) - bsm(*sub).price
    assert (premium <= bound[keep] + 1e-12 * sub[1]).all()
    assert ((bound[keep] < 1e-6 * sub[1]) & (premium > 1e-12 * sub[1])).sum() >= 5
    # the maximum over t of Φ(-d-(t, S/X)) in closed form, against a dense grid of t; the
    # first rows have it inside (0, T) (r - q > σ²/2 and S just above X)
    rows = [(100.0, 97.0, 2.0, 0.10, 0.0, 0.1), (100.0, 90.0, 3.0, 0.08, 0.01, 0.2),
            (100.0, 99.0, 0.5, 0.05, 0.08, 0.05)]  # fmt: skip
    rows += list(zip(ps[keep], pk[keep], T[keep], pr[keep], pq[keep], v[keep], strict=True))
    for x in rows:
        s, k, t, r, q, sig = x
        xmax = k * min(1.0, r / q) if q > 0.0 else k
        u = np.linspace(t * 1e-6, t, 20001)
        d_minus = (np.log(s / xmax) + (r - q - 0.5 * sig * sig) * u) / (sig * np.sqrt(u))
        dense = -k * math.expm1(-r * t) * float(ndtr(-d_minus).max())
        assert dense <= ak._premium_bound(*x) * (1.0 + 1e-9), x
        assert ak._premium_bound(*x) <= dense * (1.0 + 1e-3) + 1e-300, x  # underflow


def test_fast_tiers_each_meet_the_target() -> None:
    """Every tier of FAST (and the European bound) is taken by rows of grid() and
    low_vol_grid(), and each is within 1e-5 relative or 1e-7 of spot of ACCURATE."""
    cols: Grid = tuple(  # type: ignore[assignment]  # seven columns
        np.concatenate(pair)
        for pair in zip(_random_grid(1500, 41), _low_vol_grid(500, 42), strict=True)
    )
    euro = bsm(*cols).price
    ps, pk, T, pr, pq, v = _put_view(cols)
    tb = [ak._boundary_years(t, ak.FAST.log_ratio) for t in T]
    rows = zip(ps, pk, T, tb, pr, pq, v, cols[1], euro, strict=True)
    tier = np.array([ak._pick_tier(ak.FAST, *x) for x in rows])
    S = cols[1]
    ref = _prices(cols, ak.ACCURATE)
    err = np.abs(_prices(cols, ak.FAST) - ref)
    ok = (err <= 1e-5 * ref) | (err <= 1e-7 * S)
    for t in range(ak.N_TIERS + 1):
        assert (tier == t).sum() >= 20, t
        assert ok[tier == t].all(), (t, float(err[tier == t].max()))


def test_fast_greeks_hold_the_tier_across_bumps() -> None:
    """At r T = 0.002, the edge of FAST's first tier, the rate bumps of rho would fall in two
    tiers (their prices differ by ~1e-6 relative); the bumps take the unbumped row's tier,
    so rho and vega stay within 3e-4 of the accurate scheme's."""
    for r in (0.002, 0.0021, 0.0019):
        fast = american(False, 100.0, 100.0, 1.0, r, 0.0, 0.2, accuracy="fast")
        accurate = american(False, 100.0, 100.0, 1.0, r, 0.0, 0.2, accuracy="accurate")
        assert float(fast.rho) == pytest.approx(float(accurate.rho), rel=3e-4)
        assert float(fast.vega) == pytest.approx(float(accurate.vega), rel=3e-4)


@pytest.mark.parametrize("tables", [False, True])
def test_implied_vol_inverts_the_fast_price_to_1e_9(tables: bool) -> None:
    """The solver stops on a secant step below 1e-10 of σ without pricing its end: the vol it
    returns still reproduces the price's own σ to 1e-9 relative where vega is not tiny; with
    ``tables``, every iterate's boundary interpolated from them (the price's too)."""
    cols = _random_grid(300, 53)
    is_call, S, K, T, r, q, v = cols
    price = american(is_call, S, K, T, r, q, v, accuracy="fast", tables=tables).price
    iv = american_implied_vol(price, is_call, S, K, T, r, q, accuracy="fast", tables=tables)
    vega = american(is_call, S, K, T, r, q, v, accuracy="fast").vega
    intrinsic = np.maximum(np.where(is_call, S - K, K - S), 0.0)
    keep = (vega > 1e-3 * S) & (price - intrinsic > 1e-6 * S)
    assert keep.sum() >= 150
    assert (iv.status[keep] == Status.OK).all()
    rel_err = np.abs(iv.sigma[keep] - v[keep]) / v[keep]
    assert rel_err.max() <= 1e-9, float(rel_err.max())


@pytest.mark.parametrize("black", [False, True])
@pytest.mark.parametrize("tabled", [False, True])
def test_the_threaded_kernel_gives_the_single_thread_figures(black: bool, tabled: bool) -> None:
    """american_parallel_kernel (the scheme handed to the thread pool in parts) computes
    exactly what american_kernel does, row for row, whatever row a thread takes; ``tabled``:
    each thread on its own row of boundary tables (a chain's rows share them), against one
    thread on one row."""
    rng = np.random.default_rng(7)
    n = 400
    is_call = rng.random(n) < 0.5
    s, k = np.full(n, 100.0), rng.uniform(60.0, 140.0, n)
    t = rng.choice([0.02, 0.1, 0.5, 2.0], n)  # a chain's expiries and rates
    r, q = np.full(n, 0.05), np.full(n, 0.02)
    v = rng.uniform(0.08, 0.8, n)
    outs = [np.zeros((len(GREEK_FIELDS), n)) for _ in range(2)]
    statuses = [np.zeros(n, np.int8) for _ in range(2)]
    threads = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # untyped
    tables = [ak.boundary_tables(ak.FAST, m) if tabled else ak.NO_TABLES for m in (1, threads)]
    ak.american_kernel(is_call, s, k, t, r, q, v, black, ak.FAST, outs[0], statuses[0], tables[0])
    ak.american_parallel_kernel(
        is_call, s, k, t, r, q, v, black, ak.FAST, outs[1], statuses[1], tables[1]
    )
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(statuses[0], statuses[1])
    assert np.isfinite(outs[0]).all()
    if tabled:  # every thread's row used (numba's thread ids index them)
        width = ak._table_width(tables[1][0])
        held = tables[1][:, ak.TABLE_SETS :].reshape(threads, -1, width)[:, :, 5] == 1.0
        assert (held.sum(axis=1) > 0).sum() == min(threads, numba.get_num_threads())


def test_warm_solves_give_the_cold_prices() -> None:
    """A bumped price and the next implied-vol iterate start QD+ at each node from the last
    solve's root there (_put_boundary, ``warm``), whatever that solve was (another row, another
    tier, or none with as many nodes): each gives the cold solve's price to 1e-11."""
    n_max = max(t.xi.shape[0] for t in ak.FAST.tiers)
    size = max(5 * t.xi.shape[0] + (t.xi.shape[0] - 1) * t.fp_w.shape[0] * 6 for t in ak.FAST.tiers)
    solver = ak.Solver(ak.FAST, np.empty(n_max), np.full(size, np.nan), np.empty(0))
    is_call, S, K, T, r, q, v = _random_grid(300, 61)

    def solve(i: int, vol: float, warm: bool) -> tuple[float, bool]:
        res = ak._american_full(
            bool(is_call[i]), S[i], K[i], T[i], r[i], q[i], vol, solver, warm, (-1, -1, 0),
            np.empty(0),
        )  # fmt: skip
        return res[0], res[5]

    solved = 0
    for i in range(1, S.shape[0]):
        for vol, before in ((v[i], i - 1), (v[i] * 1.001, i), (v[i] * 1.3, i)):
            solve(before, v[before], False)  # the last solve: the row before, or this row
            warm, was_solved = solve(i, vol, True)
            cold = solve(i, vol, False)[0]
            assert abs(warm - cold) <= 1e-11 * cold + 1e-13 * S[i], (i, vol, warm, cold)
            solved += was_solved
    assert solved >= 400, solved


# ------------------------------------------------- the memo of a row's boundaries (portfolio)


def _row_greeks(row: tuple[Any, ...], memo: F64, tables: F64 | None = None) -> F64:
    """Price and Greeks of one row as the portfolio prices it (engine.kernels' American row,
    fast scheme), with ``memo`` (empty: none) and boundary ``tables`` (a thread's; None:
    none)."""
    is_call, s, k, t, r, q, v, black = row
    out = np.zeros((len(GREEK_FIELDS), 1))
    no_tables = np.empty(0)
    code = kernels.AMERICAN_FAST if tables is None else kernels.AMERICAN_TABLED
    st = kernels._american_greeks(
        code, is_call, s, k, t, r, r if black else q, v, black, out, memo,
        no_tables if tables is None else tables,
    )  # fmt: skip
    assert st == Status.OK
    return out[:, 0]


def _same_cell(t: float, factor: float) -> float | None:
    """``t * factor`` when its boundary's T (T_b) is ``t``'s, else None."""
    log_ratio = ak.FAST.log_ratio
    moved = t * factor
    return (
        moved if ak._boundary_years(moved, log_ratio) == ak._boundary_years(t, log_ratio) else None
    )


def _new_tables() -> F64:
    tables: F64 = ak.boundary_tables(ak.FAST, 1)[0]
    return tables


@pytest.mark.parametrize("tabled", [False, True])
@pytest.mark.parametrize("black", [False, True])
def test_a_rows_memo_gives_the_figures_of_a_fresh_solve(black: bool, tabled: bool) -> None:
    """Figures priced with a row's memo of boundaries equal, to the bit, those priced without
    one, whatever the memo held: the same inputs, the spot moved, the clock moved within T_b's
    cell (boundaries read back), and the vol or rate moved (boundaries solved again); a row
    first in the exercise region (no bumps solved) and then out of it. The memo is read: a
    boundary spoilt in it changes the price. ``tabled``: the boundaries come from tables (the
    portfolio's), kept across the rows, against new tables at every price."""
    is_call, S, K, T, r, q, v = _random_grid(200, 71)
    read = 0
    kept = _new_tables() if tabled else None

    def fresh(row: tuple[Any, ...]) -> F64:
        return _row_greeks(row, np.empty(0), _new_tables() if tabled else None)

    for i in range(S.shape[0]):
        memo = np.full(ak.memo_width(ak.FAST), np.nan)
        base = (bool(is_call[i]), S[i], K[i], T[i], r[i], q[i], v[i], black)
        later = _same_cell(T[i], 0.999)
        moves = [base, (*base[:1], S[i] * 1.01, *base[2:])]
        if later is not None:
            moves.append((*base[:1], S[i] * 0.99, K[i], later, *base[4:]))
        moves += [(*base[:6], v[i] * 1.1, black), (*base[:4], r[i] + 0.01, *base[5:])]
        # deep in the money (exercise region where there is one), then out of the money
        deep = S[i] * (0.3 if is_call[i] else 3.0)
        moves += [(*base[:2], deep, *base[3:]), (*base[:2], S[i] * (1.5 if is_call[i] else 0.6),
                                                 *base[3:])]  # fmt: skip
        for row in moves:
            with_memo = _row_greeks(row, memo, kept)
            np.testing.assert_array_equal(with_memo, fresh(row), str(row))
        if memo[_slot(0)] == 1.0:  # a boundary is held: spoil it, and the price moves
            memo[_slot(0) + 4 : _slot(1)] += 0.5
            read += _row_greeks(moves[-1], memo, kept)[0] != fresh(moves[-1])[0]
    assert read >= 50, read


def _chain(n_expiries: int, seed: int) -> list[tuple[Any, ...]]:
    """Rows as a book holds them: per expiry and rates (of grid() and low_vol_grid()), calls
    and puts over strikes 0.7..1.3 of spot, on a smile (several rows share each table)."""
    rows = []
    rng = np.random.default_rng(seed)
    grids = (_random_grid(n_expiries, seed), _low_vol_grid(n_expiries // 4, seed))
    for _, _, _, T, r, q, v in grids:
        for j, (t, vi) in enumerate(zip(T, v, strict=True)):
            ri, qi = r[j - j % 4], q[j - j % 4]  # an underlying's rates, for 4 expiries
            for m in np.linspace(0.7, 1.3, 7):
                for is_call in (True, False):
                    smile = vi * (1.0 + 0.5 * (m - 1.0) ** 2 + rng.uniform(-0.02, 0.02))
                    rows.append((is_call, 100.0, 100.0 * m, t, ri, qi, smile, False))
    return rows


def _held_keys(tables: F64) -> F64:
    """The keys (T_b, r, q, tier, panel) of the tables written in a thread's ``tables``."""
    width = ak._table_width(tables)
    held = tables[ak.TABLE_SETS :].reshape(-1, width)
    return held[held[:, 5] == 1.0, :5].copy()


def _foreign(tables: F64, keys: F64, fields: tuple[int, ...]) -> None:
    """Fill ``tables`` with written tables of junk boundaries, in the sets of ``keys``, keyed
    as each of them but for one of ``fields`` (so that a lookup must check every field)."""
    for key in keys:
        for f in fields:
            other = key.copy()
            other[f] = other[f] + 1.0 if f >= 3 else other[f] * 1.001
            table, held = ak._table_at(tables, key[0], key[1], key[2], int(key[3]), int(key[4]))
            assert not held
            table[:5] = other
            table[5:] = 0.25
            table[5] = 1.0


@pytest.mark.parametrize("fields", [(0, 1, 2, 3), (4,)])
def test_tabled_boundaries_are_a_function_of_the_inputs(fields: tuple[int, ...]) -> None:
    """A row's figures from the tables equal, to the bit, those from new tables, whatever the
    tables held before: the rows of a chain priced in a shuffled order on tables that first
    hold, in each of the chain's sets, tables keyed as the chain's but for one field (T_b, r,
    q, tier or panel). The tables are read: a boundary spoilt in them changes the prices."""
    rows = _chain(12, 3)
    primed = _new_tables()
    for row in rows:
        _row_greeks(row, np.empty(0), primed)
    keys = _held_keys(primed)
    assert keys.shape[0] >= 40, keys.shape
    kept = _new_tables()
    _foreign(kept, keys, fields)
    for i in np.random.default_rng(4).permutation(len(rows)):
        np.testing.assert_array_equal(
            _row_greeks(rows[i], np.empty(0), kept), _row_greeks(rows[i], np.empty(0),
                                                                 _new_tables()), str(rows[i]),
        )  # fmt: skip
    width = ak._table_width(kept)
    kept[ak.TABLE_SETS :].reshape(-1, width)[:, 7:] *= 1.01  # every boundary spoilt
    moved = [
        _row_greeks(row, np.empty(0), kept)[0] != _row_greeks(row, np.empty(0), _new_tables())[0]
        for row in rows
    ]
    assert sum(moved) >= 0.5 * len(rows), (sum(moved), len(rows))


def test_tabled_prices_meet_the_fast_target() -> None:
    """The fast scheme's prices from the tables (boundaries interpolated in vol) are within
    1e-5 relative or 1e-7 of spot of ACCURATE on grid() and low_vol_grid() rows, every tier,
    and within 1e-7 relative or 1e-9 of spot of the price whose boundary is solved at the
    row's own vol: the interpolation costs at most 1 % of the target."""
    cols: Grid = tuple(  # type: ignore[assignment]  # seven columns
        np.concatenate(pair)
        for pair in zip(_random_grid(600, 43), _low_vol_grid(200, 44), strict=True)
    )
    is_call, S, K, T, r, q, v = cols
    tables = _new_tables()
    tabled = np.array([
        _row_greeks((bool(is_call[i]), S[i], K[i], T[i], r[i], q[i], v[i], False), np.empty(0),
                    tables)[0]
        for i in range(S.shape[0])
    ])  # fmt: skip
    ref = _prices(cols, ak.ACCURATE)
    err = np.abs(tabled - ref)
    assert ((err <= 1e-5 * ref) | (err <= 1e-7 * S)).all(), float(err.max())
    solved = _prices(cols, ak.FAST)
    gap = np.abs(tabled - solved)
    assert ((gap <= 1e-7 * solved) | (gap <= 1e-9 * S)).all(), float((gap / solved).max())
    assert (gap > 0.0).sum() >= 100  # interpolated, not solved at the row's vol


@pytest.mark.parametrize(
    ("scheme", "tabled"),
    [(ak.FAST, False), (ak.FAST, True), (ak.ACCURATE, False)],
    ids=["fast", "fast-tabled", "accurate"],
)
def test_the_price_alone_is_the_greeks_kernels_price_to_the_bit(
    scheme: ak.Scheme, tabled: bool
) -> None:
    """The price kernel leaves out the premium's and the European price's derivatives: its
    prices are the Greeks kernel's, to the bit (every tier, the European bound, calls and
    puts, the exercise region)."""
    cols: Grid = tuple(  # type: ignore[assignment]  # seven columns
        np.concatenate(pair)
        for pair in zip(_random_grid(300, 51), _low_vol_grid(100, 52), strict=True)
    )
    n = cols[1].shape[0]
    out = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    ak.american_price_kernel(
        *cols, scheme, out, status, ak.boundary_tables(scheme, 1) if tabled else ak.NO_TABLES
    )
    block = np.empty((9, n))
    ak.american_kernel(
        *cols,
        False,
        scheme,
        block,
        status,
        ak.boundary_tables(scheme, 1) if tabled else ak.NO_TABLES,
    )
    assert (status == Status.OK).all()
    np.testing.assert_array_equal(out, block[0])


def _slot(slot: int) -> int:
    return ak._MEMO_KEY + slot * ((ak.memo_width(ak.FAST) - ak._MEMO_KEY) // ak.MEMO_SLOTS)


def test_the_fast_scheme_solves_over_a_grid_of_t() -> None:
    """T_b is the first power of 1.01 at or above T: the boundary is the same for every T of
    a cell (a function of the inputs alone), and the accurate schemes solve over T itself."""
    assert math.exp(ak.FAST.log_ratio) == pytest.approx(1.01, rel=1e-15)
    for t in (1.0 / 365.0 / 24.0, 1.0 / 365.0, 0.1, 1.0, 1.01, 2.9):
        tb = ak._boundary_years(t, ak.FAST.log_ratio)
        assert t <= tb < 1.01 * t * (1.0 + 1e-12)
        assert math.log(tb) / math.log(1.01) == pytest.approx(round(math.log(tb) / math.log(1.01)),
                                                               abs=1e-9)  # fmt: skip
        assert ak._boundary_years(t, ak.ACCURATE.log_ratio) == t
