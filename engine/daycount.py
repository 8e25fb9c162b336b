"""Time to expiry: the one conversion from nanosecond timestamps to years (ACT/365).

Every year fraction in riskd comes from here, so Greeks, implied vols and Deribit's published
figures agree (Deribit uses (expiry_ms - timestamp_ms) / (365 × 86 400 000)).
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import numpy.typing as npt

__all__ = ["NS_PER_DAY", "NS_PER_YEAR", "year_fraction"]

NS_PER_DAY = 86_400 * 1_000_000_000
NS_PER_YEAR = 365 * NS_PER_DAY
"""A calendar year of ACT/365: 365 days of 86 400 s, in nanoseconds."""


@overload
def year_fraction(ts_from_ns: int, ts_to_ns: int) -> float: ...
@overload
def year_fraction(ts_from_ns: Any, ts_to_ns: Any) -> npt.NDArray[np.float64]: ...
def year_fraction(ts_from_ns: Any, ts_to_ns: Any) -> float | npt.NDArray[np.float64]:
    """Years from ``ts_from_ns`` to ``ts_to_ns`` (int UNIX ns), ACT/365; negative once past.

    Python ints are differenced exactly and divided with one rounding. Arrays must be of an
    integer dtype (nanoseconds); they are differenced exactly in int64, then converted to float
    (exact below 2^53 ns, about 104 days; within 1 ulp beyond) and divided.

    Raises:
        ValueError: an array argument is not of an integer dtype, or a difference does not fit
            in int64 (timestamps 292 years apart).
    """
    if isinstance(ts_from_ns, int) and isinstance(ts_to_ns, int):
        return (ts_to_ns - ts_from_ns) / NS_PER_YEAR
    a = np.asarray(ts_from_ns)
    b = np.asarray(ts_to_ns)
    for name, arr in (("ts_from_ns", a), ("ts_to_ns", b)):
        if arr.dtype.kind not in "iu":
            raise ValueError(f"{name} must be integer nanoseconds, got dtype {arr.dtype}")
    a64 = a.astype(np.int64)
    b64 = b.astype(np.int64)
    diff = b64 - a64  # wraps silently on overflow: detected below
    overflow = ((a64 ^ b64) & (b64 ^ diff)) < 0
    if overflow.any():
        raise ValueError("ts_to_ns - ts_from_ns does not fit in int64 nanoseconds (292 years)")
    return diff.astype(np.float64) / NS_PER_YEAR
