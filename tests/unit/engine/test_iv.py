"""Implied volatility (engine.iv) against 50-digit prices, on the hard cases and at random."""

from __future__ import annotations

import itertools
import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from engine.greeks import black76, bsm
from engine.iv import implied_vol, implied_vol_status
from engine.status import Status
from tests.oracle import DIGITS, ref_inverse, ref_price

EPS = 2.220446049250313e-16
# Accuracy target: sigma to a few ulp wherever the price determines it. Two errors remain that
# the inversion cannot remove: the price's own rounding to double, worth eps·price/vega in
# sigma; and, out of the money in the tails (|ln F/K| > σ√T), the cancellation between the two
# terms of the normalised Black price, worth about 2 eps/|ln F/K| relative (9e-15 at 5 % out of
# the money; it only matters for strikes within 0.1 % of the forward with minutes to expiry).
REL_TOL = 1e-14
TINY = 1e-290  # below this, prices (once normalised) go subnormal and lose digits


def _attainable(price: float, vega: float, sigma: float, log_m: float = 0.0) -> float:
    if price < TINY or vega == 0.0:
        return math.inf  # the price does not determine sigma in double precision
    tails = 4.0 * EPS / abs(log_m) if log_m != 0.0 else 0.0
    return (REL_TOL + tails) * sigma + 4.0 * EPS * price / vega


HARD_LOG_MONEYNESS = (-3.0, -1.0, -0.3, -0.05, -1e-3, 0.0, 1e-3, 0.05, 0.3, 1.0, 3.0)
HARD_T = (1.0 / 8760.0, 1.0 / 365.0, 0.1, 1.0, 5.0)  # one hour to five years
HARD_SIGMA = (0.01, 0.05, 0.2, 0.8, 3.0)  # up to 300 %


@pytest.mark.parametrize("is_call", [True, False])
def test_hard_cases_black76_against_50_digit_prices(is_call: bool) -> None:
    cases = list(itertools.product(HARD_LOG_MONEYNESS, HARD_T, HARD_SIGMA))
    F = 100.0
    K = np.array([F * math.exp(m) for m, _, _ in cases])
    T = np.array([t for _, t, _ in cases])
    sigma = np.array([v for _, _, v in cases])
    r = 0.02
    price = np.array(
        [ref_price(is_call, F, k, t, r, r, v) for k, t, v in zip(K, T, sigma, strict=True)]
    )
    res = implied_vol_status(price, is_call, F, K, T, r, model="black76")
    vega = black76(is_call, F, K, T, r, sigma).vega
    intrinsic = np.exp(-r * T) * np.maximum((F - K) if is_call else (K - F), 0.0)
    solved = 0
    for i in range(len(cases)):
        if res.status[i] == Status.PRICE_BELOW_INTRINSIC:
            # Only where the time value is lost in rounding the price to double.
            assert price[i] - intrinsic[i] <= 2 * EPS * price[i], cases[i]
            continue
        assert res.status[i] == Status.OK, cases[i]
        err = abs(res.sigma[i] - sigma[i])
        tol = _attainable(price[i], vega[i], sigma[i], cases[i][0])
        assert err <= tol, (cases[i], res.sigma[i])
        solved += 1
    assert solved >= 0.6 * len(cases)


def test_deep_otm_one_hour_is_exact() -> None:
    """5 % out of the money with an hour left: the price is ~1e-123 and still pins sigma."""
    F, K, T = 100.0, 105.0, 1.0 / 8760.0
    for v in (0.2, 0.8, 3.0):
        p = ref_price(True, F, K, T, 0.0, 0.0, v)
        got = float(implied_vol(p, True, F, K, T, 0.0, model="black76"))
        assert abs(got - v) <= _attainable(p, 1.0, v, math.log(F / K)), (v, p, got)


def test_at_the_money_tiny_vols_are_exact() -> None:
    """At the money the price is linear in a small sigma; down to vols whose cube underflows.
    Reference: the undiscounted at-the-money call is F erf(sigma sqrt(T) / sqrt 8) exactly, which
    50 digits evaluate without the cancellation of N(d1) - N(d2) at tiny sigma."""
    F = K = 100.0
    for v in (1e-3, 1e-6, 1e-9, 1e-12, 1e-40, 1e-100, 1e-250):
        with mp.workdps(DIGITS):
            p = float(F * mp.erf(mp.mpf(v) / mp.sqrt(8)))
        got = float(implied_vol(p, True, F, K, 1.0, 0.0, model="black76"))
        assert abs(got - v) <= 4.0 * EPS * v, (v, p, got)


@settings(max_examples=150, deadline=None)
@given(
    is_call=st.booleans(),
    log_m=st.floats(-1.5, 1.5),
    T=st.floats(1.0 / 8760.0, 10.0),
    sigma=st.floats(0.02, 3.0),
    r=st.floats(-0.02, 0.15),
    q=st.floats(-0.02, 0.15),
)
def test_bsm_round_trip_against_50_digit_prices(
    is_call: bool, log_m: float, T: float, sigma: float, r: float, q: float
) -> None:
    S = 100.0
    K = S * math.exp(log_m)
    p = ref_price(is_call, S, K, T, r, q, sigma)
    res = implied_vol_status(p, is_call, S, K, T, r, q)
    fwd = S * math.exp((r - q) * T)
    intrinsic = math.exp(-r * T) * max((fwd - K) if is_call else (K - fwd), 0.0)
    if int(res.status) == Status.PRICE_BELOW_INTRINSIC:
        assert p - intrinsic <= 4 * EPS * max(p, 1.0)
        return
    assert int(res.status) == Status.OK
    g = bsm(is_call, S, K, T, r, q, sigma)
    vega = float(g.vega)
    tol = _attainable(p, vega, sigma, math.log(fwd / K))
    if vega > 0.0:
        # The forward S e^{(r-q)T} is itself rounded: allow its effect on sigma too.
        tol += 4.0 * EPS * fwd * abs(float(g.delta)) / vega
    assert abs(float(res.sigma) - sigma) <= tol


@settings(max_examples=100, deadline=None)
@given(
    is_call=st.booleans(),
    log_m=st.floats(-1.0, 1.0),
    T=st.floats(1.0 / 365.0, 2.0),
    sigma=st.floats(0.1, 2.5),
)
def test_inverse_round_trip(is_call: bool, log_m: float, T: float, sigma: float) -> None:
    F = 30000.0
    K = F * math.exp(log_m)
    coin = ref_inverse(is_call, F, K, T, 0.0, sigma)[0]
    res = implied_vol_status(coin, is_call, F, K, T, 0.0, model="inverse")
    if int(res.status) == Status.PRICE_BELOW_INTRINSIC:
        intrinsic = max((F - K) if is_call else (K - F), 0.0)
        assert coin * F - intrinsic <= 4 * EPS * coin * F
        return
    assert int(res.status) == Status.OK
    vega = float(black76(is_call, F, K, T, 0.0, sigma).vega)
    # coin * F rounds once more: 8 eps of price instead of 4.
    tol = 2.0 * _attainable(coin * F, vega, sigma, log_m)
    assert abs(float(res.sigma) - sigma) <= tol


def test_random_realistic_book_converges_everywhere() -> None:
    rng = np.random.default_rng(20261124)
    n = 200_000
    S = 100.0
    K = S * np.exp(rng.uniform(-1.0, 1.0, n))
    T = rng.uniform(1.0 / 8760.0, 3.0, n)
    sigma = rng.uniform(0.05, 3.0, n)
    is_call = rng.random(n) < 0.5
    g = bsm(is_call, S, K, T, 0.03, 0.01, sigma)
    res = implied_vol_status(g.price, is_call, S, K, T, 0.03, 0.01)
    counts = res.counts()
    assert Status.NO_CONVERGENCE not in counts
    assert set(counts) <= {Status.PRICE_BELOW_INTRINSIC}
    ok = res.status == Status.OK
    assert ok.mean() > 0.95
    # Against the kernel's own prices (whose relative error grows in the far tails, where only
    # their absolute error is small), sigma comes back to 1e-12 plus the price's conditioning
    # wherever vega is not negligible.
    pinned = ok & (g.vega > 1e-8 * g.price) & (g.price > TINY)
    assert pinned.mean() > 0.9
    err = np.abs(res.sigma - sigma)[pinned]
    tol = 1e-12 * sigma[pinned] + 16 * EPS * g.price[pinned] / g.vega[pinned]
    assert np.all(err <= tol)


def test_no_arbitrage_bounds_give_nan_and_status() -> None:
    S, K, T, r, q = 100.0, 90.0, 0.5, 0.05, 0.01
    fwd_disc = S * math.exp(-q * T)
    k_disc = K * math.exp(-r * T)
    price = [
        fwd_disc - k_disc - 0.01,  # call below intrinsic (on the forward)
        fwd_disc + 1.0,  # call above its upper bound S e^{-qT}
        -1.0,  # negative
        k_disc,  # put at its upper bound K e^{-rT}
        0.0,  # put worth nothing while out of the money: at intrinsic
    ]
    is_call = [True, True, True, False, False]
    res = implied_vol_status(price, is_call, S, K, T, r, q)
    assert np.isnan(res.sigma).all()
    assert res.status.tolist() == [
        Status.PRICE_BELOW_INTRINSIC,
        Status.PRICE_ABOVE_MAX,
        Status.PRICE_BELOW_INTRINSIC,
        Status.PRICE_ABOVE_MAX,
        Status.PRICE_BELOW_INTRINSIC,
    ]
    assert res.counts() == {Status.PRICE_BELOW_INTRINSIC: 3, Status.PRICE_ABOVE_MAX: 2}


def test_bad_inputs_are_flagged_not_raised() -> None:
    nan, inf = math.nan, math.inf
    rows = [
        (nan, 100.0, 100.0, 1.0, Status.BAD_INPUT),
        (5.0, inf, 100.0, 1.0, Status.BAD_INPUT),
        (5.0, 100.0, -1.0, 1.0, Status.BAD_INPUT),
        (5.0, 0.0, 100.0, 1.0, Status.BAD_INPUT),
        (5.0, 100.0, 100.0, 0.0, Status.EXPIRED),
        (5.0, 100.0, 100.0, -0.1, Status.EXPIRED),
        (5.0, 100.0, 100.0, nan, Status.BAD_INPUT),
    ]
    price, S, K, T, expected = (list(c) for c in zip(*rows, strict=True))
    with np.errstate(invalid="ignore", over="ignore"):
        res = implied_vol_status(price, True, S, K, T, 0.0)
    assert np.isnan(res.sigma).all()
    assert res.status.tolist() == [int(e) for e in expected]


@settings(max_examples=300, deadline=None)
@example(price=1.0000000000000002e-300, F=2.2406817852401344e16, K=2.2406817852401344e16, T=1.0)
@given(
    price=st.floats(allow_nan=True, allow_infinity=True, width=64),
    F=st.floats(1e-300, 1e300),
    K=st.floats(1e-300, 1e300),
    T=st.floats(-1.0, 1e3),
)
def test_any_input_terminates_with_a_status(price: float, F: float, K: float, T: float) -> None:
    res = implied_vol_status(price, True, F, K, T, 0.0, model="black76")
    status = int(res.status)
    assert status in {int(s) for s in Status}
    assert status != Status.NO_CONVERGENCE
    if status == Status.OK:
        assert float(res.sigma) > 0.0
    else:
        assert math.isnan(float(res.sigma))


def test_parallel_path_matches_single_thread() -> None:
    rng = np.random.default_rng(7)
    n = 50_000
    K = 100.0 * np.exp(rng.uniform(-1, 1, n))
    T = rng.uniform(0.01, 2, n)
    sigma = rng.uniform(0.1, 1.5, n)
    is_call = rng.random(n) < 0.5
    p = black76(is_call, 100.0, K, T, 0.01, sigma).price
    one = implied_vol(p, is_call, 100.0, K, T, 0.01, model="black76", parallel=False)
    two = implied_vol(p, is_call, 100.0, K, T, 0.01, model="black76", parallel=True)
    assert_array_equal(one, two)


def test_broadcasting_and_shapes() -> None:
    K = np.array([[90.0], [100.0], [110.0]])
    sigma = np.array([0.2, 0.4])
    p = bsm(True, 100.0, K, 1.0, 0.01, 0.0, sigma).price
    assert p.shape == (3, 2)
    iv = implied_vol(p, True, 100.0, K, 1.0, 0.01)
    assert iv.shape == (3, 2)
    np.testing.assert_allclose(iv, np.broadcast_to(sigma, (3, 2)), rtol=1e-13)
    scalar = implied_vol(float(p[1, 0]), True, 100.0, 100.0, 1.0, 0.01)
    assert scalar.shape == ()


def test_argument_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match="K has shape"):
        implied_vol([1.0, 2.0], True, 100.0, [90.0, 100.0, 110.0], 1.0, 0.0)
    with pytest.raises(ValueError, match="price must be a real number"):
        implied_vol("1.0", True, 100.0, 100.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="model must be one of"):
        implied_vol(1.0, True, 100.0, 100.0, 1.0, 0.0, model="heston")  # type: ignore[arg-type]  # the wrong value is the test
    with pytest.raises(ValueError, match="q applies to model='bsm' only"):
        implied_vol(1.0, True, 100.0, 100.0, 1.0, 0.0, q=0.01, model="black76")
