"""Replay feed: events from a recorded file, on a :class:`~engine.clock.ManualClock`, so a
replay is deterministic.

Formats:

- ``jsonl``: one JSON message of riskd's contract per line (:mod:`feeds.json_codec`);
- ``tardis``: a Tardis ``options_chain`` CSV file (:mod:`feeds.tardis`), quotes only.

A path ending in ``.gz`` is read through gzip. The file is read line by line, never whole.

Before each event the clock is set to the event's ``ts_event`` and the event's ``ts_recv`` is
the clock's time (a clock never goes back: an out-of-order line keeps the latest time), so the
engine sees the same times on every run. Between events the feed sleeps the recorded gap
divided by ``speed`` through the injected ``sleep``; with ``speed = 0`` it does not sleep and
only yields to the event loop every ``yield_every`` events.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
from collections.abc import Generator, Iterable, Iterator
from pathlib import Path
from typing import Literal

import msgspec

from engine.clock import ManualClock
from engine.constraints import NonNegativeFloat, PositiveInt
from engine.errors import FeedDecodeError
from engine.events import Depth, EventSink, Fill, Quote, Tick
from engine.instruments import InstrumentRegistry
from feeds.base import DropLog, FeedStats, ReplayPacing, Sleep
from feeds.json_codec import JsonCodec
from feeds.tardis import OptionsChainDecoder

__all__ = ["ReplayFeed", "ReplayFeedConfig", "Sleep"]

logger = logging.getLogger(__name__)


_LOOP_GAP_NS = 1_000_000
"""Time between the last event of a pass and the first of the next (``loop``), 1 ms."""


class ReplayFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="replay",
):
    """Configuration of a :class:`ReplayFeed` (``kind = "replay"``).

    Attributes:
        name: the feed's name in logs, stats and errors.
        required: the daemon is not ready (``/readyz``) while this feed is disconnected or
            stale. False: an optional feed (fills or data that may never come); it counts for
            nothing in readiness, and it raises a stale-feed alert only once it has received
            something.
        path: the recorded file (``.gz`` is decompressed).
        format: ``jsonl`` (riskd's JSON messages) or ``tardis`` (``options_chain`` CSV).
        speed: 1 replays in real time, N N times faster, 0 as fast as possible.
        loop: start again at the end of the file, shifted in time to follow the last pass.
        yield_every: with ``speed = 0``, events between two yields to the event loop.
    """

    name: str = "replay"
    required: bool = True
    path: str
    format: Literal["jsonl", "tardis"] = "jsonl"
    speed: NonNegativeFloat = 1.0
    loop: bool = False
    yield_every: PositiveInt = 1000


class ReplayFeed:
    """Replays a recorded file into an :class:`~engine.events.EventSink`; implements
    :class:`feeds.base.Feed`.

    Args:
        config: this feed's configuration.
        registry: instruments the file may name.
        clock: the replay's clock, moved to each event's time.
        sleep: waits between events (``asyncio.sleep``; tests inject a recording one).
    """

    def __init__(
        self,
        config: ReplayFeedConfig,
        registry: InstrumentRegistry,
        clock: ManualClock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = config.name
        self.stats = FeedStats()
        self._config = config
        self._registry = registry
        self._clock = clock
        self._sleep = sleep
        self._drops = DropLog(self.stats, clock, logger)
        self._codec = JsonCodec(registry, feed=config.name)

    async def run(self, sink: EventSink) -> None:
        """Replay the file into ``sink``; return at its end (never, with ``loop``).

        Raises:
            OSError: the file cannot be read.
            FeedDecodeError: a Tardis file's header lacks a required column.
        """
        cfg = self._config
        self.stats.connects += 1
        self.stats.connected = True
        logger.info(
            "replay started",
            extra={"feed": self.name, "path": cfg.path, "format": cfg.format, "speed": cfg.speed},
        )
        offset_ns = 0
        try:
            while True:
                first, last = await self._pass(sink, offset_ns)
                if not cfg.loop or first is None or last is None:
                    break
                offset_ns += last - first + _LOOP_GAP_NS
        finally:
            self.stats.connected = False
        self.stats.finished = True
        logger.info(
            "replay finished",
            extra={"feed": self.name, "events": self.stats.events, "dropped": self.stats.dropped},
        )

    async def _pass(self, sink: EventSink, offset_ns: int) -> tuple[int | None, int | None]:
        """One pass over the file; the first and last (unshifted) event times."""
        cfg = self._config
        first: int | None = None
        last: int | None = None
        pacing = ReplayPacing(cfg.speed, cfg.yield_every, self._sleep)
        with contextlib.closing(self._events(offset_ns)) as events:
            for event in events:
                ts = event.ts_event
                if first is None:
                    first = ts - offset_ns
                await pacing.before(self._clock.now_ns() if self.stats.events else None, ts)
                last = ts if last is None else max(last, ts)
                await self._emit(sink, event)
                await pacing.after()
        return first, None if last is None else last - offset_ns

    async def _emit(self, sink: EventSink, event: Tick | Quote | Depth | Fill) -> None:
        """Move the clock to the event and hand it over, received now."""
        self._clock.set(event.ts_event)
        now = self._clock.now_ns()
        self.stats.last_recv_ns = now
        event = msgspec.structs.replace(event, ts_recv=now)
        if isinstance(event, Fill):
            await sink.put_fill(event)
        else:
            sink.put(event)
        self.stats.events += 1

    def _events(self, offset_ns: int) -> Generator[Tick | Quote | Depth | Fill, None, None]:
        """The file's good events, times shifted by ``offset_ns``; bad lines are dropped."""
        tardis: OptionsChainDecoder | None = None
        with _lines(Path(self._config.path)) as lines:
            for number, line in enumerate(lines):
                if self._config.format == "tardis" and number == 0:
                    tardis = OptionsChainDecoder(self._registry, line, feed=self.name)
                    continue
                if not line.strip():
                    continue
                self.stats.received += 1
                try:
                    if tardis is not None:
                        event: Tick | Quote | Depth | Fill = tardis.decode(line, ts_recv=0)
                    else:
                        event = self._codec.decode_line(line, self._clock.now_ns() - offset_ns)
                except FeedDecodeError as exc:
                    self._drops.drop(exc)
                    continue
                if offset_ns:
                    event = msgspec.structs.replace(event, ts_event=event.ts_event + offset_ns)
                yield event


@contextlib.contextmanager
def _lines(path: Path) -> Iterator[Iterable[bytes]]:
    """The file's lines; local reads are short and buffered, so they run on the loop's thread."""
    if path.suffix == ".gz":
        with gzip.open(path, "rb") as zipped:
            yield zipped
    else:
        with path.open("rb") as plain:
            yield plain
