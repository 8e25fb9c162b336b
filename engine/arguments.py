"""Argument handling shared by the public array API: check, broadcast, flatten."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["PARALLEL_MIN_ROWS", "Arguments", "Rows", "as_flag", "broadcast", "use_parallel"]

Arguments = dict[str, npt.ArrayLike]
"""A wrapper's array arguments by name, as its caller gave them (scalars, lists, arrays)."""
Rows = dict[str, npt.NDArray[Any]]
"""A kernel's output rows by name (``price``, ``delta``, ..., ``status``), in the arguments'
broadcast shape."""

PARALLEL_MIN_ROWS = 20_000
"""Below this many rows the single-threaded kernel is used (thread start-up costs more)."""


def _as_numeric(name: str, value: Any) -> npt.NDArray[np.float64]:
    arr = np.asarray(value)
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a real number or an array of them, got dtype {arr.dtype}")
    return arr.astype(np.float64, copy=False)


def as_flag(name: str, value: Any) -> npt.NDArray[np.bool_]:
    """A bool array from bools, or from integers that are all 0 or 1."""
    arr = np.asarray(value)
    if arr.dtype.kind == "b":
        return arr
    if arr.dtype.kind in "iu" and np.isin(arr, (0, 1)).all():
        return arr.astype(np.bool_)
    raise ValueError(f"{name} must be a bool or an array of bools, got {arr.dtype} values")


def broadcast(
    flags: Arguments, numbers_: Arguments
) -> tuple[tuple[int, ...], list[npt.NDArray[np.bool_]], list[npt.NDArray[np.float64]]]:
    """Broadcast named arguments like a numpy ufunc; return the shape and flat C-contiguous copies.

    Raises:
        ValueError: an argument is not numeric (bool for flags), or its shape does not broadcast
            with the arguments before it; the message names the argument.
    """
    named: list[tuple[str, npt.NDArray[Any]]] = [(n, as_flag(n, v)) for n, v in flags.items()]
    named += [(n, _as_numeric(n, v)) for n, v in numbers_.items()]
    try:
        shape = np.broadcast_shapes(*(arr.shape for _, arr in named))
    except ValueError:
        shape = _first_misfit(named)
    flat = [_flat(arr, shape) for _, arr in named]
    n_flags = len(flags)
    return shape, flat[:n_flags], flat[n_flags:]


def _first_misfit(named: list[tuple[str, npt.NDArray[Any]]]) -> tuple[int, ...]:
    """Raise the ValueError naming the first argument that does not broadcast with those before."""
    shape: tuple[int, ...] = ()
    for name, arr in named:
        try:
            shape = np.broadcast_shapes(shape, arr.shape)
        except ValueError:
            raise ValueError(
                f"{name} has shape {arr.shape}, which does not broadcast with {shape}"
            ) from None
    return shape  # not reached: called only when broadcasting failed


def _flat(arr: npt.NDArray[Any], shape: tuple[int, ...]) -> npt.NDArray[Any]:
    """A C-contiguous, writable 1-D array of ``arr`` broadcast to ``shape``; no copy if it is one.

    (Numba types read-only arrays apart, so broadcast views and read-only inputs are copied.)
    """
    if arr.shape != shape:
        if arr.ndim == 0:
            return np.full(math.prod(shape), arr.item(), dtype=arr.dtype)
        return np.broadcast_to(arr, shape).flatten()  # flatten always copies
    if arr.ndim == 1 and arr.flags.c_contiguous and arr.flags.writeable:
        return arr  # the common case: nothing to do
    flat = np.ascontiguousarray(arr).reshape(-1)
    return flat if flat.flags.writeable else flat.copy()


def use_parallel(parallel: bool | None, rows: int) -> bool:
    """Whether to run the prange kernel: as asked, or by size when ``parallel`` is None."""
    if parallel is None:
        return rows >= PARALLEL_MIN_ROWS
    return parallel
