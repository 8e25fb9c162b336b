"""Implied carry in the daemon: with ``carry = "implied"``, the dividend yield each expiry of
the SPX chain implies by put-call parity (the ``forwards`` family) prices its options.

The chain is quoted from Black-Scholes at a yield the config does not know (2 %, configured
0): once the forwards period has run, the vol the engine implies from the held option's mid is
the vol the quotes were made with; before it (yield 0), it is not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.clock import ManualClock
from engine.daycount import year_fraction
from engine.errors import ConfigError
from engine.events import Quote, Tick
from engine.greeks import bsm
from engine.outputs import ForwardsPayload
from engine.runtime.app import Daemon, build
from engine.runtime.config import load_config

TS_NS = 1_732_400_000_123 * 1_000_000  # 2024-11-23
RATE, YIELD, VOL, SPX = 0.05, 0.02, 0.18, 5600.0
STRIKES = np.arange(5300.0, 5901.0, 50.0)
HELD = "SPXW  241220P05600000"

CONFIG = """
[redis]
url = "redis://127.0.0.1:9/0"
[portfolio]
positions = "positions.csv"
[portfolio.underlyings.SPX]
rate = 0.05
carry = "{carry}"
[risk.forwards]
enabled = {forwards}
"""


def _daemon(tmp_path: Path, carry: str = "implied", forwards: str = "true") -> Daemon:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nus,{HELD},-2\n")
    path = tmp_path / "riskd.toml"
    path.write_text(CONFIG.format(carry=carry, forwards=forwards))
    return build(load_config(path), path, clock=ManualClock(TS_NS))


def _quote_chain(daemon: Daemon) -> None:
    held = daemon.registry.get(HELD)
    assert held is not None
    assert held.expiry_ns is not None
    t = year_fraction(TS_NS, held.expiry_ns)
    daemon.inbox.put(Tick(instrument="SPX", price=SPX, ts_event=TS_NS, ts_recv=TS_NS))
    for is_call, side in ((True, "C"), (False, "P")):
        prices = bsm(is_call, SPX, STRIKES, t, RATE, YIELD, VOL).price
        for k, px in zip(STRIKES, prices, strict=True):
            name = f"SPXW  241220{side}{round(k * 1000):08d}"
            half = max(0.005 * px, 0.05)
            daemon.inbox.put(
                Quote(instrument=name, bid=px - half, ask=px + half, ts_event=TS_NS, ts_recv=TS_NS)
            )


def _held_vol(daemon: Daemon) -> float:
    br = daemon.portfolio.books_risk()["us"]
    return float(br.positions.sigma[br.instruments.index(HELD)])


async def test_the_chain_s_implied_yield_prices_its_options(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path)
    _quote_chain(daemon)
    daemon.engine.cycle(full=True)
    assert abs(_held_vol(daemon) - VOL) > 1e-3  # priced at the configured yield, 0
    await daemon.risk.period(["forwards"])
    fwd = daemon.out.latest[("forwards", "SPX")]
    assert isinstance(fwd, ForwardsPayload)
    assert fwd.dividend_yield[0] == pytest.approx(YIELD, abs=1e-9)
    daemon.engine.cycle()  # takes the carry the period queued
    assert _held_vol(daemon) == pytest.approx(VOL, abs=1e-9)


async def test_a_configured_yield_stays_whatever_the_chain_implies(tmp_path: Path) -> None:
    daemon = _daemon(tmp_path, carry="config")
    _quote_chain(daemon)
    daemon.engine.cycle(full=True)
    before = _held_vol(daemon)
    await daemon.risk.period(["forwards"])
    daemon.engine.cycle()
    assert _held_vol(daemon) == before


def test_an_implied_carry_without_the_forwards_family_stops_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\$\.portfolio\.underlyings\.SPX\.carry"):
        _daemon(tmp_path, forwards="false")
