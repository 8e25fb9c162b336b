"""Tests for engine.risk.liquidity: exit cost at the quotes and the liquidity-adjusted VaR of
Bangia, Diebold, Schuermann and Stroughair (1999), on hand-made books worked by hand.

The adjustment is ``1/2 x sum_i |P_i| x (mean_i + a x sigma_i)`` of the relative spreads
(``(ask - bid) / mid``); with one sample of each spread (no deviation yet) it is the book's
exit cost, half the quoted spread of every position; with zero spreads LVaR is VaR.
"""

from __future__ import annotations

import collections
import math

import msgspec
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.events import Depth
from engine.outputs import (
    FutureHedge,
    HedgePayload,
    LiquidityPayload,
    SlippagePayload,
    VarPayload,
    encode,
)
from engine.risk.history import MoveHistory
from engine.risk.liquidity import (
    DEFAULT_A,
    LiquidityConfig,
    SpreadHistory,
    SpreadStats,
    exit_cost,
    liquidity_adjustment,
    liquidity_payloads,
    slippage_payload,
)
from engine.risk.report import RiskConfig, var_payload
from engine.state import BookRisk, Portfolio
from tests.factories import fill, payload, quote, tick
from tests.unit.engine.test_report import _history
from tests.unit.engine.test_state import FRESH, V, portfolio

CALL = "BTC-27DEC24-60000-C"  # coin-quoted (inverse): prices in BTC
PUT = "BTC-27DEC24-50000-P"
SOL = "SOL_USDC-27SEP24-150-C"  # USDC-quoted (linear)


def f64(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float64)


# ---------------------------------------------------------------- exit cost


def test_exit_cost_is_half_the_spread_in_usd_worked_by_hand() -> None:
    # long 10 calls at 0.10 / 0.12 BTC, short 5 puts at 0.04 / 0.05 BTC, forward 60 000 USD;
    # long 100 SOL calls at 11 / 13 USDC
    got = exit_cost(
        f64(10.0, -5.0, 100.0), f64(0.10, 0.04, 11.0), f64(0.12, 0.05, 13.0), f64(6e4, 6e4, 1.0)
    )
    # 1/2 x 10 x 0.02 x 60 000 = 6 000; 1/2 x 5 x 0.01 x 60 000 = 1 500; 1/2 x 100 x 2 = 100
    assert_allclose(got.cost_usd, [6_000.0, 1_500.0, 100.0], rtol=1e-12)
    assert got.total_usd == pytest.approx(7_600.0, rel=1e-12)
    # |P| at the mid: 10 x 0.11 x 60 000, 5 x 0.045 x 60 000, 100 x 12
    assert_allclose(got.value_usd, [66_000.0, 13_500.0, 1_200.0], rtol=1e-12)
    assert_allclose(got.relative_spread, [0.02 / 0.11, 0.01 / 0.045, 2.0 / 12.0], rtol=1e-12)


def test_a_position_without_a_two_sided_quote_is_unquoted_and_costs_nothing_counted() -> None:
    got = exit_cost(
        f64(1.0, 2.0, 3.0, 4.0),
        f64(np.nan, 0.1, 0.0, 0.2),
        f64(0.1, np.nan, 0.0, 0.1),  # no bid; no ask; zero mid; crossed
        f64(1.0, 1.0, 1.0, 1.0),
    )
    assert got.quoted.tolist() == [False, False, False, False]
    assert np.isnan(got.cost_usd).all()
    assert got.total_usd == 0.0


def test_shapes_must_agree() -> None:
    with pytest.raises(ValueError, match="one shape"):
        exit_cost(f64(1.0), f64(1.0, 2.0), f64(1.0), f64(1.0))


# ---------------------------------------------------------------- spread history


def test_spread_history_keeps_a_rolling_window_and_its_sample_statistics() -> None:
    h = SpreadHistory(3)
    for s in (0.5, 0.01, 0.02, 0.03):  # 0.5 rolls out of the window of 3
        h.record(["A"], f64(s))
    h.record(["A", "B"], f64(np.nan, 0.04))  # a NaN (no quote) is not a sample
    got = h.stats(["A", "B", "C"], f64(0.9, 0.9, 0.07))
    assert_allclose(got.mean[0], 0.02, rtol=1e-12)
    assert_allclose(got.std[0], 0.01, rtol=1e-12)  # sample deviation of 0.01, 0.02, 0.03
    # one sample (B) or none (C): the current spread, no deviation
    assert_allclose(got.mean[1:], [0.9, 0.07])
    assert got.std[1:].tolist() == [0.0, 0.0]
    assert got.samples.tolist() == [3, 1, 0]


@given(
    st.integers(2, 6),
    st.lists(
        st.dictionaries(
            st.sampled_from("ABCDE"),
            st.one_of(st.floats(0.0, 0.5), st.just(math.nan)),
            max_size=5,
        ),
        max_size=15,
    ),
)
def test_spread_history_equals_a_window_kept_per_instrument(
    window: int, samples: list[dict[str, float]]
) -> None:
    """The ring buffer gives what a deque per instrument and numpy's mean and std give."""
    h = SpreadHistory(window)
    kept: dict[str, collections.deque[float]] = {
        n: collections.deque(maxlen=window) for n in "ABCDEF"
    }
    for sample in samples:
        h.record(list(sample), f64(*sample.values()))
        for n, s in sample.items():
            if math.isfinite(s):
                kept[n].append(s)
    names = list("ABCDEF")
    got = h.stats(names, f64(*[0.25] * 6))
    for i, n in enumerate(names):
        assert got.samples[i] == len(kept[n])
        if len(kept[n]) >= 2:
            assert got.mean[i] == pytest.approx(np.mean(kept[n]), rel=1e-12, abs=1e-15)
            assert got.std[i] == pytest.approx(np.std(kept[n], ddof=1), rel=1e-9, abs=1e-12)
        else:
            assert (got.mean[i], got.std[i]) == (0.25, 0.0)


def test_an_instrument_twice_in_one_sample_is_refused() -> None:
    with pytest.raises(ValueError, match="once per sample"):
        SpreadHistory(3).record(["A", "A"], f64(0.1, 0.2))


def test_window_below_two_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 2"):
        SpreadHistory(1)
    with pytest.raises(msgspec.ValidationError, match="window"):
        msgspec.convert({"window": 1}, LiquidityConfig)


# ---------------------------------------------------------------- the BDSS adjustment


def test_bdss_adjustment_of_a_two_position_book_worked_by_hand() -> None:
    # P_1 = +1 000 000 USD, spreads 1 % and 3 %: mean 2 %, sample deviation sqrt(2) x 1 %
    # P_2 = -500 000 USD, spreads 0.2, 0.4, 0.6 %: mean 0.4 %, deviation 0.2 %
    h = SpreadHistory(10)
    h.record(["X", "Y"], f64(0.01, 0.002))
    h.record(["X", "Y"], f64(0.03, 0.004))
    h.record(["Y"], f64(0.006))
    stats = h.stats(["X", "Y"], f64(np.nan, np.nan))
    # 1/2 x 1e6 x (0.02 + 3 x 0.0141421356) + 1/2 x 5e5 x (0.004 + 3 x 0.002)
    want = 0.5 * 1e6 * (0.02 + 3.0 * math.sqrt(2.0) * 0.01) + 0.5 * 5e5 * 0.01
    assert want == pytest.approx(33_713.2034, abs=1e-4)
    assert liquidity_adjustment(f64(1e6, -5e5), stats, 3.0) == pytest.approx(want, rel=1e-12)
    # a = 0: the mean spread only
    assert liquidity_adjustment(f64(1e6, -5e5), stats, 0.0) == pytest.approx(11_000.0)


@given(
    st.lists(
        st.tuples(
            st.floats(-1e4, 1e4),
            st.floats(1e-3, 1e3),
            st.floats(0.0, 0.5),
            st.floats(1.0, 1e5),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_with_one_sample_the_adjustment_is_the_exit_cost(
    rows: list[tuple[float, float, float, float]],
) -> None:
    w, mid, rel, fx = (np.array(c) for c in zip(*rows, strict=True))
    bid, ask = mid * (1.0 - rel / 2.0), mid * (1.0 + rel / 2.0)
    cost = exit_cost(w, bid, ask, fx)
    h = SpreadHistory(5)
    names = [str(i) for i in range(len(rows))]
    h.record(names, cost.relative_spread)
    stats = h.stats(names, cost.relative_spread)
    got = liquidity_adjustment(cost.value_usd, stats, DEFAULT_A)
    assert got == pytest.approx(cost.total_usd, rel=1e-9, abs=1e-9)
    assert got >= 0.0


# ---------------------------------------------------------------- the daemon's payload


def book(bid: float, ask: float, sol_bid: float, sol_ask: float) -> Portfolio:
    """10 coin-quoted BTC calls (forward 63 000) and 100 SOL calls in ``alpha``, with a BTC
    future (no quote: unquoted)."""
    p = portfolio()
    for t in (tick("btc_usd", 60_000.0, ts_ns=FRESH), tick("sol_usdc", 140.0, ts_ns=FRESH)):
        assert p.apply_tick(t)
    assert p.apply_tick(tick("BTC-27DEC24", 62_950.0, ts_ns=FRESH))
    assert p.apply_quote(
        quote(CALL, bid=bid, ask=ask, iv=0.55, underlying_price=63_000.0, ts_ns=FRESH)
    )
    assert p.apply_quote(quote(SOL, bid=sol_bid, ask=sol_ask, iv=0.6, mark=None, ts_ns=FRESH))
    for f in (
        fill(CALL, 10.0, 0.12, book="alpha"),
        fill(SOL, -100.0, 12.0, book="alpha"),
        fill("BTC-27DEC24", 1_000.0, 61_000.0, book="alpha"),
    ):
        assert p.apply_fill(f)
    p.cycle(V)
    return p


def payloads(
    p: Portfolio, spreads: SpreadHistory, cfg: LiquidityConfig, history: MoveHistory
) -> tuple[LiquidityPayload, VarPayload]:
    books = list(p.books_risk().values())
    risk = RiskConfig(mc_scenarios=200)
    vars_ = {br.book: var_payload(br, history, risk, V) for br in books}

    def var_of(br: BookRisk) -> VarPayload:
        return vars_[br.book]

    out = liquidity_payloads(
        books, {br.book: p.quotes(br.rows) for br in books}, var_of, spreads, cfg, V + 1
    )
    assert [k for k, _ in out] == ["alpha"]
    got = out[0][1]
    assert msgspec.json.decode(encode(got), type=LiquidityPayload) == got
    return got, vars_["alpha"]


def test_payload_exit_cost_of_a_hand_made_book() -> None:
    p = book(0.10, 0.12, 11.0, 13.0)
    got, var = payloads(p, SpreadHistory(10), LiquidityConfig(), _history(["BTC", "SOL"], 30))
    # the call: 1/2 x 10 x 0.02 BTC x 63 000 = 6 300; SOL: 1/2 x 100 x 2 USDC = 100
    assert got.exit_cost_usd == pytest.approx(6_400.0, rel=1e-12)
    by_name = {pos.instrument: pos for pos in got.positions}
    assert by_name[CALL].exit_cost_usd == pytest.approx(6_300.0, rel=1e-12)
    assert by_name[CALL].value_usd == pytest.approx(10 * 0.11 * 63_000.0, rel=1e-12)
    assert by_name[SOL].quantity == -100.0
    assert got.unquoted == ["BTC-27DEC24"]
    assert by_name["BTC-27DEC24"].exit_cost_usd is None
    # the first sample: the adjustment is the exit cost, added to every method's VaR and ES
    assert got.liquidity_cost_usd == pytest.approx(6_400.0, rel=1e-12)
    assert var.var_historical is not None
    assert var.es_monte_carlo is not None
    assert got.lvar_historical == pytest.approx(var.var_historical + 6_400.0, rel=1e-12)
    assert got.les_monte_carlo == pytest.approx(var.es_monte_carlo + 6_400.0, rel=1e-12)
    assert (got.method, got.var, got.lvar) == (var.method, var.var, got.lvar_historical)
    assert got.status == "ok"


def test_payload_lists_the_largest_shares_first_and_sums_the_rest() -> None:
    """Three positions: the call's share 6 300 USD, SOL's 100, the future unquoted (none)."""
    history = _history(["BTC", "SOL"], 30)
    every, _ = payloads(book(0.10, 0.12, 11.0, 13.0), SpreadHistory(10), LiquidityConfig(), history)
    assert [pos.instrument for pos in every.positions] == [CALL, SOL, "BTC-27DEC24"]
    assert (every.n_positions, every.other_positions, every.other_cost_usd) == (3, 0, 0.0)
    top, _ = payloads(
        book(0.10, 0.12, 11.0, 13.0), SpreadHistory(10), LiquidityConfig(top_positions=1), history
    )
    assert [pos.instrument for pos in top.positions] == [CALL]
    assert (top.n_positions, top.other_positions) == (3, 2)
    assert top.other_exit_cost_usd == pytest.approx(100.0, rel=1e-12)  # SOL's; the future: none
    assert top.other_cost_usd == pytest.approx(100.0, rel=1e-12)
    assert top.liquidity_cost_usd == every.liquidity_cost_usd  # the totals count every position
    none, _ = payloads(
        book(0.10, 0.12, 11.0, 13.0), SpreadHistory(10), LiquidityConfig(top_positions=0), history
    )
    assert none.positions == []
    assert none.other_exit_cost_usd == pytest.approx(6_400.0, rel=1e-12)


def test_payload_takes_the_spread_history_of_earlier_periods() -> None:
    spreads, cfg, history = SpreadHistory(10), LiquidityConfig(a=2.0), _history(["BTC", "SOL"], 30)
    payloads(book(0.10, 0.12, 11.0, 13.0), spreads, cfg, history)  # call 0.02 / 0.11
    got, var = payloads(book(0.10, 0.14, 11.0, 13.0), spreads, cfg, history)  # call 0.04 / 0.12
    s = f64(0.02 / 0.11, 0.04 / 0.12)
    call = 0.5 * 10 * 0.12 * 63_000.0 * (s.mean() + 2.0 * s.std(ddof=1))
    sol = 0.5 * 100 * 12.0 * (2.0 / 12.0)  # the same spread twice: no deviation
    assert got.liquidity_cost_usd == pytest.approx(call + sol, rel=1e-12)
    assert var.var is not None
    assert got.lvar == pytest.approx(var.var + call + sol, rel=1e-12)
    assert {pos.instrument: pos.samples for pos in got.positions}[CALL] == 2


def test_zero_spreads_leave_var_as_it_is() -> None:
    spreads = SpreadHistory(10)
    history = _history(["BTC", "SOL"], 30)
    for _ in range(3):
        got, var = payloads(book(0.11, 0.11, 12.0, 12.0), spreads, LiquidityConfig(), history)
    assert got.exit_cost_usd == 0.0
    assert got.liquidity_cost_usd == 0.0
    for m in ("delta_normal", "delta_gamma", "historical", "monte_carlo"):
        assert getattr(got, f"lvar_{m}") == getattr(var, f"var_{m}"), m
        assert getattr(got, f"les_{m}") == getattr(var, f"es_{m}"), m


def test_without_moves_lvar_is_null_and_says_why() -> None:
    got, _ = payloads(
        book(0.10, 0.12, 11.0, 13.0), SpreadHistory(3), LiquidityConfig(), MoveHistory(5)
    )
    assert got.lvar is None
    assert got.les_historical is None
    assert got.exit_cost_usd == pytest.approx(6_400.0, rel=1e-12)
    assert got.status == "0 days of moves, need 2"


def test_stats_type() -> None:
    s = SpreadStats(mean=f64(0.0), std=f64(0.0), samples=np.zeros(1, dtype=np.int64))
    assert liquidity_adjustment(f64(1e9), s, 3.0) == 0.0


# ---------------------------------------------------------------- a hedge's slippage


def hedge_of(quantity: float | None) -> HedgePayload:
    fh = (
        None
        if quantity is None
        else payload(FutureHedge, contracts=quantity / 10.0, quantity=quantity)
    )
    return payload(
        HedgePayload,
        book="main",
        underlying="BTC",
        future="BTC-PERPETUAL",
        delta_hedge=fh,
        status="ok",
    )


DEPTH = Depth(
    instrument="BTC-PERPETUAL",
    bids=[(60_000.0, 10_000.0), (59_990.0, 20_000.0)],
    asks=[(60_010.0, 10_000.0), (60_020.0, 50_000.0)],
    ts_event=5,
    ts_recv=6,
)


def test_slippage_of_a_hedge_worked_by_hand() -> None:
    got = slippage_payload(hedge_of(-25_000.0), DEPTH, inverse=True, now_ns=V)
    # sell 25 000 USD: 10 000 at 60 000, 15 000 at 59 990; a short at p costs q (m/p - 1) USD
    want = 10_000.0 * (60_005.0 / 60_000.0 - 1.0) + 15_000.0 * (60_005.0 / 59_990.0 - 1.0)
    assert got.slippage_usd == pytest.approx(want, rel=1e-12)
    assert (got.side, got.filled, got.mid, got.complete, got.levels, got.book_levels) == (
        "sell",
        25_000.0,
        60_005.0,
        True,
        2,
        2,
    )
    assert (got.contracts, got.book_ts_ns, got.status) == (-2_500.0, 5, "ok")
    assert msgspec.json.decode(encode(got), type=SlippagePayload) == got


def test_slippage_without_a_book_or_a_hedge_says_why() -> None:
    assert (
        slippage_payload(hedge_of(1.0), None, True, V).status == "no order book for BTC-PERPETUAL"
    )
    none = slippage_payload(hedge_of(None), DEPTH, True, V)
    assert (none.status, none.slippage_usd) == ("no hedge: ok", None)
    big = slippage_payload(hedge_of(1e6), DEPTH, True, V)
    assert (big.complete, big.filled) == (False, 60_000.0)
    assert big.status == "the book's levels do not hold the whole hedge"
