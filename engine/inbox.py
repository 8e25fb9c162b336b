"""The engine's inbox: market data conflated per instrument, fills queued in order.

Pure and synchronous; the runtime wraps it to wake the engine and to make fill producers wait
while the fill queue is full (``engine.runtime.app``).

Bounds: market data takes one slot per instrument (a newer tick or quote replaces the older,
counted in :attr:`Inbox.conflated`), so memory is bounded by the number of instruments. Fills are
never conflated or dropped; their queue holds ``fill_capacity`` fills and :meth:`Inbox.put_fill`
refuses more (the runtime then makes the feed wait).
"""

from __future__ import annotations

from collections import deque

from engine.events import Carry, Depth, Fill, OpenInterest, Quote, Tick

__all__ = ["Inbox"]


class Inbox:
    """Latest tick and quote per instrument, and every fill in arrival order."""

    __slots__ = (
        "_carry",
        "_depth",
        "_fills",
        "_interest",
        "_quotes",
        "_ticks",
        "conflated",
        "fill_capacity",
        "received",
    )

    def __init__(self, fill_capacity: int = 100_000) -> None:
        if fill_capacity <= 0:
            raise ValueError("fill_capacity must be > 0")
        self.fill_capacity = fill_capacity
        self._ticks: dict[str, Tick] = {}
        self._quotes: dict[str, Quote] = {}
        self._fills: deque[Fill] = deque()
        self._carry: dict[tuple[str, int], Carry] = {}  # the latest per (chain, expiry)
        self._depth: dict[str, Depth] = {}  # read by the risk task, never drained
        self._interest: dict[str, Quote | OpenInterest] = {}  # likewise
        self.received = 0
        """Events accepted so far."""
        self.conflated = 0
        """Ticks and quotes replaced by a newer one before the engine read them."""

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        """Keep ``event`` as the latest of its instrument (an order book and open interest are
        kept apart: the engine does not drain them, :meth:`depth` and :meth:`interest` read
        them; a quote that carries open interest counts as that instrument's latest too)."""
        self.received += 1
        if type(event) is Depth:
            self._depth[event.instrument] = event
            return
        if type(event) is OpenInterest:
            self._interest[event.instrument] = event
            return
        if type(event) is Quote and event.open_interest is not None:
            self._interest[event.instrument] = event
        table = self._quotes if type(event) is Quote else self._ticks
        if event.instrument in table:
            self.conflated += 1
        table[event.instrument] = event  # type: ignore[assignment]  # table matches the type

    def put_carry(self, carry: Carry) -> None:
        """Keep ``carry`` as the latest of its chain and expiry (:meth:`drain_carry`)."""
        self._carry[(carry.chain, carry.expiry_ns)] = carry

    def drain_carry(self) -> list[Carry]:
        """The implied carries queued (the latest per chain and expiry), emptied."""
        out = list(self._carry.values())
        self._carry.clear()
        return out

    def depth(self, names: list[str]) -> dict[str, Depth]:
        """The latest order book of each of ``names`` that has one."""
        return {n: d for n in names if (d := self._depth.get(n)) is not None}

    def interest(self) -> dict[str, Quote | OpenInterest]:
        """A copy of the latest open interest of every option that has one (a quote that
        carried it, or an :class:`~engine.events.OpenInterest`), by instrument."""
        return dict(self._interest)

    def put_fill(self, fill: Fill) -> bool:
        """Queue ``fill``; False (and nothing queued) when the queue is full."""
        if len(self._fills) >= self.fill_capacity:
            return False
        self.received += 1
        self._fills.append(fill)
        return True

    def __len__(self) -> int:
        return len(self._ticks) + len(self._quotes) + len(self._fills)

    @property
    def fills_queued(self) -> int:
        """Fills waiting for the engine."""
        return len(self._fills)

    def drain(self) -> tuple[list[Tick], list[Quote], list[Fill]]:
        """Everything queued, emptied: ticks, quotes (latest per instrument), fills in order."""
        ticks = list(self._ticks.values())
        quotes = list(self._quotes.values())
        fills = list(self._fills)
        self._ticks.clear()
        self._quotes.clear()
        self._fills.clear()
        return ticks, quotes, fills
