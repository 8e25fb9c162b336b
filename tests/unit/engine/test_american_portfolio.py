"""American options in the streaming portfolio and its scenario revaluation.

The portfolio prices SPY options (American, on spot with the dividend yield) and quarterly
E-mini options (American, on the future) with engine.american_kernels' fast scheme: its
figures must be engine.american's wrapper at the same inputs, in the desk units of
engine.units.to_desk times the multiplier; the vol taken from a mark is the American implied
vol of engine.american; incremental sums equal a recompute; full revaluation of an American
position is the wrapper's price at the moved inputs; and an American option is worth at least
the same option European. The wrapper itself is tested against QuantLib in test_american.py.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine import kernels, part_kernels
from engine.american import american, american_black76, american_implied_vol
from engine.daycount import year_fraction
from engine.greeks import Greeks
from engine.instruments import Exercise, Instrument, InstrumentRegistry, Kind
from engine.market import TABLED_MIN_OPTIONS
from engine.outputs import METRICS
from engine.risk.scenarios import book_scenario_pnl, scenario_pnl
from engine.state import Portfolio, UnderlyingParams
from engine.units import to_desk
from tests.factories import T0_NS, fill, quote, tick

F64 = npt.NDArray[np.float64]
S_NS = 1_000_000_000
V = T0_NS  # 2024-07-01T00:00:00Z
SPY = 545.0
ES = 5600.0
RATE, YIELD = 0.05, 0.013
# (name, is_call, strike, iv): deep and near the money, both sides, two expiries
SPY_OPTIONS = [
    ("SPY241220P600", False, 600.0, 0.16),
    ("SPY241220P540", False, 540.0, 0.14),
    ("SPY241220C480", True, 480.0, 0.2),
    ("SPY250620C560", True, 560.0, 0.15),
    ("SPY250620P700", False, 700.0, 0.18),
]
ES_OPTIONS = [("ESZ4 P6000", False, 6000.0, 0.17), ("ESZ4 C5000", True, 5000.0, 0.2)]
N_FIG = kernels.N_UNIT - 2  # the figures of METRICS (no P&L)


def _portfolio(accuracy: str = "fast") -> Portfolio:
    params = {"SPY": UnderlyingParams(RATE, YIELD), "SPX": UnderlyingParams(RATE, YIELD)}
    p = Portfolio(InstrumentRegistry(), params, american_accuracy=accuracy)  # type: ignore[arg-type]
    p.apply_tick(tick("SPY", SPY, ts_ns=V - S_NS))
    p.apply_tick(tick("ESZ4", ES, ts_ns=V - S_NS))
    for k, (name, *_) in enumerate(SPY_OPTIONS + ES_OPTIONS):
        p.add_position("b", name, float(k + 1) * (-1.0) ** k, 10.0)
    return p


def _quote_ivs(p: Portfolio) -> None:
    for name, _, _, iv in SPY_OPTIONS + ES_OPTIONS:
        p.apply_quote(quote(name, mark=1.0, iv=iv, ts_ns=V - S_NS))


def _desk(g: Greeks, x: F64, m: float) -> F64:
    """The portfolio's unit figures (METRICS order) of raw Greeks ``g`` at ``x``, multiplier m."""
    d = to_desk(g, x)
    cols = [d.delta, d.delta_usd, d.delta, d.gamma, d.cash_gamma, d.vega, d.theta, d.rho]
    cols += [d.vanna, d.volga, d.price]
    return m * np.stack(cols, axis=1)


def _years(expiry_ns: int) -> float:
    return float(year_fraction(np.int64(V), np.int64(expiry_ns)))


def _spy_expected(p: Portfolio, sigma: F64) -> F64:
    defs = [p.registry.get(n) for n, *_ in SPY_OPTIONS]
    t = np.array([_years(d.expiry_ns or 0) for d in defs if d is not None])
    calls = np.array([c for _, c, _, _ in SPY_OPTIONS])
    strikes = np.array([k for _, _, k, _ in SPY_OPTIONS])
    g = american(calls, SPY, strikes, t, RATE, YIELD, sigma, accuracy="fast")
    return _desk(g, np.full(t.size, SPY), 100.0)


def _es_expected(p: Portfolio, sigma: F64) -> F64:
    defs = [p.registry.get(n) for n, *_ in ES_OPTIONS]
    t = np.array([_years(d.expiry_ns or 0) for d in defs if d is not None])
    calls = np.array([c for _, c, _, _ in ES_OPTIONS])
    strikes = np.array([k for _, _, k, _ in ES_OPTIONS])
    g = american_black76(calls, ES, strikes, t, RATE, sigma, accuracy="fast")
    return _desk(g, np.full(t.size, ES), 50.0)


def test_the_instruments_are_american_and_on_spot_or_on_the_future() -> None:
    p = _portfolio()
    for name, *_ in SPY_OPTIONS + ES_OPTIONS:
        inst = p.registry.get(name)
        assert inst is not None
        assert inst.exercise == Exercise.AMERICAN
    es = p.registry.get("ESZ4 P6000")
    assert es is not None
    assert es.on_forward
    assert es.underlying_future == "ESZ4"


def test_figures_are_the_american_wrappers_in_desk_units() -> None:
    p = _portfolio()
    _quote_ivs(p)
    p.cycle(V, full=True)
    spy = p.priced([n for n, *_ in SPY_OPTIONS])
    es = p.priced([n for n, *_ in ES_OPTIONS])
    assert spy.ok.all()
    assert es.ok.all()
    assert (spy.positions.american == kernels.AMERICAN_FAST).all()
    assert_allclose(spy.positions.X, SPY, rtol=0.0)
    assert_allclose(spy.positions.q, YIELD, rtol=0.0)
    assert_allclose(es.positions.X, ES, rtol=0.0)
    want_spy = _spy_expected(p, np.array([v for *_, v in SPY_OPTIONS]))
    want_es = _es_expected(p, np.array([v for *_, v in ES_OPTIONS]))
    # The same scheme at the same inputs: equal to rounding (T is formed the same way).
    assert_allclose(spy.units[:, :N_FIG], want_spy, rtol=1e-12, atol=1e-12)
    assert_allclose(es.units[:, :N_FIG], want_es, rtol=1e-12, atol=1e-12)
    # Early exercise shows: the deep put is worth more than its European twin.
    euro = Portfolio(InstrumentRegistry([_european_twin(p, "SPY241220P600")]),
                     {"SPY": UnderlyingParams(RATE, YIELD)})  # fmt: skip
    euro.apply_tick(tick("SPY", SPY, ts_ns=V - S_NS))
    euro.apply_quote(quote("EU600P", mark=1.0, iv=0.16, ts_ns=V - S_NS))
    euro.add_position("b", "EU600P", 1.0)
    euro.cycle(V, full=True)
    mv = METRICS.index("market_value")
    assert spy.units[0, mv] > euro.priced(["EU600P"]).units[0, mv] + 10.0


def _european_twin(p: Portfolio, name: str, twin: str = "EU600P") -> Instrument:
    inst = p.registry.get(name)
    assert inst is not None
    return Instrument(
        name=twin, kind=Kind.OPTION, underlying="SPY", index="SPY", venue="opra",
        expiry_ns=inst.expiry_ns, strike=inst.strike, is_call=inst.is_call,
        multiplier=inst.multiplier,
    )  # fmt: skip


def test_the_vol_from_a_mark_is_the_american_implied_vol() -> None:
    p = _portfolio()
    sigma_true = np.array([v for *_, v in SPY_OPTIONS])
    prices = _spy_expected(p, sigma_true)[:, METRICS.index("market_value")] / 100.0
    for (name, *_), price in zip(SPY_OPTIONS, prices.tolist(), strict=True):
        p.apply_quote(quote(name, mark=price, ts_ns=V - S_NS))
    es_true = np.array([v for *_, v in ES_OPTIONS])
    es_prices = _es_expected(p, es_true)[:, METRICS.index("market_value")] / 50.0
    for (name, *_), price in zip(ES_OPTIONS, es_prices.tolist(), strict=True):  # mid only
        p.apply_quote(quote(name, mark=None, bid=price - 0.5, ask=price + 0.5, ts_ns=V - S_NS))
    p.cycle(V, full=True)
    spy = p.priced([n for n, *_ in SPY_OPTIONS])
    t = np.array([_years(p.registry.get(n).expiry_ns or 0) for n, *_ in SPY_OPTIONS])  # type: ignore[union-attr]
    iv = american_implied_vol(
        prices, np.array([c for _, c, _, _ in SPY_OPTIONS]), SPY,
        np.array([k for _, _, k, _ in SPY_OPTIONS]), t, RATE, YIELD, accuracy="fast",
    )  # fmt: skip
    assert_allclose(spy.positions.sigma, iv.sigma, rtol=1e-12)
    # The deep put of June is in the exercise region at 18 %: its price is its intrinsic value,
    # which no vol implies, and it is left unpriced; the others come back round.
    priced = np.arange(len(SPY_OPTIONS)) != 4
    assert prices[4] == 700.0 - SPY
    assert math.isnan(spy.positions.sigma[4])
    assert not spy.ok[4]
    assert_allclose(spy.positions.sigma[priced], sigma_true[priced], rtol=1e-9)
    want = _spy_expected(p, iv.sigma)
    assert_allclose(spy.units[priced, :N_FIG], want[priced], rtol=1e-12, atol=1e-12)
    es = p.priced([n for n, *_ in ES_OPTIONS])
    assert_allclose(es.positions.sigma, es_true, rtol=1e-9)


def test_incremental_sums_equal_a_full_recompute() -> None:
    p = _portfolio()
    _quote_ivs(p)
    p.cycle(V, full=True)
    assert_allclose(p.group_values(), p.recompute(), rtol=1e-13, atol=1e-9)
    rng = np.random.default_rng(7)
    for step in range(12):
        ts = V + step * S_NS
        if step % 3 == 0:
            p.apply_tick(tick("SPY", SPY * math.exp(rng.normal(0.0, 0.01)), ts_ns=ts))
        elif step % 3 == 1:
            name = SPY_OPTIONS[step % len(SPY_OPTIONS)][0]
            p.apply_quote(quote(name, mark=None, bid=9.0, ask=9.5 + step, ts_ns=ts))
        else:
            p.apply_fill(fill(ES_OPTIONS[0][0], 2.0, ts_ns=ts))
            p.apply_tick(tick("ESZ4", ES + step, ts_ns=ts))
        assert p.cycle(ts)
        values = p.group_values()
        assert np.isfinite(values).all()
        assert_allclose(values, p.recompute(), rtol=1e-13, atol=1e-9)


def test_scenario_pnl_is_the_wrappers_price_at_the_moved_inputs() -> None:
    p = _portfolio()
    _quote_ivs(p)
    p.cycle(V, full=True)
    br = p.book_risk("b")
    book = br.positions
    assert (book.american[book.kind == kernels.KIND_OPTION] == kernels.AMERICAN_FAST).all()
    u = len(br.underlyings)
    ret = np.array([[0.0] * u, [-0.08] * u, [0.05] * u, [0.2] * u])
    dvol = np.array([[0.0] * u, [0.3] * u, [-0.2] * u, [-0.995] * u])  # the last: vol floor
    horizon_days = 3.0
    res = scenario_pnl(book, ret, dvol, horizon_days)
    assert res.excluded.size == 0
    want = np.zeros((ret.shape[0], book.kind.size))
    for i in range(book.kind.size):
        c = int(book.und[i])
        later = max(float(book.T[i]) - horizon_days / 365.0, 0.0)
        x = book.X[i] * np.exp(ret[:, c])
        v = book.sigma[i] * np.maximum(1.0 + dvol[:, c], 0.01)
        now, moved = _wrapper_price(book, i, book.X[i], book.T[i], book.sigma[i], x, later, v)
        want[:, i] = book.weight[i] * (moved - now)
    assert_allclose(res.pnl, want.sum(axis=1), rtol=1e-12, atol=1e-8)
    # attribution's kernels value positions as scenario_pnl does: one part per position
    each = np.empty_like(want)
    part_kernels.part_pnl_kernel(
        book, ret, dvol, horizon_days / 365.0, np.arange(book.kind.size), each
    )
    assert_allclose(each, want, rtol=1e-12, atol=1e-8)
    weighted = np.empty((1, book.kind.size))
    w = np.array([[0.1, 0.2, 0.3, 0.4]])
    part_kernels.weighted_pnl_kernel(book, ret, dvol, horizon_days / 365.0, w, weighted)
    assert_allclose(weighted[0], w[0] @ want, rtol=1e-12, atol=1e-8)


def _wrapper_price(
    book: kernels.ScenarioColumns, i: int, x0: float, t0: float, v0: float,
    x: F64, t: float, v: F64,
) -> tuple[float, F64]:  # fmt: skip
    """Position ``i``'s price now and at (x, t, v), by engine.american's wrapper."""
    is_call, k, r, q = bool(book.is_call[i]), book.strike[i], book.r[i], book.q[i]
    if book.black[i]:
        now = american_black76(is_call, x0, k, t0, r, v0, accuracy="fast").price
        moved = american_black76(is_call, x, k, t, r, v, accuracy="fast").price
    else:
        now = american(is_call, x0, k, t0, r, q, v0, accuracy="fast").price
        moved = american(is_call, x, k, t, r, q, v, accuracy="fast").price
    return float(now), np.asarray(moved)


@settings(max_examples=40, deadline=None)
@given(
    is_call=st.booleans(),
    moneyness=st.floats(0.6, 1.6),
    days=st.integers(1, 720),
    vol=st.floats(0.05, 1.0),
    rate=st.floats(-0.01, 0.1),
    dividend_yield=st.floats(0.0, 0.08),
)
def test_an_american_option_is_worth_at_least_its_european_twin(
    is_call: bool, moneyness: float, days: int, vol: float, rate: float, dividend_yield: float
) -> None:
    expiry = V + days * 86_400 * S_NS
    legs = [
        Instrument(
            name=name,
            kind=Kind.OPTION,
            underlying="SPY",
            index="SPY",
            venue="opra",
            expiry_ns=expiry,
            strike=SPY * moneyness,
            is_call=is_call,
            multiplier=100.0,
            exercise=exercise,
        )
        for name, exercise in (("AM", Exercise.AMERICAN), ("EU", Exercise.EUROPEAN))
    ]
    p = Portfolio(InstrumentRegistry(legs), {"SPY": UnderlyingParams(rate, dividend_yield)})
    p.apply_tick(tick("SPY", SPY, ts_ns=V))
    for name in ("AM", "EU"):
        p.apply_quote(quote(name, mark=1.0, iv=vol, ts_ns=V))
        p.add_position("b", name, 1.0)
    p.cycle(V, full=True)
    priced = p.priced(["AM", "EU"])
    assert priced.ok.all()
    mv = METRICS.index("market_value")
    am, eu = priced.units[:, mv]
    assert am >= eu - 1e-9 * SPY * 100.0


def test_boundaries_read_back_give_a_fresh_portfolios_figures() -> None:
    """The portfolio keeps each American option's boundaries from one repricing to the next
    (engine.american_kernels' memo): after ticks, hours passing (full reprices) and a change
    of vol, its figures equal to the bit those of a new portfolio that sees only the last
    inputs."""
    p = _portfolio()
    _quote_ivs(p)
    p.cycle(V, full=True)
    memo = p._market.memos.arrays["memo"]
    assert np.isfinite(memo[: len(SPY_OPTIONS + ES_OPTIONS), 0]).all()  # every row keyed
    rng = np.random.default_rng(11)
    spy, es, ts = SPY, ES, V
    vols = {name: iv for name, _, _, iv in SPY_OPTIONS + ES_OPTIONS}
    for step in range(1, 13):
        ts = V + step * 3_600 * S_NS
        spy, es = spy * math.exp(rng.normal(0.0, 0.01)), es * math.exp(rng.normal(0.0, 0.01))
        p.apply_tick(tick("SPY", spy, ts_ns=ts))
        p.apply_tick(tick("ESZ4", es, ts_ns=ts))
        if step % 4 == 0:
            name = SPY_OPTIONS[step % len(SPY_OPTIONS)][0]
            vols[name] *= 1.05
            p.apply_quote(quote(name, mark=1.0, iv=vols[name], ts_ns=ts))
        assert p.cycle(ts, full=step % 2 == 0)  # the clock moves on a full reprice
    fresh = _portfolio()
    fresh.apply_tick(tick("SPY", spy, ts_ns=ts))
    fresh.apply_tick(tick("ESZ4", es, ts_ns=ts))
    for name, iv in vols.items():
        fresh.apply_quote(quote(name, mark=1.0, iv=iv, ts_ns=ts))
    fresh.cycle(ts, full=True)
    names = [n for n, *_ in SPY_OPTIONS + ES_OPTIONS]
    np.testing.assert_array_equal(p.priced(names).units, fresh.priced(names).units)


def _december(strikes: range) -> list[tuple[str, bool, float, float]]:
    """SPY options of December 2024, a call and a put at each strike, on a smile."""
    return [
        (f"SPY241220{'C' if call else 'P'}{k}", call, float(k), 0.15 + 0.2 * (k / SPY - 1.0) ** 2)
        for k in strikes
        for call in (True, False)
    ]


def _chain_portfolio(groups: list[list[tuple[str, bool, float, float]]]) -> Portfolio:
    """A portfolio holding each group of options in turn, quoted and fully repriced after
    each."""
    p = Portfolio(InstrumentRegistry(), {"SPY": UnderlyingParams(RATE, YIELD)})
    p.apply_tick(tick("SPY", SPY, ts_ns=V - S_NS))
    for group in groups:
        for k, (name, _, _, iv) in enumerate(group):
            p.add_position("b", name, float(k % 3 + 1), 10.0)
            p.apply_quote(quote(name, mark=1.0, iv=iv, ts_ns=V - S_NS))
        p.cycle(V, full=True)
    return p


def test_a_chain_reads_its_boundaries_from_tables() -> None:
    """From TABLED_MIN_OPTIONS American options of one underlying and expiry on, they read
    their boundaries from tables (kernels.AMERICAN_TABLED): american(..., tables=True)'s
    figures to rounding; fewer (June) solve their own, american()'s. The options held before
    the chain filled had solved boundaries in their memos, emptied then: a portfolio that
    grew into the chain gives a new one's figures to the bit."""
    december = _december(range(500, 600, 5))  # 40 options
    june = SPY_OPTIONS[3:]
    before = december[: TABLED_MIN_OPTIONS // 2]
    grown = _chain_portfolio([before + june, december[len(before) :]])
    fresh = _chain_portfolio([december + june])
    names = [n for n, *_ in december + june]
    np.testing.assert_array_equal(grown.priced(names).units, fresh.priced(names).units)
    for options, code, tables in ((december, kernels.AMERICAN_TABLED, True),
                                  (june, kernels.AMERICAN_FAST, False)):  # fmt: skip
        priced = fresh.priced([n for n, *_ in options])
        assert (priced.positions.american == code).all()
        t = np.array([_years(fresh.registry.get(n).expiry_ns or 0) for n, *_ in options])  # type: ignore[union-attr]
        calls = np.array([c for _, c, _, _ in options])
        strikes = np.array([k for _, _, k, _ in options])
        vols = np.array([v for *_, v in options])
        g = american(calls, SPY, strikes, t, RATE, YIELD, vols, accuracy="fast", tables=tables)
        want = _desk(g, np.full(t.size, SPY), 100.0)
        assert_allclose(priced.units[:, :N_FIG], want, rtol=1e-12, atol=1e-12)
    # the grown portfolio's first options were priced from solved boundaries before
    small = _chain_portfolio([before + june])
    first = [n for n, *_ in before]
    assert (small.priced(first).positions.american == kernels.AMERICAN_FAST).all()
    assert (small.priced(first).units != fresh.priced(first).units).any()


def test_a_stress_grid_reads_each_vols_boundary_back() -> None:
    """book_scenario_pnl (stress grids, margin, attribution) keeps an American instrument's
    boundaries across its scenarios (kernels.scenario_memo): the P&L of each position in a
    stress grid of 13 spots x 7 vols equals the per-position kernel's, which solves every
    scenario's boundary, to the 1e-13 relative the two paths agree to on any book (their
    prices are the same to the bit: test_a_scenario_memo_gives_fresh_prices_and_is_read)."""
    p = _portfolio()
    _quote_ivs(p)
    p.cycle(V, full=True)
    book = p.book_risk("b").positions
    spot = np.linspace(-0.3, 0.3, 13)
    vol = np.array([-0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0])
    u = int(book.und.max()) + 1
    ret = np.repeat(np.log1p(spot), vol.size)[:, None] * np.ones(u)
    dvol = np.tile(vol, spot.size)[:, None] * np.ones(u)
    n = book.kind.size
    shared = book_scenario_pnl(book, ret, dvol, 3.0, np.arange(n), n)
    each = np.empty((ret.shape[0], n))
    part_kernels.part_pnl_kernel(book, ret, dvol, 3.0 / 365.0, np.arange(n), each)
    assert_allclose(shared.pnl, each.T, rtol=1e-13, atol=1e-9)


def test_a_scenario_memo_gives_fresh_prices_and_is_read() -> None:
    """kernels._american_price with a scenario memo, in a stress grid's order (the vols of
    each spot level in turn): every price equals a fresh solve's to the bit, the memo ends
    holding one boundary per vol level, and a spoilt boundary moves the price."""
    memo = kernels.scenario_memo()
    rows = memo[kernels._SOLVER_ROOM :]  # after the solver's room (a view)
    width = (rows.size - 1) // kernels.SCENARIO_MEMO_ROWS
    vols = 0.16 * np.array([0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0])
    for is_call, k in ((True, 480.0), (False, 600.0), (False, 540.0)):
        memo[:] = np.nan
        memo[-1] = 0.0
        for x in SPY * np.exp(np.linspace(-0.3, 0.3, 13)):
            for v in vols:
                args = (kernels.AMERICAN_FAST, is_call, x, k, 0.47, RATE, YIELD, v)
                fresh = kernels._american_price(*args, np.empty(0))
                assert kernels._american_price(*args, memo) == fresh
        keyed = [rows[r * width] == rows[r * width] for r in range(kernels.SCENARIO_MEMO_ROWS)]
        assert sum(keyed) == vols.size
    # the last put's row 0 (its first vol): its boundary's coefficients spoilt
    assert rows[3] == vols[0]
    rows[10:15] += 0.3
    args = (kernels.AMERICAN_FAST, False, SPY, 540.0, 0.47, RATE, YIELD, vols[0])
    assert kernels._american_price(*args, memo) != kernels._american_price(*args, np.empty(0))
