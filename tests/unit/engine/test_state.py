"""Tests for engine.state: the streaming portfolio against independent computations.

1. A small mixed book (inverse and linear Deribit options, a CME option on BSM, inverse future
   and perpetual, linear perpetual, spot) is fed events and its group figures are checked
   against figures computed here with engine.greeks / engine.iv and the unit conventions of
   engine.outputs, never with the state's own columns or kernels.
2. Input selection rules: volatility (iv, else implied from the mark, else from the mid),
   forward (own ``underlying_price``, else the future of the expiry, else the index),
   staleness, expiry, unresolved fills.
3. A hypothesis state machine: after every cycle the incremental sums equal a from-scratch
   recompute, nothing is NaN, and cycle() reports every (book, underlying) that changed; and a
   long run of updates that must not drift.
4. The published payloads.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from numpy.testing import assert_allclose

from engine import greeks
from engine.daycount import year_fraction
from engine.events import Fill, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind
from engine.iv import implied_vol
from engine.outputs import (
    BOOK_METRICS,
    METRICS,
    SCHEMA_VERSION,
    UNITS,
    BookExposure,
    UnderlyingExposure,
    encode,
    expiry_rows,
)
from engine.state import Portfolio, UnderlyingParams
from tests.factories import T0_NS, fill, quote, tick

F64 = npt.NDArray[np.float64]
FIELDS = (*METRICS, "n_positions", "n_stale")
S_NS = 1_000_000_000
STALE_NS = 60 * S_NS
V = T0_NS  # valuation time of the fixed-book tests: 2024-07-01T00:00:00Z
FRESH = V - S_NS  # inputs one second old


def utc_ns(year: int, month: int, day: int, hour: int) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp()) * S_NS


DEC27 = utc_ns(2024, 12, 27, 8)
SEP27 = utc_ns(2024, 9, 27, 8)
SPX_EXPIRY = utc_ns(2024, 12, 20, 21)
DEC27_LABEL = "2024-12-27T08:00:00Z"
SEP27_LABEL = "2024-09-27T08:00:00Z"
SPX_LABEL = "2024-12-20T21:00:00Z"

# An OCC-style symbol whose root (SPXQ) riskd does not parse, so only the registry knows it
# (the registry parses SPXW's: engine.instruments.parse_us_name).
SPX = "SPXQ241220C05500000"
SPX_INDEX = Instrument(name="SPX", kind=Kind.INDEX, underlying="SPX", index="SPX")
SPX_CALL = Instrument(
    name=SPX,
    kind=Kind.OPTION,
    underlying="SPX",
    index="SPX",
    expiry_ns=SPX_EXPIRY,
    strike=5_500.0,
    is_call=True,
    multiplier=100.0,
    venue="cme",
)
SPX_PARAMS = UnderlyingParams(rate=0.05, dividend_yield=0.015)

# Same closed forms evaluated in a different order (and, for implied vols, solved through a
# different entry point of the same solver, to ~1e-15 relative) agree to a few ulps; the
# figures' sensitivity to such a difference in sigma stays far below 1e3 for these inputs.
RTOL_MODEL = 1e-11


def assert_within(actual: F64, desired: F64, rtol: float, atol: F64) -> None:
    """|actual - desired| <= atol + rtol |desired| elementwise, atol an array (assert_allclose
    takes only a scalar atol)."""
    err = np.abs(actual - desired)
    bound = atol + rtol * np.abs(desired)
    bad = ~(err <= bound)
    if bad.any():
        worst = np.unravel_index(np.argmax(err - bound), err.shape)
        raise AssertionError(
            f"{int(bad.sum())} elements off; worst at {worst}"
            f": actual {actual[bad]}, desired {desired[bad]}, bound {bound[bad]}"
        )


def registry() -> InstrumentRegistry:
    return InstrumentRegistry([SPX_INDEX, SPX_CALL])


def portfolio(stale_after_ns: int = STALE_NS) -> Portfolio:
    return Portfolio(registry(), {"SPX": SPX_PARAMS}, stale_after_ns=stale_after_ns)


def by_key(p: Portfolio) -> dict[tuple[str, str, str], dict[str, float]]:
    values = p.group_values()
    return {
        key: dict(zip(FIELDS, map(float, values[g]), strict=True))
        for g, key in enumerate(p.group_keys())
    }


# ----------------------------------------------------------------- independent reference
def option_figures(
    g: greeks.Greeks, qty: float, mult: float, X: float, inverse: bool, avg: float | None
) -> dict[str, float]:
    """A position's figures from raw Greeks, in the units of engine.outputs."""
    n = qty * mult
    price, delta, gamma = float(g.price), float(g.delta), float(g.gamma)
    out = {
        "delta": n * delta,
        "delta_usd": n * delta * X,
        "delta_adj": n * (delta - price / X) if inverse else n * delta,
        "gamma": n * gamma,
        "cash_gamma": n * gamma * X * X / 100.0,
        "vega": n * float(g.vega) / 100.0,
        "theta": n * float(g.theta) / 365.0,
        "rho": n * float(g.rho) / 100.0,
        "vanna": n * float(g.vanna) / 100.0,
        "volga": n * float(g.volga) / 10_000.0,
        "market_value": n * price,
    }
    # The P&L is a difference of two terms: its rounding scales with their size, not with it.
    out["pnl_scale"] = abs(n * price) + abs(n * (avg or 0.0) * (X if inverse else 1.0))
    if avg is None:
        out["pnl"] = 0.0
    elif inverse:  # avg in coin: (value in coin - avg) converted at the forward
        out["pnl"] = n * (price / X - avg) * X
    else:
        out["pnl"] = n * (price - avg)
    return out


def delta_one_figures(
    qty: float, mult: float, X: float, avg: float, *, inverse: bool, spot: bool
) -> dict[str, float]:
    out = dict.fromkeys(METRICS, 0.0)
    n = qty * mult
    if inverse:  # n is a USD notional
        out.update(delta=n / X, delta_usd=n, delta_adj=n / X, pnl=n * (X / avg - 1.0))
        out["pnl_scale"] = abs(n * X / avg) + abs(n)
    else:
        out.update(delta=n, delta_usd=n * X, delta_adj=n, pnl=n * (X - avg))
        out["pnl_scale"] = abs(n * X) + abs(n * avg)
        if spot:
            out["market_value"] = n * X
    return out


def years(expiry_ns: int, valuation_ns: int = V) -> float:
    """ACT/365 years from the valuation time to an expiry."""
    return year_fraction(valuation_ns, expiry_ns)


# ------------------------------------------------------------------------------ fixed book
def build_book() -> tuple[Portfolio, dict[tuple[str, str, str], list[dict[str, float]]]]:
    """The mixed book, fed and cycled at V; with the positions' independent figures."""
    p = portfolio()
    ticks = [
        tick("btc_usd", 60_000.0, ts_ns=FRESH),
        tick("BTC-27DEC24", 62_950.0, ts_ns=FRESH),
        tick("BTC-PERPETUAL", 60_100.0, ts_ns=FRESH),
        tick("BTC_USDC-PERPETUAL", 60_080.0, ts_ns=FRESH),
        tick("BTC_USDC", 60_050.0, ts_ns=FRESH),
        tick("sol_usdc", 140.0, ts_ns=FRESH),
        tick("SPX", 5_460.0, ts_ns=FRESH),
    ]
    quotes = [
        quote("BTC-27DEC24-60000-C", iv=0.55, mark=0.13, underlying_price=63_000.0, ts_ns=FRESH),
        quote("BTC-27DEC24-50000-P", mark=0.028, ts_ns=FRESH),  # IV from mark, F from future
        quote("SOL_USDC-27SEP24-150-C", bid=11.0, ask=13.0, mark=None, ts_ns=FRESH),  # mid, index
        quote(SPX, iv=0.16, mark=260.0, ts_ns=FRESH),
        quote("ETH-27SEP24-3000-P", iv=0.6, mark=0.04, underlying_price=3_420.0, ts_ns=FRESH),
    ]
    fills = [
        fill("BTC-27DEC24-60000-C", 10.0, 0.12, book="alpha"),
        fill("BTC-27DEC24-50000-P", -5.0, 0.03, book="alpha"),
        fill("BTC-27DEC24", 20_000.0, 61_000.0, book="alpha"),
        fill("BTC-PERPETUAL", -30_000.0, 60_500.0, book="alpha"),
        fill("BTC_USDC-PERPETUAL", 0.5, 59_000.0, book="alpha"),
        fill("BTC_USDC", 0.25, 58_000.0, book="alpha"),
        fill("SOL_USDC-27SEP24-150-C", 100.0, 12.0, book="alpha"),
        fill(SPX, 3.0, 250.0, book="alpha"),
        fill("ETH-27SEP24-3000-P", 40.0, 0.05, book="beta"),
        fill("BTC-27DEC24-60000-C", -4.0, 0.14, book="beta"),
    ]
    for f in fills:
        assert p.apply_fill(f)
    for t in ticks:
        assert p.apply_tick(t)
    for q in quotes:
        assert p.apply_quote(q)
    p.cycle(V)

    t_dec, t_sep, t_spx = years(DEC27), years(SEP27), years(SPX_EXPIRY)
    call = greeks.inverse(True, 63_000.0, 60_000.0, t_dec, 0.0, 0.55)
    put_vol = float(implied_vol(0.028, False, 62_950.0, 50_000.0, t_dec, 0.0, model="inverse"))
    put = greeks.inverse(False, 62_950.0, 50_000.0, t_dec, 0.0, put_vol)
    sol_vol = float(implied_vol(12.0, True, 140.0, 150.0, t_sep, 0.0, model="black76"))
    sol = greeks.black76(True, 140.0, 150.0, t_sep, 0.0, sol_vol)
    spx = greeks.bsm(True, 5_460.0, 5_500.0, t_spx, 0.05, 0.015, 0.16)
    eth = greeks.inverse(False, 3_420.0, 3_000.0, t_sep, 0.0, 0.6)
    expected: dict[tuple[str, str, str], list[dict[str, float]]] = {
        ("alpha", "BTC", DEC27_LABEL): [
            option_figures(call, 10.0, 1.0, 63_000.0, True, 0.12),
            option_figures(put, -5.0, 1.0, 62_950.0, True, 0.03),
            delta_one_figures(20_000.0, 1.0, 62_950.0, 61_000.0, inverse=True, spot=False),
        ],
        ("alpha", "BTC", "perpetual"): [
            delta_one_figures(-30_000.0, 1.0, 60_100.0, 60_500.0, inverse=True, spot=False),
            delta_one_figures(0.5, 1.0, 60_080.0, 59_000.0, inverse=False, spot=False),
        ],
        ("alpha", "BTC", "spot"): [
            delta_one_figures(0.25, 1.0, 60_050.0, 58_000.0, inverse=False, spot=True)
        ],
        ("alpha", "SOL", SEP27_LABEL): [option_figures(sol, 100.0, 1.0, 140.0, False, 12.0)],
        ("alpha", "SPX", SPX_LABEL): [option_figures(spx, 3.0, 100.0, 5_460.0, False, 250.0)],
        ("beta", "ETH", SEP27_LABEL): [option_figures(eth, 40.0, 1.0, 3_420.0, True, 0.05)],
        ("beta", "BTC", DEC27_LABEL): [option_figures(call, -4.0, 1.0, 63_000.0, True, 0.14)],
    }
    return p, expected


def test_book_figures_equal_an_independent_computation() -> None:
    p, expected = build_book()
    got = by_key(p)
    assert set(got) == set(expected)
    for key, positions in expected.items():
        for m in METRICS:
            parts = [pos[m] for pos in positions]
            scale = math.fsum(pos["pnl_scale"] if m == "pnl" else abs(pos[m]) for pos in positions)
            assert_allclose(
                got[key][m], math.fsum(parts), rtol=RTOL_MODEL, atol=1e-14 * scale,
                err_msg=f"{key} {m}",
            )  # fmt: skip
        assert got[key]["n_positions"] == len(positions)
        assert got[key]["n_stale"] == 0.0
    assert_allclose(p.group_values(), p.recompute(), rtol=1e-12, atol=1e-9)


def test_book_figures_hold_the_documented_identities() -> None:
    """Cross-checks in the desk units of engine.outputs, on the state's own output."""
    p, _ = build_book()
    got = by_key(p)
    # delta_adj of a coin-settled option: delta - premium in coin (engine.greeks.inverse).
    g = greeks.inverse(True, 63_000.0, 60_000.0, years(DEC27), 0.0, 0.55)
    beta_btc = got[("beta", "BTC", DEC27_LABEL)]
    assert_allclose(beta_btc["delta_adj"], -4.0 * float(g.delta_adj), rtol=1e-13)
    assert_allclose(beta_btc["market_value"], -4.0 * float(g.price_coin) * 63_000.0, rtol=1e-13)
    # Futures are worth nothing: their value is in pnl. Spot is worth quantity x price.
    assert got[("alpha", "BTC", "perpetual")]["market_value"] == 0.0
    assert_allclose(got[("alpha", "BTC", "spot")]["market_value"], 0.25 * 60_050.0, rtol=1e-15)
    # Inverse future: N (F / avg - 1) USD.
    fut = got[("alpha", "BTC", "perpetual")]
    assert_allclose(
        fut["pnl"], -30_000.0 * (60_100.0 / 60_500.0 - 1.0) + 0.5 * (60_080.0 - 59_000.0),
        rtol=1e-13,
    )  # fmt: skip


def test_fills_average_their_prices_into_pnl() -> None:
    p = portfolio()
    p.apply_tick(tick("BTC-PERPETUAL", 50_000.0, ts_ns=FRESH))
    p.apply_tick(tick("ETH_USDC-PERPETUAL", 3_000.0, ts_ns=FRESH))
    for qty, px in [(10_000.0, 40_000.0), (30_000.0, 60_000.0)]:
        p.apply_fill(fill("BTC-PERPETUAL", qty, px))
    for qty, px in [(2.0, 2_500.0), (1.0, 3_100.0)]:
        p.apply_fill(fill("ETH_USDC-PERPETUAL", qty, px))
    p.cycle(V)
    got = by_key(p)
    avg_inverse = 40_000.0 / (10_000.0 / 40_000.0 + 30_000.0 / 60_000.0)  # harmonic, by notional
    inverse_pnl = 40_000.0 * (50_000.0 / avg_inverse - 1.0)
    assert_allclose(got[("main", "BTC", "perpetual")]["pnl"], inverse_pnl, rtol=1e-13)
    assert_allclose(inverse_pnl, 10_000.0 * (5 / 4 - 1) + 30_000.0 * (5 / 6 - 1), rtol=1e-13)
    avg_linear = (2 * 2_500.0 + 3_100.0) / 3
    assert_allclose(
        got[("main", "ETH", "perpetual")]["pnl"], 3.0 * (3_000.0 - avg_linear), rtol=1e-13
    )
    # A fill without a price leaves the lot without P&L.
    p.apply_fill(fill("ETH_USDC-PERPETUAL", 1.0, None))
    p.cycle(V)
    got = by_key(p)
    assert got[("main", "ETH", "perpetual")]["pnl"] == 0.0
    assert_allclose(got[("main", "BTC", "perpetual")]["pnl"], inverse_pnl, rtol=1e-13)


# ----------------------------------------------------------------------- input selection
def one_option(
    q: Quote,
    ticks: tuple[Tick, ...] = (),
    *,
    qty: float = 1.0,
    valuation_ns: int = V,
    stale_after_ns: int = STALE_NS,
) -> dict[str, float]:
    """The figures of a single-lot book holding ``qty`` of the quoted option."""
    p = portfolio(stale_after_ns)
    p.apply_fill(fill(q.instrument, qty, None))
    for t in ticks:
        p.apply_tick(t)
    p.apply_quote(q)
    p.cycle(valuation_ns)
    (figures,) = by_key(p).values()
    return figures


CALL = "BTC-27DEC24-60000-C"


def test_vol_is_the_quote_iv_when_present() -> None:
    got = one_option(quote(CALL, iv=0.7, mark=0.2, bid=0.1, ask=0.3, underlying_price=61_000.0))
    want = greeks.inverse(True, 61_000.0, 60_000.0, years(DEC27), 0.0, 0.7)
    assert_allclose(got["market_value"], float(want.price), rtol=1e-14)
    assert_allclose(got["vega"], float(want.vega) / 100, rtol=1e-14)


@pytest.mark.parametrize(
    ("kw", "want_coin"),
    [
        ({"mark": 0.11}, 0.11),  # implied from the mark
        ({"mark": 0.11, "bid": 0.09, "ask": 0.10}, 0.11),  # the mark wins over the mid
        ({"mark": None, "bid": 0.09, "ask": 0.12}, 0.105),  # else the mid
        ({"mark": 0.0, "bid": 0.09, "ask": 0.12}, 0.105),  # a zero mark is no mark
        ({"mark": 0.11, "iv": 0.0}, 0.11),  # a zero iv is no iv
    ],
)
def test_vol_is_implied_from_the_mark_else_the_mid(kw: dict[str, Any], want_coin: float) -> None:
    """The recomputed price equals the price the vol was implied from."""
    got = one_option(quote(CALL, underlying_price=61_000.0, **kw), qty=3.0)
    assert_allclose(got["market_value"] / 3.0 / 61_000.0, want_coin, rtol=1e-12)
    assert got["n_stale"] == 0.0


def test_linear_and_bsm_options_imply_vol_from_their_own_currency() -> None:
    lin = one_option(quote("SOL_USDC-27SEP24-150-C", mark=9.5, underlying_price=141.0))
    assert_allclose(lin["market_value"], 9.5, rtol=1e-12)
    spx = one_option(quote(SPX, mark=260.0), (tick("SPX", 5_460.0, ts_ns=FRESH),))
    assert_allclose(spx["market_value"], 100.0 * 260.0, rtol=1e-12)  # multiplier 100
    sigma = float(implied_vol(260.0, True, 5_460.0, 5_500.0, years(SPX_EXPIRY), 0.05, 0.015))
    want = greeks.bsm(True, 5_460.0, 5_500.0, years(SPX_EXPIRY), 0.05, 0.015, sigma)
    assert_allclose(spx["delta"], 100.0 * float(want.delta), rtol=1e-10)
    assert_allclose(spx["rho"], 100.0 * float(want.rho) / 100, rtol=1e-10)


def _forward(figures: dict[str, float]) -> float:
    return figures["delta_usd"] / figures["delta"]


def test_forward_is_the_quote_underlying_price_first() -> None:
    got = one_option(
        quote(CALL, iv=0.5, underlying_price=63_000.0),
        (tick("BTC-27DEC24", 62_000.0, ts_ns=FRESH), tick("btc_usd", 60_000.0, ts_ns=FRESH)),
    )
    assert_allclose(_forward(got), 63_000.0, rtol=1e-14)


def test_forward_is_the_future_of_the_same_expiry_next() -> None:
    got = one_option(
        quote(CALL, iv=0.5),
        (
            tick("BTC-27SEP24", 61_000.0, ts_ns=FRESH),  # another expiry: not this forward
            tick("BTC-27DEC24", 62_000.0, ts_ns=FRESH),
            tick("btc_usd", 60_000.0, ts_ns=FRESH),
        ),
    )
    assert_allclose(_forward(got), 62_000.0, rtol=1e-14)
    want = greeks.inverse(True, 62_000.0, 60_000.0, years(DEC27), 0.0, 0.5)
    assert_allclose(got["market_value"], float(want.price), rtol=1e-14)


def test_forward_is_the_index_last() -> None:
    got = one_option(
        quote(CALL, iv=0.5),
        (tick("BTC-27SEP24", 61_000.0, ts_ns=FRESH), tick("btc_usd", 60_000.0, ts_ns=FRESH)),
    )
    assert_allclose(_forward(got), 60_000.0, rtol=1e-14)  # r = q = 0: F = index
    # The index may also come with the option's own quotes.
    got = one_option(quote(CALL, iv=0.5, index_price=59_000.0))
    assert_allclose(_forward(got), 59_000.0, rtol=1e-14)


def test_a_dedicated_index_tick_wins_over_quotes_copies() -> None:
    p = portfolio()
    p.apply_fill(fill(CALL, 1.0, None))
    p.apply_tick(tick("btc_usd", 60_000.0, ts_ns=FRESH))
    p.apply_quote(quote(CALL, iv=0.5, index_price=59_000.0))
    p.cycle(V)
    (got,) = by_key(p).values()
    assert_allclose(_forward(got), 60_000.0, rtol=1e-14)


def test_futures_use_own_tick_else_the_index() -> None:
    p = portfolio()
    p.apply_fill(fill("BTC-27DEC24", 10_000.0, 60_000.0))
    p.apply_tick(tick("btc_usd", 58_000.0, ts_ns=FRESH))
    p.cycle(V)
    (got,) = by_key(p).values()
    assert_allclose(got["delta"], 10_000.0 / 58_000.0, rtol=1e-15)
    p.apply_tick(tick("BTC-27DEC24", 61_000.0, ts_ns=FRESH))
    p.cycle(V)
    (got,) = by_key(p).values()
    assert_allclose(got["delta"], 10_000.0 / 61_000.0, rtol=1e-15)


# ------------------------------------------------------------------------------ staleness
def test_a_stale_quote_counts_but_still_prices() -> None:
    old = V - STALE_NS - 1
    got = one_option(quote(CALL, iv=0.5, underlying_price=61_000.0, ts_ns=old), qty=2.0)
    assert got["n_stale"] == 1.0
    assert got["n_positions"] == 1.0
    want = greeks.inverse(True, 61_000.0, 60_000.0, years(DEC27), 0.0, 0.5)
    assert_allclose(got["delta"], 2.0 * float(want.delta), rtol=1e-14)
    # Exactly stale_after_ns old is still fresh.
    got = one_option(quote(CALL, iv=0.5, underlying_price=61_000.0, ts_ns=V - STALE_NS))
    assert got["n_stale"] == 0.0


def test_an_unpriced_option_counts_stale_and_contributes_zero() -> None:
    p = portfolio()
    p.apply_fill(fill(CALL, 5.0, 0.1, book="x"))
    p.apply_fill(fill("BTC-PERPETUAL", 1_000.0, 60_000.0, book="x"))
    p.apply_tick(tick("btc_usd", 60_000.0, ts_ns=FRESH))  # no quote for the call
    p.cycle(V)
    got = by_key(p)
    opt = got[("x", "BTC", DEC27_LABEL)]
    assert opt["n_stale"] == 1.0
    assert opt["n_positions"] == 1.0
    assert all(opt[m] == 0.0 for m in METRICS)
    perp = got[("x", "BTC", "perpetual")]
    assert perp["n_stale"] == 0.0  # priced off a fresh index: its input is the index
    assert_allclose(perp["delta"], 1_000.0 / 60_000.0, rtol=1e-15)
    # A quote whose prices cannot give a vol (mark above the forward) is unpriced too.
    bad = one_option(quote(CALL, mark=1.5, underlying_price=61_000.0))
    assert (bad["n_stale"], bad["market_value"], bad["delta"]) == (1.0, 0.0, 0.0)
    assert not np.isnan(p.group_values()).any()


def test_staleness_is_judged_at_the_valuation_time() -> None:
    p = portfolio()
    p.apply_fill(fill("BTC-PERPETUAL", 1_000.0, 60_000.0))
    p.apply_tick(tick("BTC-PERPETUAL", 60_000.0, ts_ns=V))
    p.cycle(V)
    assert by_key(p)[("main", "BTC", "perpetual")]["n_stale"] == 0.0
    p.cycle(V + 10 * STALE_NS)  # incremental: the valuation time stays
    assert by_key(p)[("main", "BTC", "perpetual")]["n_stale"] == 0.0
    p.cycle(V + STALE_NS + 1, full=True)
    assert by_key(p)[("main", "BTC", "perpetual")]["n_stale"] == 1.0
    p.apply_tick(tick("BTC-PERPETUAL", 60_500.0, ts_ns=V + STALE_NS))
    p.cycle(V + 2 * STALE_NS)
    assert by_key(p)[("main", "BTC", "perpetual")]["n_stale"] == 0.0


def test_a_lot_closed_to_zero_neither_counts_nor_goes_stale() -> None:
    p = portfolio()
    p.apply_fill(fill(CALL, 2.0, 0.1))
    p.apply_fill(fill(CALL, -2.0, 0.12))
    p.cycle(V)  # no quote at all
    (got,) = by_key(p).values()
    assert (got["n_positions"], got["n_stale"], got["delta"]) == (0.0, 0.0, 0.0)
    assert got["pnl"] == 0.0  # unpriced: nothing, not NaN


# ------------------------------------------------------------------------------- expiry
@pytest.mark.parametrize(("is_call", "want_delta"), [(True, 1.0), (False, 0.0)])
def test_expired_options_are_worth_their_intrinsic_value(is_call: bool, want_delta: float) -> None:
    name = f"BTC-28JUN24-60000-{'C' if is_call else 'P'}"  # expired 2024-06-28 08:00
    got = one_option(quote(name, mark=0.03, underlying_price=62_000.0), qty=2.0)
    want_usd = 2.0 * max(62_000.0 - 60_000.0, 0.0) if is_call else 0.0
    assert got["market_value"] == want_usd
    assert got["delta"] == 2.0 * want_delta
    assert_allclose(got["delta_adj"], 2.0 * (want_delta - want_usd / 2.0 / 62_000.0), rtol=1e-15)
    for m in ("gamma", "cash_gamma", "vega", "theta", "rho", "vanna", "volga"):
        assert got[m] == 0.0, m
    assert got["n_stale"] == 0.0
    assert not any(math.isnan(v) for v in got.values())


def test_an_option_expiring_between_full_cycles_turns_intrinsic_at_the_next() -> None:
    name = "BTC-1JUL24-55000-P"  # expires 2024-07-01 08:00, 8 h after V
    p = portfolio(stale_after_ns=10**18)
    p.apply_fill(fill(name, 1.0, 0.01))
    p.apply_quote(quote(name, iv=0.8, underlying_price=50_000.0))
    p.cycle(V)
    (before,) = by_key(p).values()
    assert before["vega"] > 0.0
    p.cycle(utc_ns(2024, 7, 1, 9), full=True)
    (after,) = by_key(p).values()
    assert after["market_value"] == 5_000.0
    assert after["delta"] == -1.0
    assert after["vega"] == 0.0
    assert_allclose(after["pnl"], 5_000.0 - 0.01 * 50_000.0, rtol=1e-15)


# ------------------------------------------------------------------------ unresolved fills
def test_unknown_instrument_fills_are_kept_and_applied_once_known() -> None:
    reg = InstrumentRegistry()
    p = Portfolio(reg, {"SPX": SPX_PARAMS})
    f1 = fill(SPX, 2.0, 250.0, book="a")
    f2 = fill(SPX, 1.0, 256.0, book="a")
    assert not p.apply_fill(f1)
    assert not p.apply_fill(f2)
    assert not p.apply_fill(fill("btc_usd", 1.0, 1.0))  # an index cannot be held: kept too
    assert p.unresolved_fills == [f1, f2, fill("btc_usd", 1.0, 1.0)]
    assert p.retry_unresolved() == 0
    assert len(p.unresolved_fills) == 3
    reg.add(SPX_INDEX)
    reg.add(SPX_CALL)
    assert p.retry_unresolved() == 2
    assert p.positions() == [("a", SPX, 3.0)]
    assert len(p.unresolved_fills) == 1
    p.apply_tick(tick("SPX", 5_460.0, ts_ns=FRESH))
    p.apply_quote(quote(SPX, iv=0.16, mark=1.0, ts_ns=FRESH))
    p.cycle(V)
    want = greeks.bsm(True, 5_460.0, 5_500.0, years(SPX_EXPIRY), 0.05, 0.015, 0.16)
    (got,) = by_key(p).values()
    assert_allclose(got["delta"], 300.0 * float(want.delta), rtol=1e-14)
    assert_allclose(got["pnl"], 300.0 * float(want.price) - 100.0 * (500.0 + 256.0), rtol=1e-13)
    assert p.instrument_status().unresolved_fills == 1


def test_retry_unresolved_never_drops_the_fills_it_cannot_apply() -> None:
    """A bad fill is refused at once, before it could be kept; every kept fill applies once its
    instrument is known, so retry_unresolved cannot lose any."""
    reg = InstrumentRegistry()
    p = Portfolio(reg)
    with pytest.raises(ValueError, match="quantity must be finite"):
        p.apply_fill(fill(SPX, math.nan, 250.0))
    with pytest.raises(ValueError, match="price must be finite and > 0"):
        p.apply_fill(fill(SPX, 1.0, -250.0))
    assert p.apply_fill(fill(SPX, 2.0, 250.0)) is False
    assert p.apply_fill(fill(SPX, 3.0, 251.0)) is False
    assert len(p.unresolved_fills) == 2
    assert p.retry_unresolved() == 0  # still unknown: kept, in order
    assert len(p.unresolved_fills) == 2
    reg.add(SPX_INDEX)
    reg.add(SPX_CALL)
    assert p.retry_unresolved() == 2
    assert p.unresolved_fills == []
    assert p.positions() == [("main", SPX, 5.0)]


def test_bad_fills_of_known_instruments_raise() -> None:
    p = portfolio()
    with pytest.raises(ValueError, match="quantity must be finite"):
        p.apply_fill(fill(CALL, math.inf, 0.1))
    with pytest.raises(ValueError, match="price must be finite and > 0"):
        p.apply_fill(fill(CALL, 1.0, 0.0))
    with pytest.raises(ValueError, match="unknown instrument"):
        p.add_position("a", "NOPE", 1.0)
    with pytest.raises(ValueError, match="cannot be held"):
        p.add_position("a", "btc_usd", 1.0)
    assert p.positions() == []


def test_ticks_and_quotes_for_the_wrong_kind_are_refused() -> None:
    p = portfolio()
    assert not p.apply_tick(tick(CALL, 0.1))
    assert not p.apply_tick(tick("NOPE", 1.0))
    assert not p.apply_quote(quote("BTC-PERPETUAL"))
    assert not p.apply_quote(quote("NOPE"))
    assert p.apply_quotes([quote("NOPE"), quote(CALL, iv=0.5), quote("BTC-PERPETUAL")]) == 2


def test_in_a_batch_of_quotes_the_latest_of_an_instrument_wins() -> None:
    one, batch = portfolio(), portfolio()
    for p in (one, batch):
        p.apply_fill(fill(CALL, 1.0, None))
    first = quote(CALL, iv=0.9, underlying_price=50_000.0, index_price=49_000.0)
    last = quote(CALL, iv=0.5, underlying_price=61_000.0, mark=0.05)
    one.apply_quote(last)
    assert batch.apply_quotes([first, last]) == 0
    for p in (one, batch):
        p.cycle(V, full=True)
    assert by_key(batch) == by_key(one)
    assert by_key(one)[("main", "BTC", DEC27_LABEL)]["n_stale"] == 0


# -------------------------------------------------------------------------- cycle semantics
def test_incremental_cycles_keep_the_valuation_time_and_full_ones_move_it() -> None:
    p = portfolio(stale_after_ns=10**18)
    p.apply_fill(fill(CALL, 1.0, 0.1, book="a"))
    p.apply_fill(fill("ETH-27SEP24-3000-P", 1.0, 0.1, book="b"))
    p.apply_quote(quote(CALL, iv=0.5, underlying_price=61_000.0))
    p.apply_quote(quote("ETH-27SEP24-3000-P", iv=0.6, underlying_price=3_400.0))
    assert p.cycle(V) == {("a", "BTC"), ("b", "ETH")}
    assert p.valuation_ns == V
    theta0 = by_key(p)[("a", "BTC", DEC27_LABEL)]["theta"]
    assert p.cycle(V + 3_600 * S_NS) == set()  # nothing changed
    p.apply_quote(quote(CALL, iv=0.5, underlying_price=61_000.0, ts_ns=V + 3_600 * S_NS))
    assert p.cycle(V + 3_600 * S_NS) == {("a", "BTC")}
    assert p.valuation_ns == V
    assert by_key(p)[("a", "BTC", DEC27_LABEL)]["theta"] == theta0
    later = V + 30 * 86_400 * S_NS
    assert p.cycle(later, full=True) == {("a", "BTC"), ("b", "ETH")}
    assert p.valuation_ns == later
    want = greeks.inverse(True, 61_000.0, 60_000.0, years(DEC27, later), 0.0, 0.5)
    assert_allclose(
        by_key(p)[("a", "BTC", DEC27_LABEL)]["theta"], float(want.theta) / 365, rtol=1e-14
    )


def test_columns_grow_past_their_first_capacity() -> None:
    """120 options in 3 books (360 lots, > 16 groups): growth keeps every row."""
    p = portfolio(stale_after_ns=10**18)
    strikes = [20_000.0 + 1_000.0 * k for k in range(40)]
    days = ["27SEP24", "27DEC24", "28MAR25"]
    expected: dict[tuple[str, str, str], float] = defaultdict(float)
    for d, day in enumerate(days):
        expiry = {0: SEP27, 1: DEC27, 2: utc_ns(2025, 3, 28, 8)}[d]
        label = datetime.fromtimestamp(expiry // S_NS, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        for k, strike in enumerate(strikes):
            name = f"BTC-{day}-{strike:.0f}-{'C' if k % 2 else 'P'}"
            for b in range(3):
                book = f"book{b}{d}"  # 9 books x 1 expiry each
                p.apply_fill(fill(name, float(b + 1), None, book=book))
                g = greeks.inverse(k % 2 == 1, 61_000.0, strike, years(expiry), 0.0, 0.5 + 0.01 * k)
                expected[(book, "BTC", label)] += (b + 1) * float(g.delta)
            p.apply_quote(quote(name, iv=0.5 + 0.01 * k, underlying_price=61_000.0))
    p.cycle(V)
    got = by_key(p)
    assert len(got) == 9
    assert len(p.positions()) == 360
    for key, delta in expected.items():
        assert_allclose(got[key]["delta"], delta, rtol=1e-12, atol=1e-12)
        assert got[key]["n_positions"] == 40
    assert_allclose(p.group_values(), p.recompute(), rtol=1e-12, atol=1e-12)


# --------------------------------------------------------------------------------- payloads
def test_exposure_payloads() -> None:
    p, _ = build_book()
    now = V + 123_456_789
    payloads = p.exposure_payloads(p.bu_keys(), now)
    keys = [k for k, _ in payloads]
    assert keys == ["alpha:BTC", "alpha:SOL", "alpha:SPX", "beta:BTC", "beta:ETH", "alpha", "beta"]
    by_name = dict(payloads)
    values = by_key(p)
    for key, payload in payloads:
        assert payload.v == SCHEMA_VERSION
        assert payload.ts_ns == now
        assert payload.ts == now // 1_000_000  # publication time
        assert payload.valuation_ts_ns == p.valuation_ns == V  # the figures' valuation time
        assert payload.units == UNITS
        assert type(payload.n_positions) is int
        assert type(payload.n_stale) is int
        # JSON and back: nothing lost (no NaN turned null), every number a Python number
        assert msgspec.json.decode(encode(payload), type=type(payload)) == payload
        if isinstance(payload, UnderlyingExposure):
            rows = expiry_rows(payload.expiries)
            assert list(rows[0]) == ["expiry", *FIELDS]
            book, und = key.split(":")
            assert (payload.book, payload.underlying) == (book, und)
            mine = {k: v for k, v in values.items() if k[:2] == (book, und)}
            assert [e["expiry"] for e in rows] == sorted(k[2] for k in mine)
            for e in rows:
                assert type(e["n_positions"]) is int
                group = mine[(book, und, str(e["expiry"]))]
                assert {f: float(e[f]) for f in FIELDS} == group
            for f in FIELDS:
                parts = [float(e[f]) for e in rows]
                scale = math.fsum(abs(x) for x in parts)
                # numpy's pairwise sum of a handful of rows vs fsum: one rounding per row
                assert_allclose(
                    getattr(payload, f), math.fsum(parts), rtol=1e-15, atol=4e-16 * scale
                )
        else:
            assert payload.scope == "book"
            for m in ("delta", "delta_adj", "gamma", "vanna"):
                assert getattr(payload, m) is None, m
            unds = [by_name[k] for k in keys if k.startswith(f"{key}:")]
            for m in (*BOOK_METRICS, "n_positions", "n_stale"):
                parts = [float(getattr(u, m)) for u in unds]
                scale = math.fsum(abs(x) for x in parts)
                assert_allclose(
                    getattr(payload, m), math.fsum(parts), rtol=1e-14, atol=1e-15 * scale
                )
    underlying_units = {"delta", "delta_adj", "gamma", "vanna"}
    assert set(BOOK_METRICS) == {m for m in METRICS if m not in underlying_units}


def test_exposure_payloads_for_one_pair_publish_its_whole_book() -> None:
    p, _ = build_book()
    payloads = dict(p.exposure_payloads([("alpha", "SOL")], V))
    assert set(payloads) == {"alpha:SOL", "alpha"}
    everything = dict(p.exposure_payloads(p.bu_keys(), V))
    assert payloads["alpha"] == everything["alpha"]


# ------------------------------------------------------------------------ stateful property
def _abs_scale(mirror: Portfolio, n_groups: int, keys: list[tuple[str, str, str]]) -> F64:
    """Sum of |contribution| per group and figure, from a mirror portfolio that holds every lot
    in a group of its own (book "{book}|{instrument}"), so its recompute() rows are single lots."""
    index = {key: g for g, key in enumerate(keys)}
    scale = np.zeros((n_groups, len(FIELDS)))
    rows = mirror.recompute()
    for g, (mbook, und, exp) in enumerate(mirror.group_keys()):
        scale[index[(mbook.split("|")[0], und, exp)]] += np.abs(rows[g])
    return scale


INDEX_PX = {"btc_usd": (20_000.0, 120_000.0), "btc_usdc": (20_000.0, 120_000.0)}
FUTURES = ["BTC-27DEC24", "BTC-27SEP24", "BTC-PERPETUAL", "BTC_USDC-PERPETUAL", "BTC_USDC"]
INVERSE_OPTIONS = [
    "BTC-27DEC24-60000-C",
    "BTC-27DEC24-50000-P",
    "BTC-27SEP24-65000-C",
    "BTC-2JUL24-60000-C",  # expires 32 h after T0: the machine can jump past it
]
LINEAR_OPTIONS = ["BTC_USDC-27SEP24-60000-P", SPX]
HELD = [*FUTURES, *INVERSE_OPTIONS, *LINEAR_OPTIONS]
BOOKS = ["a", "b", "c"]
prices = st.floats(20_000.0, 120_000.0)


class PortfolioMachine(RuleBasedStateMachine):
    """Random events into a portfolio; after every cycle, incremental == recompute."""

    def __init__(self) -> None:
        super().__init__()
        self.p = portfolio()
        # The mirror sees the same events with one group per lot: it gives the tolerance scale
        # and an independent grouping of the same contributions.
        self.mirror = portfolio()
        self.now = T0_NS
        self.cycled = False
        self.quotes: list[Quote] = []  # applied in one batch before the next other event

    def _apply_quotes(self) -> None:
        """The portfolio takes the quotes as one batch, the mirror one by one."""
        refused = sum(not self.mirror.apply_quote(q) for q in self.quotes)
        assert self.p.apply_quotes(self.quotes) == refused
        self.quotes = []

    def _both(self, ev: Tick | Quote | Fill) -> None:
        if isinstance(ev, Quote):
            self.quotes.append(ev)
            return
        self._apply_quotes()
        if isinstance(ev, Tick):
            assert self.p.apply_tick(ev) == self.mirror.apply_tick(ev)
        else:
            assert self.p.apply_fill(ev)
            mirrored = Fill(
                book=f"{ev.book}|{ev.instrument}", instrument=ev.instrument,
                quantity=ev.quantity, price=ev.price, ts_event=ev.ts_event, ts_recv=ev.ts_recv,
            )  # fmt: skip
            assert self.mirror.apply_fill(mirrored)

    def _ts(self, lag_s: float) -> int:
        return self.now - round(lag_s * S_NS)

    @initialize()
    def start(self) -> None:
        self._both(tick("SPX", 5_400.0, ts_ns=self.now))

    @rule(index=st.sampled_from(sorted(INDEX_PX)), px=prices, lag=st.floats(0, 120))
    def index_tick(self, index: str, px: float, lag: float) -> None:
        self._both(tick(index, px, ts_ns=self._ts(lag)))

    @rule(px=st.floats(3_000.0, 7_000.0), lag=st.floats(0, 120))
    def spx_tick(self, px: float, lag: float) -> None:
        self._both(tick("SPX", px, ts_ns=self._ts(lag)))

    @rule(name=st.sampled_from(FUTURES), px=prices, lag=st.floats(0, 120))
    def future_tick(self, name: str, px: float, lag: float) -> None:
        self._both(tick(name, px, ts_ns=self._ts(lag)))

    @rule(
        name=st.sampled_from(INVERSE_OPTIONS + LINEAR_OPTIONS),
        iv=st.none() | st.floats(0.05, 3.0),
        up=st.none() | prices,
        index_px=st.none() | prices,
        mark_frac=st.none() | st.floats(1e-4, 0.6),
        spread=st.floats(0.0, 0.2),
        lag=st.floats(0, 120),
    )
    def option_quote(
        self,
        name: str,
        iv: float | None,
        up: float | None,
        index_px: float | None,
        mark_frac: float | None,
        spread: float,
        lag: float,
    ) -> None:
        # Prices as a fraction of the underlying (coin for inverse options is that fraction);
        # some are outside the no-arbitrage bounds on purpose (unpriced, must count stale).
        frac = 0.05 if mark_frac is None else mark_frac
        scale = 1.0 if name in INVERSE_OPTIONS else (5_400.0 if name == SPX else 6e4)
        mark = None if mark_frac is None else frac * scale
        bid = frac * scale * (1 - spread)
        ask = frac * scale * (1 + spread)
        self._both(
            quote(
                name, bid=bid, ask=ask, mark=mark, iv=iv, underlying_price=up,
                index_price=index_px, ts_ns=self._ts(lag),
            )
        )  # fmt: skip

    @rule(
        book=st.sampled_from(BOOKS),
        name=st.sampled_from(HELD),
        qty=st.floats(-50.0, 50.0),
        px_frac=st.none() | st.floats(0.001, 1.0),
    )
    def trade(self, book: str, name: str, qty: float, px_frac: float | None) -> None:
        inverse_future = name in ("BTC-27DEC24", "BTC-27SEP24", "BTC-PERPETUAL")
        if inverse_future:
            qty *= 10_000.0  # USD notional
        if px_frac is None:
            px = None
        elif name in INVERSE_OPTIONS:
            px = px_frac
        else:
            px = px_frac * (5_400.0 if name == SPX else 1e5)
        self._both(fill(name, qty, px, book=book, ts_ns=self.now))

    @rule(data=st.data())
    def close_lot(self, data: st.DataObject) -> None:
        """A fill that brings a lot to exactly 0 (x + (-x) == 0 in floating point)."""
        if not self.p.positions():
            return
        book, name, qty = data.draw(st.sampled_from(self.p.positions()))
        self._both(fill(name, -qty, None if qty == 0 else 1.0, book=book, ts_ns=self.now))
        assert {(b, n): q for b, n, q in self.p.positions()}[(book, name)] == 0.0

    @rule(dt_s=st.floats(0.0, 30.0))
    def cycle(self, dt_s: float) -> None:
        self._cycle(dt_s, full=False)

    @rule(dt_s=st.floats(0.0, 30.0))
    def full_cycle(self, dt_s: float) -> None:
        self._cycle(dt_s, full=True)

    @rule(hours=st.floats(0.0, 48.0))
    def jump(self, hours: float) -> None:
        self.now += round(hours * 3_600 * S_NS)

    def _cycle(self, dt_s: float, full: bool) -> None:
        self._apply_quotes()
        self.now += round(dt_s * S_NS)
        before = dict(zip(self.p.group_keys(), self.p.group_values().copy(), strict=True))
        first = not self.cycled
        changed = self.p.cycle(self.now, full)
        if full or first:
            self.mirror.cycle(self.now, full=True)
        self.cycled = True
        assert self.mirror.valuation_ns == self.p.valuation_ns
        keys = self.p.group_keys()
        after = self.p.group_values()
        assert not np.isnan(after).any()
        for key, row in zip(keys, after, strict=True):
            old = before.get(key, np.zeros_like(row))
            if not np.array_equal(old, row):
                assert key[:2] in changed, (key, old, row)
        exact = self.p.recompute()
        assert not np.isnan(exact).any()
        scale = _abs_scale(self.mirror, len(keys), keys)
        # Neumaier's sums stay within ~eps|S| + n eps^2 sum|x_ever| of the exact sum; with
        # bounded inputs and < 1e4 updates the second term is < 1e-15 of the scale. So: a
        # relative 1e-12 and an absolute 1e-12 of the sum of |contributions| (cancellation).
        assert_within(after, exact, 1e-12, 1e-12 * scale)
        self._totals_are_their_groups(keys, exact, scale)
        # The mirror holds the same contributions, one lot per group: same exact sums.
        regrouped = np.zeros_like(exact)
        index = {key: g for g, key in enumerate(keys)}
        parts: dict[tuple[int, int], list[float]] = defaultdict(list)
        mrows = self.mirror.recompute()
        for g, (mbook, und, exp) in enumerate(self.mirror.group_keys()):
            for c in range(len(FIELDS)):
                parts[(index[(mbook.split("|")[0], und, exp)], c)].append(float(mrows[g, c]))
        for (g, c), vs in parts.items():
            regrouped[g, c] = math.fsum(vs)
        assert_allclose(regrouped, exact, rtol=0, atol=0)

    def _totals_are_their_groups(
        self, keys: list[tuple[str, str, str]], exact: F64, scale: F64
    ) -> None:
        """Each (book, underlying)'s and each book's sums, as read (refreshed from their groups
        after an incremental cycle), are the exact sums of their groups'."""
        pair_sum: dict[tuple[str, str], list[F64]] = defaultdict(list)
        pair_scale: dict[tuple[str, str], list[F64]] = defaultdict(list)
        for key, row, sc in zip(keys, exact, scale, strict=True):
            pair_sum[key[:2]].append(row)
            pair_scale[key[:2]].append(sc)
        book_sum: dict[str, list[F64]] = defaultdict(list)
        for book, br in self.p.books_risk().items():
            for u, und in enumerate(br.underlyings):
                want = np.array([math.fsum(c) for c in zip(*pair_sum[(book, und)], strict=True)])
                bound = 1e-12 * np.sum(pair_scale[(book, und)], axis=0)
                assert_within(br.figures[u], want, 1e-12, bound)
                book_sum[book].append(want)
        for name, payload in self.p.exposure_payloads([], self.now, list(book_sum)):
            assert isinstance(payload, BookExposure)
            want = np.sum(book_sum[name], axis=0)
            got = (payload.delta_usd, payload.vega, payload.market_value)
            idx = [FIELDS.index(f) for f in ("delta_usd", "vega", "market_value")]
            assert_allclose(got, want[idx], rtol=1e-9, atol=1e-6)

    @invariant()
    def nothing_is_nan(self) -> None:
        assert not np.isnan(self.p.group_values()).any()
        for _, payload in self.p.exposure_payloads(self.p.bu_keys(), self.now):
            data = msgspec.json.decode(encode(payload))
            if data["scope"] == "underlying":  # NaN would be encoded as null
                assert None not in [data[f] for f in FIELDS]
                assert not any(None in column for column in data["expiries"].values())


PortfolioMachine.TestCase.settings = settings(
    max_examples=40, stateful_step_count=40, deadline=None
)
TestPortfolioMachine = PortfolioMachine.TestCase


def test_a_long_run_of_updates_does_not_drift() -> None:
    """20 000 quote updates with incremental cycles: the compensated sums stay at the exact sums."""
    rng = np.random.default_rng(20240701)
    p = portfolio(stale_after_ns=10**18)
    mirror = portfolio(stale_after_ns=10**18)  # one group per lot, for the tolerance scale
    names = ["BTC-27DEC24-60000-C", "BTC-27DEC24-50000-P", "BTC-27SEP24-65000-C"]
    fills = [
        fill(name, qty, 0.05, book=book)
        for i, name in enumerate(names)
        for book, qty in (("a", 7.0 + i), ("b", -3.3 * (i + 1)), ("c", 1e3))
    ]
    fills.append(fill("BTC-27DEC24", 1e6, 60_000.0, book="a"))
    for f in fills:
        p.apply_fill(f)
        mirror.apply_fill(fill(f.instrument, f.quantity, f.price, book=f"{f.book}|{f.instrument}"))
    p.cycle(V)
    mirror.cycle(V)
    last: dict[str, Quote | Tick] = {}
    for k in range(20_000):
        name = names[k % 3]
        iv = float(rng.uniform(0.1, 2.5))
        fwd = float(rng.uniform(20_000.0, 120_000.0))
        q = quote(name, iv=iv, underlying_price=fwd, ts_ns=V + k)
        p.apply_quote(q)
        last[name] = q
        if k % 7 == 0:
            t = tick("BTC-27DEC24", fwd * 1.001, ts_ns=V + k)
            p.apply_tick(t)
            last["future"] = t
        if k % 2:
            p.cycle(V + k)
    p.cycle(V + 20_000)
    for ev in last.values():
        if isinstance(ev, Tick):
            mirror.apply_tick(ev)
        else:
            mirror.apply_quote(ev)
    keys = p.group_keys()
    exact = p.recompute()
    scale = _abs_scale(mirror, len(keys), keys)
    # The state machine's tolerance (see PortfolioMachine._cycle).
    assert_within(p.group_values(), exact, 1e-12, 1e-12 * scale)
    # Tighter: every change of a lot's contribution is added exactly (its rounding error kept),
    # so each sum is its exact sum but for the last rounding (hi + lo) and what the low part
    # itself rounds away (~ updates x eps^2 x |contribution|): a few ulps. A change added
    # rounded would drift by ~ sqrt(updates) x eps x |contribution|, ~1e-14 of the scale.
    assert_within(p.group_values(), exact, 4e-16, 1e-18 * scale)
    # The (book, underlying) and book totals are kept incrementally too: they stay at the exact
    # sums of their groups.
    payloads = dict(p.exposure_payloads(p.bu_keys(), V + 20_000))
    for book in ("a", "b", "c"):
        rows = [i for i, k in enumerate(keys) if k[0] == book]
        want = exact[rows].sum(axis=0)
        tol = 1e-12 * scale[rows].sum(axis=0) + 1e-12 * np.abs(want)
        for scope_key in (f"{book}:BTC", book):
            got = payloads[scope_key]
            for c, name in enumerate(FIELDS):
                value = getattr(got, name)
                if value is not None:
                    assert abs(value - want[c]) <= tol[c], (scope_key, name)


# 2,500: three of the threaded kernel's chunks of rows, taken in bit-reversed order
@pytest.mark.parametrize("n_options", [40, 2_500])
def test_many_dirty_instruments_are_repriced_on_the_thread_pool_alike(
    monkeypatch: pytest.MonkeyPatch, n_options: int
) -> None:
    """An index move dirtying more than PARALLEL_MIN_ROWS instruments reprices them on the
    thread pool first; the figures are those of the single-threaded incremental cycle."""
    books = []
    for _ in range(2):
        p = portfolio(stale_after_ns=10**18)
        for k in range(n_options):  # options with no forward of their own: priced off the index
            name = f"BTC-27DEC24-{40_000 + 1_000 * k}-{'C' if k % 2 else 'P'}"
            p.apply_fill(fill(name, 1.0 + k, 0.05))
            p.apply_quote(quote(name, iv=0.4 + 0.01 * k))
        p.apply_tick(tick("btc_usd", 60_000.0))
        p.cycle(V, full=True)
        books.append(p)
    threaded, single = books
    for px in (61_000.0, 59_500.0):
        for p, threshold in ((threaded, 2), (single, 10**9)):
            for module in ("engine.state", "engine.market"):  # the cycle, the pricing step
                monkeypatch.setattr(f"{module}.PARALLEL_MIN_ROWS", threshold)
            p.apply_tick(tick("btc_usd", px))
            assert p.cycle(V) == {("main", "BTC")}
    assert np.array_equal(threaded.group_values(), single.group_values())
    assert_allclose(threaded.group_values(), threaded.recompute(), rtol=1e-12, atol=1e-9)


def test_a_redelivered_fill_is_applied_once() -> None:
    p = portfolio()
    first = fill(CALL, 2.0, 0.1)
    again = msgspec.structs.replace(first, fill_id="f-1")
    assert p.apply_fill(again)
    assert p.apply_fill(again)  # at-least-once delivery: the same id again
    assert p.apply_fill(msgspec.structs.replace(first, fill_id="f-2"))
    assert p.apply_fill(first)  # no id: nothing to recognise it by, applied
    assert p.duplicate_fills == 1
    assert [q for _, name, q in p.positions() if name == CALL] == [6.0]


@pytest.mark.parametrize("book", ["", "main:BTC"])
def test_book_names_cannot_collide_with_snapshot_keys(book: str) -> None:
    p = portfolio()
    with pytest.raises(ValueError, match="book name"):
        p.apply_fill(msgspec.structs.replace(fill(CALL, 1.0, 0.1), book=book))
    with pytest.raises(ValueError, match="book name"):
        p.add_position(book, CALL, 1.0)
    assert p.positions() == []
