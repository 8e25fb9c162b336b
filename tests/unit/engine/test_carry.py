"""Implied carry: an expiry's dividend yield implied by put-call parity (engine.risk.parity)
prices the options of its chain on their index, as the same yield configured would.

The portfolio takes a Carry (engine.events) for an underlying whose carry is implied
(UnderlyingParams.implied_carry): its options of that expiry are valued, and their vols
implied from their marks, with that yield; figures then equal those of a portfolio configured
with the yield as its dividend_yield. Other underlyings, futures' options and other expiries
are left as they were.
"""

from __future__ import annotations

import numpy as np
from numpy.testing import assert_allclose

from engine.events import Carry
from engine.instruments import InstrumentRegistry
from engine.risk.parity import implied_carries
from engine.state import Portfolio, UnderlyingParams
from tests.factories import T0_NS, quote, tick

S_NS = 1_000_000_000
RATE = 0.05
NEAR, FAR = "SPXW241220P5900", "SPX   250417C05000000"
SPY_PUT = "SPY241220P540"


def _portfolio(spx: UnderlyingParams) -> Portfolio:
    params = {"SPX": spx, "SPY": UnderlyingParams(RATE, 0.013)}
    p = Portfolio(InstrumentRegistry(), params)
    p.apply_tick(tick("SPX", 5600.0, ts_ns=T0_NS - S_NS))
    p.apply_tick(tick("SPY", 545.0, ts_ns=T0_NS - S_NS))
    for k, (name, mark) in enumerate(((NEAR, 310.0), (FAR, 950.0), (SPY_PUT, 9.5))):
        p.add_position("b", name, 2.0 - 3.0 * k, 1.0)
        p.apply_quote(quote(name, mark=mark, ts_ns=T0_NS - S_NS))
    p.cycle(T0_NS, True)
    return p


def _expiry(p: Portfolio, name: str) -> int:
    inst = p.registry.get(name)
    assert inst is not None
    assert inst.expiry_ns is not None
    return inst.expiry_ns


def _figures(p: Portfolio) -> tuple[np.ndarray, np.ndarray]:
    """Each underlying's sums and each position's vol (implied from its mark)."""
    br = p.books_risk()["b"]
    return br.figures, br.positions.sigma


def test_an_implied_yield_prices_as_the_same_yield_configured() -> None:
    implied = _portfolio(UnderlyingParams(RATE, 0.0, None, True))
    plain = _portfolio(UnderlyingParams(RATE, 0.0))
    assert_allclose(_figures(implied)[0], _figures(plain)[0], rtol=0, atol=0)  # until one comes
    for name, q in ((NEAR, 0.021), (FAR, 0.014)):
        carry = Carry(chain="SPX", expiry_ns=_expiry(implied, name), dividend_yield=q, ts_event=1)
        assert implied.apply_carry(carry) == 1
        assert implied.apply_carry(carry) == 0  # no change: nothing dirtied
    implied.cycle(T0_NS + S_NS)
    for q in (0.021, 0.014):  # each expiry's own yield: compare that expiry alone
        configured = _portfolio(UnderlyingParams(RATE, q))
        configured.cycle(T0_NS + S_NS)
        row = 0 if q == 0.021 else 1
        got, want = _figures(implied)[1][row], _figures(configured)[1][row]
        assert_allclose(got, want, rtol=1e-13)
    moved = _figures(implied)[1][:2]
    assert np.all(np.abs(moved - _figures(plain)[1][:2]) > 1e-4)  # the yield moved the vols


def test_the_same_yield_everywhere_gives_the_configured_book() -> None:
    implied = _portfolio(UnderlyingParams(RATE, 0.0, None, True))
    for name in (NEAR, FAR):
        expiry = _expiry(implied, name)
        implied.apply_carry(Carry(chain="SPX", expiry_ns=expiry, dividend_yield=0.017, ts_event=1))
    implied.cycle(T0_NS + S_NS)
    configured = _portfolio(UnderlyingParams(RATE, 0.017))
    configured.cycle(T0_NS + S_NS)
    assert_allclose(_figures(implied)[0], _figures(configured)[0], rtol=1e-12, atol=1e-9)


def test_a_carry_is_ignored_where_the_yield_is_configured_and_kept_for_later_rows() -> None:
    p = _portfolio(UnderlyingParams(RATE, 0.0, None, True))
    before = _figures(p)
    spy = Carry(chain="SPY", expiry_ns=_expiry(p, SPY_PUT), dividend_yield=0.2, ts_event=1)
    assert p.apply_carry(spy) == 0  # SPY's yield is configured
    nan = Carry(chain="SPX", expiry_ns=_expiry(p, NEAR), dividend_yield=float("nan"), ts_event=1)
    assert p.apply_carry(nan) == 0
    p.cycle(T0_NS + S_NS)
    assert_allclose(_figures(p)[0][1], before[0][1], rtol=1e-12)  # SPY untouched
    later = "SPXW  241220C06000000"  # same expiry as NEAR, added after its carry
    p.apply_carry(Carry(chain="SPX", expiry_ns=_expiry(p, NEAR), dividend_yield=0.03, ts_event=1))
    configured = Portfolio(InstrumentRegistry(), {"SPX": UnderlyingParams(RATE, 0.03)})
    configured.apply_tick(tick("SPX", 5600.0, ts_ns=T0_NS - S_NS))
    for book in (p, configured):
        book.add_position("b", later, 1.0, 1.0)
        book.apply_quote(quote(later, mark=80.0, ts_ns=T0_NS - S_NS))
        book.cycle(T0_NS, book is configured)  # both valued at T0_NS

    def vol(book: Portfolio) -> float:
        br = book.books_risk()["b"]
        return float(br.positions.sigma[br.instruments.index(later)])

    assert vol(p) == vol(configured)


def test_implied_carries_skip_expiries_without_a_yield() -> None:
    from engine.outputs import ForwardsPayload

    payload = ForwardsPayload(
        ts_ns=5, valuation_ts_ns=5, underlying="SPX", spot_index="SPX", spot=5600.0,
        exercise="european", method="median", expiries=["a", "b", "c"], expiry_ns=[1, 2, 3],
        tte_years=[0.1, 0.2, 0.3], rate=[0.05] * 3, discount_factor=[0.99] * 3,
        forward=[5610.0, None, 5620.0], dividend_yield=[0.012, None, float("nan")],
        dividend_pv=[1.0, None, None], residual=[0.0, None, 0.0], strikes_used=[3, 0, 1],
        pivot_strike=[5600.0, None, 5600.0], status="ok", units={},
    )  # fmt: skip
    assert implied_carries(payload) == [
        Carry(chain="SPX", expiry_ns=1, dividend_yield=0.012, ts_event=5)
    ]
