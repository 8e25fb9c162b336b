"""The consumers' side (examples/): the alerting bot and the hedger, end to end.

A real daemon (in process, ``engine.runtime.app``) takes fills and ticks over MQTT and writes its
alerts and hedges to a real Redis; the examples run as real subprocesses
(``python -m examples.alert_bot``, ``python -m examples.hedger``) and are stopped with SIGTERM,
or killed with SIGKILL, and started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.server
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc

from engine.runtime.app import Daemon
from examples import alert_bot, hedger
from examples.alert_bot import active_now, transitions
from examples.hedger import HedgerState, hedge_orders, save_state
from tests.servers import MosquittoServer, RedisServer, running_daemon, wait_until

ROOT = Path(__file__).resolve().parents[2]
TS = 1_732_400_000_123  # ms
BOOK_RULE = "book_short"  # main's delta_usd below -100 500 USD (book scope)
DEEP_RULE = "deep_short"  # main:BTC's delta_usd below -101 500 USD (underlying scope)


# ---------------------------------------------------------------------------- the daemon


def _config(
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    mqtt_port: int,
    *,
    risk: str,
    positions: str,
    redis_backoff_s: float = 0.05,
) -> Path:
    (tmp_path / "positions.csv").write_text("book,instrument,quantity,avg_price\n" + positions)
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_url}"
prefix = "{prefix}"
min_interval_ms = 20
backoff_initial_s = {redis_backoff_s}
backoff_max_s = {max(redis_backoff_s, 0.3)}

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
client_id = "{prefix}-riskd"
backoff_initial_s = 0.05
backoff_max_s = 0.5

[[alerts]]
name = "{BOOK_RULE}"
metric = "delta_usd"
scope = "book"
book = "main"
below = -100500.0

[[alerts]]
name = "{DEEP_RULE}"
metric = "delta_usd"
scope = "underlying"
book = "main"
underlying = "BTC"
below = -101500.0
"""
    )
    return path


NO_RISK = "[risk]\nenabled = false"
HEDGES = """
[risk]
hedge_interval_s = 0.1
hedge_future = { BTC = "BTC-PERPETUAL" }
var_interval_s = 3600
stress_interval_s = 3600
margin_interval_s = 3600
skew_interval_s = 3600
strategy_interval_s = 3600
mc_scenarios = 100
"""


@contextlib.asynccontextmanager
async def _daemon(path: Path) -> AsyncIterator[Daemon]:
    """The daemon of ``path`` running in this loop, its MQTT feed connected."""
    async with running_daemon(path) as daemon:
        await wait_until(lambda: daemon.feeds[0].stats.connected)
        yield daemon


async def _publish(port: int, messages: Sequence[tuple[str, dict[str, Any]]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=None) as client:
        for topic, payload in messages:
            await client.publish(topic, orjson.dumps(payload), qos=1)


def _market(prefix: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{prefix}/md/tick/btc_usd", {"instrument": "btc_usd", "price": 60000.0, "ts": TS}),
        (
            f"{prefix}/md/tick/BTC-PERPETUAL",
            {"instrument": "BTC-PERPETUAL", "price": 60000.0, "ts": TS},
        ),
    ]


@dataclass
class _Book:
    """Moves main's BTC-PERPETUAL position by fills over MQTT, one settled step at a time."""

    r: aioredis.Redis
    port: int
    prefix: str
    delta_usd: float = -100000.0
    fills: int = 0

    async def fill(self, quantity_usd: float) -> None:
        """A fill of ``quantity_usd`` (USD notional), once the daemon's snapshot shows it."""
        self.fills += 1
        self.delta_usd += quantity_usd
        body = {"book": "main", "instrument": "BTC-PERPETUAL", "quantity": quantity_usd}
        fill = {**body, "price": 60000.0, "id": f"f{self.fills}", "ts": TS}
        await _publish(self.port, [(f"{self.prefix}/fills/main", fill)])
        await self.settled()

    async def settled(self) -> None:
        """Until main:BTC's exposure payload shows the book as it should be."""

        async def check() -> bool:
            raw = await self.r.hget(f"{self.prefix}:snapshot", "main:BTC")
            return raw is not None and orjson.loads(raw)["delta_usd"] == self.delta_usd

        await _until(check, f"main:BTC at delta_usd {self.delta_usd}")


async def _stream(r: aioredis.Redis, key: str) -> list[tuple[str, dict[str, Any]]]:
    """Every entry of a stream: (id, decoded ``data``)."""
    entries: Any = await r.xrange(key)  # [(id, {field: value})], bytes
    return [(i.decode(), orjson.loads(f[b"data"])) for i, f in entries]


async def _until(predicate: Callable[[], Any], what: str, timeout_s: float = 20.0) -> None:
    """Until the awaitable ``predicate()`` is true."""
    try:
        async with asyncio.timeout(timeout_s):
            while not await predicate():  # noqa: ASYNC110 - Redis state: nothing to await
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


# ---------------------------------------------------------------------------- the examples


@dataclass
class _Example:
    """An example running as a subprocess: its stdout JSON lines, its stderr log file."""

    proc: asyncio.subprocess.Process
    log: Path
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            self.lines.append(orjson.loads(line))

    def logged(self, msg: str) -> int:
        """How many log records with message ``msg`` it wrote."""
        text = self.log.read_text() if self.log.exists() else ""
        return sum(1 for line in text.splitlines() if orjson.loads(line)["msg"] == msg)

    async def wait_lines(self, n: int, timeout_s: float = 20.0) -> None:
        try:
            await wait_until(lambda: len(self.lines) >= n, timeout_s)
        except TimeoutError:
            raise AssertionError(
                f"{len(self.lines)} lines, not {n}: {self.lines}\n{self.log.read_text()}"
            ) from None

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal it and wait for it to exit (and for its output to be read)."""
        if self.proc.returncode is None:
            self.proc.send_signal(sig)
        async with asyncio.timeout(20):
            rc = await self.proc.wait()
            if self.reader is not None:
                await self.reader
        return rc


async def _spawn(module: str, log: Path, *args: str) -> _Example:
    with log.open("ab") as err:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            f"examples.{module}",
            *args,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=err,
        )
    example = _Example(proc, log)
    example.reader = asyncio.create_task(example._read())
    return example


@contextlib.asynccontextmanager
async def _cleanup(examples: list[_Example]) -> AsyncIterator[None]:
    """Kill whatever example is still running at the end of the test."""
    try:
        yield
    finally:
        for ex in examples:
            if ex.proc.returncode is None:
                ex.proc.kill()
                await ex.proc.wait()
            if ex.reader is not None:
                await ex.reader


def _key(p: dict[str, Any]) -> tuple[str, str, int]:
    return p["id"], p["state"], p["ts_ns"]


# ---------------------------------------------------------------------------- alert bot


async def test_alert_bot_misses_nothing_across_a_restart(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """Alerts active at the first start come from the active hash, later ones from the stream;
    a repeated stream entry is forwarded once; what the daemon raised and cleared while the
    bot was down comes, in order, when it is back: every transition exactly once."""
    port = mosquitto_server.port
    path = _config(
        tmp_path,
        redis_server.url,
        unique,
        port,
        risk=NO_RISK,
        positions="main,BTC-PERPETUAL,-100000,60000\n",
    )
    stream = f"{unique}:alerts:stream"
    state = tmp_path / "bot.state"
    argv = ("--redis-url", redis_server.url, "--prefix", unique, "--state", str(state))
    r = aioredis.Redis.from_url(redis_server.url)
    running: list[_Example] = []
    try:
        async with _daemon(path), _cleanup(running):
            book = _Book(r, port, unique)
            await _publish(port, _market(unique))
            await book.settled()
            await book.fill(-1000)  # -101 000: book_short raised, before the bot runs
            await _until(lambda: r.hexists(f"{unique}:alerts:active", f"{BOOK_RULE}:main"), "hash")

            bot = await _spawn("alert_bot", tmp_path / "bot1.log", *argv)
            running.append(bot)
            await bot.wait_lines(1)  # from the active hash
            assert [_key(p)[:2] for p in bot.lines] == [(f"{BOOK_RULE}:main", "raised")]
            await book.fill(-1000)  # -102 000: deep_short raised
            await bot.wait_lines(2)
            assert _key(bot.lines[1])[:2] == (f"{DEEP_RULE}:main:BTC", "raised")
            # riskd delivers at least once: a pipeline sent again repeats a transition
            await r.xadd(stream, {"data": orjson.dumps(bot.lines[1])})
            await book.fill(2000)  # -100 000: both cleared
            await bot.wait_lines(4)
            assert await bot.stop() == 0
            assert bot.logged("duplicate transition skipped") == 1

            # while the bot is down: raised, raised, cleared
            await book.fill(-1000)
            await book.fill(-1000)
            await book.fill(1000)
            await _until(lambda: _xlen_is(r, stream, 1 + 1 + 1 + 2 + 3), "8 entries")

            again = await _spawn("alert_bot", tmp_path / "bot2.log", *argv)
            running.append(again)
            await again.wait_lines(3)
            sentinel = {**again.lines[-1], "id": "sentinel", "ts_ns": 1}
            await r.xadd(stream, {"data": orjson.dumps(sentinel)})
            await again.wait_lines(4)  # the last entry: any repeat would have come before it
            assert _key(again.lines[3]) == _key(sentinel)
            assert await again.stop() == 0
            assert again.logged("resynced from the active hash") == 0  # resumed at its cursor

        entries = await _stream(r, stream)
        want = [_key(p) for _, p in entries]
        del want[2]  # the repeat written by the test
        got = [_key(p) for p in bot.lines + again.lines]
        assert got == want  # all, once each, in the order of the stream
        assert [(k[0].split(":")[0], k[1]) for k in got[4:7]] == [
            (BOOK_RULE, "raised"),
            (DEEP_RULE, "raised"),
            (DEEP_RULE, "cleared"),
        ]
    finally:
        await r.aclose()


async def _xlen_is(r: aioredis.Redis, key: str, n: int) -> bool:
    return bool(await r.xlen(key) == n)


async def _grown(r: aioredis.Redis, key: str, n: int) -> bool:
    return bool(await r.xlen(key) >= n)


class _Hook(http.server.BaseHTTPRequestHandler):
    """Records each POST; answers 500 while ``fail`` > 0 (counting down) or ``always_fail``."""

    fail = 0
    always_fail = False
    requests: list[tuple[int, str, bytes]]  # (status sent, Idempotency-Key, body)
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        cls = type(self)
        with cls.lock:
            status = 500 if cls.always_fail or cls.fail > 0 else 200
            cls.fail = max(cls.fail - 1, 0)
            cls.requests.append((status, self.headers.get("Idempotency-Key", ""), body))
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_alert_bot_webhook_retries_and_gives_up(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """A webhook answering 500 gets the alert again after a backoff: one delivery per alert;
    one that keeps failing is given up after --retries retries, and the next alert goes."""
    port = mosquitto_server.port
    path = _config(
        tmp_path,
        redis_server.url,
        unique,
        port,
        risk=NO_RISK,
        positions="main,BTC-PERPETUAL,-100000,60000\n",
    )

    class Hook(_Hook):
        fail = 1
        requests: list[tuple[int, str, bytes]] = []  # noqa: RUF012 - this test's own
        lock = threading.Lock()

    hook = Hook
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    r = aioredis.Redis.from_url(redis_server.url)
    running: list[_Example] = []

    def ok() -> list[tuple[str, bytes]]:
        with hook.lock:
            return [(k, b) for status, k, b in hook.requests if status == 200]

    try:
        async with _daemon(path), _cleanup(running):
            book = _Book(r, port, unique)
            await _publish(port, _market(unique))
            await book.settled()
            bot = await _spawn(
                "alert_bot",
                tmp_path / "bot.log",
                *("--redis-url", redis_server.url, "--prefix", unique, "--webhook", url),
                *("--retries", "2", "--retry-initial-s", "0.05", "--retry-max-s", "0.1"),
            )
            running.append(bot)
            await book.fill(-2000)  # both raised
            await wait_until(lambda: len(ok()) == 2)
            assert len(hook.requests) == 3  # the first failed, and was sent again
            assert bot.logged("webhook attempt failed, retrying") == 1

            hook.always_fail = True
            await book.fill(2000)  # both cleared: 3 attempts each, then given up
            await wait_until(lambda: bot.logged("webhook delivery failed") == 2)
            assert len(hook.requests) == 3 + 2 * 3
            hook.always_fail = False
            await book.fill(-1000)  # book_short raised: the bot went on
            await wait_until(lambda: len(ok()) == 3)
            sentinel = {**orjson.loads(ok()[-1][1]), "id": "sentinel", "ts_ns": 1}
            await r.xadd(f"{unique}:alerts:stream", {"data": orjson.dumps(sentinel)})
            await wait_until(lambda: len(ok()) == 4)  # the last: any repeat would come first
            assert await bot.stop() == 0
            assert bot.lines == []  # a webhook bot prints nothing
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        await r.aclose()
    *delivered, last = [orjson.loads(body) for _, body in ok()]
    assert _key(last) == ("sentinel", sentinel["state"], 1)
    assert [k for k, _ in ok()[:3]] == [":".join(map(str, _key(p))) for p in delivered]
    got = [(p["alert"], p["state"]) for p in delivered]
    assert sorted(got[:2]) == [(BOOK_RULE, "raised"), (DEEP_RULE, "raised")]
    assert got[2] == (BOOK_RULE, "raised")
    assert len({_key(p) for p in delivered}) == 3  # one delivery per alert


async def test_alert_bot_reconnects_after_a_redis_restart(
    tmp_path: Path, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """Redis restarts empty (new run_id, the stream gone): daemon and bot reconnect, the bot
    (most likely first: the daemon's backoff is longer) waits for the daemon's heartbeat,
    resyncs from the rebuilt active hash without repeating the alert it had forwarded, nor
    clearing it, and follows the new stream."""
    port = mosquitto_server.port
    with RedisServer() as server:
        path = _config(
            tmp_path,
            server.url,
            unique,
            port,
            risk=NO_RISK,
            positions="main,BTC-PERPETUAL,-100000,60000\n",
            redis_backoff_s=1.0,
        )
        r = aioredis.Redis.from_url(server.url)
        running: list[_Example] = []
        try:
            async with _daemon(path), _cleanup(running):
                book = _Book(r, port, unique)
                await _publish(port, _market(unique))
                await book.settled()
                bot = await _spawn(
                    "alert_bot",
                    tmp_path / "bot.log",
                    *("--redis-url", server.url, "--prefix", unique),
                    *("--reconnect-initial-s", "0.05", "--reconnect-max-s", "0.2"),
                )
                running.append(bot)
                await book.fill(-1000)  # book_short raised
                await bot.wait_lines(1)
                server.kill()
                server.start()
                await r.aclose()
                r = aioredis.Redis.from_url(server.url)
                book.r = r
                await wait_until(lambda: bot.logged("resynced from the active hash") == 2)
                await book.fill(-1000)  # deep_short raised
                await book.fill(2000)  # both cleared
                await bot.wait_lines(4)
                sentinel = {**bot.lines[-1], "id": "sentinel", "ts_ns": 1}
                await r.xadd(f"{unique}:alerts:stream", {"data": orjson.dumps(sentinel)})
                await bot.wait_lines(5)  # the last entry: any repeat would have come before it
                assert await bot.stop() == 0
                assert bot.logged("redis restarted (new run_id): resync") == 1
            assert _key(bot.lines[4]) == _key(sentinel)
            got = [(p["alert"], p["state"]) for p in bot.lines[:4]]
            assert got[:2] == [(BOOK_RULE, "raised"), (DEEP_RULE, "raised")]
            assert sorted(got[2:]) == [(BOOK_RULE, "cleared"), (DEEP_RULE, "cleared")]
            assert not any(p.get("synthetic") for p in bot.lines)
        finally:
            await r.aclose()


def test_resync_reconciles_the_hash_with_the_stream_tail() -> None:
    """The hash lagging the stream (a read between riskd's XADD and HSET), the hash ahead of
    it (rebuilt by a reconnecting riskd), and what a resync forwards from what was reported."""

    def alert(aid: str, state: str, ts_ns: int) -> dict[str, Any]:
        return {"v": 3, "id": aid, "state": state, "ts": ts_ns // 10**6, "ts_ns": ts_ns}

    snapshot = {"a": alert("a", "raised", 10), "b": alert("b", "raised", 30)}
    tail = [
        alert("b", "cleared", 20),  # older than the hash's b: the hash is ahead
        alert("c", "raised", 40),  # not in the hash yet: it lags
        alert("a", "cleared", 50),  # cleared, the hash not updated yet
    ]
    active = active_now(snapshot, tail)
    assert {k: v["ts_ns"] for k, v in active.items()} == {"b": 30, "c": 40}

    reported = {
        "a": alert("a", "raised", 10),
        "b": alert("b", "raised", 5),
        "d": alert("d", "raised", 1),
    }
    out = transitions(reported, active, tail, now_ns=99)
    assert [(p["id"], p["state"], p["ts_ns"]) for p in out] == [
        ("a", "cleared", 50),  # the real one, from the tail
        ("b", "cleared", 20),  # the real one: b was raised again since
        ("d", "cleared", 99),  # its clear is not in the tail (trimmed, or riskd restarted)
        ("b", "raised", 30),
        ("c", "raised", 40),
    ]
    assert out[2]["synthetic"] is True
    assert out[2]["value"] is None
    assert "synthetic" not in out[0]
    assert transitions(active, active, tail, now_ns=99) == []


# ---------------------------------------------------------------------------- hedger


def _eligible(entries: list[tuple[str, dict[str, Any]]], min_contracts: float) -> list[str]:
    """The ids of the entries a hedger should order on: status ok, enough contracts, and a
    payload newer than the last of its (book, underlying)."""
    out: list[str] = []
    last: dict[tuple[str, str], int] = {}
    for entry_id, p in entries:
        key = (p["book"], p["underlying"])
        if p["ts_ns"] <= last.get(key, -1):
            continue
        last[key] = p["ts_ns"]
        if p["status"] == "ok" and abs(p["delta_hedge"]["contracts"]) >= min_contracts:
            out.append(entry_id)
    return out


async def test_hedger_prints_every_order_once_across_crashes(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """A hedger that crashed before (entries pending, some of them processed) resumes with its
    pending entries, skipping the processed ones; killed with SIGKILL mid-stream and started
    again, it goes on; a repeated payload orders nothing. At the end every stream entry that
    asks for an order has been printed exactly once and nothing is pending."""
    port = mosquitto_server.port
    path = _config(
        tmp_path,
        redis_server.url,
        unique,
        port,
        risk=HEDGES,
        positions="main,BTC-PERPETUAL,-100000,60000\nsmall,BTC-PERPETUAL,-30,60000\n",
    )
    stream = f"{unique}:hedge:stream"
    group, consumer, state = "hedgers", "h1", tmp_path / "hedger.state"
    argv = (
        *("--redis-url", redis_server.url, "--prefix", unique, "--group", group),
        *("--consumer", consumer, "--state", str(state), "--min-contracts", "5", "--start", "all"),
    )
    r = aioredis.Redis.from_url(redis_server.url)
    runs: list[_Example] = []
    try:
        async with _cleanup(runs):
            async with _daemon(path) as daemon:
                await _publish(port, _market(unique))

                async def ok_entries(n: int) -> bool:
                    return len(_eligible(await _stream(r, stream), 5)) >= n

                await _until(lambda: ok_entries(6), "hedge payloads")
                # A hedger that read the first entries and died: three processed (orders
                # printed, state written), none acknowledged.
                await r.xgroup_create(stream, group, id="0", mkstream=True)
                eligible = _eligible(await _stream(r, stream), 5)
                read: Any = await r.xreadgroup(group, consumer, {stream: ">"}, count=len(eligible))
                pending = [i.decode() for i, _ in read[0][1]]
                before = [i for i in eligible if i in pending[:3]]  # "printed" by the dead one
                save_state(state, HedgerState(stream, group, consumer, last_id=pending[2]))

                first = await _spawn("hedger", tmp_path / "h1.log", *argv)
                runs.append(first)
                await first.wait_lines(8)
                assert not {o["stream_id"] for o in first.lines} & set(pending[:3])
                assert first.logged("entry processed before a restart, acknowledging") == 3
                await first.stop(signal.SIGKILL)
                # Killed between an entry's state write and its print, the hedger skips that
                # entry's orders (the module's documented at-most-once window): the state names
                # it, and it is the only entry allowed to go unprinted.
                killed_at = HedgerState.load(state, stream, group, consumer).last_id

                published = await r.xlen(stream)  # the daemon goes on publishing meanwhile
                await _until(lambda: _grown(r, stream, published + 1), "an entry while down")
                second = await _spawn("hedger", tmp_path / "h2.log", *argv)
                runs.append(second)
                await second.wait_lines(5)
                # riskd repeats its latest payload after a reconnection to Redis (same ts_ns)
                _, last = (await _stream(r, stream))[-1]
                await r.xadd(stream, {"data": orjson.dumps(last)})
                await second.wait_lines(10)
                daemon.stop.set()  # no more hedges

            entries = await _stream(r, stream)

            async def drained() -> bool:
                info = {g["name"]: g for g in await r.xinfo_groups(stream)}[group.encode()]
                return bool(
                    info["pending"] == 0 and info["last-delivered-id"].decode() == entries[-1][0]
                )

            await _until(drained, "the group to read and acknowledge everything")
            assert await second.stop() == 0
            assert second.logged("repeated hedge payload skipped") == 1

            printed = before + [o["stream_id"] for o in first.lines + second.lines]
            assert Counter(printed).most_common(1)[0][1] == 1, "an order printed twice"
            lost = {killed_at} - {o["stream_id"] for o in first.lines}
            # every one, in stream order, but the one the kill may have cut
            assert printed == [i for i in _eligible(entries, 5) if i not in lost]
            assert (await r.xpending(stream, group))["pending"] == 0
            orders = first.lines + second.lines
            assert {(o["book"], o["instrument"], o["side"]) for o in orders} == {
                ("main", "BTC-PERPETUAL", "buy")
            }  # small's 3 contracts are under --min-contracts
            assert {o["contracts"] for o in orders} == {10000.0}  # 100 000 USD / 10 USD
            assert {o["amount"] for o in orders} == {100000.0}
            assert any(p["book"] == "small" and p["status"] == "ok" for _, p in entries)
    finally:
        await r.aclose()


def test_hedge_orders_of_an_option_hedge() -> None:
    """With hedge options: an order per option and the future's after them; legs under the
    threshold, a singular system's options and a payload without prices order nothing."""
    payload: dict[str, Any] = {
        "v": 3,
        "ts_ns": 7,
        "book": "main",
        "underlying": "BTC",
        "future": "BTC-PERPETUAL",
        "options": ["BTC-27DEC30-60000-C", "BTC-27DEC30-80000-C"],
        "status": "ok",
        "delta_hedge": {"contracts": -500.0, "quantity": -5000.0, "residual_delta": 0.0},
        "option_hedge": {
            "targets": ["gamma", "vega"],
            "quantity": [12.34, -0.04],
            "quantity_rounded": [12.3, 0.0],
            "future": {"contracts": -900.0, "quantity": -9000.0, "residual_delta": 0.001},
            "singular": False,
        },
    }
    orders = hedge_orders("1-0", payload, 1.0)
    assert [(o["instrument"], o["side"], o["contracts"], o["amount"]) for o in orders] == [
        ("BTC-27DEC30-60000-C", "buy", 12.3, 12.3),
        ("BTC-PERPETUAL", "sell", 900.0, 9000.0),
    ]
    assert [o["client_order_id"] for o in orders] == ["hedge-1-0-0", "hedge-1-0-2"]
    assert [o["instrument"] for o in hedge_orders("1-0", payload, 20.0)] == ["BTC-PERPETUAL"]
    singular = {**payload, "option_hedge": {**payload["option_hedge"], "singular": True}}
    assert [o["contracts"] for o in hedge_orders("1-0", singular, 1.0)] == [500.0]
    assert hedge_orders("1-0", {**payload, "status": "no price for BTC-PERPETUAL"}, 1.0) == []


# ---------------------------------------------------------------------------- CLI


def test_help_and_bad_arguments() -> None:
    """--help names every option; a bad one exits with status 2."""
    for module, options in (
        ("alert_bot", ["--redis-url", "--prefix", "--webhook", "--retries", "--state"]),
        (
            "hedger",
            ["--redis-url", "--prefix", "--group", "--consumer", "--state", "--min-contracts"],
        ),
    ):
        done = subprocess.run(  # noqa: S603 - our own module, fixed arguments
            [sys.executable, "-m", f"examples.{module}", "--help"],
            cwd=ROOT,
            capture_output=True,
            check=False,
        )
        assert done.returncode == 0
        text = done.stdout.decode()
        assert all(o in text for o in options), text
    bad = subprocess.run(
        [sys.executable, "-m", "examples.alert_bot", "--webhook", "ftp://x/"],
        cwd=ROOT,
        capture_output=True,
        check=False,
    )
    assert bad.returncode == 2
    assert b"not an http(s) URL" in bad.stderr


@pytest.mark.parametrize("example", [alert_bot, hedger], ids=["alert_bot", "hedger"])
def test_a_blocked_read_ended_by_a_failover_is_retried(example: Any) -> None:
    """Redis ends a blocking XREAD with ``-UNBLOCKED`` when the master it waits on turns
    replica (a failover), and redis-py raises it as a plain ResponseError: reconnect (to the
    new master), as for MOVED; any other error reply stays fatal."""
    unblocked = rexc.ResponseError(
        "UNBLOCKED force unblock from blocking operation, instance state changed"
        " (master -> replica?)"
    )
    assert example.classify(unblocked) is True
    assert example.classify(rexc.ResponseError("MASTERDOWN Link with MASTER is down")) is True
    assert example.classify(rexc.ResponseError("ERR unknown command 'XREAD'")) is False
    assert example.classify(rexc.MovedError("3999 127.0.0.1:6381")) is True
