"""Implied volatility: the typed, broadcasting API over the numba solver in engine.kernels.

The solver inverts Black-76 in Jäckel's normalised form (see the notes above
``engine.kernels._solve_norm_call``) to double precision wherever the price determines sigma,
with a bounded number of iterations. Prices outside the no-arbitrage bounds give NaN and a
:class:`~engine.status.Status`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from engine import kernels
from engine.arguments import broadcast, use_parallel
from engine.status import Status, count_statuses

__all__ = ["ImpliedVol", "Model", "implied_vol", "implied_vol_status"]

Model = Literal["bsm", "black76", "inverse"]
_MODELS: tuple[str, ...] = ("bsm", "black76", "inverse")


@dataclass(frozen=True, slots=True)
class ImpliedVol:
    """Implied volatilities (decimal, per sqrt(year)) and the status of each row."""

    sigma: npt.NDArray[np.float64]
    status: npt.NDArray[np.int8]

    def counts(self) -> dict[Status, int]:
        """Number of rows per non-OK status (empty when every row solved)."""
        return count_statuses(self.status)


def implied_vol_status(
    price: Any,
    is_call: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any = 0.0,
    model: Model = "bsm",
    *,
    parallel: bool | None = None,
) -> ImpliedVol:
    """Implied volatility with a per-row status; see :func:`implied_vol` for the arguments."""
    if model not in _MODELS:
        raise ValueError(f"model must be one of {', '.join(_MODELS)}, got {model!r}")
    if model != "bsm" and np.any(np.asarray(q) != 0):
        raise ValueError(f"q applies to model='bsm' only; model={model!r} prices on a forward")
    shape, (flag,), (p, s, k, t, rr, qq) = broadcast(
        {"is_call": is_call}, {"price": price, "S": S, "K": K, "T": T, "r": r, "q": q}
    )
    with np.errstate(all="ignore"):  # bad rows become NaN here and a status in the kernel
        df = np.exp(-rr * t)
        f = s * np.exp((rr - qq) * t) if model == "bsm" else s
        if model == "inverse":
            p = p * f
    n = p.shape[0]
    sigma = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    threaded = use_parallel(parallel, n)
    kernel = kernels.implied_vol_parallel_kernel if threaded else kernels.implied_vol_kernel
    kernel(p, flag, f, k, t, df, sigma, status)
    return ImpliedVol(sigma=sigma.reshape(shape), status=status.reshape(shape))


def implied_vol(
    price: Any,
    is_call: Any,
    S: Any,
    K: Any,
    T: Any,
    r: Any,
    q: Any = 0.0,
    model: Model = "bsm",
    *,
    parallel: bool | None = None,
) -> npt.NDArray[np.float64]:
    """Volatility sigma that reproduces ``price``.

    Args:
        price: option value. ``model="bsm"`` and ``"black76"``: in the currency of S/F and K;
            ``model="inverse"``: in coin (Deribit's ``mark_price`` of a BTC or ETH option).
        is_call: True for calls, False for puts.
        S: spot (``model="bsm"``) or the expiry's forward F (``"black76"``, ``"inverse"``).
        K: strike. T: years to expiry, ACT/365. r: rate, a decimal.
        q: dividend yield, a decimal; ``model="bsm"`` only.
        model: ``"bsm"`` (spot, yield q), ``"black76"`` (forward), ``"inverse"`` (forward,
            price in coin).
        parallel: run on numba's thread pool; default by size.

    Arguments broadcast like numpy ufunc arguments.

    Returns:
        sigma as a decimal per sqrt(year); NaN where the price is outside the no-arbitrage
        bounds or an input is invalid (:func:`implied_vol_status` gives the reason per row).

    Raises:
        ValueError: an argument is non-numeric, does not broadcast (named), or the model is
            unknown.
    """
    return implied_vol_status(price, is_call, S, K, T, r, q, model, parallel=parallel).sigma
