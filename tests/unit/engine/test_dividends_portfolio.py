"""Discrete cash dividends in the streaming portfolio (escrowed model, docs/american.md).

An underlying's dividend schedule (:attr:`engine.state.UnderlyingParams.dividends`) prices its
options on spot on S - PV, PV the dividends paid after the valuation time and up to each
option's expiry, discounted at its r. The portfolio's figures must be engine.american's
wrapper with ``dividends=`` for American options, and for European ones BSM on S - PV whose
theta and rho are the finite differences of that price in time (the PV accrues) and in r (the
PV is discounted at r). Scenarios move S and take the same PV off. A dividend after expiry,
or one whose ex-instant has passed at the last full reprice, changes nothing: to the bit.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import numpy.typing as npt
from numpy.testing import assert_allclose, assert_array_equal

from engine import kernels, part_kernels
from engine.american import Dividends, american
from engine.daycount import NS_PER_DAY, year_fraction
from engine.greeks import Greeks, bsm
from engine.instruments import Instrument, InstrumentRegistry, Kind
from engine.outputs import METRICS
from engine.readout import Priced
from engine.risk.scenarios import book_scenario_pnl, scenario_pnl
from engine.risk.span import unit_value_delta
from engine.state import Portfolio, UnderlyingParams
from engine.units import to_desk
from engine.uscalendar import open_ns
from tests.factories import T0_NS, quote, tick

F64 = npt.NDArray[np.float64]
S_NS = 1_000_000_000
V = T0_NS  # 2024-07-01T00:00:00Z
SPY = 545.0
RATE, YIELD = 0.05, 0.004  # a little borrow on top of the discrete dividends
# SPY's quarterly ex-dates (the third Friday of the last month of the quarter), USD a share
SCHEDULE = (
    (open_ns(date(2024, 9, 20)), 1.75),
    (open_ns(date(2024, 12, 20)), 1.80),  # the December options' expiry day: before the close
    (open_ns(date(2025, 3, 21)), 1.70),
    (open_ns(date(2025, 6, 20)), 1.85),
)
# (name, is_call, strike, iv): American SPY options of two expiries, and a European twin
OPTIONS = [
    ("SPY241220P560", False, 560.0, 0.15),
    ("SPY241220C500", True, 500.0, 0.19),
    ("SPY250620C560", True, 560.0, 0.15),
    ("SPY250620P600", False, 600.0, 0.17),
]
EURO = [("EU250620C560", True, 560.0, 0.15), ("EU250620P520", False, 520.0, 0.16)]
N_FIG = kernels.N_UNIT - 2  # the figures of METRICS (no P&L)
MV = METRICS.index("market_value")


def _european(name: str, is_call: bool, strike: float) -> Instrument:
    return Instrument(
        name=name, kind=Kind.OPTION, underlying="SPY", index="SPY", venue="opra",
        expiry_ns=open_ns(date(2025, 6, 20)) + 23_400 * S_NS,  # 16:00 ET
        strike=strike, is_call=is_call, multiplier=100.0,
    )  # fmt: skip


def _portfolio(schedule: tuple[tuple[int, float], ...] | None, at: int = V) -> Portfolio:
    """The options above, each held, quoted at its iv, SPY at :data:`SPY`, priced at ``at``;
    ``schedule`` None: the underlying is given no ``dividends`` at all."""
    euro = [_european(n, c, k) for n, c, k, _ in EURO]
    params = (
        UnderlyingParams(RATE, YIELD)
        if schedule is None
        else UnderlyingParams(RATE, YIELD, dividends=schedule)
    )
    p = Portfolio(InstrumentRegistry(euro), {"SPY": params})
    _market(p, at)
    for k, (name, *_) in enumerate(OPTIONS + EURO):
        p.add_position("b", name, float(k + 1) * (-1.0) ** k, 10.0)
    p.cycle(at, full=True)
    return p


def _market(p: Portfolio, at: int, spot: float = SPY) -> None:
    p.apply_tick(tick("SPY", spot, ts_ns=at - S_NS))
    for name, _, _, iv in OPTIONS + EURO:
        p.apply_quote(quote(name, mark=1.0, iv=iv, ts_ns=at - S_NS))


def _priced(p: Portfolio, rows: list[tuple[str, bool, float, float]]) -> Priced:
    priced = p.priced([name for name, *_ in rows])
    assert priced.ok.all()
    return priced


def _years(p: Portfolio, rows: list[tuple[str, bool, float, float]], at: int = V) -> F64:
    expiry = [p.registry.get(name).expiry_ns for name, *_ in rows]  # type: ignore[union-attr]
    return np.asarray(year_fraction(np.int64(at), np.array(expiry, dtype=np.int64)))


def _dividends(schedule: tuple[tuple[int, float], ...], at: int = V) -> Dividends:
    ex_ns, amounts = zip(*schedule, strict=True)
    return Dividends(year_fraction(np.int64(at), np.array(ex_ns)), np.array(amounts))


def _pv(t: F64, r: float, schedule: tuple[tuple[int, float], ...], shift_years: float) -> F64:
    """Σ D e^{-r t_i} over the dividends in (0, T], written out again (the oracle), with the
    valuation ``shift_years`` later."""
    out = np.zeros(t.size)
    for ex_ns, amount in schedule:
        ti = year_fraction(V, ex_ns) - shift_years
        out += np.where((ti > 0.0) & (ti <= t - shift_years), amount * math.exp(-r * ti), 0.0)
    return out


def _desk(g: Greeks) -> F64:
    """The portfolio's unit figures (METRICS order) of raw Greeks at the quoted spot, x100."""
    d = to_desk(g, np.full(g.price.shape, SPY))
    cols = [d.delta, d.delta_usd, d.delta, d.gamma, d.cash_gamma, d.vega, d.theta, d.rho]
    return 100.0 * np.stack([*cols, d.vanna, d.volga, d.price], axis=1)


def _columns(rows: list[tuple[str, bool, float, float]]) -> tuple[F64, F64, F64]:
    return (
        np.array([c for _, c, _, _ in rows]),
        np.array([k for _, _, k, _ in rows]),
        np.array([v for *_, v in rows]),
    )


def test_american_figures_are_the_wrapper_with_the_schedule() -> None:
    p = _portfolio(SCHEDULE)
    spy = _priced(p, OPTIONS)
    calls, strikes, sigma = _columns(OPTIONS)
    t = _years(p, OPTIONS)
    want = american(
        calls, SPY, strikes, t, RATE, YIELD, sigma, dividends=_dividends(SCHEDULE), accuracy="fast"
    )
    assert_allclose(spy.units[:, :N_FIG], _desk(want), rtol=1e-10, atol=1e-10)
    assert_allclose(spy.positions.X, SPY, rtol=0.0)  # X stays the quoted spot
    assert_allclose(spy.positions.div_pv, _pv(t, RATE, SCHEDULE, 0.0), rtol=1e-15)
    # the schedule matters: December has two dividends before expiry, June four
    assert_allclose(spy.positions.div_pv, [3.54, 3.54, 6.84, 6.84], rtol=0.03)
    plain = _priced(_portfolio(None), OPTIONS)
    assert (np.abs(spy.units[:, MV] - plain.units[:, MV]) > 30.0).all()
    # an option first seen after the valuation time was set (a what-if leg, a hedge) too
    new = ("SPY250321P540", False, 540.0, 0.2)
    p.apply_quote(quote(new[0], mark=1.0, iv=new[3], ts_ns=V - S_NS))
    t_new = _years(p, [new])
    want_new = american(
        False, SPY, 540.0, t_new, RATE, YIELD, 0.2, dividends=_dividends(SCHEDULE), accuracy="fast"
    )
    assert_allclose(_priced(p, [new]).units[:, :N_FIG], _desk(want_new), rtol=1e-10, atol=1e-10)


def test_european_figures_are_bsm_on_the_escrowed_spot() -> None:
    p = _portfolio(SCHEDULE)
    eu = _priced(p, EURO)
    calls, strikes, sigma = _columns(EURO)
    t = _years(p, EURO)

    def price(shift_years: float = 0.0, r: float = RATE, spot: float = SPY) -> F64:
        pv = _pv(t, r, SCHEDULE, shift_years)
        return bsm(calls, spot - pv, strikes, t - shift_years, r, YIELD, sigma).price

    g = bsm(calls, SPY - _pv(t, RATE, SCHEDULE, 0.0), strikes, t, RATE, YIELD, sigma)
    units = eu.units[:, :N_FIG]
    same = [f for f in METRICS[:N_FIG] if f not in ("theta", "rho")]
    at = [METRICS.index(f) for f in same]
    assert_allclose(units[:, at], _desk(g)[:, at], rtol=1e-12, atol=1e-12)
    h = 1e-4  # years; r: 1e-4
    theta = (price(h) - price(-h)) / (2.0 * h)  # the valuation moves on: time runs out
    rho = (price(r=RATE + h) - price(r=RATE - h)) / (2.0 * h)
    delta = (price(spot=SPY + 0.01) - price(spot=SPY - 0.01)) / 0.02
    assert_allclose(units[:, METRICS.index("theta")], 100.0 * theta / 365.0, rtol=1e-6)
    assert_allclose(units[:, METRICS.index("rho")], 100.0 * rho * 0.01, rtol=1e-6)
    assert_allclose(units[:, METRICS.index("delta")], 100.0 * delta, rtol=1e-8)


def test_a_dividend_after_expiry_changes_nothing() -> None:
    between = ((open_ns(date(2025, 1, 17)), 2.5),)  # after December's expiry, before June's
    p, plain = _portfolio(between), _portfolio(None)
    dec = [row for row in OPTIONS if "2412" in row[0]]
    jun = [row for row in OPTIONS if "2506" in row[0]]
    assert_array_equal(_priced(p, dec).units, _priced(plain, dec).units)
    assert (_priced(p, jun).units[:, MV] != _priced(plain, jun).units[:, MV]).all()


def test_a_passed_dividend_drops_out_at_the_next_full_reprice() -> None:
    soon = ((V + NS_PER_DAY, 3.0), *SCHEDULE)  # ex tomorrow
    later = V + 2 * NS_PER_DAY
    p = _portfolio(soon)
    with_it = _priced(p, OPTIONS + EURO)
    _market(p, later)
    p.cycle(later)  # incremental: the valuation time stays
    assert_array_equal(_priced(p, OPTIONS + EURO).units, with_it.units)
    p.cycle(later, full=True)
    without = _portfolio(SCHEDULE, at=later)
    assert_array_equal(_priced(p, OPTIONS + EURO).units, _priced(without, OPTIONS + EURO).units)
    assert_array_equal(p.group_values(), without.group_values())
    assert (np.abs(with_it.units[:, MV] - _priced(p, OPTIONS + EURO).units[:, MV]) > 1.0).all()


def test_no_dividends_to_come_gives_the_same_figures_to_the_bit() -> None:
    """An empty schedule, one whose dividends have all passed, and no schedule: one set of
    figures, sums, scenario P&L and book rows, to the bit."""
    plain = _portfolio(None)
    ret = np.array([[0.0], [-0.1], [0.07]])
    dvol = np.array([[0.0], [0.2], [-0.1]])
    book = plain.book_risk("b").positions
    for schedule in ((), ((V - NS_PER_DAY, 2.0), (V, 1.0))):
        p = _portfolio(schedule)
        assert_array_equal(p.group_values(), plain.group_values())
        names = [n for n, *_ in OPTIONS + EURO]
        assert_array_equal(p.priced(names).units, plain.priced(names).units)
        other = p.book_risk("b").positions
        for name in kernels.ScenarioColumns._fields:
            assert_array_equal(getattr(other, name), getattr(book, name))
        assert_array_equal(
            scenario_pnl(other, ret, dvol, 1.0).pnl, scenario_pnl(book, ret, dvol, 1.0).pnl
        )


def test_scenarios_move_the_spot_and_take_the_same_pv_off() -> None:
    p = _portfolio(SCHEDULE)
    book = p.book_risk("b").positions
    assert (book.div_pv > 3.0).all()
    ret = np.array([[0.0], [-0.08], [0.05], [0.2]])
    dvol = np.array([[0.0], [0.3], [-0.2], [0.0]])
    horizon_days = 3.0
    want = np.zeros((ret.shape[0], book.kind.size))
    for i in range(book.kind.size):
        is_call, k, pv = bool(book.is_call[i]), book.strike[i], book.div_pv[i]
        later = float(book.T[i]) - horizon_days / 365.0
        x = book.X[i] * np.exp(ret[:, 0]) - pv
        v = book.sigma[i] * (1.0 + dvol[:, 0])
        if book.american[i] != kernels.EUROPEAN:
            now = american(is_call, book.X[i] - pv, k, book.T[i], RATE, YIELD, book.sigma[i],
                           accuracy="fast").price  # fmt: skip
            moved = american(is_call, x, k, later, RATE, YIELD, v, accuracy="fast").price
        else:
            now = bsm(is_call, book.X[i] - pv, k, book.T[i], RATE, YIELD, book.sigma[i]).price
            moved = bsm(is_call, x, k, later, RATE, YIELD, v).price
        want[:, i] = book.weight[i] * (moved - now)
    res = scenario_pnl(book, ret, dvol, horizon_days)
    assert res.excluded.size == 0
    assert_allclose(res.pnl, want.sum(axis=1), rtol=1e-12, atol=1e-8)
    per_book = book_scenario_pnl(book, ret, dvol, horizon_days)
    assert_allclose(per_book.total, want.sum(axis=1), rtol=1e-12, atol=1e-8)
    each = np.empty_like(want)
    part_kernels.part_pnl_kernel(
        book, ret, dvol, horizon_days / 365.0, np.arange(book.kind.size), each
    )
    assert_allclose(each, want, rtol=1e-12, atol=1e-8)
    value, delta = unit_value_delta(book)  # SPAN's value and delta: on S - PV too
    units = p.priced(p.book_risk("b").instruments).units
    assert_allclose(100.0 * value, units[:, MV], rtol=1e-12)
    assert_allclose(100.0 * delta, units[:, METRICS.index("delta")], rtol=1e-12)
