"""The attribution and capital payloads (engine.risk.breakdown): they explain the VaR and ES the
``var`` payload publishes, their components add up, and the firm's allocation by book is each
book's capital."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import pytest

from engine.instruments import parse_deribit_name
from engine.kernels import KIND_OPTION
from engine.outputs import AttributionPayload, CapitalPayload, encode
from engine.risk.attribution import NO_STRATEGY, combine_books
from engine.risk.breakdown import (
    FIRM,
    AttributionConfig,
    attribution_payload,
    attribution_payloads,
)
from engine.risk.report import RiskConfig, var_payload
from engine.risk.scenarios import NO_PRICES
from engine.risk.strategies import Strategy, StrategyBook, parse_strategy
from tests.factories import fill
from tests.unit.engine.test_report import _history, same_figures
from tests.unit.engine.test_state import V, build_book, portfolio


def wire(p: AttributionPayload | CapitalPayload) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.json.decode(encode(p))
    return out


CFG = RiskConfig(
    mc_scenarios=2000,
    horizon_days=2.0,
    attribution=AttributionConfig(budget_usd={"alpha": 1e6}, top_positions=3),
)


def test_attribution_explains_the_published_var_and_es_of_every_method() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    h = _history(br.underlyings, 60)
    published = var_payload(br, h, CFG, V)
    got = wire(attribution_payload(br, h, CFG, V)[0])
    assert got["book"] == "alpha"
    assert got["positions"] == br.positions.kind.size
    for m in got["methods"]:
        name = m["method"]
        assert m["status"] == "ok"
        assert m["var"] == pytest.approx(getattr(published, f"var_{name}"), rel=1e-12), name
        assert m["es"] == pytest.approx(getattr(published, f"es_{name}"), rel=1e-12), name
        assert [b["by"] for b in m["breakdowns"]] == [
            "underlying",
            "expiry",
            "position",
            "strategy",
        ]
        for b in m["breakdowns"]:
            cv = sum(x["component_var"] for x in b["parts"])
            ce = sum(x["component_es"] for x in b["parts"])
            assert cv == pytest.approx(m["var"], rel=1e-9), (name, b["by"])
            assert ce == pytest.approx(m["es"], rel=1e-9), (name, b["by"])
        positions = m["breakdowns"][2]["parts"]
        assert len(positions) == 4
        assert positions[-1]["label"] == "other"
        assert sum(x["positions"] for x in positions) == br.positions.kind.size
        [rest] = m["breakdowns"][3]["parts"]  # no holdings: the book is the rest's whole
        assert rest["label"] == NO_STRATEGY
        assert rest["component_es"] == pytest.approx(m["es"], rel=1e-12)
        assert rest["quantity"] is None
        unds = m["breakdowns"][0]
        assert unds["diversification_es"] == pytest.approx(
            unds["standalone_es_sum"] - m["es"], rel=1e-12
        )
    assert len(got["correlations"]) == len(br.underlyings)
    assert got["correlations"][0][0] == pytest.approx(1.0)


def test_firm_capital_is_each_books_euler_share() -> None:
    p, _ = build_book()
    books = list(p.books_risk().values())
    firm = combine_books(books)
    h = _history(firm.underlyings, 60)
    out = dict(attribution_payloads(books, h, CFG, ["attribution", "capital"], V, V))
    keys = [k for k, _ in attribution_payloads(books, h, CFG, ["capital"], V, V)]
    assert keys == ["alpha", "beta"]
    firm_payload = next(x for k, x in attribution_payloads(books, h, CFG, ["attribution"], V, V)
                        if k == FIRM)  # fmt: skip
    assert isinstance(firm_payload, AttributionPayload)
    hist = next(m for m in firm_payload.methods if m.method == "historical")
    by_book = hist.breakdowns[0]
    assert by_book.by == "book"
    assert [x.label for x in by_book.parts] == ["alpha", "beta"]
    capital = [x for k, x in attribution_payloads(books, h, CFG, ["capital"], V, V)]
    assert all(isinstance(c, CapitalPayload) for c in capital)
    total = sum(c.capital_usd for c in capital if isinstance(c, CapitalPayload) and c.capital_usd)
    assert hist.es is not None
    assert total == pytest.approx(hist.es, rel=1e-9)
    alpha = capital[0]
    assert isinstance(alpha, CapitalPayload)
    assert alpha.capital_usd is not None
    assert alpha.capital_usd == pytest.approx(by_book.parts[0].component_es)
    assert alpha.capital_utilisation == pytest.approx(alpha.capital_usd / 1e6)
    assert alpha.standalone_usd == pytest.approx(by_book.parts[0].standalone_es)
    assert capital[1].capital_utilisation is None  # type: ignore[union-attr]
    assert set(out) >= {"alpha", "beta", FIRM}


def test_books_over_the_same_underlyings_share_revaluations_and_keep_their_figures() -> None:
    """Attributed together, books over the same underlyings share each instrument's value
    changes (one scenario set per method and underlyings); each book's payload is the one it
    gets alone: a copy of a book short and scaled, another with an option without a vol."""
    p, _ = build_book()
    alpha = p.book_risk("alpha")
    sigma = alpha.positions.sigma.copy()
    sigma[np.flatnonzero(alpha.positions.kind == KIND_OPTION)[0]] = math.nan
    books = [
        alpha,
        replace(alpha, book="short", positions=alpha.positions._replace(
            weight=alpha.positions.weight * -2.5)),
        replace(alpha, book="novol", positions=alpha.positions._replace(sigma=sigma)),
    ]  # fmt: skip
    h = _history(alpha.underlyings, 60)
    together = dict(attribution_payloads(books, h, CFG, ["attribution"], V, V))
    for br in books:
        alone = wire(attribution_payload(br, h, CFG, V)[0])
        assert same_figures(wire(together[br.book]), alone) == [], br.book
        published = var_payload(br, h, CFG, V)  # full revaluation, nothing shared
        for m in alone["methods"]:
            want = getattr(published, f"var_{m['method']}")
            assert m["var"] == pytest.approx(want, rel=1e-12), (br.book, m["method"])
    short = wire(together["short"])["methods"][2]
    assert short["var"] != wire(together["alpha"])["methods"][2]["var"]


def test_without_moves_each_method_says_why() -> None:
    p, _ = build_book()
    from engine.risk.history import MoveHistory

    got = wire(attribution_payload(p.book_risk("alpha"), MoveHistory(5), CFG, V)[0])
    assert {m["status"] for m in got["methods"]} == {"0 days of moves, need 2"}
    assert got["correlations"] == []


def test_a_book_with_no_prices_yet_says_so() -> None:
    """Before any market data, each method's attribution says the book has no prices yet
    (its components would all be 0, as its VaR was)."""
    p = portfolio()
    assert p.apply_fill(fill("BTC-27DEC24-60000-C", 10.0, 0.12, book="early"))
    p.cycle(V)
    got = wire(attribution_payload(p.book_risk("early"), _history(["BTC"], 30), CFG, V)[0])
    assert {m["status"] for m in got["methods"]} == {NO_PRICES}


def test_the_books_and_the_firms_breakdown_by_strategy() -> None:
    """alpha holds 4 of its 10 calls and 4,000 of its -30,000 USD of perpetual short in one
    holding; beta a holding of -6 calls over its lot of -4 (its rest: +2 calls). Each book's
    components by strategy sum to its totals, the firm's labels are book/..., and a holding's
    marginal per unit is its component over its quantity."""
    p, _ = build_book()
    held = StrategyBook(parse_deribit_name)
    text = "legs:BTC-27DEC24-60000-C*1/BTC-PERPETUAL*-1000"
    holdings = [held.holding("alpha", _parse(text)), held.holding("beta", _parse(CALL_ONLY))]
    holdings[0].add(4.0, None)
    holdings[1].add(6.0, None)
    books = list(p.books_risk().values())
    h = _history(combine_books(books).underlyings, 60)
    out = dict(attribution_payloads(books, h, CFG, ["attribution"], V, V, held.held()))
    for key in ("alpha", "beta", FIRM):
        payload = out[key]
        assert isinstance(payload, AttributionPayload)
        for m in payload.methods:
            by = m.breakdowns[-1]
            assert by.by == "strategy"
            assert m.es is not None
            assert sum(x.component_es or 0.0 for x in by.parts) == pytest.approx(m.es, rel=1e-9)
    alpha, firm = out["alpha"], out[FIRM]
    assert isinstance(alpha, AttributionPayload)
    assert isinstance(firm, AttributionPayload)
    parts = alpha.methods[0].breakdowns[-1].parts
    assert [x.label for x in parts] == [text, NO_STRATEGY]
    assert (parts[0].positions, parts[1].positions) == (2, alpha.positions)
    assert parts[0].quantity == 4.0
    assert parts[0].component_var is not None
    assert parts[0].marginal_var_per_unit == pytest.approx(parts[0].component_var / 4.0)
    assert parts[1].quantity is None
    assert parts[1].marginal_var_per_unit is None
    labels = [x.label for x in firm.methods[0].breakdowns[-1].parts]
    assert labels == [f"alpha/{text}", f"alpha/{NO_STRATEGY}", f"beta/{CALL_ONLY}",
                      f"beta/{NO_STRATEGY}"]  # fmt: skip
    positions = [x.label for x in firm.methods[0].breakdowns[3].parts]
    assert "beta/BTC-27DEC24-60000-C" in positions
    assert firm.methods[0].breakdowns[3].by == "position"
    # the firm's strategy parts refine its books: the book's own components, as the by-book
    by_book = {x.label: x.component_es for x in firm.methods[2].breakdowns[0].parts}
    for book in ("alpha", "beta"):
        mine = [x.component_es or 0.0 for x in firm.methods[2].breakdowns[-1].parts
                if x.label.startswith(f"{book}/")]  # fmt: skip
        assert sum(mine) == pytest.approx(by_book[book], rel=1e-9)


CALL_ONLY = "legs:BTC-27DEC24-60000-C*-1"


def _parse(text: str) -> Strategy:
    return parse_strategy(text, parse_deribit_name)
