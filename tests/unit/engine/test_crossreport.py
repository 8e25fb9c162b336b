"""The crosshedge and cpt payloads (engine/risk/crossreport.py) against the pure functions, on
the mixed book of the state tests and a window of recorded moves."""

from __future__ import annotations

import numpy as np
import pytest

from engine.instruments import InstrumentRegistry
from engine.risk import cpt, crosshedge, var
from engine.risk.cpt import CptConfig
from engine.risk.crosshedge import CrossHedgeConfig
from engine.risk.crossreport import cpt_payload, cross_inputs, cross_payloads
from engine.risk.history import MoveHistory
from engine.risk.report import RiskConfig
from engine.risk.scenarios import scenario_pnl
from engine.state import AGG_FIELDS
from tests.unit.engine.test_report import _history, encodes
from tests.unit.engine.test_state import V, build_book

REG = InstrumentRegistry()
CFG = RiskConfig(
    cross_hedge=CrossHedgeConfig(hedge={"*": "BTC-PERPETUAL"}, benchmark="btc_usd", min_days=20),
    cpt=CptConfig(enabled=True),
)


def test_crosshedge_payload_is_the_pure_functions_on_the_window() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")  # BTC, SOL, SPX
    h = _history(br.underlyings, 60)
    inputs = cross_inputs(CFG, p, REG.get)
    assert inputs.hedges["BTC-PERPETUAL"].notional_usd == 10.0  # Deribit's inverse contract
    assert (inputs.benchmark, inputs.benchmark_price) == ("BTC", 60_000.0)
    # the hedge's and the benchmark's index levels, for the window to record even unheld
    assert inputs.levels == [("BTC", 60_000.0), ("BTC", 60_000.0)]
    ((key, payload),) = cross_payloads([br], inputs, h, CFG, ["crosshedge"], V)
    got = encodes(payload)
    assert key == "alpha"
    assert got["status"] == "ok"
    assert got["history_days"] == 60
    ret, dvol = h.moves(br.underlyings)
    want = crosshedge.min_variance_hedge(
        scenario_pnl(br.positions, ret, dvol, 1.0).pnl,
        crosshedge.contract_pnl(ret[:, 0], 10.0),
    )
    hedge = got["hedge"]
    assert hedge["contracts_exact"] == want.contracts_exact
    assert hedge["contracts"] == want.contracts
    assert hedge["r2"] == want.r2
    assert hedge["residual_vol_usd"] == want.residual_vol
    beta = crosshedge.betas(ret, ret[:, 0])
    assert got["beta"] == beta.tolist()
    assert got["beta"][0] == pytest.approx(1.0, rel=1e-12)
    # the delta at the price it was taken against (an option's forward): delta_usd / delta
    d = br.figures[:, AGG_FIELDS.index("delta")]
    g = br.figures[:, AGG_FIELDS.index("gamma")]
    s = br.figures[:, AGG_FIELDS.index("delta_usd")] / d
    bd, bg = crosshedge.beta_weighted(d, g, s, beta, 60_000.0)
    assert got["beta_delta"] == pytest.approx(bd.tolist(), rel=1e-12)
    assert got["delta"] == d.tolist()
    # and the gamma at the prices its cash gamma was taken against: S² = 100 cash_gamma / gamma
    s2 = np.sqrt(100.0 * br.figures[:, AGG_FIELDS.index("cash_gamma")] / g)
    _, bg = crosshedge.beta_weighted(d, g, s2, beta, 60_000.0)
    assert got["beta_gamma"] == pytest.approx(bg.tolist(), rel=1e-12)
    assert got["beta_delta_total"] == pytest.approx(float(bd.sum()), rel=1e-12)
    assert got["beta_delta_usd"] == pytest.approx(60_000.0 * float(bd.sum()), rel=1e-12)
    assert got["units"]["beta_delta"].startswith("benchmark units")


def test_crosshedge_payload_with_too_few_days_says_so() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    inputs = cross_inputs(CFG, p, REG.get)
    ((_, payload),) = cross_payloads([br], inputs, _history(br.underlyings, 5), CFG,
                                     ["crosshedge"], V)  # fmt: skip
    got = encodes(payload)
    assert got["hedge"] is None
    assert got["status"] == (
        "5 common days of moves, need 20; beta: 5 common days of moves with BTC, need 20"
    )
    assert got["beta_delta_total"] is None
    assert got["beta"] == [None, None, None]


def test_cpt_payload_values_the_historical_scenarios() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    h = _history(br.underlyings, 60)
    got = encodes(cpt_payload(br, h, CFG, V))
    ret, dvol = h.moves(br.underlyings)
    pnl = var.historical(br.positions, ret, dvol, 0.99, 0.975, 1.0)[1].pnl
    assert got["status"] == "ok"
    assert got["scenarios"] == 60
    assert got["value"] == cpt.cpt_value(pnl)
    assert got["certainty_equivalent"] == cpt.certainty_equivalent(got["value"])
    assert got["es"] == var.empirical(pnl, 0.99, 0.975).es
    assert got["mean_pnl"] == pytest.approx(float(np.mean(pnl)), rel=1e-15)
    assert got["params"] == {"alpha": 0.88, "beta": 0.88, "loss_aversion": 2.25,
                             "gamma": 0.61, "delta": 0.69}  # fmt: skip


def test_cpt_payload_over_monte_carlo_draws() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    h = _history(br.underlyings, 60)
    cfg = RiskConfig(mc_scenarios=300, cpt=CptConfig(enabled=True, method="monte_carlo"))
    got = encodes(cpt_payload(br, h, cfg, V))
    res = var.monte_carlo(br.positions, h.covariance(br.underlyings), 300, cfg.mc_seed)[1]
    assert got["scenarios"] == 300
    assert got["value"] == cpt.cpt_value(res.pnl)


def test_cpt_payload_without_moves_says_why() -> None:
    p, _ = build_book()
    got = encodes(cpt_payload(p.book_risk("alpha"), MoveHistory(5), CFG, V))
    assert (got["value"], got["es"], got["status"]) == (None, None, "0 days of moves, need 2")


def test_bad_cpt_parameters_are_refused() -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError, match="gamma"):
        msgspec.convert({"cpt": {"gamma": 0.1}}, RiskConfig)
    with pytest.raises(msgspec.ValidationError, match="alpha"):
        msgspec.convert({"cpt": {"alpha": 1.5}}, RiskConfig)
