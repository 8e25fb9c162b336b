"""The crosshedge and cpt families in the running daemon: on their periods, in Redis, their
figures those of the pure functions on the books as the daemon holds them; a bad cross-hedge
instrument or benchmark stops start-up naming its key."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from engine.errors import ConfigError
from engine.risk import cpt, crosshedge, var
from engine.risk.scenarios import scenario_pnl
from engine.runtime.app import Daemon, build
from engine.runtime.config import load_config
from engine.state import AGG_FIELDS
from tests.integration.test_daemon import CALL, _config, _market, _publish
from tests.servers import MosquittoServer, RedisServer, running_daemon, wait_until

EXTRA = """
[risk]
history = "history.csv"
record_at_utc = "23:59"

[risk.cross_hedge]
interval_s = 0.2
hedge = { "*" = "BTC-PERPETUAL" }
benchmark = "btc_usd"
min_days = 20

[risk.cpt]
enabled = true
interval_s = 0.2
"""


def _seed(tmp_path: Path) -> None:
    """A month of levels up to yesterday, ETH's log-returns 1.5 x BTC's plus a wobble."""
    today = dt.datetime.now(dt.UTC).date()
    rows = ["date,underlying,price,vol"]
    for i in range(30, 0, -1):
        d = today - dt.timedelta(days=i)
        x = 0.02 * math.sin(i)
        rows.append(f"{d},BTC,{60000 * math.exp(x):.4f},")
        rows.append(f"{d},ETH,{3000 * math.exp(1.5 * x + 0.002 * math.cos(3 * i)):.4f},")
    (tmp_path / "history.csv").write_text("\n".join(rows) + "\n")


async def _current(
    r: aioredis.Redis, daemon: Daemon, prefix: str, family: str, book: str
) -> dict[str, Any]:
    """The book's ``family`` payload of the current valuation, once its status is ok."""
    last: dict[str, Any] | None = None
    try:
        async with asyncio.timeout(20):
            while True:
                raw = await r.hget(f"{prefix}:{family}:snapshot", book)
                if raw is not None:
                    last = orjson.loads(raw)
                    assert last is not None
                    if last["status"] == "ok" and (
                        last["valuation_ts_ns"] == daemon.portfolio.valuation_ns
                    ):
                        return last
                await asyncio.sleep(0.02)
    except TimeoutError:
        pytest.fail(f"{family} {book}: last seen {last}")


async def test_crosshedge_and_cpt_payloads_out(
    tmp_path: Path, redis_server: RedisServer, mosquitto_server: MosquittoServer, unique: str
) -> None:
    _seed(tmp_path)
    port = mosquitto_server.port
    path = _config(tmp_path, redis_server.url, unique, port, unique, extra=EXTRA)
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        async with running_daemon(path) as daemon:
            await wait_until(lambda: daemon.feeds[0].stats.connected)
            await _publish(port, _market(unique, 65000.0, 66000.0, 0.6))
            for _ in range(10):  # until no full reprice comes between the payload and the copy
                got = await _current(r, daemon, unique, "crosshedge", "other")
                br = daemon.portfolio.book_risk("other")  # the ETH put, hedged in BTC
                if br.valuation_ns == got["valuation_ts_ns"]:
                    break
            ret, dvol = daemon.risk.history.moves([*br.underlyings, "BTC"])
            assert ret.shape == (29, 2)
            book = scenario_pnl(br.positions, ret[:, :1], dvol[:, :1], 1.0).pnl
            want = crosshedge.min_variance_hedge(book, crosshedge.contract_pnl(ret[:, 1], 10.0))
            hedge = got["hedge"]
            assert (hedge["instrument"], hedge["underlying"]) == ("BTC-PERPETUAL", "BTC")
            assert hedge["contracts_exact"] == pytest.approx(want.contracts_exact, rel=1e-12)
            assert hedge["r2"] == pytest.approx(want.r2, rel=1e-12)
            assert 0.9 < hedge["r2"] <= 1.0  # ETH moves with BTC
            beta = crosshedge.betas(ret[:, :1], ret[:, 1])
            assert got["beta"][0] == pytest.approx(float(beta[0]), rel=1e-12)
            assert 1.4 < got["beta"][0] < 1.6
            assert (got["benchmark"], got["benchmark_price"]) == ("BTC", 65000.0)
            delta_usd = float(br.figures[0, AGG_FIELDS.index("delta_usd")])
            assert got["beta_delta_total"] == pytest.approx(
                delta_usd * got["beta"][0] / 65000.0, rel=1e-12
            )
            for _ in range(10):
                c = await _current(r, daemon, unique, "cpt", "main")
                br = daemon.portfolio.book_risk("main")
                if br.valuation_ns == c["valuation_ts_ns"]:
                    break
            ret, dvol = daemon.risk.history.moves(br.underlyings)
            pnl = var.historical(br.positions, ret, dvol, 0.99, 0.975, 1.0)[1].pnl
            assert c["value"] == pytest.approx(cpt.cpt_value(pnl), rel=1e-12)
            assert c["es"] == pytest.approx(var.empirical(pnl, 0.99, 0.975).es, rel=1e-12)
            assert await r.xlen(f"{unique}:cpt:stream") > 0
            assert daemon.risk.errors == 0
    finally:
        await r.aclose()


@pytest.mark.parametrize(
    ("table", "where"),
    [
        (f'hedge = {{ main = "{CALL}" }}', "$.risk.cross_hedge.hedge.main"),
        ('hedge = { "*" = "NOT-AN-INSTRUMENT" }', "$.risk.cross_hedge.hedge.*"),
        ('benchmark = "NOT-AN-INSTRUMENT"', "$.risk.cross_hedge.benchmark"),
    ],
)
def test_a_bad_cross_hedge_stops_start_up(tmp_path: Path, table: str, where: str) -> None:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nmain,{CALL},1\n")
    path = tmp_path / "riskd.toml"
    path.write_text(f'[portfolio]\npositions = "positions.csv"\n[risk.cross_hedge]\n{table}\n')
    with pytest.raises(ConfigError, match=re.escape(where)):
        build(load_config(path), path)
