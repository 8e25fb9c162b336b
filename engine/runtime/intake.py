"""The feeds' side of the daemon: the inbox they put events into, and running them.

- :class:`AsyncInbox`: the engine's inbox as a feed sees it (:class:`engine.events.EventSink`);
  it wakes the engine on every event and makes a feed wait while the fill queue is full.
- :func:`build_feed`: a feed adapter from its configuration.
- :class:`Intake`: runs the feeds as the daemon's ``feed:{name}`` tasks: an unexpected exception
  restarts a feed after a capped backoff, a fatal connection error stops it; loads venue
  instrument definitions at start; subscribes to instruments new to the book; says when every
  replay has reached its file's end (and, with ``--exit-at-end``, ends the daemon).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import msgspec

from engine.clock import Clock, ManualClock
from engine.errors import ConfigError, FeedConnectionError, FeedDecodeError
from engine.events import Carry, Depth, Fill, OpenInterest, Quote, Tick
from engine.inbox import Inbox
from engine.instruments import DERIBIT, InstrumentRegistry
from engine.retry import Backoff
from engine.runtime.config import FeedConfig
from engine.runtime.journal import FillJournal
from engine.runtime.shard_gate import SETTLEMENT_CURRENCIES, ShardGate
from feeds.base import Feed, Sleep
from feeds.dbn import DbnFeed, DbnFeedConfig
from feeds.deribit import DeribitFeedConfig, WebSocketFeed
from feeds.mqtt import DEFAULT_TOPICS, MqttFeed, MqttFeedConfig, shard_topics
from feeds.replay import ReplayFeed, ReplayFeedConfig
from feeds.sim import SimFeed, SimFeedConfig
from feeds.ussim import UsSimFeed, UsSimFeedConfig

__all__ = ["AsyncInbox", "Intake", "advancing_sleep", "build_feed", "build_feeds", "shard_feed"]

logger = logging.getLogger(__name__)

_REPLAYS = (ReplayFeed, DbnFeed)
"""Feeds that replay files: on the replay's clock, never restarted, finished at their end."""


class AsyncInbox:
    """The engine's inbox as feeds see it (:class:`engine.events.EventSink`): wakes the engine
    on every event, and makes a feed wait while the fill queue is full (fills are never
    dropped)."""

    __slots__ = ("_room", "_wake", "gate", "inbox", "journal")

    def __init__(
        self, inbox: Inbox, journal: FillJournal | None = None, gate: ShardGate | None = None
    ) -> None:
        self.inbox = inbox
        self.journal = journal
        """Where a fill is written (fsynced) before it is queued, hence before the feed
        acknowledges it."""
        self.gate = gate
        """A shard's: what belongs to other shards is counted and goes no further (neither
        queued nor journaled)."""
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        gate = self.gate
        if gate is not None and not gate.market(event):
            return
        self.inbox.put(event)
        if type(event) is not Depth and type(event) is not OpenInterest:  # not priced on
            self._wake.set()

    def put_carry(self, carry: Carry) -> None:
        """Queue an implied carry (the risk task's) for the engine, and wake it."""
        self.inbox.put_carry(carry)
        self._wake.set()

    async def put_fill(self, fill: Fill) -> None:
        """Journal ``fill`` and queue it, once the queue has room: both at once, so the fills
        queued are always the journal's last (a checkpoint's offset relies on it). Another
        shard's fill is only counted and logged (acknowledged: that shard takes it)."""
        if self.gate is not None and not self.gate.fill(fill):
            return
        while self.inbox.fills_queued >= self.inbox.fill_capacity:
            self._room.clear()
            self._wake.set()
            await self._room.wait()
        if self.journal is not None:
            self.journal.append(fill)
        if not self.inbox.put_fill(fill):  # cannot happen: there is room, nothing ran between
            raise AssertionError("the fill queue refused a fill it had room for")
        self._wake.set()

    async def wait(self, timeout_s: float) -> None:
        """Return when an event arrives or after ``timeout_s``."""
        if not self._wake.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout_s):
                    await self._wake.wait()
        self._wake.clear()

    def drain(self) -> tuple[list[Tick], list[Quote], list[Fill]]:
        out = self.inbox.drain()
        self._room.set()
        return out


def deribit_channels(
    registry: InstrumentRegistry, names: Iterable[str]
) -> tuple[list[str], list[str]]:
    """The Deribit instruments among ``names`` and the indices they are priced on: what a
    Deribit feed subscribes to for them."""
    insts = [i for n in names if (i := registry.get(n)) is not None and i.venue == DERIBIT]
    return [i.name for i in insts], sorted({i.index for i in insts})


def build_feed(
    config: FeedConfig,
    registry: InstrumentRegistry,
    clock: Clock,
    held: Iterable[str],
    books: Iterable[str] = (),
    valuing: asyncio.Lock | None = None,
) -> Feed:
    """The adapter of ``config``; a Deribit feed subscribes to the ``held`` instruments too,
    and to the order books of ``books`` (the hedge futures).

    A simulator on a ManualClock (a test's) runs in simulated time: each of its waits moves
    the clock on instead (:func:`advancing_sleep`), as fast as the event loop lets it, but not
    while ``valuing`` is held (the engine reprices the whole book).

    Raises:
        ValueError: a replay feed on a clock other than a ManualClock.
    """
    if isinstance(config, DeribitFeedConfig):
        names, indices = deribit_channels(registry, held)
        return WebSocketFeed(
            config, registry, clock, instruments=names, indices=indices, books=books
        )
    if isinstance(config, MqttFeedConfig):
        return MqttFeed(config, registry, clock)
    if isinstance(config, ReplayFeedConfig | DbnFeedConfig):
        if not isinstance(clock, ManualClock):
            raise ValueError("a replay feed runs on the replay's own clock, not the wall clock")
        if isinstance(config, DbnFeedConfig):
            return DbnFeed(config, registry, clock)
        return ReplayFeed(config, registry, clock)
    if isinstance(config, SimFeedConfig):
        if isinstance(clock, ManualClock):
            return SimFeed(config, registry, clock, sleep=advancing_sleep(clock, valuing))
        return SimFeed(config, registry, clock)
    if isinstance(config, UsSimFeedConfig):
        if isinstance(clock, ManualClock):
            return UsSimFeed(config, registry, clock, sleep=advancing_sleep(clock, valuing))
        return UsSimFeed(config, registry, clock)
    raise AssertionError(config)  # the tagged union admits nothing else


def advancing_sleep(clock: ManualClock, valuing: asyncio.Lock | None = None) -> Sleep:
    """A sleep for a feed on ``clock``: moves the clock on by the delay, and yields to the
    event loop (the engine takes what the feed sent) without waiting; but while ``valuing`` is
    held, simulated time stands still until it is released. A full reprice takes the engine
    away for a while in a worker thread; were the feed to run on meanwhile, as fast as the loop
    lets it, a minute of market could pass that the engine never valued (which minute, and how
    much of it, would depend on the machine's load)."""

    async def sleep(delay_s: float) -> None:
        if valuing is not None and valuing.locked():
            async with valuing:
                pass
        clock.advance(round(delay_s * 1e9))
        await asyncio.sleep(0)

    return sleep


def build_feeds(
    configs: list[FeedConfig],
    config_path: Path,
    registry: InstrumentRegistry,
    clock: Clock,
    held: list[str],
    books: list[str],
    valuing: asyncio.Lock,
    gate: ShardGate | None = None,
) -> list[Feed]:
    """Each configured feed's adapter (:func:`build_feed`); replay files are relative to the
    config file. ``books``: the hedge futures, whose order books a Deribit feed follows;
    ``valuing``: held while the engine reprices the whole book; ``gate``: a shard's, whose
    feeds subscribe to its underlyings only (:func:`shard_feed`).

    Raises:
        ConfigError: a missing replay file, or a feed that cannot run on ``clock``.
    """
    feeds: list[Feed] = []
    if gate is not None:
        gate.check_listed(held, str(config_path))
        configs = [shard_feed(fc, gate, held) for fc in configs]
        books = [b for b in books if gate.owns(b)]
    for i, fc in enumerate(configs):
        if isinstance(fc, ReplayFeedConfig):
            fc = msgspec.structs.replace(
                fc, path=_replay_file(config_path, fc.path, f"$.feeds[{i}].path")
            )
        elif isinstance(fc, DbnFeedConfig):
            files = [
                _replay_file(config_path, f, f"$.feeds[{i}].files[{j}]")
                for j, f in enumerate(fc.files)
            ]
            fc = msgspec.structs.replace(fc, files=files)
        try:
            feeds.append(build_feed(fc, registry, clock, held, books, valuing))
        except ValueError as exc:
            raise ConfigError(str(config_path), f"{exc} - at `$.feeds[{i}]`") from exc
    return feeds


def shard_feed(config: FeedConfig, gate: ShardGate, held: Iterable[str]) -> FeedConfig:
    """``config`` narrowed to the shard's underlyings: a Deribit feed's instruments, indices
    and currencies of other shards left out (a settlement currency, ``USDC`` or ``USDT``,
    stays: it lists many underlyings); an MQTT feed on the default topics subscribes to
    :func:`feeds.mqtt.shard_topics` of the shard's underlyings among those the book and the
    configuration name (``held``: the book's instruments). Others are unchanged: the gate
    filters what they deliver."""
    if isinstance(config, DeribitFeedConfig):
        shard = gate.shard

        def currencies(names: list[str]) -> list[str]:
            return [c for c in names if c in SETTLEMENT_CURRENCIES or shard.owns(c)]

        return msgspec.structs.replace(
            config,
            instruments=[n for n in config.instruments if gate.owns(n)],
            indices=[n for n in config.indices if gate.owns(n)],
            instrument_currencies=currencies(config.instrument_currencies),
            summary_currencies=currencies(config.summary_currencies),
        )
    if isinstance(config, MqttFeedConfig) and tuple(config.topics) == DEFAULT_TOPICS:
        named = {u for n in held if (u := gate.underlying(n)) is not None}
        named.update(gate.known)
        owned = [u for u in named if gate.shard.owns(u)]
        return msgspec.structs.replace(config, topics=shard_topics(owned))
    return config


def _replay_file(config_path: Path, name: str, key: str) -> str:
    """A replay file's path, relative to the config file; ConfigError naming ``key`` if it is
    no file."""
    path = config_path.parent / name
    if not path.is_file():
        raise ConfigError(str(config_path), f"no such file: {path} - at `{key}`")
    return str(path)


class Intake:
    """Runs the feeds into ``inbox``.

    Args:
        feeds: the adapters, built by :func:`build_feed`.
        registry: where venue instrument definitions go.
        inbox: what the feeds put their events into.
        on_end: called once every replay has reached its file's end, with ``exit_at_end``.

    Attributes:
        exit_at_end: once every replay feed has reached its file's end, end the daemon
            (``riskd run --exit-at-end``) instead of holding the final state.
        ended: whether that happened.
    """

    def __init__(
        self,
        feeds: list[Feed],
        registry: InstrumentRegistry,
        inbox: AsyncInbox,
        on_end: Callable[[], None],
    ) -> None:
        self.feeds = feeds
        self.registry = registry
        self.inbox = inbox
        self.exit_at_end = False
        self.ended = False
        self._on_end = on_end

    async def load_instruments(self) -> None:
        """Fill the registry from feeds that can list their venue's instruments. A failure is
        logged and start-up goes on: Deribit names parse without it, and the feed tries again
        on its next connection."""
        for feed in self.feeds:
            if not isinstance(feed, WebSocketFeed):
                continue
            try:
                added = await feed.load_instruments()
            except (FeedConnectionError, FeedDecodeError) as exc:
                logger.warning("instruments not loaded: %s", exc.detail, extra={"feed": feed.name})
                continue
            if added:
                logger.info("instruments loaded", extra={"feed": feed.name, "instruments": added})

    def subscribe(self, names: Iterable[str]) -> None:
        """Market data for instruments new to the book (a fill brought them in)."""
        deribit, indices = deribit_channels(self.registry, names)
        if not deribit:
            return
        for feed in self.feeds:
            if isinstance(feed, WebSocketFeed):
                feed.subscribe(deribit, indices)

    async def run(self, feed: Feed) -> None:
        """Run ``feed``; restart it after an unexpected error, stop on a fatal one."""
        backoff = Backoff(initial_s=1.0, max_s=30.0)
        while True:
            try:
                await feed.run(self.inbox)
                logger.info("feed finished", extra={"feed": feed.name})
                self._finished()
                return
            except FeedConnectionError as exc:
                logger.error("feed stopped: %s", exc.detail, extra={"feed": feed.name})
                return
            except Exception:
                if isinstance(feed, _REPLAYS):  # a restart would apply its fills again
                    logger.exception(
                        "replay feed crashed; not restarted", extra={"feed": feed.name}
                    )
                    return
                delay = backoff.next_delay()
                logger.exception(
                    "feed crashed; restarting", extra={"feed": feed.name, "delay_s": delay}
                )
                await asyncio.sleep(delay)

    def _finished(self) -> None:
        """A feed returned: when every replay has, say that the state is held, or end."""
        replays = [f for f in self.feeds if isinstance(f, _REPLAYS)]
        if not replays or not all(f.stats.finished for f in replays):
            return
        if self.exit_at_end:
            logger.info("replay finished: stopping (--exit-at-end)")
            self.ended = True
            self._on_end()
        else:
            logger.info("replay finished: the final state is held and published; Ctrl-C exits")
