"""Risk payloads: VaR, stress, margin, hedge, skew, strategy and settlement (docs/redis.md "Risk
payloads", docs/risk.md, docs/margin.md, docs/hedging.md, docs/skew.md, docs/strategies.md).
Money is USD, losses are positive when the book loses; a figure that cannot be computed is null
and ``status`` says why."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.outputs.figures import Family, VarMethod
from engine.outputs.header import Header
from engine.outputs.listed import UsMargin

__all__ = [
    "FutureHedge",
    "HedgePayload",
    "MarginPayload",
    "OptionHedge",
    "Payoff",
    "PortfolioMargin",
    "Residual",
    "SettledPosition",
    "SettlementPayload",
    "SkewPayload",
    "SmileButterfly",
    "SmilePayload",
    "SpanMargin",
    "StandardMargin",
    "StrategyLeg",
    "StrategyPayload",
    "StressPayload",
    "Svi",
    "TermStructurePayload",
    "VarPayload",
    "Vector",
]

Vector = list[float]
"""Per underlying (in the order of the payload's ``underlyings``), or along a grid."""


class VarPayload(Header, frozen=True, kw_only=True):
    """A book's VaR and expected shortfall (USD losses over ``horizon_days``) by every method;
    ``var`` and ``es`` are those of ``method``. Key: the book."""

    family: ClassVar[Family] = "var"
    book: str
    underlyings: list[str]
    confidence: float
    es_confidence: float
    horizon_days: float
    method: VarMethod
    history_days: int
    positions: int
    var: float | None
    es: float | None
    var_delta_normal: float | None
    es_delta_normal: float | None
    var_delta_gamma: float | None
    es_delta_gamma: float | None
    var_historical: float | None
    es_historical: float | None
    var_monte_carlo: float | None
    es_monte_carlo: float | None
    status: dict[str, str]
    mc_scenarios: int
    units: dict[str, str]
    scenario_set: str | None = None
    """The common scenario set's id (``[risk] scenario_underlyings``; docs/scaling.md); null:
    the book's own scenarios."""
    shards: dict[str, int] | None = None
    """From ``riskd aggregate``: each shard's valuation time (UNIX ns) of the vectors combined
    (``valuation_ts_ns`` is the oldest); null from a daemon."""


class StressPayload(Header, frozen=True, kw_only=True):
    """A book's P&L (USD) under every (spot shock, vol shock) pair, all underlyings together:
    ``pnl[i][j]`` at ``spot[i]``, ``vol[j]``; ``stress_loss`` is the worst loss. Key: the book."""

    family: ClassVar[Family] = "stress"
    book: str
    underlyings: list[str]
    spot: Vector
    vol: Vector
    pnl: list[Vector]
    stress_loss: float
    excluded: list[str]
    units: dict[str, str]


class PortfolioMargin(msgspec.Struct, frozen=True, kw_only=True):
    """Deribit-style portfolio margin per underlying, with its risk matrix."""

    initial_usd: Vector
    maintenance_usd: Vector
    initial_coin: Vector
    maintenance_coin: Vector
    worst_case_usd: Vector
    delta_shock_usd: Vector
    roll_shock_usd: Vector
    price_moves: list[Vector]
    matrix_usd: list[list[Vector]]
    extended_moves: list[Vector]
    extended_usd: list[Vector]


class SpanMargin(msgspec.Struct, frozen=True, kw_only=True):
    """The SPAN-style requirement per underlying, USD."""

    requirement_usd: Vector
    scan_risk_usd: Vector
    short_option_minimum_usd: Vector


class StandardMargin(msgspec.Struct, frozen=True, kw_only=True):
    """Deribit standard margin (no offsets) per underlying."""

    initial_usd: Vector
    maintenance_usd: Vector
    initial_coin: Vector
    maintenance_coin: Vector


class MarginPayload(Header, frozen=True, kw_only=True):
    """A book's margin: the totals over its underlyings (each margined alone), and per
    underlying the three methods' details (null, with the totals, unless ``status`` is
    ``ok``); for a book of US listed options and futures also their US margin (``us``, and its
    totals ``margin_reg_t``, ``margin_reg_t_deposit``, ``margin_us_portfolio``,
    ``margin_cme_span``; null without US positions). Key: the book."""

    family: ClassVar[Family] = "margin"
    book: str
    underlyings: list[str]
    equity_usd: float | None
    margin_im: float | None
    margin_mm: float | None
    margin_span: float | None
    margin_standard_im: float | None
    margin_savings: float | None
    margin_utilisation: float | None
    margin_mm_utilisation: float | None
    margin_reg_t: float | None = None
    margin_reg_t_deposit: float | None = None
    margin_us_portfolio: float | None = None
    margin_cme_span: float | None = None
    status: str
    portfolio: PortfolioMargin | None
    span: SpanMargin | None
    standard: StandardMargin | None
    us: UsMargin | None = None
    excluded: list[str]
    units: dict[str, str]


class FutureHedge(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A quantity of the hedge future: contracts (rounded, and exact), the position quantity
    they make, and the delta left after them."""

    contracts: float
    contracts_exact: float
    quantity: float
    residual_delta: float


class Residual(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Greeks left after a hedge: delta (underlying units), gamma (per 1 unit move), vega (USD
    per vol point)."""

    delta: float
    gamma: float
    vega: float


class OptionHedge(msgspec.Struct, frozen=True, kw_only=True):
    """The delta-gamma (one option) or gamma-vega (two) neutral hedge: option quantities, the
    future that zeroes the delta left, and the Greeks left before and after rounding."""

    targets: list[str]
    quantity: Vector
    quantity_rounded: Vector
    future: FutureHedge | None
    residual: Residual
    residual_rounded: Residual
    singular: bool


class HedgePayload(Header, frozen=True, kw_only=True):
    """A (book, underlying)'s hedge in its configured future (and options); positive: buy.
    Key: ``{book}:{underlying}``."""

    family: ClassVar[Family] = "hedge"
    book: str
    underlying: str
    future: str
    options: list[str]
    delta: float
    delta_hedge: FutureHedge | None
    usd_flat: FutureHedge | None
    option_hedge: OptionHedge | None
    hedge_contracts: float | None
    hedge_residual_delta: float | None
    status: str
    units: dict[str, str]


class Svi(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Raw SVI parameters of total variance in k = ln(K/F)."""

    a: float
    b: float
    rho: float
    m: float
    sigma: float


class SmileButterfly(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The fit's butterfly-arbitrage check."""

    g_min: float
    k_at_g_min: float
    wing_slope: float
    arbitrage_free: bool


class SmilePayload(Header, frozen=True, kw_only=True):
    """One option chain's SVI fit, arbitrage check and 25-delta profile (a market figure of
    no book), with the quotes it was fitted to (strike, implied vol; by strike) and the fitted
    smile on a grid of strikes over their range (empty without a fit). Key:
    ``{underlying}:{expiry}``."""

    family: ClassVar[Family] = "skew"
    underlying: str
    expiry: str
    coin_settled: bool
    forward: float
    tte_years: float = msgspec.field(name="T")
    n_quotes: int
    quote_strikes: Vector
    quote_vols: Vector
    fit_strikes: Vector
    fit_vols: Vector
    atm_vol: float | None
    rr25: float | None
    bf25: float | None
    call25_strike: float | None
    call25_vol: float | None
    put25_strike: float | None
    put25_vol: float | None
    svi: Svi | None
    rmse_vol_points: float | None
    butterfly: SmileButterfly | None
    delta_convention: str
    units: dict[str, str]
    status: str


class TermStructurePayload(Header, frozen=True, kw_only=True):
    """An underlying's ATM vol term structure over its fitted chains, in time order. Key:
    ``{underlying}``."""

    family: ClassVar[Family] = "skew"
    underlying: str
    expiries: list[str]
    tte_years: Vector = msgspec.field(name="T")
    atm_vol: Vector
    forward_vol: Vector
    units: dict[str, str]


SkewPayload = SmilePayload | TermStructurePayload
"""A ``skew`` payload."""


class StrategyLeg(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One leg of a strategy: its instrument and ratio (contracts per unit of the strategy)."""

    instrument: str
    ratio: float


class Payoff(msgspec.Struct, frozen=True, kw_only=True):
    """The P&L (USD) of the holding at its first expiry (``pnl``) and at the valuation time
    (``pnl_now``) over a grid of underlying prices ``S``, entered at the legs' model prices
    now; null figures (and ``status`` the reason) when it cannot be drawn; ``max_profit`` /
    ``max_loss`` null: unbounded."""

    status: str
    expiry_ns: int | None
    S: Vector | None
    pnl: Vector | None
    pnl_now: Vector | None
    breakevens: Vector | None
    max_profit: float | None
    max_loss: float | None
    entry: str | None


class StrategyPayload(Header, frozen=True, kw_only=True):
    """A book's holding of a strategy: its figures (units of the exposures), value, P&L against
    its cost, margin alone and payoff diagram. Key: ``{book}:{strategy}``."""

    family: ClassVar[Family] = "strategy"
    book: str
    strategy: str
    kind: str
    underlying: str
    legs: list[StrategyLeg]
    quantity: float
    cost: float | None
    cost_currency: str
    status: str
    delta: float | None
    delta_usd: float | None
    delta_adj: float | None
    gamma: float | None
    cash_gamma: float | None
    vega: float | None
    theta: float | None
    rho: float | None
    vanna: float | None
    volga: float | None
    market_value: float | None
    pnl: float | None
    margin_im: float | None
    margin_mm: float | None
    payoff: Payoff | None
    units: dict[str, str]


class SettledPosition(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A position settled at an expiry, and what it settled for."""

    book: str
    instrument: str
    quantity: float
    avg_price: float
    value: float
    pnl: float
    pnl_usd: float


class SettlementPayload(Header, frozen=True, kw_only=True):
    """An index and expiry: the running time-weighted average of the index before the expiry
    (``final`` false, no positions), what its positions settled for after it. Key:
    ``{index}:{expiry}``."""

    family: ClassVar[Family] = "settlement"
    index: str
    expiry: str
    expiry_ns: int
    final: bool
    price: float
    status: str
    n_samples: int
    covered_ns: int
    longest_gap_ns: int
    positions: list[SettledPosition]
    pnl_usd: dict[str, float]
    n_no_cost: int
    realised_pnl_usd: dict[str, float]
    units: dict[str, str]
