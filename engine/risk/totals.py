"""Book and firm totals across shards (docs/scaling.md#the-aggregator): the USD figures of a
book's ``{book}`` exposure payloads, one per shard that holds part of it, summed (``math.fsum``:
exactly rounded, whatever the order), the counts added; and its stress grids, summed cell by
cell (every underlying takes the same shock, so a book's P&L in a cell is the sum of its parts').
Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from engine.outputs import UNITS, BookExposure, StressPayload
from engine.risk.vectors import FIRM

__all__ = ["SUMMED", "book_stress", "book_totals", "exposure_totals", "stress_totals"]

SUMMED: Final = ("delta_usd", "cash_gamma", "vega", "theta", "rho", "volga", "market_value", "pnl")
"""The figures of a book's exposure payload that add across underlyings (USD; the others are
null at book scope)."""


def _oldest(times: Sequence[int | None]) -> int | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def book_totals(book: str, parts: Sequence[BookExposure], now_ns: int) -> BookExposure:
    """The exposure payload of ``parts`` together: figures summed, counts added, the oldest
    valuation time."""

    def total(name: str) -> float:
        return math.fsum(getattr(p, name) for p in parts)

    return BookExposure(
        ts_ns=now_ns,
        valuation_ts_ns=_oldest([p.valuation_ts_ns for p in parts]),
        book=book,
        delta_usd=total("delta_usd"),
        cash_gamma=total("cash_gamma"),
        vega=total("vega"),
        theta=total("theta"),
        rho=total("rho"),
        volga=total("volga"),
        market_value=total("market_value"),
        pnl=total("pnl"),
        n_positions=sum(p.n_positions for p in parts),
        n_stale=sum(p.n_stale for p in parts),
        units=UNITS,
    )


def exposure_totals(
    shards: Sequence[Mapping[str, BookExposure]], now_ns: int
) -> list[tuple[str, BookExposure]]:
    """Each book's totals over ``shards`` (each: book -> that shard's payload of its part), and
    the firm's (key :data:`~engine.risk.vectors.FIRM`: every book of every shard)."""
    books = sorted({b for s in shards for b in s})
    out = [(b, book_totals(b, [s[b] for s in shards if b in s], now_ns)) for b in books]
    if books:
        out.append((FIRM, book_totals(FIRM, [p for s in shards for p in s.values()], now_ns)))
    return out


def book_stress(book: str, parts: Sequence[StressPayload], now_ns: int) -> StressPayload:
    """The stress payload of ``parts`` together (all on the grid of the first): each cell's
    P&L summed, the worst loss of the summed grid, the underlyings and exclusions joined, the
    oldest valuation time."""
    first = parts[0]
    pnl = [
        [math.fsum(p.pnl[i][j] for p in parts) for j in range(len(first.vol))]
        for i in range(len(first.spot))
    ]
    return StressPayload(
        ts_ns=now_ns,
        valuation_ts_ns=_oldest([p.valuation_ts_ns for p in parts]),
        book=book,
        underlyings=sorted({u for p in parts for u in p.underlyings}),
        spot=first.spot,
        vol=first.vol,
        pnl=pnl,
        stress_loss=-min(min(row) for row in pnl),
        excluded=sorted({x for p in parts for x in p.excluded}),
        units=first.units,
    )


def stress_totals(
    shards: Sequence[Mapping[str, StressPayload]], now_ns: int
) -> tuple[list[tuple[str, StressPayload]], list[str]]:
    """Each book's stress grid over ``shards`` (each: book -> that shard's payload of its
    part), and the firm's (key :data:`~engine.risk.vectors.FIRM`: every book of every shard).
    Returns them and the books left out because their parts are not on one grid (shards
    configured with different ``stress_spot`` or ``stress_vol``; the firm then too)."""
    books = sorted({b for s in shards for b in s})
    out: list[tuple[str, StressPayload]] = []
    apart: list[str] = []
    for b in books:
        parts = [s[b] for s in shards if b in s]
        if any((p.spot, p.vol) != (parts[0].spot, parts[0].vol) for p in parts):
            apart.append(b)
        else:
            out.append((b, book_stress(b, parts, now_ns)))
    if out and not apart:
        out.append((FIRM, book_stress(FIRM, [p for s in shards for p in s.values()], now_ns)))
    return out, apart
