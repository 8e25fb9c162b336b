"""The US margin of a book in the daemon (docs/margin.md#us-margin-in-the-daemon): its US listed
options and futures, read from a :class:`engine.state.BookRisk` copy and the instruments'
facts, margined by the three US methods of the pure core:

- **Reg T / Cboe strategy-based** (:mod:`engine.risk.usmargin`) per class (SPX, XSP, SPY): the
  desk's strategies held (:class:`engine.risk.strategies.StrategyHolding`) each as one, then
  what is left of the book (and its SPY shares) paired as a broker pairs a flat book;
- **Cboe/OCC portfolio margin** (:mod:`engine.risk.tims`) over the same classes, each at its
  valuation range (broad-based indices -8 %/+6 %, ETFs +-15 %), the classes of a group (SPX,
  XSP and SPY by default) offsetting each other at ``pm_group_offset``;
- **CME SPAN** (:mod:`engine.risk.span`) of the E-mini S&P 500 futures and options, one
  combined commodity, each contract's risk array recomputed at its own vol.

A class's kind comes from the instrument: a Cboe index option (SPX, SPXW, XSP) is a broad-based
index's, an OPRA option or share (SPY) an equity's (ETF), a CME contract a future's. Options
are valued by the model at their own vol (the mark's): BSM on spot and Black-76 on the future,
American where the instrument is (SPY, quarterly E-mini options: :func:`engine.risk.span.
unit_value_delta`). Units: USD for whole positions.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import NonNegativeFloat, PositiveFloat
from engine.instruments import Instrument, Kind, parse_name
from engine.kernels import KIND_FUTURE, KIND_OPTION, KIND_SPOT
from engine.outputs import CmeSpan, RegTLine, UsMargin
from engine.readout import BookRisk
from engine.risk import span, tims, usmargin
from engine.risk.scenarios import ScenarioBook
from engine.risk.strategies import StrategyHolding
from engine.risk.usmargin import UnderlyingClass

__all__ = ["Listed", "UsMarginConfig", "margin_class", "us_margin"]

FloatArray = npt.NDArray[np.float64]

_CBOE_INDICES = ("SPX", "XSP")
"""Underlyings of Cboe's broad-based index options riskd knows."""


class UsMarginConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.us_margin]``: the US margin of books holding US listed options and futures
    (docs/config.md).

    Attributes:
        enabled: compute it (in the ``margin`` payload's ``us``).
        house_minimum_usd: a house minimum per naked short contract, USD (Reg T: none).
        pm_groups: Cboe portfolio-margin class groups (classes offsetting each other).
        pm_group_offset: the part of a class's gain that offsets another's loss in a group.
        es_price_scan: the E-mini's SPAN price scan range, relative to each contract's
            price (0.05: 5 %, about CME's ES range in 2025).
        es_vol_scan: its vol scan range, relative to each option's vol (0.25).
        es_intra_spread_charge_usd: the charge per intra-commodity (calendar) spread, USD.
        es_short_option_minimum_usd: the least requirement per short E-mini option, USD.
    """

    enabled: bool = True
    house_minimum_usd: NonNegativeFloat = 0.0
    pm_groups: list[list[str]] = msgspec.field(default_factory=lambda: [["SPX", "XSP", "SPY"]])
    pm_group_offset: NonNegativeFloat = 0.9
    es_price_scan: PositiveFloat = 0.05
    es_vol_scan: NonNegativeFloat = 0.25
    es_intra_spread_charge_usd: NonNegativeFloat = 300.0
    es_short_option_minimum_usd: NonNegativeFloat = 100.0

    def __post_init__(self) -> None:
        if self.pm_group_offset > 1.0:
            raise ValueError(f"pm_group_offset must be in [0, 1], got {self.pm_group_offset}")
        if self.es_price_scan * 2.0 >= 1.0:
            raise ValueError("es_price_scan must be below 0.5 (its extreme moves stay > 0)")


def margin_class(inst: Instrument) -> UnderlyingClass | None:
    """What the US margin rules take ``inst`` for: a future's (CME), a broad-based index's
    (Cboe's SPX, SPXW, XSP), an equity's (OPRA: SPY, its options and shares); None: not a US
    listed instrument."""
    if inst.venue == "cme":
        return UnderlyingClass.FUTURE
    if inst.venue == "cboe" and inst.underlying in _CBOE_INDICES:
        return UnderlyingClass.BROAD_INDEX
    if inst.venue == "opra":
        return UnderlyingClass.EQUITY
    return None


class Listed:
    """Which rows of a portfolio's instrument list (a :class:`BookRisk`'s ``defs``) are US
    listed (:func:`margin_class`), each row looked up once: books copied from one portfolio
    share one."""

    def __init__(self) -> None:
        self._defs: list[Instrument] | None = None
        self._flags = np.zeros(0, dtype=np.int8)  # -1: not looked up yet

    def of(self, br: BookRisk) -> npt.NDArray[np.bool_]:
        """Per position of ``br``: whether its instrument is US listed (a position of no
        known instrument is not)."""
        if self._defs is not br.defs:
            self._defs, self._flags = br.defs, np.zeros(0, dtype=np.int8)
        if self._flags.size < len(br.defs):
            grown = np.full(len(br.defs), -1, dtype=np.int8)
            grown[: self._flags.size] = self._flags
            self._flags = grown
        rows = br.rows[br.rows >= 0]
        for r in np.unique(rows[self._flags[rows] < 0]).tolist():
            self._flags[r] = margin_class(br.defs[r]) is not None
        out = np.zeros(br.rows.size, dtype=np.bool_)
        out[br.rows >= 0] = self._flags[rows] == 1
        return out


@dataclass(frozen=True, slots=True)
class _Rows:
    """The book's US positions: each row's instrument, class, contracts, and model value."""

    defs: list[Instrument]
    kinds: list[UnderlyingClass | None]
    contracts: FloatArray
    value: FloatArray  # USD per unit of the underlying (options; else 0)


def _rows(br: BookRisk, ok: npt.NDArray[np.bool_]) -> _Rows:
    """The rows; those the rules cannot value (``ok`` False) of no class."""
    defs = [br.defs[i] for i in br.rows.tolist()]
    pos = br.positions
    mult = np.array([d.multiplier for d in defs], dtype=np.float64)
    value, _ = span.unit_value_delta(pos)
    return _Rows(
        defs=defs,
        kinds=[
            margin_class(d) if good else None for d, good in zip(defs, ok.tolist(), strict=True)
        ],
        contracts=pos.weight / np.where(mult > 0.0, mult, 1.0),
        value=np.where(pos.kind == KIND_OPTION, value, 0.0),
    )


def _of_class(rows: _Rows, i: int, cls: str) -> bool:
    """Row ``i`` is of the Cboe or OPRA class ``cls`` (E-mini contracts, also on SPX, are
    SPAN's)."""
    kind = rows.kinds[i]
    return kind is not None and kind != UnderlyingClass.FUTURE and rows.defs[i].underlying == cls


def _option_leg(inst: Instrument, contracts: float, value: float) -> usmargin.OptionLeg:
    strike, expiry_ns = inst.strike or math.nan, inst.expiry_ns or 0  # an option has both
    return usmargin.OptionLeg(contracts, bool(inst.is_call), strike, expiry_ns,
                              inst.multiplier, max(value, 0.0))  # fmt: skip


def _line(
    cls: str, line: usmargin.MarginLine, names: Sequence[str], strategy: str | None
) -> RegTLine:
    return RegTLine(
        underlying=cls,
        rule=str(line.rule),
        strategy=strategy,
        instruments=[names[i] for i in line.legs],
        units=line.units,
        shares=line.shares,
        requirement_usd=line.requirement_usd,
        maintenance_usd=line.maintenance_usd,
        deposit_usd=line.deposit_usd,
    )


def _reg_t(
    br: BookRisk,
    rows: _Rows,
    cls: str,
    und: usmargin.Underlying,
    holdings: Sequence[StrategyHolding],
    params: usmargin.RegTParams,
    now_ns: int,
) -> list[RegTLine]:
    """Strategy-based lines of one class: its strategies held, then the flat rest."""
    at = {d.name: i for i, d in enumerate(rows.defs) if _of_class(rows, i, cls)}
    left = {i: float(rows.contracts[i]) for i in at.values()}
    lines: list[RegTLine] = []
    for h in holdings:
        names = [leg.instrument.name for leg in h.strategy.legs]
        if h.book != br.book or not all(n in at for n in names):
            continue
        prices = [float(rows.value[at[n]]) for n in names]
        m = usmargin.strategy_margin(h.strategy, h.quantity, prices, und, now_ns, params)
        lines += [_line(cls, x, names, h.text) for x in m.lines]
        for leg in h.strategy.legs:  # position quantity: contracts, or shares x 1
            left[at[leg.instrument.name]] -= h.quantity * leg.ratio
    opts = [i for i in left if rows.defs[i].kind == Kind.OPTION and abs(left[i]) > 1e-9]
    legs = [_option_leg(rows.defs[i], left[i], float(rows.value[i])) for i in opts]
    spot = [i for i in left if rows.defs[i].kind == Kind.SPOT]
    shares = math.fsum(left[i] * rows.defs[i].multiplier for i in spot)
    if legs or abs(shares) > 1e-9:
        m = usmargin.position_margin(legs, und, now_ns, shares, params)
        lines += [_line(cls, x, [rows.defs[i].name for i in opts], None) for x in m.lines]
    return lines


def _subset(br: BookRisk, idx: list[int], und: list[int]) -> ScenarioBook:
    """Rows ``idx`` of the book's positions, their ``und`` set to ``und``."""
    at = np.array(idx, dtype=np.int64)
    sub = ScenarioBook._make(np.ascontiguousarray(a[at]) for a in br.positions)
    return sub._replace(und=np.array(und, dtype=np.int64))


def _portfolio(
    br: BookRisk, rows: _Rows, classes: list[str], cfg: UsMarginConfig
) -> tuple[tims.PortfolioMargin, list[list[str]]]:
    """Cboe portfolio margin of the book's classes (and their groups, by name)."""
    idx = [i for i, d in enumerate(rows.defs) if _of_class(rows, i, d.underlying)]
    idx = [i for i in idx if rows.defs[i].underlying in classes]
    book = _subset(br, idx, [classes.index(rows.defs[i].underlying) for i in idx])
    kinds = [_class_kind(rows, c) for c in classes]
    params = [tims.BROAD_INDEX_PM if k == UnderlyingClass.BROAD_INDEX else tims.EQUITY_PM
              for k in kinds]  # fmt: skip
    groups = [[c for c in g if c in classes] for g in cfg.pm_groups]
    groups = [g for g in groups if g]
    # a group's classes must share their points: broad-based and ETF classes both have five
    pm = tims.portfolio_margin(
        book, params, [[classes.index(c) for c in g] for g in groups], cfg.pm_group_offset
    )
    return pm, [[classes[c] for c in g] for g in pm.groups]


def _class_kind(rows: _Rows, cls: str) -> UnderlyingClass:
    """The kind of class ``cls`` (its Cboe or OPRA rows')."""
    return next(k for i, k in enumerate(rows.kinds) if k and _of_class(rows, i, cls))


def _future_expiry_ns(inst: Instrument) -> int:
    """The expiry of the E-mini future ``inst`` is (or is an option on): its SPAN tier."""
    if inst.underlying_future is not None:
        future = parse_name(inst.underlying_future)
        if future is not None and future.expiry_ns is not None:
            return future.expiry_ns
    return inst.expiry_ns or 0


def _cme_span(br: BookRisk, rows: _Rows, idx: list[int], cfg: UsMarginConfig) -> CmeSpan:
    """CME SPAN of the E-mini rows ``idx`` (each valued), one combined commodity."""
    book = _subset(br, idx, [0] * len(idx))
    book = book._replace(weight=np.array([rows.defs[i].multiplier for i in idx]))
    expiries = [_future_expiry_ns(rows.defs[i]) for i in idx]
    tiers = [sorted(set(expiries)).index(e) for e in expiries]
    arrays = span.risk_arrays(
        book,
        cfg.es_price_scan * book.X,
        cfg.es_vol_scan,
        tiers,
        [rows.defs[i].multiplier for i in idx],  # one future: 50 units of the index
    )
    req = span.span_requirement(
        arrays,
        rows.contracts[idx],
        span.CmeSpanParams(
            intra_spread_charge_usd=cfg.es_intra_spread_charge_usd,
            short_option_minimum_usd=cfg.es_short_option_minimum_usd,
        ),
    )
    return CmeSpan(
        instruments=[rows.defs[i].name for i in idx],
        scenario_losses_usd=req.scenario_losses.tolist(),
        scan_risk_usd=req.scan_risk,
        spreads=req.spreads,
        intra_spread_charge_usd=req.intra_spread_charge,
        short_option_minimum_usd=req.short_option_minimum,
        risk_requirement_usd=req.risk_requirement,
        net_option_value_usd=req.net_option_value,
        total_usd=req.total,
    )


def _valued(br: BookRisk) -> npt.NDArray[np.bool_]:
    """Rows the rules can value: a price, and options a vol and a time to expiry."""
    p = br.positions
    priced = np.isfinite(p.X) & (p.X > 0.0)
    option = p.kind == KIND_OPTION
    vol_ok = np.isfinite(p.sigma) & (p.sigma > 0.0) & np.isfinite(p.T) & (p.T > 0.0)
    known = np.isin(p.kind, [KIND_OPTION, KIND_FUTURE, KIND_SPOT])
    return np.asarray(priced & known & (~option | vol_ok), dtype=np.bool_)


def _known_rows(br: BookRisk) -> BookRisk:
    """The book without positions of no known instrument (row -1: a what-if's trades)."""
    known = br.rows >= 0
    if known.all():
        return br
    positions = ScenarioBook._make(np.ascontiguousarray(a[known]) for a in br.positions)
    return dataclasses.replace(br, positions=positions, rows=br.rows[known])


def us_margin(
    br: BookRisk,
    holdings: Sequence[StrategyHolding],
    cfg: UsMarginConfig,
    now_ns: int,
    seen: Listed | None = None,
) -> UsMargin | None:
    """The US margin of one book (module docstring); None when it holds no US listed
    instrument.

    Args:
        br: the book, copied at the valuation time (``prices``: each underlying's index).
        holdings: the desk's strategy holdings (any book's; the book's own are used).
        cfg: ``[risk.us_margin]``.
        now_ns: the valuation time, int UNIX ns (the nine-month rule of long options).
        seen: the US listing of instruments looked up for other books (:class:`Listed`).
    """
    br = _known_rows(br)
    ok = _valued(br)
    us = np.flatnonzero((seen if seen is not None else Listed()).of(br)).tolist()
    if not us:
        return None
    rows = _rows(br, ok)
    excluded = [rows.defs[i].name for i in us if not ok[i]]
    held = [i for i in us if ok[i] and rows.contracts[i] != 0.0]
    price = dict(zip(br.underlyings, br.prices.tolist(), strict=True))
    classes = sorted(
        {rows.defs[i].underlying for i in held if rows.kinds[i] != UnderlyingClass.FUTURE}
    )
    classes = [c for c in classes if price.get(c, math.nan) > 0.0]
    params = usmargin.RegTParams(minimum_per_contract_usd=cfg.house_minimum_usd)
    lines: list[RegTLine] = []
    for c in classes:
        und = usmargin.Underlying(price[c], _class_kind(rows, c))
        lines += _reg_t(br, rows, c, und, holdings, params, now_ns)
    pm, groups = _portfolio(br, rows, classes, cfg) if classes else (None, [])
    cme = [i for i in held if rows.kinds[i] == UnderlyingClass.FUTURE]

    def per_class(field: str) -> list[float]:
        return [math.fsum(getattr(x, field) for x in lines if x.underlying == c) for c in classes]

    return UsMargin(
        classes=classes,
        class_kinds=[str(_class_kind(rows, c)) for c in classes],
        reg_t_requirement_usd=per_class("requirement_usd"),
        reg_t_maintenance_usd=per_class("maintenance_usd"),
        reg_t_deposit_usd=per_class("deposit_usd"),
        reg_t_lines=lines,
        pm_worst_loss_usd=[] if pm is None else pm.worst_loss.tolist(),
        pm_minimum_usd=[] if pm is None else pm.minimum.tolist(),
        pm_class_usd=[] if pm is None else pm.class_requirement.tolist(),
        pm_groups=groups,
        pm_group_usd=[] if pm is None else pm.group_requirement.tolist(),
        span=_cme_span(br, rows, cme, cfg) if cme else None,
        excluded=excluded,
    )
