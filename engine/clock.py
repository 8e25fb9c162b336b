"""Time, passed in: the engine never reads the wall clock itself.

:class:`Clock` is the seam; the runtime supplies a live clock (``engine.runtime.clock``), and
replays, the simulator and tests use :class:`ManualClock`, so their runs are deterministic.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["Clock", "ManualClock"]


class Clock(Protocol):
    """Source of the current time as int UNIX nanoseconds."""

    def now_ns(self) -> int:
        """The current time, int UNIX ns."""
        ...


class ManualClock:
    """A clock that moves only when told to (replays, the simulator, tests)."""

    __slots__ = ("_now_ns",)

    def __init__(self, start_ns: int = 0) -> None:
        self._now_ns = int(start_ns)

    def now_ns(self) -> int:
        """The time last set."""
        return self._now_ns

    def set(self, ts_ns: int) -> None:
        """Move to ``ts_ns``; a clock never goes back, so an earlier time is ignored."""
        self._now_ns = max(self._now_ns, int(ts_ns))

    def advance(self, delta_ns: int) -> None:
        """Move forward by ``delta_ns`` (>= 0)."""
        if delta_ns < 0:
            raise ValueError(f"a clock only moves forward, got delta_ns={delta_ns}")
        self._now_ns += int(delta_ns)
