"""Attribution and capital payloads (docs/redis.md "Attribution payloads", docs/risk.md
"Attribution"): where a book's (or the firm's) VaR and ES come from, what diversification saves,
and each book's share of the firm's risk against its budget. Money is USD, losses positive; a
figure that cannot be computed is null and ``status`` says why."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from engine.outputs.figures import Family, VarMethod
from engine.outputs.header import Header

__all__ = [
    "AttributionPayload",
    "Breakdown",
    "CapitalPayload",
    "MethodAttribution",
    "PartFigures",
    "Trade",
    "WhatIfPayload",
    "WhatIfRequest",
    "WhatIfRisk",
    "WhatIfScope",
]

Measure = Literal["var", "es"]
"""The risk measure capital is allocated by."""


class PartFigures(msgspec.Struct, frozen=True, kw_only=True):
    """One part's figures (USD but the marginal ones, USD of risk per USD of notional).
    ``component_*`` sum to the method's total over a breakdown's parts; ``standalone_*`` is the
    part's own risk alone. A strategy holding's part (breakdown ``strategy``) also has its
    ``quantity`` (units of the strategy) and ``marginal_*_per_unit``, USD of risk per unit of
    the strategy (``component_* / quantity``); null for other parts."""

    label: str
    positions: int
    notional: float
    component_var: float | None
    component_es: float | None
    marginal_var: float | None
    marginal_es: float | None
    incremental_var: float | None
    incremental_es: float | None
    standalone_var: float | None
    standalone_es: float | None
    quantity: float | None
    marginal_var_per_unit: float | None
    marginal_es_per_unit: float | None


class Breakdown(msgspec.Struct, frozen=True, kw_only=True):
    """A method's total split over one partition (``by``: book, for the firm only, underlying,
    expiry, position or strategy: a strategy holding's slices of the book's lots, the rest
    labelled ``(no strategy)``; the firm's positions and strategies are labelled
    ``book/...``). Positions: the largest ``|component_es|`` ones, the rest summed in a part
    labelled ``other``. ``diversification_*`` = Σ standalone - total; ``ratio_*`` = total /
    Σ standalone (1: no diversification; null where Σ standalone is 0 or not computed)."""

    by: str
    parts: list[PartFigures]
    standalone_var_sum: float | None
    standalone_es_sum: float | None
    diversification_var: float | None
    diversification_es: float | None
    ratio_var: float | None
    ratio_es: float | None


class MethodAttribution(msgspec.Struct, frozen=True, kw_only=True):
    """One VaR method's figures and their breakdowns."""

    method: VarMethod
    status: str
    var: float | None
    es: float | None
    breakdowns: list[Breakdown]


class AttributionPayload(Header, frozen=True, kw_only=True):
    """A book's (key: the book) or the firm's (key ``*``: every book together) attribution of
    VaR and ES by every method, with diversification; ``correlations[i][j]`` of the
    underlyings' daily log-returns over the window the figures use."""

    family: ClassVar[Family] = "attribution"
    book: str
    underlyings: list[str]
    confidence: float
    es_confidence: float
    horizon_days: float
    history_days: int
    positions: int
    correlations: list[list[float]]
    methods: list[MethodAttribution]
    strategy: str
    units: dict[str, str]


class CapitalPayload(Header, frozen=True, kw_only=True):
    """A book's share of the firm's risk (key: the book): the Euler contribution of the book to
    the firm-wide ``measure`` by ``method``, its standalone risk, and its budget's utilisation.
    ``capital_usd`` of every book sums to ``firm_usd``."""

    family: ClassVar[Family] = "capital"
    book: str
    method: VarMethod
    measure: Measure
    firm_usd: float | None
    capital_usd: float | None
    capital_share: float | None
    standalone_usd: float | None
    capital_budget_usd: float | None
    capital_utilisation: float | None
    status: str
    units: dict[str, str]


class Trade(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A proposed trade: ``quantity`` of ``instrument`` (as the positions file counts it;
    negative: sell) into ``book``."""

    book: Annotated[str, msgspec.Meta(min_length=1, pattern=r"^[^:]+$")]
    instrument: Annotated[str, msgspec.Meta(min_length=1)]
    quantity: float


class WhatIfRequest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The body of ``POST /what-if``."""

    trades: Annotated[list[Trade], msgspec.Meta(min_length=1, max_length=100)]


class WhatIfRisk(msgspec.Struct, frozen=True, kw_only=True):
    """One method's VaR and ES before and after the trades (USD losses) and their difference,
    the trades' incremental VaR and ES."""

    method: VarMethod
    status: str
    var_before: float | None
    var_after: float | None
    incremental_var: float | None
    es_before: float | None
    es_after: float | None
    incremental_es: float | None


class WhatIfScope(msgspec.Struct, frozen=True, kw_only=True):
    """A book the trades touch, or the firm (``*``): risk by every method and the Deribit-style
    portfolio margin (initial, USD) before and after."""

    book: str
    risk: list[WhatIfRisk]
    margin_im_before: float | None
    margin_im_after: float | None
    incremental_margin_im: float | None
    margin_status: str


class WhatIfPayload(Header, frozen=True, kw_only=True):
    """The answer to a what-if: the incremental VaR, ES and margin of the ``trades`` for each book
    they touch and for the firm, by full revaluation against the daemon's book and moves at
    ``valuation_ts_ns``. ``unpriced``: instruments without a price now (left out)."""

    trades: list[Trade]
    scopes: list[WhatIfScope]
    unpriced: list[str]
    units: dict[str, str]
