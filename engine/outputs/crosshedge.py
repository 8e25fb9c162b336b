"""Cross-hedge and prospect-theory payloads (docs/redis.md "crosshedge" and "cpt",
docs/hedging.md "Cross hedges", docs/risk.md "Prospect-theory value"). Money is USD; a figure
that cannot be computed is null and ``status`` says why."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.outputs.figures import Family
from engine.outputs.header import Header

__all__ = ["CptFigures", "CptPayload", "CrossHedgeFigures", "CrossHedgePayload"]


class CrossHedgeFigures(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The minimum-variance hedge of the whole book in one instrument, from the recorded days.

    ``ratio`` is h* = Cov(book P&L, contract P&L) / Var(contract P&L); the hedge trades
    ``contracts_exact = -ratio`` (positive: buy), ``contracts`` rounded to whole ones."""

    instrument: str
    underlying: str
    notional_usd: float
    ratio: float
    contracts_exact: float
    contracts: float
    r2: float
    book_vol_usd: float
    residual_vol_usd: float
    residual_vol_rounded_usd: float


class CrossHedgePayload(Header, frozen=True, kw_only=True):
    """A book's cross hedge and its Greeks weighted by beta to the benchmark. Lists are per
    underlying, in the order of ``underlyings`` (null: not known). Key: the book."""

    family: ClassVar[Family] = "crosshedge"
    book: str
    underlyings: list[str]
    history_days: int
    hedge: CrossHedgeFigures | None
    benchmark: str | None
    benchmark_price: float | None
    beta: list[float | None]
    delta: list[float | None]
    gamma: list[float | None]
    beta_delta: list[float | None]
    beta_gamma: list[float | None]
    beta_delta_total: float | None
    beta_gamma_total: float | None
    beta_delta_usd: float | None
    status: str
    units: dict[str, str]


class CptFigures(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The value and probability-weighting parameters used (Tversky and Kahneman 1992)."""

    alpha: float
    beta: float
    loss_aversion: float
    gamma: float
    delta: float


class CptPayload(Header, frozen=True, kw_only=True):
    """The cumulative-prospect-theory value of a book's scenario P&L distribution, beside the
    expected shortfall of the same scenarios. Key: the book."""

    family: ClassVar[Family] = "cpt"
    book: str
    method: str
    scenarios: int
    horizon_days: float
    es_confidence: float
    value: float | None
    certainty_equivalent: float | None
    mean_pnl: float | None
    es: float | None
    params: CptFigures
    status: str
    units: dict[str, str]
