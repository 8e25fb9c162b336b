"""The live terminal view: the book's exposures, feeds and Redis, redrawn in place."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from operator import attrgetter
from typing import IO, TYPE_CHECKING

from engine.outputs import Exposure, UnderlyingExposure
from engine.runtime.redis_sink import redact_url

if TYPE_CHECKING:
    from engine.runtime.app import Daemon

__all__ = ["render", "terminal_view"]

_COLUMNS: tuple[tuple[Callable[[Exposure], float | None], str, int, str], ...] = (
    # figure, column head (with its unit), width, number format
    (attrgetter("delta"), "delta", 11, ".3f"),
    (attrgetter("delta_usd"), "delta $", 13, ",.0f"),
    (attrgetter("cash_gamma"), "cash gamma $/1%", 16, ",.0f"),
    (attrgetter("vega"), "vega $/pt", 12, ",.0f"),
    (attrgetter("theta"), "theta $/day", 12, ",.0f"),
    (attrgetter("market_value"), "value $", 13, ",.0f"),
    (attrgetter("pnl"), "P&L $", 12, ",.0f"),
)
_CLEAR = "\x1b[H\x1b[2J"


def _fmt(value: float | None, width: int, spec: str) -> str:
    return "-".rjust(width) if value is None else f"{value:>{width}{spec}}"


def render(daemon: Daemon) -> str:
    """The view as text: one row per (book, underlying) and per book, then feeds, Redis and
    the latest alerts. Units are in the column heads."""
    lines = [f"riskd  {daemon.status().uptime_s:.0f}s  cycles {daemon.cycles}"]
    head = f"{'book':<10} {'underlying':<10}" + "".join(
        f" {title:>{width}}" for _, title, width, _ in _COLUMNS
    )
    lines += ["", head + f" {'pos':>5} {'stale':>5}", "-" * (len(head) + 12)]
    for key in sorted(daemon.latest):
        p = daemon.latest[key]
        und = p.underlying if isinstance(p, UnderlyingExposure) else "(all) USD"
        row = f"{p.book:<10} {und:<10}"
        row += "".join(" " + _fmt(get(p), width, spec) for get, _, width, spec in _COLUMNS)
        lines.append(row + f" {p.n_positions:>5} {p.n_stale:>5}")
    lines.append("")
    for f in daemon.feeds:
        s = f.stats
        state = "connected" if s.connected else "finished" if s.finished else "DISCONNECTED"
        dropped = sum(s.dropped.values())
        line = f"feed {f.name:<10} {state:<13} received {s.received:>9}  dropped {dropped}"
        if s.finished:
            line += "  (at the file's end: the final state is held; Ctrl-C exits)"
        lines.append(line)
    ss = daemon.sink.stats
    url = redact_url(daemon.config.redis.url)
    if ss.connected:
        lines.append(f"redis {url}: connected, {ss.published} messages published")
    else:
        lines.append(
            f"redis {url}: NOT REACHABLE - computing on; will publish the latest state "
            "once it is back"
        )
    if daemon.recent_alerts:
        lines += ["", "alerts:"]
        for a in list(daemon.recent_alerts)[-5:]:
            lines.append(f"  {a.state:<8} {a.severity:<8} {a.id}  value {a.value}")
    return "\n".join(lines)


async def terminal_view(daemon: Daemon, out: IO[str] | None = None) -> None:
    """Redraw :func:`render` every ``view.refresh_s`` until cancelled."""
    stream = out if out is not None else sys.stdout
    while True:
        stream.write(_CLEAR + render(daemon) + "\n")
        stream.flush()
        await asyncio.sleep(daemon.config.view.refresh_s)
