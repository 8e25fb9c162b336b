"""Dealer gamma over a grid of spot levels: the kernels of the positioning figures
(:mod:`engine.risk.positioning`, docs/positioning.md).

Kept beside :mod:`engine.kernels` as :mod:`engine.part_kernels` is: same rules (explicit
signatures, ``out`` and per-row ``status`` arrays, no raising, no Python objects).

The figure is Black-76 cash gamma with no discounting (Deribit's options, ``interest_rate``
0): for one unit of underlying of an option of strike K, forward F, years T and vol sigma,

    d1 = (ln(F / K) + sigma^2 T / 2) / (sigma sqrt(T))
    gamma = phi(d1) / (F sigma sqrt(T))                   (delta per 1 USD move of F)
    cash gamma = gamma F^2 / 100 = phi(d1) F / (sigma sqrt(T)) / 100

in USD of delta per 1 % move of F. Calls and puts have the same gamma.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from numba import float64, int8, njit, void

from engine.kernels import BAD_INPUT, BAD_VOL, EXPIRED, OK

__all__ = ["gamma_profile_kernel", "option_gex_kernel"]

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

_ROW_SIG = void(
    float64[::1],  # strike, USD
    float64[::1],  # forward, USD
    float64[::1],  # T, years
    float64[::1],  # sigma, decimal
    float64[::1],  # out: cash gamma of one unit of underlying, USD per 1 % move
    int8[::1],  # status per option
)

_PROFILE_SIG = void(
    float64[::1],  # strike, USD
    float64[::1],  # forward, USD
    float64[::1],  # T, years
    float64[::1],  # sigma, decimal
    float64[::1],  # weight: the dealers' position, underlying units (signed)
    float64[::1],  # moves: each level's forward as a multiple of today's (1.0: today)
    float64[::1],  # out: sum of weight x cash gamma per level, USD per 1 % move
    int8[::1],  # status per option (a row not OK counts 0)
)


@njit(cache=True, nogil=True, error_model="numpy")
def _status(strike: float, forward: float, T: float, sigma: float) -> int:
    """The domain check of one option."""
    if not (math.isfinite(strike) and math.isfinite(forward) and strike > 0.0 and forward > 0.0):
        return BAD_INPUT
    if not math.isfinite(T):
        return BAD_INPUT
    if T <= 0.0:
        return EXPIRED
    if not (math.isfinite(sigma) and sigma > 0.0):
        return BAD_VOL
    sd = sigma * math.sqrt(T)
    if not (sd > 0.0 and math.isfinite(sd)):
        return BAD_VOL
    return OK


@njit(_ROW_SIG, cache=True, nogil=True, error_model="numpy")
def option_gex_kernel(strike: F64, forward: F64, T: F64, sigma: F64, out: F64, status: I8) -> None:
    """``out[i]``: the cash gamma of one unit of underlying of option ``i`` at its forward, USD
    per 1 % move; NaN where ``status[i]`` is not OK (EXPIRED: 0, the gamma of a payoff)."""
    for i in range(strike.shape[0]):
        st = _status(strike[i], forward[i], T[i], sigma[i])
        status[i] = st
        if st == EXPIRED:
            out[i] = 0.0
            continue
        if st != OK:
            out[i] = math.nan
            continue
        sd = sigma[i] * math.sqrt(T[i])
        d1 = math.log(forward[i] / strike[i]) / sd + 0.5 * sd
        out[i] = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI * forward[i] / sd / 100.0


@njit(_PROFILE_SIG, cache=True, nogil=True, error_model="numpy")
def gamma_profile_kernel(
    strike: F64, forward: F64, T: F64, sigma: F64, weight: F64, moves: F64, out: F64, status: I8
) -> None:
    """``out[k]``: the dealers' total cash gamma with every forward at ``moves[k]`` times its
    own (vols, times and strikes held), USD per 1 % move; options whose ``status`` is not OK or
    whose weight is not finite count 0. A move <= 0 or not finite gives NaN.

    Serial on purpose: 200 levels of a 2,000-option chain take about 3 ms on one core, and
    numba's threads measured 5x slower than that on a busy 2-core machine (bench/positioning.py;
    the risk task runs it in a worker thread beside the engine's own)."""
    n = strike.shape[0]
    log_fk = np.zeros(n)
    sd = np.ones(n)
    w = np.zeros(n)
    for i in range(n):
        st = _status(strike[i], forward[i], T[i], sigma[i])
        if st == OK and not math.isfinite(weight[i]):
            st = BAD_INPUT
        status[i] = st
        if st == OK:
            sd[i] = sigma[i] * math.sqrt(T[i])
            log_fk[i] = math.log(forward[i] / strike[i])
            w[i] = weight[i] * forward[i] / sd[i] * _INV_SQRT_2PI / 100.0
    for k in range(moves.shape[0]):
        m = moves[k]
        if not (m > 0.0 and math.isfinite(m)):
            out[k] = math.nan
            continue
        log_m = math.log(m)
        acc = 0.0
        for i in range(n):
            if w[i] != 0.0:
                d1 = (log_fk[i] + log_m) / sd[i] + 0.5 * sd[i]
                acc += w[i] * math.exp(-0.5 * d1 * d1)
        out[k] = acc * m
