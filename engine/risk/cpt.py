"""The cumulative-prospect-theory value of a scenario P&L distribution (docs/risk.md,
"Prospect-theory value").

Tversky and Kahneman, "Advances in prospect theory: cumulative representation of uncertainty",
*Journal of Risk and Uncertainty* 5 (1992) 297-323. Outcomes ``x`` (USD P&L against the
reference point 0) are valued by

- ``v(x) = x^alpha`` for ``x >= 0`` and ``v(x) = -lambda (-x)^beta`` for ``x < 0``;
- decision weights from the probability-weighting functions
  ``w(p) = p^c / (p^c + (1 - p)^c)^(1/c)``, with ``c = gamma`` for gains and ``c = delta`` for
  losses, applied to the *cumulative* probabilities: for the gains ranked from the best down,
  ``pi_i = w+(P(X >= x_i)) - w+(P(X > x_i))``; for the losses ranked from the worst up,
  ``pi_i = w-(P(X <= x_i)) - w-(P(X < x_i))``.

The value is ``V = sum_i pi_i v(x_i)``, in "USD^alpha" (the value function's own units: it
ranks distributions, it is not an amount of money). :func:`certainty_equivalent` maps it back to
USD. Each of n scenarios has probability 1/n. Ties share their block's weight, whatever order
they are ranked in (their values are equal).
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat

__all__ = ["TK1992", "CptConfig", "CptParams", "certainty_equivalent", "cpt_value", "weight"]

FloatArray = npt.NDArray[np.float64]

_Exponent = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]
_Curvature = Annotated[float, msgspec.Meta(ge=0.28, le=1.0)]  # w is monotone for c >= 0.279


class CptParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The value and weighting functions' parameters; defaults are the 1992 paper's medians.

    Attributes:
        alpha: curvature of the value of gains, in (0, 1].
        beta: curvature of the value of losses, in (0, 1].
        loss_aversion: lambda, > 0 (> 1: losses loom larger than gains).
        gamma: curvature of the weighting of gains' probabilities, in [0.28, 1] (1: none).
        delta: curvature of the weighting of losses' probabilities, in [0.28, 1].
    """

    alpha: _Exponent = 0.88
    beta: _Exponent = 0.88
    loss_aversion: PositiveFloat = 2.25
    gamma: _Curvature = 0.61
    delta: _Curvature = 0.69


TK1992: Final = CptParams()
"""The 1992 paper's parameters."""


class CptConfig(CptParams, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.cpt]``: the ``cpt`` family (docs/config.md).

    Attributes:
        enabled: publish it.
        interval_s: its period.
        method: the scenarios valued: the historical window's or the Monte Carlo draws of
            ``[risk]`` (its horizon, draws and seed).
    """

    enabled: bool = False
    interval_s: PositiveFloat = 60.0
    method: Literal["historical", "monte_carlo"] = "historical"

    def params(self) -> CptParams:
        """The parameters alone."""
        return CptParams(
            alpha=self.alpha,
            beta=self.beta,
            loss_aversion=self.loss_aversion,
            gamma=self.gamma,
            delta=self.delta,
        )


def weight(p: npt.ArrayLike, c: float) -> FloatArray:
    """The probability-weighting function ``p^c / (p^c + (1 - p)^c)^(1/c)`` of probabilities
    in [0, 1]: w(0) = 0, w(1) = 1."""
    pa = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    pc = pa**c
    out: FloatArray = pc / (pc + (1.0 - pa) ** c) ** (1.0 / c)
    return out


def _side(x: FloatArray, n: int, c: float) -> FloatArray:
    """Decision weights of the outcomes ``x`` ranked from the most extreme (the best gain or
    the worst loss) in, each of probability 1/n."""
    k = np.arange(x.size + 1) / n
    return np.diff(weight(k, c))


def cpt_value(pnl: npt.ArrayLike, params: CptParams = TK1992) -> float:
    """The CPT value of equally likely outcomes ``pnl`` (USD): ``sum pi_i v(x_i)``.

    Raises:
        ValueError: ``pnl`` not 1-D, empty or not finite.
    """
    x = np.asarray(pnl, dtype=np.float64)
    if x.ndim != 1 or x.size == 0 or not np.all(np.isfinite(x)):
        raise ValueError(f"pnl must be 1-D, not empty and finite, got shape {x.shape}")
    n = x.size
    gains = -np.sort(-x[x > 0.0])  # the best first
    losses = np.sort(x[x < 0.0])  # the worst first
    v_gain = gains**params.alpha
    v_loss = -params.loss_aversion * (-losses) ** params.beta
    return float(_side(gains, n, params.gamma) @ v_gain + _side(losses, n, params.delta) @ v_loss)


def certainty_equivalent(value: float, params: CptParams = TK1992) -> float:
    """The sure P&L (USD) of CPT value ``value``: ``v^-1(value)``."""
    if value >= 0.0:
        return float(value ** (1.0 / params.alpha))
    return -float((-value / params.loss_aversion) ** (1.0 / params.beta))
