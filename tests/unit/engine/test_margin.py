"""Margin (engine.risk.margin): Deribit's published portfolio-margin examples, McMillan's SPAN
array, hand computations with the public pricing API, and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.greeks import black76, bsm
from engine.kernels import KIND_FUTURE, KIND_OPTION, KIND_PERPETUAL
from engine.risk.margin import (
    DERIBIT_PM_BTC,
    DERIBIT_PM_ETH,
    DERIBIT_STANDARD_ETH,
    DeribitPMParams,
    SpanParams,
    deribit_portfolio_margin,
    deribit_standard_margin,
    margin_savings,
    margin_utilisation,
    pnl_by_underlying,
    shared_scenario_pnl,
    span_margin,
)
from engine.risk.scenarios import ScenarioBook
from tests.unit.engine.test_var import scenario_book as var_book

OPTION: dict[str, object] = {
    "kind": KIND_OPTION, "black": True, "inverse": True, "strike": 60_000.0, "T": 30 / 365,
    "sigma": 0.6, "X": 60_000.0,
}  # fmt: skip


def scenario_book(rows: list[dict[str, object]]) -> ScenarioBook:
    """A ScenarioBook from one dict per position (defaults: a coin-settled Black-76 call on
    underlying 0, 30 days, strike and forward 60,000, vol 60 %)."""
    return var_book([{**OPTION, **row} for row in rows])


def perpetual(coin: float, mark: float, und: int = 0) -> dict[str, object]:
    """An inverse perpetual of ``coin`` coin at ``mark`` (weight: its USD notional)."""
    return {"kind": KIND_PERPETUAL, "X": mark, "weight": coin * mark, "T": 0.0, "und": und}


# ------------------------------------------------------- Deribit's published risk vectors


def test_deribit_api_reference_example_btc() -> None:
    """Deribit's API reference, ``private/pme/simulate``, response example
    (https://docs.deribit.com/api-reference/account-management/private-simulate; model params
    of 2024-06-17, timestamp 1718619740501): BTC-PERPETUAL 0.314538364 BTC (mark 65,910.57),
    BTC-28JUN24 -0.001187534 BTC (mark 67,371.75), index 65,666.19. Deribit's initial risk
    vectors (coin, 3 equal vol scenarios a price move, -16 % .. +16 %, then the extended table):

    - perpetual: -0.05991206933333334, -0.04289159509090909, -0.027351162086956524,
      -0.013105765166666668, 0, 0.012097629384615385, 0.023299138074074074,
      0.033700538999999995, 0.043384601931034494; extended -0.0599... x 2, 0.0433... x 6
    - future: 0.0002261969523809524, 0.00016193645454545456, 0.00010326382608695652,
      0.00004948058333333334, 0, -0.00004567438461538462, -0.00008796548148148148,
      -0.0001272357857142857, -0.00016379779310344832; extended 0.000226... x 2,
      -0.000163... x 6

    Aggregated extended vector all 0 (dampened); worst_case 0.05968587238095239, roll_shock
    0.00315725898, delta_shock 0, risk_matrix_margin 0.06284313098, maintenance_margin
    0.050274504784 (its initial_margin 0.122861343 adds open orders and MMP, outside the risk
    matrix)."""
    t = (1_719_561_600_000 - 1_718_619_740_501) / (365 * 86_400_000)  # 28 Jun 2024 08:00 UTC
    book = scenario_book(
        [perpetual(0.314538364, 65_910.57),
         {"kind": KIND_FUTURE, "X": 67_371.75, "weight": -0.001187534 * 67_371.75, "T": t}]
    )  # fmt: skip
    perp = [-0.05991206933333334, -0.04289159509090909, -0.027351162086956524,
            -0.013105765166666668, 0.0, 0.012097629384615385, 0.023299138074074074,
            0.033700538999999995, 0.043384601931034494]  # fmt: skip
    fut = [0.0002261969523809524, 0.00016193645454545456, 0.00010326382608695652,
           0.00004948058333333334, 0.0, -0.00004567438461538462, -0.00008796548148148148,
           -0.0001272357857142857, -0.00016379779310344832]  # fmt: skip
    pm = deribit_portfolio_margin(book, [65_666.19])
    assert_allclose(pm.price_moves[0], np.linspace(-0.16, 0.16, 9), rtol=0, atol=1e-15)
    expected = np.repeat((np.array(perp) + np.array(fut))[:, None], 3, axis=1)
    assert_allclose(pm.coin.standard[0], expected, rtol=1e-12, atol=1e-17)
    ends = np.array(perp)[[0, 0, -1, -1, -1, -1, -1, -1]] + np.array(fut)[[0, 0, *[-1] * 6]]
    assert_allclose(pm.coin.extended[0], ends, rtol=1e-12)
    assert np.all(np.minimum(pm.coin.extended + pm.coin.dampener, 0.0) == 0.0)
    assert pm.coin.worst_case[0] == pytest.approx(0.05968587238095239, rel=1e-12)
    assert pm.coin.roll_shock[0] == pytest.approx(0.00315725898, rel=1e-12)
    assert pm.coin.delta_shock[0] == 0.0
    assert pm.margin.initial_coin[0] == pytest.approx(0.06284313098, rel=1e-8)
    assert pm.margin.maintenance_coin[0] == pytest.approx(0.050274504784, rel=1e-8)


def test_deribit_recorded_response_eth() -> None:
    """A recorded Deribit ``private/pme/simulate`` response (ETH, 2026-02-15, timestamp
    1771197609587, model params price_range 0.18, min_annualised_move 0.005, mm_factor 0.8):
    ETH-PERPETUAL -0.999487053 ETH, mark 1,949.49, index 1,949.34. Pre-aggregated risk
    vector (coin, -18 % .. +18 % in 9 steps, each x 3): 0.21939959699999997,
    0.155989308849711, 0.09885036787912087, 0.04709624857068063, 0, -0.04304011233014354,
    -0.08252645391743119, -0.11888171996035243, -0.15246412672881357; extended
    0.219399... x 2, -0.152464... x 6. worst_case 0.15246412672881357, roll_shock
    0.004997435265, risk_matrix_margin 0.157461562265, maintenance_margin 0.125969249812."""
    vector = [0.21939959699999997, 0.155989308849711, 0.09885036787912087,
              0.04709624857068063, 0.0, -0.04304011233014354, -0.08252645391743119,
              -0.11888171996035243, -0.15246412672881357]  # fmt: skip
    pm = deribit_portfolio_margin(
        scenario_book([perpetual(-0.999487053, 1_949.49)]), [1_949.34], DERIBIT_PM_ETH
    )
    assert_allclose(pm.coin.standard[0], np.repeat(np.array(vector)[:, None], 3, axis=1),
                    rtol=1e-12, atol=1e-16)  # fmt: skip
    assert_allclose(pm.coin.extended[0], np.array(vector)[[0, 0, *[-1] * 6]], rtol=1e-12)
    assert pm.coin.worst_case[0] == pytest.approx(0.15246412672881357, rel=1e-12)
    assert pm.coin.roll_shock[0] == pytest.approx(0.004997435265, rel=1e-12)
    assert pm.margin.initial_coin[0] == pytest.approx(0.157461562265, rel=1e-8)
    assert pm.margin.maintenance_coin[0] == pytest.approx(0.125969249812, rel=1e-8)
    # in USD the short perpetual loses its notional x the move: 18 % at +18 %
    assert pm.usd.worst_case[0] == pytest.approx(0.999487053 * 1_949.49 * 0.18, rel=1e-12)


# ------------------------------------------------------------------ options, by hand


Option = tuple[float, bool, float, float, float, float]  # weight, is_call, F, K, T, sigma


def deribit_by_hand(options: list[Option], p: DeribitPMParams) -> tuple[np.ndarray, ...]:
    """Deribit's tables for coin-settled Black-76 options on one underlying, every cell priced
    by engine.greeks.black76 (r = 0): USD standard (9, 3), coin standard, USD extended (8,)
    and coin extended, each extended move m scaled by 0.16 / |m| (coin: also x (1 + m) /
    (1 + sign(m) 0.16))."""

    def pnl(m: float, vol: int) -> tuple[float, float]:
        usd = coin = 0.0
        for w, is_call, F, K, T, sigma in options:
            days = max(T * 365.0, 1.0)
            a = (30.0 / days) ** (0.3 if days < 30.0 else 0.13)
            s = [max(sigma * (1 + p.vol_range_up * a), p.min_vol_for_shock_up), sigma,
                 sigma * (1 - p.vol_range_down * a)][vol]  # fmt: skip
            v0 = float(black76(is_call, F, K, T, 0.0, sigma).price)
            v1 = float(black76(is_call, F * (1 + m), K, T, 0.0, s).price)
            usd += w * (v1 - v0)
            coin += w * (v1 / (F * (1 + m)) - v0 / F)
        return usd, coin

    moves = np.linspace(-0.16, 0.16, 9)
    std = np.array([[pnl(m, j) for j in range(3)] for m in moves])
    ext = np.array([pnl(m, 0) for m in p.extended_moves])
    scale = np.array([0.16 / abs(m) for m in p.extended_moves])
    to_edge = np.array([(1 + m) / (1 + math.copysign(0.16, m)) for m in p.extended_moves])
    return std[..., 0], std[..., 1], scale * ext[:, 0], scale * to_edge * ext[:, 1]


def assert_tables_by_hand(
    options: list[Option], atol_usd: float, atol_coin: float
) -> tuple[np.ndarray, np.ndarray]:
    """Deribit's portfolio margin of ``options`` has the tables of :func:`deribit_by_hand`;
    returns those in USD (standard, extended)."""
    pm = deribit_portfolio_margin(options_book(options), [60_000.0])
    usd, coin, ext_usd, ext_coin = deribit_by_hand(options, DERIBIT_PM_BTC)
    assert_allclose(pm.usd.standard[0], usd, rtol=1e-10, atol=atol_usd)
    assert_allclose(pm.coin.standard[0], coin, rtol=1e-10, atol=atol_coin)
    assert_allclose(pm.usd.extended[0], ext_usd, rtol=1e-10)
    assert_allclose(pm.coin.extended[0], ext_coin, rtol=1e-10)
    return usd, coin


def options_book(options: list[Option]) -> ScenarioBook:
    return scenario_book(
        [{"weight": w, "is_call": c, "X": F, "strike": K, "T": T, "sigma": s}
         for w, c, F, K, T, s in options]
    )  # fmt: skip


def test_one_short_call_by_hand() -> None:
    """Short 2 BTC calls, K 66,000, F 60,000, 20 days, vol 55 %: a = (30/20)^0.3 = 1.1292, vol
    up 0.55 x 1.5646 = 0.8605, down 0.55 x 0.7177 = 0.3947. Roll shock: 20 days moves the
    basis e^(0.075 x 20/365) - 1 = 0.41 % < 1 %, so |2 delta| x 1 %."""
    opt: list[Option] = [(-2.0, True, 60_000.0, 66_000.0, 20 / 365, 0.55)]
    usd, coin = assert_tables_by_hand(opt, atol_usd=1e-9, atol_coin=1e-14)
    pm = deribit_portfolio_margin(options_book(opt), [60_000.0])
    # the short call loses most at +16 %, vol up; far moves are dampened away
    assert pm.usd.worst_case[0] == pytest.approx(-usd[8, 0], rel=1e-12)
    assert pm.coin.worst_case[0] == pytest.approx(-coin[8, 0], rel=1e-12)
    delta = float(black76(True, 60_000.0, 66_000.0, 20 / 365, 0.0, 0.55).delta)
    assert pm.coin.roll_shock[0] == pytest.approx(2 * delta * 0.01, rel=1e-12)
    assert pm.usd.roll_shock[0] == pytest.approx(2 * delta * 60_000.0 * 0.01, rel=1e-12)
    im = -usd[8, 0] + 2 * delta * 600.0
    assert pm.margin.initial_usd[0] == pytest.approx(im, rel=1e-10)
    assert pm.margin.maintenance_usd[0] == pytest.approx(0.8 * im, rel=1e-10)


def test_two_expiries_by_hand() -> None:
    """A 10-day put (short-term vega power) against a 200-day call whose raised vol is floored
    at 50 %: 0.3 x (1 + 0.5 x (30/200)^0.13) = 0.417 < 0.5. Roll shock per expiry: 10 days at
    the 1 % floor; 200 days moves the basis e^(0.075 x 200/365) - 1 = 4.2 %."""
    opts: list[Option] = [(5.0, False, 59_000.0, 55_000.0, 10 / 365, 0.7),
                          (-3.0, True, 61_500.0, 70_000.0, 200 / 365, 0.3)]  # fmt: skip
    usd, _ = assert_tables_by_hand(opts, atol_usd=1e-8, atol_coin=1e-13)
    pm = deribit_portfolio_margin(options_book(opts), [60_000.0])
    d1 = 5.0 * float(black76(False, 59_000.0, 55_000.0, 10 / 365, 0.0, 0.7).delta)
    d2 = -3.0 * float(black76(True, 61_500.0, 70_000.0, 200 / 365, 0.0, 0.3).delta)
    moves = 0.01 * abs(d1), math.expm1(0.075 * 200 / 365) * abs(d2)
    assert pm.coin.roll_shock[0] == pytest.approx(sum(moves), rel=1e-12)
    assert pm.usd.roll_shock[0] == pytest.approx(moves[0] * 59_000 + moves[1] * 61_500, rel=1e-12)
    worst = max(0.0, -usd.min(), -np.minimum(pm.usd.extended + pm.usd.dampener, 0.0).min())
    assert pm.usd.worst_case[0] == pytest.approx(worst, rel=1e-12)


def test_extended_losses_beyond_the_dampener_count() -> None:
    """Short 1,000 deep out-of-the-money puts (K 30,000, F 60,000, 60 days, vol 80 %) lose
    most at -66 %: scaled by 0.16 / 0.66 less the dampener (0.66 / 0.16 - 1) x 100,000 USD,
    the extended loss beats the standard table's."""
    opt: list[Option] = [(-1_000.0, False, 60_000.0, 30_000.0, 60 / 365, 0.8)]
    pm = deribit_portfolio_margin(options_book(opt), [60_000.0])
    _, _, ext_usd, _ = deribit_by_hand(opt, DERIBIT_PM_BTC)
    counted = ext_usd[0] + (0.66 / 0.16 - 1) * 100_000.0
    assert counted < pm.usd.standard.min()
    assert pm.usd.worst_case[0] == pytest.approx(-counted, rel=1e-10)


def test_delta_shock_by_hand() -> None:
    """50M USD long of a BTC perpetual at 50,000: 1,000 BTC of delta, 400 BTC beyond the 20M
    USD threshold: shock fraction 5e-5 x 600 = 3 %, i.e. 30 BTC or 1.5M USD."""
    pm = deribit_portfolio_margin(scenario_book([perpetual(1_000.0, 50_000.0)]), [50_000.0])
    assert pm.coin.delta_shock[0] == pytest.approx(30.0, rel=1e-12)
    assert pm.usd.delta_shock[0] == pytest.approx(1.5e6, rel=1e-12)
    huge = deribit_portfolio_margin(scenario_book([perpetual(1e5, 50_000.0)]), [50_000.0])
    assert huge.coin.delta_shock[0] == pytest.approx(0.1 * 1e5, rel=1e-12)  # capped at 10 %


# ------------------------------------------------------------------------- properties


def test_a_hedged_book_needs_no_portfolio_margin() -> None:
    legs: list[Option] = [(4.0, True, 60_000.0, 65_000.0, 45 / 365, 0.6),
                          (-4.0, True, 60_000.0, 65_000.0, 45 / 365, 0.6)]  # fmt: skip
    book = options_book(legs)
    pm = deribit_portfolio_margin(book, [60_000.0])
    for m in (pm.usd, pm.coin):
        assert np.all(m.standard == 0.0)
        assert m.worst_case[0] == 0.0
        assert m.roll_shock[0] == 0.0
    assert pm.margin.initial_usd[0] == 0.0
    std = deribit_standard_margin(book, 1)
    saved = margin_savings(std, pm.margin)
    assert saved.initial_usd[0] == std.initial_usd[0] > 0.0  # the short leg, alone


def test_the_matrix_has_the_documented_shape_per_underlying() -> None:
    book = scenario_book([{"und": 0}, {"und": 1, "X": 3_000.0, "strike": 3_100.0}])
    pm = deribit_portfolio_margin(book, [60_000.0, 3_000.0], [DERIBIT_PM_BTC, DERIBIT_PM_ETH])
    assert pm.usd.standard.shape == pm.coin.standard.shape == (2, 9, 3)
    assert pm.usd.extended.shape == pm.usd.dampener.shape == (2, 8)
    assert_allclose(pm.price_moves[1], np.linspace(-0.18, 0.18, 9), rtol=0, atol=1e-15)
    assert_allclose(pm.extended_moves[0], DERIBIT_PM_BTC.extended_moves)
    for figure in (pm.usd.worst_case, pm.coin.roll_shock, pm.margin.initial_coin):
        assert figure.shape == (2,)


def test_underlyings_are_margined_apart() -> None:
    """Segregated: a BTC future does not offset an ETH one; on one underlying they would."""
    btc, eth = perpetual(2.0, 60_000.0), perpetual(-40.0, 3_000.0, und=1)
    apart = deribit_portfolio_margin(scenario_book([btc, eth]), [60_000.0, 3_000.0])
    for u, (row, px) in enumerate(((btc, 60_000.0), (eth, 3_000.0))):
        alone = deribit_portfolio_margin(scenario_book([{**row, "und": 0}]), [px])
        assert apart.margin.initial_usd[u] == pytest.approx(alone.margin.initial_usd[0], rel=1e-12)
    together = deribit_portfolio_margin(scenario_book([btc, {**eth, "und": 0}]), [60_000.0])
    assert together.margin.initial_usd[0] < apart.margin.initial_usd.sum()


@settings(max_examples=40, deadline=None)
@given(
    k1=st.floats(0.9, 1.1),
    width=st.floats(0.01, 0.08),
    days=st.floats(7.0, 180.0),
    sigma=st.floats(0.3, 1.0),
    calls=st.booleans(),
)
def test_portfolio_margin_of_a_spread_is_at_most_its_standard_margin(
    k1: float, width: float, days: float, sigma: float, calls: bool
) -> None:
    """A debit spread (bull calls, or bear puts) of width <= 8 % of F loses at most its width;
    standard margin charges its short leg at least 10 % of F."""
    lo, hi = 60_000.0 * k1, 60_000.0 * (k1 + width)
    long_k, short_k = (lo, hi) if calls else (hi, lo)
    book = options_book([(1.0, calls, 60_000.0, long_k, days / 365, sigma),
                         (-1.0, calls, 60_000.0, short_k, days / 365, sigma)])  # fmt: skip
    pm = deribit_portfolio_margin(book, [60_000.0]).margin
    std = deribit_standard_margin(book, 1)
    assert pm.initial_usd[0] <= std.initial_usd[0]
    assert pm.initial_coin[0] <= std.initial_coin[0]


@settings(max_examples=30, deadline=None)
@given(k=st.floats(1.0, 20.0))
def test_margin_grows_with_position_size(k: float) -> None:
    """Below the delta-shock threshold every charge is linear in size; beyond it, more."""

    def rows(size: float) -> ScenarioBook:
        return scenario_book(
            [{"weight": -3.0 * size, "strike": 70_000.0},
             {"weight": -3.0 * size, "is_call": False, "strike": 50_000.0, "T": 90 / 365},
             perpetual(1.5 * size, 60_500.0)]
        )  # fmt: skip

    one = deribit_portfolio_margin(rows(1.0), [60_000.0]).margin
    big = deribit_portfolio_margin(rows(k), [60_000.0]).margin
    assert big.initial_usd[0] == pytest.approx(k * one.initial_usd[0], rel=1e-9)
    assert big.maintenance_coin[0] == pytest.approx(k * one.maintenance_coin[0], rel=1e-9)

    def perpetual_im(coin: float) -> float:  # 500 BTC is 30M USD: beyond the delta threshold
        book = scenario_book([perpetual(coin, 60_000.0)])
        return float(deribit_portfolio_margin(book, [60_000.0]).margin.initial_coin[0])

    assert perpetual_im(500.0 * k) >= k * perpetual_im(500.0) * (1.0 - 1e-12)


def test_positions_that_cannot_be_valued_are_left_out_and_listed() -> None:
    good: dict[str, object] = {"weight": -1.0, "strike": 65_000.0}
    pm = deribit_portfolio_margin(scenario_book([good, {"sigma": math.nan}]), [60_000.0])
    alone = deribit_portfolio_margin(scenario_book([good]), [60_000.0])
    assert pm.excluded.tolist() == [1]
    assert pm.margin.initial_usd[0] == alone.margin.initial_usd[0]
    assert pm.margin.initial_coin[0] == alone.margin.initial_coin[0]


# ------------------------------------------------------------------------------- SPAN


def test_pnl_by_underlying_revalues_shared_instruments_once_with_the_same_figures() -> None:
    """Each distinct instrument with each distinct pair of columns is revalued once; the P&L
    per underlying and the rows left out are those of revaluing each underlying alone. Lots
    of one option in two underlyings share their columns; a lot whose vol column differs
    keeps its own; an option without a vol is left out wherever it is held."""
    rows: list[dict[str, object]] = []
    for und in (0, 1, 2):
        for strike in (50_000.0, 60_000.0, 70_000.0):
            rows += [{"strike": strike, "und": und, "weight": w} for w in (1.5, -0.25)]
    rows += [{"strike": 55_000.0, "und": und, "sigma": math.nan} for und in (0, 2)]
    book = scenario_book(rows)
    ret = np.log1p(np.linspace(-0.2, 0.2, 7))[:, None] * np.ones(len(rows))
    dvol = np.outer(np.linspace(-0.3, 0.3, 7), np.ones(len(rows)))
    dvol[:, 3] *= 2.0  # one lot's vol moves twice as far: its own column
    shared, shared_out = pnl_by_underlying(book, 3, ret, dvol, 1.0, shared_scenario_pnl)
    alone, alone_out = pnl_by_underlying(book, 3, ret, dvol, 1.0)
    gross = float(np.abs(book.weight * book.X).sum())  # the sums' scale: what they cancel
    assert_allclose(shared, alone, rtol=0.0, atol=1e-13 * gross)
    assert shared_out.tolist() == alone_out.tolist() == [18, 19]
    other = dvol.copy()
    other[:, 3] = dvol[:, 2]  # had the lot shared its neighbour's column, its P&L would move
    assert not np.allclose(
        pnl_by_underlying(book, 3, ret, other, 1.0, shared_scenario_pnl)[0], alone
    )


def test_span_futures_array_of_mcmillan() -> None:
    """McMillan, Options as a Strategic Investment (5th ed.), ch. 34, pp. 668-670: S&P 500
    futures ($500 a point), maintenance margin (price scan range) $10,000 = 20 points, extreme
    move $7,000. The array of a long future, in the 16 scenarios' order: 0, 0, +3,330, +3,330,
    -3,330, -3,330, +6,670, +6,670, -6,670, -6,670, +10,000, +10,000, -10,000, -10,000, +7,000,
    -7,000 (rounded to $10); the requirement is the largest loss, $10,000. Here the future is
    at 400, so the scan range is 5 %; the extreme move, 2 ranges at 35 %, gives the $7,000."""
    book = scenario_book([{"kind": KIND_FUTURE, "inverse": False, "X": 400.0, "weight": 500.0}])
    span = span_margin(book, 1, SpanParams(price_scan=0.05))
    printed = [0, 0, 3_330, 3_330, -3_330, -3_330, 6_670, 6_670, -6_670, -6_670, 10_000, 10_000,
               -10_000, -10_000, 7_000, -7_000]  # fmt: skip
    assert_allclose(span.weights[0] * span.pnl[0], printed, rtol=0, atol=5.0)
    assert span.scan_risk[0] == pytest.approx(10_000.0, rel=1e-12)
    assert span.requirement[0] == span.scan_risk[0]
    assert span.short_option_minimum[0] == 0.0


def test_span_one_option_by_hand() -> None:
    """Short 10 BSM calls (S 100, K 105, 30 days, r 2 %, vol 30 %), valued one day later at
    S (1 + move) and vol 0.3 (1 + vol move), with engine.greeks.bsm."""
    book = scenario_book([{"black": False, "inverse": False, "X": 100.0, "strike": 105.0,
                           "r": 0.02, "sigma": 0.3, "weight": -10.0}])  # fmt: skip
    span = span_margin(book, 1, SpanParams(price_scan=0.1, vol_scan=0.25))
    now = float(bsm(True, 100.0, 105.0, 30 / 365, 0.02, 0.0, 0.3).price)
    steps = [0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3]
    moves = [0.1 * s / 3 for s in steps] + [0.2, -0.2]
    vols = [0.25, -0.25] * 7 + [0.0, 0.0]
    expected = [-10.0 * (float(bsm(True, 100 * (1 + m), 105.0, 29 / 365, 0.02, 0.0,
                                   0.3 * (1 + v)).price) - now)
                for m, v in zip(moves, vols, strict=True)]  # fmt: skip
    assert_allclose(span.pnl[0], expected, rtol=1e-10)
    weighted = np.array(expected) * np.array([1.0] * 14 + [0.35] * 2)
    assert span.scan_risk[0] == pytest.approx(-weighted.min(), rel=1e-12)
    assert span.short_option_minimum[0] == pytest.approx(0.01 * 10 * 100.0, rel=1e-15)
    assert span.requirement[0] == max(span.scan_risk[0], 10.0)


def test_span_short_option_minimum_binds_far_out_of_the_money() -> None:
    book = scenario_book([{"black": False, "inverse": False, "X": 100.0, "strike": 300.0,
                           "sigma": 0.3, "weight": -10.0}])  # fmt: skip
    span = span_margin(book, 1, horizon_days=0.0)
    assert span.scan_risk[0] < 1e-6
    assert span.requirement[0] == pytest.approx(0.01 * 10 * 100.0, rel=1e-15)


# ------------------------------------------------------------------- standard margin


def test_deribit_standard_margin_by_hand() -> None:
    """Deribit's standard margin, coin: short call max(0.15 - OTM/F, 0.1) + p (IM), 0.075 + p
    (MM); short put max(max(0.15 - OTM/F, 0.1) + p, MM), MM max(0.075, 0.075 p) + p; longs 0;
    BTC futures s (2 % + s 0.005 %) IM and s (1 % + s 0.005 %) MM, ETH 0.0004 % a coin
    (support.deribit.com, "11 January 2022"). p = Black-76 price / F."""
    f = 60_000.0
    p_call = float(black76(True, f, 62_000.0, 30 / 365, 0.0, 0.6).price) / f
    p_put = float(black76(False, f, 240_000.0, 30 / 365, 0.0, 0.6).price) / f  # ~3 coin
    book = scenario_book(
        [{"weight": -2.0, "strike": 62_000.0},
         {"weight": -1.0, "is_call": False, "strike": 240_000.0},
         {"weight": 7.0, "strike": 50_000.0},  # long: none
         perpetual(10.0, 61_000.0)]
    )  # fmt: skip
    std = deribit_standard_margin(book, 1)
    im_call = max(0.15 - 2_000.0 / f, 0.1) + p_call  # OTM 2,000: 0.1167 + p
    mm_put = max(0.075, 0.075 * p_put) + p_put  # 0.075 p: the put is worth ~3 coin
    im_put = max(max(0.15, 0.1) + p_put, mm_put)  # in the money: MM binds
    assert mm_put == im_put
    im = 2 * im_call + im_put + 10 * (0.02 + 10 * 5e-5)
    mm = 2 * (0.075 + p_call) + mm_put + 10 * (0.01 + 10 * 5e-5)
    assert std.initial_coin[0] == pytest.approx(im, rel=1e-12)
    assert std.maintenance_coin[0] == pytest.approx(mm, rel=1e-12)
    usd = (2 * im_call + im_put) * f + 10 * (0.02 + 10 * 5e-5) * 61_000.0
    assert std.initial_usd[0] == pytest.approx(usd, rel=1e-12)
    eth = deribit_standard_margin(scenario_book([perpetual(-1_000.0, 3_000.0)]), 1,
                                  DERIBIT_STANDARD_ETH)  # fmt: skip
    assert eth.initial_coin[0] == pytest.approx(1_000 * (0.02 + 1_000 * 4e-6), rel=1e-12)  # 24
    assert eth.maintenance_usd[0] == pytest.approx(14.0 * 3_000.0, rel=1e-12)


def test_utilisation_and_savings_by_hand() -> None:
    u = margin_utilisation([30.0, 5.0], [24.0, 4.0], [100.0, 10.0])
    assert_allclose(u.initial, [0.3, 0.5], rtol=1e-15)
    assert_allclose(u.maintenance, [0.24, 0.4], rtol=1e-15)
    book = scenario_book([{"weight": -1.0}, {"weight": 1.0, "strike": 55_000.0}])
    std, pm = deribit_standard_margin(book, 1), deribit_portfolio_margin(book, [6e4]).margin
    saved = margin_savings(std, pm)
    assert saved.maintenance_coin[0] == std.maintenance_coin[0] - pm.maintenance_coin[0] > 0.0


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: deribit_portfolio_margin(scenario_book([{}]), [0.0]), "index"),
        (lambda: deribit_portfolio_margin(scenario_book([{}]), [[6e4]]), "index"),
        (lambda: deribit_portfolio_margin(scenario_book([{"und": 1}]), [6e4]), "book.und"),
        (lambda: deribit_portfolio_margin(scenario_book([{}]), [6e4], [DERIBIT_PM_BTC] * 2),
         "params"),
        (lambda: deribit_portfolio_margin(scenario_book([{}]), [6e4, 3e3],
                                          [DERIBIT_PM_BTC, DeribitPMParams(buckets=5)]),
         "buckets"),
        (lambda: DeribitPMParams(price_range=1.2), "price_range"),
        (lambda: DeribitPMParams(extended_moves=(-1.5,)), "extended_moves"),
        (lambda: DeribitPMParams(mm_factor=-0.8), "mm_factor"),
        (lambda: SpanParams(price_scan=0.4, extreme_multiple=3.0), "price_scan"),
        (lambda: span_margin(scenario_book([{}]), 1, horizon_days=-1.0), "horizon_days"),
        (lambda: deribit_standard_margin(scenario_book([{"und": 2}]), 2), "book.und"),
        (lambda: margin_utilisation(1.0, 1.0, 0.0), "equity"),
    ],
)  # fmt: skip
def test_bad_arguments_are_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()  # type: ignore[operator]
