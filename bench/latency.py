"""Latency from quote to Redis: a quiet key's first change, riskd beside a naive daemon.

One invocation starts its own ``mosquitto`` and ``redis-server`` (``tests.servers``, free
loopback ports), writes a book of 10,000 positions, and measures, one after the other:

- **riskd** as a real process (``riskd run -c riskd.toml --view off``; ``--riskd-cmd`` times
  another build), every setting at its default but the Redis URL and prefix, the MQTT feed's
  port, topic prefix and client id, and the positions file: risk periods on;
- the **relay** (``bench/naive.py --relay``): the same intake and Redis client, nothing
  repriced, a minimal payload per quote: the floor of any daemon on this machine;
- the **naive daemon** of ``bench/naive.py``: the same MQTT intake, the whole book repriced with
  riskd's kernel on every quote and the changed keys written to Redis at once;
- a **bare consumer** with riskd's intake (aiomqtt, ``JsonCodec`` in paho's callback) that only
  decodes, for the throughput ratio.

Scenarios (quotes of riskd's MQTT contract, ``{prefix}md/quote/{instrument}``):

A. One probe quote every 0.2 s, nothing else.
B. The same probes on quiet keys (ETH) while a publisher sends 1,000 quotes/s over the BTC
   options, each held by about 26 of the 32 books (so every BTC key is busy and rate-limited).
C. Sustained throughput: the highest rate riskd keeps up with (its heartbeat's count of messages
   read >= 98 % of what was offered over the window), over the bare consumer's.

A probe is one quote of a *probe option*: each (book, underlying) key holds one, alone in its
expiry bucket, held by no other book. It sends a forward (``underlying_price``) never sent
before, so the payload that reflects it is known exactly: in that bucket ``delta_usd / delta``
equals the forward. The probed key is *quiet*: the subscriber (``SUBSCRIBE {prefix}:exposure``)
has seen no payload of it for ``min_interval_ms`` (riskd's default, 100 ms) + 10 ms. A sample is
``time.time_ns()`` when the first payload of that key reflecting the quote is read off the
subscriber's socket minus ``time.time_ns()`` just before the quote is written to the broker's
socket (both in this process; the quote carries the same time as ``ts_ns``).

Run from the repository root::

    scripts/bench latency                                   # full run, about 7 minutes
    .venv/bin/python -m bench.latency --quick               # smoke run, about 25 s
    .venv/bin/python -m bench.latency --riskd-cmd ../wt-x/.venv/bin/riskd --out report.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import datetime as dt
import gc
import itertools
import json
import math
import os
import platform
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar

if not __package__:  # run as a file (python bench/latency.py): make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import orjson

from bench.pipeline import Neighbours, _mqtt_len, _mqtt_str, _proc_cpu_s, mqtt_publish_packet

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261206
T = TypeVar("T")

# riskd's defaults the harness relies on, and the requirement's targets (issue 15, item 4).
MIN_INTERVAL_MS: Final = 100  # [redis] min_interval_ms: a key is quiet after this long
QUIET_MARGIN_MS: Final = 10
TARGET_A_P50_MS: Final = 1.0
TARGET_A_P99_MS: Final = 3.0
TARGET_B_P99_MS: Final = 5.0 + MIN_INTERVAL_MS  # "p99 <= 5 ms plus the rate limit"
TARGET_RATIO: Final = 0.80
KEEP_UP: Final = 0.98  # a consumer keeps up when it reads this share of what was offered

RISKD_TOPICS: Final = "latbench/riskd/"  # each consumer's MQTT topic prefix
NAIVE_TOPICS: Final = "latbench/naive/"
RELAY_TOPICS: Final = "latbench/relay/"
BARE_TOPICS: Final = "latbench/bare/"
PROBE_SPACING_S: Final = 0.2
BACKGROUND_RATE: Final = 1_000.0
SEGMENT_PROBES: Final = 100  # probes between two refreshes of every quote (stale after 60 s)
PROBE_TIMEOUT_S: Final = 3.0
MATCH_REL: Final = 1e-9  # delta_usd / delta against the probe's forward
PROBE_STEP: Final = 2e-5  # relative forward step between the probes of a key

# ------------------------------------------------------------------------------------ book


@dataclass(frozen=True, slots=True)
class Underlying:
    name: str
    spot: float  # USD
    atm_vol: float
    grid: float  # strike grid of the bulk options, USD
    probe_step: float  # strike step between the books' probe options, USD


UNDERLYINGS: Final = (
    Underlying("BTC", 90_000.0, 0.50, 1_000.0, 250.0),
    Underlying("ETH", 3_000.0, 0.60, 50.0, 10.0),
)
EXPIRIES: Final = 8  # weekly, from the first Friday at least 3 days ahead
STRIKES: Final = 12  # per expiry, calls and puts
PROBE_WEEKS: Final = 26  # the probe options' expiry, after every bulk expiry
BOOKS: Final = 32
POSITIONS: Final = 10_000
_MONTHS: Final = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV",
                  "DEC")  # fmt: skip
_NS_PER_YEAR: Final = 365.0 * 86_400e9


def md_topic(
    topic_prefix: str, kind: str, underlying: str, instrument: str, by_underlying: bool
) -> str:
    """riskd's MQTT topic of market data (docs/config.md): ``{prefix}md/{kind}/{instrument}``,
    or the shards' layout ``{prefix}md/{kind}/{underlying}/{instrument}`` (docs/scaling.md)."""
    if by_underlying:
        return f"{topic_prefix}md/{kind}/{underlying}/{instrument}"
    return f"{topic_prefix}md/{kind}/{instrument}"


def index_underlying(index: str) -> str:
    """The underlying of a Deribit price index of the book (``btc_usd`` -> ``BTC``)."""
    return index.split("_", 1)[0].upper()


@dataclass(frozen=True, slots=True)
class BaseQuote:
    """An option's quote at rest: the seed and refresh quote, and the centre of the variants
    the publishers send."""

    instrument: str
    underlying: str
    forward: float  # USD
    iv: float
    mark: float  # coin

    def topic(self, topic_prefix: str, *, by_underlying: bool = False) -> str:
        """Its MQTT topic: ``{prefix}md/quote/{instrument}``, or with ``by_underlying`` the
        shards' layout ``{prefix}md/quote/{underlying}/{instrument}`` (docs/scaling.md)."""
        return md_topic(topic_prefix, "quote", self.underlying, self.instrument, by_underlying)

    def payload(self, forward: float | None = None, iv: float | None = None) -> dict[str, Any]:
        """The MQTT message (riskd's contract, feeds/json_codec.py), without a time."""
        mark = self.mark
        return {
            "instrument": self.instrument,
            "bid": mark * 0.98,
            "ask": mark * 1.02,
            "mark": mark,
            "iv": self.iv if iv is None else iv,
            "underlying_price": self.forward if forward is None else forward,
        }


@dataclass(frozen=True, slots=True)
class Probe:
    """The probe option of one (book, underlying) key, alone in its expiry bucket there."""

    book: str
    quote: BaseQuote
    label: str  # its expiry bucket in the payload: ISO 8601 UTC

    @property
    def key(self) -> str:
        return f"{self.book}:{self.quote.underlying}"


@dataclass(frozen=True, slots=True)
class Book:
    bulk: list[BaseQuote]  # the options every book draws its positions from
    probes: list[Probe]
    positions: list[tuple[str, str, float, float]]  # book, instrument, quantity, avg price
    indices: list[tuple[str, float]]  # Deribit price indices and their level, USD

    @property
    def quotes(self) -> list[BaseQuote]:
        return [*self.bulk, *(p.quote for p in self.probes)]

    def write_positions(self, path: Path) -> None:
        """riskd's positions CSV (``book,instrument,quantity,avg_price``)."""
        with path.open("w", encoding="utf-8") as f:
            f.write("book,instrument,quantity,avg_price\n")
            for book, name, qty, avg in self.positions:
                f.write(f"{book},{name},{qty:g},{avg:.10g}\n")


def _fridays(today: dt.date) -> list[dt.date]:
    first = today + dt.timedelta(days=3)
    first += dt.timedelta(days=(4 - first.weekday()) % 7)
    return [first + dt.timedelta(weeks=w) for w in range(PROBE_WEEKS + 1)]


def _name(und: str, d: dt.date, strike: float, call: bool) -> str:
    return (
        f"{und}-{d.day}{_MONTHS[d.month - 1]}{d.year % 100:02d}-{strike:.0f}-{'C' if call else 'P'}"
    )


def _expiry_ns(d: dt.date) -> int:
    return int(dt.datetime(d.year, d.month, d.day, 8, tzinfo=dt.UTC).timestamp()) * 10**9


def build_book(now_ns: int, seed: int = SEED) -> Book:
    """:data:`POSITIONS` positions in :data:`BOOKS` books: each book holds a random subset of
    the bulk options (BTC and ETH, :data:`EXPIRIES` weekly expiries x :data:`STRIKES` strikes x
    call/put) and its own probe option of each underlying, expiring :data:`PROBE_WEEKS` weeks
    out (an ATM call whose strike no other book holds)."""
    from engine import greeks  # numba: only the processes that build the book

    rng = np.random.default_rng(seed)
    today = dt.datetime.fromtimestamp(now_ns / 1e9, tz=dt.UTC).date()
    dates = _fridays(today)
    bulk: list[BaseQuote] = []
    probes: list[Probe] = []
    specs: list[tuple[str, str, float, float, bool, dt.date, float, float]] = []
    for u in UNDERLYINGS:
        for e, d in enumerate(dates[:EXPIRIES]):
            tte = (_expiry_ns(d) - now_ns) / _NS_PER_YEAR
            fwd = u.spot * (1.0 + 0.02 * tte)
            for k in np.linspace(-0.2, 0.2, STRIKES).tolist():
                strike = max(u.grid, round(fwd * math.exp(k) / u.grid) * u.grid)
                iv = u.atm_vol + 0.4 * math.log(strike / fwd) ** 2 + 0.01 * e
                specs += [("", u.name, fwd, strike, call, d, tte, iv) for call in (True, False)]
        d = dates[PROBE_WEEKS]
        tte = (_expiry_ns(d) - now_ns) / _NS_PER_YEAR
        fwd = u.spot * (1.0 + 0.02 * tte)
        atm = round(u.spot / u.probe_step) * u.probe_step
        specs += [
            (f"book{b:02d}", u.name, fwd, atm + b * u.probe_step, True, d, tte, u.atm_vol)
            for b in range(BOOKS)
        ]
    f = np.array([s[2] for s in specs])
    k = np.array([s[3] for s in specs])
    t = np.array([s[6] for s in specs])
    v = np.array([s[7] for s in specs])
    g = greeks.black76(np.array([s[4] for s in specs]), f, k, t, 0.0, v, parallel=False)
    marks = np.maximum(g.price / f, 1e-4).tolist()
    for (book, und, fwd, strike, call, d, _, iv), mark in zip(specs, marks, strict=True):
        q = BaseQuote(_name(und, d, strike, call), und, fwd, iv, round(mark, 4))
        if book:
            label = dt.datetime.fromtimestamp(_expiry_ns(d) / 1e9, tz=dt.UTC)
            probes.append(Probe(book, q, label.strftime("%Y-%m-%dT%H:%M:%SZ")))
        else:
            bulk.append(q)
    per_book = (POSITIONS - len(probes)) // BOOKS
    extra = (POSITIONS - len(probes)) % BOOKS
    positions: list[tuple[str, str, float, float]] = []
    for b in range(BOOKS):
        book = f"book{b:02d}"
        held = rng.permutation(len(bulk))[: per_book + (b < extra)]
        for i in sorted(held.tolist()):
            q = bulk[i]
            size = float(rng.integers(1, 51) * (1 if rng.random() < 0.5 else -1))
            positions.append((book, q.instrument, size, q.mark * (1 + rng.uniform(-0.05, 0.05))))
        positions += [
            (book, p.quote.instrument, 10.0, p.quote.mark) for p in probes if p.book == book
        ]
    return Book(bulk, probes, positions, [(f"{u.name.lower()}_usd", u.spot) for u in UNDERLYINGS])


def write_stream(
    path: Path,
    quotes: Sequence[BaseQuote],
    topic_prefix: str,
    seed: int,
    *,
    by_underlying: bool = False,
) -> None:
    """The publishers' quote stream: 8 variants of each quote (forward +-0.2 %, vol +-1 point)
    in a random order, as ``[topic, payload]`` pairs (JSON); ``by_underlying``: on the shards'
    topic layout (:meth:`BaseQuote.topic`)."""
    rng = np.random.default_rng(seed)
    out = []
    for q in quotes:
        for _ in range(8):
            msg = q.payload(
                q.forward * (1 + rng.uniform(-0.002, 0.002)), q.iv + rng.uniform(-0.01, 0.01)
            )
            out.append([q.topic(topic_prefix, by_underlying=by_underlying), msg])
    order = rng.permutation(len(out)).tolist()
    path.write_text(json.dumps([out[i] for i in order]), encoding="utf-8")


# --------------------------------------------------------------------------- MQTT publishing


def mqtt_connect(port: int, client_id: str) -> socket.socket:
    """A plain MQTT 3.1.1 connection (clean session, keepalive off) for QoS 0 publishing."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    variable = _mqtt_str(b"MQTT") + bytes([4, 2]) + struct.pack("!H", 0)
    connect = variable + _mqtt_str(client_id.encode())
    sock.sendall(b"\x10" + _mqtt_len(len(connect)) + connect)
    if sock.recv(4)[:2] != b"\x20\x02":
        raise RuntimeError("the broker refused the publisher")
    return sock


def run_publisher(port: int, rate: float, stream: Path) -> None:
    """Child role: publish the stream file's messages, cycled, at ``rate`` msgs/s until
    SIGTERM; ``{"event": "ready"}`` once connected, ``{"sent", "elapsed_s"}`` at the end."""
    stop = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    pairs = json.loads(stream.read_text(encoding="utf-8"))
    packets = [mqtt_publish_packet(topic, orjson.dumps(msg)) for topic, msg in pairs]
    blob = memoryview(b"".join(packets) * 2)
    offsets = [0]
    for p in packets * 2:
        offsets.append(offsets[-1] + len(p))
    n = len(packets)
    sock = mqtt_connect(port, f"latbench-pub-{os.getpid()}")
    print(json.dumps({"event": "ready"}), flush=True)
    sent = pos = 0
    t0 = time.perf_counter()
    while not stop:
        due = min(512, n, int(rate * (time.perf_counter() - t0)) - sent)
        if due <= 0:
            time.sleep(0.0005)
            continue
        sock.sendall(blob[offsets[pos] : offsets[pos + due]])
        sent += due
        pos = (pos + due) % n
    elapsed = time.perf_counter() - t0
    sock.sendall(b"\xe0\x00")
    sock.close()
    print(json.dumps({"sent": sent, "elapsed_s": elapsed}), flush=True)


async def run_bare(port: int, topic_prefix: str) -> None:
    """Child role: the baseline of scenario C. riskd's intake (feeds/mqtt.py): an aiomqtt client
    subscribed as the feed is (tick, quote and fill topics, QoS 1), every message decoded by
    ``JsonCodec.decode_market`` in paho's message callback; nothing else. Prints
    ``{"ts_ns", "received"}`` every 0.2 s."""
    import aiomqtt  # children import what they use

    from engine.errors import FeedDecodeError
    from engine.instruments import InstrumentRegistry
    from feeds.json_codec import JsonCodec

    codec = JsonCodec(InstrumentRegistry(), feed="bare", topic_prefix=topic_prefix)
    count = [0]

    class Intake(asyncio.Queue[aiomqtt.Message]):
        def put_nowait(self, item: aiomqtt.Message) -> None:
            count[0] += 1
            with contextlib.suppress(FeedDecodeError):
                codec.decode_market(item.topic.value, item.payload, time.time_ns())

    async with aiomqtt.Client(
        "127.0.0.1", port, identifier=f"latbench-bare-{os.getpid()}", queue_type=Intake
    ) as client:
        for topic in ("md/tick/+", "md/quote/+", "fills/+"):
            await client.subscribe(f"{topic_prefix}{topic}", qos=1)
        print(json.dumps({"event": "ready"}), flush=True)
        while True:
            await asyncio.sleep(0.2)
            print(json.dumps({"ts_ns": time.time_ns(), "received": count[0]}), flush=True)


# --------------------------------------------------------------------------- child processes


def _die_with_parent() -> None:
    """In a child before it runs: SIGTERM when the benchmark's process dies (Linux's
    PR_SET_PDEATHSIG), so that no daemon or publisher outlives a killed run."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)


class Child:
    """A process of the benchmark, its stdout read line by line (JSON lines)."""

    def __init__(self, proc: asyncio.subprocess.Process, name: str) -> None:
        self.proc = proc
        self.name = name

    @classmethod
    async def start(
        cls, argv: Sequence[str], name: str, log: Path | None = None, cwd: Path = ROOT
    ) -> Child:
        out = log.open("ab") if log is not None else None
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE if out is None else out,
                stderr=out,
                preexec_fn=_die_with_parent,
            )
        finally:
            if out is not None:
                out.close()
        return cls(proc, name)

    async def line(self, timeout_s: float) -> dict[str, Any]:
        """The next JSON line of its stdout."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout_s):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    raise RuntimeError(f"{self.name} exited ({await self.proc.wait()})")
                with contextlib.suppress(ValueError):
                    obj = json.loads(raw)
                    if isinstance(obj, dict):
                        return obj

    async def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout_s``)."""
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(timeout_s):
                    return await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
        return await self.proc.wait()


def _py(*args: str) -> list[str]:
    return [sys.executable, "-m", "bench.latency", *args]


async def start_publisher(port: int, rate: float, stream: Path) -> Child:
    pub = await Child.start(
        _py(
            "--role", "publisher", "--port", str(port), "--rate", str(rate), "--stream", str(stream)
        ),
        "publisher",
    )
    await pub.line(60.0)  # connected
    return pub


async def stop_publisher(pub: Child) -> float:
    """Stop a publisher; the rate it achieved, msgs/s."""
    pub.proc.send_signal(signal.SIGTERM)
    done = await pub.line(30.0)
    await pub.proc.wait()
    return float(done["sent"]) / float(done["elapsed_s"])


# ------------------------------------------------------------------------------- subscriber


class Subscriber:
    """``SUBSCRIBE`` to one Redis channel on a plain connection (RESP2). Every message is
    stamped with ``time.time_ns()`` taken when the bytes that complete it were read off the
    socket (the messages of one read share it), not when it is handled."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._buf = bytearray()

    @classmethod
    async def connect(cls, port: int, channel: str) -> Subscriber:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        c = channel.encode()
        writer.write(b"*2\r\n$9\r\nSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(c), c))
        await writer.drain()
        return cls(reader, writer)

    async def messages(self, handle: Callable[[bytes, int], None]) -> None:
        """Hand every message's payload and receipt time to ``handle``, until cancelled.

        Raises:
            ConnectionError: Redis closed the connection.
        """
        buf = self._buf
        while True:
            chunk = await self._reader.read(1 << 20)
            t = time.time_ns()
            if not chunk:
                raise ConnectionError("Redis closed the subscriber's connection")
            buf += chunk
            pos = 0
            while (frame := _resp_array(buf, pos)) is not None:
                items, pos = frame
                if len(items) == 3 and items[0] == b"message" and isinstance(items[2], bytes):
                    handle(items[2], t)
            del buf[:pos]

    async def aclose(self) -> None:
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def _resp_array(buf: bytearray, pos: int) -> tuple[list[bytes | int], int] | None:
    """The RESP2 array of bulk strings and integers at ``buf[pos:]`` (a pub/sub push) and the
    position after it; None while it is incomplete."""
    end = buf.find(b"\r\n", pos)
    if end < 0:
        return None
    if buf[pos : pos + 1] != b"*":
        raise RuntimeError(f"unexpected reply {bytes(buf[pos : end + 2])!r}")
    count = int(buf[pos + 1 : end])
    items: list[bytes | int] = []
    pos = end + 2
    for _ in range(count):
        end = buf.find(b"\r\n", pos)
        if end < 0:
            return None
        size = int(buf[pos + 1 : end])
        if buf[pos : pos + 1] == b":":
            items.append(size)
            pos = end + 2
            continue
        if len(buf) < end + 2 + size + 2:
            return None
        items.append(bytes(buf[end + 2 : end + 2 + size]))
        pos = end + 2 + size + 2
    return items, pos


# ----------------------------------------------------------------------------------- probing


@dataclass(slots=True)
class Expect:
    """A forward the next payloads of a key should show in its probe bucket."""

    forward: float
    t_send: int
    done: asyncio.Future[int]  # the receipt time of the first payload that shows it
    other: int = 0  # payloads of the key read meanwhile that do not show it


@dataclass(frozen=True, slots=True)
class Sample:
    key: str
    t_send: int
    t_recv: int | None  # None: no payload showed the quote within PROBE_TIMEOUT_S
    quiet_ms: float  # how long the key had been silent when the probe went out
    deferred_ms: float  # how long the probe waited for a quiet key
    overtaken: int  # payloads of the key read after the probe that did not reflect it yet

    @property
    def latency_ms(self) -> float:
        return math.inf if self.t_recv is None else (self.t_recv - self.t_send) / 1e6


class Prober:
    """Sends quotes on one MQTT connection and reads the exposure payloads off Redis pub/sub,
    in this process's event loop (one or more channels: :meth:`on_payload` takes them all);
    ``by_underlying``: on the shards' topic layout (:func:`md_topic`)."""

    def __init__(
        self, book: Book, sock: socket.socket, topic_prefix: str, *, by_underlying: bool = False
    ) -> None:
        self.book = book
        self.sock = sock
        self.topic_prefix = topic_prefix
        self.by_underlying = by_underlying
        self.labels = {p.key: p.label for p in book.probes}
        self.last_seen: dict[str, int] = {}
        self.forward_seen: dict[str, float] = {}  # the probe bucket's forward, last payload
        self.expect: dict[str, Expect] = {}
        self._count = itertools.count(1)

    def on_payload(self, data: bytes, t_recv: int) -> None:
        """An exposure payload read at ``t_recv``: note when its key was last heard of, and
        resolve the key's expectation if the payload reflects it."""
        msg = orjson.loads(data)
        if msg.get("scope") != "underlying":
            return
        key = f"{msg['book']}:{msg['underlying']}"
        self.last_seen[key] = t_recv
        label = self.labels.get(key)
        if label is None:
            return
        cols = msg["expiries"]
        try:
            i = cols["expiry"].index(label)
            forward = cols["delta_usd"][i] / cols["delta"][i]
        except (ValueError, ZeroDivisionError, TypeError):
            return
        self.forward_seen[key] = forward
        e = self.expect.get(key)
        if e is None or e.done.done():
            return
        if abs(forward / e.forward - 1.0) <= MATCH_REL:
            e.done.set_result(t_recv)
        else:
            e.other += 1

    def send(self, q: BaseQuote, forward: float | None = None) -> tuple[int, dict[str, Any]]:
        msg = q.payload(forward)
        t = time.time_ns()
        msg["ts_ns"] = t
        topic = q.topic(self.topic_prefix, by_underlying=self.by_underlying)
        self.sock.sendall(mqtt_publish_packet(topic, orjson.dumps(msg)))
        return t, msg

    def quiet_ms(self, key: str, now_ns: int) -> float:
        seen = self.last_seen.get(key)
        return math.inf if seen is None else (now_ns - seen) / 1e6

    async def refresh(self, probes: Sequence[Probe], timeout_s: float) -> None:
        """Send every option's resting quote (so none turns stale), wait until each of
        ``probes`` shows its resting forward, then until each is quiet."""
        loop = asyncio.get_running_loop()
        waits = []
        for index, price in self.book.indices:  # riskd's margin needs them (not the figures)
            data = orjson.dumps({"instrument": index, "price": price, "ts_ns": time.time_ns()})
            topic = md_topic(
                self.topic_prefix, "tick", index_underlying(index), index, self.by_underlying
            )
            self.sock.sendall(mqtt_publish_packet(topic, data))
        for q in self.book.quotes:
            t, _ = self.send(q)
        for p in probes:
            seen = self.forward_seen.get(p.key, math.nan)
            if abs(seen / p.quote.forward - 1.0) <= MATCH_REL:
                continue  # nothing changes for it: a daemon need not publish it
            e = Expect(p.quote.forward, t, loop.create_future())
            self.expect[p.key] = e
            waits.append(e.done)
        if waits:
            _, pending = await asyncio.wait(waits, timeout=timeout_s)
            if pending:
                raise TimeoutError(
                    f"{len(pending)} of {len(waits)} keys did not show their resting quote "
                    f"within {timeout_s:g} s"
                )
        await self.until_quiet([p.key for p in probes], timeout_s)

    async def until_quiet(self, keys: Sequence[str], timeout_s: float) -> None:
        quiet = MIN_INTERVAL_MS + QUIET_MARGIN_MS
        async with asyncio.timeout(timeout_s):
            while True:
                now = time.time_ns()
                loudest = min(self.quiet_ms(k, now) for k in keys)
                if loudest >= quiet:
                    return
                await asyncio.sleep((quiet - loudest) / 1e3 + 0.001)

    async def run(
        self, probes: Sequence[Probe], samples: int, refresh_timeout_s: float, out: list[Sample]
    ) -> None:
        """``samples`` probes, one every :data:`PROBE_SPACING_S`, each on the next quiet key
        of ``probes`` (in turn), appended to ``out`` as they settle; a refresh every
        :data:`SEGMENT_PROBES` probes.

        Raises:
            TimeoutError: a refresh did not reach the daemon's payloads in time (``out`` holds
                the samples taken until then).
        """
        loop = asyncio.get_running_loop()
        quiet = MIN_INTERVAL_MS + QUIET_MARGIN_MS
        sent: list[tuple[Probe, Expect, float, float]] = []
        turn = 0
        next_at = time.monotonic()
        for n in range(samples):
            if n and n % SEGMENT_PROBES == 0:
                out += await self._settle(sent)
                await self.refresh(probes, refresh_timeout_s)
                next_at = time.monotonic()
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            waited = time.monotonic()
            while True:
                now = time.time_ns()
                chosen = None
                for j in range(len(probes)):
                    p = probes[(turn + j) % len(probes)]
                    e = self.expect.get(p.key)
                    busy = (
                        e is not None
                        and not e.done.done()
                        and now - e.t_send < PROBE_TIMEOUT_S * 1e9
                    )
                    if not busy and self.quiet_ms(p.key, now) >= quiet:
                        chosen = p
                        turn = (turn + j + 1) % len(probes)
                        break
                if chosen is not None:
                    break
                await asyncio.sleep(0.002)
            deferred_ms = (time.monotonic() - waited) * 1e3
            k = next(self._count)
            forward = chosen.quote.forward * (1.0 + PROBE_STEP * (1 + k % 2_000))
            quiet_ms = self.quiet_ms(chosen.key, time.time_ns())
            e = Expect(forward, 0, loop.create_future())
            self.expect[chosen.key] = e
            e.t_send, _ = self.send(chosen.quote, forward)
            sent.append((chosen, e, quiet_ms, deferred_ms))
            next_at = max(next_at + PROBE_SPACING_S, time.monotonic())
        out += await self._settle(sent)

    async def _settle(self, sent: list[tuple[Probe, Expect, float, float]]) -> list[Sample]:
        """Wait for the probes in flight (up to :data:`PROBE_TIMEOUT_S` each) and turn ``sent``
        into samples."""
        if sent:
            last = max(e.t_send for _, e, _, _ in sent)
            left = PROBE_TIMEOUT_S - (time.time_ns() - last) / 1e9
            waits = [e.done for _, e, _, _ in sent if not e.done.done()]
            if waits and left > 0:
                await asyncio.wait(waits, timeout=left)
        out = []
        for p, e, quiet_ms, deferred_ms in sent:
            t_recv = e.done.result() if e.done.done() else None
            if t_recv is not None and t_recv - e.t_send > PROBE_TIMEOUT_S * 1e9:
                t_recv = None
            out.append(Sample(p.key, e.t_send, t_recv, quiet_ms, deferred_ms, e.other))
        sent.clear()
        return out


# ------------------------------------------------------------------------- daemons under test

_RISKD_TOML: Final = """\
# bench/latency.py: every setting at its default but these (risk periods on)
[redis]
url = "{redis_url}"
prefix = "{prefix}"

[portfolio]
positions = "positions.csv"

[[feeds]]
kind = "mqtt"
name = "md"
port = {port}
topic_prefix = "{topic_prefix}"
client_id = "{client_id}"
"""


@dataclass(slots=True)
class Daemon:
    """A daemon under test: its process and where it reads and writes."""

    name: str  # "riskd", "naive", "relay" (or a shard's name: bench/shards.py)
    child: Child
    redis_prefix: str  # the base of its keys: the prefix, or a shard's {prefix:NAME}
    topic_prefix: str
    exit_stats: dict[str, Any] = field(default_factory=dict)


async def start_riskd(
    cmd: Sequence[str],
    workdir: Path,
    mqtt_port: int,
    redis_url: str,
    redis: Any,
    *,
    name: str = "riskd",
    prefix: str = "latbench-riskd",
    topic_prefix: str = RISKD_TOPICS,
    underlyings: Sequence[str] = (),
) -> Daemon:
    """``riskd run -c {name}.toml --view off`` in ``workdir`` (beside positions.csv), its log
    in ``{name}.log``, ready when its heartbeat says the MQTT feed is connected. With
    ``underlyings``, a shard that owns them (``[cluster] underlyings``): its keys under the
    base ``{prefix:NAME}`` (docs/redis.md), its own MQTT client id."""
    shard = "-".join(sorted(underlyings))
    base = f"{{{prefix}:{shard}}}" if underlyings else prefix
    config = workdir / f"{name}.toml"
    text = _RISKD_TOML.format(
        redis_url=redis_url,
        prefix=prefix,
        port=mqtt_port,
        topic_prefix=topic_prefix,
        client_id=f"{prefix}-{shard}" if underlyings else prefix,
    )
    if underlyings:
        text += f"\n[cluster]\nunderlyings = {json.dumps(list(underlyings))}\n"
    config.write_text(text, encoding="utf-8")
    child = await Child.start(
        [*cmd, "run", "-c", str(config), "--view", "off"], name, workdir / f"{name}.log", workdir
    )
    async with asyncio.timeout(300.0):  # a first run compiles the kernels (about a minute)
        while True:
            if child.proc.returncode is not None:
                raise RuntimeError(f"{name} exited ({child.proc.returncode}): see {name}.log")
            raw = await redis.get(f"{base}:heartbeat")
            if raw is not None and orjson.loads(raw)["feeds"]["md"]["connected"]:
                break
            await asyncio.sleep(0.05)
    return Daemon(name, child, base, topic_prefix)


async def start_naive(
    workdir: Path, mqtt_port: int, redis_url: str, *, relay: bool = False
) -> Daemon:
    """The naive daemon (``bench/naive.py``); with ``relay``, its ``--relay`` mode: the I/O
    floor, no repricing."""
    name = "relay" if relay else "naive"
    prefix, topic_prefix = f"latbench-{name}", RELAY_TOPICS if relay else NAIVE_TOPICS
    child = await Child.start(
        [
            sys.executable,
            "-m",
            "bench.naive",
            "--mqtt-port",
            str(mqtt_port),
            "--topic-prefix",
            topic_prefix,
            "--redis-url",
            redis_url,
            "--prefix",
            prefix,
            "--positions",
            str(workdir / "positions.csv"),
            *(["--relay"] if relay else []),
        ],
        name,
    )
    await child.line(120.0)  # ready
    return Daemon(name, child, prefix, topic_prefix)


async def stop_daemon(d: Daemon) -> None:
    if d.name in ("naive", "relay"):
        d.child.proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError, RuntimeError):  # no stats: stopped below
            d.exit_stats = await d.child.line(30.0)
    status = await d.child.stop()
    if status not in (0, -signal.SIGTERM):
        raise RuntimeError(f"{d.name} exited with status {status}")


# ------------------------------------------------------------------------------ throughput


@dataclass(frozen=True, slots=True)
class RateProbe:
    offered: float  # msgs/s the publisher sent
    taken: float  # msgs/s the consumer read over the window
    cpu_us: float | None = None  # the consumer's CPU (its children's too) per message read, us

    @property
    def kept_up(self) -> bool:
        return self.taken >= KEEP_UP * self.offered


@dataclass(slots=True)
class Throughput:
    consumer: str
    probes: list[RateProbe] = field(default_factory=list)
    others: float | None = None  # CPU share of other processes

    @property
    def sustained(self) -> float:
        """The publisher's rate at the highest probe the consumer kept up with (0: none)."""
        return max((p.offered for p in self.probes if p.kept_up), default=0.0)

    @property
    def sustained_probe(self) -> RateProbe | None:
        """The highest probe the consumer kept up with (None: none)."""
        kept = [p for p in self.probes if p.kept_up]
        return max(kept, key=lambda p: p.offered) if kept else None

    @property
    def sustained_cpu_us(self) -> float | None:
        """The consumer's CPU per message read at the sustained probe (None: none kept up)."""
        probe = self.sustained_probe
        return None if probe is None else probe.cpu_us

    @property
    def capped(self) -> bool:
        """Kept up with every probe: the sustained rate is only a lower bound."""
        return all(p.kept_up for p in self.probes)


class Counter(Protocol):
    """Messages a consumer has read, as fresh ``(ts_ns, received)`` readings."""

    async def reading(self) -> tuple[int, int]: ...


class HeartbeatCounter:
    """riskd's own count: ``feeds.md.received`` of its heartbeat (``{prefix}:heartbeat``,
    rewritten every second), the first heartbeat written after the call."""

    def __init__(self, redis: Any, prefix: str) -> None:
        self._redis = redis
        self._key = f"{prefix}:heartbeat"

    async def reading(self) -> tuple[int, int]:
        since = time.time_ns()
        async with asyncio.timeout(15.0):
            while True:
                raw = await self._redis.get(self._key)
                if raw is not None:
                    hb = orjson.loads(raw)
                    if hb["ts_ns"] >= since:
                        return int(hb["ts_ns"]), int(hb["feeds"]["md"]["received"])
                await asyncio.sleep(0.02)


class LineCounter:
    """The bare consumer's count, from the lines it prints every 0.2 s."""

    def __init__(self, child: Child) -> None:
        self._child = child

    async def reading(self) -> tuple[int, int]:
        since = time.time_ns()
        while True:
            line = await self._child.line(15.0)
            if line.get("ts_ns", 0) >= since:
                return int(line["ts_ns"]), int(line["received"])


@dataclass(frozen=True, slots=True)
class SearchPlan:
    """Probes at ``start`` msgs/s, then ``growth`` times more until the consumer falls behind,
    then ``bisect`` geometric bisections; at most ``max_probes`` probes (1 in quick runs). Each
    probe: ``warmup_s``, then a window of at least ``window_s`` between two readings."""

    start: float
    growth: float
    bisect: int
    warmup_s: float
    window_s: float
    max_probes: int
    max_rate: float = 100_000.0


def _tree_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid`` (all threads) and of its live children (riskd's risk
    worker process)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return _proc_cpu_s(pid) + sum(_proc_cpu_s(int(c)) for c in children)


async def offered_window(
    port: int, stream: Path, rate: float, plan: SearchPlan, edge: Callable[[], Awaitable[T]]
) -> tuple[float, T, T]:
    """A publisher of ``stream`` at ``rate``: after ``plan.warmup_s``, ``edge()`` at both ends
    of a window of ``plan.window_s``; the rate the publisher achieved (msgs/s) and both
    edges."""
    pub = await start_publisher(port, rate, stream)
    try:
        await asyncio.sleep(plan.warmup_s)
        first = await edge()
        await asyncio.sleep(plan.window_s)
        last = await edge()
    finally:
        offered = await stop_publisher(pub)
    return offered, first, last


async def rate_probe(
    counter: Counter, port: int, stream: Path, rate: float, plan: SearchPlan, pid: int
) -> RateProbe:
    """One probe at ``rate``; ``pid``: the consumer's process, whose CPU is measured too."""

    async def edge() -> tuple[int, int, float]:
        t, n = await counter.reading()
        return t, n, _tree_cpu_s(pid)

    offered, (t0, n0, c0), (t1, n1, c1) = await offered_window(port, stream, rate, plan, edge)
    taken = (n1 - n0) / ((t1 - t0) / 1e9) if t1 > t0 else 0.0
    await drained(counter)
    return RateProbe(offered, taken, 1e6 * (c1 - c0) / (n1 - n0) if n1 > n0 else None)


async def drained(counter: Counter, timeout_s: float = 30.0) -> None:
    """Wait until the consumer reads nothing between two readings: what the broker and the
    sockets held for it (a backlog, when it fell behind) is gone before the next probe."""
    async with asyncio.timeout(timeout_s):
        _, last = await counter.reading()
        while True:
            _, n = await counter.reading()
            if n == last:
                return
            last = n


async def search(
    consumer: str,
    counter: Counter,
    port: int,
    stream: Path,
    plan: SearchPlan,
    pids: list[int],
    progress: Callable[[str], None],
    probe: Callable[[float], Awaitable[RateProbe]] | None = None,
) -> Throughput:
    """The sustained-rate search of :class:`SearchPlan` (bench/pipeline.py's method);
    ``pids``: the consumer's processes, then the servers' (the CPU they use is not counted
    as others'); ``probe``: one probe at a rate, instead of :func:`rate_probe` on ``counter``
    and ``pids[0]``."""
    out = Throughput(consumer)
    meter = Neighbours(pids)

    async def at(rate: float) -> bool:
        if probe is not None:
            p = await probe(rate)
        else:
            p = await rate_probe(counter, port, stream, rate, plan, pids[0])
        out.probes.append(p)
        progress(
            f"  {consumer}: offered {p.offered:,.0f}/s, read {p.taken:,.0f}/s"
            f"{'' if p.kept_up else ' (fell behind)'}"
        )
        return p.kept_up

    ok, bad, rate = 0.0, math.inf, plan.start
    while rate <= plan.max_rate and len(out.probes) < plan.max_probes:
        if await at(rate):
            ok, rate = rate, rate * plan.growth
        else:
            bad = rate
            if ok > 0.0 or rate < 200.0:
                break
            rate /= plan.growth**2
    for _ in range(plan.bisect if ok > 0.0 and math.isfinite(bad) else 0):
        if len(out.probes) >= plan.max_probes:
            break
        mid = math.sqrt(ok * bad)
        if await at(mid):
            ok = mid
        else:
            bad = mid
    out.others, _ = meter.shares()
    return out


# -------------------------------------------------------------------------------- scenarios


@dataclass(slots=True)
class ScenarioRun:
    scenario: str  # "A" or "B"
    daemon: str
    samples: list[Sample] = field(default_factory=list)
    others: float | None = None
    background: float | None = None  # scenario B: the background publisher's msgs/s
    note: str = ""  # why a run stopped early

    def latencies_ms(self) -> list[float]:
        return [s.latency_ms for s in self.samples]

    def pct(self, q: float) -> float:
        """Percentile of the latencies, a lost sample counted as infinite."""
        a = np.array(self.latencies_ms())
        if not a.size:
            return math.nan
        return (
            float(np.percentile(a, q, method="higher"))
            if np.isinf(a).any()
            else float(np.percentile(a, q))
        )

    @property
    def lost(self) -> int:
        return sum(s.t_recv is None for s in self.samples)


@dataclass(frozen=True, slots=True)
class Plan:
    samples: int
    search: SearchPlan
    bare_runs: int  # bare consumer runs around the daemons (2: before and after)


async def probe_daemon(
    d: Daemon,
    book: Book,
    plan: Plan,
    broker_port: int,
    redis_port: int,
    servers: list[int],
    background: Path,
    progress: Callable[[str], None],
) -> list[ScenarioRun]:
    """Seed every quote, then scenarios A and B on one daemon (``background``: the stream of
    scenario B's publisher)."""
    pids = [d.child.proc.pid, *servers]
    async with probing([d], book, broker_port, redis_port, progress) as prober:
        quiet = [p for p in book.probes if p.quote.underlying == "ETH"]
        a = await run_scenario(prober, "A", d.name, book.probes, plan.samples, pids, progress)
        b = await run_scenario(
            prober, "B", d.name, quiet, plan.samples, pids, progress,
            background=(broker_port, BACKGROUND_RATE, background),
        )  # fmt: skip
        return [a, b]


@contextlib.asynccontextmanager
async def probing(
    daemons: Sequence[Daemon],
    book: Book,
    broker_port: int,
    redis_port: int,
    progress: Callable[[str], None],
    *,
    by_underlying: bool = False,
) -> AsyncIterator[Prober]:
    """A :class:`Prober` on the exposure channel of each of ``daemons`` (the shards of one
    book, or one daemon), every quote seeded; the garbage collector off meanwhile."""
    label = "+".join(d.name for d in daemons)
    subs = [await Subscriber.connect(redis_port, f"{d.redis_prefix}:exposure") for d in daemons]
    sock = mqtt_connect(broker_port, f"latbench-probe-{label}")
    prober = Prober(book, sock, daemons[0].topic_prefix, by_underlying=by_underlying)
    readers = [
        asyncio.create_task(sub.messages(prober.on_payload), name=f"subscriber-{d.name}")
        for sub, d in zip(subs, daemons, strict=True)
    ]
    gc_was_enabled = gc.isenabled()
    try:
        progress(f"{label}: seeding {len(book.quotes)} quotes")
        await prober.refresh(book.probes, timeout_s=60.0)
        gc.collect()
        gc.disable()  # the payloads parsed here hold no cycles: no collector pauses meanwhile
        yield prober
    finally:
        if gc_was_enabled:
            gc.enable()
        for reader in readers:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await reader
        for sub in subs:
            await sub.aclose()
        sock.close()


async def run_scenario(
    prober: Prober,
    name: str,
    daemon: str,
    probes: list[Probe],
    samples: int,
    pids: list[int],
    progress: Callable[[str], None],
    *,
    background: tuple[int, float, Path] | None = None,
) -> ScenarioRun:
    """``samples`` probes of one scenario on ``probes``; ``pids``: the daemon's processes and
    the servers' (not counted as others'); ``background``: (broker port, rate, stream) of a
    publisher running meanwhile."""
    rate = 0.0 if background is None else background[1]
    progress(
        f"{daemon}: scenario {name}, {samples} probes"
        + (f", {rate:,.0f} background quotes/s" if rate else "")
    )
    run = ScenarioRun(name, daemon)
    pub = None if background is None else await start_publisher(*background)
    try:
        meter = Neighbours([*pids, *([pub.proc.pid] if pub else [])])
        if pub is not None:
            await asyncio.sleep(1.0)  # every BTC key busy before the first probe
        try:
            await prober.run(probes, samples, 15.0 if rate else 30.0, run.samples)
        except TimeoutError as exc:  # a daemon that fell behind: what was measured stands
            run.note = f"stopped early: {exc}"
        run.others, _ = meter.shares()
    finally:
        if pub is not None:
            run.background = await stop_publisher(pub)
    progress(f"  p50 {run.pct(50):.2f} ms, p99 {run.pct(99):.2f} ms, lost {run.lost}")
    return run


# ----------------------------------------------------------------------------------- report


@dataclass(slots=True)
class Results:
    started: dt.datetime
    argv: str
    quick: bool
    riskd_cmd: list[str]
    riskd_version: str
    book: Book
    runs: list[ScenarioRun]
    riskd_c: Throughput
    bare_c: list[Throughput]
    naive_stats: dict[str, Any]
    elapsed_s: float
    load_start: str
    load_end: str
    others: float | None
    steal: float | None
    versions: dict[str, str]

    def run(self, scenario: str, daemon: str) -> ScenarioRun | None:
        return next((r for r in self.runs if r.scenario == scenario and r.daemon == daemon), None)


def _ms(x: float) -> str:
    if math.isnan(x):
        return "-"
    if math.isinf(x):
        return f"> {PROBE_TIMEOUT_S * 1e3:,.0f} (lost)"
    return f"{x:.2f}" if x < 10 else f"{x:.1f}" if x < 100 else f"{x:,.0f}"


def _ratio(a: float, b: float) -> str:
    if not (math.isfinite(a) and math.isfinite(b)) or b <= 0:
        return "-"
    return f"{a / b:.1f}x" if a / b >= 10 else f"{a / b:.2f}x"


def _verdict(ok: bool | None) -> str:
    return "not judged" if ok is None else "**met**" if ok else "**not met**"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def checkout_of(cmd: Sequence[str]) -> str:
    """The git commit of the checkout a riskd command runs from (its executable's folder or,
    for ``python -m``, this one), with any uncommitted change to engine/ or feeds/ named."""
    from bench.kernels import git  # scipy, numba: the parent only

    exe = Path(cmd[0])
    where = ROOT if "-m" in cmd or not exe.is_absolute() else exe.resolve().parent
    top = git("rev-parse", "--show-toplevel", where=where)
    if top is None:
        return "unknown (not in a git checkout)"
    commit = git("rev-parse", "--short=12", "HEAD", where=Path(top)) or "?"
    last = git("log", "-1", "--format=%h", "--", "engine", "feeds", where=Path(top)) or "?"
    changed = git("status", "--porcelain", "--", "engine", "feeds", where=Path(top))
    dirty = f" + uncommitted changes to {len(changed.splitlines())} files" if changed else ""
    return f"{top} at {commit} (engine/ and feeds/ last changed in {last}{dirty})"


def targets(r: Results) -> list[tuple[str, str, bool | None]]:
    """(scenario, target, met) for each target of the requirement."""
    out: list[tuple[str, str, bool | None]] = []
    a = r.run("A", "riskd")
    if a is not None:
        out.append(
            (
                "A",
                f"riskd p50 <= {TARGET_A_P50_MS:g} ms and p99 <= {TARGET_A_P99_MS:g} ms",
                a.pct(50) <= TARGET_A_P50_MS and a.pct(99) <= TARGET_A_P99_MS,
            )
        )
    b = r.run("B", "riskd")
    if b is not None:
        out.append(
            (
                "B",
                f"riskd p99 <= {TARGET_B_P99_MS:g} ms (5 ms + min_interval_ms {MIN_INTERVAL_MS})",
                b.pct(99) <= TARGET_B_P99_MS and not b.note,
            )
        )
    return out


def _bare_rate(r: Results) -> float:
    rates = [b.sustained for b in r.bare_c]
    return float(np.mean(rates)) if rates else 0.0


def report(r: Results) -> str:
    from bench.kernels import cpu_model  # scipy, numba: the parent only

    b = r.book
    n_bulk = len(b.positions) - len(b.probes)
    lines = [
        "# riskd latency benchmark: a quiet key's first change, quote to Redis pub/sub"
        + (" (quick smoke run)" if r.quick else ""),
        "",
        f"- Date (UTC): {r.started:%Y-%m-%d %H:%M:%S}; `{r.argv}`, {r.elapsed_s:.0f} s",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs "
        f"({len(os.sched_getaffinity(0))} usable), {platform.system()} {platform.release()}; "
        f"load average {r.load_start} at the start, {r.load_end} at the end; other processes "
        f"used {_pct(r.others)} of all CPUs over the run (host steal {_pct(r.steal)})",
        f"- Python {platform.python_version()}, numpy {np.__version__}; "
        + ", ".join(f"{k} {v}" for k, v in r.versions.items()),
        f"- riskd: `{shlex.join(r.riskd_cmd)} run -c riskd.toml --view off` ({r.riskd_version}; "
        f"{checkout_of(r.riskd_cmd)}); harness: {checkout_of([sys.executable, '-m'])}",
        f"- Book: {len(b.positions):,} positions in {BOOKS} books: {n_bulk:,} drawn from "
        f"{len(b.bulk)} BTC and ETH options ({EXPIRIES} weekly expiries x {STRIKES} strikes x "
        f"call/put each; every option held by ~{n_bulk / len(b.bulk):.0f} books), and one probe "
        f"option per (book, underlying), {len(b.probes)}, expiring in {PROBE_WEEKS} weeks",
        "",
        "## Results",
        "",
        "Milliseconds from the probe quote's write to the broker to the subscriber reading the "
        "first payload of its key that reflects it (a lost probe counts as infinite).",
        "",
        "| scenario | riskd p50 / p99 / max ms | naive p50 / p99 / max ms | relay (I/O floor) "
        "p50 / p99 / max ms | riskd / naive p50 | riskd / naive p99 | riskd / relay p50 "
        "| target (riskd) | met |",
        "|---|---|---|---|---:|---:|---:|---|---|",
    ]
    judged = {s: (t, ok) for s, t, ok in targets(r)}
    titles = {
        "A": "A: one probe quote every 0.2 s",
        "B": f"B: probes on quiet ETH keys, {BACKGROUND_RATE:,.0f} quotes/s on the BTC options",
    }
    for s, title in titles.items():
        rk, nv, rl = r.run(s, "riskd"), r.run(s, "naive"), r.run(s, "relay")
        if rk is None or nv is None or rl is None:
            continue
        cells = [
            " / ".join(_ms(x.pct(q)) if q else _ms(max(x.latencies_ms(), default=math.nan))
                       for q in (50, 99, 0))
            for x in (rk, nv, rl)
        ]  # fmt: skip
        t, ok = judged[s]
        lines.append(
            f"| {title} | {cells[0]} | {cells[1]} | {cells[2]} | "
            f"{_ratio(rk.pct(50), nv.pct(50))} | {_ratio(rk.pct(99), nv.pct(99))} | "
            f"{_ratio(rk.pct(50), rl.pct(50))} | {t} | {_verdict(ok)} |"
        )
    bare = _bare_rate(r)
    sustained = r.riskd_c.sustained
    capped = r.riskd_c.capped or any(x.capped for x in r.bare_c)
    ratio = sustained / bare if bare > 0 else math.nan
    ok_c = None if r.quick or capped else ratio >= TARGET_RATIO
    lines.append(
        f"| C: sustained quotes/s (riskd; beside it the bare consumer with riskd's intake) | "
        f"{sustained:,.0f}/s | bare: {bare:,.0f}/s | | {ratio:.2f}x | | | riskd >= "
        f"{TARGET_RATIO:g}x the bare consumer | {_verdict(ok_c)} |"
    )
    if r.quick:
        lines += ["", "Quick run: few samples and no rate search; nothing here is a measurement."]
    lines += [
        "",
        "## Samples",
        "",
        "*lost*: no payload reflecting the probe within "
        f"{PROBE_TIMEOUT_S:g} s; *overtaken*: probes whose key sent another payload first (one "
        "built before the quote was applied, e.g. by a full reprice); *deferred*: probes that "
        "waited for a quiet key (each key silent for "
        f"{MIN_INTERVAL_MS} + {QUIET_MARGIN_MS} ms: riskd publishes every key at each full "
        "reprice, once a second); *others*: CPU other processes used meanwhile (share of all "
        "CPUs).",
        "",
        "| scenario | daemon | samples | lost | p90 ms | overtaken | deferred (max ms) "
        "| background msgs/s | others | note |",
        "|---|---|---:|---:|---:|---:|---|---:|---:|---|",
    ]
    for run in r.runs:
        deferred = [s.deferred_ms for s in run.samples if s.deferred_ms > 1.0]
        lines.append(
            f"| {run.scenario} | {run.daemon} | {len(run.samples)} | {run.lost} | "
            f"{_ms(run.pct(90))} | {sum(s.overtaken > 0 for s in run.samples)} | "
            f"{len(deferred)} ({max(deferred, default=0.0):.0f}) | "
            f"{'-' if run.background is None else f'{run.background:,.0f}'} | "
            f"{_pct(run.others)} | {run.note} |"
        )
    ns = r.naive_stats
    if ns.get("handled"):
        lines += [
            "",
            f"The naive daemon handled {ns['handled']:,} quotes: reprice of the whole book and "
            f"payloads {ns['reprice_ms_p50']:.2f} ms median ({ns['reprice_ms_p99']:.2f} p99), "
            f"Redis write {ns['write_ms_p50']:.2f} ms median ({ns['write_ms_p99']:.2f} p99); "
            f"{ns['backlog']:,} quotes were still queued when it stopped.",
        ]
    lines += [
        "",
        "## Throughput (scenario C)",
        "",
        "Each probe: a fresh publisher at a fixed rate (QoS 0, quotes of all the bulk options), "
        "warm-up, then a window between two readings of the consumer's count of messages read "
        "(riskd: `feeds.md.received` of its heartbeat; bare: its own count). A consumer keeps up "
        f"when it reads >= {KEEP_UP:.0%} of what was offered (the broker drops what a slow QoS 0 "
        "subscriber does not take). Sustained: the highest rate kept up with. CPU per message: "
        "the consumer's CPU time (all its threads and child processes: riskd's risk worker) "
        "over the window of the sustained probe, per message read; on this 2-core machine the "
        "publisher and the broker share the CPUs, so the sustained rates follow it.",
        "",
        "| consumer | probes: offered -> read (k msgs/s) | sustained msgs/s | CPU per message us "
        "| others |",
        "|---|---|---:|---:|---:|",
    ]
    for tp in [*r.bare_c[:1], r.riskd_c, *r.bare_c[1:]]:
        probes = ", ".join(
            f"{p.offered / 1e3:.1f} -> {p.taken / 1e3:.1f}{'' if p.kept_up else ' (behind)'}"
            for p in tp.probes
        )
        note = " (never fell behind: a lower bound)" if tp.capped else ""
        cpu = tp.sustained_cpu_us
        lines.append(
            f"| {tp.consumer} | {probes} | {tp.sustained:,.0f}{note} "
            f"| {'-' if cpu is None else f'{cpu:.1f}'} | {_pct(tp.others)} |"
        )
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------- main

FULL: Final = Plan(
    samples=300,
    search=SearchPlan(
        start=3_000.0, growth=1.4, bisect=2, warmup_s=1.0, window_s=3.0, max_probes=12
    ),
    bare_runs=2,
)
QUICK: Final = Plan(
    samples=12,
    search=SearchPlan(
        start=2_000.0, growth=1.4, bisect=0, warmup_s=0.5, window_s=0.5, max_probes=1
    ),
    bare_runs=1,
)


def default_riskd_cmd() -> list[str]:
    """The ``riskd`` beside this Python (the checkout's .venv), else ``python -m``."""
    exe = Path(sys.executable).parent / "riskd"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "engine.runtime.cli"]


def _versions() -> dict[str, str]:
    import importlib.metadata

    return {n: importlib.metadata.version(n) for n in ("aiomqtt", "paho-mqtt", "redis", "orjson")}


async def measure(
    plan: Plan, riskd_cmd: list[str], progress: Callable[[str], None]
) -> tuple[Book, list[ScenarioRun], Throughput, list[Throughput], dict[str, Any]]:
    """Everything, against servers of its own: the bare consumer's search (full runs), riskd
    (A, B, C), the naive daemon (A, B), the relay (A, B), the bare consumer's search again."""
    import redis.asyncio as aioredis

    from tests.servers import MosquittoServer, RedisServer

    with (
        MosquittoServer() as broker,
        RedisServer() as redis_server,
        tempfile.TemporaryDirectory(prefix="latbench-") as tmp,
    ):
        assert broker.proc is not None
        assert redis_server.proc is not None
        servers = [broker.proc.pid, redis_server.proc.pid]
        workdir = Path(tmp)
        progress("servers up; writing the book")
        book = build_book(time.time_ns())
        book.write_positions(workdir / "positions.csv")
        background: dict[str, Path] = {}  # scenario B's stream, per topic prefix
        every: dict[str, Path] = {}  # scenario C's
        btc = [q for q in book.bulk if q.underlying == "BTC"]
        for i, prefix in enumerate((RISKD_TOPICS, NAIVE_TOPICS, BARE_TOPICS, RELAY_TOPICS)):
            background[prefix] = workdir / f"background-{i}.json"
            write_stream(background[prefix], btc, prefix, SEED + i)
            every[prefix] = workdir / f"all-{i}.json"
            write_stream(every[prefix], book.bulk, prefix, SEED + 10 + i)
        redis = aioredis.Redis.from_url(redis_server.url)
        bare_c: list[Throughput] = []

        async def bare() -> None:
            progress("bare consumer: sustained-rate search")
            argv = _py("--role", "bare", "--port", str(broker.port), "--topic-prefix", BARE_TOPICS)
            child = await Child.start(argv, "bare")
            try:
                await child.line(60.0)  # subscribed
                pids = [child.proc.pid, *servers]
                counter = LineCounter(child)
                found = await search(
                    "bare consumer", counter, broker.port, every[BARE_TOPICS], plan.search, pids,
                    progress,
                )  # fmt: skip
                bare_c.append(found)
            finally:
                await child.stop()

        try:
            if plan.bare_runs > 1:
                await bare()
            progress(f"riskd: starting `{shlex.join(riskd_cmd)}`")
            d = await start_riskd(riskd_cmd, workdir, broker.port, redis_server.url, redis)
            try:
                runs = await probe_daemon(
                    d, book, plan, broker.port, redis_server.port, servers,
                    background[RISKD_TOPICS], progress,
                )  # fmt: skip
                progress("riskd: sustained-rate search")
                riskd_c = await search(
                    "riskd", HeartbeatCounter(redis, d.redis_prefix), broker.port,
                    every[RISKD_TOPICS], plan.search, [d.child.proc.pid, *servers], progress,
                )  # fmt: skip
            finally:
                await stop_daemon(d)
            progress("naive daemon: starting")
            d = await start_naive(workdir, broker.port, redis_server.url)
            try:
                runs += await probe_daemon(
                    d, book, plan, broker.port, redis_server.port, servers,
                    background[NAIVE_TOPICS], progress,
                )  # fmt: skip
            finally:
                await stop_daemon(d)
            naive_stats = d.exit_stats
            progress("relay (the I/O floor): starting")
            d = await start_naive(workdir, broker.port, redis_server.url, relay=True)
            try:
                runs += await probe_daemon(
                    d, book, plan, broker.port, redis_server.port, servers,
                    background[RELAY_TOPICS], progress,
                )  # fmt: skip
            finally:
                await stop_daemon(d)
            await bare()
        finally:
            await redis.aclose()
    return book, runs, riskd_c, bare_c, naive_stats


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--samples", type=int, help="probes per scenario (default 300; quick 12)")
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 20 s)")
    parser.add_argument(
        "--riskd-cmd",
        help="the riskd command to time, e.g. '../wt-x/.venv/bin/riskd' (default: the riskd "
        "beside this Python)",
    )
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    # Roles of the child processes (internal).
    parser.add_argument("--role", choices=("publisher", "bare"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--rate", type=float, default=0.0, help=argparse.SUPPRESS)
    parser.add_argument("--stream", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--topic-prefix", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "publisher":
        run_publisher(args.port, args.rate, args.stream)
        return 0
    if args.role == "bare":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_bare(args.port, args.topic_prefix))
        return 0
    base = QUICK if args.quick else FULL
    if args.samples is not None and args.samples < 1:
        parser.error("--samples must be >= 1")
    plan = Plan(args.samples or base.samples, base.search, base.bare_runs)
    riskd_cmd = shlex.split(args.riskd_cmd) if args.riskd_cmd else default_riskd_cmd()
    # Fixed argv of the command under test, no shell.
    version = subprocess.run(  # noqa: S603
        [*riskd_cmd, "--version"], capture_output=True, text=True, check=False, timeout=60
    ).stdout.strip()
    shown = ["--quick"] if args.quick else []  # the options that change what is measured
    if args.samples is not None:
        shown += ["--samples", str(args.samples)]
    if args.riskd_cmd:
        shown += ["--riskd-cmd", args.riskd_cmd]
    started = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    # SIGTERM as Ctrl-C: the servers and the children are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    whole = Neighbours([])  # every child is waited for by the end
    book, runs, riskd_c, bare_c, naive_stats = asyncio.run(measure(plan, riskd_cmd, progress))
    others, steal = whole.shares()
    results = Results(
        started=started,
        argv=shlex.join(["python", "-m", "bench.latency", *shown]),
        quick=args.quick,
        riskd_cmd=riskd_cmd,
        riskd_version=version or "version unknown",
        book=book,
        runs=runs,
        riskd_c=riskd_c,
        bare_c=bare_c,
        naive_stats=naive_stats,
        elapsed_s=time.perf_counter() - t_start,
        load_start=load_start,
        load_end=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        others=others,
        steal=steal,
        versions=_versions(),
    )
    text = report(results)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
