"""Where the VaR and ES come from: marginal, component and incremental figures of the parts of a
book (its underlyings, expiries, positions and strategy holdings) for every method of
:mod:`engine.risk.var` (docs/risk.md#attribution). Pure: numpy arrays in, arrays out.

A *part* is a set of positions, or of slices of them (a strategy holding's share of each lot
it holds: :func:`strategy_parts`); scaling it by ``s`` multiplies their weights by ``s``. Every
method's VaR and ES are positively homogeneous of degree 1 in the weights (the P&L is linear in
them, and each measure scales with the P&L), so Euler's theorem gives

    Risk = Σₖ ∂Risk/∂sₖ  (at s = 1),

the **component** of part k being ∂Risk/∂sₖ: components sum to the total. The **marginal**
figure is the same derivative per USD of the part's notional (Σ |weight x price| of its
positions): what one more USD of notional, added pro rata, adds to the risk (Jorion's marginal
VaR for a single linear position). The **incremental** figure is the total minus the risk of
the book without the part, by full revaluation (scenario methods) or the closed form without
the part's Greeks (parametric).

How each method's derivative is taken:

- delta-normal: ∂VaR/∂d = z S d / σ, ∂ES/∂d = φ(z)/(1-c) S d / σ (S = N Σ): analytic Euler.
- delta-gamma Cornish-Fisher: the VaR and ES are smooth functions of (d, g) through the four
  exact cumulants; their gradient is taken by complex-step differentiation of that closed form
  (exact to rounding: no subtraction), a part's component is ∇_d·D_k + ∇_g·G_k.
- historical and Monte Carlo: the discrete ES is Σₛ wₛ Lₛ with Acerbi and Tasche's weights on
  the sorted losses, so a part's component ES is Σₛ wₛ (-Pₖ,ₛ): the mean P&L of the part over
  the tail scenarios (exact Euler). The VaR is one order statistic; its derivative is the part's
  loss in that one scenario, which is noise. Component VaR is smoothed instead: the part's mean
  loss over a window of scenarios around the VaR's rank with triangular weights (a kernel
  estimate of E[-Pₖ | L = VaR], which is ∂VaR/∂sₖ: Gourieroux, Laurent and Scaillet 2000;
  Hallerbach 2003; Epperlein and Smillie 2006), rescaled by VaR / (the window's weighted mean
  loss) so the components sum to the VaR exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from engine import kernels, part_kernels
from engine.lots import expiry_label
from engine.risk.scenarios import InstrumentValues, ScenarioBook, _check_book, book_scenario_pnl
from engine.risk.var import VaR, _rank, delta_gamma, delta_normal, empirical
from engine.state import BookRisk
from engine.units import DAYS_PER_YEAR

if TYPE_CHECKING:
    from engine.risk.strategies import StrategyHolding

__all__ = [
    "NO_STRATEGY",
    "PART_KINDS",
    "Allocation",
    "Parts",
    "combine_books",
    "delta_gamma_allocation",
    "delta_normal_allocation",
    "parts_of",
    "position_greeks",
    "scenario_allocation",
    "strategy_parts",
    "tail_weights",
    "var_window_weights",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
_N01 = NormalDist()

PART_KINDS: Final = ("underlying", "expiry", "position", "strategy")
"""The partitions of a book attribution publishes (for the firm, ``book`` before them). The one
by strategy partitions quantities, not positions (:func:`strategy_parts`)."""

NO_STRATEGY: Final = "(no strategy)"
"""The label of what strategy holdings leave of a book's lots (:func:`strategy_parts`)."""


@dataclass(frozen=True, slots=True)
class Parts:
    """A partition of a book's positions, ``of[i]`` being position i's part (labelled
    ``labels``), or of their quantities: with ``lot`` and ``share``, item j of ``of`` is a
    *slice*, ``share[j]`` of position ``lot[j]`` (its weight x ``share[j]``), and the slices
    of a position sum to it (their shares to 1). Every figure attributed is linear in a
    position's weight, so a slice's is its share of the position's.

    Attributes:
        units: per part, its quantity in units of what it holds (a strategy's: the holding's
            quantity); NaN where not counted so. None: not counted.
    """

    kind: str
    labels: list[str]
    of: IntArray
    lot: IntArray | None = None
    share: FloatArray | None = None
    units: FloatArray | None = None

    def rows(self, x: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """A per-position column ``x`` per item of ``of`` (each slice its position's)."""
        return x if self.lot is None else x[self.lot]

    def sliced(self, x: FloatArray, absolute: bool = False) -> FloatArray:
        """A per-position figure ``x`` per item of ``of``: each slice's share of its position's
        (``absolute``: of |share|, as for notional)."""
        if self.lot is None or self.share is None:
            return x
        share = np.abs(self.share) if absolute else self.share
        out: FloatArray = x[self.lot] * share
        return out

    def book(self, book: ScenarioBook, items: IntArray) -> ScenarioBook:
        """The rows of ``book`` of the ``items`` of ``of``: a slice is its position's row with
        the weight of its share."""
        lot = items if self.lot is None else self.lot[items]
        weight = book.weight[lot] * (1.0 if self.share is None else self.share[items])
        rows = ScenarioBook._make(np.ascontiguousarray(a[lot]) for a in book)
        out: ScenarioBook = rows._replace(weight=np.ascontiguousarray(weight))
        return out


@dataclass(frozen=True, slots=True)
class Allocation:
    """One method's VaR and ES split over one partition (USD; NaN where not computed).

    Attributes:
        component_var, component_es: Euler components; each sums to ``var.var``, ``var.es``.
        marginal_var, marginal_es: ∂Risk/∂s per USD of the part's notional (dimensionless).
        incremental_var, incremental_es: the risk minus the risk without the part.
        standalone_var, standalone_es: the part's own risk, alone.
        notional: Σ |weight x price| of the part's positions (or slices), USD.
        marginal_var_unit, marginal_es_unit: ∂Risk/∂s per unit of the part
            (``parts.units``; a strategy: Σ over its legs of ratio x ∂Risk/∂contract), USD;
            NaN where the part is not counted in units.
    """

    parts: Parts
    var: VaR
    component_var: FloatArray
    component_es: FloatArray
    marginal_var: FloatArray
    marginal_es: FloatArray
    incremental_var: FloatArray
    incremental_es: FloatArray
    standalone_var: FloatArray
    standalone_es: FloatArray
    notional: FloatArray
    marginal_var_unit: FloatArray
    marginal_es_unit: FloatArray


def parts_of(br: BookRisk) -> list[Parts]:
    """The book's positions by underlying, by expiry (across underlyings: a calendar bucket,
    ISO 8601 UTC, ``perpetual`` or ``spot``) and one part per position (its instrument)."""
    n = br.positions.kind.size
    rows, at = np.unique(br.rows, return_inverse=True)  # each instrument's label once
    at = at.reshape(-1)  # each position's instrument among ``rows``
    defs = [br.defs[r] for r in rows.tolist()]
    expiries = [expiry_label(d.expiry_ns, d.kind) for d in defs]
    labels = sorted(set(expiries))
    index = {e: k for k, e in enumerate(labels)}
    bucket = np.array([index[e] for e in expiries], dtype=np.int64)
    names = [defs[k].name for k in at.tolist()]
    return [
        Parts("underlying", list(br.underlyings), br.positions.und.astype(np.int64)),
        Parts("expiry", labels, bucket[at]),
        Parts("position", names, np.arange(n, dtype=np.int64)),
    ]


def strategy_parts(
    books: Sequence[BookRisk], holdings: Sequence[StrategyHolding], prefix: bool = False
) -> Parts:
    """The positions of ``books`` (in order, as :func:`combine_books` puts them together) split
    by strategy holding (docs/risk.md#attribution-by-strategy): each holding of a book takes, of
    the book's lot in each leg's instrument, the holding's quantity x the leg's ratio
    (contracts: its weight is that x the contract multiplier), and what the holdings leave of
    each lot is the part :data:`NO_STRATEGY` (negative where they hold more than the lot).
    Labels: a book's holdings by their text form, then its rest (``prefix``: ``book/`` before
    each, a rest per book). ``units``: each holding's quantity (NaN for a rest, and for a
    holding with a leg whose lot is closed: that leg nets to 0 in the book, is no position, and
    is left out of the holding and of the rest alike). Holdings of other books are ignored."""
    labels: list[str] = []
    units: list[float] = []
    lot: list[int] = []
    share: list[float] = []
    of: list[int] = []
    offset = 0
    for br in books:
        n = br.positions.kind.size
        weight = br.positions.weight
        taken = np.zeros(n)
        head = f"{br.book}/" if prefix else ""
        mine = sorted((h for h in holdings if h.book == br.book and h.quantity != 0.0),
                      key=lambda h: h.text)  # fmt: skip
        index = {name: i for i, name in enumerate(br.instruments)} if mine else {}
        for h in mine:
            k = len(labels)
            labels.append(head + h.text)
            units.append(h.quantity)
            for leg in h.strategy.legs:
                i = index.get(leg.instrument.name)
                if i is None:
                    units[k] = math.nan
                    continue
                w = h.quantity * leg.ratio * br.defs[int(br.rows[i])].multiplier
                taken[i] += w / weight[i]
                lot.append(offset + i)
                share.append(w / weight[i])
                of.append(k)
        rest = 1.0 - taken
        left = np.flatnonzero(np.abs(rest) > _WHOLE)
        if left.size:
            labels.append(head + NO_STRATEGY)
            units.append(math.nan)
            lot += (offset + left).tolist()
            share += rest[left].tolist()
            of += [len(labels) - 1] * left.size
        offset += n
    return Parts(
        "strategy",
        labels,
        np.array(of, dtype=np.int64),
        lot=np.array(lot, dtype=np.int64),
        share=np.array(share, dtype=np.float64),
        units=np.array(units, dtype=np.float64),
    )


_WHOLE: Final = 1e-12
"""What the holdings leave of a lot, as a share of it, below which nothing is left: a lot
held by holdings of quantities 0.1 and 0.2 in 0.3 is theirs whole, not 5.6e-17 of it left."""


def combine_books(books: Sequence[BookRisk], name: str = "*") -> BookRisk:
    """All ``books`` as one (firm-wide): their positions together, underlyings merged (sorted),
    exposure figures summed per underlying. The books must come from one portfolio copy."""
    unds = sorted({u for br in books for u in br.underlyings})
    col = {u: k for k, u in enumerate(unds)}
    figures = np.zeros((len(unds), books[0].figures.shape[1])) if books else np.zeros((0, 0))
    prices = np.full(len(unds), math.nan)
    cols: list[list[Any]] = [[] for _ in ScenarioBook._fields]
    for br in books:
        remap = np.array([col[u] for u in br.underlyings], dtype=np.int64)
        figures[remap] += br.figures
        prices[remap] = np.where(np.isnan(prices[remap]), br.prices, prices[remap])
        book = br.positions._replace(
            und=remap[br.positions.und] if remap.size else br.positions.und
        )
        for k, a in enumerate(book):
            cols[k].append(a)
    positions = ScenarioBook(*(np.ascontiguousarray(np.concatenate(c)) for c in cols))
    return BookRisk(
        book=name,
        valuation_ns=max((br.valuation_ns for br in books), default=0),
        underlyings=unds,
        positions=positions,
        figures=figures,
        prices=prices,
        rows=np.concatenate([br.rows for br in books]) if books else np.zeros(0, np.int64),
        defs=books[0].defs if books else [],
    )


def notional_usd(book: ScenarioBook) -> FloatArray:
    """Each position's notional, USD: |weight x price| (inverse futures: |weight|, USD)."""
    linear = (book.kind != kernels.KIND_OPTION) & (book.kind != kernels.KIND_SPOT)
    out: FloatArray = np.where(
        book.inverse & linear, np.abs(book.weight), np.abs(book.weight * book.X)
    )
    return out


def position_greeks(
    book: ScenarioBook,
    n_underlyings: int,
    delta_usd: FloatArray | None = None,
    gamma_usd: FloatArray | None = None,
) -> tuple[FloatArray, FloatArray]:
    """Each position's USD delta and gamma in the log-return (dP/dr, d²P/dr²) by central
    differences of its full revaluation (r = ±1e-3, no time passing), then adjusted so that
    per underlying they sum to the book's ``delta_usd`` and ``gamma_usd`` (what the parametric
    VaR is computed from): the difference, rounding and the exposures' own conventions, is
    spread over the underlying's positions in proportion to their absolute figure. Without
    targets: the differences as they are."""
    _check_book(book)
    h = 1e-3
    n = book.kind.size
    ret = np.repeat(np.array([[-h], [h]]), max(n_underlyings, 1), axis=1)
    out = np.empty((2, n))
    part_kernels.part_pnl_kernel(
        book, ret, np.zeros_like(ret), 0.0, np.arange(n, dtype=np.int64), out
    )
    d = (out[1] - out[0]) / (2.0 * h)
    g = (out[1] + out[0]) / (h * h)
    if delta_usd is not None:
        d = _adjusted(d, book.und, delta_usd)
    if gamma_usd is not None:
        g = _adjusted(g, book.und, gamma_usd)
    return d, g


def _adjusted(x: FloatArray, und: IntArray, target: FloatArray) -> FloatArray:
    u = target.size
    gap = target - np.bincount(und, x, minlength=u)
    scale = np.bincount(und, np.abs(x), minlength=u)
    share = np.where(scale[und] > 0.0, np.abs(x) / np.where(scale[und] > 0.0, scale[und], 1.0), 0)
    count = np.bincount(und, minlength=u).astype(np.float64)
    equal = np.where(scale[und] > 0.0, 0.0, 1.0 / np.maximum(count[und], 1.0))
    out: FloatArray = x + gap[und] * (share + equal)
    return out


def _by_part(x: FloatArray, parts: Parts, absolute: bool = False) -> FloatArray:
    """A per-position figure summed by part (a slice: its share; ``absolute``: |share|)."""
    out: FloatArray = np.bincount(
        parts.of, parts.sliced(x, absolute), minlength=len(parts.labels)
    ).astype(np.float64)
    return out


def _allocation(
    parts: Parts,
    total: VaR,
    pos_var: FloatArray,
    pos_es: FloatArray,
    notional: FloatArray,
    without: tuple[FloatArray, FloatArray],
    alone: tuple[FloatArray, FloatArray],
) -> Allocation:
    """The allocation of ``total`` over ``parts`` from each position's Euler component and
    each part's (VaR, ES) without it and alone."""
    cv, ce = _by_part(pos_var, parts), _by_part(pos_es, parts)
    nt = _by_part(notional, parts, absolute=True)
    units = parts.units if parts.units is not None else np.full(len(parts.labels), math.nan)
    return Allocation(
        parts=parts,
        var=total,
        component_var=cv,
        component_es=ce,
        marginal_var=_per_notional(cv, nt),
        marginal_es=_per_notional(ce, nt),
        incremental_var=total.var - without[0],
        incremental_es=total.es - without[1],
        standalone_var=alone[0],
        standalone_es=alone[1],
        notional=nt,
        marginal_var_unit=_per_notional(cv, units, signed=True),
        marginal_es_unit=_per_notional(ce, units, signed=True),
    )


def _per_notional(component: FloatArray, size: FloatArray, signed: bool = False) -> FloatArray:
    """``component / size`` where the size is > 0 (``signed``: not 0 and finite), else NaN."""
    ok = (size != 0.0) & np.isfinite(size) if signed else size > 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        out: FloatArray = np.where(ok, component / size, math.nan)
    return out


# ------------------------------------------------------------------------------ parametric


def delta_normal_allocation(
    d_pos: FloatArray,
    book: ScenarioBook,
    cov: FloatArray,
    partitions: Sequence[Parts],
    confidence: float,
    es_confidence: float,
    horizon_days: float,
) -> list[Allocation]:
    """Delta-normal attribution (analytic Euler, Jorion's component VaR): position i of USD
    delta dᵢ on underlying uᵢ has component z dᵢ (Sd)ᵤ / σ of the VaR, φ(z)/(1-c) dᵢ (Sd)ᵤ / σ
    of the ES; incremental: the closed form with the part's deltas taken out."""
    u = cov.shape[0]
    d = np.bincount(book.und, d_pos, minlength=u)
    total = delta_normal(d, cov, confidence, es_confidence, horizon_days)
    s = cov * horizon_days
    sigma = math.sqrt(max(float(d @ s @ d), 0.0))
    beta = s @ d / sigma if sigma > 0.0 else np.zeros(u)
    z = _N01.inv_cdf(confidence)
    ze = _N01.inv_cdf(1.0 - es_confidence)
    k_es = _N01.pdf(ze) / (1.0 - es_confidence)
    unit = d_pos * beta[book.und]  # σ's Euler share of each position
    notional = notional_usd(book)

    def risk(dk: FloatArray) -> tuple[FloatArray, FloatArray]:
        sig = np.sqrt(np.maximum(np.einsum("ku,uv,kv->k", dk, s, dk), 0.0))
        return z * sig, k_es * sig

    out = []
    for parts in partitions:
        dk = np.zeros((len(parts.labels), u))
        np.add.at(dk, (parts.of, parts.rows(book.und)), parts.sliced(d_pos))
        without, alone = risk(d[None, :] - dk), risk(dk)
        out.append(_allocation(parts, total, z * unit, k_es * unit, notional, without, alone))
    return out


def _dg_loss(
    d: Any, g: Any, s: FloatArray, confidence: float, es_confidence: float
) -> tuple[Any, Any]:
    """Delta-gamma Cornish-Fisher VaR and ES of (d, g), in arithmetic that takes complex
    arguments (for complex-step derivatives): :func:`engine.risk.var.delta_gamma_moments` and
    :func:`engine.risk.var.cornish_fisher` written without ``float``."""
    m = g[:, None] * s
    m2 = m @ m
    sd = s @ d
    k1 = 0.5 * np.trace(m)
    k2 = d @ sd + 0.5 * np.trace(m2)
    k3 = 3.0 * (sd @ (g * sd)) + np.trace(m2 @ m)
    k4 = 12.0 * (sd @ (g * (s @ (g * sd)))) + 3.0 * np.trace(m2 @ m2)
    sigma = np.sqrt(k2)
    sk, ku = k3 / k2**1.5, k4 / (k2 * k2)
    z = _N01.inv_cdf(1.0 - confidence)
    w = z + (z * z - 1.0) * sk / 6.0 + (z**3 - 3.0 * z) * ku / 24.0
    w = w - (2.0 * z**3 - 5.0 * z) * sk * sk / 36.0
    ae = 1.0 - es_confidence
    ze = _N01.inv_cdf(ae)
    tail = 1.0 + sk * ze / 6.0 + ku * (ze * ze - 1.0) / 24.0
    tail = tail - sk * sk * (2.0 * ze * ze - 1.0) / 36.0
    return -(k1 + sigma * w), -(k1 - sigma * _N01.pdf(ze) / ae * tail)


def _dg_gradient(
    d: FloatArray, g: FloatArray, s: FloatArray, confidence: float, es_confidence: float
) -> tuple[FloatArray, FloatArray]:
    """∂(VaR, ES)/∂(d, g): rows (VaR, ES), columns d then g, by complex steps of 1e-30."""
    u = d.size
    grad = np.zeros((2, 2 * u))
    h = 1e-30
    x = np.concatenate([d, g]).astype(np.complex128)
    for j in range(2 * u):
        x[j] += 1j * h
        v, e = _dg_loss(x[:u], x[u:], s, confidence, es_confidence)
        grad[:, j] = np.imag(v) / h, np.imag(e) / h
        x[j] -= 1j * h
    return grad[0], grad[1]


def delta_gamma_allocation(
    d_pos: FloatArray,
    g_pos: FloatArray,
    book: ScenarioBook,
    cov: FloatArray,
    partitions: Sequence[Parts],
    confidence: float,
    es_confidence: float,
    horizon_days: float,
    incremental_max: int = 200,
) -> list[Allocation]:
    """Delta-gamma Cornish-Fisher attribution: position i's component is
    ∂Risk/∂d_{uᵢ} dᵢ + ∂Risk/∂g_{uᵢ} gᵢ (the gradient of the closed form by complex steps);
    incremental and standalone: the closed form without the part and of the part alone, for a
    partition of at most ``incremental_max`` parts (else NaN)."""
    u = cov.shape[0]
    d = np.bincount(book.und, d_pos, minlength=u).astype(np.float64)
    g = np.bincount(book.und, g_pos, minlength=u).astype(np.float64)
    total = delta_gamma(d, g, cov, confidence, es_confidence, horizon_days)
    s = cov * horizon_days
    if float(d @ s @ d) + 0.5 * float(np.trace((g[:, None] * s) @ (g[:, None] * s))) > 0.0:
        gv, ge = _dg_gradient(d, g, s, confidence, es_confidence)
    else:
        gv = ge = np.zeros(2 * u)
    pos_v = gv[:u][book.und] * d_pos + gv[u:][book.und] * g_pos
    pos_e = ge[:u][book.und] * d_pos + ge[u:][book.und] * g_pos
    notional = notional_usd(book)
    out = []
    for parts in partitions:
        p = len(parts.labels)
        fig = np.full((4, p), math.nan)  # VaR, ES without the part; VaR, ES of it alone
        und, ds, gs = parts.rows(book.und), parts.sliced(d_pos), parts.sliced(g_pos)
        for k in range(p if p <= incremental_max else 0):
            mine = parts.of == k
            for row, keep in ((0, ~mine), (2, mine)):
                dk = np.bincount(und[keep], ds[keep], minlength=u)
                gk = np.bincount(und[keep], gs[keep], minlength=u)
                f = delta_gamma(dk, gk, cov, confidence, es_confidence, horizon_days)
                fig[row, k], fig[row + 1, k] = f.var, f.es
        out.append(
            _allocation(parts, total, pos_v, pos_e, notional, (fig[0], fig[1]), (fig[2], fig[3]))
        )
    return out


# --------------------------------------------------------------------- scenario methods


def tail_weights(pnl: FloatArray, es_confidence: float) -> FloatArray:
    """Each scenario's weight in the discrete ES (Acerbi and Tasche): ES = Σₛ wₛ (-pnlₛ)."""
    n = pnl.size
    order = np.argsort(-pnl, kind="stable")  # losses ascending
    k = _rank(n, es_confidence)
    w = np.zeros(n)
    w[order[k:]] = 1.0
    w[order[k - 1]] = k - n * es_confidence
    out: FloatArray = w / (n * (1.0 - es_confidence))
    return out


def var_window_weights(pnl: FloatArray, confidence: float, half_width: int) -> FloatArray:
    """Triangular weights (summing to 1) on the scenarios whose loss ranks within
    ``half_width`` of the VaR's rank k = ⌈n c⌉: rank k - j weighs half_width + 1 - |j|."""
    n = pnl.size
    order = np.argsort(-pnl, kind="stable")
    k = _rank(n, confidence) - 1
    lo, hi = max(k - half_width, 0), min(k + half_width, n - 1)
    ranks = np.arange(lo, hi + 1)
    w = np.zeros(n)
    w[order[ranks]] = half_width + 1.0 - np.abs(ranks - k)
    out: FloatArray = w / w.sum()
    return out


def default_half_width(n: int, confidence: float) -> int:
    """The VaR window's half-width: a tenth of the scenarios beyond the VaR, at least 1
    (250 days at 99 %: 1, three scenarios; 10,000 draws: 10, twenty-one)."""
    return max(1, round(0.1 * n * (1.0 - confidence)))


def scenario_allocation(
    book: ScenarioBook,
    ret: FloatArray,
    dvol: FloatArray,
    horizon_days: float,
    total: VaR,
    pnl: FloatArray,
    partitions: Sequence[Parts],
    half_width: int | None = None,
    incremental_max: int = 200,
    values: InstrumentValues | None = None,
) -> list[Allocation]:
    """Historical or Monte Carlo attribution of ``total`` (:func:`engine.risk.var.empirical` of
    ``pnl``, the book's P&L in the scenarios ``ret``, ``dvol``, already scaled to the horizon).

    Component ES: each part's P&L over the tail scenarios with the ES's weights; component VaR:
    over the VaR's window, rescaled to sum to the VaR (module docstring). Only the scenarios
    with a weight are revalued position by position. Incremental: the risk of ``pnl`` minus the
    part's P&L in every scenario (a full revaluation by part), and standalone: the risk of that
    P&L alone, for a partition of at most ``incremental_max`` parts (else NaN); the P&L by part
    revalued per distinct instrument (:func:`_part_pnl`), or taken from ``values`` (the
    instruments' value changes in these scenarios, shared with other books)."""
    n = pnl.size
    hw = default_half_width(n, total.var_confidence) if half_width is None else half_width
    w_es = tail_weights(pnl, total.es_confidence)
    w_var = var_window_weights(pnl, total.var_confidence, hw)
    sel = np.flatnonzero((w_es != 0.0) | (w_var != 0.0))
    n_pos = book.kind.size
    weights = np.ascontiguousarray(np.stack([w_es[sel], w_var[sel]]))
    per_set = np.empty((2, n_pos))
    part_kernels.weighted_pnl_kernel(
        book, np.ascontiguousarray(ret[sel]), np.ascontiguousarray(dvol[sel]),
        horizon_days / DAYS_PER_YEAR, weights, per_set,
    )  # fmt: skip
    pos_es, pos_var = -per_set[0], -per_set[1]
    smoothed = float(pos_var.sum())
    if smoothed != 0.0 and smoothed * total.var > 0.0:
        pos_var *= total.var / smoothed
    else:  # no usable window: the VaR scenario alone (its loss is the VaR exactly)
        at = np.argsort(-pnl, kind="stable")[_rank(n, total.var_confidence) - 1]
        one = slice(at, at + 1)
        pos_var = -_part_pnl(book, ret[one], dvol[one], horizon_days, np.arange(n_pos), n_pos)[0]
    notional = notional_usd(book)
    out = []
    for parts in partitions:
        p = len(parts.labels)
        fig = np.full((4, p), math.nan)  # VaR, ES without the part; VaR, ES of it alone
        if p <= incremental_max:
            by_part = _pnl_by_part(book, ret, dvol, horizon_days, parts, pnl, values)
            c, ce = total.var_confidence, total.es_confidence
            for k in range(p):
                rest, alone = empirical(pnl - by_part[:, k], c, ce), empirical(by_part[:, k], c, ce)
                fig[:, k] = rest.var, rest.es, alone.var, alone.es
        out.append(
            _allocation(parts, total, pos_var, pos_es, notional, (fig[0], fig[1]), (fig[2], fig[3]))
        )
    return out


def _pnl_by_part(
    book: ScenarioBook,
    ret: FloatArray,
    dvol: FloatArray,
    horizon_days: float,
    parts: Parts,
    pnl: FloatArray,
    values: InstrumentValues | None = None,
) -> FloatArray:
    """P&L (USD) per (scenario, part) of ``parts``, by revaluation of every part but the
    one of the most positions or slices (or from ``values``): that one's is the book's ``pnl``
    minus the others' (the parts of a partition sum to the book)."""
    p = len(parts.labels)
    big = int(np.argmax(np.bincount(parts.of, minlength=p)))
    items = np.flatnonzero(parts.of != big)
    sub = parts.book(book, items)
    if values is not None:
        out = values.pnl(sub, parts.of[items], p)
    else:
        out = _part_pnl(sub, ret, dvol, horizon_days, parts.of[items], p)
    out[:, big] = pnl - out.sum(axis=1)
    return out


def _part_pnl(
    book: ScenarioBook,
    ret: FloatArray,
    dvol: FloatArray,
    horizon_days: float,
    of: IntArray,
    n_parts: int,
) -> FloatArray:
    """P&L (USD) per (scenario, part), each distinct instrument revalued once per scenario
    (:func:`~engine.risk.scenarios.book_scenario_pnl`, the parts its books): full
    revaluation's figures to about 1e-13 relative."""
    res = book_scenario_pnl(book, ret, dvol, horizon_days, of, n_parts)
    return np.ascontiguousarray(res.pnl.T)
