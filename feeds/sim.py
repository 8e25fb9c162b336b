"""Simulator feed: a synthetic Deribit-style market, for demos and load tests.

Per underlying (``BTC``) the spot follows a geometric random walk; the feed emits

- index ticks (``btc_usd``) and perpetual ticks (``BTC-PERPETUAL``) at the spot, in USD;
- quotes of coin-settled options named as Deribit names them (``BTC-27DEC24-60000-C``), one per
  expiry of ``expiries_days`` (the first 08:00 UTC at least that many days after the start) and
  strike of ``strikes_pct`` (moneyness, rounded to a grid of two significant digits); with
  ``open_interest`` they carry an open interest (fixed per option: ``open_interest`` at the
  money, falling off as exp(-k^2 / 0.08) in k = ln(K / spot at the start), doubled for puts
  below and calls above the money, where customers buy protection and sell calls) and a 24-hour
  volume of a tenth of it.

Quotes follow a smile: ``vol(k) = vol + skew * k + smile * k**2`` with ``k = ln(K / F)``, floored
at ``vol_floor``. With r = 0 the forward F is the spot; the mark is the Black-76 USD price over F
(coin, as Deribit quotes BTC options), bid and ask sit ``half_spread`` of the mark (at least one
tick) either side, rounded outwards to the tick; ``iv`` is the smile's vol (decimal) and
``underlying_price`` is F.

Scheduled jumps (``jumps``) move a spot by a given log return at a given time after the feed
first starts, on top of the walk: a scripted market move (the demo's rally and retracement).

Events go out round-robin over all instruments at ``rate_hz``, timed by the injected clock and
sleep: with a :class:`~engine.clock.ManualClock` and a sleep that advances it, a run is the same
for the same seed.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

import msgspec

from engine.clock import Clock
from engine.constraints import NonNegativeFloat, NonNegativeInt, PositiveFloat, PositiveInt
from engine.daycount import NS_PER_DAY, NS_PER_YEAR, year_fraction
from engine.events import EventSink, Fill, Quote, Tick
from engine.greeks import black76
from engine.instruments import InstrumentRegistry, deribit_expiry_ns, parse_deribit_name
from feeds.base import FeedStats, Sleep

__all__ = [
    "SimFeed",
    "SimFeedConfig",
    "SimJump",
    "SimUnderlying",
    "Sleep",
    "emit_paced",
    "smile_vol",
]

logger = logging.getLogger(__name__)


_NAME = re.compile(r"^[A-Z0-9]+$")
_MAX_LATE_NS = 1_000_000_000


class SimJump(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A scheduled move of a simulated spot, on top of its random walk.

    Attributes:
        at_s: seconds after the feed first starts (on the daemon's clock).
        log_return: the move, as a log return: the spot is multiplied by ``exp(log_return)``
            (0.06: about +6.2%; a later -0.06 takes it back), within [-1, 1].
    """

    at_s: NonNegativeFloat
    log_return: Annotated[float, msgspec.Meta(ge=-1.0, le=1.0)]


class SimUnderlying(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One simulated underlying and its option chain.

    Attributes:
        name: the base currency, upper case (``BTC``); names ``BTC-PERPETUAL``, ``btc_usd``.
        spot: starting spot, USD.
        vol: ATM implied vol, a decimal.
        skew: slope of the smile in k = ln(K/F), vol per unit of k.
        smile: curvature of the smile, vol per unit of k².
        vol_floor: smallest vol of the smile, a decimal.
        drift: annual drift of the spot walk, a decimal.
        walk_vol: annual volatility of the spot walk, a decimal; None: ``vol``.
        expiries_days: days from the start to each expiry (rounded up to 08:00 UTC).
        strikes_pct: strikes as fractions of the starting spot (1.0 at the money).
        half_spread: half the bid/ask spread, as a fraction of the mark.
        tick_coin: price tick of the options, in coin.
        jumps: scheduled moves of the spot (:class:`SimJump`), in any order.
        open_interest: open interest of an at-the-money option, underlying units (module
            docstring); 0: the quotes carry none.
    """

    name: str = "BTC"
    spot: PositiveFloat = 65_000.0
    vol: PositiveFloat = 0.6
    skew: float = -0.1
    smile: float = 0.5
    vol_floor: PositiveFloat = 0.05
    drift: float = 0.0
    walk_vol: PositiveFloat | None = None
    expiries_days: Annotated[list[PositiveInt], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [7, 30, 90]
    )
    strikes_pct: Annotated[list[PositiveFloat], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [0.8, 0.9, 1.0, 1.1, 1.2]
    )
    half_spread: NonNegativeFloat = 0.02
    tick_coin: PositiveFloat = 0.0001
    jumps: list[SimJump] = []
    open_interest: NonNegativeFloat = 0.0

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"underlying name must be upper-case letters and digits: {self.name!r}"
            )


async def emit_paced(
    next_event: Callable[[int], Tick | Quote | None],
    sink: EventSink,
    clock: Clock,
    sleep: Sleep,
    stats: FeedStats,
    period_ns: int,
) -> None:
    """A simulator's beat: every ``period_ns`` on ``clock``, ``next_event(now_ns)`` handed to
    ``sink`` (None: nothing this beat), until cancelled. A feed more than a second behind its
    beat carries on from now rather than catching up in a burst."""
    next_ns = clock.now_ns()
    while True:
        now = clock.now_ns()
        event = next_event(now)
        if event is not None:
            stats.received += 1
            stats.last_recv_ns = now
            sink.put(event)
            stats.events += 1
        next_ns += period_ns
        late_ns = clock.now_ns() - next_ns
        if late_ns > _MAX_LATE_NS:
            next_ns += late_ns
        await sleep(max(next_ns - clock.now_ns(), 0) / 1e9)


class SimFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="sim",
):
    """Configuration of a :class:`SimFeed` (``kind = "sim"``).

    Attributes:
        name: the feed's name in logs and stats.
        required: the daemon is not ready (``/readyz``) while this feed is disconnected or
            stale. False: an optional feed (fills or data that may never come); it counts for
            nothing in readiness, and it raises a stale-feed alert only once it has received
            something.
        seed: seed of the random walk; the same seed and clock give the same run.
        rate_hz: events per second, over all instruments.
        underlyings: the simulated underlyings.
        start_ns: the start, int UNIX ns, from which expiries count; None: the clock's time
            when the feed is built.
        book: the book of the opening fills.
        opening_fills: fills the feed sends at its first start, before any quote: options of
            its chain drawn at random (seeded), 0.1 to 25 coin long or short, at the mark. A
            demo book that needs no positions file (expiries move with the start).
    """

    name: str = "sim"
    required: bool = True
    seed: int = 0
    rate_hz: PositiveFloat = 20.0
    underlyings: Annotated[list[SimUnderlying], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: [SimUnderlying()]
    )
    start_ns: int | None = None
    book: Annotated[str, msgspec.Meta(pattern=r"^[^:]+$")] = "demo"  # no ':' (snapshot keys)
    opening_fills: NonNegativeInt = 0


@dataclass(slots=True)
class _Leg:
    """One instrument the simulator quotes."""

    name: str
    underlying: int
    kind: Literal["index", "perpetual", "option"]
    strike: float = 0.0
    is_call: bool = True
    expiry_ns: int = 0
    open_interest: float | None = None


class SimFeed:
    """A synthetic Deribit-style market (module docstring); implements
    :class:`feeds.base.Feed`.

    Args:
        config: this feed's configuration.
        registry: where the generated names must resolve (they parse as Deribit names).
        clock: event times; with a ManualClock, the sleep must advance it.
        sleep: waits between events (``asyncio.sleep``; tests inject one that moves the clock).

    Raises:
        ValueError: a generated name does not resolve in ``registry``.
    """

    def __init__(
        self,
        config: SimFeedConfig,
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
        self._jumps: list[tuple[int, int, float]] = []  # (when, underlying, log return), by time
        self._spots = [u.spot for u in config.underlyings]
        self._legs = [
            leg for i, u in enumerate(config.underlyings) for leg in _legs(i, u, start_ns)
        ]
        for leg in self._legs:
            if registry.get(leg.name) is None:
                raise ValueError(f"simulated instrument {leg.name!r} is not in the registry")

    def instruments(self) -> list[str]:
        """Names of the tradable instruments the feed quotes: perpetuals and options."""
        return [leg.name for leg in self._legs if leg.kind != "index"]

    def spot(self, underlying: str) -> float:
        """The simulated spot of ``underlying`` (``"BTC"``) now, USD.

        Raises:
            KeyError: not a simulated underlying.
        """
        for u, s in zip(self._config.underlyings, self._spots, strict=True):
            if u.name == underlying:
                return s
        raise KeyError(underlying)

    async def run(self, sink: EventSink) -> None:
        """Emit events into ``sink`` at ``rate_hz`` until cancelled."""
        period_ns = round(1e9 / self._config.rate_hz)
        self.stats.connects += 1
        self.stats.connected = True
        logger.info(
            "simulator started",
            extra={"feed": self.name, "instruments": len(self._legs), "seed": self._config.seed},
        )
        try:
            if not self._opened:
                self._opened = True
                self._schedule_jumps(self._clock.now_ns())
                await self._open_book(sink, self._clock.now_ns())
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

    async def _open_book(self, sink: EventSink, now_ns: int) -> None:
        """Send the configured opening fills (their own seeded draw: the market path does not
        depend on them)."""
        rng = random.Random(self._config.seed + 1)  # noqa: S311 - a seeded simulation
        options = [leg for leg in self._legs if leg.kind == "option"]
        for n in range(self._config.opening_fills if options else 0):
            leg = rng.choice(options)
            quote = self._event(leg, now_ns)
            if not isinstance(quote, Quote):
                continue
            size = rng.randint(1, 250) / 10.0
            await sink.put_fill(
                Fill(
                    book=self._config.book,
                    instrument=leg.name,
                    quantity=size if rng.random() < 0.5 else -size,
                    price=quote.mark,
                    fill_id=f"{self.name}-open-{n}",
                    ts_event=now_ns,
                    ts_recv=now_ns,
                )
            )
            self.stats.events += 1

    def _schedule_jumps(self, start_ns: int) -> None:
        """Time the configured jumps from ``start_ns`` (the feed's first start)."""
        self._jumps = sorted(
            (start_ns + round(jump.at_s * 1e9), j, jump.log_return)
            for j, u in enumerate(self._config.underlyings)
            for jump in u.jumps
        )

    def _walk(self, now_ns: int) -> None:
        """Move every spot from the last step to ``now_ns`` (geometric Brownian motion), then
        by the jumps due by ``now_ns``."""
        dt = (now_ns - self._walk_ns) / NS_PER_YEAR
        if dt > 0.0:
            self._walk_ns = now_ns
            for j, u in enumerate(self._config.underlyings):
                sigma = u.vol if u.walk_vol is None else u.walk_vol
                z = self._rng.gauss(0.0, 1.0)
                self._spots[j] *= math.exp(
                    (u.drift - 0.5 * sigma * sigma) * dt + sigma * math.sqrt(dt) * z
                )
        while self._jumps and self._jumps[0][0] <= now_ns:
            _, j, log_return = self._jumps.pop(0)
            self._spots[j] *= math.exp(log_return)
            logger.info(
                "simulated jump",
                extra={
                    "feed": self.name,
                    "underlying": self._config.underlyings[j].name,
                    "log_return": log_return,
                    "spot": round(self._spots[j], 2),
                },
            )

    def _event(self, leg: _Leg, now_ns: int) -> Tick | Quote | None:
        spot = self._spots[leg.underlying]
        if leg.kind != "option":
            return Tick(instrument=leg.name, price=spot, ts_event=now_ns, ts_recv=now_ns)
        u = self._config.underlyings[leg.underlying]
        T = year_fraction(now_ns, leg.expiry_ns)
        if T <= 0.0:
            return None  # expired during the run
        F = spot  # r = 0
        vol = smile_vol(u, leg.strike, F)
        usd = float(black76(leg.is_call, F, leg.strike, T, 0.0, vol).price)
        mark = usd / F
        if not (math.isfinite(mark) and mark > 0.0):
            return None
        half = max(mark * u.half_spread, u.tick_coin)
        tick = u.tick_coin
        bid = max(round(math.floor((mark - half) / tick) * tick, 10), 0.0)
        ask = round(math.ceil((mark + half) / tick) * tick, 10)
        return Quote(
            instrument=leg.name,
            bid=bid,
            ask=ask,
            mark=mark,
            iv=vol,
            underlying_price=F,
            index_price=spot,
            open_interest=leg.open_interest,
            volume=None if leg.open_interest is None else round(leg.open_interest / 10.0, 1),
            ts_event=now_ns,
            ts_recv=now_ns,
        )


def smile_vol(underlying: SimUnderlying, strike: float, forward: float) -> float:
    """The simulator's implied vol (decimal) of ``strike`` on ``forward``: the smile of the
    module docstring."""
    k = math.log(strike / forward)
    vol = underlying.vol + underlying.skew * k + underlying.smile * k * k
    return max(vol, underlying.vol_floor)


def _legs(index: int, u: SimUnderlying, start_ns: int) -> list[_Leg]:
    legs = [
        _Leg(name=f"{u.name.lower()}_usd", underlying=index, kind="index"),
        _Leg(name=f"{u.name}-PERPETUAL", underlying=index, kind="perpetual"),
    ]
    seen: set[str] = set()
    for days in u.expiries_days:
        expiry = _expiry_code(start_ns + days * NS_PER_DAY)
        for pct in u.strikes_pct:
            strike_code = _strike_code(pct * u.spot)
            for cp in ("C", "P"):
                name = f"{u.name}-{expiry}-{strike_code}-{cp}"
                inst = parse_deribit_name(name)
                if name in seen or inst is None or inst.strike is None or inst.expiry_ns is None:
                    continue
                seen.add(name)
                k = math.log(inst.strike / u.spot)
                wing = 2.0 if (k < 0.0) != (cp == "C") else 1.0
                oi = round(u.open_interest * wing * math.exp(-k * k / 0.08), 1)
                legs.append(
                    _Leg(
                        name=name,
                        underlying=index,
                        kind="option",
                        strike=inst.strike,
                        is_call=cp == "C",
                        expiry_ns=inst.expiry_ns,
                        open_interest=oi if u.open_interest > 0.0 else None,
                    )
                )
    return legs


def _expiry_code(not_before_ns: int) -> str:
    """Deribit's date code (``27DEC24``) of the first 08:00 UTC at or after ``not_before_ns``."""
    day = datetime.fromtimestamp(not_before_ns // 1_000_000_000, tz=UTC).date()
    if deribit_expiry_ns(day.day, day.month, day.year) < not_before_ns:
        day += timedelta(days=1)
    return f"{day.day}{calendar.month_abbr[day.month].upper()}{day.year % 100:02d}"


def _strike_code(raw: float) -> str:
    """A strike near ``raw`` on a two-significant-digit grid (65 000 x 0.8 -> ``52000``), as
    Deribit writes it (``d`` for a decimal point)."""
    step_exp = math.floor(math.log10(raw)) - 1
    step = 10.0**step_exp
    strike = round(raw / step) * step
    decimals = max(0, -step_exp)
    text = f"{strike:.{decimals}f}"
    return text.replace(".", "d")
