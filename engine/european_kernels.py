"""The European rows every pricer builds on: status codes, the normal CDF, generalised
Black-Scholes-Merton price and Greeks of one row, and the Black-76 implied volatility of one
price.

Row functions only (no array kernels): :mod:`engine.kernels` loops them over arrays and over
the portfolio's columns, and :mod:`engine.american_kernels` builds the American rows on them.
Kept apart so that both can import them and :mod:`engine.kernels` can import the American
rows (a module importing engine.kernels could not be imported by it). Rules as there: no
raising, status codes, NaN.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = [
    "BAD_INPUT",
    "BAD_VOL",
    "EXPIRED",
    "NO_CONVERGENCE",
    "OK",
    "PRICE_ABOVE_MAX",
    "PRICE_BELOW_INTRINSIC",
]

# Status codes; mirrored by engine.status.Status (a test keeps the two equal).
OK = 0
EXPIRED = 1
BAD_VOL = 2
BAD_INPUT = 3
PRICE_BELOW_INTRINSIC = 4
PRICE_ABOVE_MAX = 5
NO_CONVERGENCE = 6

_INV_SQRT2 = 0.7071067811865475244
_INV_SQRT_2PI = 0.3989422804014326779
_SQRT_2_OVER_PI = 0.7978845608028654
_NAN = math.nan


@njit(cache=True, nogil=True, error_model="numpy")
def _ncdf(x: float) -> float:
    """Standard normal CDF, accurate in relative terms far into the lower tail."""
    return 0.5 * math.erfc(-x * _INV_SQRT2)


@njit(cache=True, nogil=True, error_model="numpy")
def _log_ratio(a: float, b: float) -> float:
    """ln(a/b) without the rounding of a/b near the money: a - b is exact there (Sterbenz).

    Rounding a/b costs ln(a/b) an absolute eps, which matters only when ln(a/b) is itself small
    (d1 of a near-the-money option with little time left); log1p is twice the cost of log, so
    it is kept to |a/b - 1| <= 1/16.
    """
    if abs(a - b) <= 0.0625 * b:
        return math.log1p((a - b) / b)
    return math.log(a / b)


@njit(cache=True, nogil=True, error_model="numpy")
def _fill_nan(out: npt.NDArray[np.float64], i: int, nrows: int) -> None:
    for j in range(nrows):
        out[j, i] = _NAN


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _gbs_status(s: float, k: float, t: float, r: float, q: float, v: float) -> int:
    """A row's status before any pricing: BAD_INPUT, EXPIRED (t <= 0: the payoff), BAD_VOL or
    OK."""
    if not (
        math.isfinite(s)
        and math.isfinite(k)
        and math.isfinite(t)
        and math.isfinite(r)
        and math.isfinite(q)
        and s > 0.0
        and k > 0.0
    ):
        return BAD_INPUT
    if t <= 0.0:
        return EXPIRED
    if not (math.isfinite(v) and v > 0.0):
        return BAD_VOL
    # σ√T underflows (no volatility to price with) or σ²T overflows (nor any to speak of)
    if not (v * math.sqrt(t) > 0.0 and math.isfinite(v * v * t)):
        return BAD_VOL
    return OK


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _gbs_price(
    is_call: bool, s: float, k: float, log_sk: float, t: float, r: float, q: float, v: float
) -> float:
    """The price of :func:`_gbs_row` alone (NaN where its status is an error), for full
    revaluation, which would throw the Greeks away. ``log_sk`` is ln(s/k), from the caller:
    with ``_log_ratio(s, k)`` the price is _gbs_row's to the bit; a scenario adds its log-return
    to the position's own, which saves a logarithm per valuation."""
    st = _gbs_status(s, k, t, r, q, v)
    w = 1.0 if is_call else -1.0
    if st == EXPIRED:
        return max(w * (s - k), 0.0)
    if st != OK:
        return _NAN
    inv_vs = (1.0 / v) * (1.0 / math.sqrt(t))
    d1 = (log_sk + (r - q + 0.5 * v * v) * t) * inv_vs
    d2 = d1 - v * math.sqrt(t)
    sdfq = s * math.exp(-q * t)
    kdfr = k * math.exp(-r * t)
    return max(w * (sdfq * _ncdf(w * d1) - kdfr * _ncdf(w * d2)), 0.0)


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _gbs_row(
    is_call: bool,
    s: float,
    k: float,
    t: float,
    r: float,
    q: float,
    v: float,
    black: bool,
    out: npt.NDArray[np.float64],
    i: int,
) -> int:
    """Price and Greeks of one row under generalised BSM; Black-76 when ``black`` (q = r, s = F).

    Writes rows 0..8 of ``out[:, i]`` and returns the row's status code.
    """
    st = _gbs_status(s, k, t, r, q, v)
    if st > EXPIRED:  # BAD_VOL, BAD_INPUT
        _fill_nan(out, i, 9)
        return st
    if st == EXPIRED:
        # At (or past) expiry: the payoff, a step delta (half at the strike), no other risk.
        sign = 1.0 if is_call else -1.0
        out[0, i] = max(sign * (s - k), 0.0)
        if s == k:
            out[1, i] = 0.5 * sign
        elif sign * (s - k) > 0.0:
            out[1, i] = sign
        else:
            out[1, i] = 0.0
        for j in range(2, 9):
            out[j, i] = 0.0
        return EXPIRED

    sqrt_t = math.sqrt(t)
    vs = v * sqrt_t
    # Reciprocals once: a division costs several multiplications, and a row needs five.
    inv_v = 1.0 / v
    inv_sqrt_t = 1.0 / sqrt_t
    inv_vs = inv_v * inv_sqrt_t
    d1 = (_log_ratio(s, k) + (r - q + 0.5 * v * v) * t) * inv_vs
    d2 = d1 - vs
    dfq = math.exp(-q * t)
    dfr = math.exp(-r * t)
    pdf1 = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    sdfq = s * dfq
    kdfr = k * dfr
    dfq_pdf1 = dfq * pdf1
    # d(d1)/dT = (r - q)/(σ√T) - d2/(2T); charm = dDelta/dt = -dDelta/dT
    dd1_dt = (r - q) * inv_vs - 0.5 * d2 * inv_sqrt_t * inv_sqrt_t
    # Beyond |d1| ~ 38 the density is 0 and so are the terms it multiplies (not 0 · inf = NaN).
    far = pdf1 == 0.0
    charm_density = 0.0 if far else dfq_pdf1 * dd1_dt
    decay = -0.5 * sdfq * pdf1 * v * inv_sqrt_t
    # Calls and puts share one formula with w = ±1 (exact), N(w d) in place of N(d) or N(-d):
    # a book mixes them at random, and a branch on the type would be mispredicted half the time.
    w = 1.0 if is_call else -1.0
    n1 = _ncdf(w * d1)
    n2 = _ncdf(w * d2)
    # Far out of the money the two terms cancel to rounding noise, which may come out a hair
    # below zero: the price is 0 to within 1e-16 of S, so say so.
    price = max(w * (sdfq * n1 - kdfr * n2), 0.0)
    delta = w * dfq * n1
    theta = decay - w * (r * kdfr * n2 - q * sdfq * n1)
    rho = -t * price if black else w * kdfr * t * n2  # Black: F fixed, only the discount moves
    vega = sdfq * pdf1 * sqrt_t
    out[0, i] = price
    out[1, i] = delta
    out[2, i] = dfq_pdf1 * inv_vs / s
    out[3, i] = vega
    out[4, i] = theta
    out[5, i] = rho
    out[6, i] = 0.0 if far else -dfq_pdf1 * d2 * inv_v
    out[7, i] = 0.0 if far else vega * d1 * d2 * inv_v
    out[8, i] = w * q * dfq * n1 - charm_density
    return OK


# --------------------------------------------------------------------------- implied volatility
# The solver works on Jäckel's normalised Black price of an out-of-the-money call,
#     b(x, s) = e^{x/2} N(x/s + s/2) - e^{-x/2} N(x/s - s/2),   x = ln(F/K) <= 0, s = σ√T,
# which every European price reduces to (put-call parity and the symmetry x -> -x). As in
# Jäckel's "Let's Be Rational" (2015), the inflection point s_c = sqrt(2|x|) and the tangents
# there split s into four branches, each with an objective that is nearly linear in s:
#     lowest  (b < b_l):  1/ln b(s) - 1/ln β      (b is exponentially small: work in logs)
#     middle  (b_l <= b <= b_u):  b(s) - β
#     upper   (b > b_u):  ln(b_max - b(s)) - ln(b_max - β)   (b_max - b is computed directly)
# Householder's third-order method converges in a few steps from an asymptotic first guess;
# every step is kept inside a bracket that shrinks with each evaluation, and the loop is bounded,
# so a bad guess costs iterations, never a wrong answer or a hang.

_IV_MAX_ITER = 64
_EPS = 2.220446049250313e-16
_NOISE = 1e-10  # relative step below which a non-shrinking step means evaluation noise
_CUBIC_DONE = 1e-6  # relative third-order step after which the next would be below 1 ulp
# At the money b(0, s) = erf(s / sqrt 8) = s / sqrt(2 pi) (1 - s^2 / 24 + ...): below this beta
# the first term is exact to double precision (s^2 / 24 < 3e-17), and the iteration, whose
# x^2 / s^3 terms are 0 / 0 once s^3 underflows, is not needed.
_ATM_LINEAR_BETA = 1e-8
_SQRT_2PI = 2.5066282746310002
_LOWEST = 0
_MIDDLE = 1
_UPPER = 2


@njit(cache=True, nogil=True, error_model="numpy")
def _erfcx(z: float) -> float:
    """Scaled complementary error function e^{z²} erfc(z), for z >= 0, to a few ulp.

    Below 26 the product is formed with z² split exactly (Dekker), so rounding z² costs nothing;
    above, the asymptotic series (its 8th term is below 1e-17 there).
    """
    if z < 26.0:
        # z = zh + zl with zh carrying 26 bits: zh² is exact in double precision.
        c = 134217729.0 * z  # 2^27 + 1
        zh = c - (c - z)
        zl = z - zh
        return math.exp(zh * zh) * math.exp(zl * (2.0 * zh + zl)) * math.erfc(z)
    w = 1.0 / (2.0 * z * z)
    term = 1.0
    total = 1.0
    for k in range(1, 9):
        term *= -(2 * k - 1) * w
        total += term
    return total / (z * 1.7724538509055160273)


@njit(cache=True, nogil=True, error_model="numpy")
def _norm_call(x: float, s: float, ex2: float, emx2: float) -> float:
    """b(x, s) for an out-of-the-money call (x <= 0); ex2 = e^{x/2}, emx2 = e^{-x/2}.

    Three forms, each free of the cancellation the others suffer where it is used:
    near the money (N(h ± t) near 1/2) through erf; in the tails through erfcx with the
    common factor e^{-(h² + t²)/2} taken out exactly (e^{x/2} φ(h + t) = e^{-x/2} φ(h - t));
    in between through erfc.
    """
    h = x / s
    t = 0.5 * s
    if h - t > -1.0:
        return math.sinh(0.5 * x) + 0.5 * (
            ex2 * math.erf((h + t) * _INV_SQRT2) - emx2 * math.erf((h - t) * _INV_SQRT2)
        )
    if h + t < -1.0:
        return (
            0.5
            * math.exp(-0.5 * (h * h + t * t))
            * (_erfcx(-(h + t) * _INV_SQRT2) - _erfcx(-(h - t) * _INV_SQRT2))
        )
    return ex2 * _ncdf(h + t) - emx2 * _ncdf(h - t)


@njit(cache=True, nogil=True, error_model="numpy")
def _norm_vega(x: float, s: float, ex2: float) -> float:
    """db/ds = e^{x/2} φ(x/s + s/2)."""
    d1 = x / s + 0.5 * s
    return ex2 * _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)


@njit(cache=True, nogil=True, error_model="numpy")
def _ninv_tail(p: float) -> float:
    """Rough inverse normal CDF for 0 < p <= 0.5 (Abramowitz & Stegun 26.2.23, |err| < 4.5e-4).

    Only a first guess for the solver; the iteration supplies the accuracy.
    """
    u = math.sqrt(-2.0 * math.log(p))
    return -(
        u
        - (2.515517 + u * (0.802853 + u * 0.010328))
        / (1.0 + u * (1.432788 + u * (0.189269 + u * 0.001308)))
    )


@njit(cache=True, nogil=True, error_model="numpy")
def _solve_norm_call(beta: float, x: float) -> tuple[float, int]:
    """s = σ√T with b(x, s) = beta, for x <= 0 and beta > 0. Returns (s, status): OK,
    NO_CONVERGENCE (best iterate), or PRICE_ABOVE_MAX (NaN) when beta >= b_max = e^{x/2}."""
    ex2 = math.exp(0.5 * x)
    if beta >= ex2:
        return math.nan, PRICE_ABOVE_MAX
    if x == 0.0 and beta < _ATM_LINEAR_BETA:
        return beta * _SQRT_2PI, OK
    emx2 = math.exp(-0.5 * x)
    s_c = math.sqrt(-2.0 * x)
    if s_c > 0.0:
        b_c = _norm_call(x, s_c, ex2, emx2)
        v_c = _norm_vega(x, s_c, ex2)
    else:
        b_c = 0.0
        v_c = _INV_SQRT_2PI
    lo = 0.0
    hi = math.inf
    log_beta = 0.0
    c_target = ex2 - beta  # b_max - beta, the upper branch's target
    log_c_target = 0.0
    if beta < b_c:
        s_l = s_c - b_c / v_c
        b_l = _norm_call(x, s_l, ex2, emx2) if s_l > 0.0 else 0.0
        if beta < b_l:
            branch = _LOWEST
            hi = s_l
            log_beta = math.log(beta)
            # Asymptotic b ≈ φ(h) e^{-s²/8} s / (h² - s²/4) (h = x/s), solved by fixed point.
            s = -x / math.sqrt(-2.0 * log_beta)
            for _ in range(2):
                h = x / s
                denom = (h * h - 0.25 * s * s) * _SQRT_2PI
                if denom <= 0.0:
                    break  # outside the asymptotic regime: keep the guess
                arg = 2.0 * (math.log(s / denom) - 0.125 * s * s - log_beta)
                if arg <= 0.0:
                    break
                s = -x / math.sqrt(arg)
        else:
            branch = _MIDDLE
            lo = max(s_l, 0.0)
            hi = s_c
            s = s_c + (beta - b_c) / v_c
    else:
        s_u = s_c + (ex2 - b_c) / v_c
        b_u = _norm_call(x, s_u, ex2, emx2)
        if beta <= b_u:
            branch = _MIDDLE
            lo = s_c
            hi = s_u
            s = s_c + (beta - b_c) / v_c
        else:
            branch = _UPPER
            lo = s_u
            log_c_target = math.log(c_target)
            # For large s, b_max - b ≈ (e^{x/2} + e^{-x/2}) N(-s/2).
            s = -2.0 * _ninv_tail(min(c_target / (ex2 + emx2), 0.5))
    if not (s > lo and s < hi):
        s = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * lo + 1.0

    x2 = x * x
    last_moved = math.inf
    for _ in range(_IV_MAX_ITER):
        h = x / s
        t = 0.5 * s
        vega = _norm_vega(x, s, ex2)
        r2 = x2 / (s * s * s) - 0.25 * s  # b''/b'
        r3 = r2 * r2 - 3.0 * x2 / (s * s * s * s) - 0.25  # b'''/b'
        if branch == _MIDDLE:
            b = _norm_call(x, s, ex2, emx2)
            too_small = b < beta
            g = b - beta
            g1 = vega
            g2 = vega * r2
            g3 = vega * r3
        elif branch == _LOWEST:
            if h + t < -1.0:
                # Tails: ln b and b'/b in closed form from the erfcx difference, which neither
                # underflows nor cancels (see _norm_call).
                diff = _erfcx(-(h + t) * _INV_SQRT2) - _erfcx(-(h - t) * _INV_SQRT2)
                lnb = -0.5 * (h * h + t * t) + math.log(0.5 * diff)
                l1 = _SQRT_2_OVER_PI / diff
            else:
                b = _norm_call(x, s, ex2, emx2)
                lnb = math.log(b)
                l1 = vega / b
            too_small = lnb < log_beta
            if not (math.isfinite(lnb) and l1 > 0.0 and math.isfinite(l1)):
                g = math.nan  # cannot happen on finite inputs; bisect if it ever does
                g1 = g2 = g3 = 1.0
            else:
                l2 = l1 * r2 - l1 * l1
                l3 = l1 * r3 - 3.0 * l1 * (l1 * r2) + 2.0 * l1 * l1 * l1
                inv = 1.0 / lnb
                g = inv - 1.0 / log_beta
                g1 = -l1 * inv * inv
                g2 = (-l2 + 2.0 * l1 * l1 * inv) * inv * inv
                g3 = (-l3 + 6.0 * l1 * l2 * inv - 6.0 * l1 * l1 * l1 * inv * inv) * inv * inv
        else:
            c = ex2 * _ncdf(-h - t) + emx2 * _ncdf(h - t)  # b_max - b, without cancellation
            too_small = c > c_target
            if c <= 0.0 or vega <= 0.0:
                g = math.nan
                g1 = g2 = g3 = 1.0
            else:
                c1 = -vega / c
                c2 = c1 * r2 - c1 * c1
                c3 = c1 * r3 - 3.0 * c1 * (c1 * r2) + 2.0 * c1 * c1 * c1
                g = math.log(c) - log_c_target
                g1 = c1
                g2 = c2
                g3 = c3
        if too_small:
            lo = s
        else:
            hi = s
        if g == 0.0:
            return s, OK
        nu = -g / g1
        h2 = g2 / g1
        h3 = g3 / g1
        step = nu * (1.0 + 0.5 * h2 * nu) / (1.0 + nu * (h2 + h3 * nu / 6.0))
        third_order = True
        if not math.isfinite(step) or step * nu < 0.0:
            step = nu  # Householder's correction broke down: plain Newton
            third_order = False
        moved = abs(step)
        if moved <= 4.0 * _EPS * s:
            return s + step, OK
        if third_order and moved <= _CUBIC_DONE * s and lo < s + step < hi:
            # A third-order step this small leaves an error of order its cube: below 1 ulp.
            return s + step, OK
        if moved < _NOISE * s and moved >= 0.5 * last_moved:
            # Steps stopped shrinking at the level of rounding noise in b(s): that is the root.
            return s, OK
        s_new = s + step
        if s_new > lo and s_new < hi:
            last_moved = moved
        else:  # the step left the bracket: bisect (or double while there is no upper bound)
            s_new = 0.5 * (lo + hi) if math.isfinite(hi) else 2.0 * s
            last_moved = math.inf
            if hi - lo <= 4.0 * _EPS * s_new:
                return s_new, OK
        s = s_new
    return s, NO_CONVERGENCE


@njit(cache=True, nogil=True, error_model="numpy")
def _iv_row(
    price: float, is_call: bool, f: float, k: float, t: float, df: float
) -> tuple[float, int]:
    """Black-76 implied volatility of one discounted price; returns (sigma, status)."""
    if not (
        math.isfinite(price)
        and math.isfinite(f)
        and math.isfinite(k)
        and math.isfinite(t)
        and math.isfinite(df)
        and f > 0.0
        and k > 0.0
        and df > 0.0
    ):
        return math.nan, BAD_INPUT
    if t <= 0.0:
        return math.nan, EXPIRED
    fwd_price = price / df
    if is_call:
        intrinsic = max(f - k, 0.0)
        upper = f
    else:
        intrinsic = max(k - f, 0.0)
        upper = k
    if fwd_price <= intrinsic:
        return math.nan, PRICE_BELOW_INTRINSIC
    if fwd_price >= upper:
        return math.nan, PRICE_ABOVE_MAX
    # Time value of the out-of-the-money twin (parity), normalised by sqrt(F K).
    beta = (fwd_price - intrinsic) / math.sqrt(f * k)
    if beta <= 0.0:  # the time value underflowed: indistinguishable from intrinsic
        return math.nan, PRICE_BELOW_INTRINSIC
    x = -abs(_log_ratio(f, k))
    s, status = _solve_norm_call(beta, x)
    return s / math.sqrt(t), status
