"""The Deribit codec's order books (``book.{instrument}.100ms``), in the message format of
Deribit's documentation: a snapshot, then changes chained by change_id / prev_change_id; a gap
resubscribes the channel."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import FeedDecodeError
from engine.events import Depth
from engine.instruments import InstrumentRegistry
from feeds.deribit_codec import DeribitProtocol

TS_RECV = 1_700_000_000_123_456_789
CHANNEL = "book.BTC-PERPETUAL.100ms"


def book(kind: str, change_id: int, prev: int | None, bids: Any, asks: Any) -> bytes:
    data: dict[str, Any] = {
        "type": kind,
        "timestamp": 1_700_000_000_000,
        "instrument_name": "BTC-PERPETUAL",
        "change_id": change_id,
        "bids": bids,
        "asks": asks,
    }
    if prev is not None:
        data["prev_change_id"] = prev
    params = {"channel": CHANNEL, "data": data}
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": params}).encode()


def protocol() -> DeribitProtocol:
    p = DeribitProtocol("deribit", InstrumentRegistry(), books=["BTC-PERPETUAL"])
    assert CHANNEL in p.channels
    p.connect_requests()
    return p


SNAPSHOT = book(
    "snapshot",
    10,
    None,
    [["new", 60_000.0, 10_000.0], ["new", 59_990.0, 20_000.0]],
    [["new", 60_010.0, 5_000.0]],
)


def test_snapshot_then_changes_give_depth_events() -> None:
    p = protocol()
    (first,) = p.receive(SNAPSHOT, TS_RECV)
    assert first == Depth(
        instrument="BTC-PERPETUAL",
        bids=[(60_000.0, 10_000.0), (59_990.0, 20_000.0)],
        asks=[(60_010.0, 5_000.0)],
        ts_event=1_700_000_000_000_000_000,
        ts_recv=TS_RECV,
    )
    change = book("change", 11, 10, [["delete", 60_000.0, 0.0]], [["new", 60_005.0, 1_000.0]])
    (second,) = p.receive(change, TS_RECV)
    assert isinstance(second, Depth)
    assert second.bids == [(59_990.0, 20_000.0)]
    assert second.asks == [(60_005.0, 1_000.0), (60_010.0, 5_000.0)]
    assert p.outgoing() == []


def test_a_gap_resubscribes_and_waits_for_the_next_snapshot() -> None:
    p = protocol()
    p.receive(SNAPSHOT, TS_RECV)
    assert p.receive(book("change", 13, 12, [], []), TS_RECV) == []  # 11 and 12 were lost
    assert p.book_gaps == 1
    sent = [json.loads(r) for r in p.outgoing()]
    assert [(r["method"], r["params"]) for r in sent] == [
        ("public/unsubscribe", {"channels": [CHANNEL]}),
        ("public/subscribe", {"channels": [CHANNEL]}),
    ]
    # changes still in flight before the new snapshot are not applied, nor resubscribed again
    assert p.receive(book("change", 14, 13, [["new", 1.0, 1.0]], []), TS_RECV) == []
    assert (p.book_gaps, p.outgoing()) == (1, [])
    (again,) = p.receive(SNAPSHOT, TS_RECV)
    assert isinstance(again, Depth)
    assert again.bids[0] == (60_000.0, 10_000.0)


def test_a_bad_level_is_a_decode_error() -> None:
    p = protocol()
    with pytest.raises(FeedDecodeError) as exc_info:
        p.receive(book("snapshot", 1, None, [["new", 1.0, -5.0]], []), TS_RECV)
    assert exc_info.value.reason == "schema"
    with pytest.raises(FeedDecodeError) as exc_info:
        p.receive(book("snapshot", 1, None, [["new", 1.0]], []), TS_RECV)
    assert exc_info.value.reason == "schema"
