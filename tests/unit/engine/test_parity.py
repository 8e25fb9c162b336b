"""The forwards payloads (engine/risk/parity.py) on the book of tests/us_book.py: each chain's
implied forward against the closed form of its quotes (S e^((r - q) T) for SPX and SPY, the
future's price for the E-mini options), the dividends recovered, chains grouped by what they
are priced on, expired expiries left out; the fixed betas of the SPX-equivalent delta
(engine/risk/crossreport.py)."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.curves import ZeroCurve
from engine.instruments import Instrument
from engine.outputs import ForwardsPayload
from engine.risk.crosshedge import CrossHedgeConfig
from engine.risk.crossreport import CrossInputs, crosshedge_payload
from engine.risk.history import MoveHistory
from engine.risk.parity import ForwardsConfig, forward_inputs, forwards_payloads
from engine.risk.report import RiskConfig
from engine.state import AGG_FIELDS
from tests.us_book import ES, RATE, SPX, SPX_Q, SPY, SPY_Q, USBook, V, us_book

CURVES = {"SPX": ZeroCurve.flat(RATE), "SPY": ZeroCurve.flat(RATE)}


def _price(inst: Instrument) -> float:
    """The book's prices of the SPX index, SPY and ESH5."""
    return {"SPX": SPX, "SPY": SPY, "ESH5": ES}[inst.name]


def _payloads(b: USBook, now_ns: int = V) -> dict[str, ForwardsPayload]:
    inputs = forward_inputs(b.portfolio.chains(), b.registry.get, _price)
    return dict(forwards_payloads(inputs, CURVES, ForwardsConfig(enabled=True), now_ns, now_ns))


def test_each_chain_implies_its_forward_and_dividends() -> None:
    got = _payloads(us_book())
    assert sorted(got) == ["ESH5", "SPX", "SPY"]
    for name, s, q in (("SPX", SPX, SPX_Q), ("SPY", SPY, SPY_Q)):
        p = msgspec.to_builtins(got[name])
        (t,) = p["tte_years"]
        assert_allclose(p["forward"], [s * math.exp((RATE - q) * t)], rtol=1e-9)
        assert_allclose(p["dividend_yield"], [q], atol=1e-7)
        assert_allclose(p["dividend_pv"], [s - math.exp(-RATE * t) * p["forward"][0]], rtol=1e-9)
        assert_allclose(p["discount_factor"], [math.exp(-RATE * t)], rtol=1e-12)
        assert p["rate"] == [RATE]
        assert p["status"] == "ok"
        assert p["strikes_used"][0] >= 5
    assert msgspec.to_builtins(got["SPY"])["exercise"] == "american"
    es = msgspec.to_builtins(got["ESH5"])
    assert_allclose(es["forward"], [ES], rtol=1e-9)  # the future's price: Black-76 parity
    assert es["dividend_yield"] == [None]
    assert es["spot_index"] == "ESH5"
    assert es["status"].startswith("ok: options on the future")


def test_expired_expiries_are_left_out() -> None:
    b = us_book()
    late = V + 30 * 86_400 * 1_000_000_000  # after every expiry of the book
    assert _payloads(b, late) == {}


def test_fixed_betas_give_the_spx_equivalent_delta_without_history() -> None:
    b = us_book()
    br = b.portfolio.book_risk("us")
    cfg = RiskConfig(cross_hedge=CrossHedgeConfig(benchmark="SPX", betas={"SPY": 1.0}))
    inputs = CrossInputs(hedges={}, benchmark="SPX", benchmark_price=SPX, levels=[])
    p = crosshedge_payload(br, inputs, MoveHistory(10), cfg, V)
    assert p.beta == [1.0, 1.0]
    usd = br.figures[:, AGG_FIELDS.index("delta_usd")]
    # SPX-equivalent delta: delta_usd x beta / S_SPX (SPX units: USD per SPX point)
    assert_allclose(np.array(p.beta_delta, dtype=np.float64), usd / SPX, rtol=1e-12)
    assert p.beta_delta_total == pytest.approx(float(usd.sum() / SPX), rel=1e-12)
    spy_delta = br.figures[1, AGG_FIELDS.index("delta")]
    assert p.beta_delta[1] == pytest.approx(spy_delta * SPY / SPX, rel=1e-9)
    # without a fixed beta for SPY and without history: no betas, and the status says why
    bare = RiskConfig(cross_hedge=CrossHedgeConfig(benchmark="SPX"))
    q = crosshedge_payload(br, inputs, MoveHistory(10), bare, V)
    assert q.beta == [None, None]
    assert q.beta_delta_total is None
    assert "beta" in q.status


def test_a_beta_must_be_finite() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"betas\.SPY"):
        msgspec.convert({"cross_hedge": {"betas": {"SPY": math.inf}}}, RiskConfig)
