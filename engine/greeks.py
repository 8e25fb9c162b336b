"""Prices and Greeks of European options: the typed, broadcasting API over engine.kernels.

Every figure is a raw derivative in the units of the inputs (see :mod:`engine.units` for the
convention and for conversions to desk units):

- ``price``: option value, in the currency of S/F and K (USD for Deribit's BTC options).
- ``delta``: dV/dS (BSM) or dV/dF (Black-76), per 1 unit of the underlying.
- ``gamma``: d²V/dS² (or d²V/dF²), per unit of the underlying squared.
- ``vega``: dV/dσ per 1.00 of volatility (divide by 100 for a vol point).
- ``theta``: dV/dt per year of calendar time (ACT/365), holding S (or F) fixed; negative for
  a long vanilla that only decays.
- ``rho``: dV/dr per 1.00 of rate. BSM holds S and q fixed; Black-76 holds F fixed, so its rho
  is -T·V.
- ``vanna``: d(delta)/dσ = d(vega)/dS. ``volga``: d(vega)/dσ. ``charm``: d(delta)/dt per year.

Greeks are per one option on one unit of the underlying, long. Rows the kernel cannot price carry
a :class:`~engine.status.Status` and NaN (or the exact limit at expiry).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.arguments import Arguments, Rows, broadcast, use_parallel
from engine.status import Status, count_statuses

__all__ = ["Greeks", "InverseGreeks", "black76", "bsm", "inverse"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Greeks:
    """Price and Greeks, one array each, all of the arguments' broadcast shape.

    Units are those of :mod:`engine.greeks` (raw derivatives, per option, per 1.00 of vol/rate,
    theta per year).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray
    vanna: FloatArray
    volga: FloatArray
    charm: FloatArray
    status: npt.NDArray[np.int8]

    def counts(self) -> dict[Status, int]:
        """Number of rows per non-OK status (empty when every row priced)."""
        return count_statuses(self.status)


@dataclass(frozen=True, slots=True)
class InverseGreeks(Greeks):
    """Greeks of a coin-settled (inverse) option: the Black-76 figures in USD, plus

    Attributes:
        price_coin: premium in coin, V / F (Deribit's ``mark_price`` for BTC/ETH options).
        delta_adj: price-adjusted delta, delta - price_coin: the option's exposure in coin
            once the coin premium itself is counted (Deribit's "DeltaTotal" convention).
    """

    price_coin: FloatArray
    delta_adj: FloatArray


def _out_block(
    out: FloatArray | None, fields: tuple[str, ...], shape: tuple[int, ...]
) -> FloatArray:
    """The (fields, rows) block the kernel writes: ``out`` checked and flattened, or a new one."""
    n = math.prod(shape)
    if out is None:
        return np.empty((len(fields), n))
    want = (len(fields), *shape)
    if (
        not isinstance(out, np.ndarray)
        or out.dtype != np.float64
        or out.shape != want
        or not out.flags.c_contiguous
        or not out.flags.writeable
    ):
        got = f"{out.dtype} {out.shape}" if isinstance(out, np.ndarray) else type(out).__name__
        raise ValueError(
            f"out must be a writable C-contiguous float64 array of shape {want}, got {got}"
        )
    return out.reshape(len(fields), n)


def _run(
    serial: Callable[..., None],
    threaded: Callable[..., None],
    fields: tuple[str, ...],
    flags: Arguments,
    numbers: Arguments,
    parallel: bool | None,
    out: FloatArray | None,
) -> Rows:
    """Check and broadcast the arguments, run a kernel, return its rows in the arguments' shape."""
    shape, flat_flags, flat_numbers = broadcast(flags, numbers)
    n = flat_flags[0].shape[0]
    block = _out_block(out, fields, shape)
    status = np.empty(n, dtype=np.int8)
    kernel = threaded if use_parallel(parallel, n) else serial
    kernel(*flat_flags, *flat_numbers, block, status)
    rows = block.reshape((len(fields), *shape))
    values: Rows = {name: rows[j, ...] for j, name in enumerate(fields)}
    values["status"] = status.reshape(shape)
    return values


def bsm(
    is_call: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any,
    sigma: Any,
    *,
    parallel: bool | None = None,
    out: FloatArray | None = None,
) -> Greeks:
    """Generalised Black-Scholes-Merton on spot with continuous yield ``q``.

    Args:
        is_call: True for calls, False for puts.
        S: spot price. K: strike, in the same currency.
        T: time to expiry in years, ACT/365 (see :func:`engine.daycount.year_fraction`).
        r: continuously compounded risk-free rate, a decimal (0.05).
        q: continuous dividend yield or foreign rate, a decimal.
        sigma: volatility, a decimal per sqrt(year) (0.25).
        parallel: run on numba's thread pool; default: when there are at least
            :data:`engine.arguments.PARALLEL_MIN_ROWS` rows.
        out: optional float64 C-contiguous array of shape ``(9, *shape)`` to write into (rows
            in the order of :data:`engine.kernels.GREEK_FIELDS`; ``(11, *shape)`` for
            :func:`inverse`): reusing one block saves allocating and first touching it per call.
            The returned arrays are views of it.

    Arguments broadcast like numpy ufunc arguments; scalars give 0-d arrays.

    Returns:
        Greeks in raw units (module docstring).

    Raises:
        ValueError: an argument is non-numeric or its shape does not broadcast, or ``out`` does
            not fit; names it.
    """
    return Greeks(
        **_run(
            kernels.bsm_kernel,
            kernels.bsm_parallel_kernel,
            kernels.GREEK_FIELDS,
            {"is_call": is_call},
            {"S": S, "K": K, "T": T, "r": r, "q": q, "sigma": sigma},
            parallel,
            out,
        )
    )


def black76(
    is_call: Any,
    F: Any,
    K: Any,
    T: Any,
    r: Any,
    sigma: Any,
    *,
    parallel: bool | None = None,
    out: FloatArray | None = None,
) -> Greeks:
    """Black-76 on a forward: V = e^{-rT} [F N(d1) - K N(d2)] (call).

    Delta and gamma are with respect to F; rho holds F fixed (-T·V). Other arguments as
    :func:`bsm`.

    Raises:
        ValueError: an argument is non-numeric or its shape does not broadcast; names it.
    """
    return Greeks(
        **_run(
            kernels.black76_kernel,
            kernels.black76_parallel_kernel,
            kernels.GREEK_FIELDS,
            {"is_call": is_call},
            {"F": F, "K": K, "T": T, "r": r, "sigma": sigma},
            parallel,
            out,
        )
    )


def inverse(
    is_call: Any,
    F: Any,
    K: Any,
    T: Any,
    r: Any,
    sigma: Any,
    *,
    parallel: bool | None = None,
    out: FloatArray | None = None,
) -> InverseGreeks:
    """A coin-settled (inverse) option as Deribit lists BTC and ETH options.

    The payoff max(S - K, 0) / S is paid in coin; its value in coin is the Black-76 USD value
    divided by the forward F. The USD figures are those of :func:`black76`; ``price_coin`` and the
    price-adjusted delta ``delta_adj`` are added.

    Raises:
        ValueError: an argument is non-numeric or its shape does not broadcast; names it.
    """
    return InverseGreeks(
        **_run(
            kernels.inverse_kernel,
            kernels.inverse_parallel_kernel,
            kernels.INVERSE_FIELDS,
            {"is_call": is_call},
            {"F": F, "K": K, "T": T, "r": r, "sigma": sigma},
            parallel,
            out,
        )
    )
