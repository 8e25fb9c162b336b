"""Discrete dividends through the daemon's config: ``dividends`` of
``[portfolio.underlyings.SPY]`` in a config file price a held SPY option (American, on spot)
on S - PV, PV the dividends paid before its expiry (escrowed model, docs/american.md). The
published exposure is the position times engine.american's wrapper with the same schedule,
in desk units; the stress grid revalues it on the shocked spot less the same PV; bad
schedules stop start-up naming their key."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from engine.american import Dividends, american
from engine.clock import ManualClock
from engine.daycount import year_fraction
from engine.errors import ConfigError
from engine.events import Quote, Tick
from engine.outputs import StressPayload, UnderlyingExposure
from engine.runtime.app import Daemon, build
from engine.runtime.config import load_config
from engine.units import to_desk
from engine.uscalendar import open_ns

TS_NS = 1_732_400_000_123 * 1_000_000  # 2024-11-23
RATE, SPY, VOL, QTY = 0.05, 590.0, 0.16, -3.0
HELD = "SPY   250620C00600000"
# ex-dates of SPY's quarterly dividends: one already past, three before June's expiry (the
# last on its expiry day, at the open: before the close), one after it
EX_DATES = [date(2024, 9, 20), date(2024, 12, 20), date(2025, 3, 21), date(2025, 6, 20),
            date(2025, 9, 19)]  # fmt: skip
AMOUNTS = [1.75, 1.80, 1.70, 1.85, 1.90]

CONFIG = """
[redis]
url = "redis://127.0.0.1:9/0"
[portfolio]
positions = "positions.csv"
american_accuracy = "accurate"
[portfolio.underlyings.SPY]
rate = 0.05
dividends = [{dividends}]
[risk]
stress_spot = [-0.2, 0.0, 0.1]
stress_vol = [0.0, 0.25]
"""


def _schedule(ex_dates: list[str], amounts: list[str]) -> str:
    return ", ".join(
        f"{{ex_date = {d}, amount = {a}}}" for d, a in zip(ex_dates, amounts, strict=True)
    )


def _daemon(tmp_path: Path, dividends: str) -> Daemon:
    (tmp_path / "positions.csv").write_text(f"book,instrument,quantity\nus,{HELD},{QTY}\n")
    path = tmp_path / "riskd.toml"
    path.write_text(CONFIG.format(dividends=dividends))
    return build(load_config(path), path, clock=ManualClock(TS_NS))


def _priced_daemon(tmp_path: Path) -> Daemon:
    daemon = _daemon(tmp_path, _schedule([str(d) for d in EX_DATES], [str(a) for a in AMOUNTS]))
    daemon.inbox.put(Tick(instrument="SPY", price=SPY, ts_event=TS_NS, ts_recv=TS_NS))
    daemon.inbox.put(Quote(instrument=HELD, mark=1.0, iv=VOL, ts_event=TS_NS, ts_recv=TS_NS))
    daemon.engine.cycle(full=True)
    return daemon


def _years(daemon: Daemon) -> float:
    held = daemon.registry.get(HELD)
    assert held is not None
    assert held.expiry_ns is not None
    return year_fraction(TS_NS, held.expiry_ns)


def _dividends() -> Dividends:
    ex_ns = np.array([open_ns(d) for d in EX_DATES])
    return Dividends(year_fraction(np.int64(TS_NS), ex_ns), np.array(AMOUNTS))


def test_the_exposure_is_the_wrapper_with_the_configured_schedule(tmp_path: Path) -> None:
    daemon = _priced_daemon(tmp_path)
    got = daemon.out.exposures()["us:SPY"]
    assert isinstance(got, UnderlyingExposure)
    t = _years(daemon)
    g = american(True, SPY, 600.0, t, RATE, 0.0, VOL, dividends=_dividends())
    d = to_desk(g, SPY)
    want = {
        "delta": d.delta, "delta_usd": d.delta_usd, "gamma": d.gamma,
        "cash_gamma": d.cash_gamma, "vega": d.vega, "theta": d.theta, "rho": d.rho,
        "vanna": d.vanna, "volga": d.volga, "market_value": d.price,
    }  # fmt: skip
    for field, value in want.items():
        assert getattr(got, field) == pytest.approx(100.0 * QTY * float(value), rel=1e-10)
    # three dividends count (3 x 1.75 or so, discounted), the past one and September's do not
    pv = float(_dividends().escrow(np.array([t]), np.array([RATE]))[0][0])
    assert pv == pytest.approx(1.80 + 1.70 + 1.85, rel=0.03)
    plain = american(True, SPY, 600.0, t, RATE, 0.0, VOL).price
    assert abs(got.market_value - 100.0 * QTY * float(plain)) > 100.0


async def test_the_stress_grid_moves_the_spot_and_takes_the_same_pv_off(tmp_path: Path) -> None:
    daemon = _priced_daemon(tmp_path)
    await daemon.risk.period(["stress"])
    grid = daemon.out.latest[("stress", "us")]
    assert isinstance(grid, StressPayload)
    t = _years(daemon)
    pv = float(_dividends().escrow(np.array([t]), np.array([RATE]))[0][0])
    now = american(True, SPY - pv, 600.0, t, RATE, 0.0, VOL).price
    spot = np.array([-0.2, 0.0, 0.1])[:, None]
    vol = np.array([0.0, 0.25])[None, :]
    moved = american(True, SPY * (1.0 + spot) - pv, 600.0, t, RATE, 0.0, VOL * (1.0 + vol)).price
    assert_allclose(np.array(grid.pnl), 100.0 * QTY * (moved - now), rtol=1e-10, atol=1e-8)


@pytest.mark.parametrize(
    ("dates", "amounts", "key", "message"),
    [
        (["2025-03-21"], ["-1.0"], "dividends[0].amount", ">= 0.0"),
        (["2025-03-21"], ["inf"], "dividends[0]`", "finite"),
        (['"2025-02-30"'], ["1.0"], "dividends[0].ex_date", "date"),
        (["2025-03-21", "2024-12-20"], ["1.0", "1.0"], "dividends[1].ex_date", "sorted"),
        (["2025-03-21", "2025-03-21"], ["1.0", "1.0"], "dividends[1].ex_date", "one a day"),
    ],
)
def test_a_bad_schedule_stops_start_up_naming_its_key(
    tmp_path: Path, dates: list[str], amounts: list[str], key: str, message: str
) -> None:
    where = re.escape(f"$.portfolio.underlyings.SPY.{key}")
    with pytest.raises(ConfigError, match=rf"{message}.*{where}"):
        _daemon(tmp_path, _schedule(dates, amounts))


def test_dividends_with_an_implied_carry_stop_start_up(tmp_path: Path) -> None:
    path = tmp_path / "riskd.toml"
    text = CONFIG.format(dividends=_schedule(["2025-03-21"], ["1.0"]))
    path.write_text(text.replace("rate = 0.05\n", 'rate = 0.05\ncarry = "implied"\n', 1))
    with pytest.raises(ConfigError, match=r"\$\.portfolio\.underlyings\.SPY\.dividends`"):
        load_config(path)
