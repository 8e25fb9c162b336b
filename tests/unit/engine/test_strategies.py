"""Strategies (engine.risk.strategies): payoffs of every builder written out by hand, coin
premiums against Deribit's published example, the calendar's later leg against the mpmath
Black-76 oracle, the text form's round trip, strategy Greeks, and invalid strategies naming the
leg at fault."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.daycount import year_fraction
from engine.events import Fill
from engine.greeks import black76
from engine.instruments import InstrumentRegistry, deribit_expiry_ns
from engine.risk.strategies import (
    Leg,
    Strategy,
    StrategyBook,
    StrategyKind,
    butterfly,
    calendar,
    condor,
    custom,
    format_strategy,
    iron_condor,
    parse_strategy,
    payoff_diagram,
    risk_reversal,
    straddle,
    strangle,
    strategy_greeks,
    vertical,
)
from engine.state import Portfolio
from tests.oracle import ref_black76

DEC = "BTC-27DEC24-"
GRID = [50_000.0, 55_000, 57_500, 60_000, 62_500, 65_000, 67_500, 70_000, 75_000, 80_000]

# USD payoff at expiry of one unit, premiums 0, at each price of GRID, by hand
PAYOFFS: list[tuple[Strategy, list[float]]] = [
    # +C60 -C65: 0 up to 60 000, then S - 60 000, capped at 5000
    (vertical(DEC + "60000-C", DEC + "65000-C"), [0, 0, 0, 0, 2500, 5000, 5000, 5000, 5000, 5000]),
    # +P60 -P65: (60 000 - S)+ - (65 000 - S)+ = -5000 up to 60 000, then S - 65 000 up to 65 000
    (
        vertical(DEC + "60000-P", DEC + "65000-P"),
        [-5000, -5000, -5000, -5000, -2500, 0, 0, 0, 0, 0],
    ),
    # |S - 60 000|
    (
        straddle(DEC + "60000-C", DEC + "60000-P"),
        [10000, 5000, 2500, 0, 2500, 5000, 7500, 10000, 15000, 20000],
    ),
    # (55 000 - S)+ + (S - 65 000)+
    (strangle(DEC + "55000-P", DEC + "65000-C"), [5000, 0, 0, 0, 0, 0, 2500, 5000, 10000, 15000]),
    # -(55 000 - S)+ + (S - 65 000)+
    (
        risk_reversal(DEC + "55000-P", DEC + "65000-C"),
        [-5000, 0, 0, 0, 0, 0, 2500, 5000, 10000, 15000],
    ),
    # (S-55)+ - 2 (S-60)+ + (S-65)+: tent from 55 000 to 65 000, 5000 at 60 000
    (
        butterfly(DEC + "55000-C", DEC + "60000-C", DEC + "65000-C"),
        [0, 0, 2500, 5000, 2500, 0, 0, 0, 0, 0],
    ),
    # (S-55)+ - (S-60)+ - (S-65)+ + (S-70)+: e.g. at 67 500: 12 500 - 7500 - 2500 + 0 = 2500
    (
        condor(DEC + "55000-C", DEC + "60000-C", DEC + "65000-C", DEC + "70000-C"),
        [0, 0, 2500, 5000, 5000, 5000, 2500, 0, 0, 0],
    ),
    # (55-S)+ - (60-S)+ - (S-65)+ + (S-70)+: e.g. at 50 000: 5000 - 10 000 = -5000;
    # at 80 000: -15 000 + 10 000 = -5000; the condor less its 5000 wing
    (
        iron_condor(DEC + "55000-P", DEC + "60000-P", DEC + "65000-C", DEC + "70000-C"),
        [-5000, -5000, -2500, 0, 0, 0, -2500, -5000, -5000, -5000],
    ),
]


@pytest.mark.parametrize(("strategy", "payoff"), PAYOFFS, ids=lambda x: getattr(x, "kind", ""))
def test_payoff_at_expiry_by_hand(strategy: Strategy, payoff: list[float]) -> None:
    d = payoff_diagram(strategy, GRID, np.zeros(len(strategy.legs)))
    assert_allclose(d.pnl, payoff, rtol=1e-14, atol=1e-9)
    assert d.expiry_ns == deribit_expiry_ns(27, 12, 2024)


def test_payoff_now_is_black76_on_a_forward_of_s_and_at_expiry_the_payoff() -> None:
    """A bull call spread bought at zero: now, each call at its Black-76 value (forward S,
    r = 0, its vol, the years left); at its expiry's instant, exactly the payoff at expiry."""
    spread = vertical(DEC + "60000-C", DEC + "65000-C")
    expiry = deribit_expiry_ns(27, 12, 2024)
    now = expiry - 30 * 86_400 * 1_000_000_000
    vols = [0.6, 0.55]
    d = payoff_diagram(spread, GRID, [0.0, 0.0], vols, now_ns=now)
    assert d.pnl_now is not None
    T = year_fraction(now, expiry)
    c = [
        black76(True, np.asarray(GRID), K, T, 0.0, v).price for K, v in ((60e3, 0.6), (65e3, 0.55))
    ]
    assert_allclose(d.pnl_now, c[0] - c[1], rtol=1e-12)
    assert np.all(d.pnl_now > 0.0)  # calls have time value
    assert payoff_diagram(spread, GRID, [0.0, 0.0], vols).pnl_now is None
    at_expiry = payoff_diagram(spread, GRID, [0.0, 0.0], vols, now_ns=expiry)
    assert at_expiry.pnl_now is not None
    assert_allclose(at_expiry.pnl_now, at_expiry.pnl, rtol=1e-14, atol=1e-9)
    with pytest.raises(ValueError, match=r"leg 1 \(BTC-27DEC24-60000-C\) is alive now"):
        payoff_diagram(spread, GRID, [0.0, 0.0], [math.nan, 0.5], now_ns=now)


def test_bounds_at_zero_premium() -> None:
    fly, _ = PAYOFFS[5]
    d = payoff_diagram(fly, GRID, [0.0, 0.0, 0.0])
    assert (d.max_profit, d.max_loss) == (5000.0, 0.0)
    assert_allclose(d.breakevens, [50_000, 55_000, 65_000, 67_500, 70_000, 75_000, 80_000])
    rr, _ = PAYOFFS[4]
    d = payoff_diagram(rr, GRID, [0.0, 0.0])
    # the call rises without bound; the put's loss, bounded by 55 000 at S = 0, is 5000 on the grid
    assert (d.max_profit, d.max_loss) == (math.inf, 5000.0)
    short_call = custom([(DEC + "60000-C", -1.0)])
    assert payoff_diagram(short_call, GRID, [0.0]).max_loss == math.inf


def test_long_call_paid_in_coin_as_deribit_publishes_it() -> None:
    """Deribit support, "Inverse Options": a call of strike 100 000 USD bought for 0.05 BTC,
    delivery price 125 000 USD, "is settled for 25,000 USD per 1 BTC": 0.2 BTC, a P&L of
    0.15 BTC = 18 750 USD at 125 000. The coin premium is worth 0.05 S USD at S, so the P&L is
    (S - K)+ - 0.05 S: -4000 at 80 000, -5000 at 100 000, 42 500 at 150 000; the breakeven is
    K / (1 - 0.05) = 105 263.16, not K + 0.05 x 100 000."""
    d = payoff_diagram(custom([(DEC + "100000-C", 1.0)]), [80e3, 100e3, 125e3, 150e3], [0.05])
    assert_allclose(d.pnl, [-4000, -5000, 18_750, 42_500], rtol=1e-14)
    assert_allclose(d.breakevens, [100_000 / 0.95], rtol=1e-14)
    assert (d.max_profit, d.max_loss) == (math.inf, 5000.0)


def test_straddle_paid_in_coin_breakevens() -> None:
    # call and put of 60 000 for 0.05 BTC each: |S - 60 000| = 0.1 S at S = 60 000 / 1.1 and
    # 60 000 / 0.9; no strike lies inside a grid step that crosses 0, so interpolation is exact
    s = parse_strategy("straddle:BTC-27DEC24-60000-C/P")
    d = payoff_diagram(s, np.arange(40_000.0, 90_001.0, 10_000.0), [0.05, 0.05])
    assert_allclose(d.breakevens, [60_000 / 1.1, 60_000 / 0.9], rtol=1e-14)
    assert_allclose(d.pnl[1:4], [10_000 - 5000, -6000, 10_000 - 7000], rtol=1e-14)


def test_coin_paid_butterfly_loses_without_bound_in_usd() -> None:
    # 0.01 BTC of net premium is worth 0.01 S USD: the P&L falls by 0.01 per USD as S -> ∞
    # (in coin it tends to -0.01 BTC)
    fly, payoff = PAYOFFS[5]
    d = payoff_diagram(fly, GRID, [0.03, 0.015, 0.01])
    assert_allclose(d.pnl, np.array(payoff) - 0.01 * np.array(GRID), rtol=1e-13)
    assert d.max_loss == math.inf
    assert d.max_profit == pytest.approx(5000 - 600, rel=1e-14)


def test_calendar_values_the_far_leg_with_black76() -> None:
    """Short the 27 Dec 2024 60 000 call (0.02 BTC), long the 28 Mar 2025 one (0.05 BTC, vol
    60 %): at the near expiry the far call has 4 + 31 + 28 + 28 = 91 days left, priced by the
    mpmath Black-76 oracle on F = S; the premiums are worth (0.05 - 0.02) S USD."""
    s = calendar(DEC + "60000-C", "BTC-28MAR25-60000-C")
    grid = [40_000.0, 60_000.0, 90_000.0]
    d = payoff_diagram(s, grid, [0.02, 0.05], vols=[math.nan, 0.6])
    far = [ref_black76(True, S, 60_000.0, 91 / 365, 0.0, 0.6).price for S in grid]
    near = [0.0, 0.0, 30_000.0]
    assert_allclose(
        d.leg_pnl[:, 0], [-n + 0.02 * S for n, S in zip(near, grid, strict=True)], rtol=1e-14
    )
    assert_allclose(
        d.leg_pnl[:, 1], [f - 0.05 * S for f, S in zip(far, grid, strict=True)], rtol=1e-12
    )
    assert d.max_loss == math.inf  # -0.03 S
    flat = payoff_diagram(s, grid, [0.0, 0.0], vols=[math.nan, 0.6])
    assert flat.max_loss == pytest.approx(-min(flat.pnl), rel=1e-15)  # delta 1 - 1 as S -> ∞
    with pytest.raises(ValueError, match=r"leg 2 \(BTC-28MAR25-60000-C\) expires later"):
        payoff_diagram(s, grid, [0.0, 0.0])


def test_futures_legs_settle_at_the_grid_price() -> None:
    # short 60 000 USD of BTC-PERPETUAL entered at 60 000: 60 000 (1/60 000 - 1/S) BTC
    # = 60 000 - S USD; the linear BTC_USDC-PERPETUAL, 1 BTC at 59 000: S - 59 000
    s = parse_strategy("legs:BTC-PERPETUAL*-60000/BTC_USDC-PERPETUAL*1/BTC-27DEC24*100")
    d = payoff_diagram(s, [50_000.0, 66_000.0], [60_000.0, 59_000.0, 50_000.0])
    assert_allclose(d.leg_pnl, [[10_000, -9000, 0], [-6000, 7000, 32]], rtol=1e-12)
    # slope as S -> ∞: -60 000 / 60 000 + 1 + 100 / 50 000 > 0
    assert d.max_profit == math.inf


@settings(max_examples=100, deadline=None)
@given(
    legs=st.lists(
        st.tuples(
            st.sampled_from([f"{DEC}{k}-{t}" for k in (40_000, 55_000, 70_000) for t in "CP"]),
            st.integers(-3, 3).filter(bool),
            st.one_of(st.just(0.0), st.floats(1e-4, 0.2)),
        ),
        min_size=1,
        max_size=6,
        unique_by=lambda x: x[0],
    )
)
def test_unbounded_is_the_slope_at_the_grid_edge(legs: list[tuple[str, int, float]]) -> None:
    # expiring legs only: beyond the last strike the USD P&L is linear, so the slope of the
    # last grid step is the slope as S -> ∞
    s = custom([(n, float(r)) for n, r, _ in legs])
    d = payoff_diagram(s, np.linspace(1_000.0, 200_000.0, 200), [p for _, _, p in legs])
    edge = (d.pnl[-1] - d.pnl[-2]) / (d.S[-1] - d.S[-2])
    assert (d.max_profit == math.inf) == (edge > 1e-9)
    assert (d.max_loss == math.inf) == (edge < -1e-9)


# ------------------------------------------------------------------------------ text form
TEXTS = [
    "vertical:BTC-27DEC24-60000-C/65000",
    "vertical:ETH-27DEC24-3000-P/3500",
    "straddle:BTC-27DEC24-60000-C/P",
    "strangle:BTC-27DEC24-55000-P/65000-C",
    "risk_reversal:BTC-27DEC24-55000-P/65000-C",
    "butterfly:BTC-27DEC24-60000-C/65000/70000",
    "condor:BTC-27DEC24-55000-P/60000/65000/70000",
    "iron_condor:BTC-27DEC24-55000-P/60000/65000-C/70000-C",
    "calendar:BTC-27DEC24-60000-C/28MAR25",
    "calendar:MATIC_USDC-9MAR24-1d02-P/29MAR24",
    "legs:BTC-27DEC24-60000-C*1/65000*-2/70000*1",
    "legs:BTC-27DEC24-60000-C*0.5/28MAR25-65000-P*-1.25/BTC-PERPETUAL*-30000",
]


@pytest.mark.parametrize("text", TEXTS)
def test_text_form_round_trip(text: str) -> None:
    s = parse_strategy(text)
    assert format_strategy(s) == text
    assert parse_strategy(format_strategy(s)) == s


def test_text_form_names_the_legs() -> None:
    s = parse_strategy("butterfly:BTC-27DEC24-60000-C/65000/70000")
    assert s.kind == StrategyKind.BUTTERFLY
    assert [(leg.instrument.name, leg.ratio) for leg in s.legs] == [
        ("BTC-27DEC24-60000-C", 1.0), ("BTC-27DEC24-65000-C", -2.0), ("BTC-27DEC24-70000-C", 1.0),
    ]  # fmt: skip
    assert s == butterfly(DEC + "60000-C", DEC + "65000-C", DEC + "70000-C")
    cal = parse_strategy("calendar:BTC-27DEC24-60000-C/28MAR25")
    assert [leg.instrument.name for leg in cal.legs] == [DEC + "60000-C", "BTC-28MAR25-60000-C"]


@settings(max_examples=100, deadline=None)
@given(
    legs=st.lists(
        st.tuples(
            st.sampled_from(["27DEC24", "28MAR25", "3JAN25"]),
            st.integers(1, 200).map(lambda k: k * 500),
            st.sampled_from("CP"),
            st.floats(-1e3, 1e3).filter(bool),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda x: x[:3],
    )
)
def test_any_legs_round_trip(legs: list[tuple[str, int, str, float]]) -> None:
    s = custom([(f"BTC-{d}-{k}-{t}", r) for d, k, t, r in legs])
    assert parse_strategy(format_strategy(s)) == s


# ------------------------------------------------------------------------------ Greeks
def test_strategy_greeks_are_ratio_weighted_sums() -> None:
    s = butterfly(DEC + "55000-C", DEC + "60000-C", DEC + "65000-C")
    g = black76(True, 61_000.0, [55_000.0, 60_000.0, 65_000.0], 0.1, 0.0, 0.6)
    figures = np.stack([g.price, g.delta, g.gamma, g.vega, g.theta])
    got = strategy_greeks(s, figures, quantity=-3.0)
    for row, f in zip(got, figures, strict=True):
        assert row == pytest.approx(-3.0 * (f[0] - 2.0 * f[1] + f[2]), rel=1e-14, abs=1e-12)
    assert strategy_greeks(s, g.delta).shape == ()
    with pytest.raises(ValueError, match="3 legs on the last axis"):
        strategy_greeks(s, figures.T)


# ------------------------------------------------------------------------------ invalid
INVALID_LEGS = [
    (
        "vertical:BTC-27DEC24-65000-C/60000",
        "2 (BTC-27DEC24-60000-C)",
        "strike must be above leg 1's",
    ),
    ("vertical:BTC-27DEC24-60000-C/65000-P", "2 (BTC-27DEC24-65000-P)", "must be a call"),
    ("straddle:BTC-27DEC24-60000-P/C", "1 (BTC-27DEC24-60000-P)", "must be a call"),
    ("strangle:BTC-27DEC24-55000-P/55000-C", "2 (BTC-27DEC24-55000-C)", "strike must be above"),
    (
        "butterfly:BTC-27DEC24-60000-C/28MAR25-65000/70000",
        "2 (BTC-28MAR25-65000-C)",
        "expiry must be equal to leg 1's",
    ),
    (
        "iron_condor:BTC-27DEC24-55000-P/60000/65000/70000-C",
        "3 (BTC-27DEC24-65000-P)",
        "must be a call",
    ),
    (
        "calendar:BTC-27DEC24-60000-C/28MAR25-65000",
        "2 (BTC-28MAR25-65000-C)",
        "strike must be equal to leg 1's",
    ),
    (
        "calendar:BTC-28MAR25-60000-C/27DEC24",
        "2 (BTC-27DEC24-60000-C)",
        "expiry must be after leg 1's",
    ),
    (
        "legs:BTC-27DEC24-60000-C*1/ETH-27DEC24-3000-C*1",
        "2 (ETH-27DEC24-3000-C)",
        "not a holding of leg 1's BTC",
    ),
    ("legs:BTC-PERPETUAL*1/btc_usd*1", "2 (btc_usd)", "not a holding"),
    ("legs:BTC-27DEC24-60000-C*1/BTC-27DEC24-60000-C*2", "2 (BTC-27DEC24-60000-C)", "repeats"),
    ("legs:BTC-27DEC24-60000-C*0", "1 (BTC-27DEC24-60000-C)", "ratio must be finite and non-zero"),
    ("butterfly:BTC-27DEC24-60000-C/6500O/70000", "2 (6500O)", "unknown instrument"),
]


@pytest.mark.parametrize(("text", "leg", "error"), INVALID_LEGS)
def test_invalid_strategies_name_the_leg(text: str, leg: str, error: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"leg {leg}: {error}")):
        parse_strategy(text)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("butterfly:BTC-27DEC24-60000-C/65000", "a butterfly has 3 legs, got 2"),
        ("legs:BTC-27DEC24-60000-C", r"every leg needs \*ratio"),
        ("spread:BTC-27DEC24-60000-C/65000", "expected kind:legs"),
        ("vertical", "expected kind:legs"),
    ],
)
def test_invalid_text(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        parse_strategy(text)


def test_builders_and_construction_check_the_legs() -> None:
    with pytest.raises(ValueError, match=r"leg 2 \(BTC-27DEC24\): a straddle takes options only"):
        straddle(DEC + "60000-C", "BTC-27DEC24")
    legs = parse_strategy("butterfly:BTC-27DEC24-60000-C/65000/70000").legs
    with pytest.raises(ValueError, match="a butterfly has 3 legs of ratios"):
        Strategy(StrategyKind.BUTTERFLY, (legs[0], Leg(legs[1].instrument, -1.0), legs[2]))
    with pytest.raises(ValueError, match="at least one leg"):
        custom([])
    call = custom([(DEC + "60000-C", 1.0)])
    with pytest.raises(ValueError, match=r"leg 1 \(BTC-27DEC24-60000-C\): entry price"):
        payoff_diagram(call, GRID, [-0.1])
    with pytest.raises(ValueError, match="ascending grid"):
        payoff_diagram(call, [2.0, 1.0], [0.1])
    with pytest.raises(ValueError, match="needs a leg that expires"):
        payoff_diagram(custom([("BTC-PERPETUAL", 1.0)]), GRID, [60_000.0])


# ---------------------------------------------------------------- holdings in a portfolio


def _book() -> tuple[StrategyBook, Portfolio]:
    registry = InstrumentRegistry()
    return StrategyBook(registry.get), Portfolio(registry)


def _lots(p: Portfolio) -> dict[str, float]:
    return {instrument: quantity for _, instrument, quantity in p.positions()}


SPREAD = "vertical:BTC-27DEC24-60000-C/65000"


def test_a_strategy_fill_is_its_legs_and_a_redelivery_changes_nothing() -> None:
    book, p = _book()
    fill = Fill(
        book="main",
        instrument=SPREAD,
        quantity=3.0,
        price=0.02,
        fill_id="f1",
        ts_event=1,
        ts_recv=1,
    )
    book.apply_fill(p, fill)
    book.apply_fill(p, fill)  # redelivered
    assert _lots(p) == {"BTC-27DEC24-60000-C": 3.0, "BTC-27DEC24-65000-C": -3.0}
    (h,) = book.holdings.values()
    assert (h.book, h.text, h.quantity, h.cost) == ("main", SPREAD, 3.0, 3.0 * 0.02)
    assert p.duplicate_fills == 1
    book.add_position(p, "main", SPREAD, 1.0, None)  # the same holding, from a positions file
    assert h.quantity == 4.0
    assert not h.has_cost
    (priced,) = book.priced(p)
    assert priced[0] is h


def test_a_bad_strategy_fill_applies_no_leg() -> None:
    book, p = _book()
    with pytest.raises(ValueError, match="book name"):
        book.apply_fill(
            p,
            Fill(book="a:b", instrument=SPREAD, quantity=1.0, fill_id="x", ts_event=1, ts_recv=1),
        )
    with pytest.raises(ValueError, match="quantity must be finite"):
        book.apply_fill(
            p, Fill(book="m", instrument=SPREAD, quantity=math.inf, ts_event=1, ts_recv=1)
        )
    assert _lots(p) == {}
    assert book.holdings == {}
    assert not p.seen_fill("x/0")
