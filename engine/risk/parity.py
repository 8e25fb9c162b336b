"""The ``forwards`` payloads (docs/redis.md, docs/us-options.md): per option chain of a linear
(USD-settled) underlying, each expiry's implied forward, dividend yield and PV of dividends from
put-call parity over the chain's bid and ask quotes (:func:`engine.forwards.implied_forwards`),
discounted on the underlying's rate curve.

A chain is the options of one underlying and exercise style priced on one thing: SPX's (SPX
and SPXW together: both on the SPX index), XSP's, SPY's, and the E-mini options of each future
(``ESH7``: their forward is that future's price; the payload's ``spot`` is the future's own
price, and no dividends are implied). Dividends are measured against the chain's index or spot
(SPX, SPY). SPY's options are American: their parity forward is approximate
(docs/units.md#implied-forwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat
from engine.curves import ZeroCurve
from engine.events import Carry
from engine.forwards import ChainQuotes, ForwardFitConfig, ImpliedForward, implied_forwards
from engine.instruments import Instrument
from engine.outputs import ForwardsPayload
from engine.readout import Chain

__all__ = [
    "ChainInputs",
    "ForwardsConfig",
    "forward_inputs",
    "forwards_payloads",
    "implied_carries",
]

FloatArray = npt.NDArray[np.float64]


class ForwardsConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.forwards]``: the ``forwards`` family (docs/config.md).

    Attributes:
        enabled: publish it.
        interval_s: its period.
        fit: how each forward is estimated (:class:`engine.forwards.ForwardFitConfig`).
    """

    enabled: bool = False
    interval_s: PositiveFloat = 5.0
    fit: ForwardFitConfig = ForwardFitConfig()


@dataclass(frozen=True, slots=True)
class ChainInputs:
    """One chain's quotes (every expiry), copied on the event loop: its name, the underlying
    whose curve discounts it, its index or spot and that price (NaN: none) or, for options on
    a future, that future and its price, its exercise, and each expiry's label."""

    name: str
    underlying: str
    spot_index: str
    spot: float
    on_future: bool
    exercise: str
    quotes: ChainQuotes
    labels: dict[int, str]


def _chain_name(inst: Instrument) -> str:
    """The chain an option belongs to: its future's name, or its underlying's."""
    return inst.underlying_future or inst.underlying


def forward_inputs(
    chains: Iterable[Chain],
    lookup: Callable[[str], Instrument | None],
    price: Callable[[Instrument], float],
) -> list[ChainInputs]:
    """The chains of :meth:`engine.state.Portfolio.chains` that settle in USD (not in coin),
    regrouped by what their options are priced on (module docstring). ``price``: the latest
    price of an index, a share or a future (NaN: none)."""
    parts: dict[str, list[tuple[Chain, Instrument, int]]] = {}
    for c in chains:
        if c.coin_settled:
            continue
        for i, name in enumerate(c.instruments):
            inst = lookup(name)
            if inst is not None and inst.expiry_ns is not None:
                parts.setdefault(_chain_name(inst), []).append((c, inst, i))
    out = []
    for name, rows in sorted(parts.items()):
        first = rows[0][1]
        on = lookup(first.underlying_future) if first.underlying_future else None
        on = on or lookup(first.index)

        def col(field: str, rows: list[tuple[Chain, Instrument, int]] = rows) -> FloatArray:
            return np.array([getattr(c, field)[i] for c, _, i in rows])

        quotes = ChainQuotes(
            expiry_ns=np.array([inst.expiry_ns for _, inst, _ in rows], dtype=np.int64),
            strike=col("strike"),
            is_call=col("is_call").astype(np.bool_),
            bid=col("bid"),
            ask=col("ask"),
        )
        out.append(
            ChainInputs(
                name=name,
                underlying=first.underlying,
                spot_index=first.index if on is None else on.name,
                spot=math.nan if on is None else price(on),
                on_future=first.underlying_future is not None,
                exercise=str(first.exercise),
                quotes=quotes,
                labels={c.expiry_ns: c.expiry for c, _, _ in rows},
            )
        )
    return out


def _known(x: float) -> float | None:
    return x if math.isfinite(x) else None


_UNITS: Final = {
    "spot": "USD",
    "tte_years": "years (ACT/365)",
    "rate": "continuously compounded decimal per year",
    "discount_factor": "exp(-rate tte_years)",
    "forward": "USD",
    "dividend_yield": "continuously compounded decimal per year (F = S exp((r - q) T))",
    "dividend_pv": "USD per unit of the underlying (S - DF F)",
    "residual": "USD (weighted RMS of the strikes' parity forwards about F)",
    "pivot_strike": "USD",
}


def _payload(
    c: ChainInputs, fits: list[ImpliedForward], curve: ZeroCurve, cfg: ForwardsConfig,
    now_ns: int, valuation_ns: int,
) -> ForwardsPayload:  # fmt: skip
    years = np.array([f.years for f in fits], dtype=np.float64)
    missing = [c.labels.get(f.expiry_ns, str(f.expiry_ns)) for f in fits if f.strikes_used == 0]
    status = "ok"
    if c.on_future:
        status = f"ok: options on the future {c.spot_index}, no dividends"
    elif not math.isfinite(c.spot):
        status = f"no price for {c.spot_index}: no dividends"
    if missing:
        status = f"no strike quoted on both sides: {', '.join(missing)}"
    return ForwardsPayload(
        ts_ns=now_ns,
        valuation_ts_ns=valuation_ns,
        underlying=c.name,
        spot_index=c.spot_index,
        spot=_known(c.spot),
        exercise=c.exercise,
        method=str(cfg.fit.method),
        expiries=[c.labels.get(f.expiry_ns, str(f.expiry_ns)) for f in fits],
        expiry_ns=[f.expiry_ns for f in fits],
        tte_years=years.tolist(),
        rate=curve.zero_rate(years).tolist(),
        discount_factor=[f.discount_factor for f in fits],
        forward=[_known(f.forward) for f in fits],
        dividend_yield=[_known(f.dividend_yield) for f in fits],
        dividend_pv=[_known(f.dividend_pv) for f in fits],
        residual=[_known(f.residual) for f in fits],
        strikes_used=[f.strikes_used for f in fits],
        pivot_strike=[_known(f.pivot_strike) for f in fits],
        status=status,
        units=_UNITS,
    )


def forwards_payloads(
    chains: Iterable[ChainInputs],
    curves: Mapping[str, ZeroCurve],
    cfg: ForwardsConfig,
    now_ns: int,
    valuation_ns: int,
) -> list[tuple[str, ForwardsPayload]]:
    """Each chain's ``forwards`` payload, keyed by its name, at ``valuation_ns``: its expiries
    still ahead, each discounted on its underlying's curve (``curves``; none: a zero rate)."""
    out = []
    for c in chains:
        live = c.quotes.expiry_ns > valuation_ns
        q0 = c.quotes
        q = ChainQuotes(q0.expiry_ns[live], q0.strike[live], q0.is_call[live], q0.bid[live],
                        q0.ask[live])  # fmt: skip
        if not q.strike.size:
            continue
        curve = curves.get(c.underlying, ZeroCurve.flat(0.0))
        spot = math.nan if c.on_future else c.spot  # a future's carry is no dividend
        fits = implied_forwards(q, curve, valuation_ns, spot=spot, fit=cfg.fit)
        out.append((c.name, _payload(c, fits, curve, cfg, now_ns, valuation_ns)))
    return out


def implied_carries(payload: ForwardsPayload) -> list[Carry]:
    """The dividend yield each expiry of a chain on a spot or index implies (none for options
    on a future: their carry is the future's), for pricing (:class:`engine.events.Carry`)."""
    return [
        Carry(chain=payload.underlying, expiry_ns=at, dividend_yield=q, ts_event=payload.ts_ns)
        for at, q in zip(payload.expiry_ns, payload.dividend_yield, strict=True)
        if q is not None and math.isfinite(q)
    ]
