"""The attribution and capital payloads (engine.risk.breakdown): they explain the VaR and ES the
``var`` payload publishes, their components add up, and the firm's allocation by book is each
book's capital."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from engine.outputs import AttributionPayload, CapitalPayload, encode
from engine.risk.attribution import combine_books
from engine.risk.breakdown import (
    FIRM,
    AttributionConfig,
    attribution_payload,
    attribution_payloads,
)
from engine.risk.report import RiskConfig, var_payload
from tests.unit.engine.test_report import _history
from tests.unit.engine.test_state import V, build_book


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
        assert [b["by"] for b in m["breakdowns"]] == ["underlying", "expiry", "position"]
        for b in m["breakdowns"]:
            cv = sum(x["component_var"] for x in b["parts"])
            ce = sum(x["component_es"] for x in b["parts"])
            assert cv == pytest.approx(m["var"], rel=1e-9), (name, b["by"])
            assert ce == pytest.approx(m["es"], rel=1e-9), (name, b["by"])
        positions = m["breakdowns"][2]["parts"]
        assert len(positions) == 4
        assert positions[-1]["label"] == "other"
        assert sum(x["positions"] for x in positions) == br.positions.kind.size
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


def test_without_moves_each_method_says_why() -> None:
    p, _ = build_book()
    from engine.risk.history import MoveHistory

    got = wire(attribution_payload(p.book_risk("alpha"), MoveHistory(5), CFG, V)[0])
    assert {m["status"] for m in got["methods"]} == {"0 days of moves, need 2"}
    assert got["correlations"] == []
