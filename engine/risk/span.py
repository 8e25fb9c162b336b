"""CME SPAN in the pure core: the 16 standard risk scenarios, per-contract risk arrays (as a
clearing house publishes them, or recomputed by riskd where none are given), and their
aggregation into one combined commodity's requirement: scanning risk, intra-commodity (calendar)
spread charge, short option minimum, risk requirement and net option value.

Sign convention of a risk array (CME's): the loss of **one long contract** in each scenario, in
USD, positive for a loss, negative for a gain; scenarios 15 and 16 (the extreme moves) are
already multiplied by their cover fraction. Sources, units and what is approximated:
docs/margin.md#cme-span.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engine.american import Accuracy, american, american_black76
from engine.greeks import black76, bsm
from engine.kernels import AMERICAN_ACCURATE, EUROPEAN, KIND_OPTION
from engine.risk.scenarios import ScenarioBook, scenario_pnl

__all__ = [
    "SCENARIOS",
    "SPAN_PRICE_STEPS",
    "SPAN_VOL_STEPS",
    "CmeSpanParams",
    "RiskArrays",
    "SpanRequirement",
    "risk_arrays",
    "scenario_table",
    "span_requirement",
    "unit_value_delta",
]

FloatArray = npt.NDArray[np.float64]

SCENARIOS = 16
"""SPAN's standard risk scenarios."""
SPAN_PRICE_STEPS: tuple[float, ...] = (0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3)
"""Scenarios 1-14: price moves in thirds of the price scan range."""
SPAN_VOL_STEPS: tuple[float, ...] = (1, -1) * 7
"""Scenarios 1-14: vol up, then down, by the vol scan range."""


def scenario_table(
    extreme_multiple: float, extreme_cover: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The 16 scenarios in CME's order: each one's price move in price scan ranges, vol move in
    vol scan ranges, and the weight of its loss (1, and ``extreme_cover`` for 15 and 16, whose
    price moves ``+-extreme_multiple`` ranges with the vol unchanged)."""
    price = np.array([*SPAN_PRICE_STEPS, 0.0, 0.0]) / 3.0
    price[14:] = extreme_multiple, -extreme_multiple
    vol = np.array([*SPAN_VOL_STEPS, 0.0, 0.0], dtype=np.float64)
    weight = np.ones(SCENARIOS)
    weight[14:] = extreme_cover
    return price, vol, weight


@dataclass(frozen=True, slots=True)
class RiskArrays:
    """Per-contract SPAN data of ``n`` contracts of one combined commodity, as in a SPAN risk
    parameter file.

    Attributes:
        losses: (n, 16): USD loss of one long contract in each scenario (gains negative;
            scenarios 15 and 16 already weighted by their cover fraction).
        composite_delta: (n,): delta of one long contract in futures equivalents of the combined
            commodity (a future: 1; an option on it: its delta).
        tier: (n,): the contract's intra-commodity spread tier (e.g. its expiry month's index).
        is_option, is_call: (n,) bools (``is_call`` read for options only).
        value_usd: (n,): USD value of one long contract (an option's premium x multiplier; 0
            for futures).
    """

    losses: FloatArray
    composite_delta: FloatArray
    tier: npt.NDArray[np.int64]
    is_option: npt.NDArray[np.bool_]
    is_call: npt.NDArray[np.bool_]
    value_usd: FloatArray

    def __post_init__(self) -> None:
        n = self.losses.shape[0] if self.losses.ndim == 2 else -1
        if self.losses.shape != (n, SCENARIOS):
            raise ValueError(f"losses must be (contracts, 16), got {self.losses.shape}")
        for name in ("composite_delta", "tier", "is_option", "is_call", "value_usd"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"RiskArrays.{name} must have one value per contract ({n})")
        if not (np.all(np.isfinite(self.losses)) and np.all(np.isfinite(self.value_usd))):
            raise ValueError("losses and value_usd must be finite")


@dataclass(frozen=True, slots=True)
class CmeSpanParams:
    """One combined commodity's charges besides scanning risk (CME publishes them per product in
    its SPAN risk parameter file; no defaults).

    Attributes:
        intra_spread_charge_usd: charge per intra-commodity spread (one futures equivalent long
            in one tier against one short in another), USD.
        short_option_minimum_usd: least requirement per short option contract, USD.
    """

    intra_spread_charge_usd: float
    short_option_minimum_usd: float

    def __post_init__(self) -> None:
        for name in ("intra_spread_charge_usd", "short_option_minimum_usd"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"CmeSpanParams.{name} must be >= 0, got {value!r}")


@dataclass(frozen=True, slots=True)
class SpanRequirement:
    """One combined commodity's SPAN figures, USD (docs/margin.md#cme-span).

    Attributes:
        scenario_losses: (16,) the portfolio's loss in each scenario (gains negative).
        scan_risk: the largest scenario loss, >= 0.
        spreads: intra-commodity spreads formed, futures equivalents.
        intra_spread_charge: spreads x the charge per spread.
        short_option_minimum: short option contracts (the larger of short calls and short
            puts) x the minimum per contract.
        risk_requirement: max(scan risk + intra-commodity spread charge, short option minimum).
        net_option_value: long option value minus short option value.
        total: risk requirement - net option value (negative: the long options' value exceeds
            the risk, an excess).
    """

    scenario_losses: FloatArray
    scan_risk: float
    spreads: float
    intra_spread_charge: float
    short_option_minimum: float
    risk_requirement: float
    net_option_value: float
    total: float


def _spreads(delta_by_tier: FloatArray) -> float:
    """Intra-commodity spreads: futures equivalents long in some tiers matched against short in
    others (every tier's net delta; one rate for every pair of tiers)."""
    return float(
        min(delta_by_tier[delta_by_tier > 0.0].sum(), -delta_by_tier[delta_by_tier < 0.0].sum())
    )


def span_requirement(
    arrays: RiskArrays, positions: npt.ArrayLike, params: CmeSpanParams
) -> SpanRequirement:
    """One combined commodity's SPAN requirement from its contracts' risk arrays.

    Scenario losses are the positions' sum of their contracts' arrays (a short position counts
    its array with the sign turned); scan risk the largest; the tiers' net composite deltas
    form intra-commodity spreads, each charged ``intra_spread_charge_usd``; the short option
    minimum counts the larger of the short call and short put contracts. Risk requirement =
    max(scan risk + spread charge, short option minimum); total = risk requirement - net option
    value. No delivery charge, no inter-commodity credit (one combined commodity).

    Args:
        arrays: the contracts' risk arrays.
        positions: signed contracts of each (long > 0), finite.
        params: the combined commodity's charge rates.

    Raises:
        ValueError: ``positions`` is not one finite number per contract.
    """
    q = np.asarray(positions, dtype=np.float64)
    if q.shape != arrays.tier.shape or not np.all(np.isfinite(q)):
        raise ValueError(f"positions must be {arrays.tier.shape[0]} finite numbers, got {q.shape}")
    losses = q @ arrays.losses if q.size else np.zeros(SCENARIOS)
    scan = max(float(losses.max()), 0.0)
    tiers, where = np.unique(arrays.tier, return_inverse=True)
    by_tier = np.bincount(where.ravel(), q * arrays.composite_delta, tiers.size)
    spreads = _spreads(np.asarray(by_tier, dtype=np.float64)) if tiers.size > 1 else 0.0
    intra = spreads * params.intra_spread_charge_usd
    short = arrays.is_option & (q < 0.0)
    short_calls = float(-q[short & arrays.is_call].sum()) + 0.0  # + 0.0: no -0.0 when none
    short_puts = float(-q[short & ~arrays.is_call].sum()) + 0.0
    som = max(short_calls, short_puts) * params.short_option_minimum_usd
    nov = float(q[arrays.is_option] @ arrays.value_usd[arrays.is_option])
    risk = max(scan + intra, som)
    return SpanRequirement(
        scenario_losses=np.asarray(losses, dtype=np.float64),
        scan_risk=scan,
        spreads=spreads,
        intra_spread_charge=intra,
        short_option_minimum=som,
        risk_requirement=risk,
        net_option_value=nov,
        total=risk - nov,
    )


def unit_value_delta(book: ScenarioBook) -> tuple[FloatArray, FloatArray]:
    """Each row's value and delta per unit of weight: options at the model (Black-76 on a
    forward, BSM on spot; American rows, ``book.american``, by :mod:`engine.american` at their
    scheme), anything else value 0 (futures) and delta 1."""
    value, delta = np.zeros(book.X.shape), np.ones(book.X.shape)
    option = book.kind == KIND_OPTION
    for am in np.unique(book.american[option]).tolist():
        rows = option & (book.american == am)
        b, s = rows & book.black, rows & ~book.black
        args_b = (book.is_call[b], book.X[b], book.strike[b], book.T[b], book.r[b])
        x_s = book.X[s] - book.div_pv[s]  # less the dividends' PV: delta w.r.t. X all the same
        args_s = (book.is_call[s], x_s, book.strike[s], book.T[s], book.r[s], book.q[s])
        if am == EUROPEAN:
            gb, gs = black76(*args_b, book.sigma[b]), bsm(*args_s, book.sigma[s])
        else:
            scheme: Accuracy = "accurate" if am == AMERICAN_ACCURATE else "fast"
            gb = american_black76(*args_b, book.sigma[b], accuracy=scheme)
            gs = american(*args_s, book.sigma[s], accuracy=scheme)
        value[b], delta[b] = gb.price, gb.delta
        value[s], delta[s] = gs.price, gs.delta
    return value, delta


def risk_arrays(
    book: ScenarioBook,
    price_scan: npt.ArrayLike,
    vol_scan: npt.ArrayLike,
    tier: npt.ArrayLike,
    delta_unit: npt.ArrayLike,
    extreme_multiple: float = 2.0,
    extreme_cover: float = 0.35,
    horizon_days: float = 1.0,
) -> RiskArrays:
    """Risk arrays recomputed by riskd for contracts that have none: each row of ``book`` is one
    long contract (``weight`` its multiplier), revalued alone by
    :func:`~engine.risk.scenarios.scenario_pnl` under the 16 scenarios, ``horizon_days`` later,
    each option at its own vol ``sigma`` moved by its vol scan.

    Args:
        book: one row per contract, weight = multiplier (units of the underlying per contract).
        price_scan: price scan range of each row, in points of its underlying (CME's USD range
            per contract / multiplier), > 0; a scenario moves the row's price X by
            (its multiple of the range) x ``price_scan``.
        vol_scan: relative vol scan range of each row (0.35: vol x 1.35 and x 0.65).
        tier: each row's intra-commodity spread tier.
        delta_unit: units of the underlying in one futures equivalent, per row (ES: 50), > 0.
        extreme_multiple: price scan ranges of scenarios 15 and 16.
        extreme_cover: fraction of their loss that counts (applied in the array, as published).
        horizon_days: SPAN's look-ahead, calendar days.

    Raises:
        ValueError: a bad scan range, delta unit or horizon; a scenario price would be <= 0.
    """
    n = book.X.shape[0]
    scan = np.broadcast_to(np.asarray(price_scan, dtype=np.float64), (n,))
    vscan = np.broadcast_to(np.asarray(vol_scan, dtype=np.float64), (n,))
    unit = np.broadcast_to(np.asarray(delta_unit, dtype=np.float64), (n,))
    if not (np.all(scan > 0.0) and np.all(vscan >= 0.0) and np.all(unit > 0.0)):
        raise ValueError("price_scan and delta_unit must be > 0, vol_scan >= 0")
    price, vol, weight = scenario_table(extreme_multiple, extreme_cover)
    moved = 1.0 + price[:, None] * scan[None, :] / book.X[None, :]
    if not np.all(moved > 0.0):
        raise ValueError("a scenario moves a price to <= 0: price_scan x extreme_multiple >= X")
    losses = np.empty((n, SCENARIOS))
    for i in range(n):
        row = ScenarioBook._make(a[i : i + 1] for a in book)._replace(und=np.zeros(1, np.int64))
        res = scenario_pnl(row, np.log(moved[:, i : i + 1]), vscan[i] * vol[:, None], horizon_days)
        if res.excluded.size:
            raise ValueError(f"row {i} of book cannot be valued (no vol or a bad input)")
        losses[i] = -weight * res.pnl
    value, delta = unit_value_delta(book)
    opt = book.kind == KIND_OPTION
    return RiskArrays(
        losses=losses,
        composite_delta=delta * book.weight / unit,
        tier=np.broadcast_to(np.asarray(tier, dtype=np.int64), (n,)).copy(),
        is_option=opt.copy(),
        is_call=book.is_call.copy(),
        value_usd=np.where(opt, value * book.weight, 0.0),
    )
