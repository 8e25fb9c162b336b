"""Liquidity: what it costs to get out at the quoted prices, and the liquidity-adjusted VaR
(docs/risk.md "Liquidity").

Units: every money figure is USD. A position's quantity is ``weight`` (signed quantity x
contract multiplier, as in :class:`engine.positions.ScenarioBook`); its bid and ask are in the
instrument's quote currency, turned into USD by ``fx`` (the forward for Deribit's coin-settled
options, whose prices are in coin; 1 for USD-quoted instruments).

- **Exit cost** of a position: closing it at the touch instead of the mid, half the quoted
  spread per unit, ``1/2 x |weight| x (ask - bid) x fx``; a book's is the sum over its positions.
- **Relative spread** ``(ask - bid) / mid`` (a fraction of the mid), sampled per instrument on
  the daemon's liquidity period into a rolling window (:class:`SpreadHistory`).
- **Liquidity-adjusted VaR**, the exogenous-liquidity adjustment of Bangia, Diebold, Schuermann
  and Stroughair (1999), "Modeling Liquidity Risk, With Implications for Traditional Market Risk
  Measurement and Management" (Wharton FIC working paper 99-06; in *Risk Management: The State
  of the Art*, Kluwer 2002): the cost of liquidation, half the spread, taken at its mean plus
  ``a`` standard deviations of the relative spread, is added to the market VaR::

      LVaR = VaR + 1/2 x sum_i |P_i| x (mean_i + a x sigma_i)

  with ``P_i`` the position's value at the mid (USD). Summing the positions' costs assumes
  their spreads widen together (the conservative aggregation; BDSS state the formula for one
  position or a portfolio's value). BDSS pick ``a`` so that the cost covers 99 % of the spread's
  distribution: a normal spread would need 2.33, the fat-tailed spreads they measured need more;
  ``a = 3`` is the usual choice in later applications, and riskd's default.
  LES adds the same cost to the expected shortfall.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Final, NamedTuple

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat
from engine.events import Depth
from engine.orderbook import OrderBook, hedge_slippage
from engine.outputs import (
    VAR_METHODS,
    HedgePayload,
    LiquidityPayload,
    PositionLiquidity,
    SlippagePayload,
    VarPayload,
)
from engine.readout import BookRisk

__all__ = [
    "DEFAULT_A",
    "ExitCost",
    "FloatArray",
    "LiquidityConfig",
    "LiquidityFigures",
    "SpreadHistory",
    "SpreadStats",
    "book_exit_cost",
    "exit_cost",
    "liquidity_adjustment",
    "liquidity_payload",
    "liquidity_payloads",
    "slippage_payload",
]

F64 = npt.NDArray[np.float64]
FloatArray = F64

DEFAULT_A: Final = 3.0
"""The default spread-volatility multiple ``a`` (module docstring)."""


class LiquidityConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.liquidity]``: the ``liquidity`` payloads (docs/config.md).

    Attributes:
        enabled: publish them.
        interval_s: their period, which is also the sampling period of the relative spreads.
        window: relative spreads kept per instrument (the rolling window of the statistics).
        a: multiple of the relative spread's standard deviation in the adjustment.
        top_positions: positions listed in a book's payload, the largest shares of the
            adjustment first (the rest summed into ``other_*``; 0: none listed).
    """

    enabled: bool = True
    interval_s: PositiveFloat = 5.0
    window: Annotated[int, msgspec.Meta(ge=2)] = 720
    a: Annotated[float, msgspec.Meta(ge=0.0)] = DEFAULT_A
    top_positions: Annotated[int, msgspec.Meta(ge=0)] = 50


@dataclass(frozen=True, slots=True)
class ExitCost:
    """Per position, at the current quotes (NaN where ``quoted`` is False).

    Attributes:
        quoted: the position has a two-sided quote with a positive mid and ``ask >= bid``.
        value_usd: ``|weight| x mid x fx``, USD: the position's size at the mid.
        relative_spread: ``(ask - bid) / mid``, a fraction.
        cost_usd: ``1/2 x |weight| x (ask - bid) x fx``, USD: closing at the touch.
    """

    quoted: npt.NDArray[np.bool_]
    value_usd: F64
    relative_spread: F64
    cost_usd: F64

    @property
    def total_usd(self) -> float:
        """The exit cost of the positions quoted, USD."""
        return math.fsum(self.cost_usd[self.quoted].tolist())


def exit_cost(weight: F64, bid: F64, ask: F64, fx: F64) -> ExitCost:
    """The cost of closing each position at the quoted touch rather than the mid.

    Args:
        weight: signed quantity x contract multiplier per position.
        bid, ask: the position's quotes in its quote currency (NaN: none).
        fx: USD per unit of the quote currency (the forward for coin-quoted options, else 1).

    Raises:
        ValueError: the arrays differ in shape.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (weight, bid, ask, fx)]
    if len({a.shape for a in arrays}) != 1:
        raise ValueError("weight, bid, ask and fx must have one shape")
    w, b, k, x = arrays
    mid = 0.5 * (b + k)
    with np.errstate(invalid="ignore"):
        quoted = np.isfinite(mid) & (mid > 0.0) & (k >= b) & np.isfinite(x) & (x > 0.0)
    nan = np.where(quoted, 0.0, np.nan)
    size = np.abs(w) + nan
    return ExitCost(
        quoted=quoted,
        value_usd=size * mid * x,
        relative_spread=(k - b) / np.where(quoted, mid, 1.0) + nan,
        cost_usd=0.5 * size * (k - b) * x,
    )


@dataclass(frozen=True, slots=True)
class SpreadStats:
    """The rolling relative spreads of some instruments: per instrument the mean and (sample)
    standard deviation of its relative spread, and how many samples they take."""

    mean: F64
    std: F64
    samples: npt.NDArray[np.int64]


class SpreadHistory:
    """A rolling window of relative spreads per instrument (pure: the daemon samples it).

    Held as one ring buffer, a row of ``window`` slots per instrument ever recorded, so that
    the statistics of every instrument take one vectorised pass after each sample (they are
    read per position, for every book, on each liquidity period).

    Args:
        window: samples kept per instrument.
    """

    def __init__(self, window: int) -> None:
        if window < 2:
            raise ValueError("window must be at least 2")
        self.window = window
        self._rows: dict[str, int] = {}  # instrument -> its row
        self._buf: F64 = np.zeros((0, window))
        self._next = np.zeros(0, dtype=np.int64)  # the slot the next sample goes to
        self._count = np.zeros(0, dtype=np.int64)  # samples held, at most window
        self._per_row: tuple[F64, F64] | None = None  # mean and std per row, since a record

    def record(self, names: list[str], relative: F64) -> None:
        """One sample per instrument of ``names`` (a NaN, no quote, is not recorded).

        Raises:
            ValueError: a name given twice.
        """
        rel = np.asarray(relative, dtype=np.float64)
        if len(set(names)) != len(names):
            raise ValueError("each instrument once per sample")
        ok = np.isfinite(rel)
        rows = self._row_of([n for n, k in zip(names, ok.tolist(), strict=True) if k])
        self._buf[rows, self._next[rows]] = rel[ok]
        self._next[rows] = (self._next[rows] + 1) % self.window
        self._count[rows] = np.minimum(self._count[rows] + 1, self.window)
        self._per_row = None

    def stats(self, names: list[str], current: F64) -> SpreadStats:
        """Each instrument's mean and standard deviation over its window. An instrument with
        fewer than 2 samples takes its ``current`` spread as the mean and 0 as the deviation
        (NaN current: NaN)."""
        cur = np.asarray(current, dtype=np.float64)
        if not self._rows:
            zeros = np.zeros(len(names), dtype=np.int64)
            return SpreadStats(mean=cur.copy(), std=np.zeros(len(names)), samples=zeros)
        mean_of, std_of = self._statistics()
        rows = np.fromiter((self._rows.get(n, -1) for n in names), np.int64, len(names))
        samples = np.where(rows >= 0, self._count[rows], 0)
        enough = samples >= 2
        mean = np.where(enough, mean_of[rows], cur)
        std = np.where(enough, std_of[rows], 0.0)
        return SpreadStats(mean=mean, std=std, samples=samples)

    def _row_of(self, names: list[str]) -> npt.NDArray[np.int64]:
        """The rows of ``names``, adding a row for each new one."""
        new = [n for n in names if n not in self._rows]
        if new:
            for n in new:
                self._rows[n] = len(self._rows)
            grow = len(self._rows) - len(self._count)
            self._buf = np.vstack([self._buf, np.zeros((grow, self.window))])
            self._next = np.concatenate([self._next, np.zeros(grow, dtype=np.int64)])
            self._count = np.concatenate([self._count, np.zeros(grow, dtype=np.int64)])
        return np.fromiter((self._rows[n] for n in names), np.int64, len(names))

    def _statistics(self) -> tuple[F64, F64]:
        """Each row's mean and sample standard deviation over the slots it has filled (NaN
        below 2 samples), computed once after each record."""
        if self._per_row is None:
            n = self._count.astype(np.float64)
            filled = np.arange(self.window) < self._count[:, None]
            values = np.where(filled, self._buf, 0.0)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = values.sum(axis=1) / n
                dev = np.where(filled, self._buf - mean[:, None], 0.0)
                std = np.sqrt((dev * dev).sum(axis=1) / (n - 1.0))
            self._per_row = (mean, std)
        return self._per_row


def liquidity_adjustment(value_usd: F64, stats: SpreadStats, a: float) -> float:
    """BDSS's exogenous liquidity cost, USD: ``1/2 x sum |P_i| x (mean_i + a x sigma_i)``
    over the positions whose figures are finite (module docstring); add it to a VaR or ES."""
    cost = 0.5 * np.abs(np.asarray(value_usd)) * (stats.mean + a * stats.std)
    return math.fsum(cost[np.isfinite(cost)].tolist())


# ---------------------------------------------------------------- the daemon's payloads

_UNITS: Final = {
    "exit_cost_usd": "USD: half the quoted spread of every position quoted, at the touch",
    "liquidity_cost_usd": "USD: 1/2 x sum |value_usd| x (spread_mean + a x spread_std)",
    "var": "USD",
    "es": "USD",
    "lvar": "USD: var + liquidity_cost_usd",
    "les": "USD: es + liquidity_cost_usd",
    **{f"{k}_{m}": "USD" for m in VAR_METHODS for k in ("lvar", "les")},
    "value_usd": "USD: |quantity| x multiplier x mid x (forward for coin-quoted options)",
    "relative_spread": "fraction of the mid: (ask - bid) / mid",
    "spread_mean": "fraction of the mid",
    "spread_std": "fraction of the mid",
    "window": "samples per instrument, one per liquidity period",
    "n_positions": "positions of the book",
    "other_positions": "positions not listed (beyond top_positions)",
    "other_exit_cost_usd": "USD: the exit cost of the positions not listed",
    "other_cost_usd": "USD: their share of liquidity_cost_usd",
}


def book_exit_cost(br: BookRisk, bid: F64, ask: F64) -> ExitCost:
    """:func:`exit_cost` of a book's positions, given each position's bid and ask (in the order
    of ``br.rows``): coin-quoted (inverse) prices are turned into USD at the position's forward
    ``X``."""
    pos = br.positions
    fx = np.where(pos.inverse, pos.X, 1.0)
    return exit_cost(pos.weight, bid, ask, fx)


def liquidity_payloads(
    books: list[BookRisk],
    quotes: dict[str, tuple[F64, F64]],
    var_of: Callable[[BookRisk], VarPayload],
    spreads: SpreadHistory,
    cfg: LiquidityConfig,
    now_ns: int,
) -> list[tuple[str, LiquidityPayload]]:
    """Each book's ``liquidity`` payload, keyed by the book. Records one relative spread per
    instrument held (in any book) into ``spreads`` first, so the statistics include this
    period's sample.

    Args:
        books: the books, copied at one valuation.
        quotes: per book, each position's bid and ask (:meth:`engine.state.Portfolio.quotes`).
        var_of: a book's ``var`` payload (the one just computed, or a new one).
        spreads: the rolling window of relative spreads, kept by the caller between periods.
        cfg: ``[risk.liquidity]``.
        now_ns: the payloads' time.
    """
    costs = {br.book: book_exit_cost(br, *quotes[br.book]) for br in books}
    sampled: dict[str, float] = {}
    for br in books:
        sampled.update(zip(br.instruments, costs[br.book].relative_spread.tolist(), strict=True))
    spreads.record(list(sampled), np.array(list(sampled.values()), dtype=np.float64))
    out = []
    for br in books:
        cost = costs[br.book]
        stats = spreads.stats(br.instruments, cost.relative_spread)
        out.append((br.book, _payload(br, cost, stats, var_of(br), cfg, now_ns)))
    return out


def _payload(
    br: BookRisk,
    cost: ExitCost,
    stats: SpreadStats,
    var: VarPayload,
    cfg: LiquidityConfig,
    now_ns: int,
) -> LiquidityPayload:
    """One book's payload from its exit costs, spread statistics and VaR payload."""
    adjustment = liquidity_adjustment(cost.value_usd, stats, cfg.a)
    per_cost = 0.5 * cost.value_usd * (stats.mean + cfg.a * stats.std)
    names = br.instruments
    quantity = (br.positions.weight / _multipliers(br)).tolist()
    # the largest shares of the adjustment first (unquoted ones last; ties by name), the rest
    # summed
    order = np.lexsort((np.array(names, dtype=str), -np.nan_to_num(per_cost, nan=-np.inf)))
    listed = order[: cfg.top_positions].tolist()
    rest = order[cfg.top_positions :]
    positions = [
        PositionLiquidity(
            instrument=name,
            quantity=q,
            value_usd=_opt(v),
            relative_spread=_opt(s),
            exit_cost_usd=_opt(c),
            spread_mean=_opt(m),
            spread_std=_opt(sd) if ok else None,
            samples=n,
            cost_usd=_opt(pc),
        )
        for name, q, v, s, c, m, sd, n, pc, ok in zip(
            [names[i] for i in listed],
            [quantity[i] for i in listed],
            cost.value_usd[listed].tolist(),
            cost.relative_spread[listed].tolist(),
            cost.cost_usd[listed].tolist(),
            stats.mean[listed].tolist(),
            stats.std[listed].tolist(),
            stats.samples[listed].tolist(),
            per_cost[listed].tolist(),
            cost.quoted[listed].tolist(),
            strict=True,
        )
    ]
    unquoted = sorted(n for n, ok in zip(names, cost.quoted.tolist(), strict=True) if not ok)
    figures = LiquidityFigures(
        book=br.book,
        valuation_ns=br.valuation_ns,
        a=cfg.a,
        window=cfg.window,
        exit_cost_usd=cost.total_usd,
        liquidity_cost_usd=adjustment,
        positions=positions,
        n_positions=len(names),
        other_exit_cost_usd=_finite_sum(cost.cost_usd[rest]),
        other_cost_usd=_finite_sum(per_cost[rest]),
        unquoted=unquoted,
    )
    return liquidity_payload(figures, var, now_ns)


class LiquidityFigures(NamedTuple):
    """A book's liquidity figures apart from its VaR (:class:`LiquidityPayload`'s fields of the
    same names): its exit and liquidity costs (USD), the positions listed and the rest."""

    book: str
    valuation_ns: int | None
    a: float
    window: int
    exit_cost_usd: float
    liquidity_cost_usd: float
    positions: list[PositionLiquidity]
    n_positions: int
    other_exit_cost_usd: float
    other_cost_usd: float
    unquoted: list[str]


def liquidity_payload(f: LiquidityFigures, var: VarPayload, now_ns: int) -> LiquidityPayload:
    """The ``liquidity`` payload of ``f`` on the book's ``var`` payload: every method's VaR and
    ES plus the liquidity cost (null where the VaR is)."""
    cost = f.liquidity_cost_usd

    def plus(x: float | None) -> float | None:
        return None if x is None else x + cost

    return LiquidityPayload(
        ts_ns=now_ns,
        valuation_ts_ns=f.valuation_ns,
        book=f.book,
        method=var.method,
        a=f.a,
        window=f.window,
        exit_cost_usd=f.exit_cost_usd,
        liquidity_cost_usd=cost,
        var=var.var,
        es=var.es,
        lvar=plus(var.var),
        les=plus(var.es),
        lvar_delta_normal=plus(var.var_delta_normal),
        les_delta_normal=plus(var.es_delta_normal),
        lvar_delta_gamma=plus(var.var_delta_gamma),
        les_delta_gamma=plus(var.es_delta_gamma),
        lvar_historical=plus(var.var_historical),
        les_historical=plus(var.es_historical),
        lvar_monte_carlo=plus(var.var_monte_carlo),
        les_monte_carlo=plus(var.es_monte_carlo),
        positions=f.positions,
        n_positions=f.n_positions,
        other_positions=f.n_positions - len(f.positions),
        other_exit_cost_usd=f.other_exit_cost_usd,
        other_cost_usd=f.other_cost_usd,
        unquoted=f.unquoted,
        status=var.status.get(var.method, "ok") if f.n_positions else "no positions",
        units=_UNITS,
    )


def _finite_sum(x: F64) -> float:
    """The exactly rounded sum of the finite values of ``x``."""
    return math.fsum(x[np.isfinite(x)].tolist())


def _multipliers(br: BookRisk) -> F64:
    """Each position's contract multiplier."""
    return np.array([br.defs[i].multiplier for i in br.rows.tolist()], dtype=np.float64)


def _opt(x: float) -> float | None:
    """A float, or None when it is not finite."""
    return x if math.isfinite(x) else None


_SLIPPAGE_UNITS: Final = {
    "contracts": "contracts of the hedge future (positive: buy)",
    "quantity": "the book's amount unit: USD of contracts for inverse futures, coin for linear",
    "filled": "as quantity",
    "average_price": "USD (harmonic over the levels for inverse futures)",
    "mid": "USD",
    "slippage_usd": "USD: the fill's cost beside the mid",
}


def slippage_payload(
    hedge: HedgePayload, depth: Depth | None, inverse: bool, now_ns: int
) -> SlippagePayload:
    """The expected slippage of ``hedge``'s delta hedge against ``depth``, its future's latest
    order book (None: none came), walked at once (:func:`engine.orderbook.hedge_slippage`)."""
    fh = hedge.delta_hedge
    status = "ok"
    got = None
    if fh is None:
        status = f"no hedge: {hedge.status}"
    elif depth is None:
        status = f"no order book for {hedge.future}"
    else:
        book = OrderBook(max(len(depth.bids), len(depth.asks), 1))
        book.apply(
            "snapshot",
            [("new", p, a) for p, a in depth.bids],
            [("new", p, a) for p, a in depth.asks],
            change_id=0,
        )
        got = hedge_slippage(book, fh.quantity, inverse)
        if not got.complete:
            status = "the book's levels do not hold the whole hedge"
    return SlippagePayload(
        ts_ns=now_ns,
        valuation_ts_ns=hedge.valuation_ts_ns,
        book=hedge.book,
        underlying=hedge.underlying,
        future=hedge.future,
        contracts=None if fh is None else fh.contracts,
        quantity=None if fh is None else fh.quantity,
        side=None if got is None else got.side,
        filled=None if got is None else got.filled,
        average_price=None if got is None else _opt(got.average_price),
        mid=None if got is None else _opt(got.mid),
        slippage_usd=None if got is None else _opt(got.slippage_usd),
        complete=False if got is None else got.complete,
        levels=0 if got is None else got.levels,
        book_levels=0 if got is None else len(book.levels(got.side)),
        book_ts_ns=None if depth is None else depth.ts_event,
        status=status,
        units=_SLIPPAGE_UNITS,
    )
