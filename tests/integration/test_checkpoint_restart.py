"""Restart from a checkpoint: a real riskd, fed fills over real MQTT, checkpoints its book; it is
killed with SIGKILL mid-stream, restarts from the checkpoint and the journal's tail, and holds
exactly the book the whole stream makes (nothing lost, nothing twice); a restart from the full
journal (the checkpoint moved away) holds the same. Real riskd processes, Redis and Mosquitto."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from engine.runtime.checkpoint import MAGIC
from tests.integration.test_restart import TS, _connected, _publish, _start
from tests.servers import MosquittoServer, RedisServer

N_FILLS = 300
FIRST, SECOND = 150, 20  # before the checkpoint; after it, before the kill


def _fill(prefix: str, k: int) -> tuple[str, dict[str, Any]]:
    book = "main" if k % 2 == 0 else "alt"
    body = {"book": book, "instrument": "BTC-PERPETUAL", "quantity": ((k % 7 - 3) * 100 + 50)}
    return f"{prefix}/fills/{book}", {**body, "price": 61000, "id": f"f{k}", "ts": TS}


def _expected(n: int) -> dict[str, float]:
    out = {"main": -100_000.0, "alt": 0.0}
    for k in range(n):
        out["main" if k % 2 == 0 else "alt"] += (k % 7 - 3) * 100 + 50
    return out


def _checkpoint_offset(path: Path) -> int:
    """The journal offset in the checkpoint's header (0: none yet)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return 0
    assert data.startswith(MAGIC)
    (n,) = struct.unpack_from("<I", data, len(MAGIC))
    header = json.loads(data[len(MAGIC) + 4 : len(MAGIC) + 4 + n])
    return int(header["journal_offset"])


def _journaled(path: Path) -> int:
    """Fills in the journal (its lines but the header)."""
    return max(path.read_bytes().count(b"\n") - 1, 0)


def _logged(path: Path, message: str) -> list[dict[str, Any]]:
    """The JSON log lines of riskd.out with ``message``."""
    out = []
    for line in path.read_text().splitlines():
        if line.startswith("{"):
            entry = orjson.loads(line)
            if entry.get("msg") == message:
                out.append(entry)
    return out


async def _until(check: Any, what: str) -> None:
    try:
        async with asyncio.timeout(60):
            while True:
                if await asyncio.to_thread(check):
                    return
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never: {what}") from None


async def _book(r: aioredis.Redis, prefix: str, expected: dict[str, float]) -> dict[str, Any]:
    """Both books' BTC payloads once their delta is ``expected`` (timestamps dropped)."""
    last: dict[str, Any] = {}
    try:
        async with asyncio.timeout(60):
            while True:
                raw = await r.hgetall(f"{prefix}:snapshot")
                last = {
                    k.decode() if isinstance(k, bytes) else k: orjson.loads(v)
                    for k, v in raw.items()
                }
                got = {b: last.get(f"{b}:BTC", {}).get("delta_usd") for b in expected}
                if got == expected:
                    return {
                        key: {f: v for f, v in p.items() if not f.startswith(("ts", "valuation"))}
                        for key, p in last.items()
                        if key in ("main:BTC", "alt:BTC")
                    }
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"never {expected}; last: {last}") from None


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()


async def test_kill_9_mid_stream_restarts_from_checkpoint_and_tail(
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

[checkpoint]
path = "book.ckpt"
interval_s = 1.0

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
    market = [
        (f"{unique}/md/tick/btc_usd", {"instrument": "btc_usd", "price": 60000.0, "ts": TS}),
        (
            f"{unique}/md/tick/BTC-PERPETUAL",
            {"instrument": "BTC-PERPETUAL", "price": 60000.0, "ts": TS},
        ),
    ]
    fills = [_fill(unique, k) for k in range(N_FILLS)]
    journal, checkpoint, log = (
        tmp_path / "fills.jsonl",
        tmp_path / "book.ckpt",
        tmp_path / "riskd.out",
    )
    r = aioredis.Redis.from_url(redis_server.url)
    proc = _start(path)
    try:
        await _connected(r, unique)
        await _publish(port, [*market, *fills[:FIRST]])
        await _until(lambda: _journaled(journal) == FIRST, "the first fills journaled")
        # a checkpoint of all of them (the next one comes within a second)
        size = journal.stat().st_size
        await _until(lambda: _checkpoint_offset(checkpoint) == size, "a checkpoint of them")
        await _publish(port, fills[FIRST : FIRST + SECOND])
        await _until(lambda: _journaled(journal) == FIRST + SECOND, "the next fills journaled")
        # mid-stream: the rest is being published as the daemon dies (the broker keeps it)
        rest = asyncio.ensure_future(_publish(port, fills[FIRST + SECOND :]))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        await rest
        offset = _checkpoint_offset(checkpoint)
        assert offset < journal.stat().st_size  # a tail to replay
        await r.delete(f"{unique}:snapshot")
        proc = _start(path)
        await _connected(r, unique)
        await _publish(port, market)  # market data is not journaled: it is current or nothing
        resumed = await _book(r, unique, _expected(N_FILLS))
        (loaded,) = _logged(log, "checkpoint loaded")
        assert 0 < loaded["tail_entries"] < N_FILLS - FIRST
        assert loaded["journal_offset"] == offset
        _stop(proc)  # a clean stop writes a last checkpoint: move it away for a full replay
        assert _checkpoint_offset(checkpoint) == journal.stat().st_size  # the whole journal
        checkpoint.rename(tmp_path / "moved.ckpt")
        await r.delete(f"{unique}:snapshot")
        proc = _start(path)
        await _connected(r, unique)
        await _publish(port, market)
        replayed = await _book(r, unique, _expected(N_FILLS))
        assert len(_logged(log, "checkpoint loaded")) == 1  # this start read the whole journal
        assert replayed == resumed
        ids = [orjson.loads(line)["fill_id"] for line in journal.read_bytes().splitlines()[1:]]
        assert set(ids) == {f"f{k}" for k in range(N_FILLS)}  # each applied once (by its id)
    finally:
        _stop(proc)
        await r.aclose()
