"""The Deribit codec on recorded frames: bytes in, events out, no I/O."""

from __future__ import annotations

import json
import logging
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.clock import ManualClock
from engine.errors import FeedConnectionError, FeedDecodeError
from engine.events import OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry, Kind, Settlement
from feeds.base import DropLog, FeedStats
from feeds.deribit_codec import (
    DeribitProtocol,
    decode_instruments_response,
    get_instruments_request,
)
from tests.deribit_server import SAMPLE_INSTRUMENTS
from tests.factories import DERIBIT_OPTION_TICKER

FRAMES = (Path(__file__).parents[2] / "data" / "deribit_tickers.jsonl").read_bytes().splitlines()
TS_RECV = 1_700_000_000_123_456_789


def protocol(**kwargs: Any) -> DeribitProtocol:
    return DeribitProtocol("deribit", InstrumentRegistry(), **kwargs)


def frame(method: str, params: dict[str, Any]) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "method": method, "params": params}).encode()


def ticker(**data: Any) -> bytes:
    name = data.get("instrument_name", "BTC-PERPETUAL")
    return frame("subscription", {"channel": f"ticker.{name}.100ms", "data": data})


def index(**data: Any) -> bytes:
    return frame("subscription", {"channel": "deribit_price_index.btc_usd", "data": data})


def reply(request_id: int | None, result: Any = None, error: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id}
    if error is not None:
        message["error"] = error
    else:
        message["result"] = result
    return json.dumps(message).encode()


def ids(requests: list[bytes]) -> list[int]:
    return [json.loads(r)["id"] for r in requests]


OPTION = DERIBIT_OPTION_TICKER
PERPETUAL = {"instrument_name": "BTC-PERPETUAL", "timestamp": 1_700_000_000_000, "mark_price": 1.0}


# ---------------------------------------------------------------- recorded frames


@pytest.mark.parametrize("line", range(1, 30))
def test_recorded_ticker_decodes_to_quote_in_riskd_units(line: int) -> None:
    raw = FRAMES[line - 1]
    data = json.loads(raw)["params"]["data"]
    events = protocol().receive(raw, TS_RECV)
    assert events == [
        Quote(
            instrument=data["instrument_name"],
            bid=data["best_bid_price"] or None,
            ask=data["best_ask_price"] or None,
            mark=data["mark_price"],
            iv=data["mark_iv"] / 100.0,
            underlying_price=data["underlying_price"],
            index_price=data["index_price"],
            open_interest=data["open_interest"],
            volume=data["stats"]["volume"],
            ts_event=data["timestamp"] * 1_000_000,
            ts_recv=TS_RECV,
        )
    ]


@pytest.mark.parametrize(
    ("line", "instrument", "open_interest", "volume"),
    [
        (3, "BTC-24SEP21-34000-P", 14.1, 0.9),  # stats.volume in BTC over 24 hours
        (13, "BTC-31DEC21-300000-C", 568.3, 2.1),
        (15, "BTC-31DEC21-34000-P", 4.6, None),  # stats.volume null: no volume
        (23, "ETH-30JUL21-2800-C", 12685.0, 869.0),  # ETH options: in ETH
        (28, "MATIC_USDC-9MAR24-1d02-C", 0.0, 0.0),  # none open: 0, not absent
        (29, "BTC-30SEP22-60000-C", 1767.5, 16.7),
    ],
)
def test_recorded_ticker_carries_open_interest(
    line: int, instrument: str, open_interest: float, volume: float | None
) -> None:
    """The recorded frames' ``open_interest`` and ``stats.volume``, read by hand from
    tests/data/deribit_tickers.jsonl, ride on the quote unchanged (base-currency amounts)."""
    (quote,) = protocol().receive(FRAMES[line - 1], TS_RECV)
    assert isinstance(quote, Quote)
    assert quote.instrument == instrument
    assert quote.open_interest == open_interest
    assert quote.volume == volume


@pytest.mark.parametrize(("field", "value"), [("open_interest", -1.0), ("stats", {"volume": -2})])
def test_negative_open_interest_or_volume_is_a_bad_price(field: str, value: Any) -> None:
    data = json.loads(FRAMES[2])["params"]["data"]
    with pytest.raises(FeedDecodeError) as exc_info:
        protocol().receive(ticker(**{**data, field: value}), TS_RECV)
    assert exc_info.value.reason == "bad_price"


# Entries of public/get_book_summary_by_currency(currency=BTC, kind=option), in Deribit's
# documented fields (a subset of them; the codec ignores the others).
SUMMARY: list[dict[str, Any]] = [
    {
        "volume_usd": 43211.5, "volume": 0.9, "underlying_price": 33974.38,
        "underlying_index": "BTC-24SEP21", "quote_currency": "BTC", "open_interest": 14.1,
        "mid_price": 0.2245, "mark_price": 0.22412, "mark_iv": 72.5, "low": 0.2245,
        "last": 0.2245, "interest_rate": 0.0, "instrument_name": "BTC-24SEP21-34000-P",
        "high": 0.2245, "estimated_delivery_price": 32201.67, "creation_timestamp": 1626993722929,
        "bid_price": 0.222, "base_currency": "BTC", "ask_price": 0.227,
    },
    {
        "volume": None, "underlying_price": 34100.0, "open_interest": 108.2, "mark_iv": None,
        "instrument_name": "BTC-25MAR22-30000-C", "estimated_delivery_price": 32201.67,
        "creation_timestamp": 1626993722930, "base_currency": "BTC",
    },
    {  # a future in the list: left out
        "volume": 10.0, "open_interest": 5.0, "instrument_name": "BTC-PERPETUAL",
        "creation_timestamp": 1626993722930,
    },
    {  # a negative open interest: left out
        "volume": 1.0, "open_interest": -3.0, "instrument_name": "BTC-24SEP21-8000-P",
        "creation_timestamp": 1626993722930,
    },
]  # fmt: skip


def test_book_summary_result_becomes_open_interest() -> None:
    proto = protocol()
    (request,) = proto.book_summary_requests(["BTC"])
    sent = json.loads(request)
    assert sent["method"] == "public/get_book_summary_by_currency"
    assert sent["params"] == {"currency": "BTC", "kind": "option"}
    events = proto.receive(reply(sent["id"], SUMMARY), TS_RECV)
    assert events == [
        OpenInterest(
            instrument="BTC-24SEP21-34000-P",
            open_interest=14.1,
            volume=0.9,
            iv=0.725,
            underlying_price=33974.38,
            index_price=32201.67,
            ts_event=1_626_993_722_929_000_000,
            ts_recv=TS_RECV,
        ),
        OpenInterest(
            instrument="BTC-25MAR22-30000-C",
            open_interest=108.2,
            underlying_price=34100.0,
            index_price=32201.67,
            ts_event=1_626_993_722_930_000_000,
            ts_recv=TS_RECV,
        ),
    ]
    assert proto.summary_skipped == 2


def test_book_summary_of_another_request_is_not_read() -> None:
    """A summary result answering no request of ours is unsolicited: no events."""
    proto = protocol()
    assert proto.receive(reply(99, SUMMARY), TS_RECV) == []
    assert proto.unsolicited == 1


def test_recorded_frames_field_by_field() -> None:
    proto = protocol()
    events = [e for raw in FRAMES for e in proto.receive(raw, TS_RECV)]
    quotes = [e for e in events if isinstance(e, Quote)]
    assert len(events) == len(quotes) == 29
    first = quotes[0]  # line 1: BTC-24JUN22-15000-C
    assert first.instrument == "BTC-24JUN22-15000-C"
    assert first.bid == 0.583
    assert first.ask == 0.6235
    assert first.mark == 0.60445275
    assert first.iv == pytest.approx(0.8727, abs=1e-15)
    assert first.underlying_price == 33974.38
    assert first.index_price == 32201.67
    assert first.ts_event == 1_626_993_722_929_000_000
    eth = quotes[17]  # line 18: no bid
    assert eth.instrument == "ETH-23JUL21-2300-C"
    assert eth.bid is None
    assert eth.ask == 0.001
    assert eth.mark == 1e-06
    matic = quotes[27]  # line 28: linear USDC option, neither bid nor ask
    assert matic.instrument == "MATIC_USDC-9MAR24-1d02-C"
    assert (matic.bid, matic.ask) == (None, None)
    assert matic.mark == 0.139
    assert matic.iv == pytest.approx(2.0964, abs=1e-15)
    assert matic.ts_event == 1_709_809_020_064_000_000
    last = quotes[28]  # line 29: a .100ms channel
    assert last.instrument == "BTC-30SEP22-60000-C"
    assert last.iv == pytest.approx(0.677, abs=1e-15)
    # Line 30 is a public/get_order_book result answering no request of ours: ignored, counted.
    assert proto.unsolicited == 1
    assert proto.outgoing() == []


def test_recorded_names_resolve_through_the_registry() -> None:
    registry = InstrumentRegistry()
    proto = DeribitProtocol("deribit", registry)
    proto.receive(FRAMES[27], TS_RECV)
    matic = registry.get("MATIC_USDC-9MAR24-1d02-C")
    assert matic is not None
    assert matic.kind is Kind.OPTION
    assert matic.settlement is Settlement.LINEAR
    assert matic.strike == 1.02


def test_str_frames_decode_like_bytes() -> None:
    assert protocol().receive(FRAMES[0].decode(), 1) == protocol().receive(FRAMES[0], 1)


# ---------------------------------------------------------------- futures, indices


def test_perpetual_and_future_tickers_are_ticks_of_the_mark() -> None:
    proto = protocol()
    future = {**PERPETUAL, "instrument_name": "BTC-27DEC24", "mark_price": 41_000.5}
    assert proto.receive(ticker(**PERPETUAL), 7) == [
        Tick(instrument="BTC-PERPETUAL", price=1.0, ts_event=1_700_000_000_000_000_000, ts_recv=7)
    ]
    assert proto.receive(ticker(**future), 8) == [
        Tick(
            instrument="BTC-27DEC24", price=41_000.5, ts_event=1_700_000_000_000_000_000, ts_recv=8
        )
    ]


def test_price_index_is_a_tick_named_after_the_index() -> None:
    events = protocol().receive(index(index_name="btc_usd", price=29_939.43, timestamp=5), 9)
    assert events == [Tick(instrument="btc_usd", price=29_939.43, ts_event=5_000_000, ts_recv=9)]


def test_option_without_iv_or_sides() -> None:
    data = {k: v for k, v in OPTION.items() if k not in ("best_bid_price", "mark_iv")}
    (quote,) = protocol().receive(ticker(**data), 1)
    assert isinstance(quote, Quote)
    assert (quote.bid, quote.ask, quote.iv) == (None, 0.051, None)


def test_option_with_a_mark_of_zero_and_a_vol_is_a_quote_without_mark() -> None:
    """Far out of the money, Deribit's mark rounds to 0 while mark_iv still prices it."""
    (quote,) = protocol().receive(ticker(**{**OPTION, "mark_price": 0.0}), 1)
    assert isinstance(quote, Quote)
    assert quote.mark is None
    assert quote.iv == pytest.approx(float(str(OPTION["mark_iv"])) / 100.0, rel=1e-15)


# ---------------------------------------------------------------- bad frames

BAD_FRAMES: list[tuple[str, bytes | str]] = [
    ("json", b"not json"),
    ("json", b'{"jsonrpc":"2.0","method":"subscription"'),
    ("json", b"\xff\xfe{}"),
    ("json", ticker(**{**OPTION, "mark_price": math.nan})),  # NaN is not JSON
    ("json", ticker(**{**OPTION, "best_bid_price": -math.inf})),
    ("json", '{"method":"\udcff"}'),
    ("schema", b"[1, 2, 3]"),
    ("schema", b'{"jsonrpc":"2.0","id":"x","method":7}'),
    ("schema", frame("subscription", {"data": OPTION})),
    ("schema", frame("subscription", {"channel": 5, "data": OPTION})),
    ("schema", b'{"jsonrpc":"2.0","method":"subscription"}'),
    ("schema", ticker(**{**OPTION, "mark_price": "0.05"})),
    ("schema", ticker(**{k: v for k, v in OPTION.items() if k != "mark_price"})),
    ("schema", ticker(**{**OPTION, "timestamp": 1.5})),
    ("schema", ticker(**OPTION).replace(b'"mark_price": 0.05', b'"mark_price": 1e999')),
    ("schema", index(index_name="btc_usd", price=None, timestamp=1)),
    ("schema", frame("heartbeat", {"kind": "test_request"})),
    ("bad_price", ticker(**{**OPTION, "mark_price": 0.0, "mark_iv": 0.0})),
    (
        "bad_price",
        ticker(**{k: v for k, v in {**OPTION, "mark_price": 0}.items() if k != "mark_iv"}),
    ),
    ("bad_price", ticker(**{**OPTION, "mark_price": -0.01})),
    ("bad_price", ticker(**{**PERPETUAL, "mark_price": 0})),
    ("bad_price", ticker(**{**OPTION, "best_bid_price": -0.001})),
    ("bad_price", ticker(**{**OPTION, "best_ask_price": -1.0})),
    ("bad_price", ticker(**{**OPTION, "mark_iv": -3.0})),
    ("bad_price", ticker(**{**OPTION, "underlying_price": 0.0})),
    ("bad_price", ticker(**{**OPTION, "index_price": -1.0})),
    ("bad_price", index(index_name="btc_usd", price=0.0, timestamp=1)),
    ("unknown_instrument", ticker(**{**OPTION, "instrument_name": "FOO"})),
    ("unknown_instrument", ticker(**{**OPTION, "instrument_name": "BTC-31FEB24-1000-C"})),
    ("unknown_instrument", index(index_name="BTC-USD", price=1.0, timestamp=1)),
    ("unexpected", frame("foo", {"x": 1})),
    ("unexpected", frame("subscription", {"channel": "book.BTC-PERPETUAL.100ms", "data": {}})),
    ("unexpected", frame("heartbeat", {"type": "weird"})),
    ("unexpected", b'{"jsonrpc":"2.0","id":3}'),
    ("rpc_error", reply(99, error={"code": 10028, "message": "too_many_requests"})),
]


@pytest.mark.parametrize(("reason", "payload"), BAD_FRAMES)
def test_bad_frame_raises_decode_error_with_stable_reason(
    reason: str, payload: bytes | str
) -> None:
    with pytest.raises(FeedDecodeError) as info:
        protocol().receive(payload, 1)
    assert info.value.reason == reason
    assert info.value.feed == "deribit"
    assert len(info.value.payload) <= 200


def test_bad_frames_are_counted_by_reason_and_the_protocol_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = FeedStats()
    drops = DropLog(stats, ManualClock(), logging.getLogger("test.deribit"))
    proto = protocol()
    long_frame = ticker(**{**OPTION, "instrument_name": "FOO" * 200})
    with caplog.at_level(logging.WARNING, logger="test.deribit"):
        for _, payload in [*BAD_FRAMES, ("unknown_instrument", long_frame)]:
            with pytest.raises(FeedDecodeError) as info:
                proto.receive(payload, 1)
            drops.drop(info.value)
    assert stats.dropped == Counter(reason for reason, _ in BAD_FRAMES) + Counter(
        unknown_instrument=1
    )
    # One log record per reason (rate-limited), payloads truncated.
    assert len(caplog.records) == len({reason for reason, _ in BAD_FRAMES})
    assert all(len(r.__dict__["payload"]) <= 200 for r in caplog.records)
    assert len(proto.receive(FRAMES[0], 2)) == 1


# ---------------------------------------------------------------- requests, replies


def test_connect_requests_set_heartbeat_then_subscribe_in_chunks() -> None:
    names = [
        "BTC-PERPETUAL",
        "BTC-27DEC24",
        "ETH-PERPETUAL",
        "BTC-27DEC24-60000-C",
        "ETH-PERPETUAL",
    ]
    proto = protocol(
        instruments=names,
        indices=["btc_usd", "eth_usd"],
        interval="agg2",
        heartbeat_s=15,
        max_channels_per_request=2,
    )
    requests = [json.loads(r) for r in proto.connect_requests()]
    assert requests[0]["method"] == "public/set_heartbeat"
    assert requests[0]["params"] == {"interval": 15}
    assert [r["method"] for r in requests[1:]] == ["public/subscribe"] * 3
    assert [r["params"]["channels"] for r in requests[1:]] == [
        ["ticker.BTC-PERPETUAL.agg2", "ticker.BTC-27DEC24.agg2"],
        ["ticker.ETH-PERPETUAL.agg2", "ticker.BTC-27DEC24-60000-C.agg2"],
        ["deribit_price_index.btc_usd", "deribit_price_index.eth_usd"],
    ]
    assert len({r["id"] for r in requests}) == len(requests)
    assert all(r["jsonrpc"] == "2.0" for r in requests)

    complete = [proto.subscription_complete]
    proto.receive(reply(requests[0]["id"], "ok"), 1)
    for r in requests[1:-1]:
        proto.receive(reply(r["id"], r["params"]["channels"]), 1)
        complete.append(proto.subscription_complete)
    # Deribit leaves unknown channels out of its acknowledgement.
    proto.receive(reply(requests[-1]["id"], ["deribit_price_index.btc_usd"]), 1)
    complete.append(proto.subscription_complete)
    assert complete == [False, False, False, True]
    assert proto.missing_channels == ["deribit_price_index.eth_usd"]
    assert len(proto.subscribed) == 5
    assert proto.unsolicited == 0


def test_no_channels_means_subscribed_at_once() -> None:
    proto = protocol()
    assert len(proto.connect_requests()) == 1
    assert proto.subscription_complete


def test_heartbeat_test_request_is_answered_with_public_test() -> None:
    proto = protocol()
    assert proto.receive(frame("heartbeat", {"type": "test_request"}), 1) == []
    (out,) = proto.outgoing()
    request = json.loads(out)
    assert request["method"] == "public/test"
    assert request["jsonrpc"] == "2.0"
    assert proto.outgoing() == []
    # Its reply is expected, a plain heartbeat needs none.
    proto.receive(reply(request["id"], {"version": "1.2.26"}), 2)
    assert proto.receive(frame("heartbeat", {"type": "heartbeat"}), 3) == []
    assert proto.outgoing() == []
    assert proto.unsolicited == 0


def test_unsolicited_results_are_counted_not_raised() -> None:
    proto = protocol()
    assert proto.receive(reply(12345, {"x": 1}), 1) == []
    assert proto.receive(FRAMES[29], 1) == []
    assert proto.unsolicited == 2


@pytest.mark.parametrize(
    ("code", "retryable"), [(10028, True), (11050, True), (-32602, False), (-32601, False)]
)
def test_refused_subscription_is_a_connection_error(code: int, retryable: bool) -> None:
    proto = protocol(instruments=["BTC-PERPETUAL"])
    subscribe_id = ids(proto.connect_requests())[1]
    with pytest.raises(FeedConnectionError) as info:
        proto.receive(reply(subscribe_id, error={"code": code, "message": "no"}), 1)
    assert info.value.retryable is retryable
    assert "public/subscribe" in info.value.detail


def test_refused_heartbeat_is_a_connection_error() -> None:
    proto = protocol()
    (heartbeat_id,) = ids(proto.connect_requests())
    with pytest.raises(FeedConnectionError):
        proto.receive(reply(heartbeat_id, error={"code": 11050, "message": "bad_request"}), 1)


def test_protocol_rejects_a_heartbeat_below_deribits_minimum() -> None:
    with pytest.raises(ValueError, match="heartbeat_s"):
        protocol(heartbeat_s=5)


# ---------------------------------------------------------------- get_instruments


def test_get_instruments_request() -> None:
    assert json.loads(get_instruments_request(7, "BTC", "option")) == {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "public/get_instruments",
        "params": {"currency": "BTC", "kind": "option", "expired": False},
    }
    assert "kind" not in json.loads(get_instruments_request(8, "any"))["params"]


def test_instruments_response_parses_and_skips_combinations() -> None:
    raw = reply(7, list(SAMPLE_INSTRUMENTS))
    instruments = decode_instruments_response(raw, 7, "deribit")
    assert instruments is not None
    by_name = {i.name: i for i in instruments}
    assert sorted(by_name) == ["BTC-27DEC24-60000-C", "BTC-PERPETUAL", "MATIC_USDC-9MAR24-1d02-C"]
    btc = by_name["BTC-27DEC24-60000-C"]
    assert (btc.kind, btc.settlement, btc.quote_currency) == (Kind.OPTION, Settlement.COIN, "USD")
    assert (btc.strike, btc.is_call, btc.expiry_ns) == (60_000.0, True, 1_735_286_400 * 10**9)
    matic = by_name["MATIC_USDC-9MAR24-1d02-C"]
    assert (matic.settlement, matic.quote_currency, matic.strike) == (
        Settlement.LINEAR,
        "USDC",
        1.02,
    )
    assert matic.index == "matic_usdc"
    perp = by_name["BTC-PERPETUAL"]
    assert (perp.kind, perp.settlement, perp.expiry_ns) == (Kind.PERPETUAL, Settlement.COIN, None)


def test_instruments_response_waits_for_its_id() -> None:
    assert decode_instruments_response(reply(6, []), 7, "deribit") is None
    assert decode_instruments_response(frame("heartbeat", {"type": "heartbeat"}), 7, "d") is None
    assert decode_instruments_response(reply(7, []), 7, "deribit") == []


def test_instruments_response_errors() -> None:
    with pytest.raises(FeedConnectionError) as info:
        decode_instruments_response(reply(7, error={"code": -32602, "message": "x"}), 7, "d")
    assert not info.value.retryable
    bad = dict(SAMPLE_INSTRUMENTS[0], strike=None)
    with pytest.raises(FeedDecodeError) as decode_info:
        decode_instruments_response(reply(7, [bad]), 7, "d")
    assert decode_info.value.reason == "schema"
    with pytest.raises(FeedDecodeError) as decode_info:
        decode_instruments_response(reply(7, {"not": "a list"}), 7, "d")
    assert decode_info.value.reason == "schema"


def test_channels_added_later_are_subscribed_once_connected() -> None:
    proto = protocol(instruments=["BTC-PERPETUAL"], max_channels_per_request=2)
    # Before the connect requests went out, new channels simply join them.
    assert proto.add_channels(["BTC-27DEC24"]) == []
    first = [json.loads(r) for r in proto.connect_requests()]
    assert first[1]["params"]["channels"] == [
        "ticker.BTC-PERPETUAL.100ms",
        "ticker.BTC-27DEC24.100ms",
    ]
    # Once connected, only what is new is requested, in chunks; repeats ask for nothing.
    later = [
        json.loads(r)
        for r in proto.add_channels(["BTC-27DEC24", "ETH-PERPETUAL", "ETH-27DEC24"], ["eth_usd"])
    ]
    assert [r["method"] for r in later] == ["public/subscribe", "public/subscribe"]
    assert [c for r in later for c in r["params"]["channels"]] == [
        "ticker.ETH-PERPETUAL.100ms",
        "ticker.ETH-27DEC24.100ms",
        "deribit_price_index.eth_usd",
    ]
    assert proto.add_channels(["ETH-PERPETUAL"]) == []
    assert not proto.subscription_complete  # three subscribe requests await their acks
