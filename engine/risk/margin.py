"""Margin of a book in the pure core: Deribit's portfolio margin (its risk matrix), a SPAN-style
16-scenario risk array, Deribit's standard margin as the no-offset baseline, what cross-margining
saves, and margin utilisation. Positions are revalued by :func:`engine.risk.scenarios.scenario_pnl`,
each underlying on its own (no offsets between underlyings). Conventions, sources and what
approximates the exchanges' methods: docs/margin.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Final, TypeVar

import numpy as np
import numpy.typing as npt

from engine.greeks import black76, bsm
from engine.kernels import KIND_FUTURE, KIND_OPTION, KIND_PERPETUAL, KIND_SPOT
from engine.risk.scenarios import (
    Revaluation,
    ScenarioBook,
    ScenarioPnL,
    book_scenario_pnl,
    scenario_pnl,
)
from engine.risk.span import SPAN_PRICE_STEPS, SPAN_VOL_STEPS, scenario_table
from engine.units import DAYS_PER_YEAR

__all__ = [
    "DEFAULT_SPAN",
    "DERIBIT_PM_BTC",
    "DERIBIT_PM_ETH",
    "DERIBIT_STANDARD_BTC",
    "DERIBIT_STANDARD_ETH",
    "SPAN_PRICE_STEPS",
    "SPAN_VOL_STEPS",
    "DeribitPMParams",
    "DeribitStandardParams",
    "Margin",
    "PortfolioMargin",
    "RiskMatrix",
    "SpanMargin",
    "SpanParams",
    "Utilisation",
    "deribit_portfolio_margin",
    "deribit_standard_margin",
    "margin_savings",
    "margin_utilisation",
    "pnl_by_underlying",
    "shared_scenario_pnl",
    "span_margin",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
P = TypeVar("P")

VEGA_DAYS = 30.0
"""Deribit's vol shock is scaled by (30 / days to expiry) ** power, the power switching at 30."""


def _check(params: object, nonnegative: tuple[str, ...]) -> None:
    """Every named field of ``params`` is finite and >= 0."""
    for name in nonnegative:
        value = getattr(params, name)
        if not (math.isfinite(value) and value >= 0.0):
            raise ValueError(f"{type(params).__name__}.{name} must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class DeribitPMParams:
    """Deribit's portfolio-margin model for one underlying: the ``model_params`` of Deribit's
    ``private/pme/simulate`` (their names in brackets). Defaults: BTC's, from Deribit's API
    reference example (17 June 2024); Deribit changes them without notice.

    Attributes:
        price_range: largest price move of the standard table, relative (``price_range``, 0.16).
        buckets: price moves on each side of 0 (``buckets_count``, 4: 9 moves, -16 % .. +16 %).
        vol_range_up: relative vol rise at 30 days to expiry (``volatility_range_up``, 0.5).
        vol_range_down: relative vol fall at 30 days (``volatility_range_down``, 0.25).
        min_vol_for_shock_up: least vol after the rise, a decimal (``min_volatility_for_shock_up``,
            0.5).
        short_term_vega_power: p of (30 / days) ** p below 30 days (``short_term_vega_power``,
            0.3).
        long_term_vega_power: p from 30 days on (``long_term_vega_power``, 0.13).
        min_days: floor of the days to expiry in (30 / days), ours (1).
        extended_moves: price moves of the extended table, each beyond ``price_range``
            (-66 %, -33 %, +50 %, +100 %, +200 % .. +500 %).
        extended_table_factor: weight of the extended table (``extended_table_factor``, 1).
        extended_dampener_usd: extended loss forgiven, USD, per price range beyond the first
            (``extended_dampener``, 100 000).
        annualised_move_risk: yearly basis move of the roll shock (``annualised_move_risk``,
            0.075).
        min_annualised_move: least roll-shock move, relative (``min_annualised_move``, 0.01).
        delta_shock_threshold_usd: net delta, USD, beyond which the delta shock grows
            (``delta_total_liq_shock_threshold``, 2e7).
        delta_shock_rate: delta-shock fraction per coin of delta beyond it (``m_inc``, 5e-5).
        max_delta_shock: cap of that fraction (``max_delta_shock``, 0.1).
        mm_factor: maintenance margin over initial (``mm_factor``, 0.8).
    """

    price_range: float = 0.16
    buckets: int = 4
    vol_range_up: float = 0.5
    vol_range_down: float = 0.25
    min_vol_for_shock_up: float = 0.5
    short_term_vega_power: float = 0.3
    long_term_vega_power: float = 0.13
    min_days: float = 1.0
    extended_moves: tuple[float, ...] = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)
    extended_table_factor: float = 1.0
    extended_dampener_usd: float = 100_000.0
    annualised_move_risk: float = 0.075
    min_annualised_move: float = 0.01
    delta_shock_threshold_usd: float = 2e7
    delta_shock_rate: float = 5e-5
    max_delta_shock: float = 0.1
    mm_factor: float = 0.8

    def __post_init__(self) -> None:
        _check(self, ("vol_range_up", "vol_range_down", "min_vol_for_shock_up",
                      "short_term_vega_power", "long_term_vega_power", "extended_table_factor",
                      "extended_dampener_usd", "annualised_move_risk", "min_annualised_move",
                      "delta_shock_threshold_usd", "delta_shock_rate", "max_delta_shock",
                      "mm_factor"))  # fmt: skip
        if not 0.0 < self.price_range < 1.0:
            raise ValueError(f"price_range must be in (0, 1), got {self.price_range!r}")
        if self.buckets < 1 or not self.min_days > 0.0:
            raise ValueError(f"buckets and min_days must be > 0, got {self.buckets, self.min_days}")
        if not all(m > -1.0 and abs(m) > self.price_range for m in self.extended_moves):
            raise ValueError(
                f"extended_moves must be > -1 and beyond price_range, got {self.extended_moves}"
            )


DERIBIT_PM_BTC = DeribitPMParams()
"""BTC, as in Deribit's ``private/pme/simulate`` reference example (2024-06-17)."""
DERIBIT_PM_ETH = DeribitPMParams(
    price_range=0.18,
    vol_range_up=0.4,
    extended_dampener_usd=200_000.0,
    annualised_move_risk=0.05,
    min_annualised_move=0.005,
    delta_shock_rate=4e-6,
)
"""ETH, as in a recorded ``private/pme/simulate`` response (2026-02-15)."""


@dataclass(frozen=True, slots=True)
class SpanParams:
    """SPAN scenario parameters of one underlying (illustrative defaults: CME publishes each
    product's in its SPAN risk parameter file).

    Attributes:
        price_scan: price scan range, relative to the price (0.1).
        vol_scan: vol scan range, relative to each vol (0.25: vol x 1.25 and x 0.75).
        extreme_multiple: price move of scenarios 15 and 16, in price scan ranges (2).
        extreme_cover: fraction of their loss that counts (0.35).
        short_option_minimum: least requirement per unit of the underlying sold in options, as a
            fraction of its price (0.01; CME charges an amount per short contract).
    """

    price_scan: float = 0.1
    vol_scan: float = 0.25
    extreme_multiple: float = 2.0
    extreme_cover: float = 0.35
    short_option_minimum: float = 0.01

    def __post_init__(self) -> None:
        _check(self, ("price_scan", "vol_scan", "extreme_multiple", "extreme_cover",
                      "short_option_minimum"))  # fmt: skip
        if not self.price_scan * max(self.extreme_multiple, 1.0) < 1.0:
            raise ValueError(
                f"price_scan x extreme_multiple must be < 1, got {self.price_scan!r} x "
                f"{self.extreme_multiple!r}"
            )


DEFAULT_SPAN = SpanParams()
"""The illustrative defaults."""


@dataclass(frozen=True, slots=True)
class DeribitStandardParams:
    """Deribit's standard margin (each position alone) for one underlying. Defaults: BTC's.

    Attributes:
        option_im: short option initial margin before the out-of-the-money amount, per unit of
            the forward (0.15).
        option_im_floor: its floor (0.1).
        option_mm: short option maintenance margin, per unit of the forward (0.075).
        future_im: futures initial margin, per unit of notional (0.02).
        future_mm: futures maintenance margin (0.01).
        future_increase: added to both per coin of position (BTC 0.005 %: 5e-5).
    """

    option_im: float = 0.15
    option_im_floor: float = 0.1
    option_mm: float = 0.075
    future_im: float = 0.02
    future_mm: float = 0.01
    future_increase: float = 5e-5

    def __post_init__(self) -> None:
        _check(self, tuple(f.name for f in fields(self)))


DERIBIT_STANDARD_BTC = DeribitStandardParams()
"""BTC (Deribit, since 11 January 2022)."""
DERIBIT_STANDARD_ETH = DeribitStandardParams(future_increase=4e-6)
"""ETH: the futures increase is 0.0004 % per ETH."""


@dataclass(frozen=True, slots=True)
class Margin:
    """Initial and maintenance margin per underlying, in USD and in coin of the underlying."""

    initial_usd: FloatArray
    maintenance_usd: FloatArray
    initial_coin: FloatArray
    maintenance_coin: FloatArray


@dataclass(frozen=True, slots=True)
class RiskMatrix:
    """Deribit's risk matrix in one currency (USD, or coin of each underlying).

    Attributes:
        standard: P&L ``[u, i, j]`` of underlying ``u``'s positions at price move ``i`` and vol
            scenario ``j`` (0 up, 1 unchanged, 2 down).
        extended: P&L ``[u, k]`` at extended move ``k`` (vol up), scaled to the fraction that
            counts (before the dampener).
        dampener: loss ``[u, k]`` forgiven of ``extended``; a scenario counts
            min(extended + dampener, 0).
        worst_case: the largest loss counted, >= 0.
        delta_shock: charge for a net delta beyond Deribit's liquidity threshold.
        roll_shock: charge for each expiry's net delta against a move of its basis.
    """

    standard: FloatArray
    extended: FloatArray
    dampener: FloatArray
    worst_case: FloatArray
    delta_shock: FloatArray
    roll_shock: FloatArray


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """Deribit's portfolio margin of a book, per underlying: relative price moves of the standard
    (``price_moves[u, i]``) and extended (``extended_moves[u, k]``) tables; the risk matrix in
    USD and in coin; the margin (initial = worst case + delta shock + roll shock, maintenance =
    ``mm_factor`` x initial); rows of the book that cannot be valued (left out)."""

    price_moves: FloatArray
    extended_moves: FloatArray
    usd: RiskMatrix
    coin: RiskMatrix
    margin: Margin
    excluded: IntArray


@dataclass(frozen=True, slots=True)
class SpanMargin:
    """SPAN-style risk array of a book, per underlying, in USD: scenario ``s``'s relative price
    move ``price_moves[u, s]``, relative vol move ``vol_moves[u, s]``, weight of its loss
    ``weights[u, s]`` and P&L ``pnl[u, s]``; scan risk (the largest weighted loss, >= 0), short
    option minimum, requirement (the larger of the two); rows that cannot be valued."""

    price_moves: FloatArray
    vol_moves: FloatArray
    weights: FloatArray
    pnl: FloatArray
    scan_risk: FloatArray
    short_option_minimum: FloatArray
    requirement: FloatArray
    excluded: IntArray


@dataclass(frozen=True, slots=True)
class Utilisation:
    """Initial and maintenance margin as fractions of equity."""

    initial: FloatArray
    maintenance: FloatArray


def _per_underlying(params: P | Sequence[P], n: int) -> list[P]:
    """One parameter set per underlying: ``params`` for all, or a sequence of ``n``."""
    ps = list(params) if isinstance(params, Sequence) else [params] * n
    if len(ps) != n:
        raise ValueError(f"params must be one set or {n} (one per underlying), got {len(ps)}")
    return ps


def _col(ps: Sequence[object], name: str) -> FloatArray:
    """Field ``name`` of each underlying's parameter set."""
    return np.array([getattr(p, name) for p in ps], dtype=np.float64)


def _sums(keys: IntArray, values: FloatArray, n: int) -> FloatArray:
    """Sum of ``values`` by key ``0 .. n - 1``."""
    return np.asarray(np.bincount(keys, values, n), dtype=np.float64)


def _underlyings(book: ScenarioBook, n: int) -> None:
    if n < 1 or (book.und.size and not (book.und.min() >= 0 and book.und.max() < n)):
        raise ValueError(f"book.und must index the {n!r} underlyings")


def shared_scenario_pnl(
    book: ScenarioBook, ret: npt.ArrayLike, dvol: npt.ArrayLike, horizon_days: float
) -> ScenarioPnL:
    """:func:`~engine.risk.scenarios.scenario_pnl`; given as the ``revalue`` of
    :func:`pnl_by_underlying` (and of the margins that call it), each distinct instrument is
    revalued once per distinct pair of columns across every underlying: for books stacked as
    the underlyings of one (:func:`engine.risk.book_margin.margin_payloads`), where one
    instrument is held many times. A single book holds each instrument once: there the
    bookkeeping of finding what is shared costs more than it saves."""
    return scenario_pnl(book, ret, dvol, horizon_days)


def pnl_by_underlying(
    book: ScenarioBook,
    n: int,
    ret: FloatArray,
    dvol: FloatArray,
    horizon_days: float,
    revalue: Revaluation = scenario_pnl,
) -> tuple[FloatArray, IntArray]:
    """P&L (underlyings, scenarios) of each underlying's positions alone, position ``i`` moved
    by ``ret[:, i]`` and ``dvol[:, i]`` (a column per position, so that its vol shock may be its
    own), revalued by ``revalue``; and the rows left out.

    With :func:`shared_scenario_pnl` each distinct instrument is revalued once per distinct
    pair of columns, whatever the positions and underlyings that hold it
    (:func:`_shared_columns`, :func:`~engine.risk.scenarios.book_scenario_pnl`): many books
    stacked as underlyings of one cost one revaluation of each instrument."""
    if revalue is shared_scenario_pnl:
        ret, dvol = np.asarray(ret, dtype=np.float64), np.asarray(dvol, dtype=np.float64)
        column, first = _shared_columns(ret, dvol)
        shared = book_scenario_pnl(
            book._replace(und=column), ret[:, first], dvol[:, first], horizon_days, book.und, n
        )
        return shared.pnl, shared.excluded
    pnl = np.zeros((n, ret.shape[0]))
    excluded = [np.zeros(0, dtype=np.int64)]
    for u in range(n):
        rows = np.flatnonzero(book.und == u)
        sub = ScenarioBook._make(a[rows] for a in book)._replace(
            und=np.arange(rows.size, dtype=np.int64)
        )
        res = revalue(sub, ret[:, rows], dvol[:, rows], horizon_days)
        pnl[u] = res.pnl
        excluded.append(rows[res.excluded])
    return pnl, np.sort(np.concatenate(excluded))


def _shared_columns(ret: FloatArray, dvol: FloatArray) -> tuple[IntArray, IntArray]:
    """Which positions share their pair of columns: each position's pair among the distinct
    ones, and each distinct pair's first position. Found by two random projections of the
    columns, then checked element by element (on a collision every position keeps its own)."""
    n = ret.shape[1]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(_PROJECTION_SEED)
    a, b = rng.standard_normal((2, ret.shape[0])), rng.standard_normal((2, ret.shape[0]))
    fingerprint = _project(a, ret) + _project(b, dvol)  # (2, positions)
    _, first, column = np.unique(
        fingerprint[0] + 1j * fingerprint[1], return_index=True, return_inverse=True
    )
    column = column.reshape(-1).astype(np.int64)
    if np.array_equal(ret[:, first[column]], ret) and np.array_equal(dvol[:, first[column]], dvol):
        return column, first.astype(np.int64)
    own = np.arange(n, dtype=np.int64)
    return own, own


def _project(w: FloatArray, x: FloatArray) -> FloatArray:
    """``w @ x``, computed in ``x``'s own memory order (a transposed ``x`` is 10x slower
    the other way)."""
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        return np.asarray((x.T @ w.T).T, dtype=np.float64)
    return np.asarray(w @ x, dtype=np.float64)


_PROJECTION_SEED: Final = 20261207


def _exposure(book: ScenarioBook) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Per unit of weight: USD market value (options: model price; spot: its price; futures:
    0) and delta in units of the underlying (inverse futures: 1 / X per USD); and which rows
    could be priced (the others get 0)."""
    x = book.X
    inverse = book.inverse & (book.kind != KIND_SPOT)
    value = np.where(book.kind == KIND_SPOT, x, 0.0)
    delta = np.divide(1.0, x, out=np.zeros_like(x), where=inverse & (x > 0.0))
    delta[~inverse] = 1.0
    b = (book.kind == KIND_OPTION) & book.black
    s = (book.kind == KIND_OPTION) & ~book.black
    g = black76(book.is_call[b], x[b], book.strike[b], book.T[b], book.r[b], book.sigma[b])
    value[b], delta[b] = g.price, g.delta
    g = bsm(book.is_call[s], x[s], book.strike[s], book.T[s], book.r[s], book.q[s], book.sigma[s])
    value[s], delta[s] = g.price, g.delta
    ok = np.isfinite(value) & np.isfinite(delta) & (x > 0.0)
    return np.where(ok, value, 0.0), np.where(ok, delta, 0.0), ok


def _vol_moves(book: ScenarioBook, ps: Sequence[DeribitPMParams]) -> tuple[FloatArray, FloatArray]:
    """Deribit's relative vol move of each option, up and down (0 for other positions)."""

    def col(name: str) -> FloatArray:
        return _col(ps, name)[book.und]

    opt = book.kind == KIND_OPTION
    days = np.maximum(book.T * DAYS_PER_YEAR, col("min_days"))
    a = (VEGA_DAYS / days) ** np.where(
        days < VEGA_DAYS, col("short_term_vega_power"), col("long_term_vega_power")
    )
    sigma = np.where(opt & (book.sigma > 0.0), book.sigma, np.inf)
    up = np.maximum(col("vol_range_up") * a, col("min_vol_for_shock_up") / sigma - 1.0)
    down = np.maximum(-col("vol_range_down") * a, -1.0)
    keep = opt & np.isfinite(a)
    return np.where(keep, up, 0.0), np.where(keep, down, 0.0)


def _roll_shock(
    book: ScenarioBook, ps: Sequence[DeribitPMParams], d: FloatArray, d_usd: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Each underlying's roll shock in coin and USD from the positions' deltas ``d`` (coin)
    and ``d_usd``: an expiry's |net delta| x max(e^(annualised_move_risk T) - 1,
    min_annualised_move); perpetuals are one expiry of T = 0, spot none."""
    rolls = book.kind != KIND_SPOT
    t = np.where((book.kind == KIND_PERPETUAL) | ~(book.T > 0.0), 0.0, book.T)[rolls]
    keys, group = np.unique(np.stack([book.und[rolls], t]), axis=1, return_inverse=True)
    u = keys[0].astype(np.int64)
    move = np.maximum(
        np.expm1(_col(ps, "annualised_move_risk")[u] * keys[1]), _col(ps, "min_annualised_move")[u]
    )

    def by_expiry(x: FloatArray) -> FloatArray:
        return _sums(u, np.abs(np.bincount(group.ravel(), x[rolls])) * move, len(ps))

    return by_expiry(d), by_expiry(d_usd)


def _risk_matrix(
    pnl: FloatArray, n_std: int, scale: FloatArray, dampener: FloatArray, *shocks: FloatArray
) -> RiskMatrix:
    """The tables from the P&L (underlyings, scenarios), standard scenarios first; the worst
    case; ``shocks``: delta shock and roll shock."""
    standard = pnl[:, :n_std].reshape(pnl.shape[0], -1, 3)
    extended = scale * pnl[:, n_std:]
    counted = np.minimum(extended + dampener, 0.0).min(axis=1, initial=0.0)
    worst = 0.0 - np.minimum(standard.min(axis=(1, 2)), counted)
    return RiskMatrix(standard, extended, dampener, worst, *shocks)


def deribit_portfolio_margin(
    book: ScenarioBook,
    index: npt.ArrayLike,
    params: DeribitPMParams | Sequence[DeribitPMParams] = DERIBIT_PM_BTC,
    revalue: Revaluation = scenario_pnl,
) -> PortfolioMargin:
    """Deribit's portfolio margin (segregated: each underlying alone), by full revaluation.

    Per underlying, the standard table moves its prices (every position's own forward or spot)
    by 2 x ``buckets`` + 1 even steps over +-``price_range``, each with vol up, unchanged and
    down: an option expiring in ``days`` gets vol σ' = max(σ (1 + ``vol_range_up`` a),
    ``min_vol_for_shock_up``) up and σ (1 - ``vol_range_down`` a), at least 0, down, with
    a = (30 / max(days, ``min_days``)) ** power, the power short-term below 30 days. The
    extended table moves prices by ``extended_moves`` with vol up; a move m counts the fraction
    ``extended_table_factor`` x ``price_range`` / |m| of its P&L, and the dampener forgives
    (|m| / ``price_range`` - 1) x ``extended_dampener_usd`` of its loss. The worst case is the
    largest loss counted. The roll shock charges each expiry's net delta (options and futures;
    perpetuals one expiry of 0 years) |D| x max(e^(``annualised_move_risk`` T) - 1,
    ``min_annualised_move``); the delta shock charges the net delta D a fraction
    min(``delta_shock_rate`` x max(|D| - ``delta_shock_threshold_usd`` / index, 0),
    ``max_delta_shock``) of itself. Initial margin = worst case + delta shock + roll shock;
    maintenance = ``mm_factor`` x initial. Values are now (no time decay).

    Every figure comes in USD (the change of the positions' USD value) and in coin (the change
    of their value in coin, V'/X' - V/X a position; Deribit's currency for coin-settled books).
    In coin, an extended move m counts its P&L times (1 + m) / (1 + sign(m) ``price_range``)
    besides the fraction, and the dampener is in coin at that edge price of the index.

    Args:
        book: the positions; ``book.und`` indexes ``index``.
        index: each underlying's index price, USD (> 0): converts the USD parameters to coin.
        params: one parameter set for every underlying, or one per underlying.
        revalue: what revalues the positions (:func:`pnl_by_underlying`).

    Returns:
        The matrices and margins; positions that cannot be valued are left out and listed.

    Raises:
        ValueError: ``index`` is not a 1-D array of positive prices, ``book.und`` does not
            index it, or ``params`` are not one set or one per underlying.
    """
    px = np.asarray(index, dtype=np.float64)
    if px.ndim != 1 or not np.all(np.isfinite(px) & (px > 0.0)):
        raise ValueError(f"index must be a 1-D array of prices > 0, got {index!r}")
    n, und = px.size, book.und
    _underlyings(book, n)
    ps = _per_underlying(params, n)
    if len({(p.buckets, len(p.extended_moves)) for p in ps}) > 1:
        raise ValueError("params must share buckets and the number of extended_moves")
    rho = _col(ps, "price_range")[:, None]
    moves = rho * np.linspace(-1.0, 1.0, 2 * ps[0].buckets + 1)
    ext = np.array([p.extended_moves for p in ps], dtype=np.float64).reshape(n, -1)
    m = np.concatenate([np.repeat(moves, 3, axis=1), ext], axis=1)  # (underlyings, scenarios)
    n_std = 3 * moves.shape[1]
    up, down = _vol_moves(book, ps)
    dvol = np.stack([up, np.zeros_like(up), down])[[0, 1, 2] * moves.shape[1] + [0] * ext.shape[1]]
    ret = np.log1p(m)[und].T

    usd, excluded = pnl_by_underlying(book, n, ret, dvol, 0.0, revalue)
    value, delta, _ = _exposure(book)
    value[excluded] = delta[excluded] = 0.0
    w_coin = np.divide(book.weight, book.X, out=np.zeros_like(book.X), where=book.X > 0.0)
    coin, _ = pnl_by_underlying(book._replace(weight=w_coin), n, ret, dvol, 0.0, revalue)
    coin = (coin - m * _sums(und, w_coin * value, n)[:, None]) / (1.0 + m)

    d = book.weight * delta  # each position's delta, units of the underlying
    d_usd = d * book.X
    net, net_usd = np.abs(_sums(und, d, n)), np.abs(_sums(und, d_usd, n))
    beyond = np.maximum(net - _col(ps, "delta_shock_threshold_usd") / px, 0.0)
    shock = np.minimum(_col(ps, "delta_shock_rate") * beyond, _col(ps, "max_delta_shock"))
    roll_coin, roll_usd = _roll_shock(book, ps, d, d_usd)

    em = m[:, n_std:]
    edge = 1.0 + np.sign(em) * rho  # the standard table's edge, the side of each move
    scale = _col(ps, "extended_table_factor")[:, None] * rho / np.abs(em)
    damp = (np.abs(em) / rho - 1.0) * _col(ps, "extended_dampener_usd")[:, None]
    in_usd = _risk_matrix(usd, n_std, scale, damp, shock * net_usd, roll_usd)
    in_coin = _risk_matrix(coin, n_std, scale * (1.0 + em) / edge, damp / (edge * px[:, None]),
                           shock * net, roll_coin)  # fmt: skip
    mm = _col(ps, "mm_factor")
    im_usd = in_usd.worst_case + in_usd.delta_shock + in_usd.roll_shock
    im_coin = in_coin.worst_case + in_coin.delta_shock + in_coin.roll_shock
    return PortfolioMargin(
        price_moves=moves,
        extended_moves=ext,
        usd=in_usd,
        coin=in_coin,
        margin=Margin(im_usd, mm * im_usd, im_coin, mm * im_coin),
        excluded=excluded,
    )


def span_margin(
    book: ScenarioBook,
    n_underlyings: int,
    params: SpanParams | Sequence[SpanParams] = DEFAULT_SPAN,
    horizon_days: float = 1.0,
    revalue: Revaluation = scenario_pnl,
) -> SpanMargin:
    """SPAN-style scan risk of each underlying's positions, USD, by full revaluation.

    Scenarios 1-14 move the price by 0, ±1/3, ±2/3 and ±3/3 of ``price_scan`` (relative: X (1 +
    move)), each with vol up and down by ``vol_scan`` (relative), and count their whole loss;
    scenarios 15 and 16 move it by ±``extreme_multiple`` x ``price_scan``, vol unchanged, and
    count ``extreme_cover`` of theirs. Options are valued ``horizon_days`` later (SPAN's
    look-ahead, one day). Scan risk is the largest weighted loss; the short option minimum is
    ``short_option_minimum`` x price x units of the underlying sold in options; the requirement
    is the larger. No spread charges or credits, no premium (net option value) offset.

    Args:
        book: the positions (``book.und`` < ``n_underlyings``).
        n_underlyings: underlyings of the book.
        params: one parameter set for every underlying, or one per underlying.
        horizon_days: calendar days to the scenarios' date, >= 0.
        revalue: what revalues the positions (:func:`pnl_by_underlying`).

    Raises:
        ValueError: ``book.und`` does not index ``n_underlyings``, or ``params`` are not one
            set or one per underlying, or ``horizon_days`` < 0.
    """
    _underlyings(book, n_underlyings)
    ps = _per_underlying(params, n_underlyings)
    tables = [scenario_table(p.extreme_multiple, p.extreme_cover) for p in ps]
    price = _col(ps, "price_scan")[:, None] * np.array([t[0] for t in tables])
    vol = _col(ps, "vol_scan")[:, None] * np.array([t[1] for t in tables])
    weights = np.array([t[2] for t in tables])
    pnl, excluded = pnl_by_underlying(
        book, n_underlyings, np.log1p(price)[book.und].T, vol[book.und].T, horizon_days, revalue
    )
    scan_risk = 0.0 - np.minimum((weights * pnl).min(axis=1), 0.0)
    short = (book.kind == KIND_OPTION) & (book.weight < 0.0)
    short[excluded] = False
    sold = _sums(book.und[short], -book.weight[short] * book.X[short], n_underlyings)
    som = _col(ps, "short_option_minimum") * sold
    return SpanMargin(
        price_moves=price,
        vol_moves=vol,
        weights=weights,
        pnl=pnl,
        scan_risk=scan_risk,
        short_option_minimum=som,
        requirement=np.maximum(scan_risk, som),
        excluded=excluded,
    )


def deribit_standard_margin(
    book: ScenarioBook,
    n_underlyings: int,
    params: DeribitStandardParams | Sequence[DeribitStandardParams] = DERIBIT_STANDARD_BTC,
) -> Margin:
    """Deribit's standard margin: each position margined alone, summed per underlying.

    Per unit of a short option, in coin, with F the forward it is priced on (``book.X``), the
    mark price p = V / F and OTM its out-of-the-money amount (calls max(K - F, 0), puts
    max(F - K, 0)): maintenance max(``option_mm``, ``option_mm`` x p) + p; initial
    max(max(``option_im`` - OTM / F, ``option_im_floor``) + p, maintenance). Long options need
    none (their premium is paid). Futures and perpetuals of size s coin: initial s (``future_im``
    + s ``future_increase``), maintenance s (``future_mm`` + s ``future_increase``). Spot needs
    none. Deribit defines these in coin for coin-settled instruments; USD = coin x F (for linear
    options, Deribit's USDC margin is the same formula in USD). Positions that cannot be priced
    count 0.

    Args:
        book: the positions (``book.und`` < ``n_underlyings``).
        n_underlyings: underlyings of the book.
        params: one parameter set for every underlying, or one per underlying.

    Raises:
        ValueError: ``book.und`` does not index ``n_underlyings``, or ``params`` are not one
            set or one per underlying.
    """
    _underlyings(book, n_underlyings)
    ps = _per_underlying(params, n_underlyings)
    value, delta, ok = _exposure(book)
    und, w = book.und, book.weight
    f = np.where(book.X > 0.0, book.X, np.inf)

    def rate(name: str) -> FloatArray:
        return _col(ps, name)[und]

    p = value / f
    otm = np.maximum(np.where(book.is_call, book.strike - f, f - book.strike), 0.0) / f
    mm_opt = np.maximum(rate("option_mm"), rate("option_mm") * p) + p
    im_opt = np.maximum(np.maximum(rate("option_im") - otm, rate("option_im_floor")) + p, mm_opt)
    size = np.abs(w * delta)  # coin
    fut = ((book.kind == KIND_FUTURE) | (book.kind == KIND_PERPETUAL)) & ok
    short = (book.kind == KIND_OPTION) & (w < 0.0) & ok

    def coin(option: FloatArray, future: str) -> FloatArray:
        rates = rate(future) + size * rate("future_increase")
        return np.where(short, -w * option, np.where(fut, size * rates, 0.0))

    im, mm = coin(im_opt, "future_im"), coin(mm_opt, "future_mm")
    x = np.where(ok, book.X, 0.0)
    return Margin(
        initial_usd=_sums(und, im * x, n_underlyings),
        maintenance_usd=_sums(und, mm * x, n_underlyings),
        initial_coin=_sums(und, im, n_underlyings),
        maintenance_coin=_sums(und, mm, n_underlyings),
    )


def margin_savings(standard: Margin, portfolio: Margin) -> Margin:
    """What cross-margining saves: ``standard`` minus ``portfolio``, figure by figure."""
    return Margin(
        **{f.name: getattr(standard, f.name) - getattr(portfolio, f.name) for f in fields(Margin)}
    )


def margin_utilisation(
    initial: npt.ArrayLike, maintenance: npt.ArrayLike, equity: npt.ArrayLike
) -> Utilisation:
    """Initial and maintenance margin over equity, fractions (Deribit liquidates at a
    maintenance utilisation of 1 and takes no new risk beyond an initial one of 1).

    Args:
        initial: initial margin, in the currency of ``equity`` (USD, or coin).
        maintenance: maintenance margin, same currency.
        equity: the configured equity, > 0; the three broadcast together.

    Raises:
        ValueError: ``equity`` is not finite and > 0.
    """
    e = np.asarray(equity, dtype=np.float64)
    if not np.all(np.isfinite(e) & (e > 0.0)):
        raise ValueError(f"equity must be finite and > 0, got {equity!r}")
    return Utilisation(
        initial=np.asarray(initial, dtype=np.float64) / e,
        maintenance=np.asarray(maintenance, dtype=np.float64) / e,
    )
