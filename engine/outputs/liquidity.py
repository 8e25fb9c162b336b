"""The ``liquidity`` payload: a book's exit cost at the current quotes and its liquidity-adjusted
VaR and ES (docs/risk.md "Liquidity", docs/redis.md); the ``slippage`` payload: what a suggested
hedge would cost against its future's order book (docs/hedging.md). Money is USD."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.outputs.figures import Family, VarMethod
from engine.outputs.header import Header

__all__ = ["LiquidityPayload", "PositionLiquidity", "SlippagePayload"]


class PositionLiquidity(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One position at its current quotes, with its spread statistics (null: no two-sided
    quote, or no positive mid)."""

    instrument: str
    quantity: float
    value_usd: float | None
    relative_spread: float | None
    exit_cost_usd: float | None
    spread_mean: float | None
    spread_std: float | None
    samples: int
    cost_usd: float | None


class LiquidityPayload(Header, frozen=True, kw_only=True):
    """A book's exit cost, the Bangia et al. (1999) liquidity cost and the liquidity-adjusted
    VaR and ES of every method (null where the VaR is); the positions with the largest shares
    of the liquidity cost (``[risk.liquidity] top_positions``), the rest summed. Key: the
    book."""

    family: ClassVar[Family] = "liquidity"
    book: str
    method: VarMethod
    a: float
    window: int
    exit_cost_usd: float
    liquidity_cost_usd: float
    var: float | None
    es: float | None
    lvar: float | None
    les: float | None
    lvar_delta_normal: float | None
    les_delta_normal: float | None
    lvar_delta_gamma: float | None
    les_delta_gamma: float | None
    lvar_historical: float | None
    les_historical: float | None
    lvar_monte_carlo: float | None
    les_monte_carlo: float | None
    positions: list[PositionLiquidity]
    n_positions: int
    other_positions: int
    other_exit_cost_usd: float
    other_cost_usd: float
    unquoted: list[str]
    status: str
    units: dict[str, str]


class SlippagePayload(Header, frozen=True, kw_only=True):
    """The expected slippage of a (book, underlying)'s suggested delta hedge (the ``hedge``
    payload's ``delta_hedge``) traded at once against its future's order book. Key:
    ``{book}:{underlying}``, as the hedge's."""

    family: ClassVar[Family] = "slippage"
    book: str
    underlying: str
    future: str
    contracts: float | None
    quantity: float | None
    side: str | None
    filled: float | None
    average_price: float | None
    mid: float | None
    slippage_usd: float | None
    complete: bool
    levels: int
    book_levels: int
    book_ts_ns: int | None
    status: str
    units: dict[str, str]
