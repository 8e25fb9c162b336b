"""Deribit's public websocket feed: option quotes, future and perpetual marks, price indices.

:class:`WebSocketFeed` owns one connection at a time to Deribit's JSON-RPC v2 API. It subscribes
``ticker.{instrument}.{interval}`` for every configured instrument (and those the runtime
passes from the book) and ``deribit_price_index.{index}`` for every configured index, puts the
decoded events (:mod:`feeds.deribit_codec`) into the engine's sink, answers Deribit's heartbeat
``test_request`` and reconnects with capped, jittered exponential backoff whenever the connection
fails or goes silent for ``silence_timeout_s``. Bad frames are counted by reason in
``stats.dropped`` and dropped. Nothing from ``websockets`` escapes: connection problems become
:class:`~engine.errors.FeedConnectionError` (:func:`classify`), retried unless fatal (a bad URL,
HTTP 401/403).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Annotated, Final

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidMessage,
    InvalidProxy,
    InvalidStatus,
    InvalidURI,
    WebSocketException,
)

from engine.clock import Clock
from engine.constraints import PositiveFloat
from engine.errors import FeedConnectionError, FeedDecodeError, FeedStaleError
from engine.events import EventSink
from engine.instruments import Instrument, InstrumentRegistry
from engine.retry import Backoff, Failure, translate
from feeds.base import DropLog, FeedStats
from feeds.deribit_codec import (
    DeribitProtocol,
    Interval,
    decode_instruments_response,
    get_instruments_request,
)

__all__ = ["DeribitFeedConfig", "WebSocketFeed", "classify"]

logger = logging.getLogger(__name__)

HeartbeatSeconds = Annotated[int, msgspec.Meta(ge=10)]
"""Deribit's ``public/set_heartbeat`` interval: at least 10 s."""

_CLOSE_TIMEOUT_S: Final = 1.0  # closing handshake; the socket is aborted after this
_MAX_FRAME_BYTES: Final = 1 << 20  # one ticker is ~1 kB
_MAX_INSTRUMENTS_BYTES: Final = 1 << 26  # get_instruments(any) lists thousands of instruments
_RETRYABLE_HTTP: Final = frozenset({408, 425, 429})  # besides 5xx: timeouts, rate limits
_FETCH_REQUEST_ID: Final = 1


class DeribitFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="deribit",
):
    """Configuration of a :class:`WebSocketFeed` (``kind = "deribit"`` in the feed's table).

    Attributes:
        name: the feed's name, in logs, stats and errors.
        required: the daemon is not ready (``/readyz``) while this feed is disconnected or
            stale. False: an optional feed (fills or data that may never come); it counts for
            nothing in readiness, and it raises a stale-feed alert only once it has received
            something.
        url: Deribit's websocket endpoint (``wss://test.deribit.com/ws/api/v2`` for testnet).
        instruments: options, futures and perpetuals to subscribe tickers of, besides those the
            runtime passes from the book.
        indices: Deribit price indices to subscribe (``btc_usd``, ``eth_usd``).
        interval: ticker interval: ``100ms`` (conflated), ``agg2`` or ``raw`` (every change;
            Deribit serves raw tickers to authorised connections only).
        heartbeat_s: ``public/set_heartbeat`` interval; Deribit's minimum is 10 s.
        silence_timeout_s: reconnect when no frame arrives for this long (logged as stale);
            keep it above ``heartbeat_s``, since heartbeats arrive every ``heartbeat_s``.
        connect_timeout_s: limit on connecting (TCP, TLS, websocket handshake) and on each send.
        backoff_initial_s: first reconnection delay; doubles on every failed attempt.
        backoff_max_s: cap on the reconnection delay.
        instrument_currencies: currencies (``BTC``, ``ETH``, ``USDC``) whose instruments are
            loaded from ``public/get_instruments`` at start, so the registry holds Deribit's own
            definitions; empty: names are parsed (the same fields for every listed name).
        summary_currencies: currencies whose options' open interest, volume, mark IV and
            forward are asked for with ``public/get_book_summary_by_currency`` on connecting
            and then every ``summary_interval_s`` (the whole chain, for the positioning
            figures, docs/positioning.md); empty: none (the tickers' open interest only).
        summary_interval_s: seconds between two book-summary requests (checked as frames
            arrive, so at least every ``heartbeat_s``).
    """

    name: str = "deribit"
    required: bool = True
    url: str = "wss://www.deribit.com/ws/api/v2"
    instruments: list[str] = []
    indices: list[str] = []
    interval: Interval = "100ms"
    heartbeat_s: HeartbeatSeconds = 10
    silence_timeout_s: PositiveFloat = 30.0
    connect_timeout_s: PositiveFloat = 10.0
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    instrument_currencies: list[str] = []
    summary_currencies: list[str] = []
    summary_interval_s: PositiveFloat = 60.0

    def __post_init__(self) -> None:
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("backoff_initial_s must not exceed backoff_max_s")


def classify(exc: BaseException, feed: str) -> Failure[FeedConnectionError] | None:
    """Translate a connection problem into a :class:`FeedConnectionError`, retryable or fatal:
    the feed's :data:`engine.retry.Classifier`.

    The one place that decides (after websockets' ``process_exception``): network errors,
    timeouts, closed connections, cut-off handshakes and HTTP 408/425/429/5xx are retryable; a
    bad URL or proxy, any other HTTP status (401, 403, 404, ...) or handshake failure is fatal.

    Args:
        exc: what websockets, asyncio or the OS raised.
        feed: the feed's name.

    Returns:
        The error and whether to retry (the error's ``retryable`` says the same); None for an
        exception that is none of these (a bug: let it propagate).
    """
    detail = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        retryable = status >= 500 or status in _RETRYABLE_HTTP
        detail = f"HTTP {status} to the handshake"
    elif isinstance(exc, TimeoutError):
        retryable, detail = True, "timed out"
    elif isinstance(exc, (OSError, ConnectionClosed, InvalidMessage)):
        retryable = True
    elif isinstance(exc, (InvalidURI, InvalidProxy, InvalidHandshake, ValueError)):
        retryable = False
    elif isinstance(exc, WebSocketException):  # protocol error, frame too big: a new connection
        retryable = True
    else:
        return None
    return Failure(FeedConnectionError(feed, detail, retryable=retryable), retryable)


class WebSocketFeed:
    """Deribit's public websocket API as a :class:`~feeds.base.Feed`.

    Args:
        config: this feed's configuration.
        registry: instruments by name; tickers of names it neither holds nor can parse as
            Deribit names are dropped (``unknown_instrument``).
        clock: gives ``ts_recv`` and ``stats.last_recv_ns``.
        instruments: more instrument names to subscribe (the book's), besides the config's.
        indices: more price indices to subscribe (those the book is priced on).
        books: instruments whose order books to follow (the hedge futures:
            ``book.{instrument}.100ms``, :class:`~engine.events.Depth` events).

    Attributes:
        name: the feed's name (``config.name``).
        stats: counters: frames received, events, drops by reason, connections.
    """

    def __init__(
        self,
        config: DeribitFeedConfig,
        registry: InstrumentRegistry,
        clock: Clock,
        instruments: Iterable[str] = (),
        indices: Iterable[str] = (),
        books: Iterable[str] = (),
    ) -> None:
        self.name = config.name
        self.stats = FeedStats()
        self._config = config
        self._registry = registry
        self._clock = clock
        self._instruments = tuple(dict.fromkeys([*config.instruments, *instruments]))
        self._indices = tuple(dict.fromkeys([*config.indices, *indices]))
        self._books = tuple(dict.fromkeys(books))
        self._protocol: DeribitProtocol | None = None
        self._requests: list[bytes] = []  # subscriptions added while connected, to send
        self._drops = DropLog(self.stats, clock, logger)
        self._backoff = Backoff(initial_s=config.backoff_initial_s, max_s=config.backoff_max_s)
        self._definitions_due = list(config.instrument_currencies)  # not loaded yet

    async def run(self, sink: EventSink) -> None:
        """Stream events into ``sink`` until cancelled, reconnecting and resubscribing with
        backoff after every failure.

        Raises:
            FeedConnectionError: a fatal error (``retryable`` False): a bad URL, HTTP 401/403.
        """
        while True:
            detail = ""
            try:
                await self._session(sink)
            except FeedStaleError as exc:
                detail = exc.detail
                logger.warning("feed stale", extra={"feed": self.name, "silent_s": exc.silent_s})
            except FeedConnectionError as exc:
                if not exc.retryable:
                    logger.error("feed failed", extra={"feed": self.name, "detail": exc.detail})
                    raise
                detail = exc.detail
            delay_s = self._backoff.next_delay()
            logger.warning(
                "feed reconnecting",
                extra={
                    "feed": self.name,
                    "detail": detail,
                    "delay_s": round(delay_s, 3),
                    "attempt": self._backoff.attempt,
                },
            )
            await asyncio.sleep(delay_s)

    async def fetch_instruments(self, currency: str, kind: str | None = None) -> list[Instrument]:
        """Deribit's live instruments from ``public/get_instruments``, over a short-lived
        connection. Combinations are left out. The registry is not changed: add them to it.

        Args:
            currency: ``BTC``, ``ETH``, ``USDC``, ``USDT`` or ``any``.
            kind: ``option``, ``future`` or ``spot``; None for all.

        Raises:
            FeedConnectionError: the connection failed, no reply came within
                ``silence_timeout_s``, or Deribit answered with an error.
            FeedDecodeError: the reply is malformed.
        """
        request = get_instruments_request(_FETCH_REQUEST_ID, currency, kind)
        ws = await self._connect(_MAX_INSTRUMENTS_BYTES)
        try:
            try:
                await self._send(ws, request)
                async with asyncio.timeout(self._config.silence_timeout_s):
                    while True:
                        frame = await ws.recv(decode=False)
                        found = decode_instruments_response(frame, _FETCH_REQUEST_ID, self.name)
                        if found is not None:
                            return found
            except (WebSocketException, OSError) as exc:
                raise translate(classify, exc, self.name) from exc
        finally:
            await self._close(ws)

    def subscribe(self, instruments: Iterable[str], indices: Iterable[str] = ()) -> None:
        """Add instruments and indices to the subscription (e.g. ones a fill just brought into
        the book): sent on the live connection with the next frame, and on every reconnection.
        Never blocks."""
        instruments, indices = list(instruments), list(indices)
        self._instruments = tuple(dict.fromkeys([*self._instruments, *instruments]))
        self._indices = tuple(dict.fromkeys([*self._indices, *indices]))
        if self._protocol is not None:
            self._requests += self._protocol.add_channels(instruments, indices)

    async def load_instruments(self) -> int:
        """Add the instruments of every ``instrument_currencies`` entry to the registry, from
        ``public/get_instruments``; returns how many were added.

        Raises:
            FeedConnectionError: as :meth:`fetch_instruments`.
            FeedDecodeError: as :meth:`fetch_instruments`.
        """
        added = 0
        while self._definitions_due:
            for inst in await self.fetch_instruments(self._definitions_due[0]):
                self._registry.add(inst)
                added += 1
            del self._definitions_due[0]
        return added

    async def _load_due_definitions(self) -> None:
        """Load the definitions that failed to load before (at start, or on an earlier
        connection): called on each new connection until they are in. A failure is logged and
        tried again on the next connection."""
        if not self._definitions_due:
            return
        try:
            added = await self.load_instruments()
        except (FeedConnectionError, FeedDecodeError) as exc:
            logger.warning(
                "instruments not loaded", extra={"feed": self.name, "detail": exc.detail}
            )
            return
        logger.info("instruments loaded", extra={"feed": self.name, "instruments": added})

    async def _session(self, sink: EventSink) -> None:
        """One connection: connect, subscribe, stream until something fails."""
        protocol = DeribitProtocol(
            self.name,
            self._registry,
            instruments=self._instruments,
            indices=self._indices,
            interval=self._config.interval,
            heartbeat_s=self._config.heartbeat_s,
            books=self._books,
        )
        ws = await self._connect(_MAX_FRAME_BYTES)
        try:
            await self._load_due_definitions()  # a good connection: Deribit is back
        except BaseException:
            await self._close(ws)
            raise
        self._protocol = protocol
        self._requests.clear()  # the connect requests below carry every channel
        self.stats.connects += 1
        self.stats.connected = True
        logger.info("feed connected", extra={"feed": self.name, "url": self._config.url})
        try:
            try:
                for request in protocol.connect_requests():
                    await self._send(ws, request)
                await self._stream(ws, protocol, sink)
            except (WebSocketException, OSError) as exc:
                raise translate(classify, exc, self.name) from exc
        finally:
            self._protocol = None
            self.stats.connected = False
            await self._close(ws)

    async def _stream(
        self, ws: ClientConnection, protocol: DeribitProtocol, sink: EventSink
    ) -> None:
        silence_s = self._config.silence_timeout_s
        stats = self.stats
        subscribed = False
        summary_every_ns = round(self._config.summary_interval_s * 1e9)
        summary_due = self._clock.now_ns()
        while True:
            try:
                async with asyncio.timeout(silence_s):
                    frame = await ws.recv(decode=False)
            except TimeoutError:
                raise FeedStaleError(self.name, silence_s) from None
            ts_recv = self._clock.now_ns()
            stats.received += 1
            stats.last_recv_ns = ts_recv
            try:
                events = protocol.receive(frame, ts_recv)
            except FeedDecodeError as exc:
                self._drops.drop(exc)
                continue
            for event in events:
                sink.put(event)
            stats.events += len(events)
            for reply in protocol.outgoing():
                await self._send(ws, reply)
            while self._requests:
                await self._send(ws, self._requests.pop(0))
            if self._config.summary_currencies and ts_recv >= summary_due:
                summary_due = ts_recv + summary_every_ns
                for request in protocol.book_summary_requests(self._config.summary_currencies):
                    await self._send(ws, request)
            if not subscribed and protocol.subscription_complete:
                subscribed = True
                self._backoff.reset()
                self._log_subscribed(protocol)

    def _log_subscribed(self, protocol: DeribitProtocol) -> None:
        missing = protocol.missing_channels
        logger.info(
            "feed subscribed",
            extra={
                "feed": self.name,
                "channels": len(protocol.subscribed),
                "missing": len(missing),
            },
        )
        if missing:
            logger.warning(
                "channels not subscribed",
                extra={"feed": self.name, "missing": len(missing), "channels": missing[:20]},
            )

    async def _connect(self, max_size: int) -> ClientConnection:
        try:
            async with asyncio.timeout(self._config.connect_timeout_s):
                return await connect(
                    self._config.url,
                    open_timeout=None,
                    close_timeout=_CLOSE_TIMEOUT_S,
                    max_size=max_size,
                )
        except (WebSocketException, OSError, ValueError) as exc:
            raise translate(classify, exc, self.name) from exc

    async def _send(self, ws: ClientConnection, data: bytes) -> None:
        async with asyncio.timeout(self._config.connect_timeout_s):
            await ws.send(data, text=True)

    @staticmethod
    async def _close(ws: ClientConnection) -> None:
        """Close politely within a second, else abort; on cancellation, abort and re-raise."""
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_S):
                await ws.close()
        except (TimeoutError, OSError, WebSocketException):
            ws.transport.abort()
        except asyncio.CancelledError:
            ws.transport.abort()
            raise
