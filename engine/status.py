"""Per-row status codes written by the kernels and counted by the wrappers."""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

from engine import kernels

__all__ = ["Status", "count_statuses"]


class Status(IntEnum):
    """Outcome of one row of a pricing or implied-volatility kernel.

    Attributes:
        OK: computed.
        EXPIRED: T <= 0. Pricing returns the exact limit: intrinsic value, a step delta (half the
            sign at the strike), every other Greek 0. Implied volatility returns NaN.
        BAD_VOL: sigma <= 0 or not finite, or σ√T underflows or σ²T overflows; every output
            NaN.
        BAD_INPUT: a non-finite S/F, K, T, r, q or price, or S/F, K <= 0; every output NaN.
        PRICE_BELOW_INTRINSIC: implied volatility of a price at or below intrinsic value; NaN.
        PRICE_ABOVE_MAX: implied volatility of a price at or above its upper bound (F or K,
            discounted); NaN.
        NO_CONVERGENCE: implied volatility did not meet its tolerance within the iteration cap;
            the best iterate is returned. Not seen in testing; counted so it cannot hide.
    """

    OK = kernels.OK
    EXPIRED = kernels.EXPIRED
    BAD_VOL = kernels.BAD_VOL
    BAD_INPUT = kernels.BAD_INPUT
    PRICE_BELOW_INTRINSIC = kernels.PRICE_BELOW_INTRINSIC
    PRICE_ABOVE_MAX = kernels.PRICE_ABOVE_MAX
    NO_CONVERGENCE = kernels.NO_CONVERGENCE


def count_statuses(status: npt.NDArray[np.int8]) -> dict[Status, int]:
    """Rows per status, for the statuses that occur other than OK."""
    counts = np.bincount(status.ravel().astype(np.intp), minlength=len(Status))
    return {Status(code): int(n) for code, n in enumerate(counts) if n and code != Status.OK}
