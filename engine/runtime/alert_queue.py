"""The alert transitions on their way to Redis: in order, bounded, and the active view."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from engine.outputs import AlertPayload, decode_alert

__all__ = ["AlertQueue"]


class AlertQueue:
    """Alert transitions waiting to be written, in order, each with a sequence number; and the
    alerts raised now (the active-alerts hash as it should be).

    Args:
        capacity: transitions held; when full the oldest is dropped (:attr:`dropped`).
    """

    __slots__ = ("_active", "_capacity", "_queue", "_seq", "dropped")

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._queue: deque[tuple[int, AlertPayload]] = deque()
        self._seq = 0
        self._active: dict[str, AlertPayload] = {}  # alert id -> its latest raised payload
        self.dropped = 0
        """Transitions dropped because the queue was full."""

    def __len__(self) -> int:
        return len(self._queue)

    def __iter__(self) -> Iterator[tuple[int, AlertPayload]]:
        """The queued transitions, oldest first, with their sequence numbers."""
        return iter(self._queue)

    @property
    def active(self) -> Mapping[str, AlertPayload]:
        """The alerts raised now (also those whose transition was dropped from a full queue)."""
        return self._active

    def add(self, payload: AlertPayload) -> None:
        """Queue a transition; when the queue is full, drop (and count) the oldest."""
        if len(self._queue) >= self._capacity:
            self._queue.popleft()
            self.dropped += 1
        self._seq += 1
        self._queue.append((self._seq, payload))
        if payload.state == "raised":
            self._active[payload.id] = payload
        else:
            self._active.pop(payload.id, None)

    def end_predecessors(self, left: Mapping[Any, Any], now_ns: int) -> None:
        """Queue, ahead of every transition of this run, a ``cleared`` one for each alert an
        earlier run left in the active-alerts hash (``left``: its fields and payloads, of any
        schema version), stamped ``now_ns`` with ``"reason": "restart"``; a field that is not
        an alert payload is skipped."""
        ended = []
        for raw_id, data in sorted(left.items()):
            alert_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            raised = decode_alert(data, alert_id)
            if raised is not None:
                ended.append(
                    msgspec.structs.replace(raised, state="cleared", reason="restart", ts_ns=now_ns)
                )
        first = self._queue[0][0] if self._queue else self._seq + 1
        for i, payload in enumerate(reversed(ended), start=1):
            self._queue.appendleft((first - i, payload))  # before this run's, in order

    def written(self, upto_seq: int) -> None:
        """The transitions up to ``upto_seq`` are in Redis: forget them."""
        q = self._queue
        while q and q[0][0] <= upto_seq:
            q.popleft()
