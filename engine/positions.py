"""Open positions as columns: the form in which the portfolio state hands positions to the
risk measures, and the revaluation kernel takes them.

It sits below both :mod:`engine.state`, which builds it, and :mod:`engine.risk`, which revalues
it (:func:`engine.risk.scenarios.scenario_pnl`), so the state never imports the risk measures.
"""

from __future__ import annotations

from engine import kernels

__all__ = ["ScenarioBook"]


ScenarioBook = kernels.ScenarioColumns
"""Positions to revalue, one row each (struct of arrays, C-contiguous): the column group
:func:`engine.kernels.scenario_pnl_kernel` takes, :class:`engine.kernels.ScenarioColumns`.
``und`` is each position's column in the scenario moves; ``weight`` its quantity x contract
multiplier; ``X`` the price it is valued on now (spot, or the forward for Black-76 options and
futures); ``kind`` the ``engine.kernels.KIND_*`` code. A NamedTuple: ``book._replace(weight=w)``
is a changed copy; :func:`engine.risk.scenarios.scenario_pnl` checks its columns."""
