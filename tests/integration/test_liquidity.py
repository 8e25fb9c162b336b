"""The ``liquidity`` family end to end: quotes in over MQTT, each book's exit cost and
liquidity-adjusted VaR out of Redis on its own period, against real servers; a bad
``[risk.liquidity]`` key stops start-up with exit code 2, naming it."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from tests.integration.test_cli import _run
from tests.integration.test_daemon import CALL, PUT, _config, _market, _publish, _wait_snapshot
from tests.servers import MosquittoServer, RedisServer, running_daemon, wait_until


async def test_exit_cost_and_lvar_per_book_reach_redis(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    extra = "\n[risk.liquidity]\ninterval_s = 0.2\nwindow = 50\na = 2.5\n"
    port = mosquitto_server.port
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=extra)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            market = _market(unique, 65000.0, 66000.0, 0.6)
            call = {"instrument": CALL, "bid": 0.19, "ask": 0.21, "iv": 0.6}
            market.append((f"{unique}/md/quote/{CALL}", call | {"underlying_price": 66000.0}))
            await _publish(port, market)
            # main: 10 coin-quoted calls, 1/2 x 10 x 0.02 BTC x 66 000 USD; the perpetual has
            # no quote (ticks carry no bid or ask)
            main = await _wait_snapshot(
                r, unique, "main", lambda p: p["exit_cost_usd"] > 0.0, "liquidity"
            )
            assert main["exit_cost_usd"] == pytest.approx(6_600.0, rel=1e-9)
            assert main["unquoted"] == ["BTC-PERPETUAL"]
            assert (main["a"], main["window"], main["method"]) == (2.5, 50, "historical")
            # no recorded moves: no VaR to adjust, and the status says why
            assert main["var"] is None
            assert main["lvar"] is None
            assert main["status"] == "0 days of moves, need 2"
            # other: short 20 ETH puts at 0.05 / 0.06 ETH, forward 3 100 USD
            other = await _wait_snapshot(
                r, unique, "other", lambda p: p["exit_cost_usd"] > 0.0, "liquidity"
            )
            assert other["exit_cost_usd"] == pytest.approx(310.0, rel=1e-9)
            # the spread widens: later periods sample it beside the earlier ones, so the
            # adjustment (mean + a x deviation) exceeds the exit cost at the quotes, which
            # it equals while the spread never moved
            assert main["liquidity_cost_usd"] == pytest.approx(6_600.0, rel=1e-9)
            wide = call | {"ask": 0.23, "underlying_price": 66000.0}
            await _publish(port, [(f"{unique}/md/quote/{CALL}", wide)])
            got = await _wait_snapshot(
                r, unique, "main", lambda p: p["exit_cost_usd"] > 9_000.0, "liquidity"
            )
            assert got["exit_cost_usd"] == pytest.approx(13_200.0, rel=1e-9)
            held = {p["instrument"]: p for p in got["positions"]}[CALL]
            assert held["samples"] >= 2
            assert held["spread_std"] > 0.0
            assert got["liquidity_cost_usd"] > held["value_usd"] * held["spread_mean"] / 2
            assert await r.xlen(f"{unique}:liquidity:stream") > 0
            assert {p["instrument"] for p in other["positions"]} == {PUT}
            assert daemon.risk.errors == 0
    finally:
        await r.aclose()


def test_a_bad_liquidity_key_exits_2_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text("[risk.liquidity]\na = -1.0\n")
    out = _run("check-config", "-c", str(path))
    assert out.returncode == 2
    assert "$.risk.liquidity.a" in out.stderr


async def test_a_hedges_slippage_against_the_book_from_mqtt(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    extra = '\n[risk]\nhedge_interval_s = 0.2\nhedge_future = { BTC = "BTC-PERPETUAL" }\n'
    port = mosquitto_server.port
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=extra)
    r = aioredis.Redis.from_url(redis_server.url)
    bids = [[65_050.0, 20_000.0], [65_000.0, 1e6]]
    asks = [[65_150.0, 20_000.0], [65_200.0, 1e6]]
    book = {"instrument": "BTC-PERPETUAL", "bids": bids, "asks": asks, "ts": 1_732_400_000_000}
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            await _publish(port, _market(unique, 65000.0, 66000.0, 0.6))
            # without depth the payload says so
            none = await _wait_snapshot(
                r, unique, "main:BTC", lambda p: p["quantity"] is not None, "slippage"
            )
            assert none["status"] == "no order book for BTC-PERPETUAL"
            await _publish(port, [(f"{unique}/md/book/BTC-PERPETUAL", book)])
            got = await _wait_snapshot(
                r, unique, "main:BTC", lambda p: p["status"] == "ok", "slippage"
            )
            # main: 10 calls (about +6 BTC of delta) and 100 000 USD of perpetual short: the
            # hedge sells, through both bid levels; mid 65 100; a short at p costs
            # q (m/p - 1) USD (inverse)
            q = -got["quantity"]
            assert got["side"] == "sell"
            assert q > 20_000.0
            want = 20_000.0 * (65_100.0 / 65_050.0 - 1) + (q - 20_000.0) * (65_100.0 / 65_000.0 - 1)
            assert got["slippage_usd"] == pytest.approx(want, rel=1e-9)
            assert (got["mid"], got["levels"], got["complete"]) == (65_100.0, 2, True)
            raw = await r.hget(f"{unique}:hedge:snapshot", "main:BTC")
            assert raw is not None
            hedge = orjson.loads(raw)
            assert hedge["future"] == got["future"] == "BTC-PERPETUAL"
            assert daemon.risk.errors == 0
    finally:
        await r.aclose()
