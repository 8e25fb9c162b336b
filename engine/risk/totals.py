"""Book and firm exposure totals across shards (docs/scaling.md#the-aggregator): the USD
figures of a book's ``{book}`` exposure payloads, one per shard that holds part of it, summed
(``math.fsum``: exactly rounded, whatever the order); the counts added. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final

from engine.outputs import UNITS, BookExposure
from engine.risk.vectors import FIRM

__all__ = ["SUMMED", "book_totals", "exposure_totals"]

SUMMED: Final = ("delta_usd", "cash_gamma", "vega", "theta", "rho", "volga", "market_value", "pnl")
"""The figures of a book's exposure payload that add across underlyings (USD; the others are
null at book scope)."""


def book_totals(book: str, parts: Sequence[BookExposure], now_ns: int) -> BookExposure:
    """The exposure payload of ``parts`` together: figures summed, counts added, the oldest
    valuation time."""
    times = [p.valuation_ts_ns for p in parts if p.valuation_ts_ns is not None]

    def total(name: str) -> float:
        return math.fsum(getattr(p, name) for p in parts)

    return BookExposure(
        ts_ns=now_ns,
        valuation_ts_ns=min(times) if times else None,
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
