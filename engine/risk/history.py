"""The rolling window of recorded market moves behind historical VaR and the covariance of the
parametric and Monte Carlo methods (docs/risk.md, "Recorded moves").

A *level* is an underlying's price and its volatility level (a decimal, or None when unknown)
on one day. The move of a day is taken against the previous recorded day of that underlying,
when that is at most :data:`MAX_GAP_DAYS` before it (a weekend, a holiday; a longer gap is not a
one-day move and gives none): the log-return ``ln(p / p_prev)`` and the relative vol move
``vol / vol_prev - 1`` (0 when either vol is unknown). The window keeps the last ``days``
levels per underlying. A file seeds it at start: CSV with the header ``date,underlying,price,vol``
(ISO dates; ``vol`` may be empty).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["HISTORY_HEADER", "MAX_GAP_DAYS", "MoveHistory"]

FloatArray = npt.NDArray[np.float64]

HISTORY_HEADER = ("date", "underlying", "price", "vol")
"""The seed file's header."""
MAX_GAP_DAYS = 4
"""The most calendar days between two recorded levels that still make a move."""


class MoveHistory:
    """Daily levels per underlying and the one-day moves between them.

    Args:
        days: levels kept per underlying (the window holds ``days - 1`` moves).

    Raises:
        ValueError: ``days`` < 2.
    """

    __slots__ = ("_days", "_levels", "_moves")

    def __init__(self, days: int) -> None:
        if days < 2:
            raise ValueError(f"days must be >= 2, got {days!r}")
        self._days = days
        self._levels: dict[str, deque[tuple[dt.date, float, float]]] = {}
        self._moves: dict[tuple[str, ...], tuple[FloatArray, FloatArray]] = {}

    def record(self, day: dt.date, underlying: str, price: float, vol: float | None) -> None:
        """Record ``underlying``'s level on ``day``; a second record for the same day replaces
        the first. Days must not go back.

        Raises:
            ValueError: a price that is not finite and > 0, a vol that is not finite and > 0,
                or a day before the underlying's last recorded day.
        """
        if not (math.isfinite(price) and price > 0.0):
            raise ValueError(f"{underlying} {day}: price must be finite and > 0, got {price!r}")
        if vol is not None and not (math.isfinite(vol) and vol > 0.0):
            raise ValueError(f"{underlying} {day}: vol must be finite and > 0, got {vol!r}")
        self._moves.clear()
        levels = self._levels.setdefault(underlying, deque(maxlen=self._days))
        if levels and levels[-1][0] > day:
            raise ValueError(f"{underlying} {day}: before the last recorded day {levels[-1][0]}")
        if levels and levels[-1][0] == day:
            levels.pop()
        levels.append((day, price, math.nan if vol is None else vol))

    def record_due(
        self,
        now_ns: int,
        record_at_utc: str,
        prices: Iterable[tuple[str, float]],
        vols: Mapping[str, float],
    ) -> list[tuple[dt.date, str, float, float | None]]:
        """Record each underlying's level of the day once the day's ``record_at_utc`` (UTC
        ``HH:MM``) has passed, unless it is recorded already: its price from ``prices`` (an
        index price; one not finite and > 0 is skipped) and its vol level from ``vols`` (absent:
        unknown). Returns the levels recorded, for the caller to keep (the history file)."""
        at = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC)
        hh, mm = map(int, record_at_utc.split(":"))
        if (at.hour, at.minute) < (hh, mm):
            return []
        day = at.date()
        out: list[tuple[dt.date, str, float, float | None]] = []
        for und, price in prices:
            last = self.last_day(und)
            if (last is None or last < day) and math.isfinite(price) and price > 0.0:
                vol = vols.get(und)
                self.record(day, und, price, vol)
                out.append((day, und, price, vol))
        return out

    def last_day(self, underlying: str) -> dt.date | None:
        """The last day recorded for ``underlying`` (None: none)."""
        levels = self._levels.get(underlying)
        return levels[-1][0] if levels else None

    def moves(self, underlyings: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """The one-day moves of the days on which every one of ``underlyings`` moved, oldest
        first: log-returns and relative vol moves, each (days, len(underlyings)). No days (an
        underlying never recorded twice): both (0, len(underlyings)). Computed once until the
        next record (a risk period asks for the same underlyings book after book); each call
        gets its own copy."""
        key = tuple(underlyings)
        kept = self._moves.get(key)  # one lookup: a record may clear it meanwhile
        if kept is None:
            kept = self._moves[key] = self._compute_moves(key)
        return kept[0].copy(), kept[1].copy()

    def _compute_moves(self, underlyings: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        per: list[dict[dt.date, tuple[float, float]]] = []
        for u in underlyings:
            levels = list(self._levels.get(u, ()))
            per.append(
                {
                    d: (math.log(p / p0), v / v0 - 1.0 if math.isfinite(v / v0) else 0.0)
                    for (d0, p0, v0), (d, p, v) in itertools.pairwise(levels)
                    if (d - d0).days <= MAX_GAP_DAYS
                }
            )
        common = sorted(set.intersection(*(set(m) for m in per))) if per else []
        ret = np.array([[m[d][0] for m in per] for d in common]).reshape(len(common), len(per))
        dvol = np.array([[m[d][1] for m in per] for d in common]).reshape(len(common), len(per))
        return ret, dvol

    def covariance(self, underlyings: Sequence[str]) -> FloatArray:
        """The one-day covariance of the moves, zero-mean (``X'X / n``, as RiskMetrics): 2U x 2U,
        the log-returns of the U underlyings first, then their relative vol moves.

        Raises:
            ValueError: fewer than 2 common days.
        """
        ret, dvol = self.moves(underlyings)
        if ret.shape[0] < 2:
            raise ValueError(f"{ret.shape[0]} common days of moves; need at least 2")
        x = np.hstack([ret, dvol])
        cov: FloatArray = x.T @ x / x.shape[0]
        return cov

    def load_csv(self, text: str, source: str = "history") -> int:
        """Record every row of a seed file (header :data:`HISTORY_HEADER`); returns how many.

        Raises:
            ValueError: a bad header or row, named by ``source`` and its line.
        """
        rows = [
            (n, [c.strip() for c in row])
            for n, row in enumerate(csv.reader(text.splitlines()), start=1)
            if row and not row[0].lstrip().startswith("#")
        ]
        if not rows or tuple(rows[0][1]) != HISTORY_HEADER:
            raise ValueError(f"{source}: the header must be {','.join(HISTORY_HEADER)}")
        parsed = []
        for n, cells in rows[1:]:
            try:
                if len(cells) != len(HISTORY_HEADER) or not cells[1]:
                    raise ValueError(f"expected {len(HISTORY_HEADER)} cells and an underlying")
                day = dt.date.fromisoformat(cells[0])
                vol = float(cells[3]) if cells[3] else None
                parsed.append((day, cells[1], float(cells[2]), vol, n))
            except ValueError as exc:
                raise ValueError(f"{source}, line {n}: {exc}") from None
        for day, und, price, vol, n in sorted(parsed, key=lambda row: (row[0], row[4])):
            try:
                self.record(day, und, price, vol)
            except ValueError as exc:
                raise ValueError(f"{source}, line {n}: {exc}") from None
        return len(parsed)
