"""The README's main job (config/demo.toml) shows a new user an alert working: its scripted BTC
rally raises the demo book's loss alert and its retracement clears it, within the first minute.

The demo runs here as configured (its simulator, book, history and rules) against a real Redis,
on a ManualClock: the simulator then runs in simulated time (each of its waits moves the clock
on), so the minute takes about a second and the run is the same every time.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import msgspec
import redis.asyncio as aioredis

from engine.clock import ManualClock
from engine.outputs import AlertPayload
from tests.servers import RedisServer, running_daemon, wait_until

DEMO = Path(__file__).parents[2] / "config" / "demo.toml"
START_NS = 1_780_000_000 * 10**9
MINUTE_NS = 60 * 10**9


def demo_config(tmp_path: Path, redis_url: str, prefix: str) -> Path:
    """config/demo.toml with its Redis at ``redis_url`` under ``prefix``, and the files it
    names beside it."""
    body = DEMO.read_text()
    for old, new in (
        ('url = "redis://127.0.0.1:6379/0"', f'url = "{redis_url}"'),
        ("start_local = true", "start_local = false"),
        ('prefix = "risk"', f'prefix = "{prefix}"'),
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
