"""Tests for engine.risk.totals: a book's exposure payloads from shards, summed."""

from __future__ import annotations

import math
import typing

import msgspec

from engine.outputs import (
    UNITS,
    BookExposure,
    LiquidityPayload,
    MarginPayload,
    PortfolioMargin,
    PositionLiquidity,
    SpanMargin,
    StandardMargin,
    StressPayload,
    VarPayload,
)
from engine.risk.totals import (
    SUMMED,
    book_liquidity,
    book_margin,
    book_stress,
    book_totals,
    exposure_totals,
    liquidity_totals,
    margin_totals,
    stress_totals,
)


def _part(book: str, x: float, n: int, valuation: int) -> BookExposure:
    return BookExposure(
        ts_ns=1,
        valuation_ts_ns=valuation,
        book=book,
        n_positions=n,
        n_stale=n // 2,
        units=UNITS,
        **{f: x * (k + 1) for k, f in enumerate(SUMMED)},  # type: ignore[arg-type]  # floats
    )


def test_summed_are_the_book_payloads_float_figures() -> None:
    hints = typing.get_type_hints(BookExposure)
    floats = {f for f in BookExposure.__struct_fields__ if hints[f] is float}
    assert set(SUMMED) == floats


def test_parts_add_up_exactly_rounded_with_the_oldest_valuation() -> None:
    parts = [_part("main", 0.1, 3, 20), _part("main", 1e16, 4, 10), _part("main", -1e16, 1, 30)]
    got = book_totals("main", parts, 99)
    for k, f in enumerate(SUMMED):
        assert getattr(got, f) == math.fsum([0.1 * (k + 1), 1e16 * (k + 1), -1e16 * (k + 1)])
    assert got.delta_usd == 0.1  # a plain left-to-right sum gives 0.0 or 2.0
    assert (got.n_positions, got.n_stale, got.valuation_ts_ns, got.ts_ns) == (8, 3, 10, 99)


def test_the_firm_is_every_book_of_every_shard() -> None:
    s0 = {"main": _part("main", 1.0, 2, 5)}
    s1 = {"main": _part("main", 2.0, 3, 6), "other": _part("other", 4.0, 1, 7)}
    out = dict(exposure_totals([s0, s1], 9))
    assert list(out) == ["main", "other", "*"]
    assert out["main"].delta_usd == 3.0
    assert out["other"].delta_usd == 4.0
    assert out["*"].delta_usd == 7.0
    assert out["*"].n_positions == 6
    assert out["*"].valuation_ts_ns == 5
    assert exposure_totals([], 9) == []


def _grid(book: str, rows: list[list[float]], valuation: int, **kw: object) -> StressPayload:
    fields: dict[str, typing.Any] = {
        "ts_ns": 1,
        "valuation_ts_ns": valuation,
        "book": book,
        "underlyings": ["BTC"],
        "spot": [-0.1, 0.0, 0.1],
        "vol": [-0.2, 0.2],
        "pnl": rows,
        "stress_loss": -min(min(r) for r in rows),
        "excluded": [],
        "units": {"pnl": "USD"},
    }
    return StressPayload(**(fields | kw))


def test_stress_grids_add_cell_by_cell_with_the_worst_loss_of_the_sum() -> None:
    """Two parts whose worst cells differ: the sum's worst loss is its own (-3 at +10 %, not
    the parts' 5 + 4), each cell exactly rounded; underlyings and exclusions joined."""
    btc = _grid("main", [[-5.0, -4.0], [0.0, 0.1], [1.0, 2.0]], 20, excluded=["BTC-X"])
    eth = _grid("main", [[6.0, 4.5], [1e16, 0.2], [-4.0, -5.0]], 10, underlyings=["ETH"])
    got = book_stress("main", [btc, eth], 99)
    assert got.pnl == [[1.0, 0.5], [1e16, math.fsum([0.1, 0.2])], [-3.0, -3.0]]
    assert got.stress_loss == 3.0
    assert (got.underlyings, got.excluded) == (["BTC", "ETH"], ["BTC-X"])
    assert (got.valuation_ts_ns, got.ts_ns, got.spot, got.vol) == (10, 99, btc.spot, btc.vol)


def test_stress_totals_per_book_and_the_firm_and_grids_that_differ() -> None:
    s0 = {"main": _grid("main", [[-1.0, 0.0], [0.0, 0.0], [1.0, 1.0]], 5)}
    s1 = {
        "main": _grid("main", [[-2.0, 0.0], [0.0, 0.0], [2.0, 2.0]], 6),
        "other": _grid("other", [[0.5, 0.5], [0.0, 0.0], [-7.0, 0.0]], 7),
    }
    out, apart = stress_totals([s0, s1], 9)
    got = dict(out)
    assert list(got) == ["main", "other", "*"]
    assert apart == []
    assert got["main"].pnl[0] == [-3.0, 0.0]
    assert got["*"].pnl == [[-2.5, 0.5], [0.0, 0.0], [-4.0, 3.0]]
    assert (got["main"].stress_loss, got["other"].stress_loss, got["*"].stress_loss) == (3, 7, 4)
    assert got["*"].valuation_ts_ns == 5

    s1["main"] = _grid("main", [[0.0, 0.0]] * 3, 6, spot=[-0.2, 0.0, 0.2])
    out, apart = stress_totals([s0, s1], 9)
    assert [k for k, _ in out] == ["other"]  # no firm without main
    assert apart == ["main"]
    assert stress_totals([], 9) == ([], [])


def _margin(book: str, und: str, x: float, status: str = "ok") -> MarginPayload:
    """A one-underlying part: every per-underlying figure ``x`` (its vectors [x], matrices
    [[x]]), totals x."""
    ok = status == "ok"

    def per(kind: type[msgspec.Struct]) -> typing.Any:
        hints = typing.get_type_hints(kind)
        entry = {list[float]: x, list[list[float]]: [x], list[list[list[float]]]: [[x]]}
        return kind(**{f: [entry[hints[f]]] for f in hints})

    return MarginPayload(
        ts_ns=1,
        valuation_ts_ns=int(x),
        book=book,
        underlyings=[und],
        equity_usd=1000.0,
        **dict.fromkeys(
            ("margin_im", "margin_mm", "margin_span", "margin_standard_im", "margin_savings"),
            x if ok else None,
        ),
        margin_utilisation=x / 1000.0 if ok else None,
        margin_mm_utilisation=x / 1000.0 if ok else None,
        status=status,
        portfolio=per(PortfolioMargin) if ok else None,
        span=per(SpanMargin) if ok else None,
        standard=per(StandardMargin) if ok else None,
        excluded=[f"{und}-X"],
        units={"margin_im": "USD"},
    )


def test_margin_puts_the_underlyings_together_and_sums_the_totals() -> None:
    """Each underlying is margined alone: the whole book's per-underlying figures are its
    parts', in the order of its underlyings, and its totals their sums (utilisation of the
    book's equity recomputed)."""
    eth, btc = _margin("main", "ETH", 30.0), _margin("main", "BTC", 12.0)
    got = book_margin("main", [eth, btc], 99)
    assert got is not None
    assert got.underlyings == ["BTC", "ETH"]
    assert got.portfolio is not None
    assert got.span is not None
    assert got.portfolio.initial_usd == [12.0, 30.0]
    assert got.portfolio.matrix_usd == [[[12.0]], [[30.0]]]
    assert got.span.requirement_usd == [12.0, 30.0]
    assert (got.margin_im, got.margin_savings, got.margin_utilisation) == (42.0, 42.0, 0.042)
    assert (got.excluded, got.valuation_ts_ns, got.ts_ns) == (["BTC-X", "ETH-X"], 12, 99)


def test_a_book_with_a_part_not_margined_is_left_out() -> None:
    s0 = {"main": _margin("main", "BTC", 1.0), "other": _margin("other", "BTC", 2.0)}
    s1 = {"main": _margin("main", "ETH", 3.0, status="no index price for ETH")}
    out, apart = margin_totals([s0, s1], 9)
    assert [k for k, _ in out] == ["other"]
    assert apart == ["main"]


def _position(name: str, cost: float | None) -> PositionLiquidity:
    return PositionLiquidity(
        instrument=name,
        quantity=1.0,
        value_usd=None if cost is None else 100 * cost,
        relative_spread=None,
        exit_cost_usd=None if cost is None else 2 * cost,
        spread_mean=None,
        spread_std=None,
        samples=0,
        cost_usd=cost,
    )


def _liquidity(listed: list[PositionLiquidity], n: int, other: float) -> LiquidityPayload:
    figures = {f: None for f in LiquidityPayload.__struct_fields__ if f.startswith(("lvar", "les"))}
    exit_listed = math.fsum(x.exit_cost_usd or 0.0 for x in listed)
    cost_listed = math.fsum(x.cost_usd or 0.0 for x in listed)
    return LiquidityPayload(
        ts_ns=1,
        valuation_ts_ns=5,
        book="main",
        method="historical",
        a=2.33,
        window=720,
        exit_cost_usd=exit_listed + 2 * other,
        liquidity_cost_usd=cost_listed + other,
        var=None,
        es=None,
        **figures,  # type: ignore[arg-type]
        positions=listed,
        n_positions=n,
        other_positions=n - len(listed),
        other_exit_cost_usd=2 * other,
        other_cost_usd=other,
        unquoted=[x.instrument for x in listed if x.cost_usd is None],
        status="ok",
        units={},
    )


def test_liquidity_keeps_the_costliest_positions_and_adds_the_cost_to_the_whole_var() -> None:
    """Each shard lists its 2 costliest; the book's 2 are among them, the rest summed with
    the parts' rests; LVaR is the whole book's VaR (not the parts') plus the summed cost."""
    btc = _liquidity([_position("B1", 5.0), _position("B2", 1.0)], 4, other=0.5)
    eth = _liquidity([_position("E1", 3.0), _position("E0", None)], 3, other=0.25)
    whole_var = VarPayload(
        ts_ns=1, valuation_ts_ns=5, book="main", underlyings=["BTC", "ETH"], confidence=0.99,
        es_confidence=0.975, horizon_days=1.0, method="historical", history_days=250,
        positions=7, var=100.0, es=120.0, var_delta_normal=90.0, es_delta_normal=None,
        var_delta_gamma=None, es_delta_gamma=None, var_historical=100.0, es_historical=120.0,
        var_monte_carlo=None, es_monte_carlo=None, status={"historical": "ok"}, mc_scenarios=0,
        units={},
    )  # fmt: skip
    got = dict(liquidity_totals([{"main": btc}, {"main": eth}], {"main": whole_var}, 2, 9))
    p = got["main"]
    assert [x.instrument for x in p.positions] == ["B1", "E1"]
    assert p.liquidity_cost_usd == 5.0 + 1.0 + 0.5 + 3.0 + 0.25
    assert p.exit_cost_usd == 2 * p.liquidity_cost_usd
    assert (p.other_positions, p.other_cost_usd, p.other_exit_cost_usd) == (5, 1.75, 3.5)
    assert (p.lvar, p.les, p.lvar_delta_normal, p.les_delta_normal) == (109.75, 129.75, 99.75, None)
    assert p.unquoted == ["E0"]
    tie = _liquidity([_position("Z", 1.0), _position("A", 1.0), _position("N", None)], 3, 0.0)
    order = [x.instrument for x in book_liquidity("b", [tie], whole_var, 3, 9).positions]
    assert order == ["A", "Z", "N"]  # ties by name, unpriced last
    assert liquidity_totals([{"main": btc}], {}, 2, 9) == []  # no whole VaR yet
