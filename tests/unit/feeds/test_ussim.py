"""The US simulator (feeds.ussim): names that parse as OSI and CME names, expiries by the US
calendar (the 0DTE, the SPY monthly, the E-mini end-of-month option on the next quarterly
future), quotes on the smile satisfying put-call parity, the E-mini future at fair value, the
opening book (an iron condor as a strategy, covered calls, the hedge), deterministic per seed."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime

import msgspec
import pytest

from engine.clock import ManualClock
from engine.daycount import year_fraction
from engine.events import Quote
from engine.instruments import InstrumentRegistry, Kind
from engine.listed import format_osi
from engine.risk.strategies import parse_strategy
from feeds.ussim import UsSimFeed, UsSimFeedConfig
from tests.unit.feeds.test_sim import AdvancingSleep, CollectingSink, EnoughError

# Friday 6 December 2024, 15:00 UTC (10:00 ET): the 0DTE is that day's
START_NS = int(datetime(2024, 12, 6, 15, tzinfo=UTC).timestamp()) * 1_000_000_000


def _day(ns: int) -> date:
    return datetime.fromtimestamp(ns // 10**9, UTC).date()


def config(**kw: object) -> UsSimFeedConfig:
    return msgspec.convert({"kind": "us_sim", "seed": 3, "spx": 6000.0, **kw}, UsSimFeedConfig)


def feed(cfg: UsSimFeedConfig, start_ns: int = START_NS) -> tuple[UsSimFeed, InstrumentRegistry]:
    registry = InstrumentRegistry()
    return UsSimFeed(cfg, registry, ManualClock(start_ns)), registry


async def run(cfg: UsSimFeedConfig, steps: int) -> tuple[UsSimFeed, CollectingSink]:
    clock = ManualClock(START_NS)
    f = UsSimFeed(cfg, InstrumentRegistry(), clock, sleep=AdvancingSleep(clock, steps))
    sink = CollectingSink()
    with pytest.raises(EnoughError):
        await f.run(sink)
    return f, sink


def test_expiries_follow_the_us_calendar() -> None:
    f, registry = feed(config(spxw_days=[0, 1]))
    names = f.instruments()
    expiries = {
        (inst.name.split()[0][:4], _day(inst.expiry_ns or 0))
        for n in names
        if (inst := registry.get(n)) is not None and inst.kind == Kind.OPTION
    }
    # the 0DTE (Friday) and the next trading day (Monday 9 Dec), 16:00 ET = 21:00 UTC
    assert ("SPXW", date(2024, 12, 6)) in expiries
    assert ("SPXW", date(2024, 12, 9)) in expiries
    assert ("SPY", date(2024, 12, 20)) in expiries  # the first monthly 14 days away
    ew = [registry.get(n) for n in names if n.startswith("EW")]
    assert ew
    assert {i.underlying_future for i in ew if i is not None} == {"ESH5"}  # after ESZ4's SOQ
    assert f.future == "ESH5"


def test_a_late_start_rolls_the_0dte_to_the_next_trading_day() -> None:
    late = int(datetime(2024, 12, 6, 20, 30, tzinfo=UTC).timestamp()) * 1_000_000_000  # 15:30 ET
    f, registry = feed(config(spxw_days=[0]), late)
    spxw = {i.expiry_ns for n in f.instruments() if (i := registry.get(n)) and n.startswith("SPXW")}
    assert len(spxw) == 1
    (expiry,) = spxw
    assert expiry is not None
    assert _day(expiry) == date(2024, 12, 9)


async def test_quotes_sit_inside_their_spread_with_open_interest() -> None:
    _, sink = await run(config(), 400)
    quotes = [e for e in sink.events if isinstance(e, Quote)]
    assert len({q.instrument for q in quotes}) > 50
    for q in quotes:
        assert q.bid is not None
        assert q.ask is not None
        assert q.mark is not None
        assert 0.0 <= q.bid <= q.mark <= q.ask
        assert q.open_interest is not None
        assert q.open_interest > 0.0
        assert q.iv is not None
        assert q.iv >= config().vol_floor


def test_the_future_is_at_fair_value() -> None:
    cfg = config()
    f, registry = feed(cfg)
    future = registry.get("ESH5")
    assert future is not None
    t = year_fraction(START_NS, future.expiry_ns or 0)
    carry = math.exp((cfg.rate - cfg.spx_dividend_yield) * t)
    assert f.mark("ESH5", START_NS) == pytest.approx(6000.0 * carry, rel=1e-12)
    assert f.mark("SPY", START_NS) == pytest.approx(600.0, rel=1e-12)


def _put(osi: str) -> str:
    return osi[:12] + "P" + osi[13:]


def test_marks_follow_parity_at_one_instant() -> None:
    cfg = config()
    f, registry = feed(cfg)
    for name in f.instruments():
        inst = registry.get(name)
        if inst is None or inst.kind != Kind.OPTION or not inst.is_call:
            continue
        put = name.replace(" C", " P") if inst.venue == "cme" else _put(name)
        c, p = f.mark(name, START_NS), f.mark(put, START_NS)
        t = year_fraction(START_NS, inst.expiry_ns or 0)
        if inst.venue == "cme":
            fwd = f.mark(f.future, START_NS)
        else:
            q = cfg.spy_dividend_yield if inst.underlying == "SPY" else cfg.spx_dividend_yield
            fwd = f.spot("SPY" if inst.underlying == "SPY" else "SPX") * math.exp(
                (cfg.rate - q) * t
            )
        assert c - p == pytest.approx(
            math.exp(-cfg.rate * t) * (fwd - (inst.strike or 0)), abs=1e-7
        )


async def test_the_opening_book() -> None:
    cfg = config(condor_strikes_pct=[0.97, 0.98, 1.02, 1.03], covered_calls=20, es_hedge=-3)
    _, sink = await run(cfg, 3)
    registry = InstrumentRegistry()
    condor, calls, hedge = sink.fills
    strategy = parse_strategy(condor.instrument, registry.get)
    assert str(strategy.kind) == "iron_condor"
    strikes = [leg.instrument.strike for leg in strategy.legs]
    assert strikes == [5820.0, 5880.0, 6120.0, 6180.0]
    assert condor.quantity == 10.0
    assert condor.price is not None
    assert condor.price < 0.0
    assert calls.instrument == format_osi("SPY", date(2024, 12, 20), True, 618.0)
    assert calls.quantity == -20.0
    assert (hedge.instrument, hedge.quantity) == ("ESH5", -3.0)
    assert len({f.fill_id for f in sink.fills}) == 3
    assert {f.book for f in sink.fills} == {"us"}


async def test_a_seed_makes_the_same_run() -> None:
    _, a = await run(config(), 200)
    _, b = await run(config(), 200)
    assert a.events == b.events
    _, c = await run(config(seed=4), 200)
    assert a.events != c.events
