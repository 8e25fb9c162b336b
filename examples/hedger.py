"""Hedger: riskd's hedge ratios, read through a Redis consumer group, as hedge orders.

Run ``python -m examples.hedger --help``. riskd publishes, every ``[risk] hedge_interval_s`` and
per (book, underlying) with a hedge future, the trades that would neutralise the book's delta
(docs/hedging.md "The daemon's payload") on the stream ``{prefix}:hedge:stream``. The hedger
reads it as a member (``--consumer``) of a consumer group (``--group``) and turns each payload
into orders, printed as JSON lines on stdout (not sent anywhere):

* without hedge options: one order in the hedge future, ``delta_hedge.contracts`` (for an
  inverse future, the coin-flat target);
* with hedge options (``[risk] hedge_options``) and a solvable system: an order per option
  (``option_hedge.quantity_rounded``) and one in the future for the delta they leave
  (``option_hedge.future``).

An order is ``{"v": 1, "client_order_id", "stream_id", "ts_ns", "book", "underlying",
"instrument", "side", "contracts", "amount", "residual_delta"}``: ``side`` is ``buy`` or ``sell``,
``contracts`` the absolute number of contracts, ``amount`` the absolute position quantity as
riskd counts it (USD for an inverse future), ``client_order_id`` = ``hedge-{stream id}-{leg}`` an
idempotency key for whatever executes it. Legs smaller than ``--min-contracts`` are skipped, as
are payloads whose ``status`` is not ``"ok"`` (no price yet). Each payload is a fresh target for
the book as riskd holds it; a real hedger would net it against its orders in flight until their
fills reach riskd. Logs are JSON lines on stderr.

Exactly once across restarts
----------------------------
For each entry, in this order: the orders are worked out; the entry's id (and its payload's
``ts_ns``) are written to the ``--state`` file (atomically, fsynced); the orders are printed
and flushed; the entry is acknowledged (``XACK``). At start the hedger first reads its own
pending entries (``XREADGROUP`` from id ``0``: delivered to it before, never acknowledged), then
new ones (``>``). An entry at or below the state's last id was processed before a crash that
came between the state write and the ``XACK``: it is acknowledged without printing. So an entry
is printed once, and lost only if the process dies in the instant between the state write and
the print (one ``write`` to stdout): writing the state first makes a crash skip a hedge target
(the next payload, ``hedge_interval_s`` later, carries a fresh one) rather than repeat an order
(which would double the hedge).

riskd's delivery is at least once: after a reconnection to Redis it publishes the latest payload
of every key again (same ``ts_ns``). The hedger keeps each (book, underlying)'s last ``ts_ns``
in its state and skips a payload that is not newer.

The group is created (``XGROUP CREATE ... MKSTREAM``) at ``$`` by default (``--start new``): a
hedger that joins acts on hedge targets published from then on, not on the history the stream
still holds (up to ``stream_maxlen`` old targets, each executed would re-hedge a position long
hedged). ``--start all`` creates it at ``0`` (every entry the stream holds), for a stream whose
every entry must be acted on. Once the group exists its position is Redis's: a restarted hedger
goes on from there, whatever ``--start`` says. A Redis that restarts without persistence loses
the group; the hedger creates it again (``NOGROUP``). Entries trimmed from the stream before the
group read them are lost to it (logged at start). Pending entries of *other* consumers of the
group (a dead member's) are not claimed (``XAUTOCLAIM`` would be the tool).

Shards and Redis Cluster
------------------------
With ``--cluster`` (a Redis Cluster, ``--redis-url`` naming any node) or ``--shards`` (riskd's
shards on one server) the directory hash ``{prefix}:shards`` names the base of each daemon's
keys (``{risk:0}``); each base is followed as the prefix is above, with its own state
(``--state FILE`` becomes ``FILE.NAME`` per shard), through a plain connection to the node
that holds its slot (:class:`Source`); the directory is read again every second for shards
that start later (:func:`follow_shards`). The guarantees hold per shard.

The file is self-contained (Redis, orjson and the standard library) so it can be copied into
another project.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, TypeVar

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = ["Hedger", "HedgerState", "Source", "follow_shards", "hedge_orders", "main", "save_state"]

logger = logging.getLogger("examples.hedger")

SCHEMA_VERSIONS: Final = frozenset({2, 3, 4})
"""Hedge payload versions this hedger understands (docs/redis.md "Versioning"): 3 and 4 have the
fields of 2 that it reads, typed the same (a predecessor's payloads may still be v2)."""
STATE_VERSION: Final = 1
ORDER_VERSION: Final = 1
BLOCK_MS: Final = 500  # XREADGROUP BLOCK: how soon a stop request is seen while idle
BATCH: Final = 100  # entries per XREADGROUP
TIMEOUT_S: Final = 5.0  # every Redis call
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"

T = TypeVar("T")


class LocalError(Exception):
    """Writing locally failed (stdout closed, the state file): fatal, not a Redis error."""


# ---------------------------------------------------------------------------- pure parts


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id (``"1732406400000-3"``) as a tuple that compares like Redis does."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def _finite(x: object) -> float | None:
    return float(x) if isinstance(x, int | float) and math.isfinite(x) else None


def hedge_orders(
    entry_id: str, payload: Mapping[str, Any], min_contracts: float
) -> list[dict[str, Any]]:
    """The orders one hedge payload asks for (module docstring), legs below
    ``min_contracts`` (absolute) and of zero contracts left out."""
    if payload.get("status") != "ok":
        return []
    legs: list[tuple[str, float | None, float | None, float | None]] = []
    future = str(payload["future"])
    option_hedge = payload.get("option_hedge")
    if isinstance(option_hedge, dict) and not option_hedge.get("singular"):
        for instrument, qty in zip(
            payload.get("options", []), option_hedge.get("quantity_rounded") or [], strict=False
        ):
            legs.append((str(instrument), _finite(qty), _finite(qty), None))
        after = option_hedge.get("future")
        if isinstance(after, dict):
            legs.append(
                (
                    future,
                    _finite(after.get("contracts")),
                    _finite(after.get("quantity")),
                    _finite(after.get("residual_delta")),
                )
            )
    else:
        delta_hedge = payload.get("delta_hedge")
        if isinstance(delta_hedge, dict):
            legs.append(
                (
                    future,
                    _finite(delta_hedge.get("contracts")),
                    _finite(delta_hedge.get("quantity")),
                    _finite(delta_hedge.get("residual_delta")),
                )
            )
    orders: list[dict[str, Any]] = []
    for leg, (instrument, contracts, quantity, residual) in enumerate(legs):
        if contracts is None or contracts == 0.0 or abs(contracts) < min_contracts:
            continue
        orders.append(
            {
                "v": ORDER_VERSION,
                "client_order_id": f"hedge-{entry_id}-{leg}",
                "stream_id": entry_id,
                "ts_ns": payload["ts_ns"],
                "book": payload["book"],
                "underlying": payload["underlying"],
                "instrument": instrument,
                "side": "buy" if contracts > 0 else "sell",
                "contracts": abs(contracts),
                "amount": None if quantity is None else abs(quantity),
                "residual_delta": residual,
            }
        )
    return orders


def decode_hedge(raw: bytes | None) -> dict[str, Any] | None:
    """A hedge payload, or None (logged) when it is not one of a version this hedger knows."""
    try:
        payload = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        payload = None
    if (
        isinstance(payload, dict)
        and payload.get("v") in SCHEMA_VERSIONS
        and isinstance(payload.get("book"), str)
        and isinstance(payload.get("underlying"), str)
        and isinstance(payload.get("ts_ns"), int)
    ):
        return payload
    text = raw.decode(errors="replace") if raw is not None else "(none)"
    logger.warning("hedge payload skipped: unknown version or malformed", extra={"raw": text[:200]})
    return None


@dataclass(slots=True)
class HedgerState:
    """What the hedger has processed, kept in ``--state`` (JSON).

    Attributes:
        stream, group, consumer: whose state this is (another's is refused).
        last_id: the id of the last entry processed (orders printed), or None.
        last_ts: ``{book}:{underlying}`` -> the ``ts_ns`` of its last payload processed.
    """

    stream: str
    group: str
    consumer: str
    last_id: str | None = None
    last_ts: dict[str, int] = field(default_factory=dict)

    def done(self, entry_id: str) -> bool:
        """Whether ``entry_id`` was processed already (at or below :attr:`last_id`)."""
        return self.last_id is not None and stream_id(entry_id) <= stream_id(self.last_id)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "stream": self.stream,
                "group": self.group,
                "consumer": self.consumer,
                "last_id": self.last_id,
                "last_ts": self.last_ts,
            }
        )

    @classmethod
    def load(cls, path: Path, stream: str, group: str, consumer: str) -> HedgerState:
        """The state in ``path`` (a fresh one when the file does not exist).

        Raises:
            ValueError: the file is not a hedger state, or another consumer's.
        """
        if not path.exists():
            return cls(stream, group, consumer)
        raw = orjson.loads(path.read_bytes())
        if not isinstance(raw, dict) or raw.get("v") != STATE_VERSION:
            raise ValueError(f"{path}: not a hedger state file of a known version")
        owner = (raw.get("stream"), raw.get("group"), raw.get("consumer"))
        if owner != (stream, group, consumer):
            raise ValueError(f"{path}: the state of {owner}, not of {(stream, group, consumer)}")
        return cls(stream, group, consumer, raw.get("last_id"), dict(raw.get("last_ts", {})))


def save_state(path: Path, state: HedgerState) -> None:
    """Replace ``path`` by ``state``: a temporary file, fsynced, renamed, the directory
    fsynced. A crash leaves the old state or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(state.to_json())
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- I/O parts


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter: ``initial_s * 2**n`` capped at ``max_s``, each
    delay drawn from its upper half; :meth:`reset` after a success."""

    initial_s: float
    max_s: float
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.max_s, self.initial_s * 2.0 ** min(self.attempt, 32))
        self.attempt += 1
        return ceiling * (1.0 - 0.5 * random.random())  # noqa: S311 - jitter, not crypto

    def reset(self) -> None:
        self.attempt = 0


async def sleep_or_stop(stop: asyncio.Event, delay_s: float) -> bool:
    """Wait ``delay_s`` or until ``stop`` is set; True when stopped."""
    try:
        async with asyncio.timeout(delay_s):
            await stop.wait()
    except TimeoutError:
        return False
    return True


_ROLE_CHANGED: Final = ("UNBLOCKED", "MASTERDOWN")
"""Replies of a node whose role changed under the client (redis-py raises them as plain
``ResponseError``): ``-UNBLOCKED`` ends a blocking read when a master turns replica."""


def classify(exc: BaseException) -> bool | None:
    """Whether reconnecting can fix ``exc`` (True), cannot (False), or it is no Redis or
    network error at all (None: a bug, let it propagate)."""
    if isinstance(exc, rexc.AuthenticationError | rexc.AuthorizationError):
        return False
    if isinstance(exc, rexc.BusyLoadingError | rexc.ReadOnlyError | rexc.TryAgainError):
        return True
    if isinstance(exc, rexc.AskError | rexc.ClusterError | rexc.RedisClusterException):
        return True  # MOVED, ASK, CLUSTERDOWN, no node answering: the slot map changes
    if isinstance(exc, rexc.ResponseError) and str(exc).startswith(_ROLE_CHANGED):
        return True  # a blocked read ended by a failover (the master became a replica)
    if isinstance(exc, rexc.ResponseError | rexc.DataError):
        return False
    if isinstance(exc, rexc.RedisError | OSError | TimeoutError):
        return True
    return None


async def call(aw: Awaitable[T], timeout_s: float = TIMEOUT_S) -> T:
    """Await a Redis call within ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        return await aw


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        raise ValueError("a stream entry without an id")
    return raw.decode() if isinstance(raw, bytes) else raw


def _entries(reply: Any) -> list[tuple[bytes | str | None, Mapping[Any, Any] | None]]:
    """The entries of a one-stream XREADGROUP reply (RESP2 list or RESP3 dict); a pending
    entry trimmed from the stream comes with ``None`` (or empty) fields."""
    if not reply:
        return []
    if isinstance(reply, dict):
        out: list[tuple[bytes | str | None, Mapping[Any, Any] | None]] = []
        for value in reply.values():
            entries = value[0] if value and isinstance(value[0], list) else value
            out.extend((e[0], e[1]) for e in entries)
        return out
    return [(e[0], e[1]) for _, entries in reply for e in entries]


class Hedger:
    """Reads the hedge stream through a consumer group and prints orders (module docstring).

    Args:
        stream: the hedge stream (``{prefix}:hedge:stream``).
        group, consumer: the consumer group and this member's name.
        start: where a group created now starts: ``$`` (new entries) or ``0`` (all).
        min_contracts: legs smaller than this are not ordered.
        state: the processed position (:meth:`HedgerState.load`).
        state_path: where it is kept.
        stop: set to stop between two entries.
    """

    def __init__(
        self,
        *,
        stream: str,
        group: str,
        consumer: str,
        start: str,
        min_contracts: float,
        state: HedgerState,
        state_path: Path,
        stop: asyncio.Event,
    ) -> None:
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.start = start
        self.min_contracts = min_contracts
        self.state = state
        self.state_path = state_path
        self.stop = stop
        self.orders = 0
        self.entries = 0

    async def session(self, r: aioredis.Redis, connected: Backoff) -> None:
        """One connection's work: the group, this consumer's pending entries, then new ones."""
        await self._ensure_group(r)
        connected.reset()
        after = "0"  # own pending entries first: delivered before, never acknowledged
        while not self.stop.is_set():
            reply = await call(
                r.xreadgroup(self.group, self.consumer, {self.stream: after}, count=BATCH)
            )
            entries = _entries(reply)
            if not entries:
                break
            for entry_id, fields in entries:
                if self.stop.is_set():
                    return
                await self._entry(r, _text(entry_id), fields)
                after = _text(entry_id)
        logger.info("pending entries done, reading new ones", extra={"last_id": self.state.last_id})
        while not self.stop.is_set():
            reply = await call(
                r.xreadgroup(
                    self.group, self.consumer, {self.stream: ">"}, count=BATCH, block=BLOCK_MS
                ),
                BLOCK_MS / 1000 + TIMEOUT_S,
            )
            for entry_id, fields in _entries(reply):
                if self.stop.is_set():
                    return  # delivered, not acknowledged: pending, read first at the next start
                await self._entry(r, _text(entry_id), fields)

    async def _ensure_group(self, r: aioredis.Redis) -> None:
        try:
            await call(r.xgroup_create(self.stream, self.group, id=self.start, mkstream=True))
            logger.info(
                "consumer group created", extra={"group": self.group, "start_id": self.start}
            )
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await self._check_trimmed(r)

    async def _check_trimmed(self, r: aioredis.Redis) -> None:
        """Log when the stream dropped entries the group had not read (Redis >= 7)."""
        info = await call(r.xinfo_stream(self.stream))
        deleted = info.get("max-deleted-entry-id")
        groups = await call(r.xinfo_groups(self.stream))
        for g in groups:
            if _text(g.get("name")) == self.group and deleted is not None:
                delivered = _text(g.get("last-delivered-id"))
                if stream_id(deleted) > stream_id(delivered):
                    logger.warning(
                        "hedge entries were trimmed before this group read them",
                        extra={"last_delivered": delivered, "max_deleted": _text(deleted)},
                    )

    async def _entry(
        self, r: aioredis.Redis, entry_id: str, fields: Mapping[Any, Any] | None
    ) -> None:
        self.entries += 1
        if self.state.done(entry_id):
            logger.info("entry processed before a restart, acknowledging", extra={"id": entry_id})
            await call(r.xack(self.stream, self.group, entry_id))
            return
        orders: list[dict[str, Any]] = []
        raw = (fields or {}).get(b"data")
        if raw is None:
            logger.warning("pending entry no longer in the stream", extra={"id": entry_id})
        else:
            payload = decode_hedge(raw)
            if payload is not None:
                key = f"{payload['book']}:{payload['underlying']}"
                ts_ns = int(payload["ts_ns"])
                if ts_ns <= self.state.last_ts.get(key, -1):
                    logger.info(
                        "repeated hedge payload skipped", extra={"id": entry_id, "key": key}
                    )
                else:
                    orders = hedge_orders(entry_id, payload, self.min_contracts)
                    self.state.last_ts[key] = ts_ns
        self.state.last_id = entry_id
        try:
            await asyncio.to_thread(save_state, self.state_path, self.state)  # before print, XACK
        except OSError as exc:
            raise LocalError(f"state file {self.state_path}: {exc}") from exc
        if orders:
            try:
                sys.stdout.buffer.write(b"".join(orjson.dumps(o) + b"\n" for o in orders))
                sys.stdout.buffer.flush()
            except OSError as exc:  # e.g. the reader of a pipe went away
                raise LocalError(f"stdout: {exc}") from exc
            self.orders += len(orders)
        await call(r.xack(self.stream, self.group, entry_id))


# ---------------------------------------------------------------------------- shards

DIRECTORY_POLL_S: Final = 1.0  # how often the directory {prefix}:shards is read for new shards


@dataclass(frozen=True, slots=True)
class Source:
    """Where riskd's keys are: one server, or a Redis Cluster (``cluster``).

    On a cluster all the keys of one daemon share one slot (their base is a hash tag,
    docs/redis.md "Redis Cluster and shards"), so a base is read through a plain connection to
    the node that holds its slot, looked up with redis-py's cluster client at every
    (re)connection: transactions and blocking reads work there as on one server, and after a
    failover (``MOVED``, a refused connection) the reconnection finds the new holder.
    """

    url: str
    cluster: bool

    async def connect(self, key: str) -> aioredis.Redis:
        """A client of the server, or of the cluster node, that holds ``key``."""
        options: dict[str, Any] = {
            "socket_timeout": TIMEOUT_S + BLOCK_MS / 1000,
            "socket_connect_timeout": TIMEOUT_S,
            "retry": Retry(NoBackoff(), 0),  # the caller reconnects, with backoff
        }
        if not self.cluster:
            return aioredis.Redis.from_url(self.url, **options)
        rc = RedisCluster.from_url(self.url, socket_connect_timeout=TIMEOUT_S)
        try:
            await call(rc.initialize())
            node = rc.get_node_from_key(key)
        finally:
            await rc.aclose()
        if node is None:
            raise rexc.RedisClusterException(f"no node holds the slot of {key}")
        where: dict[str, Any] = {**parse_url(self.url), "host": node.host, "port": node.port}
        where["db"] = 0  # a cluster has only database 0
        return aioredis.Redis.from_pool(aioredis.ConnectionPool(**where, **options))

    async def directory(self, prefix: str) -> dict[str, str]:
        """Shard name -> the base of its keys, from the hash ``{prefix}:shards``."""
        r: aioredis.Redis | RedisCluster
        if self.cluster:
            r = RedisCluster.from_url(self.url, socket_connect_timeout=TIMEOUT_S)
        else:
            r = aioredis.Redis.from_url(self.url, socket_connect_timeout=TIMEOUT_S)
        try:
            raw = await call(r.hgetall(f"{prefix}:shards"))
        finally:
            await r.aclose()
        return {_text(name): str(orjson.loads(base)) for name, base in raw.items()}


async def follow_shards(
    source: Source,
    prefix: str,
    stop: asyncio.Event,
    follow: Callable[[str, str], Awaitable[int]],
    backoff: Backoff,
) -> int:
    """Runs ``follow(name, base)`` for every shard the directory lists, reading it again every
    :data:`DIRECTORY_POLL_S` for shards that start later, until ``stop``. The first follower
    that ends with a non-zero status stops the others; it is the status returned."""
    failed: list[int] = []

    async def one(name: str, base: str) -> None:
        status = await follow(name, base)
        if status != 0:
            failed.append(status)
            stop.set()

    running: set[str] = set()
    async with asyncio.TaskGroup() as tasks:
        while not stop.is_set():
            try:
                shards = await source.directory(prefix)
            except Exception as exc:
                retryable = classify(exc)
                if retryable is None:
                    raise
                if not retryable:
                    logger.error("redis error, giving up", extra={"error": f"{exc!r}"})
                    failed.append(1)
                    stop.set()
                    break
                delay_s = backoff.next_delay()
                logger.warning(
                    "shard directory unreadable, retrying",
                    extra={"error": f"{type(exc).__name__}: {exc}", "delay_s": round(delay_s, 3)},
                )
                await sleep_or_stop(stop, delay_s)
                continue
            backoff.reset()
            for name, base in sorted(shards.items()):
                if name not in running:
                    running.add(name)
                    logger.info("shard found", extra={"shard": name, "base": base})
                    tasks.create_task(one(name, base), name=f"shard {name}")
            await sleep_or_stop(stop, DIRECTORY_POLL_S)
    return failed[0] if failed else 0


# ---------------------------------------------------------------------------- the program


async def follow(hedger: Hedger, source: Source, backoff: Backoff, stop: asyncio.Event) -> int:
    """One hedger, reconnecting with ``backoff``, until ``stop``: 0; 1 after a Redis error a
    reconnection cannot fix, or when stdout or the state file cannot be written."""
    logger.info(
        "hedger started",
        extra={
            "stream": hedger.stream,
            "group": hedger.group,
            "consumer": hedger.consumer,
            "state": str(hedger.state_path),
            "last_id": hedger.state.last_id,
        },
    )
    while not stop.is_set():
        r: aioredis.Redis | None = None
        try:
            r = await source.connect(hedger.stream)
            await hedger.session(r, backoff)
        except LocalError as exc:
            logger.error("local write failed, stopping", extra={"error": str(exc)})
            return 1
        except Exception as exc:
            if isinstance(exc, rexc.ResponseError) and "NOGROUP" in str(exc):
                logger.warning("consumer group gone (Redis restarted?): creating it again")
                continue
            retryable = classify(exc)
            if retryable is None:
                raise
            if not retryable:
                logger.error("redis error, giving up", extra={"error": f"{exc!r}"})
                return 1
            delay_s = backoff.next_delay()
            logger.warning(
                "redis unavailable, reconnecting",
                extra={"error": f"{type(exc).__name__}: {exc}", "delay_s": round(delay_s, 3)},
            )
            await sleep_or_stop(stop, delay_s)
        finally:
            if r is not None:
                await r.aclose()
    logger.info(
        "hedger stopped",
        extra={"stream": hedger.stream, "entries": hedger.entries, "orders": hedger.orders},
    )
    return 0


async def run(args: argparse.Namespace) -> int:
    """The hedger until SIGINT/SIGTERM: 0; 1 after a Redis error a reconnection cannot fix,
    or when stdout or the state file cannot be written; 2 when the state file is another
    consumer's or unreadable."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # a second signal: leave at once
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    source = Source(args.redis_url, args.cluster)
    state_file: Path = args.state or Path(f"hedger.{args.group}.{args.consumer}.state.json")

    def hedger(base: str, state_path: Path) -> Hedger | None:
        stream = f"{base}:hedge:stream"
        try:
            state = HedgerState.load(state_path, stream, args.group, args.consumer)
        except (ValueError, KeyError, TypeError, OSError) as exc:
            logger.error("state file refused", extra={"path": str(state_path), "error": str(exc)})
            return None
        return Hedger(
            stream=stream,
            group=args.group,
            consumer=args.consumer,
            start="$" if args.start == "new" else "0",
            min_contracts=args.min_contracts,
            state=state,
            state_path=state_path,
            stop=stop,
        )

    def backoff() -> Backoff:
        return Backoff(args.reconnect_initial_s, args.reconnect_max_s)

    if not (args.cluster or args.shards):
        one = hedger(args.prefix, state_file)
        return 2 if one is None else await follow(one, source, backoff(), stop)

    async def shard(name: str, base: str) -> int:
        one = hedger(base, state_file.with_name(f"{state_file.name}.{name}"))
        return 2 if one is None else await follow(one, source, backoff(), stop)

    return await follow_shards(source, args.prefix, stop, shard, backoff())


class JsonFormatter(logging.Formatter):
    """One JSON object per log record: ``ts``, ``level``, ``logger``, ``msg``, then extras."""

    _STANDARD: Final = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
        "message",
        "asctime",
    }

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update((k, v) for k, v in record.__dict__.items() if k not in self._STANDARD)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(out, default=str).decode()


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.hedger",
        description="Turn riskd's hedge payloads ({prefix}:hedge:stream, read through a Redis "
        "consumer group) into hedge orders, printed as JSON lines on stdout (not sent). Each "
        "entry is acknowledged after its orders are printed; a restart resumes with this "
        "consumer's pending entries, skipping those its state file marks as processed. Logs "
        "JSON lines on stderr. SIGINT/SIGTERM stop it.",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("RISKD_REDIS_URL", DEFAULT_URL),
        help=f"Redis to read (default: $RISKD_REDIS_URL, else {DEFAULT_URL})",
    )
    p.add_argument("--prefix", default="risk", help="riskd's [redis] prefix (default: risk)")
    p.add_argument("--group", default="hedger", help="consumer group name (default: hedger)")
    p.add_argument(
        "--consumer",
        default=socket.gethostname(),
        help="this member's name in the group; keep it across restarts, its pending entries "
        "are its own (default: the host name)",
    )
    p.add_argument(
        "--state",
        metavar="FILE",
        type=Path,
        help="the last entry processed, written (fsynced) before each XACK "
        "(default: hedger.GROUP.CONSUMER.state.json in the current directory)",
    )
    p.add_argument(
        "--min-contracts",
        type=_non_negative,
        default=1.0,
        help="skip legs of fewer contracts than this, in absolute value (default: 1)",
    )
    p.add_argument(
        "--start",
        choices=("new", "all"),
        default="new",
        help="where a consumer group created now starts: new = entries published from now on "
        "(XGROUP CREATE at $), all = every entry the stream holds (at 0); an existing group "
        "goes on from its own position (default: new)",
    )
    p.add_argument(
        "--reconnect-initial-s",
        type=_positive,
        default=0.2,
        help="first Redis reconnection delay, doubling, jittered (default: 0.2)",
    )
    p.add_argument(
        "--reconnect-max-s",
        type=_positive,
        default=5.0,
        help="Redis reconnection delay cap (default: 5)",
    )
    p.add_argument(
        "--cluster",
        action="store_true",
        help="--redis-url names a node of a Redis Cluster ([redis] cluster = true): read the "
        "shard directory {prefix}:shards and follow every daemon it lists (implies --shards)",
    )
    p.add_argument(
        "--shards",
        action="store_true",
        help="riskd runs as shards ([cluster]) on one server: read the directory "
        "{prefix}:shards and read each shard's hedges ({base}:hedge:stream) in the group, "
        "with the state kept per shard in STATE.NAME; new shards are picked up as they appear",
    )
    p.add_argument("--log-level", default="INFO", help="logging level (default: INFO)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=args.log_level.upper(), handlers=[handler])
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
