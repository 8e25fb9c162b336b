"""Exposure payloads: a (book, underlying) with its per-expiry columns, and a book
(docs/redis.md "Exposure payload"; figures and units: :mod:`engine.outputs.figures`)."""

from __future__ import annotations

from typing import ClassVar, Final, Literal

import msgspec

from engine.outputs.figures import Family
from engine.outputs.header import Header

__all__ = ["BookExposure", "ExpiryColumns", "Exposure", "UnderlyingExposure", "expiry_rows"]

EXPOSURE: Final[Family] = "exposure"

# gc=False: thousands of these are built per second, and they cannot be part of a reference
# cycle (they hold numbers, strings, lists of those and the shared UNITS dict), so the garbage
# collector need not track them.


class ExpiryColumns(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An underlying's figures per expiry bucket, as columns of equal length: bucket ``i`` is
    ``expiry[i]``, ``delta[i]``, ... Buckets: dates in time order (ISO 8601 UTC), then
    ``perpetual``, then ``spot``."""

    expiry: list[str]
    delta: list[float]
    delta_usd: list[float]
    delta_adj: list[float]
    gamma: list[float]
    cash_gamma: list[float]
    vega: list[float]
    theta: list[float]
    rho: list[float]
    vanna: list[float]
    volga: list[float]
    market_value: list[float]
    pnl: list[float]
    n_positions: list[int]
    n_stale: list[int]


class UnderlyingExposure(Header, frozen=True, kw_only=True, gc=False):
    """One book's positions on one underlying (key ``{book}:{underlying}``): the twelve figures
    summed over them, the counts, and the same per expiry bucket."""

    family: ClassVar[Family] = EXPOSURE
    scope: Literal["underlying"] = "underlying"
    book: str
    underlying: str
    delta: float
    delta_usd: float
    delta_adj: float
    gamma: float
    cash_gamma: float
    vega: float
    theta: float
    rho: float
    vanna: float
    volga: float
    market_value: float
    pnl: float
    n_positions: int
    n_stale: int
    expiries: ExpiryColumns
    units: dict[str, str]


class BookExposure(Header, frozen=True, kw_only=True, gc=False):
    """All of one book's positions (key ``{book}``): the USD figures summed over its
    underlyings; the figures in underlying units are null (they do not add across
    underlyings)."""

    family: ClassVar[Family] = EXPOSURE
    scope: Literal["book"] = "book"
    book: str
    delta: None = None
    delta_usd: float
    delta_adj: None = None
    gamma: None = None
    cash_gamma: float
    vega: float
    theta: float
    rho: float
    vanna: None = None
    volga: float
    market_value: float
    pnl: float
    n_positions: int
    n_stale: int
    units: dict[str, str]


Exposure = UnderlyingExposure | BookExposure
"""An exposure payload (``{p}:exposure``, ``{p}:snapshot``)."""


def expiry_rows(columns: ExpiryColumns) -> list[dict[str, str | float | int]]:
    """An underlying payload's ``expiries`` as one dict per expiry bucket."""
    names = columns.__struct_fields__
    values = [getattr(columns, name) for name in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)]
