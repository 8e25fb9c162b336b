"""Fuzzing the Tardis ``options_chain`` decoder (feeds.tardis): headers and rows.

Inputs: the header and rows of ``tests/data/tardis_options_chain_sample.csv``, fields replaced
by odd numbers and names, deleted, inserted or swapped, rows cut or spliced
(:mod:`tests.fuzz.strategies`), and garbage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import hypothesis
from hypothesis import example, given
from hypothesis import strategies as st

from engine.errors import FeedDecodeError, RiskEngineError
from engine.instruments import InstrumentRegistry
from feeds.tardis import MIN_PERCENT_IV, REQUIRED_COLUMNS, OptionsChainDecoder
from tests.fuzz.checks import check_dropped, check_quote, outcome
from tests.fuzz.strategies import csv_rows, fuzz_settings

SAMPLE: Final = Path(__file__).parents[1] / "data" / "tardis_options_chain_sample.csv"
HEADER, *ROWS = [line for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]
HEADERS: Final = (HEADER, ",".join(reversed(HEADER.split(","))))
"""The sample's header, and its columns reversed (so the rows' fields land elsewhere)."""
FOCUS: Final = [HEADER.split(",").index(c) for c in REQUIRED_COLUMNS]
"""The columns the decoder reads."""
REASONS: Final = {"schema", "bad_price", "unknown_instrument"}
"""The reasons documented in feeds/tardis.py."""
RECV: Final = 1_732_406_400_500_000_000


@fuzz_settings(300)
@given(header=csv_rows([HEADER], FOCUS))
def test_header_raises_only_schema(header: bytes) -> None:
    """A header makes a decoder or raises a FeedDecodeError ``schema``."""
    result = outcome(lambda: OptionsChainDecoder(InstrumentRegistry(), header, feed="fuzz"))
    if isinstance(result, FeedDecodeError):
        check_dropped(result, {"schema"})
    else:
        assert isinstance(result, OptionsChainDecoder), result


@fuzz_settings(1500)
@given(
    header=st.sampled_from(HEADERS),
    row=csv_rows(ROWS, FOCUS),
    ts_recv=st.sampled_from((None, RECV)),
)
# Found by this test; each made an insane quote before the fix:
@example(  # ts_recv before 1970
    header=HEADER, row=ROWS[0].replace(",1732406400001843,", ",-1,").encode(), ts_recv=None
)
@example(  # ts_event past int64 nanoseconds
    header=HEADER, row=ROWS[0].replace("1732406400000000", "9" * 19).encode(), ts_recv=RECV
)
def test_row_raises_only_decode_errors(header: str, row: bytes, ts_recv: int | None) -> None:
    """A row gives a sane quote or a FeedDecodeError with a documented reason."""
    registry = InstrumentRegistry()
    decoder = OptionsChainDecoder(registry, header, feed="fuzz")
    quote = outcome(lambda: decoder.decode(row, ts_recv))
    if isinstance(quote, FeedDecodeError):
        check_dropped(quote, REASONS)
        return
    assert not isinstance(quote, RiskEngineError), quote
    hypothesis.event("decoded")
    check_quote(quote, registry, ordered=True)
    assert quote.bid is None or quote.bid > 0.0  # 0: no bid
    assert quote.ask is None or quote.ask > 0.0
    assert quote.iv is None or quote.iv >= MIN_PERCENT_IV / 100.0
    assert quote.index_price is None
    if ts_recv is not None:
        assert quote.ts_recv == ts_recv
