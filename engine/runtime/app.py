"""The composition root: the one place that builds riskd's components and runs them.

:func:`build` makes every component from an :class:`~engine.runtime.config.AppConfig`, each
given only its own part of it; :func:`run` runs them as named tasks of one
``asyncio.TaskGroup``:

- ``feed:{name}``: each feed adapter (:class:`~engine.runtime.intake.Intake`);
- ``engine``: events in, exposures out (:class:`~engine.runtime.engine_loop.EngineLoop`);
- ``sink``: the Redis writer (:class:`~engine.runtime.redis_sink.RedisSink`);
- ``risk``: portfolio risk on its periods (:class:`~engine.runtime.risk_task.RiskTask`);
- ``monitor``: stale feeds, settlement, statistics (:class:`~engine.runtime.monitor.Monitor`);
- ``http``: health, metrics and the dashboard (:class:`~engine.runtime.http.HttpServer`);
- ``dashboard``: the dashboard's hub (:class:`~engine.runtime.dashboard.DashboardHub`);
- ``notify``: alert transitions to Apprise's services (:class:`~engine.runtime.notify.Notifier`);
- ``view``: the live terminal view, when on (:class:`~engine.runtime.view.TerminalView`);
- ``checkpoint``: the book's checkpoints, when on (:class:`~engine.runtime.resume.Checkpointer`).

SIGTERM/SIGINT stop the feeds, run a last full cycle, publish the final snapshot (and write a
last checkpoint), flush and close Redis. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from engine.alerts import AlertEngine
from engine.clock import Clock, ManualClock
from engine.errors import RiskEngineError
from engine.inbox import Inbox
from engine.risk.settlement import Settler
from engine.runtime.clock import LiveClock
from engine.runtime.config import (
    AppConfig,
    ReplayConfig,
    config_relative,
    declared_underlyings,
    new_portfolio,
    underlying_curves,
)
from engine.runtime.daemon import Daemon
from engine.runtime.dashboard import DashboardHub, HealthState, add_routes
from engine.runtime.engine_loop import EngineLoop
from engine.runtime.http import REGISTRY, HttpServer
from engine.runtime.intake import AsyncInbox, Intake, build_feeds
from engine.runtime.monitor import Monitor
from engine.runtime.notify import DRAIN_TIMEOUT_S, Notifier
from engine.runtime.publisher import Publisher
from engine.runtime.redis_sink import RedisSink
from engine.runtime.resume import Checkpointer, open_book
from engine.runtime.risk_task import RiskTask, check_hedges, load_history, shard_vectors
from engine.runtime.shard_gate import shard_gate
from engine.runtime.timings import CycleHistograms
from engine.runtime.view import TerminalView, dashboard_url
from engine.runtime.whatif import add_what_if
from engine.state import Portfolio
from feeds.sim import SimFeedConfig
from feeds.ussim import UsSimFeedConfig

__all__ = ["Daemon", "build", "run"]

logger = logging.getLogger(__name__)


def build(
    config: AppConfig,
    config_path: Path,
    clock: Clock | None = None,
    portfolio: Portfolio | None = None,
    *,
    write: bool = True,
) -> Daemon:
    """Every component, ready to run: registry, positions, feeds, sink, alerts, the tasks.

    ``clock`` defaults to the wall clock, or to a ManualClock moved by the data when a replay
    feed is configured; tests inject their own. ``portfolio``: a book built beforehand (the
    benchmarks'), with its own registry; default a new one. Not ``write``: a daemon to inspect,
    not to run (``riskd check-config``): the journal and the checkpoint are read, not changed.

    Raises:
        ConfigError: an unreadable or bad positions file, an unknown instrument in it, a feed
            that cannot be built from its configuration, a bad hedge instrument, a bad history
            file or journal.
    """
    if clock is None:
        replay = any(isinstance(f, ReplayConfig) for f in config.feeds)
        clock = ManualClock() if replay else LiveClock()
    portfolio = new_portfolio(config) if portfolio is None else portfolio
    registry = portfolio.registry
    gate = shard_gate(config.cluster, registry, declared_underlyings(config, registry))
    resent = any(
        isinstance(f, ReplayConfig | SimFeedConfig | UsSimFeedConfig) for f in config.feeds
    )
    book = open_book(config, config_path, portfolio, gate, resent_fills=resent, write=write)
    strategies = book.strategies
    hedged = list(config.risk.hedge_future.values())
    valuing = asyncio.Lock()  # held while a worker thread reprices the portfolio
    held = portfolio.instruments()
    feeds = build_feeds(config.feeds, config_path, registry, clock, held, hedged, valuing, gate)
    check_hedges(config.risk, registry, config_path)
    history = load_history(config.risk, config_path)
    inbox = AsyncInbox(Inbox(config.engine.fill_queue), book.journal, gate)
    stop = asyncio.Event()
    intake = Intake(feeds, registry, inbox, on_end=stop.set)
    sink = RedisSink(config.redis, clock, shard=None if gate is None else gate.shard.name)
    notifier = Notifier(config.notify)
    out = Publisher(sink, AlertEngine(config.alerts), notifier.offer)
    histograms = CycleHistograms() if config.http.address else None
    engine = EngineLoop(
        config.engine, config.redis.min_interval_ms, portfolio, strategies, inbox, intake, out,
        clock, valuing, histograms,
    )  # fmt: skip
    risk = RiskTask(
        config.risk,
        portfolio,
        registry,
        strategies,
        history,
        config_relative(config.risk.history, config_path),
        out,
        inbox,
        clock,
        valuing,
        underlying_curves(config),
        vectors=shard_vectors(config.risk, gate, sink.hashes.replace),
    )
    settler = Settler()
    optional = frozenset(fc.name for fc in config.feeds if not fc.required)
    monitor = Monitor(
        config.engine, feeds, optional, engine, risk, sink.stats, inbox, out, settler, clock,
        valuing,
    )  # fmt: skip
    sink.status = monitor.status  # the heartbeat's engine counters
    daemon = Daemon(
        config,
        clock,
        registry,
        portfolio,
        feeds,
        inbox,
        intake,
        sink,
        out,
        engine,
        risk,
        monitor,
        settler,
        histograms,
        stop,
        notifier,
    )
    if config.http.address:
        daemon.http = HttpServer(config.http, monitor.health, histograms)
        daemon.http.app[REGISTRY].register(notifier)
        add_what_if(daemon.http.app, risk)  # POST /what-if
        if config.http.dashboard:
            state = HealthState(monitor.health, clock, portfolio, config.redis.url)
            periods = {"exposure": config.engine.full_reprice_interval_s, **risk.periods()}
            daemon.hub = out.dashboard = DashboardHub(config.http, sink.base, state, periods)
            add_routes(daemon.http.app, daemon.hub, config.http)
            daemon.http.app[REGISTRY].register(daemon.hub)
    checkpoint = config_relative(config.checkpoint.path, config_path)
    if checkpoint is not None and book.journal is not None:
        daemon.checkpointer = Checkpointer(
            checkpoint, config.checkpoint.interval_s, book.identity, book.journal, engine,
            settler, valuing,
        )  # fmt: skip
    engine.replay(book.entries, settler, book.restored)  # since the checkpoint or positions
    return daemon


async def run(
    daemon: Daemon,
    *,
    duration_s: float | None = None,
    view: bool = False,
    on_forced_exit: Callable[[], None] | None = None,
) -> int:
    """Run ``daemon`` until SIGTERM/SIGINT (or ``duration_s``, or a replay's end with
    ``--exit-at-end``); returns the exit status. A second signal exits at once, after
    ``on_forced_exit`` (e.g. killing a private redis-server)."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.warning("second signal: exiting now", extra={"signal": sig.name})
            if on_forced_exit is not None:
                on_forced_exit()
            os._exit(128 + sig.value)
        logger.info("stopping", extra={"signal": sig.name})
        daemon.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await _start(daemon)
    status = 0
    try:
        async with asyncio.TaskGroup() as tg:
            feeds = [
                tg.create_task(daemon.intake.run(f), name=f"feed:{f.name}") for f in daemon.feeds
            ]
            engine = tg.create_task(daemon.engine.run(daemon.stop), name="engine")
            aux = [
                tg.create_task(daemon.sink.run(), name="sink"),
                tg.create_task(daemon.monitor.run(), name="monitor"),
                tg.create_task(daemon.notifier.run(), name="notify"),
            ]
            if daemon.config.risk.enabled:
                aux.append(tg.create_task(daemon.risk.run(daemon.stop), name="risk"))
            if daemon.http is not None:
                aux.append(tg.create_task(daemon.http.run(), name="http"))
            if daemon.hub is not None:
                aux.append(tg.create_task(daemon.hub.run(), name="dashboard"))
            if daemon.checkpointer is not None:
                cp = daemon.checkpointer.run(daemon.stop)
                aux.append(tg.create_task(cp, name="checkpoint"))
            if view:
                tv = TerminalView(
                    daemon.monitor.health,
                    daemon.out,
                    daemon.config.redis.url,
                    daemon.config.view.refresh_s,
                    daemon.clock,
                    dashboard_url(daemon.config.http),
                )
                aux.append(tg.create_task(tv.run(), name="view"))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await daemon.stop.wait()
            await _shut_down(daemon, feeds, engine)
            for t in aux:
                t.cancel()
    except* RiskEngineError as group:  # fatal: bad credentials, a command Redis refuses
        for error in group.exceptions:
            logger.error("fatal error: %s", error, extra={"error": type(error).__name__})
        status = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await daemon.sink.aclose()
        if daemon.inbox.journal is not None:
            daemon.inbox.journal.close()
    logger.info("stopped", extra={"cycles": daemon.engine.cycles, "status": status})
    return status


async def _start(daemon: Daemon) -> None:
    """Venue definitions, then the warm-up cycle: every kernel loaded, the start state out."""
    sys.setswitchinterval(0.0005)  # the loop gets the GIL back from workers within 0.5 ms
    await daemon.intake.load_instruments()
    daemon.engine.retry_unresolved()
    daemon.engine.safe_cycle(full=True)
    # The start state (instruments, positions, kernels) lives as long as the daemon: keep it out
    # of the garbage collector, whose full collections would otherwise traverse all of it.
    gc.collect()
    gc.freeze()
    status = msgspec.structs.asdict(daemon.portfolio.instrument_status())
    logger.info("started", extra={"feeds": [f.name for f in daemon.feeds], **status})


async def _shut_down(
    daemon: Daemon, feeds: list[asyncio.Task[None]], engine: asyncio.Task[None]
) -> None:
    """Feeds first, then the engine's last full cycle (and, at a replay's end, the risk once
    more), then the final snapshot out to Redis."""
    for t in feeds:
        t.cancel()
    daemon.stop.set()
    await engine
    daemon.engine.safe_cycle(full=True, flush=True)
    if daemon.checkpointer is not None:  # the next start reads it instead of the journal
        await daemon.checkpointer.safe_checkpoint(timeout_s=60.0)
    if daemon.intake.ended and daemon.config.risk.enabled:
        await daemon.risk.safe_period(list(daemon.risk.periods()))
    try:
        async with asyncio.timeout(daemon.config.redis.timeout_s * 2):
            await daemon.sink.flush()
    except Exception as exc:  # shutdown goes on without Redis
        logger.warning("final snapshot not published: %r", exc)
    await daemon.notifier.drain(DRAIN_TIMEOUT_S)  # the last transitions, to chat too
