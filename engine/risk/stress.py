"""Stress grid: a book's P&L under every pair of a spot shock and a vol shock, by full
revaluation of each distinct instrument (docs/risk.md)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.risk.scenarios import ScenarioBook, book_scenario_pnl, stacked

__all__ = ["DEFAULT_SPOT_SHOCKS", "DEFAULT_VOL_SHOCKS", "StressGrid", "stress_grid", "stress_grids"]

FloatArray = npt.NDArray[np.float64]

DEFAULT_SPOT_SHOCKS: tuple[float, ...] = tuple(round(-0.30 + 0.05 * i, 2) for i in range(13))
"""Relative spot moves: -30 % to +30 % in steps of 5 % (13)."""
DEFAULT_VOL_SHOCKS: tuple[float, ...] = (-0.50, -0.25, 0.0, 0.25, 0.50, 0.75, 1.00)
"""Relative vol moves: -50 % to +100 % of each vol (7)."""


@dataclass(frozen=True, slots=True)
class StressGrid:
    """``pnl[i, j]``: the book's P&L in USD when every underlying moves by ``spot[i]`` (relative:
    the price becomes X (1 + spot)) and every vol by ``vol[j]`` (relative: sigma (1 + vol)),
    ``horizon_days`` later; ``excluded``: rows of the book that cannot be valued now."""

    spot: FloatArray
    vol: FloatArray
    pnl: FloatArray
    horizon_days: float
    excluded: npt.NDArray[np.int64]


def _shocks(spot_shocks: npt.ArrayLike, vol_shocks: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The shocks as float arrays, checked."""
    spot = np.asarray(spot_shocks, dtype=np.float64)
    vol = np.asarray(vol_shocks, dtype=np.float64)
    if spot.ndim != 1 or vol.ndim != 1 or not (spot.size and vol.size):
        raise ValueError("spot_shocks and vol_shocks must be non-empty 1-D sequences")
    if not (np.all(np.isfinite(spot)) and np.all(spot > -1.0) and np.all(np.isfinite(vol))):
        raise ValueError("spot_shocks must be finite and > -1, vol_shocks finite")
    return spot, vol


def stress_grids(
    books: Sequence[ScenarioBook],
    spot_shocks: npt.ArrayLike = DEFAULT_SPOT_SHOCKS,
    vol_shocks: npt.ArrayLike = DEFAULT_VOL_SHOCKS,
    horizon_days: float = 0.0,
) -> list[StressGrid]:
    """The stress grid of each of ``books``, all of them in one revaluation per distinct
    instrument (:func:`~engine.risk.scenarios.book_scenario_pnl`): the grid moves every
    underlying alike, so the books' positions are stacked, each with its book, into one
    book over one column of moves (``book.und`` is not read), and an instrument held in
    many books is revalued once per grid cell. The figures are full revaluation's, book by
    book, to about 1e-13 relative.

    Args:
        books: each book's positions.
        spot_shocks, vol_shocks, horizon_days: as :func:`stress_grid`'s.
    """
    spot, vol = _shocks(spot_shocks, vol_shocks)
    if not books:
        return []
    every, which = stacked(books)
    ret = np.repeat(np.log1p(spot), vol.size)[:, None]  # row i * n_vol + j: spot i, vol j
    dvol = np.tile(vol, spot.size)[:, None]
    res = book_scenario_pnl(
        every._replace(und=np.zeros_like(which)), ret, dvol, horizon_days, which, len(books)
    )
    start = np.concatenate([[0], np.cumsum([b.kind.shape[0] for b in books])])
    cut = np.searchsorted(res.excluded, start)
    return [
        StressGrid(
            spot=spot,
            vol=vol,
            pnl=res.pnl[b].reshape(spot.size, vol.size),
            horizon_days=horizon_days,
            excluded=res.excluded[cut[b] : cut[b + 1]] - start[b],
        )
        for b in range(len(books))
    ]


def stress_grid(
    book: ScenarioBook,
    n_underlyings: int,
    spot_shocks: npt.ArrayLike = DEFAULT_SPOT_SHOCKS,
    vol_shocks: npt.ArrayLike = DEFAULT_VOL_SHOCKS,
    horizon_days: float = 0.0,
) -> StressGrid:
    """Revalue ``book`` under every (spot shock, vol shock) pair, all underlyings together
    (:func:`stress_grids` of one book).

    Args:
        book: the positions (``book.und`` < ``n_underlyings``).
        n_underlyings: columns of the scenario moves.
        spot_shocks: relative spot moves, each > -1.
        vol_shocks: relative vol moves (a vol is floored at 1 % of itself, as in scenarios).
        horizon_days: days ahead the grid is valued (0: now).
    """
    if n_underlyings < 1:
        raise ValueError(f"n_underlyings must be >= 1, got {n_underlyings!r}")
    und = book.und
    if (
        isinstance(und, np.ndarray)
        and und.size
        and not (und.min() >= 0 and und.max() < n_underlyings)
    ):
        raise ValueError(f"book.und must index the {n_underlyings} underlyings")
    return stress_grids([book], spot_shocks, vol_shocks, horizon_days)[0]
