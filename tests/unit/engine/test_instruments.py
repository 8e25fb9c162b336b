"""Tests for engine.instruments: Deribit names, get_instruments entries, Instrument, registry.

Expected fields are written out by hand (or, for the round trip, from the date the name was
formatted from), never derived with the module's own regex or month table.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.instruments import (
    DERIBIT,
    Instrument,
    InstrumentRegistry,
    Kind,
    Settlement,
    deribit_expiry_ns,
    from_deribit_instrument,
    parse_deribit_name,
)
from tests.deribit_server import SAMPLE_INSTRUMENTS

DATA = Path(__file__).parents[2] / "data" / "deribit_tickers.jsonl"
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")


def utc_ns(year: int, month: int, day: int, hour: int = 0) -> int:
    """int UNIX ns of a UTC wall-clock time, via datetime (independent of calendar.timegm)."""
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp()) * 1_000_000_000


DEC27_2024 = utc_ns(2024, 12, 27, 8)
assert DEC27_2024 == 1_735_286_400_000_000_000  # Deribit's expiration_timestamp, in ns


def _fields(inst: Instrument) -> dict[str, Any]:
    return {
        "name": inst.name,
        "kind": inst.kind,
        "underlying": inst.underlying,
        "quote_currency": inst.quote_currency,
        "settlement": inst.settlement,
        "index": inst.index,
        "expiry_ns": inst.expiry_ns,
        "strike": inst.strike,
        "is_call": inst.is_call,
        "multiplier": inst.multiplier,
        "venue": inst.venue,
    }


def _expect(name: str, kind: Kind, underlying: str, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "underlying": underlying,
        "quote_currency": "USD",
        "settlement": Settlement.COIN,
        "index": f"{underlying.lower()}_usd",
        "expiry_ns": None,
        "strike": None,
        "is_call": None,
        "multiplier": 1.0,
        "venue": DERIBIT,
    }
    out.update(kw)
    return out


# ------------------------------------------------------------------------------ name parsing
NAMES: list[tuple[str, dict[str, Any]]] = [
    (
        "BTC-27DEC24-60000-C",
        _expect(
            "BTC-27DEC24-60000-C", Kind.OPTION, "BTC",
            expiry_ns=DEC27_2024, strike=60_000.0, is_call=True,
        ),
    ),
    (
        "ETH-28MAR25-3500-P",
        _expect(
            "ETH-28MAR25-3500-P", Kind.OPTION, "ETH",
            expiry_ns=utc_ns(2025, 3, 28, 8), strike=3_500.0, is_call=False,
        ),
    ),
    ("BTC-PERPETUAL", _expect("BTC-PERPETUAL", Kind.PERPETUAL, "BTC")),
    ("BTC-27DEC24", _expect("BTC-27DEC24", Kind.FUTURE, "BTC", expiry_ns=DEC27_2024)),
    (
        "MATIC_USDC-9MAR24-1d02-C",
        _expect(
            "MATIC_USDC-9MAR24-1d02-C", Kind.OPTION, "MATIC",
            quote_currency="USDC", settlement=Settlement.LINEAR, index="matic_usdc",
            expiry_ns=utc_ns(2024, 3, 9, 8), strike=1.02, is_call=True,
        ),
    ),
    (
        "BTC_USDC-PERPETUAL",
        _expect(
            "BTC_USDC-PERPETUAL", Kind.PERPETUAL, "BTC",
            quote_currency="USDC", settlement=Settlement.LINEAR, index="btc_usdc",
        ),
    ),
    (
        "BTC_USDC",
        _expect(
            "BTC_USDC", Kind.SPOT, "BTC",
            quote_currency="USDC", settlement=Settlement.LINEAR, index="btc_usdc",
        ),
    ),
    (
        "btc_usd",
        _expect("btc_usd", Kind.INDEX, "BTC", settlement=Settlement.LINEAR, index="btc_usd"),
    ),
    (
        "BTC-5JUN20-9250-C",  # single-digit day
        _expect(
            "BTC-5JUN20-9250-C", Kind.OPTION, "BTC",
            expiry_ns=utc_ns(2020, 6, 5, 8), strike=9_250.0, is_call=True,
        ),
    ),
    ("ETH-1JAN25", _expect("ETH-1JAN25", Kind.FUTURE, "ETH", expiry_ns=utc_ns(2025, 1, 1, 8))),
    (
        "BTC-29FEB24-70000-P",  # a leap day
        _expect(
            "BTC-29FEB24-70000-P", Kind.OPTION, "BTC",
            expiry_ns=utc_ns(2024, 2, 29, 8), strike=70_000.0, is_call=False,
        ),
    ),
]  # fmt: skip


@pytest.mark.parametrize(("name", "expected"), NAMES, ids=[n for n, _ in NAMES])
def test_parse_deribit_name_gives_the_documented_fields(
    name: str, expected: dict[str, Any]
) -> None:
    inst = parse_deribit_name(name)
    assert inst is not None
    assert _fields(inst) == expected
    assert inst.is_inverse is (expected["settlement"] is Settlement.COIN)


def test_expiry_is_0800_utc_as_int_ns() -> None:
    inst = parse_deribit_name("BTC-27DEC24-60000-C")
    assert inst is not None
    assert isinstance(inst.expiry_ns, int)
    assert datetime.fromtimestamp(inst.expiry_ns // 10**9, tz=UTC) == datetime(
        2024, 12, 27, 8, tzinfo=UTC
    )
    assert deribit_expiry_ns(27, 12, 2024) == DEC27_2024


@pytest.mark.parametrize(
    "name",
    [
        "",
        "BTC-31FEB24-60000-C",  # no 31 February
        "BTC-29FEB23",  # 2023 is not a leap year
        "BTC-0DEC24",  # no day 0
        "BTC-32DEC24",
        "BTC-27DEX24-60000-C",  # bad month
        "BTC-27Dec24-60000-C",  # months are upper case
        "BTC-27DEC24-0-C",  # zero strike
        "BTC-27DEC24-0d0-P",
        "btc-27dec24",  # lower-case future
        "btc-perpetual",
        "BTC",  # a bare currency
        "BTC-27DEC24-60000-X",  # neither call nor put
        "BTC-27DEC24-60000",  # strike without a type
        "BTC-27DEC2024",
        "BTC-27DEC24-60000-C-1",
        "BTC-27DEC24-1d-C",  # a decimal point needs digits after it
        "BTC--PERPETUAL",
        "BTC_USD_X",
        "Btc_usd",
    ],
)
def test_invalid_names_parse_to_none(name: str) -> None:
    assert parse_deribit_name(name) is None


def _ticker_names() -> list[tuple[int, str, int]]:
    out = []
    for line_no, line in enumerate(DATA.read_text().splitlines(), start=1):
        msg = json.loads(line)
        data = msg["params"]["data"] if "params" in msg else msg["result"]
        out.append((line_no, str(data["instrument_name"]), int(data["timestamp"])))
    return out


def test_every_recorded_ticker_name_parses() -> None:
    tickers = _ticker_names()
    assert len(tickers) == 30
    for line_no, name, ts_ms in tickers:
        inst = parse_deribit_name(name)
        assert inst is not None, (line_no, name)
        assert inst.kind is Kind.OPTION
        assert inst.expiry_ns is not None
        base, day_mon_yy, strike, cp = name.split("-")
        assert inst.is_call is (cp == "C")
        assert inst.strike == float(strike.replace("d", "."))
        # The ticker was published before its option expired, on the day in the name.
        assert ts_ms * 1_000_000 < inst.expiry_ns
        expiry = datetime.fromtimestamp(inst.expiry_ns // 10**9, tz=UTC)
        assert expiry.strftime("%d%b%y").upper().lstrip("0") == day_mon_yy
        assert (expiry.hour, expiry.minute, expiry.second) == (8, 0, 0)
        linear = "_" in base
        assert inst.settlement is (Settlement.LINEAR if linear else Settlement.COIN)
        assert inst.underlying == base.split("_")[0]
        assert inst.index == (base.lower() if linear else f"{base.lower()}_usd")


@settings(max_examples=300, deadline=None)
@given(
    base=st.sampled_from(["BTC", "ETH", "SOL", "XRP", "MATIC"]),
    linear=st.booleans(),
    day=st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    strike_units=st.integers(min_value=1, max_value=10_000_000),
    decimals=st.integers(min_value=0, max_value=4),
    is_call=st.booleans(),
    kind=st.sampled_from([Kind.OPTION, Kind.FUTURE]),
)
def test_formatted_names_round_trip(
    base: str,
    linear: bool,
    day: date,
    strike_units: int,
    decimals: int,
    is_call: bool,
    kind: Kind,
) -> None:
    """Format a name from fields as Deribit does, parse it back, compare the fields."""
    prefix = f"{base}_USDC" if linear else base
    date_part = f"{day.day}{MONTHS[day.month - 1]}{day.year % 100:02d}"
    whole, frac = divmod(strike_units, 10**decimals)
    strike_text = f"{whole}d{frac:0{decimals}d}" if decimals else str(whole)
    strike = strike_units / 10**decimals
    name = f"{prefix}-{date_part}"
    if kind is Kind.OPTION:
        name += f"-{strike_text}-{'C' if is_call else 'P'}"
    inst = parse_deribit_name(name)
    assert inst is not None, name
    assert inst.kind is kind
    assert inst.underlying == base
    assert inst.quote_currency == ("USDC" if linear else "USD")
    assert inst.settlement is (Settlement.LINEAR if linear else Settlement.COIN)
    assert inst.index == (f"{base.lower()}_usdc" if linear else f"{base.lower()}_usd")
    assert inst.expiry_ns == utc_ns(day.year, day.month, day.day, 8)
    if kind is Kind.OPTION:
        assert inst.strike == strike
        assert inst.is_call is is_call
    else:
        assert inst.strike is None
        assert inst.is_call is None


# ------------------------------------------------------------------- get_instruments entries
# Shaped as Deribit's public/get_instruments result entries (API v2), trimmed of fields riskd
# does not read (tick sizes, commissions, block-trade limits).
INVERSE_OPTION: dict[str, Any] = {
    "instrument_name": "BTC-27DEC24-60000-C",
    "kind": "option",
    "instrument_type": "reversed",
    "base_currency": "BTC",
    "quote_currency": "BTC",
    "counter_currency": "USD",
    "settlement_currency": "BTC",
    "settlement_period": "month",
    "price_index": "btc_usd",
    "option_type": "call",
    "strike": 60000.0,
    "contract_size": 1.0,
    "expiration_timestamp": 1735286400000,
    "creation_timestamp": 1711008060000,
    "is_active": True,
}
LINEAR_OPTION: dict[str, Any] = {
    "instrument_name": "MATIC_USDC-9MAR24-1d02-C",
    "kind": "option",
    "instrument_type": "linear",
    "base_currency": "MATIC",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "settlement_period": "day",
    "price_index": "matic_usdc",
    "option_type": "call",
    "strike": 1.02,
    "contract_size": 10.0,
    "expiration_timestamp": 1709971200000,
    "is_active": True,
}
PERPETUAL: dict[str, Any] = {
    "instrument_name": "BTC-PERPETUAL",
    "kind": "future",
    "instrument_type": "reversed",
    "base_currency": "BTC",
    "quote_currency": "USD",
    "counter_currency": "USD",
    "settlement_currency": "BTC",
    "settlement_period": "perpetual",
    "price_index": "btc_usd",
    "contract_size": 10.0,
    "expiration_timestamp": 32503708800000,
    "future_type": "reversed",
    "is_active": True,
}
FUTURE: dict[str, Any] = {
    "instrument_name": "BTC-27DEC24",
    "kind": "future",
    "instrument_type": "reversed",
    "base_currency": "BTC",
    "quote_currency": "USD",
    "counter_currency": "USD",
    "settlement_currency": "BTC",
    "settlement_period": "month",
    "price_index": "btc_usd",
    "contract_size": 10.0,
    "expiration_timestamp": 1735286400000,
    "future_type": "reversed",
    "is_active": True,
}
LINEAR_PERPETUAL: dict[str, Any] = {
    "instrument_name": "BTC_USDC-PERPETUAL",
    "kind": "future",
    "instrument_type": "linear",
    "base_currency": "BTC",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "settlement_currency": "USDC",
    "settlement_period": "perpetual",
    "price_index": "btc_usdc",
    "contract_size": 0.001,
    "expiration_timestamp": 32503708800000,
    "is_active": True,
}
SPOT: dict[str, Any] = {
    "instrument_name": "BTC_USDC",
    "kind": "spot",
    "base_currency": "BTC",
    "quote_currency": "USDC",
    "counter_currency": "USDC",
    "price_index": "btc_usdc",
    "contract_size": 0.0001,
    "expiration_timestamp": 32503708800000,
    "is_active": True,
}


@pytest.mark.parametrize(
    "entry",
    [INVERSE_OPTION, LINEAR_OPTION, PERPETUAL, FUTURE, LINEAR_PERPETUAL, SPOT],
    ids=lambda e: str(e["instrument_name"]),
)
def test_get_instruments_entry_agrees_with_the_parsed_name(entry: dict[str, Any]) -> None:
    inst = from_deribit_instrument(entry)
    parsed = parse_deribit_name(entry["instrument_name"])
    assert parsed is not None
    assert _fields(inst) == _fields(parsed)


def test_get_instruments_entry_fields() -> None:
    opt = from_deribit_instrument(INVERSE_OPTION)
    assert (opt.kind, opt.settlement, opt.quote_currency) == (Kind.OPTION, Settlement.COIN, "USD")
    assert opt.expiry_ns == 1_735_286_400_000 * 1_000_000
    assert (opt.strike, opt.is_call, opt.index) == (60_000.0, True, "btc_usd")
    lin = from_deribit_instrument(LINEAR_OPTION)
    assert (lin.settlement, lin.quote_currency, lin.strike) == (Settlement.LINEAR, "USDC", 1.02)
    assert lin.underlying == "MATIC"
    assert lin.multiplier == 1.0  # Deribit amounts of linear options are in the base asset
    perp = from_deribit_instrument(PERPETUAL)
    assert (perp.kind, perp.expiry_ns, perp.settlement) == (Kind.PERPETUAL, None, Settlement.COIN)
    assert perp.multiplier == 1.0  # quantity is the USD amount, not contracts of 10 USD
    fut = from_deribit_instrument(FUTURE)
    assert (fut.kind, fut.expiry_ns) == (Kind.FUTURE, DEC27_2024)
    put = from_deribit_instrument({**INVERSE_OPTION, "option_type": "put"})
    assert put.is_call is False


def test_get_instruments_entry_without_price_index_uses_base_and_counter_currency() -> None:
    entry = {k: v for k, v in INVERSE_OPTION.items() if k != "price_index"}
    assert from_deribit_instrument(entry).index == "btc_usd"


@pytest.mark.parametrize(
    "entry",
    [
        {k: v for k, v in INVERSE_OPTION.items() if k != "strike"},
        {k: v for k, v in INVERSE_OPTION.items() if k != "option_type"},
        {k: v for k, v in INVERSE_OPTION.items() if k != "instrument_name"},
        {k: v for k, v in FUTURE.items() if k != "base_currency"},
        {**INVERSE_OPTION, "strike": 0.0},
        {**INVERSE_OPTION, "strike": None},
        {**FUTURE, "kind": "index"},
    ],
)
def test_bad_get_instruments_entries_raise_value_error(entry: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011  # the message varies with the field
        from_deribit_instrument(entry)


@pytest.mark.parametrize(
    "entry", [INVERSE_OPTION, LINEAR_OPTION, FUTURE], ids=lambda e: str(e["instrument_name"])
)
def test_entries_that_expire_need_an_expiration_timestamp(entry: dict[str, Any]) -> None:
    """BUG: ``info.get("expiration_timestamp", 0)`` turns a missing expiry into 1970-01-01, so an
    option without one is valued as long expired (intrinsic), not rejected as documented."""
    partial = {k: v for k, v in entry.items() if k != "expiration_timestamp"}
    with pytest.raises(ValueError, match="expiration_timestamp"):
        from_deribit_instrument(partial)


def test_future_combo_entry_is_not_taken_for_a_future() -> None:
    """A calendar spread (``future_combo``) is no outright future: priced as one, its tick (a
    spread of a few hundred USD) would become the forward of its expiry's options. BUG: the
    kind check is ``startswith("future")``, so it is accepted as Kind.FUTURE."""
    combo = {
        **FUTURE,
        "instrument_name": "BTC-FS-27DEC24_PERP",
        "kind": "future_combo",
        "instrument_type": "reversed",
    }
    with pytest.raises(ValueError, match="future_combo"):
        from_deribit_instrument(combo)


# ------------------------------------------------------------------------ Instrument checks
def _option(**kw: Any) -> Instrument:
    fields: dict[str, Any] = {
        "name": "X",
        "kind": Kind.OPTION,
        "underlying": "SPX",
        "index": "spx",
        "expiry_ns": DEC27_2024,
        "strike": 5_000.0,
        "is_call": True,
        "venue": "cme",
    }
    fields.update(kw)
    return Instrument(**fields)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"expiry_ns": None}, "needs expiry_ns, strike and is_call"),
        ({"strike": None}, "needs expiry_ns, strike and is_call"),
        ({"is_call": None}, "needs expiry_ns, strike and is_call"),
        ({"strike": 0.0}, "strike must be finite and > 0"),
        ({"strike": -1.0}, "strike must be finite and > 0"),
        ({"strike": float("nan")}, "strike must be finite and > 0"),
        ({"strike": float("inf")}, "strike must be finite and > 0"),
        ({"multiplier": 0.0}, "multiplier must be > 0"),
        ({"multiplier": float("nan")}, "multiplier must be > 0"),
        ({"kind": Kind.FUTURE, "expiry_ns": None}, "future 'X' needs expiry_ns"),
        ({"kind": Kind.PERPETUAL, "multiplier": -2.0}, "multiplier must be > 0"),
    ],
)
def test_instrument_validation_errors(kw: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        _option(**kw)


def test_valid_instruments_construct() -> None:
    opt = _option(multiplier=100.0)
    assert (opt.multiplier, opt.is_inverse, opt.venue) == (100.0, False, "cme")
    perp = Instrument(name="P", kind=Kind.PERPETUAL, underlying="BTC", index="btc_usd")
    assert perp.expiry_ns is None
    assert perp.settlement is Settlement.LINEAR


# ---------------------------------------------------------------------------------- registry
def test_registry_parses_deribit_names_on_first_sight_and_keeps_them() -> None:
    reg = InstrumentRegistry()
    assert len(reg) == 0
    inst = reg.get("BTC-27DEC24-60000-C")
    assert inst is not None
    assert len(reg) == 1
    assert reg.get("BTC-27DEC24-60000-C") is inst
    assert "BTC-PERPETUAL" in reg
    assert "NOT-A-NAME" not in reg
    assert 42 not in reg
    assert reg.get("SPX-DEC24-5000-C") is None
    assert {i.name for i in reg} == {"BTC-27DEC24-60000-C", "BTC-PERPETUAL"}


def test_registry_keeps_a_bounded_number_of_parsed_names_and_every_added_one() -> None:
    """A feed sending ever new names (each a valid Deribit name) grows the registry no further
    than ``parsed_kept``; the oldest parsed name goes first, added instruments never."""
    added = _option(name="SPX-C-5000")
    reg = InstrumentRegistry([added], parsed_kept=100)
    names = [f"BTC-27DEC24-{10_000 + i}-C" for i in range(1_000)]
    for name in names:
        assert reg.get(name) is not None
    assert len(reg) == 101
    assert reg.get("SPX-C-5000") is added
    assert {i.name for i in reg} == {"SPX-C-5000", *names[-100:]}
    again = reg.get(names[0])  # forgotten: parsed again, equal
    assert again == reg.get(names[0])
    assert again is not None
    assert again.strike == 10_000.0


def test_registry_add_get_and_config_precedence_over_parsing() -> None:
    cme = _option(name="SPX-C-5000")
    custom = Instrument(
        name="BTC-27DEC24-60000-C",  # a Deribit name, configured differently on purpose
        kind=Kind.OPTION,
        underlying="BTC",
        index="btc_usd",
        expiry_ns=DEC27_2024,
        strike=60_000.0,
        is_call=True,
        multiplier=0.1,
    )
    reg = InstrumentRegistry([cme, custom])
    assert reg.get("SPX-C-5000") is cme
    assert reg.get("BTC-27DEC24-60000-C") is custom  # config wins: the name is not re-parsed
    # Added after a lookup parsed the name: the added one replaces the parsed one.
    reg2 = InstrumentRegistry()
    parsed = reg2.get("BTC-27DEC24-60000-C")
    assert parsed is not None
    assert parsed.multiplier == 1.0
    reg2.add(custom)
    assert reg2.get("BTC-27DEC24-60000-C") is custom
    assert len(reg2) == 1


@pytest.mark.parametrize(
    "name",
    [
        "BTC-27DEC24-" + "9" * 400 + "-C",  # the strike overflows to inf
        "BTC-PERPETUAL\n",  # a trailing newline
        "BTC-27DEC24-6\u0660000-C",  # an Arabic-Indic digit
        "btc_usd\n",
    ],
)
def test_names_that_only_look_like_deribit_names_are_refused(name: str) -> None:
    """Found by fuzzing the codecs: each of these used to parse into an instrument."""
    assert parse_deribit_name(name) is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"instrument_name": None}, "instrument_name"),
        ({"instrument_name": ""}, "instrument_name"),
        ({"strike": 1e999}, "strike"),
    ],
)
def test_bad_get_instruments_entries_are_refused(change: dict[str, Any], message: str) -> None:
    entry = {**SAMPLE_INSTRUMENTS[0], **change}
    with pytest.raises(ValueError, match=message):
        from_deribit_instrument(entry)
