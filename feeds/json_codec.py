"""The JSON wire contract of riskd's MQTT topics and JSONL replay files, sans-I/O: bytes in,
events out.

Messages (``ts`` in epoch milliseconds, or ``ts_ns`` in nanoseconds; the receipt time when both
are absent; prices in the instrument's quote currency, coin for Deribit's inverse options):

- ``md/tick/{instrument}``:
  ``{"instrument": "BTC-PERPETUAL", "price": 65000.5, "ts": 1732400000123}``
- ``md/quote/{instrument}``: ``{"instrument": "BTC-27DEC24-60000-C", "bid": 0.021,
  "ask": 0.0225, "mark": 0.0218, "iv": 0.62, "underlying_price": 65120.0, "index_price": 65080.0,
  "ts": 1732400000123}``; all optional but the instrument and one of bid/ask/mark; iv a decimal.
  Optional too: ``"open_interest": 1250.5`` (the option's open interest) and ``"volume": 310.2``
  (its 24-hour volume), both in underlying units (Deribit's base-currency amount: BTC for BTC
  options) and >= 0; they feed the ``positioning`` figures (docs/positioning.md).
- ``md/book/{instrument}`` (optional depth, for the slippage of hedges): ``{"instrument":
  "BTC-PERPETUAL", "bids": [[64990.0, 12000], [64985.5, 30000]], "asks": [[65000.5, 8000]],
  "ts": 1732400000123}``: the best levels, ``[price, amount]`` (price in the quote currency,
  amount as the venue counts it: USD for Deribit's futures and perpetuals), each side a whole
  snapshot of what it shows (no incremental changes here).
- ``fills/{book}``: ``{"book": "main", "instrument": "BTC-27DEC24-60000-C", "quantity": -5,
  "price": 0.02, "ts": 1732400000123, "id": "optional fill id"}``

Each topic may also name the instrument's underlying before its last part
(``md/quote/{underlying}/{instrument}``, ``fills/{underlying}/{book}``): the layout a shard
subscribes to by underlying (docs/scaling.md). The underlying must be the instrument's
(a fill's instrument is checked when it is known). Topics may sit below a configured prefix
(``desk1/md/tick/...``).

A JSONL replay line is one such payload; its kind is its ``"type"`` (``tick``, ``quote``,
``fill``, ``depth``: an order book's levels as on ``md/book``) or, without one, inferred: a
``book`` makes a fill, ``bids``/``asks`` a depth, any of ``bid``/``ask``/``mark`` a quote, a
``price`` a tick.

Every bad message raises :class:`~engine.errors.FeedDecodeError` with a stable ``reason``:

- ``json``: not JSON (this includes the non-standard ``NaN``/``Infinity`` tokens), not UTF-8,
  or nested too deeply to decode;
- ``schema``: wrong types, missing fields, an unknown kind, a timestamp before 1970 or past
  int64 nanoseconds (2262);
- ``bad_price``: a non-finite or out-of-range number, price or mark <= 0, a negative bid or ask,
  bid > ask, iv <= 0, a zero quantity, a negative or non-finite open_interest or volume;
- ``unknown_instrument``: a tick's or quote's instrument is neither in the registry nor a
  parseable Deribit name (fills are not checked: the engine keeps those it cannot place yet);
- ``topic``: the topic is not one of ours or names another instrument, book or underlying than
  the payload.
"""

from __future__ import annotations

import math
from typing import Final, TypeVar

import msgspec

from engine.constraints import NonEmptyStr, TimestampMs, TimestampNs
from engine.errors import FeedDecodeError
from engine.events import Depth, Fill, Quote, Tick
from engine.instruments import InstrumentRegistry

__all__ = ["BOOK_TOPIC", "FILL_TOPIC", "QUOTE_TOPIC", "TICK_TOPIC", "JsonCodec", "build_quote"]

TICK_TOPIC: Final = "md/tick"
"""Topic of ticks, below the configured prefix: ``md/tick/{instrument}``."""
QUOTE_TOPIC: Final = "md/quote"
"""Topic of quotes, below the configured prefix: ``md/quote/{instrument}``."""
BOOK_TOPIC: Final = "md/book"
"""Topic of order-book depth, below the configured prefix: ``md/book/{instrument}``."""
FILL_TOPIC: Final = "fills"
"""Topic of fills, below the configured prefix: ``fills/{book}``."""

_NS_PER_MS: Final = 1_000_000
_T = TypeVar("_T")


class _TickMsg(msgspec.Struct, frozen=True, gc=False):
    instrument: NonEmptyStr
    price: float
    ts: TimestampMs | None = None
    ts_ns: TimestampNs | None = None


class _QuoteMsg(msgspec.Struct, frozen=True, gc=False):
    instrument: NonEmptyStr
    bid: float | None = None
    ask: float | None = None
    mark: float | None = None
    iv: float | None = None
    underlying_price: float | None = None
    index_price: float | None = None
    open_interest: float | None = None
    volume: float | None = None
    ts: TimestampMs | None = None
    ts_ns: TimestampNs | None = None


class _BookMsg(msgspec.Struct, frozen=True):
    instrument: NonEmptyStr
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    ts: TimestampMs | None = None
    ts_ns: TimestampNs | None = None


class _FillMsg(msgspec.Struct, frozen=True, gc=False):
    book: NonEmptyStr
    instrument: NonEmptyStr
    quantity: float
    price: float | None = None
    fill_id: str | None = msgspec.field(default=None, name="id")
    ts: TimestampMs | None = None
    ts_ns: TimestampNs | None = None


_ABSENT: Final = msgspec.Raw()


class _KindProbe(msgspec.Struct, frozen=True):
    """Which keys a JSONL line has; values are left undecoded (an empty Raw: absent)."""

    type: str | None = None
    book: msgspec.Raw = _ABSENT
    bid: msgspec.Raw = _ABSENT
    ask: msgspec.Raw = _ABSENT
    mark: msgspec.Raw = _ABSENT
    price: msgspec.Raw = _ABSENT
    bids: msgspec.Raw = _ABSENT
    asks: msgspec.Raw = _ABSENT


_TICK_DECODER: Final = msgspec.json.Decoder(_TickMsg)
_QUOTE_DECODER: Final = msgspec.json.Decoder(_QuoteMsg)
_FILL_DECODER: Final = msgspec.json.Decoder(_FillMsg)
_BOOK_DECODER: Final = msgspec.json.Decoder(_BookMsg)
_PROBE_DECODER: Final = msgspec.json.Decoder(_KindProbe)


def _ts_event(ts_ms: int | None, ts_ns: int | None, ts_recv: int) -> int:
    if ts_ns is not None:
        return ts_ns
    if ts_ms is not None:
        return ts_ms * _NS_PER_MS
    return ts_recv


def build_quote(
    feed: str,
    registry: InstrumentRegistry,
    payload: bytes | str,
    *,
    instrument: str,
    bid: float | None,
    ask: float | None,
    mark: float | None,
    iv: float | None,
    underlying_price: float | None,
    index_price: float | None,
    ts_event: int,
    ts_recv: int,
    open_interest: float | None = None,
    volume: float | None = None,
) -> Quote:
    """A :class:`~engine.events.Quote` from decoded fields, checked as the wire contract says.

    Shared by every codec that makes quotes (JSON, Tardis CSV), so they reject the same things.

    Args:
        feed: the feed's name, for the error.
        registry: where ``instrument`` must be known (or parse as a Deribit name).
        payload: the raw message, quoted (truncated) in the error.
        instrument, bid, ask, mark, iv, underlying_price, index_price, ts_event, ts_recv,
            open_interest, volume: the quote's fields (:class:`~engine.events.Quote`).

    Returns:
        The quote.

    Raises:
        FeedDecodeError: ``schema`` (no bid, ask or mark), ``bad_price`` or
            ``unknown_instrument``.
    """
    if bid is None and ask is None and mark is None:
        raise FeedDecodeError(feed, "schema", "a quote needs bid, ask or mark", payload)
    for name, value in (("bid", bid), ("ask", ask)):
        if value is not None and not (math.isfinite(value) and value >= 0.0):
            raise FeedDecodeError(
                feed, "bad_price", f"{name} must be finite and >= 0, got {value}", payload
            )
    if bid is not None and ask is not None and bid > ask:
        raise FeedDecodeError(feed, "bad_price", f"bid {bid} > ask {ask}", payload)
    for name, value in (("open_interest", open_interest), ("volume", volume)):
        if value is not None and not (math.isfinite(value) and value >= 0.0):
            raise FeedDecodeError(
                feed, "bad_price", f"{name} must be finite and >= 0, got {value}", payload
            )
    for name, value in (
        ("mark", mark),
        ("iv", iv),
        ("underlying_price", underlying_price),
        ("index_price", index_price),
    ):
        if value is not None and not (math.isfinite(value) and value > 0.0):
            raise FeedDecodeError(
                feed, "bad_price", f"{name} must be finite and > 0, got {value}", payload
            )
    if registry.get(instrument) is None:
        raise FeedDecodeError(
            feed, "unknown_instrument", f"unknown instrument {instrument!r}", payload
        )
    return Quote(
        instrument=instrument,
        bid=bid,
        ask=ask,
        mark=mark,
        iv=iv,
        underlying_price=underlying_price,
        index_price=index_price,
        open_interest=open_interest,
        volume=volume,
        ts_event=ts_event,
        ts_recv=ts_recv,
    )


class JsonCodec:
    """Decodes riskd's JSON messages into :mod:`engine.events`; holds no I/O and no state
    beyond its configuration.

    Args:
        registry: instruments a message may name (Deribit names are parsed on sight).
        feed: the feed's name, put into every :class:`~engine.errors.FeedDecodeError`.
        topic_prefix: prepended to ``md/tick/``, ``md/quote/``, ``fills/`` (e.g. ``"desk1/"``).
    """

    __slots__ = (
        "_book_prefix",
        "_feed",
        "_fill_prefix",
        "_quote_prefix",
        "_registry",
        "_tick_prefix",
    )

    def __init__(
        self, registry: InstrumentRegistry, *, feed: str = "mqtt", topic_prefix: str = ""
    ) -> None:
        self._registry = registry
        self._feed = feed
        self._tick_prefix = f"{topic_prefix}{TICK_TOPIC}/"
        self._quote_prefix = f"{topic_prefix}{QUOTE_TOPIC}/"
        self._fill_prefix = f"{topic_prefix}{FILL_TOPIC}/"
        self._book_prefix = f"{topic_prefix}{BOOK_TOPIC}/"

    def decode_mqtt(self, topic: str, payload: bytes, ts_recv: int) -> Tick | Quote | Depth | Fill:
        """Decode one MQTT message; its topic gives its kind.

        Args:
            topic: the topic it was published to (``{prefix}md/quote/BTC-27DEC24-60000-C``).
            payload: its JSON payload.
            ts_recv: receipt time, int UNIX ns (also ``ts_event`` when the payload has no ts).

        Returns:
            The event.

        Raises:
            FeedDecodeError: the message is bad; ``reason`` says how (module docstring).
        """
        if topic.startswith(self._fill_prefix):
            return self.decode_fill(topic, payload, ts_recv)
        return self.decode_market(topic, payload, ts_recv)

    def decode_fill(self, topic: str, payload: bytes, ts_recv: int) -> Fill:
        """:meth:`decode_mqtt` for a fill's topic (``{prefix}fills/{book}``).

        Raises:
            FeedDecodeError: the message is bad; ``reason`` says how (module docstring).
        """
        fill = self._fill(payload, ts_recv)
        underlying, _, book = topic[len(self._fill_prefix) :].rpartition("/")
        if fill.book != book:
            raise FeedDecodeError(
                self._feed, "topic", f"topic {topic!r} does not match {fill.book!r}", payload
            )
        if underlying:  # fills/{underlying}/{book}: the instrument's, when it is known
            inst = self._registry.get(fill.instrument)
            if inst is not None and inst.underlying != underlying:
                detail = f"topic {topic!r}: {fill.instrument!r} is on {inst.underlying!r}"
                raise FeedDecodeError(self._feed, "topic", detail, payload)
        return fill

    def decode_market(self, topic: str, payload: bytes, ts_recv: int) -> Tick | Quote | Depth:
        """:meth:`decode_mqtt` for a tick, quote or book topic (a fill's topic is an error
        here).

        Raises:
            FeedDecodeError: the message is bad; ``reason`` says how (module docstring).
        """
        if topic.startswith(self._quote_prefix):  # most of the traffic: first
            event: Tick | Quote | Depth = self._quote(payload, ts_recv)
            expected = topic[len(self._quote_prefix) :]
        elif topic.startswith(self._tick_prefix):
            event = self._tick(payload, ts_recv)
            expected = topic[len(self._tick_prefix) :]
        elif topic.startswith(self._book_prefix):
            event = self._book(payload, ts_recv)
            expected = topic[len(self._book_prefix) :]
        else:
            raise FeedDecodeError(
                self._feed, "topic", f"not a riskd market-data topic: {topic!r}", payload
            )
        if event.instrument != expected:
            underlying, _, name = expected.partition("/")
            inst = self._registry.get(name) if name == event.instrument else None
            if inst is None or inst.underlying != underlying:
                raise FeedDecodeError(
                    self._feed,
                    "topic",
                    f"topic {topic!r} does not match {event.instrument!r}",
                    payload,
                )
        return event

    def decode_line(self, line: bytes, ts_recv: int) -> Tick | Quote | Depth | Fill:
        """Decode one JSONL line; its ``type`` or its keys give its kind.

        Args:
            line: one JSON object (a trailing newline is fine).
            ts_recv: receipt time, int UNIX ns (also ``ts_event`` when the line has no ts).

        Returns:
            The event.

        Raises:
            FeedDecodeError: the line is bad; ``reason`` says how (module docstring).
        """
        try:
            probe = _PROBE_DECODER.decode(line)
        except msgspec.ValidationError as exc:
            raise FeedDecodeError(self._feed, "schema", str(exc), line) from exc
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:  # Recursion: nesting
            raise FeedDecodeError(self._feed, "json", str(exc), line) from exc
        kind = probe.type
        if kind is None:
            if probe.book:
                kind = "fill"
            elif probe.bids or probe.asks:
                kind = "depth"
            elif probe.bid or probe.ask or probe.mark:
                kind = "quote"
            elif probe.price:
                kind = "tick"
        if kind == "tick":
            return self._tick(line, ts_recv)
        if kind == "quote":
            return self._quote(line, ts_recv)
        if kind == "fill":
            return self._fill(line, ts_recv)
        if kind == "depth":
            return self._book(line, ts_recv)
        raise FeedDecodeError(self._feed, "schema", f"unknown message kind {kind!r}", line)

    # ---------------------------------------------------------------- one kind each

    def _decode(self, decoder: msgspec.json.Decoder[_T], payload: bytes) -> _T:
        try:
            return decoder.decode(payload)
        except msgspec.ValidationError as exc:
            detail = str(exc)
            # 1e999 and friends: msgspec refuses a float that overflows to inf.
            reason = "bad_price" if detail.startswith("Number out of range") else "schema"
            raise FeedDecodeError(self._feed, reason, detail, payload) from exc
        except (msgspec.DecodeError, UnicodeError, RecursionError) as exc:  # Recursion: nesting
            raise FeedDecodeError(self._feed, "json", str(exc), payload) from exc

    def _check_instrument(self, name: str, payload: bytes) -> None:
        if self._registry.get(name) is None:
            raise FeedDecodeError(
                self._feed, "unknown_instrument", f"unknown instrument {name!r}", payload
            )

    def _bad_price(self, detail: str, payload: bytes) -> FeedDecodeError:
        return FeedDecodeError(self._feed, "bad_price", detail, payload)

    def _tick(self, payload: bytes, ts_recv: int) -> Tick:
        msg = self._decode(_TICK_DECODER, payload)
        if not (math.isfinite(msg.price) and msg.price > 0.0):
            raise self._bad_price(f"price must be finite and > 0, got {msg.price}", payload)
        self._check_instrument(msg.instrument, payload)
        return Tick(
            instrument=msg.instrument,
            price=msg.price,
            ts_event=_ts_event(msg.ts, msg.ts_ns, ts_recv),
            ts_recv=ts_recv,
        )

    def _quote(self, payload: bytes, ts_recv: int) -> Quote:
        msg = self._decode(_QUOTE_DECODER, payload)
        return build_quote(
            self._feed,
            self._registry,
            payload,
            instrument=msg.instrument,
            bid=msg.bid,
            ask=msg.ask,
            mark=msg.mark,
            iv=msg.iv,
            underlying_price=msg.underlying_price,
            index_price=msg.index_price,
            ts_event=_ts_event(msg.ts, msg.ts_ns, ts_recv),
            ts_recv=ts_recv,
            open_interest=msg.open_interest,
            volume=msg.volume,
        )

    def _book(self, payload: bytes, ts_recv: int) -> Depth:
        msg = self._decode(_BOOK_DECODER, payload)
        for price, amount in (*msg.bids, *msg.asks):
            if not (math.isfinite(price) and price > 0.0 and math.isfinite(amount)):
                raise self._bad_price(f"book level price {price}, amount {amount}", payload)
            if amount < 0.0:
                raise self._bad_price(f"book level amount must be >= 0, got {amount}", payload)
        self._check_instrument(msg.instrument, payload)
        return Depth(
            instrument=msg.instrument,
            bids=sorted(msg.bids, reverse=True),
            asks=sorted(msg.asks),
            ts_event=_ts_event(msg.ts, msg.ts_ns, ts_recv),
            ts_recv=ts_recv,
        )

    def _fill(self, payload: bytes, ts_recv: int) -> Fill:
        msg = self._decode(_FILL_DECODER, payload)
        if not (math.isfinite(msg.quantity) and msg.quantity != 0.0):
            raise self._bad_price(f"quantity must be finite and != 0, got {msg.quantity}", payload)
        if msg.price is not None and not (math.isfinite(msg.price) and msg.price > 0.0):
            raise self._bad_price(f"price must be finite and > 0, got {msg.price}", payload)
        if ":" in msg.book:  # the snapshot's fields are {book}:{underlying}
            raise FeedDecodeError(
                self._feed, "schema", f"book name with ':': {msg.book!r}", payload
            )
        # No instrument check: a fill of an instrument not known yet is kept by the engine
        # (Portfolio.unresolved_fills), never dropped.
        return Fill(
            book=msg.book,
            instrument=msg.instrument,
            quantity=msg.quantity,
            price=msg.price,
            fill_id=msg.fill_id,
            ts_event=_ts_event(msg.ts, msg.ts_ns, ts_recv),
            ts_recv=ts_recv,
        )
