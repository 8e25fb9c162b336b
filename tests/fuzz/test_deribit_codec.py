"""Fuzzing the Deribit codec (feeds.deribit_codec) and the feed loop that counts its drops.

Inputs: the 30 recorded frames of ``tests/data/deribit_tickers.jsonl`` and hand-made frames of
every other kind the codec handles (index ticks, heartbeats, replies, RPC errors, instrument
lists), mutated (:mod:`tests.fuzz.strategies`), and garbage; sometimes as text with lone
surrogates, as websockets hands over a text frame that was not UTF-8.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import Counter
from typing import Any, Final

import hypothesis
from hypothesis import example, given
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.errors import FeedConnectionError, FeedDecodeError, RiskEngineError
from engine.events import Depth, OpenInterest, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind
from feeds.deribit import DeribitFeedConfig, WebSocketFeed
from feeds.deribit_codec import DeribitProtocol, decode_instruments_response
from tests.deribit_server import SAMPLE_INSTRUMENTS, DeribitServer, load_frames
from tests.factories import DERIBIT_OPTION_TICKER
from tests.fuzz.checks import (
    CollectingSink,
    check_depth,
    check_dropped,
    check_quote,
    check_tick,
    outcome,
)
from tests.fuzz.strategies import fuzz_settings, json_documents
from tests.servers import wait_until

RECORDED: Final = load_frames()
OPTION: Final = DERIBIT_OPTION_TICKER
PERPETUAL: Final = {
    "instrument_name": "BTC-PERPETUAL",
    "timestamp": 1_700_000_000_000,
    "mark_price": 65_000.5,
}


def _notification(method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def _ticker(data: dict[str, Any]) -> dict[str, Any]:
    channel = f"ticker.{data['instrument_name']}.100ms"
    return _notification("subscription", {"channel": channel, "data": data})


MADE: Final = [
    _ticker(OPTION),
    _ticker(PERPETUAL),
    _notification(
        "subscription",
        {
            "channel": "deribit_price_index.btc_usd",
            "data": {"index_name": "btc_usd", "price": 65_000.1, "timestamp": 1_700_000_000_000},
        },
    ),
    _notification("heartbeat", {"type": "heartbeat"}),
    _notification("heartbeat", {"type": "test_request"}),
    {"jsonrpc": "2.0", "id": 1, "result": "ok"},
    {"jsonrpc": "2.0", "id": 2, "result": ["ticker.BTC-PERPETUAL.100ms"]},
    {"jsonrpc": "2.0", "id": 1, "error": {"code": 10028, "message": "too_many_requests"}},
    {"jsonrpc": "2.0", "id": 2, "error": {"code": -32602, "message": "Invalid params"}},
    {"jsonrpc": "2.0", "id": 99, "result": {"anything": [1, 2]}},
]
FRAMES: Final = [*RECORDED, *MADE]
INSTRUMENTS_REPLY: Final = {"jsonrpc": "2.0", "id": 1, "result": list(SAMPLE_INSTRUMENTS)}

REASONS: Final = {"json", "schema", "bad_price", "unknown_instrument", "unexpected", "rpc_error"}
"""The reasons documented in feeds/deribit_codec.py."""
TS_RECV: Final = 1_700_000_000_123_456_789
FOCUS: Final = frozenset(
    {*OPTION, "index_name", "price", "channel", "method", "params", "data", "type", "id"}
    | {"result", "error", "code", "message", "kind", "strike", "expiration_timestamp"}
)
"""The keys the codec reads: most edits go there."""


@st.composite
def frames(draw: st.DrawFn) -> bytes | str:
    """A frame as websockets hands it over: bytes, or text (invalid UTF-8 as lone surrogates)."""
    data = draw(json_documents(FRAMES, FOCUS))
    if draw(st.booleans()):
        return data.decode("utf-8", "surrogateescape")
    return data


def check_events(
    events: list[Tick | Quote | Depth | OpenInterest], registry: InstrumentRegistry
) -> None:
    """At most one event, sane in riskd's units; a bid or ask of 0 is absent (None)."""
    assert len(events) <= 1
    for event in events:
        assert event.ts_recv == TS_RECV
        if isinstance(event, Depth):
            check_depth(event)
        elif isinstance(event, Tick):
            check_tick(event, registry)
        elif isinstance(event, OpenInterest):  # a frame is a notification: no book summary
            raise AssertionError(f"open interest from a notification: {event}")
        else:
            check_quote(event, registry, ordered=False)  # Deribit's book may cross
            assert event.bid is None or event.bid > 0.0
            assert event.ask is None or event.ask > 0.0


# ---------------------------------------------------------------- the codec


def _encoded(frame: dict[str, Any]) -> bytes:
    return json.dumps(frame).encode()


@fuzz_settings(1000)
@given(frame=frames(), connected=st.booleans())
# Found by this test; each let an exception out or made an insane event before its fix:
@example(frame=b'{"params": ' + b"[" * 5000 + b"]" * 5000 + b"}", connected=False)  # Recursion
@example(frame=_encoded(_ticker({**PERPETUAL, "timestamp": 2**64})), connected=False)  # > int64
@example(frame=_encoded(_ticker({**PERPETUAL, "timestamp": -1})), connected=False)  # < 1970
@example(frame=_encoded(_ticker({**OPTION, "mark_iv": 5e-324})), connected=False)  # iv 0.0
def test_receive_raises_only_decode_errors(frame: bytes | str, connected: bool) -> None:
    """A frame gives sane events or a FeedDecodeError with a documented reason; a
    FeedConnectionError only answers a pending ``public/set_heartbeat`` or ``public/subscribe``
    (ids 1 and 2 after connecting)."""
    registry = InstrumentRegistry()
    protocol = DeribitProtocol("fuzz", registry, instruments=["BTC-PERPETUAL"])
    if connected:
        protocol.connect_requests()
    result = outcome(lambda: protocol.receive(frame, TS_RECV))
    if isinstance(result, FeedDecodeError):
        check_dropped(result, REASONS)
    elif isinstance(result, FeedConnectionError):
        hypothesis.event("FeedConnectionError")
        assert connected
        assert result.detail.startswith(("public/set_heartbeat failed", "public/subscribe failed"))
    else:
        assert not isinstance(result, RiskEngineError), result
        hypothesis.event(f"events: {len(result)}")
        check_events(result, registry)


@fuzz_settings(300)
@given(frame=json_documents([INSTRUMENTS_REPLY, *MADE], FOCUS))
def test_instruments_response_raises_only_decode_errors(frame: bytes) -> None:
    """The reply to ``public/get_instruments`` gives instruments, None (another message) or a
    documented error."""
    result = outcome(lambda: decode_instruments_response(frame, 1, "fuzz"))
    if isinstance(result, FeedDecodeError):
        check_dropped(result, {"json", "schema"})
    elif isinstance(result, FeedConnectionError):
        hypothesis.event("FeedConnectionError")
        assert result.detail.startswith("public/get_instruments failed")
    elif result is None:
        hypothesis.event("another message")
    else:
        assert not isinstance(result, RiskEngineError), result
        hypothesis.event("instruments")
        assert all(isinstance(inst, Instrument) for inst in result)
        kinds = (Kind.OPTION, Kind.FUTURE, Kind.PERPETUAL, Kind.SPOT)  # combinations left out
        assert all(inst.kind in kinds for inst in result)


# ---------------------------------------------------------------- the feed's counters


def _wire(frame: bytes | str) -> bytes:
    """A frame as bytes on the wire (a text frame that is not UTF-8 goes as those bytes)."""
    return frame if isinstance(frame, bytes) else frame.encode("utf-8", "surrogatepass")


async def _through_a_local_deribit(
    script: list[bytes], replies: int
) -> tuple[WebSocketFeed, CollectingSink, int]:
    """``script`` sent by a local Deribit (real websocket, no recorded stream) to a running
    WebSocketFeed once it is subscribed, until the feed has read it and the ``replies`` it
    draws (answers to its answers of test_requests); returns the feed, what it handed over,
    and how many frames it had read before the script."""
    registry = InstrumentRegistry()
    sink = CollectingSink()
    async with DeribitServer([], test_request_interval_s=3600.0) as server:
        config = DeribitFeedConfig(name="fuzz", url=server.url, instruments=["BTC-PERPETUAL"])
        feed = WebSocketFeed(config, registry, ManualClock(TS_RECV))
        task = asyncio.create_task(feed.run(sink))
        try:
            await wait_until(lambda: feed.stats.received >= 2)  # set_heartbeat, subscribe
            before = feed.stats.received
            for frame in script:
                await server.send_raw(frame)
            want = before + len(script) + replies
            await wait_until(lambda: feed.stats.received >= want, timeout_s=10.0)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, FeedConnectionError):
                await task
    return feed, sink, before


@fuzz_settings(60)
@given(script=st.lists(frames().map(_wire), max_size=12))
def test_feed_counts_every_frame(script: list[bytes]) -> None:
    """Sent by a real websocket server, every frame is counted as received; those the codec
    refuses are counted as dropped under their reason, the others handled: the counters agree
    with a second protocol fed the same frames."""
    reference = DeribitProtocol("fuzz", InstrumentRegistry())
    refused: Counter[str] = Counter()
    handled = events = 0
    for frame in script:
        try:
            events += len(reference.receive(frame, TS_RECV))
            handled += 1
        except FeedDecodeError as exc:
            refused[exc.reason] += 1
    answered = len(reference.outgoing())  # test_requests: each answer brings one reply more
    feed, sink, before = asyncio.run(_through_a_local_deribit(script, answered))
    stats = feed.stats
    assert stats.received - before == len(script) + answered
    assert len(script) == handled + sum(stats.dropped.values())
    assert stats.dropped == refused
    assert set(stats.dropped) <= REASONS
    assert stats.events == len(sink.events) == events
