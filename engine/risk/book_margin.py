"""The ``margin`` payload of a book (docs/margin.md): the crypto exchanges' methods
(:mod:`engine.risk.margin`: Deribit's portfolio and standard margin, SPAN-style) per underlying,
and the US margin of its US listed options and futures (:mod:`engine.risk.usbook`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from engine.outputs import (
    RISK_METRICS,
    RISK_UNITS,
    MarginPayload,
    PortfolioMargin,
    SpanMargin,
    StandardMargin,
    UsMargin,
)
from engine.risk import margin
from engine.risk.strategies import StrategyHolding
from engine.risk.usbook import UsMarginConfig, margin_class, us_margin
from engine.state import BookRisk


class MarginConfig(Protocol):
    """What the margin payload reads of ``[risk]`` (:class:`engine.risk.report.RiskConfig`)."""

    @property
    def equity_usd(self) -> Mapping[str, float]: ...

    @property
    def us_margin(self) -> UsMarginConfig: ...

    def pm_params(self, underlying: str) -> margin.DeribitPMParams: ...

    def span_params(self) -> margin.SpanParams: ...

    def standard_params(self, underlying: str) -> margin.DeribitStandardParams: ...


__all__ = ["MARGIN_FIGURES", "MarginConfig", "margin_payload"]


MARGIN_FIGURES: Final = tuple(name for name in RISK_METRICS if name.startswith("margin_"))
"""The book totals of the margin payload (alert rules can watch them)."""

_MARGIN_UNITS: Final = {
    **{k: RISK_UNITS[k] for k in MARGIN_FIGURES},
    "equity_usd": "USD",
    "portfolio": "per underlying; *_usd USD, *_coin coin of the underlying, moves relative",
    "span": "per underlying, USD",
    "standard": "per underlying; *_usd USD, *_coin coin of the underlying",
    "us": "USD for whole positions; reg_t_* and pm_* per class (classes), span: CME E-mini",
}


class _UsTotals(NamedTuple):
    """The book totals of its US margin, USD (null without one)."""

    margin_reg_t: float | None
    margin_reg_t_deposit: float | None
    margin_us_portfolio: float | None
    margin_cme_span: float | None


def _floats(a: npt.ArrayLike) -> list[float]:
    """A 1-D array as Python floats (NaN stays NaN: JSON null)."""
    out: list[float] = np.asarray(a, dtype=np.float64).tolist()
    return out


def _nested(a: npt.ArrayLike) -> Any:
    """An n-D array as nested lists of Python floats."""
    return np.asarray(a, dtype=np.float64).tolist()


class _Exchange(NamedTuple):
    """The crypto exchanges' figures of a book's margin payload (null: not computed)."""

    margin_im: float | None = None
    margin_mm: float | None = None
    margin_span: float | None = None
    margin_standard_im: float | None = None
    margin_savings: float | None = None
    margin_utilisation: float | None = None
    margin_mm_utilisation: float | None = None
    portfolio: PortfolioMargin | None = None
    span: SpanMargin | None = None
    standard: StandardMargin | None = None
    excluded: tuple[str, ...] = ()


def margin_payload(
    br: BookRisk,
    cfg: MarginConfig,
    now_ns: int,
    holdings: Sequence[StrategyHolding] = (),
) -> MarginPayload:
    """The ``margin`` payload of one book (docs/margin.md): per underlying, Deribit's portfolio
    margin with its risk matrix, the SPAN-style requirement and Deribit's standard margin; the
    book's totals (sums over its underlyings: each is margined alone), what cross-margining
    saves, and the utilisation of ``equity_usd``. Without an index price for every underlying
    the figures are null and ``status`` says which is missing. A book of US listed options
    and futures gets their US margin (``us``, :func:`engine.risk.usbook.us_margin`), its
    strategy-based margin pairing the desk's strategies of ``holdings`` first; a book of US
    listed underlyings alone gets it instead: the crypto exchanges' figures are null (a book
    that mixes both gets both, the crypto methods over every underlying)."""
    missing = [u for u, px in zip(br.underlyings, br.prices.tolist(), strict=True) if not px > 0]
    equity = cfg.equity_usd.get(br.book)
    status, exchange, us = "ok", _Exchange(), None
    if missing or not br.underlyings:
        status = f"no index price for {', '.join(missing)}" if missing else "no positions"
    else:
        us = us_margin(br, holdings, cfg.us_margin, now_ns) if cfg.us_margin.enabled else None
        if _exchange_margined(br).any():
            exchange = _exchange_margin(br, cfg, equity)
    fields = exchange._asdict()
    fields["excluded"] = list(exchange.excluded)
    return MarginPayload(
        ts_ns=now_ns,
        valuation_ts_ns=br.valuation_ns,
        book=br.book,
        underlyings=br.underlyings,
        equity_usd=equity,
        **fields,
        **_us_totals(us)._asdict(),
        status=status,
        us=us,
        units=_MARGIN_UNITS,
    )


def _exchange_margin(br: BookRisk, cfg: MarginConfig, equity: float | None) -> _Exchange:
    """The crypto exchanges' methods on every underlying of ``br`` (each margined alone)."""
    unds, n = br.underlyings, len(br.underlyings)
    pm = margin.deribit_portfolio_margin(br.positions, br.prices, [cfg.pm_params(u) for u in unds])
    span = margin.span_margin(br.positions, n, cfg.span_params())
    std = margin.deribit_standard_margin(br.positions, n, [cfg.standard_params(u) for u in unds])
    saved = margin.margin_savings(std, pm.margin)
    im, mm = float(pm.margin.initial_usd.sum()), float(pm.margin.maintenance_usd.sum())
    usd = pm.usd
    excluded = np.union1d(pm.excluded, span.excluded)
    return _Exchange(
        margin_im=im,
        margin_mm=mm,
        margin_span=float(span.requirement.sum()),
        margin_standard_im=float(std.initial_usd.sum()),
        margin_savings=float(saved.initial_usd.sum()),
        margin_utilisation=None if equity is None else im / equity,
        margin_mm_utilisation=None if equity is None else mm / equity,
        portfolio=PortfolioMargin(
            initial_usd=_floats(pm.margin.initial_usd),
            maintenance_usd=_floats(pm.margin.maintenance_usd),
            initial_coin=_floats(pm.margin.initial_coin),
            maintenance_coin=_floats(pm.margin.maintenance_coin),
            worst_case_usd=_floats(usd.worst_case),
            delta_shock_usd=_floats(usd.delta_shock),
            roll_shock_usd=_floats(usd.roll_shock),
            price_moves=_nested(pm.price_moves),
            matrix_usd=_nested(usd.standard),
            extended_moves=_nested(pm.extended_moves),
            extended_usd=_nested(usd.extended),
        ),
        span=SpanMargin(
            requirement_usd=_floats(span.requirement),
            scan_risk_usd=_floats(span.scan_risk),
            short_option_minimum_usd=_floats(span.short_option_minimum),
        ),
        standard=StandardMargin(
            initial_usd=_floats(std.initial_usd),
            maintenance_usd=_floats(std.maintenance_usd),
            initial_coin=_floats(std.initial_coin),
            maintenance_coin=_floats(std.maintenance_coin),
        ),
        excluded=tuple(br.instrument(i) for i in excluded.tolist()),
    )


def _us_totals(us: UsMargin | None) -> _UsTotals:
    """The book totals of its US margin (null without one)."""
    if us is None:
        return _UsTotals(None, None, None, None)
    span = None if us.span is None else us.span.total_usd
    return _UsTotals(
        math.fsum(us.reg_t_requirement_usd),
        math.fsum(us.reg_t_deposit_usd),
        math.fsum(us.pm_group_usd),
        span,
    )


def _exchange_margined(br: BookRisk) -> npt.NDArray[np.bool_]:
    """Per underlying of ``br``: whether it is margined as the crypto exchanges do: it holds an
    instrument that is not US listed, or none known (a what-if's new trades alone)."""
    known = br.rows >= 0
    listed = np.array([margin_class(br.defs[r]) is not None for r in br.rows[known].tolist()])
    out = np.ones(len(br.underlyings), dtype=np.bool_)
    und = br.positions.und[known]
    if listed.size:
        out[und[listed]] = False
        out[und[~listed]] = True
    return out
