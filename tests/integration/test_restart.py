"""Restart without loss: kill -9 the daemon between fills, restart it, and it holds the book it
had (positions file + every fill since, each once), from its fill journal and the broker's
persistent session. Real riskd processes, Redis and Mosquitto."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import redis.asyncio as aioredis

from tests.servers import MosquittoServer, RedisServer

RISKD = Path(sys.executable).with_name("riskd")
TS = 1_732_400_000_123


def _start(path: Path) -> subprocess.Popen[bytes]:
    """``riskd run`` on ``path``, its logs appended to riskd.out beside it."""
    with (path.parent / "riskd.out").open("ab") as log:
        return subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--view", "off"],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


async def _publish(port: int, messages: list[tuple[str, dict[str, Any]]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=None) as client:
        for topic, payload in messages:
            await client.publish(topic, orjson.dumps(payload), qos=1)


async def _wait(r: aioredis.Redis, prefix: str, ok: Any) -> dict[str, Any]:
    """main:BTC's exposure payload once ``ok`` holds (the last one seen in the message)."""
    last = None
    try:
        async with asyncio.timeout(60):
            while True:
                raw = await r.hget(f"{prefix}:snapshot", "main:BTC")
                if raw is not None:
                    last = orjson.loads(raw)
                    if ok(last):
                        return dict(last)
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never satisfied; last: {last}") from None


async def _connected(r: aioredis.Redis, prefix: str) -> None:
    """Until the daemon's heartbeat says its MQTT feed is connected (and so subscribed)."""
    async with asyncio.timeout(60):
        while True:
            raw = await r.get(f"{prefix}:heartbeat")
            if raw is not None and orjson.loads(raw)["feeds"]["md"]["connected"]:
                return
            await asyncio.sleep(0.05)


async def test_kill_9_between_fills_loses_nothing(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    port = mosquitto_server.port
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\nmain,BTC-PERPETUAL,-100000,60000\n"
    )
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_server.url}"
prefix = "{unique}"
min_interval_ms = 20

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
topic_prefix = "{unique}/"
client_id = "{unique}-riskd"
qos = 1
backoff_initial_s = 0.05
backoff_max_s = 0.5
"""
    )

    def fill(qty: float, fid: str) -> tuple[str, dict[str, Any]]:
        body = {"book": "main", "instrument": "BTC-PERPETUAL", "quantity": qty, "price": 61000}
        return f"{unique}/fills/main", {**body, "id": fid, "ts": TS}

    market = [
        (f"{unique}/md/tick/btc_usd", {"instrument": "btc_usd", "price": 60000.0, "ts": TS}),
        (
            f"{unique}/md/tick/BTC-PERPETUAL",
            {"instrument": "BTC-PERPETUAL", "price": 60000.0, "ts": TS},
        ),
    ]
    r = aioredis.Redis.from_url(redis_server.url)
    proc = _start(path)
    try:
        await _connected(r, unique)  # up and subscribed: what is published now waits for it
        await _publish(port, [*market, fill(1000, "f1"), fill(2000, "f2")])
        before = await _wait(r, unique, lambda p: p["delta_usd"] == -97000.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        # while it is down: a fill, and f2 again (a source redelivering it)
        await _publish(port, [fill(4000, "f3"), fill(2000, "f2")])
        await r.delete(f"{unique}:snapshot")
        proc = _start(path)
        await _connected(r, unique)
        await _publish(port, market)  # market data is not journaled: it is current or nothing
        after = await _wait(r, unique, lambda p: p["delta_usd"] == -93000.0)
        assert after["n_positions"] == before["n_positions"] == 1
        lines = (tmp_path / "fills.jsonl").read_bytes().splitlines()
        assert [orjson.loads(line).get("fill_id") for line in lines[1:]] == [
            "f1",
            "f2",
            "f3",
            "f2",
        ]  # the redelivered f2 is journaled, and applied once (its id)
        await asyncio.sleep(0.5)
        again = await _wait(r, unique, lambda p: True)
        assert again["delta_usd"] == -93000.0  # still: nothing applied twice
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        await r.aclose()
