"""The ``engine`` task: events in, repriced exposures out, as soon as they arrive.

Each cycle drains the inbox into the portfolio (ticks and quotes conflated, fills in order),
reprices what the events touched, and hands the sink the exposure payloads that
:class:`~engine.schedule.PublishSchedule` says are due: a key quiet for ``min_interval_ms``
at once, a busy key at most once per interval, its last change always. The loop wakes on every
event, when a key becomes due, and for the full reprice (time decay, and every sum rebuilt)
every ``full_reprice_interval_s``. The full reprice and its payloads are computed in a worker
thread (the kernels release the GIL), so feeds, the sink and the web server go on meanwhile.
The keys a full reprice refreshes (every key: time moved) are built and published
:data:`REFRESH_BATCH` a cycle, behind that cycle's events, so that a quote arriving meanwhile
waits for a few of them, not for every key's.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from engine.clock import Clock
from engine.events import Fill, Quote, Tick
from engine.outputs import Exposure
from engine.risk.settlement import Settler
from engine.risk.strategies import StrategyBook
from engine.runtime.checkpoint import BookState
from engine.runtime.config import EngineConfig
from engine.runtime.intake import AsyncInbox, Intake
from engine.runtime.journal import Settlement
from engine.runtime.publisher import Publisher
from engine.runtime.timings import CycleHistograms
from engine.schedule import PublishSchedule
from engine.state import Portfolio

__all__ = ["CyclePacing", "EngineLoop"]

logger = logging.getLogger(__name__)

Key = tuple[str, str | None]
"""A payload's key: (book, underlying), or (book, None) for the book's own."""

REFRESH_BATCH = 8
"""Keys a cycle of :meth:`EngineLoop.run` refreshes after a full reprice; the next cycles, at
once, take the rest. Publishing every key of a 32-book book at once (96 payloads: their alert
rules, the sink's encoding) held a quote that came meanwhile for ~3 ms (bench/latency.py,
scenario A's p99: 5.4-5.8 ms with every key at once, 3.2 ms with none refreshed)."""


@dataclass(slots=True)
class _Step:
    """A cycle between its parts."""

    t0: float  # perf_counter at its start
    now: int  # its valuation or publication time, on the daemon's clock
    full: bool
    events: tuple[list[Tick], list[Quote], list[Fill]]


@dataclass(slots=True)
class CyclePacing:
    """When the next cycle may start while events keep coming (monotonic seconds).

    A cycle that took events is followed by the next one ``spacing_s`` after its start at the
    soonest, and, when cycles are slow, ``duration x (1 / busy_share - 1)`` after its end:
    cycles then take at most ``busy_share`` of the event loop's time, the rest being left to
    the feeds (reading the broker's socket) and the sink, and under a heavy load the batches
    grow instead of the backlog. After a quiet spell the next event is taken at once.
    """

    spacing_s: float
    busy_share: float
    next_s: float = -math.inf

    def took_events(self, start_s: float, end_s: float) -> None:
        """Record a cycle that took events, from ``start_s`` to ``end_s``."""
        rest_s = (end_s - start_s) * (1.0 / self.busy_share - 1.0)
        self.next_s = max(start_s + self.spacing_s, end_s + rest_s)

    def wait_s(self, now_s: float) -> float:
        """How long to wait at ``now_s`` before the next cycle (<= 0: start it now)."""
        return self.next_s - now_s


class EngineLoop:
    """The streaming path from the inbox to the sink.

    Args:
        config: ``[engine]``.
        min_interval_ms: ``[redis] min_interval_ms``: the publish schedule's interval.
        portfolio: the book; this loop is its only writer.
        strategies: strategy holdings (a strategy's fill is its legs').
        inbox: where the feeds put events.
        intake: told about instruments new to the book (to subscribe them).
        out: the sink and the alert rules.
        clock: the daemon's clock (valuation and publication times).
        valuing: held while a worker thread reprices the portfolio (the risk task copies
            books only outside).
        histograms: cycle time and latency for ``/metrics``, when served.

    Attributes:
        rejected_fills: fills the engine refused (bad book name or numbers), kept and logged.
    """

    def __init__(
        self,
        config: EngineConfig,
        min_interval_ms: int,
        portfolio: Portfolio,
        strategies: StrategyBook,
        inbox: AsyncInbox,
        intake: Intake,
        out: Publisher,
        clock: Clock,
        valuing: asyncio.Lock,
        histograms: CycleHistograms | None = None,
    ) -> None:
        self.config = config
        self.portfolio = portfolio
        self.strategies = strategies
        self.inbox = inbox
        self.intake = intake
        self.out = out
        self.clock = clock
        self.valuing = valuing
        self.histograms = histograms
        self.schedule: PublishSchedule[Key] = PublishSchedule(min_interval_ms * 1_000_000)
        self.rejected_fills: list[Fill] = []
        self.cycles = 0
        self.cycle_errors = 0
        self.unknown = 0
        self.cycle_s: deque[float] = deque(maxlen=2048)
        self.latency_ns: deque[int] = deque(maxlen=4096)
        self._lots_seen = portfolio.lot_count
        self._full_interval_ns = round(config.full_reprice_interval_s * 1e9)
        self._next_full_ns = 0
        self._took_events = False  # whether the last cycle drained any event
        self._refresh: dict[Key, None] = {}  # keys a full reprice refreshed, not yet published
        self.cycling = asyncio.Lock()
        """Held for each cycle of :meth:`run`: a checkpoint captures the book between two."""
        self.drained = asyncio.Event()
        """Set each time a cycle has drained the inbox."""

    # ------------------------------------------------------------------ cycles

    def cycle(self, *, full: bool = False, flush: bool = False) -> int:
        """Drain the inbox, reprice, hand the sink the payloads that are due (every changed
        one when ``flush``: shutdown); returns how many payloads were built."""
        step = self._begin(full)
        if step.full:
            payloads = self._full(step, flush)
        else:
            changed = self.portfolio.cycle(step.now, False)
            payloads = self._valued(step, changed, flush)
        return self._end(step, payloads, self._refreshed(step.now, len(self._refresh)))

    async def acycle(self) -> int:
        """:meth:`cycle`, except that a full reprice and its payloads are computed in a worker
        thread, and that the keys it refreshed are published :data:`REFRESH_BATCH` a cycle.
        Nothing else writes the portfolio meanwhile: this loop is its only writer."""
        step = self._begin(False)
        if step.full:
            async with self.valuing:  # the risk task copies books only outside a reprice
                payloads = await asyncio.to_thread(self._full, step)
        else:
            changed = self.portfolio.cycle(step.now, False)
            payloads = self._valued(step, changed, False)
        return self._end(step, payloads, self._refreshed(step.now, REFRESH_BATCH))

    def safe_cycle(self, *, full: bool = False, flush: bool = False) -> None:
        """:meth:`cycle`, logging and counting an exception instead of raising it."""
        with self._contained():
            self.cycle(full=full, flush=flush)

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle whenever events arrive or a payload falls due, until ``stop``; at least every
        ``cycle_interval_ms``. An event after a quiet spell is taken at once; while events
        keep coming, cycles are spaced by :class:`CyclePacing`, so that a burst is taken in
        batches (the leading edge of a schedule, for cycles)."""
        idle_s = self.config.cycle_interval_ms / 1000
        pacing = CyclePacing(self.config.min_cycle_interval_ms / 1000, self.config.busy_share)
        while not stop.is_set():
            if self._refresh:  # the next refresh batch at once, after what the loop has ready
                await asyncio.sleep(0)
            else:
                await self.inbox.wait(min(idle_s, self._until_due_s()))
            gap = pacing.wait_s(time.monotonic())
            if gap > 0:
                await asyncio.sleep(gap)
            start = time.monotonic()
            async with self.cycling:
                with self._contained():
                    await self.acycle()
            if self._took_events:
                pacing.took_events(start, time.monotonic())

    def apply_fill(self, f: Fill) -> None:
        """Apply a fill to the book (a strategy's: to its legs and holding); a fill the engine
        refuses is kept (:attr:`rejected_fills`) and logged, one of an unknown instrument is
        kept until it is known."""
        try:
            if ":" in f.instrument:  # a strategy's text form: its legs
                self.strategies.apply_fill(self.portfolio, f)
                return
            applied = self.portfolio.apply_fill(f)
        except Exception as exc:  # decoders check fills; this is the engine's own guard
            self.rejected_fills.append(f)
            logger.error("fill rejected: %s", exc, extra={"fill": f"{f!r}"[:300]})
            return
        if not applied:
            logger.error(
                "fill for unknown instrument kept until it is known",
                extra={"book": f.book, "instrument": f.instrument, "quantity": f.quantity},
            )

    def retry_unresolved(self) -> None:
        """Apply the kept fills whose instruments are now known. On a shard, a kept fill now
        known to be of another shard's underlying is counted as such (``foreign_fills``) and
        no longer kept, not applied: its shard cannot be told while its instrument is
        unknown."""
        p = self.portfolio
        gate = self.inbox.gate
        if gate is not None and p.unresolved_fills:
            p.unresolved_fills[:] = [f for f in p.unresolved_fills if gate.fill(f)]
        p.retry_unresolved()

    def replay(
        self,
        journaled: Sequence[Fill | Settlement],
        settler: Settler,
        restored: BookState | None = None,
    ) -> None:
        """Before the first cycle: take what a checkpoint ``restored`` beyond the book (rejected
        fills, realised P&L, settled expiries: their payloads published again), then apply the
        journal's entries (:func:`~engine.runtime.journal.open_journal`; after a checkpoint,
        its tail) in order: fills, and settlements (their payloads published again)."""
        if restored is not None:
            self.rejected_fills.extend(restored.rejected)
            settler.realised_pnl_usd.update(restored.realised_pnl_usd)
            for p in restored.settled:
                settler.settled[f"{p.index}:{p.expiry}"] = p
                self.out.publish(f"{p.index}:{p.expiry}", p)
        gate = self.inbox.gate  # a shard's: a journal from before a new [cluster] may hold
        for entry in journaled:  # fills of other shards now, not applied (counted)
            if isinstance(entry, Settlement):
                p = settler.replay(
                    self.portfolio, entry.index, entry.expiry_ns, entry.twap, entry.ts_ns
                )
                self.out.publish(f"{p.index}:{p.expiry}", p)
            elif gate is None or gate.fill(entry):
                self.apply_fill(entry)
        if journaled:
            settled = sum(isinstance(entry, Settlement) for entry in journaled)
            logger.info(
                "journal replayed",
                extra={"fills": len(journaled) - settled, "settlements": settled},
            )

    # ------------------------------------------------------------------ a cycle's parts

    def _begin(self, full: bool) -> _Step:
        """Drain the inbox into the portfolio; decide whether it is a full reprice."""
        t0 = time.perf_counter()
        ticks, quotes, fills = self.inbox.drain()
        self.drained.set()
        self._took_events = bool(ticks or quotes or fills)
        p = self.portfolio
        for c in self.inbox.inbox.drain_carry():  # before the quotes: IVs implied on it
            p.apply_carry(c)
        for t in ticks:
            if not p.apply_tick(t):
                self.unknown += 1
        self.unknown += p.apply_quotes(quotes)
        for f in fills:
            self.apply_fill(f)
        if p.lot_count != self._lots_seen:  # a fill brought new instruments in
            self.intake.subscribe(p.lot_instruments(self._lots_seen))
            self._lots_seen = p.lot_count
        now = self.clock.now_ns()
        # Due, or the clock was stepped back (the next reprice further than one interval away):
        # else the valuation time would stay ahead, every input stale, until the clock caught up.
        full = full or not 0 < self._next_full_ns - now <= self._full_interval_ns
        if full and p.unresolved_fills:  # their instruments may be known by now
            self.retry_unresolved()
        return _Step(t0, now, full, (ticks, quotes, fills))

    def _full(self, step: _Step, flush: bool = False) -> list[tuple[str, Exposure]]:
        """A full reprice and the payloads due after it (a worker thread runs it): the keys due
        (every changed one when ``flush``; the keys this cycle's events moved are changes, as
        in any cycle); every other key is to be refreshed (:meth:`_refreshed`,
        :meth:`~engine.schedule.PublishSchedule.refresh`: at once unless it waits for its
        interval, and without counting against the next change's)."""
        p = self.portfolio
        changed = p.cycle(step.now, False) if any(step.events) else set()
        p.cycle(step.now, True)
        self._next_full_ns = step.now + self._full_interval_ns
        keys = dict.fromkeys(k for b, u in p.bu_keys() for k in ((b, u), (b, None)))
        mono = time.monotonic_ns()
        self._mark(changed, mono)
        self._refresh.update(dict.fromkeys(self.schedule.refresh(keys)))
        return self._taken(self.schedule.flush(mono) if flush else self.schedule.due(mono), step)

    def _valued(
        self, step: _Step, changed: set[tuple[str, str]], flush: bool
    ) -> list[tuple[str, Exposure]]:
        """Mark the ``changed`` pairs and their books; build the payloads due now."""
        mono = time.monotonic_ns()
        self._mark(changed, mono)
        return self._taken(self.schedule.flush(mono) if flush else self.schedule.due(mono), step)

    def _taken(self, keys: list[Key], step: _Step) -> list[tuple[str, Exposure]]:
        """The payloads of the ``keys`` due; a key due to be refreshed too is refreshed so."""
        for key in keys:
            self._refresh.pop(key, None)
        return self._build(keys, step.now)

    def _refreshed(self, now: int, most: int) -> list[tuple[str, Exposure]]:
        """The payloads of the first ``most`` keys a full reprice left to refresh."""
        keys = list(itertools.islice(self._refresh, most))
        for key in keys:
            del self._refresh[key]
        return self._build(keys, now)

    def _mark(self, changed: set[tuple[str, str]], mono_ns: int) -> None:
        """The ``changed`` pairs and their books, changed on the publish schedule."""
        self.schedule.changed([k for b, u in changed for k in ((b, u), (b, None))], mono_ns)

    def _build(self, keys: list[Key], now: int) -> list[tuple[str, Exposure]]:
        """The payloads of ``keys``."""
        if not keys:
            return []
        pairs = [(b, u) for b, u in keys if u is not None]
        books = [b for b, u in keys if u is None]
        return self.portfolio.exposure_payloads(pairs, now, books)

    def _end(
        self,
        step: _Step,
        payloads: list[tuple[str, Exposure]],
        refreshed: list[tuple[str, Exposure]],
    ) -> int:
        """Publish the payloads (and check the rules on them), the ``refreshed`` ones (a full
        reprice's: only time moved) in the background, behind any change; record the cycle's
        timings."""
        for key, payload in payloads:
            self.out.publish(key, payload)
        for key, payload in refreshed:
            self.out.publish(key, payload, background=True)
        done = self.clock.now_ns()
        latencies = [done - ev.ts_recv for events in step.events for ev in events]
        self.latency_ns.extend(latencies)
        self.cycles += 1
        cycle_s = time.perf_counter() - step.t0
        self.cycle_s.append(cycle_s)
        if self.histograms is not None:
            self.histograms.observe(cycle_s, latencies)
        return len(payloads) + len(refreshed)

    def _until_due_s(self) -> float:
        """Seconds until the first payload falls due (0: one is)."""
        at = self.schedule.next_due_ns()
        if at == math.inf:
            return math.inf
        return max(at - time.monotonic_ns(), 0) / 1e9

    @contextlib.contextmanager
    def _contained(self) -> Iterator[None]:
        """Log and count an exception of a cycle instead of raising it: a bug in one cycle must
        not stop the daemon (each fill is applied, or kept, before anything else)."""
        try:
            yield
        except Exception:
            self.cycle_errors += 1
            logger.exception("engine cycle failed", extra={"errors": self.cycle_errors})
