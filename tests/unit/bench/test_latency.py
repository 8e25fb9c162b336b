"""Tests for the latency benchmark's parts that decide what it measures (bench/latency.py,
bench/naive.py): the naive daemon computes riskd's figures, a probe is recognised in riskd's own
payloads, and the subscriber parses Redis pub/sub pushes. No timings."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import orjson
import pytest
from numpy.testing import assert_allclose

from bench.latency import Book, Expect, Prober, _resp_array, build_book
from bench.naive import FIGURES, NaiveBook
from engine.events import Quote
from engine.instruments import InstrumentRegistry
from engine.outputs import encode
from engine.state import Portfolio
from tests.factories import T0_NS

BOOK = build_book(T0_NS)


def _quote(instrument: str, msg: dict[str, Any], ts_ns: int = T0_NS) -> Quote:
    return Quote(
        instrument=instrument,
        bid=msg["bid"],
        ask=msg["ask"],
        mark=msg["mark"],
        iv=msg["iv"],
        underlying_price=msg["underlying_price"],
        ts_event=ts_ns,
        ts_recv=ts_ns,
    )


def _riskd(book: Book) -> Portfolio:
    """riskd's portfolio of the benchmark's book, every option at its resting quote."""
    p = Portfolio(InstrumentRegistry())
    for b, name, qty, avg in book.positions:
        p.add_position(b, name, qty, avg)
    p.apply_quotes(_quote(q.instrument, q.payload()) for q in book.quotes)
    p.cycle(T0_NS, full=True)
    return p


def _encoded(p: Portfolio, key: str) -> bytes:
    """riskd's payload of ``key`` as its Redis sink encodes it."""
    book, und = key.split(":")
    ((_, payload),) = p.exposure_payloads([(book, und)], T0_NS, books=[])
    return encode(payload)


def test_the_book_has_the_documented_shape() -> None:
    assert len(BOOK.positions) == 10_000
    assert len({(b, n) for b, n, _, _ in BOOK.positions}) == 10_000  # each (book, option) once
    keys = {f"{b}:{n.split('-')[0]}" for b, n, _, _ in BOOK.positions}
    assert sorted(p.key for p in BOOK.probes) == sorted(keys)  # a probe option in every key
    bulk_expiries = {q.instrument.split("-")[1] for q in BOOK.bulk}
    assert len(bulk_expiries) == 8
    for p in BOOK.probes:  # held by its own book alone, in an expiry no bulk option has
        assert [b for b, n, _, _ in BOOK.positions if n == p.quote.instrument] == [p.book]
        assert p.quote.instrument.split("-")[1] not in bulk_expiries


def test_the_naive_daemon_publishes_riskds_figures() -> None:
    p = _riskd(BOOK)
    naive = NaiveBook(BOOK.positions)
    for q in BOOK.quotes:
        naive.apply(_quote(q.instrument, q.payload()))
    per_key, per_group = naive.reprice(T0_NS)
    assert len(naive.keys) == 64
    for k, key in enumerate(naive.keys):
        got = naive.payload(k, per_key, per_group, T0_NS)
        want = orjson.loads(_encoded(p, f"{key.book}:{key.underlying}"))
        for name in FIGURES:
            assert_allclose(got[name], want[name], rtol=1e-9, atol=1e-9, err_msg=name)
            assert_allclose(
                got["expiries"][name], want["expiries"][name], rtol=1e-9, atol=1e-9, err_msg=name
            )
        for name in ("book", "underlying", "scope", "n_positions", "n_stale", "units"):
            assert got[name] == want[name], name
        assert got["expiries"]["expiry"] == want["expiries"]["expiry"]
        assert got["expiries"]["n_positions"] == want["expiries"]["n_positions"]


async def test_a_probe_is_recognised_in_riskds_payload_only_once_it_is_applied() -> None:
    p = _riskd(BOOK)
    probe = BOOK.probes[5]
    a, b = socket.socketpair()
    with a, b:
        prober = Prober(BOOK, a, "t/")
        forward = probe.quote.forward * 1.00042
        e = Expect(forward, 0, asyncio.get_running_loop().create_future())
        prober.expect[probe.key] = e
        prober.on_payload(_encoded(p, probe.key), 1)  # before the quote: not it
        assert not e.done.done()
        assert e.other == 1
        _, msg = prober.send(probe.quote, forward)  # what the broker would get
        p.apply_quote(_quote(probe.quote.instrument, msg))
        assert p.cycle(T0_NS) == {(probe.book, probe.quote.underlying)}  # that key alone
        prober.on_payload(_encoded(p, probe.key), 2)
        assert e.done.result() == 2
        assert prober.last_seen[probe.key] == 2
        assert prober.forward_seen[probe.key] == pytest.approx(forward, rel=1e-12)


def test_pub_sub_pushes_are_parsed_whole_or_not_at_all() -> None:
    frame = b"*3\r\n$7\r\nmessage\r\n$3\r\nch1\r\n$5\r\nhe\r\nl\r\n"
    confirm = b"*3\r\n$9\r\nsubscribe\r\n$3\r\nch1\r\n:1\r\n"
    buf = bytearray(confirm + frame)
    assert _resp_array(buf, 0) == ([b"subscribe", b"ch1", 1], len(confirm))
    assert _resp_array(buf, len(confirm)) == ([b"message", b"ch1", b"he\r\nl"], len(buf))
    for cut in range(len(frame)):  # a push split anywhere by the socket: wait for the rest
        assert _resp_array(bytearray(frame[:cut]), 0) is None
