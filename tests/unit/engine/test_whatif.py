"""What-if (engine.risk.whatif): the incremental VaR, ES and margin of proposed trades equal
those of the portfolio with the trades actually filled (an independent path through the
engine's fills, reprice and copies)."""

from __future__ import annotations

import pytest

from engine.outputs import VAR_METHODS, Trade
from engine.risk.attribution import combine_books
from engine.risk.breakdown import FIRM
from engine.risk.report import RiskConfig, margin_payload, var_payload
from engine.risk.whatif import Added, what_if
from engine.state import Portfolio
from tests.factories import fill, tick
from tests.unit.engine.test_report import _history
from tests.unit.engine.test_state import FRESH, V, build_book

CFG = RiskConfig(mc_scenarios=500)
TRADES = [
    Trade(book="alpha", instrument="BTC-27DEC24-60000-C", quantity=-10.0),
    Trade(book="alpha", instrument="ETH-27SEP24-3000-P", quantity=15.0),  # a new underlying
    Trade(book="gamma", instrument="BTC-PERPETUAL", quantity=1000.0),  # a new book
]


H = _history(["BTC", "ETH", "SOL", "SPX"], 60)


def book_with_eth_index() -> Portfolio:
    p, _ = build_book()
    assert p.apply_tick(tick("eth_usd", 3_400.0, ts_ns=FRESH))
    p.cycle(V)
    return p


def added(p: Portfolio, trades: list[Trade]) -> Added:
    """The trades priced as the daemon prices them."""
    insts = [p.registry.get(t.instrument) for t in trades]
    return Added(
        trades,
        p.priced([t.instrument for t in trades]),
        [i.underlying if i else "" for i in insts],
        [p.index_price(i.index) if i else float("nan") for i in insts],
    )


def test_what_if_is_the_book_with_the_trades_filled() -> None:
    p, filled = book_with_eth_index(), book_with_eth_index()
    books = p.books_risk()
    got = what_if(books, added(p, TRADES), H, CFG, V, V)
    for t in TRADES:
        assert filled.apply_fill(fill(t.instrument, t.quantity, 1.0, book=t.book))
    filled.cycle(V)
    after = filled.books_risk()
    assert [s.book for s in got.scopes] == ["alpha", "gamma", FIRM]
    wants = [
        (books["alpha"], after["alpha"]),
        (None, after["gamma"]),
        (combine_books(list(books.values())), combine_books(list(after.values()))),
    ]
    for scope, (before, now) in zip(got.scopes, wants, strict=True):
        v1 = var_payload(now, H, CFG, V)
        v0 = var_payload(before, H, CFG, V) if before is not None else None
        for r, m in zip(scope.risk, VAR_METHODS, strict=True):
            assert r.status == "ok"
            want_after = getattr(v1, f"var_{m}")
            want_before = 0.0 if v0 is None else getattr(v0, f"var_{m}")
            assert r.var_after == pytest.approx(want_after, rel=1e-9), (scope.book, m)
            assert r.incremental_var == pytest.approx(want_after - want_before, rel=1e-9)
            want_es = getattr(v1, f"es_{m}") - (0.0 if v0 is None else getattr(v0, f"es_{m}"))
            assert r.incremental_es == pytest.approx(want_es, rel=1e-9)
        m1 = margin_payload(now, CFG, V).margin_im
        m0 = margin_payload(before, CFG, V).margin_im if before is not None else 0.0
        assert m1 is not None
        assert m0 is not None
        assert scope.incremental_margin_im == pytest.approx(m1 - m0, rel=1e-9)
    assert got.unpriced == []


def test_an_unknown_instrument_is_listed_and_left_out() -> None:
    p = book_with_eth_index()
    trades = [Trade(book="alpha", instrument="BTC-27DEC24-99999-C", quantity=1.0)]
    got = what_if(p.books_risk(), added(p, trades), H, CFG, V, V)
    assert got.unpriced == ["BTC-27DEC24-99999-C"]
    assert all(r.incremental_var == 0.0 for r in got.scopes[0].risk)
