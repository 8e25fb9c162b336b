"""The Redis sink: payloads and alerts out to Redis as soon as they come, batched, resilient.

Keys (``{p}`` is the sink's :attr:`RedisSink.base`: :attr:`RedisConfig.prefix`, ``risk`` by
default; on a Redis Cluster ``{risk}``, for a shard ``{risk:NAME}``, a hash tag that puts every
key of the sink in one slot, :mod:`engine.runtime.redis_link`; docs/redis.md)::

    {p}:exposure            channel  one message per changed exposure key (JSON payload)
    {p}:exposure:stream     stream   the same messages, field "data", trimmed ~stream_maxlen
    {p}:snapshot            hash     exposure key -> its latest payload
    {p}:{family}            channel  likewise for each other family of engine.outputs.FAMILIES
    {p}:{family}:stream     stream   (var, ..., liquidity, slippage)
    {p}:{family}:snapshot   hash
    {p}:alerts              channel  alert transitions, in order
    {p}:alerts:stream       stream   the same, field "data", trimmed ~stream_maxlen
    {p}:alerts:active       hash     alert id -> its latest "raised" payload (gone once cleared)
    {p}:heartbeat           string   {engine counters..., "v", "ts", ...}, expires after the TTL
    {p}:writer              string   this sink's token: proof that Redis still holds our keys
    {p}:vectors             hash     a shard's P&L vectors (:meth:`WholeHashes.replace`),
                                     replaced whole (one script) with each write
    {prefix}:shards         hash     shard name -> its base (JSON), with every heartbeat; only
                                     for a tagged base

:meth:`RedisSink.publish` and :meth:`RedisSink.alert` never block and never raise: they only
record, and wake the writer. :meth:`RedisSink.run` writes what was recorded at once, in one
``pipeline(transaction=False)`` (the payloads through one Lua script call per family and
batch: :data:`_PUBLISH`); what is recorded while a write is in flight goes out together in the
next. Periodic payloads (a full reprice's refresh of every key, the risk periods' figures) are
recorded as *background*: each write takes every change first and then at most
:data:`BACKGROUND_BYTES` of them, so a change never waits behind a whole period's payloads.
When a key is published is the engine's to decide (:mod:`engine.schedule`): the sink
writes what it is given. What is held while Redis is away, and what happens when it is full:

- payloads of every family: the latest per key (conflated: a burst on one key holds one
  payload); bounded by the number of keys.
- alerts: a FIFO of ``alert_queue`` transitions; when full the oldest is dropped and counted
  (``stats.dropped_alerts``); the active-alerts hash is still rebuilt right on reconnection.

After every (re)connection the sink re-publishes the latest payload of every key it ever
published and rebuilds ``{p}:alerts:active`` from its own view (atomically, in one script), so a
Redis that restarted empty holds the full picture again. Before its first write the sink reads
the alerts a predecessor (an earlier run under the same prefix) left in that hash and ends each
with a ``cleared`` transition (``"reason": "restart"``), ahead of its own; those still true are
raised again.

Every new connection first asks the server who it is (``INFO server``: its ``run_id``) and reads
``{p}:writer``. A different ``run_id`` (Redis restarted, possibly from an older snapshot, or
another server took the address) or a missing token (the keys were flushed) means Redis no
longer holds what the sink wrote: the write that opened the connection is not sent, and the
sink rewrites every key it owns first (every family's latest payloads, ``alerts:active``,
the heartbeat, the token), so a consumer never reads the empty or stale keys as the daemon's
state. This catches a restart that no write noticed (killed and back between two writes: the
next write simply opens a new connection).

Delivery is at least once: consumers of the channels and streams may see a payload twice (same
``ts``) after a reconnection or a cancelled write.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec
from redis import exceptions as rexc
from redis.asyncio.client import Pipeline
from redis.asyncio.cluster import ClusterPipeline
from redis.asyncio.connection import AbstractConnection
from redis.typing import EncodableT

from engine.clock import Clock
from engine.errors import SinkError
from engine.outputs import (
    AlertPayload,
    EngineStatus,
    Heartbeat,
    Payload,
    encode,
    encode_heartbeat,
)
from engine.retry import Backoff, Failure
from engine.runtime.alert_queue import AlertQueue
from engine.runtime.clock import MonotonicClock
from engine.runtime.logs import sampled
from engine.runtime.redis_link import (
    UNSHARDED,
    Keys,
    RedisConfig,
    key_base,
    make_client,
    probe,
    redact_url,
)

__all__ = [
    "Keys",
    "RedisConfig",
    "RedisSink",
    "SinkStats",
    "WholeHashes",
    "classify",
    "redact_url",
]

logger = logging.getLogger(__name__)


Pipe = Pipeline | ClusterPipeline
"""A pipeline to one server or, on a Redis Cluster, one per node (redis-py groups them)."""

_NS_PER_MS: Final = 1_000_000

_PUBLISH: Final = """
local maxlen = ARGV[1]
local n = #ARGV
for i = 3, n, 2 do
  redis.call('{publish}', KEYS[3], ARGV[i])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', 'data', ARGV[i])
end
for i = 2, n, 200 do
  redis.call('HSET', KEYS[2], unpack(ARGV, i, math.min(i + 199, n)))
end
return (n - 1) / 2
"""
"""Lua run by EVAL with KEYS = (stream, snapshot hash, channel), ARGV = (stream maxlen, key1,
payload1, key2, payload2, ...): for each payload the PUBLISH (``SPUBLISH`` on a Redis Cluster
of version 7 or later: the channel is declared as a key, in the slot of the others) and the
XADD, in order, then the snapshot fields. One command per batch instead of two per payload and
one more: the client's packing and reply parsing of each command cost more than building and
encoding the payload."""
_SCRIPTS: Final = {
    False: _PUBLISH.replace("{publish}", "PUBLISH"),
    True: _PUBLISH.replace("{publish}", "SPUBLISH"),
}
_SCRIPT_PAYLOADS: Final = 256  # payloads per EVAL: a script blocks Redis while it runs


@dataclass(slots=True)
class SinkStats:
    """Counters of the Redis sink, read by the runtime for logs, readiness and the heartbeat.

    Attributes:
        published: exposure payloads written (channel + stream + snapshot), re-publications
            after a reconnection included.
        alerts: alert transitions written.
        pipelines: pipelines executed successfully.
        errors: failed writes (each followed by a backoff and a reconnection attempt).
        reconnects: successful connections after a failure.
        resyncs: rewrites of every key (the first write, each reconnection, and a server found
            restarted or flushed on a new connection).
        server_changes: new connections that found Redis restarted or our keys gone when no
            failed write had told (a rewrite was not already due).
        connected: whether the last write (or connection attempt) succeeded.
        dropped_alerts: alert transitions dropped because the queue was full.
        bad_payloads: payloads dropped because they could not be encoded as JSON.
        pending: exposure keys waiting to be written.
        queued_alerts: alert transitions waiting to be written.
    """

    published: int = 0
    alerts: int = 0
    pipelines: int = 0
    errors: int = 0
    reconnects: int = 0
    resyncs: int = 0
    server_changes: int = 0
    connected: bool = False
    dropped_alerts: int = 0
    bad_payloads: int = 0
    pending: int = 0
    queued_alerts: int = 0


def classify(exc: BaseException, url: str) -> Failure[SinkError] | None:
    """Translate an exception from the Redis client into a :class:`SinkError`: the sink's
    :data:`engine.retry.Classifier`, the one place that decides what a reconnection can fix.

    Args:
        exc: the exception raised by a Redis call (or its ``asyncio.timeout``).
        url: the server's URL (redacted in the message).

    Returns:
        ``Failure(error, retryable)``; None when ``exc`` does not come from the network or the
        client (a bug: let it propagate). Retryable: connection, timeout, socket and protocol
        errors, and a server loading, read-only, out of memory or asking to try again. Fatal:
        bad credentials or permissions, and commands the server rejects (e.g. a key of another
        type under our prefix), which a retry cannot fix.
    """
    where = redact_url(url)
    retryable: bool
    if isinstance(
        exc,
        rexc.AuthenticationError
        | rexc.AuthorizationError
        | rexc.ExternalAuthProviderError
        | rexc.NoPermissionError
        | rexc.AuthenticationWrongNumberOfArgsError,
    ):
        retryable = False
    elif isinstance(
        exc,
        rexc.BusyLoadingError
        | rexc.ReadOnlyError
        | rexc.OutOfMemoryError
        | rexc.TryAgainError
        # A Redis Cluster moving slots or failing over: the client refreshes its slot map.
        | rexc.AskError
        | rexc.ClusterDownError
        | rexc.MasterDownError
        | rexc.SlotNotCoveredError
        | rexc.RedisClusterException,
    ):
        retryable = True
    elif isinstance(exc, rexc.ResponseError | rexc.DataError):
        retryable = False
    elif isinstance(exc, rexc.RedisError | OSError | TimeoutError):
        # RedisError here: ConnectionError, TimeoutError, InvalidResponse and the like;
        # OSError: refused, reset, unreachable; TimeoutError: our asyncio.timeout.
        retryable = True
    else:
        return None
    detail = str(exc) or type(exc).__name__
    return Failure(SinkError(f"redis {where}: {type(exc).__name__}: {detail}"), retryable)


class _ServerChanged(rexc.ConnectionError):
    """Internal: a new connection found a Redis that no longer holds the sink's keys; the write
    that opened it is not sent, and the next rewrites every key."""


class _RetryableWriteError(Exception):
    """Internal: a write failed with a retryable error (carries the translated error)."""

    def __init__(self, error: SinkError) -> None:
        super().__init__(str(error))
        self.error = error


class RedisSink:
    """Publishes exposures and alerts to Redis; implements :class:`engine.outputs.Sink`.

    Args:
        config: the sink's configuration.
        clock: the time in heartbeat payloads.
        shard: the shard's name (``[cluster]``): its keys' base is ``{prefix:shard}``
            (:mod:`engine.runtime.redis_link`); None: not sharded.
        pacing: the clock of the heartbeat period; default the monotonic clock.
        status: called for each heartbeat; its counters come first in the heartbeat payload
            (the engine's counts, feed states). Must not block.

    Raises:
        ConfigError: the password's environment variable or file cannot be read (the
            password is read once, here; the client connects on the first write).
    """

    __slots__ = (
        "_alerts",
        "_backoff",
        "_client",
        "_clock",
        "_closed",
        "_config",
        "_directory_entry",
        "_ever_connected",
        "_heartbeat_interval_ns",
        "_heartbeat_ttl_ms",
        "_inflight_resync",
        "_keys",
        "_last_heartbeat_ns",
        "_latest",
        "_lock",
        "_pacing",
        "_pending",
        "_predecessor_read",
        "_resync",
        "_run_id",
        "_spublish",
        "_token",
        "_wake",
        "base",
        "hashes",
        "stats",
        "status",
    )

    def __init__(
        self,
        config: RedisConfig,
        clock: Clock,
        *,
        shard: str | None = None,
        status: Callable[[], EngineStatus] | None = None,
        pacing: Clock | None = None,
    ) -> None:
        self._config = config
        self._clock = clock
        self._pacing: Clock = pacing if pacing is not None else MonotonicClock()
        self.status = status
        """Called for each heartbeat: the engine's counters, first in its payload."""
        self.stats = SinkStats()
        self.base = key_base(config.prefix, shard, config.cluster)
        """The first part of every key: the prefix, or a hash tag (``{risk:0}``)."""
        tagged = self.base != config.prefix
        self._keys = Keys.under(self.base, f"{config.prefix}:shards" if tagged else None)
        self._directory_entry = (shard or UNSHARDED, msgspec.json.encode(self.base))
        self._spublish = False  # SPUBLISH: on a Redis Cluster of version 7 or later
        self._heartbeat_interval_ns = round(config.heartbeat_interval_s * 1e9)
        self._heartbeat_ttl_ms = round(config.heartbeat_ttl_s * 1000)
        self._pending = _Pending()
        self._latest: dict[tuple[str, str], bytes] = {}  # the last written, to re-publish
        self._alerts = AlertQueue(config.alert_queue)
        self._resync = True  # rebuild the active hash on the first connection too
        self._token = secrets.token_hex(8).encode()  # in {p}:writer once every key is written
        self._run_id: str | None = None  # the server's, as the last new connection found it
        self._inflight_resync: bool | None = None  # whether the write under way is a resync
        self._predecessor_read = False  # the alerts an earlier run left active: not read yet
        self._ever_connected = False
        self._last_heartbeat_ns: int | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()  # something was recorded: write
        self.hashes = WholeHashes(self._wake)  # written whole: a shard's P&L vectors
        self._closed = False
        self._backoff = Backoff(initial_s=config.backoff_initial_s, max_s=config.backoff_max_s)
        self._client = make_client(config, self._on_connect)

    # ------------------------------------------------------------------ Sink (never blocks)

    def publish(self, key: str, payload: Payload, *, background: bool = False) -> None:
        """Record ``payload`` as the latest of its family (``payload.family``: its channel,
        stream and snapshot hash) under ``key``; it replaces any payload still pending for
        that key (conflation). Never blocks, never raises.

        Args:
            key: its field in the family's snapshot hash (docs/redis.md), e.g.
                ``{book}:{underlying}`` or ``{book}`` for an exposure.
            payload: the payload (frozen: the sink keeps it as it is).
            background: a periodic payload: written after the changes pending, at most
                :data:`BACKGROUND_BYTES` of them a write (:class:`_Pending`).
        """
        self._pending.add((payload.family, key), payload, background)
        self.stats.pending = len(self._pending)
        self._wake.set()

    def alert(self, payload: AlertPayload) -> None:
        """Queue an alert transition (``"state"``: ``raised`` or ``cleared``, ``"id"``) for
        publication, in order. When the queue is full, the oldest is dropped and counted.
        Never blocks, never raises.

        Args:
            payload: the transition, as made by :class:`engine.alerts.AlertEngine`.
        """
        self._alerts.add(payload)
        self.stats.dropped_alerts = self._alerts.dropped
        self.stats.queued_alerts = len(self._alerts)
        self._wake.set()

    # ------------------------------------------------------------------ runtime

    async def run(self) -> None:
        """Write what is recorded as soon as it is, and the heartbeat on its period, until
        cancelled; on a lost connection keep recording, back off and reconnect.

        Raises:
            SinkError: a fatal error (bad credentials, a command Redis rejects); retrying
                cannot fix it. Also when the sink is closed.
        """
        while True:
            await self._idle()
            try:
                await self._write(force=False)
            except _RetryableWriteError as exc:
                _raise_if_cancelling()
                delay_s = self._backoff.next_delay()
                logger.warning(
                    "redis sink write failed, reconnecting",
                    extra={
                        "url": redact_url(self._config.url),
                        "error": str(exc.error),
                        "delay_s": round(delay_s, 3),
                        "attempt": self._backoff.attempt,
                        "pending": self.stats.pending,
                        "queued_alerts": self.stats.queued_alerts,
                    },
                )
                await asyncio.sleep(delay_s)
                self._wake.set()  # write again, whether or not anything new came
                continue
            _raise_if_cancelling()

    async def _idle(self) -> None:
        """Wait until something is recorded or the heartbeat falls due; what is recorded from
        then on wakes the next wait (so a write in flight batches what arrives meanwhile)."""
        if not self._wake.is_set():
            last = self._last_heartbeat_ns
            wait_ns = (
                0 if last is None else last + self._heartbeat_interval_ns - self._pacing.now_ns()
            )
            if wait_ns > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_ns / 1e9):
                        await self._wake.wait()
        self._wake.clear()

    async def flush(self) -> None:
        """Write everything pending now, with the heartbeat, without waiting for the writer
        task (the final snapshot on shutdown).

        Raises:
            SinkError: Redis is unreachable or rejected the write (what was pending stays
                pending), or the sink is closed.
        """
        try:
            await self._write(force=True)
        except _RetryableWriteError as exc:
            raise exc.error from exc.__cause__

    async def aclose(self) -> None:
        """Close the connections (call after :meth:`flush`); the sink writes no more. Errors
        are logged, not raised."""
        self._closed = True
        try:
            async with asyncio.timeout(self._config.timeout_s):
                await self._client.aclose()
        except Exception as exc:
            translated = classify(exc, self._config.url)
            if translated is None:
                raise
            logger.warning("redis sink close failed", extra={"error": str(translated.error)})

    # ------------------------------------------------------------------ internals

    async def _write(self, *, force: bool) -> None:
        """Build and execute one pipeline; commit on success, put everything back otherwise.
        When its connection finds Redis restarted or flushed (:meth:`_on_connect`), build it
        again at once, rewriting every key.

        Raises:
            _RetryableWriteError: the write failed and a reconnection may fix it.
            SinkError: the write failed for good (bad credentials, a rejected command).
        """
        try:
            await self._write_once(force=force)
        except _RetryableWriteError as exc:
            if not isinstance(exc.__cause__, _ServerChanged):
                raise
            await self._write_once(force=force)  # a resync now: the check lets it through

    async def _on_connect(self, conn: AbstractConnection) -> None:
        """redis-py's hook on every new connection: authenticate, then check that the server
        still holds our keys (same ``run_id``, our token in ``{p}:writer``). On a Redis
        Cluster only a connection to the node that holds the keys' slot tells (the check is
        per node: a failover to a replica changes the ``run_id``, and the keys are rewritten).

        Raises:
            _ServerChanged: it does not, and a write is under way that is not a resync (the
                sink marks itself for one first; a PING goes through).
        """
        server = await probe(conn, self._keys.writer)
        self._spublish = self._config.cluster and server.major >= 7
        if not server.owner:
            return
        run_id, token = server.run_id, server.token
        same = run_id == self._run_id and token == self._token
        known = self._run_id is not None
        self._run_id = run_id
        if same:
            return
        if known and not self._resync:
            self.stats.server_changes += 1
        self._resync = True
        if self._inflight_resync is False:  # a write that would not rewrite everything
            logger.warning(
                "redis restarted or lost our keys: rewriting every key",
                extra={"url": redact_url(self._config.url), "run_id": run_id},
            )
            raise _ServerChanged("redis no longer holds the sink's keys")

    async def _write_once(self, *, force: bool) -> None:
        """:meth:`_write`'s one attempt."""
        async with self._lock:
            if self._closed:
                raise SinkError("redis sink is closed")
            # The heartbeat's period runs on its own clock, monotonic by default: in real time,
            # also when the daemon's clock is a replay's and stands still. Payload times come
            # from the daemon's clock.
            now_ns = self._pacing.now_ns()
            batch = None
            self._inflight_resync = self._resync
            try:
                if not self._predecessor_read:
                    async with asyncio.timeout(self._config.timeout_s):
                        left = await self._client.hgetall(self._keys.active)
                    self._alerts.end_predecessors(left, self._clock.now_ns())
                    self.stats.queued_alerts = len(self._alerts)
                    self._predecessor_read = True
                pipe = self._client.pipeline(transaction=False)
                batch = self._build(pipe, now_ns, force=force)
                self._inflight_resync = batch.resync
                if not len(pipe):
                    return
                async with asyncio.timeout(self._config.timeout_s):
                    await pipe.execute()  # resets the pipeline, whatever happens
            except _ServerChanged as exc:  # nothing was sent: build again, as a resync
                if batch is not None:
                    self._rollback(batch)
                raise _RetryableWriteError(SinkError(str(exc))) from exc
            except BaseException as exc:
                # Failed, timed out or cancelled (shutdown): nothing is lost, flush() or the
                # next write sends it again (at least once).
                if batch is not None:
                    self._rollback(batch)
                if not isinstance(exc, Exception):
                    raise
                translated = classify(exc, self._config.url)
                if translated is None:
                    raise
                self.stats.errors += 1
                self.stats.connected = False
                self._resync = True
                error, retryable = translated
                if not retryable:
                    logger.error("redis sink failed", extra={"error": str(error)})
                    raise error from exc
                raise _RetryableWriteError(error) from exc
            finally:
                self._inflight_resync = None
            self._commit(batch, now_ns)

    def _build(self, pipe: Pipe, now_ns: int, *, force: bool) -> _Batch:
        """Queue on ``pipe`` the exposures due, the alerts, and the heartbeat if due."""
        cfg = self._config
        keys = self._keys
        resync = self._resync
        batch = _Batch(resync=resync)

        # The payloads recorded (the latest per key): every change, then background payloads
        # up to the budget (all of them when forced); the rest wakes the next write.
        pending = self._pending
        budget = math.inf if force else BACKGROUND_BYTES
        for key, payload, background in pending.take():
            data = _encoded(payload, key[1], self.stats)
            if data is None:
                continue
            batch.add(key, payload, data, background)
            budget -= len(data) if background else 0
            if budget <= 0:
                break
        if pending.background:
            self._wake.set()
        encoded = batch.encoded
        if resync:
            # Redis may have restarted empty: every key's latest payload again.
            for key, data in self._latest.items():
                encoded.setdefault(key, data)
        by_family: dict[str, list[tuple[str, bytes]]] = {}
        for (family, name), data in encoded.items():
            by_family.setdefault(family, []).append((name, data))
        script = _SCRIPTS[self._spublish]
        for family, items in by_family.items():
            channel, stream, snapshot = self._keys.families[family]
            for start in range(0, len(items), _SCRIPT_PAYLOADS):
                args: list[EncodableT] = [cfg.stream_maxlen]
                for name, data in items[start : start + _SCRIPT_PAYLOADS]:
                    args += (name, data)
                pipe.eval(script, 3, stream, snapshot, channel, *args)

        batch.hashes = self.hashes.queue(pipe, self.base, resync=resync)

        # Alerts, in order; the active hash follows them.
        if resync:
            _rebuild_active(pipe, keys, self._alerts.active, self.stats)
        for seq, alert in self._alerts:
            batch.last_alert_seq = seq
            data = _encoded(alert, "alert", self.stats)
            if data is None:
                continue  # counted in bad_payloads, and gone with this batch
            batch.alerts += 1
            if self._spublish:
                pipe.execute_command("SPUBLISH", keys.alerts, data)
            else:
                pipe.publish(keys.alerts, data)
            pipe.xadd(
                keys.alerts_stream, {"data": data}, maxlen=cfg.stream_maxlen, approximate=True
            )
            if alert.state == "raised":
                pipe.hset(keys.active, alert.id, data)
            else:
                pipe.hdel(keys.active, alert.id)

        # The heartbeat, when due (and with every resync or forced flush).
        batch.heartbeat = (
            force
            or resync
            or self._last_heartbeat_ns is None
            or now_ns - self._last_heartbeat_ns >= self._heartbeat_interval_ns
        )
        if batch.heartbeat:
            beat = _beat(self.stats, self.status, self._clock.now_ns())
            pipe.set(keys.heartbeat, beat, px=self._heartbeat_ttl_ms)
            if keys.directory is not None:  # another slot: its own command, on its own node
                pipe.hset(keys.directory, *self._directory_entry)
        if resync:  # last: it proves that every key above is there
            pipe.set(keys.writer, self._token)
        self.stats.pending = len(pending)
        return batch

    def _commit(self, batch: _Batch, now_ns: int) -> None:
        """The pipeline went through: record what was published."""
        stats = self.stats
        if not stats.connected:
            stats.connected = True
            if self._ever_connected:
                stats.reconnects += 1
            self._ever_connected = True
            logger.info(
                "redis sink connected",
                extra={"url": redact_url(self._config.url), "reconnects": stats.reconnects},
            )
        self._backoff.reset()
        if batch.resync:
            self._resync = False
            stats.resyncs += 1
        self._latest.update(batch.encoded)
        self.hashes.latest.update(batch.hashes)
        self._alerts.written(batch.last_alert_seq)
        if batch.heartbeat:
            self._last_heartbeat_ns = now_ns
        stats.published += len(batch.encoded)
        stats.alerts += batch.alerts
        stats.pipelines += 1
        stats.queued_alerts = len(self._alerts)
        stats.pending = len(self._pending)

    def _rollback(self, batch: _Batch) -> None:
        """The pipeline failed: its payloads are pending again, unless newer ones arrived."""
        self._pending.put_back(batch.exposures, batch.background)
        self.hashes.failed(batch.hashes)
        self.stats.pending = len(self._pending)


def _raise_if_cancelling() -> None:
    """Deliver a cancellation the Redis client swallowed.

    With redis-py 8, a cancel that lands inside ``Pipeline.execute()`` is sometimes lost: the
    call returns (or fails) normally while the task stays ``cancelling()``, and a loop around
    it would never stop. Checking after each write keeps :meth:`RedisSink.run` cancellable.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


PendingKey = tuple[str, str]
"""A payload's family and key."""

BACKGROUND_BYTES: Final = 64 * 1024
"""The background payloads one write takes, in encoded bytes (at least one payload): a change
recorded meanwhile waits for at most about this much (a few tenths of a millisecond of
Redis's time) instead of a whole period's payloads (a full reprice refreshes every key, a risk
period publishes every book's figures)."""


@dataclass(slots=True)
class _Pending:
    """The payloads recorded and not yet written: the latest per key, each in one of two lanes.
    A change (``background`` False) goes out with the next write; a background payload after
    every change, within the write's budget. A newer payload takes the key's place in the
    older's lane, or in the changes' if it is a change (never in both)."""

    changes: dict[PendingKey, Payload] = field(default_factory=dict)
    background: dict[PendingKey, Payload] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.changes) + len(self.background)

    def add(self, key: PendingKey, payload: Payload, background: bool) -> None:
        if background and key not in self.changes:
            self.background[key] = payload
        else:
            self.background.pop(key, None)
            self.changes[key] = payload

    def take(self) -> Iterator[tuple[PendingKey, Payload, bool]]:
        """Every change, then the background payloads, in the order recorded, with whether it
        is a background one; each is no longer pending once taken (stop early to leave the
        rest)."""
        changes, self.changes = self.changes, {}
        for key, payload in changes.items():
            yield key, payload, False
        background = self.background
        while background:
            key = next(iter(background))
            yield key, background.pop(key), True

    def put_back(self, payloads: Mapping[PendingKey, Payload], background: set[PendingKey]) -> None:
        """Payloads taken and not written, each in its lane again, unless a newer one came."""
        for key, payload in payloads.items():
            if key not in self.changes and key not in self.background:
                self.add(key, payload, key in background)


@dataclass(slots=True)
class _Batch:
    """What one pipeline carries, to commit or roll back once it has run."""

    resync: bool
    exposures: dict[PendingKey, Payload] = field(default_factory=dict)  # from pending
    background: set[PendingKey] = field(default_factory=set)  # of those, the background ones
    encoded: dict[PendingKey, bytes] = field(default_factory=dict)  # all payloads written
    hashes: dict[str, dict[str, bytes]] = field(default_factory=dict)  # WholeHashes' taken
    last_alert_seq: int = 0  # alerts up to this sequence number are in the pipeline
    alerts: int = 0
    heartbeat: bool = False

    def add(self, key: PendingKey, payload: Payload, data: bytes, background: bool) -> None:
        """A payload taken from pending, encoded."""
        self.exposures[key] = payload
        self.encoded[key] = data
        if background:
            self.background.add(key)


@dataclass(slots=True)
class WholeHashes:
    """Hashes of a :class:`RedisSink` replaced whole with each write (``{base}:{suffix}``, in
    one atomic script, :data:`_REPLACE_HASH`): by suffix, the fields not yet written, and the
    last written (a resync writes them again).

    Args:
        wake: the sink's writer's event.
    """

    wake: asyncio.Event
    pending: dict[str, dict[str, bytes]] = field(default_factory=dict)
    latest: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def replace(self, suffix: str, fields: dict[str, bytes]) -> None:
        """Record ``fields`` (binary values) as the whole hash ``{base}:{suffix}``; newer fields
        replace any not yet written. Never blocks, never raises."""
        self.pending[suffix] = fields
        self.wake.set()

    def queue(self, pipe: Pipe, base: str, *, resync: bool) -> dict[str, dict[str, bytes]]:
        """Queue on ``pipe`` the pending hashes (on a resync the latest of every other one
        too); returns those taken from ``pending``."""
        taken = dict(self.pending)
        self.pending.clear()
        for suffix, fields in ({**self.latest, **taken} if resync else taken).items():
            _replace_hash(pipe, f"{base}:{suffix}", fields)
        return taken

    def failed(self, taken: dict[str, dict[str, bytes]]) -> None:
        """A write failed: what it took is pending again, unless newer fields came."""
        for suffix, fields in taken.items():
            self.pending.setdefault(suffix, fields)


_REPLACE_HASH: Final = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
return #ARGV / 2
"""
"""Lua run by EVAL with KEYS = (hash,), ARGV = (field1, value1, ...): the hash replaced by these
fields in one atomic step (redis-py's cluster pipeline refuses RENAME)."""


def _replace_hash(pipe: Pipe, key: str, fields: dict[str, bytes]) -> None:
    """Make ``fields`` the whole hash ``key`` at once (:data:`_REPLACE_HASH`)."""
    args: list[EncodableT] = []
    for name, value in fields.items():
        args += (name, value)
    pipe.eval(_REPLACE_HASH, 1, key, *args)


def _rebuild_active(
    pipe: Pipe, keys: Keys, active: Mapping[str, AlertPayload], stats: SinkStats
) -> None:
    """Replace the active-alerts hash with ``active``, atomically (:data:`_REPLACE_HASH`; on
    a Redis Cluster too, whose pipelines refuse RENAME). Alerts still queued re-apply their own
    HSET/HDEL after this, in order, and end on the same state; ``active`` also covers
    transitions dropped from a full queue."""
    fields: dict[str, bytes] = {}
    for alert_id, payload in active.items():
        data = _encoded(payload, "alert", stats)
        if data is not None:
            fields[alert_id] = data
    _replace_hash(pipe, keys.active, fields)


def _beat(stats: SinkStats, status: Callable[[], EngineStatus] | None, now_ns: int) -> bytes:
    """The heartbeat's bytes: the engine's counters (``status``), then the sink's."""
    engine = None
    if status is not None:
        try:
            engine = status()
        except Exception:  # a status callback must not stop the heartbeat
            logger.exception("redis sink status callback failed")
    return encode_heartbeat(_heartbeat(stats, now_ns), engine)


def _heartbeat(s: SinkStats, now_ns: int) -> Heartbeat:
    """The sink's part of the heartbeat: its counters."""
    return Heartbeat(
        ts_ns=now_ns,
        valuation_ts_ns=None,
        published=s.published,
        alerts=s.alerts,
        pipelines=s.pipelines,
        errors=s.errors,
        reconnects=s.reconnects,
        resyncs=s.resyncs,
        server_changes=s.server_changes,
        dropped_alerts=s.dropped_alerts,
        bad_payloads=s.bad_payloads,
        pending=s.pending,
        queued_alerts=s.queued_alerts,
    )


def _encoded(payload: Payload | AlertPayload, what: str, stats: SinkStats) -> bytes | None:
    """JSON bytes of ``payload`` (NaN -> null); None, counted and logged (rate-limited), if it
    cannot be encoded."""
    try:
        return encode(payload)
    except (TypeError, ValueError) as exc:  # a value JSON cannot take
        stats.bad_payloads += 1
        if sampled(stats.bad_payloads):
            logger.warning(
                "redis sink dropped a payload it cannot encode",
                extra={"key": what, "error": str(exc), "count": stats.bad_payloads},
            )
        return None
