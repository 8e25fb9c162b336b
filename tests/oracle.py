"""Independent reference: 50-digit closed forms with mpmath.

Written from the textbook formulas (Haug, "The Complete Guide to Option Pricing Formulas"),
not from engine.kernels: first-order Greeks in closed form, second-order ones (vanna, volga,
charm) by mpmath's high-precision numerical differentiation of the closed-form price, so they
check the kernel's algebra rather than repeat it.
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp

__all__ = ["DIGITS", "RefGreeks", "ref_black76", "ref_bsm", "ref_inverse", "ref_price"]

DIGITS = 50


@dataclass(frozen=True)
class RefGreeks:
    """Reference values as Python floats (rounded once from 50 digits)."""

    price: float
    delta: float
    gamma: float
    vega: float
    theta: float
    rho: float
    vanna: float
    volga: float
    charm: float


def _price(
    is_call: bool, S: mp.mpf, K: mp.mpf, T: mp.mpf, r: mp.mpf, q: mp.mpf, v: mp.mpf
) -> mp.mpf:
    d1 = (mp.log(S / K) + (r - q + v * v / 2) * T) / (v * mp.sqrt(T))
    d2 = d1 - v * mp.sqrt(T)
    if is_call:
        return S * mp.exp(-q * T) * mp.ncdf(d1) - K * mp.exp(-r * T) * mp.ncdf(d2)
    return K * mp.exp(-r * T) * mp.ncdf(-d2) - S * mp.exp(-q * T) * mp.ncdf(-d1)


def _bsm_mp(
    is_call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float, black: bool
) -> RefGreeks:
    with mp.workdps(DIGITS):
        S_, K_, T_, r_, q_, v = (mp.mpf(x) for x in (S, K, T, r, q, sigma))
        sqrt_t = mp.sqrt(T_)
        d1 = (mp.log(S_ / K_) + (r_ - q_ + v * v / 2) * T_) / (v * sqrt_t)
        d2 = d1 - v * sqrt_t
        dfq = mp.exp(-q_ * T_)
        dfr = mp.exp(-r_ * T_)
        pdf1 = mp.npdf(d1)
        price = _price(is_call, S_, K_, T_, r_, q_, v)
        if is_call:
            delta = dfq * mp.ncdf(d1)
            theta = (
                -S_ * dfq * pdf1 * v / (2 * sqrt_t)
                - r_ * K_ * dfr * mp.ncdf(d2)
                + q_ * S_ * dfq * mp.ncdf(d1)
            )
            rho = K_ * T_ * dfr * mp.ncdf(d2)
        else:
            delta = -dfq * mp.ncdf(-d1)
            theta = (
                -S_ * dfq * pdf1 * v / (2 * sqrt_t)
                + r_ * K_ * dfr * mp.ncdf(-d2)
                - q_ * S_ * dfq * mp.ncdf(-d1)
            )
            rho = -K_ * T_ * dfr * mp.ncdf(-d2)
        if black:
            # Black-76: q = r, and rho holds F fixed.
            rho = -T_ * price
        gamma = dfq * pdf1 / (S_ * v * sqrt_t)
        vega = S_ * dfq * pdf1 * sqrt_t

        def p_of(s: mp.mpf, t: mp.mpf, vol: mp.mpf) -> mp.mpf:
            return _price(is_call, s, K_, t, r_, r_ if black else q_, vol)

        vanna = mp.diff(lambda s, vol: p_of(s, T_, vol), (S_, v), (1, 1))
        volga = mp.diff(lambda vol: p_of(S_, T_, vol), v, 2)
        # charm = d(delta)/dt = -d²V/dS dT
        charm = -mp.diff(lambda s, t: p_of(s, t, v), (S_, T_), (1, 1))
        return RefGreeks(
            *(float(x) for x in (price, delta, gamma, vega, theta, rho, vanna, volga, charm))
        )


def ref_bsm(
    is_call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float
) -> RefGreeks:
    """BSM price and Greeks (raw units as engine.greeks) at 50 digits, rounded to float."""
    return _bsm_mp(is_call, S, K, T, r, q, sigma, black=False)


def ref_black76(is_call: bool, F: float, K: float, T: float, r: float, sigma: float) -> RefGreeks:
    """Black-76 price and Greeks at 50 digits (delta/gamma w.r.t. F; rho = -T·V)."""
    return _bsm_mp(is_call, F, K, T, r, r, sigma, black=True)


def ref_inverse(
    is_call: bool, F: float, K: float, T: float, r: float, sigma: float
) -> tuple[float, float]:
    """Coin premium V/F and price-adjusted delta (Black delta - V/F) at 50 digits."""
    with mp.workdps(DIGITS):
        F_, K_, T_, r_, v = (mp.mpf(x) for x in (F, K, T, r, sigma))
        price = _price(is_call, F_, K_, T_, r_, r_, v)
        d1 = (mp.log(F_ / K_) + v * v / 2 * T_) / (v * mp.sqrt(T_))
        delta = mp.exp(-r_ * T_) * (mp.ncdf(d1) if is_call else -mp.ncdf(-d1))
        coin = price / F_
        return float(coin), float(delta - coin)


def ref_price(
    is_call: bool, S: float, K: float, T: float, r: float, q: float, sigma: float
) -> float:
    """BSM price only, at 50 digits (Black-76: pass S = F, q = r)."""
    with mp.workdps(DIGITS):
        return float(_price(is_call, *(mp.mpf(x) for x in (S, K, T, r, q, sigma))))
