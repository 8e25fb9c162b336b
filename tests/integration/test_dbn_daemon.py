"""The daemon on a DBN replay (``[[feeds]] kind = "dbn"``) against a real Redis: OPRA SPY
options and CME E-mini futures and options from the files' definitions, SPY's price from an
equities file named only by its metadata mappings, ``--exit-at-end``; every position priced
from the files' own records."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from pathlib import Path

import orjson
import redis.asyncio as aioredis

from engine.runtime.app import build, run
from engine.runtime.config import load_config
from tests.dbn_files import T0_NS, Interval, Mapping, cbbo, definition, mbp1, write_dbn
from tests.servers import RedisServer
from tests.unit.feeds.test_dbn import ESH5_EXP, EXP_PM, SPY_C, S


async def test_dbn_replay_prices_the_book_and_exits_at_end(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    write_dbn(
        tmp_path / "opra.dbn.zst",
        "OPRA.PILLAR",
        [
            definition(8, SPY_C, "C", strike="590", expiration=EXP_PM, multiplier="100",
                       underlying="SPY"),
            *(cbbo(8, T0_NS + i * S, "2.95", "3.05") for i in range(1, 20)),
        ],
    )  # fmt: skip
    write_dbn(
        tmp_path / "glbx.dbn",
        "GLBX.MDP3",
        [
            definition(1, "ESH5", "F", expiration=ESH5_EXP, multiplier="50", asset="ES"),
            definition(2, "ESH5 C6000", "C", strike="6000", expiration=ESH5_EXP,
                       underlying="ESH5", underlying_id=1),
            *(mbp1(1, T0_NS + i * S, "6000.25", "6000.5") for i in range(1, 20)),
            *(mbp1(2, T0_NS + i * S, "179.75", "180.25") for i in range(1, 20)),
        ],
    )  # fmt: skip
    day = date(2024, 12, 19)
    write_dbn(
        tmp_path / "xnas.dbn",
        "XNAS.ITCH",
        [mbp1(15144, T0_NS + i * S, "589.99", "590.01") for i in range(1, 20)],
        mappings=[Mapping("SPY", [Interval(day, day + timedelta(days=1), "15144")])],
    )
    (tmp_path / "positions.csv").write_text(
        f"book,instrument,quantity\nmain,{SPY_C},-10\nmain,ESH5 C6000,2\nmain,ESH5,-1\n"
    )
    path = tmp_path / "riskd.toml"
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
kind = "dbn"
files = ["opra.dbn.zst", "glbx.dbn", "xnas.dbn"]
speed = 0
"""
    )
    daemon = build(load_config(path), path)
    daemon.intake.exit_at_end = True
    async with asyncio.timeout(120):
        status = await run(daemon)
    assert status == 0
    assert daemon.intake.ended
    (feed,) = daemon.intake.feeds
    assert feed.stats.finished
    assert feed.stats.events == 4 * 19
    assert feed.stats.dropped.total() == 0
    r = aioredis.Redis.from_url(redis_server.url)
    try:
        book = orjson.loads(await r.hget(f"{unique}:snapshot", "main") or b"null")
    finally:
        await r.aclose()
    assert book["n_positions"] == 3
    assert book["n_stale"] == 0  # each priced from the files' own records
    assert book["ts_ns"] >= T0_NS + 19 * S
