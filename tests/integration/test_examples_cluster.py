"""The examples (alert bot, hedger) against two shards on a real Redis Cluster.

Two daemons (in process) are the BTC and the ETH shard of one prefix (``[cluster]
underlyings``, ``[redis] cluster = true``), fed over MQTT on the underlying topic layout. The
examples run as subprocesses with ``--cluster``: they read the directory ``{prefix}:shards``
and follow each shard's stream on the node that holds its slot, and must do what they do
against one daemon: every alert transition of either shard forwarded once, across a restart
of the bot; every hedge payload of either shard ordered once, across a SIGKILL of the hedger.
The alert bot also runs with ``--shards`` against the two shards on one Redis server.
"""

from __future__ import annotations

import contextlib
import functools
import signal
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster

from engine.runtime.app import Daemon
from examples.hedger import HedgerState
from tests.integration.test_examples import (
    HEDGES,
    NO_RISK,
    TS,
    _cleanup,
    _eligible,
    _Example,
    _key,
    _publish,
    _spawn,
    _until,
)
from tests.integration.test_redis_cluster import _holder, _myself, _node_id
from tests.servers import (
    MosquittoServer,
    RedisClusterServers,
    RedisServer,
    running_daemon,
    wait_until,
)

UNDERLYINGS = ("BTC", "ETH")
PERPETUAL = {"BTC": "BTC-PERPETUAL", "ETH": "ETH-PERPETUAL"}
INDEX = {"BTC": ("btc_usd", 60000.0), "ETH": ("eth_usd", 3000.0)}


def _shard_config(
    folder: Path, url: str, prefix: str, mqtt_port: int, underlying: str, risk: str, cluster: bool
) -> Path:
    folder.mkdir()
    (folder / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        "main,BTC-PERPETUAL,-100000,60000\n"
        "main,ETH-PERPETUAL,-100000,3000\n"
    )
    rules = "".join(
        f"""
[[alerts]]
name = "{u.lower()}_short"
metric = "delta_usd"
scope = "underlying"
book = "main"
underlying = "{u}"
below = -100500.0
"""
        for u in UNDERLYINGS
    )
    path = folder / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{url}"
cluster = {str(cluster).lower()}
prefix = "{prefix}"
min_interval_ms = 20
backoff_initial_s = 0.05
backoff_max_s = 0.3

[cluster]
underlyings = ["{underlying}"]

[portfolio]
positions = "positions.csv"

[engine]
cycle_interval_ms = 10
full_reprice_interval_s = 0.5
feed_stale_after_s = 600

[view]
enabled = "off"

{risk}

[[feeds]]
kind = "mqtt"
name = "md"
port = {mqtt_port}
topic_prefix = "{prefix}/"
client_id = "{prefix}-{underlying}"
backoff_initial_s = 0.05
backoff_max_s = 0.5
{rules}
"""
    )
    return path


@dataclass
class _Shards:
    """The two shards' books, moved by fills over MQTT on the underlying layout."""

    r: Any  # RedisCluster, or a client of one server
    port: int
    prefix: str
    fills: int = 0

    def __post_init__(self) -> None:
        self.delta_usd = dict.fromkeys(UNDERLYINGS, -100000.0)

    def base(self, underlying: str) -> str:
        return f"{{{self.prefix}:{underlying}}}"

    async def market(self) -> None:
        messages: list[tuple[str, dict[str, Any]]] = []
        for u in UNDERLYINGS:
            index, price = INDEX[u]
            for instrument in (index, PERPETUAL[u]):
                body = {"instrument": instrument, "price": price, "ts": TS}
                messages.append((f"{self.prefix}/md/tick/{u}/{instrument}", body))
        await _publish(self.port, messages)
        for u in UNDERLYINGS:
            await self.settled(u)

    async def fill(self, underlying: str, quantity_usd: float) -> None:
        """A fill in ``underlying``'s perpetual, once its shard's snapshot shows it."""
        self.fills += 1
        self.delta_usd[underlying] += quantity_usd
        fill = {
            "book": "main",
            "instrument": PERPETUAL[underlying],
            "quantity": quantity_usd,
            "price": INDEX[underlying][1],
            "id": f"f{self.fills}",
            "ts": TS,
        }
        await _publish(self.port, [(f"{self.prefix}/fills/{underlying}/main", fill)])
        await self.settled(underlying)

    async def settled(self, underlying: str) -> None:
        async def check() -> bool:
            raw = await self.r.hget(f"{self.base(underlying)}:snapshot", f"main:{underlying}")
            payload = orjson.loads(raw) if raw is not None else {}
            return bool(payload.get("delta_usd") == self.delta_usd[underlying])

        await _until(check, f"main:{underlying} at {self.delta_usd[underlying]}")

    async def stream(self, underlying: str, family: str) -> list[tuple[str, dict[str, Any]]]:
        entries: Any = await self.r.xrange(f"{self.base(underlying)}:{family}:stream")
        return [(i.decode(), orjson.loads(f[b"data"])) for i, f in entries]


@contextlib.asynccontextmanager
async def _two_shards(
    tmp_path: Path, shards: _Shards, url: str, risk: str, *, cluster: bool = True
) -> AsyncIterator[None]:
    """The BTC and the ETH shard running, their markets set; stopped on leaving."""
    async with contextlib.AsyncExitStack() as stack:
        for u in UNDERLYINGS:
            args = (shards.prefix, shards.port, u, risk, cluster)
            path = _shard_config(tmp_path / u, url, *args)
            daemon = await stack.enter_async_context(running_daemon(path))
            await wait_until(functools.partial(_connected, daemon))
        await shards.market()
        yield


def _connected(daemon: Daemon) -> bool:
    return daemon.feeds[0].stats.connected


@pytest.fixture
async def cluster_client(redis_cluster: RedisClusterServers) -> AsyncIterator[RedisCluster]:
    r = RedisCluster.from_url(redis_cluster.url)
    yield r
    await r.aclose()


@pytest.mark.parametrize("on", ["cluster", "server"])
async def test_alert_bot_forwards_every_shards_alerts_once_across_a_restart(
    tmp_path: Path,
    on: str,
    redis_cluster: RedisClusterServers,
    redis_server: RedisServer,
    mosquitto_server: MosquittoServer,
    unique: str,
) -> None:
    """An alert raised on the BTC shard before the bot starts comes from that shard's active
    hash, one raised on the ETH shard from its stream; what both clear while the bot is down
    comes when it is back, from each shard's cursor (its state file): every transition of
    each shard once, in its stream's order."""
    state = tmp_path / "bot.state"
    cluster = on == "cluster"  # else the shards on one server: --shards
    url = redis_cluster.url if cluster else redis_server.url
    r = RedisCluster.from_url(url) if cluster else aioredis.Redis.from_url(url)
    argv = ["--redis-url", url, "--prefix", unique, "--cluster" if cluster else "--shards"]
    argv += ["--state", str(state), "--reconnect-initial-s", "0.05"]
    running: list[_Example] = []
    port = mosquitto_server.port
    shards = _Shards(r, port, unique)
    async with contextlib.aclosing(r), _two_shards(tmp_path, shards, url, NO_RISK, cluster=cluster):
        async with _cleanup(running):
            await shards.fill("BTC", -1000)  # btc_short raised, before the bot runs
            bot = await _spawn("alert_bot", tmp_path / "bot1.log", *argv)
            running.append(bot)
            await bot.wait_lines(1)
            await shards.fill("ETH", -1000)  # eth_short raised
            await bot.wait_lines(2)
            assert await bot.stop() == 0
            assert bot.logged("shard found") == 2

            await shards.fill("BTC", 1000)  # both cleared while the bot is down
            await shards.fill("ETH", 1000)
            for u in UNDERLYINGS:
                await _until(functools.partial(_has, shards, u, 2), f"{u}'s two transitions")
            again = await _spawn("alert_bot", tmp_path / "bot2.log", *argv)
            running.append(again)
            await again.wait_lines(2)
            assert await again.stop() == 0
            assert again.logged("resynced from the active hash") == 0  # resumed at cursors
        got = bot.lines + again.lines
        for u in UNDERLYINGS:
            want = [_key(p) for _, p in await shards.stream(u, "alerts")]
            assert [_key(p) for p in got if p["underlying"] == u] == want
            assert [k[1] for k in want] == ["raised", "cleared"]
            assert (tmp_path / f"bot.state.{u}").exists()
        assert [p["alert"] for p in bot.lines] == ["btc_short", "eth_short"]


async def _has(shards: _Shards, underlying: str, n: int) -> bool:
    return len(await shards.stream(underlying, "alerts")) >= n


async def test_hedger_orders_every_shards_hedges_once_across_a_kill(
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
    cluster_client: RedisCluster,
    mosquitto_server: MosquittoServer,
    unique: str,
) -> None:
    """A hedger on both shards' hedge streams, killed with SIGKILL mid-stream and started
    again: at the end every entry of either stream that asks for an order has been printed
    once (but the one entry per shard a kill may cut, named by that shard's state file), and
    nothing is pending in either group."""
    risk = HEDGES.replace(
        'hedge_future = { BTC = "BTC-PERPETUAL" }',
        'hedge_future = { BTC = "BTC-PERPETUAL", ETH = "ETH-PERPETUAL" }',
    )
    group, consumer, state = "hedgers", "h1", tmp_path / "hedger.state"
    argv = ["--redis-url", redis_cluster.url, "--prefix", unique, "--cluster", "--group", group]
    argv += ["--consumer", consumer, "--state", str(state), "--min-contracts", "5"]
    argv += ["--start", "all", "--reconnect-initial-s", "0.05"]
    runs: list[_Example] = []
    port = mosquitto_server.port
    async with _cleanup(runs):
        shards = _Shards(cluster_client, port, unique)
        async with _two_shards(tmp_path, shards, redis_cluster.url, risk):
            first = await _spawn("hedger", tmp_path / "h1.log", *argv)
            runs.append(first)
            await wait_until(lambda: {o["underlying"] for o in first.lines} == set(UNDERLYINGS))
            await first.stop(signal.SIGKILL)
            killed_at = {
                u: HedgerState.load(
                    Path(f"{state}.{u}"), f"{shards.base(u)}:hedge:stream", group, consumer
                ).last_id
                for u in UNDERLYINGS
            }
            second = await _spawn("hedger", tmp_path / "h2.log", *argv)
            runs.append(second)
            await wait_until(lambda: {o["underlying"] for o in second.lines} == set(UNDERLYINGS))

        # the shards stopped: no more hedges; the hedger drains both streams
        for u in UNDERLYINGS:
            entries = await shards.stream(u, "hedge")
            await _until(
                functools.partial(_drained, shards, u, group, entries[-1][0]),
                f"{u}'s group to read and acknowledge everything",
            )
        assert await second.stop() == 0
        printed = [(o["underlying"], o["stream_id"]) for o in first.lines + second.lines]
        for u in UNDERLYINGS:
            entries = await shards.stream(u, "hedge")
            mine = [o["stream_id"] for o in first.lines + second.lines if o["underlying"] == u]
            # stream ids are per stream: two shards' streams may hold the same id
            lost = {killed_at[u]} - {o["stream_id"] for o in first.lines if o["underlying"] == u}
            assert mine == [i for i in _eligible(entries, 5) if i not in lost]
            assert len(mine) >= 2
        assert Counter(printed).most_common(1)[0][1] == 1, "an order printed twice"


async def _drained(shards: _Shards, underlying: str, group: str, last: str) -> bool:
    stream = f"{shards.base(underlying)}:hedge:stream"
    groups: Any = await shards.r.xinfo_groups(stream)
    info = {g["name"]: g for g in groups}.get(group.encode())
    return bool(
        info is not None and info["pending"] == 0 and info["last-delivered-id"].decode() == last
    )


async def test_alert_bot_follows_a_shard_across_a_failover(
    tmp_path: Path, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """Three masters with a replica each; the bot follows both shards; the replica of the node
    that holds the BTC shard's slot takes over (CLUSTER FAILOVER) while the bot blocks on that
    stream. The bot finds the new holder (MOVED, then the cluster's slot map) and forwards
    what both shards raise and clear afterwards: every transition of each shard once, in its
    stream's order."""
    state = tmp_path / "bot.state"
    with RedisClusterServers(replicas=1) as cluster:
        r = RedisCluster.from_url(cluster.url)
        argv = ["--redis-url", cluster.url, "--prefix", unique, "--cluster"]
        argv += ["--state", str(state), "--reconnect-initial-s", "0.05"]
        running: list[_Example] = []
        shards = _Shards(r, mosquitto_server.port, unique)
        async with contextlib.aclosing(r), _two_shards(tmp_path, shards, cluster.url, NO_RISK):
            async with _cleanup(running):
                bot = await _spawn("alert_bot", tmp_path / "bot.log", *argv)
                running.append(bot)
                await shards.fill("BTC", -1000)  # btc_short raised
                await bot.wait_lines(1)
                await _fail_over(cluster, f"{shards.base('BTC')}:alerts:stream")
                await shards.fill("BTC", 1000)  # cleared, on the new master
                await shards.fill("ETH", -1000)  # eth_short raised
                want = {u: await _transitions(shards, u) for u in UNDERLYINGS}
                assert [k[1] for k in want["BTC"]] == ["raised", "cleared"]
                await bot.wait_lines(3)
                assert await bot.stop() == 0
            for u in UNDERLYINGS:
                assert [_key(p) for p in bot.lines if p["underlying"] == u] == want[u], bot.lines


async def _transitions(shards: _Shards, underlying: str) -> list[tuple[str, str, int]]:
    """The shard's alert transitions in its stream's order, each once: the sink delivers at
    least once (a write cut by the failover is sent again whole)."""
    keys = [_key(p) for _, p in await shards.stream(underlying, "alerts")]
    return list(dict.fromkeys(keys))


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq)


async def test_hedger_follows_a_shard_across_a_failover(
    tmp_path: Path, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """Three masters with a replica each; the hedger reads both shards' hedge streams in its
    group; the replica of the node that holds the BTC shard's slot takes over (CLUSTER
    FAILOVER) while the hedger blocks on that stream. It finds the new holder, its group
    there as the master left it, and orders on what the shard writes afterwards: at the end
    every entry of either stream that asks for an order has been printed once, and nothing
    is pending."""
    risk = HEDGES.replace(
        'hedge_future = { BTC = "BTC-PERPETUAL" }',
        'hedge_future = { BTC = "BTC-PERPETUAL", ETH = "ETH-PERPETUAL" }',
    )
    group = "hedgers"
    with RedisClusterServers(replicas=1) as cluster:
        r = RedisCluster.from_url(cluster.url)
        argv = ["--redis-url", cluster.url, "--prefix", unique, "--cluster", "--group", group]
        argv += ["--consumer", "h1", "--state", str(tmp_path / "hedger.state")]
        argv += ["--min-contracts", "5", "--start", "all", "--reconnect-initial-s", "0.05"]
        runs: list[_Example] = []
        shards = _Shards(r, mosquitto_server.port, unique)
        async with contextlib.aclosing(r), _cleanup(runs):
            async with _two_shards(tmp_path, shards, cluster.url, risk):
                hedger = await _spawn("hedger", tmp_path / "hedger.log", *argv)
                runs.append(hedger)
                await wait_until(lambda: {o["underlying"] for o in hedger.lines} == {*UNDERLYINGS})
                await _fail_over(cluster, f"{shards.base('BTC')}:hedge:stream")
                switched = _stream_id((await shards.stream("BTC", "hedge"))[-1][0])
                await shards.fill("BTC", -20000)  # a new hedge, on the new master
                await wait_until(
                    lambda: any(
                        o["underlying"] == "BTC" and _stream_id(o["stream_id"]) > switched
                        for o in hedger.lines
                    ),
                    30,
                )
            for u in UNDERLYINGS:  # the shards stopped: the hedger drains both streams
                entries = await shards.stream(u, "hedge")
                await _until(
                    functools.partial(_drained, shards, u, group, entries[-1][0]),
                    f"{u}'s group to read and acknowledge everything",
                )
            assert await hedger.stop() == 0
            for u in UNDERLYINGS:
                mine = [o["stream_id"] for o in hedger.lines if o["underlying"] == u]
                assert mine == _eligible(await shards.stream(u, "hedge"), 5), u


async def _fail_over(cluster: RedisClusterServers, key: str) -> None:
    """The replica of the master that holds ``key``'s slot takes over (CLUSTER FAILOVER); back
    when the cluster says ok."""
    master = _holder(cluster, key)
    replica = next(n for n in cluster.nodes if f"slave {_node_id(master)}" in _myself(n))
    replica.cli("cluster", "failover")
    await wait_until(lambda: _holder(cluster, key) is replica, 30)
    cluster.wait_ok()
