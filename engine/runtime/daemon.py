"""The :class:`Daemon`: every component of a running riskd, as :func:`engine.runtime.app.build`
wired them (and :func:`engine.runtime.app.run` runs them)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from engine.clock import Clock
from engine.instruments import InstrumentRegistry
from engine.risk.settlement import Settler
from engine.runtime.config import AppConfig
from engine.runtime.dashboard import DashboardHub
from engine.runtime.engine_loop import EngineLoop
from engine.runtime.http import HttpServer
from engine.runtime.intake import AsyncInbox, Intake
from engine.runtime.monitor import Monitor
from engine.runtime.notify import Notifier
from engine.runtime.publisher import Publisher
from engine.runtime.redis_sink import RedisSink
from engine.runtime.resume import Checkpointer
from engine.runtime.risk_task import RiskTask
from engine.runtime.timings import CycleHistograms
from engine.state import Portfolio
from feeds.base import Feed

__all__ = ["Daemon"]


@dataclass(slots=True)
class Daemon:
    """Every component of a running riskd, as :func:`~engine.runtime.app.build` wired them."""

    config: AppConfig
    clock: Clock
    registry: InstrumentRegistry
    portfolio: Portfolio
    feeds: list[Feed]
    inbox: AsyncInbox
    intake: Intake
    sink: RedisSink
    out: Publisher
    engine: EngineLoop
    risk: RiskTask
    monitor: Monitor
    settler: Settler
    histograms: CycleHistograms | None
    stop: asyncio.Event
    notifier: Notifier
    http: HttpServer | None = field(default=None)
    """The HTTP endpoint (``[http] address``)."""
    hub: DashboardHub | None = field(default=None)
    """The dashboard's hub (``[http] dashboard``)."""
    checkpointer: Checkpointer | None = field(default=None)
    """The checkpoint task (``[checkpoint] path``)."""
