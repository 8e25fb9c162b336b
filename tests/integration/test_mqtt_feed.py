"""The MQTT feed (feeds.mqtt) against a real mosquitto: events flow, bad messages are dropped,
the feed reconnects and resubscribes, and fills survive the feed being away."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import aiomqtt
import msgspec
import orjson
import pytest
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from engine.clock import ManualClock
from engine.errors import FeedConnectionError
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry
from feeds.mqtt import MqttFeed, MqttFeedConfig, classify
from tests import servers
from tests.servers import MosquittoServer

OPTION = "BTC-27DEC24-60000-C"
TS_MS = 1_732_400_000_123
RECV_NS = 1_900_000_000_000_000_000


class CollectingSink:
    """An EventSink that keeps everything; ``put_fill`` can be made to hang (a full queue)."""

    def __init__(self, *, hang_fills: bool = False) -> None:
        self.events: list[Tick | Quote | Depth | OpenInterest | Fill] = []
        self.fills: list[Fill] = []
        self._hang = hang_fills

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        self.events.append(event)

    async def put_fill(self, fill: Fill) -> None:
        self.events.append(fill)
        self.fills.append(fill)
        if self._hang:
            await asyncio.Event().wait()


until = functools.partial(servers.wait_until, timeout_s=10.0)
"""Poll feed stats until a predicate holds, for at most 10 s."""


def make_config(port: int, prefix: str, **kw: object) -> MqttFeedConfig:
    values: dict[str, object] = {
        "port": port,
        "topic_prefix": f"{prefix}/",
        "client_id": f"riskd-{prefix}",
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "keepalive_s": 5,
        "timeout_s": 5.0,
    }
    values.update(kw)
    return MqttFeedConfig(**values)  # type: ignore[arg-type]  # test values, checked by msgspec


@asynccontextmanager
async def running(feed: MqttFeed, sink: CollectingSink) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``feed`` in a task for the block; cancel it after."""
    async with asyncio.TaskGroup() as tg:
        task = tg.create_task(feed.run(sink), name=f"feed-{feed.name}")
        try:
            yield task
        finally:
            task.cancel()


@asynccontextmanager
async def publisher(port: int) -> AsyncIterator[Callable[[str, object], Awaitable[None]]]:
    """A plain aiomqtt client; yields ``publish(topic, payload)`` at QoS 1 (bytes as they are,
    anything else as JSON)."""
    async with aiomqtt.Client("127.0.0.1", port) as client:

        async def publish(topic: str, payload: object) -> None:
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await client.publish(topic, data, qos=1)

        yield publish


def tick(instrument: str = "BTC-PERPETUAL", price: float = 65000.5) -> dict[str, object]:
    return {"instrument": instrument, "price": price, "ts": TS_MS}


def fill(n: int, book: str = "main") -> dict[str, object]:
    return {"book": book, "instrument": OPTION, "quantity": -1 - n, "price": 0.02, "id": f"f{n}"}


def new_feed(config: MqttFeedConfig) -> MqttFeed:
    return MqttFeed(config, InstrumentRegistry(), ManualClock(RECV_NS))


async def test_events_flow(mosquitto_server: MosquittoServer, unique: str) -> None:
    feed = new_feed(make_config(mosquitto_server.port, unique))
    sink = CollectingSink()
    async with running(feed, sink), publisher(mosquitto_server.port) as publish:
        await until(lambda: feed.stats.connected)
        await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick())
        quote = {"instrument": OPTION, "bid": 0.021, "ask": 0.0225, "mark": 0.0218, "iv": 0.62}
        await publish(f"{unique}/md/quote/{OPTION}", {**quote, "underlying_price": 65120.0})
        await publish(f"{unique}/fills/main", {**fill(0), "ts": TS_MS})
        await until(lambda: len(sink.events) == 3)
    assert sink.events[0] == Tick(
        instrument="BTC-PERPETUAL", price=65000.5, ts_event=TS_MS * 1_000_000, ts_recv=RECV_NS
    )
    assert sink.events[1] == Quote(
        instrument=OPTION,
        bid=0.021,
        ask=0.0225,
        mark=0.0218,
        iv=0.62,
        underlying_price=65120.0,
        ts_event=RECV_NS,  # no ts: the receipt time
        ts_recv=RECV_NS,
    )
    assert sink.fills == [
        Fill(
            book="main",
            instrument=OPTION,
            quantity=-1.0,
            price=0.02,
            fill_id="f0",
            ts_event=TS_MS * 1_000_000,
            ts_recv=RECV_NS,
        )
    ]
    assert feed.stats.received == feed.stats.events == 3
    assert feed.stats.connects == 1
    assert feed.stats.last_recv_ns == RECV_NS
    assert not feed.stats.connected


@pytest.mark.parametrize("qos", [0, 1])
async def test_market_data_keeps_flowing_at_either_qos(
    mosquitto_server: MosquittoServer, unique: str, qos: int
) -> None:
    """The feed acknowledges by hand: mosquitto keeps at most 20 unacknowledged QoS 1 messages
    in flight to a client, so 100 ticks at QoS 1 arrive only if each one was acknowledged
    (QoS 0 has nothing to acknowledge)."""
    feed = new_feed(make_config(mosquitto_server.port, unique))
    sink = CollectingSink()
    async with (
        running(feed, sink),
        aiomqtt.Client("127.0.0.1", mosquitto_server.port) as client,
    ):
        await until(lambda: feed.stats.connected)
        for n in range(100):
            payload = orjson.dumps(tick(price=60_000.0 + n))
            await client.publish(f"{unique}/md/tick/BTC-PERPETUAL", payload, qos=qos)
        await until(lambda: len(sink.events) == 100)
    prices = [e.price if isinstance(e, Tick) else None for e in sink.events]
    assert prices == [60_000.0 + n for n in range(100)]


async def test_bad_messages_are_counted_and_dropped(
    mosquitto_server: MosquittoServer, unique: str
) -> None:
    feed = new_feed(make_config(mosquitto_server.port, unique))
    sink = CollectingSink()
    bad = [
        (f"{unique}/md/tick/BTC-PERPETUAL", b"\x00garbage"),
        (f"{unique}/md/tick/BTC-PERPETUAL", b'{"instrument": "BTC-PERPETUAL"}'),
        (f"{unique}/md/tick/BTC-PERPETUAL", tick(price=-1.0)),
        (f"{unique}/md/tick/NOPE", tick("NOPE")),
        (f"{unique}/md/tick/ETH-PERPETUAL", tick()),
        (f"{unique}/fills/other", fill(0)),
    ]
    async with running(feed, sink), publisher(mosquitto_server.port) as publish:
        await until(lambda: feed.stats.connected)
        for i in range(3):
            for topic, payload in bad:
                await publish(topic, payload)
            await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick(price=65000.0 + i))
        await publish(f"{unique}/fills/main", fill(1))
        await until(lambda: len(sink.events) == 4)
    assert [e.price for e in sink.events[:3] if isinstance(e, Tick)] == [65000.0, 65001.0, 65002.0]
    assert [f.fill_id for f in sink.fills] == ["f1"]
    assert dict(feed.stats.dropped) == {
        "json": 3,
        "schema": 3,
        "bad_price": 3,
        "unknown_instrument": 3,
        "topic": 6,
    }
    assert feed.stats.received == 3 * len(bad) + 4


class FaultySink(CollectingSink):
    """An engine side that fails on one instrument's market data (a bug, not bad input)."""

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        if event.instrument == OPTION:
            raise RuntimeError("boom")
        super().put(event)


async def test_an_unexpected_error_drops_the_message_and_the_feed_goes_on(
    mosquitto_server: MosquittoServer, unique: str
) -> None:
    feed = new_feed(make_config(mosquitto_server.port, unique))
    sink = FaultySink()
    async with running(feed, sink), publisher(mosquitto_server.port) as publish:
        await until(lambda: feed.stats.connected)
        for i in range(2):
            await publish(f"{unique}/md/quote/{OPTION}", {"instrument": OPTION, "mark": 0.02})
            await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick(price=65000.0 + i))
        await publish(f"{unique}/fills/main", fill(1))
        await until(lambda: len(sink.events) == 3)
    assert [e.price for e in sink.events if isinstance(e, Tick)] == [65000.0, 65001.0]
    assert [f.fill_id for f in sink.fills] == ["f1"]
    assert dict(feed.stats.dropped) == {"internal": 2}
    assert feed.stats.connects == 1  # the connection survived


async def test_reconnects_and_resubscribes_after_broker_restart(unique: str) -> None:
    with MosquittoServer() as server:
        feed = new_feed(make_config(server.port, unique))
        sink = CollectingSink()
        async with running(feed, sink):
            await until(lambda: feed.stats.connected)
            async with publisher(server.port) as publish:
                await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick(price=1.0))
            await until(lambda: len(sink.events) == 1)

            server.kill()  # the broker dies, and its sessions (no persistence) with it
            await until(lambda: not feed.stats.connected)
            await asyncio.sleep(0.3)  # a few refused reconnections
            server.start()  # same port
            await until(lambda: feed.stats.connects == 2)

            async with publisher(server.port) as publish:
                await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick(price=2.0))
                await publish(f"{unique}/fills/main", fill(7))
            await until(lambda: len(sink.events) == 3)
    assert [e.price for e in sink.events if isinstance(e, Tick)] == [1.0, 2.0]
    assert [f.fill_id for f in sink.fills] == ["f7"]


async def test_starts_before_the_broker(unique: str) -> None:
    server = MosquittoServer()
    try:
        feed = new_feed(make_config(server.port, unique))
        sink = CollectingSink()
        async with running(feed, sink):
            await asyncio.sleep(0.3)  # connection refused, retried
            assert feed.stats.connects == 0
            server.start()
            await until(lambda: feed.stats.connected)
            async with publisher(server.port) as publish:
                await publish(f"{unique}/md/tick/btc_usd", tick("btc_usd"))
            await until(lambda: len(sink.events) == 1)
    finally:
        server.stop()


async def test_fills_published_while_the_feed_is_away_arrive(
    mosquitto_server: MosquittoServer, unique: str
) -> None:
    config = make_config(mosquitto_server.port, unique)
    first = new_feed(config)
    sink = CollectingSink()
    async with running(first, sink), publisher(mosquitto_server.port) as publish:
        await until(lambda: first.stats.connected)
        await publish(f"{unique}/fills/main", fill(0))
        await until(lambda: len(sink.fills) == 1)
    assert not first.stats.connected

    async with publisher(mosquitto_server.port) as publish:  # the broker queues these
        for n in range(1, 21):
            await publish(f"{unique}/fills/main", fill(n))
            await publish(f"{unique}/md/tick/BTC-PERPETUAL", tick(price=float(n)))

    second = new_feed(config)  # same client id: the same session
    async with running(second, sink):
        await until(lambda: len(sink.fills) == 21)
        await asyncio.sleep(0.2)  # nothing more, in particular no duplicate
    assert [f.fill_id for f in sink.fills] == [f"f{n}" for n in range(21)]


async def test_a_fill_not_yet_taken_is_delivered_again(
    mosquitto_server: MosquittoServer, unique: str
) -> None:
    """A fill in flight when the feed stops (the engine's fill queue full) is not acknowledged,
    so the broker delivers it again to the next session."""
    config = make_config(mosquitto_server.port, unique)
    stuck_sink = CollectingSink(hang_fills=True)
    first = new_feed(config)
    async with running(first, stuck_sink), publisher(mosquitto_server.port) as publish:
        await until(lambda: first.stats.connected)
        await publish(f"{unique}/fills/main", fill(0))
        await publish(f"{unique}/fills/main", fill(1))
        await until(lambda: len(stuck_sink.fills) == 1)
    assert [f.fill_id for f in stuck_sink.fills] == ["f0"]  # f0 hangs; f1 is not even read

    sink = CollectingSink()
    second = new_feed(config)
    async with running(second, sink):
        await until(lambda: len(sink.fills) == 2)
    assert [f.fill_id for f in sink.fills] == ["f0", "f1"]


async def test_silence_timeout_reconnects(mosquitto_server: MosquittoServer, unique: str) -> None:
    feed = new_feed(make_config(mosquitto_server.port, unique, silence_timeout_s=0.2))
    sink = CollectingSink()
    async with running(feed, sink):
        await until(lambda: feed.stats.connects >= 3)
        async with publisher(mosquitto_server.port) as publish:
            await publish(f"{unique}/md/tick/btc_usd", tick("btc_usd"))
        await until(lambda: len(sink.events) == 1)


class ClosedMosquitto(MosquittoServer):
    """A mosquitto that refuses anonymous clients and knows no user."""

    def _argv(self) -> list[str]:
        argv = super()._argv()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
        return argv


async def test_refused_credentials_are_fatal(unique: str) -> None:
    with ClosedMosquitto() as server:
        feed = new_feed(make_config(server.port, unique))
        async with asyncio.timeout(10):
            with pytest.raises(FeedConnectionError) as exc_info:
                await feed.run(CollectingSink())
    assert exc_info.value.retryable is False
    assert feed.stats.connects == 0


async def test_missing_password_variable_is_fatal(
    monkeypatch: pytest.MonkeyPatch, mosquitto_server: MosquittoServer, unique: str
) -> None:
    monkeypatch.delenv("RISKD_TEST_MQTT_PASSWORD", raising=False)
    config = make_config(
        mosquitto_server.port,
        unique,
        username="u",
        password_env="RISKD_TEST_MQTT_PASSWORD",  # noqa: S106 - a variable's name, no password
    )
    with pytest.raises(FeedConnectionError) as exc_info:
        await new_feed(config).run(CollectingSink())
    assert exc_info.value.retryable is False
    assert "RISKD_TEST_MQTT_PASSWORD" in exc_info.value.detail


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),
        (TimeoutError(), True),
        (aiomqtt.MqttError("Disconnected during message iteration"), True),
        (aiomqtt.MqttCodeError(7, "Unexpected disconnection"), True),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Server unavailable")), True),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Bad user name or password")), False),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Not authorized")), False),
        (MqttConnectError(ReasonCode(PacketTypes.CONNACK, "Client identifier not valid")), False),
    ],
)
def test_classify(exc: BaseException, retryable: bool) -> None:
    failure = classify(exc, "mqtt")
    assert failure is not None
    assert failure.retryable is retryable
    assert failure.error.retryable is retryable
    assert failure.error.feed == "mqtt"


def test_classify_leaves_bugs_alone() -> None:
    assert classify(ValueError("a bug"), "mqtt") is None


def test_config_defaults_and_validation() -> None:
    config = msgspec.convert({"kind": "mqtt"}, MqttFeedConfig)
    assert config.topics == ["md/tick/#", "md/quote/#", "md/book/#", "fills/#"]
    assert (config.client_id, config.qos, config.host, config.port) == (
        "riskd",
        1,
        "127.0.0.1",
        1883,
    )
    for bad in ({"qos": 0}, {"port": 0}, {"password": "x"}, {"client_id": ""}):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert({"kind": "mqtt", **bad}, MqttFeedConfig)
