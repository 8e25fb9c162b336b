"""Implied forwards and dividends, per expiry, from put-call parity across the chain.

European options on one underlying and expiry satisfy ``C(K) - P(K) = DF (F - K)``, ``DF`` the
discount factor to the expiry, ``F`` the forward, whatever the dividends. Each strike quoted on
both sides therefore gives one estimate ``f(K) = K + (C - P) / DF`` (mid prices). Two methods
(docs/units.md#implied-forwards):

- :attr:`ForwardMethod.MEDIAN` (default): the classic robust estimate. Strikes whose call or
  put lacks a two-sided quote (missing side, bid <= 0, crossed bid > ask, non-finite) are
  dropped; the pivot is the strike with the smallest ``|C - P|`` (the Cboe rule); of the
  ``near_strikes`` strikes nearest the pivot's forward, those whose summed call and put spread
  exceeds ``wide_spread_multiple`` times the window's median are dropped; ``F`` is the median of
  the remaining ``f(K)`` weighted by ``1 / spread²``; strikes farther from it than
  ``outlier_mads`` robust standard deviations (1.4826 x the weighted median absolute deviation)
  and than their own quote's half-width ``spread / (2 DF)`` are dropped and the weighted median
  taken again.
- :attr:`ForwardMethod.CBOE`: the VIX white paper's rule: ``F = K + (C - P) / DF`` at the one
  strike with the smallest ``|C - P|`` (``/ DF`` is the paper's ``e^{RT}``).

Only strikes near the money are used: there a quote's spread is narrowest in forward terms and,
for American options (SPY), the early-exercise premiums of the call and the put are smallest.
For American options parity is only the inequality ``S - D - K <= C - P <= S - K DF``; the
forward implied from their mids as if European is an approximation (not de-Americanised): its
bias is about the difference of the near-the-money early-exercise premiums over ``DF``.

The implied dividend yield ``q`` solves ``F = S e^{(r - q) T}`` with ``r = -ln(DF) / T``; the
present value of the dividends is ``S - DF F`` (both need the spot ``S``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat, PositiveInt
from engine.curves import ZeroCurve
from engine.daycount import year_fraction

__all__ = [
    "ChainQuotes",
    "ForwardFitConfig",
    "ForwardMethod",
    "ImpliedForward",
    "implied_forward",
    "implied_forwards",
]

FloatArray = npt.NDArray[np.float64]

MAD_TO_SIGMA = 1.482602218505602
"""A normal sample's standard deviation per median absolute deviation: 1 / Phi^-1(3/4)."""
_TINY_SPREAD = 1e-12
"""Spreads are floored at this fraction of the highest strike before weighting: a locked quote
(or a mid given as bid = ask) weighs most, never infinitely."""


class ForwardMethod(StrEnum):
    """How the forward is estimated from the strikes' parity forwards (module docstring)."""

    MEDIAN = "median"
    CBOE = "cboe"


class ForwardFitConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How an implied forward is fitted.

    Attributes:
        method: :class:`ForwardMethod`.
        near_strikes: the strikes nearest the pivot's forward that the median uses.
        wide_spread_multiple: a strike whose call + put spread exceeds this multiple of the
            window's median is dropped.
        outlier_mads: a strike whose forward lies farther than this many robust standard
            deviations from the median (and outside its own quote) is dropped.
    """

    method: ForwardMethod = ForwardMethod.MEDIAN
    near_strikes: PositiveInt = 10
    wide_spread_multiple: PositiveFloat = 3.0
    outlier_mads: PositiveFloat = 5.0


class ImpliedForward(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One expiry's forward and dividends implied by its options.

    Attributes:
        expiry_ns: the expiry, int UNIX ns (0: not given).
        years: time to expiry, years ACT/365 (NaN: not given).
        forward: the implied forward F, in the strikes' currency (NaN: no usable strike).
        discount_factor: DF to the expiry used (from the rate curve).
        dividend_yield: q, continuously compounded decimal per year (NaN without spot or T).
        dividend_pv: present value of the dividends to the expiry, ``S - DF F``, in the
            strikes' currency (NaN without spot).
        residual: weighted root mean square of the used strikes' parity forwards about F, in
            the strikes' currency (0 for one strike).
        strikes_used: strikes F rests on.
        pivot_strike: the strike with the smallest ``|C - P|`` (NaN: none).
        method: how F was estimated.
    """

    expiry_ns: int = 0
    years: float = math.nan
    forward: float
    discount_factor: float
    dividend_yield: float = math.nan
    dividend_pv: float = math.nan
    residual: float = math.nan
    strikes_used: int = 0
    pivot_strike: float = math.nan
    method: ForwardMethod


@dataclass(frozen=True, slots=True)
class ChainQuotes:
    """Option quotes of one underlying, any expiries, one row per option (arrays of one shape).

    Attributes:
        expiry_ns: int UNIX ns. strike: in the quote currency. is_call: bool.
        bid, ask: the latest quote, quote currency (NaN: that side is missing).
    """

    expiry_ns: npt.NDArray[np.int64]
    strike: FloatArray
    is_call: npt.NDArray[np.bool_]
    bid: FloatArray
    ask: FloatArray


def _two_sided(bid: FloatArray, ask: FloatArray) -> npt.NDArray[np.bool_]:
    """Quotes with a finite bid > 0 and an ask at or above it (crossed and one-sided: no)."""
    return np.isfinite(bid) & np.isfinite(ask) & (bid > 0.0) & (ask >= bid)


def _weighted_median(values: FloatArray, weights: FloatArray) -> float:
    """The weighted median: the middle of the two central values when the weights split
    exactly in half (the plain median for equal weights)."""
    order = np.argsort(values, kind="stable")
    v, cw = values[order], np.cumsum(weights[order])
    half = 0.5 * cw[-1]
    i = int(np.searchsorted(cw, half))
    i = min(i, v.size - 1)
    if i + 1 < v.size and abs(cw[i] - half) <= 1e-12 * cw[-1]:
        return float(0.5 * (v[i] + v[i + 1]))
    return float(v[i])


def _robust_forward(
    fwd: FloatArray, spread: FloatArray, df: float, fit: ForwardFitConfig
) -> tuple[float, float, int]:
    """(F, residual, strikes used) from the window's parity forwards and spreads."""
    wide = spread > fit.wide_spread_multiple * np.median(spread)
    fwd, spread = fwd[~wide], spread[~wide]
    weight = 1.0 / np.square(spread)
    center = _weighted_median(fwd, weight)
    dev = np.abs(fwd - center)
    sigma = MAD_TO_SIGMA * _weighted_median(dev, weight)
    keep = (dev <= fit.outlier_mads * sigma) | (dev <= spread / (2.0 * df))
    fwd, weight = fwd[keep], weight[keep]
    center = _weighted_median(fwd, weight)
    residual = math.sqrt(float(np.sum(weight * np.square(fwd - center)) / np.sum(weight)))
    return center, residual, int(fwd.size)


def implied_forward(
    strike: Any,
    call_bid: Any,
    call_ask: Any,
    put_bid: Any,
    put_ask: Any,
    discount_factor: float,
    *,
    years: float = math.nan,
    spot: float = math.nan,
    expiry_ns: int = 0,
    fit: ForwardFitConfig = ForwardFitConfig(),  # noqa: B008 (frozen, shared on purpose)
) -> ImpliedForward:
    """The forward and dividends one expiry's calls and puts imply (module docstring).

    Args:
        strike: strikes, one row each (any order), quote currency.
        call_bid, call_ask, put_bid, put_ask: each strike's call and put quote, quote currency;
            NaN where a side is missing.
        discount_factor: DF to the expiry, ``exp(-r T)`` (> 0).
        years: time to expiry, years ACT/365 (for ``dividend_yield``).
        spot: the underlying's spot, quote currency (for the dividends).
        expiry_ns: carried into the result.
        fit: the method and its limits.

    Returns:
        The estimate; ``forward`` NaN and ``strikes_used`` 0 when no strike has both sides.

    Raises:
        ValueError: arrays of different shapes, or a discount factor that is not finite > 0.
    """
    k, cb, ca, pb, pa = (
        np.ravel(np.asarray(x, dtype=np.float64))
        for x in (strike, call_bid, call_ask, put_bid, put_ask)
    )
    if not k.size == cb.size == ca.size == pb.size == pa.size:
        raise ValueError("strike and the four quote arrays must have one size")
    df = float(discount_factor)
    if not (math.isfinite(df) and df > 0.0):
        raise ValueError(f"discount_factor must be finite and > 0, got {df}")
    ok = _two_sided(cb, ca) & _two_sided(pb, pa) & np.isfinite(k) & (k > 0.0)
    order = np.flatnonzero(ok)[np.argsort(k[ok], kind="stable")]
    k = k[order]
    parity = 0.5 * (cb[order] + ca[order]) - 0.5 * (pb[order] + pa[order])  # C - P
    fwd = k + parity / df
    spread = (ca - cb + pa - pb)[order]
    if k.size:
        spread = np.maximum(spread, _TINY_SPREAD * float(k[-1]))
    result = ImpliedForward(
        expiry_ns=expiry_ns, years=years, forward=math.nan, discount_factor=df, method=fit.method
    )
    if k.size == 0:
        return result
    pivot = int(np.argmin(np.abs(parity)))
    if fit.method == ForwardMethod.CBOE:
        forward, residual, used = float(fwd[pivot]), 0.0, 1
    else:
        window = np.sort(np.argsort(np.abs(k - fwd[pivot]), kind="stable")[: fit.near_strikes])
        forward, residual, used = _robust_forward(fwd[window], spread[window], df, fit)
    q, pv = _dividends(forward, df, years, spot)
    return msgspec.structs.replace(
        result,
        forward=forward,
        dividend_yield=q,
        dividend_pv=pv,
        residual=residual,
        strikes_used=used,
        pivot_strike=float(k[pivot]),
    )


def _dividends(forward: float, df: float, years: float, spot: float) -> tuple[float, float]:
    """(q, PV of dividends) from ``F = S e^{(r - q) T}`` and ``PV = S - DF F``; NaN where the
    spot (or, for q, the time) is not known."""
    if not (math.isfinite(spot) and spot > 0.0 and math.isfinite(forward)):
        return math.nan, math.nan
    pv = spot - df * forward
    if not (math.isfinite(years) and years > 0.0 and forward > 0.0):
        return math.nan, pv
    return (-math.log(df) - math.log(forward / spot)) / years, pv


def implied_forwards(
    quotes: ChainQuotes,
    curve: ZeroCurve,
    now_ns: int,
    *,
    spot: float = math.nan,
    fit: ForwardFitConfig = ForwardFitConfig(),  # noqa: B008 (frozen, shared on purpose)
) -> list[ImpliedForward]:
    """:func:`implied_forward` of each expiry in ``quotes``, in ascending expiry, at ``now_ns``
    (int UNIX ns), each discounted on ``curve`` at its time to expiry (ACT/365).

    Raises:
        ValueError: arrays of different shapes, or one option (expiry, strike, call or put)
            quoted twice.
    """
    exp = np.ravel(np.asarray(quotes.expiry_ns, dtype=np.int64))
    k, bid, ask = (
        np.ravel(np.asarray(x, dtype=np.float64)) for x in (quotes.strike, quotes.bid, quotes.ask)
    )
    call = np.ravel(np.asarray(quotes.is_call, dtype=np.bool_))
    if not exp.size == k.size == call.size == bid.size == ask.size:
        raise ValueError("the chain's arrays must have one size")
    if exp.size == 0:
        return []
    order = np.lexsort((k, exp))
    exp, k, call, bid, ask = exp[order], k[order], call[order], bid[order], ask[order]
    new = np.r_[True, (exp[1:] != exp[:-1]) | (k[1:] != k[:-1])]
    pair = np.cumsum(new) - 1  # (expiry, strike) pair of each option
    n = int(pair[-1]) + 1
    if (np.bincount(pair[call], minlength=n) > 1).any() or (
        np.bincount(pair[~call], minlength=n) > 1
    ).any():
        raise ValueError("an option (expiry, strike, call or put) is quoted twice")
    sides = np.full((4, n), np.nan)  # call bid, call ask, put bid, put ask per pair
    sides[0, pair[call]], sides[1, pair[call]] = bid[call], ask[call]
    sides[2, pair[~call]], sides[3, pair[~call]] = bid[~call], ask[~call]
    pair_exp, pair_k = exp[new], k[new]
    starts = np.flatnonzero(np.r_[True, pair_exp[1:] != pair_exp[:-1]])
    ends = np.r_[starts[1:], n]
    years = year_fraction(np.full(starts.size, now_ns, dtype=np.int64), pair_exp[starts])
    dfs = curve.discount(years)
    out = []
    for a, b, t, df in zip(
        starts.tolist(), ends.tolist(), years.tolist(), dfs.tolist(), strict=True
    ):
        cb, ca, pb, pa = sides[:, a:b]
        out.append(
            implied_forward(
                pair_k[a:b],
                cb,
                ca,
                pb,
                pa,
                df,
                years=t,
                spot=spot,
                expiry_ns=int(pair_exp[a]),
                fit=fit,
            )
        )
    return out
