"""The replay feed (feeds.replay): deterministic, paced by the injected sleep, bad lines dropped."""

from __future__ import annotations

import asyncio
import gzip
import shutil
from pathlib import Path

import msgspec
import pytest

from engine.clock import ManualClock
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry
from feeds.replay import ReplayFeed, ReplayFeedConfig

DATA = Path(__file__).parents[2] / "data"
JSONL = DATA / "replay_sample.jsonl"
TARDIS = DATA / "tardis_options_chain_sample.csv"
T0_NS = 1_732_406_400_000 * 1_000_000
# Gaps between the sample's good events, in ms: 100, 250, 0, 1000, 500, 500, 1000.
GAPS_S = [0.1, 0.25, 1.0, 0.5, 0.5, 1.0]


class CollectingSink:
    """An EventSink that keeps everything, in order, and notes when each event came."""

    def __init__(self, ticker: list[int] | None = None) -> None:
        self.events: list[Tick | Quote | Depth | OpenInterest | Fill] = []
        self.fills: list[Fill] = []
        self.ticks_seen: list[int] = []
        self._ticker = ticker

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        self.events.append(event)
        if self._ticker is not None:
            self.ticks_seen.append(self._ticker[0])

    async def put_fill(self, fill: Fill) -> None:
        self.events.append(fill)
        self.fills.append(fill)


class RecordingSleep:
    """The injected sleep: records the delays, never waits."""

    def __init__(self, stop_after: int | None = None) -> None:
        self.delays_s: list[float] = []
        self._stop_after = stop_after

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        if self._stop_after is not None and len(self.delays_s) >= self._stop_after:
            raise asyncio.CancelledError


async def replay(
    path: Path = JSONL, *, fmt: str = "jsonl", speed: float = 0.0, **kw: object
) -> tuple[ReplayFeed, CollectingSink, RecordingSleep, ManualClock]:
    config = msgspec.convert(
        {"kind": "replay", "path": str(path), "format": fmt, "speed": speed, **kw},
        ReplayFeedConfig,
    )
    clock = ManualClock()
    sleep = RecordingSleep()
    feed = ReplayFeed(config, InstrumentRegistry(), clock, sleep=sleep)
    sink = CollectingSink()
    await feed.run(sink)
    return feed, sink, sleep, clock


async def test_replay_is_deterministic() -> None:
    _, first, _, _ = await replay()
    _, second, _, _ = await replay()
    assert first.events == second.events
    assert len(first.events) == 8


async def test_events_and_times() -> None:
    feed, sink, _, clock = await replay()
    kinds = [type(e).__name__ for e in sink.events]
    assert kinds == ["Tick", "Tick", "Quote", "Quote", "Fill", "Quote", "Fill", "Tick"]
    assert all(e.ts_recv == e.ts_event for e in sink.events)  # the clock follows the file
    assert sink.events[0].ts_event == T0_NS
    assert sink.events[5].ts_event == 1_732_406_401_850_000_000  # from ts_ns
    assert clock.now_ns() == sink.events[-1].ts_event
    assert feed.stats.last_recv_ns == clock.now_ns()
    assert [f.book for f in sink.fills] == ["main", "hedge"]
    assert sink.fills[0].fill_id == "fill-0001"
    assert sink.fills[1].price is None


async def test_bad_lines_are_counted_and_dropped() -> None:
    feed, sink, _, _ = await replay()
    assert feed.stats.received == 12  # the blank line is no message
    assert feed.stats.events == len(sink.events) == 8
    assert dict(feed.stats.dropped) == {
        "json": 1,
        "unknown_instrument": 1,
        "bad_price": 1,
        "schema": 1,
    }
    assert not feed.stats.connected
    assert feed.stats.connects == 1


async def test_speed_zero_never_sleeps() -> None:
    _, _, sleep, _ = await replay(speed=0.0)
    assert sleep.delays_s == []


@pytest.mark.parametrize("speed", [1.0, 10.0, 0.5])
async def test_speed_scales_the_gaps(speed: float) -> None:
    _, fast, sleep, _ = await replay(speed=speed)
    assert sleep.delays_s == pytest.approx([g / speed for g in GAPS_S], rel=1e-12)
    _, reference, _, _ = await replay(speed=0.0)
    assert fast.events == reference.events  # pacing changes no event


@pytest.mark.parametrize(("yield_every", "yields"), [(1, True), (1000, False)])
async def test_speed_zero_yields_to_the_loop(yield_every: int, yields: bool) -> None:
    ticker = [0]

    async def count() -> None:
        while True:
            ticker[0] += 1
            await asyncio.sleep(0)

    config = ReplayFeedConfig(path=str(JSONL), speed=0.0, yield_every=yield_every)
    feed = ReplayFeed(config, InstrumentRegistry(), ManualClock(), sleep=RecordingSleep())
    sink = CollectingSink(ticker)
    async with asyncio.TaskGroup() as tg:
        counter = tg.create_task(count())
        await feed.run(sink)
        counter.cancel()
    moved = sink.ticks_seen[-1] > sink.ticks_seen[0]
    assert moved is yields


async def test_tardis_format() -> None:
    feed, sink, sleep, _ = await replay(TARDIS, fmt="tardis", speed=2.0)
    assert len(sink.events) == 12
    assert all(isinstance(e, Quote) for e in sink.events)
    assert all(e.ts_recv == e.ts_event for e in sink.events)
    assert dict(feed.stats.dropped) == {"schema": 1, "unknown_instrument": 1, "bad_price": 1}
    assert feed.stats.received == 15
    assert len(sleep.delays_s) == 11
    assert all(d > 0 for d in sleep.delays_s)


async def test_gzip_file(tmp_path: Path) -> None:
    zipped = tmp_path / "sample.jsonl.gz"
    with JSONL.open("rb") as src, gzip.open(zipped, "wb") as dst:
        shutil.copyfileobj(src, dst)
    _, plain, _, _ = await replay()
    _, unzipped, _, _ = await replay(zipped)
    assert unzipped.events == plain.events


async def test_loop_continues_in_time() -> None:
    config = ReplayFeedConfig(path=str(JSONL), speed=1.0, loop=True)
    clock = ManualClock()
    sleep = RecordingSleep(stop_after=2 * len(GAPS_S) + 2)
    feed = ReplayFeed(config, InstrumentRegistry(), clock, sleep=sleep)
    sink = CollectingSink()
    with pytest.raises(asyncio.CancelledError):
        await feed.run(sink)
    first_pass, second_pass = sink.events[:8], sink.events[8:16]
    span_ns = first_pass[-1].ts_event - first_pass[0].ts_event
    shift_ns = span_ns + 1_000_000
    assert second_pass == [
        msgspec.structs.replace(e, ts_event=e.ts_event + shift_ns, ts_recv=e.ts_recv + shift_ns)
        for e in first_pass
    ]
    assert sleep.delays_s[len(GAPS_S)] == pytest.approx(0.001)  # the gap between passes


def test_config_rejects_negative_speed() -> None:
    with pytest.raises(msgspec.ValidationError, match="speed"):
        msgspec.convert({"kind": "replay", "path": "x", "speed": -1.0}, ReplayFeedConfig)


def test_config_rejects_unknown_format() -> None:
    with pytest.raises(msgspec.ValidationError, match="format"):
        msgspec.convert({"kind": "replay", "path": "x", "format": "csv"}, ReplayFeedConfig)


async def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await replay(tmp_path / "nope.jsonl")


async def test_order_book_lines_are_handed_over_as_depth(tmp_path: Path) -> None:
    """A replay carries the hedge futures' order books (the slippage of hedges): a depth line
    reaches the sink's ``put`` at its time, between the other events."""
    path = tmp_path / "book.jsonl"
    path.write_text(
        '{"instrument": "btc_usd", "price": 97000.0, "ts": 1000}\n'
        '{"type": "depth", "instrument": "BTC-PERPETUAL", "bids": [[96990.0, 5000]],'
        ' "asks": [[97010.0, 8000]], "ts": 2000}\n'
        '{"instrument": "btc_usd", "price": 97001.0, "ts": 3000}\n'
    )
    _, sink, _, _ = await replay(path)
    assert [type(e).__name__ for e in sink.events] == ["Tick", "Depth", "Tick"]
    depth = sink.events[1]
    assert isinstance(depth, Depth)
    assert (depth.asks, depth.ts_recv) == ([(97010.0, 8000.0)], 2_000_000_000)
