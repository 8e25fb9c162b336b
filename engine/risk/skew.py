"""One expiry's volatility smile: Gatheral's raw SVI fit, its no-arbitrage checks, the 25-delta
skew profile and the ATM term structure across expiries (docs/skew.md).

Conventions:

- ``k = ln(K / F)``: log-moneyness against the expiry's forward ``F``; ATM is the forward, k = 0.
- Vols are decimals (0.65 for 65 %) per √year; ``T`` is in years (ACT/365); ``w = vol² T`` is
  the total implied variance. Only the fit residual is in vol points (``rmse_vol_points``).
- Delta, on Black-76 at r = 0: linear options use the forward delta N(d1) (put N(d1) - 1);
  coin-settled (Deribit inverse) options the premium-adjusted forward delta (K/F) N(d2) (put
  (K/F)(N(d2) - 1)), which is N(d1) less the coin premium V/F.
- Raw SVI: ``w(k) = a + b (ρ (k - m) + √((k - m)² + σ²))``, with b >= 0, |ρ| < 1, σ > 0 and
  a + b σ √(1 - ρ²) >= 0 (the smallest total variance).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.arguments import broadcast
from engine.greeks import inverse

# scipy.optimize is imported in the functions that fit, not here: the daemon's own process
# imports this module but runs its fits in the worker process (engine.runtime.worker), so it
# never pays that import at start-up (about 0.15 s and 30 MB resident).

__all__ = [
    "DELTA",
    "LEE_MAX_SLOPE",
    "MIN_STRIKES",
    "AtmTermStructure",
    "ButterflyCheck",
    "SkewProfile",
    "SmileStatus",
    "SviFit",
    "SviParams",
    "atm_term_structure",
    "butterfly_check",
    "fit_svi",
    "forward_delta",
    "skew_profile",
    "vol_at",
]

FloatArray = npt.NDArray[np.float64]

MIN_STRIKES = 5
"""Fewest distinct strikes with a usable vol that :func:`fit_svi` fits (SVI has 5 parameters)."""
LEE_MAX_SLOPE = 2.0
"""Roger Lee's moment formula (2004): a wing of total variance grows at most like 2 |k|."""
DELTA = 0.25
"""The delta of the skew profile's wings."""
_RHO_MAX = 0.999
_LM_MAXFEV = 100  # Levenberg-Marquardt's evaluations; one that has not converged is polished
_RESTARTS = 8  # Nelder-Mead runs at most (the first and its restarts), polishing
_MAXFEV = 600  # evaluations per run: a run that crawls is restarted with a fresh simplex
_FD_STEP = 2.0**-26  # forward differences of the residuals: √(machine epsilon), relative
_K_HALF_WIDTH = 4.0  # the g(k) grid spans m ± 4 in log-moneyness (K/F from 0.018 to 55)


class SmileStatus(StrEnum):
    """Outcome of a fit or a skew profile.

    Attributes:
        OK: fitted (profile: every figure computed).
        TOO_FEW_STRIKES: fewer than :data:`MIN_STRIKES` distinct strikes with a usable vol; no fit.
        NO_DELTA_STRIKE: the fitted smile has no 25-delta call or put strike (a premium-adjusted
            call delta peaks below 0.25 when vol √T is large); the wings and RR/BF are NaN.
    """

    OK = "ok"
    TOO_FEW_STRIKES = "too_few_strikes"
    NO_DELTA_STRIKE = "no_delta_strike"


@dataclass(frozen=True, slots=True)
class SviParams:
    """Gatheral's raw SVI total variance ``w(k) = a + b (ρ (k - m) + √((k - m)² + σ²))``.

    Raises:
        ValueError: a parameter is not finite, b < 0, |ρ| >= 1, σ <= 0, or
            a + b σ √(1 - ρ²) < 0 (negative total variance); names it.
    """

    a: float
    b: float
    rho: float
    m: float
    sigma: float

    def __post_init__(self) -> None:
        checks = {
            "a": math.isfinite(self.a),
            "b": 0.0 <= self.b < math.inf,
            "rho": abs(self.rho) < 1.0,
            "m": math.isfinite(self.m),
            "sigma": 0.0 < self.sigma < math.inf,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"SviParams.{name} is out of range: {getattr(self, name)!r}")
        if self.min_variance < -1e-12:
            raise ValueError(
                f"SviParams.a: a + b sigma sqrt(1 - rho^2) = {self.min_variance!r} < 0"
            )

    @property
    def min_variance(self) -> float:
        """The smallest total variance, a + b σ √(1 - ρ²)."""
        return self.a + self.b * self.sigma * math.sqrt(1.0 - self.rho * self.rho)

    @property
    def wing_slope(self) -> float:
        """The steeper wing's slope of w(k) as |k| → ∞, b (1 + |ρ|); Lee: at most 2."""
        return self.b * (1.0 + abs(self.rho))

    def total_variance(self, k: npt.ArrayLike) -> FloatArray:
        """w(k), total implied variance (vol² T) at log-moneyness ``k`` (floored at 0: a zero
        smallest variance can round a hair below it)."""
        x = np.asarray(k, dtype=np.float64) - self.m
        return np.maximum(self.a + self.b * (self.rho * x + np.hypot(x, self.sigma)), 0.0)

    def vol(self, k: npt.ArrayLike, T: float) -> FloatArray:
        """Implied vol (decimal) at log-moneyness ``k`` of an expiry ``T`` years away: √(w / T)."""
        return np.sqrt(self.total_variance(k) / T)

    def g(self, k: npt.ArrayLike) -> FloatArray:
        """Gatheral and Jacquier's (2014) density factor
        ``g(k) = (1 - k w'/(2w))² - w'²/4 (1/w + 1/4) + w''/2``: the density of ln(S_T/F) at k
        is g(k) φ(d2) / √w, so the slice is free of butterfly arbitrage where g >= 0. Not
        finite where w = 0."""
        kk = np.asarray(k, dtype=np.float64)
        x = kk - self.m
        r = np.hypot(x, self.sigma)
        w = self.a + self.b * (self.rho * x + r)
        w1 = self.b * (self.rho + x / r)
        w2 = self.b * self.sigma**2 / r**3
        with np.errstate(divide="ignore", invalid="ignore"):
            g = (1.0 - kk * w1 / (2.0 * w)) ** 2 - w1 * w1 / 4.0 * (1.0 / w + 0.25) + w2 / 2.0
        return np.asarray(g)


@dataclass(frozen=True, slots=True)
class ButterflyCheck:
    """Butterfly-arbitrage checks of one SVI slice: the smallest g(k) on the grid and where
    (log-moneyness), and the steeper wing's slope b (1 + |ρ|) against Lee's bound 2."""

    g_min: float
    k_at_g_min: float
    wing_slope: float

    @property
    def arbitrage_free(self) -> bool:
        """g >= 0 on the grid and the wings within Lee's bound."""
        return self.g_min >= 0.0 and self.wing_slope <= LEE_MAX_SLOPE


def butterfly_check(params: SviParams, k: npt.ArrayLike | None = None) -> ButterflyCheck:
    """Gatheral's density condition g(k) >= 0 on a grid, and Roger Lee's wing bound.

    Args:
        params: the slice.
        k: log-moneyness grid; default 2001 points over m ± 4, spaced σ sinh(t) from m (dense
            where the smile bends: ~σ/300 apart near m).

    Raises:
        ValueError: ``k`` is not a non-empty 1-D array of finite numbers.
    """
    if k is None:
        t = math.asinh(_K_HALF_WIDTH / params.sigma)
        grid = params.m + params.sigma * np.sinh(np.linspace(-t, t, 2001))
    else:
        grid = np.asarray(k, dtype=np.float64)
        if grid.ndim != 1 or grid.size == 0 or not np.all(np.isfinite(grid)):
            raise ValueError(f"k must be a non-empty 1-D array of finite numbers, got {k!r}")
    g = params.g(grid)
    i = int(np.nanargmin(g))
    return ButterflyCheck(
        g_min=float(g[i]), k_at_g_min=float(grid[i]), wing_slope=params.wing_slope
    )


@dataclass(frozen=True, slots=True)
class SviFit:
    """One expiry's fitted smile.

    Attributes:
        status: OK, or TOO_FEW_STRIKES (then ``params`` and ``butterfly`` are None, the RMSE NaN).
        F: the expiry's forward. T: years to expiry.
        n_quotes: quotes used (finite, positive strike, vol and weight).
        params: raw SVI parameters of total variance.
        rmse_vol_points: root mean square of fitted minus quoted vol over the quotes used, in
            vol points (0.01 of vol).
        butterfly: :func:`butterfly_check` of ``params``.
    """

    status: SmileStatus
    F: float
    T: float
    n_quotes: int
    params: SviParams | None
    rmse_vol_points: float
    butterfly: ButterflyCheck | None


def fit_svi(
    K: npt.ArrayLike, vol: npt.ArrayLike, F: float, T: float, weights: npt.ArrayLike | None = None
) -> SviFit:
    """Fit raw SVI to one expiry's implied vols (docs/skew.md).

    Least squares in vol, each quote's total-variance residual divided by 2 vol T (to first
    order its vol residual): equal weights in vol unless ``weights`` are given (e.g. vega, or 1 /
    bid-ask spread). Zeliade's quasi-explicit split: for each (m, σ, ρ) the best
    a + b σ √(1 - ρ²) >= 0 and 0 <= b <= 2 / (1 + |ρ|) (Lee) are exact (linear least squares
    on a box); (m, σ, ρ) is searched by Nelder-Mead from the best point of a 5 x 4 x 5 grid,
    restarted where it stops until a restart no longer improves it.

    Args:
        K: strikes. vol: their implied vols, decimals; a call and a put of one strike may both
            be given. Quotes with a non-finite or non-positive strike, vol or weight are left out.
        F: the expiry's forward (> 0). T: years to expiry (> 0).
        weights: relative weight per quote (default equal).

    Returns:
        The fit; status TOO_FEW_STRIKES, not an exception, with fewer than 5 usable strikes.

    Raises:
        ValueError: F or T is not finite and > 0, or the arrays are not numeric or do not
            broadcast; names it.
    """
    for name, x in (("F", F), ("T", T)):
        if not (math.isfinite(x) and x > 0.0):
            raise ValueError(f"{name} must be finite and > 0, got {x!r}")
    u_in = 1.0 if weights is None else weights
    _, _, (kk, v, u) = broadcast({}, {"K": K, "vol": vol, "weights": u_in})
    ok = np.isfinite(kk) & (kk > 0.0) & np.isfinite(v) & (v > 0.0) & np.isfinite(u) & (u > 0.0)
    k, v, u = np.log(kk[ok] / F), v[ok], u[ok]
    if np.unique(k).size < MIN_STRIKES:
        return SviFit(SmileStatus.TOO_FEW_STRIKES, F, T, int(k.size), None, math.nan, None)
    params = _fit(k, v * v * T, u / (u.mean() * (2.0 * v * T) ** 2))
    err = params.vol(k, T) - v
    rmse = 100.0 * math.sqrt(float(np.mean(err * err)))
    return SviFit(SmileStatus.OK, F, T, int(k.size), params, rmse, butterfly_check(params))


def _linear(x: FloatArray, k: FloatArray, y: FloatArray, om: FloatArray) -> FloatArray:
    """For each (m, σ, ρ) row of ``x``: w = c + b h(k) with h = ρ (k - m) + √((k - m)² + σ²) -
    σ √(1 - ρ²) >= 0, so c is the smallest total variance. The least squares (weights ``om``)
    over the box c >= 0, 0 <= b <= 2 / (1 + |ρ|) is convex: its optimum is the free one if
    feasible, else the best of the clipped optima on the box's edges
    (:func:`engine.kernels.svi_linear_kernel`). Returns (rows, 3): c, b and the weighted sum of
    squares."""
    out = np.empty((x.shape[0], 3))
    kernels.svi_linear_kernel(x, k, y, om, LEE_MAX_SLOPE, out)
    return out


def _fit(k: FloatArray, y: FloatArray, om: FloatArray) -> SviParams:
    """Raw SVI minimising sum(om (w(k) - y)²) (see :func:`fit_svi`)."""
    box = _Box.of(k)
    x0 = _grid_start(k, y, om)
    x, converged = _levenberg_marquardt(box, x0, k, y, om)
    if not converged:  # Nelder-Mead from the start, or where Levenberg-Marquardt stopped
        ends = np.stack([_nelder_mead(box, x0, k, y, om), x])
        x = ends[np.argmin(np.nan_to_num(_linear(ends, k, y, om)[:, 2], nan=np.inf))]
    m, s, rho = (float(z) for z in x)
    c, b, _ = _linear(x[None, :].copy(), k, y, om)[0].tolist()
    return SviParams(a=c - b * s * math.sqrt(1.0 - rho * rho), b=b, rho=rho, m=m, sigma=s)


class _Box(NamedTuple):
    """Where the outer search looks for (m, σ, ρ): m within the strikes' range widened by its
    width on each side, σ from 0.001 to 10 times that width, |ρ| <= 0.999."""

    lower: FloatArray
    upper: FloatArray

    @classmethod
    def of(cls, k: FloatArray) -> _Box:
        lo, hi = float(k.min()), float(k.max())
        span = hi - lo
        return cls(
            np.array([lo - span, 1e-3 * span, -_RHO_MAX]),
            np.array([hi + span, 10.0 * span, _RHO_MAX]),
        )

    def inside(self, w: FloatArray) -> FloatArray:
        """The point of the box for unbounded ``w``: m and ρ by tanh, σ by tanh of its log."""
        t = np.tanh(w)
        lo, hi = self.lower, self.upper
        return np.array(
            [
                0.5 * (lo[0] + hi[0]) + 0.5 * (hi[0] - lo[0]) * t[0],
                math.sqrt(lo[1] * hi[1]) * (hi[1] / lo[1]) ** (0.5 * t[1]),
                hi[2] * t[2],
            ]
        )

    def unbounded(self, x: FloatArray) -> FloatArray:
        """The inverse of :meth:`inside`, for a point strictly inside the box."""
        lo, hi = self.lower, self.upper
        t = np.array(
            [
                (2.0 * x[0] - lo[0] - hi[0]) / (hi[0] - lo[0]),
                math.log(x[1] / math.sqrt(lo[1] * hi[1])) / (0.5 * math.log(hi[1] / lo[1])),
                x[2] / hi[2],
            ]
        )
        w: FloatArray = np.arctanh(t)
        return w


def _grid_start(k: FloatArray, y: FloatArray, om: FloatArray) -> FloatArray:
    """The best (m, σ, ρ) of a 5 x 4 x 5 grid inside the search box (the first if none has a
    finite sum of squares)."""
    lo, hi = float(k.min()), float(k.max())
    span = hi - lo
    axes = (
        np.linspace(lo, hi, 5),
        span * np.array([0.05, 0.15, 0.4, 1.0]),
        np.linspace(-0.8, 0.8, 5),
    )
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    grid_sse = _linear(np.ascontiguousarray(grid), k, y, om)[:, 2]
    start: FloatArray = grid[np.argmin(np.where(np.isnan(grid_sse), np.inf, grid_sse))]
    return start


def _levenberg_marquardt(
    box: _Box, x0: FloatArray, k: FloatArray, y: FloatArray, om: FloatArray
) -> tuple[FloatArray, bool]:
    """The outer least squares by MINPACK's Levenberg-Marquardt from ``x0``, over unbounded
    coordinates mapped into the box (:meth:`_Box.inside`), the Jacobian by forward differences
    in one kernel call. Returns where it ended and whether it converged: not within
    :data:`_LM_MAXFEV` evaluations (an optimum on the box's edge, where the map flattens), nor
    when it started or ended where a residual is not finite (then it returns ``x0``)."""
    n = k.shape[0]

    def residuals(w: FloatArray) -> FloatArray:
        res = np.empty((1, n))
        kernels.svi_residual_kernel(box.inside(w)[None, :], k, y, om, LEE_MAX_SLOPE, res)
        row: FloatArray = res[0]
        return row

    def jacobian(w: FloatArray) -> FloatArray:
        ws = np.repeat(w[None, :], 4, axis=0)
        step = _FD_STEP * np.maximum(1.0, np.abs(w))
        ws[1:] += np.diag(step)
        res = np.empty((4, n))
        kernels.svi_residual_kernel(
            np.stack([box.inside(v) for v in ws]), k, y, om, LEE_MAX_SLOPE, res
        )
        jac: FloatArray = ((res[1:] - res[0]) / (np.diag(ws[1:]) - w)[:, None]).T
        return jac

    from scipy.optimize import least_squares  # imported here: see the module note

    w0 = box.unbounded(x0)
    start = residuals(w0)
    if not np.isfinite(start).all():
        return x0, False
    found = least_squares(
        residuals, w0, jac=jacobian, method="lm",
        xtol=1e-12, ftol=1e-15, gtol=1e-15, max_nfev=_LM_MAXFEV,
    )  # fmt: skip
    if not 2.0 * found.cost <= float(start @ start):
        return x0, False
    x: FloatArray = box.inside(found.x)
    return x, found.status > 0


def _nelder_mead(
    box: _Box, best: FloatArray, k: FloatArray, y: FloatArray, om: FloatArray
) -> FloatArray:
    """The outer search by Nelder-Mead on the box from ``best``, restarted from where it
    stopped (a fresh simplex) until a restart no longer improves it."""
    from scipy.optimize import minimize  # imported here: see the module note

    span = (box.upper[0] - box.lower[0]) / 3.0
    one = np.empty((1, 3))
    fitted = np.empty((1, 3))

    def sse(x: FloatArray) -> float:
        one[0] = x
        kernels.svi_linear_kernel(one, k, y, om, LEE_MAX_SLOPE, fitted)
        return float(fitted[0, 2])

    for _ in range(_RESTARTS):
        step = np.diag([0.1 * span, 0.5 * best[1], -0.2 * math.copysign(1.0, best[2])])
        res = minimize(
            sse,
            best,
            method="Nelder-Mead",
            bounds=list(zip(box.lower, box.upper, strict=True)),
            options={
                "initial_simplex": np.vstack([best, best + step]),
                "xatol": 1e-10,
                "fatol": 1e-20,
                "maxfev": _MAXFEV,
            },
        )
        improved = res.fun < sse(best) * (1.0 - 1e-9)
        best = res.x
        if not improved:
            break
    return best


def vol_at(fit: SviFit, K: npt.ArrayLike) -> FloatArray:
    """Implied vol (decimal) of the fitted smile at strikes ``K`` of the fit's expiry,
    √(w(ln(K/F)) / T), in the shape of ``K``; NaN when the expiry has no fit.

    Raises:
        ValueError: a strike is not finite and > 0.
    """
    kk = np.asarray(K, dtype=np.float64)
    if not np.all(np.isfinite(kk) & (kk > 0.0)):
        raise ValueError(f"K must be finite and > 0, got {K!r}")
    if fit.params is None:
        return np.full(kk.shape, np.nan)
    return fit.params.vol(np.log(kk / fit.F), fit.T)


def forward_delta(
    is_call: npt.ArrayLike,
    F: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    sigma: npt.ArrayLike,
    *,
    coin_settled: bool,
) -> FloatArray:
    """The skew's delta, by :func:`engine.greeks.inverse` at r = 0; arguments broadcast.

    Linear options (``coin_settled=False``): the forward delta N(d1), put N(d1) - 1 (Deribit's
    ticker delta). Coin-settled options: the premium-adjusted forward delta N(d1) - V/F =
    (K/F) N(d2), put (K/F)(N(d2) - 1) (Deribit's price-adjusted delta). Rows that cannot be
    priced are NaN (T <= 0: the expiry limit).

    Args:
        is_call: True for calls. F: forward. K: strike. T: years. sigma: vol, a decimal.
        coin_settled: premium-adjusted (coin premium) or plain forward delta.
    """
    g = inverse(is_call, F, K, T, 0.0, sigma)
    return g.delta_adj if coin_settled else g.delta


@dataclass(frozen=True, slots=True)
class SkewProfile:
    """ATM vol, 25-delta wings, risk reversal and butterfly of one fitted expiry; vols decimal,
    strikes in the forward's currency. ``risk_reversal`` = vol 25Δ call - vol 25Δ put;
    ``butterfly`` = ½ (vol 25Δ call + vol 25Δ put) - ATM vol. NaN where ``status`` says."""

    status: SmileStatus
    coin_settled: bool
    atm_vol: float
    call25_strike: float
    call25_vol: float
    put25_strike: float
    put25_vol: float
    risk_reversal: float
    butterfly: float


def skew_profile(fit: SviFit, *, coin_settled: bool) -> SkewProfile:
    """ATM vol (at the forward, k = 0), the 25-delta call and put on the fitted smile, RR and BF.

    The 25-delta strikes solve delta(K, vol(K)) = ±0.25 on the smile (:func:`forward_delta`,
    premium-adjusted if ``coin_settled``). A premium-adjusted call delta rises from 0 at K = 0 to
    a peak and falls again: the call is the root above the peak (the out-of-the-money one), and
    there is none when the peak is below 0.25 (status NO_DELTA_STRIKE). The put is the root
    below the put delta's trough.
    """
    p = fit.params
    if p is None:
        return SkewProfile(fit.status, coin_settled, *([math.nan] * 7))
    atm = float(p.vol(0.0, fit.T))
    kc, kp = (_delta_k(fit, p, is_call, coin_settled) for is_call in (True, False))
    vc, vp = (float(p.vol(x, fit.T)) for x in (kc, kp))
    status = SmileStatus.OK if math.isfinite(kc + kp) else SmileStatus.NO_DELTA_STRIKE
    return SkewProfile(
        status=status,
        coin_settled=coin_settled,
        atm_vol=atm,
        call25_strike=fit.F * math.exp(kc),
        call25_vol=vc,
        put25_strike=fit.F * math.exp(kp),
        put25_vol=vp,
        risk_reversal=vc - vp,
        butterfly=0.5 * (vc + vp) - atm,
    )


def _delta_k(fit: SviFit, p: SviParams, is_call: bool, coin_settled: bool) -> float:
    """Log-moneyness of the 25-delta call (put) on the smile, NaN if none: the first root of
    ±delta = 0.25 above (below) the peak of ±delta on a grid of ±10 ATM standard deviations,
    refined by Brent's method."""
    sign = 1.0 if is_call else -1.0

    def excess(k: npt.ArrayLike) -> FloatArray:
        K, vol = fit.F * np.exp(k), p.vol(k, fit.T)
        return (
            sign * forward_delta(is_call, fit.F, K, fit.T, vol, coin_settled=coin_settled) - DELTA
        )

    half = max(10.0 * math.sqrt(float(p.total_variance(0.0))), 1e-3)
    grid = np.linspace(-half, half, 801)
    e = excess(grid)
    peak = int(np.nanargmax(e))
    ahead = e[peak:] if is_call else e[peak::-1]
    past = np.flatnonzero(ahead < 0.0)
    if e[peak] <= 0.0 or past.size == 0:
        return math.nan
    j = peak + int(past[0]) * int(sign)
    lo, hi = sorted((float(grid[j]), float(grid[j - int(sign)])))
    from scipy.optimize import brentq  # imported here: see the module note

    return float(brentq(lambda z: float(excess(z)), lo, hi, xtol=1e-14))


@dataclass(frozen=True, slots=True)
class AtmTermStructure:
    """ATM vols by expiry, ascending ``T`` (years). ``forward_vol[i]`` is the ATM vol between
    the previous expiry and this one, √((w_i - w_{i-1}) / (T_i - T_{i-1})) with w the ATM total
    variance (the first: its ATM vol); NaN where w falls, a calendar arbitrage at the money."""

    T: FloatArray
    atm_vol: FloatArray
    forward_vol: FloatArray


def atm_term_structure(fits: Iterable[SviFit]) -> AtmTermStructure:
    """The ATM (k = 0) vols of one underlying's fitted expiries; expiries without a fit are left
    out.

    Raises:
        ValueError: two fits have the same T.
    """
    pts = sorted((f.T, float(f.params.total_variance(0.0))) for f in fits if f.params is not None)
    t = np.array([p[0] for p in pts], dtype=np.float64)
    w = np.array([p[1] for p in pts], dtype=np.float64)
    if np.any(np.diff(t) <= 0.0):
        raise ValueError(f"fits must have distinct T, got {t!r}")
    dw, dt = np.diff(w, prepend=0.0), np.diff(t, prepend=0.0)
    forward = np.where(dw >= 0.0, np.sqrt(np.maximum(dw, 0.0) / dt), np.nan)
    return AtmTermStructure(T=t, atm_vol=np.sqrt(w / t), forward_vol=forward)
