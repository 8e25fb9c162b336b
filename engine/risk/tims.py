"""Cboe/OCC-style customer portfolio margin in the pure core (Cboe Rule 10.4, FINRA Rule
4210(g), OCC's TIMS): each class (underlying) revalued at ten equidistant valuation points
across its range (+-15 % for equities and ETFs, -8 %/+6 % for high-cap broad-based indices),
the worst loss per class and per class group, and the minimum of $0.375 x multiplier per option
contract. Positions are revalued by :func:`engine.risk.scenarios.scenario_pnl` (European BSM or
Black-76) or by any :data:`~engine.risk.scenarios.Revaluation` passed in (the hook for an
American pricer). Units: USD per class and per group. Sources and approximations:
docs/margin.md#us-portfolio-margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.kernels import KIND_OPTION
from engine.risk.margin import pnl_by_underlying
from engine.risk.scenarios import Revaluation, ScenarioBook, scenario_pnl

__all__ = [
    "BROAD_INDEX_PM",
    "EQUITY_PM",
    "PortfolioMargin",
    "PortfolioMarginParams",
    "portfolio_margin",
    "valuation_moves",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class PortfolioMarginParams:
    """A class's valuation range and minimum.

    Attributes:
        down: the largest fall, relative (0.15: -15 %).
        up: the largest rise, relative.
        points_each_side: valuation points on each side of the price (5: ten in all).
        minimum_per_unit_usd: least requirement per option contract, USD per unit of its
            multiplier (0.375: $37.50 for a multiplier of 100).
    """

    down: float
    up: float
    points_each_side: int = 5
    minimum_per_unit_usd: float = 0.375

    def __post_init__(self) -> None:
        if not (0.0 < self.down < 1.0 and 0.0 < self.up < math.inf):
            raise ValueError(f"down must be in (0, 1) and up > 0, got {self.down}, {self.up}")
        if self.points_each_side < 1 or not self.minimum_per_unit_usd >= 0.0:
            raise ValueError("points_each_side must be >= 1 and minimum_per_unit_usd >= 0")


EQUITY_PM = PortfolioMarginParams(down=0.15, up=0.15)
"""Equities, ETFs (SPY), narrow-based indices: +-15 % in 3 % steps."""
BROAD_INDEX_PM = PortfolioMarginParams(down=0.08, up=0.06)
"""High-capitalisation broad-based indices (SPX, XSP, NDX): -8 % .. +6 %."""


def valuation_moves(params: PortfolioMarginParams) -> FloatArray:
    """The relative price moves of the valuation points: ``points_each_side`` equal steps down
    to -``down`` and up to +``up`` (no 0)."""
    steps = np.arange(1, params.points_each_side + 1) / params.points_each_side
    return np.concatenate([-params.down * steps[::-1], params.up * steps])


@dataclass(frozen=True, slots=True)
class PortfolioMargin:
    """Portfolio margin of a book, USD.

    Attributes:
        moves: (classes, points) each class's relative price moves.
        pnl: (classes, points) each class's P&L at each point.
        worst_loss: (classes,) each class's largest loss, >= 0.
        minimum: (classes,) $0.375 x multiplier x option contracts (long and short).
        class_requirement: (classes,) the larger of the two.
        groups: the class groups (indices of classes).
        group_requirement: (groups,) each group's requirement: the larger of its worst loss
            (its classes' P&L summed at each point, gains offsetting losses at
            ``group_offset``) and its classes' minimums.
        excluded: rows of the book that cannot be valued (left out).
    """

    moves: FloatArray
    pnl: FloatArray
    worst_loss: FloatArray
    minimum: FloatArray
    class_requirement: FloatArray
    groups: tuple[tuple[int, ...], ...]
    group_requirement: FloatArray
    excluded: npt.NDArray[np.int64]

    @property
    def total(self) -> float:
        """The book's requirement: the groups' summed."""
        return float(self.group_requirement.sum())


def _group_requirement(
    pnl: FloatArray, minimum: FloatArray, group: Sequence[int], offset: float
) -> float:
    """A group's worst loss, its classes' gains offsetting their losses at ``offset`` point by
    point, at least its classes' minimums."""
    p = pnl[list(group)]
    at_points = np.minimum(p, 0.0).sum(axis=0) + offset * np.maximum(p, 0.0).sum(axis=0)
    return max(0.0 - float(at_points.min()), float(minimum[list(group)].sum()))


def portfolio_margin(
    book: ScenarioBook,
    params: Sequence[PortfolioMarginParams],
    groups: Sequence[Sequence[int]] | None = None,
    group_offset: float = 0.0,
    revalue: Revaluation = scenario_pnl,
) -> PortfolioMargin:
    """Cboe/OCC customer portfolio margin by full revaluation.

    Each class (``book.und``) moves its price by its valuation moves, every position of it at
    once, vol and date unchanged; its P&L at each point is the change of its positions' value
    (``revalue``). A class requires the larger of its worst loss and its minimum ($0.375 x
    multiplier per option contract: ``minimum_per_unit_usd`` x |weight| of its options). A group
    of classes (e.g. SPX with SPY) sums its classes' P&L point by point, a gain counting
    ``group_offset`` of itself against the losses; each class alone is a group by default.

    Args:
        book: the positions (weight = contracts x multiplier); ``book.und`` indexes ``params``.
        params: one parameter set per class (classes of a group share the number of points).
        groups: class groups, each class in one at most (the others alone).
        group_offset: fraction of a class's gain that offsets another's loss in a group, [0, 1].
        revalue: the revaluation (default :func:`~engine.risk.scenarios.scenario_pnl`).

    Raises:
        ValueError: ``book.und`` does not index ``params``, a bad group or offset.
    """
    n = len(params)
    if n < 1 or (book.und.size and not (book.und.min() >= 0 and book.und.max() < n)):
        raise ValueError(f"book.und must index the {n} classes of params")
    if not 0.0 <= group_offset <= 1.0:
        raise ValueError(f"group_offset must be in [0, 1], got {group_offset!r}")
    grouped = [tuple(g) for g in groups or ()]
    seen = [c for g in grouped for c in g]
    if len(set(seen)) != len(seen) or not all(0 <= c < n for c in seen):
        raise ValueError(f"groups must hold each of the {n} classes once at most, got {groups}")
    if len({params[c].points_each_side for g in grouped for c in g}) > 1:
        raise ValueError("the classes of a group must share points_each_side")
    grouped += [(c,) for c in range(n) if c not in seen]
    moves = [valuation_moves(p) for p in params]
    width = max(m.size for m in moves)
    table = np.array([np.pad(m, (0, width - m.size)) for m in moves])  # (classes, points)
    zeros = np.zeros((width, book.und.size))
    pnl, excluded = pnl_by_underlying(book, n, np.log1p(table[book.und].T), zeros, 0.0, revalue)
    worst = 0.0 - np.minimum(pnl.min(axis=1), 0.0)
    option = book.kind == KIND_OPTION
    option[excluded] = False
    rates = np.array([p.minimum_per_unit_usd for p in params])
    units = np.bincount(book.und[option], np.abs(book.weight[option]), n)
    minimum = np.asarray(rates * units, dtype=np.float64)
    return PortfolioMargin(
        moves=table,
        pnl=pnl,
        worst_loss=worst,
        minimum=minimum,
        class_requirement=np.maximum(worst, minimum),
        groups=tuple(grouped),
        group_requirement=np.array(
            [_group_requirement(pnl, minimum, g, group_offset) for g in grouped]
        ),
        excluded=excluded,
    )
