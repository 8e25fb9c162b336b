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
from engine.risk.scenarios import stacked as stacked_books
from engine.risk.strategies import StrategyHolding
from engine.risk.usbook import Listed, UsMarginConfig, us_margin
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


__all__ = ["MARGIN_FIGURES", "MarginConfig", "margin_payload", "margin_payloads"]


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
    """The ``margin`` payload of one book: :func:`margin_payloads`' one-book case."""
    return margin_payloads([br], cfg, now_ns, holdings)[0]


def margin_payloads(
    brs: Sequence[BookRisk],
    cfg: MarginConfig,
    now_ns: int,
    holdings: Sequence[StrategyHolding] = (),
) -> list[MarginPayload]:
    """The ``margin`` payload of each book (docs/margin.md): per underlying, Deribit's
    portfolio margin with its risk matrix, the SPAN-style requirement and Deribit's standard
    margin; the book's totals (sums over its underlyings: each is margined alone), what
    cross-margining saves, and the utilisation of ``equity_usd``. Without an index price for
    every underlying the figures are null and ``status`` says which is missing. A book of US
    listed options and futures gets their US margin (``us``,
    :func:`engine.risk.usbook.us_margin`), its strategy-based margin pairing the desk's
    strategies of ``holdings`` first; a book of US listed underlyings alone gets it instead:
    the crypto exchanges' figures are null (a book that mixes both gets both, the crypto
    methods over every underlying).

    The crypto exchanges' methods value every book's positions together
    (:func:`_exchange_margins`): each distinct instrument once per scenario, whatever the books
    holding it; each book's figures are those it gets alone."""
    status: list[str] = []
    for br in brs:
        missing = [
            u for u, px in zip(br.underlyings, br.prices.tolist(), strict=True) if not px > 0
        ]
        if missing or not br.underlyings:
            status.append(f"no index price for {', '.join(missing)}" if missing else "no positions")
        else:
            status.append("ok")
    exchange: dict[int, _Exchange] = {}
    seen = Listed()  # the books' instruments, looked up once for all of them
    for batch in _batches(brs, status, cfg, seen):
        exchange.update(zip(batch, _exchange_margins([brs[k] for k in batch], cfg), strict=True))
    out = []
    for k, br in enumerate(brs):
        us = None
        if status[k] == "ok" and cfg.us_margin.enabled:
            us = us_margin(br, holdings, cfg.us_margin, now_ns, seen)
        fields = exchange.get(k, _Exchange())._asdict()
        fields["excluded"] = list(fields["excluded"])
        out.append(
            MarginPayload(
                ts_ns=now_ns,
                valuation_ts_ns=br.valuation_ns,
                book=br.book,
                underlyings=br.underlyings,
                equity_usd=cfg.equity_usd.get(br.book),
                **fields,
                **_us_totals(us)._asdict(),
                status=status[k],
                us=us,
                units=_MARGIN_UNITS,
            )
        )
    return out


def _batches(
    brs: Sequence[BookRisk], status: Sequence[str], cfg: MarginConfig, seen: Listed
) -> list[list[int]]:
    """The books the crypto exchanges' methods margin, in batches valued together: books
    whose underlyings' portfolio-margin tables have the same shape (buckets and extended
    moves; a book whose own underlyings differ fails alone, as it would anyway)."""
    batches: dict[frozenset[tuple[int, int]], list[int]] = {}
    for k, br in enumerate(brs):
        if status[k] != "ok" or not _exchange_margined(br, seen).any():
            continue
        shapes = (cfg.pm_params(u) for u in br.underlyings)
        key = frozenset((p.buckets, len(p.extended_moves)) for p in shapes)
        batches.setdefault(key, []).append(k)
    return list(batches.values())


def _exchange_margins(brs: Sequence[BookRisk], cfg: MarginConfig) -> list[_Exchange]:
    """The crypto exchanges' methods on every underlying of each book of ``brs`` (each
    margined alone). The books are stacked into one whose underlyings are the (book,
    underlying) pairs: the methods margin each alone, so each book's slice is its own
    figures, while each distinct instrument is revalued once
    (:func:`engine.risk.margin.pnl_by_underlying`)."""
    if not brs:
        return []
    sizes = [len(br.underlyings) for br in brs]
    starts = np.concatenate([[0], np.cumsum(sizes)])
    rows = np.concatenate([[0], np.cumsum([br.positions.kind.shape[0] for br in brs])])
    stacked, _ = stacked_books(
        [br.positions._replace(und=br.positions.und + starts[k]) for k, br in enumerate(brs)]
    )
    unds = [u for br in brs for u in br.underlyings]
    prices = np.concatenate([br.prices for br in brs])
    shared = margin.shared_scenario_pnl  # each instrument once for every book holding it
    params = [cfg.pm_params(u) for u in unds]
    pm = margin.deribit_portfolio_margin(stacked, prices, params, revalue=shared)
    span = margin.span_margin(stacked, len(unds), cfg.span_params(), revalue=shared)
    std = margin.deribit_standard_margin(stacked, len(unds), [cfg.standard_params(u) for u in unds])
    margins = _Margins(pm, span, std, margin.margin_savings(std, pm.margin))
    excluded = np.union1d(pm.excluded, span.excluded)
    out = []
    for k, br in enumerate(brs):
        g = slice(int(starts[k]), int(starts[k + 1]))
        mine = excluded[(excluded >= rows[k]) & (excluded < rows[k + 1])] - rows[k]
        names = tuple(sorted(br.instrument(i) for i in mine.tolist()))
        out.append(_exchange(margins, g, names, cfg.equity_usd.get(br.book)))
    return out


class _Margins(NamedTuple):
    """The stacked books' margins by each method, and what cross-margining saves."""

    pm: margin.PortfolioMargin
    span: margin.SpanMargin
    std: margin.Margin
    saved: margin.Margin


def _exchange(m: _Margins, g: slice, excluded: tuple[str, ...], equity: float | None) -> _Exchange:
    """One book's figures: its underlyings ``g`` of the stacked books' margins."""
    pm, span, std, saved = m
    im, mm = float(pm.margin.initial_usd[g].sum()), float(pm.margin.maintenance_usd[g].sum())
    usd = pm.usd
    return _Exchange(
        margin_im=im,
        margin_mm=mm,
        margin_span=float(span.requirement[g].sum()),
        margin_standard_im=float(std.initial_usd[g].sum()),
        margin_savings=float(saved.initial_usd[g].sum()),
        margin_utilisation=None if equity is None else im / equity,
        margin_mm_utilisation=None if equity is None else mm / equity,
        portfolio=PortfolioMargin(
            initial_usd=_floats(pm.margin.initial_usd[g]),
            maintenance_usd=_floats(pm.margin.maintenance_usd[g]),
            initial_coin=_floats(pm.margin.initial_coin[g]),
            maintenance_coin=_floats(pm.margin.maintenance_coin[g]),
            worst_case_usd=_floats(usd.worst_case[g]),
            delta_shock_usd=_floats(usd.delta_shock[g]),
            roll_shock_usd=_floats(usd.roll_shock[g]),
            price_moves=_nested(pm.price_moves[g]),
            matrix_usd=_nested(usd.standard[g]),
            extended_moves=_nested(pm.extended_moves[g]),
            extended_usd=_nested(usd.extended[g]),
        ),
        span=SpanMargin(
            requirement_usd=_floats(span.requirement[g]),
            scan_risk_usd=_floats(span.scan_risk[g]),
            short_option_minimum_usd=_floats(span.short_option_minimum[g]),
        ),
        standard=StandardMargin(
            initial_usd=_floats(std.initial_usd[g]),
            maintenance_usd=_floats(std.maintenance_usd[g]),
            initial_coin=_floats(std.initial_coin[g]),
            maintenance_coin=_floats(std.maintenance_coin[g]),
        ),
        excluded=excluded,
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


def _exchange_margined(br: BookRisk, seen: Listed) -> npt.NDArray[np.bool_]:
    """Per underlying of ``br``: whether it is margined as the crypto exchanges do: it holds an
    instrument that is not US listed, or none known (a what-if's new trades alone)."""
    known = br.rows >= 0
    listed = seen.of(br)[known]
    out = np.ones(len(br.underlyings), dtype=np.bool_)
    und = br.positions.und[known]
    if listed.size:
        out[und[listed]] = False
        out[und[~listed]] = True
    return out
