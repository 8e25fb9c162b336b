"""Tests for engine.risk.vectors: the common scenario set, the books' P&L vectors on it, their
wire form and their aggregation.

The property behind ``riskd aggregate``: a book split by underlying into parts (as shards hold
it), each part valued on the same scenario set, gives vectors and exposures that sum to the
whole book's, so VaR and ES of the sum are the whole book's. The vectors themselves are checked
against the existing pure functions (:func:`engine.risk.var.historical` and
:func:`engine.risk.scenarios.book_scenario_pnl` on the set's columns, :func:`var.mc_draws`).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.risk import var
from engine.risk.report import RiskConfig, var_payload
from engine.risk.scenarios import NO_PRICES, ScenarioBook, book_scenario_pnl
from engine.risk.vectors import (
    FIRM,
    BookVectors,
    CommonVectors,
    ScenarioSet,
    SetFacts,
    ShardVectors,
    aggregate_payloads,
    book_vectors,
    combine,
    common_vectors,
    decode_vectors,
    encode_vectors,
    scenario_set,
    shards_disagree,
    var_payload_of,
    var_payloads,
)
from engine.state import AGG_FIELDS, BookRisk
from tests.unit.engine.test_report import _history
from tests.unit.engine.test_state import V, build_book

UNIVERSE = ("SPX", "BTC", "ETH", "SOL")  # not sorted: the set's order is the config's
_VARS = ("var_delta_normal", "var_delta_gamma", "var_historical", "var_monte_carlo")
FIGURES = _VARS + tuple(f.replace("var_", "es_") for f in _VARS)


def _cfg(**kw: object) -> RiskConfig:
    base: dict[str, object] = {
        "mc_scenarios": 400,
        "horizon_days": 2.0,
        "scenario_underlyings": UNIVERSE,
    }
    base.update(kw)
    return RiskConfig(**base)  # type: ignore[arg-type]  # keyword fields of the Struct


def _part(br: BookRisk, unds: set[str]) -> BookRisk:
    """The positions of ``br`` on ``unds`` only: what a shard owning them holds of the book."""
    keep_u = [k for k, u in enumerate(br.underlyings) if u in unds]
    remap = np.full(len(br.underlyings), -1, dtype=np.int64)
    remap[keep_u] = np.arange(len(keep_u))
    rows = np.flatnonzero(np.isin(br.positions.und, keep_u))
    positions = ScenarioBook._make(np.ascontiguousarray(a[rows]) for a in br.positions)
    positions = positions._replace(und=np.ascontiguousarray(remap[positions.und]))
    return BookRisk(
        book=br.book,
        valuation_ns=br.valuation_ns,
        underlyings=[br.underlyings[k] for k in keep_u],
        positions=positions,
        figures=br.figures[keep_u],
        prices=br.prices[keep_u],
        rows=br.rows[rows],
        defs=br.defs,
    )


@pytest.fixture(scope="module")
def alpha() -> BookRisk:
    p, _ = build_book()
    return p.book_risk("alpha")  # BTC, SOL, SPX


def test_book_vectors_are_the_books_scenario_pnl_on_the_sets_columns(alpha: BookRisk) -> None:
    cfg = _cfg()
    h = _history(list(UNIVERSE), 60)
    sset = scenario_set(h, cfg.var_settings())
    assert sset.status == "ok"
    assert sset.history_days == 60
    v = book_vectors(alpha, sset, 2.0)
    cols = [UNIVERSE.index(u) for u in alpha.underlyings]
    ret, dvol = h.moves(list(UNIVERSE))
    want_h = var.historical(alpha.positions, ret[:, cols], dvol[:, cols], horizon_days=2.0)[1]
    assert_allclose(v.historical, want_h.pnl, rtol=1e-12, atol=1e-9)
    cov = h.covariance(list(UNIVERSE))
    mc_ret, mc_dvol = var.mc_draws(cov, 400, cfg.mc_seed, 2.0)
    want_mc = book_scenario_pnl(alpha.positions, mc_ret[:, cols], mc_dvol[:, cols], 2.0).pnl[0]
    assert_allclose(v.monte_carlo, want_mc, rtol=1e-12, atol=1e-9)
    d = alpha.figures[:, AGG_FIELDS.index("delta_usd")]
    assert_allclose(v.delta_usd[cols], d)
    assert v.delta_usd[UNIVERSE.index("ETH")] == 0.0
    g = 100.0 * alpha.figures[:, AGG_FIELDS.index("cash_gamma")] + d
    assert_allclose(v.gamma_usd[cols], g)


def test_parts_of_a_book_on_the_common_set_sum_to_the_whole_books_figures(
    alpha: BookRisk,
) -> None:
    cfg = _cfg(method="monte_carlo")
    settings = cfg.var_settings()
    h = _history(list(UNIVERSE), 60)
    whole = common_vectors([alpha], h, settings)
    parts = [
        common_vectors([_part(alpha, unds)], h, settings).books[0]
        for unds in ({"BTC"}, {"SOL", "SPX"})
    ]
    summed = combine("alpha", parts)
    for name in ("historical", "monte_carlo", "delta_usd", "gamma_usd"):
        assert_allclose(getattr(summed, name), getattr(whole.books[0], name), rtol=1e-12)
    assert summed.underlyings == alpha.underlyings
    assert summed.positions == alpha.positions.kind.size
    got = var_payloads(whole, settings, V)[0][1]
    agg = aggregate_payloads(_shards(parts, whole.sset, cfg), settings, V)
    by_key = dict(agg)
    for f in FIGURES:
        assert getattr(by_key["alpha"], f) == pytest.approx(getattr(got, f), rel=1e-9), f
    assert by_key["alpha"].var == by_key["alpha"].var_monte_carlo
    assert by_key["alpha"].shards == {"s0": V, "s1": V}
    assert by_key["alpha"].scenario_set == got.scenario_set == whole.sset.id
    assert by_key[FIRM].positions == got.positions  # one book: the firm is the book


def _shards(parts: list[BookVectors], sset: ScenarioSet, cfg: RiskConfig) -> list[ShardVectors]:
    """Each part as a shard's published vectors, through the wire form."""
    owned = [["BTC", "ETH"], ["SOL", "SPX"]]
    out = []
    for k, part in enumerate(parts):
        fields = encode_vectors(f"s{k}", owned[k], sset, cfg.var_settings(), [part], V + 1, V)
        out.append(decode_vectors({k.encode(): v for k, v in fields.items()}))
    return out


def test_the_common_set_payload_is_var_payloads_and_methods_agree_with_var(
    alpha: BookRisk,
) -> None:
    cfg = _cfg()
    h = _history(list(UNIVERSE), 60)
    got = var_payload(alpha, h, cfg, V + 5)
    cov = h.covariance(list(UNIVERSE))[:4, :4]
    d = np.zeros(4)
    cols = [UNIVERSE.index(u) for u in alpha.underlyings]
    d[cols] = alpha.figures[:, AGG_FIELDS.index("delta_usd")]
    want = var.delta_normal(d, cov, 0.99, 0.975, 2.0)
    assert got.var_delta_normal == pytest.approx(want.var, rel=1e-12)
    # delta-normal over the book's own underlyings' block of the same covariance: the same
    own = var.delta_normal(d[cols], cov[np.ix_(cols, cols)], 0.99, 0.975, 2.0)
    assert got.var_delta_normal == pytest.approx(own.var, rel=1e-12)
    assert got.history_days == 60
    assert got.status == dict.fromkeys(got.status, "ok")
    assert got.scenario_set is not None
    assert got.shards is None


def test_firm_is_every_book_together() -> None:
    p, _ = build_book()
    books = list(p.books_risk().values())
    cfg = _cfg(scenario_underlyings=("BTC", "ETH", "SOL", "SPX"))
    h = _history(["BTC", "ETH", "SOL", "SPX"], 30)
    common = common_vectors(books, h, cfg.var_settings())
    out = dict(var_payloads(common, cfg.var_settings(), V))
    assert set(out) == {"alpha", "beta", FIRM}
    total = sum(b.monte_carlo for b in common.books)
    want = var.empirical(total, 0.99, 0.975, 2.0)
    assert out[FIRM].var_monte_carlo == pytest.approx(want.var, rel=1e-12)
    assert out[FIRM].positions == out["alpha"].positions + out["beta"].positions
    assert out[FIRM].underlyings == ["BTC", "ETH", "SOL", "SPX"]


def test_a_book_outside_the_set_or_without_moves_says_why(alpha: BookRisk) -> None:
    cfg = _cfg(scenario_underlyings=("BTC", "ETH"))
    h = _history(["BTC", "ETH"], 30)
    got = var_payload(alpha, h, cfg, V)
    assert got.var is None
    assert got.status["monte_carlo"] == "SOL, SPX not in [risk] scenario_underlyings"
    few = var_payload(alpha, _history(list(UNIVERSE), 1), _cfg(), V)
    assert few.status["historical"] == "1 days of moves, need 2"
    assert few.history_days == 1


def test_vectors_round_trip_their_wire_form(alpha: BookRisk) -> None:
    cfg = _cfg()
    common = common_vectors([alpha], _history(list(UNIVERSE), 20), cfg.var_settings())
    fields = encode_vectors("0", ["BTC"], common.sset, cfg.var_settings(), common.books, 7, 5)
    assert len(fields["monte_carlo:alpha"]) == 400 * 8
    back = decode_vectors({k.encode(): v for k, v in fields.items()})
    assert back.header.owned == ["BTC"]
    assert back.header.valuation_ts_ns == 5
    assert back.cov is not None
    assert common.sset.cov is not None
    assert np.array_equal(back.cov, common.sset.cov)
    (b,) = back.books
    for name in ("historical", "monte_carlo", "delta_usd", "gamma_usd"):
        assert np.array_equal(getattr(b, name), getattr(common.books[0], name))
    fields["historical:alpha"] = fields["historical:alpha"][:-8]
    with pytest.raises(ValueError, match="historical:alpha"):
        decode_vectors({k.encode(): v for k, v in fields.items()})


def test_shards_disagree_until_each_underlying_has_one_owner_on_one_set(
    alpha: BookRisk,
) -> None:
    cfg = _cfg()
    s = cfg.var_settings()
    h = _history(list(UNIVERSE), 20)
    common = common_vectors([alpha], h, s)

    def shard(name: str, owned: list[str], on: CommonVectors = common) -> ShardVectors:
        fields = encode_vectors(name, owned, on.sset, s, on.books, 1, 1)
        return decode_vectors({k.encode(): v for k, v in fields.items()})

    assert shards_disagree([], s) == "no shard has published vectors"
    assert shards_disagree([shard("0", ["BTC", "ETH"])], s) == "no shard owns SPX, SOL yet"
    two = [shard("0", ["BTC", "ETH"]), shard("1", ["SPX", "SOL"])]
    assert shards_disagree(two, s) is None
    three = [*two, shard("2", ["SOL"])]
    assert shards_disagree(three, s) == "owned by more than one shard: SOL (1, 2)"
    other = common_vectors([alpha], _history(list(UNIVERSE), 21), s)  # another window
    mixed = [two[0], shard("1", ["SPX", "SOL"], other)]
    assert "different scenario sets" in str(shards_disagree(mixed, s))
    fewer = _cfg(mc_scenarios=399).var_settings()
    assert "another [risk] scenario set" in str(shards_disagree(two, fewer))


def test_a_repeated_scenario_underlying_is_refused() -> None:
    with pytest.raises(ValueError, match="BTC more than once"):
        _cfg(scenario_underlyings=("BTC", "ETH", "BTC"))


def test_the_sets_id_changes_with_what_the_scenarios_come_from() -> None:
    s = _cfg().var_settings()
    h = _history(list(UNIVERSE), 20)
    a = scenario_set(h, s)
    assert scenario_set(h, s).id == a.id
    assert scenario_set(h, _cfg(mc_seed=1).var_settings()).id != a.id
    assert scenario_set(_history(list(UNIVERSE), 20, seed=8), s).id != a.id
    assert math.isclose(float(a.hist_ret[0, 0]), float(h.moves(list(UNIVERSE))[0][0, 0]) * 2**0.5)


def test_var_payload_of_a_combined_book_keeps_its_status() -> None:
    empty = BookVectors("b", 1, [], 0, "no positions", *(np.zeros(0),) * 2, *(np.zeros(2),) * 2)
    bad = BookVectors("b", 2, ["X"], 1, "X not in [risk] scenario_underlyings",
                      *(np.zeros(0),) * 2, *(np.zeros(2),) * 2)  # fmt: skip
    assert combine("b", [empty, empty]).status == "no positions"
    both = combine("b", [empty, bad])
    assert both.status == bad.status
    assert both.valuation_ns == 1
    cfg = _cfg(scenario_underlyings=("X", "Y"))
    p = var_payload_of(both, SetFacts("id", 0, None), cfg.var_settings(), V)
    assert p.var is None
    assert p.status["historical"] == bad.status


def test_a_part_with_no_prices_yet_adds_nothing_to_the_whole() -> None:
    """A book (or a shard's part of it) none of whose positions can be valued yet adds nothing
    to its firm's or book's vectors: the whole is its priced parts' (not held up by the part
    with no prices); it is NO_PRICES only when no part with positions can be valued."""
    unpriced = BookVectors("b", 1, ["X"], 2, NO_PRICES, *(np.zeros(0),) * 2, *(np.zeros(2),) * 2)
    ok = BookVectors("b", 2, ["Y"], 3, "ok", np.arange(5.0), np.arange(7.0),
                     np.array([0.0, 4.0]), np.array([0.0, 5.0]))  # fmt: skip
    both = combine("*", [unpriced, ok])
    assert both.status == "ok"
    assert both.positions == 5
    assert_allclose(both.historical, ok.historical)
    assert_allclose(both.monte_carlo, ok.monte_carlo)
    assert combine("*", [unpriced, unpriced]).status == NO_PRICES
