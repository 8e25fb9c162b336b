"""Tests for the bulk paths of a start: parse_names gives parse_name's instruments,
MarketData.rows the state of MarketData.row one by one, MarketData.track_many that of
track_users one by one."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import market as market_module
from engine.curves import ZeroCurve
from engine.instruments import (
    Instrument,
    InstrumentRegistry,
    Kind,
    parse_name,
    parse_names,
)
from engine.market import MarketData, UnderlyingParams

# Pieces of names, good and bad: the bulk parser must agree with parse_name on each mix.
BASES = ("BTC", "ETH", "MATIC_USDC", "BTC_USDC", "btc", "BTC_", "")
DATES = ("27DEC24", "28MAR25", "9MAR24", "31FEB24", "0DEC24", "27Dec24", "PERPETUAL", "27DEC2024")
STRIKES = ("60000", "1d02", "0", "0d0", "1d", "d1", "1d2d3", "6\u06600", "9" * 400, "01", "")
KINDS = ("C", "P", "X", "", "C\n")
US_NAMES = (
    "SPXW  241220P05900000",
    "SPXW241220P05900000",
    "SPY   241220C00500000",
    "SPY",
    "SPX",
    "ESZ4",
    "EW1F5 P5800",
    "btc_usd",
)

name_st = st.one_of(
    st.builds(
        lambda parts: "-".join(parts),
        st.tuples(
            st.sampled_from(BASES), st.sampled_from(DATES), st.sampled_from(STRIKES),
            st.sampled_from(KINDS),
        ),
    ),
    st.builds(lambda b, d: f"{b}-{d}", st.sampled_from(BASES), st.sampled_from(DATES)),
    st.sampled_from(US_NAMES),
    st.text(alphabet="BTC-27DE4C0P1d_", max_size=24),
)  # fmt: skip


@settings(max_examples=300)
@given(names=st.lists(name_st, max_size=30))
def test_parse_names_gives_parse_names_instruments(names: list[str]) -> None:
    """Mixes of options sharing prefixes, bad strikes, bad dates, futures, US names: the
    same instruments (or None) as parse_name of each."""
    assert parse_names(names) == [parse_name(n) for n in names]


def test_parse_names_on_every_piece_combination() -> None:
    names = ["-".join(p) for p in itertools.product(BASES, DATES, STRIKES, KINDS)]
    got = parse_names([*names, *US_NAMES])
    assert got == [parse_name(n) for n in [*names, *US_NAMES]]
    assert sum(i is not None and i.kind == Kind.OPTION for i in got) > 50


def test_resolve_keeps_the_registrys_own_instruments_first() -> None:
    custom = Instrument(name="BTC-27DEC24-60000-C", kind=Kind.OPTION, underlying="BTC",
                        index="btc_usd", expiry_ns=1, strike=60_000.0, is_call=True,
                        multiplier=5.0)  # fmt: skip
    registry = InstrumentRegistry([custom], parsed_kept=2)
    names = ["BTC-27DEC24-60000-C", "BTC-27DEC24-70000-C", "nope", "ETH-27DEC24-3000-P", "ESZ4"]
    got = registry.resolve(names)
    assert got[0] is custom
    assert got[1:] == [parse_name(n) for n in names[1:]]
    assert len(registry) == 3  # its own one and two parsed ones kept


NOW_NS = 1_730_000_000 * 10**9
CURVE = ZeroCurve(np.array([0.5, 1.0, 2.0]), np.array([0.04, 0.05, 0.045]))
PARAMS = {
    "BTC": UnderlyingParams(rate=0.01, dividend_yield=0.02),
    "SPX": UnderlyingParams(dividend_yield=0.013, curve=CURVE, implied_carry=True),
    "SPY": UnderlyingParams(rate=0.05, implied_carry=True),
}
HELD = (
    "BTC-27DEC24-60000-C",
    "BTC-27DEC24-70000-P",
    "BTC-28MAR25-60000-C",
    "ETH-27DEC24-3000-P",
    "SOL_USDC-27DEC24-150-C",
    "BTC-27DEC24",
    "BTC-PERPETUAL",
    "BTC_USDC",
    "SPXW  241220P05900000",
    "SPXW  241220C06000000",
    "SPY   241220C00500000",  # American
    "SPY   241220P00480000",
    "SPY",
    "ESZ4",
    "EW1F5 P5800",  # on the future ESH5: priced on ESH5's expiry
)


def market() -> MarketData:
    m = MarketData(InstrumentRegistry(), PARAMS, american_accuracy="accurate")
    m.valuation_ns = NOW_NS
    m.set_carry("SPY", 1_734_728_400 * 10**9, 0.011)  # before the rows: they take it
    return m


def state(m: MarketData) -> dict[str, Any]:
    out: dict[str, Any] = {"n": m.cols.n, "n_american": m.n_american}
    for name, values in m.cols.arrays.items():
        out[name] = values[: m.cols.n].tolist()
    for name, table in (("spots", m.spots), ("fwds", m.fwds)):
        out[name] = (table.ids, table.dependents, table.cols.n)
    out["rows"] = m._rows
    out["defs"] = m.defs
    out["curve_rows"] = m.carries._curve_rows
    out["carry_rows"] = m.carries._carry_rows
    out["dividend_rows"] = m.carries._dividend_rows
    return out


def assert_same(a: MarketData, b: MarketData) -> None:
    sa, sb = state(a), state(b)
    for key in sa:
        assert repr(sa[key]) == repr(sb[key]), key  # NaN == NaN as text


def instruments(names: list[str]) -> list[Instrument]:
    out = [parse_name(n) for n in names]
    assert all(i is not None for i in out)
    return [i for i in out if i is not None]


@pytest.mark.parametrize("chunk", [3, 65_536])
@settings(max_examples=60, deadline=None)
@given(
    picks=st.lists(st.sampled_from(HELD), max_size=40),
    before=st.lists(st.sampled_from(HELD), max_size=5),
)
def test_rows_is_row_by_row(chunk: int, picks: list[str], before: list[str]) -> None:
    """Any mix (repeats, rows known before, options on spot with curves and implied carry,
    American options, an option on a future), in chunks or at once: the same rows and every
    column, source, dependent, curve and carry list as row() one by one."""
    saved = market_module._FILL_CHUNK
    market_module._FILL_CHUNK = chunk
    try:
        one, bulk = market(), market()
        for name in before:
            one.row(instruments([name])[0])
            bulk.row(instruments([name])[0])
        insts = instruments(picks)
        rows = [one.row(i) for i in insts]
        assert bulk.rows(insts).tolist() == rows
        assert_same(one, bulk)
    finally:
        market_module._FILL_CHUNK = saved


def test_rows_covers_every_held_kind() -> None:
    """The fixture exercises what it claims: American rows, curve and carry rows, an option
    priced on its future's expiry, inverse rows."""
    m = market()
    m.rows(instruments(list(HELD)))
    a = m.cols.arrays
    assert m.n_american == 2
    assert a["american"][: m.cols.n].sum() > 0
    assert m.carries._curve_rows["SPX"]
    assert m.carries._carry_rows
    assert 0.011 in a["q"][: m.cols.n].tolist()
    esh5 = instruments(["ESH5"])[0]
    assert m.fwds.ids[("SPX", esh5.expiry_ns)] == a["fwd_row"][m._rows["EW1F5 P5800"]]
    assert a["inverse"][: m.cols.n].any()
    assert not a["inverse"][: m.cols.n].all()


def test_rows_refuses_an_index_and_adds_nothing() -> None:
    m = market()
    with pytest.raises(ValueError, match="cannot be held"):
        m.rows(instruments(["BTC-27DEC24-60000-C", "btc_usd"]))
    assert m.cols.n == 0
    assert not m._rows
    assert not m.defs


@settings(max_examples=40, deadline=None)
@given(
    spot=st.lists(st.booleans(), min_size=len(HELD) * 6, max_size=len(HELD) * 6),
    fwd=st.lists(st.booleans(), min_size=len(HELD) * 6, max_size=len(HELD) * 6),
    some=st.sets(st.integers(0, len(HELD) * 6 - 1)),
    stale=st.sets(st.integers(0, len(HELD) * 6 - 1)),
)
def test_track_many_is_track_users_one_by_one(
    spot: list[bool], fwd: list[bool], some: set[int], stale: set[int]
) -> None:
    """Whatever the flags and the users recorded before (rows to add, rows to drop, rows
    already there), many rows at once (grouped, above 64) or few: the same users."""
    names = [f"BTC-27DEC24-{k}-C" for k in range(1, 5 * len(HELD) + 1)] + list(HELD)
    markets = []
    for _ in range(2):
        m = market()
        m.rows(instruments(names))
        m.cols.arrays["uses_spot"][: m.cols.n] = spot
        m.cols.arrays["uses_fwd"][: m.cols.n] = fwd
        for table in (m.spots, m.fwds):
            for users in table.users:
                users.update(stale)
        markets.append(m)
    one, bulk = markets
    for rows in (np.arange(one.cols.n, dtype=np.int64), np.array(sorted(some), dtype=np.int64)):
        for i in rows.tolist():
            one.track_users(i)
        bulk.track_many(rows)
        assert one.spots.users == bulk.spots.users
        assert one.fwds.users == bulk.fwds.users
