"""Each instrument's carry: its rate r, its yield q and the present value of its underlying's
discrete dividends to its expiry, set when the instrument is added and rolled with time.

Part of the streaming portfolio's market data (:class:`engine.market.MarketData`, whose rows
these are): r is the underlying's flat rate or its curve's zero rate to the instrument's expiry
(refreshed at each full reprice); q the underlying's dividend yield, or the implied yield of the
option's chain and expiry once one is known (:meth:`Carries.set_carry`); ``div_pv`` and
``div_rho`` the escrowed dividends of :class:`engine.american.Dividends` (options on spot only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import numpy.typing as npt

from engine.american import Dividends
from engine.columns import Columns
from engine.curves import ZeroCurve
from engine.daycount import year_fraction
from engine.instruments import Instrument, Kind

__all__ = ["Carries", "UnderlyingParams"]

I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class UnderlyingParams:
    """Rate and yield of an underlying (continuously compounded decimals), for BSM and for
    forwards implied from the index. Deribit's conventions are r = q = 0.

    With a ``curve``, an instrument's r is the curve's zero rate to its expiry (ACT/365 from
    the valuation time, refreshed at each full reprice) and ``rate`` is not used.
    """

    rate: float = 0.0
    dividend_yield: float = 0.0
    curve: ZeroCurve | None = None
    implied_carry: bool = False
    """Its options on spot take q from their expiry's implied forward (:meth:`Carries.
    set_carry`) once one is known, ``dividend_yield`` until then."""
    dividends: tuple[tuple[int, float], ...] = ()
    """Discrete cash dividends: (ex-dividend instant, int UNIX ns; amount, quote currency per
    unit of the underlying). Its options on spot are priced on the spot less the PV of those
    paid after the valuation time and up to their expiry (:meth:`Carries.roll_dividends`;
    engine.american's escrowed model)."""


def _carries(inst: Instrument) -> bool:
    """Whether ``inst`` is priced on its spot or index with a dividend yield (an option,
    neither on a future nor on its forward): what an implied carry and discrete dividends
    apply to."""
    return (
        inst.kind == Kind.OPTION
        and not inst.on_forward
        and inst.underlying_future is None
        and inst.expiry_ns is not None
    )


class Carries:
    """The carry columns (``r``, ``q``, ``div_pv``, ``div_rho``) of ``cols``'s rows.

    Args:
        cols: the instruments' columns (with ``expiry_ns`` and ``has_expiry``).
        underlyings: rate, yield, curve and dividends per underlying name; missing ones use
            r = q = 0 and no dividends.
    """

    def __init__(self, cols: Columns, underlyings: dict[str, UnderlyingParams]) -> None:
        self._cols = cols
        self._params = underlyings
        self._curve_rows: dict[str, list[int]] = {}  # rows whose r comes from a curve
        self._carry_rows: dict[tuple[str, int], list[int]] = {}  # q implied, by (chain, expiry)
        self._carry: dict[tuple[str, int], float] = {}  # the latest implied q of each
        self._dividend_rows: dict[str, list[int]] = {}  # options on spot with dividends

    def add(self, insts: Sequence[Instrument], start: int, now_ns: int) -> None:
        """The carry of new rows ``start``... (``insts``, in order) at ``now_ns``."""
        a, rows = self._cols.arrays, slice(start, start + len(insts))
        underlying = [i.underlying for i in insts]
        params = {u: self._params.get(u, UnderlyingParams()) for u in set(underlying)}
        of_row = list(map(params.__getitem__, underlying))
        a["r"][rows] = np.fromiter(map(attrgetter("rate"), of_row), np.float64, len(insts))
        a["q"][rows] = np.fromiter(
            map(attrgetter("dividend_yield"), of_row), np.float64, len(insts)
        )
        if not any(p.implied_carry or p.curve is not None or p.dividends for p in params.values()):
            return
        curve_rows: dict[str, tuple[ZeroCurve, list[int]]] = {}
        dividend_rows: dict[str, list[int]] = {}
        for row, inst in enumerate(insts, start):
            p = params[inst.underlying]
            if p.implied_carry and _carries(inst):
                key = (inst.underlying, inst.expiry_ns or 0)
                self._carry_rows.setdefault(key, []).append(row)
                a["q"][row] = self._carry.get(key, p.dividend_yield)
            if p.curve is not None:
                curve_rows.setdefault(inst.underlying, (p.curve, []))[1].append(row)
            if p.dividends and _carries(inst):
                dividend_rows.setdefault(inst.underlying, []).append(row)
        for name, (curve, on_curve) in curve_rows.items():
            self._curve_rows.setdefault(name, []).extend(on_curve)
            self._roll(curve, np.array(on_curve, dtype=np.int64), now_ns)
        for name, paying in dividend_rows.items():  # after the curves: on their r
            self._dividend_rows.setdefault(name, []).extend(paying)
            self._escrow(params[name].dividends, np.array(paying, dtype=np.int64), now_ns)

    def roll_rates(self, now_ns: int) -> None:
        """Set r of every instrument on a curve to the curve's zero rate to its expiry at
        ``now_ns`` (int UNIX ns); those without an expiry (spot, perpetuals) take the rate at
        t = 0. The portfolio's full reprice calls this: between two, r stays as it was."""
        for underlying, rows in self._curve_rows.items():
            curve = self._params[underlying].curve
            if curve is not None:
                self._roll(curve, np.array(rows, dtype=np.int64), now_ns)

    def roll_dividends(self, now_ns: int) -> None:
        """Set the dividends' PV (``div_pv``) and its rate sensitivity (``div_rho``) of every
        option on spot whose underlying pays dividends: those paid after ``now_ns`` (int UNIX
        ns) and up to its expiry, discounted at its r (:meth:`engine.american.Dividends.
        escrow`). The portfolio's full reprice calls this after :meth:`roll_rates`: a dividend
        whose ex-instant has passed drops out then."""
        for underlying, rows in self._dividend_rows.items():
            dividends = self._params[underlying].dividends
            self._escrow(dividends, np.array(rows, dtype=np.int64), now_ns)

    def set_carry(self, chain: str, expiry_ns: int, dividend_yield: float) -> I64:
        """Give the options of ``chain`` expiring at ``expiry_ns`` whose underlying takes its
        carry from the chain (:attr:`UnderlyingParams.implied_carry`) ``dividend_yield`` as q
        (those added later too); returns the rows whose q changed."""
        key = (chain, expiry_ns)
        self._carry[key] = dividend_yield
        rows = np.array(self._carry_rows.get(key, ()), dtype=np.int64)
        q = self._cols.arrays["q"]
        changed: I64 = rows[q[rows] != dividend_yield]
        q[changed] = dividend_yield
        return changed

    def _escrow(self, dividends: tuple[tuple[int, float], ...], rows: I64, now_ns: int) -> None:
        """``div_pv`` and ``div_rho`` of ``rows`` at ``now_ns`` (:meth:`roll_dividends`)."""
        a = self._cols.arrays
        ex_ns, amounts = zip(*dividends, strict=True)
        schedule = Dividends(year_fraction(np.int64(now_ns), np.array(ex_ns)), np.array(amounts))
        years = year_fraction(np.int64(now_ns), a["expiry_ns"][rows])
        a["div_pv"][rows], a["div_rho"][rows] = schedule.escrow(years, a["r"][rows])

    def _roll(self, curve: ZeroCurve, rows: I64, now_ns: int) -> None:
        a = self._cols.arrays
        years = np.where(
            a["has_expiry"][rows], year_fraction(np.int64(now_ns), a["expiry_ns"][rows]), 0.0
        )
        a["r"][rows] = curve.zero_rate(years)
