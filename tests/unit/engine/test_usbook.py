"""The US margin of a book in the daemon (engine/risk/usbook.py) on the book of tests/us_book.py:
its Reg T lines against hand-computed figures (an iron condor's maximum potential loss less its
credit, Reg T's 50 % of covered stock), its portfolio margin against its minimum and the
condor's worst case, and its CME SPAN scenario losses against an independent Black-76
revaluation of the 16 scenarios; the margin payload's totals; a scaling property."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from engine import kernels
from engine.american import Accuracy, american
from engine.greeks import black76, bsm
from engine.instruments import Instrument
from engine.outputs import encode
from engine.risk import span, usbook
from engine.risk.report import RiskConfig, margin_payload
from engine.risk.scenarios import ScenarioBook
from engine.risk.usbook import Listed, UsMarginConfig, margin_class, us_margin
from engine.risk.usmargin import UnderlyingClass
from tests.unit.engine.test_state import build_book
from tests.us_book import CONDOR, ES, EW_PUT, RATE, SPY, SPY_CALL, V, mark, smile, us_book


def test_classes_come_from_the_venue_and_root() -> None:
    b = us_book()
    assert margin_class(b.get(CONDOR[0])) == UnderlyingClass.BROAD_INDEX
    assert margin_class(b.get("SPY")) == UnderlyingClass.EQUITY
    assert margin_class(b.get(SPY_CALL)) == UnderlyingClass.EQUITY
    assert margin_class(b.get("ESH5")) == UnderlyingClass.FUTURE
    assert margin_class(b.get(EW_PUT)) == UnderlyingClass.FUTURE
    assert margin_class(b.get("BTC-PERPETUAL")) is None


def test_reg_t_margins_the_condor_as_held_and_pairs_the_covered_calls() -> None:
    b = us_book()
    us = us_margin(b.portfolio.book_risk("us"), b.strategies.held(), UsMarginConfig(), V)
    assert us is not None
    assert us.classes == ["SPX", "SPY"]
    assert us.class_kinds == ["broad_index", "equity"]
    condor, covered = us.reg_t_lines
    # the condor: one spread line; its deposit is the maximum potential loss (100 points x 100
    # x 10 condors) less the credit taken in
    credit = 100.0 * 10 * (-mark(b, CONDOR[0]) + mark(b, CONDOR[1]) + mark(b, CONDOR[2])
                           - mark(b, CONDOR[3]))  # fmt: skip
    assert condor.rule == "spread"
    assert condor.strategy == "iron_condor:" + "/".join(CONDOR)
    assert condor.instruments == CONDOR
    assert_allclose(condor.deposit_usd, 100_000.0 - credit, rtol=1e-9)
    # 2000 shares cover the 20 calls: Reg T's 50 % of the stock, 25 % maintenance
    assert (covered.rule, covered.units, covered.shares) == ("covered", 20.0, 2000.0)
    assert_allclose(covered.requirement_usd, 0.5 * 2000 * SPY, rtol=1e-12)
    assert_allclose(covered.maintenance_usd, 0.25 * 2000 * SPY, rtol=1e-12)
    assert_allclose(covered.deposit_usd, 0.5 * 2000 * SPY - 2000 * mark(b, SPY_CALL), rtol=1e-9)
    assert_allclose(us.reg_t_requirement_usd, [condor.requirement_usd, covered.requirement_usd])


def test_without_the_strategy_the_flat_book_pairs_the_same_spreads() -> None:
    b = us_book()
    held = us_margin(b.portfolio.book_risk("us"), b.strategies.held(), UsMarginConfig(), V)
    flat = us_margin(b.portfolio.book_risk("us"), [], UsMarginConfig(), V)
    assert held is not None
    assert flat is not None
    assert all(x.strategy is None for x in flat.reg_t_lines)
    # two verticals (put and call) cost no less than the condor held as one
    assert flat.reg_t_deposit_usd[0] >= held.reg_t_deposit_usd[0] - 1e-6


def test_portfolio_margin_is_the_worst_loss_above_its_minimum() -> None:
    b = us_book()
    us = us_margin(b.portfolio.book_risk("us"), b.strategies.held(), UsMarginConfig(), V)
    assert us is not None
    # $0.375 x 100 per contract: 40 condor contracts, 20 SPY calls
    assert_allclose(us.pm_minimum_usd, [40 * 37.5, 20 * 37.5])
    condor_loss = us.reg_t_lines[0].deposit_usd
    spx_loss = us.pm_worst_loss_usd[0]
    assert 0.5 * condor_loss < spx_loss <= condor_loss  # at -8 % the condor nears its max loss
    assert us.pm_groups == [["SPX", "SPY"]]
    # the group: its worst point, SPY's gains offsetting SPX's losses at 90 %, never beyond
    # the classes alone
    assert us.pm_group_usd[0] <= sum(us.pm_class_usd) + 1e-6


def _span_oracle() -> np.ndarray:
    """The 16 SPAN scenario losses of -3 ESH5 and +2 EWZ4 5900 puts, by Black-76 directly:
    price moves of 0, +-1/3, +-2/3, +-1 of the 5 % scan (vol x 1.25 and x 0.75), then +-2
    scans at 35 %, one day later."""
    scan = 0.05 * ES
    t = (_expiry_ns(EW_PUT) - V) / (365.0 * 86_400e9)
    vol = smile(5900.0, ES)
    now = float(black76(False, ES, 5900.0, t, RATE, vol).price)
    moves = [0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3]
    out = []
    for i, m in enumerate(moves):
        f = ES + m / 3.0 * scan
        v = vol * (1.25 if i % 2 == 0 else 0.75)
        put = float(black76(False, f, 5900.0, t - 1 / 365, RATE, v).price)
        out.append(-(-3 * 50 * (f - ES) + 2 * 50 * (put - now)))
    for m in (2, -2):
        f = ES + m * scan
        put = float(black76(False, f, 5900.0, t - 1 / 365, RATE, vol).price)
        out.append(-0.35 * (-3 * 50 * (f - ES) + 2 * 50 * (put - now)))
    return np.array(out)


def _expiry_ns(name: str) -> int:
    inst = us_book().get(name)
    assert inst.expiry_ns is not None
    return inst.expiry_ns


def test_cme_span_is_an_independent_revaluation_of_the_16_scenarios() -> None:
    b = us_book()
    cfg = UsMarginConfig(es_short_option_minimum_usd=0)
    us = us_margin(b.portfolio.book_risk("us"), [], cfg, V)
    assert us is not None
    assert us.span is not None
    assert sorted(us.span.instruments) == sorted(["ESH5", EW_PUT])
    want = _span_oracle()
    assert_allclose(us.span.scenario_losses_usd, want, rtol=1e-9, atol=1e-6)
    assert_allclose(us.span.scan_risk_usd, max(want.max(), 0.0), rtol=1e-9)
    put_value = 2 * 50 * float(black76(False, ES, 5900.0, (_expiry_ns(EW_PUT) - V) / 31_536e12,
                                         RATE, smile(5900.0, ES)).price)  # fmt: skip
    assert_allclose(us.span.net_option_value_usd, put_value, rtol=1e-9)
    assert_allclose(us.span.total_usd, us.span.scan_risk_usd - put_value, rtol=1e-9)
    # both tiers are ESH5's: no intra-commodity spread
    assert us.span.spreads == 0.0


def test_the_margin_payload_carries_the_us_totals() -> None:
    b = us_book()
    p = margin_payload(b.portfolio.book_risk("us"), RiskConfig(), V, b.strategies.held())
    assert p.status == "ok"
    assert p.us is not None
    assert p.us.span is not None
    assert p.margin_reg_t == math.fsum(p.us.reg_t_requirement_usd)
    assert p.margin_reg_t_deposit == math.fsum(p.us.reg_t_deposit_usd)
    assert p.margin_us_portfolio == math.fsum(p.us.pm_group_usd)
    assert p.margin_cme_span == p.us.span.total_usd
    assert b"reg_t_lines" in encode(p)
    # US listed underlyings alone: the crypto exchanges' methods are not theirs
    crypto = (p.margin_im, p.margin_mm, p.margin_span, p.margin_standard_im, p.margin_savings)
    assert crypto == (None,) * 5
    assert (p.portfolio, p.span, p.standard) == (None, None, None)
    off = RiskConfig(us_margin=UsMarginConfig(enabled=False))
    assert margin_payload(b.portfolio.book_risk("us"), off, V).us is None


def test_a_book_mixing_us_and_crypto_underlyings_gets_both_margins() -> None:
    p, _ = build_book()  # alpha: BTC and SOL on Deribit, and SPX options
    got = margin_payload(p.book_risk("alpha"), RiskConfig(), V)
    assert got.margin_im is not None
    assert got.portfolio is not None
    assert got.margin_reg_t is not None


def test_the_us_listing_is_looked_up_once_a_row_for_every_book(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Books of one portfolio share their lookups: each instrument's row once, whatever the
    books holding it; a position of no known instrument (a what-if's new trade) is not
    listed."""
    p, _ = build_book()
    books = list(p.books_risk().values())
    asked: list[str] = []

    def counted(inst: Instrument) -> UnderlyingClass | None:
        asked.append(inst.name)
        return margin_class(inst)

    monkeypatch.setattr(usbook, "margin_class", counted)
    seen = Listed()
    for br in [*books, *books]:
        want = [margin_class(br.defs[r]) is not None for r in br.rows.tolist()]
        assert seen.of(br).tolist() == want, br.book
    assert sorted(asked) == sorted({n for br in books for n in br.instruments})
    alpha = p.book_risk("alpha")
    trade = replace(alpha, rows=np.where(np.arange(alpha.rows.size) == 0, -1, alpha.rows))
    assert not seen.of(trade)[0]


def test_a_book_of_no_us_instrument_has_no_us_margin() -> None:
    p, _ = build_book()
    br = p.book_risk("beta")
    assert us_margin(br, [], UsMarginConfig(), V) is None
    assert margin_payload(br, RiskConfig(), V).margin_reg_t is None


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 40))
def test_reg_t_and_portfolio_margin_scale_with_the_book(k: int) -> None:
    b1 = us_book(condors=1.0, shares=100.0)
    one = us_margin(b1.portfolio.book_risk("us"), b1.strategies.held(), UsMarginConfig(), V)
    b = us_book(condors=float(k), shares=100.0 * k)
    many = us_margin(b.portfolio.book_risk("us"), b.strategies.held(), UsMarginConfig(), V)
    assert one is not None
    assert many is not None
    # the SPX class (the condor, held as one) scales with the quantity
    assert_allclose(many.reg_t_deposit_usd[0], k * one.reg_t_deposit_usd[0], rtol=1e-9)
    assert_allclose(many.pm_worst_loss_usd[0], k * one.pm_worst_loss_usd[0], rtol=1e-9)


def test_american_rows_are_valued_american() -> None:
    b = us_book()
    br = b.portfolio.book_risk("us")
    spy_call = br.instruments.index(SPY_CALL)
    code = int(br.positions.american[spy_call])
    assert code != kernels.EUROPEAN  # SPY: American
    for name in CONDOR:  # SPXW: European
        assert br.positions.american[br.instruments.index(name)] == kernels.EUROPEAN
    # the SPY row as a deep in-the-money put of half a year: its early exercise is worth cents
    row = ScenarioBook._make(np.ascontiguousarray(a[spy_call : spy_call + 1])
                                  for a in br.positions)  # fmt: skip
    put = row._replace(is_call=np.array([False]), strike=np.array([700.0]), T=np.array([0.5]))
    value, delta = span.unit_value_delta(put)
    scheme: Accuracy = "accurate" if code == kernels.AMERICAN_ACCURATE else "fast"
    want = american(False, put.X, put.strike, put.T, put.r, put.q, put.sigma, accuracy=scheme)
    assert_allclose(value, want.price, rtol=1e-12)
    assert_allclose(delta, want.delta, rtol=1e-12)
    euro = bsm(False, put.X, put.strike, put.T, put.r, put.q, put.sigma)
    assert value[0] > float(euro.price[0]) + 0.05


def test_the_terminal_shows_a_us_book_s_margin_in_place_of_the_crypto_figures() -> None:
    from engine.runtime.panels import _margin  # the terminal view's margin table

    b = us_book()
    us = margin_payload(b.portfolio.book_risk("us"), RiskConfig(), V, b.strategies.held())
    crypto = margin_payload(build_book()[0].book_risk("beta"), RiskConfig(), V)
    assert us.margin_reg_t is not None
    only_us, _ = _margin([us], 5).fit(200)
    assert "Reg T $" in only_us.plain
    assert "initial $" not in only_us.plain  # null for a US book: not shown
    assert f"{us.margin_reg_t:,.0f}" in only_us.plain
    both, _ = _margin([us, crypto], 5).fit(200)
    assert "initial $" in both.plain
    assert "Reg T $" in both.plain
