"""What every decoded event must satisfy, whatever went in: the promises of the codecs'
docstrings (:mod:`feeds.json_codec`, :mod:`feeds.deribit_codec`, :mod:`feeds.tardis`); and the
sink the feed tests collect events in."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Final, TypeVar

import hypothesis

from engine.errors import FeedDecodeError, RiskEngineError
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry

__all__ = [
    "INT64_MAX",
    "CollectingSink",
    "check_dropped",
    "check_event",
    "check_fill",
    "check_quote",
    "check_tick",
    "check_ts",
    "outcome",
]

INT64_MAX: Final = 2**63 - 1
"""Timestamps are int UNIX ns that the engine stores in int64 columns."""

_T = TypeVar("_T")


def outcome(decode: Callable[[], _T]) -> _T | RiskEngineError:
    """What ``decode()`` returns, or the riskd error it raises. Any other exception escapes:
    that is what the fuzz tests look for."""
    try:
        return decode()
    except RiskEngineError as exc:
        return exc


def _positive(value: float | None) -> bool:
    return value is None or (math.isfinite(value) and value > 0.0)


def check_dropped(error: FeedDecodeError, reasons: set[str]) -> None:
    """A documented drop: a reason of ``reasons``, the feed's name (``fuzz``), the payload cut
    to 200 characters for the log. Noted in hypothesis' statistics."""
    hypothesis.event(f"dropped: {error.reason}")
    assert error.reason in reasons, error
    assert error.feed == "fuzz"
    assert len(error.payload) <= 200


def check_ts(ts: int) -> None:
    """A timestamp: an int of int64 nanoseconds, not before the epoch."""
    assert type(ts) is int
    assert 0 <= ts <= INT64_MAX, ts


def check_tick(tick: Tick, registry: InstrumentRegistry) -> None:
    """A tick: a known instrument, a finite price > 0."""
    assert tick.instrument
    assert registry.get(tick.instrument) is not None
    assert math.isfinite(tick.price)
    assert tick.price > 0.0
    check_ts(tick.ts_event)
    check_ts(tick.ts_recv)


def check_quote(quote: Quote, registry: InstrumentRegistry, *, ordered: bool) -> None:
    """A quote: a known instrument; bid, ask finite >= 0 (``ordered``: bid <= ask); mark, iv,
    forward and index finite > 0; at least one of bid, ask, mark, iv (a far out-of-the-money
    option's mark may round to 0 while its vol prices it)."""
    assert quote.instrument
    assert registry.get(quote.instrument) is not None
    assert not (quote.bid is None and quote.ask is None and quote.mark is None and quote.iv is None)
    for side in (quote.bid, quote.ask):
        assert side is None or (math.isfinite(side) and side >= 0.0), quote
    if ordered and quote.bid is not None and quote.ask is not None:
        assert quote.bid <= quote.ask, quote
    for value in (quote.mark, quote.iv, quote.underlying_price, quote.index_price):
        assert _positive(value), quote
    check_ts(quote.ts_event)
    check_ts(quote.ts_recv)


def check_fill(fill: Fill) -> None:
    """A fill: a book without ':', an instrument, a finite quantity != 0, a price finite > 0
    or none."""
    assert fill.book
    assert ":" not in fill.book
    assert fill.instrument
    assert math.isfinite(fill.quantity)
    assert fill.quantity != 0.0
    assert _positive(fill.price), fill
    check_ts(fill.ts_event)
    check_ts(fill.ts_recv)


def check_depth(event: Depth) -> None:
    """Levels of finite prices > 0 and amounts >= 0, best first."""
    for levels, best_first in ((event.bids, True), (event.asks, False)):
        assert all(math.isfinite(p) and p > 0.0 and a >= 0.0 for p, a in levels)
        prices = [p for p, _ in levels]
        assert prices == sorted(prices, reverse=best_first)


def check_event(
    event: Tick | Quote | Depth | OpenInterest | Fill, registry: InstrumentRegistry
) -> None:
    """:func:`check_tick`, :func:`check_quote` (ordered), :func:`check_depth`,
    :func:`check_fill`, or an open interest: finite and >= 0 (the figures it has)."""
    if isinstance(event, Quote | OpenInterest):
        for value in (event.open_interest, event.volume):
            assert value is None or (math.isfinite(value) and value >= 0.0)
    if isinstance(event, OpenInterest):
        assert registry.get(event.instrument) is not None
    elif isinstance(event, Depth):
        check_depth(event)
    elif isinstance(event, Tick):
        check_tick(event, registry)
    elif isinstance(event, Quote):
        check_quote(event, registry, ordered=True)
    else:
        check_fill(event)


class CollectingSink:
    """An :class:`~engine.events.EventSink` that keeps every event, in order."""

    def __init__(self) -> None:
        self.events: list[Tick | Quote | Depth | OpenInterest | Fill] = []

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        self.events.append(event)

    async def put_fill(self, fill: Fill) -> None:
        self.events.append(fill)
