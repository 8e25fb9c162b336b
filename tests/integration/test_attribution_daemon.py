"""The attribution family in the running daemon, broken down by strategy: a vertical spread held
from the positions file beside an outright lot of its long leg, published per book and for the
firm with the spread's figures those of its slices of the lots as the daemon holds them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import redis.asyncio as aioredis

from engine.risk import var
from engine.risk.attribution import NO_STRATEGY, tail_weights
from engine.risk.scenarios import scenario_pnl
from engine.runtime.app import Daemon
from tests.integration.test_crosshedge_daemon import _seed
from tests.integration.test_daemon import CALL, PUT, _config, _market, _publish, _wait_snapshot
from tests.servers import MosquittoServer, RedisServer, running_daemon, wait_until

HIGH = "BTC-27DEC30-70000-C"
SPREAD = f"vertical:{CALL}/70000"
EXTRA = """
[risk]
history = "history.csv"
record_at_utc = "23:59"
mc_scenarios = 400

[risk.attribution]
interval_s = 0.2
capital_interval_s = 0.2
"""


async def _current(
    r: aioredis.Redis, daemon: Daemon, prefix: str, key: str, since_ns: int = 0
) -> dict[str, Any]:
    """The ``attribution`` payload under ``key`` of the current valuation with figures, of a
    copy of the books made after ``since_ns``."""
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(20):
            while True:
                raw = await r.hget(f"{prefix}:attribution:snapshot", key)
                if raw is not None:
                    last = orjson.loads(raw)
                    assert last is not None
                    if (
                        all(m["status"] == "ok" for m in last["methods"])
                        and last["valuation_ts_ns"] == daemon.portfolio.valuation_ns
                        and last["ts_ns"] > since_ns
                    ):
                        return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"attribution {key}: last seen {last}")


async def test_the_attribution_by_strategy_is_published(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    """Book main: 10 calls outright and 4 verticals (+4 of the call, -4 of the 70000 call): the
    call's lot of 14 is split 4 to the spread, 10 to the rest. Every method's components by
    strategy sum to its total; the spread's historical component ES is the mean P&L of its
    slices over the tail scenarios, valued here from the daemon's book and moves; the firm
    labels it main/...; book other holds no strategy: the rest is all of it."""
    _seed(tmp_path)
    port = mosquitto_server.port
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=EXTRA)
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\n"
        f"main,{CALL},10,0.05\nmain,{SPREAD},4,0.04\nother,{PUT},-20,\n"
    )
    quote = {"instrument": HIGH, "mark": 0.15, "iv": 0.62, "underlying_price": 66000.0}
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            market = [*_market(unique, 65000.0, 66000.0, 0.6), (f"{unique}/md/quote/{HIGH}", quote)]
            await _publish(port, market)
            # every quote in (a later one moves the prices, not the valuation time): both legs
            await _wait_snapshot(r, unique, "main:BTC", lambda p: p["n_stale"] == 0)
            since = daemon.risk.clock.now_ns()
            for _ in range(10):  # until no full reprice comes between the payload and the copy
                got = await _current(r, daemon, unique, "main", since)
                br = daemon.portfolio.book_risk("main")
                if br.valuation_ns == got["valuation_ts_ns"]:
                    break
            assert br.instruments == [CALL, HIGH]
            for m in got["methods"]:
                by = m["breakdowns"][-1]
                assert by["by"] == "strategy"
                assert [x["label"] for x in by["parts"]] == [SPREAD, NO_STRATEGY]
                spread, rest = by["parts"]
                assert (spread["quantity"], spread["positions"], rest["positions"]) == (4.0, 2, 1)
                total = spread["component_es"] + rest["component_es"]
                assert total == pytest.approx(m["es"], rel=1e-9), m["method"]
                assert spread["marginal_var_per_unit"] == pytest.approx(
                    spread["component_var"] / 4.0, rel=1e-12
                )
            # the spread's slices: +4 of the call's 14, the 70000 call's -4 whole
            ret, dvol = daemon.risk.history.moves(br.underlyings)
            pnl = var.historical(br.positions, ret, dvol, 0.99, 0.975, 1.0)[1].pnl
            slices = br.positions._replace(weight=np.array([4.0, -4.0]))
            mine = scenario_pnl(slices, ret, dvol, 1.0).pnl
            hist = next(m for m in got["methods"] if m["method"] == "historical")
            spread = hist["breakdowns"][-1]["parts"][0]
            want = -float(tail_weights(pnl, 0.975) @ mine)
            assert spread["component_es"] == pytest.approx(want, rel=1e-9)
            alone = var.empirical(mine, 0.99, 0.975)
            assert spread["standalone_es"] == pytest.approx(alone.es, rel=1e-9)
            without = var.empirical(pnl - mine, 0.99, 0.975)
            assert spread["incremental_es"] == pytest.approx(hist["es"] - without.es, rel=1e-9)
            firm = await _current(r, daemon, unique, "*")
            labels = [x["label"] for x in firm["methods"][0]["breakdowns"][-1]["parts"]]
            assert labels == [f"main/{SPREAD}", f"main/{NO_STRATEGY}", f"other/{NO_STRATEGY}"]
            other = await _current(r, daemon, unique, "other")
            [only] = other["methods"][0]["breakdowns"][-1]["parts"]
            assert only["label"] == NO_STRATEGY
            assert only["component_es"] == pytest.approx(other["methods"][0]["es"], rel=1e-12)
            assert daemon.risk.errors == 0
    finally:
        await r.aclose()
