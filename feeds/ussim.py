"""US simulator feed: a synthetic S&P 500 market (SPX index, SPY, E-mini futures and options),
for the US demo (``kind = "us_sim"``, config/demo_us.toml).

The SPX index follows a geometric random walk (``walk_vol``, plus scheduled ``jumps``); the rest
follows it without noise of its own:

- ``SPX`` index ticks; ``SPY`` share ticks at ``spy_ratio`` x SPX; the E-mini future the ES
  options deliver (the next quarterly after their expiry, e.g. ``ESH7``) at its fair value
  ``SPX e^((r - q) T)``;
- quotes (USD per unit of the underlying, as OPRA and CME quote) of SPXW options on the
  ``spxw_days`` (0: the first trading day whose 16:00 ET close is at least an hour away: the
  0DTE), of SPY options of the next monthly expiry at least ``spy_min_days`` away, and of
  E-mini end-of-month options (``EW``) of the first month whose last trading day is at least
  ``es_min_days`` away, on a grid of strikes (``*_strikes_pct`` of the starting level, rounded
  to the grid's step), every strike a call and a put, each with an open interest
  (``open_interest`` contracts at the money falling off as exp(-k^2 / 0.02), doubled for puts
  below and calls above; sent in underlying units, contracts x multiplier).

Quotes follow one smile ``vol(k) = vol + skew k + smile k^2`` in ``k = ln(K / F)``, floored at
``vol_floor``; SPX and SPY options are priced with BSM on their spot with the rate ``rate`` and
their dividend yields, E-mini options with Black-76 on their future (all European: SPY's early
exercise is not simulated; the quote's ``iv`` is the smile's vol, at which the engine prices SPY
American, a little above the mark); bid and ask sit ``half_spread`` of the mark (at least a
tick) either side, rounded outwards to the tick.

The opening book (``book``): at its first start the feed sends the fills of an iron condor of
the 0DTE SPXW (``condor_strikes_pct``, ``condor_quantity`` units, sold as a strategy), short
SPY calls of the monthly (``covered_calls`` contracts at ``covered_call_strike_pct``: covered
by SPY shares the positions file holds) and an E-mini futures hedge (``es_hedge``
contracts), each at its mark.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from engine.clock import Clock
from engine.constraints import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from engine.daycount import NS_PER_DAY, NS_PER_YEAR, year_fraction
from engine.events import EventSink, Fill, Quote, Tick
from engine.greeks import black76, bsm
from engine.instruments import Instrument, InstrumentRegistry
from engine.listed import CmeOption, format_cme_option, format_osi
from engine.uscalendar import NEW_YORK, close_ns, is_trading_day, last_trading_day_of_month
from engine.uscalendar import third_friday as monthly_friday
from feeds.base import FeedStats, Sleep
from feeds.sim import SimJump, emit_paced

__all__ = ["UsSimFeed", "UsSimFeedConfig"]

logger = logging.getLogger(__name__)

_HOUR_NS = 3_600_000_000_000

Pcts = Annotated[list[PositiveFloat], msgspec.Meta(min_length=1)]


class UsSimFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="us_sim",
):
    """Configuration of a :class:`UsSimFeed` (``kind = "us_sim"``; module docstring).

    Attributes:
        name, required, seed, rate_hz, start_ns: as the crypto simulator's
            (:class:`feeds.sim.SimFeedConfig`).
        spx: the starting SPX level, index points (USD).
        spy_ratio: SPY's price per SPX point (0.1).
        rate: the USD rate, continuously compounded decimal (match
            ``[portfolio.underlyings]``).
        spx_dividend_yield, spy_dividend_yield: continuously compounded decimals.
        vol, skew, smile, vol_floor: the smile (decimals; skew per unit of k, smile per k²).
        walk_vol: annual volatility of the SPX walk, decimal.
        jumps: scheduled moves of SPX (and with it everything).
        spxw_days: SPXW expiries, trading days after the 0DTE (0: the 0DTE itself).
        spxw_strikes_pct, spy_strikes_pct, es_strikes_pct: strikes, fractions of the start.
        spy_min_days: the SPY monthly is the first third Friday at least this many days away.
        es_min_days: the E-mini EW option's month is the first whose last trading day is at
            least this many days away.
        half_spread: half the bid/ask spread, fraction of the mark.
        open_interest: open interest at the money, contracts.
        book: the book of the opening fills.
        condor_strikes_pct: the 0DTE iron condor's four strikes (put, put, call, call).
        condor_quantity: iron condors sold (ratios +1 -1 -1 +1: a credit).
        covered_call_strike_pct: the SPY call sold against the shares.
        covered_calls: SPY calls sold, contracts (0: none).
        es_hedge: E-mini futures bought (negative: sold), contracts.
    """

    name: str = "us_sim"
    required: bool = True
    seed: int = 0
    rate_hz: PositiveFloat = 200.0
    start_ns: int | None = None
    spx: PositiveFloat = 6000.0
    spy_ratio: PositiveFloat = 0.1
    rate: float = 0.04
    spx_dividend_yield: float = 0.013
    spy_dividend_yield: float = 0.012
    vol: PositiveFloat = 0.16
    skew: float = -0.6
    smile: float = 2.0
    vol_floor: PositiveFloat = 0.06
    walk_vol: PositiveFloat = 0.15
    jumps: list[SimJump] = []
    spxw_days: Annotated[list[NonNegativeInt], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [0, 5]
    )
    spxw_strikes_pct: Pcts = msgspec.field(
        default_factory=lambda: [0.96, 0.97, 0.98, 0.99, 0.995, 1.0, 1.005, 1.01, 1.02, 1.03, 1.04]
    )
    spy_strikes_pct: Pcts = msgspec.field(
        default_factory=lambda: [0.94, 0.96, 0.98, 0.99, 1.0, 1.01, 1.02, 1.03, 1.04, 1.06]
    )
    es_strikes_pct: Pcts = msgspec.field(
        default_factory=lambda: [0.94, 0.96, 0.98, 0.99, 1.0, 1.01, 1.02, 1.04, 1.06]
    )
    spy_min_days: PositiveInt = 14
    es_min_days: PositiveInt = 7
    half_spread: NonNegativeFloat = 0.02
    open_interest: NonNegativeFloat = 20_000.0
    book: Annotated[str, msgspec.Meta(pattern=r"^[^:]+$")] = "us"
    condor_strikes_pct: Annotated[list[PositiveFloat], msgspec.Meta(min_length=4, max_length=4)] = (
        msgspec.field(default_factory=lambda: [0.97, 0.98, 1.02, 1.03])
    )
    condor_quantity: NonNegativeFloat = 10.0
    covered_call_strike_pct: PositiveFloat = 1.03
    covered_calls: NonNegativeFloat = 20.0
    es_hedge: float = -3.0


Root = Literal["SPX", "SPY", "ES"]


@dataclass(slots=True)
class _Leg:
    """One instrument the simulator quotes: what it is on, and its terms."""

    name: str
    on: Root
    kind: Literal["index", "spot", "future", "option"]
    strike: float = 0.0
    is_call: bool = True
    expiry_ns: int = 0
    multiplier: float = 100.0
    tick: float = 0.05
    open_interest: float | None = None


def _ny_date(ns: int) -> date:
    return datetime.fromtimestamp(ns // 1_000_000_000, tz=UTC).astimezone(NEW_YORK).date()


def _trading_days(first: date, n: int) -> date:
    """The ``n``-th trading day from ``first`` (0: ``first`` itself, a trading day)."""
    day = first
    while n > 0:
        day += timedelta(days=1)
        n -= int(is_trading_day(day))
    return day


def _zero_dte(start_ns: int) -> date:
    """The first trading day whose 16:00 ET close is at least an hour after ``start_ns``."""
    day = _ny_date(start_ns)
    while not (is_trading_day(day) and close_ns(day) >= start_ns + _HOUR_NS):
        day += timedelta(days=1)
    return day


def _spy_monthly(start_ns: int, min_days: int) -> date:
    """The first third Friday at least ``min_days`` after ``start_ns``."""
    d = _ny_date(start_ns + min_days * NS_PER_DAY)
    friday = monthly_friday(d.year, d.month)
    if friday < d:
        year, month = (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)
        friday = monthly_friday(year, month)
    return friday


def _es_month(start_ns: int, min_days: int) -> tuple[int, int]:
    """(year, month) of the first end-of-month E-mini option at least ``min_days`` away."""
    d = _ny_date(start_ns + min_days * NS_PER_DAY)
    if last_trading_day_of_month(d.year, d.month) >= d:
        return d.year, d.month
    return (d.year + 1, 1) if d.month == 12 else (d.year, d.month + 1)


def _grid(level: float, pcts: list[float], step: float) -> list[float]:
    return sorted({round(level * p / step) * step for p in pcts})


def _option_legs(
    cfg: UsSimFeedConfig, registry: InstrumentRegistry, start_ns: int
) -> tuple[list[_Leg], str]:
    """The quoted options, and the E-mini future their E-mini options are on."""
    spx, spy = cfg.spx, cfg.spx * cfg.spy_ratio
    names: list[tuple[str, Root, float, float]] = []  # name, on, tick, ATM reference level
    first = _zero_dte(start_ns)
    for n in cfg.spxw_days:
        day = _trading_days(first, n)
        pcts = [*cfg.spxw_strikes_pct, *(cfg.condor_strikes_pct if n == 0 else [])]
        for k in _grid(spx, pcts, 5.0):
            names += [(format_osi("SPXW", day, c, k), "SPX", 0.05, spx) for c in (True, False)]
    monthly = _spy_monthly(start_ns, cfg.spy_min_days)
    for k in _grid(spy, [*cfg.spy_strikes_pct, cfg.covered_call_strike_pct], 1.0):
        names += [(format_osi("SPY", monthly, c, k), "SPY", 0.01, spy) for c in (True, False)]
    year, month = _es_month(start_ns, cfg.es_min_days)
    for k in _grid(spx, cfg.es_strikes_pct, 5.0):
        names += [
            (format_cme_option(CmeOption("EW", year, month, c, k)), "ES", 0.25, spx)
            for c in (True, False)
        ]
    legs, future = [], ""
    for name, on, tick, level in names:
        inst = _known(registry, name)
        strike, expiry_ns = inst.strike or 0.0, inst.expiry_ns or 0
        future = inst.underlying_future or future
        k = math.log(strike / level)
        wing = 2.0 if (k < 0.0) != bool(inst.is_call) else 1.0
        oi = round(cfg.open_interest * wing * math.exp(-k * k / 0.02)) * inst.multiplier
        legs.append(_Leg(name=inst.name, on=on, kind="option", strike=strike,
                         is_call=bool(inst.is_call), expiry_ns=expiry_ns,
                         multiplier=inst.multiplier, tick=tick,
                         open_interest=oi if cfg.open_interest > 0.0 else None))  # fmt: skip
    return legs, future


def _known(registry: InstrumentRegistry, name: str) -> Instrument:
    inst = registry.get(name)
    if inst is None:
        raise ValueError(f"simulated instrument {name!r} is not in the registry")
    return inst


def _round_out(mark: float, half: float, tick: float) -> tuple[float, float]:
    """Bid and ask ``half`` either side of ``mark``, rounded outwards to ``tick``."""
    bid = max(round(math.floor((mark - half) / tick) * tick, 10), 0.0)
    return bid, round(math.ceil((mark + half) / tick) * tick, 10)


class UsSimFeed:
    """A synthetic S&P 500 market (module docstring); implements :class:`feeds.base.Feed`.

    Args:
        config: this feed's configuration.
        registry: where the generated names must resolve (OSI and CME names).
        clock: event times; with a ManualClock, the sleep must advance it.
        sleep: waits between events.

    Raises:
        ValueError: a generated name does not resolve in ``registry``.
    """

    def __init__(
        self,
        config: UsSimFeedConfig,
        registry: InstrumentRegistry,
        clock: Clock,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = config.name
        self.stats = FeedStats()
        self._config = config
        self._clock = clock
        self._sleep = sleep
        self._rng = random.Random(config.seed)  # noqa: S311 - a seeded simulation, no secrets
        start_ns = clock.now_ns() if config.start_ns is None else config.start_ns
        self._walk_ns = start_ns
        self._opened = False
        self._next_leg = 0  # the leg the next beat quotes
        self._jumps: list[tuple[int, float]] = []
        self.spx = config.spx
        options, future = _option_legs(config, registry, start_ns)
        fut = _known(registry, future)
        self.future = fut.name
        self._legs = [
            _Leg(name=_known(registry, "SPX").name, on="SPX", kind="index", multiplier=1.0),
            _Leg(name=_known(registry, "SPY").name, on="SPY", kind="spot", multiplier=1.0),
            _Leg(
                name=fut.name,
                on="ES",
                kind="future",
                expiry_ns=fut.expiry_ns or 0,
                multiplier=fut.multiplier,
            ),
            *options,
        ]

    def instruments(self) -> list[str]:
        """Names of the tradable instruments the feed quotes: SPY, the future, the options."""
        return [leg.name for leg in self._legs if leg.kind != "index"]

    def spot(self, on: Root) -> float:
        """The simulated price of SPX, SPY (USD) now."""
        return self.spx * (self._config.spy_ratio if on == "SPY" else 1.0)

    async def run(self, sink: EventSink) -> None:
        """Emit events into ``sink`` at ``rate_hz`` until cancelled."""
        period_ns = round(1e9 / self._config.rate_hz)
        self.stats.connects += 1
        self.stats.connected = True
        logger.info("simulator started", extra={"feed": self.name, "instruments": len(self._legs)})
        try:
            if not self._opened:
                self._opened = True
                start_ns = self._clock.now_ns()
                self._jumps = sorted(
                    (start_ns + round(j.at_s * 1e9), j.log_return) for j in self._config.jumps
                )
                await self._open_book(sink, start_ns)
            await emit_paced(
                self._next_event, sink, self._clock, self._sleep, self.stats, period_ns
            )
        finally:
            self.stats.connected = False

    def _next_event(self, now_ns: int) -> Tick | Quote | None:
        """The market moved to ``now_ns``, the next leg's event (round robin)."""
        self._walk(now_ns)
        event = self._event(self._legs[self._next_leg], now_ns)
        self._next_leg = (self._next_leg + 1) % len(self._legs)
        return event

    def opening_fills(self, now_ns: int) -> list[Fill]:
        """The opening book's fills (module docstring), at the marks of ``now_ns``."""
        c, book, out = self._config, self._config.book, []
        start = c.spx  # the grids are of the starting level
        if c.condor_quantity > 0.0:
            day = _zero_dte(now_ns)
            strikes = [round(start * p / 5.0) * 5.0 for p in c.condor_strikes_pct]
            calls = (False, False, True, True)
            legs = [format_osi("SPXW", day, cp, k) for cp, k in zip(calls, strikes, strict=True)]
            # the price of one condor, USD: ratios +1 -1 -1 +1, x the multiplier
            unit = 100.0 * sum(
                r * self.mark(n, now_ns) for r, n in zip((1, -1, -1, 1), legs, strict=True)
            )
            out.append(self._fill(f"iron_condor:{'/'.join(legs)}", c.condor_quantity, unit, now_ns))
        if c.covered_calls > 0.0:
            day = _spy_monthly(now_ns, c.spy_min_days)
            k = round(start * c.spy_ratio * c.covered_call_strike_pct)  # the grid's step: 1
            name = format_osi("SPY", day, True, float(k))
            out.append(self._fill(name, -c.covered_calls, self.mark(name, now_ns), now_ns))
        if c.es_hedge:
            out.append(self._fill(self.future, c.es_hedge, self.mark(self.future, now_ns), now_ns))
        return [msgspec.structs.replace(f, fill_id=f"{self.name}-open-{n}")
                for n, f in enumerate(out) if f.book == book]  # fmt: skip

    def _fill(self, instrument: str, quantity: float, price: float, now_ns: int) -> Fill:
        return Fill(book=self._config.book, instrument=instrument, quantity=quantity,
                    price=price if math.isfinite(price) else None,
                    ts_event=now_ns, ts_recv=now_ns)  # fmt: skip

    async def _open_book(self, sink: EventSink, now_ns: int) -> None:
        """Send the opening book's fills."""
        for fill in self.opening_fills(now_ns):
            await sink.put_fill(fill)
            self.stats.events += 1

    def _walk(self, now_ns: int) -> None:
        """Move SPX from the last step to ``now_ns``, then by the jumps due."""
        dt = (now_ns - self._walk_ns) / NS_PER_YEAR
        if dt > 0.0:
            self._walk_ns = now_ns
            s = self._config.walk_vol
            z = self._rng.gauss(0.0, 1.0)
            self.spx *= math.exp(-0.5 * s * s * dt + s * math.sqrt(dt) * z)
        while self._jumps and self._jumps[0][0] <= now_ns:
            _, log_return = self._jumps.pop(0)
            self.spx *= math.exp(log_return)
            logger.info("simulated jump", extra={"feed": self.name, "log_return": log_return,
                                                  "spot": round(self.spx, 2)})  # fmt: skip

    def _forward(self, on: Root, expiry_ns: int, now_ns: int) -> tuple[float, float]:
        """(spot, forward) of what a leg is on, to ``expiry_ns``."""
        c = self._config
        t = max(year_fraction(now_ns, expiry_ns), 0.0)
        if on == "SPY":
            return self.spot("SPY"), self.spot("SPY") * math.exp(
                (c.rate - c.spy_dividend_yield) * t
            )
        future = next(leg for leg in self._legs if leg.kind == "future")
        ft = max(year_fraction(now_ns, future.expiry_ns), 0.0)
        es = self.spx * math.exp((c.rate - c.spx_dividend_yield) * ft)
        if on == "ES":
            return es, es
        return self.spx, self.spx * math.exp((c.rate - c.spx_dividend_yield) * t)

    def mark(self, leg_name: str, now_ns: int) -> float:
        """A leg's fair price now (USD per unit), NaN when it cannot be priced."""
        leg = next((x for x in self._legs if x.name == leg_name), None)
        event = None if leg is None else self._event(leg, now_ns)
        if isinstance(event, Tick):
            return event.price
        return math.nan if event is None or event.mark is None else event.mark

    def _event(self, leg: _Leg, now_ns: int) -> Tick | Quote | None:
        if leg.kind != "option":
            px = self._forward(leg.on, leg.expiry_ns, now_ns)[1] if leg.kind == "future" else (
                self.spot(leg.on))  # fmt: skip
            return Tick(instrument=leg.name, price=px, ts_event=now_ns, ts_recv=now_ns)
        c = self._config
        T = year_fraction(now_ns, leg.expiry_ns)
        if T <= 0.0:
            return None  # expired during the run
        S, F = self._forward(leg.on, leg.expiry_ns, now_ns)
        k = math.log(leg.strike / F)
        vol = max(c.vol + c.skew * k + c.smile * k * k, c.vol_floor)
        if leg.on == "ES":
            price = black76(leg.is_call, F, leg.strike, T, c.rate, vol).price
        else:
            q = c.spy_dividend_yield if leg.on == "SPY" else c.spx_dividend_yield
            price = bsm(leg.is_call, S, leg.strike, T, c.rate, q, vol).price
        mark = float(price)
        if not (math.isfinite(mark) and mark > 0.0):
            return None
        bid, ask = _round_out(mark, max(mark * c.half_spread, leg.tick), leg.tick)
        return Quote(
            instrument=leg.name,
            bid=bid,
            ask=ask,
            mark=mark,
            iv=vol,
            underlying_price=F,
            index_price=self.spx if leg.on != "SPY" else S,
            open_interest=leg.open_interest,
            volume=None if leg.open_interest is None else round(leg.open_interest / 10.0),
            ts_event=now_ns,
            ts_recv=now_ns,
        )
