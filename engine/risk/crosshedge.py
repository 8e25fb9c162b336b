"""Hedges across underlyings: the minimum-variance hedge of a book in another underlying's
future, and Greeks weighted by beta to a benchmark (docs/hedging.md, "Cross hedges").

Conventions, the same for every function:

- **Moves** are the recorded one-day log-returns of :class:`~engine.risk.history.MoveHistory`,
  one row per day. Statistics are over the sample, demeaned (ordinary least squares with an
  intercept): the slope ``Cov(y, x) / Var(x)``, ``R² = Corr(y, x)²``; standard deviations
  divide by n (the slope and R² do not depend on it).
- **P&L** is USD per one-day move. A hedge contract's P&L under a log-return ``r`` of its
  underlying is ``notional (e^r - 1)`` USD: ``notional`` is ``multiplier x F`` for a linear
  future, the contract's USD face for an inverse one (its coin P&L ``c (1/F0 - 1/F)`` at the
  new price F). The future's own return is taken as its underlying's (basis moves ignored).
- **Contracts** are signed: positive buys. The hedge is ``-h*`` contracts, rounded to the
  nearest whole contract, ties to even.
- **Beta weighting**: with ``dS_i / S_i = beta_i dS_b / S_b``, a position's delta ``delta_i``
  (underlying units) moves the book by ``delta_i S_i beta_i / S_b`` units of the benchmark per
  benchmark unit: its benchmark-equivalent delta; its gamma ``gamma_i`` gives
  ``gamma_i beta_i² (S_i / S_b)²`` benchmark units per benchmark unit move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat, PositiveInt

__all__ = [
    "CrossHedge",
    "CrossHedgeConfig",
    "Regression",
    "beta_weighted",
    "beta_weighted_usd",
    "betas",
    "contract_pnl",
    "min_variance_hedge",
    "regression",
]

FloatArray = npt.NDArray[np.float64]


class CrossHedgeConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.cross_hedge]``: the ``crosshedge`` family (docs/config.md).

    Attributes:
        interval_s: its period.
        hedge: per book, the future or perpetual to hedge the whole book in (``"*"``: every
            book without its own entry).
        benchmark: the underlying Greeks are weighted to (``""``: no beta weighting).
        min_days: the fewest common days of moves an estimate needs.
        betas: fixed betas to the benchmark, per underlying (``SPY = 1.0``): these are not
            estimated from the moves; the benchmark's own is 1. A book whose underlyings all
            have one needs no history (docs/hedging.md#fixed-betas).
    """

    interval_s: PositiveFloat = 60.0
    hedge: dict[str, str] = {}
    benchmark: str = ""
    min_days: PositiveInt = 10
    betas: dict[str, float] = {}

    def __post_init__(self) -> None:
        for und, beta in self.betas.items():
            if not math.isfinite(beta):
                raise ValueError(f"risk cross_hedge betas.{und} must be finite, got {beta}")

    def instrument(self, book: str) -> str | None:
        """The hedge instrument of ``book`` (None: none)."""
        return self.hedge.get(book, self.hedge.get("*"))

    @property
    def enabled(self) -> bool:
        """Anything to publish."""
        return bool(self.hedge) or bool(self.benchmark)


@dataclass(frozen=True, slots=True)
class Regression:
    """Least squares of ``y`` on ``x`` with an intercept.

    Attributes:
        slope: ``Cov(y, x) / Var(x)``.
        r2: ``Corr(y, x)²``, in [0, 1]: the share of ``Var(y)`` the slope explains.
        vol_y: the standard deviation of ``y``.
        vol_x: the standard deviation of ``x``.
        residual_vol: the standard deviation of ``y - slope x``: ``vol_y sqrt(1 - r2)``.
        n: the number of observations.
    """

    slope: float
    r2: float
    vol_y: float
    vol_x: float
    residual_vol: float
    n: int


def _series(y: npt.ArrayLike, x: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    ya = np.asarray(y, dtype=np.float64)
    xa = np.asarray(x, dtype=np.float64)
    if ya.ndim != 1 or xa.shape != ya.shape or ya.size < 2:
        raise ValueError(f"y and x must be 1-D of one length >= 2, got {ya.shape} and {xa.shape}")
    if not (np.all(np.isfinite(ya)) and np.all(np.isfinite(xa))):
        raise ValueError("y and x must be finite")
    return ya, xa


def regression(y: npt.ArrayLike, x: npt.ArrayLike) -> Regression:
    """The slope of ``y`` on ``x``, its R² and the residual's standard deviation.

    Raises:
        ValueError: not two 1-D finite series of one length >= 2, or ``x`` constant.
    """
    ya, xa = _series(y, x)
    dy, dx = ya - ya.mean(), xa - xa.mean()
    var_x, var_y = float(dx @ dx) / ya.size, float(dy @ dy) / ya.size
    if not var_x > 0.0:
        raise ValueError("x is constant: no slope")
    cov = float(dy @ dx) / ya.size
    slope = cov / var_x
    r2 = min(cov * cov / (var_x * var_y), 1.0) if var_y > 0.0 else 0.0
    resid = dy - slope * dx
    return Regression(
        slope=slope,
        r2=r2,
        vol_y=math.sqrt(var_y),
        vol_x=math.sqrt(var_x),
        residual_vol=math.sqrt(float(resid @ resid) / ya.size),
        n=int(ya.size),
    )


def contract_pnl(ret: npt.ArrayLike, notional_usd: float) -> FloatArray:
    """One hedge contract's P&L (USD) under each log-return ``ret`` of its underlying:
    ``notional_usd (e^r - 1)``; ``notional_usd`` is ``multiplier x F`` (linear) or the USD face
    of one contract (inverse).

    Raises:
        ValueError: ``notional_usd`` not finite and > 0.
    """
    if not (math.isfinite(notional_usd) and notional_usd > 0.0):
        raise ValueError(f"notional_usd must be finite and > 0, got {notional_usd!r}")
    out: FloatArray = notional_usd * np.expm1(np.asarray(ret, dtype=np.float64))
    return out


@dataclass(frozen=True, slots=True)
class CrossHedge:
    """The minimum-variance hedge of a book's P&L in a hedge instrument.

    Attributes:
        ratio: h* = ``Cov(book, hedge) / Var(hedge)``: contracts whose P&L best tracks the
            book's.
        contracts_exact: ``-ratio``: the contracts to trade (positive: buy).
        contracts: ``contracts_exact`` to the nearest whole contract (ties to even).
        r2: the hedge effectiveness: the share of the book's P&L variance the exact hedge
            removes.
        book_vol: standard deviation of the book's P&L, USD per day.
        residual_vol: standard deviation of the P&L hedged with ``contracts_exact``, USD.
        residual_vol_rounded: the same with ``contracts``, USD.
        n: the days of moves.
    """

    ratio: float
    contracts_exact: float
    contracts: float
    r2: float
    book_vol: float
    residual_vol: float
    residual_vol_rounded: float
    n: int


def min_variance_hedge(book_pnl: npt.ArrayLike, hedge_pnl: npt.ArrayLike) -> CrossHedge:
    """The minimum-variance hedge from the book's P&L and one hedge contract's P&L (USD) on
    the same recorded days (Hull, *Options, Futures, and Other Derivatives*, 3.4).

    Raises:
        ValueError: not two 1-D finite series of one length >= 2, or a constant hedge P&L.
    """
    reg = regression(book_pnl, hedge_pnl)
    y, x = _series(book_pnl, hedge_pnl)
    contracts = float(np.rint(-reg.slope))
    left = (y - y.mean()) + contracts * (x - x.mean())
    return CrossHedge(
        ratio=reg.slope,
        contracts_exact=-reg.slope,
        contracts=contracts,
        r2=reg.r2,
        book_vol=reg.vol_y,
        residual_vol=reg.residual_vol,
        residual_vol_rounded=math.sqrt(float(left @ left) / y.size),
        n=reg.n,
    )


def betas(ret: npt.ArrayLike, bench: npt.ArrayLike) -> FloatArray:
    """Each column's beta to the benchmark: ``Cov(r_i, r_b) / Var(r_b)`` over the days.

    Args:
        ret: log-returns, shape (days, underlyings).
        bench: the benchmark's log-returns on the same days, shape (days,).

    Raises:
        ValueError: shapes that do not match, fewer than 2 days, non-finite moves, or a
            constant benchmark.
    """
    r = np.asarray(ret, dtype=np.float64)
    b = np.asarray(bench, dtype=np.float64)
    if r.ndim != 2 or b.shape != (r.shape[0],) or r.shape[0] < 2:
        raise ValueError(
            f"ret (days, U) and bench (days,) with days >= 2, got {r.shape}, {b.shape}"
        )
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(b))):
        raise ValueError("ret and bench must be finite")
    db = b - b.mean()
    var_b = float(db @ db)
    if not var_b > 0.0:
        raise ValueError("the benchmark's moves are constant: no beta")
    out: FloatArray = (r - r.mean(axis=0)).T @ db / var_b
    return out


def beta_weighted(
    delta: npt.ArrayLike,
    gamma: npt.ArrayLike,
    price: npt.ArrayLike,
    beta: npt.ArrayLike,
    bench_price: float,
) -> tuple[FloatArray, FloatArray]:
    """Delta and gamma of each underlying in benchmark units: ``delta S beta / S_b`` and
    ``gamma beta² (S / S_b)²`` (derivation in docs/hedging.md).

    Args:
        delta: underlying units, per underlying.
        gamma: underlying units per 1 unit move, per underlying.
        price: each underlying's price, USD.
        beta: each underlying's beta to the benchmark (:func:`betas`).
        bench_price: the benchmark's price, USD (> 0).

    Raises:
        ValueError: a price not finite and > 0, or arrays of different shapes.
    """
    d, g, s, bt = (np.asarray(a, dtype=np.float64) for a in (delta, gamma, price, beta))
    if not d.shape == g.shape == s.shape == bt.shape:
        raise ValueError(f"shapes differ: {d.shape}, {g.shape}, {s.shape}, {bt.shape}")
    if not (math.isfinite(bench_price) and bench_price > 0.0) or not np.all(s > 0.0):
        raise ValueError("prices must be finite and > 0")
    ratio = s * bt / bench_price
    return d * ratio, g * ratio * ratio


def beta_weighted_usd(
    delta_usd: npt.ArrayLike, cash_gamma: npt.ArrayLike, beta: npt.ArrayLike, bench_price: float
) -> tuple[FloatArray, FloatArray]:
    """:func:`beta_weighted` from the exposure's USD figures, which hold the prices they were
    taken against: ``delta S = delta_usd`` and ``gamma S² = 100 cash_gamma``, so the delta is
    ``delta_usd beta / S_b`` and the gamma ``100 cash_gamma beta² / S_b²`` benchmark units.

    Raises:
        ValueError: ``bench_price`` not finite and > 0, or arrays of different shapes.
    """
    d, g, bt = (np.asarray(a, dtype=np.float64) for a in (delta_usd, cash_gamma, beta))
    if not d.shape == g.shape == bt.shape:
        raise ValueError(f"shapes differ: {d.shape}, {g.shape}, {bt.shape}")
    if not (math.isfinite(bench_price) and bench_price > 0.0):
        raise ValueError(f"bench_price must be finite and > 0, got {bench_price!r}")
    ratio = bt / bench_price
    return d * ratio, 100.0 * g * ratio * ratio
