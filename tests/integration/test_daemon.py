"""The daemon end to end: MQTT in, exposures and alerts out of Redis, against real servers.

Expected figures are computed here independently, from engine.greeks and the unit conventions
of engine.outputs, at the valuation time each payload states.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import math
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import numba
import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis
import redis.exceptions

from engine.clock import ManualClock
from engine.daycount import year_fraction
from engine.errors import ConfigError
from engine.events import Fill, Quote, Tick
from engine.greeks import inverse
from engine.instruments import parse_deribit_name
from engine.outputs import SettlementPayload, TermStructurePayload, UnderlyingExposure
from engine.risk import var
from engine.risk.report import vol_level
from engine.runtime.app import Daemon, build, run
from engine.runtime.config import load_config
from engine.runtime.engine_loop import REFRESH_BATCH
from engine.runtime.http import readiness
from engine.runtime.risk_task import load_history
from engine.state import BookRisk
from tests.deribit_server import SAMPLE_INSTRUMENTS, DeribitServer, load_frames
from tests.factories import payload
from tests.servers import MosquittoServer, RedisServer, http_get, running_daemon, wait_until

CALL = "BTC-27DEC30-60000-C"
PUT = "ETH-27DEC30-3000-P"
OPT = "BTC-24JUN22-15000-C"  # in the recorded Deribit frames
TS = 1_732_400_000_123  # ms


def _config(
    tmp_path: Path, redis_url: str, prefix: str, mqtt_port: int, topic: str, extra: str = ""
) -> Path:
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,{CALL},10,0.05\n"
        "main,BTC-PERPETUAL,-100000,60000\n"
        f"other,{PUT},-20,\n"
    )
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_url}"
prefix = "{prefix}"
min_interval_ms = 20
backoff_initial_s = 0.05
backoff_max_s = 0.5

[portfolio]
positions = "positions.csv"

[engine]
cycle_interval_ms = 10
full_reprice_interval_s = 0.5
feed_stale_after_s = 60

[view]
enabled = "off"

[[feeds]]
kind = "mqtt"
name = "md"
port = {mqtt_port}
topic_prefix = "{topic}/"
client_id = "{topic}-riskd"
backoff_initial_s = 0.05
backoff_max_s = 0.5

[[alerts]]
name = "btc_vega"
metric = "vega"
scope = "underlying"
underlying = "BTC"
above = 1000.0
{extra}
"""
    )
    return path


async def _publish(port: int, messages: Sequence[tuple[str, dict[str, Any] | bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", port, identifier=None) as client:
        for topic, payload in messages:
            data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
            await client.publish(topic, data, qos=1)


async def _same_valuation(
    r: aioredis.Redis, prefix: str, strategy: str, pair: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The strategy's payload and its (book, underlying)'s exposure, once both are of one
    valuation time and hold the same position (equal delta)."""
    seen: tuple[Any, Any] = (None, None)
    try:
        async with asyncio.timeout(20):
            while True:
                s = orjson.loads(await r.hget(f"{prefix}:strategy:snapshot", strategy) or "null")
                p = orjson.loads(await r.hget(f"{prefix}:snapshot", pair) or "null")
                seen = (s, p)
                if (
                    s is not None
                    and p is not None
                    and s["status"] == "ok"
                    and s["valuation_ts_ns"] == p["valuation_ts_ns"]
                    and math.isclose(s["delta"], p["delta"], rel_tol=1e-9)
                ):
                    return s, p
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"never at one valuation with one position: {seen}") from None


async def _wait_snapshot(
    r: aioredis.Redis,
    prefix: str,
    key: str,
    ok: Callable[[dict[str, Any]], bool],
    family: str | None = None,
) -> dict[str, Any]:
    """The payload under ``key`` of the exposure snapshot (or of ``family``'s) once ``ok``."""
    snapshot = f"{prefix}:snapshot" if family is None else f"{prefix}:{family}:snapshot"
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    raw = await r.hget(snapshot, key)
                except redis.exceptions.ConnectionError:  # the test's own client, after a kill
                    raw = None
                if raw is not None:
                    last = orjson.loads(raw)
                    if ok(last):
                        return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"snapshot {key} never satisfied the check; last: {last}") from None


def _market(topic: str, spot: float, fwd: float, iv: float) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{topic}/md/tick/btc_usd", {"instrument": "btc_usd", "price": spot, "ts": TS}),
        (f"{topic}/md/tick/BTC-PERPETUAL", {"instrument": "BTC-PERPETUAL", "price": spot + 100}),
        (
            f"{topic}/md/quote/{CALL}",
            {"instrument": CALL, "mark": 0.2, "iv": iv, "underlying_price": fwd, "ts": TS},
        ),
        (
            f"{topic}/md/quote/{PUT}",
            {"instrument": PUT, "bid": 0.05, "ask": 0.06, "iv": 0.7, "underlying_price": 3100.0},
        ),
    ]


def _expected_btc(
    payload: dict[str, Any], qty: float, cost_coin: float, spot: float, fwd: float, iv: float
) -> dict[str, float]:
    """main:BTC figures from first principles: qty calls on F, a short perpetual."""
    call = parse_deribit_name(CALL)
    assert call is not None
    assert call.expiry_ns is not None
    T = year_fraction(payload["valuation_ts_ns"], call.expiry_ns)
    g = inverse(True, fwd, 60000.0, T, 0.0, iv)
    perp_px = spot + 100
    notional = -100000.0
    return {
        "delta": qty * float(g.delta) + notional / perp_px,
        "delta_usd": qty * float(g.delta) * fwd + notional,
        "delta_adj": qty * float(g.delta_adj) + notional / perp_px,
        "cash_gamma": qty * float(g.gamma) * fwd * fwd / 100,
        "vega": qty * float(g.vega) / 100,
        "theta": qty * float(g.theta) / 365,
        "market_value": qty * float(g.price),
        "pnl": qty * float(g.price) - cost_coin * fwd + notional * (perp_px / 60000.0 - 1.0),
    }


async def test_mqtt_in_exposures_out(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    port = mosquitto_server.port
    expiry_rule = """
[[alerts]]
name = "btc_dated_vega"
metric = "vega"
scope = "expiry"
underlying = "BTC"
above = 1000.0
"""
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=expiry_rule)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            # Published before the feed's first subscription, messages would have no session
            # to wait in: start once it is subscribed.
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            alerts = r.pubsub()
            await alerts.subscribe(f"{unique}:alerts")
            await _publish(port, _market(unique, 65000.0, 66000.0, 0.6))
            fill = {"book": "main", "instrument": CALL, "quantity": 5, "price": 0.06, "ts": TS}
            await _publish(port, [(f"{unique}/fills/main", fill)])

            def settled(p: dict[str, Any]) -> bool:
                want = _expected_btc(p, 15.0, 10 * 0.05 + 5 * 0.06, 65000.0, 66000.0, 0.6)
                return p["n_stale"] == 0 and math.isclose(p["vega"], want["vega"], rel_tol=1e-9)

            got = await _wait_snapshot(r, unique, "main:BTC", settled)
            want = _expected_btc(got, 15.0, 0.8, 65000.0, 66000.0, 0.6)
            for name, value in want.items():
                assert got[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
            assert got["n_positions"] == 2
            assert got["units"]["vega"] == "USD per vol point"
            assert got["expiries"]["expiry"] == ["2030-12-27T08:00:00Z", "perpetual"]
            # Book scope: USD figures add up, underlying-unit figures do not exist.
            raw_book = await r.hget(f"{unique}:snapshot", "main")
            assert raw_book is not None
            book = orjson.loads(raw_book)
            assert book["delta"] is None
            assert book["vega"] == pytest.approx(got["vega"], rel=1e-12)
            # The vega limit (1000 USD per vol point) is breached by 15 calls: raised.
            async with asyncio.timeout(10):
                while True:
                    msg = await alerts.get_message(ignore_subscribe_messages=True, timeout=1)
                    if msg is not None:
                        alert = orjson.loads(msg["data"])
                        break
            assert alert["id"] == "btc_vega:main:BTC"
            assert alert["state"] == "raised"
            # The same limit per expiry: the dated calls breach it, the perpetual has no vega.
            async with asyncio.timeout(10):
                while (msg := await alerts.get_message(True, timeout=1)) is None:
                    pass
            dated = orjson.loads(msg["data"])
            assert dated["id"] == "btc_dated_vega:main:BTC:2030-12-27T08:00:00Z"
            assert (dated["state"], dated["scope"]) == ("raised", "expiry")
            # raised by the first payload over the limit: 10 calls, or 15 once the fill is in
            # (market data and fills reach the engine by different paths)
            vega_15 = got["expiries"]["vega"][0]
            assert any(
                dated["value"] == pytest.approx(v, rel=1e-12) for v in (vega_15, vega_15 * 10 / 15)
            ), (dated["value"], vega_15)
            # The stream has one entry per published change; the heartbeat lives.
            assert await r.xlen(f"{unique}:exposure:stream") > 0
            assert await r.ttl(f"{unique}:heartbeat") > 0
            # Bad messages are counted and dropped; the feed goes on.
            bad: list[tuple[str, dict[str, Any] | bytes]] = [
                (f"{unique}/md/quote/{CALL}", b"{not json"),
                (f"{unique}/md/quote/{CALL}", b'{"instrument": "%s", "mark": NaN}' % CALL.encode()),
                (f"{unique}/md/quote/UNKNOWN", {"instrument": "UNKNOWN", "mark": 1.0}),
                (f"{unique}/md/tick/btc_usd", {"instrument": "btc_usd", "price": -5.0}),
                (f"{unique}/md/tick/btc_usd", {"instrument": "btc_usd", "price": "65000"}),
                (f"{unique}/md/tick/btc_usd", {"instrument": "btc_usd", "price": 0.0}),
            ]
            await _publish(port, bad)
            await _publish(port, _market(unique, 65000.0, 67000.0, 0.65))

            def moved(p: dict[str, Any]) -> bool:
                want = _expected_btc(p, 15.0, 0.8, 65000.0, 67000.0, 0.65)
                return math.isclose(p["vega"], want["vega"], rel_tol=1e-9)

            await _wait_snapshot(r, unique, "main:BTC", moved)
            feed = daemon.feeds[0]
            assert sum(feed.stats.dropped.values()) == len(bad), feed.stats.dropped
            assert daemon.portfolio.unresolved_fills == []
    finally:
        await r.aclose()


async def test_survives_redis_and_broker_restarts_without_losing_fills(
    tmp_path: Path, unique: str
) -> None:
    with RedisServer() as rs, MosquittoServer() as ms:
        path = _config(tmp_path, rs.url, unique, ms.port, unique)
        r = aioredis.Redis.from_url(rs.url)
        fills_sent = 0.0

        async def send_fills(n: int) -> None:
            nonlocal fills_sent
            msgs: list[tuple[str, dict[str, Any] | bytes]] = []
            for k in range(n):
                q = 1.0 if k % 3 else -0.5
                fills_sent += q
                fill = {"book": "main", "instrument": CALL, "quantity": q, "price": 0.05}
                msgs.append((f"{unique}/fills/main", fill))
            await _publish(ms.port, msgs)

        def has_qty(qty: float) -> Callable[[dict[str, Any]], bool]:
            def ok(p: dict[str, Any]) -> bool:
                want = _expected_btc(p, qty, 0.0, 65000.0, 66000.0, 0.6)
                return math.isclose(p["vega"], want["vega"], rel_tol=1e-9)

            return ok

        try:
            async with running_daemon(path) as daemon:
                await wait_until(lambda: daemon.feeds[0].stats.connected)
                await _publish(ms.port, _market(unique, 65000.0, 66000.0, 0.6))
                await send_fills(30)
                await _wait_snapshot(r, unique, "main:BTC", has_qty(10 + fills_sent))
                # Redis dies; the engine computes on; Redis returns empty and is refilled.
                rs.kill()
                await send_fills(30)
                await asyncio.sleep(0.3)
                rs.start()
                await _wait_snapshot(r, unique, "main:BTC", has_qty(10 + fills_sent))
                await wait_until(lambda: daemon.sink.stats.reconnects >= 1)
                # The broker dies and comes back; the feed reconnects and resubscribes.
                ms.kill()
                await asyncio.sleep(0.3)
                ms.start()
                await wait_until(lambda: daemon.feeds[0].stats.connected)
                await send_fills(30)
                await _wait_snapshot(r, unique, "main:BTC", has_qty(10 + fills_sent))
                assert daemon.feeds[0].stats.connects >= 2
                held = {(b, i): q for b, i, q in daemon.portfolio.positions()}
                assert held[("main", CALL)] == pytest.approx(10 + fills_sent, abs=1e-12)
        finally:
            await r.aclose()


async def test_deribit_in_matches_deribits_own_greeks(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """Recorded Deribit tickers in, through a local Deribit; the book's figures out of Redis
    equal quantity x the greeks Deribit published on those tickers (valued at their time)."""
    frames = [
        f
        for f in load_frames()
        if f.get("params", {}).get("data", {}).get("instrument_name") == OPT
    ][:1]  # one recorded ticker, served again and again: its greeks are the reference
    data = frames[0]["params"]["data"]
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\ndesk,{OPT},-3\n")
    path = tmp_path / "riskd.toml"
    async with DeribitServer(frames, frame_interval_s=0.01) as server:
        path.write_text(
            f"""
[redis]
url = "{redis_server.url}"
prefix = "{unique}"
min_interval_ms = 20
[portfolio]
positions = "positions.csv"
[view]
enabled = "off"
[[feeds]]
kind = "deribit"
url = "{server.url}"
backoff_initial_s = 0.05
backoff_max_s = 0.2
instrument_currencies = ["BTC"]
"""
        )
        clock = ManualClock(data["timestamp"] * 1_000_000)
        daemon = build(load_config(path), path, clock=clock)
        task = asyncio.create_task(run(daemon))
        r = aioredis.Redis.from_url(redis_server.url)
        try:
            got = await _wait_snapshot(r, unique, "desk:BTC", lambda p: p["n_stale"] == 0)
            # Deribit's own definitions were loaded from public/get_instruments at start.
            listed = {
                i["instrument_name"]
                for i in SAMPLE_INSTRUMENTS
                if i["settlement_currency"] == "BTC" and "combo" not in i["kind"]
            }
            assert listed <= {inst.name for inst in daemon.registry}
            greeks = data["greeks"]
            # Deribit rounds greeks to 5 decimals and mark_iv to 2 (tests/data/README.md).
            assert got["delta"] == pytest.approx(-3 * greeks["delta"], abs=3 * 2e-5)
            assert got["vega"] == pytest.approx(-3 * greeks["vega"], rel=2e-4)
            assert got["theta"] == pytest.approx(-3 * greeks["theta"], rel=2e-4)
            mv = -3 * data["mark_price"] * data["underlying_price"]
            assert got["market_value"] == pytest.approx(mv, rel=1e-3)
            # The server goes away and comes back: the feed resubscribes, figures flow again.
            await server.stop()
            await asyncio.sleep(0.2)
            await server.start()
            await wait_until(
                lambda: server.subscribe_calls >= 2 and daemon.feeds[0].stats.connects >= 2
            )
            sent = server.frames_sent
            await wait_until(lambda: server.frames_sent >= sent + 3)
            assert f"ticker.{OPT}.100ms" in server.subscriptions[-1]
            assert "deribit_price_index.btc_usd" in server.subscriptions[-1]
            # A fill brings a new instrument into the book: it is subscribed on the live
            # connection, without a reconnect.
            new = "BTC-25MAR22-30000-C"
            connections = server.connections
            fill = Fill(book="desk", instrument=new, quantity=1.0, ts_event=1, ts_recv=1)
            await daemon.inbox.put_fill(fill)  # the seam every fill feed uses
            await wait_until(lambda: f"ticker.{new}.100ms" in server.subscriptions[-1])
            assert server.connections == connections
        finally:
            daemon.stop.set()
            async with asyncio.timeout(20):
                assert await task == 0
            await r.aclose()


INTERVAL_S = 0.5


def _offline(
    tmp_path: Path, positions: str, redis: str = "", engine: str = ""
) -> tuple[Daemon, ManualClock]:
    """A daemon built from a config whose Redis is never contacted (only ``cycle`` and
    ``acycle`` run), on a ManualClock at TS; ``positions``: the rows of its positions file."""
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\n{positions}")
    path = tmp_path / "riskd.toml"
    path.write_text(
        f'[redis]\nurl = "redis://127.0.0.1:9/0"\n{redis}'
        f'[portfolio]\npositions = "positions.csv"\n[engine]\n{engine}'
    )
    clock = ManualClock(TS * 1_000_000)
    return build(load_config(path), path, clock=clock), clock


def test_each_payload_is_built_at_most_once_per_interval(tmp_path: Path) -> None:
    """A (book, underlying) pair and its book are rate-limited each on its own: a quote that
    moves one pair dirties that pair and the book, and nothing is built again before the
    interval is up (but on a flush). A full reprice's refresh of every key counts for none."""
    daemon, _ = _offline(
        tmp_path,
        f"main,{CALL},10\nmain,{PUT},-20\n",
        redis=f"min_interval_ms = {INTERVAL_S * 1000:.0f}\n",
        engine="full_reprice_interval_s = 3600\n",
    )

    def quote(instrument: str, iv: float) -> None:
        fwd = 60_000.0 if instrument == CALL else 3_000.0
        ts = TS * 1_000_000
        daemon.inbox.put(
            Quote(instrument=instrument, iv=iv, underlying_price=fwd, ts_event=ts, ts_recv=ts)
        )

    assert daemon.engine.cycle() == 3  # the first full cycle: main:BTC, main:ETH, main
    assert set(daemon.out.exposures()) == {"main:BTC", "main:ETH", "main"}
    quote(CALL, 0.55)
    quote(PUT, 0.65)
    assert daemon.engine.cycle() == 3  # a full reprice's refresh holds no change back
    quote(CALL, 0.6)
    quote(PUT, 0.7)
    assert daemon.engine.cycle() == 0  # built moments ago: both pairs and the book wait
    time.sleep(INTERVAL_S * 1.2)
    assert daemon.engine.cycle() == 3  # all three have changed since, and are due
    eth = daemon.out.exposures()["main:ETH"]
    assert isinstance(eth, UnderlyingExposure)
    assert eth.expiries.vega[0] != 0.0
    time.sleep(INTERVAL_S * 1.2)
    quote(CALL, 0.65)
    assert daemon.engine.cycle() == 2  # main:BTC and its book; main:ETH did not change
    assert daemon.out.exposures()["main:ETH"] is eth
    quote(PUT, 0.75)
    assert daemon.engine.cycle() == 1  # main:ETH is due, its book was built a moment ago
    assert daemon.out.exposures()["main:ETH"] is not eth
    quote(PUT, 0.8)
    assert daemon.engine.cycle(flush=True) == 2  # a flush builds whatever is dirty


def test_a_full_reprices_refresh_waits_behind_changes_in_the_sink(tmp_path: Path) -> None:
    """A full reprice's refresh of every key goes to the sink as background payloads (written
    after every change, a part at a time: docs/redis.md#timing); a key an event changed goes as
    a change, in the same cycle."""
    daemon, clock = _offline(tmp_path, f"main,{CALL},10\nmain,{PUT},-20\n")
    pending = daemon.sink._pending  # the sink's two lanes (never written: Redis is offline)
    daemon.engine.cycle()  # the first cycle is a full one: every key refreshed
    assert (set(pending.changes), set(pending.background)) == (
        set(),
        {("exposure", "main:BTC"), ("exposure", "main:ETH"), ("exposure", "main")},
    )
    clock.advance(2 * 10**9)  # past full_reprice_interval_s
    ts = clock.now_ns()
    daemon.inbox.put(
        Quote(instrument=CALL, iv=0.7, underlying_price=61_000.0, ts_event=ts, ts_recv=ts)
    )
    assert daemon.engine.cycle() == 3
    assert set(pending.changes) == {("exposure", "main:BTC"), ("exposure", "main")}
    assert set(pending.background) == {("exposure", "main:ETH")}


def test_the_risk_periods_leave_the_streaming_path_a_core(tmp_path: Path) -> None:
    """``[risk] threads``: by default the periods' kernels run on every numba thread but one
    (at least one); an explicit count is kept (capped at numba's); the worker thread's own
    setting is restored after each computation."""
    cores = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]  # untyped
    daemon, _ = _offline(tmp_path, f"main,{CALL},10\n")
    assert daemon.risk.threads == max(cores - 1, 1)
    assert asyncio.run(daemon.risk._off_loop(numba.get_num_threads)) == max(cores - 1, 1)
    (tmp_path / "riskd.toml").write_text(
        (tmp_path / "riskd.toml").read_text() + "[risk]\nthreads = 64\n"
    )
    explicit = build(load_config(tmp_path / "riskd.toml"), tmp_path / "riskd.toml")
    assert explicit.risk.threads == cores

    async def twice() -> tuple[int, int]:
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
            asyncio.get_running_loop().set_default_executor(pool)
            inner = await daemon.risk._off_loop(numba.get_num_threads)
            after = await asyncio.to_thread(numba.get_num_threads)  # the same thread, later
        return inner, after

    assert asyncio.run(twice()) == (max(cores - 1, 1), cores)


class _SteppedClock:
    """A wall clock that an operator (or NTP) can step back: ManualClock never goes back."""

    def __init__(self, now_ns: int) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now


def test_a_clock_stepped_back_revalues_at_once(tmp_path: Path) -> None:
    """After the wall clock steps back an hour, the next cycle is a full reprice at the new
    time: the valuation time does not stay an hour ahead with every input stale (found by the
    soak's clock jump)."""
    daemon, _ = _offline(tmp_path, f"main,{CALL},10\n")
    clock = _SteppedClock(TS * 1_000_000 + 3600 * 10**9)
    daemon.clock = daemon.engine.clock = clock
    p = daemon.portfolio
    daemon.engine.cycle()
    assert p.valuation_ns == clock.now
    clock.now -= 3600 * 10**9  # stepped back
    quote = Quote(instrument=CALL, iv=0.6, underlying_price=60_000.0, ts_event=1, ts_recv=clock.now)
    daemon.inbox.put(quote)
    daemon.engine.cycle()
    assert p.valuation_ns == clock.now
    assert p.instrument_status().stale_instruments == 0
    clock.now += 10**8  # within the interval again: incremental
    daemon.engine.cycle()
    assert p.valuation_ns == clock.now - 10**8


async def test_a_full_reprices_refresh_goes_out_a_few_keys_a_cycle(tmp_path: Path) -> None:
    """The running loop publishes the keys a full reprice refreshed REFRESH_BATCH a cycle (a
    quote arriving meanwhile waits behind a few, not every key's); a key an event changes in
    between goes out as a change, once; a flush (and a synchronous cycle) takes them all."""
    books = [f"b{i}" for i in range(6)]
    daemon, clock = _offline(tmp_path, "".join(f"{b},{CALL},10\n" for b in books))
    pending = daemon.sink._pending  # the sink's two lanes (never written: Redis is offline)
    keys = {("exposure", k) for b in books for k in (b, f"{b}:BTC")}
    assert len(keys) > REFRESH_BATCH
    assert await daemon.engine.acycle() == REFRESH_BATCH  # the first cycle is a full one
    assert len(pending.background) == REFRESH_BATCH
    left = keys - set(pending.background)
    b = next(k for _, k in left if ":" not in k)
    ts = clock.now_ns()
    daemon.inbox.put(
        Quote(instrument=CALL, iv=0.7, underlying_price=61_000.0, ts_event=ts, ts_recv=ts)
    )  # every pair and book changes: those not yet refreshed go as changes, not twice
    assert await daemon.engine.acycle() == len(keys)
    assert ("exposure", b) in pending.changes
    assert await daemon.engine.acycle() == 0  # nothing left to refresh
    clock.advance(2 * 10**9)  # past full_reprice_interval_s
    assert daemon.engine.cycle() == len(keys)  # a synchronous cycle refreshes every key


async def test_a_full_reprice_leaves_the_event_loop_running(tmp_path: Path) -> None:
    """The engine loop's full reprice runs in a worker thread: while it runs, the event loop
    (feeds, sink) goes on. Here the reprice waits for a coroutine of the loop: were it run on
    the loop's own thread, it would wait in vain."""
    daemon, clock = _offline(tmp_path, f"main,{CALL},10\n")
    daemon.engine.cycle()  # the first cycle is a full one
    p = daemon.portfolio
    reprice = p.cycle
    released = threading.Event()
    seen: list[bool] = []

    def waiting_cycle(now_ns: int, full: bool = False) -> set[tuple[str, str]]:
        if full:
            seen.append(released.wait(timeout=10))
        return reprice(now_ns, full)

    p.cycle = waiting_cycle  # type: ignore[method-assign]  # the test's hook
    clock.advance(2 * 10**9)  # past full_reprice_interval_s
    task = asyncio.create_task(daemon.engine.acycle())
    await asyncio.sleep(0.05)  # the loop runs while the reprice waits
    released.set()
    await task
    assert seen == [True]
    assert p.valuation_ns == clock.now_ns()  # a full reprice: the valuation time moved
    clock.advance(10**6)
    await daemon.engine.acycle()  # incremental, on the loop's thread
    assert seen == [True]
    assert p.valuation_ns == clock.now_ns() - 10**6


async def test_risk_payloads_and_alerts_out(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """VaR and stress payloads per book reach Redis on their periods, their figures equal the
    pure functions' on the book as the daemon holds it, the day's level joins the seeded window
    of moves, and an alert rule on a VaR figure raises."""
    today = dt.datetime.now(dt.UTC).date()
    rows = ["date,underlying,price,vol"]
    for i in range(30, 0, -1):  # a month of levels, up to yesterday
        d = today - dt.timedelta(days=i)
        rows.append(
            f"{d},BTC,{60000 * (1 + 0.02 * math.sin(i)):.2f},{0.6 + 0.05 * math.cos(i):.4f}"
        )
        rows.append(f"{d},ETH,{3000 * (1 + 0.03 * math.sin(2 * i)):.2f},")
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")
    extra = """
[risk]
history = "history.csv"
var_interval_s = 0.2
stress_interval_s = 0.3
mc_scenarios = 300
record_at_utc = "00:00"
margin_interval_s = 0.3
equity_usd = { main = 1000000.0 }
hedge_interval_s = 0.2
hedge_future = { BTC = "BTC-PERPETUAL" }
skew_interval_s = 0.2

[[alerts]]
name = "main_var"
metric = "var_historical"
scope = "book"
book = "main"
above = 1.0

[[alerts]]
name = "btc_hedge"
metric = "hedge_contracts"
scope = "underlying"
underlying = "BTC"
below = -1.0
"""
    port = mosquitto_server.port
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=extra)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            alerts = r.pubsub()
            await alerts.subscribe(f"{unique}:alerts")
            await _publish(port, _market(unique, 65000.0, 66000.0, 0.6))
            # a chain of the call's expiry (a smile with skew), and a held call never quoted
            chain = [
                (
                    f"{unique}/md/quote/BTC-27DEC30-{k}-C",
                    {
                        "instrument": f"BTC-27DEC30-{k}-C",
                        "mark": 0.2,
                        "iv": 0.6 - 0.05 * math.log(k / 66000.0),
                        "underlying_price": 66000.0,
                    },
                )
                for k in (40000, 50000, 70000, 80000, 100000)
            ]
            unquoted = "BTC-27DEC30-90000-C"
            fill = {"book": "smile", "instrument": unquoted, "quantity": 1, "price": 0.1, "ts": TS}
            await _publish(port, [*chain, (f"{unique}/fills/smile", fill)])
            await _wait_snapshot(r, unique, "main:BTC", lambda p: p["n_stale"] == 0)
            # the smile gives the unquoted call its vol: the book is priced, none stale
            await _wait_snapshot(
                r, unique, "smile:BTC", lambda p: p["n_stale"] == 0 and p["vega"] > 0.0
            )
            assert unquoted in daemon.risk.smile_quotes
            smile = await _wait_snapshot(
                r, unique, "BTC:2030-12-27T08:00:00Z", lambda p: p["n_quotes"] == 6, "skew"
            )  # the five and the call of main; never the smile's own quote
            assert smile["status"] == "ok", smile["status"]
            assert smile["rr25"] < 0.0  # vol falls with the strike
            assert await r.hget(f"{unique}:skew:snapshot", "BTC") is not None  # term structure

            ready: dict[str, Callable[[dict[str, Any]], bool]] = {  # once the market data is in
                "var": lambda p: p["history_days"] == 30,  # with today's move
                "margin": lambda p: p["status"] == "ok",  # with the index price
                "stress": lambda p: True,
            }

            async def latest(family: str) -> dict[str, Any]:
                """The book's payload of the current valuation, once ``ready``."""
                async with asyncio.timeout(20):
                    while True:
                        raw = await r.hget(f"{unique}:{family}:snapshot", "main")
                        if raw is not None:
                            p: dict[str, Any] = orjson.loads(raw)
                            if p["valuation_ts_ns"] == daemon.portfolio.valuation_ns and ready[
                                family
                            ](p):
                                return p
                        await asyncio.sleep(0.02)

            for _ in range(10):  # until no full reprice comes between the payload and the copy
                got = await latest("var")
                br = daemon.portfolio.book_risk("main")
                if br.valuation_ns == got["valuation_ts_ns"]:
                    break
            assert got["status"]["historical"] == "ok", got["status"]
            # 29 seeded moves and today's, from the index price the daemon recorded
            assert daemon.risk.history.last_day("BTC") == today
            # ... and appended to the history file, so a restart keeps it
            written = (tmp_path / "history.csv").read_text().splitlines()
            assert written[: len(rows)] == rows
            assert [line for line in written[len(rows) :] if line.startswith(f"{today},BTC,")]
            assert load_history(daemon.config.risk, path).last_day("BTC") == today
            ret, dvol = daemon.risk.history.moves(br.underlyings)
            want = var.historical(br.positions, ret, dvol, 0.99, 0.975, 1.0)[0]
            assert got["var_historical"] == pytest.approx(want.var, rel=1e-12)
            assert got["es_historical"] == pytest.approx(want.es, rel=1e-12)
            assert got["var"] == got["var_historical"]  # the default method
            assert got["units"]["var"] == "USD"
            margin = await latest("margin")
            assert margin["margin_im"] > margin["margin_mm"] > 0.0
            assert margin["margin_utilisation"] == pytest.approx(margin["margin_im"] / 1e6)
            assert np.asarray(margin["portfolio"]["matrix_usd"]).shape == (1, 9, 3)
            hedge = await _wait_snapshot(
                r, unique, "main:BTC", lambda p: p["status"] == "ok", family="hedge"
            )
            assert hedge["future"] == "BTC-PERPETUAL"
            assert hedge["hedge_contracts"] == hedge["delta_hedge"]["contracts"] < 0
            stress = await latest("stress")
            assert np.asarray(stress["pnl"]).shape == (13, 7)
            assert stress["pnl"][6][2] == 0.0  # no move, no vol shock
            assert await r.xlen(f"{unique}:var:stream") > 0
            seen: dict[str, dict[str, Any]] = {}
            async with asyncio.timeout(10):
                while not {"main_var", "btc_hedge"} <= seen.keys():
                    msg = await alerts.get_message(ignore_subscribe_messages=True, timeout=1)
                    if msg is not None:
                        alert = orjson.loads(msg["data"])
                        seen.setdefault(alert["alert"], alert)
            var_alert, hedge_alert = seen["main_var"], seen["btc_hedge"]
            assert (var_alert["id"], var_alert["state"], var_alert["unit"]) == (
                "main_var:main",
                "raised",
                "USD",
            )
            assert (hedge_alert["id"], hedge_alert["unit"]) == ("btc_hedge:main:BTC", "contracts")
            assert daemon.risk.errors == 0
    finally:
        await r.aclose()


@pytest.mark.parametrize(
    ("risk", "where"),
    [
        ('hedge_future = { BTC = "ETH-PERPETUAL" }', "$.risk.hedge_future.BTC"),
        ('hedge_future = { BTC = "NOT-AN-INSTRUMENT" }', "$.risk.hedge_future.BTC"),
        (
            'hedge_future = { BTC = "BTC-PERPETUAL" }\nhedge_options = { BTC = ["BTC-PERPETUAL"] }',
            "$.risk.hedge_options.BTC[0]",
        ),
    ],
)
def test_a_bad_hedge_instrument_stops_start_up(tmp_path: Path, risk: str, where: str) -> None:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nmain,{CALL},1\n")
    path = tmp_path / "riskd.toml"
    path.write_text(f'[portfolio]\npositions = "positions.csv"\n[risk]\n{risk}\n')
    with pytest.raises(ConfigError, match=re.escape(where)):
        build(load_config(path), path)


def test_an_underlyings_vol_level_is_its_first_atm_vol_a_week_out() -> None:
    week = 7.0 / 365.0

    def term(tte_years: list[float], atm_vol: list[float]) -> TermStructurePayload:
        return payload(TermStructurePayload, tte_years=tte_years, atm_vol=atm_vol)

    assert vol_level(term([0.5 * week, week, 4 * week], [0.9, 0.6, 0.5])) == 0.6
    assert vol_level(term([0.5 * week], [0.9])) == 0.9  # none so far: the last
    assert vol_level(term([week], [math.nan])) is None


def _journaled(
    tmp_path: Path, rows: str, redis_server: RedisServer, unique: str
) -> tuple[Path, int]:
    """A config on the positions ``rows`` (``book,instrument,quantity,avg_price``) with a fill
    journal and the risk periods off; and the expiry of ``CALL``, UNIX ns."""
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity,avg_price\n{rows}")
    path = tmp_path / "riskd.toml"
    path.write_text(
        f'[redis]\nurl = "{redis_server.url}"\nprefix = "{unique}"\n'
        '[portfolio]\npositions = "positions.csv"\njournal = "fills.journal"\n'
        "[risk]\nenabled = false\n"
    )
    call = parse_deribit_name(CALL)
    assert call is not None
    assert call.expiry_ns is not None
    return path, call.expiry_ns


async def _restart_realises_the_same(daemon: Daemon, path: Path, expiry: int) -> None:
    """After ``daemon`` settled every position of ``path`` at ``expiry``: a daemon restarted
    from its journal realised the same P&L, has nothing left to settle and holds nothing."""
    assert daemon.inbox.journal is not None
    daemon.inbox.journal.close()
    again = build(load_config(path), path, clock=ManualClock(expiry + 5 * 10**9))
    try:
        assert again.settler.realised_pnl_usd == daemon.settler.realised_pnl_usd
        assert await again.monitor.settle() == 0
        again.engine.cycle(full=True)
        assert again.out.exposures()["main"].n_positions == 0
    finally:
        await again.sink.aclose()
        if again.inbox.journal is not None:
            again.inbox.journal.close()


async def test_expired_positions_settle_at_the_index_twap(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """Over the 30 minutes before expiry the index is sampled each second the monitor runs
    (here: every 10 s of the daemon's clock): 70 000 for the first half, 72 000 for the second,
    so the settlement price is 71 000. The call (K 60 000, 10 at 0.05 BTC) settles at
    (71 000 - 60 000) / 71 000 BTC, the short future (100 000 USD at 60 000) at 71 000; both
    leave the book, and each position's payload reaches Redis. The settlement is journaled: a
    restarted daemon holds neither position and has realised the same P&L."""
    future = "BTC-27DEC30"
    path, expiry = _journaled(
        tmp_path, f"main,{CALL},10,0.05\nmain,{future},-100000,60000\n", redis_server, unique
    )
    clock = ManualClock(expiry - 31 * 60 * 10**9)
    daemon = build(load_config(path), path, clock=clock)
    p = daemon.portfolio
    try:
        for k in range(-186, 0):  # every 10 s from 31 minutes before the expiry
            now = expiry + k * 10 * 10**9
            clock.set(now)
            px = 70_000.0 if now < expiry - 15 * 60 * 10**9 else 72_000.0
            p.apply_tick(Tick(instrument="btc_usd", price=px, ts_event=now, ts_recv=now))
            assert await daemon.monitor.settle() == 0
        r = aioredis.Redis.from_url(redis_server.url)
        key = "btc_usd:2030-12-27T08:00:00Z"
        try:
            await daemon.sink.flush()  # the running average, before the expiry
            running = orjson.loads(await r.hget(f"{unique}:settlement:snapshot", key) or b"null")
            clock.set(expiry + 10**9)
            assert await daemon.monitor.settle() == 2
            clock.set(expiry + 2 * 10**9)
            assert await daemon.monitor.settle() == 0  # once
            daemon.engine.cycle(full=True)
            assert daemon.out.exposures()["main"].n_positions == 0  # they left the book
            await daemon.sink.flush()
            got = orjson.loads(await r.hget(f"{unique}:settlement:snapshot", key) or b"null")
        finally:
            await r.aclose()
    finally:
        await daemon.sink.aclose()
    S = 71_000.0
    assert running["final"] is False
    assert running["positions"] == []
    assert running["price"] == pytest.approx((900 * 70_000.0 + 890 * 72_000.0) / 1790, rel=1e-12)
    assert got["final"] is True
    assert (got["status"], got["n_samples"]) == ("ok", 180)
    assert got["price"] == pytest.approx(S, rel=1e-12)
    pos = {x["instrument"]: x for x in got["positions"]}
    opt, fut = pos[CALL], pos[future]
    assert opt["value"] == pytest.approx((S - 60_000.0) / S, rel=1e-12)
    assert opt["pnl"] == pytest.approx(10 * ((S - 60_000.0) / S - 0.05), rel=1e-12)
    assert opt["pnl_usd"] == pytest.approx(opt["pnl"] * S, rel=1e-12)
    assert fut["pnl"] == pytest.approx(-100_000.0 * (1 / 60_000.0 - 1 / S), rel=1e-12)
    assert got["pnl_usd"]["main"] == pytest.approx(opt["pnl_usd"] + fut["pnl_usd"], rel=1e-12)
    assert got["realised_pnl_usd"]["main"] == daemon.settler.realised_pnl_usd["main"]
    assert daemon.settler.realised_pnl_usd["main"] == pytest.approx(
        opt["pnl_usd"] + fut["pnl_usd"], rel=1e-12
    )
    # A restart: the journal's settlement takes the positions out again, at the same price.
    await _restart_realises_the_same(daemon, path, expiry)


async def test_a_fill_queued_before_a_settlement_is_in_the_book_it_settles(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """A fill journaled and queued when its expiry falls due is applied before the expiry
    settles (the settlement waits for the next second): the journal's order (fill, then
    settlement) is the book's, so a restart replays the same realised P&L."""
    path, expiry = _journaled(tmp_path, f"main,{CALL},10,0.05\n", redis_server, unique)
    clock = ManualClock(expiry - 60 * 10**9)
    daemon = build(load_config(path), path, clock=clock)
    try:
        now = clock.now_ns()
        daemon.portfolio.apply_tick(
            Tick(instrument="btc_usd", price=70_000.0, ts_event=now, ts_recv=now)
        )
        assert await daemon.monitor.settle() == 0  # a sample of the average
        clock.set(expiry + 10**9)
        await daemon.inbox.put_fill(
            Fill(book="main", instrument=CALL, quantity=5.0, price=0.04, ts_event=1, ts_recv=1)
        )
        assert await daemon.monitor.settle() == 0  # a fill waits: the settlement too
        daemon.engine.cycle()  # the fill goes in
        clock.set(expiry + 2 * 10**9)
        assert await daemon.monitor.settle() == 1
        settled = daemon.out.latest[("settlement", "btc_usd:2030-12-27T08:00:00Z")]
        assert isinstance(settled, SettlementPayload)
        assert [x.quantity for x in settled.positions] == [15.0]
    finally:
        await daemon.sink.aclose()
    await _restart_realises_the_same(daemon, path, expiry)


async def test_strategies_from_the_positions_file_and_fills(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """A vertical spread held from the positions file and bought again by a fill: its legs are
    positions of the book, and its payload (quantity, cost, figures) reaches Redis, and a
    strategy-scope rule on its delta raises; a fill of a text that is no strategy is rejected
    and kept."""
    port = mosquitto_server.port
    extra = """
[risk]
strategy_interval_s = 0.2

[[alerts]]
name = "spread_delta"
metric = "delta"
scope = "strategy"
above = 0.1
"""
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra)
    spread = "vertical:BTC-27DEC30-60000-C/70000"
    (tmp_path / "positions.csv").write_text(
        f"book,instrument,quantity,avg_price\nmain,{CALL},10,0.05\nspreads,{spread},3,0.04\n"
    )
    high = "BTC-27DEC30-70000-C"
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            alerts = r.pubsub()
            await alerts.subscribe(f"{unique}:alerts")
            quote = {"instrument": high, "mark": 0.15, "iv": 0.62, "underlying_price": 66000.0}
            await _publish(
                port,
                [*_market(unique, 65000.0, 66000.0, 0.6), (f"{unique}/md/quote/{high}", quote)],
            )
            fills = [
                {"book": "spreads", "instrument": spread, "quantity": 2, "price": 0.05, "ts": TS},
                {
                    "book": "spreads",
                    "instrument": "vertical:BTC-27DEC30-70000-C/60000",
                    "quantity": 1,
                    "ts": TS,
                },
            ]
            await _publish(port, [(f"{unique}/fills/spreads", f) for f in fills])
            pair = await _wait_snapshot(
                r, unique, "spreads:BTC", lambda p: p["n_positions"] == 2 and p["n_stale"] == 0
            )
            got = await _wait_snapshot(
                r,
                unique,
                f"spreads:{spread}",
                lambda p: p["quantity"] == 5.0 and p["status"] == "ok",
                family="strategy",
            )
            assert got["cost"] == pytest.approx(3 * 0.04 + 2 * 0.05, rel=1e-12)
            assert got["legs"] == [
                {"instrument": "BTC-27DEC30-60000-C", "ratio": 1.0},
                {"instrument": high, "ratio": -1.0},
            ]
            # the spread is the book's only holding: its figures are the book's, at one
            # valuation time (each full reprice moves it) and with all 5 spreads (the book's
            # snapshot may predate the fill, or be of the next valuation already)
            got, pair = await _same_valuation(r, unique, f"spreads:{spread}", "spreads:BTC")
            assert got["quantity"] == 5.0
            assert got["delta"] == pytest.approx(pair["delta"], rel=1e-9)
            assert got["vega"] == pytest.approx(pair["vega"], rel=1e-9)
            assert got["margin_im"] > 0.0
            assert len(got["payoff"]["S"]) == 61
            async with asyncio.timeout(10):  # the spread is long delta: above 0.1
                while True:
                    msg = await alerts.get_message(ignore_subscribe_messages=True, timeout=1)
                    if msg is not None and orjson.loads(msg["data"])["alert"] == "spread_delta":
                        alert = orjson.loads(msg["data"])
                        break
            assert alert["id"] == f"spread_delta:spreads:BTC:{spread}"
            assert alert["strategy"] == spread
            (rejected,) = daemon.engine.rejected_fills
            assert rejected.instrument == "vertical:BTC-27DEC30-70000-C/60000"
    finally:
        await r.aclose()


def test_a_bad_strategy_in_the_positions_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity\nmain,butterfly:BTC-27DEC30-60000-C/70000/65000,1\n"
    )
    path = tmp_path / "riskd.toml"
    path.write_text('[portfolio]\npositions = "positions.csv"\n')
    with pytest.raises(ConfigError, match="line 2"):
        build(load_config(path), path)


async def test_a_failing_risk_period_is_counted_and_the_next_one_runs(tmp_path: Path) -> None:
    daemon, _ = _offline(tmp_path, f"main,{CALL},10\n")
    daemon.config = msgspec.structs.replace(
        daemon.config, risk=msgspec.structs.replace(daemon.config.risk, var_interval_s=0.05)
    )
    daemon.engine.cycle()
    real = daemon.portfolio.books_risk
    calls = 0

    def failing_once(books: Iterable[str] | None = None) -> dict[str, BookRisk]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return real(books)

    daemon.portfolio.books_risk = failing_once  # type: ignore[method-assign]  # the test's hook
    task = asyncio.create_task(daemon.risk.run(daemon.stop))
    try:
        await wait_until(lambda: daemon.risk.errors == 1 and calls >= 3)
    finally:
        daemon.stop.set()
        await task
    assert daemon.risk.errors == 1
    await daemon.sink.aclose()


async def test_a_failing_settlement_is_counted_and_the_monitor_goes_on(tmp_path: Path) -> None:
    daemon, _ = _offline(tmp_path, f"main,{CALL},10\n")
    daemon.engine.cycle()
    calls = 0

    def failing() -> list[tuple[str, int]]:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    daemon.portfolio.held_expiries = failing  # type: ignore[method-assign]  # the test's hook
    task = asyncio.create_task(daemon.monitor.run())
    try:
        await wait_until(lambda: calls >= 2, timeout_s=5.0)  # a second pass: it went on
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert daemon.monitor.errors >= 1
    await daemon.sink.aclose()


async def test_health_readiness_and_metrics_over_http(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """/healthz answers at once; /readyz is 503 until the feed is connected and Redis written,
    then 200; /metrics counts the feed's messages and drops and bins the cycles."""
    port = mosquitto_server.port
    extra = '[http]\naddress = "127.0.0.1:0"\n[risk]\nenabled = false\n'
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra)
    async with running_daemon(path) as daemon:
        await wait_until(lambda: daemon.http is not None and daemon.http.port > 0)
        assert daemon.http is not None
        http = daemon.http.port
        assert await http_get(http, "/healthz") == (200, b"ok\n")
        await wait_until(lambda: daemon.feeds[0].stats.connected and daemon.sink.stats.connected)
        status, body = await http_get(http, "/readyz")
        assert status == 200, body
        assert orjson.loads(body)["checks"] == {
            "kernels_warm": True,
            "feeds_connected": True,
            "redis_reachable": True,
            "no_feed_stale": True,
        }
        bad = (f"{unique}/md/quote/{CALL}", b"{not json")
        await _publish(port, [*_market(unique, 65000.0, 66000.0, 0.6), bad])
        await wait_until(lambda: daemon.feeds[0].stats.received >= 5)
        status, metrics = await http_get(http, "/metrics")
        text = metrics.decode()
        assert status == 200
        assert 'riskd_messages_total{feed="md"} 5.0' in text
        assert 'riskd_dropped_messages_total{feed="md",reason="json"} 1.0' in text
        assert "riskd_cycle_seconds_count" in text
        assert "riskd_latency_seconds_bucket" in text
        assert (await http_get(http, "/nope"))[0] == 404
        # every metric the Grafana dashboard in docs/ queries is one /metrics serves
        dashboard = (Path(__file__).parents[2] / "docs" / "grafana-dashboard.json").read_text()
        wanted = set(re.findall(r"riskd_[a-z_]+", dashboard))
        served = set(re.findall(r"^(riskd_[a-z_]+)", text, re.MULTILINE))
        assert wanted <= served, wanted - served
        daemon.feeds[0].stats.connected = False  # as after a drop: not ready
        assert (await http_get(http, "/readyz"))[0] == 503
        daemon.feeds[0].stats.connected = True


def test_an_optional_feed_that_never_spoke_is_neither_stale_nor_unready(tmp_path: Path) -> None:
    """Two silent MQTT feeds past the stale limit: the required one raises its stale alert and
    fails /readyz's checks; the optional one (``required = false``, as the compose file's) does
    neither, until it has received something and falls silent again."""
    feeds = "".join(
        f'[[feeds]]\nkind = "mqtt"\nname = "{name}"\nport = 9\nrequired = {req}\n'
        for name, req in (("fills", "false"), ("md", "true"))
    )
    (tmp_path / "positions.csv").write_text("book,instrument,quantity\n")
    path = tmp_path / "riskd.toml"
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:9/0"\n[engine]\nfeed_stale_after_s = 10\n' + feeds
    )
    clock = ManualClock(TS * 1_000_000)
    daemon = build(load_config(path), path, clock=clock)
    daemon.engine.cycle(full=True)
    daemon.sink.stats.connected = True  # as after a write: only the feeds decide here
    for f in daemon.feeds:
        f.stats.connected = True
    clock.advance(11 * 10**9)
    daemon.monitor.check_feeds()

    def stale() -> set[str]:
        return set(daemon.out.alerts.stale_feeds())

    assert stale() == {"md"}
    assert readiness(daemon.monitor.health())["stale_feeds"] == ["md"]
    daemon.feeds[1].stats.last_recv_ns = clock.now_ns()  # md speaks
    daemon.monitor.check_feeds()
    assert stale() == set()
    assert readiness(daemon.monitor.health())["ready"]
    daemon.feeds[0].stats.connected = False  # the optional one drops: still ready
    assert readiness(daemon.monitor.health())["ready"]
    daemon.feeds[0].stats.received = 1  # it spoke once, then went silent
    daemon.feeds[0].stats.last_recv_ns = clock.now_ns()
    clock.advance(11 * 10**9)
    daemon.feeds[1].stats.last_recv_ns = clock.now_ns()
    daemon.monitor.check_feeds()
    assert stale() == {"fills"}
    assert readiness(daemon.monitor.health())["ready"]  # alerted; counts for nothing in readiness
