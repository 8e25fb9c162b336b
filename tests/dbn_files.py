"""Builders of small DBN files for the tests, written with ``databento_dbn``'s own encoder
(``bytes(Metadata)``, ``bytes(record)``, and its ``Transcoder`` for zstd): never downloaded.

Prices are given as decimal strings and written as DBN fixed-point ints (1e-9 units), exactly.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import databento_dbn as dbn
from databento_dbn.metadata import MappingInterval

__all__ = [
    "CLASS",
    "T0_NS",
    "Interval",
    "Mapping",
    "bbo",
    "cbbo",
    "cmbp1",
    "definition",
    "encode",
    "fixed",
    "mbp1",
    "open_interest",
    "write_dbn",
]

T0_NS = int(datetime(2024, 12, 19, 15, 0, tzinfo=UTC).timestamp()) * 1_000_000_000
"""2024-12-19 15:00 UTC (10:00 New York), a Thursday: the samples' first record."""

CLASS = {
    "C": dbn.InstrumentClass.from_str("C"),
    "P": dbn.InstrumentClass.from_str("P"),
    "F": dbn.InstrumentClass.from_str("F"),
    "K": dbn.InstrumentClass.from_str("K"),
    "T": dbn.InstrumentClass.from_str("T"),  # a spread of futures: riskd prices none
}
"""DBN instrument classes by their code (the stubs type the enum's members as str)."""


@dataclass
class Interval:
    """One interval of a symbol mapping (``databento_dbn.MappingInterval``)."""

    start_date: date
    end_date: date
    symbol: str


@dataclass
class Mapping:
    """A symbol's mappings (``databento_dbn.SymbolMapping``)."""

    raw_symbol: str
    intervals: Sequence[MappingInterval] = field(default_factory=list)


def fixed(price: str) -> int:
    """A decimal price as DBN's fixed-point int64 (1e-9 units), exactly."""
    return int(Decimal(price) * 1_000_000_000)


def definition(
    instrument_id: int,
    raw_symbol: str,
    cls: str,
    *,
    ts: int = T0_NS,
    strike: str | None = None,
    expiration: int | None = None,
    multiplier: str | None = None,
    underlying: str = "",
    underlying_id: int = 0,
    asset: str = "",
    cfi: str = "",
) -> dbn.InstrumentDefMsg:
    """An instrument definition (``definition`` schema)."""
    return dbn.InstrumentDefMsg(
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts,
        ts_recv=ts,
        min_price_increment=fixed("0.01"),
        display_factor=fixed("1"),
        raw_symbol=raw_symbol,
        asset=asset,
        security_type="",
        instrument_class=CLASS[cls],
        security_update_action=dbn.SecurityUpdateAction.from_str("A"),
        expiration=dbn.UNDEF_TIMESTAMP if expiration is None else expiration,
        strike_price=dbn.UNDEF_PRICE if strike is None else fixed(strike),
        unit_of_measure_qty=dbn.UNDEF_PRICE if multiplier is None else fixed(multiplier),
        underlying=underlying,
        underlying_id=underlying_id,
        cfi=cfi,
    )


def _px(price: str | None) -> int:
    return dbn.UNDEF_PRICE if price is None else fixed(price)


def cbbo(
    instrument_id: int, ts: int, bid: str | None, ask: str | None, size: int = 10
) -> dbn.CBBOMsg:
    """A consolidated BBO (``cbbo-1s``); a side of None is empty (UNDEF_PRICE, size 0)."""
    return dbn.CBBOMsg(
        rtype=dbn.RType.CBBO_1S,
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts,
        price=dbn.UNDEF_PRICE,
        size=0,
        side=dbn.Side.from_str("N"),
        ts_recv=ts,
        levels=dbn.ConsolidatedBidAskPair(  # type: ignore[arg-type]  # one level, not a list
            bid_px=_px(bid), ask_px=_px(ask), bid_sz=size if bid else 0, ask_sz=size if ask else 0
        ),
    )


def cmbp1(instrument_id: int, ts: int, bid: str | None, ask: str | None) -> dbn.CMBP1Msg:
    """A consolidated MBP-1 record (``cmbp-1``), an add on the bid."""
    return dbn.CMBP1Msg(
        rtype=dbn.RType.CMBP_1,
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts,
        price=_px(bid),
        size=1,
        action=dbn.Action.from_str("A"),
        side=dbn.Side.from_str("B"),
        ts_recv=ts,
        levels=dbn.ConsolidatedBidAskPair(  # type: ignore[arg-type]  # one level, not a list
            bid_px=_px(bid), ask_px=_px(ask), bid_sz=5 if bid else 0, ask_sz=5 if ask else 0
        ),
    )


def mbp1(
    instrument_id: int,
    ts: int,
    bid: str | None,
    ask: str | None,
    *,
    trade: str | None = None,
    ts_event: int | None = None,
) -> dbn.MBP1Msg:
    """An MBP-1 record (``mbp-1``; ``tbbo`` has the same layout): a trade at ``trade`` when
    given, else an add on the bid."""
    action = "T" if trade is not None else "A"
    return dbn.MBP1Msg(
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts if ts_event is None else ts_event,
        price=_px(trade if trade is not None else bid),
        size=1,
        action=dbn.Action.from_str(action),
        side=dbn.Side.from_str("B"),
        depth=0,
        ts_recv=ts,
        levels=dbn.BidAskPair(  # type: ignore[arg-type]  # one level, not a list
            bid_px=_px(bid), ask_px=_px(ask), bid_sz=3 if bid else 0, ask_sz=4 if ask else 0
        ),
    )


def bbo(instrument_id: int, ts: int, bid: str | None, ask: str | None, last: str) -> dbn.BBOMsg:
    """A BBO record (``bbo-1s``) whose last trade was at ``last``."""
    return dbn.BBOMsg(
        rtype=dbn.RType.BBO_1S,
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts,
        price=_px(last),
        size=1,
        side=dbn.Side.from_str("A"),
        ts_recv=ts,
        levels=dbn.BidAskPair(  # type: ignore[arg-type]  # one level, not a list
            bid_px=_px(bid), ask_px=_px(ask), bid_sz=3 if bid else 0, ask_sz=4 if ask else 0
        ),
    )


def open_interest(instrument_id: int, ts: int, contracts: int) -> dbn.StatMsg:
    """An open-interest statistic (``statistics``), in contracts."""
    return dbn.StatMsg(
        publisher_id=1,
        instrument_id=instrument_id,
        ts_event=ts,
        ts_recv=ts,
        ts_ref=0,
        price=dbn.UNDEF_PRICE,
        quantity=contracts,
        stat_type=dbn.StatType.OPEN_INTEREST,  # type: ignore[arg-type]  # the stubs say int
    )


def encode(
    dataset: str,
    records: Sequence[dbn.DBNRecord],
    *,
    mappings: Sequence[Mapping] = (),
    zstd: bool = False,
) -> bytes:
    """A whole DBN stream: metadata (mixed schemas, raw symbols in) then the records."""
    metadata = dbn.Metadata(
        dataset=dataset,
        start=min((r.ts_event for r in records), default=T0_NS),
        stype_in=dbn.SType.from_str("raw_symbol"),
        stype_out=dbn.SType.from_str("instrument_id"),
        schema=None,
        symbols=[m.raw_symbol for m in mappings],
        mappings=mappings,
    )
    raw = bytes(metadata) + b"".join(bytes(r) for r in records)
    if not zstd:
        return raw
    out = io.BytesIO()
    with dbn.Transcoder(out, dbn.Encoding.from_str("dbn"), dbn.Compression.from_str("zstd")) as t:
        t.write(raw)
    return out.getvalue()


def write_dbn(
    path: Path,
    dataset: str,
    records: Sequence[dbn.DBNRecord],
    *,
    mappings: Sequence[Mapping] = (),
) -> Path:
    """Write :func:`encode`'s stream to ``path`` (zstd-compressed when it ends in ``.zst``)."""
    path.write_bytes(encode(dataset, records, mappings=mappings, zstd=path.suffix == ".zst"))
    return path
