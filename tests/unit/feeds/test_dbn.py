"""The DBN replay feed (feeds.dbn, feeds.dbn_codec, feeds.dbn_stream) on DBN files the tests
write with databento_dbn's own encoder (tests/dbn_files.py)."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from fractions import Fraction
from pathlib import Path

import databento_dbn as dbn
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.errors import ConfigError
from engine.events import OpenInterest, Quote, Tick
from engine.instruments import Exercise, InstrumentRegistry, Kind
from engine.listed import SettleTiming, settlement_ns
from engine.runtime.config import load_config
from engine.runtime.intake import build_feeds
from examples.make_spx_dbn import make_sample
from feeds.dbn import DbnFeed, DbnFeedConfig
from feeds.dbn_codec import fixed_price
from feeds.dbn_stream import DbnReader, ZstdFrames
from tests.dbn_files import (
    T0_NS,
    Interval,
    Mapping,
    bbo,
    cbbo,
    cmbp1,
    definition,
    encode,
    mbp1,
    open_interest,
    write_dbn,
)
from tests.unit.feeds.test_replay import CollectingSink, RecordingSleep

S = 1_000_000_000
SPXW = "SPXW  241220P05900000"
SPY_C = "SPY   241220C00590000"
EXP_PM = settlement_ns(date(2024, 12, 20), SettleTiming.PM)  # 16:00 New York
ESH5_EXP = settlement_ns(date(2025, 3, 21), SettleTiming.AM)


def opra_records() -> list[dbn.DBNRecord]:
    return [
        definition(7, SPXW, "P", strike="5900", expiration=EXP_PM, multiplier="100",
                   underlying="SPX"),
        definition(8, SPY_C, "C", strike="590", expiration=EXP_PM, multiplier="100",
                   underlying="SPY"),
        cbbo(7, T0_NS + 1 * S, "12.5", "12.7"),
        open_interest(7, T0_NS + 2 * S, 1234),
        cmbp1(8, T0_NS + 3 * S, "2.95", "3.05"),
        cbbo(7, T0_NS + 4 * S, None, "12.8"),
    ]  # fmt: skip


def glbx_records() -> list[dbn.DBNRecord]:
    return [
        definition(1, "ESH5", "F", expiration=ESH5_EXP, multiplier="50", asset="ES"),
        definition(2, "ESH5 C6000", "C", strike="6000", expiration=ESH5_EXP,
                   underlying="ESH5", underlying_id=1),
        mbp1(1, T0_NS + 1 * S, "6000.25", "6000.5"),
        mbp1(2, T0_NS + 2 * S, "179.75", "180.25"),
        mbp1(1, T0_NS + 3 * S, None, "6000.5", trade="6000.5"),
        bbo(1, T0_NS + 5 * S, "6001", None, last="6001.25"),
    ]  # fmt: skip


async def play(
    *files: Path, speed: float = 0.0, registry: InstrumentRegistry | None = None
) -> tuple[DbnFeed, CollectingSink, RecordingSleep, ManualClock]:
    clock = ManualClock()
    sleep = RecordingSleep()
    config = DbnFeedConfig(files=[str(f) for f in files], speed=speed)
    feed = DbnFeed(
        config, registry if registry is not None else InstrumentRegistry(), clock, sleep=sleep
    )
    sink = CollectingSink()
    await feed.run(sink)
    assert feed.stats.finished
    return feed, sink, sleep, clock


async def test_opra_definitions_quotes_and_open_interest(tmp_path: Path) -> None:
    registry = InstrumentRegistry()
    path = write_dbn(tmp_path / "opra.dbn.zst", "OPRA.PILLAR", opra_records())
    feed, sink, _, clock = await play(path, registry=registry)
    spxw = registry.get(SPXW)
    assert spxw is not None
    assert (spxw.kind, spxw.strike, spxw.is_call, spxw.multiplier) == (
        Kind.OPTION,
        5900,
        False,
        100,
    )
    assert spxw.expiry_ns == EXP_PM
    assert spxw.exercise == Exercise.EUROPEAN
    spy = registry.get(SPY_C)
    assert spy is not None
    assert spy.exercise == Exercise.AMERICAN
    assert sink.events == [
        Quote(instrument=SPXW, bid=12.5, ask=12.7, ts_event=T0_NS + S, ts_recv=T0_NS + S),
        OpenInterest(
            instrument=SPXW, open_interest=123_400.0, ts_event=T0_NS + 2 * S,
            ts_recv=T0_NS + 2 * S,
        ),  # 1234 contracts x 100: underlying units
        Quote(instrument=SPY_C, bid=2.95, ask=3.05, ts_event=T0_NS + 3 * S, ts_recv=T0_NS + 3 * S),
        Quote(instrument=SPXW, bid=None, ask=12.8, ts_event=T0_NS + 4 * S, ts_recv=T0_NS + 4 * S),
    ]  # fmt: skip
    assert clock.now_ns() == T0_NS + 4 * S
    assert feed.decoder.disagreements.total() == 0
    assert feed.stats.received == 6
    assert feed.stats.dropped.total() == 0


async def test_cme_futures_ticks_and_options_on_them(tmp_path: Path) -> None:
    registry = InstrumentRegistry()
    _, sink, _, _ = await play(write_dbn(tmp_path / "glbx.dbn", "GLBX.MDP3", glbx_records()),
                               registry=registry)  # fmt: skip
    option = registry.get("ESH5 C6000")
    assert option is not None
    assert option.underlying_future == "ESH5"
    assert sink.events == [
        Tick(instrument="ESH5", price=6000.375, ts_event=T0_NS + S, ts_recv=T0_NS + S),  # mid
        Quote(
            instrument="ESH5 C6000", bid=179.75, ask=180.25, underlying_price=6000.375,
            ts_event=T0_NS + 2 * S, ts_recv=T0_NS + 2 * S,
        ),  # the future's latest price
        Tick(instrument="ESH5", price=6000.5, ts_event=T0_NS + 3 * S, ts_recv=T0_NS + 3 * S),
        Tick(instrument="ESH5", price=6001.25, ts_event=T0_NS + 5 * S, ts_recv=T0_NS + 5 * S),
    ]  # fmt: skip


async def test_undefined_prices_are_absent_sides(tmp_path: Path) -> None:
    records = [
        *opra_records()[:1],
        cbbo(7, T0_NS + S, None, None),
        cbbo(7, T0_NS + 2 * S, "1", None),
        mbp1(7, T0_NS + 3 * S, None, None),
    ]
    feed, sink, _, _ = await play(write_dbn(tmp_path / "a.dbn", "OPRA.PILLAR", records))
    assert [(e.bid, e.ask) for e in sink.events if isinstance(e, Quote)] == [(1.0, None)]
    assert feed.decoder.skipped["empty_book"] == 2
    assert feed.stats.dropped.total() == 0


async def test_unknown_ids_and_bad_records_are_dropped_and_counted(tmp_path: Path) -> None:
    records = [
        *opra_records()[:1],
        cbbo(99, T0_NS + S, "1", "2"),  # no definition, no mapping
        cbbo(7, T0_NS + 2 * S, "3", "2"),  # crossed
        definition(5, "ESH5-ESM5", "T", expiration=ESH5_EXP),  # a spread
        cbbo(7, T0_NS + 3 * S, "1", "2"),
    ]
    feed, sink, _, _ = await play(write_dbn(tmp_path / "a.dbn", "OPRA.PILLAR", records))
    assert feed.stats.dropped == {
        "unknown_instrument": 1,
        "bad_price": 1,
        "unsupported_instrument": 1,
    }
    assert [e.ts_event for e in sink.events] == [T0_NS + 3 * S]


async def test_ids_are_per_dataset(tmp_path: Path) -> None:
    """OPRA's id 1 is not CME's id 1."""
    opra = write_dbn(tmp_path / "o.dbn", "OPRA.PILLAR", [cbbo(1, T0_NS + 9 * S, "1", "2")])
    feed, sink, _, _ = await play(write_dbn(tmp_path / "g.dbn", "GLBX.MDP3", glbx_records()), opra)
    assert feed.stats.dropped == {"unknown_instrument": 1}
    assert all(e.instrument.startswith("ESH5") for e in sink.events)


async def test_metadata_mappings_name_ids_without_definitions(tmp_path: Path) -> None:
    day = date(2024, 12, 19)
    mappings = [Mapping("SPY", [Interval(day, day + timedelta(days=1), "15144")])]
    records = [
        mbp1(15144, T0_NS + S, "589.99", "590.01"),
        mbp1(15144, T0_NS + 86_400 * S, "591", "591.02"),  # the next day: no mapping
    ]
    path = write_dbn(tmp_path / "xnas.dbn", "XNAS.ITCH", records, mappings=mappings)
    feed, sink, _, _ = await play(path)
    assert sink.events == [
        Tick(instrument="SPY", price=590.0, ts_event=T0_NS + S, ts_recv=T0_NS + S)
    ]
    assert feed.stats.dropped == {"unknown_instrument": 1}


async def test_a_disagreeing_definition_is_counted_and_riskd_terms_kept(tmp_path: Path) -> None:
    registry = InstrumentRegistry()
    bad = definition(7, SPXW, "C", strike="5905", expiration=EXP_PM + 3 * 86_400 * S,
                     multiplier="10", underlying="NDX")  # fmt: skip
    feed, _, _, _ = await play(
        write_dbn(tmp_path / "a.dbn", "OPRA.PILLAR", [bad]), registry=registry
    )
    assert feed.decoder.disagreements == {
        "call_put": 1, "strike": 1, "underlying": 1, "expiry": 1, "multiplier": 1,
    }  # fmt: skip
    inst = registry.get(SPXW)
    assert inst is not None
    assert (inst.strike, inst.is_call, inst.multiplier) == (5900, False, 100)


async def test_unknown_roots_are_built_from_the_definition(tmp_path: Path) -> None:
    registry = InstrumentRegistry()
    name = "AAPL  241220C00250000"
    records: list[dbn.DBNRecord] = [
        definition(3, name, "C", strike="250", expiration=EXP_PM, multiplier="100",
                   underlying="AAPL"),
        definition(4, "NDXP  241220P20000000", "P", strike="20000", expiration=EXP_PM,
                   multiplier="100", underlying="NDX", cfi="OPEICS"),
        open_interest(3, T0_NS + S, 10),
    ]  # fmt: skip
    _, sink, _, _ = await play(
        write_dbn(tmp_path / "a.dbn", "OPRA.PILLAR", records), registry=registry
    )
    aapl = registry.get(name)
    assert aapl is not None
    assert (aapl.underlying, aapl.index, aapl.strike, aapl.multiplier, aapl.venue) == (
        "AAPL", "AAPL", 250.0, 100.0, "opra",
    )  # fmt: skip
    assert aapl.exercise == Exercise.AMERICAN  # no CFI: a US equity option
    ndx = registry.get("NDXP  241220P20000000")
    assert ndx is not None
    assert ndx.exercise == Exercise.EUROPEAN  # the CFI says so
    assert sink.events[0] == OpenInterest(
        instrument=name, open_interest=1000.0, ts_event=T0_NS + S, ts_recv=T0_NS + S
    )


async def test_files_merge_in_time_order_and_pace(tmp_path: Path) -> None:
    a = write_dbn(tmp_path / "a.dbn", "GLBX.MDP3", [*glbx_records()[:1],
        mbp1(1, T0_NS + 1 * S, "1", "3"), mbp1(1, T0_NS + 4 * S, "1", "5")])  # fmt: skip
    b = write_dbn(tmp_path / "b.dbn.zst", "GLBX.MDP3", [*glbx_records()[:1],
        mbp1(1, T0_NS + 1 * S, "2", "4"), mbp1(1, T0_NS + 2 * S, "2", "6")])  # fmt: skip
    _, sink, sleep, _ = await play(a, b, speed=2.0)
    assert [(e.ts_event, e.price) for e in sink.events if isinstance(e, Tick)] == [
        (T0_NS + S, 2.0),  # equal times: the file listed first first
        (T0_NS + S, 3.0),
        (T0_NS + 2 * S, 4.0),
        (T0_NS + 4 * S, 3.0),
    ]
    assert sleep.delays_s == [0.5, 1.0]  # the gaps (1 s, 2 s) at speed 2


async def test_a_truncated_file_names_its_offset_and_the_others_play_on(tmp_path: Path) -> None:
    data = encode("OPRA.PILLAR", opra_records())
    cut = tmp_path / "cut.dbn"
    cut.write_bytes(data[:-10])  # the last record (80 bytes) loses its end
    good = write_dbn(tmp_path / "g.dbn", "GLBX.MDP3", glbx_records())
    feed, sink, _, _ = await play(cut, good)
    (err,) = feed.file_errors
    assert err.reason == "truncated"
    assert err.path == str(cut)
    assert err.offset == len(data) - 80
    assert f"{cut}" in err.detail
    assert f"at byte {len(data) - 80}" in err.detail
    assert feed.stats.dropped == {"truncated": 1}
    quotes = [e for e in sink.events if isinstance(e, Quote) and e.instrument != "ESH5 C6000"]
    assert len(quotes) == 2  # every whole record before the cut
    assert sum(isinstance(e, Tick) for e in sink.events) == 3


async def test_a_truncated_zstd_file_is_told(tmp_path: Path) -> None:
    data = encode("OPRA.PILLAR", opra_records(), zstd=True)
    for keep, said in (
        (len(data) - 1, "ends inside the zstd frame that starts at byte 0"),
        (len(data) // 2, "ends inside the zstd frame that starts at byte 0"),
        (3, "no complete DBN metadata header in 3 bytes"),
    ):
        cut = tmp_path / f"cut{keep}.dbn.zst"
        cut.write_bytes(data[:keep])
        feed, _, _, _ = await play(cut)
        (err,) = feed.file_errors
        assert err.reason == "truncated", keep
        assert said in err.detail


async def test_a_corrupt_file_is_told_with_its_offset(tmp_path: Path) -> None:
    data = bytearray(encode("OPRA.PILLAR", opra_records()))
    at = len(data) - 3 * 80  # the fourth record of six: an impossible length
    data[at] = 0
    bad = tmp_path / "bad.dbn"
    bad.write_bytes(bytes(data))
    feed, _, _, _ = await play(bad)
    (err,) = feed.file_errors
    assert err.reason == "corrupt"
    assert str(bad) in err.detail
    assert "at byte 0" in err.detail  # the chunk the decoder failed in starts there
    garbage = tmp_path / "garbage.dbn"
    garbage.write_bytes(b"not a dbn file at all" * 10)
    feed, _, _, _ = await play(garbage)
    assert feed.file_errors[0].reason == "corrupt"


def test_zstd_frames_tell_every_cut_from_the_whole() -> None:
    data = encode("GLBX.MDP3", [mbp1(1, T0_NS + i, "1", "2") for i in range(2000)], zstd=True)
    frames = ZstdFrames()
    frames.feed(data)
    assert frames.complete
    for keep in range(0, len(data), max(1, len(data) // 97)):
        cut = ZstdFrames()
        cut.feed(data[:keep])
        assert not cut.complete, keep


def test_a_reader_fed_byte_by_byte_gets_every_record() -> None:
    data = encode("OPRA.PILLAR", opra_records(), zstd=True)
    reader = DbnReader("t", "x")
    got = [r for i in range(len(data)) for r in reader.feed(data[i : i + 1])]
    reader.end()
    assert len(got) == 6
    assert reader.metadata is not None
    assert reader.metadata.dataset == "OPRA.PILLAR"


@given(st.integers(-(2**63), 2**63 - 2))
def test_fixed_point_prices_convert_correctly_rounded(value: int) -> None:
    assert fixed_price(value) == float(Fraction(value, 1_000_000_000))


@given(st.decimals(min_value=0, max_value=10**6, places=9, allow_nan=False))
def test_decimal_prices_come_back_exactly(price: object) -> None:
    text = str(price)
    assert fixed_price(int(price * 10**9)) == float(text)  # type: ignore[operator]


def test_undef_price_is_none() -> None:
    assert fixed_price(dbn.UNDEF_PRICE) is None


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),  # file
            st.integers(0, 10**6),  # ms after T0
            st.sampled_from([7, 8, 99]),  # instrument id (99: unknown)
            st.one_of(st.none(), st.integers(1, 10**6)),  # bid in 1e-2
            st.one_of(st.none(), st.integers(1, 10**6)),  # ask in 1e-2
        ),
        max_size=30,
    )
)
def test_random_records_merge_in_order_and_all_are_accounted_for(
    tmp_path_factory: pytest.TempPathFactory,
    rows: list[tuple[int, int, int, int | None, int | None]],
) -> None:
    folder = tmp_path_factory.mktemp("dbn")
    defs = opra_records()[:2]
    per_file: list[list[dbn.DBNRecord]] = [list(defs), list(defs)]
    for f, ms, ident, bid, ask in sorted(rows, key=lambda r: r[1]):
        px = [None if x is None else f"{x / 100:.2f}" for x in (bid, ask)]
        per_file[f].append(cbbo(ident, T0_NS + ms * 1_000_000, px[0], px[1]))
    paths = [write_dbn(folder / f"{i}.dbn", "OPRA.PILLAR", recs) for i, recs in enumerate(per_file)]
    feed, sink, _, _ = asyncio.run(play(*paths))
    times = [e.ts_event for e in sink.events]
    assert times == sorted(times)
    assert feed.stats.received == sum(len(r) for r in per_file)
    made = len(sink.events) + feed.decoder.skipped.total() + feed.stats.dropped.total()
    assert made == len(rows)
    for e in sink.events:
        assert isinstance(e, Quote)
        assert e.bid is None or e.ask is None or e.bid <= e.ask


def test_config_constraints_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"length >= 1 - at `\$.files`"):
        msgspec.convert({"kind": "dbn", "files": []}, DbnFeedConfig)
    with pytest.raises(msgspec.ValidationError, match=r"at `\$.speed`"):
        msgspec.convert({"kind": "dbn", "files": ["a"], "speed": -1}, DbnFeedConfig)
    path = tmp_path / "riskd.toml"
    path.write_text('[[feeds]]\nkind = "dbn"\nfiles = ["a.dbn", ""]\n')
    with pytest.raises(ConfigError, match=r"at `\$.feeds\[0\].files\[1\]`"):
        load_config(path)
    path.write_text('[[feeds]]\nkind = "dbn"\nfiles = ["a.dbn"]\ncolour = 1\n')
    with pytest.raises(ConfigError, match=r"unknown field `colour` - at `\$.feeds\[0\]`"):
        load_config(path)


def test_a_missing_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    write_dbn(tmp_path / "a.dbn", "OPRA.PILLAR", opra_records())
    path = tmp_path / "riskd.toml"
    path.write_text('[[feeds]]\nkind = "dbn"\nfiles = ["a.dbn", "b.dbn"]\n')
    config = load_config(path)
    with pytest.raises(ConfigError, match=r"no such file: .*b.dbn - at `\$.feeds\[0\].files\[1\]`"):
        build_feeds(config.feeds, path, InstrumentRegistry(), ManualClock(), [], [], asyncio.Lock())


async def test_the_example_sample_replays_without_a_drop(tmp_path: Path) -> None:
    registry = InstrumentRegistry()
    paths = make_sample(tmp_path, seconds=5)
    feed, sink, _, _ = await play(*paths, registry=registry)
    assert feed.stats.dropped.total() == 0
    assert feed.decoder.disagreements.total() == 0
    assert not feed.file_errors
    ois = [e for e in sink.events if isinstance(e, OpenInterest)]
    assert len(ois) == 12  # SPXW and SPY, 3 strikes, calls and puts
    assert {e.instrument for e in sink.events if isinstance(e, Tick)} == {"ESH5", "SPY"}
    quotes = {e.instrument for e in sink.events if isinstance(e, Quote)}
    assert len(quotes) == 12 + 4
