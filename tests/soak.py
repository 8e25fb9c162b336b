"""The fault soak: a real ``riskd run`` against real Redis, Mosquitto and a local Deribit, under a
scheduled plan of faults; it must carry on, lose nothing and stay exact.

    scripts/soak                       # 10 minutes (the default)
    scripts/soak --duration 3600       # an hour
    scripts/soak --duration 60         # what CI runs (tests/integration/test_soak.py)

The daemon takes option and perpetual tickers from a Deribit-protocol websocket server
(:class:`tests.deribit_server.DeribitServer`, frames stamped with the time of sending) and fills
over MQTT (QoS 1, persistent session, journaled), and publishes to Redis; its ``/metrics`` are
scraped. Meanwhile a publisher sends fills at a steady rate, each with an id, again until the
broker acknowledges it. The faults, in turn, as often as the duration allows:

- ``redis kill -9``: Redis is killed and started again (empty) a moment later;
- ``mosquitto restart``: the broker stops (saving its sessions) and starts again;
- ``ws drop mid-frame``: the websocket connection is cut after half a frame;
- ``burst 10x``: the market data rate goes up tenfold for a few seconds;
- ``malformed flood``: garbage on the websocket and on the MQTT topics, fills included;
- ``clock jump``: the daemon's wall clock and the exchange's timestamps leap an hour ahead,
  then back (the daemon runs under :func:`_daemon_main`, which moves ``time.time``/``time.time_ns``
  on SIGUSR1/SIGUSR2: a step of the wall clock as Python code sees it; the monotonic clock,
  as on a real system, does not move).

Each fault is recovered when the daemon's metrics say so (the feed connected again and reading,
Redis written again and its snapshot hash refilled, every message of the burst or flood read and
every bad one counted, nothing stale). At the end the publisher stops, the market is paused after
one last ticker per instrument, and the daemon is stopped with SIGTERM. Then it is checked that
the daemon never exited before, its RSS stayed bounded, every fill sent is in its journal once,
and its final snapshot in Redis equals a from-scratch recompute (a new engine built in this
process from the positions file, every fill sent and the last tickers, at the snapshot's
valuation time). A summary table is printed; the exit status is 1 when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import orjson
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

from engine.clock import ManualClock
from engine.events import Fill
from engine.greeks import inverse
from engine.outputs import encode
from engine.runtime.app import build
from engine.runtime.config import load_config
from feeds.deribit_codec import DeribitProtocol
from tests.deribit_server import DeribitServer
from tests.servers import MosquittoServer, RedisServer, free_port, http_get

__all__ = ["SoakResult", "soak"]

INDEX_USD = 95_000.0
EXPIRIES = ("25DEC26", "26MAR27", "25JUN27")
STRIKES = (80_000, 95_000, 110_000)
OPTIONS = tuple(f"BTC-{e}-{k}-{cp}" for e in EXPIRIES for k in STRIKES for cp in "CP")
PERPETUAL = "BTC-PERPETUAL"
INSTRUMENTS = (*OPTIONS, PERPETUAL)
BOOKS = ("main", "alt")
PREFIX = "soak"
CLOCK_JUMP_S = 3600
STEPS = 24  # frames per instrument in the recorded lap: the market goes round a cycle
RSS_GROWTH_LIMIT_MB = 64.0
BURST_SPEEDUP = 11  # tickers per pause in a burst, against 1 (the sends themselves take time)


def _frames(step_count: int = STEPS) -> list[dict[str, Any]]:
    """Deribit ticker notifications of every instrument, ``step_count`` laps of a cyclic market:
    the index swings ±1 %, the vols ±2 points; option marks are their inverse prices."""
    out = []
    expiry_s = {"25DEC26": 1798185600, "26MAR27": 1806048000, "25JUN27": 1813910400}
    now_s = time.time()
    for k in range(step_count):
        phase = 2 * math.pi * k / step_count
        index = INDEX_USD * math.exp(0.01 * math.sin(phase))
        for name in INSTRUMENTS:
            data: dict[str, Any] = {"instrument_name": name, "timestamp": 0, "index_price": index}
            if name == PERPETUAL:
                data["mark_price"] = round(index * 1.0002, 1)
            else:
                _, expiry, strike, cp = name.split("-")
                forward = index * 1.002
                iv = 0.55 + 0.1 * abs(math.log(int(strike) / forward)) + 0.02 * math.cos(phase)
                T = max(expiry_s[expiry] - now_s, 86_400.0) / (365.0 * 86_400.0)
                g = inverse(cp == "C", F=forward, K=float(strike), T=T, r=0.0, sigma=iv)
                mark = max(float(g.price_coin), 1e-4)
                data |= {
                    "mark_price": mark,
                    "mark_iv": round(iv * 100.0, 2),
                    "best_bid_price": round(mark * 0.98, 4),
                    "best_ask_price": round(mark * 1.02, 4) + 0.0005,
                    "underlying_price": forward,
                }
            out.append(
                {
                    "jsonrpc": "2.0",
                    "method": "subscription",
                    "params": {"channel": f"ticker.{name}.100ms", "data": data},
                }
            )
    return out


class _Broker(MosquittoServer):
    """mosquitto that keeps its sessions across a restart (persistence on, saved at stop)."""

    def _argv(self) -> list[str]:
        argv = super()._argv()
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            conf.read_text().replace("persistence false", "persistence true")
            + f"persistence_location {self.dir}/\nmax_queued_messages 0\n"
        )
        return argv

    def restart(self) -> None:
        """SIGTERM (mosquitto saves its sessions), then start again on the same port."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.start()


@dataclass(slots=True)
class _FaultRecord:
    name: str
    injected: int = 0
    recovered: int = 0
    recover_s: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    measures: dict[str, list[float]] = field(default_factory=dict)  # "{lo}-{hi} what" in notes

    def measure(self, what: str, value: float) -> None:
        self.measures.setdefault(what, []).append(value)

    def summary(self) -> str:
        def show(x: float) -> str:
            return f"{x:.0f}" if x == int(x) else f"{x:.1f}"

        spans = [
            f"{show(min(v))}-{show(max(v))} {what}" if min(v) != max(v) else f"{show(v[0])} {what}"
            for what, v in self.measures.items()
        ]
        return "; ".join([*spans, *dict.fromkeys(self.notes)])


@dataclass(slots=True)
class SoakResult:
    """What a soak saw; ``failures`` empty when every check held."""

    duration_s: float
    faults: dict[str, _FaultRecord]
    dropped: dict[tuple[str, str], float]
    received: dict[str, float]
    fills_sent: int
    fills_journaled: int
    rss_mb: list[float]
    keys_compared: int
    max_rel_diff: float
    failures: list[str]

    def table(self) -> str:
        """The summary, as Markdown tables."""
        lines = [
            f"soak: {self.duration_s:.0f} s of faults",
            "",
            "| fault | injected | recovered | time to recover (median / max, s) | notes |",
            "|---|---|---|---|---|",
        ]
        for r in self.faults.values():
            times = (
                f"{statistics.median(r.recover_s):.2f} / {max(r.recover_s):.2f}"
                if r.recover_s
                else "-"
            )
            lines.append(f"| {r.name} | {r.injected} | {r.recovered} | {times} | {r.summary()} |")
        lines += ["", "| feed | messages read | dropped, by reason |", "|---|---|---|"]
        for feed, n in sorted(self.received.items()):
            reasons = ", ".join(
                f"{reason} {v:.0f}" for (f, reason), v in sorted(self.dropped.items()) if f == feed
            )
            lines.append(f"| {feed} | {n:.0f} | {reasons or 'none'} |")
        start, peak, end = self.rss_mb[0], max(self.rss_mb), self.rss_mb[-1]
        lines += [
            "",
            f"- RSS after warm-up {start:.0f} MB, peak {peak:.0f} MB, at the end {end:.0f} MB "
            f"(growth {end - start:+.0f} MB; limit {RSS_GROWTH_LIMIT_MB:.0f} MB)",
            f"- fills sent {self.fills_sent}, in the daemon's journal {self.fills_journaled}",
            f"- final snapshot: {self.keys_compared} keys equal a from-scratch recompute "
            f"(largest relative difference {self.max_rel_diff:.1e})",
            f"- result: {'PASS' if not self.failures else 'FAIL'}",
        ]
        lines += [f"  - {f}" for f in self.failures]
        return "\n".join(lines)


Metrics = dict[tuple[str, tuple[tuple[str, str], ...]], float]
"""A scrape of ``/metrics``: (sample name, sorted labels) -> value."""


async def _scrape(port: int) -> Metrics:
    """The daemon's ``/metrics``."""
    _, body = await http_get(port, "/metrics")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def _value(m: Metrics, name: str, **labels: str) -> float:
    return m.get((name, tuple(sorted(labels.items()))), 0.0)


def _by_label(m: Metrics, name: str) -> dict[tuple[str, ...], float]:
    return {tuple(v for _, v in labels): x for (n, labels), x in m.items() if n == name}


def _config(
    tmp: Path, redis_url: str, ws_url: str, mqtt_port: int, http: str, journal: str, name: str
) -> Path:
    """The daemon's configuration file (``name`` in ``tmp``), beside its positions file."""
    (tmp / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,{OPTIONS[0]},10,0.05\nmain,{OPTIONS[7]},-5,0.08\nalt,{PERPETUAL},-20000,95000\n"
    )
    path = tmp / name
    path.write_text(
        f"""
[redis]
url = "{redis_url}"
prefix = "{PREFIX}"
min_interval_ms = 50
backoff_initial_s = 0.05
backoff_max_s = 0.5

[portfolio]
positions = "positions.csv"
journal = "{journal}"

[view]
enabled = "off"

[http]
address = "{http}"

[risk]
mc_scenarios = 2000

[[feeds]]
kind = "deribit"
name = "deribit"
url = "{ws_url}"
instruments = {orjson.dumps(list(INSTRUMENTS)).decode()}
indices = ["btc_usd"]
backoff_initial_s = 0.05
backoff_max_s = 0.5

[[feeds]]
kind = "mqtt"
name = "fills"
port = {mqtt_port}
client_id = "riskd-soak"
topics = ["fills/+", "md/#"]
backoff_initial_s = 0.05
backoff_max_s = 0.5
"""
    )
    return path


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else str(key)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return math.nan


class _Soak:
    def __init__(self, duration_s: float, seed: int, workdir: Path, fill_rate: float) -> None:
        self.duration_s = duration_s
        self.rng = random.Random(seed)  # noqa: S311 - test data, not secrets
        self.dir = workdir
        self.fill_rate = fill_rate
        self.offset_ms = 0  # the exchange's clock, ahead of ours during a clock jump
        self.redis = RedisServer()
        self.broker = _Broker()
        self.http_port = free_port()  # the daemon's /readyz and /metrics
        self.server = DeribitServer(
            _frames(), frame_interval_s=0.02, timestamp_ms=self._exchange_ms
        )
        self.fills: dict[str, dict[str, Any]] = {}
        self.sending = True
        self.marks = dict.fromkeys(INSTRUMENTS, 0.0)
        self.proc: subprocess.Popen[bytes] | None = None
        self.failures: list[str] = []
        self.rss: list[float] = []
        self.faults: dict[str, _FaultRecord] = {}

    def _exchange_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.offset_ms

    # ------------------------------------------------------------------ the daemon
    def _start_daemon(self, config: Path) -> None:
        log = (self.dir / "riskd.out").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - this interpreter, this module
            [sys.executable, "-m", "tests.soak", "--as-daemon", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parent.parent,
        )
        log.close()

    def _alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _log_tail(self, n: int = 30) -> str:
        lines = (self.dir / "riskd.out").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    # ------------------------------------------------------------------ the fill publisher
    async def _publish_fills(self) -> None:
        """Fills at ``fill_rate`` per second, each sent until the broker acknowledges it: after
        an error the same fill (same id) goes again, a redelivery the daemon applies once."""
        n, pending = 0, None
        while self.sending or pending is not None:
            try:
                async with aiomqtt.Client(
                    "127.0.0.1", self.broker.port, identifier="soak-publisher", timeout=2
                ) as client:
                    while self.sending or pending is not None:
                        if pending is None:
                            n += 1
                            pending = self._fill(n)
                        topic = f"fills/{pending['book']}"
                        await client.publish(topic, orjson.dumps(pending), qos=1, timeout=2)
                        self.fills[pending["id"]] = pending
                        pending = None
                        await asyncio.sleep(1.0 / self.fill_rate)
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)

    def _fill(self, n: int) -> dict[str, Any]:
        rng = self.rng
        name = rng.choice(INSTRUMENTS)
        perpetual = name == PERPETUAL
        qty = rng.choice((-1, 1)) * rng.randint(1, 50) * (100.0 if perpetual else 0.1)
        return {
            "book": rng.choice(BOOKS),
            "instrument": name,
            "quantity": qty,
            "price": 95_000.0 if perpetual else round(rng.uniform(0.01, 0.2), 4),
            "ts": time.time_ns() // 1_000_000,
            "id": f"soak-{n}",
        }

    # ------------------------------------------------------------------ faults
    async def _wait(
        self, record: _FaultRecord, since: float, ok: Callable[[Metrics], Awaitable[bool]]
    ) -> None:
        """Until ``ok`` holds of a scrape of the metrics (recovered) or 30 s pass."""
        deadline = since + 30.0
        while time.monotonic() < deadline:
            if not self._alive():
                return
            with contextlib.suppress(OSError):
                if await ok(await _scrape(self.http_port)):
                    record.recovered += 1
                    record.recover_s.append(time.monotonic() - since)
                    return
            await asyncio.sleep(0.05)
        record.notes.append("not recovered within 30 s")
        self.failures.append(f"{record.name}: not recovered within 30 s")

    async def _redis_kill(self, r: _FaultRecord) -> None:
        before = _value(await _scrape(self.http_port), "riskd_redis_reconnects_total")
        self.redis.kill()
        await asyncio.sleep(1.5)
        self.redis.start()
        since = time.monotonic()
        client = aioredis.Redis.from_url(self.redis.url)

        async def ok(m: Metrics) -> bool:  # reconnected since the kill, and refilled
            if _value(m, "riskd_redis_connected") != 1.0:
                return False
            if _value(m, "riskd_redis_reconnects_total") <= before:
                return False
            try:  # refilled: every exposure key is back in the snapshot hash
                return bool(await client.hlen(f"{PREFIX}:snapshot") >= self.snapshot_keys)
            except aioredis.RedisError:
                return False

        try:
            await self._wait(r, since, ok)
        finally:
            await client.aclose()

    async def _mosquitto_restart(self, r: _FaultRecord) -> None:
        await asyncio.to_thread(self.broker.restart)
        since = time.monotonic()
        before = _value(await _scrape(self.http_port), "riskd_messages_total", feed="fills")

        async def ok(m: Metrics) -> bool:
            return (
                _value(m, "riskd_feed_connected", feed="fills") == 1.0
                and _value(m, "riskd_messages_total", feed="fills") > before
            )

        await self._wait(r, since, ok)

    async def _ws_drop(self, r: _FaultRecord) -> None:
        before = _value(await _scrape(self.http_port), "riskd_messages_total", feed="deribit")
        accepted = self.server.connections
        await self.server.drop_connections(mid_frame=True)
        since = time.monotonic()

        async def ok(m: Metrics) -> bool:  # a new connection, and the feed reading on it
            return (
                self.server.connections > accepted
                and self.server.open_connections == 1
                and _value(m, "riskd_feed_connected", feed="deribit") == 1.0
                and _value(m, "riskd_messages_total", feed="deribit") > before + 10
            )

        await self._wait(r, since, ok)

    async def _burst(self, r: _FaultRecord) -> None:
        sent0, t0 = self.server.frames_sent, time.monotonic()
        await asyncio.sleep(2.0)
        normal = (self.server.frames_sent - sent0) / (time.monotonic() - t0)
        sent1 = self.server.frames_sent
        read1 = _value(await _scrape(self.http_port), "riskd_messages_total", feed="deribit")
        self.server.frames_per_interval = BURST_SPEEDUP
        t1 = time.monotonic()
        await asyncio.sleep(3.0)
        self.server.frames_per_interval = 1
        burst = (self.server.frames_sent - sent1) / (time.monotonic() - t1)
        r.measure("x the normal rate", round(burst / max(normal, 1e-9), 1))
        r.measure("frames/s", round(burst))
        since, sent2 = time.monotonic(), self.server.frames_sent

        async def ok(m: Metrics) -> bool:  # the daemon has read every frame of the burst
            return _value(m, "riskd_messages_total", feed="deribit") - read1 >= sent2 - sent1

        await self._wait(r, since, ok)

    async def _flood(self, r: _FaultRecord) -> None:
        m0 = await _scrape(self.http_port)
        ws0, mq0 = _dropped(m0, "deribit"), _dropped(m0, "fills")
        garbage_ws: list[bytes | str] = [
            b"\x00\xff garbage",
            "{not json",
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.'
            + OPTIONS[0]
            + '.100ms","data":{"instrument_name":"'
            + OPTIONS[0]
            + '","timestamp":1,"mark_price":"abc"}}}',
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.BTC-NOPE.100ms",'
            '"data":{"instrument_name":"BTC-NOPE","timestamp":1,"mark_price":1.0}}}',
            '{"jsonrpc":"2.0","method":"subscription","params":{"channel":"ticker.'
            + OPTIONS[1]
            + '.100ms","data":{"instrument_name":"'
            + OPTIONS[1]
            + '","timestamp":1,"mark_price":-1.0}}}',
            "[]",
        ]
        garbage_mqtt = [
            (f"md/quote/{OPTIONS[2]}", b'{"instrument": "' + OPTIONS[2].encode() + b'", "bid": 2'),
            (
                f"md/quote/{OPTIONS[2]}",
                b'{"instrument": "' + OPTIONS[2].encode() + b'", "bid": -1}',
            ),
            ("md/tick/BTC-PERPETUAL", b'{"instrument": "BTC-PERPETUAL", "price": NaN}'),
            ("md/tick/BTC-PERPETUAL", b"\xff\xfe"),
            ("fills/main", b'{"book": "main", "instrument": "x", "quantity": "lots"}'),
            ("fills/alt", b'{"book": "main", "instrument": "' + PERPETUAL.encode() + b'"}'),
        ]
        sent_ws = sent_mqtt = 0
        deadline = time.monotonic() + 3.0
        async with aiomqtt.Client("127.0.0.1", self.broker.port, identifier=None) as client:
            while time.monotonic() < deadline:
                for g in garbage_ws:
                    if self.server.open_connections == 1:
                        await self.server.send_raw(g)
                        sent_ws += 1
                for topic, payload in garbage_mqtt:
                    await client.publish(topic, payload, qos=1)
                    sent_mqtt += 1
                await asyncio.sleep(0.002)
        r.measure("bad websocket frames", sent_ws)
        r.measure("bad MQTT messages", sent_mqtt)
        since = time.monotonic()

        async def ok(m: Metrics) -> bool:  # every bad message counted as dropped
            return (
                _dropped(m, "deribit") - ws0 >= sent_ws and _dropped(m, "fills") - mq0 >= sent_mqtt
            )

        await self._wait(r, since, ok)

    async def _clock_jump(self, r: _FaultRecord) -> None:
        assert self.proc is not None
        self.offset_ms = CLOCK_JUMP_S * 1000
        self.proc.send_signal(signal.SIGUSR1)
        await asyncio.sleep(3.0)
        self.offset_ms = 0
        self.proc.send_signal(signal.SIGUSR2)
        since = time.monotonic()
        before = _value(await _scrape(self.http_port), "riskd_messages_total", feed="deribit")

        async def ok(m: Metrics) -> bool:
            return (
                _value(m, "riskd_stale_instruments") == 0.0
                and _value(m, "riskd_feed_connected", feed="deribit") == 1.0
                and _value(m, "riskd_messages_total", feed="deribit") > before + 10
            )

        await self._wait(r, since, ok)

    # ------------------------------------------------------------------ the run
    async def run(self) -> SoakResult:
        self.redis.start()
        self.broker.start()
        await self.server.start()
        config = _config(
            self.dir,
            self.redis.url,
            self.server.url,
            self.broker.port,
            f"127.0.0.1:{self.http_port}",
            "fills.journal",
            "riskd.toml",
        )
        self._start_daemon(config)
        assert self.proc is not None
        await self._ready()
        publisher = asyncio.create_task(self._publish_fills())
        await asyncio.sleep(3.0)  # warm-up: every key published, fills flowing
        client = aioredis.Redis.from_url(self.redis.url)
        self.snapshot_keys = int(await client.hlen(f"{PREFIX}:snapshot"))
        await client.aclose()
        plan: list[tuple[str, Callable[[_FaultRecord], Awaitable[None]]]] = [
            ("redis kill -9", self._redis_kill),
            ("ws drop mid-frame", self._ws_drop),
            ("burst 10x", self._burst),
            ("mosquitto restart", self._mosquitto_restart),
            ("malformed flood", self._flood),
            ("clock jump +1 h", self._clock_jump),
        ]
        self.faults = {name: _FaultRecord(name) for name, _ in plan}
        sampler = asyncio.create_task(self._sample_rss())
        start = time.monotonic()
        i = 0
        while time.monotonic() - start < self.duration_s or i < len(plan):
            name, action = plan[i % len(plan)]
            record = self.faults[name]
            record.injected += 1
            await action(record)
            if not self._alive():
                break
            i += 1
            await asyncio.sleep(1.0)
        elapsed = time.monotonic() - start
        sampler.cancel()
        self.sending = False
        await publisher
        result = await self._finish(elapsed)
        await self.server.stop()
        return result

    async def _ready(self) -> None:
        deadline = time.monotonic() + 300.0  # a first run compiles the kernels
        while time.monotonic() < deadline:
            if not self._alive():
                raise RuntimeError(f"riskd exited at start:\n{self._log_tail()}")
            with contextlib.suppress(OSError):  # not listening yet
                if (await http_get(self.http_port, "/readyz"))[0] == 200:
                    return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"riskd not ready:\n{self._log_tail()}")

    async def _sample_rss(self) -> None:
        assert self.proc is not None
        while self._alive():
            self.rss.append(_rss_mb(self.proc.pid))
            await asyncio.sleep(1.0)

    async def _finish(self, elapsed: float) -> SoakResult:
        assert self.proc is not None
        if not self._alive():
            self.failures.append(
                f"riskd exited (status {self.proc.returncode}):\n{self._log_tail()}"
            )
        # The last ticker of every instrument, then silence: the book's final market.
        self.server.paused = True
        await asyncio.sleep(0.2)
        final_frames = []
        for doc in _frames(1):  # the lap's first ticker of every instrument
            doc["params"]["data"]["timestamp"] = self._exchange_ms()
            final_frames.append(orjson.dumps(doc))
            await self.server.send_raw(final_frames[-1].decode())
        # Every fill is in the journal (accepted, so in the book) ...
        journal = self.dir / "fills.journal"
        deadline = time.monotonic() + 30.0
        ids: Counter[str] = Counter()
        while time.monotonic() < deadline:
            ids = _journaled(journal)
            if set(ids) >= set(self.fills):
                break
            await asyncio.sleep(0.1)
        missing = set(self.fills) - set(ids)
        if missing:
            self.failures.append(f"{len(missing)} fills not in the journal: {sorted(missing)[:5]}")
        if twice := [i for i, n in ids.items() if n > 1]:
            self.failures.append(f"fills journaled twice: {twice[:5]}")
        m = await _scrape(self.http_port) if self._alive() else {}
        await asyncio.sleep(2.5)  # a full reprice of the final market
        rss_end = _rss_mb(self.proc.pid) if self._alive() else math.nan
        self.rss.append(rss_end)
        self.proc.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(self.proc.wait, 60)
        if status != 0:
            self.failures.append(f"riskd exited with status {status} on SIGTERM")
        warm = self.rss[min(2, len(self.rss) - 1)]
        if rss_end - warm > RSS_GROWTH_LIMIT_MB:
            self.failures.append(f"RSS grew {rss_end - warm:.0f} MB (limit {RSS_GROWTH_LIMIT_MB})")
        compared, worst = await self._compare(final_frames)
        return SoakResult(
            duration_s=elapsed,
            faults=self.faults,
            dropped={
                (k[0], k[1]): v for k, v in _by_label(m, "riskd_dropped_messages_total").items()
            },
            received={k[0]: v for k, v in _by_label(m, "riskd_messages_total").items()},
            fills_sent=len(self.fills),
            fills_journaled=sum(ids.values()),
            rss_mb=self.rss[min(2, len(self.rss) - 1) :],
            keys_compared=compared,
            max_rel_diff=worst,
            failures=self.failures,
        )

    async def _compare(self, final_frames: list[bytes]) -> tuple[int, float]:
        """The final snapshot against a new engine given the positions file, every fill sent
        and the last tickers, at the snapshot's valuation time; (keys, largest difference)."""
        client = aioredis.Redis.from_url(self.redis.url)
        raw = await client.hgetall(f"{PREFIX}:snapshot")
        await client.aclose()
        published = {_text(k): orjson.loads(v) for k, v in raw.items()}
        valuations = {p["valuation_ts_ns"] for p in published.values()}
        if len(valuations) != 1:
            self.failures.append(f"final snapshot has {len(valuations)} valuation times")
            return 0, math.nan
        (valuation,) = valuations
        # The same book and feeds; no Redis reached, no journal, no endpoint.
        path = _config(
            self.dir,
            "redis://127.0.0.1:9/0",
            self.server.url,
            self.broker.port,
            "",
            "",
            "again.toml",
        )
        daemon = build(load_config(path), path, clock=ManualClock(valuation))
        for fill in sorted(self.fills.values(), key=lambda f: int(f["id"].split("-")[1])):
            daemon.engine.apply_fill(
                Fill(
                    book=fill["book"],
                    instrument=fill["instrument"],
                    quantity=fill["quantity"],
                    price=fill["price"],
                    fill_id=fill["id"],
                    ts_event=fill["ts"] * 1_000_000,
                    ts_recv=valuation,
                )
            )
        protocol = DeribitProtocol("deribit", daemon.registry)
        for frame in final_frames:
            for event in protocol.receive(frame, valuation):
                daemon.inbox.put(event)
        daemon.engine.cycle(full=True, flush=True)
        expected = {  # as the sink writes them: JSON, NaN as null
            k: orjson.loads(encode(v)) for k, v in daemon.out.exposures().items()
        }
        if set(expected) != set(published):
            self.failures.append(
                f"snapshot keys differ: published only {sorted(set(published) - set(expected))}, "
                f"recomputed only {sorted(set(expected) - set(published))}"
            )
        worst = 0.0
        for key in sorted(set(expected) & set(published)):
            worst = max(worst, _diff(key, published[key], expected[key], self.failures))
        return len(published), worst


TOLERANCE = 1e-9


def _dropped(m: Metrics, feed: str) -> float:
    return sum(v for (f, _), v in _by_label(m, "riskd_dropped_messages_total").items() if f == feed)


def _journaled(path: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    if not path.exists():
        return ids
    for line in path.read_bytes().splitlines():
        with contextlib.suppress(orjson.JSONDecodeError):
            doc = orjson.loads(line)
            if isinstance(doc, dict) and doc.get("fill_id"):
                ids[str(doc["fill_id"])] += 1
    return ids


def _diff(where: str, got: Any, want: Any, failures: list[str]) -> float:
    """The largest relative difference between two payloads; a mismatch is added to
    ``failures``. Times of building (``ts``, ``ts_ns``) are left out."""
    if isinstance(want, dict) and isinstance(got, dict):
        worst = 0.0
        for k in set(want) | set(got):
            if k in ("ts", "ts_ns"):
                continue
            if k not in want or k not in got:
                failures.append(f"{where}.{k}: only in one of the two")
                continue
            worst = max(worst, _diff(f"{where}.{k}", got[k], want[k], failures))
        return worst
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            failures.append(f"{where}: {len(got)} items, recomputed {len(want)}")
            return math.inf
        return max(
            (
                _diff(f"{where}[{i}]", g, w, failures)
                for i, (g, w) in enumerate(zip(got, want, strict=True))
            ),
            default=0.0,
        )
    if (
        isinstance(want, float | int)
        and isinstance(got, float | int)
        and not isinstance(want, bool)
    ):
        if math.isnan(want) and math.isnan(got):
            return 0.0
        rel = abs(got - want) / max(abs(want), 1e-9)
        if rel > TOLERANCE and abs(got - want) > TOLERANCE:
            failures.append(f"{where}: published {got!r}, recomputed {want!r}")
        return rel if abs(got - want) > TOLERANCE else 0.0
    if got != want:
        failures.append(f"{where}: published {got!r}, recomputed {want!r}")
    return 0.0


async def soak(duration_s: float, seed: int = 1, fill_rate: float = 20.0) -> SoakResult:
    """Run the soak for about ``duration_s`` seconds of faults (at least one of each)."""
    workdir = Path(tempfile.mkdtemp(prefix="riskd-soak-"))
    s = _Soak(duration_s, seed, workdir, fill_rate)
    try:
        return await s.run()
    finally:
        if s._alive() and s.proc is not None:
            s.proc.kill()
        await s.server.stop()
        s.redis.stop()
        s.broker.stop()
        if not s.failures:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"soak: files kept in {workdir}", file=sys.stderr)  # noqa: T201


def _daemon_main(config: str) -> int:
    """``riskd run -c config --view off`` whose wall clock SIGUSR1 moves an hour ahead and
    SIGUSR2 back: ``time.time`` and ``time.time_ns``, which riskd's clock and its libraries
    read; the monotonic clock does not move (as with a real step of the system clock)."""
    offset_ns = 0
    real_ns, real_s = time.time_ns, time.time

    def jump(sig: int, _frame: object) -> None:
        nonlocal offset_ns
        offset_ns = CLOCK_JUMP_S * 1_000_000_000 if sig == signal.SIGUSR1 else 0

    signal.signal(signal.SIGUSR1, jump)
    signal.signal(signal.SIGUSR2, jump)
    time.time_ns = lambda: real_ns() + offset_ns
    time.time = lambda: real_s() + offset_ns / 1e9
    from engine.runtime.cli import main

    return main(["run", "-c", config, "--view", "off"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of faults (600)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the fills (1)")
    parser.add_argument("--fill-rate", type=float, default=20.0, help="fills per second (20)")
    parser.add_argument("--as-daemon", metavar="CONFIG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.as_daemon:
        return _daemon_main(args.as_daemon)
    result = asyncio.run(soak(args.duration, args.seed, args.fill_rate))
    print(result.table())  # noqa: T201
    return 0 if not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
