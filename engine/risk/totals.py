"""Book and firm totals across shards (docs/scaling.md#the-aggregator): the USD figures of a
book's ``{book}`` exposure payloads, one per shard that holds part of it, summed (``math.fsum``:
exactly rounded, whatever the order), the counts added; its stress grids, summed cell by cell
(every underlying takes the same shock, so a book's P&L in a cell is the sum of its parts'); and
its crypto margin, each underlying margined alone, so the parts' underlyings are put together
and the totals summed; and its liquidity: the exit and liquidity costs are sums over positions,
so the book's are its parts' summed, and its liquidity-adjusted VaR and ES are the whole book's
VaR and ES (the aggregated ``var`` payload) plus that cost. Pure.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Final, TypeVar

import msgspec

from engine.outputs import (
    UNITS,
    BookExposure,
    LiquidityPayload,
    MarginPayload,
    PositionLiquidity,
    StressPayload,
    VarPayload,
)
from engine.risk.liquidity import LiquidityFigures, liquidity_payload
from engine.risk.vectors import FIRM

__all__ = [
    "SUMMED",
    "book_liquidity",
    "book_margin",
    "book_stress",
    "book_totals",
    "exposure_totals",
    "liquidity_totals",
    "margin_totals",
    "stress_totals",
]

SUMMED: Final = ("delta_usd", "cash_gamma", "vega", "theta", "rho", "volga", "market_value", "pnl")
"""The figures of a book's exposure payload that add across underlyings (USD; the others are
null at book scope)."""


T = TypeVar("T")


def _by_book(shards: Sequence[Mapping[str, T]]) -> list[tuple[str, list[T]]]:
    """Each book held on any of ``shards`` (each: book -> that shard's payload of its part),
    in order, with its parts in the shards' order."""
    books = sorted({b for s in shards for b in s})
    return [(b, [s[b] for s in shards if b in s]) for b in books]


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
    out = [(b, book_totals(b, parts, now_ns)) for b, parts in _by_book(shards)]
    if out:
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
    out: list[tuple[str, StressPayload]] = []
    apart: list[str] = []
    for b, parts in _by_book(shards):
        if any((p.spot, p.vol) != (parts[0].spot, parts[0].vol) for p in parts):
            apart.append(b)
        else:
            out.append((b, book_stress(b, parts, now_ns)))
    if out and not apart:
        out.append((FIRM, book_stress(FIRM, [p for s in shards for p in s.values()], now_ns)))
    return out, apart


S = TypeVar("S", bound=msgspec.Struct)


def _by_underlying(parts: Sequence[S], order: Sequence[tuple[int, int]]) -> S:
    """The per-underlying struct of ``parts`` together: each list field's entries in
    ``order`` ((part, its underlying's index) per underlying of the whole)."""
    kind = type(parts[0])
    return kind(**{f: [getattr(parts[k], f)[i] for k, i in order] for f in kind.__struct_fields__})


def book_margin(book: str, parts: Sequence[MarginPayload], now_ns: int) -> MarginPayload | None:
    """The margin payload of ``parts`` together: its underlyings in order with each one's
    figures, the totals summed, the utilisation of the book's equity; None where a part has
    no crypto margin (a status other than ``ok``, or US listed positions: their margin is the
    whole book's, not a sum of parts)."""
    pm = [p.portfolio for p in parts if p.portfolio is not None]
    span = [p.span for p in parts if p.span is not None]
    std = [p.standard for p in parts if p.standard is not None]
    whole = len(pm) == len(span) == len(std) == len(parts)
    if not whole or any(p.status != "ok" or p.us is not None for p in parts):
        return None
    owner = {u: (k, i) for k, p in enumerate(parts) for i, u in enumerate(p.underlyings)}
    underlyings = sorted(owner)
    order = [owner[u] for u in underlyings]

    def total(name: str) -> float:
        return math.fsum(getattr(p, name) or 0.0 for p in parts)

    im, mm, equity = total("margin_im"), total("margin_mm"), parts[0].equity_usd
    return MarginPayload(
        ts_ns=now_ns,
        valuation_ts_ns=_oldest([p.valuation_ts_ns for p in parts]),
        book=book,
        underlyings=underlyings,
        equity_usd=equity,
        margin_im=im,
        margin_mm=mm,
        margin_span=total("margin_span"),
        margin_standard_im=total("margin_standard_im"),
        margin_savings=total("margin_savings"),
        margin_utilisation=None if equity is None else im / equity,
        margin_mm_utilisation=None if equity is None else mm / equity,
        status="ok",
        portfolio=_by_underlying(pm, order),
        span=_by_underlying(span, order),
        standard=_by_underlying(std, order),
        excluded=sorted({x for p in parts for x in p.excluded}),
        units=parts[0].units,
    )


def margin_totals(
    shards: Sequence[Mapping[str, MarginPayload]], now_ns: int
) -> tuple[list[tuple[str, MarginPayload]], list[str]]:
    """Each book's margin over ``shards`` (each: book -> that shard's payload of its part).
    Returns them and the books left out (:func:`book_margin`'s None)."""
    out: list[tuple[str, MarginPayload]] = []
    apart: list[str] = []
    for b, parts in _by_book(shards):
        whole = book_margin(b, parts, now_ns)
        if whole is None:
            apart.append(b)
        else:
            out.append((b, whole))
    return out, apart


def _costliest(parts: Sequence[LiquidityPayload], top: int) -> list[PositionLiquidity]:
    """The ``top`` positions with the largest shares of the liquidity cost over ``parts``
    (each part lists its own ``top``, so the whole book's are among them), unpriced last,
    ties by name (:func:`engine.risk.liquidity.liquidity_payloads`' order)."""
    listed = [x for p in parts for x in p.positions]
    listed.sort(key=lambda x: (math.inf if x.cost_usd is None else -x.cost_usd, x.instrument))
    return listed[:top]


def book_liquidity(
    book: str, parts: Sequence[LiquidityPayload], var: VarPayload, top: int, now_ns: int
) -> LiquidityPayload:
    """The liquidity payload of ``parts`` together, with the whole book's ``var`` payload:
    costs summed, each method's VaR and ES plus the liquidity cost, the ``top`` costliest
    positions and the rest summed."""
    costliest = _costliest(parts, top)
    kept = {id(x) for x in costliest}
    dropped = [x for p in parts for x in p.positions if id(x) not in kept]

    def rest(name: str, other: str) -> float:
        finite = [getattr(x, name) for x in dropped if getattr(x, name) is not None]
        return math.fsum([*(getattr(p, other) for p in parts), *finite])

    first = parts[0]
    figures = LiquidityFigures(
        book=book,
        valuation_ns=_oldest([p.valuation_ts_ns for p in parts]),
        a=first.a,
        window=first.window,
        exit_cost_usd=math.fsum(p.exit_cost_usd for p in parts),
        liquidity_cost_usd=math.fsum(p.liquidity_cost_usd for p in parts),
        positions=costliest,
        n_positions=sum(p.n_positions for p in parts),
        other_exit_cost_usd=rest("exit_cost_usd", "other_exit_cost_usd"),
        other_cost_usd=rest("cost_usd", "other_cost_usd"),
        unquoted=sorted({u for p in parts for u in p.unquoted}),
    )
    return liquidity_payload(figures, var, now_ns)


def liquidity_totals(
    shards: Sequence[Mapping[str, LiquidityPayload]],
    var: Mapping[str, VarPayload],
    top: int,
    now_ns: int,
) -> list[tuple[str, LiquidityPayload]]:
    """Each book's liquidity over ``shards`` (each: book -> that shard's payload of its
    part) with its whole ``var`` payload (a book without one is left out)."""
    return [
        (b, book_liquidity(b, parts, var[b], top, now_ns))
        for b, parts in _by_book(shards)
        if b in var
    ]
