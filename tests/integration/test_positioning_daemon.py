"""The positioning family in the running daemon: open interest from a local Deribit (the
recorded tickers' and its book summary), published to Redis on its period, with an alert rule
on a positioning figure; a bad [risk.positioning] stops start-up naming its key."""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.clock import ManualClock
from engine.errors import ConfigError
from engine.greeks import black76
from engine.instruments import parse_deribit_name
from engine.runtime.app import build, run
from engine.runtime.config import load_config
from tests.deribit_server import DeribitServer, load_frames
from tests.integration.test_daemon import OPT
from tests.servers import RedisServer, wait_until


def _recorded_btc_options(valuation_ns: int) -> dict[str, dict[str, Any]]:
    """The last recorded ticker of each BTC option not expired at ``valuation_ns``."""
    out: dict[str, dict[str, Any]] = {}
    for f in load_frames():
        data = f.get("params", {}).get("data", {})
        name = data.get("instrument_name", "")
        inst = parse_deribit_name(name)
        if name.startswith("BTC-") and inst is not None and (inst.expiry_ns or 0) > valuation_ns:
            out[name] = data
    return out


def _last_ticker_each(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``frames`` with only the last ticker of each instrument (index frames all kept): the
    server streams its frames in laps, so the subscribed option would otherwise be valued on
    whichever of its tickers came last when the payload was read, not on the last recorded one
    that the expected figures use (a CI run saw gex_total 3e-9 off)."""
    last = {}
    for i, f in enumerate(frames):
        name = f.get("params", {}).get("data", {}).get("instrument_name")
        if name is not None:
            last[name] = i
    return [
        f
        for i, f in enumerate(frames)
        if last.get(f.get("params", {}).get("data", {}).get("instrument_name"), i) == i
    ]


async def test_positioning_payloads_out(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """Every BTC option of the recorded frames comes in through public/get_book_summary_by_
    currency (the book subscribes the ticker of one); the all-expiry payload's open interest
    is the recorded one, its gamma exposure the dealers' (long calls, short puts) Black-76 cash
    gamma on the recorded vols and forwards, and a put/call rule raises."""
    frames = _last_ticker_each(load_frames())
    now_ns = frames[0]["params"]["data"]["timestamp"] * 1_000_000  # 2021-07-22
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
[risk.positioning]
interval_s = 0.2
[[feeds]]
kind = "deribit"
url = "{server.url}"
backoff_initial_s = 0.05
backoff_max_s = 0.2
summary_currencies = ["BTC"]
[[alerts]]
name = "btc_put_call"
metric = "put_call_oi"
scope = "expiry"
underlying = "BTC"
expiry = "all"
above = 0.5
"""
        )
        daemon = build(load_config(path), path, clock=ManualClock(now_ns))
        task = asyncio.create_task(run(daemon))
        r = aioredis.Redis.from_url(redis_server.url)
        try:
            await wait_until(lambda: server.book_summary_calls >= 1)
            recorded = _recorded_btc_options(now_ns)
            got: dict[str, Any] = {}
            async with asyncio.timeout(20):
                while True:  # until every option's open interest is in
                    raw = await r.hget(f"{unique}:positioning:snapshot", "BTC:all")
                    got = orjson.loads(raw) if raw else {}
                    if got and got["options"] == len(recorded):
                        break
                    await asyncio.sleep(0.02)
            calls = {n: d for n, d in recorded.items() if n.endswith("-C")}
            puts = {n: d for n, d in recorded.items() if n.endswith("-P")}
            call_oi = sum(d["open_interest"] for d in calls.values())
            put_oi = sum(d["open_interest"] for d in puts.values())
            assert got["call_oi"] == pytest.approx(call_oi, rel=1e-12)
            assert got["put_oi"] == pytest.approx(put_oi, rel=1e-12)
            assert got["put_call_oi"] == pytest.approx(put_oi / call_oi, rel=1e-12)
            want = 0.0
            for name, d in recorded.items():
                inst = parse_deribit_name(name)
                assert inst is not None
                assert inst.expiry_ns is not None
                assert inst.strike is not None
                T = (inst.expiry_ns - got["valuation_ts_ns"]) / (365 * 86_400 * 1e9)
                F = d["underlying_price"]
                gamma = float(black76(True, F, inst.strike, T, 0.0, d["mark_iv"] / 100).gamma)
                sign = 1.0 if name.endswith("-C") else -1.0
                want += sign * d["open_interest"] * gamma * F * F / 100.0
            assert got["gex_total"] == pytest.approx(want, rel=1e-9)
            assert got["unpriced"] == 0
            assert math.isfinite(got["spot"])
            assert got["units"]["gex"] == "USD per 1% move"
            expiries = await r.hkeys(f"{unique}:positioning:snapshot")
            assert len(expiries) == 1 + len({n.split("-")[1] for n in recorded})
            assert await r.xlen(f"{unique}:positioning:stream") > 0
            async with asyncio.timeout(20):  # the rule raised; its alert reaches Redis
                while True:
                    if await r.hexists(f"{unique}:alerts:active", "btc_put_call:*:BTC:all"):
                        break
                    await asyncio.sleep(0.02)
            assert daemon.risk.errors == 0
        finally:
            daemon.stop.set()
            async with asyncio.timeout(20):
                assert await task == 0
            await r.aclose()


def test_a_bad_positioning_table_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nmain,{OPT},1\n")
    path = tmp_path / "riskd.toml"
    path.write_text(
        '[portfolio]\npositions = "positions.csv"\n[risk.positioning]\nbooks = ["main"]\n'
    )
    with pytest.raises(ConfigError, match=re.escape("risk.positioning.books")):
        build(load_config(path), path)
