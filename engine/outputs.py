"""What riskd publishes: exposure and alert payloads, their units, and the :class:`Sink` seam.

Payloads are plain dicts (the sink encodes them with orjson). Every payload carries ``"v"``
(:data:`SCHEMA_VERSION`) and ``"ts"`` (epoch milliseconds of when the engine built the payload,
on the daemon's clock; a payload re-published after a Redis outage keeps it; ``"ts_ns"`` gives
nanoseconds). Exposure payloads also carry ``"valuation_ts_ns"`` (the time the figures are valued
at: times to expiry count from it; it moves at every full reprice, about once a second) and
``"units"``, the unit of every figure (:data:`UNITS`).

Exposure figures, summed over a scope's positions (quantity x multiplier x per-unit figure):

==============  ===============================================================================
delta           underlying units: dV/dF (options on a forward) or dV/dS, futures count 1 per unit
delta_usd       USD: delta x the underlying price it was taken against
delta_adj       underlying units, price-adjusted: coin-settled options count delta - premium in
                coin (Deribit's "DeltaTotal"); equal to delta for everything else
gamma           underlying units per 1 unit move of the underlying
cash_gamma      USD: change of delta_usd for a 1 % move of the underlying (gamma x S^2 / 100)
vega            USD per vol point (sigma + 0.01)
theta           USD per calendar day (ACT/365)
rho             USD per 1 % of rate
vanna           underlying units of delta per vol point
volga           USD of vega per vol point, per vol point
market_value    USD: mark-to-model value of the options (futures: 0, their value is in pnl)
pnl             USD: value now against ``avg_price``, for positions that have one
==============  ===============================================================================

Figures in underlying units (delta, delta_adj, gamma, vanna) do not add across underlyings, so a
book-scope payload sets them to null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Literal, Protocol

__all__ = [
    "BOOK_METRICS",
    "FAMILIES",
    "METRICS",
    "RISK_METRICS",
    "RISK_UNITS",
    "SCHEMA_VERSION",
    "UNITS",
    "VAR_METHODS",
    "Scope",
    "Sink",
    "expiry_rows",
]

SCHEMA_VERSION: Final = 2
"""Version of every payload's schema; bumped on any incompatible change (docs/redis.md)."""

METRICS: Final = (
    "delta",
    "delta_usd",
    "delta_adj",
    "gamma",
    "cash_gamma",
    "vega",
    "theta",
    "rho",
    "vanna",
    "volga",
    "market_value",
    "pnl",
)
"""The exposure figures, in the order of the engine's aggregate columns."""

UNITS: Final[dict[str, str]] = {
    "delta": "underlying units",
    "delta_usd": "USD",
    "delta_adj": "underlying units (price-adjusted)",
    "gamma": "underlying units per 1 underlying unit move",
    "cash_gamma": "USD per 1% move",
    "vega": "USD per vol point",
    "theta": "USD per day",
    "rho": "USD per 1% rate",
    "vanna": "underlying units per vol point",
    "volga": "USD per vol point squared",
    "market_value": "USD",
    "pnl": "USD",
}

VAR_METHODS: Final = ("delta_normal", "delta_gamma", "historical", "monte_carlo")
"""The VaR methods, in the order payloads list them (docs/risk.md)."""

RISK_METRICS: Final[dict[str, tuple[str, str]]] = {
    "var": ("book", "USD"),
    "es": ("book", "USD"),
    **{f"{k}_{m}": ("book", "USD") for m in VAR_METHODS for k in ("var", "es")},
    "stress_loss": ("book", "USD"),
    "margin_im": ("book", "USD"),
    "margin_mm": ("book", "USD"),
    "margin_span": ("book", "USD"),
    "margin_standard_im": ("book", "USD"),
    "margin_savings": ("book", "USD"),
    "margin_utilisation": ("book", "fraction of equity"),
    "margin_mm_utilisation": ("book", "fraction of equity"),
    "hedge_contracts": ("underlying", "contracts"),
    "hedge_residual_delta": ("underlying", "underlying units"),
    "atm_vol": ("expiry", "decimal"),
    "rr25": ("expiry", "decimal"),
    "bf25": ("expiry", "decimal"),
}
"""The flat figures of the ``var``, ``stress``, ``margin`` (a book's), ``hedge`` (a (book,
underlying)'s) and ``skew`` (an (underlying, expiry)'s, of no book) payloads that alert rules
can watch (docs/redis.md): name -> (scope, unit). VaR and ES are losses (positive: the book
loses); rr25 and bf25 are decimal vols (0.01: one vol point)."""

RISK_UNITS: Final[dict[str, str]] = {name: unit for name, (_, unit) in RISK_METRICS.items()}
"""The unit of each of :data:`RISK_METRICS`."""

BOOK_METRICS: Final = tuple(m for m in METRICS if UNITS[m].startswith("USD"))
"""Figures that add across underlyings, published at book scope."""

FAMILIES: Final = (
    "exposure",
    "var",
    "stress",
    "margin",
    "hedge",
    "skew",
    "strategy",
    "settlement",
)
"""Kinds of state payload (:meth:`Sink.publish`): each has its own channel ``{p}:{family}``,
stream ``{p}:{family}:stream`` and snapshot hash (``{p}:snapshot`` for exposures, else
``{p}:{family}:snapshot``), keyed as docs/redis.md says."""

Scope = Literal["book", "underlying", "expiry", "strategy"]
"""Aggregation level: a book, a (book, underlying), a (book, underlying, expiry), or a book's
holding of a strategy."""


class Sink(Protocol):
    """Where the engine's results go (Redis in production). Calls never block and never raise:
    a sink keeps only the latest payload per key while its server is away."""

    def exposure(self, key: str, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as the latest exposure under ``key`` (``{book}:{underlying}`` or
        ``{book}``); rate-limited per key."""
        ...

    def publish(self, family: str, key: str, payload: dict[str, Any]) -> None:
        """Publish ``payload`` as the latest of ``family`` (one of :data:`FAMILIES`) under
        ``key``; rate-limited per key."""
        ...

    def alert(self, payload: dict[str, Any]) -> None:
        """Publish an alert transition (``raised`` or ``cleared``)."""
        ...


def expiry_rows(expiries: Mapping[str, Any]) -> list[dict[str, Any]]:
    """An underlying-scope payload's ``expiries`` (columns: ``expiry`` and one sequence per
    figure, a value per expiry) as one dict per expiry, values as Python numbers."""
    names = list(expiries)
    columns = [c.tolist() if hasattr(c, "tolist") else list(c) for c in expiries.values()]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
