"""riskd on a real Redis Cluster (three masters started by the tests), and shards by underlying.

The consumer here reads the cluster as docs/redis.md#redis-cluster-and-shards says: the
directory hash ``{prefix}:shards`` names every daemon's key base, each base's hashes are read
on the node that holds its slot, and the shards' underlying-scope fields together make one view.
The replay runs on the file's clock, so a daemon, and two shards on the same file, value the
same inputs at the same times.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import Connection
from redis.exceptions import RedisClusterException, RedisError

from engine.clock import ManualClock
from engine.runtime.app import build, run
from engine.runtime.config import load_config
from engine.runtime.redis_link import probe
from engine.runtime.redis_sink import RedisConfig, RedisSink
from engine.shards import shard_of
from tests.factories import alert
from tests.servers import (
    ClusterNode,
    MosquittoServer,
    RedisClusterServers,
    running_daemon,
    wait_until,
)

T0_MS = 1_732_435_200_000  # 2024-11-24 08:00 UTC
BTC_CALL = "BTC-27DEC24-100000-C"
ETH_PUT = "ETH-27DEC24-3000-P"
TS_MS = 1_732_400_000_123


def _replay(path: Path, *, foreign_fill: bool = False) -> None:
    """Two minutes of a BTC and an ETH market (index, perpetual, an option each), fills in
    both; with ``foreign_fill`` the last fill is of ETH (for a BTC shard)."""
    lines: list[dict[str, Any]] = []
    for i in range(120):
        ts = T0_MS + i * 1000
        btc, eth = 97_000.0 * (1 + 0.001 * math.sin(i / 7)), 3_300.0 * (1 + 0.002 * math.cos(i / 5))
        lines += [
            {"type": "tick", "instrument": "btc_usd", "price": btc, "ts": ts},
            {"type": "tick", "instrument": "BTC-PERPETUAL", "price": btc + 30, "ts": ts},
            {"type": "tick", "instrument": "eth_usd", "price": eth, "ts": ts},
            {"type": "tick", "instrument": "ETH-PERPETUAL", "price": eth + 1, "ts": ts},
            {"type": "quote", "instrument": BTC_CALL, "bid": 0.05, "ask": 0.052, "mark": 0.051,
             "iv": 0.55 + 0.0001 * i, "underlying_price": btc + 600, "index_price": btc, "ts": ts},
            {"type": "quote", "instrument": ETH_PUT, "bid": 0.03, "ask": 0.032, "mark": 0.031,
             "iv": 0.65 - 0.0001 * i, "underlying_price": eth + 20, "index_price": eth, "ts": ts},
        ]  # fmt: skip
        if i in (30, 60):
            lines.append({"type": "fill", "book": "main", "instrument": BTC_CALL,
                          "quantity": 2, "price": 0.051, "ts": ts, "id": f"b{i}"})  # fmt: skip
        if i in (40, 90) and (foreign_fill or i == 40):
            lines.append({"type": "fill", "book": "main", "instrument": ETH_PUT,
                          "quantity": -3, "price": 0.031, "ts": ts, "id": f"e{i}"})  # fmt: skip
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))


def _config(
    folder: Path, url: str, prefix: str, cluster: str = "", *, journal: bool = False
) -> Path:
    folder.mkdir(exist_ok=True)
    if not (folder / "replay.jsonl").exists():
        _replay(folder / "replay.jsonl")
    (folder / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,{BTC_CALL},5,0.05\n"
        "main,BTC-PERPETUAL,-100000,96000\n"
        f"other,{ETH_PUT},10,0.03\n"
        "other,ETH-PERPETUAL,20000,3200\n"
    )
    path = folder / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{url}"
cluster = true
prefix = "{prefix}"
min_interval_ms = 0
backoff_initial_s = 0.05
backoff_max_s = 0.5

{cluster}

[portfolio]
positions = "positions.csv"

[engine]
full_reprice_interval_s = 5

[view]
enabled = "off"

[[feeds]]
kind = "replay"
path = "replay.jsonl"
speed = 0
"""
    )
    return path


async def _run_to_end(path: Path) -> Any:
    """Run the daemon on ``path`` to its replay's end (``--exit-at-end``); the daemon."""
    daemon = build(load_config(path), path)
    daemon.intake.exit_at_end = True
    async with asyncio.timeout(120):
        assert await run(daemon) == 0
    return daemon


async def _view(
    r: RedisCluster, prefix: str, family: str = "exposure"
) -> dict[str, dict[str, Any]]:
    """The consumer's logical view of one family: each daemon's snapshot hash, by its name in
    the directory ``{prefix}:shards``."""
    directory = await r.hgetall(f"{prefix}:shards")
    suffix = "snapshot" if family == "exposure" else f"{family}:snapshot"
    view: dict[str, dict[str, Any]] = {}
    for name, base in directory.items():
        fields = await r.hgetall(f"{orjson.loads(base)}:{suffix}")
        view[_text(name)] = {_text(k): orjson.loads(v) for k, v in fields.items()}
    return view


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _figures(payload: dict[str, Any]) -> dict[str, Any]:
    """A payload without its times (the figures, counts and breakdowns)."""
    return {k: v for k, v in payload.items() if k not in ("ts", "ts_ns")}


@pytest.fixture
async def cluster_client(redis_cluster: RedisClusterServers) -> Any:
    r = RedisCluster.from_url(redis_cluster.url)
    yield r
    await r.aclose()


async def test_a_daemon_on_a_redis_cluster_publishes_its_contract_as_one_view(
    tmp_path: Path, redis_cluster: RedisClusterServers, cluster_client: RedisCluster, unique: str
) -> None:
    path = _config(tmp_path, redis_cluster.url, unique)
    pubsub = cluster_client.pubsub()
    await pubsub.ssubscribe(f"{{{unique}}}:exposure")  # sharded pub/sub: Redis 7
    daemon = await _run_to_end(path)
    assert daemon.sink.base == f"{{{unique}}}"
    view = await _view(cluster_client, unique)
    assert list(view) == ["all"]
    snapshot = view["all"]
    assert set(snapshot) == {"main", "main:BTC", "main:ETH", "other", "other:ETH"}
    assert snapshot["main:BTC"]["n_positions"] == 2
    assert snapshot["other:ETH"]["n_positions"] == 2
    # The fills went in: 5 + 2 + 2 calls, -3 puts in main.
    assert snapshot["main"]["n_positions"] == 3
    # Every family's stream and channel live in the base's slot; the stream holds what the
    # channel sent.
    entries = await cluster_client.xrange(f"{{{unique}}}:exposure:stream") or []
    stream = [fields[b"data"] for _, fields in entries if fields is not None]
    assert {orjson.loads(data)["book"] for data in stream} == {"main", "other"}
    sent: list[bytes] = []
    async with asyncio.timeout(10):
        while len(sent) < len(stream):
            message = await pubsub.get_sharded_message(ignore_subscribe_messages=True, timeout=1)
            if message is not None:
                sent.append(message["data"])
    assert sent == stream  # SPUBLISH: each payload, in order
    await pubsub.aclose()
    heartbeat = orjson.loads(await cluster_client.get(f"{{{unique}}}:heartbeat") or b"{}")
    assert heartbeat["errors"] == 0
    # The restart check judged only the node that holds the keys (the directory's node, on
    # another slot, answers MOVED to the marker's GET): one rewrite, the first.
    assert (heartbeat["resyncs"], heartbeat["server_changes"]) == (1, 0)
    assert await cluster_client.get(f"{{{unique}}}:writer") is not None


async def test_two_shards_publish_what_one_daemon_publishes_per_underlying(
    tmp_path: Path, redis_cluster: RedisClusterServers, cluster_client: RedisCluster, unique: str
) -> None:
    assert (shard_of("BTC", 2), shard_of("ETH", 2)) == (0, 1)  # one underlying each
    one = _config(tmp_path / "one", redis_cluster.url, f"{unique}-one")
    shards = [
        _config(
            tmp_path / f"s{k}",
            redis_cluster.url,
            f"{unique}-two",
            f"[cluster]\nshard_id = {k}\nshard_count = 2",
        )
        for k in (0, 1)
    ]
    for folder in ("s0", "s1"):  # the same file
        (tmp_path / folder / "replay.jsonl").write_bytes(
            (tmp_path / "one/replay.jsonl").read_bytes()
        )
    await _run_to_end(one)
    s0, s1 = await asyncio.gather(*(_run_to_end(p) for p in shards))
    whole = (await _view(cluster_client, f"{unique}-one"))["all"]
    parts = await _view(cluster_client, f"{unique}-two")
    assert set(parts) == {"0", "1"}
    assert set(parts["0"]) == {"main", "main:BTC"}  # BTC's shard: main holds only BTC there
    assert set(parts["1"]) == {"main", "main:ETH", "other", "other:ETH"}
    per_underlying = {k: v for part in parts.values() for k, v in part.items() if ":" in k}
    assert set(per_underlying) == {k for k in whole if ":" in k}
    for key, payload in per_underlying.items():
        assert _figures(payload) == _figures(whole[key]), key
    # Each shard saw the other's fills and positions and counted them.
    assert s0.inbox.gate.foreign_fills == 1  # e40
    assert s1.inbox.gate.foreign_fills == 2  # b30, b60
    assert s0.inbox.gate.foreign_positions == 2
    assert s1.inbox.gate.foreign_positions == 2
    assert s0.inbox.gate.foreign_events > 0


async def test_a_fill_of_another_shard_is_counted_not_applied_nor_journaled(
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
    cluster_client: RedisCluster,
    mosquitto_server: MosquittoServer,
    unique: str,
) -> None:
    """A BTC shard on MQTT: it subscribes to BTC's topics of the underlying layout and to the
    old layout; an ETH fill on the old layout reaches it and is counted, not applied and not
    journaled; ETH's topics of the new layout never reach it."""
    call, put = "BTC-27DEC30-60000-C", "ETH-27DEC30-3000-P"
    (tmp_path / "positions.csv").write_text(
        f"book,instrument,quantity\nmain,{call},5\nother,{put},10\nother,ETH-PERPETUAL,100\n"
    )
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_cluster.url}"
cluster = true
prefix = "{unique}"
min_interval_ms = 0
[cluster]
underlyings = ["BTC"]
[portfolio]
positions = "positions.csv"
journal = "fills.jsonl"
[risk]
enabled = false
[view]
enabled = "off"
[[feeds]]
kind = "mqtt"
port = {mosquitto_server.port}
topic_prefix = "{unique}/"
client_id = "{unique}-riskd"
backoff_initial_s = 0.05
"""
    )

    def fill(topic: str, instrument: str, fid: str) -> tuple[str, dict[str, Any]]:
        body = {"book": "main", "instrument": instrument, "quantity": 1, "id": fid, "ts": TS_MS}
        return f"{unique}/{topic}", body

    async with running_daemon(path) as daemon:
        (feed,) = daemon.feeds
        await wait_until(lambda: feed.stats.connected)
        await _publish(
            mosquitto_server.port,
            [
                (f"{unique}/md/quote/ETH/{put}", {"instrument": put, "mark": 0.03, "ts": TS_MS}),
                fill("fills/ETH/main", put, "e1"),  # the ETH shard's topic: not ours
                fill("fills/main", put, "e2"),  # the old layout: ours to count
                (f"{unique}/md/quote/BTC/{call}", {"instrument": call, "mark": 0.2, "ts": TS_MS}),
                fill("fills/BTC/main", call, "b1"),
                fill("fills/main", call, "b2"),
            ],
        )
        gate = daemon.inbox.gate
        assert gate is not None
        await wait_until(lambda: feed.stats.received == 4 and daemon.inbox.inbox.received >= 1)
        await wait_until(lambda: daemon.portfolio.lot_count >= 1 and gate.foreign_fills == 1)
        assert gate.foreign_positions == 2
        assert gate.foreign_events == 0  # ETH's quote went to ETH's topic only
        assert feed.stats.dropped.total() == 0

        async def btc() -> dict[str, Any]:
            raw = await cluster_client.hget(f"{{{unique}:BTC}}:snapshot", "main:BTC")
            return orjson.loads(raw) if raw is not None else {}

        async with asyncio.timeout(30):
            while True:
                if (await btc()).get("n_positions") == 1:
                    break
                await asyncio.sleep(0.05)
        view = await _view(cluster_client, unique)
        assert set(view) == {"BTC"}
        assert set(view["BTC"]) == {"main", "main:BTC"}  # main:ETH: never applied
        async with asyncio.timeout(10):
            while True:
                raw = await cluster_client.get(f"{{{unique}:BTC}}:heartbeat")
                beat = orjson.loads(raw) if raw is not None else {}
                if beat.get("foreign_fills") == 1:
                    break
                await asyncio.sleep(0.05)
        assert beat["foreign_positions"] == 2
    journaled = [
        orjson.loads(line) for line in (tmp_path / "fills.jsonl").read_bytes().splitlines()
    ]
    assert [j.get("fill_id") for j in journaled[1:]] == ["b1", "b2"]


async def _publish(port: int, messages: list[tuple[str, dict[str, Any]]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=None) as client:
        for topic, payload in messages:
            await client.publish(topic, orjson.dumps(payload), qos=1)


def _holder(cluster: RedisClusterServers, key: str) -> ClusterNode:
    """The node of ``cluster`` that serves ``key``'s slot now (a master)."""
    slot = int(cluster.nodes[0].cli("cluster", "keyslot", key).strip())
    for line in cluster.nodes[0].cli("cluster", "nodes").splitlines():
        fields = line.split()
        if "master" not in fields[2] or "fail" in fields[2]:
            continue
        for span in fields[8:]:
            low, _, high = span.partition("-")
            if low.isdigit() and int(low) <= slot <= int(high or low):
                port = int(fields[1].split(":")[1].split("@")[0])
                return next(n for n in cluster.nodes if n.port == port)
    raise AssertionError(f"no master serves slot {slot}")


async def _snapshot_back(r: RedisCluster, key: str, timeout_s: float = 30.0) -> dict[bytes, bytes]:
    """The hash ``key`` once it holds fields again (the sink rewrote it)."""
    async with asyncio.timeout(timeout_s):
        while True:
            try:
                fields = await r.hgetall(key)
            except (RedisError, RedisClusterException, OSError):
                fields = {}  # the cluster is still settling
            if fields:
                return {_b(k): _b(v) for k, v in fields.items()}
            await asyncio.sleep(0.05)


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


async def test_a_node_restarted_empty_gets_the_shards_keys_again(tmp_path: Path) -> None:
    """The restart check is per node: the node that holds the shard's slot is killed and
    comes back empty (its run_id new); the sink rewrites every key there, though nothing new
    is published (the replay is over)."""
    with RedisClusterServers() as cluster:
        path = _config(tmp_path, cluster.url, "rs", "[cluster]\nshard_id = 0\nshard_count = 2")
        r = RedisCluster.from_url(cluster.url)
        try:
            async with running_daemon(path, ManualClock()) as daemon:
                await wait_until(lambda: daemon.intake.feeds[0].stats.finished, 60)
                before = await _snapshot_back(r, "{rs:0}:snapshot")
                assert set(before) == {b"main", b"main:BTC"}
                node = _holder(cluster, "{rs:0}:snapshot")
                node.kill()
                node.start()  # its nodes.conf: the same slots, no data
                cluster.wait_ok()
                after = await _snapshot_back(r, "{rs:0}:snapshot")
                assert after == before
                assert daemon.sink.stats.server_changes + daemon.sink.stats.errors >= 1
                assert await r.get("{rs:0}:writer") is not None
                assert orjson.loads(await r.hget("rs:shards", "0") or b"null") == "{rs:0}"
        finally:
            await r.aclose()


async def test_a_failover_to_a_replica_is_survived(tmp_path: Path) -> None:
    """Three masters with a replica each; the replica of the node that holds the shard's slot
    takes over (CLUSTER FAILOVER); the sink writes on through the new master (its heartbeat
    goes on) and, its run_id being another, rewrites every key there."""
    with RedisClusterServers(replicas=1) as cluster:
        path = _config(tmp_path, cluster.url, "fo", "[cluster]\nshard_id = 0\nshard_count = 2")
        r = RedisCluster.from_url(cluster.url)
        try:
            async with running_daemon(path, ManualClock()) as daemon:
                await wait_until(lambda: daemon.intake.feeds[0].stats.finished, 60)
                before = await _snapshot_back(r, "{fo:0}:snapshot")
                master = _holder(cluster, "{fo:0}:snapshot")
                replica = next(
                    n for n in cluster.nodes if f"slave {_node_id(master)}" in _myself(n)
                )
                resyncs = daemon.sink.stats.resyncs
                replica.cli("cluster", "failover")
                await wait_until(lambda: _holder(cluster, "{fo:0}:snapshot") is replica, 30)
                cluster.wait_ok()
                await wait_until(lambda: daemon.sink.stats.resyncs > resyncs, 30)
                pipelines = daemon.sink.stats.pipelines
                await wait_until(lambda: daemon.sink.stats.pipelines > pipelines + 2, 30)
                assert daemon.sink.stats.connected
                assert await _snapshot_back(r, "{fo:0}:snapshot") == before
        finally:
            await r.aclose()


def _myself(node: ClusterNode) -> str:
    """The node's own line of CLUSTER NODES."""
    return next(line for line in node.cli("cluster", "nodes").splitlines() if "myself" in line)


def _node_id(node: ClusterNode) -> str:
    return _myself(node).split()[0]


async def test_only_the_node_that_holds_the_marker_judges_a_restart(
    redis_cluster: RedisClusterServers, cluster_client: RedisCluster, unique: str
) -> None:
    """The restart check per node: a new connection to the node of the base's slot reads the
    marker and that node's run_id; any other node answers MOVED and is not judged."""
    writer = f"{{{unique}:0}}:writer"
    await cluster_client.set(writer, b"token")
    found = []
    for node in redis_cluster.nodes:
        conn = Connection(host="127.0.0.1", port=node.port)
        await conn.connect()  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
        try:
            found.append((node.port, await probe(conn, writer)))
        finally:
            await conn.disconnect()
    owners = [(port, info) for port, info in found if info.owner]
    assert [port for port, _ in owners] == [_holder(redis_cluster, writer).port]
    assert owners[0][1].token == b"token"
    assert owners[0][1].major >= 7
    assert len({info.run_id for _, info in found}) == len(found)  # one per node
    assert all(info.token is None for _, info in found if not info.owner)


async def test_the_active_alerts_hash_is_rebuilt_on_a_cluster(
    redis_cluster: RedisClusterServers, unique: str
) -> None:
    """A write that rewrites every key (the first, and each after Redis lost them) rebuilds
    the active-alerts hash from the sink's view in one atomic step; on a Redis Cluster too,
    whose pipelines refuse RENAME (the step the sink took before)."""
    config = RedisConfig(url=redis_cluster.url, prefix=unique, cluster=True)
    sink = RedisSink(config, ManualClock(TS_MS * 1_000_000), shard="0")
    r = RedisCluster.from_url(redis_cluster.url)
    try:
        sink.alert(alert("a:main", "raised"))
        sink.alert(alert("b:main", "raised"))
        sink.alert(alert("b:main", "cleared"))
        await sink.flush()
        active = await r.hgetall(f"{{{unique}:0}}:alerts:active")
        assert [_text(k) for k in active] == ["a:main"]
        assert orjson.loads(active[b"a:main"])["state"] == "raised"
    finally:
        await sink.aclose()
        await r.aclose()
