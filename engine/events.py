"""Events: what feeds hand the engine. Wire-neutral, immutable, timestamps in int UNIX ns.

Every event carries ``ts_event`` (when the source says it happened) and ``ts_recv`` (when riskd
received it, from the runtime's clock). Prices are in the instrument's quote currency: coin for
Deribit's inverse BTC/ETH options, USD/USDC otherwise. Volatility is a decimal (0.62 = 62 %).

- :class:`Tick`: a price of an index, spot, future or perpetual. Market data: the latest wins.
- :class:`Quote`: an option's bid/ask/mark, optionally its IV and its expiry's forward
  (``underlying_price``). Market data: the latest per instrument wins.
- :class:`Fill`: a position change of ``quantity`` in a book. Never conflated, never dropped.
- :class:`Depth`: the best levels of an instrument's order book (a hedge future's), for the
  slippage of hedges. Market data: the latest per instrument wins; the engine does not price
  on it.
- :class:`OpenInterest`: an option's open interest and volume from a source that is no quote
  stream (Deribit's ``public/get_book_summary_by_currency``). Market data: the latest per
  instrument wins; kept apart for the positioning figures, the engine does not price on it.
  A :class:`Quote` may carry the same two figures (Deribit's ticker, Tardis, MQTT).
"""

from __future__ import annotations

from typing import Protocol

import msgspec

__all__ = ["Carry", "Depth", "Event", "EventSink", "Fill", "OpenInterest", "Quote", "Tick"]


class Tick(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A price of an index (``btc_usd``), spot, future or perpetual (``BTC-PERPETUAL``).

    Attributes:
        instrument: instrument or index name, as in the registry.
        price: in the instrument's quote currency (USD for Deribit's futures and indices).
        ts_event: source time, int UNIX ns.
        ts_recv: receipt time, int UNIX ns.
    """

    instrument: str
    price: float
    ts_event: int
    ts_recv: int


class Quote(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An option quote; every price is optional but at least one of bid, ask, mark is set.

    Attributes:
        instrument: option name, as in the registry (``BTC-27DEC24-60000-C``).
        bid, ask, mark: in the quote currency (coin for inverse options); None when absent.
        iv: implied volatility of the mark, a decimal; None when the source gives none.
        underlying_price: the forward of the option's expiry (Deribit's ``underlying_price``),
            in USD; None when absent.
        index_price: the underlying's index in USD, when the source sends it.
        open_interest: the option's open interest in underlying units (Deribit's options: the
            base-currency amount, 1 per BTC contract), when the source sends it.
        volume: its traded volume over the last 24 hours, in the same units, when sent.
        ts_event: source time, int UNIX ns.
        ts_recv: receipt time, int UNIX ns.
    """

    instrument: str
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None
    iv: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    open_interest: float | None = None
    volume: float | None = None
    ts_event: int
    ts_recv: int


class OpenInterest(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """An option's open interest, apart from its quotes (Deribit's book summary).

    Attributes:
        instrument: option name, as in the registry.
        open_interest: in underlying units (the base-currency amount; >= 0).
        volume: traded over the last 24 hours, underlying units; None when absent.
        iv: implied volatility of the mark, a decimal; None when absent.
        underlying_price: the forward of the option's expiry, USD; None when absent.
        index_price: the underlying's index (Deribit's ``estimated_delivery_price``), USD.
        ts_event: source time, int UNIX ns.
        ts_recv: receipt time, int UNIX ns.
    """

    instrument: str
    open_interest: float
    volume: float | None = None
    iv: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    ts_event: int
    ts_recv: int


class Carry(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The dividend yield one expiry of an option chain implies by put-call parity
    (:mod:`engine.risk.parity`), for pricing the chain's options on their spot or index.

    Attributes:
        chain: the chain's underlying (``SPX``, ``SPY``).
        expiry_ns: the expiry, int UNIX ns.
        dividend_yield: q of F = S exp((r - q) T), continuously compounded decimal.
        ts_event: when it was implied, int UNIX ns.
    """

    chain: str
    expiry_ns: int
    dividend_yield: float
    ts_event: int


class Fill(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """A position change: ``quantity`` (signed, negative sells) of ``instrument`` in ``book``.

    Attributes:
        book: the book the fill belongs to.
        instrument: instrument name, as in the registry.
        quantity: signed change, in the instrument's position unit (docs/units.md).
        price: fill price in the quote currency; None when unknown (the average price is then
            left as it was and P&L is not computed for that book's lot).
        fill_id: the source's id of the fill, when it sends one.
        ts_event: source time, int UNIX ns.
        ts_recv: receipt time, int UNIX ns.
    """

    book: str
    instrument: str
    quantity: float
    price: float | None = None
    fill_id: str | None = None
    ts_event: int
    ts_recv: int


class Depth(msgspec.Struct, frozen=True, kw_only=True):
    """The best levels of an instrument's order book.

    Attributes:
        instrument: instrument name, as in the registry (``BTC-PERPETUAL``).
        bids, asks: ``(price, amount)`` levels, best first: prices in the quote currency,
            amounts as the venue counts them (Deribit's futures and perpetuals: USD).
        ts_event: source time, int UNIX ns.
        ts_recv: receipt time, int UNIX ns.
    """

    instrument: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts_event: int
    ts_recv: int


Event = Tick | Quote | Fill | Depth | OpenInterest
"""Anything a feed emits."""


class EventSink(Protocol):
    """Where feeds put events: the engine's inbox.

    Market data is conflated (the latest tick or quote per instrument wins), so :meth:`put`
    never blocks. Fills are never conflated or dropped: :meth:`put_fill` waits while the fill
    queue is full, which slows the feed down instead of losing a fill.
    """

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        """Hand over a tick, quote, order book or open interest (conflated per instrument)."""
        ...

    async def put_fill(self, fill: Fill) -> None:
        """Hand over a fill; returns once it is queued."""
        ...
