"""Hedge ratios: the trades that zero a book's delta, gamma or vega (docs/hedging.md).

Conventions, the same for every function:

- **Quantities** are signed in the hedge instrument's own contracts: positive buys, negative
  sells. A future or perpetual is hedged in whole contracts; an option in multiples of its lot.
- **Greeks** are those of the exposure payloads (docs/redis.md): ``delta`` in underlying units
  (the price-adjusted ``delta_adj`` for a coin-margined book), ``gamma`` in underlying units per
  1 unit move of the underlying, ``vega`` in USD per vol point. A hedge instrument's Greeks are
  per contract, in the same units. Vectors of them are ordered as :data:`GREEKS`.
- **Rounding** is to the nearest whole contract (or lot), ties to even (``numpy.rint``); every
  result gives the unrounded figure, the rounded one and the Greeks left after each.
- A **coin-margined** book (Deribit BTC, ETH) holds its collateral in the coin. Hedged with an
  inverse future or perpetual (its value in coin ``N (1/F0 - 1/F)`` for a USD notional ``N``):
  **coin-flat** makes the account's coin value flat in F to first order,
  ``N = -F delta_adj``; **USD-flat** makes its USD value flat, ``N = -F (delta_adj + equity)``,
  with ``equity`` the account's equity in coin. The two differ by ``-F equity`` USD: shorting the
  collateral's own coin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.arguments import broadcast

__all__ = [
    "DERIBIT_INVERSE_CONTRACT_USD",
    "GREEKS",
    "MAX_CONDITION",
    "FutureHedge",
    "InverseHedge",
    "OptionHedge",
    "inverse_hedge",
    "linear_hedge",
    "option_hedge",
]

FloatArray = npt.NDArray[np.float64]

GREEKS: tuple[str, ...] = ("delta", "gamma", "vega")
"""The Greeks of a book or a hedge instrument, in the order of the last axis of their arrays."""

DERIBIT_INVERSE_CONTRACT_USD: Mapping[str, float] = MappingProxyType({"BTC": 10.0, "ETH": 1.0})
"""USD notional of one contract of Deribit's inverse futures and perpetuals, by underlying
(Deribit contract specifications; ``get_instruments``' ``contract_size`` is the authority)."""

MAX_CONDITION = 1e10
"""A hedge whose equations (each Greek's row scaled to unit length) have a larger condition
number is reported singular: its quantities would be noise."""


@dataclass(frozen=True, slots=True)
class FutureHedge:
    """A delta hedge in a future or perpetual, in its contracts (positive: buy).

    Attributes:
        exact: the contracts that zero the delta, unrounded.
        contracts: whole contracts (nearest, ties to even).
        residual_delta: the delta left after ``contracts``, underlying units.
    """

    exact: FloatArray
    contracts: FloatArray
    residual_delta: FloatArray


@dataclass(frozen=True, slots=True)
class InverseHedge:
    """The two delta hedges of a coin-margined book in an inverse future or perpetual.

    Attributes:
        coin_flat: zeroes the price-adjusted delta: the account's coin value is flat in F.
        usd_flat: zeroes price-adjusted delta + equity: the account's USD value is flat in F.
    """

    coin_flat: FutureHedge
    usd_flat: FutureHedge


@dataclass(frozen=True, slots=True)
class OptionHedge:
    """Option quantities that zero target Greeks, and the future that zeroes the delta left.

    Attributes:
        quantity: contracts of each hedge option, unrounded, shape (..., N).
        rounded: ``quantity`` rounded to each option's lot.
        future: the future's contracts: ``exact`` against the delta left by ``quantity``,
            ``contracts`` against the delta left by ``rounded``; None without a future.
        residual: delta, gamma, vega of book + ``quantity`` + the exact future, shape (..., 3).
        residual_rounded: the same with ``rounded`` and the whole future contracts.
        singular: the hedge options cannot zero the targets (their equations are singular);
            the row's quantities and residuals are NaN.
    """

    quantity: FloatArray
    rounded: FloatArray
    future: FutureHedge | None
    residual: FloatArray
    residual_rounded: FloatArray
    singular: npt.NDArray[np.bool_]


def _numbers(positive: tuple[str, ...] = (), **named: Any) -> list[FloatArray]:
    """The arguments broadcast together, checked finite (and > 0 if named in ``positive``)."""
    shape, _, flat = broadcast({}, named)
    for name, a in zip(named, flat, strict=True):
        bad = ~np.isfinite(a)
        if name in positive:
            bad |= a <= 0.0
        if bad.any():
            want = "finite and > 0" if name in positive else "finite"
            raise ValueError(f"{name} must be {want}, got {float(a[bad][0])!r}")
    return [a.reshape(shape) for a in flat]


def _future(
    delta_exact: FloatArray, delta_left: FloatArray, per_contract: FloatArray
) -> FutureHedge:
    """Contracts of delta ``per_contract`` against ``delta_exact`` (unrounded) and against
    ``delta_left`` (whole contracts, and the delta they leave)."""
    contracts = np.rint(-delta_left / per_contract)
    return FutureHedge(
        exact=np.asarray(-delta_exact / per_contract),
        contracts=np.asarray(contracts),
        residual_delta=np.asarray(delta_left + contracts * per_contract),
    )


def linear_hedge(delta: npt.ArrayLike, multiplier: npt.ArrayLike) -> FutureHedge:
    """Delta hedge in a linear future or perpetual: ``contracts = -delta / multiplier``.

    Args:
        delta: the book's delta, underlying units (the exposure's ``delta``).
        multiplier: underlying units per contract (> 0).

    Arguments broadcast (one row per book or underlying).

    Raises:
        ValueError: an argument is not finite, ``multiplier`` <= 0, or the shapes do not
            broadcast; names it.
    """
    d, m = _numbers(("multiplier",), delta=delta, multiplier=multiplier)
    return _future(d, d, m)


def inverse_hedge(
    delta_adj: npt.ArrayLike,
    equity_coin: npt.ArrayLike,
    F: npt.ArrayLike,
    contract_usd: npt.ArrayLike,
) -> InverseHedge:
    """Coin-flat and USD-flat delta hedges of a coin-margined book in an inverse future.

    A contract of ``c`` USD adds ``c / F`` to the price-adjusted delta. Coin-flat:
    ``contracts = -delta_adj F / c``; USD-flat: ``contracts = -(delta_adj + equity_coin) F / c``
    (derivation in docs/hedging.md). ``residual_delta`` is in underlying units: of the coin value
    times F (coin-flat), of the USD value (USD-flat).

    Args:
        delta_adj: the book's price-adjusted delta, underlying units (the exposure's
            ``delta_adj``: coin-settled options Δ - V/F, inverse futures notional / F). Coin
            held as collateral belongs in ``equity_coin``, not here.
        equity_coin: the account's equity in coin: collateral plus the positions' coin value.
        F: the hedge future's price, USD per coin (> 0).
        contract_usd: USD notional of one contract (> 0): :data:`DERIBIT_INVERSE_CONTRACT_USD`.

    Arguments broadcast (one row per book or underlying).

    Raises:
        ValueError: an argument is not finite, ``F`` or ``contract_usd`` <= 0, or the shapes
            do not broadcast; names it.
    """
    d, e, f, c = _numbers(
        ("F", "contract_usd"), delta_adj=delta_adj, equity_coin=equity_coin, F=F,
        contract_usd=contract_usd,
    )  # fmt: skip
    per_contract = c / f
    usd = d + e
    return InverseHedge(
        coin_flat=_future(d, d, per_contract), usd_flat=_future(usd, usd, per_contract)
    )


def _target_rows(targets: Sequence[str]) -> list[int]:
    if (
        isinstance(targets, str)
        or not targets
        or len(set(targets)) != len(targets)
        or not set(targets) <= set(GREEKS)
    ):
        raise ValueError(f"targets must be distinct names from {GREEKS}, got {targets!r}")
    return [GREEKS.index(t) for t in targets]


def _solve(a: FloatArray, rhs: FloatArray) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """x with a x = rhs for each stacked system: exact when square, else least squares (minimum
    norm when under-determined), each equation scaled to unit length; NaN where singular."""
    scale = np.linalg.norm(a, axis=-1, keepdims=True)
    scale[scale == 0.0] = 1.0
    a, rhs = a / scale, rhs / scale[..., 0]
    sv = np.linalg.svd(a, compute_uv=False)
    singular = np.asarray(~(sv[..., -1] * MAX_CONDITION > sv[..., 0]))
    x = np.full((*a.shape[:-2], a.shape[-1]), np.nan)
    ok = ~singular
    if ok.any():
        b = rhs[ok][..., None]
        m, n = a.shape[-2:]
        x[ok] = (np.linalg.solve(a[ok], b) if m == n else np.linalg.pinv(a[ok]) @ b)[..., 0]
    return x, singular


def option_hedge(
    book: npt.ArrayLike,
    options: npt.ArrayLike,
    targets: Sequence[str],
    lots: npt.ArrayLike,
    future_delta: npt.ArrayLike | None = None,
) -> OptionHedge:
    """Quantities of N hedge options that zero M target Greeks of a book, then the future that
    zeroes the delta they leave.

    Delta-gamma neutral: one option, ``targets=("gamma",)``, and a future. Gamma-vega neutral:
    two options, ``targets=("gamma", "vega")``, and a future. In general the M equations
    ``book[t] + Σⱼ xⱼ options[j, t] = 0`` are solved exactly when N = M
    (``numpy.linalg.solve``) and by least squares otherwise: when N > M, the quantities that
    zero the targets with the least sum of squares; when N < M the targets cannot all be
    zeroed and ``residual`` shows what is left (each equation scaled to unit length first).

    Args:
        book: the book's delta, gamma, vega (:data:`GREEKS`), shape (..., 3). Delta in
            underlying units (``delta_adj``, plus the equity in coin for a USD-flat hedge, in
            a coin-margined book), gamma per 1 unit move, vega USD per vol point.
        options: each hedge option's delta, gamma, vega per contract, in the book's units (a
            coin-settled option's delta: its Δ - V/F with ``delta_adj``), shape (..., N, 3).
        targets: the Greeks to zero: distinct names from :data:`GREEKS`.
        lots: the step each option's quantity is rounded to (> 0), a scalar or shape (N,).
        future_delta: delta of one contract of the hedge future (> 0): its multiplier
            (linear), or ``contract_usd / F`` (inverse). None: no future.

    The leading axes of ``book``, ``options`` and ``future_delta`` broadcast (one row per book
    or underlying).

    Raises:
        ValueError: an argument is not finite or of the wrong shape, ``lots`` or
            ``future_delta`` <= 0, or ``targets`` is not a set of Greeks; names it.
    """
    idx = _target_rows(targets)
    (b,) = _numbers(book=book)
    (g,) = _numbers(options=options)
    if b.ndim < 1 or b.shape[-1] != len(GREEKS):
        raise ValueError(f"book must have shape (..., 3), got {b.shape}")
    if g.ndim < 2 or g.shape[-2] < 1 or g.shape[-1] != len(GREEKS):
        raise ValueError(f"options must have shape (..., N, 3) with N >= 1, got {g.shape}")
    n = g.shape[-2]
    (lot,) = _numbers(("lots",), lots=lots)
    if lot.shape not in ((), (n,)):
        raise ValueError(f"lots must be a scalar or of shape ({n},), got shape {lot.shape}")
    try:
        rows = np.broadcast_shapes(b.shape[:-1], g.shape[:-2])
    except ValueError:
        raise ValueError(
            f"options has shape {g.shape}, whose rows do not broadcast with book's {b.shape}"
        ) from None
    b = np.broadcast_to(b, (*rows, 3))
    g = np.broadcast_to(g, (*rows, n, 3))
    x, singular = _solve(np.swapaxes(g[..., idx], -1, -2), -b[..., idx])
    rounded = lot * np.rint(x / lot)
    left = b + np.einsum("...j,...jk->...k", x, g)
    left_rounded = b + np.einsum("...j,...jk->...k", rounded, g)
    if future_delta is None:
        return OptionHedge(x, rounded, None, left, left_rounded, singular)
    (fd,) = _numbers(("future_delta",), future_delta=future_delta)
    future = _future(left[..., 0], left_rounded[..., 0], fd)
    delta_only = np.array([1.0, 0.0, 0.0])
    return OptionHedge(
        quantity=x,
        rounded=rounded,
        future=future,
        residual=left + (future.exact * fd)[..., None] * delta_only,
        residual_rounded=left_rounded + (future.contracts * fd)[..., None] * delta_only,
        singular=singular,
    )
