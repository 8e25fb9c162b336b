"""US strategy-based (Reg T) margin of listed options in the pure core: Cboe Rule 10.3 and FINRA
Rule 4210(f)(2), as Cboe's margin pages and manual state them: naked calls and puts, long
options, spreads (the maximum potential loss of FINRA Regulatory Notice 12-44), short straddles
and strangles, covered calls and puts, protective puts, and stock. Strategies come as the desk
holds them (:class:`engine.risk.strategies.Strategy`), or a flat list of positions is paired
into them greedily as brokers do (:func:`position_margin`).

Every figure is USD for the whole position (contracts x multiplier x a per-unit amount). The
*requirement* is Cboe's margin requirement: it includes 100 % of a short option's value where the
rule says "100 % of the option proceeds plus ...", and the cost of options paid in full; the
*deposit* is the requirement less the short options' value (the proceeds applied), the figure of
Cboe's published tables. Sources and what is approximated: docs/margin.md#us-strategy-based-margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import numpy as np

from engine.daycount import year_fraction
from engine.instruments import Kind
from engine.risk.strategies import Strategy

__all__ = [
    "REG_T",
    "MarginLine",
    "OptionLeg",
    "RegTMargin",
    "RegTParams",
    "Rule",
    "Underlying",
    "UnderlyingClass",
    "max_potential_loss",
    "naked_excess",
    "position_margin",
    "strategy_legs",
    "strategy_margin",
]


class UnderlyingClass(StrEnum):
    """What an option is on, as the margin rules tell them apart."""

    EQUITY = "equity"
    """Stocks, ETFs (SPY) and narrow-based indices: 20 % of the underlying."""
    BROAD_INDEX = "broad_index"
    """Broad-based indices (SPX, XSP, NDX, RUT): 15 %."""
    FUTURE = "future"
    """Futures (ES): margined by SPAN (:mod:`engine.risk.span`), not by these rules."""


@dataclass(frozen=True, slots=True)
class RegTParams:
    """The rates of the rules (defaults: Cboe Rule 10.3 / FINRA 4210 minimums; brokers may ask
    more).

    Attributes:
        equity_rate: naked options on equities and ETFs, fraction of the underlying (0.20).
        broad_index_rate: naked options on broad-based indices (0.15).
        minimum_rate: the floor, of the underlying (calls) or the strike (puts) (0.10).
        long_dated_years: options expiring later than this may be bought on margin (0.75:
            nine months).
        long_dated_rate: the part of such an option's value required (0.75).
        stock_initial: Reg T initial margin of stock, fraction of its value (0.50).
        stock_maintenance: maintenance margin of stock (0.25).
        minimum_per_contract_usd: a house minimum per naked short contract, USD (0: none).
    """

    equity_rate: float = 0.20
    broad_index_rate: float = 0.15
    minimum_rate: float = 0.10
    long_dated_years: float = 0.75
    long_dated_rate: float = 0.75
    stock_initial: float = 0.50
    stock_maintenance: float = 0.25
    minimum_per_contract_usd: float = 0.0

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"RegTParams.{name} must be finite and >= 0, got {value!r}")


REG_T = RegTParams()
"""Cboe's and FINRA's minimums."""


@dataclass(frozen=True, slots=True)
class Underlying:
    """The underlying's price (USD per unit) and class."""

    price: float
    kind: UnderlyingClass

    def __post_init__(self) -> None:
        if not (math.isfinite(self.price) and self.price > 0.0):
            raise ValueError(f"underlying price must be finite and > 0, got {self.price!r}")
        if self.kind == UnderlyingClass.FUTURE:
            raise ValueError("options on futures are margined by SPAN, not by Reg T")


@dataclass(frozen=True, slots=True)
class OptionLeg:
    """A position in one listed option: signed contracts (long > 0), call or put, strike (USD),
    expiry (int UNIX ns), multiplier (units of the underlying per contract) and market price
    (USD per unit of the underlying)."""

    contracts: float
    is_call: bool
    strike: float
    expiry_ns: int
    multiplier: float
    price: float

    def __post_init__(self) -> None:
        ok = math.isfinite(self.contracts) and 0.0 < self.strike < math.inf
        if not (ok and 0.0 < self.multiplier < math.inf and 0.0 <= self.price < math.inf):
            raise ValueError(f"bad option leg: {self!r}")

    @property
    def value(self) -> float:
        """USD value of one contract."""
        return self.price * self.multiplier

    def one(self, contracts: float) -> OptionLeg:
        """The same option, ``contracts`` of it."""
        return OptionLeg(contracts, self.is_call, self.strike, self.expiry_ns, self.multiplier,
                         self.price)  # fmt: skip


class Rule(StrEnum):
    """Which rule margined a line."""

    NAKED = "naked"
    LONG = "long"
    SPREAD = "spread"
    STRADDLE = "straddle"
    COVERED = "covered"
    PROTECTIVE = "protective"
    STOCK = "stock"


@dataclass(frozen=True, slots=True)
class MarginLine:
    """One margined piece of a book, USD for all of it.

    Attributes:
        rule: the rule applied.
        legs: indices of the option legs in it (into the legs given).
        units: units of the piece (contracts of each leg per unit: the legs' own signs).
        shares: shares of stock in it (signed).
        requirement_usd: initial requirement (includes the short options' value where the rule
            does, the cost of options paid in full, Reg T initial on stock).
        maintenance_usd: maintenance requirement (differs on stock only).
        short_value_usd: market value of its short options: the proceeds that may be applied.
    """

    rule: Rule
    legs: tuple[int, ...]
    units: float
    shares: float
    requirement_usd: float
    maintenance_usd: float
    short_value_usd: float

    @property
    def deposit_usd(self) -> float:
        """The requirement less the short options' proceeds."""
        return self.requirement_usd - self.short_value_usd


@dataclass(frozen=True, slots=True)
class RegTMargin:
    """A book's strategy-based margin: its lines and their sums (USD)."""

    lines: tuple[MarginLine, ...]

    @property
    def requirement_usd(self) -> float:
        return math.fsum(x.requirement_usd for x in self.lines)

    @property
    def maintenance_usd(self) -> float:
        return math.fsum(x.maintenance_usd for x in self.lines)

    @property
    def deposit_usd(self) -> float:
        return math.fsum(x.deposit_usd for x in self.lines)


# ------------------------------------------------------------------------- per-contract rules


def naked_excess(leg: OptionLeg, und: Underlying, params: RegTParams = REG_T) -> float:
    """A naked short contract's requirement beyond its value, USD: max(rate x S - OTM,
    ``minimum_rate`` x (S for calls, K for puts)) x multiplier, at least the house minimum;
    rate 20 % (equity, ETF) or 15 % (broad-based index)."""
    s, k = und.price, leg.strike
    rate = (
        params.broad_index_rate if und.kind == UnderlyingClass.BROAD_INDEX else params.equity_rate
    )
    otm = max(k - s, 0.0) if leg.is_call else max(s - k, 0.0)
    floor = params.minimum_rate * (s if leg.is_call else k)
    return max(leg.multiplier * max(rate * s - otm, floor), params.minimum_per_contract_usd)


def _long_rate(leg: OptionLeg, now_ns: int, params: RegTParams) -> float:
    """The part of a long option's value required: 75 % beyond nine months, else 100 %."""
    long_dated = year_fraction(now_ns, leg.expiry_ns) > params.long_dated_years
    return params.long_dated_rate if long_dated else 1.0


def max_potential_loss(legs: Sequence[OptionLeg]) -> float:
    """FINRA Regulatory Notice 12-44: the legs' intrinsic values (contracts x multiplier) netted
    at an underlying price at every strike (and at 0); the maximum potential loss is the
    greatest loss, USD, >= 0; ``inf`` when the net calls are short (loss unbounded above)."""
    if sum(x.contracts * x.multiplier for x in legs if x.is_call) < 0.0:
        return math.inf
    points = np.array([0.0, *sorted({x.strike for x in legs})])
    payoff = np.zeros(points.size)
    for x in legs:
        intrinsic = points - x.strike if x.is_call else x.strike - points
        payoff += x.contracts * x.multiplier * np.maximum(intrinsic, 0.0)
    return max(0.0, -float(payoff.min()))


def _is_spread(legs: Sequence[OptionLeg]) -> bool:
    """Spread treatment: some short legs; for calls and for puts each, as many contracts x
    multiplier long as short; every short leg expiring on or before every long leg."""
    shorts = [x for x in legs if x.contracts < 0.0]
    longs = [x for x in legs if x.contracts > 0.0]
    if (
        not shorts
        or not longs
        or max(x.expiry_ns for x in shorts) > min(x.expiry_ns for x in longs)
    ):
        return False
    for call in (True, False):
        units = [x.contracts * x.multiplier for x in legs if x.is_call == call]
        if not math.isclose(sum(u for u in units if u > 0.0), -sum(u for u in units if u < 0.0)):
            return False
    return math.isfinite(max_potential_loss(legs))


def _spread_line(legs: Sequence[OptionLeg], index: tuple[int, ...], units: float,
                 und: Underlying, params: RegTParams) -> MarginLine:  # fmt: skip
    """Long legs paid in full; short legs require the lesser of the maximum potential loss and
    their naked requirements (value included) (FINRA 4210(f)(2)(H)); their proceeds apply."""
    long_value = math.fsum(x.contracts * x.value for x in legs if x.contracts > 0.0)
    short_value = math.fsum(-x.contracts * x.value for x in legs if x.contracts < 0.0)
    naked = math.fsum(-x.contracts * naked_excess(x, und, params) for x in legs if x.contracts < 0)
    req = long_value + min(max_potential_loss(legs), short_value + naked)
    return MarginLine(Rule.SPREAD, index, units, 0.0, req, req, short_value)


def _single_line(leg: OptionLeg, i: int, und: Underlying, now_ns: int,
                 params: RegTParams) -> MarginLine:  # fmt: skip
    """A naked short or a long option alone."""
    n = abs(leg.contracts)
    if leg.contracts >= 0.0:
        req = n * leg.value * _long_rate(leg, now_ns, params)
        return MarginLine(Rule.LONG, (i,), n, 0.0, req, req, 0.0)
    req = n * (leg.value + naked_excess(leg, und, params))
    return MarginLine(Rule.NAKED, (i,), n, 0.0, req, req, n * leg.value)


def _straddle_line(call: OptionLeg, put: OptionLeg, index: tuple[int, ...], units: float,
                   und: Underlying, params: RegTParams) -> MarginLine:  # fmt: skip
    """Short call and short put: the greater naked requirement plus the other's value."""
    rc = call.value + naked_excess(call, und, params)
    rp = put.value + naked_excess(put, und, params)
    req = units * (max(rc, rp) + (put.value if rc >= rp else call.value))
    return MarginLine(Rule.STRADDLE, index, units, 0.0, req, req, units * (call.value + put.value))


def _stock_line(shares: float, und: Underlying, params: RegTParams) -> MarginLine:
    value = abs(shares) * und.price
    return MarginLine(Rule.STOCK, (), 0.0, shares, params.stock_initial * value,
                      params.stock_maintenance * value, 0.0)  # fmt: skip


# ------------------------------------------------------------------- pairing a flat book


@dataclass(slots=True)
class _Book:
    """What is left to margin while :func:`position_margin` pairs: contracts per leg, shares."""

    legs: Sequence[OptionLeg]
    left: list[float]
    shares: float
    und: Underlying
    now_ns: int
    params: RegTParams

    def shorts(self, call: bool) -> list[int]:
        """Short legs of one type still open, the largest naked requirement first."""
        rows = [i for i, x in enumerate(self.legs) if self.left[i] < 0.0 and x.is_call == call]
        return sorted(rows, key=lambda i: -self.legs[i].value - self.excess(i))

    def excess(self, i: int) -> float:
        return naked_excess(self.legs[i], self.und, self.params)


def _covered(book: _Book) -> list[MarginLine]:
    """Stock covers short calls (long shares) or short puts (short shares), one contract per
    multiplier of shares, the largest naked requirement first: the option needs nothing, the
    stock its Reg T margin, the option's proceeds apply."""
    lines = []
    for i in book.shorts(call=book.shares > 0.0):
        leg = book.legs[i]
        n = min(-book.left[i], abs(book.shares) / leg.multiplier)
        if n <= 0.0:
            break
        shares = math.copysign(n * leg.multiplier, book.shares)
        stock = _stock_line(shares, book.und, book.params)
        lines.append(MarginLine(Rule.COVERED, (i,), n, shares, stock.requirement_usd,
                                stock.maintenance_usd, n * leg.value))  # fmt: skip
        book.left[i] += n
        book.shares -= shares
    return lines


def _protective(book: _Book) -> list[MarginLine]:
    """Long puts protect long stock (long calls short stock): initial as each alone; the stock's
    maintenance is the lesser of 10 % of the strike plus the option's out-of-the-money amount
    and the stock's own maintenance (Cboe margin manual)."""
    lines, s, p = [], book.und.price, book.params
    for i, leg in enumerate(book.legs):
        n = min(book.left[i], abs(book.shares) / leg.multiplier)
        if leg.is_call == (book.shares > 0.0) or n <= 0.0:
            continue
        shares = math.copysign(n * leg.multiplier, book.shares)
        otm = max(s - leg.strike, 0.0) if shares > 0.0 else max(leg.strike - s, 0.0)
        stock_mm = min(p.minimum_rate * leg.strike + otm, p.stock_maintenance * s) * abs(shares)
        option = n * leg.value * _long_rate(leg, book.now_ns, p)
        initial = _stock_line(shares, book.und, p).requirement_usd + option
        lines.append(MarginLine(Rule.PROTECTIVE, (i,), n, shares, initial, stock_mm + option, 0.0))
        book.left[i] -= n
        book.shares -= shares
    return lines


def _best_long(book: _Book, i: int) -> tuple[int, MarginLine] | None:
    """The long leg that makes the cheapest vertical spread with short leg ``i`` (one unit),
    if any spread costs no more than the two legs alone."""
    short, best = book.legs[i], None
    for j, leg in enumerate(book.legs):
        if not (
            book.left[j] > 0.0
            and leg.is_call == short.is_call
            and leg.multiplier == short.multiplier
            and leg.expiry_ns >= short.expiry_ns
        ):
            continue  # fmt: skip
        line = _spread_line([short.one(-1.0), leg.one(1.0)], (i, j), 1.0, book.und, book.params)
        alone = (
            _single_line(short.one(-1.0), i, book.und, book.now_ns, book.params).requirement_usd
            + _single_line(leg.one(1.0), j, book.und, book.now_ns, book.params).requirement_usd
        )
        key = (line.requirement_usd, leg.expiry_ns)
        if line.requirement_usd <= alone and (best is None or key < best[0]):
            best = (key, j, line)
    return None if best is None else (best[1], best[2])


def _verticals(book: _Book) -> list[MarginLine]:
    """Each short option, the largest naked requirement first, with the long option of its type
    (expiring with it or later) that makes the cheapest spread, as many contracts as both
    have; again until no pair is left."""
    lines = []
    for call in (True, False):
        for i in book.shorts(call):
            while book.left[i] < 0.0 and (found := _best_long(book, i)) is not None:
                j, one = found
                n = min(-book.left[i], book.left[j])
                lines.append(
                    replace(one, units=n, requirement_usd=n * one.requirement_usd,
                            maintenance_usd=n * one.maintenance_usd,
                            short_value_usd=n * one.short_value_usd)
                )  # fmt: skip
                book.left[i] += n
                book.left[j] -= n
    return lines


def _straddles(book: _Book) -> list[MarginLine]:
    """Short calls with short puts, each type the largest naked requirement first."""
    lines = []
    for i, j in zip(book.shorts(call=True), book.shorts(call=False), strict=False):
        call, put = book.legs[i], book.legs[j]
        n = min(-book.left[i], -book.left[j])
        if call.multiplier != put.multiplier:
            continue
        lines.append(_straddle_line(call, put, (i, j), n, book.und, book.params))
        book.left[i] += n
        book.left[j] += n
    return lines


def position_margin(
    legs: Sequence[OptionLeg],
    underlying: Underlying,
    now_ns: int,
    shares: float = 0.0,
    params: RegTParams = REG_T,
) -> RegTMargin:
    """Strategy-based margin of one underlying's flat book, paired greedily as brokers do.

    Pairing, in this order (docs/margin.md#pairing-a-flat-book): (1) stock covers short calls
    (long stock) or short puts (short stock); (2) the stock left protects long puts (long stock)
    or long calls (short stock); (3) each short option, the largest naked requirement first,
    forms a vertical spread with the long option of its type, expiring with it or later, that
    makes the cheapest spread (ties: the nearer expiry); (4) short calls and short puts left
    pair into straddles or strangles, largest with largest; (5) what is left is naked, long or
    stock alone.

    Args:
        legs: option positions on ``underlying`` (multipliers may differ; only equal ones pair).
        underlying: its price and class.
        now_ns: valuation time, int UNIX ns (the nine-month rule for long options).
        shares: shares of the underlying held (signed).
        params: the rules' rates.
    """
    if not math.isfinite(shares):
        raise ValueError(f"shares must be finite, got {shares!r}")
    book = _Book(legs, [x.contracts for x in legs], shares, underlying, now_ns, params)
    lines = _covered(book) if shares else []
    lines += _protective(book) if book.shares else []
    lines += _verticals(book) + _straddles(book)
    for i, leg in enumerate(legs):
        if book.left[i] != 0.0:
            lines.append(_single_line(leg.one(book.left[i]), i, underlying, now_ns, params))
    if book.shares:
        lines.append(_stock_line(book.shares, underlying, params))
    return RegTMargin(tuple(lines))


# ---------------------------------------------------------------- strategies as the desk holds


def strategy_legs(
    strategy: Strategy, quantity: float, prices: Sequence[float]
) -> tuple[list[OptionLeg], float]:
    """The option legs of ``quantity`` units of ``strategy`` (each leg's contracts = quantity x
    ratio, its price from ``prices``, USD per unit of the underlying) and the shares of its
    stock legs (quantity x ratio x multiplier).

    Raises:
        ValueError: a price per leg is missing, or a leg is a future or perpetual.
    """
    if len(prices) != len(strategy.legs):
        raise ValueError(f"prices must give one price per leg ({len(strategy.legs)})")
    legs, shares = [], 0.0
    for leg, price in zip(strategy.legs, prices, strict=True):
        inst, n = leg.instrument, quantity * leg.ratio
        if inst.kind == Kind.SPOT:
            shares += n * inst.multiplier
        elif inst.kind == Kind.OPTION and inst.expiry_ns is not None and inst.strike is not None:
            legs.append(OptionLeg(n, bool(inst.is_call), inst.strike, inst.expiry_ns,
                                  inst.multiplier, price))  # fmt: skip
        else:
            raise ValueError(f"{inst.name}: a {inst.kind} has no strategy-based margin")
    return legs, shares


def strategy_margin(
    strategy: Strategy,
    quantity: float,
    prices: Sequence[float],
    underlying: Underlying,
    now_ns: int,
    params: RegTParams = REG_T,
) -> RegTMargin:
    """Strategy-based margin of a strategy held as one: a spread (verticals, butterflies,
    condors, iron condors, calendars and any legs whose shorts expire no later than their longs
    and whose calls and puts are each as long as short) needs its long legs' cost plus the
    lesser of its maximum potential loss and its short legs' naked requirements, the short
    legs' proceeds applied; any other strategy is margined as its legs paired
    (:func:`position_margin`)."""
    legs, shares = strategy_legs(strategy, quantity, prices)
    if not shares and _is_spread(legs):
        line = _spread_line(legs, tuple(range(len(legs))), abs(quantity), underlying, params)
        return RegTMargin((line,))
    return position_margin(legs, underlying, now_ns, shares, params)
