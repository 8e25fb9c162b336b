"""The daemon's attribution and capital payloads (docs/risk.md#attribution, docs/redis.md): each
book's and the firm's VaR and ES split by underlying, expiry, position and strategy for every
method, with diversification, and each book's Euler share of the firm's risk against its budget.
Pure: the runtime calls these off the event loop."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Final, Literal, Protocol

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat
from engine.outputs import (
    VAR_METHODS,
    AttributionPayload,
    Breakdown,
    CapitalPayload,
    MethodAttribution,
    PartFigures,
    VarMethod,
)
from engine.risk import attribution as att
from engine.risk import var
from engine.risk.history import MoveHistory
from engine.risk.scenarios import InstrumentValues
from engine.risk.vectors import not_valued
from engine.state import AGG_FIELDS, BookRisk

if TYPE_CHECKING:
    from engine.risk.strategies import StrategyHolding

__all__ = [
    "FIRM",
    "AttributionConfig",
    "BreakdownConfig",
    "attribute",
    "attribution_payload",
    "attribution_payloads",
    "capital_payloads",
]

FloatArray = npt.NDArray[np.float64]
FIRM: Final = "*"
"""The key of the firm-wide (every book together) attribution payload."""

STRATEGY_NOTE: Final = (
    "breakdown by strategy: each net lot split into its strategy holdings' slices (quantity x "
    "leg ratio) and the rest, '(no strategy)', negative where holdings hold more than the lot; "
    "the slices sum to the lot (docs/risk.md#attribution-by-strategy)"
)


class AttributionConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.attribution]``: risk attribution and capital allocation (docs/config.md).

    Attributes:
        enabled: compute and publish the ``attribution`` and ``capital`` payloads.
        interval_s: period of the attribution payloads (each book and the firm).
        capital_interval_s: period of the capital payloads.
        var_half_width: scenarios each side of the VaR's rank in the component-VaR window of
            the scenario methods (0: a tenth of the scenarios beyond the VaR, at least 1).
        incremental_max: incremental and standalone figures of a breakdown of at most this many
            parts (positions of a larger book: null).
        top_positions: positions listed in the position breakdown (the rest: ``other``).
        capital_measure: the firm-wide figure allocated to books: ``es`` or ``var``.
        capital_method: its method (empty: ``[risk] method``).
        budget_usd: per book, its risk budget in USD (a book without: null utilisation).
    """

    enabled: bool = True
    interval_s: PositiveFloat = 60.0
    capital_interval_s: PositiveFloat = 60.0
    var_half_width: Annotated[int, msgspec.Meta(ge=0)] = 0
    incremental_max: Annotated[int, msgspec.Meta(ge=0)] = 200
    top_positions: Annotated[int, msgspec.Meta(ge=0)] = 50
    capital_measure: Literal["es", "var"] = "es"
    capital_method: VarMethod | Literal[""] = ""
    budget_usd: dict[str, PositiveFloat] = {}


class BreakdownConfig(Protocol):
    """What the attribution and capital payloads read of ``[risk]``
    (:class:`engine.risk.report.RiskConfig`, which holds an :class:`AttributionConfig`)."""

    @property
    def attribution(self) -> AttributionConfig: ...

    @property
    def confidence(self) -> float: ...

    @property
    def es_confidence(self) -> float: ...

    @property
    def horizon_days(self) -> float: ...

    @property
    def method(self) -> VarMethod: ...

    @property
    def mc_scenarios(self) -> int: ...

    @property
    def mc_seed(self) -> int: ...


_DELTA_USD: Final = AGG_FIELDS.index("delta_usd")
_CASH_GAMMA: Final = AGG_FIELDS.index("cash_gamma")


SharedValues = dict[tuple[str, tuple[str, ...]], InstrumentValues]
"""The instruments' value changes by (method, underlyings): one scenario set each."""


def attribute(
    br: BookRisk,
    history: MoveHistory,
    cfg: BreakdownConfig,
    partitions: Sequence[att.Parts],
    shared: SharedValues | None = None,
) -> tuple[dict[str, list[att.Allocation]], dict[str, str], int]:
    """Every method's allocations of ``br`` over ``partitions``, each method's status and the
    days of moves used (fewer than 2: no method runs). ``shared``: the instruments' value
    changes in each scenario set, kept for the next book over the same underlyings (the
    historical window and the Monte Carlo draws depend on the underlyings alone)."""
    ac = cfg.attribution
    c, ce, h = cfg.confidence, cfg.es_confidence, cfg.horizon_days
    ret, dvol = history.moves(br.underlyings)
    n_days = ret.shape[0]
    why = not_valued(br, n_days)
    if why is not None:
        return {}, dict.fromkeys(VAR_METHODS, why), n_days
    u = len(br.underlyings)
    cov = history.covariance(br.underlyings)
    delta_usd = br.figures[:, _DELTA_USD]
    gamma_usd = 100.0 * br.figures[:, _CASH_GAMMA] + delta_usd
    d_pos, g_pos = att.position_greeks(br.positions, u, delta_usd, gamma_usd)
    book, hw, cap = br.positions, ac.var_half_width or None, ac.incremental_max
    out = {
        "delta_normal": att.delta_normal_allocation(d_pos, book, cov[:u, :u], partitions, c, ce, h),
        "delta_gamma": att.delta_gamma_allocation(
            d_pos, g_pos, book, cov[:u, :u], partitions, c, ce, h, cap
        ),
    }
    scale = math.sqrt(h)
    mc_ret, mc_dvol = var.mc_draws(cov, cfg.mc_scenarios, cfg.mc_seed, h)
    shared = {} if shared is None else shared
    for method, (r, v) in (
        ("historical", (ret * scale, dvol * scale)),
        ("monte_carlo", (mc_ret, mc_dvol)),
    ):
        key = (method, tuple(br.underlyings))
        values = shared.get(key)  # made once: each book over these underlyings reuses it
        if values is None:
            values = shared[key] = InstrumentValues(r, v, h)
        pnl = values.pnl(book, np.zeros(book.kind.size, np.int64), 1)[:, 0]
        total = var.empirical(pnl, c, ce, h, method=method.replace("_", " "))
        out[method] = att.scenario_allocation(
            book, r, v, h, total, pnl, partitions, hw, cap, values
        )
    return out, dict.fromkeys(VAR_METHODS, "ok"), n_days


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _breakdown(a: att.Allocation, top: int, counts: npt.NDArray[np.int64]) -> Breakdown:
    """A breakdown's payload; positions beyond the ``top`` largest |component ES| summed into
    ``other`` (their incremental and standalone figures are not additive: null)."""
    n = len(a.parts.labels)
    keep = np.arange(n)
    if a.parts.kind == "position" and n > top:
        keep = np.sort(np.argsort(-np.abs(a.component_es), kind="stable")[:top])
    units = a.parts.units if a.parts.units is not None else np.full(n, math.nan)
    per_unit = a.marginal_var_unit, a.marginal_es_unit
    parts = [
        PartFigures(
            label=a.parts.labels[k],
            positions=int(counts[k]),
            notional=float(a.notional[k]),
            component_var=_num(a.component_var[k]),
            component_es=_num(a.component_es[k]),
            marginal_var=_num(a.marginal_var[k]),
            marginal_es=_num(a.marginal_es[k]),
            incremental_var=_num(a.incremental_var[k]),
            incremental_es=_num(a.incremental_es[k]),
            standalone_var=_num(a.standalone_var[k]),
            standalone_es=_num(a.standalone_es[k]),
            quantity=_num(units[k]),
            marginal_var_per_unit=_num(per_unit[0][k]),
            marginal_es_per_unit=_num(per_unit[1][k]),
        )
        for k in keep.tolist()
    ]
    if keep.size < n:
        rest = np.ones(n, dtype=bool)
        rest[keep] = False
        cv, ce = float(a.component_var[rest].sum()), float(a.component_es[rest].sum())
        nt = float(a.notional[rest].sum())
        parts.append(
            PartFigures(
                label="other",
                positions=int(counts[rest].sum()),
                notional=nt,
                component_var=cv,
                component_es=ce,
                marginal_var=cv / nt if nt > 0.0 else None,
                marginal_es=ce / nt if nt > 0.0 else None,
                incremental_var=None,
                incremental_es=None,
                standalone_var=None,
                standalone_es=None,
                quantity=None,
                marginal_var_per_unit=None,
                marginal_es_per_unit=None,
            )
        )
    sv, se = float(a.standalone_var.sum()), float(a.standalone_es.sum())
    return Breakdown(
        by=a.parts.kind,
        parts=parts,
        standalone_var_sum=_num(sv),
        standalone_es_sum=_num(se),
        diversification_var=_num(sv - a.var.var),
        diversification_es=_num(se - a.var.es),
        ratio_var=_num(a.var.var / sv) if sv != 0.0 else None,
        ratio_es=_num(a.var.es / se) if se != 0.0 else None,
    )


def book_parts(
    br: BookRisk, books: Sequence[BookRisk] = (), holdings: Sequence[StrategyHolding] = ()
) -> list[att.Parts]:
    """The partitions of a book, the last by its strategy ``holdings`` (``books``: the firm's,
    whose positions are theirs in order, adds the partition by book first and labels
    positions and strategies ``book/...``)."""
    parts = att.parts_of(br)
    if books:
        sizes = [b.positions.kind.size for b in books]
        of = np.repeat(np.arange(len(books), dtype=np.int64), sizes)
        owner = [b.book for b in books for _ in range(b.positions.kind.size)]
        by_position = parts[-1]
        labels = [f"{o}/{x}" for o, x in zip(owner, by_position.labels, strict=True)]
        parts[-1] = att.Parts(by_position.kind, labels, by_position.of)
        parts.insert(0, att.Parts("book", [b.book for b in books], of))
    parts.append(att.strategy_parts(books or [br], holdings, prefix=bool(books)))
    return parts


def attribution_payload(
    br: BookRisk,
    history: MoveHistory,
    cfg: BreakdownConfig,
    now_ns: int,
    books: Sequence[BookRisk] = (),
    holdings: Sequence[StrategyHolding] = (),
    shared: SharedValues | None = None,
) -> tuple[AttributionPayload, dict[str, list[att.Allocation]]]:
    """The ``attribution`` payload of one book, or of the firm (``br`` =
    :func:`engine.risk.attribution.combine_books` of ``books``, which adds the breakdown by
    book), its breakdown by strategy over ``holdings`` (of every book: each takes its own),
    and the allocations it was made from. ``shared``: as :func:`attribute`'s."""
    partitions = book_parts(br, books, holdings)
    allocations, status, n_days = attribute(br, history, cfg, partitions, shared)
    top = cfg.attribution.top_positions
    methods = []
    for m in VAR_METHODS:
        allocs = allocations.get(m, [])
        total = allocs[0].var if allocs else None
        methods.append(
            MethodAttribution(
                method=m,
                status=status[m],
                var=None if total is None else _num(total.var),
                es=None if total is None else _num(total.es),
                breakdowns=[
                    _breakdown(a, top, np.bincount(a.parts.of, minlength=len(a.parts.labels)))
                    for a in allocs
                ],
            )
        )
    corr = _correlations(history, br.underlyings) if n_days >= 2 else []
    payload = AttributionPayload(
        ts_ns=now_ns,
        valuation_ts_ns=br.valuation_ns,
        book=br.book,
        underlyings=br.underlyings,
        confidence=cfg.confidence,
        es_confidence=cfg.es_confidence,
        horizon_days=cfg.horizon_days,
        history_days=n_days,
        positions=int(br.positions.kind.size),
        correlations=corr,
        methods=methods,
        strategy=STRATEGY_NOTE,
        units=_UNITS,
    )
    return payload, allocations


def _correlations(history: MoveHistory, underlyings: list[str]) -> list[list[float]]:
    u = len(underlyings)
    cov = history.covariance(underlyings)[:u, :u]
    sd = np.sqrt(np.diag(cov))
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = cov / np.outer(sd, sd)
    out: list[list[float]] = corr.tolist()
    return out


_UNITS: Final = {
    "var": "USD loss",
    "es": "USD loss",
    "component_var": "USD: Euler component, sums to var over a breakdown",
    "component_es": "USD: Euler component, sums to es over a breakdown",
    "marginal_var": "USD of VaR per USD of notional added pro rata",
    "marginal_es": "USD of ES per USD of notional added pro rata",
    "quantity": "units of the strategy held (strategy parts; else null)",
    "marginal_var_per_unit": "USD of VaR per unit of the strategy: component_var / quantity",
    "marginal_es_per_unit": "USD of ES per unit of the strategy: component_es / quantity",
    "incremental_var": "USD: var minus the VaR without the part",
    "incremental_es": "USD: es minus the ES without the part",
    "standalone_var": "USD: the part's VaR alone",
    "standalone_es": "USD: the part's ES alone",
    "notional": "USD: sum of |weight x price| of the part's positions (or slices)",
    "diversification_var": "USD: sum of standalone VaR minus var",
    "ratio_var": "var / sum of standalone VaR",
    "correlations": "of daily log-returns over the window",
}


def capital_payloads(
    firm: list[att.Allocation] | None,
    status: str,
    books: Sequence[str],
    cfg: BreakdownConfig,
    now_ns: int,
    valuation_ns: int,
) -> list[CapitalPayload]:
    """Each book's ``capital`` payload from the firm's allocation by book (``firm``: the
    allocations of the capital method, the first by book; None: ``status`` says why)."""
    ac = cfg.attribution
    method = ac.capital_method or cfg.method
    es = ac.capital_measure == "es"
    by_book = firm[0] if firm else None
    out = []
    for i, book in enumerate(books):
        budget = ac.budget_usd.get(book)
        cap = alone = total = None
        if by_book is not None:
            total = _num(by_book.var.es if es else by_book.var.var)
            cap = _num((by_book.component_es if es else by_book.component_var)[i])
            alone = _num((by_book.standalone_es if es else by_book.standalone_var)[i])
        out.append(
            CapitalPayload(
                ts_ns=now_ns,
                valuation_ts_ns=valuation_ns,
                book=book,
                method=method,
                measure=ac.capital_measure,
                firm_usd=total,
                capital_usd=cap,
                capital_share=None if cap is None or not total else cap / total,
                standalone_usd=alone,
                capital_budget_usd=budget,
                capital_utilisation=None if cap is None or budget is None else cap / budget,
                status=status if by_book is None else "ok",
                units=_CAPITAL_UNITS,
            )
        )
    return out


_CAPITAL_UNITS: Final = {
    "firm_usd": "USD loss: the firm-wide measure by method",
    "capital_usd": "USD: the book's Euler contribution to firm_usd",
    "capital_share": "fraction of firm_usd",
    "standalone_usd": "USD: the book's own measure alone",
    "capital_budget_usd": "USD",
    "capital_utilisation": "fraction of the budget: capital_usd / capital_budget_usd",
}


def attribution_payloads(
    books: Sequence[BookRisk],
    history: MoveHistory,
    cfg: BreakdownConfig,
    families: Sequence[str],
    now_ns: int,
    valuation_ns: int,
    holdings: Sequence[StrategyHolding] = (),
) -> list[tuple[str, AttributionPayload | CapitalPayload]]:
    """The due ``attribution`` (each book, and the firm under :data:`FIRM`) and ``capital``
    (each book) payloads, with their keys, the books' strategy ``holdings`` (copies: this may
    run in a worker thread) broken down."""
    out: list[tuple[str, AttributionPayload | CapitalPayload]] = []
    shared: SharedValues = {}  # books over the same underlyings revalue an instrument once
    if "attribution" in families:
        out += [
            (br.book, attribution_payload(br, history, cfg, now_ns, (), holdings, shared)[0])
            for br in books
        ]
    if "attribution" in families or "capital" in families:
        firm = att.combine_books(books, FIRM)
        payload, allocations = attribution_payload(
            firm, history, cfg, now_ns, books, holdings, shared
        )
        if "attribution" in families:
            out.append((FIRM, payload))
        if "capital" in families:
            method = cfg.attribution.capital_method or cfg.method
            status = next((m.status for m in payload.methods if m.method == method), "")
            capital = capital_payloads(
                allocations.get(method), status, [b.book for b in books], cfg, now_ns, valuation_ns
            )
            out += [(p.book, p) for p in capital]
    return out
