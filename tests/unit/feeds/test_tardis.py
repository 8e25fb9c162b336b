"""Tardis options_chain rows (feeds.tardis): units, absent fields, bad rows.

``tests/data/tardis_options_chain_sample.csv`` has Tardis's header and a dozen Deribit BTC option
rows written for these tests (prices from Black-76 at the rows' ``mark_iv``, so they are
consistent), plus three bad rows: a truncated one, an impossible date (31 Feb), and a crossed
bid/ask.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.daycount import year_fraction
from engine.errors import FeedDecodeError
from engine.instruments import InstrumentRegistry, parse_deribit_name
from engine.iv import implied_vol
from feeds.tardis import OptionsChainDecoder

SAMPLE = Path(__file__).parents[2] / "data" / "tardis_options_chain_sample.csv"
HEADER = (
    "exchange,symbol,timestamp,local_timestamp,type,strike_price,expiration,open_interest,"
    "last_price,bid_price,bid_amount,bid_iv,ask_price,ask_amount,ask_iv,mark_price,mark_iv,"
    "underlying_index,underlying_price,delta,gamma,vega,theta,rho"
)
# The preview row of Tardis's options_chain docs (Deribit, 8 June 2020).
DOCS_ROW = (
    "deribit,BTC-9JUN20-9875-P,1591574399413000,1591574400196008,put,9875,1591689600000000,0.1,"
    "0.0295,0.0205,15.0,55.91,0.0235,15.0,68.94,0.02210436,62.89,SYN.BTC-9JUN20,9756.36,"
    "-0.61752,0.00103,2.24964,-53.05655,-0.22796"
)


@pytest.fixture
def decoder() -> OptionsChainDecoder:
    return OptionsChainDecoder(InstrumentRegistry(), HEADER, feed="tardis-test")


def test_docs_row(decoder: OptionsChainDecoder) -> None:
    q = decoder.decode(DOCS_ROW)
    assert q.instrument == "BTC-9JUN20-9875-P"
    assert (q.bid, q.ask, q.mark) == (0.0205, 0.0235, 0.02210436)  # coin, as Deribit quotes
    assert q.iv == pytest.approx(0.6289, rel=1e-15)  # percent -> decimal
    assert q.underlying_price == 9756.36
    assert q.index_price is None
    assert q.ts_event == 1_591_574_399_413_000_000  # microseconds -> nanoseconds
    assert q.ts_recv == 1_591_574_400_196_008_000  # local_timestamp, by default
    assert q.open_interest == 0.1  # BTC, as Deribit reports it
    assert q.volume is None  # options_chain has no volume


def test_open_interest_column_is_optional() -> None:
    header = HEADER.replace(",open_interest", "")
    row = DOCS_ROW.replace(",0.1,0.0295,", ",0.0295,")
    q = OptionsChainDecoder(InstrumentRegistry(), header).decode(row)
    assert q.open_interest is None
    assert q.mark == 0.02210436


def test_negative_open_interest_is_a_bad_price(decoder: OptionsChainDecoder) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        decoder.decode(DOCS_ROW.replace(",0.1,0.0295,", ",-0.1,0.0295,"))
    assert exc_info.value.reason == "bad_price"


def test_iv_is_percent_in_the_file(decoder: OptionsChainDecoder) -> None:
    """The decimal IV reprices the coin mark: mark_iv / 100 is the right unit (not mark_iv)."""
    q = decoder.decode(DOCS_ROW)
    inst = parse_deribit_name(q.instrument)
    assert inst is not None
    assert inst.expiry_ns is not None
    assert q.mark is not None
    assert q.underlying_price is not None
    T = year_fraction(q.ts_event, inst.expiry_ns)
    F = q.underlying_price
    sigma = implied_vol(q.mark * F, False, F, inst.strike, T, 0.0, model="black76")
    # Deribit's mark_iv is its own surface's, two decimals; the point is the unit: ~0.63, not 63.
    assert float(sigma) == pytest.approx(q.iv, abs=0.02)


def test_ts_recv_given(decoder: OptionsChainDecoder) -> None:
    assert decoder.decode(DOCS_ROW, ts_recv=42).ts_recv == 42


def test_header_with_other_column_order() -> None:
    names = HEADER.split(",")
    values = DOCS_ROW.split(",")
    order = list(reversed(range(len(names))))
    header = ",".join(names[i] for i in order)
    row = ",".join(values[i] for i in order)
    q = OptionsChainDecoder(InstrumentRegistry(), header).decode(row)
    assert q == OptionsChainDecoder(InstrumentRegistry(), HEADER).decode(DOCS_ROW)


def test_header_missing_column() -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        OptionsChainDecoder(InstrumentRegistry(), HEADER.replace("mark_iv", "markiv"))
    assert exc_info.value.reason == "schema"
    assert "mark_iv" in exc_info.value.detail


def row(**changes: str) -> str:
    fields = dict(zip(HEADER.split(","), DOCS_ROW.split(","), strict=True))
    fields.update(changes)
    return ",".join(fields.values())


def test_empty_fields_are_absent(decoder: OptionsChainDecoder) -> None:
    q = decoder.decode(row(bid_price="", bid_iv="", bid_amount="", mark_iv="", last_price=""))
    assert q.bid is None
    assert q.iv is None
    assert q.ask == 0.0235


def test_zero_bid_is_no_bid(decoder: OptionsChainDecoder) -> None:
    q = decoder.decode(row(bid_price="0", bid_amount="0", bid_iv="0"))
    assert q.bid is None
    assert q.ask == 0.0235


@pytest.mark.parametrize(
    ("reason", "changes"),
    [
        ("schema", {"timestamp": ""}),
        ("schema", {"timestamp": "1591574399.4"}),
        ("schema", {"mark_price": "abc"}),
        ("schema", {"symbol": ""}),
        ("schema", {"bid_price": "", "ask_price": "", "mark_price": ""}),
        ("bad_price", {"mark_price": "0"}),
        ("bad_price", {"mark_price": "nan"}),
        ("bad_price", {"ask_price": "inf"}),
        ("bad_price", {"bid_price": "-0.01"}),
        ("bad_price", {"bid_price": "0.03", "ask_price": "0.02"}),
        ("bad_price", {"mark_iv": "0.6289"}),  # a decimal where percent is due
        ("bad_price", {"mark_iv": "-5"}),
        ("bad_price", {"underlying_price": "0"}),
        ("unknown_instrument", {"symbol": "BTC-31FEB25-60000-C"}),
        ("unknown_instrument", {"symbol": "SOMETHING"}),
    ],
)
def test_bad_rows(decoder: OptionsChainDecoder, reason: str, changes: dict[str, str]) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        decoder.decode(row(**changes))
    assert exc_info.value.reason == reason
    assert exc_info.value.feed == "tardis-test"


def test_wrong_column_count(decoder: OptionsChainDecoder) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        decoder.decode(DOCS_ROW + ",extra")
    assert exc_info.value.reason == "schema"


def test_sample_file() -> None:
    lines = SAMPLE.read_bytes().splitlines()
    decoder = OptionsChainDecoder(InstrumentRegistry(), lines[0])
    quotes, reasons = [], []
    for line in lines[1:]:
        try:
            quotes.append(decoder.decode(line))
        except FeedDecodeError as exc:
            reasons.append(exc.reason)
    assert sorted(reasons) == ["bad_price", "schema", "unknown_instrument"]
    assert len(quotes) == 12
    assert all(q.instrument.startswith("BTC-") for q in quotes)
    assert all(q.iv is not None and 0.3 < q.iv < 1.5 for q in quotes)
    assert all(q.mark is not None and 0.0 < q.mark < 1.0 for q in quotes)  # coin
    assert sum(q.bid is None for q in quotes) == 2  # one empty bid, one zero bid
    # every mark is Black-76 at the row's IV, in coin of the forward
    for q in quotes:
        inst = parse_deribit_name(q.instrument)
        assert inst is not None
        assert inst.expiry_ns is not None
        assert q.mark is not None
        assert q.underlying_price is not None
        assert q.iv is not None
        F = q.underlying_price
        T = year_fraction(q.ts_event, inst.expiry_ns)
        sigma = implied_vol(q.mark * F, inst.is_call, F, inst.strike, T, 0.0, model="black76")
        np.testing.assert_allclose(sigma, q.iv, rtol=1e-6)
