"""Growing struct-of-arrays tables: named 1-D (or row-major 2-D) numpy columns that grow
together, and the kernels' column groups (:mod:`engine.kernels`) over them.

The portfolio state (:mod:`engine.state`, :mod:`engine.market`, :mod:`engine.lots`) keeps
every table in one of these: a ``dict`` of id -> row beside it, rows never removed.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from engine import kernels

__all__ = ["Columns", "Specs", "distinct", "grown"]

Specs = dict[str, tuple[Any, Any, int]]
"""Column name -> (dtype, fill value of a new row, width: 0 for 1-D, else the row's width)."""

_G = TypeVar("_G", bound=NamedTuple)  # a kernel's column group (engine.kernels)
I64 = npt.NDArray[np.int64]


class Columns:
    """Named 1-D (or row-major 2-D) numpy columns that grow together, amortised doubling.

    Args:
        specs: the columns.
        capacity: rows allocated at first.
    """

    def __init__(self, specs: Specs, capacity: int = 64) -> None:
        self._specs = specs
        self.capacity = capacity
        self.n = 0
        """Rows in use."""
        self.arrays: dict[str, npt.NDArray[Any]] = {
            name: np.full((capacity, width) if width else capacity, fill, dtype=dtype)
            for name, (dtype, fill, width) in specs.items()
        }
        self._groups: dict[type[Any], Any] = {}

    def group(self, cls: type[_G]) -> _G:
        """The columns named by the fields of ``cls`` (a kernel's column group), whole
        capacity; the same object until the columns grow."""
        group: _G | None = self._groups.get(cls)
        if group is None:
            group = self._groups[cls] = cls._make(self.arrays[f] for f in cls._fields)
            kernels.check_group(group)  # once: the hot path calls the kernels unchecked
        return group

    def head(self, cls: type[_G]) -> _G:
        """As :meth:`group`, the first :attr:`n` rows only (a new object)."""
        return cls._make(self.arrays[f][: self.n] for f in cls._fields)

    def reserve(self, capacity: int) -> None:
        """Room for ``capacity`` rows in all, exactly (no change when there is as much)."""
        if capacity > self.capacity:
            self._grow(capacity)

    def append(self) -> int:
        """A new row (its columns at their fill values); returns its number."""
        return self.extend(1)

    def extend(self, k: int) -> int:
        """``k`` new rows (their columns at their fill values); returns the first one's number.
        A table that outgrows its room gets :func:`grown`'s."""
        n = self.n
        if n + k > self.capacity:
            self._grow(grown(self.capacity, n + k))
        self.n += k
        return n

    def _grow(self, capacity: int) -> None:
        """Every column moved into ``capacity`` rows, each byte of them written once."""
        n = self.n
        for name, (dtype, fill, width) in self._specs.items():
            arr = np.empty((capacity, width) if width else capacity, dtype=dtype)
            arr[:n] = self.arrays[name][:n]
            arr[n:] = fill
            self.arrays[name] = arr
        self.capacity = capacity
        self._groups.clear()


def grown(capacity: int, needed: int) -> int:
    """The room a table of ``capacity`` rows gets when it needs ``needed``: half as much again
    as it had, or an eighth more than it needs, whichever is more. A row at a time, the table
    grows by half (amortised, each row is copied about twice); a bulk (a start's positions or
    checkpoint) gets an eighth of room for what follows it, so that the first fills after a
    start with a million lots do not copy the whole table at once into twice its memory."""
    return max(capacity + capacity // 2, needed + needed // 8)


def distinct(codes: I64) -> tuple[I64, I64]:
    """The distinct values of ``codes`` (integers >= 0) in the order they first appear: the
    row where each first appears, and each row's value's number among them. Codes in a range
    not much larger than their count are counted in place (no sort of the rows)."""
    n = codes.size
    top = int(codes.max()) + 1 if n else 0
    if top <= 4 * n + 1024:
        seen = np.full(top, n, dtype=np.int64)
        np.minimum.at(seen, codes, np.arange(n, dtype=np.int64))
        present = np.flatnonzero(seen < n)
        order = present[np.argsort(seen[present], kind="stable")]
        rank = np.empty(top, dtype=np.int64)
        rank[order] = np.arange(order.size)
        return seen[order], rank[codes]
    _, first, which = np.unique(codes, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty(order.size, dtype=np.int64)
    rank[order] = np.arange(order.size)
    return first[order], rank[which]
