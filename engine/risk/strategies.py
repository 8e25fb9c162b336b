"""Multi-leg option strategies: builders, a compact text form, strategy Greeks and payoff
diagrams at the first expiry (docs/strategies.md).

A strategy is a kind plus legs; a leg is an instrument and a ratio, the signed contracts of it
per unit of the strategy. The builders fix the ratios of each kind (the strategy's own quantity
carries its sign and size) and check the legs, naming the leg at fault:

=================  ===========================================  ==============  ================
kind               legs, in order                               ratios          strikes
=================  ===========================================  ==============  ================
``vertical``       K1, K2: calls, or puts                       +1, -1          K1 < K2
``straddle``       call K, put K                                +1, +1          equal
``strangle``       put K1, call K2                              +1, +1          K1 < K2
``risk_reversal``  put K1, call K2                              -1, +1          K1 < K2
``butterfly``      K1, K2, K3: calls, or puts                   +1, -2, +1      K1 < K2 < K3
``condor``         K1 .. K4: calls, or puts                     +1, -1, -1, +1  ascending
``iron_condor``    put K1, put K2, call K3, call K4             +1, -1, -1, +1  ascending
``calendar``       near, far: same type and strike              -1, +1          equal
``legs``           any instruments of one underlying            as given
=================  ===========================================  ==============  ================

Every leg is of one underlying; the legs of a kind other than ``legs`` are options of one
expiry, except a calendar's, which differ in expiry only (near before far).

Text form (what a positions file carries in its instrument column; no commas, so CSV needs no
quoting): ``kind:first/part/part...``. The first part is the first leg's full name; each later
part names a leg by the fields of its name that differ from the first leg's (expiry date,
strike, C or P, in that order, joined by ``-``), or in full when it is not an option of the same
prefix. ``legs`` appends ``*ratio`` to every part::

    butterfly:BTC-27DEC24-60000-C/65000/70000
    straddle:BTC-27DEC24-60000-C/P
    calendar:BTC-27DEC24-60000-C/28MAR25
    legs:BTC-27DEC24-60000-C*1/65000*-2/BTC-PERPETUAL*-5000
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import msgspec
import numpy as np
import numpy.typing as npt

from engine.daycount import year_fraction
from engine.events import Fill
from engine.greeks import black76
from engine.instruments import Instrument, Kind, parse_deribit_name
from engine.risk.settlement import intrinsic, settlement_pnl
from engine.state import Portfolio, Priced

__all__ = [
    "Leg",
    "Lookup",
    "PayoffDiagram",
    "Strategy",
    "StrategyBook",
    "StrategyHolding",
    "StrategyKind",
    "butterfly",
    "calendar",
    "condor",
    "custom",
    "format_strategy",
    "iron_condor",
    "parse_strategy",
    "payoff_diagram",
    "risk_reversal",
    "straddle",
    "strangle",
    "strategy_greeks",
    "vertical",
]

FloatArray = npt.NDArray[np.float64]
Lookup = Callable[[str], Instrument | None]
"""Resolves a leg's instrument name: :func:`engine.instruments.parse_deribit_name` (the default)
or an :class:`~engine.instruments.InstrumentRegistry`'s ``get``."""


class StrategyKind(StrEnum):
    """The kinds of strategy (module docstring); ``LEGS`` is any list of legs."""

    VERTICAL = "vertical"
    STRADDLE = "straddle"
    STRANGLE = "strangle"
    RISK_REVERSAL = "risk_reversal"
    BUTTERFLY = "butterfly"
    CONDOR = "condor"
    IRON_CONDOR = "iron_condor"
    CALENDAR = "calendar"
    LEGS = "legs"


# kind -> ratios, option type per leg ("*": as the first leg's), strike and expiry rules
# between consecutive legs ("<": ascending, "=": equal)
_SHAPES: dict[StrategyKind, tuple[tuple[float, ...], str, str, str]] = {
    StrategyKind.VERTICAL: ((1.0, -1.0), "**", "<", "="),
    StrategyKind.STRADDLE: ((1.0, 1.0), "CP", "=", "="),
    StrategyKind.STRANGLE: ((1.0, 1.0), "PC", "<", "="),
    StrategyKind.RISK_REVERSAL: ((-1.0, 1.0), "PC", "<", "="),
    StrategyKind.BUTTERFLY: ((1.0, -2.0, 1.0), "***", "<", "="),
    StrategyKind.CONDOR: ((1.0, -1.0, -1.0, 1.0), "****", "<", "="),
    StrategyKind.IRON_CONDOR: ((1.0, -1.0, -1.0, 1.0), "PPCC", "<", "="),
    StrategyKind.CALENDAR: ((-1.0, 1.0), "**", "=", "<"),
}
# the fields of an option name after its prefix (BTC-27DEC24-60000-C), by their form
_FIELDS = (
    re.compile(r"\d{1,2}[A-Z]{3}\d{2}"),  # expiry date
    re.compile(r"\d+(?:d\d+)?"),  # strike (d: the decimal point)
    re.compile(r"[CP]"),  # call or put
)


@dataclass(frozen=True, slots=True)
class Leg:
    """An instrument and its ratio: signed contracts per unit of the strategy."""

    instrument: Instrument
    ratio: float


def _cp(inst: Instrument) -> str:
    return "C" if inst.is_call else "P"


@dataclass(frozen=True, slots=True)
class Strategy:
    """A kind and its legs, checked on construction (module docstring).

    Raises:
        ValueError: the legs do not make a strategy of this kind; names the leg at fault.
    """

    kind: StrategyKind
    legs: tuple[Leg, ...]

    def __post_init__(self) -> None:
        if not self.legs:
            raise ValueError("a strategy needs at least one leg")
        first = self.legs[0].instrument
        for i, leg in enumerate(self.legs):
            inst, where = leg.instrument, f"leg {i + 1} ({leg.instrument.name})"
            if not (math.isfinite(leg.ratio) and leg.ratio != 0.0):
                raise ValueError(f"{where}: ratio must be finite and non-zero, got {leg.ratio!r}")
            if inst.kind == Kind.INDEX or inst.underlying != first.underlying:
                raise ValueError(f"{where}: not a holding of leg 1's {first.underlying}")
            if any(other.instrument.name == inst.name for other in self.legs[:i]):
                raise ValueError(f"{where}: repeats an earlier leg")
        if self.kind == StrategyKind.LEGS:
            return
        ratios, types, strikes, expiries = _SHAPES[self.kind]
        if tuple(leg.ratio for leg in self.legs) != ratios:
            raise ValueError(f"a {self.kind} has {len(ratios)} legs of ratios {ratios}")
        for i, leg in enumerate(self.legs):
            inst, where = leg.instrument, f"leg {i + 1} ({leg.instrument.name})"
            if inst.kind != Kind.OPTION:
                raise ValueError(f"{where}: a {self.kind} takes options only")
            want = _cp(first) if types[i] == "*" else types[i]
            if _cp(inst) != want:
                raise ValueError(f"{where}: must be a {'call' if want == 'C' else 'put'}")
            if i == 0:
                continue
            prev = self.legs[i - 1].instrument
            for field, rule in (("strike", strikes), ("expiry_ns", expiries)):
                a, b = getattr(prev, field), getattr(inst, field)  # options have both
                if not (a < b if rule == "<" else a == b):
                    rel = ("above" if field == "strike" else "after") if rule == "<" else "equal to"
                    label = field.removesuffix("_ns")
                    raise ValueError(f"{where}: {label} must be {rel} leg {i}'s")


def _make(
    kind: StrategyKind, names: Sequence[str], ratios: Sequence[float], lookup: Lookup
) -> Strategy:
    legs = []
    for i, (name, ratio) in enumerate(zip(names, ratios, strict=True)):
        inst = lookup(name)
        if inst is None:
            raise ValueError(f"leg {i + 1} ({name}): unknown instrument")
        legs.append(Leg(inst, float(ratio)))
    return Strategy(kind, tuple(legs))


def _named(kind: StrategyKind, names: Sequence[str], lookup: Lookup) -> Strategy:
    ratios = _SHAPES[kind][0]
    if len(names) != len(ratios):
        raise ValueError(f"a {kind} has {len(ratios)} legs, got {len(names)}")
    return _make(kind, names, ratios, lookup)


def vertical(low: str, high: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Vertical spread: long the lower strike, short the higher, both calls (bull call spread)
    or both puts (bull put spread); a negative quantity gives the bear spreads."""
    return _named(StrategyKind.VERTICAL, (low, high), lookup)


def straddle(call: str, put: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Straddle: long a call and a put of one strike."""
    return _named(StrategyKind.STRADDLE, (call, put), lookup)


def strangle(put: str, call: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Strangle: long a put and a call of a higher strike."""
    return _named(StrategyKind.STRANGLE, (put, call), lookup)


def risk_reversal(put: str, call: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Risk reversal: short a put, long a call of a higher strike (bullish)."""
    return _named(StrategyKind.RISK_REVERSAL, (put, call), lookup)


def butterfly(low: str, mid: str, high: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Butterfly: +1, -2, +1 at ascending strikes, all calls or all puts (unequal wings are a
    broken-wing butterfly)."""
    return _named(StrategyKind.BUTTERFLY, (low, mid, high), lookup)


def condor(k1: str, k2: str, k3: str, k4: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Condor: +1, -1, -1, +1 at ascending strikes, all calls or all puts."""
    return _named(StrategyKind.CONDOR, (k1, k2, k3, k4), lookup)


def iron_condor(
    put1: str, put2: str, call3: str, call4: str, lookup: Lookup = parse_deribit_name
) -> Strategy:
    """Iron condor: long put K1, short put K2, short call K3, long call K4, K1 < ... < K4 (the
    credit iron condor: the same payoff as a condor, less the wing width)."""
    return _named(StrategyKind.IRON_CONDOR, (put1, put2, call3, call4), lookup)


def calendar(near: str, far: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """Calendar spread: short the near expiry, long the far, same type and strike."""
    return _named(StrategyKind.CALENDAR, (near, far), lookup)


def custom(legs: Sequence[tuple[str, float]], lookup: Lookup = parse_deribit_name) -> Strategy:
    """Any legs (instrument name, ratio) of one underlying: kind ``legs``."""
    return _make(StrategyKind.LEGS, [n for n, _ in legs], [r for _, r in legs], lookup)


def _compact(first: str, name: str) -> str:
    """``name`` as a part of the text form: its fields that differ from ``first``'s."""
    a, b = first.split("-"), name.split("-")
    if len(a) != 4 or len(b) != 4 or a[0] != b[0]:
        return name
    if not all(rx.fullmatch(t) for rx, t in zip(_FIELDS, b[1:], strict=True)):
        return name
    return "-".join(x for x, y in zip(b[1:], a[1:], strict=True) if x != y)


def _expand(first: str, part: str) -> str:
    """The leg name a part of the text form stands for, given the first leg's name."""
    fields = first.split("-")
    if len(fields) != 4:
        return part
    for token in part.split("-"):
        slot = next((j for j, rx in enumerate(_FIELDS, 1) if rx.fullmatch(token)), None)
        if slot is None:
            return part  # a full name
        fields[slot] = token
    return "-".join(fields)


def _names(parts: list[str]) -> list[str]:
    return [parts[0]] + [_expand(parts[0], p) for p in parts[1:]]


def _ratio_text(ratio: float) -> str:
    return str(int(ratio)) if ratio.is_integer() else repr(ratio)


def format_strategy(strategy: Strategy) -> str:
    """The text form of ``strategy`` (module docstring); :func:`parse_strategy` reads it back."""
    first = strategy.legs[0].instrument.name
    parts = [first] + [_compact(first, leg.instrument.name) for leg in strategy.legs[1:]]
    if strategy.kind == StrategyKind.LEGS:
        parts = [
            f"{p}*{_ratio_text(leg.ratio)}" for p, leg in zip(parts, strategy.legs, strict=True)
        ]
    return f"{strategy.kind}:{'/'.join(parts)}"


def parse_strategy(text: str, lookup: Lookup = parse_deribit_name) -> Strategy:
    """A strategy from its text form (module docstring).

    Raises:
        ValueError: an unknown kind, a part without its ``*ratio`` (``legs``), an unknown
            instrument, or legs that do not make the kind; names the leg at fault.
    """
    head, sep, body = text.partition(":")
    kinds = [k.value for k in StrategyKind]
    if not sep or head not in kinds or not body:
        raise ValueError(f"strategy {text!r}: expected kind:legs with a kind of {kinds}")
    kind = StrategyKind(head)
    parts = body.split("/")
    if kind != StrategyKind.LEGS:
        return _named(kind, _names(parts), lookup)
    split = [p.rpartition("*") for p in parts]
    try:
        ratios = [float(r) for _, _, r in split]
    except ValueError:
        raise ValueError(f"strategy {text!r}: every leg needs *ratio") from None
    return _make(kind, _names([name for name, _, _ in split]), ratios, lookup)


def strategy_greeks(
    strategy: Strategy, figures: npt.ArrayLike, quantity: float = 1.0
) -> FloatArray:
    """A strategy's figures: its legs' figures weighted by their ratios, times ``quantity``.

    Args:
        strategy: the strategy.
        figures: any figures (price, Greeks, in any one convention) per unit of each leg's
            instrument position, the legs along the last axis: ``figures[..., i]`` is leg i's
            (e.g. ``np.stack([g.delta, g.vega])`` of a :class:`~engine.greeks.Greeks` priced
            one row per leg).
        quantity: units of the strategy, signed.

    Returns:
        ``quantity * Σᵢ ratioᵢ figures[..., i]``: the figures without their last axis, in the
        units given.

    Raises:
        ValueError: the last axis of ``figures`` is not one per leg.
    """
    f = np.asarray(figures, dtype=np.float64)
    ratios = np.array([leg.ratio for leg in strategy.legs])
    if f.ndim == 0 or f.shape[-1] != ratios.size:
        raise ValueError(f"figures must have {ratios.size} legs on the last axis, got {f.shape}")
    return np.asarray(quantity * (f @ ratios), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class PayoffDiagram:
    """P&L of one unit of a strategy at its first expiry, over a grid of underlying prices.

    Attributes:
        expiry_ns: the earliest expiry among the legs, int UNIX ns.
        S: the grid: the underlying's (index's) price then, USD, ascending.
        leg_pnl: USD P&L of each leg's ratio of contracts, shape (len(S), legs).
        pnl: USD P&L of the strategy (sum of ``leg_pnl``).
        breakevens: the prices where ``pnl`` crosses or touches 0, interpolated linearly between
            grid points (exact where no strike lies between them), ascending.
        max_profit: the most ``pnl`` on the grid; ``inf`` when unbounded (rising as S -> ∞).
        max_loss: the most loss (minus the least ``pnl``) on the grid, positive for a loss;
            ``inf`` when unbounded (falling as S -> ∞).
        pnl_now: USD P&L of the strategy at the valuation time ``now_ns`` over the same grid
            (None when no time was given).
    """

    expiry_ns: int
    S: FloatArray
    leg_pnl: FloatArray
    pnl: FloatArray
    breakevens: FloatArray
    max_profit: float
    max_loss: float
    pnl_now: FloatArray | None = None


def _per_leg(name: str, values: npt.ArrayLike, n: int) -> FloatArray:
    a = np.asarray(values, dtype=np.float64)
    if a.shape != (n,):
        raise ValueError(f"{name} must give one value per leg ({n}), got shape {a.shape}")
    return a


def payoff_diagram(
    strategy: Strategy,
    S: npt.ArrayLike,
    entry_prices: npt.ArrayLike,
    vols: npt.ArrayLike | None = None,
    now_ns: int | None = None,
) -> PayoffDiagram:
    """P&L at the earliest expiry of ``strategy`` for each underlying price in ``S`` (and, with
    ``now_ns``, at that time).

    Legs expiring then pay their settlement value (:func:`~engine.risk.settlement.settlement_pnl`:
    coin-settled options max(S - K, 0) / S coin, i.e. max(S - K, 0) USD, linear options
    max(S - K, 0)); futures, perpetuals and spot are valued at S; options expiring later at
    their Black-76 value (:func:`engine.greeks.black76`) on a forward of S, r = 0, with the
    leg's vol and the years between the two expiries (ACT/365). The P&L is against the entry
    prices, each in its leg's price currency; a coin premium is valued at S, as riskd values the
    cost of coin-settled options (docs/units.md), so a coin-settled strategy's USD P&L is its
    coin P&L x S: the breakevens are those of the coin P&L.

    Unbounded is judged from the slope of the P&L as S -> ∞, exactly: calls count 1 per
    contract, puts 0, coin premiums -entry, linear futures and spot 1, inverse futures
    1 / entry per USD of notional. (As S -> 0 every USD P&L is bounded; let the grid start near
    0 and cover the strikes for the grid's extremes to be the strategy's.)

    Args:
        strategy: the strategy (ratios per unit of it).
        S: the grid, USD, ascending, finite, > 0, at least 2 prices.
        entry_prices: per leg, in its price currency (coin per coin-settled option, USD per coin
            for futures), finite; > 0 for futures, perpetuals and spot.
        vols: per leg, decimal vol; needed (finite, > 0) for options expiring after the first
            expiry (with ``now_ns``: for every option not expired then), ignored for the
            others.
        now_ns: a valuation time, int UNIX ns: ``pnl_now`` is the P&L then, every option at its
            Black-76 value on a forward of S, r = 0, with its vol and the years from ``now_ns``
            to its expiry (its intrinsic value once expired), the other legs at S.

    Raises:
        ValueError: a bad grid, no leg with an expiry, or an entry price or vol out of its
            domain (names the leg).
    """
    grid = np.asarray(S, dtype=np.float64)
    ok = grid.ndim == 1 and grid.size >= 2 and bool(np.all(np.isfinite(grid) & (grid > 0.0)))
    if not (ok and np.all(np.diff(grid) > 0.0)):
        raise ValueError("S must be an ascending grid of at least 2 finite prices > 0")
    insts = [leg.instrument for leg in strategy.legs]
    n = len(insts)
    entry = _per_leg("entry_prices", entry_prices, n)
    expiries = [i.expiry_ns for i in insts if i.expiry_ns is not None]
    if not expiries:
        raise ValueError("payoff_diagram needs a leg that expires")
    t0 = min(expiries)
    opt = np.array([i.kind == Kind.OPTION for i in insts])
    inv = np.array([i.is_inverse for i in insts])
    call = np.array([bool(i.is_call) for i in insts])
    K = np.array([i.strike if i.strike is not None else math.nan for i in insts])
    weight = np.array([leg.ratio * leg.instrument.multiplier for leg in strategy.legs])
    for i, inst in enumerate(insts):
        if not (math.isfinite(entry[i]) and (entry[i] > 0.0 or (opt[i] and entry[i] >= 0.0))):
            raise ValueError(
                f"leg {i + 1} ({inst.name}): entry price out of its domain: {float(entry[i])!r}"
            )
    vol = _per_leg("vols", vols if vols is not None else np.full(n, math.nan), n)
    ends = np.array([inst.expiry_ns or 0 for inst in insts], dtype=np.int64)

    def valued_at(t_ns: int, why: str) -> FloatArray:
        """Each leg's USD P&L over the grid at ``t_ns``: options alive then at Black-76."""
        alive = opt & (ends > t_ns)
        no_vol = np.flatnonzero(alive & ~(np.isfinite(vol) & (vol > 0.0)))
        if no_vol.size:
            j = int(no_vol[0])
            raise ValueError(f"leg {j + 1} ({insts[j].name}) {why}: needs a vol > 0")
        usd = intrinsic(grid[:, None], K, call)
        if alive.any():
            T = year_fraction(t_ns, ends[alive])
            usd[:, alive] = black76(call[alive], grid[:, None], K[alive], T, 0.0, vol[alive]).price
        return settlement_pnl(
            grid[:, None], opt, inv, call, K, weight, entry, option_value_usd=usd
        ).pnl_usd

    leg_pnl = valued_at(t0, "expires later")
    pnl = leg_pnl.sum(axis=1)
    pnl_now = None if now_ns is None else valued_at(now_ns, "is alive now").sum(axis=1)
    sign = np.sign(pnl)
    at = np.flatnonzero(sign[:-1] * sign[1:] < 0.0)
    crossings = grid[at] - pnl[at] * (grid[at + 1] - grid[at]) / (pnl[at + 1] - pnl[at])
    inv_future = inv & ~opt
    # d(P&L)/dS per unit of weight as S -> ∞
    per_unit = np.where(
        opt, call - np.where(inv, entry, 0.0), 1.0 / np.where(inv_future, entry, 1.0)
    )
    slope = float(weight @ per_unit)
    tol = 1e-12 * float(np.abs(weight) @ np.abs(per_unit))
    return PayoffDiagram(
        expiry_ns=t0,
        S=grid,
        leg_pnl=leg_pnl,
        pnl=pnl,
        breakevens=np.sort(np.concatenate((grid[pnl == 0.0], crossings))),
        max_profit=math.inf if slope > tol else float(pnl.max()),
        max_loss=math.inf if slope < -tol else float(-pnl.min()),
        pnl_now=pnl_now,
    )


# ---------------------------------------------------------------- holdings in a portfolio


@dataclass(slots=True)
class StrategyHolding:
    """A book's holding of a strategy (docs/strategies.md): its legs are positions of the book
    like any other (without a cost of their own); the holding keeps the strategy's quantity and
    its net cost, in the legs' price currency (coin when every leg is coin-settled, else USD),
    summed over the fills of the strategy."""

    book: str
    text: str
    strategy: Strategy
    quantity: float = 0.0
    cost: float = 0.0
    has_cost: bool = True

    def add(self, quantity: float, price: float | None) -> None:
        """A fill of ``quantity`` units of the strategy at ``price`` per unit (None: unknown:
        the holding has no cost from then on)."""
        self.quantity += quantity
        if price is None:
            self.has_cost = False
        else:
            self.cost += quantity * price

    @property
    def coin(self) -> bool:
        """Whether its prices are in coin: every leg coin-settled."""
        return all(leg.instrument.is_inverse for leg in self.strategy.legs)


@dataclass(slots=True)
class StrategyBook:
    """Every book's strategy holdings, by canonical text form, and how a strategy held in the
    positions file or traded in a fill becomes positions of its legs.

    A strategy's fill (its text form as the instrument) is a fill of each leg, quantity x
    ratio, with no price of its own (the holding keeps the cost), and leg ``i``'s fill id is
    ``{id}/{i}``: the portfolio's own de-duplication then tells a redelivered strategy fill
    (its first leg's id is known) from a new one.
    """

    lookup: Lookup
    holdings: dict[tuple[str, str], StrategyHolding] = dataclasses.field(default_factory=dict)

    def holding(self, book: str, strategy: Strategy) -> StrategyHolding:
        """``book``'s holding of ``strategy`` (new: empty)."""
        text = format_strategy(strategy)
        h = self.holdings.get((book, text))
        if h is None:
            h = self.holdings[(book, text)] = StrategyHolding(book, text, strategy)
        return h

    def add_position(
        self, portfolio: Portfolio, book: str, text: str, quantity: float, avg: float | None
    ) -> None:
        """A start-of-day position of ``quantity`` units of the strategy ``text``.

        Raises:
            ValueError: ``text`` is not a strategy, or the portfolio refuses a leg.
        """
        strategy = parse_strategy(text, self.lookup)
        for leg in strategy.legs:
            portfolio.add_position(book, leg.instrument.name, quantity * leg.ratio)
        self.holding(book, strategy).add(quantity, avg)

    def apply_fill(self, portfolio: Portfolio, fill: Fill) -> None:
        """Apply a strategy's fill: its legs' fills to ``portfolio``, its quantity and cost to
        the holding; a redelivered fill (same id) changes nothing.

        Raises:
            ValueError: the instrument is not a strategy's text form, or a number is bad (the
                portfolio's checks); nothing is applied then.
        """
        fid = fill.fill_id
        if fid is not None and portfolio.seen_fill(f"{fid}/0"):
            portfolio.duplicate_fills += 1
            return
        strategy = parse_strategy(fill.instrument, self.lookup)
        legs = [
            msgspec.structs.replace(
                fill,
                instrument=leg.instrument.name,
                quantity=fill.quantity * leg.ratio,
                price=None,
                fill_id=None if fid is None else f"{fid}/{i}",
            )
            for i, leg in enumerate(strategy.legs)
        ]
        for leg_fill in legs:  # the first refuses a bad book or quantity: nothing is applied
            if not portfolio.apply_fill(leg_fill):  # a parsed leg is known: cannot happen
                raise AssertionError(leg_fill.instrument)
        self.holding(fill.book, strategy).add(fill.quantity, fill.price)

    def held(self) -> list[StrategyHolding]:
        """Copies of the holdings of a quantity other than 0: what the risk attribution splits
        the books by, off the event loop (docs/risk.md#attribution-by-strategy)."""
        return [dataclasses.replace(h) for h in self.holdings.values() if h.quantity != 0.0]

    def priced(self, portfolio: Portfolio) -> list[tuple[StrategyHolding, Priced, float]]:
        """Each holding, its legs priced now and its index's price: what its payload needs."""
        out = []
        for h in self.holdings.values():
            names = [leg.instrument.name for leg in h.strategy.legs]
            index = h.strategy.legs[0].instrument.index
            out.append((h, portfolio.priced(names), portfolio.index_price(index)))
        return out
