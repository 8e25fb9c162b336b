"""The live clock: the only place riskd reads the wall clock."""

from __future__ import annotations

import time

__all__ = ["LiveClock", "MonotonicClock"]


class LiveClock:
    """Wall-clock time as int UNIX ns (implements :class:`engine.clock.Clock`)."""

    __slots__ = ()

    def now_ns(self) -> int:
        """``time.time_ns()``."""
        return time.time_ns()


class MonotonicClock:
    """``time.monotonic_ns()`` as a :class:`engine.clock.Clock`: for pacing that no wall-clock
    jump or stalled replay clock can disturb (not a UNIX time)."""

    __slots__ = ()

    def now_ns(self) -> int:
        """``time.monotonic_ns()``."""
        return time.monotonic_ns()
