"""A US book fed to a portfolio for the unit tests of the daemon's US figures (US margin,
implied forwards, SPX-equivalent delta): SPX at 6000, SPY at 600 and the E-mini future ESH5 at
6050 on Monday 2 December 2024, 10:00 ET; a 0DTE-style SPXW iron condor of Friday's expiry held
as a strategy, SPY shares with short calls of the December monthly, short ESH5 futures and long
E-mini end-of-month puts (``EWZ4``, on ESH5). Every option quoted at a BSM or Black-76 mark of
a known vol, with a bid and an ask around it, at strikes from 5700 to 6300 (SPY: 570 to 630).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

from engine.greeks import black76, bsm
from engine.instruments import Instrument, InstrumentRegistry
from engine.listed import CmeOption, format_cme_option, format_osi
from engine.market import UnderlyingParams
from engine.risk.strategies import StrategyBook
from engine.state import Portfolio
from tests.factories import fill, quote, tick

__all__ = ["USBook", "us_book"]

V = int(datetime(2024, 12, 2, 15, tzinfo=UTC).timestamp()) * 1_000_000_000  # 10:00 ET
FRESH = V - 1_000_000_000
RATE, SPX_Q, SPY_Q = 0.04, 0.013, 0.012
SPX, SPY, ES = 6000.0, 600.0, 6050.0
VOL = 0.16
WEEKLY, MONTHLY = date(2024, 12, 6), date(2024, 12, 20)
CONDOR = [
    format_osi("SPXW", WEEKLY, False, 5800.0),
    format_osi("SPXW", WEEKLY, False, 5900.0),
    format_osi("SPXW", WEEKLY, True, 6100.0),
    format_osi("SPXW", WEEKLY, True, 6200.0),
]
SPY_CALL = format_osi("SPY", MONTHLY, True, 620.0)
EW_PUT = format_cme_option(CmeOption("EW", 2024, 12, False, 5900.0))


def smile(strike: float, forward: float) -> float:
    """The book's vols: a gentle skew."""
    return VOL - 0.3 * math.log(strike / forward)


@dataclass(frozen=True, slots=True)
class USBook:
    portfolio: Portfolio
    strategies: StrategyBook
    registry: InstrumentRegistry

    def get(self, name: str) -> Instrument:
        inst = self.registry.get(name)
        assert inst is not None
        return inst


def mark(b: USBook, name: str) -> float:
    """An option's mark (USD per unit), as quoted."""
    inst = b.get(name)
    assert inst.expiry_ns is not None
    assert inst.strike is not None
    t = (inst.expiry_ns - V) / (365.0 * 86_400e9)
    k, call = inst.strike, bool(inst.is_call)
    if inst.underlying_future is not None:
        return float(black76(call, ES, k, t, RATE, smile(k, ES)).price)
    s, q = (SPY, SPY_Q) if inst.underlying == "SPY" else (SPX, SPX_Q)
    f = s * math.exp((RATE - q) * t)
    return float(bsm(call, s, k, t, RATE, q, smile(k, f)).price)


def us_book(*, condors: float = 10.0, shares: float = 2000.0) -> USBook:
    """The book of the module docstring, cycled at ``V``."""
    registry = InstrumentRegistry()
    params = {"SPX": UnderlyingParams(RATE, SPX_Q), "SPY": UnderlyingParams(RATE, SPY_Q)}
    b = USBook(Portfolio(registry, params), StrategyBook(registry.get), registry)
    p = b.portfolio
    for name, px in (("SPX", SPX), ("SPY", SPY), ("ESH5", ES)):
        assert p.apply_tick(tick(name, px, ts_ns=FRESH))
    names = [format_osi("SPXW", WEEKLY, c, float(k)) for k in range(5700, 6301, 100)
             for c in (True, False)]  # fmt: skip
    names += [format_osi("SPY", MONTHLY, c, float(k)) for k in range(570, 631, 10)
              for c in (True, False)]  # fmt: skip
    names += [format_cme_option(CmeOption("EW", 2024, 12, c, float(k)))
              for k in range(5700, 6301, 100) for c in (True, False)]  # fmt: skip
    for name in names:
        inst = b.get(name)
        m = mark(b, name)
        f = ES if inst.underlying_future else None
        half = max(0.01 * m, 0.05)
        assert p.apply_quote(
            quote(name, bid=m - half, ask=m + half, mark=m, underlying_price=f, ts_ns=FRESH)
        )
    text = "iron_condor:" + "/".join(CONDOR)
    b.strategies.apply_fill(p, fill(text, condors, None, book="us", fill_id="ic"))
    for name, qty in (("SPY", shares), (SPY_CALL, -20.0), ("ESH5", -3.0), (EW_PUT, 2.0)):
        assert p.apply_fill(fill(name, qty, None, book="us"))
    p.cycle(V, full=True)
    return b
