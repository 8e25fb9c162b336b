"""Tests for engine.greeks: prices and Greeks of BSM, Black-76 and inverse (coin-settled) options.

The evidence, from strongest to cheapest:

1. ``tests.oracle``, an independent 50-digit mpmath reference, on a fixed grid and on
   hypothesis-drawn inputs across the whole domain we price;
2. QuantLib's AnalyticEuropeanEngine, a second implementation, where its own numerics are exact
   enough to judge ours;
3. hypothesis properties that any correct pricer has: parity, no-arbitrage bounds, call/put
   symmetry, homogeneity in (S, K), and analytic Greeks against finite differences of the
   kernel's own outputs.

Then the per-row domain rules (statuses) and how the wrappers count them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
import QuantLib as ql  # noqa: N813  # the name QuantLib's own docs and examples use
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

from engine import greeks, kernels
from engine.greeks import Greeks
from engine.status import Status, count_statuses
from tests import oracle

F64 = npt.NDArray[np.float64]
Model = Literal["bsm", "black76"]
MODELS: tuple[Model, ...] = ("bsm", "black76")

EPS = float(np.finfo(np.float64).eps)
NAN = math.nan
INF = math.inf

# ------------------------------------------------------------------------------------ domain
# The inputs a desk sees, and the box every accuracy promise below is made on.
HOUR = 1.0 / 8760.0  # one hour in ACT/365 years: the shortest expiry we price
S_MIN, S_MAX = 1e-2, 1e6
MONEYNESS_MIN, MONEYNESS_MAX = 0.2, 5.0  # K / S
T_MIN, T_MAX = HOUR, 10.0
SIGMA_MIN, SIGMA_MAX = 0.01, 3.0
RATE_MIN, RATE_MAX = -0.05, 0.2

# ------------------------------------------------------------------------------- tolerances
# Against the 50-digit oracle a figure passes when |got - ref| <= RTOL |ref| + ATOL, both sides
# first made dimensionless "per unit of spot" (see _per_spot): figures in currency (price, vega,
# theta, rho, volga) are divided by S (F for Black-76), gamma (currency per underlying²) is
# multiplied by S, and delta (unitless), vanna (per 1.00 vol) and charm (per year) are taken as
# they are. So ATOL = 1e-13 means "1e-13 of spot" for a price and "1e-13" for a delta.
RTOL_FIRST, ATOL_FIRST = 1e-11, 1e-13  # price, delta, gamma, vega, theta, rho: closed forms
# vanna, volga, charm: the oracle differentiates numerically (at 50 digits, so it is still far
# more precise than this); the kernel's closed forms lose a little more to cancellation.
RTOL_SECOND, ATOL_SECOND = 1e-9, 1e-11
# QuantLib computes its own discount factors and normal CDF: about 1e-10, same scaling.
RTOL_QUANTLIB, ATOL_QUANTLIB = 1e-10, 1e-13

FIRST_ORDER = ("price", "delta", "gamma", "vega", "theta", "rho")
SECOND_ORDER = ("vanna", "volga", "charm")
FIELDS = FIRST_ORDER + SECOND_ORDER
_IN_CURRENCY = frozenset({"price", "vega", "theta", "rho", "volga"})

ORACLE_SETTINGS = settings(max_examples=200, deadline=None)  # mpmath: ~20 ms per row
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None)


class Row(NamedTuple):
    """One option. For Black-76 and inverse options ``S`` is the forward F and ``q`` equals ``r``
    (Black-76 is BSM on F with q = r, apart from rho)."""

    is_call: bool
    S: float
    K: float
    T: float
    r: float
    q: float
    sigma: float


class Columns(NamedTuple):
    """Rows as arrays, the shape the wrappers take."""

    is_call: npt.NDArray[np.bool_]
    S: F64
    K: F64
    T: F64
    r: F64
    q: F64
    sigma: F64


def _columns(rows: Sequence[Row]) -> Columns:
    is_call, *numbers = zip(*rows, strict=True)
    return Columns(np.array(is_call, dtype=np.bool_), *(np.array(x, np.float64) for x in numbers))


def _price(model: Model, c: Columns) -> Greeks:
    if model == "bsm":
        return greeks.bsm(c.is_call, c.S, c.K, c.T, c.r, c.q, c.sigma)
    return greeks.black76(c.is_call, c.S, c.K, c.T, c.r, c.sigma)


def _reference(model: Model, row: Row) -> oracle.RefGreeks:
    if model == "bsm":
        return oracle.ref_bsm(*row)
    return oracle.ref_black76(row.is_call, row.S, row.K, row.T, row.r, row.sigma)


def _per_spot(name: str, value: npt.ArrayLike, S: F64) -> F64:
    """A figure made dimensionless per unit of spot (see the tolerance note at the top)."""
    arr = np.asarray(value, dtype=np.float64)
    if name in _IN_CURRENCY:
        return arr / S
    if name == "gamma":
        return arr * S
    return arr


def _assert_matches_reference(
    got: Greeks, refs: Sequence[oracle.RefGreeks], S: F64, *, label: str = ""
) -> None:
    for name in FIELDS:
        rtol, atol = (RTOL_FIRST, ATOL_FIRST) if name in FIRST_ORDER else (RTOL_SECOND, ATOL_SECOND)
        want = np.array([getattr(ref, name) for ref in refs])
        assert_allclose(
            _per_spot(name, getattr(got, name).ravel(), S),
            _per_spot(name, want, S),
            rtol=rtol,
            atol=atol,
            err_msg=f"{label} {name}",
        )


def _finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def rows(draw: st.DrawFn, model: Model = "bsm") -> Row:
    """An option anywhere in the domain box; K is clamped into [S_MIN, S_MAX], which only moves
    K/S towards 1."""
    S = draw(_finite(S_MIN, S_MAX))
    K = min(max(S * draw(_finite(MONEYNESS_MIN, MONEYNESS_MAX)), S_MIN), S_MAX)
    T = draw(_finite(T_MIN, T_MAX))
    r = draw(_finite(RATE_MIN, RATE_MAX))
    q = draw(_finite(RATE_MIN, RATE_MAX)) if model == "bsm" else r
    sigma = draw(_finite(SIGMA_MIN, SIGMA_MAX))
    return Row(draw(st.booleans()), S, K, T, r, q, sigma)


def _random_columns(model: Model, n: int, seed: int) -> Columns:
    """n rows drawn log-uniformly over the domain box (uniformly for rates), reproducibly."""
    rng = np.random.default_rng(seed)

    def log_uniform(lo: float, hi: float) -> F64:
        return np.exp(rng.uniform(math.log(lo), math.log(hi), n))

    S = log_uniform(S_MIN, S_MAX)
    K = np.clip(S * log_uniform(MONEYNESS_MIN, MONEYNESS_MAX), S_MIN, S_MAX)
    T = log_uniform(T_MIN, T_MAX)
    sigma = log_uniform(SIGMA_MIN, SIGMA_MAX)
    r = rng.uniform(RATE_MIN, RATE_MAX, n)
    q = rng.uniform(RATE_MIN, RATE_MAX, n) if model == "bsm" else r
    return Columns(rng.random(n) < 0.5, S, K, T, r, q, sigma)


# ---------------------------------------------------------------- 1. the 50-digit reference


def _grid(model: Model) -> list[Row]:
    moneyness = (0.25, 0.9, 1.0, 1.1, 4.0)
    expiries = (HOUR, 1.0 / 365.0, 0.25, 10.0)
    vols = (0.01, 0.3, 2.5)
    rates = ((0.05, 0.02), (-0.02, 0.1)) if model == "bsm" else ((0.05, 0.05),)
    return [
        Row(is_call, 100.0, 100.0 * m, T, r, q, sigma)
        for is_call in (True, False)
        for m in moneyness
        for T in expiries
        for sigma in vols
        for r, q in rates
    ]


@pytest.mark.parametrize("model", MODELS)
def test_grid_matches_oracle(model: Model) -> None:
    grid = _grid(model)
    c = _columns(grid)
    got = _price(model, c)
    assert_array_equal(got.status, Status.OK)
    _assert_matches_reference(got, [_reference(model, row) for row in grid], c.S, label=model)


@pytest.mark.parametrize("model", MODELS)
@ORACLE_SETTINGS
@given(data=st.data())
def test_matches_oracle(model: Model, data: st.DataObject) -> None:
    row = data.draw(rows(model), label="row")
    c = _columns([row])
    _assert_matches_reference(_price(model, c), [_reference(model, row)], c.S, label=model)


def _assert_inverse_matches_reference(rows_: Sequence[Row]) -> None:
    c = _columns(rows_)
    got = greeks.inverse(c.is_call, c.S, c.K, c.T, c.r, c.sigma)
    refs = [oracle.ref_inverse(r.is_call, r.S, r.K, r.T, r.r, r.sigma) for r in rows_]
    # price_coin is coin per option (V/F, already per unit of spot); delta_adj is unitless.
    assert_allclose(
        got.price_coin.ravel(),
        [coin for coin, _ in refs],
        rtol=RTOL_FIRST,
        atol=ATOL_FIRST,
        err_msg="price_coin",
    )
    assert_allclose(
        got.delta_adj.ravel(),
        [adj for _, adj in refs],
        rtol=RTOL_FIRST,
        atol=ATOL_FIRST,
        err_msg="delta_adj",
    )


def test_inverse_grid_matches_oracle() -> None:
    _assert_inverse_matches_reference(_grid("black76"))


@ORACLE_SETTINGS
@given(row=rows("black76"))
def test_inverse_matches_oracle(row: Row) -> None:
    _assert_inverse_matches_reference([row])


# ----------------------------------------------------------------- 2. QuantLib, a second opinion

QL_TODAY = ql.Date(2, 1, 2025)


@pytest.fixture(scope="module")
def ql_today() -> Iterator[ql.Date]:
    """QuantLib's global evaluation date, set for this module and restored after it."""
    quantlib_settings = ql.Settings.instance()
    saved = quantlib_settings.evaluationDate
    quantlib_settings.evaluationDate = QL_TODAY
    yield QL_TODAY
    quantlib_settings.evaluationDate = saved


@st.composite
def quantlib_rows(draw: st.DrawFn) -> tuple[Row, int]:
    """A BSM row with T an exact number of days / 365, in QuantLib's accurate region.

    QuantLib 1.44 computes N(x) as (1 + erf(x/√2)) / 2 and switches to a truncated asymptotic
    series below 1e-8, so it loses relative accuracy in the tails; its volga is also off by a
    factor √T. So only price and first-order Greeks are compared, and strikes are drawn through
    m = ln(F/K) / (σ√T) in [-2.5, 2.5] with σ√T <= 1, which keeps |d1|, |d2| <= 3.
    """
    days = draw(st.integers(1, 365))
    T = days / 365  # what Actual365Fixed gives, to the last bit
    S = draw(_finite(S_MIN, S_MAX))
    r = draw(_finite(RATE_MIN, RATE_MAX))
    q = draw(_finite(RATE_MIN, RATE_MAX))
    sigma = draw(_finite(0.05, 1.0))
    m = draw(_finite(-2.5, 2.5))
    K = S * math.exp((r - q) * T - m * sigma * math.sqrt(T))
    return Row(draw(st.booleans()), S, K, T, r, q, sigma), days


def _quantlib_greeks(row: Row, days: int, today: ql.Date) -> dict[str, float]:
    dc = ql.Actual365Fixed()
    spot = ql.QuoteHandle(ql.SimpleQuote(row.S))
    rates = ql.YieldTermStructureHandle(ql.FlatForward(today, row.r, dc))  # continuous
    dividends = ql.YieldTermStructureHandle(ql.FlatForward(today, row.q, dc))
    vol = ql.BlackVolTermStructureHandle(
        ql.BlackConstantVol(today, ql.NullCalendar(), row.sigma, dc)
    )
    process = ql.BlackScholesMertonProcess(spot, dividends, rates, vol)
    kind = ql.Option.Call if row.is_call else ql.Option.Put
    option = ql.VanillaOption(ql.PlainVanillaPayoff(kind, row.K), ql.EuropeanExercise(today + days))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    # QuantLib's units are ours: vega and rho per 1.00, theta = dV/dt per year of calendar
    # time (negative for a long vanilla), not per day.
    return {
        "price": option.NPV(),
        "delta": option.delta(),
        "gamma": option.gamma(),
        "vega": option.vega(),
        "theta": option.theta(),
        "rho": option.rho(),
    }


@settings(max_examples=300, deadline=None)
@given(drawn=quantlib_rows())
def test_bsm_matches_quantlib(ql_today: ql.Date, drawn: tuple[Row, int]) -> None:
    row, days = drawn
    c = _columns([row])
    got = _price("bsm", c)
    want = _quantlib_greeks(row, days, ql_today)
    for name, value in want.items():
        assert_allclose(
            _per_spot(name, getattr(got, name), c.S),
            _per_spot(name, value, c.S),
            rtol=RTOL_QUANTLIB,
            atol=ATOL_QUANTLIB,
            err_msg=name,
        )


# ---------------------------------------------------------------------------- 3. properties


def _call_and_put(model: Model, row: Row) -> tuple[Greeks, Greeks]:
    both = _price(model, _columns([row._replace(is_call=True), row._replace(is_call=False)]))
    call = Greeks(**{f: getattr(both, f)[0] for f in (*FIELDS, "status")})
    put = Greeks(**{f: getattr(both, f)[1] for f in (*FIELDS, "status")})
    return call, put


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_put_call_parity(model: Model, data: st.DataObject) -> None:
    row = data.draw(rows(model), label="row")
    S, K, T, r, q, sigma = row.S, row.K, row.T, row.r, row.q, row.sigma
    call, put = _call_and_put(model, row)
    dfq, dfr = math.exp(-q * T), math.exp(-r * T)
    forward_value = S * dfq - K * dfr  # e^{-rT}(F - K); for Black-76 q = r and S = F
    # Each side is a few roundings of terms of size S e^{-qT} and K e^{-rT} (theta also carries
    # the decay term S e^{-qT} φ σ / 2√T), so the tolerances are a few ulps of those.
    size = S * dfq + K * dfr
    theta_size = size * (1.0 + sigma / math.sqrt(T))
    assert_allclose(call.price - put.price, forward_value, rtol=0, atol=1e-14 * size)
    assert_allclose(call.delta - put.delta, dfq, rtol=0, atol=4 * EPS)
    assert_allclose(
        call.theta - put.theta, q * S * dfq - r * K * dfr, rtol=0, atol=1e-14 * theta_size
    )
    rho_parity = K * T * dfr if model == "bsm" else -T * forward_value
    assert_allclose(call.rho - put.rho, rho_parity, rtol=0, atol=1e-14 * size * T)
    assert_allclose(call.charm - put.charm, q * dfq, rtol=0, atol=1e-14 * (1.0 + 1.0 / T))
    # The symmetric Greeks are one formula for both: equal to rounding.
    for name in ("gamma", "vega", "vanna", "volga"):
        assert_allclose(getattr(call, name), getattr(put, name), rtol=4 * EPS, atol=0, err_msg=name)


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_price_and_delta_bounds(model: Model, data: st.DataObject) -> None:
    row = data.draw(rows(model), label="row")
    S, K, T, r, q = row.S, row.K, row.T, row.r, row.q
    call, put = _call_and_put(model, row)
    dfq, dfr = math.exp(-q * T), math.exp(-r * T)
    slack = 1e-14 * (S * dfq + K * dfr)  # rounding, a few ulps of the larger term
    # Discounted intrinsic value on the forward <= price <= discounted upper bound.
    assert max(S * dfq - K * dfr, 0.0) - slack <= call.price <= S * dfq + slack
    assert max(K * dfr - S * dfq, 0.0) - slack <= put.price <= K * dfr + slack
    assert 0.0 <= call.delta <= dfq * (1 + 4 * EPS)
    assert -dfq * (1 + 4 * EPS) <= put.delta <= 0.0
    assert call.gamma >= 0.0
    assert call.vega >= 0.0


def _scaled(row: Row, lam: float) -> Row:
    return row._replace(S=row.S * lam, K=row.K * lam)


# How each figure scales when S and K are both multiplied by λ.
_HOMOGENEITY_DEGREE = {
    "price": 1,
    "delta": 0,
    "gamma": -1,
    "vega": 1,
    "theta": 1,
    "rho": 1,
    "vanna": 0,
    "volga": 1,
    "charm": 0,
}


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_homogeneity_power_of_two_is_exact(model: Model, data: st.DataObject) -> None:
    """With λ = 2^k, S/K is unchanged to the bit, so every figure scales exactly (up to the
    rounding of results that fall into the subnormal range, hence atol=1e-300)."""
    row = data.draw(rows(model), label="row")
    k = data.draw(st.integers(-12, 12), label="k")
    lam = math.ldexp(1.0, k)
    base = _price(model, _columns([row]))
    scaled = _price(model, _columns([_scaled(row, lam)]))
    for name, degree in _HOMOGENEITY_DEGREE.items():
        want = np.ldexp(getattr(base, name), k * degree)
        assert_allclose(getattr(scaled, name), want, rtol=0, atol=1e-300, err_msg=name)


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_homogeneity(model: Model, data: st.DataObject) -> None:
    """Any λ: rounding λS and λK moves ln(S/K) by an ulp or two, which the figures amplify by
    their condition: ~|d1|/σ√T for gamma, ~1/(σ√T)² at the money for vanna and charm (through
    d2 ≈ -σ√T/2). Rows with σ√T < 0.01 are left to the power-of-two test above, which holds
    them exactly; here 1e-10 covers the rest."""
    row = data.draw(rows(model), label="row")
    assume(row.sigma * math.sqrt(row.T) >= 0.01)
    lam = data.draw(_finite(1e-3, 1e3), label="lam")
    c = _columns([row])
    base = _price(model, c)
    scaled = _price(model, _columns([_scaled(row, lam)]))
    for name, degree in _HOMOGENEITY_DEGREE.items():
        want = getattr(base, name) * lam**degree
        assert_allclose(
            _per_spot(name, getattr(scaled, name), c.S * lam),
            _per_spot(name, want, c.S * lam),
            rtol=1e-10,
            atol=ATOL_FIRST,
            err_msg=name,
        )


# ---- analytic Greeks against finite differences of the kernel's own figures
#
# Five-point central differences, error O(h⁴), on steps chosen in "natural" units so that d1
# moves by about FD_STEP whatever the input (short expiries and low vols bend the price on the
# scale of σ√T, not of S). First-order Greeks are differences of the price; second-order ones
# differences of the (already checked) analytic delta and vega. A figure passes when
#     |analytic - fd| <= FD_RTOL |analytic| + FD_NOISE * noise,
# where noise bounds the rounding error of the difference quotient: (Σ|weights|) · ε_f / h^n with
# ε_f one ulp of the largest term of the differenced figure. On 10⁵ random rows the worst case
# is below a tenth of this.
FD_STEP = 1e-3
FD_STEP_GAMMA = 1e-2  # second differences of the price need a larger step against rounding
FD_RTOL = 1e-6
FD_NOISE = 10.0
_OFFSETS = np.array([-2.0, -1.0, 1.0, 2.0])[:, None]


def _fd1(values: F64, h: F64) -> F64:
    """f' from f at x + (-2, -1, 1, 2) h (rows of ``values``)."""
    m2, m1, p1, p2 = values
    fd: F64 = (8.0 * (p1 - m1) - (p2 - m2)) / (12.0 * h)
    return fd


def _fd2(values: F64, f0: F64, h: F64) -> F64:
    """f'' from f at x + (-2, -1, 1, 2) h and f0 = f(x)."""
    m2, m1, p1, p2 = values
    fd: F64 = (16.0 * (p1 + m1) - (p2 + m2) - 30.0 * f0) / (12.0 * h * h)
    return fd


_FD1_WEIGHTS = 18.0 / 12.0  # Σ|weights| of _fd1
_FD2_WEIGHTS = 64.0 / 12.0  # Σ|weights| of _fd2


def _assert_fd(name: str, analytic: F64, fd: F64, noise: F64) -> None:
    # Divided by the (positive) noise bound, the elementwise atol becomes the scalar FD_NOISE.
    assert_allclose(analytic / noise, fd / noise, rtol=FD_RTOL, atol=FD_NOISE, err_msg=name)


def _assert_greeks_match_finite_differences(model: Model, c: Columns) -> None:
    base = _price(model, c)
    assert_array_equal(base.status, Status.OK)
    sqrt_t = np.sqrt(c.T)
    vs = c.sigma * sqrt_t
    d1 = (np.log(c.S / c.K) + (c.r - c.q + 0.5 * c.sigma**2) * c.T) / vs
    d2 = d1 - vs
    spread = 1.0 + np.abs(d1) + np.abs(d2)
    dfq = np.exp(-c.q * c.T)
    steps = {
        "S": FD_STEP * c.S * vs / (1.0 + vs),
        "sigma": FD_STEP * c.sigma / spread,
        "T": FD_STEP * c.T / (spread + (np.abs(c.r) + np.abs(c.q)) * c.T),
        "r": FD_STEP * vs / (c.T * (1.0 + vs)),  # d1 moves by T/σ√T per unit of r
    }
    h_gamma = FD_STEP_GAMMA / FD_STEP * steps["S"]

    def bumped(name: str, h: F64) -> Greeks:
        # (4, n) arrays broadcast against the (n,) others: one call per bumped input.
        return _price(model, c._replace(**{name: getattr(c, name) + _OFFSETS * h}))

    at = {name: bumped(name, h) for name, h in steps.items()}
    at_gamma = bumped("S", h_gamma)

    # One ulp of the largest term of each differenced figure. ln(S/K) carries an absolute error
    # ~ε, so d1 carries ~ε/σ√T: that enters delta and vega (not the price, whose d1 errors cancel
    # to first order because S e^{-qT} φ(d1) = K e^{-rT} φ(d2)).
    price_ulp = EPS * (c.S * dfq + c.K * np.exp(-c.r * c.T))
    delta_ulp = EPS * (1.0 + 1.0 / vs)
    vega_ulp = EPS * c.S * sqrt_t * dfq * (1.0 + np.abs(d1)) * (1.0 + 1.0 / vs)

    def noise1(ulp: F64, h: F64) -> F64:
        return _FD1_WEIGHTS * ulp / h

    h_s, h_v, h_t, h_r = steps["S"], steps["sigma"], steps["T"], steps["r"]
    _assert_fd("delta", base.delta, _fd1(at["S"].price, h_s), noise1(price_ulp, h_s))
    _assert_fd(
        "gamma (price)",
        base.gamma,
        _fd2(at_gamma.price, base.price, h_gamma),
        _FD2_WEIGHTS * price_ulp / h_gamma**2,
    )
    _assert_fd("gamma (delta)", base.gamma, _fd1(at["S"].delta, h_s), noise1(delta_ulp, h_s))
    _assert_fd("vega", base.vega, _fd1(at["sigma"].price, h_v), noise1(price_ulp, h_v))
    # theta is dV/dt in calendar time: minus the derivative in time to expiry.
    _assert_fd("theta", base.theta, -_fd1(at["T"].price, h_t), noise1(price_ulp, h_t))
    # rho holds S and q (BSM) or F (Black-76) fixed; black76() moves its discounting q = r.
    _assert_fd("rho", base.rho, _fd1(at["r"].price, h_r), noise1(price_ulp, h_r))
    _assert_fd("vanna (delta)", base.vanna, _fd1(at["sigma"].delta, h_v), noise1(delta_ulp, h_v))
    _assert_fd("vanna (vega)", base.vanna, _fd1(at["S"].vega, h_s), noise1(vega_ulp, h_s))
    _assert_fd("volga", base.volga, _fd1(at["sigma"].vega, h_v), noise1(vega_ulp, h_v))
    _assert_fd("charm", base.charm, -_fd1(at["T"].delta, h_t), noise1(delta_ulp, h_t))


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_greeks_match_finite_differences(model: Model, data: st.DataObject) -> None:
    _assert_greeks_match_finite_differences(model, _columns([data.draw(rows(model), label="row")]))


@pytest.mark.parametrize("model", MODELS)
def test_greeks_match_finite_differences_on_random_rows(model: Model) -> None:
    _assert_greeks_match_finite_differences(model, _random_columns(model, 20_000, seed=2025))


@PROPERTY_SETTINGS
@given(row=rows("black76"))
def test_inverse_identities(row: Row) -> None:
    c = _columns([row])
    inv = greeks.inverse(c.is_call, c.S, c.K, c.T, c.r, c.sigma)
    black = greeks.black76(c.is_call, c.S, c.K, c.T, c.r, c.sigma)
    for name in (*FIELDS, "status"):  # the USD figures are Black-76's, to the bit
        assert_array_equal(getattr(inv, name), getattr(black, name), err_msg=name)
    # price_coin = V/F rounds once, so price_coin·F is V to an ulp (atol: subnormal prices).
    assert_allclose(inv.price_coin * c.S, inv.price, rtol=2 * EPS, atol=1e-300)
    assert_array_equal(inv.delta_adj, inv.delta - inv.price_coin)


@pytest.mark.parametrize("model", MODELS)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_wide_domain_is_finite(model: Model, data: st.DataObject) -> None:
    """Far outside the accuracy box (S, K over 15 decades, σ√T down to 1e-7, |r|, |q| to 0.5)
    every figure of a priced row is still a finite number."""
    wide = st.tuples(
        st.booleans(),
        _finite(1e-6, 1e9),
        _finite(1e-6, 1e9),
        _finite(1e-6, 100.0),
        _finite(-0.5, 0.5),
        _finite(-0.5, 0.5),
        _finite(1e-4, 10.0),
    )
    drawn = data.draw(st.lists(wide, min_size=1, max_size=8), label="rows")
    rows_ = [Row(*x) for x in drawn]
    if model == "black76":
        rows_ = [x._replace(q=x.r) for x in rows_]
    got = _price(model, _columns(rows_))
    assert_array_equal(got.status, Status.OK)
    for name in FIELDS:
        assert np.isfinite(getattr(got, name)).all(), name


@pytest.mark.parametrize("model", MODELS)
def test_far_out_of_the_money_price_is_not_negative(model: Model) -> None:
    row = Row(
        True,
        834839.1594294265,
        3573833.602742956,
        0.13996240189872788,
        0.15095239365398627,
        0.07537013637852875,
        0.10057810582325466,
    )
    if model == "black76":
        row = row._replace(S=row.S * math.exp((row.r - row.q) * row.T), q=row.r)
    got = _price(model, _columns([row]))
    assert got.price >= 0.0


# ------------------------------------------------------------------- 4. domain and statuses


def _assert_all_nan(g: Greeks) -> None:
    for name in FIELDS:
        assert np.isnan(getattr(g, name)).all(), name


@pytest.mark.parametrize("model", [*MODELS, "inverse"])
@pytest.mark.parametrize("T", [0.0, -0.0, -HOUR, -5.0])
def test_expired_gives_payoff_and_step_delta(model: str, T: float) -> None:
    K = 100.0
    S = np.array([90.0, 100.0, 110.0, 90.0, 100.0, 110.0])
    is_call = np.array([True, True, True, False, False, False])
    if model == "bsm":
        g = greeks.bsm(is_call, S, K, T, 0.05, 0.02, 0.3)
    elif model == "black76":
        g = greeks.black76(is_call, S, K, T, 0.05, 0.3)
    else:
        g = greeks.inverse(is_call, S, K, T, 0.05, 0.3)
    assert_array_equal(g.status, Status.EXPIRED)
    assert g.counts() == {Status.EXPIRED: 6}
    assert_array_equal(g.price, [0.0, 0.0, 10.0, 10.0, 0.0, 0.0])
    assert_array_equal(g.delta, [0.0, 0.5, 1.0, -1.0, -0.5, 0.0])  # half the step at the strike
    for name in ("gamma", "vega", "theta", "rho", "vanna", "volga", "charm"):
        assert_array_equal(getattr(g, name), 0.0, err_msg=name)
    if isinstance(g, greeks.InverseGreeks):
        assert_array_equal(g.price_coin, g.price / S)
        assert_array_equal(g.delta_adj, g.delta - g.price / S)


@pytest.mark.parametrize("sigma", [0.0, -0.0, -0.2, NAN, INF, -INF])
def test_bad_vol_is_nan(sigma: float) -> None:
    for g in (
        greeks.bsm([True, False], 100.0, 95.0, 0.5, 0.03, 0.01, sigma),
        greeks.black76([True, False], 100.0, 95.0, 0.5, 0.03, sigma),
        greeks.inverse([True, False], 100.0, 95.0, 0.5, 0.03, sigma),
    ):
        assert_array_equal(g.status, Status.BAD_VOL)
        assert g.counts() == {Status.BAD_VOL: 2}
        _assert_all_nan(g)
    inv = greeks.inverse(True, 100.0, 95.0, 0.5, 0.03, sigma)
    assert np.isnan(inv.price_coin)
    assert np.isnan(inv.delta_adj)


BSM_GOOD: dict[str, Any] = {"S": 100.0, "K": 95.0, "T": 0.5, "r": 0.03, "q": 0.01, "sigma": 0.25}
BAD_PRICES = [0.0, -0.0, -1.0, NAN, INF, -INF]
NON_FINITE = [NAN, INF, -INF]
BAD_BSM_INPUTS = [
    *(("S", v) for v in BAD_PRICES),
    *(("K", v) for v in BAD_PRICES),
    *(("T", v) for v in NON_FINITE),
    *(("r", v) for v in NON_FINITE),
    *(("q", v) for v in NON_FINITE),
]


@pytest.mark.parametrize(("name", "value"), BAD_BSM_INPUTS)
def test_bad_input_is_nan(name: str, value: float) -> None:
    args: dict[str, Any] = {**BSM_GOOD, name: value}
    g = greeks.bsm([True, False], **args)
    assert_array_equal(g.status, Status.BAD_INPUT)
    assert g.counts() == {Status.BAD_INPUT: 2}
    _assert_all_nan(g)
    if name != "q":  # Black-76 and inverse take F where BSM takes S, and have no q
        fwd = {"F" if k == "S" else k: v for k, v in args.items() if k != "q"}
        for h in (greeks.black76([True, False], **fwd), greeks.inverse([True, False], **fwd)):
            assert_array_equal(h.status, Status.BAD_INPUT)
            _assert_all_nan(h)
        inv = greeks.inverse([True, False], **fwd)
        assert np.isnan(inv.price_coin).all()
        assert np.isnan(inv.delta_adj).all()


@pytest.mark.parametrize(
    ("args", "status"),
    [
        ({"S": NAN, "T": 0.0}, Status.BAD_INPUT),  # bad input beats expiry
        ({"K": -1.0, "sigma": NAN}, Status.BAD_INPUT),  # ... and a bad vol
        ({"T": INF, "sigma": 0.0}, Status.BAD_INPUT),
        ({"T": 0.0, "sigma": NAN}, Status.EXPIRED),  # at expiry the vol does not matter
        ({"T": -1.0, "sigma": -0.5}, Status.EXPIRED),
    ],
)
def test_status_precedence(args: dict[str, float], status: Status) -> None:
    g = greeks.bsm(True, **{**BSM_GOOD, **args})
    assert g.status == status
    assert g.counts() == {status: 1}


def test_mixed_rows_keep_good_rows_exact() -> None:
    good = _random_columns("bsm", 40, seed=7)
    # Interleave bad rows, one per failure mode, between the good ones.
    bad_rows = [
        {"S": NAN},
        {"K": 0.0},
        {"T": -INF},
        {"r": INF},
        {"q": NAN},
        {"sigma": 0.0},
        {"sigma": NAN},
        {"T": 0.0},
        {"T": -1.0},
    ]
    bad_status = [Status.BAD_INPUT] * 5 + [Status.BAD_VOL] * 2 + [Status.EXPIRED] * 2
    mixed = {name: list(getattr(good, name)) for name in Columns._fields}
    positions = []
    for j, bad in enumerate(bad_rows):
        at = 4 * j + 1
        positions.append(at)
        for name in Columns._fields:
            default = True if name == "is_call" else BSM_GOOD[name]
            mixed[name].insert(at, bad.get(name, default))
    is_good = np.ones(len(mixed["S"]), dtype=bool)
    is_good[positions] = False
    mixed_cols = Columns(*(np.array(mixed[name]) for name in Columns._fields))
    got = _price("bsm", mixed_cols)
    alone = _price("bsm", good)
    for name in (*FIELDS, "status"):
        assert_array_equal(getattr(got, name)[is_good], getattr(alone, name), err_msg=name)
    assert_array_equal(got.status[~is_good], bad_status)
    assert got.counts() == {Status.BAD_INPUT: 5, Status.BAD_VOL: 2, Status.EXPIRED: 2}
    assert alone.counts() == {}


def _expected_status(S: float, K: float, T: float, r: float, q: float, sigma: float) -> Status:
    """The documented classification, from the inputs alone."""
    if not all(map(math.isfinite, (S, K, T, r, q))) or S <= 0.0 or K <= 0.0:
        return Status.BAD_INPUT
    if T <= 0.0:
        return Status.EXPIRED
    if not (math.isfinite(sigma) and sigma > 0.0):
        return Status.BAD_VOL
    v, t = float(sigma), float(T)
    if v * math.sqrt(t) == 0.0 or math.isinf(v * v * t):  # σ√T underflows or σ²T overflows
        return Status.BAD_VOL
    return Status.OK


@settings(max_examples=500, deadline=None)
@given(
    drawn=st.lists(
        st.tuples(
            st.booleans(),
            *([st.floats() | st.sampled_from([0.0, -0.0, 1.0, -1.0, 100.0])] * 6),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_floats_never_raise_and_get_their_status(
    drawn: list[tuple[bool, float, float, float, float, float, float]],
) -> None:
    """Any floats at all (NaN, ±inf, subnormal, huge): no exception, the documented status, NaN
    for bad rows and the exact payoff at expiry. (Priced rows this far out are not checked for
    finiteness: see test_wide_domain_is_finite for where that is promised.)"""
    c = _columns([Row(*x) for x in drawn])
    for model in MODELS:
        q = c.q if model == "bsm" else c.r
        got = _price(model, c._replace(q=q))
        want = [
            _expected_status(S, K, T, r, qq, sigma)
            for S, K, T, r, qq, sigma in zip(c.S, c.K, c.T, c.r, q, c.sigma, strict=True)
        ]
        assert_array_equal(got.status, want)
        assert got.counts() == count_statuses(np.array(want, dtype=np.int8))
        bad = np.isin(got.status, [Status.BAD_INPUT, Status.BAD_VOL])
        expired = got.status == Status.EXPIRED
        for name in FIELDS:
            assert np.isnan(getattr(got, name)[bad]).all(), name
        # Expired rows have finite, positive S and K: S - K cannot overflow.
        sign = np.where(c.is_call[expired], 1.0, -1.0)
        payoff = np.maximum(sign * (c.S[expired] - c.K[expired]), 0.0)
        assert_array_equal(got.price[expired], payoff, err_msg=model)


# ------------------------------------------------------------------------------------ statuses


def test_status_values_are_the_kernel_constants() -> None:
    assert {s.name: s.value for s in Status} == {
        "OK": kernels.OK,
        "EXPIRED": kernels.EXPIRED,
        "BAD_VOL": kernels.BAD_VOL,
        "BAD_INPUT": kernels.BAD_INPUT,
        "PRICE_BELOW_INTRINSIC": kernels.PRICE_BELOW_INTRINSIC,
        "PRICE_ABOVE_MAX": kernels.PRICE_ABOVE_MAX,
        "NO_CONVERGENCE": kernels.NO_CONVERGENCE,
    }
    assert [s.value for s in Status] == list(range(len(Status)))  # dense: bincount relies on it


def test_count_statuses() -> None:
    status = np.array([[0, 1, 3], [3, 6, 0]], dtype=np.int8)
    assert count_statuses(status) == {
        Status.EXPIRED: 1,
        Status.BAD_INPUT: 2,
        Status.NO_CONVERGENCE: 1,
    }
    assert count_statuses(np.zeros(5, dtype=np.int8)) == {}
    assert count_statuses(np.zeros(0, dtype=np.int8)) == {}


def test_extreme_but_valid_inputs_give_finite_greeks_or_a_status() -> None:
    """σ√T underflowing is no volatility (BAD_VOL); |d1| past the density's range gives the
    exact limits 0 for the density terms rather than 0 · inf = NaN."""
    tiny = greeks.bsm(True, 100.0, 100.0, 0.25, 0.0, 0.0, 5e-324)
    assert int(tiny.status) == Status.BAD_VOL
    assert np.isnan(tiny.price)
    for args in (
        (True, 1e200, 1e-200, 1.0, 0.0, 0.0, 0.2),
        (True, 100.0, 100.0, 1.0, 0.0, 0.0, 1e100),
    ):
        g = greeks.bsm(*args)
        assert int(g.status) == Status.OK
        for name in FIELDS:
            assert np.isfinite(getattr(g, name)), name
        assert float(g.vanna) == 0.0
        assert float(g.volga) == 0.0


@pytest.mark.parametrize("parallel", [False, True])
def test_out_block_is_written_and_reused(parallel: bool) -> None:
    rng = np.random.default_rng(3)
    K = 100.0 * np.exp(rng.uniform(-0.5, 0.5, (40, 25)))
    fresh = greeks.bsm(True, 100.0, K, 0.5, 0.02, 0.01, 0.3, parallel=parallel)
    block = np.full((len(kernels.GREEK_FIELDS), 40, 25), np.nan)
    reused = greeks.bsm(True, 100.0, K, 0.5, 0.02, 0.01, 0.3, parallel=parallel, out=block)
    for j, name in enumerate(kernels.GREEK_FIELDS):
        assert_array_equal(getattr(reused, name), getattr(fresh, name))
        assert np.shares_memory(getattr(reused, name), block[j])
    coin = np.empty((len(kernels.INVERSE_FIELDS), 40, 25))
    inv = greeks.inverse(True, 100.0, K, 0.5, 0.0, 0.3, out=coin)
    assert_array_equal(coin[-1], inv.delta_adj)


@pytest.mark.parametrize(
    "bad",
    [
        np.empty((9, 4)),  # wrong shape
        np.empty((9, 3), dtype=np.float32),  # wrong dtype
        np.empty((3, 9)).T,  # not C-contiguous
        [[0.0] * 3] * 9,  # not an array
    ],
)
def test_out_block_that_does_not_fit_is_named(bad: Any) -> None:
    with pytest.raises(ValueError, match="out must be a writable C-contiguous float64 array"):
        greeks.black76(True, 100.0, [90.0, 100.0, 110.0], 0.5, 0.0, 0.3, out=bad)
