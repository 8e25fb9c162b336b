"""The yardstick: BSM price, Greeks and implied vol in plain numpy + ``scipy.special.ndtr``.

Written the way a user would write it without riskd: whole-array numpy expressions, no numba,
no tricks. It computes only the five figures the requirement names (price, delta, gamma, vega,
theta); riskd's kernel also writes rho, vanna, volga and charm. Units match
:mod:`engine.greeks` (raw derivatives, vega per 1.00 of vol, theta per year).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

__all__ = ["BaselineGreeks", "bsm_numpy", "implied_vol_numpy"]

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


@dataclass(frozen=True, slots=True)
class BaselineGreeks:
    """Price and the four Greeks the baseline computes, in :mod:`engine.greeks` units."""

    price: F64
    delta: F64
    gamma: F64
    vega: F64
    theta: F64


def bsm_numpy(
    is_call: BoolArray, S: F64, K: F64, T: F64, r: F64, q: F64, sigma: F64
) -> BaselineGreeks:
    """Generalised BSM (continuous yield q): price, delta, gamma, vega, theta, vectorised.

    No input checks: T > 0 and sigma > 0 are assumed, as in most hand-written code.
    """
    sign = np.where(is_call, 1.0, -1.0)
    sqrt_t = np.sqrt(T)
    vol_sqrt_t = sigma * sqrt_t
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma**2) * T) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    dfq = np.exp(-q * T)
    s_dfq = S * dfq
    k_dfr = K * np.exp(-r * T)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1**2)
    nd1 = ndtr(sign * d1)  # N(d1) for calls, N(-d1) for puts
    nd2 = ndtr(sign * d2)
    price = sign * (s_dfq * nd1 - k_dfr * nd2)
    delta = sign * dfq * nd1
    gamma = dfq * pdf_d1 / (S * vol_sqrt_t)
    vega = s_dfq * pdf_d1 * sqrt_t
    theta = -s_dfq * pdf_d1 * sigma / (2.0 * sqrt_t) + sign * (q * s_dfq * nd1 - r * k_dfr * nd2)
    return BaselineGreeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)


def _price_vega(sign: F64, S: F64, K: F64, T: F64, r: F64, q: F64, sigma: F64) -> tuple[F64, F64]:
    sqrt_t = np.sqrt(T)
    vol_sqrt_t = sigma * sqrt_t
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma**2) * T) / vol_sqrt_t
    d2 = d1 - vol_sqrt_t
    s_dfq = S * np.exp(-q * T)
    price = sign * (s_dfq * ndtr(sign * d1) - K * np.exp(-r * T) * ndtr(sign * d2))
    vega = s_dfq * _INV_SQRT_2PI * np.exp(-0.5 * d1**2) * sqrt_t
    return price, vega


def implied_vol_numpy(
    price: F64,
    is_call: BoolArray,
    S: F64,
    K: F64,
    T: F64,
    r: F64,
    q: F64,
    *,
    sigma0: float = 0.5,
    sigma_lo: float = 1e-4,
    sigma_hi: float = 10.0,
    xtol: float = 1e-12,
    max_iter: int = 100,
) -> tuple[F64, BoolArray]:
    """Newton's method on sigma with a bisection fallback, over the rows not yet converged.

    Each step is Newton's ``sigma - (V(sigma) - price) / vega``; a step that leaves the bracket
    ``[lo, hi]`` (which every evaluation narrows) is replaced by bisection. A row stops when the
    step is below ``xtol`` relative to sigma, or the bracket is that narrow.

    Returns:
        (sigma, converged). sigma is NaN where the price is outside the no-arbitrage bounds;
        ``converged`` is False there and where ``max_iter`` ran out.
    """
    sign = np.where(is_call, 1.0, -1.0)
    s_dfq = S * np.exp(-q * T)
    k_dfr = K * np.exp(-r * T)
    lower = np.maximum(sign * (s_dfq - k_dfr), 0.0)
    upper = np.where(is_call, s_dfq, k_dfr)
    n = price.shape[0]
    sigma = np.full(n, np.nan)
    converged = np.zeros(n, dtype=np.bool_)
    active = np.flatnonzero((price > lower) & (price < upper))
    sigma[active] = sigma0
    lo = np.full(active.size, sigma_lo)
    hi = np.full(active.size, sigma_hi)
    for _ in range(max_iter):
        if active.size == 0:
            break
        s = sigma[active]
        model, vega = _price_vega(
            sign[active], S[active], K[active], T[active], r[active], q[active], s
        )
        diff = model - price[active]
        hi = np.where(diff > 0.0, s, hi)
        lo = np.where(diff < 0.0, s, lo)
        with np.errstate(divide="ignore", invalid="ignore"):
            newton = s - diff / vega
        inside = (newton > lo) & (newton < hi)
        s_new = np.where(inside, newton, 0.5 * (lo + hi))
        sigma[active] = s_new
        done = (diff == 0.0) | (np.abs(s_new - s) <= xtol * s_new) | (hi - lo <= xtol * s_new)
        converged[active[done]] = True
        keep = ~done
        active, lo, hi = active[keep], lo[keep], hi[keep]
    return sigma, converged
