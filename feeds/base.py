"""What every feed adapter shares: the :class:`Feed` protocol, its counters, the rate-limited
log of dropped messages, and the pacing of file replays."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from engine.clock import Clock
from engine.errors import FeedDecodeError
from engine.events import EventSink

__all__ = ["DropLog", "Feed", "FeedStats", "ReplayPacing", "Sleep"]

Sleep = Callable[[float], Awaitable[None]]
"""An ``asyncio.sleep``-like coroutine function taking seconds (injected: tests move a
ManualClock instead of waiting)."""


@dataclass(slots=True)
class FeedStats:
    """Counters of one feed, read by the runtime for logs, staleness and metrics.

    Attributes:
        received: messages read off the wire (or file).
        events: events handed to the engine.
        dropped: messages dropped, by reason (``FeedDecodeError.reason``).
        connects: successful (re)connections.
        connected: whether the feed is connected now.
        finished: the source is exhausted and the feed has returned (a replay at its file's
            end): not connected, yet nothing is wrong.
        last_recv_ns: receipt time of the last message, int UNIX ns (0: none yet).
    """

    received: int = 0
    events: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    connects: int = 0
    connected: bool = False
    finished: bool = False
    last_recv_ns: int = 0


class Feed(Protocol):
    """A source of events. ``run`` owns its connection: it reconnects with backoff and
    resubscribes by itself, and returns only when cancelled or, for finite sources (a replay
    file), when the source is exhausted."""

    name: str
    stats: FeedStats

    async def run(self, sink: EventSink) -> None:
        """Read the source and put its events into ``sink`` until cancelled."""
        ...


class DropLog:
    """Counts dropped messages and logs them at most once per ``interval_ns`` per reason."""

    __slots__ = ("_clock", "_interval_ns", "_last", "_logger", "_stats", "_suppressed")

    def __init__(
        self,
        stats: FeedStats,
        clock: Clock,
        logger: logging.Logger,
        interval_ns: int = 5_000_000_000,
    ) -> None:
        self._stats = stats
        self._clock = clock
        self._logger = logger
        self._interval_ns = interval_ns
        self._last: dict[str, int] = {}
        self._suppressed: Counter[str] = Counter()

    def drop(self, error: FeedDecodeError) -> None:
        """Count ``error`` under its reason; log it unless that reason was logged recently."""
        reason = error.reason
        self._stats.dropped[reason] += 1
        now = self._clock.now_ns()
        last = self._last.get(reason)
        if last is not None and now - last < self._interval_ns:
            self._suppressed[reason] += 1
            return
        self._last[reason] = now
        self._logger.warning(
            "message dropped",
            extra={
                "feed": error.feed,
                "reason": reason,
                "detail": error.detail,
                "payload": error.payload,
                "suppressed": self._suppressed.pop(reason, 0),
            },
        )


@dataclass(slots=True)
class ReplayPacing:
    """How a replay paces its events: before each, the recorded gap from the previous one
    divided by ``speed`` is slept (``speed`` 0: none); every ``yield_every`` events without a
    sleep, the event loop gets a turn, so the engine's tasks run during a fast replay."""

    speed: float
    yield_every: int
    sleep: Sleep
    since_yield: int = 0

    async def before(self, prev_ns: int | None, ts_ns: int) -> None:
        """Wait for the event at ``ts_ns`` (int UNIX ns) after one at ``prev_ns`` (None: the
        first)."""
        if self.speed > 0.0 and prev_ns is not None and ts_ns > prev_ns:
            await self.sleep((ts_ns - prev_ns) / 1e9 / self.speed)
            self.since_yield = 0

    async def after(self) -> None:
        """An event was handed over."""
        self.since_yield += 1
        if self.since_yield >= self.yield_every:
            self.since_yield = 0
            await asyncio.sleep(0)  # let the engine's tasks run
