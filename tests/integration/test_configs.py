"""The configuration files we ship: each loads and builds, and a simulated market covers every
underlying its book and hedges hold (else their figures would show 0 or stale)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.runtime.app import build
from engine.runtime.config import load_config
from feeds.sim import SimFeedConfig

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
