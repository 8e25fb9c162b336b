"""The names and units of the published figures, and the kinds of payload (docs/redis.md).

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

from typing import Final, Literal, get_args

__all__ = [
    "BOOK_METRICS",
    "FAMILIES",
    "METRICS",
    "RISK_METRICS",
    "RISK_UNITS",
    "UNITS",
    "VAR_METHODS",
    "Family",
    "Scope",
    "Severity",
    "VarMethod",
]

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

VarMethod = Literal["delta_normal", "delta_gamma", "historical", "monte_carlo"]
"""A VaR method (docs/risk.md)."""

VAR_METHODS: Final[tuple[VarMethod, ...]] = (
    "delta_normal",
    "delta_gamma",
    "historical",
    "monte_carlo",
)
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
    "margin_reg_t": ("book", "USD"),
    "margin_reg_t_deposit": ("book", "USD"),
    "margin_us_portfolio": ("book", "USD"),
    "margin_cme_span": ("book", "USD"),
    "hedge_contracts": ("underlying", "contracts"),
    "hedge_residual_delta": ("underlying", "underlying units"),
    "capital_usd": ("book", "USD"),
    "capital_utilisation": ("book", "fraction of budget"),
    "exit_cost_usd": ("book", "USD"),
    "liquidity_cost_usd": ("book", "USD"),
    "lvar": ("book", "USD"),
    "les": ("book", "USD"),
    **{f"{k}_{m}": ("book", "USD") for m in VAR_METHODS for k in ("lvar", "les")},
    "slippage_usd": ("underlying", "USD"),
    "beta_delta_total": ("book", "benchmark units"),
    "beta_gamma_total": ("book", "benchmark units per 1 benchmark unit move"),
    "beta_delta_usd": ("book", "USD"),
    "hedge_r2": ("book", "fraction"),
    "cpt_value": ("book", "value-function units (USD^alpha)"),
    "cpt_certainty_equivalent": ("book", "USD"),
    "atm_vol": ("expiry", "decimal"),
    "rr25": ("expiry", "decimal"),
    "bf25": ("expiry", "decimal"),
    "gex_total": ("expiry", "USD per 1% move"),
    "gex_change_window": ("expiry", "USD per 1% move"),
    "spot_minus_zero_gamma": ("expiry", "USD"),
    "put_call_oi": ("expiry", "ratio"),
    "put_call_volume": ("expiry", "ratio"),
    "oi_change_window": ("expiry", "underlying units"),
}
"""The flat figures of the ``var``, ``stress``, ``margin``, ``capital``, ``liquidity``,
``crosshedge``, ``cpt`` (a book's), ``hedge`` and ``slippage`` (a (book, underlying)'s),
``skew`` and ``positioning`` (an (underlying, expiry)'s, of no book; the positioning payload of
every expiry has expiry ``all``) payloads that alert rules can watch (docs/redis.md): name ->
(scope, unit). Each is the payload's field of that name, but for ``hedge_r2`` (the
``crosshedge`` payload's ``hedge.r2``), ``cpt_value`` and ``cpt_certainty_equivalent`` (the
``cpt`` payload's ``value`` and ``certainty_equivalent``). VaR, ES and their
liquidity-adjusted ``lvar``/``les`` are losses (positive: the book loses); rr25 and bf25 are
decimal vols (0.01: one vol point); ``beta_delta_total`` is the book's benchmark-equivalent
delta (e.g. BTC); ``spot_minus_zero_gamma`` changes sign when the spot crosses the zero-gamma
level (docs/positioning.md)."""

RISK_UNITS: Final[dict[str, str]] = {name: unit for name, (_, unit) in RISK_METRICS.items()}
"""The unit of each of :data:`RISK_METRICS`."""

BOOK_METRICS: Final = tuple(m for m in METRICS if UNITS[m].startswith("USD"))
"""Figures that add across underlyings, published at book scope."""

Family = Literal[
    "exposure",
    "var",
    "stress",
    "margin",
    "hedge",
    "skew",
    "strategy",
    "settlement",
    "liquidity",
    "slippage",
    "crosshedge",
    "cpt",
    "attribution",
    "capital",
    "positioning",
    "forwards",
]
"""A kind of state payload: each has its own channel ``{p}:{family}``, stream
``{p}:{family}:stream`` and snapshot hash (``{p}:snapshot`` for exposures, else
``{p}:{family}:snapshot``), keyed as docs/redis.md says."""

FAMILIES: Final[tuple[Family, ...]] = get_args(Family)
"""The values of :data:`Family`, in order."""

Scope = Literal["book", "underlying", "expiry", "strategy"]
"""Aggregation level: a book, a (book, underlying), a (book, underlying, expiry), or a book's
holding of a strategy."""

Severity = Literal["info", "warning", "critical"]
"""How urgent an alert is; consumers route on it."""
