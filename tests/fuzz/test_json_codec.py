"""Fuzzing riskd's JSON contract (feeds.json_codec): MQTT payloads with their topics, JSONL
lines, and the MQTT feed's handlers that count what the codec refuses.

Inputs: the lines of ``tests/data/replay_sample.jsonl`` and one message of every kind with every
field, mutated (:mod:`tests.fuzz.strategies`), and garbage. Topics are mostly the right one for
the payload's instrument or book, sometimes another kind's, a foreign one or random text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import aiomqtt
import hypothesis
from hypothesis import example, given
from hypothesis import strategies as st

from engine.clock import ManualClock
from engine.errors import FeedDecodeError, RiskEngineError
from engine.events import Depth, Fill, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind
from feeds.json_codec import JsonCodec
from feeds.mqtt import MqttFeed, MqttFeedConfig
from tests.fuzz.checks import CollectingSink, check_dropped, check_event, outcome
from tests.fuzz.strategies import fuzz_settings, json_documents

SAMPLE_FILE: Final = Path(__file__).parents[1] / "data" / "replay_sample.jsonl"
SAMPLE: Final = [
    json.loads(line)
    for line in SAMPLE_FILE.read_bytes().splitlines()
    if line.startswith(b"{")  # the good lines and those that are bad for their values
]
MESSAGES: Final = [
    *SAMPLE,
    {"instrument": "BTC-PERPETUAL", "price": 65000.5, "ts": 1732400000123},
    {"instrument": "SPX", "price": 5900.25, "ts_ns": 1732400000123456789},
    {
        "instrument": "BTC-27DEC24-60000-C",
        "bid": 0.021,
        "ask": 0.0225,
        "mark": 0.0218,
        "iv": 0.62,
        "underlying_price": 65120.0,
        "index_price": 65080.0,
        "ts": 1732400000123,
    },
    {
        "book": "main",
        "instrument": "BTC-27DEC24-60000-C",
        "quantity": -5,
        "price": 0.02,
        "ts": 1732400000123,
        "id": "f-17",
    },
    {"type": "fill", "book": "hedge", "instrument": "BTC-PERPETUAL", "quantity": 25000},
]
REASONS: Final = {"json", "schema", "bad_price", "unknown_instrument", "topic"}
"""The reasons documented in feeds/json_codec.py."""
FOCUS: Final = frozenset(key for message in MESSAGES for key in message)
"""The keys the codec reads: most edits go there."""
RECV: Final = 1_732_400_000_500_000_000
PREFIXES: Final = ("", "desk1/")


def registry() -> InstrumentRegistry:
    spx = Instrument(name="SPX", kind=Kind.INDEX, underlying="SPX", index="SPX", venue="cboe")
    return InstrumentRegistry([spx])


def _message(payload: bytes) -> dict[str, Any]:
    """The payload as a JSON object; empty if it is none (garbage, deep nesting)."""
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        return {}
    return message if isinstance(message, dict) else {}


def _own_tail(payload: bytes) -> str:
    """The payload's book or instrument, where it has a string one: its topic's tail."""
    message = _message(payload)
    names = [message.get(k) for k in ("book", "instrument")]
    return next((n for n in names if isinstance(n, str)), "")


def _own_kind(payload: bytes) -> str:
    """The topic kind the payload's keys suggest (as a JSONL line's kind is inferred)."""
    message = _message(payload)
    if "book" in message:
        return "fills/"
    return "md/quote/" if {"bid", "ask", "mark"} & message.keys() else "md/tick/"


Route = tuple[str, str, str] | str
"""How to make a topic for a payload: (root, kind, tail) or a whole random topic."""


@st.composite
def routes(draw: st.DrawFn) -> Route:
    """Mostly the payload's own topic, else another kind's, root's or tail's, or random text."""
    if not draw(st.sampled_from((True,) * 9 + (False,))):
        return draw(st.text(max_size=30))
    root = draw(st.sampled_from(("prefix",) * 6 + ("none", "other/")))
    kind = draw(st.sampled_from(("own",) * 6 + ("md/tick/", "md/quote/", "fills/")))
    tail = draw(st.sampled_from(("own",) * 6 + ("BTC-PERPETUAL", "")))
    return root, kind, tail


ROUTES: Final = routes()


def topic_of(route: Route, prefix: str, payload: bytes) -> str:
    """Mostly a well-formed topic for the payload's own instrument or book."""
    if isinstance(route, str):
        return route
    root, kind, tail = route
    root = {"prefix": prefix, "none": ""}.get(root, root)
    if kind == "own":
        kind = _own_kind(payload)
    if tail == "own":
        tail = _own_tail(payload)
    return f"{root}{kind}{tail}"


def check_decoded(event: Tick | Quote | Depth | Fill, topic: str, prefix: str) -> None:
    """Sane (tests.fuzz.properties) and named by its topic."""
    check_event(event, registry())
    if isinstance(event, Fill):
        assert topic == f"{prefix}fills/{event.book}"
    elif isinstance(event, Tick):
        assert topic == f"{prefix}md/tick/{event.instrument}"
    elif isinstance(event, Depth):
        assert topic == f"{prefix}md/book/{event.instrument}"
    else:
        assert topic == f"{prefix}md/quote/{event.instrument}"


# ---------------------------------------------------------------- the codec


@fuzz_settings(1000)
@given(payload=json_documents(MESSAGES, FOCUS), prefix=st.sampled_from(PREFIXES), route=ROUTES)
# Found by these tests; each let an exception out or made an insane event before its fix:
@example(  # UnicodeDecodeError
    payload=b'{"instrument": "BTC-PERPETUAL\xff", "price": 1}',
    prefix="",
    route=("prefix", "md/tick/", "own"),
)
def test_decode_mqtt_raises_only_decode_errors(payload: bytes, prefix: str, route: Route) -> None:
    """A payload gives one sane event named by its topic, or a FeedDecodeError with a
    documented reason."""
    topic = topic_of(route, prefix, payload)
    codec = JsonCodec(registry(), feed="fuzz", topic_prefix=prefix)
    result = outcome(lambda: codec.decode_mqtt(topic, payload, RECV))
    if isinstance(result, FeedDecodeError):
        check_dropped(result, REASONS)
        return
    assert not isinstance(result, RiskEngineError), result
    hypothesis.event(f"decoded: {type(result).__name__}")
    check_decoded(result, topic, prefix)
    assert result.ts_recv == RECV


@fuzz_settings(1000)
@given(line=json_documents(MESSAGES, FOCUS), newline=st.sampled_from((b"", b"\n", b"\r\n")))
@example(  # ts_event past int64 nanoseconds
    line=b'{"instrument": "BTC-PERPETUAL", "price": 1, "ts": 10000000000000}', newline=b""
)
@example(  # RecursionError
    line=b'{"instrument": "BTC-PERPETUAL", "price": 1, "x": ' + b"[" * 5000, newline=b""
)
def test_decode_line_raises_only_decode_errors(line: bytes, newline: bytes) -> None:
    """A JSONL line gives one sane event or a FeedDecodeError with a documented reason."""
    codec = JsonCodec(registry(), feed="fuzz")
    result = outcome(lambda: codec.decode_line(line + newline, RECV))
    if isinstance(result, FeedDecodeError):
        check_dropped(result, REASONS - {"topic"})
        return
    assert not isinstance(result, RiskEngineError), result
    hypothesis.event(f"decoded: {type(result).__name__}")
    check_event(result, registry())
    assert result.ts_recv == RECV


# ---------------------------------------------------------------- the MQTT feed's counters


@fuzz_settings(200)
@given(
    prefix=st.sampled_from(PREFIXES),
    routed=st.lists(st.tuples(json_documents(MESSAGES, FOCUS), ROUTES), max_size=12),
)
def test_mqtt_feed_counts_every_message(prefix: str, routed: list[tuple[bytes, Route]]) -> None:
    """The MQTT feed's handlers, as its session calls them (fills through ``_fill``, market
    data through the ``_market_data`` callback, QoS 0): every message is received, then handed
    over or dropped under a documented reason; ``internal`` (an exception the codec should not
    have let out) never."""
    messages = [(topic_of(route, prefix, payload), payload) for payload, route in routed]
    feed = MqttFeed(MqttFeedConfig(name="fuzz", topic_prefix=prefix), registry(), ManualClock(RECV))
    sink = CollectingSink()
    market_data = feed._market_data(sink)
    fills: list[Fill] = []
    for mid, (topic, payload) in enumerate(messages, start=1):
        if topic.startswith(f"{prefix}fills/"):
            fill = feed._fill(topic, payload)
            if fill is not None:
                fills.append(fill)
        else:
            message = aiomqtt.Message("t", payload, qos=0, retain=False, mid=mid, properties=None)
            market_data(topic, message, None)  # QoS 0: nothing to acknowledge, no paho needed
    stats = feed.stats
    assert stats.received == len(messages)
    assert stats.received == len(sink.events) + len(fills) + sum(stats.dropped.values())
    assert stats.events == len(sink.events)  # market data; the session counts fills it hands on
    assert set(stats.dropped) <= REASONS, stats.dropped
    for event in [*sink.events, *fills]:
        check_event(event, registry())
