"""Settlement at expiry (engine.risk.settlement): the delivery-price TWAP by hand and against
Deribit's published method, the incremental accumulator against the batch function, and
settlement payoffs against Deribit's published examples, hand computations and put-call
parity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine.instruments import deribit_expiry_ns
from engine.risk.settlement import (
    WINDOW_NS,
    Twap,
    TwapAccumulator,
    TwapStatus,
    settle,
    settlement_pnl,
    settlement_twap,
)

S_NS = 1_000_000_000
EXPIRY = deribit_expiry_ns(27, 12, 2024)  # 2024-12-27 08:00 UTC
START = EXPIRY - 1800 * S_NS


def at(seconds: float) -> int:
    """int UNIX ns, ``seconds`` from the expiry (negative: before)."""
    return EXPIRY + round(seconds * S_NS)


# ------------------------------------------------------------------------------ TWAP
def test_twap_of_irregular_samples_by_hand() -> None:
    ts = [at(-2000), at(-1900), at(-1500), at(-1000), at(-400), at(-400), at(-100), at(10)]
    px = [100.0, 101.0, 104.0, 98.0, 99.0, 99.5, 102.0, 500.0]
    # 101 carried in from -1900 s holds from the window's start (-1800 s) to -1500 s: 300 s;
    # 104 for 500 s, 98 for 600 s, 99.0 for 0 s (99.5 has the same time and counts), 99.5 for
    # 300 s, 102 for the last 100 s; 500 comes after the expiry and is ignored.
    # (101·300 + 104·500 + 98·600 + 99.5·300 + 102·100) / 1800 = 181 150 / 1800
    t = settlement_twap(np.array(ts), px, EXPIRY, max_gap_ns=600 * S_NS)
    assert t.price == pytest.approx(181_150 / 1800, rel=1e-15)  # 100.6389
    assert (t.n_samples, t.covered_ns, t.longest_gap_ns) == (5, 1800 * S_NS, 600 * S_NS)
    assert (t.status, t.start_ns, t.end_ns) == (TwapStatus.OK, START, EXPIRY)
    # the longest stretch without a new sample, 600 s, is over the default minute
    assert settlement_twap(np.array(ts), px, EXPIRY).status == TwapStatus.GAP


def test_twap_is_deribits_average_of_regular_index_samples() -> None:
    """deribit.com/docs/expiration-price: "The price used for settlement and delivery of
    contracts will be calculated as the time weighted average of the Deribit index over the last
    half hour before expiration. The Deribit index gets calculated every 6 seconds. So the final
    delivery price is the average of 300 index prices taken in the last 30 minutes before
    expiration." With a sample every 6 s each holds 6 s: the TWAP is their plain mean."""
    rng = np.random.default_rng(3)
    px = 95_000.0 + rng.normal(0.0, 150.0, 300)
    ts = START + 6 * S_NS * np.arange(300, dtype=np.int64)
    t = settlement_twap(ts, px, EXPIRY)
    assert_allclose(t.price, math.fsum(px) / 300, rtol=1e-14)
    assert (t.n_samples, t.longest_gap_ns, t.status) == (300, 6 * S_NS, TwapStatus.OK)


def test_twap_without_a_sample_before_the_window_leaves_its_start_out() -> None:
    t = settlement_twap(np.array([at(-900), at(-300)]), [100.0, 130.0], EXPIRY)
    # 100 for 600 s, 130 for 300 s over the 900 s covered: (60 000 + 39 000) / 900 = 110
    assert t.price == pytest.approx(110.0, rel=1e-15)
    assert (t.covered_ns, t.longest_gap_ns, t.status) == (900 * S_NS, 900 * S_NS, TwapStatus.GAP)


def test_twap_of_a_sample_carried_in_alone_and_of_none() -> None:
    t = settlement_twap(np.array([at(-3600)]), [97.0], EXPIRY)
    assert (t.price, t.n_samples, t.covered_ns, t.status) == (97.0, 0, WINDOW_NS, TwapStatus.GAP)
    for ts in ([], [EXPIRY, at(5)]):  # nothing, or only at and after the expiry
        t = settlement_twap(np.array(ts, dtype=np.int64), [1.0] * len(ts), EXPIRY)
        assert math.isnan(t.price)
        assert (t.n_samples, t.covered_ns, t.status) == (0, 0, TwapStatus.NO_SAMPLES)


@pytest.mark.parametrize(
    ("ts", "px", "kw", "match"),
    [
        ([at(-5), at(-9)], [1.0, 1.0], {}, "ts_ns must be non-decreasing"),
        ([at(-5)], [0.0], {}, "price must be finite and > 0, got 0.0"),
        ([at(-5)], [1.0, 2.0], {}, "price of its shape"),
        ([1.5], [1.0], {}, "integer ns"),
        ([at(-5)], [1.0], {"window_ns": 0}, "window_ns must be an int > 0"),
        ([at(-5)], [1.0], {"max_gap_ns": 1.0}, "max_gap_ns must be an int > 0"),
    ],
)
def test_twap_rejects_bad_arguments(
    ts: list[float], px: list[float], kw: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        settlement_twap(np.array(ts), px, EXPIRY, **kw)


def _same(a: Twap, b: Twap) -> None:
    assert (a.n_samples, a.covered_ns, a.longest_gap_ns, a.status) == (
        b.n_samples, b.covered_ns, b.longest_gap_ns, b.status,
    )  # fmt: skip
    assert (a.start_ns, a.end_ns) == (b.start_ns, b.end_ns)
    assert_allclose(a.price, b.price, rtol=1e-12, equal_nan=True)


samples = st.lists(
    st.tuples(st.integers(-2_400_000, 120_000), st.floats(1.0, 1e6)), max_size=40
).map(sorted)


@settings(max_examples=300, deadline=None)
@given(samples=samples, now_ms=st.integers(-1_799_999, 0), gap_s=st.integers(1, 900))
def test_accumulator_equals_the_batch_twap(
    samples: list[tuple[int, float]], now_ms: int, gap_s: int
) -> None:
    ts = np.array([EXPIRY + ms * 1_000_000 for ms, _ in samples], dtype=np.int64)
    px = np.array([p for _, p in samples])
    now = EXPIRY + now_ms * 1_000_000
    acc = TwapAccumulator(EXPIRY, max_gap_ns=gap_s * S_NS)
    early = ts < now
    for t, p in zip(ts[early], px[early], strict=True):
        assert acc.add(int(t), float(p))
    # before the expiry: the running average is the batch TWAP of a window ending now
    batch = settlement_twap(
        ts[early], px[early], now, window_ns=now - START, max_gap_ns=gap_s * S_NS
    )
    _same(acc.value(now), batch)
    for t, p in zip(ts[~early], px[~early], strict=True):
        assert acc.add(int(t), float(p)) == (t < EXPIRY)  # later than the expiry: ignored
    final = settlement_twap(ts, px, EXPIRY, max_gap_ns=gap_s * S_NS)
    _same(acc.value(EXPIRY), final)
    _same(acc.value(EXPIRY + 3600 * S_NS), final)


def test_accumulator_ignores_old_samples_and_refuses_bad_ones() -> None:
    acc = TwapAccumulator(EXPIRY)
    assert acc.add(at(-100), 10.0)
    assert not acc.add(at(-200), 99.0)  # older than the latest: ignored
    assert acc.value(EXPIRY).price == 10.0
    with pytest.raises(ValueError, match="price must be finite and > 0, got nan"):
        acc.add(at(-50), math.nan)
    with pytest.raises(ValueError, match="before the window's start or the last sample"):
        acc.value(at(-150))
    with pytest.raises(ValueError, match="before the window's start"):
        TwapAccumulator(EXPIRY).value(at(-1801))
    with pytest.raises(ValueError, match="expiry_ns must be an int"):
        TwapAccumulator(float(EXPIRY))  # type: ignore[arg-type]  # the check under test


# ------------------------------------------------------------------------------ payoffs
def test_deribit_options_explained_examples() -> None:
    """Deribit, "Options explained" (deribit.freshdesk.com, article 1000057047): "You buy the a
    300 call option ... the delivery price is 400 dollar. Now this option will expire with a
    value of 100USD, which is 0.25BTC"; "If you were the seller of the option, your account
    would be debited with 0.25BTC"; "You buy the 300 put option ... the delivery price is 200
    dollar. This option will expire with a value of 100USD, which is 0.5BTC"."""
    r = settlement_pnl(
        price=[400.0, 400.0, 200.0],
        is_option=True,
        inverse=True,
        is_call=[True, True, False],
        strike=300.0,
        weight=[1.0, -1.0, 1.0],
        avg_price=0.0,
    )
    assert_allclose(r.value, [0.25, 0.25, 0.5], rtol=1e-15)
    assert_allclose(r.pnl, [0.25, -0.25, 0.5], rtol=1e-15)
    assert_allclose(r.pnl_usd, [100.0, -100.0, 100.0], rtol=1e-15)


def test_deribit_inverse_options_example() -> None:
    """Deribit support, "Inverse Options": "A trader buys a call option with a strike price of
    100,000 USD for 0.05 BTC ... the delivery price is 125,000 USD. In this case, the option is
    settled for 25,000 USD per 1 BTC." In coin: 25 000 / 125 000 = 0.2 BTC; less the 0.05 BTC
    premium: 0.15 BTC of P&L, 0.15 x 125 000 = 18 750 USD."""
    r = settlement_pnl(125_000.0, True, True, True, 100_000.0, 1.0, 0.05)
    assert_allclose([r.value, r.pnl, r.pnl_usd], [0.2, 0.15, 18_750.0], rtol=1e-14)


def test_deribit_inverse_future_example() -> None:
    """deribit.com/docs/example-futures: "If you buy 100 future contracts with size US $10 each
    at a price of US $600 per BTC ... Your profit is 1000/600 – 1000/700 = 0,238095BTC or
    166.66USD with bitcoin priced at $700" (closed at 700 there; settled at 700 here)."""
    r = settlement_pnl(700.0, False, True, False, math.nan, 1000.0, 600.0)
    assert_allclose(r.value, 700.0)
    assert_allclose(r.pnl, 0.238095, atol=1e-6)
    assert_allclose(r.pnl_usd, 1000 * 700 / 600 - 1000, rtol=1e-14)  # 166.67
    short = settlement_pnl(700.0, False, True, False, math.nan, -1000.0, 600.0)
    assert_allclose(short.pnl, -r.pnl, rtol=1e-15)


def test_linear_payoffs_by_hand() -> None:
    # MATIC_USDC-9MAR24-1d02-C, 100 MATIC bought at 0.05 USDC, settled at 1.10:
    #   value 1.10 - 1.02 = 0.08 USDC, P&L 100 x (0.08 - 0.05) = 3 USDC;
    # the 1.02 put expires worthless: P&L -100 x 0.01 = -1;
    # a linear future, 2 BTC bought at 60 000, settled at 61 000: 2 x 1000 = 2000.
    r = settlement_pnl(
        price=[1.10, 1.10, 61_000.0],
        is_option=[True, True, False],
        inverse=False,
        is_call=[True, False, False],
        strike=[1.02, 1.02, math.nan],
        weight=[100.0, 100.0, 2.0],
        avg_price=[0.05, 0.01, 60_000.0],
    )
    assert_allclose(r.value, [0.08, 0.0, 61_000.0], rtol=1e-14)
    assert_allclose(r.pnl, [3.0, -1.0, 2000.0], rtol=1e-13)
    assert_allclose(r.pnl_usd, r.pnl, rtol=0.0)


@settings(max_examples=200, deadline=None)
@given(S=st.floats(1.0, 1e6), K=st.floats(1.0, 1e6))
def test_put_call_parity_of_settlement_values(S: float, K: float) -> None:
    for inverse, parity in ((True, (S - K) / S), (False, S - K)):
        r = settlement_pnl(S, True, inverse, [True, False], K, 1.0, 0.0)
        assert_allclose(r.value[0] - r.value[1], parity, rtol=1e-15, atol=0.0)


def test_settle_event_counts_positions_without_cost() -> None:
    twap = settlement_twap(np.array([at(-1800)]), [50_000.0], EXPIRY)
    # coin call K 40 000 at 0.1: 0.2 - 0.1 = 0.1 BTC = 5000 USD; coin put without cost;
    # inverse future, 10 000 USD at 40 000: 10 000 (1/40 000 - 1/50 000) = 0.05 BTC = 2500 USD
    ev = settle(
        twap,
        is_option=[True, True, False],
        inverse=True,
        is_call=[True, False, False],
        strike=[40_000.0, 40_000.0, math.nan],
        weight=[1.0, 3.0, 10_000.0],
        avg_price=[0.1, math.nan, 40_000.0],
    )
    assert ev.twap is twap
    assert_allclose(ev.positions.pnl_usd, [5000.0, math.nan, 2500.0], rtol=1e-13)
    assert ev.pnl_usd_total == pytest.approx(7500.0, rel=1e-13)
    assert ev.n_no_cost == 1


def test_settle_refuses_what_cannot_settle() -> None:
    empty = settlement_twap(np.array([], dtype=np.int64), [], EXPIRY)
    with pytest.raises(ValueError, match="no samples"):
        settle(empty, True, True, True, 1.0, 1.0, 0.0)
    for kw, match in (
        ({"price": -1.0}, "price out of its domain: -1.0"),
        ({"strike": 0.0}, "strike out of its domain: 0.0"),
        ({"is_option": False, "avg_price": 0.0}, "avg_price out of its domain: 0.0"),
        ({"weight": math.inf}, "weight out of its domain: inf"),
    ):
        args: dict[str, Any] = {"price": 1.0, "is_option": True, "inverse": True, "is_call": True,
                "strike": 1.0, "weight": 1.0, "avg_price": 0.0} | kw  # fmt: skip
        with pytest.raises(ValueError, match=match):
            settlement_pnl(**args)
