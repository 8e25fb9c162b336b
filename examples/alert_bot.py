"""Alerting bot: riskd's alert transitions to stdout or a webhook, none missed, none repeated.

Run ``python -m examples.alert_bot --help``. Each alert transition the daemon publishes
(``raised`` or ``cleared``, docs/redis.md "Alert payload") is forwarded once: as one JSON line
on stdout, or as an HTTP POST of the same JSON to ``--webhook`` (retried with capped, jittered
exponential backoff; after ``--retries`` retries it is logged as ``webhook delivery failed`` and
the bot goes on). Logs are JSON lines on stderr.

Where the alerts come from
--------------------------
riskd writes every transition three ways: ``{prefix}:alerts`` (pub/sub), ``{prefix}:alerts:stream``
(a stream trimmed to about ``stream_maxlen`` entries) and ``{prefix}:alerts:active`` (a hash: alert
id -> its latest ``raised`` payload, deleted when it clears). Pub/sub delivers only to a connected
subscriber: what is published while the bot reconnects, or is down, is gone. The stream keeps it,
so the bot follows the stream with ``XREAD`` from the last entry id it processed (its *cursor*);
Redis itself makes that exactly the entries after the cursor, in order. The hash is the current
state, read only when the stream cannot account for what happened since the cursor:

* at the first start (no ``--state`` file, or no cursor yet),
* after Redis restarted (its ``run_id`` changed: a Redis without persistence lost the stream),
* when entries after the cursor were trimmed away before the bot read them (``XINFO STREAM``:
  ``max-deleted-entry-id`` beyond the cursor; the bot was away longer than the stream holds).

A *resync* then reads the hash and the stream's newest entries in one ``MULTI`` (the stream's
newest id is the new cursor, the analogue of "subscribe first, then read the snapshot": nothing
after it can be missed, it is read from the stream next). It waits for riskd's heartbeat key
(``{prefix}:heartbeat``) first: riskd rebuilds the hash in the pipeline that writes the heartbeat
after each (re)connection, so without a heartbeat (riskd down, or not yet back after a Redis
restart) the hash may be empty or left by an earlier run. riskd writes each transition's
``XADD`` before its ``HSET``/``HDEL`` but not atomically, so the hash may lag the stream by the
transitions of one daemon pipeline; per alert id the newer (by ``ts_ns``) of the hash's payload and
the stream tail's last transition wins. The bot then forwards what differs from what it had
reported: a ``raised`` for each active alert it has not reported, and a ``cleared`` for each alert
it had reported raised that is no longer active (the stream tail's real ``cleared`` payload if it
holds one, else a *synthetic* one: the last ``raised`` payload with ``"state": "cleared"``,
``"value": null``, the bot's clock in ``ts``/``ts_ns`` and ``"synthetic": true``). After a gap
the bot so reports the current state, not every transition of the gap.

De-duplication
--------------
A transition is identified by ``(id, state, ts_ns)``: per id, transitions alternate ``raised``,
``cleared``, ... and each carries the time of the engine cycle that caused it, so two distinct
transitions of one alert never share the triple (unless a replayed file's clock repeats a cycle
time for a raise, clear and raise of one rule within one cycle). The key de-duplicates what the
snapshot of a resync delivered against the stream entries that follow, and the daemon's own
repeats: riskd's delivery is at least once (a pipeline that failed half-way is sent again whole,
so the stream may hold a transition twice). The bot remembers the last 1024 keys.

Guarantees
----------
With ``--state FILE`` the cursor, the Redis ``run_id``, the alerts reported raised and the recent
keys are written to FILE (atomically, fsynced) after each stream entry, so a restarted bot
resumes at its cursor: every transition exactly once across restarts and Redis reconnections,
within the stream's retention (beyond it, or after Redis restarted empty, the current state as
above). A transition forwarded
and not yet recorded when the bot is killed (``kill -9``, power loss) is forwarded again at the
next start: at least once, never lost (a webhook receiver can de-duplicate on the
``Idempotency-Key`` header, ``{id}:{state}:{ts_ns}``). SIGINT/SIGTERM stop the bot between two
transitions (a webhook being retried is abandoned and sent again at the next start). Without
``--state`` the cursor lives in memory: reconnections lose nothing, a restart begins with a resync
(and re-reports the alerts active then).

Not covered: a restarted riskd drops the alerts of its earlier run from the hash without a
``cleared`` (docs/redis.md "Start, restart and shutdown"); a bot following the stream sees no
transition for them until its next resync.

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
import http.client
import logging
import os
import random
import signal
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Protocol, TypeVar
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

__all__ = [
    "AlertBot",
    "BotState",
    "Source",
    "StdoutForwarder",
    "WebhookForwarder",
    "active_now",
    "alert_key",
    "follow_shards",
    "main",
    "transitions",
]

logger = logging.getLogger("examples.alert_bot")

SCHEMA_VERSIONS: Final = frozenset({2, 3, 4})
"""Alert payload versions this bot understands (docs/redis.md "Versioning"): 3 and 4 have the
fields of 2 that it reads, typed the same (a predecessor's payloads may still be v2)."""
STATE_VERSION: Final = 1
SEEN_MAX: Final = 1024  # transition keys remembered for de-duplication
TAIL: Final = 256  # stream entries read with the hash at a resync
BLOCK_MS: Final = 500  # XREAD BLOCK: how soon a stop request is seen while idle
BATCH: Final = 100  # stream entries per XREAD
TIMEOUT_S: Final = 5.0  # every Redis call (and a webhook POST)
HEARTBEAT_POLL_S: Final = 0.2  # a resync waits for riskd's heartbeat, polling this often
DEFAULT_URL: Final = "redis://127.0.0.1:6379/0"
ZERO_ID: Final = "0-0"

Key = tuple[str, str, int]
"""A transition's identity: (alert id, state, ts_ns)."""

T = TypeVar("T")


class Stopped(Exception):  # noqa: N818 - a signal, not an error
    """A stop was requested while a delivery waited to retry: the transition is not recorded."""


class LocalError(Exception):
    """Writing locally failed (stdout closed, the state file): fatal, not a Redis error."""


# ---------------------------------------------------------------------------- pure parts


def stream_id(raw: bytes | str) -> tuple[int, int]:
    """A stream entry id (``"1732406400000-3"``) as a tuple that compares like Redis does."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def alert_key(payload: Mapping[str, Any]) -> Key:
    """The de-duplication key of a transition: ``(id, state, ts_ns)``."""
    return str(payload["id"]), str(payload["state"]), int(payload["ts_ns"])


def decode_alert(raw: bytes | str | None) -> dict[str, Any] | None:
    """An alert payload, or None (logged) when it is not one of a version this bot knows."""
    try:
        payload = orjson.loads(raw) if raw is not None else None
    except orjson.JSONDecodeError:
        payload = None
    if (
        isinstance(payload, dict)
        and payload.get("v") in SCHEMA_VERSIONS
        and isinstance(payload.get("id"), str)
        and payload.get("state") in ("raised", "cleared")
        and isinstance(payload.get("ts_ns"), int)
    ):
        return payload
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    logger.warning("alert payload skipped: unknown version or malformed", extra={"raw": text[:200]})
    return None


def active_now(
    snapshot: Mapping[str, dict[str, Any]], tail: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The alerts raised now: the active hash, corrected by the stream's newest transitions.

    riskd writes a transition's ``XADD`` before its ``HSET``/``HDEL``, in a pipeline that is not
    a transaction: a read of both may fall between, and the hash then lags the stream. Per id,
    the newer (by ``ts_ns``) of the hash's payload and the tail's last transition wins.

    Args:
        snapshot: alert id -> the hash's payload (``raised``).
        tail: the stream's newest transitions up to the cut, oldest first.

    Returns:
        alert id -> its ``raised`` payload, for the alerts active at the cut.
    """
    active = dict(snapshot)
    last: dict[str, dict[str, Any]] = {}
    for payload in tail:
        last[payload["id"]] = payload
    for alert_id, payload in last.items():
        held = active.get(alert_id)
        if held is not None and held["ts_ns"] >= payload["ts_ns"]:
            continue  # the hash is as new (or newer: rebuilt by a reconnecting daemon)
        if payload["state"] == "raised":
            active[alert_id] = payload
        else:
            active.pop(alert_id, None)
    return active


def transitions(
    reported: Mapping[str, dict[str, Any]],
    active: Mapping[str, dict[str, Any]],
    tail: Sequence[dict[str, Any]],
    now_ns: int,
) -> list[dict[str, Any]]:
    """What a resync forwards to take a consumer from ``reported`` to ``active``.

    Args:
        reported: alert id -> the ``raised`` payload last forwarded (not cleared since).
        active: alert id -> ``raised`` payload, the alerts active now (:func:`active_now`).
        tail: the stream's newest transitions, oldest first: a ``cleared`` found there is
            forwarded as it is, else one is made up (``"synthetic": true``).
        now_ns: the time stamped on a synthetic ``cleared``.

    Returns:
        The ``cleared`` transitions of alerts reported raised that are not active now (or were
        raised again since), then the ``raised`` payloads not reported, oldest first.
    """
    cleared_in_tail: dict[str, dict[str, Any]] = {}
    for payload in tail:
        if payload["state"] == "cleared":
            cleared_in_tail[payload["id"]] = payload
    out: list[dict[str, Any]] = []
    for alert_id, raised in reported.items():
        now = active.get(alert_id)
        if now is not None and now["ts_ns"] == raised["ts_ns"]:
            continue  # still the same raise
        real = cleared_in_tail.get(alert_id)
        if real is not None and real["ts_ns"] >= raised["ts_ns"]:
            out.append(real)
        else:
            out.append(
                {
                    **raised,
                    "ts": now_ns // 1_000_000,
                    "ts_ns": now_ns,
                    "state": "cleared",
                    "value": None,
                    "synthetic": True,
                }
            )
    fresh = [
        p
        for alert_id, p in active.items()
        if alert_id not in reported or reported[alert_id]["ts_ns"] != p["ts_ns"]
    ]
    out += sorted(fresh, key=lambda p: int(p["ts_ns"]))
    return out


@dataclass(slots=True)
class BotState:
    """What the bot knows, kept in ``--state`` (JSON) across restarts.

    Attributes:
        stream: the alerts stream it belongs to (a state of another stream is not used).
        run_id: the Redis server's ``run_id`` when the cursor was taken.
        cursor: the id of the last stream entry processed (None: resync first).
        reported: alert id -> the ``raised`` payload last forwarded and not cleared since.
        seen: the keys of the last :data:`SEEN_MAX` transitions forwarded, oldest first.
    """

    stream: str
    run_id: str | None = None
    cursor: str | None = None
    reported: dict[str, dict[str, Any]] = field(default_factory=dict)
    seen: OrderedDict[Key, None] = field(default_factory=OrderedDict)

    def remember(self, key: Key) -> None:
        """Record ``key`` as forwarded (the oldest beyond :data:`SEEN_MAX` is forgotten)."""
        self.seen[key] = None
        self.seen.move_to_end(key)
        while len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)

    def record(self, payload: Mapping[str, Any]) -> None:
        """Record a forwarded transition: its key, and the alert's state."""
        self.remember(alert_key(payload))
        if payload["state"] == "raised":
            self.reported[payload["id"]] = dict(payload)
        else:
            self.reported.pop(payload["id"], None)

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "v": STATE_VERSION,
                "stream": self.stream,
                "run_id": self.run_id,
                "cursor": self.cursor,
                "reported": self.reported,
                "seen": [list(k) for k in self.seen],
            }
        )

    @classmethod
    def from_json(cls, data: bytes, stream: str) -> BotState:
        """Parse a state file; ``ValueError`` when it is not one of ``stream``'s."""
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("v") != STATE_VERSION:
            raise ValueError("not an alert bot state file of a known version")
        if raw.get("stream") != stream:
            raise ValueError(f"the state of stream {raw.get('stream')!r}, not {stream!r}")
        seen: OrderedDict[Key, None] = OrderedDict()
        for alert_id, state, ts_ns in raw["seen"]:
            seen[(str(alert_id), str(state), int(ts_ns))] = None
        return cls(
            stream=stream,
            run_id=raw["run_id"],
            cursor=raw["cursor"],
            reported=dict(raw["reported"]),
            seen=seen,
        )


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: written to a temporary file, fsynced, renamed, the
    directory fsynced. A crash leaves the old file or the new one, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_state(path: Path | None, stream: str) -> BotState:
    """The state in ``path``; a fresh one (resync first) when there is none or it is unusable."""
    if path is None or not path.exists():
        return BotState(stream=stream)
    try:
        return BotState.from_json(path.read_bytes(), stream)
    except (ValueError, KeyError, TypeError) as exc:
        logger.warning("state file unusable, starting with a resync", extra={"error": str(exc)})
        return BotState(stream=stream)


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


class Forwarder(Protocol):
    """Where transitions go."""

    @property
    def name(self) -> str:
        """Where it sends, for the log."""
        ...

    async def send(self, data: bytes, key: Key) -> bool:
        """Deliver ``data`` (one alert's JSON); False when given up (logged)."""
        ...


class StdoutForwarder:
    """One JSON line per transition on stdout, flushed at once."""

    name = "stdout"

    async def send(self, data: bytes, key: Key) -> bool:
        out = sys.stdout.buffer
        try:
            out.write(data + b"\n")
            out.flush()
        except OSError as exc:  # e.g. the reader of a pipe went away
            raise LocalError(f"stdout: {exc}") from exc
        return True


def post(url: str, data: bytes, headers: Mapping[str, str], timeout_s: float) -> int:
    """POST ``data`` to ``url`` (blocking; run in a thread) and return the HTTP status."""
    parts = urlsplit(url)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout_s)
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn.request("POST", path, body=data, headers=dict(headers))
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


@dataclass(slots=True)
class WebhookForwarder:
    """HTTP POST of each transition's JSON to ``url``.

    A 2xx status is a delivery. A network error, a timeout, 408, 429 or 5xx is retried up to
    ``retries`` times after capped, jittered exponential backoff (``initial_s`` doubling to
    ``max_s``); another status (a 4xx: the request itself is refused) is not. Giving up is
    logged (``webhook delivery failed``) and the bot goes on. Each request carries
    ``Idempotency-Key: {id}:{state}:{ts_ns}``.
    """

    url: str
    retries: int
    stop: asyncio.Event
    initial_s: float = 0.5
    max_s: float = 30.0
    timeout_s: float = TIMEOUT_S

    @property
    def name(self) -> str:
        return self.url

    async def send(self, data: bytes, key: Key) -> bool:
        backoff = Backoff(self.initial_s, self.max_s)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "riskd-alert-bot",
            "Idempotency-Key": f"{key[0]}:{key[1]}:{key[2]}",
        }
        attempt = 0
        while True:
            attempt += 1
            status: int | None = None
            error = ""
            try:
                status = await asyncio.to_thread(post, self.url, data, headers, self.timeout_s)
            except (OSError, http.client.HTTPException) as exc:
                error = f"{type(exc).__name__}: {exc}"
            if status is not None and 200 <= status < 300:
                return True
            retryable = status is None or status in (408, 429) or status >= 500
            extra = {"alert": key[0], "state": key[1], "status": status, "error": error}
            if not retryable or attempt > self.retries:
                logger.error("webhook delivery failed", extra={**extra, "attempts": attempt})
                return False
            delay_s = backoff.next_delay()
            logger.warning(
                "webhook attempt failed, retrying",
                extra={**extra, "attempt": attempt, "delay_s": round(delay_s, 3)},
            )
            if await sleep_or_stop(self.stop, delay_s):
                raise Stopped


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis names the bot reads."""

    stream: str
    active: str
    heartbeat: str

    @classmethod
    def of(cls, prefix: str) -> Keys:
        return cls(
            stream=f"{prefix}:alerts:stream",
            active=f"{prefix}:alerts:active",
            heartbeat=f"{prefix}:heartbeat",
        )


class AlertBot:
    """Follows the alerts stream, resyncs from the active hash when needed, forwards each
    transition once (see the module docstring).

    Args:
        keys: the Redis names.
        forwarder: where transitions go.
        state: the bot's state (:func:`load_state`).
        state_path: where the state is kept (None: in memory only).
        stop: set to stop between two transitions.
    """

    def __init__(
        self,
        keys: Keys,
        forwarder: Forwarder,
        state: BotState,
        state_path: Path | None,
        stop: asyncio.Event,
    ) -> None:
        self.keys = keys
        self.forwarder = forwarder
        self.state = state
        self.state_path = state_path
        self.stop = stop
        self.forwarded = 0
        self.duplicates = 0

    async def session(self, r: aioredis.Redis, connected: Backoff) -> None:
        """One connection's work: resync if needed, then follow the stream until stopped."""
        info = await call(r.info("server"))
        run_id = str(info["run_id"])
        connected.reset()
        logger.info("redis connected", extra={"run_id": run_id, "cursor": self.state.cursor})
        if await self._needs_resync(r, run_id):
            await self._resync(r, run_id)
        while not self.stop.is_set():
            cursor = self.state.cursor or ZERO_ID
            reply = await call(
                r.xread({self.keys.stream: cursor}, count=BATCH, block=BLOCK_MS),
                BLOCK_MS / 1000 + TIMEOUT_S,
            )
            for entry_id, fields in _entries(reply):
                if self.stop.is_set():
                    return
                await self._entry(entry_id, fields)

    async def _needs_resync(self, r: aioredis.Redis, run_id: str) -> bool:
        state = self.state
        if state.cursor is None:
            logger.info("no cursor: resync")
            return True
        if state.run_id != run_id:
            logger.warning(
                "redis restarted (new run_id): resync", extra={"was": state.run_id, "now": run_id}
            )
            return True
        try:
            info = await call(r.xinfo_stream(self.keys.stream))
        except rexc.ResponseError:  # no such key
            gone = state.cursor != ZERO_ID
            if gone:
                logger.warning("alerts stream gone: resync")
            return gone
        cursor = stream_id(state.cursor)
        deleted = info.get("max-deleted-entry-id")
        if deleted is not None:
            trimmed = stream_id(deleted) > cursor
        else:  # Redis < 7: entries before the first may have followed the cursor
            first = info.get("first-entry")
            trimmed = first is not None and first[0] is not None and stream_id(first[0]) > cursor
        if trimmed:
            logger.warning(
                "entries after the cursor were trimmed: resync", extra={"cursor": state.cursor}
            )
        return trimmed

    async def _resync(self, r: aioredis.Redis, run_id: str) -> None:
        waiting = False
        while True:
            async with r.pipeline(transaction=True) as pipe:
                pipe.exists(self.keys.heartbeat)
                pipe.hgetall(self.keys.active)
                pipe.xrevrange(self.keys.stream, "+", "-", count=TAIL)
                alive, snapshot_raw, tail_raw = await call(pipe.execute())
            if alive:
                break
            # riskd rebuilds the hash in the pipeline that writes the heartbeat: without one
            # (riskd down, or not yet back after a Redis restart) the hash may be empty or old.
            if not waiting:
                logger.info("waiting for riskd's heartbeat before reading the active hash")
                waiting = True
            if await sleep_or_stop(self.stop, HEARTBEAT_POLL_S):
                raise Stopped
        snapshot: dict[str, dict[str, Any]] = {}
        for alert_id, raw in snapshot_raw.items():
            payload = decode_alert(raw)
            if payload is not None:
                snapshot[alert_id.decode() if isinstance(alert_id, bytes) else alert_id] = payload
        entries = list(reversed(tail_raw))
        tail = [p for _, f in entries if (p := decode_alert((f or {}).get(b"data"))) is not None]
        cut = _text(entries[-1][0]) if entries else ZERO_ID
        active = active_now(snapshot, tail)
        todo = transitions(self.state.reported, active, tail, time.time_ns())
        for payload in todo:
            await self._deliver(payload)
            await self._save()
        self.state.run_id = run_id
        self.state.cursor = cut
        await self._save()
        logger.info(
            "resynced from the active hash",
            extra={"active": len(active), "forwarded": len(todo), "cursor": cut},
        )

    async def _entry(self, entry_id: bytes | str | None, fields: Mapping[Any, Any] | None) -> None:
        payload = decode_alert((fields or {}).get(b"data"))
        if payload is not None:
            await self._deliver(payload)
        self.state.cursor = _text(entry_id)
        await self._save()

    async def _deliver(self, payload: dict[str, Any]) -> None:
        key = alert_key(payload)
        if key in self.state.seen:
            self.duplicates += 1
            logger.info(
                "duplicate transition skipped",
                extra={"alert": key[0], "state": key[1], "ts_ns": key[2]},
            )
            return
        await self.forwarder.send(orjson.dumps(payload), key)
        self.forwarded += 1
        self.state.record(payload)

    async def _save(self) -> None:
        if self.state_path is not None:
            try:
                await asyncio.to_thread(write_atomic, self.state_path, self.state.to_json())
            except OSError as exc:
                raise LocalError(f"state file {self.state_path}: {exc}") from exc


def _text(raw: bytes | str | None) -> str:
    if raw is None:
        raise ValueError("a stream entry without an id")
    return raw.decode() if isinstance(raw, bytes) else raw


def _entries(reply: Any) -> list[tuple[bytes | str | None, Mapping[Any, Any] | None]]:
    """The entries of a one-stream XREAD reply (RESP2 list or RESP3 dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        streams = list(reply.values())
        out: list[tuple[bytes | str | None, Mapping[Any, Any] | None]] = []
        for value in streams:
            entries = value[0] if value and isinstance(value[0], list) else value
            out.extend((e[0], e[1]) for e in entries)
        return out
    return [(e[0], e[1]) for _, entries in reply for e in entries]


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


async def follow(bot: AlertBot, source: Source, backoff: Backoff, stop: asyncio.Event) -> int:
    """One bot, reconnecting with ``backoff``, until ``stop``: 0; 1 after a Redis error a
    reconnection cannot fix, or when stdout or the state file cannot be written."""
    logger.info(
        "alert bot started",
        extra={"stream": bot.keys.stream, "to": bot.forwarder.name, "cursor": bot.state.cursor},
    )
    while not stop.is_set():
        r: aioredis.Redis | None = None
        try:
            r = await source.connect(bot.keys.stream)
            await bot.session(r, backoff)
        except Stopped:
            break
        except LocalError as exc:
            logger.error("local write failed, stopping", extra={"error": str(exc)})
            return 1
        except Exception as exc:
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
        "alert bot stopped",
        extra={"stream": bot.keys.stream, "forwarded": bot.forwarded, "duplicates": bot.duplicates},
    )
    return 0


async def run(args: argparse.Namespace) -> int:
    """The bot until SIGINT/SIGTERM: 0; 1 after a Redis error a reconnection cannot fix, or
    when stdout or the state file cannot be written."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal(signum: int) -> None:
        if stop.is_set():
            os._exit(128 + signum)  # a second signal: leave at once
        logger.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal, sig)

    forwarder: Forwarder
    if args.webhook:
        forwarder = WebhookForwarder(
            args.webhook, args.retries, stop, args.retry_initial_s, args.retry_max_s
        )
    else:
        forwarder = StdoutForwarder()
    source = Source(args.redis_url, args.cluster)

    def bot(base: str, state_path: Path | None) -> AlertBot:
        keys = Keys.of(base)
        return AlertBot(keys, forwarder, load_state(state_path, keys.stream), state_path, stop)

    def backoff() -> Backoff:
        return Backoff(args.reconnect_initial_s, args.reconnect_max_s)

    if not (args.cluster or args.shards):
        return await follow(bot(args.prefix, args.state), source, backoff(), stop)

    async def shard(name: str, base: str) -> int:
        state_path = (
            None if args.state is None else args.state.with_name(f"{args.state.name}.{name}")
        )
        return await follow(bot(base, state_path), source, backoff(), stop)

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


def _webhook_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"not an http(s) URL: {text!r}")
    return text


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0: {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0: {text}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m examples.alert_bot",
        description="Forward riskd's alert transitions (raised/cleared), each once, to stdout "
        "(one JSON line each) or to a webhook (HTTP POST of the JSON). Follows the stream "
        "{prefix}:alerts:stream from its cursor; reads {prefix}:alerts:active at the first "
        "start, after a Redis restart or when the stream was trimmed past the cursor. Logs "
        "JSON lines on stderr. SIGINT/SIGTERM stop it.",
    )
    p.add_argument(
        "--redis-url",
        default=os.environ.get("RISKD_REDIS_URL", DEFAULT_URL),
        help=f"Redis to read (default: $RISKD_REDIS_URL, else {DEFAULT_URL})",
    )
    p.add_argument("--prefix", default="risk", help="riskd's [redis] prefix (default: risk)")
    p.add_argument(
        "--webhook",
        metavar="URL",
        type=_webhook_url,
        help="POST each transition's JSON to this http(s) URL instead of printing it",
    )
    p.add_argument(
        "--retries",
        type=_non_negative_int,
        default=5,
        help="webhook retries after a failed attempt (network error, 408, 429, 5xx) before "
        "the transition is logged as undelivered and skipped (default: 5)",
    )
    p.add_argument(
        "--retry-initial-s",
        type=_positive,
        default=0.5,
        help="first webhook retry delay, doubling, jittered (default: 0.5)",
    )
    p.add_argument(
        "--retry-max-s", type=_positive, default=30.0, help="webhook retry delay cap (default: 30)"
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
        "--state",
        metavar="FILE",
        type=Path,
        help="keep the cursor and what was forwarded in FILE, so a restart resumes where it "
        "stopped (default: in memory; a restart then begins from the active hash)",
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
        "{prefix}:shards and follow each shard's alerts ({base}:alerts:stream), with --state "
        "FILE kept per shard in FILE.NAME; new shards are picked up as they appear",
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
