"""When a published key goes out: one schedule for every key riskd publishes.

A key that changes after being quiet for ``min_interval_ns`` goes out at once (leading edge); a
key that keeps changing goes out at most once per ``min_interval_ns``; and the last change of
a key always goes out, ``min_interval_ns`` after its previous publication at the latest
(trailing edge). So a quiet book's first move reaches consumers without waiting for a timer,
a busy one costs Redis at most one write per key and interval, and nothing is left unsaid.

A periodic refresh of every key (the engine's full reprice, for time decay) goes through
:meth:`PublishSchedule.refresh`: a key waiting for its interval keeps waiting (and goes out with
the refreshed figures), any other goes out at once without counting as a publication, so that
the refresh never holds back the next change of a quiet key.

The schedule does no I/O and reads no clock: the caller passes the time (monotonic ns) and
wakes itself at :meth:`PublishSchedule.next_due_ns`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

__all__ = ["PublishSchedule"]

K = TypeVar("K", bound=Hashable)


class PublishSchedule(Generic[K]):
    """Leading edge, at most once per interval, trailing edge: per key.

    Args:
        min_interval_ns: the least time between two publications of one key (0: none; every
            change is due at once).
    """

    __slots__ = ("_dirty", "_interval", "_last", "_next")

    def __init__(self, min_interval_ns: int) -> None:
        if min_interval_ns < 0:
            raise ValueError(f"min_interval_ns must be >= 0, got {min_interval_ns}")
        self._interval = min_interval_ns
        self._dirty: dict[K, int] = {}  # changed since published -> when it may go out
        self._last: dict[K, int] = {}  # when it last went out
        self._next: float = math.inf  # the earliest of _dirty's values

    def __len__(self) -> int:
        """Keys changed and not yet published."""
        return len(self._dirty)

    def changed(self, keys: Iterable[K], now_ns: int) -> None:
        """``keys`` changed at ``now_ns``: each is due at once if quiet for an interval (or never
        published), else when its interval since the last publication is up."""
        dirty, last, interval = self._dirty, self._last, self._interval
        for key in keys:
            if key in dirty:
                continue  # already due at its time; the newest value goes out then
            previous = last.get(key)
            at = now_ns if previous is None else max(now_ns, previous + interval)
            dirty[key] = at
            if at < self._next:
                self._next = at

    def next_due_ns(self) -> float:
        """When the first changed key may go out (``math.inf``: none changed)."""
        return self._next

    def refresh(self, keys: Iterable[K]) -> list[K]:
        """Of ``keys``, refreshed (every figure moved with time), those to publish now: those
        not waiting for their interval (those go out when due, with the new figures). Their
        publication does not count against the interval of their next change."""
        dirty = self._dirty
        return [k for k in keys if k not in dirty]

    def due(self, now_ns: int) -> list[K]:
        """Take the changed keys whose time has come, as published at ``now_ns``."""
        if now_ns < self._next:
            return []
        dirty = self._dirty
        out = [k for k, at in dirty.items() if at <= now_ns]
        self._taken(out, now_ns)
        return out

    def flush(self, now_ns: int) -> list[K]:
        """Take every changed key now, whatever its interval (shutdown: the final snapshot)."""
        out = list(self._dirty)
        self._taken(out, now_ns)
        return out

    def _taken(self, keys: list[K], now_ns: int) -> None:
        dirty, last = self._dirty, self._last
        for k in keys:
            del dirty[k]
            last[k] = now_ns
        self._next = min(dirty.values(), default=math.inf)
