"""A shard killed with SIGKILL mid-stream and restarted resumes with nothing lost.

Two shards (BTC and ETH) run as real ``riskd run`` processes on a real Redis Cluster, fed
fills over real MQTT (qos 1, persistent sessions) on both topic layouts: the underlying layout
(``fills/{underlying}/{book}``, each shard only its own) and the old one (``fills/{book}``, both
shards, each counting the other's). The BTC shard is killed while the fills stream in and
started again: its journal replays, the broker delivers what was queued for it, and every
fill of BTC is applied exactly once; the ETH shard runs on untouched; the keys in the cluster
show each shard's book as the sum of the fills sent.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
from redis.asyncio.cluster import RedisCluster

from tests.integration.test_restart import RISKD, TS
from tests.servers import MosquittoServer, RedisClusterServers

UNDERLYINGS = ("BTC", "ETH")
PERPETUAL = {"BTC": "BTC-PERPETUAL", "ETH": "ETH-PERPETUAL"}
INDEX = {"BTC": ("btc_usd", 60000.0), "ETH": ("eth_usd", 3000.0)}
START_USD = -100000.0
FILLS = 120  # per underlying


def _config(folder: Path, url: str, prefix: str, port: int, underlying: str) -> Path:
    folder.mkdir()
    (folder / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,BTC-PERPETUAL,{START_USD},60000\n"
        f"main,ETH-PERPETUAL,{START_USD},3000\n"
    )
    path = folder / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{url}"
cluster = true
prefix = "{prefix}"
min_interval_ms = 20
backoff_initial_s = 0.05
backoff_max_s = 0.3

[cluster]
underlyings = ["{underlying}"]

[portfolio]
positions = "positions.csv"
journal = "fills.jsonl"

[engine]
full_reprice_interval_s = 0.2

[risk]
enabled = false

[[feeds]]
kind = "mqtt"
name = "md"
port = {port}
topic_prefix = "{prefix}/"
client_id = "{prefix}-{underlying}"
qos = 1
backoff_initial_s = 0.05
backoff_max_s = 0.5
"""
    )
    return path


def _start(path: Path) -> subprocess.Popen[bytes]:
    """``riskd run`` on ``path``, its logs appended to riskd.out beside it."""
    with (path.parent / "riskd.out").open("ab") as log:
        return subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--view", "off"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _fills(prefix: str) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """Per underlying, its fills in order: quantities 10..50 USD, every third on the old
    layout (which reaches both shards)."""
    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for u in UNDERLYINGS:
        out[u] = []
        for i in range(FILLS):
            body = {"book": "main", "instrument": PERPETUAL[u], "quantity": 10.0 * (1 + i % 5)}
            body |= {"price": INDEX[u][1], "id": f"{u}-{i}", "ts": TS}
            topic = f"{prefix}/fills/main" if i % 3 == 0 else f"{prefix}/fills/{u}/main"
            out[u].append((topic, body))
    return out


def _market(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for u in UNDERLYINGS:
        index, price = INDEX[u]
        for instrument in (index, PERPETUAL[u]):
            body = {"instrument": instrument, "price": price, "ts": TS}
            out.append((f"{prefix}/md/tick/{u}/{instrument}", body))
    return out


async def _publish(port: int, messages: list[tuple[str, dict[str, Any]]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=None) as client:
        for topic, payload in messages:
            await client.publish(topic, orjson.dumps(payload), qos=1)


async def _until(check: Callable[[], Any], what: str, timeout_s: float = 60.0) -> Any:
    """Until the awaitable ``check()`` returns something true; that value."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                last = check()
                if inspect.isawaitable(last):
                    last = await last
                if last:
                    break
                await asyncio.sleep(0.05)  # Redis and files: nothing to await
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None
    return last


class _Cluster:
    """What the shards wrote to the cluster."""

    def __init__(self, r: RedisCluster, prefix: str) -> None:
        self.r = r
        self.prefix = prefix

    async def heartbeat(self, u: str) -> dict[str, Any]:
        raw = await self.r.get(f"{{{self.prefix}:{u}}}:heartbeat")
        return dict(orjson.loads(raw)) if raw is not None else {}

    async def exposure(self, u: str, key: str) -> dict[str, Any]:
        raw = await self.r.hget(f"{{{self.prefix}:{u}}}:snapshot", key)
        return dict(orjson.loads(raw)) if raw is not None else {}

    async def connected(self, u: str) -> bool:
        """Whether ``u``'s shard says its MQTT feed is connected (and so subscribed)."""
        return bool((await self.heartbeat(u)).get("feeds", {}).get("md", {}).get("connected"))

    async def at(self, u: str, delta_usd: float) -> dict[str, Any]:
        payload = await self.exposure(u, f"main:{u}")
        return payload if payload.get("delta_usd") == delta_usd else {}


def _journaled(folder: Path) -> list[str]:
    lines = (
        (folder / "fills.jsonl").read_bytes().splitlines()
        if (folder / "fills.jsonl").exists()
        else []
    )
    return [str(j["fill_id"]) for line in lines if (j := orjson.loads(line)).get("fill_id")]


async def test_a_shard_killed_mid_stream_resumes_with_nothing_lost(
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
    mosquitto_server: MosquittoServer,
    unique: str,
) -> None:
    port = mosquitto_server.port
    paths = {u: _config(tmp_path / u, redis_cluster.url, unique, port, u) for u in UNDERLYINGS}
    fills = _fills(unique)
    want = {u: START_USD + sum(f["quantity"] for _, f in fills[u]) for u in UNDERLYINGS}
    r = RedisCluster.from_url(redis_cluster.url)
    view = _Cluster(r, unique)
    procs = {u: _start(paths[u]) for u in UNDERLYINGS}
    try:
        for u in UNDERLYINGS:
            await _until(functools.partial(view.connected, u), f"{u} subscribed")
        await _publish(port, _market(unique))
        interleaved = [m for pair in zip(fills["BTC"], fills["ETH"], strict=True) for m in pair]
        publisher = asyncio.create_task(_publish(port, interleaved))
        # BTC's shard mid-stream: some of its fills applied (journaled), not all
        await _until(lambda: len(_journaled(tmp_path / "BTC")) >= 10, "BTC journaling")
        procs["BTC"].send_signal(signal.SIGKILL)
        assert procs["BTC"].wait(timeout=30) == -signal.SIGKILL
        killed_after = len(set(_journaled(tmp_path / "BTC")))
        await publisher  # the rest queued by the broker for BTC's persistent session
        # what the killed shard left: only the restarted one can write these again
        await r.delete(f"{{{unique}:BTC}}:heartbeat")
        await r.delete(f"{{{unique}:BTC}}:snapshot")
        await _until(lambda: view.at("ETH", want["ETH"]), "ETH at the sum of its fills")

        procs["BTC"] = _start(paths["BTC"])
        await _until(lambda: view.connected("BTC"), "BTC back")
        await _publish(port, _market(unique))  # market data is not journaled
        btc = await _until(lambda: view.at("BTC", want["BTC"]), "BTC at the sum of its fills")
        assert btc["n_positions"] == 1
        eth = await view.exposure("ETH", "main:ETH")
        assert eth["delta_usd"] == want["ETH"]

        # the old layout's fills of the other underlying: counted, never applied
        old_layout = {u: sum(t.endswith("/fills/main") for t, _ in fills[u]) for u in UNDERLYINGS}
        eth_beat = await _until(
            lambda: _beat_with(view, "ETH", "foreign_fills", old_layout["BTC"]), "ETH's count"
        )
        assert eth_beat["duplicate_fills"] == 0
        for u in UNDERLYINGS:
            assert set(await _book_keys(r, unique, u)) == {"main", f"main:{u}"}
            assert (await view.exposure(u, "main"))["delta_usd"] == want[u]
        assert procs["ETH"].poll() is None  # never restarted
        ids = {u: [f["id"] for _, f in fills[u]] for u in UNDERLYINGS}
        for u in UNDERLYINGS:
            journal = _journaled(tmp_path / u)
            assert set(journal) == set(ids[u])  # every fill of its own, none of the other's
        assert len(_journaled(tmp_path / "ETH")) == FILLS  # ETH: each once
        assert 10 <= killed_after < FILLS  # the kill came mid-stream
    finally:
        codes = {u: _stop(p) for u, p in procs.items()}
        await r.aclose()
    assert codes == {"BTC": 0, "ETH": 0}


async def _book_keys(r: RedisCluster, prefix: str, u: str) -> list[str]:
    fields: Any = await r.hkeys(f"{{{prefix}:{u}}}:snapshot")
    return [f.decode() for f in fields]


async def _beat_with(view: _Cluster, u: str, field: str, value: int) -> dict[str, Any]:
    beat = await view.heartbeat(u)
    return beat if beat.get(field) == value else {}
