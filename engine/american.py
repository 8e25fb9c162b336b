"""American options: the typed, broadcasting API over engine.american_kernels.

Prices and Greeks are in the raw units of :mod:`engine.greeks` and :mod:`engine.units` (per
option on one unit of the underlying, vega per 1.00 of vol, theta and charm per year, rho per
1.00 of rate), in the rows of :data:`engine.kernels.GREEK_FIELDS`. The method, its accuracy and
the regimes are in docs/american.md:

- delta, gamma: analytic (European part plus the early-exercise premium's derivative);
- theta: from the pricing PDE, rV - (r - q)SΔ - σ²S²Γ/2 (0 in the exercise region);
- vega, vanna, volga (σ ± 0.1 % of σ), rho (r ± 1e-4) and charm (T ± 0.1 % of T): central
  finite differences of the same scheme's price and analytic delta.

``accuracy="accurate"`` (default for Greeks) is within 1e-8 relative or 1e-10 per unit of spot
of a converged reference on the tested grid; ``"fast"`` within 1e-5 relative or 1e-7 per unit
of spot.

Discrete cash dividends: the escrowed-dividend model. The present value of the dividends paid
after now and up to expiry, ``PV = Σ D_i e^{-r t_i}``, is taken off the spot, and the option is
priced as an American option on ``S - PV`` with the volatility applied to that escrowed spot.
Its exercise value is measured on the escrowed spot too, so the jump of a call's exercise value
just before a dividend is not captured (the call is undervalued when a large dividend makes
exercise the day before optimal). Greeks are with respect to the quoted spot S: delta and gamma
are those of the escrowed spot, rho adds delta · Σ D_i t_i e^{-r t_i} and theta and charm add
the drift of the escrowed spot, -r · PV, times delta and gamma.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, cast

import numba
import numpy as np
import numpy.typing as npt

from engine import american_kernels as ak
from engine import kernels
from engine.arguments import Arguments, Rows, broadcast
from engine.greeks import Greeks, _run
from engine.iv import ImpliedVol

__all__ = ["Accuracy", "Dividends", "american", "american_black76", "american_implied_vol"]

FloatArray = npt.NDArray[np.float64]
Accuracy = Literal["fast", "accurate"]
_SCHEMES: dict[str, ak.Scheme] = {"fast": ak.FAST, "accurate": ak.ACCURATE}


@dataclass(frozen=True, slots=True)
class Dividends:
    """A schedule of discrete cash dividends of the underlying.

    Attributes:
        times_years: when each is paid (the ex-date), years from now, ACT/365.
        amounts: each dividend in the quote currency per unit of the underlying.
    """

    times_years: FloatArray
    amounts: FloatArray

    def __post_init__(self) -> None:
        t = np.asarray(self.times_years, dtype=np.float64)
        a = np.asarray(self.amounts, dtype=np.float64)
        if t.ndim != 1 or t.shape != a.shape:
            raise ValueError("times_years and amounts must be 1-D arrays of the same length")
        if not (np.isfinite(t).all() and np.isfinite(a).all() and (a >= 0.0).all()):
            raise ValueError("dividend times must be finite and amounts finite and >= 0")
        object.__setattr__(self, "times_years", t)
        object.__setattr__(self, "amounts", a)

    def escrow(self, T: FloatArray, r: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Per row: the present value of the dividends paid in (0, T], and its derivative in r
        with the sign of the spot's (Σ D_i t_i e^{-r t_i})."""
        t = self.times_years[None, :]
        paid = (t > 0.0) & (t <= T[:, None])
        pv = np.where(paid, self.amounts * np.exp(-r[:, None] * t), 0.0)
        return pv.sum(axis=1), (pv * t).sum(axis=1)


def _tables(scheme: ak.Scheme, tables: bool) -> npt.NDArray[np.float64]:
    """Boundary tables for one call's rows under ``scheme`` (the fast one alone), or none."""
    if not (tables and scheme is ak.FAST):
        return ak.NO_TABLES
    return ak.boundary_tables(scheme, numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # numba.config is untyped


def _kernel_for(
    black: bool, scheme: ak.Scheme, threaded: bool, tables: npt.NDArray[np.float64]
) -> Callable[..., None]:
    # numba's dispatchers are typed as taking no arguments
    kernel = cast(
        Callable[..., None], ak.american_parallel_kernel if threaded else ak.american_kernel
    )

    def call(*cols: Any) -> None:  # columns..., out, status
        kernel(*cols[:-2], black, scheme, *cols[-2:], tables)

    return call


def _greeks(
    flags: Arguments,
    numbers: Arguments,
    black: bool,
    accuracy: Accuracy,
    parallel: bool | None,
    out: FloatArray | None,
    tables: bool,
) -> Rows:
    scheme = _SCHEMES.get(accuracy)
    if scheme is None:
        raise ValueError(f"accuracy must be 'fast' or 'accurate', got {accuracy!r}")
    grid = _tables(scheme, tables)
    return _run(
        _kernel_for(black, scheme, False, grid),
        _kernel_for(black, scheme, True, grid),
        kernels.GREEK_FIELDS,
        flags,
        numbers,
        parallel,
        out,
    )


def american(
    is_call: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any,
    sigma: Any,
    *,
    dividends: Dividends | None = None,
    accuracy: Accuracy = "accurate",
    parallel: bool | None = None,
    out: FloatArray | None = None,
    tables: bool = False,
) -> Greeks:
    """American option on spot with continuous yield ``q`` (dividend yield plus borrow).

    Args:
        is_call: True for calls, False for puts.
        S: spot, quote currency. K: strike. T: years to expiry, ACT/365.
        r: continuously compounded rate, decimal. q: continuous yield, decimal.
        sigma: volatility, decimal per √year (of the escrowed spot with ``dividends``).
        dividends: discrete cash dividends (escrowed model, module docstring), one schedule
            for every row.
        accuracy: ``"accurate"`` (1e-8 relative) or ``"fast"`` (1e-5 relative).
        parallel: numba's thread pool; default by size (engine.arguments).
        out: a (9, *shape) float64 C-contiguous block to write into, as engine.greeks.bsm.
        tables: under ``"fast"``, each boundary interpolated in vol from a table of its T_b,
            rates and vol octave, built in this call and shared by its rows (a chain's
            options of one expiry share one): the portfolio's figures, within 1e-8 of the
            solved prices and far faster on a chain; a table costs 8 solves, so rows that
            share none cost more (docs/american.md, "Boundary tables").

    Returns:
        Greeks in raw units (module docstring), with a status per row (engine.status).

    Raises:
        ValueError: an argument does not broadcast or is not numeric, or an unknown accuracy.
    """
    if dividends is None:
        values = _greeks(
            {"is_call": is_call},
            {"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma},
            False,
            accuracy,
            parallel,
            out,
            tables,
        )
        return Greeks(**values)
    shape, (flag,), (s, k, t, rr, qq, v) = broadcast(
        {"is_call": is_call}, {"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma}
    )
    pv, pv_dr = dividends.escrow(t, rr)
    values = _greeks(
        {"is_call": flag},
        {"S": s - pv, "K": k, "T": t, "r": rr, "q": qq, "sigma": v},
        False,
        accuracy,
        parallel,
        None if out is None else out.reshape(len(kernels.GREEK_FIELDS), -1),
        tables,
    )
    values["rho"] += values["delta"] * pv_dr
    values["theta"] -= values["delta"] * rr * pv
    values["charm"] -= values["gamma"] * rr * pv
    return Greeks(**{name: a.reshape(shape) for name, a in values.items()})


def american_black76(
    is_call: Any,
    F: Any,
    K: Any,
    T: Any,
    r: Any,
    sigma: Any,
    *,
    accuracy: Accuracy = "accurate",
    parallel: bool | None = None,
    out: FloatArray | None = None,
    tables: bool = False,
) -> Greeks:
    """American option on a future F (Black-76 dynamics: the spot model with q = r).

    Delta and gamma are with respect to F; rho holds F fixed. Other arguments as
    :func:`american`.

    Raises:
        ValueError: an argument does not broadcast or is not numeric, or an unknown accuracy.
    """
    values = _greeks(
        {"is_call": is_call},
        {"F": F, "K": K, "T": T, "r": r, "q": r, "sigma": sigma},
        True,
        accuracy,
        parallel,
        out,
        tables,
    )
    return Greeks(**values)


def american_implied_vol(
    price: Any,
    is_call: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any = 0.0,
    *,
    model: Literal["bsm", "black76"] = "bsm",
    dividends: Dividends | None = None,
    accuracy: Accuracy = "fast",
    tables: bool = False,
) -> ImpliedVol:
    """Volatility that reproduces an American ``price`` under the ``accuracy`` scheme.

    Secant steps inside a shrinking bracket of σ in [1e-4, 10], from the European implied vol
    of the price, bisection when a step leaves the bracket; at most 48 prices per row, so it
    always returns. Status per row (engine.status): PRICE_BELOW_INTRINSIC at or below
    intrinsic value or the American value at σ = 1e-4; PRICE_ABOVE_MAX at or above the strike
    (put) or the spot (call), or above the value at σ = 10; BAD_INPUT, EXPIRED as for the
    European solver.

    Args:
        price: American option value, quote currency. S: spot, or the future's price F for
            ``model="black76"`` (q is then r). Other arguments as :func:`american` (with
            ``tables``, every iterate's boundary from the tables).

    Raises:
        ValueError: an argument does not broadcast or is not numeric, or an unknown model or
            accuracy.
    """
    scheme = _SCHEMES.get(accuracy)
    if scheme is None:
        raise ValueError(f"accuracy must be 'fast' or 'accurate', got {accuracy!r}")
    if model not in ("bsm", "black76"):
        raise ValueError(f"model must be 'bsm' or 'black76', got {model!r}")
    shape, (flag,), (p, s, k, t, rr, qq) = broadcast(
        {"is_call": is_call}, {"price": price, "S": S, "K": K, "T": T, "r": r, "q": q}
    )
    if model == "black76":
        qq = rr
    if dividends is not None:
        s = s - dividends.escrow(t, rr)[0]
    sigma = np.empty(p.shape[0])
    status = np.empty(p.shape[0], dtype=np.int8)
    ak.american_iv_kernel(
        p, flag, s, k, t, rr, np.ascontiguousarray(qq), scheme, sigma, status,
        _tables(scheme, tables),
    )  # fmt: skip
    return ImpliedVol(sigma=sigma.reshape(shape), status=status.reshape(shape))
