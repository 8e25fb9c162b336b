"""Zero-rate curves: the discount factor and zero rate of a currency for any time to expiry.

Conventions (docs/units.md#rate-curves):

- Time ``t`` is in years of 365 days (ACT/365, :mod:`engine.daycount`); a curve's nodes are
  given in calendar days (``t = days / 365``) or in years.
- Zero rates are continuously compounded decimals per year: ``DF(t) = exp(-r(t) t)``.
- Between nodes ``r(t) t`` (minus the log of the discount factor) is linear in ``t``: the
  instantaneous forward rate is flat between nodes ("raw" interpolation, Hagan and West 2006),
  so every forward rate is positive when the discount factors fall, and a node's zero rate is
  repriced exactly. Before the first node the zero rate is the first node's (the same line
  from ``r t = 0`` at ``t = 0``); after the last node it is the last node's (flat zero rate).
- A flat rate (``[portfolio.underlyings.NAME] rate``) is the curve of one node.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec
import numpy as np
import numpy.typing as npt

from engine.daycount import NS_PER_DAY, NS_PER_YEAR

__all__ = ["DAYS_PER_YEAR", "RateCurveConfig", "ZeroCurve"]

FloatArray = npt.NDArray[np.float64]

DAYS_PER_YEAR = NS_PER_YEAR / NS_PER_DAY
"""Days of a curve year: ACT/365, as time to expiry."""

TenorDays = Annotated[float, msgspec.Meta(gt=0.0, le=36_500.0)]
"""A node's calendar days from today, > 0, at most 100 years."""
TenorYears = Annotated[float, msgspec.Meta(gt=0.0, le=100.0)]
"""A node's years (ACT/365) from today, > 0, at most 100."""
ZeroRate = Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)]
"""A continuously compounded zero rate, a decimal per year in [-1, 1] (NaN and inf fail)."""


@dataclass(frozen=True, slots=True)
class ZeroCurve:
    """Zero rates at nodes, interpolated linearly in ``r t`` (module docstring).

    Attributes:
        years: the nodes' times, years (ACT/365), strictly increasing, > 0.
        zero_rates: the nodes' zero rates, continuously compounded decimals per year.
    """

    years: FloatArray
    zero_rates: FloatArray

    def __post_init__(self) -> None:
        t, r = self.years, self.zero_rates
        if t.ndim != 1 or t.shape != r.shape or t.size == 0:
            raise ValueError("a curve needs as many zero rates as nodes, at least one")
        if not (np.isfinite(t).all() and np.isfinite(r).all()):
            raise ValueError("a curve's nodes and zero rates must be finite")
        if t[0] <= 0.0 or (t.size > 1 and not (np.diff(t) > 0.0).all()):
            raise ValueError("a curve's nodes must be > 0 and strictly increasing")
        t.setflags(write=False)
        r.setflags(write=False)

    @classmethod
    def flat(cls, rate: float) -> ZeroCurve:
        """The curve whose zero rate is ``rate`` at every time."""
        return cls(np.array([1.0]), np.array([float(rate)]))

    def rt(self, t: Any) -> FloatArray:
        """``r(t) t``, minus the log discount factor, at years ``t`` (any shape)."""
        tt = np.asarray(t, dtype=np.float64)
        years, rates = self.years, self.zero_rates
        last = years[-1]
        # the line from (0, 0) through the nodes' (t_i, r_i t_i); the last zero rate beyond
        inside = np.interp(tt, np.r_[0.0, years], np.r_[0.0, years * rates])
        beyond = rates[-1] * tt
        below = rates[0] * tt  # t < 0: the first zero rate, as before the first node
        return np.where(tt > last, beyond, np.where(tt < 0.0, below, inside))

    def zero_rate(self, t: Any) -> FloatArray:
        """The zero rate to years ``t``, continuously compounded, a decimal per year; the first
        node's at ``t <= 0``."""
        tt = np.asarray(t, dtype=np.float64)
        positive = tt > 0.0
        safe = np.where(positive, tt, 1.0)
        return np.where(positive, self.rt(safe) / safe, self.zero_rates[0])

    def discount(self, t: Any) -> FloatArray:
        """The discount factor to years ``t``: ``exp(-r(t) t)`` (1 at ``t = 0``)."""
        return np.exp(-self.rt(t))

    def forward_rate(self, t1: Any, t2: Any) -> FloatArray:
        """The continuously compounded forward rate from ``t1`` to ``t2`` years (``t2 > t1``)."""
        span = np.asarray(t2, dtype=np.float64) - np.asarray(t1, dtype=np.float64)
        return np.asarray((self.rt(t2) - self.rt(t1)) / span, dtype=np.float64)


class RateCurveConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[rates.CCY]``: a currency's zero curve (docs/config.md#rates).

    Give the nodes in ``days`` (calendar days, ACT/365) or in ``years``, not both, strictly
    increasing, with one continuously compounded zero rate each in ``zero_rates``.

    Attributes:
        days: the nodes' calendar days from today.
        years: the nodes' years from today.
        zero_rates: the nodes' zero rates, decimals per year, continuously compounded.
    """

    days: list[TenorDays] = []
    years: list[TenorYears] = []
    zero_rates: list[ZeroRate]

    def __post_init__(self) -> None:
        if bool(self.days) == bool(self.years):
            raise ValueError("give the nodes in `days` or in `years` (one of them, not empty)")
        key = "days" if self.days else "years"
        nodes = self.days or self.years
        if len(nodes) != len(self.zero_rates):
            raise ValueError(
                f"`{key}` has {len(nodes)} nodes but `zero_rates` {len(self.zero_rates)}"
            )
        for i in range(1, len(nodes)):
            if nodes[i] <= nodes[i - 1]:
                raise ValueError(f"`{key}` must increase strictly: {key}[{i}] = {nodes[i]}")

    def curve(self) -> ZeroCurve:
        """The curve these nodes describe."""
        years = (
            np.array(self.days, dtype=np.float64) / DAYS_PER_YEAR
            if self.days
            else np.array(self.years, dtype=np.float64)
        )
        return ZeroCurve(years, np.array(self.zero_rates, dtype=np.float64))
