"""The live terminal view: the book's exposures, its VaR, feeds and Redis, redrawn in place."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from operator import attrgetter
from typing import IO

from engine.outputs import Exposure, UnderlyingExposure, VarPayload
from engine.runtime.health import Health
from engine.runtime.publisher import Publisher
from engine.runtime.redis_sink import redact_url

__all__ = ["TerminalView"]

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


class TerminalView:
    """Draws the daemon's state on a terminal every ``refresh_s``.

    Args:
        health: the daemon's state now (:meth:`engine.runtime.monitor.Monitor.health`).
        out: the published payloads (the latest of each key) and the recent alerts.
        redis_url: shown redacted.
        refresh_s: the redraw period.
    """

    def __init__(
        self, health: Callable[[], Health], out: Publisher, redis_url: str, refresh_s: float
    ) -> None:
        self.health = health
        self.out = out
        self.redis_url = redact_url(redis_url)
        self.refresh_s = refresh_s

    def render(self) -> str:
        """The view as text: one row per (book, underlying) and per book, each book's VaR and
        ES, then feeds, Redis and the latest alerts. Units are in the heads."""
        h = self.health()
        latest = self.out.latest
        lines = [f"riskd  {h.status.uptime_s:.0f}s  cycles {h.status.cycles}"]
        head = f"{'book':<10} {'underlying':<10}" + "".join(
            f" {title:>{width}}" for _, title, width, _ in _COLUMNS
        )
        lines += ["", head + f" {'pos':>5} {'stale':>5}", "-" * (len(head) + 12)]
        for _, p in sorted(latest.items()):
            if not isinstance(p, Exposure):
                continue
            und = p.underlying if isinstance(p, UnderlyingExposure) else "(all) USD"
            row = f"{p.book:<10} {und:<10}"
            row += "".join(" " + _fmt(get(p), width, spec) for get, _, width, spec in _COLUMNS)
            lines.append(row + f" {p.n_positions:>5} {p.n_stale:>5}")
        var = [p for _, p in sorted(latest.items()) if isinstance(p, VarPayload)]
        if var:
            lines.append("")
        for v in var:
            lines.append(
                f"{v.book:<10} VaR {v.confidence:.1%} {v.horizon_days:g}d $ "
                f"{_fmt(v.var, 12, ',.0f')}   ES {v.es_confidence:.1%} $ {_fmt(v.es, 12, ',.0f')}"
                f"   ({v.method}, {v.history_days} days of moves)"
            )
        lines.append("")
        for f in h.feeds:
            state = "connected" if f.connected else "finished" if f.finished else "DISCONNECTED"
            dropped = sum(f.dropped.values())
            line = f"feed {f.name:<10} {state:<13} received {f.received:>9}  dropped {dropped}"
            if f.finished:
                line += "  (at the file's end: the final state is held; Ctrl-C exits)"
            lines.append(line)
        if h.sink.connected:
            published = h.sink.published
            lines.append(f"redis {self.redis_url}: connected, {published} messages published")
        else:
            lines.append(
                f"redis {self.redis_url}: NOT REACHABLE - computing on; will publish the latest "
                "state once it is back"
            )
        if self.out.recent_alerts:
            lines += ["", "alerts:"]
            for a in list(self.out.recent_alerts)[-5:]:
                lines.append(f"  {a.state:<8} {a.severity:<8} {a.id}  value {a.value}")
        return "\n".join(lines)

    async def run(self, stream: IO[str] | None = None) -> None:
        """Redraw :meth:`render` every ``refresh_s`` until cancelled."""
        out = stream if stream is not None else sys.stdout
        while True:
            out.write(_CLEAR + self.render() + "\n")
            out.flush()
            await asyncio.sleep(self.refresh_s)
