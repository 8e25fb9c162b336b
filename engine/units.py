"""Units: the one place where riskd's Greeks conventions are defined and converted.

The kernels (:mod:`engine.greeks`) return **raw** derivatives, per option on one unit of the
underlying, long:

==========  =====================================================================
figure      raw unit (``Convention.RAW``)
==========  =====================================================================
price       currency of S/F and K (USD for Deribit BTC/ETH options)
delta       dV/dS (BSM) or dV/dF (Black-76), per 1 unit of the underlying
gamma       d²V/dS², per unit of the underlying squared
vega        dV/dσ per 1.00 of volatility (σ a decimal: 0.25)
theta       dV/dt per year of calendar time, ACT/365, S or F held fixed
rho         dV/dr per 1.00 of rate (BSM: S, q fixed; Black-76: F fixed, -T·V)
vanna       d(delta)/dσ per 1.00 of volatility
volga       d(vega)/dσ per 1.00 of volatility, squared
charm       d(delta)/dt per year
==========  =====================================================================

Desk units (``Convention.DESK``) are what a trader reads on a risk screen:

==========  =====================================================================
vega        per 1 vol point (σ + 0.01): raw / 100
theta       per calendar day: raw / 365
rho         per 1 % of rate (r + 0.01): raw / 100
cash gamma  change of the USD delta for a 1 % move of the underlying: Γ · S² / 100
delta USD   delta · S: USD value of the equivalent underlying position
vanna       per vol point: raw / 100. volga: per vol point squared: raw / 10 000.
charm       per calendar day: raw / 365
==========  =====================================================================

Deribit (``Convention.DERIBIT``) publishes the ``greeks`` of its tickers in USD on Black-76 with
F = ``underlying_price``: delta N(d1) (the plain, not the price-adjusted, delta), gamma per USD
of F, vega per vol point, theta per day floored at minus the option's remaining value, rho per
1 % of rate as if on spot (K T e^{-rT} N(d2) / 100). See ../shared/data/deribit/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

from engine.greeks import Greeks

__all__ = [
    "DAYS_PER_YEAR",
    "Convention",
    "DeribitGreeks",
    "DeskGreeks",
    "cash_gamma",
    "to_deribit",
    "to_desk",
]

FloatArray = npt.NDArray[np.float64]

DAYS_PER_YEAR = 365.0
"""Calendar days per year of theta and charm: ACT/365, as :mod:`engine.daycount`."""
VOL_POINT = 0.01
"""One vol point, as a decimal volatility."""
RATE_PERCENT = 0.01
"""One percent of rate, as a decimal."""
MOVE_PERCENT = 0.01
"""A 1 % move of the underlying, for cash gamma."""


class Convention(StrEnum):
    """The Greeks conventions riskd speaks; every published figure names one.

    Attributes:
        RAW: kernel output, per option, per 1.00 of vol and rate, theta and charm per year.
        DESK: per option; vega, vanna per vol point; volga per vol point squared; theta,
            charm per day; rho per 1 % of rate; cash gamma per 1 % move; delta also in USD.
        DERIBIT: as in Deribit's ticker ``greeks`` (see module docstring).
    """

    RAW = "raw"
    DESK = "desk"
    DERIBIT = "deribit"


@dataclass(frozen=True, slots=True)
class DeskGreeks:
    """Greeks in desk units (:attr:`Convention.DESK`), per option, long."""

    price: FloatArray
    delta: FloatArray
    delta_usd: FloatArray
    gamma: FloatArray
    cash_gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray
    vanna: FloatArray
    volga: FloatArray
    charm: FloatArray


@dataclass(frozen=True, slots=True)
class DeribitGreeks:
    """Greeks as Deribit publishes them on its tickers (:attr:`Convention.DERIBIT`)."""

    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


def cash_gamma(gamma: Any, S: Any) -> FloatArray:
    """Change of the USD delta (delta · S) for a 1 % move of S: Γ · S² · 1 %."""
    s = np.asarray(S, dtype=np.float64)
    return np.asarray(gamma, dtype=np.float64) * s * s * MOVE_PERCENT


def to_desk(g: Greeks, S: Any) -> DeskGreeks:
    """Raw Greeks (from :func:`engine.greeks.bsm` or ``black76``) in desk units.

    Args:
        g: raw Greeks.
        S: the underlying price the Greeks were computed at (spot, or F for Black-76).
    """
    s = np.asarray(S, dtype=np.float64)
    return DeskGreeks(
        price=g.price,
        delta=g.delta,
        delta_usd=g.delta * s,
        gamma=g.gamma,
        cash_gamma=cash_gamma(g.gamma, s),
        vega=g.vega * VOL_POINT,
        theta=g.theta / DAYS_PER_YEAR,
        rho=g.rho * RATE_PERCENT,
        vanna=g.vanna * VOL_POINT,
        volga=g.volga * VOL_POINT * VOL_POINT,
        charm=g.charm / DAYS_PER_YEAR,
    )


def to_deribit(g: Greeks, F: Any, T: Any) -> DeribitGreeks:
    """Black-76 Greeks (from :func:`engine.greeks.black76` or ``inverse``) as Deribit prints them.

    Args:
        g: raw Black-76 Greeks in USD.
        F: the forward they were computed at (Deribit's ``underlying_price``).
        T: years to expiry they were computed at.
    """
    f = np.asarray(F, dtype=np.float64)
    t = np.asarray(T, dtype=np.float64)
    # Deribit's rho is the spot rho, dV/dr with S fixed: Black-76's rho (F fixed) plus the
    # forward's own move dF/dr = T·F, times delta.
    spot_rho = g.rho + t * f * g.delta
    return DeribitGreeks(
        delta=g.delta,
        gamma=g.gamma,
        vega=g.vega * VOL_POINT,
        theta=np.maximum(g.theta / DAYS_PER_YEAR, -g.price),
        rho=spot_rho * RATE_PERCENT,
    )
