"""The live terminal view (rich): what the daemon knows, redrawn in place on the terminal.

What it shows is drawn by :mod:`engine.runtime.panels` from a :class:`Frame`: the state line
(uptime, cycles, valuation time and the age of the data, the web dashboard's address), feeds
and Redis, the active alerts and the latest transitions by severity, the exposures per book and
underlying, VaR and ES by method, margin use and hedge suggestions; every figure with its unit.

A redraw costs the event loop only :meth:`TerminalView.frame`: references to the latest
(frozen) payloads and the health counters. The tables are built and written to the terminal in
a worker thread (rich is pure Python: the event loop takes the interpreter back within the
switch interval, 0.5 ms). On a terminal the frame is redrawn in place, cut to the terminal's
height; written to a file or a pipe (``--view on``), only the last frame is, when the daemon
stops.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import IO, Final

from rich.console import Console, RenderableType
from rich.live import Live

from engine.clock import Clock
from engine.outputs import Exposure, HedgePayload, MarginPayload, VarPayload
from engine.runtime.health import Health
from engine.runtime.http import HttpConfig
from engine.runtime.panels import Frame, render
from engine.runtime.publisher import Publisher
from engine.runtime.redis_sink import redact_url

__all__ = ["Frame", "TerminalView", "dashboard_url"]

RECENT: Final = 5
"""Alert transitions shown (the newest)."""


def dashboard_url(config: HttpConfig) -> str | None:
    """The web dashboard's address, ``http://{[http] address}/`` (``https`` with TLS); None
    when ``[http]`` or its dashboard is off."""
    if not (config.address and config.dashboard):
        return None
    return f"{'https' if config.tls else 'http'}://{config.address}/"


class TerminalView:
    """Draws the daemon's state on a terminal every ``refresh_s`` (module docstring).

    Args:
        health: the daemon's state now (:meth:`engine.runtime.monitor.Monitor.health`).
        out: the published payloads (the latest of each key), the alerts active and the
            recent transitions.
        redis_url: shown redacted.
        refresh_s: the redraw period.
        clock: the daemon's clock (the age of the data).
        dashboard_url: the web dashboard's address, shown in the state line (None: off). Read
            at every redraw: set it once the address is known.
    """

    def __init__(
        self,
        health: Callable[[], Health],
        out: Publisher,
        redis_url: str,
        refresh_s: float,
        clock: Clock,
        dashboard_url: str | None = None,
    ) -> None:
        self.health = health
        self.out = out
        self.redis_url = redact_url(redis_url)
        self.refresh_s = refresh_s
        self.clock = clock
        self.dashboard_url = dashboard_url

    def frame(self) -> Frame:
        """The state to draw, now (on the event loop: nothing is computed or formatted)."""
        latest = [p for _, p in sorted(self.out.latest.items(), key=lambda item: item[0])]
        return Frame(
            now_ns=self.clock.now_ns(),
            health=self.health(),
            exposures=[p for p in latest if isinstance(p, Exposure)],
            var=[p for p in latest if isinstance(p, VarPayload)],
            margin=[p for p in latest if isinstance(p, MarginPayload)],
            hedges=[p for p in latest if isinstance(p, HedgePayload)],
            active=self.out.alerts.active(),
            recent=list(self.out.recent_alerts)[-RECENT:],
            redis_url=self.redis_url,
            dashboard_url=self.dashboard_url,
        )

    def render(self) -> RenderableType:
        """The view now, as a rich renderable (``Console.print`` it)."""
        return render(self.frame())

    async def run(self, stream: IO[str] | None = None) -> None:
        """Redraw every ``refresh_s`` until cancelled; the last frame stays on the terminal."""
        console = Console(file=stream if stream is not None else sys.stdout)
        live = Live(console=console, auto_refresh=False, vertical_overflow="ellipsis")
        live.start()
        try:
            while True:
                view = render(self.frame())  # built and drawn in the thread
                await asyncio.to_thread(live.update, view, refresh=True)
                await asyncio.sleep(self.refresh_s)
        finally:
            live.update(self.render())
            live.stop()  # draws it: on a file or pipe, the one frame written
