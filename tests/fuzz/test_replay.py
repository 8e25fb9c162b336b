"""Fuzzing the replay feed (feeds.replay) on whole files: JSON lines and Tardis CSV, plain or
gzipped, with blank lines, mutated lines and garbage. The feed is where a replay's drops are
counted, so the counters are checked here: every non-blank line is received, then either
handed to the engine or dropped under a documented reason."""

from __future__ import annotations

import asyncio
import gzip
from pathlib import Path

import hypothesis
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.errors import FeedDecodeError, RiskEngineError
from engine.instruments import InstrumentRegistry
from feeds.replay import ReplayFeed, ReplayFeedConfig
from tests.fuzz.checks import CollectingSink, check_event, outcome
from tests.fuzz.strategies import csv_rows, fuzz_settings, json_documents
from tests.fuzz.test_json_codec import FOCUS as MESSAGE_KEYS
from tests.fuzz.test_json_codec import MESSAGES
from tests.fuzz.test_json_codec import REASONS as JSON_REASONS
from tests.fuzz.test_tardis import FOCUS, HEADER, ROWS
from tests.fuzz.test_tardis import REASONS as TARDIS_REASONS

BLANK = st.sampled_from((b"", b" ", b"\t", b"\r", b" \r"))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module; every example overwrites its file."""
    return tmp_path_factory.mktemp("replay-fuzz")


def write(folder: Path, name: str, content: bytes, *, gz: bool) -> Path:
    path = folder / (f"{name}.gz" if gz else name)
    path.write_bytes(gzip.compress(content, compresslevel=1) if gz else content)
    return path


def replay(path: Path, fmt: str) -> tuple[ReplayFeed, CollectingSink, ManualClock]:
    config = msgspec.convert(
        {"kind": "replay", "name": "fuzz", "path": str(path), "format": fmt, "speed": 0},
        ReplayFeedConfig,
    )
    clock = ManualClock()
    feed = ReplayFeed(config, InstrumentRegistry(), clock)
    sink = CollectingSink()
    asyncio.run(feed.run(sink))
    return feed, sink, clock


def check_counts(
    feed: ReplayFeed, sink: CollectingSink, clock: ManualClock, lines: int, reasons: set[str]
) -> None:
    """Every line counted once: received = handed over + dropped by reason; the events sane,
    received in time order, the clock at the latest event time."""
    stats = feed.stats
    hypothesis.event(f"events: {stats.events} of {stats.received}")
    assert stats.received == lines
    assert stats.received == stats.events + sum(stats.dropped.values())
    assert stats.events == len(sink.events)
    assert set(stats.dropped) <= reasons, stats.dropped
    registry = InstrumentRegistry()
    for event in sink.events:
        check_event(event, registry)
    received = [e.ts_recv for e in sink.events]
    assert received == sorted(received)
    assert clock.now_ns() == max((e.ts_event for e in sink.events), default=0)


def non_blank(content: bytes) -> int:
    """Lines the feed reads (it skips blank ones without counting them)."""
    return sum(1 for line in content.split(b"\n") if line.strip())


@fuzz_settings(150)
@given(
    lines=st.lists(st.one_of(json_documents(MESSAGES, MESSAGE_KEYS), BLANK), max_size=12),
    gz=st.booleans(),
)
@example(lines=[b'{"instrument": "BTC-PERPETUAL\xff", "price": 1}'], gz=False)
@example(lines=[b'{"instrument": "BTC-PERPETUAL", "price": 1, "ts": 10000000000000}'], gz=False)
def test_jsonl_lines_are_all_counted(folder: Path, lines: list[bytes], gz: bool) -> None:
    """Every line is counted, the events are sane, and no exception but the file's own ends
    the replay (before the fix, invalid UTF-8 in a string or a ``ts`` past int64 nanoseconds
    did: the examples)."""
    content = b"\n".join(lines)
    feed, sink, clock = replay(write(folder, "lines.jsonl", content, gz=gz), "jsonl")
    check_counts(feed, sink, clock, non_blank(content), JSON_REASONS - {"topic"})


@fuzz_settings(150)
@given(
    header=st.sampled_from((True,) * 5 + (False,)).flatmap(
        lambda intact: st.just(HEADER.encode()) if intact else csv_rows([HEADER], FOCUS)
    ),
    rows=st.lists(st.one_of(csv_rows(ROWS, FOCUS), BLANK), max_size=12),
    gz=st.booleans(),
)
def test_tardis_rows_are_all_counted(
    folder: Path, header: bytes, rows: list[bytes], gz: bool
) -> None:
    """As JSON lines, below the header (the first line, whatever it holds); a header without
    the required columns stops the replay (FeedDecodeError ``schema``, documented)."""
    content = b"\n".join([header, *rows])
    path = write(folder, "chain.csv", content, gz=gz)
    result = outcome(lambda: replay(path, "tardis"))
    if isinstance(result, FeedDecodeError):
        hypothesis.event("bad header")
        assert result.reason == "schema"
        return
    assert not isinstance(result, RiskEngineError), result
    feed, sink, clock = result
    check_counts(feed, sink, clock, non_blank(content.partition(b"\n")[2]), TARDIS_REASONS)
