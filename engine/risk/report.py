"""The daemon's risk payloads: each book's VaR and ES by every method, and its stress grid,
computed from a :class:`engine.state.BookRisk` copy and the recorded moves (docs/risk.md,
docs/redis.md). Pure: the runtime calls these off the event loop and publishes the results.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

import msgspec
import numpy as np

from engine.outputs import RISK_UNITS, SCHEMA_VERSION, VAR_METHODS
from engine.risk import var
from engine.risk.history import MoveHistory
from engine.risk.stress import DEFAULT_SPOT_SHOCKS, DEFAULT_VOL_SHOCKS, stress_grid
from engine.state import AGG_FIELDS, BookRisk

__all__ = ["RiskConfig", "stress_payload", "var_payload"]

Confidence = Annotated[float, msgspec.Meta(gt=0.5, lt=1.0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0.0)]
PositiveInt = Annotated[int, msgspec.Meta(gt=0)]

VarMethod = Literal["delta_normal", "delta_gamma", "historical", "monte_carlo"]

_DELTA_USD: Final = AGG_FIELDS.index("delta_usd")
_CASH_GAMMA: Final = AGG_FIELDS.index("cash_gamma")


class RiskConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk]``: the portfolio-risk figures, how and how often (docs/config.md).

    Attributes:
        enabled: compute and publish them at all.
        var_interval_s: period of the VaR payloads.
        stress_interval_s: period of the stress-grid payloads.
        confidence: of the VaR (the probability that the loss does not exceed it).
        es_confidence: of the expected shortfall.
        horizon_days: calendar days of the VaR horizon.
        method: the method whose figures are the payload's ``var`` and ``es``.
        mc_scenarios: Monte Carlo draws.
        mc_seed: the Monte Carlo generator's seed (the same seed and inputs: the same figures).
        history: CSV of daily levels seeding the window of moves (``date,underlying,price,vol``;
            relative to the config file); empty: the window starts empty.
        window_days: levels kept per underlying (the window holds one move fewer).
        record_at_utc: the time of day, UTC ``HH:MM``, at which the daemon records each
            underlying's level into the window.
        stress_spot: relative spot shocks of the stress grid's rows.
        stress_vol: relative vol shocks of its columns.
    """

    enabled: bool = True
    var_interval_s: PositiveFloat = 1.0
    stress_interval_s: PositiveFloat = 1.0
    confidence: Confidence = 0.99
    es_confidence: Confidence = 0.975
    horizon_days: PositiveFloat = 1.0
    method: VarMethod = "historical"
    mc_scenarios: PositiveInt = 10_000
    mc_seed: int = 20261125
    history: str = ""
    window_days: Annotated[int, msgspec.Meta(ge=2)] = 251
    record_at_utc: Annotated[str, msgspec.Meta(pattern=r"^([01]\d|2[0-3]):[0-5]\d$")] = "08:00"
    stress_spot: tuple[Annotated[float, msgspec.Meta(gt=-1.0)], ...] = DEFAULT_SPOT_SHOCKS
    stress_vol: tuple[float, ...] = DEFAULT_VOL_SHOCKS

    def __post_init__(self) -> None:
        if not (self.stress_spot and self.stress_vol):
            raise ValueError("risk stress_spot and stress_vol must not be empty")


def _base(br: BookRisk, now_ns: int) -> dict[str, Any]:
    return {
        "v": SCHEMA_VERSION,
        "ts": now_ns // 1_000_000,
        "ts_ns": now_ns,
        "valuation_ts_ns": br.valuation_ns,
        "book": br.book,
        "underlyings": br.underlyings,
    }


def var_payload(br: BookRisk, history: MoveHistory, cfg: RiskConfig, now_ns: int) -> dict[str, Any]:
    """The ``var`` payload of one book: VaR and ES (USD losses over ``horizon_days``) by every
    method; a method that cannot run (fewer than 2 days of moves of every underlying the book
    holds) gives nulls and says why in ``status``."""
    c, ce, h = cfg.confidence, cfg.es_confidence, cfg.horizon_days
    status: dict[str, str] = {}
    figures: dict[str, var.VaR] = {}
    ret, dvol = history.moves(br.underlyings)
    n_days = ret.shape[0]
    if not br.underlyings:
        status = dict.fromkeys(VAR_METHODS, "no positions")
    elif n_days < 2:
        status = dict.fromkeys(VAR_METHODS, f"{n_days} days of moves, need 2")
    else:
        u = len(br.underlyings)
        cov = history.covariance(br.underlyings)
        delta_usd = br.figures[:, _DELTA_USD]
        # d²P&L/dr² in the log-return r: Γ S² + Δ S (docs/risk.md)
        gamma_usd = 100.0 * br.figures[:, _CASH_GAMMA] + delta_usd
        figures["delta_normal"] = var.delta_normal(delta_usd, cov[:u, :u], c, ce, h)
        figures["delta_gamma"] = var.delta_gamma(delta_usd, gamma_usd, cov[:u, :u], c, ce, h)
        figures["historical"] = var.historical(br.positions, ret, dvol, c, ce, h)[0]
        figures["monte_carlo"] = var.monte_carlo(
            br.positions, cov, cfg.mc_scenarios, cfg.mc_seed, c, ce, h
        )[0]
        status = dict.fromkeys(VAR_METHODS, "ok")
    out = _base(br, now_ns)
    out.update(
        {
            "confidence": c,
            "es_confidence": ce,
            "horizon_days": h,
            "method": cfg.method,
            "history_days": n_days,
            "positions": int(br.positions.kind.size),
        }
    )
    primary = figures.get(cfg.method)
    out["var"] = primary.var if primary else None
    out["es"] = primary.es if primary else None
    for m in VAR_METHODS:
        f = figures.get(m)
        out[f"var_{m}"] = f.var if f else None
        out[f"es_{m}"] = f.es if f else None
    out["status"] = status
    out["mc_scenarios"] = cfg.mc_scenarios
    out["units"] = {k: v for k, v in RISK_UNITS.items() if k in out}
    return out


def stress_payload(br: BookRisk, cfg: RiskConfig, now_ns: int) -> dict[str, Any]:
    """The ``stress`` payload of one book: its P&L (USD) under every (spot shock, vol shock)
    pair, all underlyings together, and ``stress_loss``, the worst loss on the grid."""
    grid = stress_grid(br.positions, max(len(br.underlyings), 1), cfg.stress_spot, cfg.stress_vol)
    out = _base(br, now_ns)
    out.update(
        {
            "spot": grid.spot,
            "vol": grid.vol,
            "pnl": grid.pnl,
            "stress_loss": float(-np.min(grid.pnl)),
            "excluded": [br.instruments[i] for i in grid.excluded.tolist()],
            "units": {
                "spot": "relative move",
                "vol": "relative move",
                "pnl": "USD",
                "stress_loss": "USD",
            },
        }
    )
    return out
