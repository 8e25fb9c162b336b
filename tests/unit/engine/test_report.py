"""Tests for the daemon's risk inputs and payloads: engine.state.Portfolio.book_risk,
engine.risk.history and engine.risk.report.

A book's copy for full revaluation must agree with the exposures the engine publishes: the
first and second derivatives of its scenario P&L in each underlying's log-return are the
book's ``delta_usd`` and ``100 x cash_gamma`` (finite differences). The window of moves is
checked against moves computed here by hand, the payloads against the pure functions.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import replace
from typing import Any

import msgspec
import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.events import Quote
from engine.instruments import InstrumentRegistry
from engine.kernels import KIND_OPTION
from engine.outputs import Payload, encode
from engine.risk import margin, skew, var
from engine.risk.history import MoveHistory
from engine.risk.report import (
    SMILE_POINTS,
    HedgeInputs,
    RiskConfig,
    StrategyHolding,
    hedge_payloads,
    margin_payload,
    margin_payloads,
    risk_payloads,
    skew_payloads,
    strategy_payload,
    stress_payload,
    var_payload,
)
from engine.risk.scenarios import NO_PRICES, scenario_pnl
from engine.risk.strategies import parse_strategy, payoff_diagram
from engine.state import AGG_FIELDS, Portfolio
from tests.factories import fill, quote, tick
from tests.unit.engine.test_state import (
    DEC27,
    DEC27_LABEL,
    FRESH,
    SPX,
    V,
    build_book,
    portfolio,
    years,
)

D0 = dt.date(2024, 6, 1)


def encodes(payload: Payload) -> dict[str, Any]:
    """The payload's wire fields (NaN and inf kept, to check them), after checking that it
    encodes as the Redis sink encodes it, every number a Python number (no enc_hook needed)."""
    msgspec.json.encode(payload)  # no numpy scalar or array slipped in
    assert msgspec.json.decode(encode(payload), type=type(payload)) is not None
    fields: dict[str, Any] = msgspec.to_builtins(payload)
    return fields


def day(n: int) -> dt.date:
    return D0 + dt.timedelta(days=n)


# ----------------------------------------------------------------- book_risk
def test_book_risk_copies_the_open_positions_with_their_underlyings() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    assert br.underlyings == ["BTC", "SOL", "SPX"]
    assert br.valuation_ns == V
    assert sorted(br.instruments) == sorted(
        [
            "BTC-27DEC24-60000-C",
            "BTC-27DEC24-50000-P",
            "BTC-27DEC24",
            "BTC-PERPETUAL",
            "BTC_USDC-PERPETUAL",
            "BTC_USDC",
            "SOL_USDC-27SEP24-150-C",
            SPX,
        ]
    )
    und = dict(zip(br.instruments, br.positions.und.tolist(), strict=True))
    assert und["SOL_USDC-27SEP24-150-C"] == 1
    assert und[SPX] == 2
    weight = dict(zip(br.instruments, br.positions.weight.tolist(), strict=True))
    assert weight[SPX] == 300.0  # 3 contracts x 100
    assert weight["BTC-PERPETUAL"] == -30_000.0  # USD notional
    assert_allclose(br.prices, [60_000.0, 140.0, 5_460.0], rtol=0, atol=0)
    assert p.books() == ["alpha", "beta"]
    with pytest.raises(KeyError):
        p.book_risk("nobody")


def test_book_risk_revalues_to_the_published_delta_and_gamma() -> None:
    """Central differences of the full revaluation in each log-return r (the price is S e^r):
    the first is delta_usd, the second Gamma S^2 + Delta S = 100 x cash_gamma + delta_usd of
    the book's exposures."""
    p, _ = build_book()
    br = p.book_risk("alpha")
    n_und = len(br.underlyings)
    h = 1e-4
    for u in range(n_und):
        ret = np.zeros((3, n_und))
        ret[0, u], ret[1, u] = h, -h
        res = scenario_pnl(br.positions, ret, np.zeros_like(ret), 0.0)
        up, down, flat = res.pnl
        assert flat == 0.0
        assert res.excluded.size == 0
        delta_usd = br.figures[u, AGG_FIELDS.index("delta_usd")]
        gamma_usd = 100.0 * br.figures[u, AGG_FIELDS.index("cash_gamma")] + delta_usd
        assert (up - down) / (2 * h) == pytest.approx(delta_usd, rel=1e-6)
        assert (up + down) / (h * h) == pytest.approx(gamma_usd, rel=1e-3, abs=1e-3)


# ----------------------------------------------------------------- history
def test_moves_are_log_returns_and_relative_vol_moves_on_common_days() -> None:
    h = MoveHistory(days=3)
    h.record(day(0), "BTC", 100.0, 0.50)
    h.record(day(1), "BTC", 110.0, 0.55)
    h.record(day(1), "BTC", 105.0, 0.60)  # the same day again: replaces
    h.record(day(2), "BTC", 99.0, None)
    h.record(day(3), "BTC", 90.0, 0.40)  # the window keeps 3 levels: day 0 leaves
    h.record(day(2), "ETH", 10.0, 0.8)
    h.record(day(3), "ETH", 11.0, 1.0)
    ret, dvol = h.moves(["BTC"])
    assert_allclose(ret[:, 0], [math.log(99 / 105), math.log(90 / 99)], rtol=1e-15)
    assert_allclose(dvol[:, 0], [0.0, 0.0], atol=0)  # a move with an unknown vol: 0
    ret, dvol = h.moves(["ETH", "BTC"])  # only day 3 has moves of both
    assert_allclose(ret, [[math.log(1.1), math.log(90 / 99)]], rtol=1e-15)
    assert_allclose(dvol, [[0.25, 0.0]], rtol=1e-15)
    assert h.moves(["SOL"])[0].shape == (0, 1)
    assert h.last_day("BTC") == day(3)
    assert h.last_day("SOL") is None


def test_moves_are_kept_until_the_next_record_and_each_call_gets_its_own() -> None:
    h = _two_levels()
    ret, _ = h.moves(["X"])
    ret[0, 0] = 99.0  # a caller's own copy: the next call does not see it
    assert h.moves(["X"])[0].tolist() == [[math.log(2.0)]]
    h.record(day(2), "X", 4.0, None)  # a new day: the moves again
    assert h.moves(["X"])[0].tolist() == [[math.log(2.0)], [math.log(2.0)]]


def test_covariance_is_zero_mean() -> None:
    h = MoveHistory(days=10)
    prices = [100.0, 101.0, 99.0, 102.0]
    vols = [0.5, 0.55, 0.5, 0.5]
    for i, (px, v) in enumerate(zip(prices, vols, strict=True)):
        h.record(day(i), "X", px, v)
    r = np.log(np.array(prices[1:]) / prices[:-1])
    dv = np.array(vols[1:]) / vols[:-1] - 1.0
    cov = h.covariance(["X"])
    assert_allclose(
        cov,
        [[r @ r / 3, r @ dv / 3], [dv @ r / 3, dv @ dv / 3]],
        rtol=1e-14,
    )
    with pytest.raises(ValueError, match="1 common days"):
        _two_levels().covariance(["X"])


def _two_levels() -> MoveHistory:
    h = MoveHistory(3)
    h.record(day(0), "X", 1.0, None)
    h.record(day(1), "X", 2.0, None)
    return h


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("date,underlying,price\n", "header"),
        ("date,underlying,price,vol\n2024-06-01,BTC,abc,\n", "line 2"),
        ("date,underlying,price,vol\n2024-06-01,BTC,-1,\n", "line 2: .*price"),
        ("date,underlying,price,vol\n2024-06-01,BTC,1,0\n", "line 2: .*vol"),
        ("date,underlying,price,vol\n2024-13-01,BTC,1,\n", "line 2"),
        ("date,underlying,price,vol\n2024-06-01,,1,\n", "line 2"),
    ],
)
def test_a_bad_seed_file_names_its_line(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MoveHistory(10).load_csv(text, "seed.csv")


def test_seed_file_rows_load_in_date_order() -> None:
    h = MoveHistory(10)
    n = h.load_csv(
        "# comment\ndate,underlying,price,vol\n2024-06-02,BTC,110,0.5\n2024-06-01,BTC,100,\n"
    )
    assert n == 2
    assert_allclose(h.moves(["BTC"])[0], [[math.log(1.1)]], rtol=1e-15)
    with pytest.raises(ValueError, match="before the last"):
        h.record(day(0), "BTC", 1.0, None)
    with pytest.raises(ValueError, match="days must be >= 2"):
        MoveHistory(1)


# ----------------------------------------------------------------- payloads
def _history(underlyings: list[str], n_days: int, seed: int = 7) -> MoveHistory:
    rng = np.random.default_rng(seed)
    h = MoveHistory(n_days + 1)
    level = dict.fromkeys(underlyings, 100.0)
    vol = dict.fromkeys(underlyings, 0.5)
    for i in range(n_days + 1):
        for u in underlyings:
            h.record(day(i), u, level[u], vol[u])
            level[u] *= math.exp(rng.normal(0.0, 0.03))
            vol[u] *= 1.0 + rng.normal(0.0, 0.05)
    return h


def test_var_payload_holds_every_method_as_the_pure_functions_give_it() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    h = _history(br.underlyings, 60)
    cfg = RiskConfig(mc_scenarios=500, method="monte_carlo", horizon_days=2.0)
    got = encodes(var_payload(br, h, cfg, V + 5))
    ret, dvol = h.moves(br.underlyings)
    cov = h.covariance(br.underlyings)
    d = br.figures[:, AGG_FIELDS.index("delta_usd")]
    g = 100.0 * br.figures[:, AGG_FIELDS.index("cash_gamma")] + d
    want = {
        "delta_normal": var.delta_normal(d, cov[:3, :3], 0.99, 0.975, 2.0),
        "delta_gamma": var.delta_gamma(d, g, cov[:3, :3], 0.99, 0.975, 2.0),
        "historical": var.historical(br.positions, ret, dvol, 0.99, 0.975, 2.0)[0],
        "monte_carlo": var.monte_carlo(br.positions, cov, 500, cfg.mc_seed, 0.99, 0.975, 2.0)[0],
    }
    for m, w in want.items():
        assert got[f"var_{m}"] == w.var, m
        assert got[f"es_{m}"] == w.es, m
        assert got["status"][m] == "ok"
    assert (got["var"], got["es"]) == (want["monte_carlo"].var, want["monte_carlo"].es)
    assert got["history_days"] == 60
    assert got["book"] == "alpha"
    assert got["ts_ns"] == V + 5
    assert got["units"]["var"] == "USD"
    assert got["var_delta_normal"] > 0.0


def test_books_over_the_same_underlyings_share_one_revaluation_with_the_same_figures() -> None:
    """risk_payloads' var payloads (the books grouped by their underlyings, each group's
    historical and Monte Carlo scenarios revalued at once) equal each book's alone."""
    p, _ = build_book()
    for k, (name, qty) in enumerate((("gamma", 3.0), ("delta", -7.0), ("omega", 2.0))):
        assert p.apply_fill(fill("ETH-27SEP24-3000-P", qty, 0.05, book=name))
        if k < 2:  # gamma and delta over BTC and ETH, as beta
            assert p.apply_fill(fill("BTC-27DEC24-60000-C", qty * 2, 0.14, book=name))
    p.cycle(V)
    books = list(p.books_risk().values())
    assert len({tuple(br.underlyings) for br in books}) == 3  # alpha; beta, gamma, delta; omega
    h = _history(sorted({u for br in books for u in br.underlyings}), 40)
    cfg = RiskConfig(mc_scenarios=400, horizon_days=2.0)
    grouped = dict(risk_payloads(books, {}, [], h, cfg, ["var"], V + 5, V))
    for br in books:
        alone = encodes(var_payload(br, h, cfg, V + 5))
        got = encodes(grouped[br.book])
        assert got["status"] == dict.fromkeys(got["status"], "ok")
        for m in ("historical", "monte_carlo"):
            for f in (f"var_{m}", f"es_{m}"):
                assert got[f] == pytest.approx(alone[f], rel=1e-12, abs=1e-9), (br.book, f)


def test_var_payload_without_moves_says_why() -> None:
    p, _ = build_book()
    got = encodes(var_payload(p.book_risk("alpha"), MoveHistory(5), RiskConfig(), V))
    assert got["var"] is None
    assert got["var_historical"] is None
    assert got["status"]["historical"] == "0 days of moves, need 2"


def test_var_payload_of_a_book_with_no_prices_yet_says_so() -> None:
    """A book held before any market data came (a start before the first quotes): its
    positions add nothing to any revaluation, and every method gave it a VaR of 0 marked ok.
    Now every method's figures are null, and the status says why, on the book's own scenarios
    and on a common set alike; once priced, the same book is valued."""
    p = portfolio()
    assert p.apply_fill(fill("BTC-27DEC24-60000-C", 10.0, 0.12, book="early"))
    assert p.apply_fill(fill("BTC-PERPETUAL", -30_000.0, 60_500.0, book="early"))
    p.cycle(V)
    h = _history(["BTC"], 30)
    for cfg in (
        RiskConfig(mc_scenarios=200),
        RiskConfig(mc_scenarios=200, scenario_underlyings=("BTC",)),
    ):
        got = encodes(var_payload(p.book_risk("early"), h, cfg, V))
        assert got["positions"] == 2
        assert got["status"] == dict.fromkeys(got["status"], NO_PRICES)
        assert [got[f"var_{m}"] for m in got["status"]] == [None] * 4
        assert (got["var"], got["es"]) == (None, None)
    p.apply_tick(tick("btc_usd", 60_000.0, ts_ns=FRESH))
    p.apply_tick(tick("BTC-PERPETUAL", 60_100.0, ts_ns=FRESH))
    p.apply_quote(quote("BTC-27DEC24-60000-C", iv=0.55, underlying_price=63_000.0, ts_ns=FRESH))
    p.cycle(V)
    got = encodes(var_payload(p.book_risk("early"), h, RiskConfig(mc_scenarios=200), V))
    assert got["status"] == dict.fromkeys(got["status"], "ok")
    assert got["var_historical"] > 0.0


def test_stress_payload_is_the_grid_and_its_worst_loss() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    cfg = RiskConfig(stress_spot=(-0.1, 0.0, 0.1), stress_vol=(-0.5, 0.0, 1.0))
    got = encodes(stress_payload(br, cfg, V))
    assert np.shape(got["pnl"]) == (3, 3)
    assert got["pnl"][1][1] == 0.0
    ret = np.log1p(np.array([-0.1, 0.0, 0.1]))
    flat = scenario_pnl(
        br.positions,
        np.repeat(np.repeat(ret, 3)[:, None], 3, axis=1),
        np.repeat(np.tile([-0.5, 0.0, 1.0], 3)[:, None], 3, axis=1),
        0.0,
    ).pnl
    # revalued per distinct instrument: full revaluation's figures to about 1e-13 of the grid
    scale = np.abs(flat).max()
    assert_allclose(np.ravel(got["pnl"]), flat, rtol=0, atol=1e-11 * scale)
    assert got["stress_loss"] == pytest.approx(-flat.min(), rel=0, abs=1e-11 * scale)
    assert got["excluded"] == []


def test_margin_payload_totals_the_pure_functions_per_underlying() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    cfg = RiskConfig(
        equity_usd={"alpha": 1e6},
        margin_pm={"SOL": {"price_range": 0.2}},
        margin_span={"price_scan": 0.15},
    )
    got = encodes(margin_payload(br, cfg, V))
    pm = margin.deribit_portfolio_margin(
        br.positions,
        br.prices,
        [
            margin.DERIBIT_PM_BTC,
            replace(margin.DERIBIT_PM_BTC, price_range=0.2),
            margin.DERIBIT_PM_BTC,
        ],
        revalue=margin.shared_scenario_pnl,  # as the payloads do: the books stacked
    )
    span = margin.span_margin(
        br.positions,
        3,
        replace(margin.DEFAULT_SPAN, price_scan=0.15),
        revalue=margin.shared_scenario_pnl,
    )
    std = margin.deribit_standard_margin(br.positions, 3, margin.DERIBIT_STANDARD_BTC)
    assert got["status"] == "ok"
    assert got["margin_im"] == pytest.approx(pm.margin.initial_usd.sum(), rel=1e-15)
    assert got["margin_mm"] == pytest.approx(pm.margin.maintenance_usd.sum(), rel=1e-15)
    assert got["margin_span"] == pytest.approx(span.requirement.sum(), rel=1e-15)
    assert got["margin_standard_im"] == pytest.approx(std.initial_usd.sum(), rel=1e-15)
    assert got["margin_savings"] == pytest.approx(
        got["margin_standard_im"] - got["margin_im"], rel=1e-12
    )
    assert got["margin_utilisation"] == pytest.approx(got["margin_im"] / 1e6, rel=1e-15)
    assert_allclose(got["portfolio"]["matrix_usd"], pm.usd.standard, rtol=0, atol=0)
    assert got["units"]["margin_utilisation"] == "fraction of equity"
    # no equity configured: no utilisation; no ETH index tick came: no figures
    other = encodes(margin_payload(p.book_risk("beta"), cfg, V))
    assert other["margin_utilisation"] is None
    assert other["status"] == "no index price for ETH"


def same_figures(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two payloads' wire fields differ (numbers to 1e-12 relative, NaN equal to NaN)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in same_figures(a.get(k), b.get(k), f"{path}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d
            for i, (x, y) in enumerate(zip(a, b, strict=True))
            for d in same_figures(x, y, f"{path}.{i}")
        ]
    if isinstance(a, float) and isinstance(b, float):
        close = (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-12, abs=1e-6)
        return [] if close else [f"{path}: {a!r} != {b!r}"]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def test_margin_payloads_of_books_together_are_each_books_alone() -> None:
    """Valued together (each distinct instrument once across the books), every book's margin
    payload is the one it gets alone: books sharing instruments in other quantities and
    orders, an underlying with its own parameters, a book without every index price."""
    p, _ = build_book()
    brs = list(p.books_risk().values())
    alpha = p.book_risk("alpha")
    sigma = alpha.positions.sigma.copy()
    sigma[np.flatnonzero(alpha.positions.kind == KIND_OPTION)[0]] = math.nan  # left out
    flipped = alpha.positions._replace(weight=alpha.positions.weight * -0.5, sigma=sigma)
    brs.append(replace(alpha, book="alpha_short_half", positions=flipped))
    cfg = RiskConfig(margin_pm={"SOL": {"price_range": 0.2}}, equity_usd={"alpha": 1e6})
    together = [encodes(m) for m in margin_payloads(brs, cfg, V)]
    alone = [encodes(margin_payload(br, cfg, V)) for br in brs]
    assert [m["book"] for m in together] == [br.book for br in brs]
    assert {m["status"] for m in together} == {"ok", "no index price for ETH"}
    assert same_figures(together, alone) == []
    assert together[0]["margin_im"] > 0.0 < together[-1]["margin_im"] != together[0]["margin_im"]
    assert len(together[-1]["excluded"]) == 1 + len(together[0]["excluded"])


def test_margin_payload_needs_every_index_price() -> None:
    p, _ = build_book()
    br = replace(p.book_risk("alpha"), prices=np.array([60_000.0, math.nan, 5_460.0]))
    got = encodes(margin_payload(br, RiskConfig(), V))
    assert got["status"] == "no index price for SOL"
    assert got["margin_im"] is None


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"margin_pm": {"BTC": {"nonsense": 1.0}}}, "margin_pm.BTC"),
        ({"margin_pm": {"ETH": {"price_range": -1.0}}}, "margin_pm.ETH"),
        ({"margin_span": {"price_scan": 0.9}}, "margin_span"),
    ],
)
def test_bad_margin_parameters_are_refused_naming_the_table(
    table: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        RiskConfig(**table)


# ----------------------------------------------------------------- hedges
def _inputs(p: Any, und: str, names: list[str], inverse: bool, contract: float) -> HedgeInputs:
    priced = p.priced(names)
    return HedgeInputs(und, names, priced.units, priced.positions.X, inverse, contract)


def test_priced_prices_held_and_unheld_instruments_per_unit() -> None:
    p, _ = build_book()
    priced = p.priced(["BTC-PERPETUAL", "BTC-27DEC24-60000-C", "NOPE", "ETH-PERPETUAL"])
    units, prices = priced.units, priced.positions.X
    assert priced.ok.tolist() == [True, True, False, False]
    d = AGG_FIELDS.index("delta")
    assert prices[0] == 60_100.0  # its own tick
    assert units[0, d] == pytest.approx(1.0 / 60_100.0, rel=1e-15)  # one USD of an inverse perp
    assert prices[1] == 63_000.0  # the option's forward
    assert units[1, d] > 0.0
    assert np.isnan(units[2]).all()  # unknown
    assert np.isnan(prices[2])
    assert np.isnan(prices[3])  # known but never priced: no ETH index or tick


def test_hedge_payloads_zero_the_delta_and_the_targets() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    f = br.figures[0]
    opts = ["BTC-27DEC24-60000-C", "BTC-27DEC24-50000-P"]
    inputs = {
        "BTC": _inputs(p, "BTC", ["BTC-PERPETUAL", *opts], True, 10.0),
        "SOL": _inputs(p, "SOL", ["SOL_USDC-PERPETUAL"], False, 1.0),
    }
    cfg = RiskConfig(equity_coin={"alpha": 2.0})
    got = {h.underlying: encodes(h) for h in hedge_payloads(br, inputs, cfg, V)}
    assert set(got) == {"BTC", "SOL"}  # SPX has no hedge configured
    btc = got["BTC"]
    assert btc["status"] == "ok"
    d_adj = f[AGG_FIELDS.index("delta_adj")]
    # coin-flat: contracts of 10 USD at 60 100, each adding 10 / 60 100 of delta_adj
    exact = btc["delta_hedge"]["contracts_exact"]
    assert d_adj + exact * 10.0 / 60_100.0 == pytest.approx(0.0, abs=1e-9)
    assert btc["delta_hedge"]["contracts"] == round(exact)
    assert btc["delta_hedge"]["quantity"] == 10.0 * round(exact)
    assert btc["usd_flat"]["contracts_exact"] == pytest.approx(
        exact - 2.0 * 60_100.0 / 10.0, rel=1e-12
    )
    assert btc["hedge_contracts"] == btc["delta_hedge"]["contracts"]
    # gamma-vega neutral with the two options, then the future takes the delta left
    oh = btc["option_hedge"]
    assert oh["targets"] == ["gamma", "vega"]
    assert oh["residual"]["gamma"] == pytest.approx(
        0.0, abs=1e-9 * abs(f[AGG_FIELDS.index("gamma")])
    )
    assert oh["residual"]["vega"] == pytest.approx(0.0, abs=1e-9 * abs(f[AGG_FIELDS.index("vega")]))
    assert oh["residual"]["delta"] == pytest.approx(0.0, abs=1e-9)
    q = np.asarray(oh["quantity"])
    units = inputs["BTC"].units
    g, v = AGG_FIELDS.index("gamma"), AGG_FIELDS.index("vega")
    assert f[g] + q @ units[1:, g] == pytest.approx(0.0, abs=1e-9 * abs(f[g]))
    assert f[v] + q @ units[1:, v] == pytest.approx(0.0, abs=1e-9 * abs(f[v]))
    # linear: contracts = -delta / multiplier
    sol = got["SOL"]
    assert sol["delta_hedge"]["contracts_exact"] == pytest.approx(
        -br.figures[1, AGG_FIELDS.index("delta")], rel=1e-15
    )
    assert sol["option_hedge"] is None
    assert sol["usd_flat"] is None


def test_a_hedge_instrument_without_a_price_is_named() -> None:
    p, _ = build_book()
    br = p.book_risk("alpha")
    inputs = {"BTC": _inputs(p, "BTC", ["BTC-PERPETUAL", "BTC-27DEC24-70000-C"], True, 10.0)}
    (got,) = map(encodes, hedge_payloads(br, inputs, RiskConfig(), V))
    assert got["status"] == "no price for BTC-27DEC24-70000-C"  # never quoted
    assert got["delta_hedge"] is None


def test_hedge_options_need_a_future() -> None:
    with pytest.raises(ValueError, match=r"hedge_options\.BTC: needs hedge_future\.BTC"):
        RiskConfig(hedge_options={"BTC": ["BTC-27DEC24-70000-C"]})


# ----------------------------------------------------------------- skew
SMILE = skew.SviParams(a=0.1, b=0.12, rho=-0.35, m=0.02, sigma=0.25)
STRIKES = [40_000 + 5_000 * i for i in range(9)]


def _chain_book() -> tuple[Portfolio, float, float]:
    """Nine quoted calls of one expiry on a known SVI smile (F = 63 000), and a held call of
    that expiry that was never quoted."""
    p = Portfolio(InstrumentRegistry())
    F, T = 63_000.0, years(DEC27)
    for K in STRIKES:
        vol = float(SMILE.vol(math.log(K / F), T))
        assert p.apply_quote(quote(f"BTC-27DEC24-{K}-C", iv=vol, underlying_price=F, ts_ns=FRESH))
    assert p.apply_fill(fill("BTC-27DEC24-62000-C", 2.0, 0.1))
    assert p.apply_tick(tick("btc_usd", 60_000.0, ts_ns=FRESH))
    p.cycle(V)
    return p, F, T


def test_skew_payloads_fit_each_chain_and_give_held_unquoted_options_the_smile() -> None:
    p, F, T = _chain_book()
    (chain,) = p.chains()
    assert (chain.underlying, chain.expiry, chain.coin_settled) == ("BTC", DEC27_LABEL, True)
    payloads, smile = skew_payloads([chain], {}, V + 1, V)
    got = {key: encodes(payload) for key, payload in payloads}
    one = got[f"BTC:{DEC27_LABEL}"]
    vols = [float(SMILE.vol(math.log(K / F), T)) for K in STRIKES]
    fit = skew.fit_svi(STRIKES, vols, F, T)
    prof = skew.skew_profile(fit, coin_settled=True)
    assert one["status"] == "ok"
    assert one["n_quotes"] == 9
    assert one["forward"] == F
    assert one["T"] == pytest.approx(T, rel=1e-12)
    assert one["atm_vol"] == prof.atm_vol
    assert one["rr25"] == prof.risk_reversal
    assert one["bf25"] == prof.butterfly
    assert one["atm_vol"] == pytest.approx(float(SMILE.vol(0.0, T)), rel=1e-5)  # recovered
    assert one["butterfly"]["arbitrage_free"] is True
    assert one["delta_convention"] == "forward, premium-adjusted"
    # the quotes it took, by strike, and the fitted smile over their range and a little beyond
    assert one["quote_strikes"] == sorted(STRIKES)
    assert_allclose(one["quote_vols"], [vols[STRIKES.index(K)] for K in sorted(STRIKES)])
    assert len(one["fit_strikes"]) == SMILE_POINTS
    assert one["fit_strikes"][0] < min(STRIKES) < max(STRIKES) < one["fit_strikes"][-1]
    assert_allclose(one["fit_vols"], skew.vol_at(fit, one["fit_strikes"]), rtol=1e-12)
    assert_allclose(  # the fit recovers the smile the quotes were made from
        one["fit_vols"],
        [float(SMILE.vol(math.log(K / F), T)) for K in one["fit_strikes"]],
        rtol=1e-4,
    )
    term = got["BTC"]
    assert term["expiries"] == [DEC27_LABEL]
    assert_allclose(term["atm_vol"], [prof.atm_vol], rtol=1e-12)
    # the held call without a quote gets the smile's vol at its strike, on the fit's forward
    (name, vol, forward) = smile[0]
    assert (name, forward) == ("BTC-27DEC24-62000-C", F)
    assert vol == pytest.approx(float(skew.vol_at(fit, [62_000.0])[0]), rel=1e-12)
    assert len(smile) == 1


def test_a_smile_quote_is_not_fitted_as_a_market_quote() -> None:
    p, _, _ = _chain_book()
    (first,) = p.chains()
    _, smile = skew_payloads([first], {}, V, V)
    name, vol, forward = smile[0]
    stamp = V + 2
    # as the daemon gives it: the smile's vol, no price
    smile_quote = Quote(
        instrument=name, iv=vol, underlying_price=forward, ts_event=stamp, ts_recv=stamp
    )
    assert p.apply_quote(smile_quote)
    (chain,) = p.chains()
    payloads, again = skew_payloads([chain], {name: stamp}, V + 3, V)
    assert encodes(dict(payloads)[f"BTC:{DEC27_LABEL}"])["n_quotes"] == 9  # not 10
    assert [n for n, _, _ in again] == [name]  # and it keeps getting the smile's vol
    _, own = skew_payloads([chain], {}, V + 3, V)  # had it come from the market: a quote
    assert own == []


def test_a_chain_with_too_few_strikes_says_so() -> None:
    p, _ = build_book()
    payloads, smile = skew_payloads(p.chains(), {}, V, V)
    got = {k: encodes(v) for k, v in payloads}
    assert got[f"BTC:{DEC27_LABEL}"]["status"] == "too_few_strikes"
    assert all(v["atm_vol"] is None for v in got.values())
    assert all(v["fit_strikes"] == v["fit_vols"] == [] for v in got.values())
    assert smile == []


# ----------------------------------------------------------------- strategies
def test_strategy_payload_sums_its_legs_and_prices_its_payoff() -> None:
    p, _, _ = _chain_book()
    text = "vertical:BTC-27DEC24-60000-C/65000"
    strategy = parse_strategy(text)
    h = StrategyHolding("main", text, strategy)
    h.add(2.0, 0.03)  # 2 bull spreads at 0.03 BTC each
    legs = p.priced([leg.instrument.name for leg in strategy.legs])
    got = encodes(strategy_payload(h, legs, 60_000.0, RiskConfig(), V, valuation_ns=V))
    assert got["valuation_ts_ns"] == V
    assert got["status"] == "ok"
    ratios = np.array([1.0, -1.0])
    for name in ("delta", "gamma", "vega", "market_value"):
        col = legs.units[:, AGG_FIELDS.index(name)]
        assert got[name] == pytest.approx(2.0 * float(ratios @ col), rel=1e-12), name
    X = legs.positions.X
    assert got["pnl"] == pytest.approx(got["market_value"] - 2.0 * 0.03 * X[0], rel=1e-12)
    assert got["cost_currency"] == "coin"
    book = legs.positions._replace(weight=legs.positions.weight * ratios * 2.0)
    pm = margin.deribit_portfolio_margin(book, [60_000.0])
    assert got["margin_im"] == pytest.approx(float(pm.margin.initial_usd[0]), rel=1e-12)
    # the payoff of one spread bought at the model's prices now, times 2
    per_unit = legs.units[:, AGG_FIELDS.index("market_value")] / X
    d = payoff_diagram(strategy, got["payoff"]["S"], per_unit, legs.positions.sigma)
    assert_allclose(got["payoff"]["pnl"], 2.0 * d.pnl, rtol=1e-12)
    now = payoff_diagram(strategy, got["payoff"]["S"], per_unit, legs.positions.sigma, now_ns=V)
    assert now.pnl_now is not None
    assert_allclose(got["payoff"]["pnl_now"], 2.0 * now.pnl_now, rtol=1e-12)
    assert got["payoff"]["max_profit"] == pytest.approx(2.0 * d.max_profit, rel=1e-12)
    assert 0.0 < d.max_profit < math.inf  # a call spread's payoff is capped
    # its coin premium is worth more USD the higher the coin goes (docs/strategies.md)
    assert d.max_loss == math.inf
    assert got["payoff"]["max_loss"] == math.inf  # published as null
    assert got["payoff"]["S"][0] == 0.5 * 60_000.0
    assert got["payoff"]["S"][-1] == 1.5 * 65_000.0


def test_a_strategy_leg_without_a_price_is_named() -> None:
    p, _, _ = _chain_book()
    text = "straddle:BTC-27DEC24-60000-C/P"
    strategy = parse_strategy(text)
    h = StrategyHolding("main", text, strategy)
    h.add(1.0, None)
    legs = p.priced([leg.instrument.name for leg in strategy.legs])
    got = encodes(strategy_payload(h, legs, 6e4, RiskConfig(), V, valuation_ns=V))
    assert got["status"] == "no price for BTC-27DEC24-60000-P"
    assert got["delta"] is None
    assert got["cost"] is None


def test_a_gap_longer_than_a_long_weekend_makes_no_move() -> None:
    h = MoveHistory(10)
    h.record(day(0), "BTC", 100.0, None)
    h.record(day(4), "BTC", 110.0, None)  # Friday to Tuesday: a move
    h.record(day(30), "BTC", 150.0, None)  # a month later: none
    h.record(day(31), "BTC", 120.0, None)
    ret, _ = h.moves(["BTC"])
    assert_allclose(ret[:, 0], [math.log(1.1), math.log(0.8)], rtol=1e-15)


def test_chains_group_every_option_by_underlying_settlement_and_expiry() -> None:
    """Coin-settled BTC options of two expiries, a linear (USDC) one, ETH, an expired chain and
    a held option never quoted: each chain once, in key order, its options in the order they
    were first seen, their figures those the portfolio prices them at; an option first quoted
    between two calls joins its chain."""
    p = Portfolio(InstrumentRegistry())
    names = [
        "BTC-28MAR25-70000-P",
        "BTC-27DEC24-60000-C",
        "ETH-27DEC24-3000-C",
        "BTC_USDC-27DEC24-60000-C",
        "BTC-27DEC24-65000-P",
        "BTC-28JUN24-60000-C",  # expired at V (2024-07-01)
    ]
    for i, name in enumerate(names):
        fwd = 3_100.0 if name.startswith("ETH") else 63_000.0
        assert p.apply_quote(
            quote(name, iv=0.5 + 0.01 * i, underlying_price=fwd, mark=0.05, ts_ns=FRESH)
        )
    assert p.apply_fill(fill("BTC-27DEC24-70000-C", 1.0, 0.02))  # held, never quoted
    p.cycle(V)
    got = p.chains()
    assert [(c.underlying, c.expiry, c.coin_settled, c.instruments) for c in got] == [
        ("BTC", DEC27_LABEL, True, ["BTC-27DEC24-60000-C", "BTC-27DEC24-65000-P",
                                    "BTC-27DEC24-70000-C"]),
        ("BTC", "2025-03-28T08:00:00Z", True, ["BTC-28MAR25-70000-P"]),
        ("BTC_USDC", DEC27_LABEL, False, ["BTC_USDC-27DEC24-60000-C"]),
        ("ETH", DEC27_LABEL, True, ["ETH-27DEC24-3000-C"]),
    ]  # fmt: skip
    for c in got:
        priced = p.priced(c.instruments)
        ok = priced.ok  # all but the held option never quoted
        assert ok.tolist() == (~c.held).tolist()
        assert_allclose(c.forward[ok], priced.positions.X[ok], rtol=1e-15)
        assert_allclose(c.T[ok], priced.positions.T[ok], rtol=1e-15)
        assert c.strike.tolist() == priced.positions.strike.tolist()
        assert c.is_call.tolist() == [n.endswith("-C") for n in c.instruments]
        assert c.held.tolist() == [n == "BTC-27DEC24-70000-C" for n in c.instruments]
        assert all((c.quote_ns == 0) == c.held)  # the held one alone has no quote
        assert np.isnan(c.sigma).tolist() == c.held.tolist()  # no vol of its own
    assert got[0].sigma[0] == pytest.approx(0.51)
    assert p.apply_quote(quote("BTC-28MAR25-60000-C", iv=0.6, underlying_price=63_000.0))
    p.cycle(V)
    assert p.chains()[1].instruments == ["BTC-28MAR25-70000-P", "BTC-28MAR25-60000-C"]
