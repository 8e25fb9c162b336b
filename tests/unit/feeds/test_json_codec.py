"""The JSON wire contract (json_codec): every kind decodes; each bad message has its reason."""

from __future__ import annotations

import pytest

from engine.errors import FeedDecodeError
from engine.events import Depth, Fill, Quote, Tick
from engine.instruments import Instrument, InstrumentRegistry, Kind
from feeds.json_codec import JsonCodec

TS_MS = 1_732_400_000_123
TS_NS = TS_MS * 1_000_000
RECV = 1_732_400_000_500_000_000
OPTION = "BTC-27DEC24-60000-C"


@pytest.fixture
def codec() -> JsonCodec:
    spx = Instrument(name="SPX", kind=Kind.INDEX, underlying="SPX", index="SPX", venue="cboe")
    return JsonCodec(InstrumentRegistry([spx]), feed="test")


def reason_of(exc_info: pytest.ExceptionInfo[FeedDecodeError]) -> str:
    return exc_info.value.reason


# ---------------------------------------------------------------- valid messages, MQTT


def test_tick(codec: JsonCodec) -> None:
    payload = b'{"instrument": "BTC-PERPETUAL", "price": 65000.5, "ts": 1732400000123}'
    event = codec.decode_mqtt("md/tick/BTC-PERPETUAL", payload, RECV)
    assert event == Tick(instrument="BTC-PERPETUAL", price=65000.5, ts_event=TS_NS, ts_recv=RECV)


def test_full_quote(codec: JsonCodec) -> None:
    payload = (
        b'{"instrument": "BTC-27DEC24-60000-C", "bid": 0.021, "ask": 0.0225, "mark": 0.0218,'
        b' "iv": 0.62, "underlying_price": 65120.0, "index_price": 65080.5, "ts": 1732400000123}'
    )
    event = codec.decode_mqtt(f"md/quote/{OPTION}", payload, RECV)
    assert event == Quote(
        instrument=OPTION,
        bid=0.021,
        ask=0.0225,
        mark=0.0218,
        iv=0.62,
        underlying_price=65120.0,
        index_price=65080.5,
        ts_event=TS_NS,
        ts_recv=RECV,
    )


def test_quote_with_open_interest_and_volume(codec: JsonCodec) -> None:
    payload = (
        b'{"instrument": "BTC-27DEC24-60000-C", "mark": 0.0218, "open_interest": 1250.5,'
        b' "volume": 310.2, "ts": 1732400000123}'
    )
    event = codec.decode_mqtt(f"md/quote/{OPTION}", payload, RECV)
    assert isinstance(event, Quote)
    assert (event.open_interest, event.volume) == (1250.5, 310.2)
    line = codec.decode_line(payload, RECV)  # the same in a replay file
    assert line == event


@pytest.mark.parametrize("field", ["open_interest", "volume"])
@pytest.mark.parametrize("value", [b"-1", b"1e999"])
def test_bad_open_interest_or_volume(codec: JsonCodec, field: str, value: bytes) -> None:
    payload = b'{"instrument": "BTC-27DEC24-60000-C", "mark": 0.02, "%s": %s}' % (
        field.encode(),
        value,
    )
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt(f"md/quote/{OPTION}", payload, RECV)
    assert exc_info.value.reason == "bad_price"


@pytest.mark.parametrize("field", ["bid", "ask", "mark"])
def test_quote_with_one_price(codec: JsonCodec, field: str) -> None:
    payload = f'{{"instrument": "{OPTION}", "{field}": 0.02, "ts": {TS_MS}}}'.encode()
    event = codec.decode_mqtt(f"md/quote/{OPTION}", payload, RECV)
    assert isinstance(event, Quote)
    assert getattr(event, field) == 0.02
    assert event.iv is None
    assert event.underlying_price is None


def test_zero_bid_is_a_price(codec: JsonCodec) -> None:
    payload = f'{{"instrument": "{OPTION}", "bid": 0, "ask": 0.0005}}'.encode()
    event = codec.decode_mqtt(f"md/quote/{OPTION}", payload, RECV)
    assert isinstance(event, Quote)
    assert event.bid == 0.0


def test_fill(codec: JsonCodec) -> None:
    payload = (
        b'{"book": "main", "instrument": "BTC-27DEC24-60000-C", "quantity": -5, "price": 0.02,'
        b' "ts": 1732400000123, "id": "f-17"}'
    )
    event = codec.decode_mqtt("fills/main", payload, RECV)
    assert event == Fill(
        book="main",
        instrument=OPTION,
        quantity=-5.0,
        price=0.02,
        fill_id="f-17",
        ts_event=TS_NS,
        ts_recv=RECV,
    )


def test_fill_without_price_or_id(codec: JsonCodec) -> None:
    payload = b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1000}'
    event = codec.decode_mqtt("fills/main", payload, RECV)
    assert isinstance(event, Fill)
    assert (event.price, event.fill_id, event.quantity) == (None, None, 1000.0)


def test_registry_instrument_that_is_not_a_deribit_name(codec: JsonCodec) -> None:
    event = codec.decode_mqtt("md/tick/SPX", b'{"instrument": "SPX", "price": 5900.25}', RECV)
    assert isinstance(event, Tick)


def test_unknown_fields_are_ignored(codec: JsonCodec) -> None:
    payload = b'{"instrument": "btc_usd", "price": 65000.0, "source": "deribit", "seq": 7}'
    assert isinstance(codec.decode_mqtt("md/tick/btc_usd", payload, RECV), Tick)


def test_topic_prefix() -> None:
    codec = JsonCodec(InstrumentRegistry(), topic_prefix="desk1/")
    payload = b'{"instrument": "btc_usd", "price": 65000.0}'
    assert isinstance(codec.decode_mqtt("desk1/md/tick/btc_usd", payload, RECV), Tick)
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("md/tick/btc_usd", payload, RECV)
    assert reason_of(exc_info) == "topic"


def test_market_and_fill_entries_take_only_their_own_topics(codec: JsonCodec) -> None:
    """The MQTT feed decodes market data with decode_market and fills with decode_fill; each
    refuses the other's topics (what decode_mqtt routes by itself)."""
    tick = b'{"instrument": "btc_usd", "price": 65000.0}'
    fill = b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1, "price": 60000}'
    assert isinstance(codec.decode_market("md/tick/btc_usd", tick, RECV), Tick)
    assert codec.decode_fill("fills/main", fill, RECV) == codec.decode_mqtt(
        "fills/main", fill, RECV
    )
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_market("fills/main", fill, RECV)
    assert reason_of(exc_info) == "topic"
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_fill("fills/other", fill, RECV)
    assert reason_of(exc_info) == "topic"


# ---------------------------------------------------------------- timestamps


def test_ts_is_milliseconds(codec: JsonCodec) -> None:
    event = codec.decode_mqtt("md/tick/btc_usd", b'{"instrument":"btc_usd","price":1,"ts":5}', RECV)
    assert event.ts_event == 5_000_000
    assert event.ts_recv == RECV


def test_ts_ns_is_nanoseconds(codec: JsonCodec) -> None:
    payload = b'{"instrument": "btc_usd", "price": 1.0, "ts_ns": 1732400000123456789}'
    event = codec.decode_mqtt("md/tick/btc_usd", payload, RECV)
    assert event.ts_event == 1_732_400_000_123_456_789


def test_ts_ns_wins_over_ts(codec: JsonCodec) -> None:
    payload = b'{"instrument": "btc_usd", "price": 1.0, "ts": 1, "ts_ns": 1732400000123456789}'
    assert codec.decode_mqtt("md/tick/btc_usd", payload, RECV).ts_event == 1_732_400_000_123_456_789


def test_no_ts_takes_receipt_time(codec: JsonCodec) -> None:
    event = codec.decode_mqtt("md/tick/btc_usd", b'{"instrument":"btc_usd","price":1.0}', RECV)
    assert event.ts_event == event.ts_recv == RECV


@pytest.mark.parametrize(
    "payload",
    [
        b'{"instrument": "btc_usd", "price": 1.0, "ts": -1}',
        b'{"instrument": "btc_usd", "price": 1.0, "ts": 1.5}',
        b'{"instrument": "btc_usd", "price": 1.0, "ts_ns": "1"}',
    ],
)
def test_bad_ts_is_schema(codec: JsonCodec, payload: bytes) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("md/tick/btc_usd", payload, RECV)
    assert reason_of(exc_info) == "schema"


# ---------------------------------------------------------------- bad messages

BAD_MQTT = [
    # json: not JSON at all, truncated, not UTF-8, non-standard NaN
    ("json", "md/tick/btc_usd", b"garbage"),
    ("json", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": 1'),
    ("json", "md/tick/btc_usd", b"\xff\xfe"),
    ("json", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": NaN}'),
    ("json", "md/tick/btc_usd", b""),
    # schema: wrong types, missing fields, not an object, a quote without any price
    ("schema", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": "65000"}'),
    ("schema", "md/tick/btc_usd", b'{"instrument": "btc_usd"}'),
    ("schema", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": true}'),
    ("schema", "md/tick/btc_usd", b'[{"instrument": "btc_usd", "price": 1.0}]'),
    ("schema", "md/tick/btc_usd", b'{"instrument": 5, "price": 1.0}'),
    ("schema", "md/tick/btc_usd", b'{"instrument": "", "price": 1.0}'),
    ("schema", f"md/quote/{OPTION}", f'{{"instrument": "{OPTION}", "iv": 0.6}}'.encode()),
    ("schema", f"md/quote/{OPTION}", f'{{"instrument": "{OPTION}", "bid": null}}'.encode()),
    ("schema", "fills/main", b'{"book": "main", "instrument": "BTC-PERPETUAL"}'),
    ("schema", "fills/main", b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": "1"}'),
    ("schema", "fills/main", b'{"book": "", "instrument": "BTC-PERPETUAL", "quantity": 1}'),
    (
        "schema",
        "fills/main",
        b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1, "id": 7}',
    ),
    # bad_price
    ("bad_price", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": 0}'),
    ("bad_price", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": -1.5}'),
    ("bad_price", "md/tick/btc_usd", b'{"instrument": "btc_usd", "price": 1e999}'),
    ("bad_price", f"md/quote/{OPTION}", f'{{"instrument": "{OPTION}", "mark": 0}}'.encode()),
    ("bad_price", f"md/quote/{OPTION}", f'{{"instrument": "{OPTION}", "bid": -0.01}}'.encode()),
    ("bad_price", f"md/quote/{OPTION}", f'{{"instrument": "{OPTION}", "ask": -1e-9}}'.encode()),
    (
        "bad_price",
        f"md/quote/{OPTION}",
        f'{{"instrument": "{OPTION}", "bid": 0.03, "ask": 0.02}}'.encode(),
    ),
    (
        "bad_price",
        f"md/quote/{OPTION}",
        f'{{"instrument": "{OPTION}", "mark": 0.02, "iv": 0}}'.encode(),
    ),
    (
        "bad_price",
        f"md/quote/{OPTION}",
        f'{{"instrument": "{OPTION}", "mark": 0.02, "iv": -0.5}}'.encode(),
    ),
    (
        "bad_price",
        f"md/quote/{OPTION}",
        f'{{"instrument": "{OPTION}", "mark": 0.02, "underlying_price": 0}}'.encode(),
    ),
    (
        "bad_price",
        f"md/quote/{OPTION}",
        f'{{"instrument": "{OPTION}", "mark": 0.02, "index_price": -65000}}'.encode(),
    ),
    ("bad_price", "fills/main", b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 0}'),
    (
        "bad_price",
        "fills/main",
        b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1e999}',
    ),
    (
        "bad_price",
        "fills/main",
        b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1, "price": 0}',
    ),
    # unknown_instrument
    ("unknown_instrument", "md/tick/FOO", b'{"instrument": "FOO", "price": 1.0}'),
    (
        "unknown_instrument",
        "md/quote/BTC-31FEB25-60000-C",
        b'{"instrument": "BTC-31FEB25-60000-C", "mark": 0.01}',
    ),
    ("schema", "fills/a:b", b'{"book": "a:b", "instrument": "BTC-PERPETUAL", "quantity": 1}'),
    # topic: not ours, or naming another instrument or book
    ("topic", "md/trade/btc_usd", b'{"instrument": "btc_usd", "price": 1.0}'),
    ("topic", "md/tick/eth_usd", b'{"instrument": "btc_usd", "price": 1.0}'),
    ("topic", "md/tick/btc_usd/extra", b'{"instrument": "btc_usd", "price": 1.0}'),
    ("topic", "md/quote/BTC-PERPETUAL", f'{{"instrument": "{OPTION}", "mark": 0.01}}'.encode()),
    (
        "topic",
        "fills/other",
        b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 1}',
    ),
]


@pytest.mark.parametrize(("reason", "topic", "payload"), BAD_MQTT)
def test_bad_mqtt_message(codec: JsonCodec, reason: str, topic: str, payload: bytes) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt(topic, payload, RECV)
    assert reason_of(exc_info) == reason
    assert exc_info.value.feed == "test"
    assert exc_info.value.payload == payload.decode("utf-8", "replace")[:200]


def test_error_payload_is_truncated(codec: JsonCodec) -> None:
    payload = b'{"instrument": "btc_usd", "price": "' + b"x" * 1000 + b'"}'
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("md/tick/btc_usd", payload, RECV)
    assert len(exc_info.value.payload) == 200


def test_error_detail_names_the_field(codec: JsonCodec) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("md/tick/btc_usd", b'{"instrument": "btc_usd", "price": "1"}', RECV)
    assert "$.price" in exc_info.value.detail


# ---------------------------------------------------------------- JSONL lines


@pytest.mark.parametrize(
    ("line", "kind"),
    [
        (b'{"type": "tick", "instrument": "btc_usd", "price": 1.0}', Tick),
        (b'{"instrument": "btc_usd", "price": 1.0}', Tick),
        (f'{{"type": "quote", "instrument": "{OPTION}", "mark": 0.02}}'.encode(), Quote),
        (f'{{"instrument": "{OPTION}", "bid": 0.02}}'.encode(), Quote),
        (f'{{"instrument": "{OPTION}", "ask": 0.02}}'.encode(), Quote),
        (f'{{"instrument": "{OPTION}", "mark": 0.02}}'.encode(), Quote),
        (b'{"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 10, "price": 1.0}', Fill),
        (b'{"type": "fill", "book": "b", "instrument": "BTC-PERPETUAL", "quantity": 1}', Fill),
        (b'{"instrument": "btc_usd", "price": 1.0}\n', Tick),
        (
            b'{"type": "depth", "instrument": "BTC-PERPETUAL", "bids": [], "asks": [[1.0, 2]]}',
            Depth,
        ),
        (b'{"instrument": "BTC-PERPETUAL", "bids": [[1.0, 2]], "asks": []}', Depth),
    ],
)
def test_line_kinds(codec: JsonCodec, line: bytes, kind: type) -> None:
    assert isinstance(codec.decode_line(line, RECV), kind)


def test_a_depth_line_is_the_book_topics_message(codec: JsonCodec) -> None:
    """A replay's order-book line decodes as the ``md/book`` topic's payload does."""
    body = (
        b'{"instrument": "BTC-PERPETUAL", "bids": [[64985.5, 30000], [64990.0, 12000]],'
        b' "asks": [[65000.5, 8000]], "ts": 7}'
    )
    depth = codec.decode_line(body, RECV)
    assert depth == codec.decode_mqtt("md/book/BTC-PERPETUAL", body, RECV)
    assert isinstance(depth, Depth)
    assert depth.bids == [(64990.0, 12000.0), (64985.5, 30000.0)]
    assert depth.ts_event == 7_000_000


def test_line_type_overrides_inference(codec: JsonCodec) -> None:
    # a "price" alone says tick, but the line says quote: a quote without bid/ask/mark
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_line(f'{{"type": "quote", "instrument": "{OPTION}", "price": 1}}'.encode(), 0)
    assert reason_of(exc_info) == "schema"


@pytest.mark.parametrize(
    ("reason", "line"),
    [
        ("json", b"not json"),
        ("json", b'{"instrument": "btc_usd", "price": 1.0'),
        ("schema", b'{"type": "trade", "instrument": "btc_usd", "price": 1.0}'),
        ("schema", b'{"type": 3, "instrument": "btc_usd", "price": 1.0}'),
        ("schema", b'{"instrument": "btc_usd"}'),
        ("schema", b"[1, 2]"),
        ("schema", b'{"book": null, "instrument": "BTC-PERPETUAL", "quantity": 1}'),
        ("bad_price", f'{{"instrument": "{OPTION}", "bid": 0.3, "ask": 0.2}}'.encode()),
        ("unknown_instrument", b'{"instrument": "nope", "price": 1.0}'),
        ("bad_price", b'{"instrument": "BTC-PERPETUAL", "bids": [[0.0, 1]], "asks": []}'),
        ("schema", b'{"type": "depth", "instrument": "BTC-PERPETUAL", "bids": []}'),
    ],
)
def test_bad_lines(codec: JsonCodec, reason: str, line: bytes) -> None:
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_line(line, RECV)
    assert reason_of(exc_info) == reason


def test_line_timestamps(codec: JsonCodec) -> None:
    assert (
        codec.decode_line(b'{"instrument":"btc_usd","price":1,"ts":7}', RECV).ts_event == 7_000_000
    )
    assert codec.decode_line(b'{"instrument":"btc_usd","price":1,"ts_ns":7}', RECV).ts_event == 7
    assert codec.decode_line(b'{"instrument":"btc_usd","price":1}', RECV).ts_event == RECV


def test_a_fill_of_an_unknown_instrument_is_passed_on_never_dropped() -> None:
    codec = JsonCodec(InstrumentRegistry())
    payload = b'{"book": "main", "instrument": "NOT-KNOWN-YET", "quantity": 2, "price": 1.5}'
    fill = codec.decode_mqtt("fills/main", payload, 7)
    assert isinstance(fill, Fill)
    assert fill.instrument == "NOT-KNOWN-YET"


# ---------------------------------------------------------------- the underlying layout


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        ("md/tick/BTC/BTC-PERPETUAL", b'{"instrument": "BTC-PERPETUAL", "price": 65000.5}'),
        ("md/tick/BTC/btc_usd", b'{"instrument": "btc_usd", "price": 65000.5}'),
        (f"md/quote/BTC/{OPTION}", b'{"instrument": "BTC-27DEC24-60000-C", "mark": 0.02}'),
        ("md/book/BTC/BTC-PERPETUAL", b'{"instrument": "BTC-PERPETUAL", "bids": [], "asks": []}'),
        ("md/tick/SPX/SPX", b'{"instrument": "SPX", "price": 6000.5}'),
    ],
)
def test_market_topics_may_name_the_underlying(
    codec: JsonCodec, topic: str, payload: bytes
) -> None:
    old = topic.replace(topic.split("/")[2] + "/", "", 1)  # md/tick/BTC-PERPETUAL
    assert codec.decode_mqtt(topic, payload, RECV) == codec.decode_mqtt(old, payload, RECV)


@pytest.mark.parametrize(
    "topic",
    [
        f"md/quote/ETH/{OPTION}",  # another underlying
        f"md/quote/btc/{OPTION}",  # the name is exact
        f"md/quote/BTC/{OPTION}/x",
        "md/quote/BTC/BTC-27DEC24-70000-C",  # another instrument
        f"md/quote//{OPTION}",
    ],
)
def test_a_market_topic_naming_another_underlying_is_a_topic_error(
    codec: JsonCodec, topic: str
) -> None:
    payload = b'{"instrument": "BTC-27DEC24-60000-C", "mark": 0.02}'
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt(topic, payload, RECV)
    assert reason_of(exc_info) == "topic"


def test_fill_topics_may_name_the_underlying(codec: JsonCodec) -> None:
    payload = b'{"book": "main", "instrument": "BTC-27DEC24-60000-C", "quantity": 1}'
    fill = codec.decode_mqtt("fills/BTC/main", payload, RECV)
    assert fill == codec.decode_mqtt("fills/main", payload, RECV)
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("fills/ETH/main", payload, RECV)
    assert reason_of(exc_info) == "topic"
    with pytest.raises(FeedDecodeError) as exc_info:
        codec.decode_mqtt("fills/BTC/other", payload, RECV)
    assert reason_of(exc_info) == "topic"
    # An instrument not known yet: its underlying cannot be checked, the fill is passed on.
    unknown = b'{"book": "main", "instrument": "MY-OWN-SWAP", "quantity": 1}'
    assert isinstance(codec.decode_mqtt("fills/XYZ/main", unknown, RECV), Fill)
