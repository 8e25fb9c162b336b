"""``riskd aggregate``: exact cross-shard VaR and ES from the shards' P&L vectors
(docs/scaling.md#the-aggregator). Its own small composition root: :func:`build` makes the
:class:`Aggregator` from the configuration, :func:`run` runs it with its Redis sink as two named
tasks of one ``asyncio.TaskGroup``.

Each ``[risk] var_interval_s`` the aggregator reads the directory ``{prefix}:shards``, then each
shard's ``{base}:vectors`` hash (one ``HGETALL``: a shard replaces the hash whole), and, once the
shards agree on one scenario set and own every underlying of it exactly once
(:func:`engine.risk.vectors.shards_disagree`), publishes every book's and the firm's ``var``
payload, their vectors summed, each book's and the firm's exposure totals and stress grid and
each book's margin and liquidity (the shards' ``{book}`` exposure, ``stress``, ``margin`` and
``liquidity`` payloads, read in one pipeline per shard, put together, :mod:`engine.risk.totals`),
under the keys of one daemon that is not sharded (``{prefix}``, or ``{{prefix}}`` on a Redis
Cluster), with the alert rules checked on them (their transitions to Redis and the
``[[notify]]`` targets, as one daemon's). It holds nothing that Redis does not: it and the shards
start and restart in any order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import msgspec
from redis.asyncio.connection import AbstractConnection

from engine.alerts import AlertEngine
from engine.clock import Clock
from engine.errors import ConfigError, SinkError
from engine.outputs import BookExposure, LiquidityPayload, MarginPayload, Payload, StressPayload
from engine.risk.totals import exposure_totals, liquidity_totals, margin_totals, stress_totals
from engine.risk.vectors import (
    ShardVectors,
    VarSettings,
    aggregate_payloads,
    decode_vectors,
    shards_disagree,
)
from engine.runtime.clock import LiveClock
from engine.runtime.config import AppConfig
from engine.runtime.logs import sampled
from engine.runtime.notify import DRAIN_TIMEOUT_S, Notifier
from engine.runtime.publisher import Publisher
from engine.runtime.redis_link import RedisConfig, make_client
from engine.runtime.redis_sink import RedisSink, classify

__all__ = ["VECTORS", "Aggregator", "build", "run"]

logger = logging.getLogger(__name__)

P = TypeVar("P", BookExposure, StressPayload, MarginPayload, LiquidityPayload)

VECTORS = "vectors"
"""The suffix of a shard's vectors hash: ``{base}:vectors``."""


async def _authenticate(conn: AbstractConnection) -> None:
    await conn.on_connect()


class Aggregator:
    """Reads the shards' vectors and publishes the combined ``var`` payloads.

    Args:
        redis: ``[redis]``: the shards' server and prefix.
        settings: ``[risk]``'s scenario set and levels (the shards' own).
        interval_s: the period.
        sink: where the payloads go (the base of a daemon that is not sharded).
        clock: the payloads' time.
        alerts: the alert rules (``[[alerts]]``), checked on every payload published.
        notifier: where alert transitions are sent (``[[notify]]``).
        liquidity_top: ``[risk.liquidity] top_positions``; None: the shards publish no
            liquidity payloads (``enabled = false``).

    Attributes:
        waiting: why the last period published nothing (None: it published).
        periods: periods that published.
        shards: the shards read in the last period, by name.
        apart: per family (``stress``, ``margin``), the books left out in the last period: the
            shards' stress grids differ; a part without crypto margin.
        unread: shards' payloads that did not decode (left out, logged; rate-limited).
    """

    def __init__(
        self,
        redis: RedisConfig,
        settings: VarSettings,
        interval_s: float,
        sink: RedisSink,
        clock: Clock,
        alerts: AlertEngine,
        notifier: Notifier,
        liquidity_top: int | None = None,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.settings = settings
        self.interval_s = interval_s
        self.sink = sink
        self.notifier = notifier
        self.liquidity_top = liquidity_top
        self.out = Publisher(sink, alerts, notifier.offer)
        self.directory = f"{redis.prefix}:shards"
        self.reader = make_client(redis, _authenticate)
        self.waiting: str | None = "not started"
        self.periods = 0
        self.shards: dict[str, int] = {}
        self.apart: dict[str, list[str]] = {}
        self.unread = 0

    async def read(self) -> list[tuple[str, ShardVectors]]:
        """Every shard's base and vectors in the directory (not the aggregator's own entry); a
        shard listed without vectors yet, or with vectors that do not decode, is left out and
        logged."""
        async with asyncio.timeout(self.redis.timeout_s):
            directory = await self.reader.hgetall(self.directory)
        out = []
        for name, raw in sorted(directory.items()):
            base = msgspec.json.decode(raw, type=str)
            if base == self.sink.base:
                continue
            async with asyncio.timeout(self.redis.timeout_s):
                fields = await self.reader.hgetall(f"{base}:{VECTORS}")
            if not fields:
                continue
            try:
                out.append((base, decode_vectors(fields)))
            except ValueError as exc:
                logger.warning("shard vectors not read", extra={"shard": name, "error": str(exc)})
        return out

    async def period(self) -> None:
        """Read, check and (when the shards agree) publish once."""
        read = await self.read()
        shards = [s for _, s in read]
        self.shards = {s.header.shard: s.header.valuation_ts_ns for s in shards}
        reason = shards_disagree(shards, self.settings)
        if reason != self.waiting:
            logger.info(
                "aggregating" if reason is None else "waiting for the shards",
                extra={"reason": reason, "shards": self.shards},
            )
        self.waiting = reason
        if reason is not None:
            return
        await self._publish(read, shards)
        self.periods += 1

    async def _publish(
        self, read: list[tuple[str, ShardVectors]], shards: list[ShardVectors]
    ) -> None:
        """Every family across the shards that agree: from their vectors and their latest
        payloads of each book."""
        families = ["", "stress:", "margin:"]
        if self.liquidity_top is not None:
            families.append("liquidity:")
        latest = []
        for base, s in read:
            books = list(s.header.books)
            latest.append((base, books, await self._snapshots(base, books, families)))
        exposures = [self._decoded(b, "", books, r[0], BookExposure) for b, books, r in latest]
        stresses = [
            self._decoded(b, "stress:", books, r[1], StressPayload) for b, books, r in latest
        ]
        margins = [
            self._decoded(b, "margin:", books, r[2], MarginPayload) for b, books, r in latest
        ]
        now_ns = self.clock.now_ns()
        var = aggregate_payloads(shards, self.settings, now_ns)
        self._publish_parts("var", (var, []))
        self._publish_parts("exposure", (exposure_totals(exposures, now_ns), []))
        self._publish_parts("stress", stress_totals(stresses, now_ns))
        self._publish_parts("margin", margin_totals(margins, now_ns))
        if self.liquidity_top is not None:
            parts = [
                self._decoded(b, "liquidity:", books, r[3], LiquidityPayload)
                for b, books, r in latest
            ]
            whole = liquidity_totals(parts, dict(var), self.liquidity_top, now_ns)
            self._publish_parts("liquidity", (whole, []))

    def _publish_parts(
        self, family: str, totals: tuple[Sequence[tuple[str, Payload]], list[str]]
    ) -> None:
        """A family's books summed over the shards; the books left out (:attr:`apart`) are
        logged when they change."""
        payloads, apart = totals
        for key, payload in payloads:
            self.out.publish(key, payload)
        if apart and apart != self.apart.get(family):
            logger.warning(
                "books not aggregated across the shards", extra={"family": family, "books": apart}
            )
        self.apart[family] = apart

    async def _snapshots(
        self, base: str, books: list[str], families: list[str]
    ) -> list[list[bytes | None]]:
        """A shard's latest payloads of ``books`` (None where it has none), encoded, in its
        snapshot hash of each of ``families`` (``""``: the exposures' ``{base}:snapshot``,
        ``"stress:"``: ``{base}:stress:snapshot``, ``"margin:"``, ``"liquidity:"``): one
        round trip (on a Redis Cluster the hashes share the shard's slot)."""
        if not books:
            return [[] for _ in families]
        async with asyncio.timeout(self.redis.timeout_s):
            pipe = self.reader.pipeline(transaction=False)
            for family in families:
                pipe.hmget(f"{base}:{family}snapshot", books)
            return list(await pipe.execute())

    def _decoded(
        self, base: str, family: str, books: list[str], raw: list[bytes | None], kind: type[P]
    ) -> dict[str, P]:
        """The payloads of :meth:`_snapshots`' ``raw`` of ``family`` by book (those it has); one
        that does not decode (a shard of another version) is counted and logged."""
        out: dict[str, P] = {}
        for b, r in zip(books, raw, strict=True):
            if r is None:
                continue
            try:
                out[b] = msgspec.json.decode(r, type=kind)
            except msgspec.DecodeError as exc:  # another schema (a shard of another version)
                self.unread += 1
                if sampled(self.unread):
                    logger.warning(
                        "shard payload not read",
                        extra={"key": f"{base}:{family}snapshot", "book": b, "error": str(exc),
                               "unread": self.unread},
                    )  # fmt: skip
        return out

    async def run(self, stop: asyncio.Event) -> None:
        """A period every ``interval_s`` until ``stop``; a failed read is logged and tried
        again next period.

        Raises:
            SinkError: Redis refuses the reads for good (credentials, permissions).
        """
        while not stop.is_set():
            try:
                await self.period()
            except Exception as exc:  # TimeoutError too
                failure = classify(exc, self.redis.url)
                if failure is None:
                    raise
                if not failure.retryable:
                    raise failure.error from exc
                logger.warning("shard vectors not read", extra={"error": str(failure.error)})
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await stop.wait()

    async def aclose(self) -> None:
        """Close the reading connections."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.redis.timeout_s):
                await self.reader.aclose()


def build(config: AppConfig, config_path: Path, clock: Clock | None = None) -> Aggregator:
    """The aggregator of ``config`` (the shards' configuration: its ``[redis]`` and
    ``[risk]``; ``[cluster]`` is ignored).

    Raises:
        ConfigError: no common scenario set (``[risk] scenario_underlyings`` empty) or risk
            off, named by the key.
    """
    risk = config.risk
    if not risk.enabled:
        raise ConfigError(str(config_path), "aggregate needs risk on - at `$.risk.enabled`")
    if not risk.scenario_underlyings:
        raise ConfigError(
            str(config_path),
            "aggregate needs the shards' common scenario set - at `$.risk.scenario_underlyings`",
        )
    clock = clock if clock is not None else LiveClock()
    sink = RedisSink(config.redis, clock)
    return Aggregator(
        config.redis, risk.var_settings(), risk.var_interval_s, sink, clock,
        AlertEngine(config.alerts), Notifier(config.notify),
        risk.liquidity.top_positions if risk.liquidity.enabled else None,
    )  # fmt: skip


async def run(agg: Aggregator, *, duration_s: float | None = None) -> int:
    """Run ``agg`` until SIGTERM/SIGINT (or ``duration_s``); returns the exit status (1: a
    fatal Redis error)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    logger.info("aggregator started", extra={"directory": agg.directory, "base": agg.sink.base})
    status = 0
    try:
        async with asyncio.TaskGroup() as tg:
            sink = tg.create_task(agg.sink.run(), name="sink")
            notify = tg.create_task(agg.notifier.run(), name="notify")
            tg.create_task(agg.run(stop), name="aggregate")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await stop.wait()
            stop.set()
            await agg.notifier.drain(DRAIN_TIMEOUT_S)  # the last transitions, to chat too
            sink.cancel()
            notify.cancel()
    except* SinkError as group:
        for error in group.exceptions:
            logger.error("fatal error: %s", error, extra={"error": type(error).__name__})
        status = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        with contextlib.suppress(SinkError, TimeoutError):
            async with asyncio.timeout(agg.redis.timeout_s * 2):
                await agg.sink.flush()
        await agg.sink.aclose()
        await agg.aclose()
    logger.info("aggregator stopped", extra={"periods": agg.periods, "status": status})
    return status
