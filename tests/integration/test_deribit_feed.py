"""WebSocketFeed against a real local Deribit (tests/deribit_server.py): quotes flow, heartbeats
are answered, outages are survived with backoff and resubscription, bad frames are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator
from http import HTTPStatus
from typing import Any

import msgspec
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from engine.errors import FeedConnectionError
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry, Kind, Settlement
from engine.runtime.clock import LiveClock
from feeds.deribit import DeribitFeedConfig, WebSocketFeed
from tests import servers
from tests.deribit_server import DEFAULT_FRAMES, DeribitServer, load_frames

FRAMES = load_frames(DEFAULT_FRAMES)
OPTIONS = ["BTC-24SEP21-8000-P", "ETH-27AUG21-4000-P", "MATIC_USDC-9MAR24-1d02-C"]
BOOK = ["BTC-30SEP22-60000-C"]  # passed by the runtime, besides the config's
INDICES = ["btc_usd", "eth_usd"]


class CollectingSink:
    """An EventSink that keeps everything."""

    def __init__(self) -> None:
        self.events: list[Tick | Quote | Depth | OpenInterest] = []

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        self.events.append(event)

    async def put_fill(self, fill: Fill) -> None:
        raise AssertionError(f"a market-data feed sent a fill: {fill}")

    def names(self) -> set[str]:
        return {e.instrument for e in self.events}


wait_until = functools.partial(servers.wait_until, timeout_s=5.0)
"""Poll server counters or feed stats until a predicate holds, for at most 5 s."""


def config(url: str, **changes: object) -> DeribitFeedConfig:
    base = DeribitFeedConfig(
        url=url,
        instruments=OPTIONS,
        indices=INDICES,
        connect_timeout_s=2.0,
        silence_timeout_s=5.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
    )
    return msgspec.structs.replace(base, **changes)


def feed_for(url: str, **changes: object) -> WebSocketFeed:
    return WebSocketFeed(config(url, **changes), InstrumentRegistry(), LiveClock(), BOOK)


@contextlib.asynccontextmanager
async def running(feed: WebSocketFeed, sink: CollectingSink) -> AsyncIterator[asyncio.Task[None]]:
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(feed.run(sink), name=f"feed-{feed.name}")
        try:
            yield task
        finally:
            task.cancel()


def logged(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "feeds.deribit" and r.getMessage() == message]


EXPECTED_CHANNELS = {
    *(f"ticker.{name}.100ms" for name in [*OPTIONS, *BOOK]),
    *(f"deribit_price_index.{index}" for index in INDICES),
}


async def test_quotes_and_index_ticks_flow_into_the_sink() -> None:
    sink = CollectingSink()
    async with DeribitServer() as server:
        feed = feed_for(server.url)
        async with running(feed, sink):
            await wait_until(lambda: sink.names() >= {*OPTIONS, *BOOK, *INDICES})
            connected_while_running = feed.stats.connected
        assert connected_while_running
        assert not feed.stats.connected
        await wait_until(lambda: server.open_connections == 0)  # cancelled: socket closed
    assert server.subscriptions == [EXPECTED_CHANNELS]
    assert feed.stats.connects == 1
    assert feed.stats.events == len(sink.events)
    assert feed.stats.received > feed.stats.events  # plus the acknowledgements
    assert feed.stats.last_recv_ns > 0
    assert not feed.stats.dropped
    # Quotes are in riskd's units: iv decimal, ts_event ns, no bid when Deribit's is 0.
    recorded = {f["params"]["data"]["instrument_name"]: f["params"]["data"] for f in FRAMES[27:29]}
    quotes = {e.instrument: e for e in sink.events if isinstance(e, Quote)}
    matic, btc = quotes["MATIC_USDC-9MAR24-1d02-C"], quotes["BTC-30SEP22-60000-C"]
    assert (matic.bid, matic.ask, matic.mark) == (None, None, 0.139)
    assert matic.iv == recorded["MATIC_USDC-9MAR24-1d02-C"]["mark_iv"] / 100.0
    assert btc.ts_event == 1_654_161_839_367_000_000
    assert (btc.bid, btc.ask, btc.underlying_price) == (0.008, 0.009, 30220.5)
    ticks = [e for e in sink.events if isinstance(e, Tick)]
    assert {t.instrument for t in ticks} == set(INDICES)
    assert all(t.price > 0 for t in ticks)


async def test_heartbeat_test_requests_are_answered() -> None:
    sink = CollectingSink()
    async with DeribitServer(test_request_interval_s=0.02) as server:
        feed = feed_for(server.url)
        async with running(feed, sink):
            await wait_until(lambda: server.test_replies >= 3)
    assert server.test_requests >= server.test_replies >= 3
    assert feed.stats.connects == 1


async def test_server_restart_on_the_same_port_reconnects_and_resubscribes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="feeds.deribit")
    sink = CollectingSink()
    async with DeribitServer() as server:
        port = server.port
        feed = feed_for(server.url)
        async with running(feed, sink):
            await wait_until(lambda: len(sink.events) >= 20)
            await server.stop()
            await wait_until(lambda: not feed.stats.connected)
            # At least one refused attempt, each logged with its backoff delay.
            await wait_until(lambda: len(logged(caplog, "feed reconnecting")) >= 3)
            before = len(sink.events)
            await server.start()
            assert server.port == port
            await wait_until(lambda: server.subscribe_calls == 2 and len(sink.events) > before + 20)
            assert feed.stats.connected
    assert feed.stats.connects == 2
    assert server.connections == 2
    assert server.subscriptions == [EXPECTED_CHANNELS, EXPECTED_CHANNELS]
    retries = logged(caplog, "feed reconnecting")
    assert all(0 < r.__dict__["delay_s"] <= 0.2 for r in retries)
    assert all(r.__dict__["feed"] == "deribit" for r in retries)
    assert len(logged(caplog, "feed subscribed")) == 2


@pytest.mark.parametrize("abort", [False, True], ids=["close", "abort"])
async def test_dropped_connection_reconnects_and_resubscribes(abort: bool) -> None:
    sink = CollectingSink()
    async with DeribitServer() as server:
        feed = feed_for(server.url)
        async with running(feed, sink):
            await wait_until(lambda: server.subscribe_calls == 1 and len(sink.events) >= 10)
            await server.drop_connections(abort=abort)
            before = len(sink.events)
            await wait_until(lambda: server.subscribe_calls == 2 and len(sink.events) > before + 20)
    assert feed.stats.connects == 2
    assert server.subscriptions == [EXPECTED_CHANNELS, EXPECTED_CHANNELS]


async def test_bad_frames_are_dropped_and_counted_while_events_flow() -> None:
    sink = CollectingSink()
    unknown = json.dumps(
        {
            "jsonrpc": "2.0",
            "method": "subscription",
            "params": {
                "channel": "ticker.NOPE.100ms",
                "data": {"instrument_name": "NOPE", "timestamp": 1, "mark_price": 1.0},
            },
        }
    )
    order_book_result = json.dumps(FRAMES[29])  # answers no request of ours: ignored
    bad_frames: list[bytes | str] = [
        "not json",
        b"\x00\xff",
        "[]",
        unknown,
        order_book_result,
        "{}",
    ]
    async with DeribitServer() as server:
        feed = feed_for(server.url)
        async with running(feed, sink):
            await wait_until(lambda: len(sink.events) >= 10)
            for garbage in bad_frames:
                await server.send_raw(garbage)
            await wait_until(lambda: sum(feed.stats.dropped.values()) == 5)
            before = len(sink.events)
            await wait_until(lambda: len(sink.events) > before + 20)
    assert feed.stats.dropped == {"json": 2, "schema": 1, "unknown_instrument": 1, "unexpected": 1}
    assert feed.stats.connects == 1
    assert server.connections == 1


async def test_silent_feed_is_stale_and_reconnects(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="feeds.deribit")
    sink = CollectingSink()
    async with DeribitServer(frames=[]) as server:  # acknowledges, then says nothing
        feed = feed_for(server.url, silence_timeout_s=0.2)
        async with running(feed, sink):
            await wait_until(lambda: server.connections >= 2 and server.subscribe_calls >= 2)
    assert logged(caplog, "feed stale")
    assert logged(caplog, "feed stale")[0].__dict__["silent_s"] == 0.2
    assert not sink.events


async def test_invalid_url_is_fatal() -> None:
    feed = feed_for("http://127.0.0.1:1/ws/api/v2")
    async with asyncio.timeout(5):
        with pytest.raises(FeedConnectionError) as info:
            await feed.run(CollectingSink())
    assert info.value.retryable is False
    assert feed.stats.connects == 0


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (HTTPStatus.FORBIDDEN, False),
        (HTTPStatus.UNAUTHORIZED, False),
        (HTTPStatus.BAD_GATEWAY, True),
    ],
)
async def test_http_status_at_handshake(status: HTTPStatus, retryable: bool) -> None:
    attempts = 0

    def refuse(connection: ServerConnection, request: Request) -> Response:
        nonlocal attempts
        attempts += 1
        return connection.respond(status, "no\n")

    async def never(connection: ServerConnection) -> None:
        raise AssertionError("the handshake was refused")

    async with serve(never, "127.0.0.1", 0, process_request=refuse) as server:
        port = server.sockets[0].getsockname()[1]
        feed = feed_for(f"ws://127.0.0.1:{port}/ws/api/v2")
        if not retryable:
            async with asyncio.timeout(5):
                with pytest.raises(FeedConnectionError) as info:
                    await feed.run(CollectingSink())
            assert info.value.retryable is False
            assert str(int(status)) in info.value.detail
            assert attempts == 1
        else:
            async with running(feed, CollectingSink()):
                await wait_until(lambda: attempts >= 3)
    assert feed.stats.connects == 0


async def test_fetch_instruments() -> None:
    async with DeribitServer() as server:
        feed = feed_for(server.url)
        everything = await feed.fetch_instruments("any")
        btc_options = await feed.fetch_instruments("BTC", kind="option")
        usdc = await feed.fetch_instruments("USDC")
        await wait_until(lambda: server.open_connections == 0)
    by_name = {i.name: i for i in everything}
    assert sorted(by_name) == ["BTC-27DEC24-60000-C", "BTC-PERPETUAL", "MATIC_USDC-9MAR24-1d02-C"]
    inverse = by_name["BTC-27DEC24-60000-C"]
    assert inverse.kind is Kind.OPTION
    assert inverse.settlement is Settlement.COIN
    assert (inverse.strike, inverse.is_call, inverse.quote_currency) == (60_000.0, True, "USD")
    assert inverse.expiry_ns == 1_735_286_400_000_000_000
    linear = by_name["MATIC_USDC-9MAR24-1d02-C"]
    assert linear.settlement is Settlement.LINEAR
    assert (linear.strike, linear.quote_currency, linear.index) == (1.02, "USDC", "matic_usdc")
    perpetual = by_name["BTC-PERPETUAL"]
    assert perpetual.kind is Kind.PERPETUAL
    assert perpetual.settlement is Settlement.COIN
    assert perpetual.expiry_ns is None
    assert [i.name for i in btc_options] == ["BTC-27DEC24-60000-C"]
    assert [i.name for i in usdc] == ["MATIC_USDC-9MAR24-1d02-C"]


async def test_definitions_that_failed_to_load_load_on_the_next_connection() -> None:
    """Deribit refuses the definitions at start (and once more): each new connection tries
    again, until they are in; the stream goes on meanwhile."""
    definitions = {"BTC-27DEC24-60000-C", "BTC-PERPETUAL", "MATIC_USDC-9MAR24-1d02-C"}

    def loaded() -> set[str]:  # names the stream parsed are not among them
        return {i.name for i in registry} & definitions

    async with DeribitServer() as server:
        registry = InstrumentRegistry()
        cfg = config(server.url, instrument_currencies=["BTC", "USDC"])
        feed = WebSocketFeed(cfg, registry, LiveClock(), BOOK)
        server.get_instruments_failures = 2
        with pytest.raises(FeedConnectionError, match="internal_server_error"):
            await feed.load_instruments()  # as the daemon's start-up does
        sink = CollectingSink()
        async with running(feed, sink):
            await wait_until(lambda: feed.stats.connects >= 1 and feed.stats.events > 0)
            assert loaded() == set()  # the first connection's attempt failed too
            await server.drop_connections()
            await wait_until(lambda: feed.stats.connects >= 2 and loaded() == definitions)
        assert server.get_instruments_calls == 4  # start, 1st connection, BTC and USDC on the 2nd


async def test_fetch_instruments_connection_refused_is_retryable() -> None:
    async with DeribitServer() as server:
        url = server.url
    feed = feed_for(url)
    with pytest.raises(FeedConnectionError) as info:
        await feed.fetch_instruments("BTC")
    assert info.value.retryable is True


def test_config_defaults_and_constraints() -> None:
    default = msgspec.convert({"kind": "deribit"}, DeribitFeedConfig)
    assert default.url == "wss://www.deribit.com/ws/api/v2"
    assert default.heartbeat_s >= 10
    assert default.silence_timeout_s > default.heartbeat_s
    assert default.instruments == []
    bad_changes: list[dict[str, Any]] = [
        {"heartbeat_s": 5},
        {"silence_timeout_s": 0},
        {"interval": "1s"},
        {"backoff_initial_s": 5.0, "backoff_max_s": 1.0},
        {"unknown": 1},
        {"kind": "mqtt"},
    ]
    for bad in bad_changes:
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"kind": "deribit", **bad}, DeribitFeedConfig)


async def test_a_hedge_futures_book_from_snapshot_and_changes_and_a_gap_resubscribes() -> None:
    """The feed follows BTC-PERPETUAL's book as Deribit sends it: a snapshot after the
    subscription, then changes; a lost change (prev_change_id not the last change_id) makes
    it unsubscribe and subscribe again, and the new snapshot gives the server's current book."""
    perp = "BTC-PERPETUAL"
    books = {perp: ([(60_000.0, 10_000.0), (59_990.0, 20_000.0)], [(60_010.0, 5_000.0)])}
    sink = CollectingSink()

    def depth() -> list[Depth]:
        return [e for e in sink.events if isinstance(e, Depth)]

    async with DeribitServer(books=books) as server:
        cfg = config(server.url, instruments=[], indices=[])
        feed = WebSocketFeed(cfg, InstrumentRegistry(), LiveClock(), books=[perp])
        async with running(feed, sink):
            await wait_until(lambda: len(depth()) == 1)
            assert depth()[0].bids == [(60_000.0, 10_000.0), (59_990.0, 20_000.0)]
            assert server.subscriptions == [{f"book.{perp}.100ms"}]
            await server.book_change(perp, [["delete", 60_000.0, 0.0]], [["new", 60_005.0, 7.0]])
            await wait_until(lambda: len(depth()) == 2)
            assert depth()[1].bids == [(59_990.0, 20_000.0)]
            assert depth()[1].asks == [(60_005.0, 7.0), (60_010.0, 5_000.0)]
            await server.book_change(perp, [["new", 59_995.0, 3.0]], lose=True)
            await wait_until(lambda: server.book_snapshots == 2)
            await wait_until(lambda: len(depth()) == 3)
            assert server.unsubscribe_calls == 1
            # the new snapshot: the server's book, with the change that showed the gap
            assert depth()[2].bids == [(59_995.0, 3.0), (59_990.0, 20_000.0)]
            assert feed.stats.connects == 1  # the same connection throughout
            assert not feed.stats.dropped
