"""Tests for US listed names: engine.listed (OSI and CME symbology, roots) and
engine.instruments.parse_us_name (the instruments, their settlement instants), the registry and
the ``[[instruments]]`` config.

Expected instants are UTC wall-clock times written by hand (EST = UTC-5, EDT = UTC-4).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.daycount import year_fraction
from engine.errors import ConfigError
from engine.instruments import (
    Delivery,
    Exercise,
    InstrumentRegistry,
    Kind,
    SettleTiming,
    parse_name,
    parse_us_name,
)
from engine.listed import (
    CME_OPTION_CODES,
    OCC_ROOTS,
    CmeOption,
    ListedFuture,
    format_cme_future,
    format_cme_option,
    format_osi,
    format_osi_compact,
    parse_cme_future,
    parse_cme_option,
    parse_osi,
)
from engine.market import MarketData
from engine.runtime.config import load_config


def utc_ns(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()) * 1_000_000_000


# ------------------------------------------------------------------------------ OSI symbols
def test_osi_forms_parse_to_the_same_contract() -> None:
    forms = ["SPXW  241220P05900000", "SPXW241220P05900000", "SPXW241220P5900"]
    parsed = {parse_osi(s) for s in forms}
    assert len(parsed) == 1
    (occ,) = parsed
    assert occ is not None
    assert (occ.root, occ.expiry, occ.is_call, occ.strike) == (
        "SPXW",
        date(2024, 12, 20),
        False,
        5900.0,
    )
    assert format_osi("SPXW", date(2024, 12, 20), False, 5900.0) == "SPXW  241220P05900000"
    assert len(format_osi("SPXW", date(2024, 12, 20), False, 5900.0)) == 21
    assert format_osi_compact("SPY", date(2024, 12, 20), True, 595.5) == "SPY241220C595.5"
    assert parse_osi("SPY   241220C00595500") == parse_osi("SPY241220C595.5")


@given(
    root=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=6),
    expiry=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    is_call=st.booleans(),
    milli=st.integers(1, 99_999_999),
)
def test_osi_round_trips(root: str, expiry: date, is_call: bool, milli: int) -> None:
    strike = milli / 1000
    for text in (
        format_osi(root, expiry, is_call, strike),
        format_osi_compact(root, expiry, is_call, strike),
    ):
        occ = parse_osi(text)
        assert occ is not None, text
        assert (occ.root, occ.expiry, occ.is_call, occ.strike) == (root, expiry, is_call, strike)
    assert format_osi(root, expiry, is_call, strike)[:6] == f"{root:<6}"


@pytest.mark.parametrize(
    "symbol",
    [
        "SPXW 241220P05900000",  # padded, but not to 6
        "SPXW   241220P05900000",  # padded past 6
        "SPXW  241220X05900000",  # neither C nor P
        "SPXW  241320P05900000",  # month 13
        "SPXW  240230P05900000",  # 30 February
        "SPXW  241220P00000000",  # strike 0
        "SPXW241220P05900",  # leading zero, not 8 digits
        "SPXW241220P5900.0001",  # finer than 0.001
        "SPXW241220P123456",  # 100 000 and over
        "spxw241220P5900",  # lower case
        "SPXW241220P5900\n",
        "SPXWXYZ241220P5900",  # root of 7
        "SPXW241220P",
        "",
    ],
)
def test_invalid_osi_symbols_are_refused(symbol: str) -> None:
    assert parse_osi(symbol) is None
    assert parse_name(symbol) is None


def test_format_osi_refuses_what_osi_cannot_hold() -> None:
    with pytest.raises(ValueError, match="root"):
        format_osi("SPXWEEK", date(2024, 12, 20), True, 1.0)
    with pytest.raises(ValueError, match="year"):
        format_osi("SPX", date(2100, 1, 1), True, 1.0)
    with pytest.raises(ValueError, match="strike"):
        format_osi("SPX", date(2024, 12, 20), True, 0.0005)
    with pytest.raises(ValueError, match="strike"):
        format_osi("SPX", date(2024, 12, 20), True, 100_000.0)


# ------------------------------------------------------------------------------ CME symbols
def test_cme_symbols() -> None:
    assert parse_cme_future("ESZ4") == ListedFuture("ES", 2024, 12)
    assert parse_cme_future("ESZ24") == ListedFuture("ES", 2024, 12)
    assert parse_cme_future("ESZ4", year_from=2030) == ListedFuture("ES", 2034, 12)
    assert parse_cme_future("ESZ9", year_from=2017) == ListedFuture("ES", 2019, 12)
    assert parse_cme_future("ESF5") is None  # ES futures are quarterly
    assert format_cme_future(ListedFuture("ES", 2034, 12)) == "ESZ34"  # outside 2020-2029
    assert parse_us_name("ESZ99 C6000") == parse_us_name("ESZ99 C6000")
    assert parse_cme_option("EW1F5 P5800") == CmeOption("EW1", 2025, 1, False, 5800.0)
    assert parse_cme_option("ESF5 C5000") is None  # quarterly options: quarterly months only
    assert parse_cme_option("E5AF5 C5000") is None  # January 2025 has four Mondays
    assert parse_cme_option("E5AH5 C5000") is not None  # March 2025 has five
    for bad in ("ESZ4C5900", "ESZ4  C5900", "ESZ4 C05900", "EW5F5 C5000", "E1EF5 C5000", "NQZ4"):
        assert parse_cme_future(bad) is None, bad
        assert parse_cme_option(bad) is None, bad


@given(
    code=st.sampled_from(sorted(CME_OPTION_CODES)),
    year=st.integers(2020, 2029),
    month=st.integers(1, 12),
    is_call=st.booleans(),
    strike=st.integers(1, 999_999),
)
def test_cme_option_round_trips(
    code: str, year: int, month: int, is_call: bool, strike: int
) -> None:
    option = CmeOption(code, year, month, is_call, float(strike))
    parsed = parse_cme_option(format_cme_option(option))
    if parsed is not None:  # None: a day the month lacks, or ES in a serial month
        assert parsed == option
    else:
        assert code == "ES" or code.startswith("E5")


@given(year=st.integers(2020, 2029), month=st.sampled_from([3, 6, 9, 12]))
def test_cme_future_round_trips(year: int, month: int) -> None:
    future = ListedFuture("ES", year, month)
    assert parse_cme_future(format_cme_future(future)) == future


# ------------------------------------------------------------------------------ every root
SPXW_0DTE = "SPXW  241220P05900000"


@pytest.mark.parametrize(
    ("name", "canonical", "fields", "expiry_utc"),
    [
        (
            "SPX241220C5900",  # AM monthly: SOQ at the 09:30 ET open of Friday 20 Dec 2024
            "SPX   241220C05900000",
            ("SPX", "SPX", 100.0, Exercise.EUROPEAN, Delivery.CASH, SettleTiming.AM, "cboe", None),
            (2024, 12, 20, 14, 30),
        ),
        (
            "SPX   250417C05000000",  # April 2025: third Friday is Good Friday -> Thursday
            "SPX   250417C05000000",
            ("SPX", "SPX", 100.0, Exercise.EUROPEAN, Delivery.CASH, SettleTiming.AM, "cboe", None),
            (2025, 4, 17, 13, 30),
        ),
        (
            "SPXW241220P5900",
            SPXW_0DTE,
            ("SPX", "SPX", 100.0, Exercise.EUROPEAN, Delivery.CASH, SettleTiming.PM, "cboe", None),
            (2024, 12, 20, 21, 0),
        ),
        (
            "SPXW241224P5900",  # Christmas Eve: early close at 13:00 ET
            "SPXW  241224P05900000",
            ("SPX", "SPX", 100.0, Exercise.EUROPEAN, Delivery.CASH, SettleTiming.PM, "cboe", None),
            (2024, 12, 24, 18, 0),
        ),
        (
            "XSP250620C600",  # EDT
            "XSP   250620C00600000",
            ("XSP", "XSP", 100.0, Exercise.EUROPEAN, Delivery.CASH, SettleTiming.PM, "cboe", None),
            (2025, 6, 20, 20, 0),
        ),
        (
            "SPY   241220C00595500",
            "SPY   241220C00595500",
            (
                "SPY",
                "SPY",
                100.0,
                Exercise.AMERICAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "opra",
                None,
            ),
            (2024, 12, 20, 21, 0),
        ),
        (
            "SPY130119C150",  # a pre-2015 Saturday expiry: settles at Friday's close
            "SPY   130119C00150000",
            (
                "SPY",
                "SPY",
                100.0,
                Exercise.AMERICAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "opra",
                None,
            ),
            (2013, 1, 18, 21, 0),
        ),
        (
            "ESZ4 C5900",  # quarterly: American, SOQ, on the December future
            "ESZ4 C5900",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.AMERICAN,
                Delivery.PHYSICAL,
                SettleTiming.AM,
                "cme",
                "ESZ4",
            ),
            (2024, 12, 20, 14, 30),
        ),
        (
            "EW1F5 P5800",  # first Friday of January 2025, PM, on the March future
            "EW1F5 P5800",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESH5",
            ),
            (2025, 1, 3, 21, 0),
        ),
        (
            "EW3U5 C6000",  # third Friday of September at 16:00: after ESU5's SOQ -> ESZ5
            "EW3U5 C6000",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESZ5",
            ),
            (2025, 9, 19, 20, 0),
        ),
        (
            "EWH4 C5000",  # end of March 2024: the 29th is Good Friday -> Thursday 28th
            "EWH4 C5000",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESM4",
            ),
            (2024, 3, 28, 20, 0),
        ),
        (
            "E2AH5 P5500",  # second Monday of March 2025 (EDT from the 9th)
            "E2AH5 P5500",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESH5",
            ),
            (2025, 3, 10, 20, 0),
        ),
        (
            "E1BZ4 C6000",  # first Tuesday of December 2024
            "E1BZ4 C6000",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESZ4",
            ),
            (2024, 12, 3, 21, 0),
        ),
        (
            "E3CH5 C5700",  # third Wednesday of March 2025: before ESH5's SOQ on Friday
            "E3CH5 C5700",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESH5",
            ),
            (2025, 3, 19, 20, 0),
        ),
        (
            "E4DK4 C5000",  # fourth Thursday of May 2024
            "E4DK4 C5000",
            (
                "SPX",
                "SPX",
                50.0,
                Exercise.EUROPEAN,
                Delivery.PHYSICAL,
                SettleTiming.PM,
                "cme",
                "ESM4",
            ),
            (2024, 5, 23, 20, 0),
        ),
    ],
)
def test_every_root_parses_to_its_terms(
    name: str, canonical: str, fields: tuple[Any, ...], expiry_utc: tuple[int, ...]
) -> None:
    inst = parse_us_name(name)
    assert inst is not None
    got = (
        inst.underlying,
        inst.index,
        inst.multiplier,
        inst.exercise,
        inst.delivery,
        inst.settle_timing,
        inst.venue,
        inst.underlying_future,
    )
    assert (inst.name, inst.kind, got) == (canonical, Kind.OPTION, fields)
    assert inst.expiry_ns == utc_ns(*expiry_utc)
    assert inst.on_forward is (inst.underlying_future is not None)
    assert parse_us_name(canonical) == inst


def test_es_futures_indices_and_etf() -> None:
    fut = parse_us_name("ESZ4")
    assert fut is not None
    assert (fut.kind, fut.multiplier, fut.underlying, fut.index, fut.venue) == (
        Kind.FUTURE,
        50.0,
        "SPX",
        "SPX",
        "cme",
    )
    assert fut.expiry_ns == utc_ns(2024, 12, 20, 14, 30)  # SOQ, 09:30 EST
    assert parse_us_name("ESH8").expiry_ns == utc_ns(2028, 3, 17, 13, 30)  # type: ignore[union-attr]  # it parses
    spx, spy = parse_us_name("SPX"), parse_us_name("SPY")
    assert spx is not None
    assert spx.kind == Kind.INDEX
    assert spy is not None
    assert (spy.kind, spy.index, spy.multiplier) == (Kind.SPOT, "SPY", 1.0)
    assert parse_us_name("AAPL  241220C00100000") is None  # a root riskd does not know
    assert set(OCC_ROOTS) == {"SPX", "SPXW", "XSP", "SPY"}


def test_deribit_names_are_unchanged() -> None:
    inst = parse_name("BTC-27DEC24-60000-C")
    assert inst is not None
    assert (inst.exercise, inst.delivery, inst.settle_timing, inst.underlying_future) == (
        Exercise.EUROPEAN,
        Delivery.CASH,
        None,
        None,
    )
    assert inst.on_forward
    assert parse_us_name("BTC-27DEC24-60000-C") is None


# ------------------------------------------------------------------ time to expiry, 0DTE
def test_0dte_time_to_expiry_on_the_expiry_day() -> None:
    inst = parse_us_name(SPXW_0DTE)
    assert inst is not None
    assert inst.expiry_ns is not None
    morning = utc_ns(2024, 12, 20, 14, 30)  # 09:30 ET
    assert year_fraction(morning, inst.expiry_ns) == pytest.approx(6.5 / 24 / 365, rel=1e-15)
    after_close = utc_ns(2024, 12, 20, 21, 5)
    assert year_fraction(after_close, inst.expiry_ns) < 0.0
    am = parse_us_name("SPX   241220P05900000")  # the AM monthly of the same day
    assert am is not None
    assert am.expiry_ns is not None
    assert year_fraction(morning, am.expiry_ns) == 0.0  # settled at the open
    assert year_fraction(utc_ns(2024, 12, 19, 21), am.expiry_ns) == pytest.approx(17.5 / 24 / 365)


# ------------------------------------------------------------------ registry and market
def test_registry_resolves_every_form_to_one_instrument_and_one_row() -> None:
    reg = InstrumentRegistry()
    forms = ["SPXW  241220P05900000", "SPXW241220P05900000", "SPXW241220P5900"]
    insts = [reg.get(f) for f in forms]
    assert all(i is not None and i.name == SPXW_0DTE for i in insts)
    market = MarketData(reg)
    rows = {market.row(i) for i in insts if i is not None}
    assert len(rows) == 1
    assert "EW1F5 P5800" in reg
    assert "ESZ4" in reg
    assert "NOPE" not in reg


def test_options_on_futures_price_on_their_futures_forward() -> None:
    reg = InstrumentRegistry()
    market = MarketData(reg)
    option, future = reg.get("EW1F5 P5800"), reg.get("ESH5")
    assert option is not None
    assert future is not None
    row_o, row_f = market.row(option), market.row(future)
    a = market.cols.arrays
    assert a["black"][row_o]
    assert a["fwd_row"][row_o] == a["fwd_row"][row_f]
    spx = reg.get("SPXW241220P5900")
    assert spx is not None
    assert not a["black"][market.row(spx)]  # BSM on the index, as before


# ------------------------------------------------------------------------------ config
BASE = """
[[instruments]]
name = "MYSPX"
kind = "option"
underlying = "SPX"
index = "SPX"
venue = "cboe"
strike = 5900.0
is_call = true
multiplier = 100.0
"""


def _load(tmp_path: Path, extra: str) -> Any:
    path = tmp_path / "riskd.toml"
    path.write_text(BASE + extra, encoding="utf-8")
    return load_config(path)


def test_config_accepts_the_us_fields(tmp_path: Path) -> None:
    config = _load(
        tmp_path,
        'exercise = "american"\ndelivery = "physical"\nsettle_timing = "pm"\n'
        'expiry_date = 2024-12-24\nunderlying_future = "ESH5"\n',
    )
    inst = config.instruments[0].to_instrument()
    assert (inst.exercise, inst.delivery, inst.settle_timing, inst.underlying_future) == (
        Exercise.AMERICAN,
        Delivery.PHYSICAL,
        SettleTiming.PM,
        "ESH5",
    )
    assert inst.expiry_ns == utc_ns(2024, 12, 24, 18)  # early close


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ('exercise = "bermudan"\nexpiry = 2024-12-20T21:00:00Z\n', "$.instruments[0].exercise"),
        ('delivery = "coin"\nexpiry = 2024-12-20T21:00:00Z\n', "$.instruments[0].delivery"),
        (
            'settle_timing = "noon"\nexpiry = 2024-12-20T21:00:00Z\n',
            "$.instruments[0].settle_timing",
        ),
        ("expiry_date = 2024-12-20\n", "expiry_date needs settle_timing"),
        (
            'expiry_date = 2024-12-20\nsettle_timing = "am"\nexpiry = 2024-12-20T21:00:00Z\n',
            "expiry_date:",
        ),
        ('expiry_date = "Friday"\nsettle_timing = "am"\n', "$.instruments[0].expiry_date"),
        ('underlying_future = ""\nexpiry = 2024-12-20T21:00:00Z\n', "underlying_future"),
    ],
)
def test_config_names_the_bad_key(tmp_path: Path, extra: str, key: str) -> None:
    with pytest.raises(
        ConfigError, match=key.replace("$", r"\$").replace("[", r"\[").replace("]", r"\]")
    ):
        _load(tmp_path, extra)
