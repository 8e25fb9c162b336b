"""A local Deribit: a websocket server speaking Deribit's public JSON-RPC v2 from recorded frames.

For feed, end-to-end and soak tests; faults are real (closed sockets, a stopped server)::

    async with DeribitServer(test_request_interval_s=0.05) as server:
        ...  # connect a feed to server.url
        await server.drop_connections(abort=True)  # cut every connection
        await server.stop()                          # refuse connections ...
        await server.start()                         # ... and serve again on the same port

It answers ``public/set_heartbeat`` (then sends ``heartbeat`` ``test_request`` messages),
``public/subscribe`` (``ticker.*`` and ``deribit_price_index.*`` channels; others are left out of
the acknowledgement, as Deribit does with channels it does not know), ``public/test``,
``public/get_instruments`` (from ``instruments``) and ``public/get_book_summary_by_currency``
(one entry per recorded option ticker of that base currency, the last recorded of each, in
Deribit's summary fields: ``open_interest``, ``volume`` (the ticker's ``stats.volume``),
``mark_iv``, ``underlying_price``, ``estimated_delivery_price``, bid/ask/mark prices and
``creation_timestamp``); any other method gets JSON-RPC error -32601.

Once a connection subscribes, the server streams the recorded ``ticker`` notifications of the
instruments it subscribed, in file order and round and round, one every ``frame_interval_s``,
with the channel rewritten to the subscribed one (so a ``.raw`` recording serves ``.100ms``). A
subscribed ``deribit_price_index.{index}`` gets the ``index_price`` of each recorded ticker of
that index's instruments. A subscribed ``book.{instrument}.100ms`` of one of ``books`` gets, as
Deribit sends it, a ``snapshot`` of that book (every level ``["new", price, amount]``, a
``change_id``) right after the acknowledgement, then a ``change`` for each
:meth:`DeribitServer.book_change` (``[action, price, amount]`` levels, ``change_id`` and
``prev_change_id``; with ``lose=True`` one change is skipped, as a lost message, so
``prev_change_id`` is not the last ``change_id`` the client saw); ``public/unsubscribe`` ends a
subscription. Other recorded messages are not streamed: send them with
:meth:`DeribitServer.send_raw`. With ``timestamp_ms`` the streamed frames carry the time it gives
instead of the recorded one (a soak runs for hours on a few recorded frames); ``paused`` holds
the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode, Frame, Opcode

from engine.instruments import parse_deribit_name

__all__ = ["DEFAULT_FRAMES", "SAMPLE_INSTRUMENTS", "DeribitServer", "load_frames"]

DEFAULT_FRAMES: Final = Path(__file__).parent / "data" / "deribit_tickers.jsonl"
"""The 30 recorded Deribit frames (tests/data/README.md)."""

_TICKER: Final = "ticker."
_INDEX: Final = "deribit_price_index."
_BOOK: Final = "book."
_TEST_REQUEST: Final = orjson.dumps(
    {"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}
)

SAMPLE_INSTRUMENTS: Final[tuple[dict[str, Any], ...]] = (
    {  # inverse (coin-settled) BTC option
        "tick_size": 0.0005,
        "taker_commission": 0.0003,
        "strike": 60000.0,
        "settlement_period": "month",
        "settlement_currency": "BTC",
        "quote_currency": "BTC",
        "price_index": "btc_usd",
        "option_type": "call",
        "min_trade_amount": 0.1,
        "maker_commission": 0.0003,
        "kind": "option",
        "is_active": True,
        "instrument_name": "BTC-27DEC24-60000-C",
        "instrument_id": 302187,
        "expiration_timestamp": 1735286400000,
        "creation_timestamp": 1703750400000,
        "counter_currency": "USD",
        "contract_size": 1.0,
        "block_trade_commission": 0.0003,
        "base_currency": "BTC",
        "instrument_type": "reversed",
    },
    {  # linear USDC-settled MATIC option, strike 1.02
        "tick_size": 0.0001,
        "taker_commission": 0.0005,
        "strike": 1.02,
        "settlement_period": "day",
        "settlement_currency": "USDC",
        "quote_currency": "USDC",
        "price_index": "matic_usdc",
        "option_type": "call",
        "min_trade_amount": 1.0,
        "maker_commission": 0.0005,
        "kind": "option",
        "is_active": True,
        "instrument_name": "MATIC_USDC-9MAR24-1d02-C",
        "instrument_id": 361244,
        "expiration_timestamp": 1709971200000,
        "creation_timestamp": 1709798400000,
        "counter_currency": "USDC",
        "contract_size": 10.0,
        "block_trade_commission": 0.0003,
        "base_currency": "MATIC",
        "instrument_type": "linear",
    },
    {  # inverse BTC perpetual
        "tick_size": 0.5,
        "taker_commission": 0.0005,
        "settlement_period": "perpetual",
        "settlement_currency": "BTC",
        "quote_currency": "USD",
        "price_index": "btc_usd",
        "min_trade_amount": 10.0,
        "max_leverage": 50,
        "maker_commission": 0.0,
        "kind": "future",
        "is_active": True,
        "instrument_name": "BTC-PERPETUAL",
        "instrument_id": 124972,
        "future_type": "reversed",
        "expiration_timestamp": 32503708800000,
        "creation_timestamp": 1534242287000,
        "counter_currency": "USD",
        "contract_size": 10.0,
        "block_trade_commission": 0.00025,
        "base_currency": "BTC",
        "instrument_type": "reversed",
    },
    {  # a future spread: a combination, which riskd leaves out
        "tick_size": 0.5,
        "taker_commission": 0.0005,
        "settlement_period": "month",
        "settlement_currency": "BTC",
        "quote_currency": "USD",
        "price_index": "btc_usd",
        "min_trade_amount": 10.0,
        "maker_commission": 0.0,
        "kind": "future_combo",
        "is_active": True,
        "instrument_name": "BTC-FS-27DEC24_PERP",
        "instrument_id": 302200,
        "expiration_timestamp": 1735286400000,
        "creation_timestamp": 1703750400000,
        "counter_currency": "USD",
        "contract_size": 10.0,
        "base_currency": "BTC",
        "instrument_type": "reversed",
    },
)
"""``public/get_instruments`` entries as Deribit sends them: an inverse BTC option, a linear USDC
option, the BTC perpetual and a future combination."""


def load_frames(path: str | Path = DEFAULT_FRAMES) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, one per non-empty line."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


@dataclass(frozen=True, slots=True)
class _Ticker:
    instrument: str
    index: str | None
    data: dict[str, Any]


@dataclass(slots=True, eq=False)  # hashed by identity: clients live in a set
class _Client:
    ws: ServerConnection
    channels: set[str] = field(default_factory=set)
    tickers: dict[str, list[str]] = field(default_factory=dict)  # instrument -> its channels
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    heartbeat_s: float | None = None
    heartbeat_set: asyncio.Event = field(default_factory=asyncio.Event)
    snapshots_due: list[str] = field(default_factory=list)  # book channels just subscribed


@dataclass(slots=True)
class _Book:
    """A book the server serves: its levels (price -> amount) and last change_id."""

    bids: dict[float, float]
    asks: dict[float, float]
    change_id: int = 1000

    def snapshot(self, instrument: str) -> dict[str, Any]:
        return {
            "type": "snapshot",
            "timestamp": 1_700_000_000_000,
            "instrument_name": instrument,
            "change_id": self.change_id,
            "bids": [["new", p, a] for p, a in sorted(self.bids.items(), reverse=True)],
            "asks": [["new", p, a] for p, a in sorted(self.asks.items())],
        }


class DeribitServer:
    """A Deribit JSON-RPC v2 websocket server on 127.0.0.1 (see the module docstring).

    Args:
        frames: recorded Deribit messages, or a JSONL file of them; their ticker notifications
            are streamed to subscribers.
        instruments: ``public/get_instruments`` entries; requests filter them by
            ``settlement_currency`` (unless ``any``) and ``kind``.
        frame_interval_s: pause after each streamed frame, per connection.
        test_request_interval_s: pause between ``test_request`` heartbeats after
            ``public/set_heartbeat``; None: the interval the client asked for.
        timestamp_ms: the ``timestamp`` (ms) each streamed frame carries; None: the recorded.
        books: per instrument, the (bids, asks) ``[price, amount]`` levels of its order book,
            served on ``book.{instrument}.100ms``.

    Attributes:
        connections: websocket connections accepted, over all starts.
        subscribe_calls: ``public/subscribe`` requests received.
        subscriptions: the channels each connection subscribed, in connection order.
        test_requests: ``test_request`` heartbeats sent.
        test_replies: ``public/test`` requests received.
        frames_sent: ticker and index notifications sent.
        paused: while true, nothing is streamed (requests are still answered).
        frames_per_interval: recorded tickers streamed between two pauses (1; more: a burst).
        get_instruments_calls: ``public/get_instruments`` requests received.
        get_instruments_failures: how many of the next such requests to answer with a JSON-RPC
            error (-32000, as Deribit answers when it is busy).
        book_snapshots: book snapshots sent; ``unsubscribe_calls``: ``public/unsubscribe``
            requests received.
        book_summary_calls: ``public/get_book_summary_by_currency`` requests received.
    """

    def __init__(
        self,
        frames: Iterable[Mapping[str, Any]] | str | Path = DEFAULT_FRAMES,
        *,
        instruments: Sequence[Mapping[str, Any]] = SAMPLE_INSTRUMENTS,
        frame_interval_s: float = 0.005,
        test_request_interval_s: float | None = None,
        timestamp_ms: Callable[[], int] | None = None,
        books: Mapping[str, tuple[list[tuple[float, float]], list[tuple[float, float]]]]
        | None = None,
    ) -> None:
        messages = load_frames(frames) if isinstance(frames, str | Path) else list(frames)
        self._tickers = [t for m in messages if (t := _ticker(m)) is not None]
        self._instruments = [dict(i) for i in instruments]
        self.frame_interval_s = frame_interval_s
        self.test_request_interval_s = test_request_interval_s
        self.timestamp_ms = timestamp_ms
        self.paused = False
        self.frames_per_interval = 1
        self.get_instruments_calls = 0
        self.get_instruments_failures = 0
        self.connections = 0
        self.subscribe_calls = 0
        self.subscriptions: list[set[str]] = []
        self.test_requests = 0
        self.test_replies = 0
        self.frames_sent = 0
        self._port = 0
        self._server: Server | None = None
        self._clients: set[_Client] = set()
        self._books = {
            name: _Book(dict(bids), dict(asks)) for name, (bids, asks) in (books or {}).items()
        }
        self.book_snapshots = 0
        self.unsubscribe_calls = 0
        self.book_summary_calls = 0

    @property
    def port(self) -> int:
        """The port; fixed by the first :meth:`start` and kept on restarts."""
        return self._port

    @property
    def url(self) -> str:
        """The websocket URL, with Deribit's path."""
        return f"ws://127.0.0.1:{self._port}/ws/api/v2"

    @property
    def open_connections(self) -> int:
        """Connections open now."""
        return len(self._clients)

    async def start(self) -> None:
        """Listen (again, on the same port after the first start)."""
        if self._server is not None:
            return
        self._server = await serve(self._handler, "127.0.0.1", self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Close every connection (code 1001) and stop listening: connections are refused."""
        if self._server is None:
            return
        server, self._server = self._server, None
        server.close()
        await server.wait_closed()

    async def drop_connections(self, *, abort: bool = False, mid_frame: bool = False) -> None:
        """Close every open connection mid-stream (code 1012, service restart), or with
        ``abort`` cut the TCP connection without a closing handshake; with ``mid_frame`` too,
        after the first half of a text frame."""
        for client in list(self._clients):
            if mid_frame:
                frame = Frame(Opcode.TEXT, _TEST_REQUEST).serialize(mask=False)
                client.ws.transport.write(frame[: len(frame) // 2])
                client.ws.transport.abort()
            elif abort:
                client.ws.transport.abort()
            else:
                await client.ws.close(CloseCode.SERVICE_RESTART, "restart")

    async def send_raw(self, data: bytes | str) -> None:
        """Send ``data`` as is to every open connection (str as text, bytes as binary)."""
        for client in list(self._clients):
            with contextlib.suppress(ConnectionClosed):
                await client.ws.send(data)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def _handler(self, ws: ServerConnection) -> None:
        client = _Client(ws)
        self.connections += 1
        self.subscriptions.append(client.channels)
        self._clients.add(client)
        try:
            async with asyncio.TaskGroup() as tg:
                stream = tg.create_task(self._stream(client))
                heartbeat = tg.create_task(self._heartbeat(client))
                try:
                    await self._serve(client)
                finally:
                    stream.cancel()
                    heartbeat.cancel()
        finally:
            self._clients.discard(client)

    async def _serve(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in client.ws:
                reply = self._answer(client, message)
                if reply is not None:
                    await client.ws.send(orjson.dumps(reply), text=True)
                for channel in client.snapshots_due:  # after the acknowledgement, as Deribit
                    instrument = channel[len(_BOOK) :].rsplit(".", 1)[0]
                    data = self._books[instrument].snapshot(instrument)
                    await client.ws.send(_notification(channel, data), text=True)
                    self.book_snapshots += 1
                client.snapshots_due.clear()

    def _answer(self, client: _Client, message: str | bytes) -> dict[str, Any] | None:
        try:
            request = json.loads(message)
            method, request_id = request["method"], request.get("id")
            params = request.get("params") or {}
        except (ValueError, KeyError, TypeError):
            return {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}}
        result: Any
        if method == "public/set_heartbeat":
            client.heartbeat_s = float(params["interval"])
            client.heartbeat_set.set()
            result = "ok"
        elif method == "public/subscribe":
            self.subscribe_calls += 1
            result = [c for c in params.get("channels", []) if self._serves(c)]
            self._subscribe(client, result)
        elif method == "public/unsubscribe":
            self.unsubscribe_calls += 1
            result = [c for c in params.get("channels", []) if c in client.channels]
            client.channels.difference_update(result)
        elif method == "public/test":
            self.test_replies += 1
            result = {"version": "1.2.26"}
        elif method == "public/get_instruments" and self.get_instruments_failures > 0:
            self.get_instruments_calls += 1
            self.get_instruments_failures -= 1
            return {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": -32000, "message": "internal_server_error"},
            }
        elif method == "public/get_instruments":
            self.get_instruments_calls += 1
            result = self._get_instruments(params)
        elif method == "public/get_book_summary_by_currency":
            self.book_summary_calls += 1
            result = self._book_summary(str(params.get("currency", "")))
        else:
            return {
                "jsonrpc": "2.0",
                "id": request_id,
                "error": {"code": -32601, "message": "Method not found"},
            }
        return {
            "jsonrpc": "2.0",
            "id": request_id,
            "result": result,
            "usIn": 0,
            "usOut": 0,
            "usDiff": 0,
            "testnet": False,
        }

    def _serves(self, channel: str) -> bool:
        """A channel this server streams (others are left out of the acknowledgement)."""
        if channel.startswith(_BOOK):
            return channel[len(_BOOK) :].rsplit(".", 1)[0] in self._books
        return channel.startswith((_TICKER, _INDEX))

    async def book_change(
        self,
        instrument: str,
        bids: Sequence[Sequence[Any]] = (),
        asks: Sequence[Sequence[Any]] = (),
        *,
        lose: bool = False,
    ) -> None:
        """Apply ``[action, price, amount]`` levels to ``instrument``'s book and send the
        change to its subscribers; ``lose``: a change before it is lost (never sent)."""
        book = self._books[instrument]
        prev = book.change_id + (1 if lose else 0)
        book.change_id = prev + 1
        for levels, side in ((bids, book.bids), (asks, book.asks)):
            for action, price, amount in levels:
                if action == "delete" or amount == 0:
                    side.pop(price, None)
                else:
                    side[price] = amount
        data = {
            "type": "change",
            "timestamp": 1_700_000_000_000,
            "instrument_name": instrument,
            "change_id": book.change_id,
            "prev_change_id": prev,
            "bids": [list(level) for level in bids],
            "asks": [list(level) for level in asks],
        }
        for client in list(self._clients):
            for channel in [c for c in client.channels if c.startswith(f"{_BOOK}{instrument}.")]:
                with contextlib.suppress(ConnectionClosed):
                    await client.ws.send(_notification(channel, data), text=True)

    def _subscribe(self, client: _Client, channels: list[str]) -> None:
        for channel in channels:
            client.channels.add(channel)
            if channel.startswith(_BOOK):
                client.snapshots_due.append(channel)
            if channel.startswith(_TICKER):
                instrument = channel[len(_TICKER) :].rsplit(".", 1)[0]
                client.tickers.setdefault(instrument, []).append(channel)
        client.subscribed.set()

    def _get_instruments(self, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        currency, kind = params.get("currency", "any"), params.get("kind")
        return [
            entry
            for entry in self._instruments
            if currency in ("any", entry.get("settlement_currency"))
            and (kind is None or entry.get("kind") == kind)
        ]

    def _book_summary(self, currency: str) -> list[dict[str, Any]]:
        """The summary of each recorded option ticker of ``currency`` (its last recording)."""
        latest: dict[str, dict[str, Any]] = {}
        for t in self._tickers:
            if t.instrument.split("-", 1)[0] == currency and t.instrument.endswith(("-C", "-P")):
                latest[t.instrument] = t.data
        return [
            {
                "instrument_name": name,
                "base_currency": currency,
                "quote_currency": currency,
                "open_interest": d.get("open_interest"),
                "volume": (d.get("stats") or {}).get("volume"),
                "mark_iv": d.get("mark_iv"),
                "mark_price": d.get("mark_price"),
                "bid_price": d.get("best_bid_price"),
                "ask_price": d.get("best_ask_price"),
                "underlying_price": d.get("underlying_price"),
                "underlying_index": d.get("underlying_index"),
                "estimated_delivery_price": d.get("estimated_delivery_price"),
                "interest_rate": d.get("interest_rate", 0.0),
                "creation_timestamp": d["timestamp"],
            }
            for name, d in latest.items()
        ]

    async def _heartbeat(self, client: _Client) -> None:
        await client.heartbeat_set.wait()
        with contextlib.suppress(ConnectionClosed):
            while True:
                interval_s = self.test_request_interval_s or client.heartbeat_s or 10.0
                await asyncio.sleep(interval_s)
                await client.ws.send(_TEST_REQUEST, text=True)
                self.test_requests += 1

    async def _stream(self, client: _Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await client.subscribed.wait()
                sent = batched = 0
                for ticker in self._tickers:
                    if self.paused:
                        break
                    stamp = None if self.timestamp_ms is None else self.timestamp_ms()
                    for message in _notifications(client, ticker, stamp):
                        await client.ws.send(message, text=True)
                        sent += 1
                    if sent:
                        self.frames_sent += sent
                        sent = 0
                        batched += 1
                        if batched >= self.frames_per_interval:
                            batched = 0
                            await asyncio.sleep(self.frame_interval_s)
                await asyncio.sleep(self.frame_interval_s)  # nothing subscribed, or a lap done


def _ticker(message: Mapping[str, Any]) -> _Ticker | None:
    """A recorded ticker notification; None for other messages."""
    params = message.get("params")
    if message.get("method") != "subscription" or not isinstance(params, Mapping):
        return None
    if not str(params.get("channel", "")).startswith(_TICKER):
        return None
    data = dict(params["data"])
    instrument = str(data["instrument_name"])
    parsed = parse_deribit_name(instrument)
    return _Ticker(instrument, parsed.index if parsed is not None else None, data)


def _notifications(client: _Client, ticker: _Ticker, stamp: int | None) -> list[bytes]:
    """What ``client`` subscribed to of one recorded ticker: its ticker and index channels;
    ``stamp``: their ``timestamp`` instead of the recorded one."""
    data = ticker.data if stamp is None else {**ticker.data, "timestamp": stamp}
    out = [
        orjson.dumps(
            {
                "jsonrpc": "2.0",
                "method": "subscription",
                "params": {"channel": channel, "data": data},
            }
        )
        for channel in client.tickers.get(ticker.instrument, ())
    ]
    index_channel = f"{_INDEX}{ticker.index}"
    price = data.get("index_price")
    if ticker.index is not None and price and index_channel in client.channels:
        data = {"index_name": ticker.index, "price": price, "timestamp": data["timestamp"]}
        out.append(
            orjson.dumps(
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": index_channel, "data": data},
                }
            )
        )
    return out


def _notification(channel: str, data: Mapping[str, Any]) -> bytes:
    return orjson.dumps(
        {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
    )
