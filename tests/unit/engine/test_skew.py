"""Skew profile and SVI smile fit (engine.risk.skew): deltas by hand and against real Deribit
tickers, Gatheral and Jacquier's density factor against finite differences of Black-76 prices,
Axel Vogt's arbitrageable slice, recovery of known SVI parameters, RR/BF on flat and linear
smiles, and the statuses a streaming caller sees."""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.optimize import brentq, least_squares

from engine.greeks import black76
from engine.risk.skew import (
    LEE_MAX_SLOPE,
    SmileStatus,
    SviFit,
    SviParams,
    atm_term_structure,
    butterfly_check,
    fit_svi,
    forward_delta,
    skew_profile,
    vol_at,
)
from tests.unit.engine.test_units import (
    DELTA_ABS,
    GREEK_PRINT,
    TICKERS,
    Ticker,
    _price_tolerance,
)

N = NormalDist().cdf
Z75 = 0.6744897501960817  # Φ⁻¹(0.75) = -Φ⁻¹(0.25), rounded from 30 digits (mpmath)

VOGT = SviParams(a=-0.0410, b=0.1331, rho=0.3060, m=0.3586, sigma=0.4153)
"""Axel Vogt's raw SVI slice, T = 1: Gatheral and Jacquier, "Arbitrage-free SVI volatility
surfaces", Quantitative Finance 14(1), 2014 (arXiv:1204.0646), Example 3.1 (a, b, rho, m, sigma) =
(-0.0410, 0.1331, 0.3060, 0.3586, 0.4153): total variance positive everywhere, yet g(k) < 0
somewhere, a butterfly arbitrage (their Figure 1). We find g < 0 for k from about 0.65 to 1.25,
least (-0.0329) at k ≈ 0.88."""

SMILE = SviParams(a=0.04, b=0.4, rho=-0.4, m=0.05, sigma=0.1)
"""An equity-like slice (T = 1): 20 % at the vertex's level, put skew, free of arbitrage."""


def _quotes(p: SviParams, k: np.ndarray, F: float, T: float) -> tuple[np.ndarray, np.ndarray]:
    """Strikes and exact SVI vols at log-moneyness ``k``, written from the formula."""
    x = k - p.m
    w = p.a + p.b * (p.rho * x + np.sqrt(x * x + p.sigma**2))
    return F * np.exp(k), np.sqrt(w / T)


def _flat(vol: float, T: float, F: float = 100.0) -> SviFit:
    K = F * np.exp(np.linspace(-0.6, 0.6, 9))
    return fit_svi(K, np.full(K.shape, vol), F, T)


# ------------------------------------------------------------------ deltas


def test_forward_and_premium_adjusted_delta_by_hand() -> None:
    """F = 100, K = 110, T = 0.5, vol 60 %:
    v = 0.6 √0.5 = 0.424264069, ln(F/K) = -0.095310180,
    d1 = (ln(F/K) + v²/2) / v = (-0.095310180 + 0.09) / 0.424264069 = -0.012516214,
    d2 = d1 - v = -0.436780283;
    N(d1) = 0.495006883, N(d2) = 0.331135350 (mpmath, 30 digits);
    forward: call N(d1) = 0.495006883, put N(d1) - 1 = -0.504993117;
    premium-adjusted: call (K/F) N(d2) = 1.1 x 0.331135350 = 0.364248885,
    put (K/F)(N(d2) - 1) = 1.1 x (-0.668864650) = -0.735751115."""
    F, K, T, vol = 100.0, 110.0, 0.5, 0.6
    v = vol * math.sqrt(T)
    d1 = (math.log(F / K) + v * v / 2) / v
    d2 = d1 - v
    assert_allclose([d1, d2], [-0.012516214, -0.436780283], atol=1e-9)
    is_call = np.array([True, False])
    fwd = forward_delta(is_call, F, K, T, vol, coin_settled=False)
    pa = forward_delta(is_call, F, K, T, vol, coin_settled=True)
    assert_allclose(fwd, [N(d1), N(d1) - 1], rtol=1e-13)
    assert_allclose(pa, [K / F * N(d2), K / F * (N(d2) - 1)], rtol=1e-13)
    assert_allclose(fwd, [0.495006883, -0.504993117], atol=1e-9)
    assert_allclose(pa, [0.364248885, -0.735751115], atol=1e-9)


@pytest.mark.parametrize("t", TICKERS, ids=lambda t: f"{t.line}:{t.name}")
def test_deltas_reproduce_deribit_tickers(t: Ticker) -> None:
    """Deribit prints the forward delta N(d1) in ``greeks.delta``; its price-adjusted delta
    (account "DeltaTotal") is that delta less ``mark_price`` in coin (../shared/data/deribit).
    Tolerances as in test_units: printed rounding plus the mark price's own tolerance."""
    fwd = float(forward_delta(t.is_call, t.F, t.K, t.T, t.mark_iv, coin_settled=False))
    assert abs(fwd - t.greeks["delta"]) <= DELTA_ABS + GREEK_PRINT
    if not t.linear:
        pa = float(forward_delta(t.is_call, t.F, t.K, t.T, t.mark_iv, coin_settled=True))
        want = t.greeks["delta"] - t.mark_price
        assert abs(pa - want) <= DELTA_ABS + GREEK_PRINT + _price_tolerance(t)


@settings(max_examples=200, deadline=None)
@given(
    F=st.floats(10.0, 1e5),
    moneyness=st.floats(0.3, 3.0),
    T=st.floats(0.005, 3.0),
    vol=st.floats(0.05, 2.5),
)
def test_delta_conventions_and_parity(F: float, moneyness: float, T: float, vol: float) -> None:
    """Call minus put is 1 (forward) and K/F (premium-adjusted); the premium-adjusted delta is
    the forward delta less the Black-76 premium over F (the coin premium)."""
    K = F * moneyness
    is_call = np.array([True, False])
    fwd = forward_delta(is_call, F, K, T, vol, coin_settled=False)
    pa = forward_delta(is_call, F, K, T, vol, coin_settled=True)
    assert_allclose(fwd[0] - fwd[1], 1.0, rtol=1e-12)
    assert_allclose(pa[0] - pa[1], moneyness, rtol=1e-12)
    price = black76(is_call, F, K, T, 0.0, vol).price
    assert_allclose(pa, fwd - price / F, rtol=1e-9, atol=1e-12)
    assert 0.0 <= fwd[0] <= 1.0
    assert pa[0] <= fwd[0]


# ------------------------------------------------------------------ SVI and arbitrage


@pytest.mark.parametrize("p", [VOGT, SMILE], ids=["vogt", "smile"])
def test_g_is_the_density_of_black76_prices(p: SviParams) -> None:
    """With F = 1, T = 1 and zero rates, ∂²C/∂K² is the density of S_T; Gatheral and Jacquier
    (2014, section 2): the density of k = ln S_T is g(k) φ(d2) / √w, so
    ∂²C/∂K² = g(k) φ(d2) / (K √w) with d2 = -k/√w - √w/2. The second difference of Black-76
    call prices at the slice's vols matches it, negative where g is."""
    k = np.linspace(-1.5, 2.0, 36)
    h = 1e-3
    K = np.exp(k)[:, None] * np.array([1.0 - h, 1.0, 1.0 + h])
    vols = np.sqrt(p.total_variance(np.log(K)))
    C = black76(True, 1.0, K, 1.0, 0.0, vols).price
    fd = (C[:, 0] - 2 * C[:, 1] + C[:, 2]) / (h * np.exp(k)) ** 2
    w = p.total_variance(k)
    d2 = -k / np.sqrt(w) - np.sqrt(w) / 2
    phi = np.exp(-0.5 * d2 * d2) / math.sqrt(2 * math.pi)
    assert_allclose(fd, p.g(k) * phi / (np.exp(k) * np.sqrt(w)), rtol=1e-4, atol=1e-7)


def test_vogt_slice_has_butterfly_arbitrage() -> None:
    chk = butterfly_check(VOGT)
    assert chk.g_min == pytest.approx(-0.03286, abs=1e-5)
    assert chk.k_at_g_min == pytest.approx(0.880, abs=2e-3)
    assert chk.wing_slope == pytest.approx(0.1331 * 1.3060, rel=1e-15)  # within Lee's 2
    assert not chk.arbitrage_free
    # the arbitrage is real: a call butterfly around the worst strike costs less than nothing
    K = math.exp(chk.k_at_g_min) * np.array([0.95, 1.0, 1.05])
    C = black76(True, 1.0, K, 1.0, 0.0, np.sqrt(VOGT.total_variance(np.log(K)))).price
    assert C[0] - 2 * C[1] + C[2] < 0.0
    assert butterfly_check(SMILE).arbitrage_free
    assert butterfly_check(SMILE).g_min > 0.0


def test_butterfly_check_on_a_given_grid_and_the_lee_bound() -> None:
    k = np.linspace(-1.0, 1.0, 5)
    chk = butterfly_check(SMILE, k)
    assert chk.g_min == pytest.approx(float(SMILE.g(k).min()), rel=1e-15)
    assert chk.k_at_g_min in k
    steep = SviParams(a=0.01, b=1.8, rho=0.5, m=0.0, sigma=0.2)  # wing slope 2.7 > 2
    assert steep.wing_slope == pytest.approx(2.7, rel=1e-15)
    assert not butterfly_check(steep).arbitrage_free
    assert LEE_MAX_SLOPE == 2.0


# ------------------------------------------------------------------ the fit


@pytest.mark.parametrize("p", [VOGT, SMILE], ids=["vogt", "smile"])
def test_fit_recovers_known_parameters(p: SviParams) -> None:
    F, T = 100.0, 1.0
    K, vol = _quotes(p, np.linspace(-1.0, 1.5, 26), F, T)
    fit = fit_svi(K, vol, F, T)
    assert fit.status is SmileStatus.OK
    assert fit.params is not None
    got = [fit.params.a, fit.params.b, fit.params.rho, fit.params.m, fit.params.sigma]
    assert_allclose(got, [p.a, p.b, p.rho, p.m, p.sigma], atol=1e-6)
    assert fit.rmse_vol_points < 1e-6
    assert fit.n_quotes == 26
    assert fit.butterfly is not None
    assert fit.butterfly.arbitrage_free is (p is SMILE)  # the fit reports Vogt's arbitrage


@settings(max_examples=25, deadline=None)
@given(
    min_var=st.floats(0.002, 0.1),
    b=st.floats(0.02, 0.8),
    rho=st.floats(-0.9, 0.9),
    m=st.floats(-0.3, 0.3),
    sigma=st.floats(0.03, 0.8),
)
def test_fit_reproduces_any_svi_smile(
    min_var: float, b: float, rho: float, m: float, sigma: float
) -> None:
    """Exact quotes from a random arbitrage-free-in-the-wings slice (b (1 + |ρ|) <= 2 here):
    the fit finds a smile through them (its parameters may differ where the data cannot tell
    them apart, e.g. a vertex far outside the strikes)."""
    p = SviParams(a=min_var - b * sigma * math.sqrt(1 - rho * rho), b=b, rho=rho, m=m, sigma=sigma)
    T = 0.5
    K, vol = _quotes(p, np.linspace(-0.8, 0.8, 17), 1.0, T)
    fit = fit_svi(K, vol, 1.0, T)
    assert fit.rmse_vol_points < 1e-6
    assert fit.params is not None
    assert fit.params.wing_slope <= LEE_MAX_SLOPE + 1e-12
    assert fit.params.min_variance >= -1e-12


def test_fit_of_a_deribit_like_chain() -> None:
    """A BTC chain as Deribit lists it: 30 days, F = 60 000, strikes 40k-90k every 5k, a call and
    a put per strike with one mark_iv (percent, 2 decimals: rounded to ±0.005 vol points) and one
    missing mark. The fit's RMSE is below the rounding, and the 25-delta vols lie between the
    quoted vols of the strikes around them."""
    F, T = 60_000.0, 30 / 365
    true = SviParams(a=0.018, b=0.08, rho=-0.25, m=0.02, sigma=0.08)  # 55 % ATM, 86 % at 40k
    strikes = np.arange(40_000.0, 90_001.0, 5_000.0)
    _, vol = _quotes(true, np.log(strikes / F), F, T)
    mark_iv = np.round(vol * 100, 2)  # as printed
    K = np.repeat(strikes, 2)  # call and put
    iv = np.repeat(mark_iv, 2) / 100
    iv[5] = np.nan  # a put without a mark yet
    fit = fit_svi(K, iv, F, T)
    assert fit.status is SmileStatus.OK
    assert fit.n_quotes == 21
    assert fit.rmse_vol_points < 0.005
    for coin_settled in (False, True):
        prof = skew_profile(fit, coin_settled=coin_settled)
        assert prof.status is SmileStatus.OK
        for strike, v in (
            (prof.call25_strike, prof.call25_vol),
            (prof.put25_strike, prof.put25_vol),
        ):
            i = int(np.searchsorted(strikes, strike))
            lo, hi = sorted(mark_iv[i - 1 : i + 1] / 100)
            assert lo - 5e-5 <= v <= hi + 5e-5, (coin_settled, strike, v, lo, hi)
        assert prof.risk_reversal < 0.0  # ρ < 0: puts over calls
    assert_allclose(vol_at(fit, strikes), vol, atol=1e-4)


def test_fit_constraints_bind() -> None:
    """Quotes that pull the fit out of the domain get the boundary, not an invalid smile:
    wings steeper than Lee's bound (slope 2.7) are fitted at slope 2; a V of total variance
    0.4 |k| - 0.02 (positive at the quotes, |k| >= 0.1, negative at the money if extrapolated)
    is fitted with smallest total variance 0, not below."""
    steep = SviParams(a=0.01, b=1.8, rho=0.5, m=0.0, sigma=0.2)
    K, vol = _quotes(steep, np.linspace(-1.0, 1.5, 26), 1.0, 1.0)
    fit = fit_svi(K, vol, 1.0, 1.0)
    assert fit.params is not None
    assert fit.params.wing_slope == pytest.approx(LEE_MAX_SLOPE, abs=1e-9)
    assert fit.butterfly is not None
    assert fit.butterfly.wing_slope <= LEE_MAX_SLOPE

    k = np.array([-0.3, -0.2, -0.1, 0.1, 0.2, 0.3])
    fit = fit_svi(np.exp(k), np.sqrt(0.4 * np.abs(k) - 0.02), 1.0, 1.0)
    assert fit.status is SmileStatus.OK
    assert fit.params is not None
    assert fit.params.min_variance == pytest.approx(0.0, abs=1e-12)
    assert np.isfinite(vol_at(fit, np.exp(np.linspace(-0.3, 0.3, 61)))).all()


def test_fit_minimises_the_weighted_vol_objective() -> None:
    """Slow reference: scipy's least_squares over all five parameters, from the true ones, on
    noisy quotes (0.3 vol points) with uneven weights u, of the residuals
    √u (w(k) - vol² T) / (2 vol T) (the fit's objective: vol residuals to first order). The
    constraints do not bind there, so both must find the same optimum."""
    rng = np.random.default_rng(3)
    k = np.linspace(-0.8, 0.8, 21)
    T = 0.5
    K, vol = _quotes(SMILE, k, 1.0, T)
    vol = vol + rng.normal(0.0, 0.003, k.size)
    u = rng.uniform(0.5, 2.0, k.size)

    def residuals(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        a, b, rho, m, sigma = (float(z) for z in p)
        w = a + b * (rho * (k - m) + np.sqrt((k - m) ** 2 + sigma**2))
        out: npt.NDArray[np.float64] = np.sqrt(u) * (w - vol * vol * T) / (2 * vol * T)
        return out

    start = [SMILE.a, SMILE.b, SMILE.rho, SMILE.m, SMILE.sigma]
    ref = least_squares(residuals, start, xtol=1e-15, ftol=1e-15, gtol=1e-15)
    fit = fit_svi(K, vol, 1.0, T, u)
    assert fit.params is not None
    p = fit.params
    assert_allclose([p.a, p.b, p.rho, p.m, p.sigma], ref.x, atol=1e-6)
    assert 0.2 < fit.rmse_vol_points < 0.4  # about the noise


def test_zero_weight_leaves_a_quote_out() -> None:
    K, vol = _quotes(SMILE, np.linspace(-0.8, 0.8, 9), 1.0, 1.0)
    bad = vol.copy()
    bad[3] = 0.9  # an outlier, weighted 0
    weights = np.ones(9)
    weights[3] = 0.0
    fit = fit_svi(K, bad, 1.0, 1.0, weights)
    assert fit.n_quotes == 8
    assert fit.params is not None
    assert_allclose(vol_at(fit, K), vol, atol=1e-6)


# ------------------------------------------------------------------ skew profile


def test_flat_smile_strikes_by_hand_and_zero_rr_bf() -> None:
    """Flat 50 %, T = 0.25, F = 100: v = 0.25. Forward delta N(d1) = 0.25 at
    d1 = -0.674490 = (-k + v²/2)/v, so k = 0.25 x 0.674490 + 0.03125 = 0.199872, K = 122.1247;
    the put N(d1) - 1 = -0.25 at d1 = 0.674490: k = -0.137372, K = 87.1646."""
    fit = _flat(0.5, 0.25)
    prof = skew_profile(fit, coin_settled=False)
    assert prof.status is SmileStatus.OK
    assert prof.call25_strike == pytest.approx(100 * math.exp(0.25 * Z75 + 0.03125), rel=1e-9)
    assert prof.put25_strike == pytest.approx(100 * math.exp(-0.25 * Z75 + 0.03125), rel=1e-9)
    assert prof.call25_strike == pytest.approx(122.1247, abs=1e-4)
    assert prof.put25_strike == pytest.approx(87.1646, abs=1e-4)
    for pa in (False, True):
        prof = skew_profile(fit, coin_settled=pa)
        assert prof.atm_vol == pytest.approx(0.5, rel=1e-10)
        assert prof.risk_reversal == pytest.approx(0.0, abs=1e-10)
        assert prof.butterfly == pytest.approx(0.0, abs=1e-10)

    # premium-adjusted (prof is the last one): (K/F) N(d2) = 0.25 at the call,
    # (K/F)(N(d2) - 1) = -0.25 at the put, d2 = -k/v - v/2
    def d2(K: float) -> float:
        return -math.log(K / 100) / 0.25 - 0.125

    assert prof.call25_strike / 100 * N(d2(prof.call25_strike)) == pytest.approx(0.25, abs=1e-12)
    put = prof.put25_strike / 100 * (N(d2(prof.put25_strike)) - 1)
    assert put == pytest.approx(-0.25, abs=1e-12)


def test_premium_adjusted_call_delta_is_not_monotone() -> None:
    """Flat 120 %, T = 1: (K/F) N(d2) rises from 0 to a peak of about 0.27 near the forward and
    falls again, so it is 0.25 at two strikes; the 25-delta call is the upper one. At 200 % the
    peak is about 0.18 < 0.25: there is no 25-delta premium-adjusted call."""
    fit = _flat(1.2, 1.0)
    prof = skew_profile(fit, coin_settled=True)
    assert prof.status is SmileStatus.OK

    def pa_call(K: float) -> float:
        d2 = -math.log(K / 100) / 1.2 - 0.6
        return K / 100 * N(d2)

    assert pa_call(prof.call25_strike) == pytest.approx(0.25, abs=1e-12)
    ks = np.linspace(50.0, 200.0, 3001)
    peak = float(ks[np.argmax([pa_call(x) for x in ks])])
    assert 0.26 < pa_call(peak) < 0.28
    assert prof.call25_strike > peak
    lower = brentq(lambda x: pa_call(x) - 0.25, 1.0, peak)
    assert lower < peak < prof.call25_strike  # the other root, in the money, is not taken

    none = skew_profile(_flat(2.0, 1.0), coin_settled=True)
    assert none.status is SmileStatus.NO_DELTA_STRIKE
    assert math.isnan(none.call25_vol)
    assert math.isnan(none.risk_reversal)
    assert none.atm_vol == pytest.approx(2.0, rel=1e-10)
    assert math.isfinite(none.put25_vol)
    assert skew_profile(_flat(2.0, 1.0), coin_settled=False).status is SmileStatus.OK


@pytest.mark.parametrize("slope", [-0.2, 0.2])
def test_linear_skew_signs(slope: float) -> None:
    """Vols linear in k, 0.6 + slope k, T = 0.25: the risk reversal has the slope's sign and is
    slope (k_c - k_p); the butterfly is what the line gives, slope (k_c + k_p) / 2 (the 25-delta
    strikes are not symmetric in k), both to the fit's accuracy."""
    k = np.linspace(-0.5, 0.5, 11)
    fit = fit_svi(100 * np.exp(k), 0.6 + slope * k, 100.0, 0.25)
    tol = 3 * fit.rmse_vol_points / 100
    for pa in (False, True):
        prof = skew_profile(fit, coin_settled=pa)
        kc, kp = math.log(prof.call25_strike / 100), math.log(prof.put25_strike / 100)
        assert math.copysign(1.0, prof.risk_reversal) == math.copysign(1.0, slope)
        assert prof.risk_reversal == pytest.approx(slope * (kc - kp), abs=tol)
        assert prof.butterfly == pytest.approx(slope * (kc + kp) / 2, abs=tol)
        assert prof.atm_vol == pytest.approx(0.6, abs=tol)


# ------------------------------------------------------------------ statuses, term structure


def test_too_few_strikes_is_a_status_not_an_exception() -> None:
    strikes = np.array([50_000.0, 55_000.0, 60_000.0, 65_000.0, 70_000.0])
    K = np.repeat(strikes, 2)
    iv = np.full(10, 0.6)
    iv[8:] = np.nan  # the fifth strike has no mark: four strikes left
    fit = fit_svi(K, iv, 60_000.0, 0.1)
    assert fit.status is SmileStatus.TOO_FEW_STRIKES
    assert (fit.n_quotes, fit.params, fit.butterfly) == (8, None, None)
    assert math.isnan(fit.rmse_vol_points)
    assert np.isnan(vol_at(fit, strikes)).all()
    prof = skew_profile(fit, coin_settled=True)
    assert prof.status is SmileStatus.TOO_FEW_STRIKES
    assert math.isnan(prof.atm_vol)
    assert fit_svi([], [], 60_000.0, 0.1).status is SmileStatus.TOO_FEW_STRIKES


def test_vol_at_is_vectorised() -> None:
    K, vol = _quotes(SMILE, np.linspace(-0.8, 0.8, 12), 100.0, 1.0)
    fit = fit_svi(K, vol, 100.0, 1.0)
    got = vol_at(fit, K.reshape(3, 4))
    assert got.shape == (3, 4)
    assert_allclose(got.ravel(), vol, atol=1e-7)
    assert float(vol_at(fit, 100.0)) == pytest.approx(math.sqrt(float(SMILE.total_variance(0.0))))


def test_atm_term_structure_by_hand() -> None:
    """ATM total variance 0.5² x 0.25 = 0.0625, 0.3² x 0.5 = 0.045 (falls: calendar arbitrage,
    NaN), 0.6² x 1 = 0.36: forward vols 0.5, NaN, √((0.36 - 0.045) / 0.5) = 0.793725."""
    fits = [_flat(0.6, 1.0), _flat(0.5, 0.25), _flat(0.3, 0.5)]
    fits.append(fit_svi([1.0, 2.0], [0.5, 0.5], 1.5, 2.0))  # no fit: left out
    ts = atm_term_structure(fits)
    assert_allclose(ts.T, [0.25, 0.5, 1.0], rtol=0)
    assert_allclose(ts.atm_vol, [0.5, 0.3, 0.6], rtol=1e-10)
    assert_allclose(ts.forward_vol[[0, 2]], [0.5, 0.793725], rtol=1e-6)
    assert np.isnan(ts.forward_vol[1])
    with pytest.raises(ValueError, match="distinct T"):
        atm_term_structure([_flat(0.5, 0.25), _flat(0.6, 0.25)])


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: fit_svi([1.0] * 5, [0.5] * 5, 0.0, 1.0), "F must be"),
        (lambda: fit_svi([1.0] * 5, [0.5] * 5, 1.0, math.nan), "T must be"),
        (lambda: fit_svi([1.0, 2.0, 3.0], [0.5, 0.5], 1.0, 1.0), "vol has shape"),
        (lambda: fit_svi(["a"], [0.5], 1.0, 1.0), "K must be"),
        (lambda: SviParams(a=0.04, b=0.1, rho=1.0, m=0.0, sigma=0.1), "rho"),
        (lambda: SviParams(a=0.04, b=-0.1, rho=0.0, m=0.0, sigma=0.1), r"SviParams\.b"),
        (lambda: SviParams(a=0.04, b=0.1, rho=0.0, m=0.0, sigma=0.0), "sigma"),
        (lambda: SviParams(a=-0.1, b=0.1, rho=0.0, m=0.0, sigma=0.1), r"SviParams\.a"),
        (lambda: SviParams(a=0.04, b=0.1, rho=0.0, m=math.inf, sigma=0.1), r"SviParams\.m"),
        (lambda: vol_at(_flat(0.5, 1.0), [100.0, 0.0]), "K must be"),
        (lambda: butterfly_check(SMILE, [[0.0]]), "k must be"),
    ],
)
def test_bad_arguments_raise_naming_them(call: Callable[[], object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def _linear_numpy(
    x: npt.NDArray[np.float64],
    k: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    om: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """The fit's inner step written with numpy over every (m, σ, ρ) row at once: the
    reference of ``svi_linear_kernel`` (c, b and the sum of squares per row)."""
    m, s, rho = x[..., 0, None], x[..., 1, None], x[..., 2, None]
    h = rho * (k - m) + np.hypot(k - m, s) - s * np.sqrt(1.0 - rho * rho)
    b_max = 2.0 / (1.0 + np.abs(rho[..., 0]))
    n, ny = om.sum(), om @ y
    nh, nhh, nhy = h @ om, (h * h) @ om, (h * y) @ om
    with np.errstate(divide="ignore", invalid="ignore"):
        b_free = (n * nhy - nh * ny) / (n * nhh - nh * nh)
        b_edge = np.clip(nhy / nhh, 0.0, b_max)
    b = np.stack(np.broadcast_arrays(np.clip(b_free, 0.0, b_max), b_edge, 0.0, b_max))
    c = np.stack(np.broadcast_arrays((ny - b_free * nh) / n, 0.0, ny / n, (ny - b_max * nh) / n))
    c = np.maximum(c, 0.0)
    sse = ((c[..., None] + b[..., None] * h - y) ** 2) @ om
    best = np.argmin(np.where(np.isnan(sse), np.inf, sse), axis=0)[None]
    return np.stack([np.take_along_axis(z, best, axis=0)[0] for z in (c, b, sse)], axis=-1)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40))
def test_the_inner_least_squares_kernel_equals_numpy(seed: int, n: int) -> None:
    from engine import kernels

    rng = np.random.default_rng(seed)
    k = np.sort(rng.uniform(-1.5, 1.0, n))
    y = rng.uniform(0.001, 0.5, n) * rng.choice([1.0, 1.0, 1e-3], n)
    om = rng.uniform(0.1, 10.0, n)
    x = np.column_stack(
        [rng.uniform(-2.0, 2.0, 64), rng.uniform(1e-4, 3.0, 64), rng.uniform(-0.999, 0.999, 64)]
    )
    x[0, 1] = 0.0  # σ = 0 and ρ = 0 at m on a strike: h is 0 there, a degenerate box
    x[1, 2] = 0.0
    x[1, 0] = k[0]
    out = np.empty((64, 3))
    kernels.svi_linear_kernel(x, k, y, om, 2.0, out)
    assert_allclose(out, _linear_numpy(x, k, y, om), rtol=1e-9, atol=1e-15)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(5, 40))
def test_the_residual_kernel_equals_numpy(seed: int, n: int) -> None:
    """The outer least squares' residuals √om (c + b h(k) - y), with the inner step's c and b:
    equal to numpy's, and their squares sum to the inner step's sum of squares."""
    from engine import kernels

    rng = np.random.default_rng(seed)
    k = np.sort(rng.uniform(-1.5, 1.0, n))
    y = rng.uniform(0.001, 0.5, n)
    om = rng.uniform(0.1, 10.0, n)
    x = np.column_stack(
        [rng.uniform(-2.0, 2.0, 16), rng.uniform(1e-4, 3.0, 16), rng.uniform(-0.999, 0.999, 16)]
    )
    res = np.empty((16, n))
    kernels.svi_residual_kernel(x, k, y, om, 2.0, res)
    cbs = _linear_numpy(x, k, y, om)
    m, s, rho = (x[:, j : j + 1] for j in range(3))
    h = rho * (k - m) + np.hypot(k - m, s) - s * np.sqrt(1.0 - rho * rho)
    want = np.sqrt(om) * (cbs[:, :1] + cbs[:, 1:2] * h - y)
    assert_allclose(res, want, rtol=1e-9, atol=1e-13)
    assert_allclose((res * res).sum(axis=1), cbs[:, 2], rtol=1e-9, atol=1e-15)


def _noisy_chains(seed: int, count: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(k, total variance, weights) of random SVI slices with 0 to 5 % relative vol noise."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        T = rng.uniform(2 / 365, 1.0)
        k = np.sort(rng.uniform(-1.0, 1.0, rng.integers(6, 40))) * math.sqrt(T)
        b, rho = rng.uniform(0.02, 0.8) * math.sqrt(T), rng.uniform(-0.9, 0.9)
        sigma = rng.uniform(0.03, 0.5) * math.sqrt(T)
        a = rng.uniform(0.1, 1.0) ** 2 * T - b * sigma * math.sqrt(1 - rho * rho)
        p = SviParams(a=a, b=b, rho=rho, m=rng.uniform(-0.1, 0.1), sigma=sigma)
        vol = p.vol(k, T) * (1 + rng.choice([0.0, 0.003, 0.02, 0.05]) * rng.normal(size=k.size))
        om = 1 / (2 * vol * T) ** 2
        out.append((k, vol * vol * T, om / om.mean()))
    return out


def test_the_fit_is_a_local_minimum_at_least_as_good_as_nelder_mead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On 200 noisy chains: no (m, σ, ρ) near the fit's does better (a local minimum of the
    objective on its box; one on the box's edge, where the search's map flattens, within 1e-7
    of its sum of squares), and the fit is as good as Nelder-Mead alone from the same start
    (the method before Levenberg-Marquardt) but for at most 1 in 100, better on many;
    Nelder-Mead is needed on few chains (the fit is fast)."""
    from engine.risk import skew

    nelder_mead = skew._nelder_mead
    used = 0

    def counted(*args: object) -> npt.NDArray[np.float64]:
        nonlocal used
        used += 1
        return nelder_mead(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(skew, "_nelder_mead", counted)
    rng = np.random.default_rng(8)
    worse = better = 0
    chains = _noisy_chains(12, 200)
    for k, y, om in chains:
        p = skew._fit(k, y, om)
        x = np.array([p.m, p.sigma, p.rho])
        sse = float(skew._linear(x[None, :], k, y, om)[0, 2])
        box = skew._Box.of(k)
        near = x * (1 + rng.uniform(-1e-4, 1e-4, (50, 3)))
        near = np.clip(near, box.lower, box.upper)
        assert (skew._linear(near, k, y, om)[:, 2] >= sse * (1 - 1e-7)).all()
        alone = nelder_mead(box, skew._grid_start(k, y, om), k, y, om)
        ref = float(skew._linear(alone[None, :], k, y, om)[0, 2])
        worse += sse > ref * (1 + 1e-6)
        better += sse < ref * (1 - 1e-6)
    assert worse <= 2
    assert better >= 20
    assert used <= len(chains) // 10
