"""The Redis sink (engine.runtime.redis_sink) against a real redis-server.

Every test writes under its own key prefix. Tests that kill Redis start their own server.
Waits are bounded polls on outcomes (``eventually``), never assertions on timing; the per-key
rate limit runs on a ManualClock where a test needs it to hold.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec
import orjson
import pytest
import redis.asyncio as aioredis
from redis import exceptions as rexc

from engine.alerts import AlertEngine, AlertRule
from engine.clock import Clock, ManualClock
from engine.errors import SinkError
from engine.outputs import (
    SCHEMA_VERSION,
    AlertPayload,
    BookExposure,
    EngineStatus,
    UnderlyingExposure,
    VarPayload,
    encode,
)
from engine.runtime.clock import LiveClock
from engine.runtime.redis_sink import (
    BACKGROUND_BYTES,
    RedisConfig,
    RedisSink,
    classify,
    redact_url,
)
from tests.factories import alert, payload
from tests.servers import RedisServer

T0 = 1_700_000_000_000_000_000


def fast_config(url: str, prefix: str, **overrides: Any) -> RedisConfig:
    """A config with short intervals and backoff, so outages heal within a test."""
    fields: dict[str, Any] = {
        "url": url,
        "prefix": prefix,
        "min_interval_ms": 0,
        "heartbeat_interval_s": 0.05,
        "heartbeat_ttl_s": 2.0,
        "timeout_s": 0.5,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.2,
    }
    fields.update(overrides)
    return RedisConfig(**fields)


def exposure(value: float, ts_ns: int = T0, book: str = "main") -> BookExposure:
    return payload(BookExposure, book=book, delta_usd=value, ts_ns=ts_ns)


def wire(p: AlertPayload | BookExposure | UnderlyingExposure) -> Any:
    """``p`` as the sink writes it, decoded."""
    return msgspec.json.decode(encode(p))


def vega(engine: AlertEngine, underlying: str, value: float, ts_ns: int) -> list[AlertPayload]:
    """The transitions of an exposure of book main with that ``vega``."""
    exp = payload(UnderlyingExposure, book="main", underlying=underlying, vega=value, ts_ns=ts_ns)
    return engine.check(exp)


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 8.0) -> None:
    """Poll ``check`` until it holds; fail after ``timeout_s`` (a bound, not a measurement)."""
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polls Redis and counters: no event to wait on
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running(sink: RedisSink) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``sink`` in a task; cancel it on exit (re-raising its failure, if it failed)."""
    task = asyncio.create_task(sink.run(), name="redis-sink")
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


SinkFactory = Callable[..., RedisSink]


@pytest.fixture
async def make_sink() -> AsyncIterator[SinkFactory]:
    """Build sinks; every one is closed at teardown."""
    sinks: list[RedisSink] = []

    def make(config: RedisConfig, clock: Clock, **kwargs: Any) -> RedisSink:
        # The test's clock paces the sink too, so a ManualClock holds the rate limit.
        sinks.append(RedisSink(config, clock, pacing=clock, **kwargs))
        return sinks[-1]

    yield make
    for sink in sinks:
        await sink.aclose()


@pytest.fixture
async def client(redis_server: RedisServer, unique: str) -> AsyncIterator[aioredis.Redis]:
    """A plain client on the session server; deletes the test's keys afterwards."""
    c = aioredis.Redis.from_url(redis_server.url)
    try:
        yield c
    finally:
        keys = [k async for k in c.scan_iter(match=f"{unique}:*")]
        if keys:
            await c.delete(*keys)
        await c.aclose()


async def next_message(pubsub: aioredis.client.PubSub, timeout_s: float = 5.0) -> Any:
    async with asyncio.timeout(timeout_s):
        while True:
            msg = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if msg is not None:
                return orjson.loads(msg["data"])


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


async def _hash(c: aioredis.Redis, name: str) -> dict[str, Any]:
    raw = await c.hgetall(name)
    return {_text(k): orjson.loads(v) for k, v in raw.items()}


async def snapshot(c: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """The snapshot hash, decoded: exposure key -> payload."""
    return await _hash(c, f"{prefix}:snapshot")


async def active(c: aioredis.Redis, prefix: str) -> dict[str, Any]:
    """The active-alerts hash, decoded: alert id -> payload."""
    return await _hash(c, f"{prefix}:alerts:active")


async def stream(c: aioredis.Redis, name: str) -> list[Any]:
    """A stream's payloads, oldest first; every entry has exactly one field, ``data``."""
    payloads = []
    for _, fields in await c.xrange(name) or []:
        assert fields is not None
        assert set(fields) == {b"data"}
        payloads.append(orjson.loads(fields[b"data"]))
    return payloads


def connected(sink: RedisSink) -> bool:
    """``sink.stats.connected`` read through a call, so mypy does not narrow it in loops."""
    return sink.stats.connected


# ------------------------------------------------------------------ exposures


async def test_exposure_reaches_channel_stream_and_snapshot(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    sink = make_sink(fast_config(redis_server.url, unique), LiveClock())
    exp = payload(
        UnderlyingExposure,
        book="main",
        underlying="BTC",
        delta_usd=1234.5,
        gamma=math.nan,
        units={"delta_usd": "USD"},
        ts_ns=T0,
    )
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(f"{unique}:exposure")
        async with running(sink):
            sink.publish("main:BTC", exp)
            message = await next_message(pubsub)

            async def committed() -> bool:
                return sink.stats.published == 1

            await eventually(committed)
    fields = msgspec.to_builtins(exp)
    # NaN (gamma, and every figure the test left unset) goes out as null; nothing else changes
    expected = {k: None if v != v else v for k, v in fields.items()}
    assert expected["gamma"] is None
    assert message == expected
    assert message["v"] == SCHEMA_VERSION
    assert message["ts"] == T0 // 1_000_000
    assert await stream(client, f"{unique}:exposure:stream") == [expected]
    assert await snapshot(client, unique) == {"main:BTC": expected}
    assert sink.stats.published == 1
    assert sink.stats.connected


async def test_a_large_batch_goes_out_whole_and_in_order(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    """More keys than one script call takes (several EVALs in one pipeline): every payload once
    on the channel and the stream, in the order recorded, and every key in the snapshot."""
    n = 700
    sink = make_sink(fast_config(redis_server.url, unique), ManualClock(T0))
    keys = [f"b{i:03d}:BTC" for i in range(n)]
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(f"{unique}:exposure")
        for i, key in enumerate(keys):
            sink.publish(key, exposure(float(i), book=key))
        await sink.flush()
        messages = [await next_message(pubsub) for _ in range(n)]
    assert [m["book"] for m in messages] == keys
    assert [m["book"] for m in await stream(client, f"{unique}:exposure:stream")] == keys
    snap = await snapshot(client, unique)
    assert {k: v["delta_usd"] for k, v in snap.items()} == {k: float(i) for i, k in enumerate(keys)}
    assert sink.stats.published == n


async def test_a_change_goes_out_ahead_of_a_backlog_of_background_payloads(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    """Background payloads (a full reprice's refresh, the risk periods') go out after every
    change, at most BACKGROUND_BYTES a write: a change recorded behind a backlog several writes
    long is on the channel before any of it; the backlog follows whole, in order. A change of a
    key whose background payload is pending replaces it (one message, the change)."""
    n = 3 * BACKGROUND_BYTES // len(encode(exposure(0.0, book="b000:BTC"))) + 1  # 4 writes
    sink = make_sink(fast_config(redis_server.url, unique), LiveClock())
    keys = [f"b{i:03d}:BTC" for i in range(n)]
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(f"{unique}:exposure")
        for i, key in enumerate(keys):
            sink.publish(key, exposure(float(i), book=key), background=True)
        sink.publish("urgent:BTC", exposure(-1.0, book="urgent:BTC"))
        sink.publish(keys[7], exposure(-7.0, book=keys[7]))  # a change of a pending key
        async with running(sink):
            messages = [await next_message(pubsub) for _ in range(n + 1)]
    books = [m["book"] for m in messages]
    assert books[:2] == ["urgent:BTC", keys[7]]
    assert messages[1]["delta_usd"] == -7.0
    assert books[2:] == keys[:7] + keys[8:]
    assert sink.stats.pipelines >= 4
    assert sink.stats.published == n + 1


async def test_a_key_of_another_type_under_the_prefix_is_fatal(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    """A retry cannot fix a command Redis rejects (WRONGTYPE inside the script): SinkError,
    and the payload stays pending."""
    await client.set(f"{unique}:exposure:stream", b"not a stream")
    sink = make_sink(fast_config(redis_server.url, unique), ManualClock(T0))
    sink.publish("main:BTC", exposure(1.0))
    with pytest.raises(SinkError, match="WRONGTYPE"):
        await sink.flush()
    assert sink.stats.pending == 1
    assert sink.stats.published == 0


async def test_heartbeat_key_has_a_ttl(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    sink = make_sink(
        fast_config(redis_server.url, unique, heartbeat_ttl_s=3.0),
        LiveClock(),
        status=lambda: payload(EngineStatus, lots=7, uptime_s=1.5),
    )
    async with running(sink):
        await eventually(lambda: _exists(client, f"{unique}:heartbeat"))
        ttl_ms = await client.pttl(f"{unique}:heartbeat")
        raw = await client.get(f"{unique}:heartbeat")
    assert raw is not None
    beat = orjson.loads(raw)
    assert 0 < ttl_ms <= 3000
    assert beat["v"] == SCHEMA_VERSION
    assert beat["ts"] == beat["ts_ns"] // 1_000_000
    assert (beat["lots"], beat["uptime_s"], beat["feeds"]) == (7, 1.5, {})
    assert {"published", "errors", "reconnects", "pending", "dropped_alerts"} <= beat.keys()


async def test_a_write_goes_out_at_once_and_a_burst_meanwhile_is_conflated(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    """No timer: a payload recorded while the writer idles is written at once (well before
    the heartbeat period, 1 h here); a burst of 1000 on one key recorded while nothing yields
    is one pending payload, and one write."""
    clock = ManualClock(T0)  # frozen: the heartbeat period never ends
    config = fast_config(redis_server.url, unique, heartbeat_interval_s=3600, heartbeat_ttl_s=7200)
    sink = make_sink(config, clock)
    name = f"{unique}:exposure:stream"
    async with running(sink):
        await eventually(lambda: _exists(client, f"{unique}:heartbeat"))  # the first write
        for n in range(1, 4):
            sink.publish("main:BTC", exposure(float(n)))
            await eventually(functools.partial(_snapshot_is, client, unique, float(n)))
        for i in range(1000):
            sink.publish("main:BTC", exposure(float(100 + i)))
            assert sink.stats.pending <= 1
        await eventually(lambda: _snapshot_is(client, unique, 1099.0))
    published = await stream(client, name)
    assert [p["delta_usd"] for p in published] == [1.0, 2.0, 3.0, 1099.0]


async def _exists(c: aioredis.Redis, key: str) -> bool:
    return bool(await c.exists(key))


async def _snapshot_is(c: aioredis.Redis, prefix: str, value: float) -> bool:
    snap = await snapshot(c, prefix)
    return bool(snap.get("main:BTC", {}).get("delta_usd") == value)


async def test_flush_publishes_pending_at_once(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    clock = ManualClock(T0)
    config = fast_config(redis_server.url, unique)
    sink = make_sink(config, clock)  # never ran: flush alone writes
    sink.publish("main:BTC", exposure(2.0))
    sink.publish("main:ETH", exposure(3.0))
    await sink.flush()
    snap = await snapshot(client, unique)
    assert {k: v["delta_usd"] for k, v in snap.items()} == {"main:BTC": 2.0, "main:ETH": 3.0}
    assert sink.stats.pending == 0
    assert await client.exists(f"{unique}:heartbeat")


async def test_cancel_mid_write_then_flush_loses_nothing(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    # The shutdown order: cancel run() wherever it is, then flush(). Here run() is cancelled
    # while a pipeline is in flight, at a different point of it on each attempt.
    for attempt in range(12):
        prefix = f"{unique}:{attempt}"
        sink = make_sink(fast_config(redis_server.url, prefix), LiveClock())
        for k in range(200):
            sink.publish(f"k{k}", exposure(1.0, book="x" * 500))
        for i in range(50):
            sink.alert(alert(f"a{i}", ts_ns=i))
        task = asyncio.create_task(sink.run(), name="redis-sink")
        async with asyncio.timeout(5.0):
            # The private lock is held exactly while a pipeline is in flight.
            while not sink._lock.locked():  # noqa: ASYNC110 - no event marks "in flight"
                await asyncio.sleep(0)
        for k in range(100):
            sink.publish(f"k{k}", exposure(2.0))  # newer than what is in flight
        for _ in range(attempt):
            await asyncio.sleep(0)
        task.cancel()
        # run() stops even when the Redis client swallows the cancellation.
        await asyncio.wait({task}, timeout=5.0)
        assert task.cancelled()
        await sink.flush()
        snap = await snapshot(client, prefix)
        assert {k: v["delta_usd"] for k, v in snap.items()} == {
            f"k{k}": 2.0 if k < 100 else 1.0 for k in range(200)
        }
        assert len(await active(client, prefix)) == 50
        assert sink.stats.queued_alerts == 0
        assert sink.stats.pending == 0


# ------------------------------------------------------------------ alerts


async def test_alerts_in_order_and_the_active_hash(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    engine = AlertEngine(
        [AlertRule(name="vega_limit", metric="vega", scope="underlying", above=10.0)]
    )

    transitions = [
        *vega(engine, "BTC", 20.0, T0 + 1),
        *vega(engine, "ETH", 30.0, T0 + 2),
        *vega(engine, "BTC", 0.0, T0 + 3),
        *vega(engine, "SOL", 40.0, T0 + 4),
        *engine.feed_stale("deribit", True, 31.0, T0 + 5),
    ]
    sink = make_sink(fast_config(redis_server.url, unique), LiveClock())
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(f"{unique}:alerts")
        async with running(sink):
            for p in transitions:
                sink.alert(p)
            received = [await next_message(pubsub) for _ in transitions]

            async def committed() -> bool:
                return sink.stats.alerts == len(transitions)

            await eventually(committed)
    order = [(p["id"], p["state"]) for p in received]
    assert order == [
        ("vega_limit:main:BTC", "raised"),
        ("vega_limit:main:ETH", "raised"),
        ("vega_limit:main:BTC", "cleared"),
        ("vega_limit:main:SOL", "raised"),
        ("stale_feed:deribit", "raised"),
    ]
    assert await stream(client, f"{unique}:alerts:stream") == received
    assert await active(client, unique) == {a.id: wire(a) for a in engine.active()}
    assert set(await active(client, unique)) == {
        "vega_limit:main:ETH",
        "vega_limit:main:SOL",
        "stale_feed:deribit",
    }
    assert sink.stats.alerts == len(transitions)


async def test_a_restart_ends_the_alerts_its_predecessor_left_active(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    """An earlier run left two alerts in the active hash; the new run holds one of them raised
    again. Each old one is cleared (``reason: restart``) before the new run's transitions, so
    a stream reader sees raised/cleared alternate per id; the hash holds the new run's."""
    engine = AlertEngine(
        [AlertRule(name="vega_limit", metric="vega", scope="underlying", above=10.0)]
    )
    old = [*vega(engine, "BTC", 20.0, T0), *vega(engine, "ETH", 20.0, T0)]
    await client.hset(f"{unique}:alerts:active", mapping={p.id: encode(p) for p in old})
    # a predecessor of schema version 2 (no valuation_ts_ns) left the BTC one
    v2 = {k: v for k, v in wire(old[0]).items() if k != "valuation_ts_ns"} | {"v": 2}
    await client.hset(f"{unique}:alerts:active", old[0].id, orjson.dumps(v2))
    await client.hset(f"{unique}:alerts:active", "junk", b"not an alert")
    again = AlertEngine(
        [AlertRule(name="vega_limit", metric="vega", scope="underlying", above=10.0)]
    )
    new = vega(again, "ETH", 30.0, T0 + 10**9)
    sink = make_sink(fast_config(redis_server.url, unique), LiveClock())
    for p in new:
        sink.alert(p)
    async with running(sink):

        async def committed() -> bool:
            return sink.stats.alerts == 3

        await eventually(committed)
    got = await stream(client, f"{unique}:alerts:stream")
    assert [(p["id"], p["state"], p.get("reason")) for p in got] == [
        ("vega_limit:main:BTC", "cleared", "restart"),
        ("vega_limit:main:ETH", "cleared", "restart"),
        ("vega_limit:main:ETH", "raised", None),
    ]
    assert got[0]["value"] == 20.0  # the value at the old raise
    assert got[0]["ts_ns"] > T0  # stamped now
    assert got[0]["ts"] == got[0]["ts_ns"] // 1_000_000
    assert (got[0]["v"], got[0]["valuation_ts_ns"]) == (SCHEMA_VERSION, None)  # now of v3
    assert set(await active(client, unique)) == {"vega_limit:main:ETH"}
    assert (await active(client, unique))["vega_limit:main:ETH"]["value"] == 30.0


# ------------------------------------------------------------------ outages


async def test_reconnects_after_redis_is_killed_and_restores_the_snapshot(
    unique: str, make_sink: SinkFactory
) -> None:
    server = RedisServer()
    await asyncio.to_thread(server.start)
    c = aioredis.Redis.from_url(server.url)
    engine = AlertEngine([AlertRule(name="d", metric="delta_usd", scope="book", above=0.0)])
    sink = make_sink(fast_config(server.url, unique), LiveClock())
    try:
        async with running(sink):
            for key in ("main:BTC", "main:ETH", "main"):
                sink.publish(key, exposure(0.0))
            for p in engine.check(exposure(1.0)):
                sink.alert(p)

            async def all_written() -> bool:
                return len(await snapshot(c, unique)) == 3 and len(await active(c, unique)) == 1

            await eventually(all_written)

            await asyncio.to_thread(server.kill)
            latest = 0.0
            async with asyncio.timeout(8.0):
                while connected(sink):
                    latest += 1.0
                    sink.publish("main:BTC", exposure(latest))
                    sink.publish("main:ETH", exposure(-latest))
                    await asyncio.sleep(0.005)
            for _ in range(500):  # the engine goes on, unaware
                latest += 1.0
                sink.publish("main:BTC", exposure(latest))
                sink.publish("main:ETH", exposure(-latest))
            assert sink.stats.pending <= 3
            for p in engine.check(exposure(5.0, T0 + 1, book="other")):
                sink.alert(p)
            for p in engine.check(exposure(-1.0, T0 + 2)):
                sink.alert(p)
            assert sink.stats.errors >= 1

            await asyncio.to_thread(server.start)  # same port, empty: no persistence

            async def restored() -> bool:
                with contextlib.suppress(rexc.ConnectionError):
                    snap = await snapshot(c, unique)
                    return sink.stats.reconnects >= 1 and {
                        k: v["delta_usd"] for k, v in snap.items()
                    } == {"main:BTC": latest, "main:ETH": -latest, "main": 0.0}
                return False

            await eventually(restored)
            assert set(await active(c, unique)) == {"d:other"}
            assert connected(sink)
    finally:
        await c.aclose()
        await asyncio.to_thread(server.stop)


async def test_an_immediate_restart_is_found_and_every_key_rewritten(
    unique: str, make_sink: SinkFactory
) -> None:
    """Redis killed (SIGKILL) and back at once, between two writes: no write fails, so only the
    new connection's check can tell that Redis lost everything. After each restart the next
    write rewrites every key: each family's snapshot, the active alerts, the heartbeat."""
    server = RedisServer()
    await asyncio.to_thread(server.start)
    c = aioredis.Redis.from_url(server.url)
    engine = AlertEngine([AlertRule(name="d", metric="delta_usd", scope="book", above=0.0)])
    sink = make_sink(fast_config(server.url, unique), LiveClock())
    try:
        for key in ("main:BTC", "main:ETH", "main"):
            sink.publish(key, exposure(1.0))
        sink.publish("main", payload(VarPayload, book="main", var=2.0, ts_ns=T0))
        for book in ("main", "other"):
            for p in engine.check(exposure(1.0, book=book)):
                sink.alert(p)
        await sink.flush()
        restarts = 20
        for i in range(1, restarts + 1):
            await asyncio.to_thread(server.kill)
            await asyncio.to_thread(server.start)  # same port, empty
            await c.aclose()
            c = aioredis.Redis.from_url(server.url)
            assert await c.dbsize() == 0
            sink.publish("main:BTC", exposure(float(i)))  # the write that finds the restart
            await sink.flush()
            assert {k: v["delta_usd"] for k, v in (await snapshot(c, unique)).items()} == {
                "main:BTC": float(i),
                "main:ETH": 1.0,
                "main": 1.0,
            }
            assert (await _hash(c, f"{unique}:var:snapshot"))["main"]["var"] == 2.0
            assert await active(c, unique) == {a.id: wire(a) for a in engine.active()}
            assert await c.exists(f"{unique}:heartbeat", f"{unique}:writer") == 2
            assert sink.stats.server_changes == i
        assert sink.stats.errors == 0  # no write failed: every restart was found on connecting
        assert sink.stats.resyncs == restarts + 1  # and the first write
    finally:
        await c.aclose()
        await asyncio.to_thread(server.stop)


async def test_a_whole_hash_is_replaced_and_rewritten_after_a_restart(
    unique: str, make_sink: SinkFactory
) -> None:
    """``hashes.replace``: each write replaces the hash whole (fields of an earlier write are
    gone), binary values intact; Redis restarted empty gets the latest again with the next
    write."""
    server = RedisServer()
    await asyncio.to_thread(server.start)
    c = aioredis.Redis.from_url(server.url)
    sink = make_sink(fast_config(server.url, unique), LiveClock())
    blob = bytes(range(256)) * 3
    try:
        sink.hashes.replace("vectors", {"header": b"{}", "a": blob, "b": b"\x00"})
        await sink.flush()
        assert await c.hgetall(f"{unique}:vectors") == {b"header": b"{}", b"a": blob, b"b": b"\x00"}
        sink.hashes.replace("vectors", {"header": b"{1}", "c": blob[::-1]})
        sink.hashes.replace("vectors", {"header": b"{2}", "d": blob})  # the latest wins
        await sink.flush()
        assert await c.hgetall(f"{unique}:vectors") == {b"header": b"{2}", b"d": blob}
        await asyncio.to_thread(server.kill)
        await asyncio.to_thread(server.start)  # same port, empty
        await c.aclose()
        c = aioredis.Redis.from_url(server.url)
        sink.publish("main", exposure(1.0))  # the write that finds the restart
        await sink.flush()
        assert await c.hgetall(f"{unique}:vectors") == {b"header": b"{2}", b"d": blob}
        assert sink.stats.server_changes == 1
    finally:
        await c.aclose()
        await asyncio.to_thread(server.stop)


async def test_pending_stays_bounded_while_redis_is_down(
    unique: str, make_sink: SinkFactory
) -> None:
    server = RedisServer()  # not started yet: nothing listens on its port
    sink = make_sink(fast_config(server.url, unique, alert_queue=5), LiveClock())
    c = aioredis.Redis.from_url(server.url)
    try:
        async with running(sink):
            for i in range(1000):
                for k in range(10):
                    sink.publish(f"book{k}", exposure(float(i)))
                if i % 100 == 0:
                    await asyncio.sleep(0.01)
            for i in range(8):
                sink.alert(alert(f"a{i}", ts_ns=i))

            async def failed() -> bool:
                return sink.stats.errors >= 1

            await eventually(failed)
            assert sink.stats.pending == 10
            assert sink.stats.queued_alerts == 5
            assert sink.stats.dropped_alerts == 3
            assert not connected(sink)

            await asyncio.to_thread(server.start)

            async def delivered() -> bool:
                return len(await snapshot(c, unique)) == 10 and sink.stats.queued_alerts == 0

            await eventually(delivered)
        snap = await snapshot(c, unique)
        assert {v["delta_usd"] for v in snap.values()} == {999.0}
        assert [p["id"] for p in await stream(c, f"{unique}:alerts:stream")] == [
            "a3",
            "a4",
            "a5",
            "a6",
            "a7",
        ]
        # the active hash holds every raised alert, the dropped ones included
        assert set(await active(c, unique)) == {f"a{i}" for i in range(8)}
        assert sink.stats.reconnects == 0  # the first connection is not a reconnection
    finally:
        await c.aclose()
        await asyncio.to_thread(server.stop)


class _PasswordRedis(RedisServer):
    def _argv(self) -> list[str]:
        return [*super()._argv(), "--requirepass", "s3cret-pw"]


async def test_bad_credentials_are_fatal_and_never_logged(
    unique: str, caplog: pytest.LogCaptureFixture, make_sink: SinkFactory
) -> None:
    server = _PasswordRedis()
    await asyncio.to_thread(server.start)
    try:
        bad = fast_config(f"redis://:wrong-pw@127.0.0.1:{server.port}/0", unique)
        sink = make_sink(bad, LiveClock())
        sink.publish("main", exposure(1.0))
        with (
            caplog.at_level(logging.DEBUG, logger="engine.runtime.redis_sink"),
            pytest.raises(SinkError, match="AuthenticationError") as info,
        ):
            async with asyncio.timeout(8.0):
                await sink.run()
        assert "wrong-pw" not in str(info.value)
        assert "wrong-pw" not in repr(bad)
        for record in caplog.records:
            assert "wrong-pw" not in repr(record.__dict__)

        good = make_sink(
            fast_config(f"redis://:s3cret-pw@127.0.0.1:{server.port}/0", unique), LiveClock()
        )
        await good.flush()  # the right password: written
        assert connected(good)
    finally:
        await asyncio.to_thread(server.stop)


# ------------------------------------------------------------------ config and classification


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("rediss://user:pw@host:6380/1", "rediss://user:***@host:6380/1"),
        ("redis://pw@host/0", "redis://***@host/0"),
        ("unix:///run/redis.sock?db=0&password=pw", "unix:///run/redis.sock?db=0&password=***"),
    ],
)
def test_redact_url(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_config_repr_redacts_and_validation_fails_fast() -> None:
    config = RedisConfig(url="redis://:hunter2@db:6379/0")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in str(config)
    assert "prefix='risk'" in repr(config)
    with pytest.raises(msgspec.ValidationError, match=r"\$\.min_interval_ms"):
        msgspec.convert({"min_interval_ms": -1}, RedisConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"flush_interval_ms": 5}, RedisConfig)  # gone: writes go out at once
    with pytest.raises(msgspec.ValidationError, match="heartbeat_ttl_s"):
        msgspec.convert({"heartbeat_interval_s": 5.0, "heartbeat_ttl_s": 5.0}, RedisConfig)
    with pytest.raises(msgspec.ValidationError, match="scheme") as info:
        msgspec.convert({"url": "http://:hunter2@db"}, RedisConfig)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [
        (rexc.ConnectionError("refused"), True),
        (rexc.TimeoutError("slow"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (rexc.BusyLoadingError("loading"), True),
        (rexc.ReadOnlyError("replica"), True),
        (rexc.AuthenticationError("WRONGPASS"), False),
        (rexc.NoPermissionError("NOPERM"), False),
        (rexc.ResponseError("WRONGTYPE"), False),
    ],
)
def test_classify(exc: BaseException, retryable: bool) -> None:
    failure = classify(exc, "redis://:pw@host/0")
    assert failure is not None
    assert isinstance(failure.error, SinkError)
    assert failure.retryable is retryable
    assert ":pw@" not in str(failure.error)


def test_classify_leaves_bugs_alone() -> None:
    assert classify(ValueError("bug"), "redis://host") is None


async def test_exposure_and_alert_never_raise_on_odd_payloads(
    redis_server: RedisServer, client: aioredis.Redis, unique: str, make_sink: SinkFactory
) -> None:
    sink = make_sink(fast_config(redis_server.url, unique), LiveClock())
    async with running(sink):
        sink.publish("bad", payload(BookExposure, book="bad", pnl=object()))  # a producer's bug
        sink.publish("good", exposure(1.0))
        sink.alert(alert("never_raised", "cleared"))  # published; nothing to delete

        async def written() -> bool:
            return "good" in await snapshot(client, unique) and sink.stats.alerts == 1

        await eventually(written)
    assert sink.stats.bad_payloads == 1
    assert "bad" not in await snapshot(client, unique)
    assert await active(client, unique) == {}
