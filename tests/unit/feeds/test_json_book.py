"""The optional depth topic of the JSON contract (``md/book/{instrument}``): levels decode best
first, bad levels have their reason; and the inbox keeps the latest book per instrument apart
from what the engine drains."""

from __future__ import annotations

import pytest

from engine.errors import FeedDecodeError
from engine.events import Depth
from engine.inbox import Inbox
from engine.instruments import InstrumentRegistry
from feeds.json_codec import JsonCodec
from tests.factories import tick

RECV = 1_732_400_000_500_000_000


def test_a_book_decodes_best_first() -> None:
    codec = JsonCodec(InstrumentRegistry(), topic_prefix="desk/")
    payload = (
        b'{"instrument": "BTC-PERPETUAL", "bids": [[64985.5, 30000], [64990.0, 12000]],'
        b' "asks": [[65010, 1], [65000.5, 8000]], "ts": 1732400000123}'
    )
    got = codec.decode_mqtt("desk/md/book/BTC-PERPETUAL", payload, RECV)
    assert got == Depth(
        instrument="BTC-PERPETUAL",
        bids=[(64990.0, 12000.0), (64985.5, 30000.0)],
        asks=[(65000.5, 8000.0), (65010.0, 1.0)],
        ts_event=1_732_400_000_123_000_000,
        ts_recv=RECV,
    )


@pytest.mark.parametrize(
    ("reason", "topic", "payload"),
    [
        (
            "bad_price",
            "md/book/BTC-PERPETUAL",
            b'{"instrument": "BTC-PERPETUAL", "bids": [[0, 1]], "asks": []}',
        ),
        (
            "bad_price",
            "md/book/BTC-PERPETUAL",
            b'{"instrument": "BTC-PERPETUAL", "bids": [], "asks": [[1, -1]]}',
        ),
        (
            "schema",
            "md/book/BTC-PERPETUAL",
            b'{"instrument": "BTC-PERPETUAL", "bids": [[1]], "asks": []}',
        ),
        ("schema", "md/book/BTC-PERPETUAL", b'{"instrument": "BTC-PERPETUAL", "bids": []}'),
        (
            "topic",
            "md/book/ETH-PERPETUAL",
            b'{"instrument": "BTC-PERPETUAL", "bids": [], "asks": []}',
        ),
        ("unknown_instrument", "md/book/NOPE", b'{"instrument": "NOPE", "bids": [], "asks": []}'),
    ],
)
def test_a_bad_book_has_its_reason(reason: str, topic: str, payload: bytes) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        JsonCodec(InstrumentRegistry()).decode_mqtt(topic, payload, RECV)
    assert exc_info.value.reason == reason


def test_the_inbox_keeps_the_latest_book_apart() -> None:
    inbox = Inbox()
    old = Depth(instrument="BTC-PERPETUAL", bids=[(1.0, 1.0)], asks=[], ts_event=1, ts_recv=1)
    new = Depth(instrument="BTC-PERPETUAL", bids=[(2.0, 1.0)], asks=[], ts_event=2, ts_recv=2)
    inbox.put(old)
    inbox.put(tick())
    inbox.put(new)
    assert inbox.depth(["BTC-PERPETUAL", "ETH-PERPETUAL"]) == {"BTC-PERPETUAL": new}
    ticks, quotes, fills = inbox.drain()
    assert (len(ticks), quotes, fills) == (1, [], [])  # the engine does not take books
    assert inbox.depth(["BTC-PERPETUAL"]) == {"BTC-PERPETUAL": new}  # still there after a drain
