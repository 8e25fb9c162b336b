"""The ``monitor`` task and the one :class:`Health` snapshot of the daemon.

Once a second the monitor raises or clears each feed's stale-feed alert and settles expiries
(:class:`~engine.risk.settlement.Settler`); every ``stats_interval_s`` it logs the statistics
line. :meth:`Monitor.health` is the one place the daemon's state is read for people and
probes: ``/readyz``, ``/metrics``, the terminal view, the statistics line and the heartbeat all
take it from there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time

import msgspec
import numpy as np

from engine.clock import Clock
from engine.outputs import EngineStatus, FeedStatus
from engine.risk.settlement import Settler, Twap
from engine.runtime.config import EngineConfig
from engine.runtime.engine_loop import EngineLoop
from engine.runtime.health import FeedHealth, Health
from engine.runtime.intake import AsyncInbox
from engine.runtime.journal import Settlement
from engine.runtime.publisher import Publisher
from engine.runtime.redis_sink import SinkStats
from engine.runtime.risk_task import RiskTask
from engine.runtime.shard_gate import ShardGate
from feeds.base import Feed

__all__ = ["Monitor"]

logger = logging.getLogger(__name__)


class Monitor:
    """Feed staleness, settlement, the statistics line, and :meth:`health`.

    Args:
        config: ``[engine]`` (``feed_stale_after_s``, ``stats_interval_s``).
        feeds: the feed adapters; ``optional``: the names of those with ``required = false``.
        engine: the engine loop (its counters).
        risk: the risk task (its error count).
        sink_stats: the Redis sink's counters.
        inbox: the engine's inbox (its counters).
        out: the sink and the alert rules.
        settler: settles expiries; ``journal``: journals a settlement before it happens.
        clock: the daemon's clock.
        valuing: held while the engine reprices the portfolio in a worker thread.
    """

    def __init__(
        self,
        config: EngineConfig,
        feeds: list[Feed],
        optional: frozenset[str],
        engine: EngineLoop,
        risk: RiskTask,
        sink_stats: SinkStats,
        inbox: AsyncInbox,
        out: Publisher,
        settler: Settler,
        clock: Clock,
        valuing: asyncio.Lock,
    ) -> None:
        self.config = config
        self.feeds = feeds
        self.optional = optional
        self.engine = engine
        self.risk = risk
        self.sink_stats = sink_stats
        self.inbox = inbox
        self.out = out
        self.settler = settler
        self.clock = clock
        self.valuing = valuing
        self.errors = 0
        """Settlements that failed (logged; the next second tries again)."""
        self._started = time.monotonic()
        self._start_ns = 0  # when the monitor started: a feed silent since then is stale too

    # ------------------------------------------------------------------ the snapshot

    def status(self) -> EngineStatus:
        """The engine's counters (the heartbeat's first part)."""
        e = self.engine
        return EngineStatus(
            **msgspec.structs.asdict(e.portfolio.instrument_status()),
            uptime_s=round(time.monotonic() - self._started, 1),
            cycles=e.cycles,
            events=self.inbox.inbox.received,
            conflated=self.inbox.inbox.conflated,
            unknown_instrument=e.unknown,
            rejected_fills=len(e.rejected_fills),
            cycle_errors=e.cycle_errors,
            risk_errors=self.risk.errors + self.errors,
            feeds={
                f.name: FeedStatus(
                    connected=f.stats.connected,
                    received=f.stats.received,
                    dropped=sum(f.stats.dropped.values()),
                )
                for f in self.feeds
            },
            **_foreign(self.inbox.gate),
        )

    def health(self) -> Health:
        """The daemon's state now."""
        return Health(
            status=self.status(),
            feeds=[
                FeedHealth(
                    name=f.name,
                    required=f.name not in self.optional,
                    connected=f.stats.connected,
                    finished=f.stats.finished,
                    received=f.stats.received,
                    events=f.stats.events,
                    dropped=dict(f.stats.dropped),
                )
                for f in self.feeds
            ],
            sink=dataclasses.replace(self.sink_stats),
            stale_feeds=[f for f in self.out.alerts.stale_feeds() if f not in self.optional],
            alerts_active=len(self.out.alerts.active()),
            fill_queue=self.inbox.inbox.fills_queued,
        )

    # ------------------------------------------------------------------ each second

    async def run(self) -> None:
        """Feed checks and settlement each second, the statistics line on its period."""
        self._start_ns = self.clock.now_ns()
        next_stats = time.monotonic() + self.config.stats_interval_s
        while True:
            await asyncio.sleep(1.0)
            self.check_feeds()
            await self.settle()
            if time.monotonic() >= next_stats:
                next_stats += self.config.stats_interval_s
                self.log_stats()

    def check_feeds(self) -> None:
        """Raise or clear the stale-feed alert of each feed (not of a replay at its end, nor of
        an optional feed that never received anything)."""
        now = self.clock.now_ns()
        limit_ns = self.config.feed_stale_after_s * 1e9
        for f in self.feeds:
            if f.stats.finished:
                continue
            if f.name in self.optional and not f.stats.received:
                continue
            last = f.stats.last_recv_ns
            silent_ns = now - last if last else now - self._start_ns
            stale = silent_ns > limit_ns
            for t in self.out.alerts.feed_stale(f.name, stale, silent_ns / 1e9, now):
                self.out.alert(t)

    async def settle(self) -> int:
        """Sample and settle the expiries due (outside a full reprice); publish what changed.
        A settlement is journaled before its positions leave the book, and only while no fill
        waits in the queue (else it waits for the next second): a journaled fill is in the
        book before any settlement journaled after it, as a restart replays them. Returns how
        many positions settled."""
        try:
            async with self.valuing:
                payloads = self.settler.step(
                    self.engine.portfolio,
                    self.clock.now_ns(),
                    self._journal,
                    settle=not self.inbox.inbox.fills_queued,
                )
        except Exception:  # a bug in settling must not stop the monitor (or the daemon)
            self.errors += 1
            logger.exception("settlement failed", extra={"errors": self.errors})
            return 0
        for p in payloads:
            self.out.publish(f"{p.index}:{p.expiry}", p)
        return sum(len(p.positions) for p in payloads)

    def _journal(self, index: str, expiry_ns: int, now_ns: int, twap: Twap) -> None:
        if self.inbox.journal is not None:  # first on disk: a restart settles it the same
            self.inbox.journal.append_settlement(
                Settlement(index=index, expiry_ns=expiry_ns, ts_ns=now_ns, twap=twap)
            )

    def log_stats(self) -> None:
        """The statistics line: the counters, cycle time and latency percentiles, Redis."""
        cyc = np.asarray(self.engine.cycle_s) * 1e3
        lat = np.asarray(self.engine.latency_ns) / 1e6

        def pct(a: np.ndarray, q: float) -> float | None:
            return round(float(np.percentile(a, q)), 3) if a.size else None

        logger.info(
            "stats",
            extra={
                **msgspec.to_builtins(self.status()),
                "cycle_ms_p50": pct(cyc, 50),
                "cycle_ms_p99": pct(cyc, 99),
                "latency_ms_p50": pct(lat, 50),
                "latency_ms_p99": pct(lat, 99),
                "redis_connected": self.sink_stats.connected,
                "redis_published": self.sink_stats.published,
            },
        )


def _foreign(gate: ShardGate | None) -> dict[str, int]:
    """A shard's counts of what belongs to other shards (none when not sharded)."""
    if gate is None:
        return {}
    return {
        "foreign_events": gate.foreign_events,
        "foreign_fills": gate.foreign_fills,
        "foreign_positions": gate.foreign_positions,
    }
