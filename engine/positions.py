"""Open positions as columns: the form in which the portfolio state hands positions to the
risk measures, and the revaluation kernel takes them.

It sits below both :mod:`engine.state`, which builds it, and :mod:`engine.risk`, which revalues
it (:func:`engine.risk.scenarios.scenario_pnl`), so the state never imports the risk measures.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ScenarioBook"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class ScenarioBook:
    """Positions to revalue, one row each (struct of arrays, C-contiguous): what
    :func:`engine.kernels.scenario_pnl_kernel` takes. ``und`` is each position's column in the
    scenario moves; ``weight`` its quantity x contract multiplier; ``X`` the price it is valued
    on now (spot, or the forward for Black-76 options and futures); ``kind`` the
    ``engine.kernels.KIND_*`` code."""

    kind: npt.NDArray[np.int8]
    black: npt.NDArray[np.bool_]
    inverse: npt.NDArray[np.bool_]
    is_call: npt.NDArray[np.bool_]
    strike: FloatArray
    T: FloatArray
    r: FloatArray
    q: FloatArray
    sigma: FloatArray
    X: FloatArray
    weight: FloatArray
    und: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n = self.kind.shape[0]
        for name in ScenarioBook.__slots__:
            a = getattr(self, name)
            if not isinstance(a, np.ndarray) or a.shape != (n,) or not a.flags.c_contiguous:
                raise ValueError(f"ScenarioBook.{name} must be a C-contiguous 1-D array of {n}")
