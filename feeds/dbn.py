"""Replay feed over Databento DBN files (``kind = "dbn"``), on a
:class:`~engine.clock.ManualClock`, so a replay is deterministic.

The files (plain ``.dbn`` or Zstandard ``.dbn.zst``, told by their first bytes) are read in
chunks (:mod:`feeds.dbn_stream`), never whole, and merged in time order: the records' ``ts_recv``
(Databento's receipt time, the order within a DBN file), else ``ts_event``; on equal times the
file listed first goes first. Their records become events through one
:class:`feeds.dbn_codec.DbnDecoder`, so a definition in one file names the instrument ids of
another file of the same dataset.

Before each event the clock is set to the record's time and the event's ``ts_recv`` is the
clock's time (a clock never goes back); ``ts_event`` is the record's own. Between events the
feed sleeps the recorded gap divided by ``speed`` through the injected ``sleep``; with
``speed = 0`` it does not sleep and only yields to the event loop every ``yield_every`` events.

A bad record is counted under its reason (``stats.dropped``), logged at most once per reason
every 5 s, and dropped. A truncated or corrupt file is logged as an error naming the file and
the byte offset, counted (``truncated``, ``corrupt``), and the rest of it skipped; the other
files play on and the replay finishes as usual.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import databento_dbn as dbn
import msgspec

from engine.clock import ManualClock
from engine.constraints import NonEmptyStr, NonNegativeFloat, PositiveInt
from engine.errors import FeedDecodeError
from engine.events import EventSink, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry
from feeds.base import DropLog, FeedStats, ReplayPacing, Sleep
from feeds.dbn_codec import DbnDecoder, record_time
from feeds.dbn_stream import CHUNK_BYTES, DbnFileError, DbnReader

__all__ = ["DbnFeed", "DbnFeedConfig"]

logger = logging.getLogger(__name__)

_DISAGREEMENTS_LOGGED = 5  # definitions that contradict riskd's terms, logged one by one

_Merged = tuple[int, int, dbn.DBNRecord, str]  # time, file index, record, dataset


class DbnFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="dbn",
):
    """Configuration of a :class:`DbnFeed` (``kind = "dbn"``).

    Attributes:
        name: the feed's name in logs, stats and errors.
        required: the daemon is not ready (``/readyz``) while this feed is disconnected or
            stale; False: an optional feed.
        files: DBN files (``.dbn`` or ``.dbn.zst``), relative to the config file; at least
            one. Definitions, quotes and statistics may be in separate files.
        speed: 1 replays in real time, N N times faster, 0 as fast as possible.
        yield_every: with ``speed = 0``, events between two yields to the event loop.
    """

    name: str = "dbn"
    required: bool = True
    files: Annotated[list[NonEmptyStr], msgspec.Meta(min_length=1)]
    speed: NonNegativeFloat = 1.0
    yield_every: PositiveInt = 1000


class DbnFeed:
    """Replays DBN files into an :class:`~engine.events.EventSink`; implements
    :class:`feeds.base.Feed`.

    Args:
        config: this feed's configuration (``files`` as paths to open).
        registry: where definitions go and names are parsed.
        clock: the replay's clock, moved to each event's time.
        sleep: waits between events (``asyncio.sleep``; tests inject a recording one).
    """

    def __init__(
        self,
        config: DbnFeedConfig,
        registry: InstrumentRegistry,
        clock: ManualClock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = config.name
        self.stats = FeedStats()
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._drops = DropLog(self.stats, clock, logger)
        self.decoder = DbnDecoder(registry, feed=config.name)
        self.file_errors: list[DbnFileError] = []
        """The files that could not be read to their end."""
        self._disagreements_logged = 0

    async def run(self, sink: EventSink) -> None:
        """Replay the files into ``sink``; return once all are read."""
        cfg = self._config
        self.stats.connects += 1
        self.stats.connected = True
        logger.info(
            "dbn replay started", extra={"feed": self.name, "files": cfg.files, "speed": cfg.speed}
        )
        try:
            await self._play(sink)
        finally:
            self.stats.connected = False
        self.stats.finished = True
        logger.info(
            "replay finished",
            extra={
                "feed": self.name,
                "events": self.stats.events,
                "dropped": self.stats.dropped,
                "skipped": self.decoder.skipped,
                "disagreements": self.decoder.disagreements,
                "file_errors": len(self.file_errors),
            },
        )

    async def _play(self, sink: EventSink) -> None:
        cfg = self._config
        pacing = ReplayPacing(cfg.speed, cfg.yield_every, self._sleep)
        streams = [self._records(i, Path(p)) for i, p in enumerate(cfg.files)]
        for ts, _, record, dataset in heapq.merge(*streams, key=lambda m: (m[0], m[1])):
            self.stats.received += 1
            try:
                events = self.decoder.decode(record, dataset)
            except FeedDecodeError as exc:
                self._drops.drop(exc)
                continue
            self._log_disagreement()
            for event in events:
                await pacing.before(self._clock.now_ns() if self.stats.events else None, ts)
                self._emit(sink, event, ts)
                await pacing.after()

    def _emit(self, sink: EventSink, event: Quote | Tick | OpenInterest, ts: int) -> None:
        """Move the clock to the record's time and hand the event over, received now."""
        self._clock.set(ts)
        now = self._clock.now_ns()
        self.stats.last_recv_ns = now
        sink.put(msgspec.structs.replace(event, ts_recv=now))
        self.stats.events += 1

    def _records(self, index: int, path: Path) -> Iterator[_Merged]:
        """One file's records with their times; a truncated or corrupt file ends early, logged
        and counted. Local reads are short and buffered, so they run on the loop's thread."""
        reader = DbnReader(self.name, str(path))
        dataset = ""
        try:
            with path.open("rb") as file:
                while chunk := file.read(CHUNK_BYTES):
                    records = reader.feed(chunk)
                    if not dataset and reader.metadata is not None:
                        dataset = reader.metadata.dataset
                        self.decoder.add_metadata(reader.metadata)
                    for record in records:
                        yield record_time(record), index, record, dataset
            reader.end()
        except DbnFileError as exc:
            self._file_error(exc)
        except OSError as exc:
            detail = f"cannot be read after {reader.records} records: {exc}"
            self._file_error(DbnFileError(self.name, "io", str(path), 0, detail))

    def _file_error(self, exc: DbnFileError) -> None:
        self.file_errors.append(exc)
        self.stats.dropped[exc.reason] += 1
        logger.error(
            "dbn file not read to its end: %s",
            exc.detail,
            extra={"feed": self.name, "path": exc.path, "offset": exc.offset},
        )

    def _log_disagreement(self) -> None:
        total = self.decoder.disagreements.total()
        if (
            total > self._disagreements_logged
            and self._disagreements_logged < _DISAGREEMENTS_LOGGED
        ):
            self._disagreements_logged = total
            logger.warning(
                "dbn definition disagrees with riskd's terms (riskd's kept): %s",
                self.decoder.last_disagreement,
                extra={"feed": self.name, "disagreements": dict(self.decoder.disagreements)},
            )

    @property
    def skipped(self) -> Counter[str]:
        """Records that made no event and are no error, by kind."""
        return self.decoder.skipped
