"""The README's main job (config/demo.toml) shows a new user an alert working: its scripted BTC
rally raises the demo book's loss alert and its retracement clears it, within the first minute;
its terminal view shows the risk, the alerts, the health and the dashboard's address.

The demo runs here as configured (its simulator, book, history and rules) against a real Redis,
on a ManualClock: the simulator then runs in simulated time (each of its waits moves the clock
on), so the minute takes about a second and the run is the same every time.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import re
from pathlib import Path

import msgspec
import redis.asyncio as aioredis
from rich.console import Console, RenderableType

from engine.clock import ManualClock
from engine.outputs import AlertPayload, MarginPayload, UnderlyingExposure, VarPayload
from engine.runtime.intake import advancing_sleep
from engine.runtime.panels import Frame, render
from engine.runtime.publisher import Publisher
from engine.runtime.view import TerminalView
from tests.servers import RedisServer, running_daemon, wait_until

DEMO = Path(__file__).parents[2] / "config" / "demo.toml"
START_NS = 1_780_000_000 * 10**9
MINUTE_NS = 60 * 10**9


def demo_config(tmp_path: Path, redis_url: str, prefix: str) -> Path:
    """config/demo.toml with its Redis at ``redis_url`` under ``prefix``, its HTTP endpoint on
    any free port, and the files it names beside it."""
    body = DEMO.read_text()
    for old, new in (
        ('url = "redis://127.0.0.1:6379/0"', f'url = "{redis_url}"'),
        ("start_local = true", "start_local = false"),
        ('prefix = "risk"', f'prefix = "{prefix}"'),
        ('address = "127.0.0.1:9464"', 'address = "127.0.0.1:0"'),  # any free port
    ):
        assert old in body
        body = body.replace(old, new)
    for name in ("demo_positions.csv", "demo_history.csv"):
        (tmp_path / name).write_text((DEMO.parent / name).read_text())
    path = tmp_path / "demo.toml"
    path.write_text(body)
    return path


async def test_the_demo_raises_and_clears_its_loss_alert_within_a_minute(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    path = demo_config(tmp_path, redis_server.url, unique)
    clock = ManualClock(START_NS)
    async with running_daemon(path, clock):  # a failure's deadline: it takes about a second
        await wait_until(lambda: clock.now_ns() > START_NS + MINUTE_NS, timeout_s=120)
    async with contextlib.aclosing(aioredis.Redis.from_url(redis_server.url)) as r:
        entries = await r.xrange(f"{unique}:alerts:stream") or []
    alerts = [
        msgspec.json.decode(fields[b"data"], type=AlertPayload)
        for _, fields in entries
        if fields is not None
    ]
    assert [(a.id, a.state) for a in alerts] == [
        ("demo_loss:demo", "raised"),
        ("demo_loss:demo", "cleared"),
    ]
    raised, cleared = alerts
    assert (raised.severity, raised.unit, raised.threshold) == ("critical", "USD", -25000.0)
    assert raised.value < -25000.0  # the rally: the demo book is short BTC
    assert cleared.value > -20000.0  # back inside the limit by more than the hysteresis
    assert START_NS + 20 * 10**9 <= raised.ts_ns < cleared.ts_ns <= START_NS + MINUTE_NS


async def test_simulated_time_stands_still_while_the_engine_values_the_book() -> None:
    """The simulator's sleep on a ManualClock moves the clock on at once, but not while the
    engine holds ``valuing`` (a full reprice in its worker thread): the market cannot run ahead
    of what the engine values, whatever the machine's load."""
    clock, valuing = ManualClock(START_NS), asyncio.Lock()
    sleep = advancing_sleep(clock, valuing)
    await sleep(0.005)
    assert clock.now_ns() == START_NS + 5_000_000
    await valuing.acquire()
    waiting = asyncio.ensure_future(sleep(1.0))
    for _ in range(10):
        await asyncio.sleep(0)  # the loop goes round: the sleep is still waiting
    assert not waiting.done()
    assert clock.now_ns() == START_NS + 5_000_000
    valuing.release()
    await waiting
    assert clock.now_ns() == START_NS + 1_005_000_000


# ------------------------------------------------------------ the terminal view, on its payloads

DASHBOARD = "http://127.0.0.1:9464/"


def _text(renderable: RenderableType, width: int) -> str:
    console = Console(record=True, width=width, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


async def _demo_view(tmp_path: Path, redis_url: str, prefix: str) -> tuple[Frame, list[str]]:
    """The demo past its first minute, drawn by its terminal view: the frame drawn, and the
    view's text at 160 and 80 columns."""
    path = demo_config(tmp_path, redis_url, prefix)
    clock = ManualClock(START_NS)

    def ready(out: Publisher) -> bool:  # the risk periods run on wall-clock periods
        margin = out.latest.get(("margin", "demo"))
        var = out.latest.get(("var", "demo"))
        return (
            clock.now_ns() > START_NS + MINUTE_NS
            and isinstance(margin, MarginPayload)
            and margin.margin_utilisation is not None
            and isinstance(var, VarPayload)
            and bool(var.var_historical)
        )

    async with running_daemon(path, clock) as daemon:
        await wait_until(lambda: ready(daemon.out), timeout_s=120)
        view = TerminalView(
            daemon.monitor.health, daemon.out, redis_url, 0.5, clock, dashboard_url=DASHBOARD
        )
        frame = view.frame()
    return frame, [_text(render(frame), width) for width in (160, 80)]


async def test_the_view_shows_risk_alerts_health_and_the_dashboard_with_units(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    frame, (text, narrow) = await _demo_view(tmp_path, redis_server.url, unique)
    lines = text.splitlines()
    assert lines[0].startswith("riskd  up ")
    assert f"dashboard {DASHBOARD}" in lines[0]
    assert re.search(r"valued \d\d:\d\d:\d\d UTC  data age \d+\.\d s", lines[0])
    assert f"feed sim: connected, {frame.health.feeds[0].received:,} messages" in text
    assert f"redis {redis_server.url}: connected" in text
    heads = ("delta $", "cash gamma $/1%", "vega $/pt", "theta $/day", "value $", "P&L $")
    assert all(head in text for head in heads)
    for p in frame.exposures:  # every row, every figure as published, with its unit
        row = _row(lines, p.book, p.underlying if isinstance(p, UnderlyingExposure) else "all")
        figures = [p.delta_usd, p.cash_gamma, p.vega, p.theta, p.market_value, p.pnl]
        assert [f"{round(x) + 0:,}" for x in figures] == row[-8:-2], row
        if isinstance(p, UnderlyingExposure):
            assert row[2:4] == [f"{p.delta:,.3f}", p.underlying]
    assert "VaR and ES (USD, 1 d; * published)" in text
    for v in frame.var:
        var_row = _row(lines, v.book, "VaR")
        assert var_row[2] == "99.0%"
        assert f"{round(v.var_historical or 0):,} *" in " ".join(var_row)
        es_row = _row(lines, v.book, "ES")
        assert f"{round(v.es_monte_carlo or 0):,}" in es_row
    for m in frame.margin:
        assert _row(lines, m.book, f"{round(m.equity_usd or 0):,}")[2:6] == [
            f"{round(m.margin_im or 0):,}",
            f"{round(m.margin_mm or 0):,}",
            f"{m.margin_utilisation:.1%}",
            f"{m.margin_mm_utilisation:.1%}",
        ]
    for h in frame.hedges:
        hedge = " ".join(_row(lines, h.book, h.underlying, after="Hedges"))
        assert f"{round(h.hedge_contracts or 0):+,} contracts {h.future}" in hedge
    # the loss alert's raise and clear, newest first, with the limit and unit
    assert "then the latest transitions" in text
    cleared = _row(lines, "critical", "demo_loss:demo")
    assert cleared[-1] == "cleared"
    assert "below -25,000 USD" in " ".join(cleared)
    assert [r[-1] for r in _rows(lines, "critical", "demo_loss:demo")] == ["cleared", "raised"]
    # 80 columns: the least needed columns go, every line fits
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "vega $/pt" in narrow
    assert "P&L $" in narrow
    assert "value $" not in narrow


async def test_the_view_shows_an_active_alert_by_severity(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    frame, _ = await _demo_view(tmp_path, redis_server.url, unique)
    raised = next(a for a in frame.recent if a.state == "raised")
    info = msgspec.structs.replace(  # a second, newer and less urgent alert
        raised, id="demo_note:demo", severity="info", ts_ns=raised.ts_ns + 1
    )
    text = _text(render(dataclasses.replace(frame, active=[info, raised], recent=[])), 160)
    lines = text.splitlines()
    assert "Alerts: 2 active (1 critical, 1 info)" in [line.rstrip() for line in lines]
    critical = _row(lines, "critical", "demo_loss:demo")
    assert critical[-1] == "ACTIVE"
    assert f"{round(raised.value):,} USD" in " ".join(critical)
    order = [cells[0] for cells in map(str.split, lines) if cells[-1:] == ["ACTIVE"]]
    assert order == ["critical", "info"]  # the most urgent first, then the newest
    quiet = _text(render(dataclasses.replace(frame, active=[], recent=[])), 160)
    assert "alerts: none raised" in quiet


def _rows(lines: list[str], *first: str, after: str | None = None) -> list[list[str]]:
    """The rows of the view's text whose first cells are ``first`` (after the line starting
    with ``after``), as cells."""
    start = 0 if after is None else next(i for i, s in enumerate(lines) if s.startswith(after))
    split = [line.split() for line in lines[start:]]
    return [cells for cells in split if cells[: len(first)] == list(first)]


def _row(lines: list[str], *first: str, after: str | None = None) -> list[str]:
    """The first of :func:`_rows`."""
    rows = _rows(lines, *first, after=after)
    assert rows, (first, "\n".join(lines))
    return rows[0]
