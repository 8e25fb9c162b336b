"""The daemon's state at one moment (:class:`Health`), as the monitor reads it
(:meth:`engine.runtime.monitor.Monitor.health`): what ``/readyz``, ``/metrics``, the terminal
view and the statistics line show."""

from __future__ import annotations

from dataclasses import dataclass

from engine.outputs import EngineStatus
from engine.runtime.redis_sink import SinkStats

__all__ = ["FeedHealth", "Health"]


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """One feed, now."""

    name: str
    required: bool
    connected: bool
    finished: bool
    received: int
    events: int
    dropped: dict[str, int]


@dataclass(frozen=True, slots=True)
class Health:
    """The daemon's state at one moment: counters, feeds, Redis, readiness.

    Attributes:
        status: the engine's counters (the heartbeat's, and the statistics line's).
        feeds: each feed.
        sink: the Redis sink's counters.
        stale_feeds: required feeds whose stale-feed alert is raised.
        alerts_active: alerts raised now.
        fill_queue: fills waiting for the engine.
    """

    status: EngineStatus
    feeds: list[FeedHealth]
    sink: SinkStats
    stale_feeds: list[str]
    alerts_active: int
    fill_queue: int

    def checks(self) -> dict[str, bool]:
        """``/readyz``'s checks: kernels warm (the start-up cycle ran), every required feed
        connected (a replay: or finished), Redis took the last write, no required feed
        stale."""
        return {
            "kernels_warm": self.status.cycles > 0,
            "feeds_connected": all(f.connected or f.finished for f in self.feeds if f.required),
            "redis_reachable": self.sink.connected,
            "no_feed_stale": not self.stale_feeds,
        }

    @property
    def ready(self) -> bool:
        return all(self.checks().values())
