"""Deribit's public JSON-RPC v2 websocket protocol, sans-I/O: bytes in, events out.

:class:`DeribitProtocol` holds the state of one connection and does no I/O (websockets'
``protocol.py`` is the model): the adapter (:mod:`feeds.deribit`) sends
:meth:`~DeribitProtocol.connect_requests`, hands every frame it reads to
:meth:`~DeribitProtocol.receive` and sends what :meth:`~DeribitProtocol.outgoing` returns.

Deribit's units, as this codec maps them onto :mod:`engine.events`:

- ``ticker.{instrument}.{interval}`` of an option -> :class:`~engine.events.Quote`: prices in
  the quote currency (coin for inverse BTC/ETH options), a bid or ask of 0 means none (None),
  ``mark_iv`` is in percent (87.27 -> iv 0.8727), ``timestamp`` in ms (-> ``ts_event`` in ns),
  ``open_interest`` and ``stats.volume`` (24 hours) in the base-currency amount (BTC for BTC
  options) ride on the quote as ``open_interest`` and ``volume``;
- ``ticker.{instrument}.{interval}`` of a future, perpetual or spot pair ->
  :class:`~engine.events.Tick` of its ``mark_price``;
- ``deribit_price_index.{index}`` -> :class:`~engine.events.Tick` named after the index
  (``btc_usd``);
- ``book.{instrument}.100ms`` (the hedge futures' order books, ``books``) -> a
  :class:`~engine.events.Depth` of the best levels after each message, kept in an
  :class:`~engine.orderbook.OrderBook` from Deribit's snapshot and changes; a ``change`` whose
  ``prev_change_id`` is not the last ``change_id`` is a gap: the book is cleared and the channel
  unsubscribed and subscribed again (Deribit then sends a new snapshot), counted in
  :attr:`DeribitProtocol.book_gaps`;
- the result of ``public/get_book_summary_by_currency`` (``kind`` ``option``, asked for by
  :meth:`DeribitProtocol.book_summary_requests`) -> one :class:`~engine.events.OpenInterest`
  per option of the registry: ``open_interest`` and ``volume`` (24 hours) in the base-currency
  amount, ``mark_iv`` in percent, ``underlying_price`` (the expiry's forward) and
  ``estimated_delivery_price`` (the index, -> ``index_price``) in USD, ``creation_timestamp``
  in ms. An entry with a negative or non-finite open interest, or of an instrument that is no
  option, is left out (counted in :attr:`DeribitProtocol.summary_skipped`).

A frame that cannot be turned into events raises :class:`~engine.errors.FeedDecodeError` with
one of these stable reasons; the adapter counts and drops it and the connection goes on:

=======================  ======================================================================
``json``                 not JSON (or not UTF-8, or nested too deeply to decode)
``schema``               JSON of the wrong shape: a missing field, a wrong type, a
                         ``timestamp`` before 1970 or past int64 nanoseconds
``bad_price``            a mark or index price that is not finite and > 0 (an option's mark
                         of 0 with a mark_iv > 0 is kept, as a quote with no mark), a negative
                         bid or ask, a negative IV, a forward or index price <= 0, a negative
                         or non-finite open interest or volume
``unknown_instrument``   neither in the registry nor a Deribit instrument or index name
``unexpected``           a method or channel this codec does not handle
``rpc_error``            a JSON-RPC error answering a request whose failure is harmless
=======================  ======================================================================

A JSON-RPC error answering ``public/set_heartbeat`` or ``public/subscribe`` raises
:class:`~engine.errors.FeedConnectionError` instead: the connection is of no use without them.
A result answering no request of ours (Deribit's ``public/get_order_book`` of someone else's
making, a late reply) is counted in :attr:`DeribitProtocol.unsolicited` and ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, Final, Literal, TypeVar

import msgspec

from engine.constraints import TimestampMs
from engine.errors import FeedConnectionError, FeedDecodeError
from engine.events import Depth, OpenInterest, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind, from_deribit_instrument
from engine.orderbook import OrderBook

__all__ = [
    "MAX_CHANNELS_PER_REQUEST",
    "DeribitProtocol",
    "Interval",
    "decode_instruments_response",
    "get_instruments_request",
]

Interval = Literal["100ms", "agg2", "raw"]
"""Ticker channel interval: Deribit conflates to 100 ms, aggregates (agg2), or sends every
change (raw; Deribit only serves raw ticker channels to authorised connections)."""

MAX_CHANNELS_PER_REQUEST: Final = 100
"""Default number of channels per ``public/subscribe`` request."""

_MAX_PENDING: Final = 1024  # requests awaiting a reply; the oldest is forgotten beyond this
_FATAL_RPC_CODES: Final = frozenset({-32600, -32601, -32602})  # invalid request/method/params
_SET_HEARTBEAT: Final = "public/set_heartbeat"
_SUBSCRIBE: Final = "public/subscribe"
_UNSUBSCRIBE: Final = "public/unsubscribe"
_BOOK_PREFIX: Final = "book."
BOOK_LEVELS: Final = 20
"""Levels kept per side of a hedge future's book (and handed on in each Depth)."""
_TEST: Final = "public/test"
_GET_INSTRUMENTS: Final = "public/get_instruments"
_BOOK_SUMMARY: Final = "public/get_book_summary_by_currency"
_TICKER_PREFIX: Final = "ticker."
_INDEX_PREFIX: Final = "deribit_price_index."
_MS_TO_NS: Final = 1_000_000
_EMPTY: Final = msgspec.Raw()

T = TypeVar("T")


class _RpcError(msgspec.Struct, frozen=True):
    code: int
    message: str
    data: Any = None


class _Envelope(msgspec.Struct, frozen=True):
    """Any JSON-RPC message: a notification (``method``) or a response (``result``/``error``)."""

    id: int | str | None = None
    method: str | None = None
    params: msgspec.Raw = _EMPTY
    result: msgspec.Raw = _EMPTY
    error: _RpcError | None = None


class _Subscription(msgspec.Struct, frozen=True):
    channel: str
    data: msgspec.Raw


class _Heartbeat(msgspec.Struct, frozen=True):
    type: str


class _Stats(msgspec.Struct, frozen=True, gc=False):
    volume: float | None = None


class _Ticker(msgspec.Struct, frozen=True, gc=False):
    instrument_name: str
    timestamp: TimestampMs
    mark_price: float
    best_bid_price: float | None = None
    best_ask_price: float | None = None
    mark_iv: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    open_interest: float | None = None
    stats: _Stats | None = None


class _Summary(msgspec.Struct, frozen=True, gc=False):
    """One entry of ``public/get_book_summary_by_currency``."""

    instrument_name: str
    creation_timestamp: TimestampMs
    open_interest: float | None = None
    volume: float | None = None
    mark_iv: float | None = None
    underlying_price: float | None = None
    estimated_delivery_price: float | None = None


class _Book(msgspec.Struct, frozen=True):
    type: str
    instrument_name: str
    timestamp: TimestampMs
    change_id: int
    bids: list[tuple[str, float, float]]
    asks: list[tuple[str, float, float]]
    prev_change_id: int | None = None


class _PriceIndex(msgspec.Struct, frozen=True, gc=False):
    index_name: str
    price: float
    timestamp: TimestampMs


_ENVELOPE = msgspec.json.Decoder(_Envelope)
_SUBSCRIPTION = msgspec.json.Decoder(_Subscription)
_HEARTBEAT = msgspec.json.Decoder(_Heartbeat)
_TICKER = msgspec.json.Decoder(_Ticker)
_PRICE_INDEX = msgspec.json.Decoder(_PriceIndex)
_BOOK = msgspec.json.Decoder(_Book)
_SUMMARIES = msgspec.json.Decoder(list[_Summary])
_CHANNELS = msgspec.json.Decoder(list[str])
_INSTRUMENTS = msgspec.json.Decoder(list[dict[str, Any]])
_ENCODER = msgspec.json.Encoder()


def _decode(
    decoder: msgspec.json.Decoder[T], data: bytes | str, feed: str, frame: bytes | str
) -> T:
    """Decode ``data`` (all of ``frame`` or a part of it), mapping msgspec's errors."""
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise FeedDecodeError(feed, "schema", str(exc), frame) from exc
    except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:  # Recursion: deep nesting
        raise FeedDecodeError(feed, "json", str(exc), frame) from exc


def _encode_request(request_id: int, method: str, params: Mapping[str, Any]) -> bytes:
    return _ENCODER.encode({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _rpc_failure(feed: str, method: str, error: _RpcError) -> FeedConnectionError:
    return FeedConnectionError(
        feed,
        f"{method} failed: {error.code} {error.message}",
        retryable=error.code not in _FATAL_RPC_CODES,
    )


class DeribitProtocol:
    """The state of one connection to Deribit's public websocket API; no I/O.

    Use one instance per connection: send :meth:`connect_requests`, then pass every frame to
    :meth:`receive` and send what :meth:`outgoing` returns after each call.

    Args:
        feed: the feed's name, for errors.
        registry: instruments by name; names it does not hold are parsed as Deribit names.
        instruments: instrument names to subscribe tickers of (duplicates are ignored).
        indices: Deribit price index names to subscribe (``btc_usd``).
        interval: ticker channel interval.
        heartbeat_s: the ``public/set_heartbeat`` interval (Deribit's minimum is 10 s).
        max_channels_per_request: channels per ``public/subscribe`` request.
        books: instruments whose order books to follow (``book.{instrument}.100ms``).

    Attributes:
        feed: the feed's name.
        channels: the channels requested, in request order.
        subscribed: the channels Deribit acknowledged (it leaves out channels it does not know).
        unsolicited: results received that answer no pending request of ours.
        book_gaps: order-book gaps seen (each one resubscribes its channel).
        summary_skipped: book-summary entries left out (no option, a bad open interest).
    """

    def __init__(
        self,
        feed: str,
        registry: InstrumentRegistry,
        *,
        instruments: Iterable[str] = (),
        indices: Iterable[str] = (),
        interval: Interval = "100ms",
        heartbeat_s: int = 30,
        max_channels_per_request: int = MAX_CHANNELS_PER_REQUEST,
        books: Iterable[str] = (),
    ) -> None:
        if heartbeat_s < 10:
            raise ValueError(f"heartbeat_s must be >= 10 (Deribit's minimum), got {heartbeat_s}")
        if max_channels_per_request < 1:
            raise ValueError("max_channels_per_request must be >= 1")
        self.feed = feed
        self._registry = registry
        self._heartbeat_s = heartbeat_s
        self._interval = interval
        self._chunk = max_channels_per_request
        channels = [f"{_TICKER_PREFIX}{name}.{interval}" for name in instruments]
        channels += [f"{_INDEX_PREFIX}{index}" for index in indices]
        self._books = {name: OrderBook(BOOK_LEVELS) for name in books}
        self._book_channels = {f"{_BOOK_PREFIX}{name}.100ms" for name in self._books}
        channels += sorted(self._book_channels)
        self.channels: tuple[str, ...] = tuple(dict.fromkeys(channels))
        self.book_gaps = 0
        self.summary_skipped = 0
        self.subscribed: set[str] = set()
        self.unsolicited = 0
        self._pending: dict[int, str] = {}
        self._acks_outstanding = 0
        self._requested = False
        self._outgoing: list[bytes] = []
        self._next_id = 1

    @property
    def subscription_complete(self) -> bool:
        """True once every ``public/subscribe`` request was acknowledged."""
        return self._requested and self._acks_outstanding == 0

    @property
    def missing_channels(self) -> list[str]:
        """Requested channels Deribit did not acknowledge (complete only once
        :attr:`subscription_complete`)."""
        return [c for c in self.channels if c not in self.subscribed]

    def request(self, method: str, params: Mapping[str, Any]) -> bytes:
        """Encode a request with a fresh id and remember it until its reply arrives."""
        request_id = self._next_id
        self._next_id += 1
        self._pending[request_id] = method
        if len(self._pending) > _MAX_PENDING:
            del self._pending[next(iter(self._pending))]
        return _encode_request(request_id, method, params)

    def connect_requests(self) -> list[bytes]:
        """The requests to send right after connecting: ``public/set_heartbeat``, then
        ``public/subscribe`` with at most ``max_channels_per_request`` channels each."""
        requests = [self.request(_SET_HEARTBEAT, {"interval": self._heartbeat_s})]
        for start in range(0, len(self.channels), self._chunk):
            chunk = list(self.channels[start : start + self._chunk])
            requests.append(self.request(_SUBSCRIBE, {"channels": chunk}))
            self._acks_outstanding += 1
        self._requested = True
        return requests

    def add_channels(self, instruments: Iterable[str], indices: Iterable[str] = ()) -> list[bytes]:
        """Channels for more instruments and indices (those not asked for yet); returns the
        ``public/subscribe`` requests to send now if the connect requests went out already,
        else nothing (:meth:`connect_requests` will include them)."""
        wanted = [f"{_TICKER_PREFIX}{name}.{self._interval}" for name in instruments]
        wanted += [f"{_INDEX_PREFIX}{index}" for index in indices]
        new = [c for c in dict.fromkeys(wanted) if c not in self.channels]
        if not new:
            return []
        self.channels = (*self.channels, *new)
        if not self._requested:
            return []
        requests = []
        for start in range(0, len(new), self._chunk):
            requests.append(
                self.request(_SUBSCRIBE, {"channels": new[start : start + self._chunk]})
            )
            self._acks_outstanding += 1
        return requests

    def book_summary_requests(self, currencies: Iterable[str]) -> list[bytes]:
        """``public/get_book_summary_by_currency`` requests (``kind`` ``option``), one per
        currency; their results come out of :meth:`receive` as
        :class:`~engine.events.OpenInterest` events."""
        return [self.request(_BOOK_SUMMARY, {"currency": c, "kind": "option"}) for c in currencies]

    def outgoing(self) -> list[bytes]:
        """The replies queued by :meth:`receive` (``public/test``), to send now; clears them."""
        out, self._outgoing = self._outgoing, []
        return out

    def receive(self, data: bytes | str, ts_recv: int) -> list[Tick | Quote | Depth | OpenInterest]:
        """Decode one frame into events (often none) and queue replies for :meth:`outgoing`.

        Args:
            data: one websocket message, UTF-8 JSON.
            ts_recv: its receipt time, int UNIX ns.

        Returns:
            The frame's events: a quote or tick for a notification, the open interest of every
            option in a book summary, none for other messages.

        Raises:
            FeedDecodeError: the frame is bad; drop it and go on.
            FeedConnectionError: Deribit refused ``public/set_heartbeat`` or
                ``public/subscribe``.
        """
        envelope = _decode(_ENVELOPE, data, self.feed, data)
        if envelope.method is not None:
            return self._notification(envelope, data, ts_recv)
        if envelope.error is not None or envelope.result:
            return self._response(envelope, data, ts_recv)
        raise FeedDecodeError(self.feed, "unexpected", "neither a method nor a result", data)

    def _notification(
        self, envelope: _Envelope, frame: bytes | str, ts_recv: int
    ) -> list[Tick | Quote | Depth | OpenInterest]:
        if not envelope.params:
            raise FeedDecodeError(self.feed, "schema", "notification without params", frame)
        if envelope.method == "subscription":
            sub = _decode(_SUBSCRIPTION, envelope.params, self.feed, frame)
            if sub.channel.startswith(_TICKER_PREFIX):
                return [self._ticker(_decode(_TICKER, sub.data, self.feed, frame), frame, ts_recv)]
            if sub.channel.startswith(_INDEX_PREFIX):
                index = _decode(_PRICE_INDEX, sub.data, self.feed, frame)
                return [self._index(index, frame, ts_recv)]
            if sub.channel in self._book_channels:
                msg = _decode(_BOOK, sub.data, self.feed, frame)
                return [*self._book(sub.channel, msg, frame, ts_recv)]
            raise FeedDecodeError(self.feed, "unexpected", f"channel {sub.channel!r}", frame)
        if envelope.method == "heartbeat":
            beat = _decode(_HEARTBEAT, envelope.params, self.feed, frame)
            if beat.type == "test_request":
                self._outgoing.append(self.request(_TEST, {}))
            elif beat.type != "heartbeat":
                raise FeedDecodeError(self.feed, "unexpected", f"heartbeat {beat.type!r}", frame)
            return []
        raise FeedDecodeError(self.feed, "unexpected", f"method {envelope.method!r}", frame)

    def _book(self, channel: str, msg: _Book, frame: bytes | str, ts_recv: int) -> list[Depth]:
        """Apply a book message; the book's best levels, or none (a gap: resubscribe)."""
        book = self._books.get(msg.instrument_name)
        if book is None:
            raise FeedDecodeError(self.feed, "unexpected", f"book of {msg.instrument_name}", frame)
        gaps = book.gaps
        try:
            ok = book.apply(msg.type, msg.bids, msg.asks, msg.change_id, msg.prev_change_id)
        except ValueError as exc:
            book.clear()  # a part applied: wait for a snapshot
            raise FeedDecodeError(self.feed, "schema", str(exc), frame) from exc
        if book.gaps > gaps:
            self.book_gaps += 1
            self._outgoing.append(self.request(_UNSUBSCRIBE, {"channels": [channel]}))
            self._outgoing.append(self.request(_SUBSCRIBE, {"channels": [channel]}))
            self._acks_outstanding += 1
        if not ok:
            return []
        ts = msg.timestamp * _MS_TO_NS
        return [
            Depth(
                instrument=msg.instrument_name,
                bids=book.bids,
                asks=book.asks,
                ts_event=ts,
                ts_recv=ts_recv,
            )
        ]

    def _response(
        self, envelope: _Envelope, frame: bytes | str, ts_recv: int
    ) -> list[Tick | Quote | Depth | OpenInterest]:
        method = self._pending.pop(envelope.id, None) if isinstance(envelope.id, int) else None
        if envelope.error is not None:
            if method in (_SET_HEARTBEAT, _SUBSCRIBE):
                raise _rpc_failure(self.feed, method, envelope.error)
            detail = (
                f"{method or 'unknown request'}: {envelope.error.code} {envelope.error.message}"
            )
            raise FeedDecodeError(self.feed, "rpc_error", detail, frame)
        if method is None:
            self.unsolicited += 1
        elif method == _SUBSCRIBE:
            channels = _decode(_CHANNELS, envelope.result, self.feed, frame)
            self.subscribed.update(channels)
            self._acks_outstanding -= 1
        elif method == _BOOK_SUMMARY:
            return self._summaries(_decode(_SUMMARIES, envelope.result, self.feed, frame), ts_recv)
        return []

    def _summaries(
        self, entries: list[_Summary], ts_recv: int
    ) -> list[Tick | Quote | Depth | OpenInterest]:
        """The open interest of each option of a book summary (see the module docstring)."""
        out: list[Tick | Quote | Depth | OpenInterest] = []
        for e in entries:
            inst = self._registry.get(e.instrument_name)
            oi = e.open_interest
            if (
                inst is None
                or inst.kind is not Kind.OPTION
                or oi is None
                or not 0.0 <= oi < math.inf
            ):
                self.summary_skipped += 1
                continue
            iv = e.mark_iv
            out.append(
                OpenInterest(
                    instrument=inst.name,
                    open_interest=oi,
                    volume=_finite(e.volume, 0.0),
                    iv=iv / 100.0 if iv is not None and 0.0 < iv < math.inf else None,
                    underlying_price=_finite(e.underlying_price, math.ulp(0.0)),
                    index_price=_finite(e.estimated_delivery_price, math.ulp(0.0)),
                    ts_event=e.creation_timestamp * _MS_TO_NS,
                    ts_recv=ts_recv,
                )
            )
        return out

    def _instrument(self, name: str, frame: bytes | str) -> Instrument:
        instrument = self._registry.get(name)
        if instrument is None:
            raise FeedDecodeError(self.feed, "unknown_instrument", repr(name), frame)
        return instrument

    def _bad_price(self, field: str, value: float, frame: bytes | str) -> FeedDecodeError:
        return FeedDecodeError(self.feed, "bad_price", f"{field}={value!r}", frame)

    def _positive(self, field: str, value: float | None, frame: bytes | str) -> float | None:
        """None stays None; anything else must be finite and > 0."""
        if value is not None and not 0.0 < value < math.inf:
            raise self._bad_price(field, value, frame)
        return value

    def _side(self, field: str, value: float | None, frame: bytes | str) -> float | None:
        """A bid or ask: None or 0 mean none; negative or non-finite is bad."""
        if value is None or value == 0.0:
            return None
        if not 0.0 < value < math.inf:
            raise self._bad_price(field, value, frame)
        return value

    def _ticker(self, ticker: _Ticker, frame: bytes | str, ts_recv: int) -> Tick | Quote:
        instrument = self._instrument(ticker.instrument_name, frame)
        mark = ticker.mark_price
        ts_event = ticker.timestamp * _MS_TO_NS
        if instrument.kind is not Kind.OPTION:
            if not 0.0 < mark < math.inf:
                raise self._bad_price("mark_price", mark, frame)
            return Tick(instrument=instrument.name, price=mark, ts_event=ts_event, ts_recv=ts_recv)
        iv = ticker.mark_iv
        if iv is not None and not 0.0 <= iv < math.inf:
            raise self._bad_price("mark_iv", iv, frame)
        iv = (iv / 100.0 or None) if iv else None  # 0, or a percent that underflows: none
        # A far out-of-the-money option's mark rounds to 0 while its mark_iv still prices it:
        # no mark then, but the quote stands. A mark of 0 with no vol carries nothing.
        if not (0.0 < mark < math.inf or (mark == 0.0 and iv is not None)):
            raise self._bad_price("mark_price", mark, frame)
        oi = ticker.open_interest
        if oi is not None and not 0.0 <= oi < math.inf:
            raise self._bad_price("open_interest", oi, frame)
        volume = ticker.stats.volume if ticker.stats is not None else None
        if volume is not None and not 0.0 <= volume < math.inf:
            raise self._bad_price("stats.volume", volume, frame)
        return Quote(
            instrument=instrument.name,
            bid=self._side("best_bid_price", ticker.best_bid_price, frame),
            ask=self._side("best_ask_price", ticker.best_ask_price, frame),
            mark=mark or None,
            iv=iv,
            underlying_price=self._positive("underlying_price", ticker.underlying_price, frame),
            index_price=self._positive("index_price", ticker.index_price, frame),
            open_interest=oi,
            volume=volume,
            ts_event=ts_event,
            ts_recv=ts_recv,
        )

    def _index(self, index: _PriceIndex, frame: bytes | str, ts_recv: int) -> Tick:
        instrument = self._instrument(index.index_name, frame)
        if not 0.0 < index.price < math.inf:
            raise self._bad_price("price", index.price, frame)
        return Tick(
            instrument=instrument.name,
            price=index.price,
            ts_event=index.timestamp * _MS_TO_NS,
            ts_recv=ts_recv,
        )


def _finite(value: float | None, low: float) -> float | None:
    """``value`` when finite and >= ``low``, else None."""
    return value if value is not None and low <= value < math.inf else None


def get_instruments_request(
    request_id: int, currency: str, kind: str | None = None, *, expired: bool = False
) -> bytes:
    """A ``public/get_instruments`` request.

    Args:
        request_id: the JSON-RPC id, to find the reply with :func:`decode_instruments_response`.
        currency: ``BTC``, ``ETH``, ``USDC``, ``USDT`` or ``any``.
        kind: ``option``, ``future``, ``spot``, ``future_combo``, ``option_combo``; None for all.
        expired: list expired instruments instead of live ones.
    """
    params: dict[str, str | bool] = {"currency": currency, "expired": expired}
    if kind is not None:
        params["kind"] = kind
    return _encode_request(request_id, _GET_INSTRUMENTS, params)


def decode_instruments_response(
    data: bytes | str, request_id: int, feed: str
) -> list[Instrument] | None:
    """The instruments in the reply to the ``public/get_instruments`` request ``request_id``.

    Combinations (``future_combo``, ``option_combo``) are left out: riskd does not price them.

    Args:
        data: one websocket message.
        request_id: the id the request was sent with.
        feed: the feed's name, for errors.

    Returns:
        The instruments, or None when ``data`` is some other message (a heartbeat, another
        reply): keep reading.

    Raises:
        FeedDecodeError: the reply is malformed (reason ``json``/``schema``).
        FeedConnectionError: Deribit answered with a JSON-RPC error.
    """
    envelope = _decode(_ENVELOPE, data, feed, data)
    if envelope.id != request_id or envelope.method is not None:
        return None
    if envelope.error is not None:
        raise _rpc_failure(feed, _GET_INSTRUMENTS, envelope.error)
    if not envelope.result:
        raise FeedDecodeError(feed, "schema", "reply without result", data)
    instruments = []
    for entry in _decode(_INSTRUMENTS, envelope.result, feed, data):
        if str(entry.get("kind", "")).endswith("_combo"):
            continue
        try:
            instruments.append(from_deribit_instrument(entry))
        except ValueError as exc:
            raise FeedDecodeError(feed, "schema", str(exc), data) from exc
    return instruments
