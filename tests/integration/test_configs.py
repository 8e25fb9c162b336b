"""The configuration files we ship: each loads and builds, and a simulated market covers every
underlying its book and hedges hold (else their figures would show 0 or stale)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from engine.runtime.app import build
from engine.runtime.config import load_config
from feeds.sim import SimFeedConfig

ROOT = Path(__file__).parents[2]
RISKD = Path(sys.executable).with_name("riskd")
CONFIGS = sorted(
    p for p in (Path(__file__).parents[2] / "config").glob("*.toml") if p.name != "demo_book.toml"
)


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


def test_every_shipped_config_is_checked() -> None:
    assert {p.name for p in CONFIGS} >= {"demo.toml", "docker.toml", "replay.toml"}


def test_the_compose_shards_load_and_split_the_demo_book() -> None:
    """docker-compose.cluster.yml's riskd services run config/shard0.toml and shard1.toml:
    each passes ``riskd check-config``, is a shard of the same two on a Redis Cluster, and
    together they load every row of the demo book once."""
    compose = (ROOT / "docker-compose.cluster.yml").read_text()
    named = re.findall(r'"run", "-c", "(config/[a-z0-9_]+\.toml)"', compose)
    paths = [ROOT / name for name in named]
    assert [p.name for p in paths] == ["shard0.toml", "shard1.toml"]
    assert compose.count('"--cluster-enabled", "yes"') == 3  # three masters
    loaded = 0
    client_ids: set[str] = set()
    for shard_id, path in enumerate(paths):
        out = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
            [str(RISKD), "check-config", "-c", str(path)],
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
