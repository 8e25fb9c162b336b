"""The live clock: the only place riskd reads the wall clock."""

from __future__ import annotations

import time

__all__ = ["LiveClock"]


class LiveClock:
    """Wall-clock time as int UNIX ns (implements :class:`engine.clock.Clock`)."""

    __slots__ = ()

    def now_ns(self) -> int:
        """``time.time_ns()``."""
        return time.time_ns()
