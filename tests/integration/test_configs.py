"""The configuration files we ship: each loads and builds, and a simulated market covers every
underlying its book and hedges hold (else their figures would show 0 or stale)."""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.cluster import RedisCluster

from engine.risk.history import MAX_GAP_DAYS
from engine.runtime.app import build
from engine.runtime.config import load_config
from feeds.sim import SimFeedConfig
from tests.integration.test_aggregate import _hash, _riskd, _stop, _until
from tests.servers import RedisClusterServers

ROOT = Path(__file__).parents[2]
RISKD = Path(sys.executable).with_name("riskd")
CONFIGS = sorted(
    p for p in (Path(__file__).parents[2] / "config").glob("*.toml") if p.name != "demo_book.toml"
)

HISTORIES = sorted((ROOT / "config").glob("*history.csv"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_a_shipped_config_builds_and_its_market_covers_its_book(path: Path) -> None:
    config = load_config(path)
    daemon = build(config, path)
    sims = [f for f in config.feeds if isinstance(f, SimFeedConfig)]
    if not sims:
        return
    simulated = {u.name for sim in sims for u in sim.underlyings}
    held = {
        inst.underlying
        for name in daemon.portfolio.instruments()
        if (inst := daemon.registry.get(name)) is not None
    }
    hedged = set(config.risk.hedge_future)
    assert held | hedged <= simulated, f"{path.name}: not simulated: {(held | hedged) - simulated}"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.name for p in HISTORIES])
def test_a_shipped_history_seed_is_one_unbroken_window(path: Path) -> None:
    """Each underlying's levels in a shipped seed file are a run of days with no gap a move
    cannot span, each with its vol, and the underlyings end on the same day (a stray level, say
    one a test once appended from a clock in 2030, would stop every level recorded until then)."""
    rows = [r for r in csv.reader(path.read_text().splitlines()) if r and not r[0].startswith("#")]
    days: dict[str, list[dt.date]] = {}
    for day, und, _price, vol in rows[1:]:
        assert vol, f"{path.name}: {day} {und} has no vol"
        days.setdefault(und, []).append(dt.date.fromisoformat(day))
    for und, seen in days.items():
        gaps = [(a, b) for a, b in itertools.pairwise(seen) if not 0 < (b - a).days <= MAX_GAP_DAYS]
        assert not gaps, f"{path.name}: {und} jumps {gaps}"
    assert len({seen[-1] for seen in days.values()}) == 1, f"{path.name}: ends differ"


def test_every_shipped_config_is_checked() -> None:
    assert {p.name for p in CONFIGS} >= {"demo.toml", "docker.toml", "replay.toml"}


def test_the_compose_shards_load_and_split_the_demo_book() -> None:
    """docker-compose.cluster.yml's riskd services run config/shard.toml as shards 0 and 1
    (``--shard-id``): each passes ``riskd check-config``, is a shard of the same two on a
    Redis Cluster with its own MQTT session, and together they load every row of the demo
    book once."""
    compose = (ROOT / "docker-compose.cluster.yml").read_text()
    named = re.findall(r'"run", "-c", "(config/[a-z0-9_]+\.toml)", "--shard-id", "(\d+)"', compose)
    assert named == [("config/shard.toml", "0"), ("config/shard.toml", "1")]
    assert compose.count('"--cluster-enabled", "yes"') == 3  # three masters
    loaded = 0
    client_ids: set[str] = set()
    for name, shard in named:
        shard_id = int(shard)
        out = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
            [str(RISKD), "check-config", "-c", str(ROOT / name), "--shard-id", shard],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout)
        assert report["config"]["cluster"]["shard_id"] == shard_id
        assert report["config"]["cluster"]["shard_count"] == 2
        assert report["config"]["redis"]["cluster"] is True
        loaded += report["positions"]
        client_ids |= {f["client_id"] for f in report["config"]["feeds"] if f["kind"] == "mqtt"}
    assert len(client_ids) == 2  # each shard its own persistent MQTT session
    lines = (ROOT / "config" / "demo_positions.csv").read_text().splitlines()
    rows = [line for line in lines if line.strip() and not line.startswith("#")][1:]
    assert loaded == len(rows)  # each row on one shard, none on both


async def test_the_compose_shards_and_their_aggregator_publish_the_books_figures(
    tmp_path: Path, redis_cluster: RedisClusterServers, unique: str
) -> None:
    """docker-compose.cluster.yml's two shards and its aggregator, as shipped but for the
    cluster's address, the prefix and the HTTP port: the aggregator publishes every book's and
    the firm's VaR from the shards' common scenario set, and the books' stress and margin."""
    compose = (ROOT / "docker-compose.cluster.yml").read_text()
    assert '"aggregate", "-c", "config/shard.toml"' in compose
    for name in ("shard.toml", "demo_positions.csv", "demo_history.csv"):
        text = (ROOT / "config" / name).read_text()
        text = text.replace("redis://redis-0:6379/0", redis_cluster.url)
        text = text.replace('prefix = "risk"', f'prefix = "{unique}"')
        text = text.replace('address = "0.0.0.0:9464"', 'address = "127.0.0.1:0"')
        (tmp_path / name).write_text(text)
    procs = [
        _riskd(tmp_path / "shard.toml", "run", "--shard-id", "0", "--view", "off"),
        _riskd(tmp_path / "shard.toml", "run", "--shard-id", "1", "--view", "off"),
        _riskd(tmp_path / "shard.toml", "aggregate"),
    ]
    r = RedisCluster.from_url(redis_cluster.url)
    try:

        async def published() -> dict[str, dict[str, Any]] | None:
            ended = [p.args for p in procs if p.poll() is not None]
            assert not ended, f"exited: {ended}"
            got = {f: await _hash(r, f"{{{unique}}}:{f}:snapshot") for f in FAMILIES}
            var = got["var"]
            if set(var) != {"demo", "hedge", "*"} or any(p["var"] is None for p in var.values()):
                return None
            return got if all(set(got[f]) >= {"demo", "hedge"} for f in FAMILIES) else None

        got = await _until(published, "the aggregator's payloads", 240.0)
        assert got["var"]["demo"]["underlyings"] == ["BTC", "ETH"]
        assert set(got["var"]["demo"]["shards"]) == {"0", "1"}
        assert got["margin"]["demo"]["underlyings"] == ["BTC", "ETH"]
        assert got["stress"]["*"]["stress_loss"] is not None
    finally:
        for p in procs:
            _stop(p)
        await r.aclose()


FAMILIES = ("var", "stress", "margin", "liquidity")
