"""Tests for engine.orderbook: Deribit's book notifications (snapshot, then changes chained by
change_id / prev_change_id) applied to a bounded book, gaps detected, and market orders walked
through hand-made books, their slippage against the mid worked by hand."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.orderbook import OrderBook, hedge_slippage, slippage_usd, walk

# Deribit's documented shape: [action, price, amount]; amounts of futures in USD
SNAPSHOT_BIDS = [
    ["new", 60_000.0, 10_000.0],
    ["new", 59_990.0, 20_000.0],
    ["new", 59_980.0, 5_000.0],
]
SNAPSHOT_ASKS = [["new", 60_010.0, 10_000.0], ["new", 60_020.0, 50_000.0]]


def snapshot(max_levels: int = 10) -> OrderBook:
    book = OrderBook(max_levels)
    assert book.apply("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, change_id=100, ts_ms=1)
    return book


def test_a_snapshot_then_changes_give_the_book() -> None:
    book = snapshot()
    assert book.bids == [(60_000.0, 10_000.0), (59_990.0, 20_000.0), (59_980.0, 5_000.0)]
    assert book.asks == [(60_010.0, 10_000.0), (60_020.0, 50_000.0)]
    assert book.mid == 60_005.0
    assert book.apply(
        "change",
        [["delete", 60_000.0, 0.0], ["change", 59_990.0, 25_000.0]],
        [["new", 60_005.0, 1_000.0]],
        change_id=101,
        prev_change_id=100,
    )
    assert book.bids == [(59_990.0, 25_000.0), (59_980.0, 5_000.0)]
    assert book.asks[0] == (60_005.0, 1_000.0)
    assert book.change_id == 101
    # a change to amount 0 removes the level too
    assert book.apply("change", [], [["change", 60_005.0, 0.0]], 102, 101)
    assert book.asks == [(60_010.0, 10_000.0), (60_020.0, 50_000.0)]


def test_a_gap_clears_the_book_until_the_next_snapshot() -> None:
    book = snapshot()
    assert not book.apply("change", [["new", 60_001.0, 1.0]], [], change_id=103, prev_change_id=101)
    assert (book.gaps, book.change_id, book.bids, book.asks) == (1, None, [], [])
    assert math.isnan(book.mid)
    # changes before a snapshot are not applied
    assert not book.apply("change", [["new", 60_001.0, 1.0]], [], change_id=104, prev_change_id=103)
    assert book.bids == []
    assert book.apply("snapshot", SNAPSHOT_BIDS, SNAPSHOT_ASKS, change_id=200)
    assert book.bids[0] == (60_000.0, 10_000.0)


def test_the_book_keeps_the_best_levels_only() -> None:
    book = snapshot(max_levels=2)
    assert book.bids == [(60_000.0, 10_000.0), (59_990.0, 20_000.0)]  # 59 980 dropped
    assert book.apply("change", [["new", 59_000.0, 1.0]], [], 101, 100)  # worse: dropped
    assert book.apply("change", [["new", 60_002.0, 3.0]], [], 102, 101)  # better: kept
    assert book.bids == [(60_002.0, 3.0), (60_000.0, 10_000.0)]


def test_bad_messages_are_refused() -> None:
    book = snapshot()
    with pytest.raises(ValueError, match="unknown book message type"):
        book.apply("delta", [], [], 1)
    with pytest.raises(ValueError, match="unknown book action"):
        book.apply("change", [["add", 1.0, 1.0]], [], 101, 100)
    with pytest.raises(ValueError, match="bad book level"):
        book.apply("change", [["new", 1.0, -1.0]], [], 101, 100)
    with pytest.raises(ValueError, match="at least 1"):
        OrderBook(0)


def test_walking_a_linear_book_worked_by_hand() -> None:
    asks = [(100.0, 1.0), (101.0, 2.0), (103.0, 5.0)]
    got = walk(asks, 2.5)
    # 1 at 100 and 1.5 at 101: 251.5 / 2.5
    assert got.average_price == pytest.approx(100.6, rel=1e-15)
    assert (got.filled, got.complete, got.levels) == (2.5, True, 2)
    # mid 99.5 (bid 99): 2.5 x (100.6 - 99.5)
    assert slippage_usd("buy", got.filled, got.average_price, 99.5, False) == pytest.approx(2.75)
    # a sell of 2 into bids 99 x 1, 98 x 4: 1 at 99, 1 at 98; 2 x (99.5 - 98.5)
    sold = walk([(99.0, 1.0), (98.0, 4.0)], 2.0)
    assert slippage_usd("sell", sold.filled, sold.average_price, 99.5, False) == pytest.approx(2.0)
    short = walk(asks, 10.0)
    assert (short.filled, short.complete, short.levels) == (8.0, False, 3)


def test_walking_an_inverse_book_worked_by_hand() -> None:
    book = snapshot()
    # buy 30 000 USD of BTC-PERPETUAL: 10 000 at 60 010, 20 000 at 60 020
    got = walk(book.asks, 30_000.0, inverse=True)
    coin = 10_000.0 / 60_010.0 + 20_000.0 / 60_020.0
    assert got.average_price == pytest.approx(30_000.0 / coin, rel=1e-15)
    # at the mid 60 005 the long is worth sum q_i (1/p_i - 1/m) coin: the cost is minus that in USD
    want = -sum(
        q * (1.0 / p - 1.0 / 60_005.0) for q, p in ((10_000.0, 60_010.0), (20_000.0, 60_020.0))
    )
    want *= 60_005.0
    assert slippage_usd("buy", got.filled, got.average_price, book.mid, True) == pytest.approx(
        want, rel=1e-12
    )
    # 10 000 x 5 / 60 010 + 20 000 x 15 / 60 020 = 0.8332 + 4.9983 USD
    assert want == pytest.approx(5.8315, abs=1e-4)


@given(
    st.lists(st.tuples(st.floats(1.0, 1e5), st.floats(1e-3, 1e4)), min_size=1, max_size=20),
    st.floats(1e-3, 1e5),
    st.booleans(),
)
def test_a_walk_pays_between_the_best_and_worst_level_and_never_less_than_the_mid(
    raw: list[tuple[float, float]], amount: float, inverse: bool
) -> None:
    book = OrderBook(50)
    asks = sorted(dict(raw).items())
    bid = asks[0][0] * 0.99
    book.apply("snapshot", [["new", bid, 1.0]], [["new", p, a] for p, a in asks], 1)
    got = walk(book.asks, amount, inverse)
    assert asks[0][0] * (1 - 1e-12) <= got.average_price <= asks[got.levels - 1][0] * (1 + 1e-12)
    assert got.filled == pytest.approx(min(amount, sum(a for _, a in asks)), rel=1e-9)
    assert slippage_usd("buy", got.filled, got.average_price, book.mid, inverse) >= 0.0


def test_the_slippage_of_a_suggested_hedge_worked_by_hand() -> None:
    book = snapshot()
    # sell 25 000 USD of BTC-PERPETUAL (a hedge of -2 500 contracts of 10 USD): 10 000 at
    # 60 000, 15 000 at 59 990; against the mid 60 005 a short at p costs q (m/p - 1) USD
    got = hedge_slippage(book, -25_000.0, inverse=True)
    want = 10_000.0 * (60_005.0 / 60_000.0 - 1.0) + 15_000.0 * (60_005.0 / 59_990.0 - 1.0)
    assert want == pytest.approx(4.5840, abs=1e-4)
    assert got.slippage_usd == pytest.approx(want, rel=1e-12)
    assert (got.side, got.amount, got.filled, got.complete, got.levels) == (
        "sell",
        25_000.0,
        25_000.0,
        True,
        2,
    )
    assert got.mid == 60_005.0
    # more than the book holds: what it holds, marked incomplete
    big = hedge_slippage(book, 1e6, inverse=True)
    assert (big.side, big.filled, big.complete) == ("buy", 60_000.0, False)
    # no hedge, no cost; an empty book, no figure
    assert hedge_slippage(book, 0.0, inverse=True).slippage_usd == 0.0
    assert math.isnan(hedge_slippage(OrderBook(), 1.0, inverse=False).slippage_usd)
