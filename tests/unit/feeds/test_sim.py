"""The simulator (feeds.sim): deterministic per seed, Deribit names, marks on the smile."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest

from engine.clock import ManualClock
from engine.daycount import NS_PER_DAY, year_fraction
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry, Kind, Settlement, parse_deribit_name
from engine.iv import implied_vol
from feeds.sim import SimFeed, SimFeedConfig, SimUnderlying, smile_vol

START_NS = 1_732_406_400_000_000_000 + 3 * 3_600_000_000_000  # 24 Nov 2024, 03:00 UTC


class EnoughError(Exception):
    """Stops a run after a number of steps."""


class AdvancingSleep:
    """The injected sleep: moves the ManualClock instead of waiting; stops after ``steps``."""

    def __init__(self, clock: ManualClock, steps: int) -> None:
        self.clock = clock
        self.steps = steps
        self.delays_s: list[float] = []

    async def __call__(self, delay_s: float) -> None:
        self.delays_s.append(delay_s)
        if len(self.delays_s) >= self.steps:
            raise EnoughError
        self.clock.advance(round(delay_s * 1e9))


class CollectingSink:
    def __init__(self) -> None:
        self.events: list[Tick | Quote | Depth | OpenInterest] = []
        self.fills: list[Fill] = []

    def put(self, event: Tick | Quote | Depth | OpenInterest) -> None:
        self.events.append(event)

    async def put_fill(self, fill: Fill) -> None:
        self.fills.append(fill)


def config(**kw: object) -> SimFeedConfig:
    return msgspec.convert({"kind": "sim", "seed": 7, "rate_hz": 50.0, **kw}, SimFeedConfig)


async def run(
    cfg: SimFeedConfig, steps: int
) -> tuple[SimFeed, list[Tick | Quote | Depth | OpenInterest]]:
    clock = ManualClock(START_NS)
    feed = SimFeed(cfg, InstrumentRegistry(), clock, sleep=AdvancingSleep(clock, steps))
    sink = CollectingSink()
    with pytest.raises(EnoughError):
        await feed.run(sink)
    assert sink.fills == []  # no opening fills unless configured
    return feed, sink.events


async def test_opening_fills_open_a_seeded_book_once_at_the_mark() -> None:
    cfg = config(book="demo", opening_fills=12)
    books = []
    for _ in range(2):
        clock = ManualClock(START_NS)
        feed = SimFeed(cfg, InstrumentRegistry(), clock, sleep=AdvancingSleep(clock, 3))
        sink = CollectingSink()
        with pytest.raises(EnoughError):
            await feed.run(sink)
        with pytest.raises(EnoughError):  # a restarted feed does not open the book again
            await feed.run(sink)
        books.append(sink.fills)
    assert books[0] == books[1]  # seeded
    fills = books[0]
    assert len(fills) == 12
    assert {f.book for f in fills} == {"demo"}
    assert {f.instrument for f in fills} <= set(feed.instruments())
    assert all(0.1 <= abs(f.quantity) <= 25.0 for f in fills)
    assert len({f.fill_id for f in fills}) == 12
    assert all(f.price is not None and 0.0 < f.price < 1.0 for f in fills)  # coin marks


async def test_same_seed_same_run() -> None:
    _, first = await run(config(), 500)
    _, second = await run(config(), 500)
    assert first == second
    assert len(first) == 500


async def test_other_seed_other_run() -> None:
    _, first = await run(config(seed=1), 200)
    _, second = await run(config(seed=2), 200)
    assert [e.instrument for e in first] == [e.instrument for e in second]
    assert first != second


def test_names_are_deribit_names() -> None:
    cfg = config()
    feed = SimFeed(cfg, InstrumentRegistry(), ManualClock(START_NS))
    names = feed.instruments()
    assert "BTC-PERPETUAL" in names
    assert "btc_usd" not in names  # an index is no instrument to hold
    options = [parse_deribit_name(n) for n in names if n != "BTC-PERPETUAL"]
    assert len(options) == 3 * 5 * 2  # expiries x strikes x call/put
    expiries = set()
    for inst in options:
        assert inst is not None
        assert inst.kind is Kind.OPTION
        assert inst.settlement is Settlement.COIN
        assert inst.expiry_ns is not None
        assert inst.strike is not None
        expiry = datetime.fromtimestamp(inst.expiry_ns / 1e9, tz=UTC)
        assert (expiry.hour, expiry.minute) == (8, 0)
        assert inst.strike % 1000 == 0  # BTC strikes on a 1000 grid
        expiries.add(inst.expiry_ns)
    firsts = sorted(expiries)
    for days, expiry_ns in zip((7, 30, 90), firsts, strict=True):
        assert START_NS + days * NS_PER_DAY <= expiry_ns < START_NS + (days + 1) * NS_PER_DAY


def test_strikes_follow_moneyness() -> None:
    cfg = config(underlyings=[{"name": "ETH", "spot": 3123.0, "strikes_pct": [0.5, 1.0, 1.5]}])
    feed = SimFeed(cfg, InstrumentRegistry(), ManualClock(START_NS))
    strikes = {parse_deribit_name(n).strike for n in feed.instruments() if "PERP" not in n}  # type: ignore[union-attr]  # every name parses (test above)
    assert strikes == {1600.0, 3100.0, 4700.0}


async def test_round_robin_at_rate() -> None:
    feed, events = await run(config(rate_hz=50.0), 64)
    n = len(feed.instruments()) + 1  # and the index
    assert len({e.instrument for e in events[:n]}) == n
    assert [e.instrument for e in events[:n]] == [e.instrument for e in events[n : 2 * n]]
    gaps = np.diff([e.ts_event for e in events])
    assert set(gaps.tolist()) == {20_000_000}  # 50 Hz
    assert all(e.ts_recv == e.ts_event for e in events)
    assert feed.stats.events == len(events)


async def test_marks_invert_to_the_smile() -> None:
    cfg = config()
    _, events = await run(cfg, 400)
    quotes = [e for e in events if isinstance(e, Quote)]
    assert len(quotes) > 300
    u = cfg.underlyings[0]
    for q in quotes:
        inst = parse_deribit_name(q.instrument)
        assert inst is not None
        assert inst.expiry_ns is not None
        assert inst.strike is not None
        assert q.mark is not None
        assert q.bid is not None
        assert q.ask is not None
        assert q.iv is not None
        assert q.underlying_price is not None
        F = q.underlying_price
        T = year_fraction(q.ts_event, inst.expiry_ns)
        sigma = implied_vol(q.mark * F, inst.is_call, F, inst.strike, T, 0.0, model="black76")
        np.testing.assert_allclose(sigma, q.iv, rtol=1e-9)
        assert q.iv == pytest.approx(smile_vol(u, inst.strike, F), rel=1e-15)
        assert 0.0 <= q.bid < q.mark < q.ask
        assert q.index_price == F  # r = 0: the forward is the spot


def test_smile_shape() -> None:
    u = SimUnderlying(vol=0.6, skew=-0.1, smile=0.5, vol_floor=0.3)
    assert smile_vol(u, 65_000.0, 65_000.0) == 0.6
    k = math.log(52_000.0 / 65_000.0)
    assert smile_vol(u, 52_000.0, 65_000.0) == pytest.approx(0.6 - 0.1 * k + 0.5 * k * k)
    assert smile_vol(u, 130_000.0, 65_000.0) > 0.6  # the far wings are up
    floored = SimUnderlying(vol=0.2, skew=-2.0, smile=0.0, vol_floor=0.15)
    assert smile_vol(floored, 200_000.0, 65_000.0) == 0.15


async def test_spot_walks() -> None:
    cfg = config(underlyings=[{"walk_vol": 0.8}])
    feed, events = await run(cfg, 2000)
    perp = [e.price for e in events if isinstance(e, Tick) and e.instrument == "BTC-PERPETUAL"]
    assert len(perp) > 50
    assert len(set(perp)) == len(perp)  # every step moved it
    assert feed.spot("BTC") != 65_000.0
    assert all(0.9 * 65_000 < p < 1.1 * 65_000 for p in perp)  # 40 s of 80 % vol


async def test_jumps_move_the_spot_at_their_time_on_top_of_the_walk() -> None:
    jumps = [{"at_s": 1.0, "log_return": 0.06}, {"at_s": 0.5, "log_return": -0.02}]
    still = {"walk_vol": 1e-12}  # the walk barely moves: the jumps are what is seen
    feed, events = await run(config(underlyings=[{**still, "jumps": jumps}]), 100)  # 2 s
    _, plain = await run(config(underlyings=[still]), 100)
    ticks = [(e.ts_event - START_NS, e.price) for e in events if isinstance(e, Tick)]
    base = [e.price for e in plain if isinstance(e, Tick)]
    assert len(ticks) == len(base) > 2
    for (t_ns, price), walked in zip(ticks, base, strict=True):  # the same walk, jumped
        due = sum(j["log_return"] for j in jumps if j["at_s"] * 1e9 <= t_ns)
        assert price == pytest.approx(walked * math.exp(due), rel=1e-12)
    assert {round(p / 65_000.0, 4) for _, p in ticks} == {1.0, 0.9802, 1.0408}
    assert feed.spot("BTC") == pytest.approx(65_000.0 * math.exp(0.04), rel=1e-9)


def test_unknown_underlying() -> None:
    feed = SimFeed(config(), InstrumentRegistry(), ManualClock(START_NS))
    with pytest.raises(KeyError):
        feed.spot("ETH")


@pytest.mark.parametrize(
    "bad",
    [
        {"underlyings": [{"name": "btc"}]},
        {"underlyings": [{"spot": 0}]},
        {"underlyings": [{"expiries_days": []}]},
        {"underlyings": []},
        {"rate_hz": 0},
        {"unknown": 1},
        {"underlyings": [{"jumps": [{"at_s": -1.0, "log_return": 0.1}]}]},
        {"underlyings": [{"jumps": [{"at_s": 1.0, "log_return": 1.5}]}]},
    ],
)
def test_bad_config(bad: dict[str, object]) -> None:
    with pytest.raises(msgspec.ValidationError):
        config(**bad)


def test_start_ns_from_config() -> None:
    start = START_NS + 40 * NS_PER_DAY
    feed = SimFeed(config(start_ns=start), InstrumentRegistry(), ManualClock(START_NS))
    expiries = {parse_deribit_name(n).expiry_ns for n in feed.instruments() if "PERP" not in n}  # type: ignore[union-attr]  # every name parses
    assert min(e for e in expiries if e is not None) >= start + 7 * NS_PER_DAY
