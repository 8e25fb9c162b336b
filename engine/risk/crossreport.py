"""The ``crosshedge`` and ``cpt`` payloads of the books (docs/redis.md): what
:mod:`engine.risk.crosshedge` and :mod:`engine.risk.cpt` compute, from a book's positions and
the window of moves, on their periods (``[risk.cross_hedge]``, ``[risk.cpt]``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.instruments import Instrument
from engine.outputs import CptFigures, CptPayload, CrossHedgeFigures, CrossHedgePayload
from engine.risk import cpt, crosshedge, var
from engine.risk.crosshedge import CrossHedgeConfig
from engine.risk.hedge import DERIBIT_INVERSE_CONTRACT_USD
from engine.risk.history import MoveHistory
from engine.risk.report import RiskConfig
from engine.risk.scenarios import scenario_pnl
from engine.state import AGG_FIELDS, BookRisk, Portfolio

__all__ = ["CrossInputs", "HedgeContract", "cpt_payload", "cross_inputs", "cross_payloads"]

_DELTA: Final = AGG_FIELDS.index("delta")
_GAMMA: Final = AGG_FIELDS.index("gamma")
_DELTA_USD: Final = AGG_FIELDS.index("delta_usd")
_CASH_GAMMA: Final = AGG_FIELDS.index("cash_gamma")


@dataclass(frozen=True, slots=True)
class HedgeContract:
    """A cross-hedge instrument: its underlying and one contract's USD notional
    (``multiplier x F`` linear, the USD face inverse; NaN: no price yet)."""

    instrument: str
    underlying: str
    notional_usd: float


@dataclass(frozen=True, slots=True)
class CrossInputs:
    """What the crosshedge payloads need besides the books, copied on the event loop: each
    configured hedge instrument, the benchmark's underlying and price (USD; NaN: none), and
    the index price of each of their underlyings (for the window of moves to record them even
    when no book holds them)."""

    hedges: dict[str, HedgeContract]
    benchmark: str | None
    benchmark_price: float
    levels: list[tuple[str, float]]


def cross_inputs(
    cfg: RiskConfig, portfolio: Portfolio, lookup: Callable[[str], Instrument | None]
) -> CrossInputs:
    """The hedge instruments of ``[risk.cross_hedge] hedge``, priced now, and the benchmark's
    price (its index's latest).

    Raises:
        ValueError: an instrument ``lookup`` does not know (the start-up check rules it out).
    """
    cc = cfg.cross_hedge
    hedges: dict[str, HedgeContract] = {}
    levels: list[tuple[str, float]] = []
    for name in sorted(set(cc.hedge.values())):
        inst = lookup(name)
        if inst is None:
            raise ValueError(f"unknown cross-hedge instrument {name!r}")
        F = float(portfolio.priced([name]).positions.X[0])
        und = inst.underlying
        if inst.is_inverse:
            face = cfg.hedge_contract_usd.get(und, DERIBIT_INVERSE_CONTRACT_USD.get(und, 10.0))
            notional = face if math.isfinite(F) and F > 0.0 else math.nan
        else:
            notional = inst.multiplier * F
        hedges[name] = HedgeContract(name, und, notional)
        levels.append((und, portfolio.index_price(inst.index)))
    bench = lookup(cc.benchmark) if cc.benchmark else None
    bench_price = math.nan if bench is None else portfolio.index_price(bench.index)
    if bench is not None:
        levels.append((bench.underlying, bench_price))
    return CrossInputs(
        hedges=hedges,
        benchmark=None if bench is None else bench.underlying,
        benchmark_price=bench_price,
        levels=levels,
    )


_CROSS_UNITS: Final = {
    "notional_usd": "USD per contract",
    "ratio": "contracts (h*, the P&L of one contract per USD of the book's)",
    "contracts": "contracts of the hedge instrument (positive: buy)",
    "r2": "fraction of the book's P&L variance the hedge removes",
    "*_vol_usd": "USD per day (standard deviation of the one-day P&L)",
    "beta": "per underlying, of its log-returns on the benchmark's",
    "delta": "underlying units, per underlying",
    "gamma": "underlying units per 1 underlying unit move, per underlying",
    "beta_delta": "benchmark units (delta S beta / S_bench)",
    "beta_gamma": "benchmark units per 1 benchmark unit move (gamma beta^2 (S / S_bench)^2)",
    "beta_delta_usd": "USD: beta_delta_total x benchmark_price",
    "benchmark_price": "USD",
}


def _known(a: npt.ArrayLike) -> list[float | None]:
    """Floats, NaN as None."""
    return [x if math.isfinite(x) else None for x in np.asarray(a, dtype=np.float64).tolist()]


def _hedge(
    br: BookRisk, h: HedgeContract, history: MoveHistory, min_days: int
) -> tuple[CrossHedgeFigures | None, int, str]:
    """The minimum-variance hedge of the book in ``h``, the days of moves, and a status."""
    unds = br.underlyings if h.underlying in br.underlyings else [*br.underlyings, h.underlying]
    ret, dvol = history.moves(unds)
    u, n = len(br.underlyings), ret.shape[0]
    if n < min_days:
        return None, n, f"{n} common days of moves, need {min_days}"
    if not (math.isfinite(h.notional_usd) and h.notional_usd > 0.0):
        return None, n, f"no price for {h.instrument}"
    book = scenario_pnl(br.positions, ret[:, :u], dvol[:, :u], 1.0).pnl
    x = crosshedge.contract_pnl(ret[:, unds.index(h.underlying)], h.notional_usd)
    try:
        mv = crosshedge.min_variance_hedge(book, x)
    except ValueError as exc:
        return None, n, str(exc)
    figures = CrossHedgeFigures(
        instrument=h.instrument,
        underlying=h.underlying,
        notional_usd=h.notional_usd,
        ratio=mv.ratio,
        contracts_exact=mv.contracts_exact,
        contracts=mv.contracts,
        r2=mv.r2,
        book_vol_usd=mv.book_vol,
        residual_vol_usd=mv.residual_vol,
        residual_vol_rounded_usd=mv.residual_vol_rounded,
    )
    return figures, n, "ok"


def _betas(
    br: BookRisk, bench: str, history: MoveHistory, cc: CrossHedgeConfig
) -> tuple[list[float], str]:
    """Each underlying's beta to ``bench``: fixed (``cc.betas``), or estimated from the window
    (NaN each when it cannot be), and a status; when every underlying is fixed or the
    benchmark itself, no window is needed (the benchmark's own beta is then 1)."""
    fixed = cc.betas
    if all(u in fixed or u == bench for u in br.underlyings):
        return [fixed.get(u, 1.0) for u in br.underlyings], "ok"
    estimated, status = _estimated(br, bench, history, cc.min_days)
    return [fixed.get(u, b) for u, b in zip(br.underlyings, estimated, strict=True)], status


def _estimated(
    br: BookRisk, bench: str, history: MoveHistory, min_days: int
) -> tuple[list[float], str]:
    """Each underlying's beta to ``bench`` from the window (NaN each when it cannot be
    estimated), a status."""
    nan = [math.nan] * len(br.underlyings)
    ret, _ = history.moves([*br.underlyings, bench])
    if ret.shape[0] < min_days:
        return nan, f"{ret.shape[0]} common days of moves with {bench}, need {min_days}"
    try:
        return crosshedge.betas(ret[:, :-1], ret[:, -1]).tolist(), "ok"
    except ValueError as exc:
        return nan, str(exc)


def crosshedge_payload(
    br: BookRisk, inputs: CrossInputs, history: MoveHistory, cfg: RiskConfig, now_ns: int
) -> CrossHedgePayload:
    """A book's ``crosshedge`` payload: its minimum-variance hedge in its configured instrument
    and its Greeks weighted by beta to the benchmark (docs/hedging.md)."""
    cc = cfg.cross_hedge
    name = cc.instrument(br.book)
    hedge, days, status = None, 0, "no hedge instrument"
    if name is not None and br.underlyings:
        hedge, days, status = _hedge(br, inputs.hedges[name], history, cc.min_days)
    delta, gamma = br.figures[:, _DELTA], br.figures[:, _GAMMA]
    beta = [math.nan] * len(br.underlyings)
    bd, bg = np.full(len(beta), math.nan), np.full(len(beta), math.nan)
    sb = inputs.benchmark_price
    if inputs.benchmark is not None and br.underlyings:
        beta, beta_status = _betas(br, inputs.benchmark, history, cc)
        if beta_status != "ok":
            status = f"{status}; beta: {beta_status}"
        elif math.isfinite(sb) and sb > 0.0:
            fig = br.figures
            bd, bg = crosshedge.beta_weighted_usd(fig[:, _DELTA_USD], fig[:, _CASH_GAMMA], beta, sb)
        else:
            status = f"{status}; beta: no price for the benchmark"
    total_d = float(bd.sum()) if bd.size and np.all(np.isfinite(bd)) else None
    total_g = float(bg.sum()) if bg.size and np.all(np.isfinite(bg)) else None
    return CrossHedgePayload(
        ts_ns=now_ns,
        valuation_ts_ns=br.valuation_ns,
        book=br.book,
        underlyings=br.underlyings,
        history_days=days,
        hedge=hedge,
        benchmark=inputs.benchmark,
        benchmark_price=sb if math.isfinite(sb) else None,
        beta=_known(beta),
        delta=_known(delta),
        gamma=_known(gamma),
        beta_delta=_known(bd),
        beta_gamma=_known(bg),
        beta_delta_total=total_d,
        beta_gamma_total=total_g,
        beta_delta_usd=None if total_d is None or not math.isfinite(sb) else total_d * sb,
        status=status,
        units=_CROSS_UNITS,
    )


_CPT_UNITS: Final = {
    "value": "value-function units (USD^alpha): ranks distributions, not an amount",
    "certainty_equivalent": "USD: the sure P&L of the same value",
    "mean_pnl": "USD over horizon_days",
    "es": "USD loss over horizon_days (positive: the book loses), at es_confidence",
}


def cpt_payload(br: BookRisk, history: MoveHistory, cfg: RiskConfig, now_ns: int) -> CptPayload:
    """A book's ``cpt`` payload: the prospect-theory value of its scenario P&Ls (the window's
    or the Monte Carlo draws), with the mean and the ES of the same scenarios (docs/risk.md)."""
    cc, h = cfg.cpt, cfg.horizon_days
    ret, dvol = history.moves(br.underlyings)
    pnl = None
    if not br.underlyings:
        status = "no positions"
    elif ret.shape[0] < 2:
        status = f"{ret.shape[0]} days of moves, need 2"
    else:
        status = "ok"
        if cc.method == "historical":
            pnl = var.historical(br.positions, ret, dvol, 0.99, cfg.es_confidence, h)[1].pnl
        else:
            cov = history.covariance(br.underlyings)
            res = var.monte_carlo(
                br.positions, cov, cfg.mc_scenarios, cfg.mc_seed, 0.99, cfg.es_confidence, h
            )
            pnl = res[1].pnl
    params = cc.params()
    value = None if pnl is None else cpt.cpt_value(pnl, params)
    return CptPayload(
        ts_ns=now_ns,
        valuation_ts_ns=br.valuation_ns,
        book=br.book,
        method=cc.method,
        scenarios=0 if pnl is None else int(pnl.size),
        horizon_days=h,
        es_confidence=cfg.es_confidence,
        value=value,
        certainty_equivalent=None if value is None else cpt.certainty_equivalent(value, params),
        mean_pnl=None if pnl is None else float(pnl.mean()),
        es=None if pnl is None else var.empirical(pnl, 0.99, cfg.es_confidence, h).es,
        params=CptFigures(**{f: getattr(params, f) for f in params.__struct_fields__}),
        status=status,
        units=_CPT_UNITS,
    )


def cross_payloads(
    books: Iterable[BookRisk],
    inputs: CrossInputs | None,
    history: MoveHistory,
    cfg: RiskConfig,
    families: Iterable[str],
    now_ns: int,
) -> list[tuple[str, CrossHedgePayload | CptPayload]]:
    """The due ``crosshedge`` (with ``inputs``) and ``cpt`` payloads of every book, keyed by
    the book; may run in a worker thread."""
    wanted = set(families)
    out: list[tuple[str, CrossHedgePayload | CptPayload]] = []
    for br in books:
        if inputs is not None and "crosshedge" in wanted:
            out.append((br.book, crosshedge_payload(br, inputs, history, cfg, now_ns)))
        if "cpt" in wanted:
            out.append((br.book, cpt_payload(br, history, cfg, now_ns)))
    return out
