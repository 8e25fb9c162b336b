"""Threshold alerts (engine.alerts): limits, hysteresis, cooldown, filters, the stale-feed alert,
payloads, rule validation, and a property: per key, transitions alternate raised/cleared."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Final, get_args

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.alerts import ALERT_METRICS, MARKET_BOOK, AlertEngine, AlertMetric, AlertRule
from engine.outputs import (
    METRICS,
    SCHEMA_VERSION,
    UNITS,
    VAR_METHODS,
    AlertPayload,
    BookExposure,
    CapitalPayload,
    CptPayload,
    CrossHedgeFigures,
    CrossHedgePayload,
    ExpiryColumns,
    HedgePayload,
    LiquidityPayload,
    Payload,
    Scope,
    SlippagePayload,
    SmilePayload,
    StrategyPayload,
    UnderlyingExposure,
    VarPayload,
)
from engine.outputs.wire import encode
from tests.factories import payload

S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S
Key = tuple[Scope, str, str | None, str | None]  # scope, book, underlying, expiry


def figures(
    scope: Scope,
    book: str,
    underlying: str | None,
    third: str | None,
    values: Mapping[str, float | None],
    ts_ns: int,
) -> Payload:
    """The payload that carries ``values`` at that scope key (every other figure NaN): an
    exposure (at expiry scope, an underlying's with that one expiry bucket), a VaR or hedge
    payload, a chain's smile (book ``*``) or a strategy holding (``third``: its text form)."""
    if scope == "book" and "var" in values:
        return payload(VarPayload, book=book, ts_ns=ts_ns, **values)
    if scope == "book":
        return payload(BookExposure, book=book, ts_ns=ts_ns, **values)
    assert underlying is not None
    if scope == "underlying":
        return payload(UnderlyingExposure, book=book, underlying=underlying, ts_ns=ts_ns, **values)
    if scope == "strategy":
        return payload(
            StrategyPayload, book=book, underlying=underlying, strategy=third, ts_ns=ts_ns, **values
        )
    if book == MARKET_BOOK:
        return payload(SmilePayload, underlying=underlying, expiry=third, ts_ns=ts_ns, **values)
    columns: dict[str, Any] = {name: [math.nan] for name in METRICS} | {"n_positions": [0]}
    columns |= {"n_stale": [0]} | {name: [value] for name, value in values.items()}
    expiries = ExpiryColumns(expiry=[third or ""], **columns)
    return payload(
        UnderlyingExposure, book=book, underlying=underlying, ts_ns=ts_ns, expiries=expiries
    )


def evaluate(
    engine: AlertEngine,
    scope: Scope,
    book: str,
    underlying: str | None,
    third: str | None,
    values: Mapping[str, float | None],
    ts_ns: int,
) -> list[AlertPayload]:
    """The transitions of ``values`` on one scope key, at ``ts_ns`` (:func:`figures`)."""
    return engine.check(figures(scope, book, underlying, third, values, ts_ns))


def rule(**overrides: Any) -> AlertRule:
    """A valid rule: delta_usd above 100 at underlying scope, overridable field by field."""
    fields: dict[str, Any] = {
        "name": "delta_limit",
        "metric": "delta_usd",
        "scope": "underlying",
        "above": 100.0,
    }
    fields.update(overrides)
    return AlertRule(**fields)


def feed(engine: AlertEngine, values: Sequence[float | None], **key: Any) -> list[str]:
    """Evaluate ``values`` one by one (1 s apart) on one key; the states of the transitions."""
    metric = key.pop("metric", "delta_usd")
    where = {"scope": "underlying", "book": "main", "underlying": "BTC", "expiry": None} | key
    states: list[str] = []
    for i, v in enumerate(values):
        states += [
            p.state
            for p in evaluate(
                engine,
                where["scope"],
                where["book"],
                where["underlying"],
                where["expiry"],
                {metric: v},
                T0 + i * S,
            )
        ]
    return states


# ------------------------------------------------------------------ limits


def test_above_raises_when_exceeded_and_clears_when_back() -> None:
    engine = AlertEngine([rule(above=100.0)])
    assert feed(engine, [50.0, 100.0, 101.0, 150.0, 99.0, 98.0]) == ["raised", "cleared"]


def test_below_raises_when_undercut_and_clears_when_back() -> None:
    engine = AlertEngine([rule(above=None, below=-100.0)])
    assert feed(engine, [0.0, -100.0, -101.0, -500.0, -99.0]) == ["raised", "cleared"]


def test_corridor_raises_on_either_side_and_jumps_across() -> None:
    engine = AlertEngine([rule(above=100.0, below=-100.0)])
    out = []
    for i, v in enumerate([0.0, 150.0, -150.0, 0.0]):
        out += evaluate(engine, "underlying", "main", "BTC", None, {"delta_usd": v}, T0 + i * S)
    assert [(p.state, p.direction, p.threshold) for p in out] == [
        ("raised", "above", 100.0),
        ("cleared", "above", 100.0),
        ("raised", "below", -100.0),
        ("cleared", "below", -100.0),
    ]


# ------------------------------------------------------------------ hysteresis


def test_hysteresis_stops_flapping_inside_the_band() -> None:
    engine = AlertEngine([rule(above=100.0, hysteresis=10.0)])
    oscillating = [101.0, 95.0, 101.0, 90.5, 100.5, 91.0, 101.0]
    assert feed(engine, oscillating) == ["raised"]
    assert feed(engine, [89.9]) == ["cleared"]


def test_hysteresis_mirrored_for_below() -> None:
    engine = AlertEngine([rule(above=None, below=0.0, hysteresis=5.0)])
    assert feed(engine, [-1.0, 4.0, -3.0, 4.99, 5.0]) == ["raised"]
    assert feed(engine, [5.01]) == ["cleared"]


def test_without_hysteresis_the_limit_itself_changes_nothing() -> None:
    engine = AlertEngine([rule(above=100.0)])
    assert feed(engine, [101.0, 100.0, 100.0]) == ["raised"]


# ------------------------------------------------------------------ cooldown


def at(engine: AlertEngine, t_s: float, v: float) -> list[str]:
    """The states of the transitions of delta_usd = ``v`` on main:BTC at ``t_s`` s."""
    got = evaluate(engine, "underlying", "main", "BTC", None, {"delta_usd": v}, T0 + int(t_s * S))
    return [p.state for p in got]


def test_cooldown_holds_back_a_new_raise_but_not_a_clear() -> None:
    engine = AlertEngine([rule(above=100.0, cooldown_s=60.0)])

    assert at(engine, 0, 150.0) == ["raised"]
    assert at(engine, 1, 50.0) == ["cleared"]  # clears go through during the cooldown
    assert at(engine, 2, 150.0) == []  # out again, but cooling down
    assert engine.active() == []
    assert at(engine, 59.9, 150.0) == []
    assert at(engine, 60, 150.0) == ["raised"]  # cooldown over and still out: raised now
    assert at(engine, 61, 50.0) == ["cleared"]
    assert at(engine, 119, 150.0) == []
    assert at(engine, 130, 50.0) == []  # back inside before the cooldown ended: nothing at all


def test_a_clock_stepped_back_does_not_stretch_the_cooldown() -> None:
    engine = AlertEngine([rule(above=100.0, cooldown_s=60.0)])

    assert at(engine, 3600, 150.0) == ["raised"]
    assert at(engine, 3601, 50.0) == ["cleared"]
    assert at(engine, 2, 150.0) == ["raised"]  # the clock went back an hour: no hour-long cooldown
    assert at(engine, 3, 50.0) == ["cleared"]
    assert at(engine, 30, 150.0) == []  # the cooldown of that raise holds as usual


def test_cooldown_is_per_key() -> None:
    engine = AlertEngine([rule(above=100.0, cooldown_s=60.0)])
    assert feed(engine, [150.0, 50.0, 150.0], underlying="BTC") == ["raised", "cleared"]
    assert feed(engine, [150.0], underlying="ETH") == ["raised"]


# ------------------------------------------------------------------ scope and filters


def test_rules_see_only_their_scope() -> None:
    engine = AlertEngine([rule(scope="book", name="book_limit")])
    assert evaluate(engine, "underlying", "main", "BTC", None, {"delta_usd": 1e9}, T0) == []
    assert evaluate(engine, "expiry", "main", "BTC", "28JUN24", {"delta_usd": 1e9}, T0) == []
    out = evaluate(engine, "book", "main", None, None, {"delta_usd": 1e9}, T0)
    assert [p.id for p in out] == ["book_limit:main"]


def test_filters_on_book_underlying_and_expiry() -> None:
    engine = AlertEngine(
        [
            rule(name="btc_only", underlying="BTC"),
            rule(name="desk_only", book="desk"),
            rule(name="jun", scope="expiry", underlying="ETH", expiry="28JUN24"),
        ]
    )
    big = {"delta_usd": 1e9}
    keys: list[Key] = [
        ("underlying", "main", "BTC", None),
        ("underlying", "main", "ETH", None),
        ("underlying", "desk", "ETH", None),
        ("expiry", "main", "ETH", "28JUN24"),
        ("expiry", "main", "ETH", "27SEP24"),
        ("expiry", "main", "BTC", "28JUN24"),
    ]
    ids = [p.id for key in keys for p in evaluate(engine, *key, big, T0)]
    assert ids == ["btc_only:main:BTC", "desk_only:desk:ETH", "jun:main:ETH:28JUN24"]


def test_keys_are_independent() -> None:
    engine = AlertEngine([rule()])
    assert feed(engine, [150.0], underlying="BTC") == ["raised"]
    assert feed(engine, [150.0], underlying="ETH") == ["raised"]
    assert feed(engine, [50.0], underlying="BTC") == ["cleared"]
    assert [a.id for a in engine.active()] == ["delta_limit:main:ETH"]


# ------------------------------------------------------------------ missing values


@pytest.mark.parametrize("missing", [math.nan, None])
def test_nan_and_none_neither_raise_nor_clear(missing: float | None) -> None:
    engine = AlertEngine([rule()])
    assert feed(engine, [missing, missing]) == []
    assert feed(engine, [150.0, missing, missing]) == ["raised"]
    assert len(engine.active()) == 1


def test_a_figure_absent_from_values_changes_nothing() -> None:
    engine = AlertEngine([rule(metric="vega")])
    assert evaluate(engine, "underlying", "main", "BTC", None, {"delta_usd": 1e9}, T0) == []


# ------------------------------------------------------------------ stale feed


def test_stale_feed_raises_once_and_clears_when_back() -> None:
    engine = AlertEngine([], stale_severity="warning")
    (raised,) = engine.feed_stale("deribit", True, 12.5, T0)
    assert engine.feed_stale("deribit", True, 20.0, T0 + S) == []
    assert [a.id for a in engine.active()] == ["stale_feed:deribit"]
    (cleared,) = engine.feed_stale("deribit", False, 0.0, T0 + 2 * S)
    assert engine.feed_stale("deribit", False, 0.0, T0 + 3 * S) == []
    assert engine.active() == []
    assert raised.state == "raised"
    assert cleared.state == "cleared"
    for p in (raised, cleared):
        assert p.id == "stale_feed:deribit"
        assert p.alert == "stale_feed"
        assert p.feed == "deribit"
        assert p.severity == "warning"
        assert p.v == SCHEMA_VERSION
        assert p.unit == "s"
    assert raised.value == 12.5


def test_stale_feed_never_cleared_without_a_raise() -> None:
    assert AlertEngine([]).feed_stale("mqtt", False, 0.0, T0) == []


# ------------------------------------------------------------------ payloads


def test_payload_fields() -> None:
    engine = AlertEngine([rule(severity="critical", hysteresis=5.0)])
    t = T0 + 123_456_789
    (p,) = engine.check(
        payload(
            UnderlyingExposure,
            book="main",
            underlying="BTC",
            delta_usd=150.0,
            ts_ns=t,
            valuation_ts_ns=t - 5,
        )
    )
    assert msgspec.json.decode(encode(p)) == {
        "v": SCHEMA_VERSION,
        "ts": t // 1_000_000,
        "ts_ns": t,
        "valuation_ts_ns": t - 5,  # the payload's that raised it
        "id": "delta_limit:main:BTC",
        "alert": "delta_limit",
        "state": "raised",
        "severity": "critical",
        "metric": "delta_usd",
        "scope": "underlying",
        "book": "main",
        "underlying": "BTC",
        "expiry": None,
        "strategy": None,
        "value": 150.0,
        "threshold": 100.0,
        "direction": "above",
        "unit": UNITS["delta_usd"],
    }
    (c,) = evaluate(engine, "underlying", "main", "BTC", None, {"delta_usd": 10.0}, t + S)
    assert c.id == p.id
    assert c.state == "cleared"
    assert c.value == 10.0
    assert c.threshold == 100.0


def test_ids_are_stable_across_transitions_and_scopes() -> None:
    engine = AlertEngine(
        [rule(name="b", scope="book"), rule(name="u"), rule(name="e", scope="expiry")]
    )
    keys: list[Key] = [
        ("book", "main", None, None),
        ("underlying", "main", "BTC", None),
        ("expiry", "main", "BTC", "28JUN24"),
    ]
    seen: dict[str, set[str]] = {}
    for i, v in enumerate([150.0, 0.0, 150.0, 0.0]):
        for key in keys:
            for p in evaluate(engine, *key, {"delta_usd": v}, T0 + i * S):
                seen.setdefault(p.alert, set()).add(p.id)
    assert seen == {"b": {"b:main"}, "u": {"u:main:BTC"}, "e": {"e:main:BTC:28JUN24"}}


def test_counts_have_count_unit() -> None:
    engine = AlertEngine([rule(name="stale_legs", metric="n_stale", scope="book", above=0.0)])
    (p,) = evaluate(engine, "book", "main", None, None, {"n_stale": 3}, T0)
    assert p.unit == "count"
    assert p.metric == "n_stale"


def test_active_returns_the_latest_raise_frozen() -> None:
    engine = AlertEngine([rule()])
    feed(engine, [150.0, 160.0])
    (a,) = engine.active()
    assert (a.state, a.value) == ("raised", 150.0)
    with pytest.raises(AttributeError):
        a.state = "cleared"  # type: ignore[misc]  # frozen: the test is that it fails


def test_rules_read_only_the_payload_that_carries_their_figure() -> None:
    """An underlying-scope ``delta`` rule reads exposures, not the hedge payload's ``delta``
    (the same name, another figure); a hedge rule reads hedge payloads only."""
    engine = AlertEngine(
        [
            rule(name="d", metric="delta", above=1.0),
            rule(name="h", metric="hedge_contracts", above=1.0),
        ]
    )
    hedge = payload(HedgePayload, book="main", underlying="BTC", delta=5.0, hedge_contracts=0.0)
    assert engine.check(hedge) == []
    exposure = payload(UnderlyingExposure, book="main", underlying="BTC", delta=5.0)
    assert [t.id for t in engine.check(exposure)] == ["d:main:BTC"]
    hedge = msgspec.structs.replace(hedge, hedge_contracts=3.0)
    assert [t.id for t in engine.check(hedge)] == ["h:main:BTC"]


def test_stale_feeds_lists_the_raised_ones() -> None:
    engine = AlertEngine([])
    engine.feed_stale("a", True, 11.0, T0)
    engine.feed_stale("b", True, 11.0, T0)
    engine.feed_stale("a", False, 0.0, T0 + S)
    assert engine.stale_feeds() == ["b"]


# ------------------------------------------------------------------ validation


def test_alert_metric_literal_matches_the_outputs_contract() -> None:
    assert get_args(AlertMetric) == ALERT_METRICS


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"above": None, "below": None}, "set `above`, `below`, or both"),
        ({"above": math.nan}, "must be finite"),
        ({"below": math.inf}, "must be finite"),
        ({"above": 1.0, "below": 2.0}, "below < above"),
        ({"hysteresis": -1.0}, "hysteresis"),
        ({"cooldown_s": -0.5}, "cooldown_s"),
        ({"metric": "price"}, "unknown metric"),
        ({"scope": "desk"}, "unknown scope"),
        ({"scope": "book", "underlying": "BTC"}, "cannot filter on `underlying`"),
        ({"expiry": "28JUN24"}, "only an expiry-scope rule"),
        ({"name": "stale_feed"}, "reserved"),
        ({"name": "has:colon"}, "a name is"),
        ({"name": ""}, "a name is"),
    ],
)
def test_invalid_rules_are_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rule(**overrides)


def test_config_decoding_validates_with_a_path() -> None:
    raw = {"name": "x", "metric": "vega", "scope": "book", "above": 1.0, "hysteresis": -1.0}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.hysteresis"):
        msgspec.convert(raw, AlertRule)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({**raw, "hysteresis": 0.0, "abvoe": 2.0}, AlertRule)
    ok = msgspec.convert({**raw, "hysteresis": 0.5}, AlertRule)
    assert ok.severity == "warning"


def test_duplicate_rule_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="unique: delta_limit"):
        AlertEngine([rule(), rule(scope="book")])


# ------------------------------------------------------------------ property


@settings(max_examples=200, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["BTC", "ETH"]),
            st.one_of(
                st.none(),
                st.just(math.nan),
                st.floats(min_value=-300.0, max_value=300.0, allow_nan=False),
            ),
            st.integers(min_value=0, max_value=30 * S),
        ),
        max_size=80,
    ),
    hysteresis=st.floats(min_value=0.0, max_value=50.0),
    cooldown_s=st.sampled_from([0.0, 1.0, 10.0]),
    corridor=st.booleans(),
)
def test_transitions_alternate_per_key(
    steps: list[tuple[str, float | None, int]], hysteresis: float, cooldown_s: float, corridor: bool
) -> None:
    engine = AlertEngine(
        [
            rule(
                above=100.0,
                below=-100.0 if corridor else None,
                hysteresis=hysteresis,
                cooldown_s=cooldown_s,
            )
        ]
    )
    last: dict[str, str] = {}
    now = T0
    for underlying, value, dt in steps:
        now += dt
        for p in evaluate(
            engine, "underlying", "main", underlying, None, {"delta_usd": value}, now
        ):
            previous = last.get(p.id, "cleared")
            assert p.state != previous, "a transition repeats the state it leaves"
            if p.state == "cleared":
                assert previous == "raised", "a clear without a prior raise"
            last[p.id] = p.state
        active = {a.id for a in engine.active()}
        assert active == {i for i, s in last.items() if s == "raised"}


@pytest.mark.parametrize("metric", ["delta", "delta_adj", "gamma", "vanna"])
def test_book_scope_refuses_figures_that_do_not_add_across_underlyings(metric: str) -> None:
    with pytest.raises(ValueError, match="underlying units"):
        AlertRule(name="r", metric=metric, scope="book", above=1.0)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"metric": "var", "scope": "underlying"}, "var is published at book scope only"),
        ({"metric": "hedge_contracts", "scope": "book"}, "at underlying scope only"),
        ({"metric": "rr25", "scope": "underlying"}, "at expiry scope only"),
        ({"metric": "rr25", "scope": "expiry", "book": "main"}, "a market figure of no book"),
    ],
)
def test_risk_figures_are_watched_at_their_own_scope(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rule(**overrides)


def test_risk_figures_raise_with_their_units() -> None:
    """VaR at book scope (USD), the 25-delta risk reversal of a market expiry (book ``*``)."""
    engine = AlertEngine(
        [
            rule(name="var", metric="var", scope="book", above=1e6),
            rule(name="skew", metric="rr25", scope="expiry", underlying="BTC", below=-0.05),
        ]
    )
    (var,) = evaluate(engine, "book", "main", None, None, {"var": 2e6}, 1)
    assert (var.id, var.unit) == ("var:main", "USD")
    (rr,) = evaluate(engine, "expiry", "*", "BTC", "2024-12-27T08:00:00Z", {"rr25": -0.08}, 1)
    assert (rr.id, rr.unit, rr.direction) == (
        "skew:*:BTC:2024-12-27T08:00:00Z",
        "decimal",
        "below",
    )


def test_capital_utilisation_raises_per_book() -> None:
    """A book's share of the firm's risk over its budget (the capital payload, book scope)."""
    engine = AlertEngine(
        [rule(name="budget", metric="capital_utilisation", scope="book", above=0.9)]
    )
    under = payload(CapitalPayload, book="main", ts_ns=1, capital_utilisation=0.5)
    assert engine.check(under) == []
    (t,) = engine.check(payload(CapitalPayload, book="main", ts_ns=2, capital_utilisation=1.2))
    assert (t.id, t.unit, t.value) == ("budget:main", "fraction of budget", 1.2)
    with pytest.raises(ValueError, match="book scope only"):
        rule(name="b", metric="capital_usd", scope="underlying", above=1.0)


def test_strategy_scope_watches_a_holdings_figures_keyed_by_its_text() -> None:
    spread = "vertical:BTC-27DEC24-60000-C/65000"
    engine = AlertEngine(
        [rule(name="spread_loss", metric="pnl", scope="strategy", strategy=spread, below=-1e4)]
    )
    assert evaluate(engine, "strategy", "main", "BTC", "straddle:X", {"pnl": -2e4}, 1) == []
    (t,) = evaluate(engine, "strategy", "main", "BTC", spread, {"pnl": -2e4}, 1)
    assert t.id == f"spread_loss:main:BTC:{spread}"
    assert (t.scope, t.strategy, t.expiry, t.unit) == ("strategy", spread, None, "USD")
    (c,) = evaluate(engine, "strategy", "main", "BTC", spread, {"pnl": 0.0}, 2)
    assert (c.state, c.id) == ("cleared", t.id)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"scope": "strategy", "metric": "var"}, "takes an exposure figure"),
        ({"scope": "underlying", "strategy": "vertical:X"}, "only a strategy-scope rule"),
    ],
)
def test_strategy_rules_are_checked(overrides: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        rule(**overrides)


# ------------------------------------------------------------------ liquidity, cross hedge, CPT


def _liquidity(metric: str, value: float | None) -> Payload:
    return payload(LiquidityPayload, book="main", **{metric: value})


def _cross(metric: str, value: float | None) -> Payload:
    return payload(CrossHedgePayload, book="main", **{metric: value})


def _r2(_: str, value: float | None) -> Payload:
    hedge = None if value is None else payload(CrossHedgeFigures, r2=value)
    return payload(CrossHedgePayload, book="main", hedge=hedge)


def _cpt(field: str) -> Any:
    return lambda _, value: payload(CptPayload, book="main", **{field: value})


def _slippage(_: str, value: float | None) -> Payload:
    return payload(SlippagePayload, book="main", underlying="BTC", slippage_usd=value)


_BOOK_FIGURES: Final = [
    *(
        (m, _liquidity, "USD")
        for m in (
            "exit_cost_usd",
            "liquidity_cost_usd",
            "lvar",
            "les",
            *(f"{k}_{m}" for m in VAR_METHODS for k in ("lvar", "les")),
        )
    ),
    ("beta_delta_total", _cross, "benchmark units"),
    ("beta_gamma_total", _cross, "benchmark units per 1 benchmark unit move"),
    ("beta_delta_usd", _cross, "USD"),
    ("hedge_r2", _r2, "fraction"),
    ("cpt_value", _cpt("value"), "value-function units (USD^alpha)"),
    ("cpt_certainty_equivalent", _cpt("certainty_equivalent"), "USD"),
]


@pytest.mark.parametrize(("metric", "make", "unit"), _BOOK_FIGURES)
def test_liquidity_cross_hedge_and_cpt_figures_raise_and_clear_per_book(
    metric: str, make: Any, unit: str
) -> None:
    """Each figure is read from the payload that publishes it (the liquidity payload's ``lvar``,
    the cross hedge's ``hedge.r2``, the CPT payload's ``value``...), at book scope, with its
    unit: below the limit nothing, above it raised, back under it cleared."""
    engine = AlertEngine([rule(name="r", metric=metric, scope="book", above=0.5)])
    assert engine.check(make(metric, 0.25)) == []
    (t,) = engine.check(msgspec.structs.replace(make(metric, 0.75), ts_ns=T0 + S))
    assert (t.id, t.state, t.metric, t.scope, t.value, t.unit) == (
        "r:main",
        "raised",
        metric,
        "book",
        0.75,
        unit,
    )
    assert engine.check(msgspec.structs.replace(make(metric, None), ts_ns=T0 + 2 * S)) == []
    (c,) = engine.check(msgspec.structs.replace(make(metric, 0.25), ts_ns=T0 + 3 * S))
    assert (c.id, c.state, c.value) == ("r:main", "cleared", 0.25)
    with pytest.raises(ValueError, match="book scope only"):
        rule(name="u", metric=metric, scope="underlying", above=1.0)


def test_slippage_raises_and_clears_per_book_and_underlying() -> None:
    """The expected slippage of a (book, underlying)'s hedge against the future's order book."""
    engine = AlertEngine(
        [rule(name="slip", metric="slippage_usd", scope="underlying", above=500.0)]
    )
    assert engine.check(_slippage("", 100.0)) == []
    (t,) = engine.check(msgspec.structs.replace(_slippage("", 800.0), ts_ns=T0 + S))
    assert (t.id, t.state, t.value, t.unit) == ("slip:main:BTC", "raised", 800.0, "USD")
    (c,) = engine.check(msgspec.structs.replace(_slippage("", 10.0), ts_ns=T0 + 2 * S))
    assert (c.id, c.state) == ("slip:main:BTC", "cleared")
    with pytest.raises(ValueError, match="underlying scope only"):
        rule(name="b", metric="slippage_usd", scope="book", above=1.0)


def test_liquidity_rules_read_only_the_liquidity_payload() -> None:
    """``var`` and ``es`` are also fields of the liquidity payload: a ``var`` rule reads the VaR
    payload's, an ``lvar`` rule the liquidity payload's."""
    engine = AlertEngine(
        [rule(name="v", metric="var", scope="book", above=1.0),
         rule(name="l", metric="lvar", scope="book", above=1.0)]
    )  # fmt: skip
    liquidity = payload(LiquidityPayload, book="main", var=5.0, lvar=0.5)
    assert engine.check(liquidity) == []
    (t,) = engine.check(msgspec.structs.replace(liquidity, lvar=6.0))
    assert t.id == "l:main"
