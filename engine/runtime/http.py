"""The daemon's HTTP endpoint (``[http]``): ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the process runs its event loop.
- ``/readyz``: 200 when the kernels are warm (the start-up cycle ran), every required feed is
  connected (or, a replay, finished), Redis took the last write and no required feed is stale;
  else 503. Feeds with ``required = false`` count for nothing. The body (JSON) says which
  check fails.
- ``/metrics``: Prometheus text (prometheus-client), read from the daemon's counters when
  scraped, so the streaming path pays nothing for it but the two histograms
  (:class:`CycleHistograms`, binned once per engine cycle). Every metric is listed in
  docs/config.md (``[http]``).

Each answers ``GET`` and ``HEAD``; another method is 405, another path 404. The server is
aiohttp's (HTTP/1.1 with keep-alive), run in the daemon's own event loop by :class:`HttpServer`,
a named task of the daemon's task group: no signal handlers or loop of its own, no access log.
:func:`build_app` declares the routes; a handler finds the daemon it reads in
``request.app[DAEMON]``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
from aiohttp import web
from aiohttp.http import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from engine.runtime.app import Daemon

__all__ = [
    "DAEMON",
    "REGISTRY",
    "CycleHistograms",
    "HttpConfig",
    "HttpServer",
    "build_app",
    "readiness",
]

logger = logging.getLogger(__name__)

CYCLE_BUCKETS_S: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds of the cycle-time histogram, seconds."""
LATENCY_BUCKETS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Upper bounds of the receipt-to-cycle-end latency histogram, seconds."""
KEEPALIVE_TIMEOUT_S: Final = 75.0
"""An idle client connection (none sent, or nothing since the last answer) is closed after this."""
SHUTDOWN_TIMEOUT_S: Final = 1.0
"""On stopping, requests in flight get this long to finish."""
CLEANUP_TIMEOUT_S: Final = 5.0
"""The whole clean-up on stopping (listeners, connections, application) gets this long."""


class _DropClientErrors(logging.Filter):
    """Drops aiohttp's error records of requests it could not parse. Those are the client's
    fault and already answered 400; a port scanner or a stray TLS client would otherwise write a
    traceback per connection. A handler's own failure (500) is still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, HttpProcessingError)


_server_logger: Final = logging.getLogger(f"{__name__}.server")
"""aiohttp's server log (handler failures), without its records of malformed requests."""
_server_logger.addFilter(_DropClientErrors())

DAEMON: Final[web.AppKey[Daemon]] = web.AppKey("daemon")
"""The application's daemon, which the handlers read."""
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
"""The daemon's metrics (:class:`_Collector`), which ``/metrics`` serves."""


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[http]``: where the endpoint listens.

    Attributes:
        address: ``host:port`` to listen on (e.g. ``127.0.0.1:9464``; port 0: any free one);
            empty: no endpoint.
    """

    address: Annotated[str, msgspec.Meta(pattern=r"^$|^[^:\s]+:\d{1,5}$")] = ""


class _Histogram:
    """A cumulative histogram fed whole arrays at a time (numpy: one call per cycle)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = np.asarray(bounds)
        self.counts = np.zeros(len(bounds) + 1, dtype=np.int64)  # the last: +Inf
        self.total = 0.0

    def observe(self, values: npt.NDArray[np.float64]) -> None:
        if values.size:
            self.counts += np.bincount(
                np.searchsorted(self.bounds, values), minlength=self.counts.size
            )
            self.total += float(values.sum())

    def family(self, name: str, doc: str) -> HistogramMetricFamily:
        cum = np.cumsum(self.counts).tolist()
        buckets = [(repr(b), c) for b, c in zip(self.bounds.tolist(), cum, strict=False)]
        buckets.append(("+Inf", cum[-1]))
        return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=self.total)


class CycleHistograms:
    """Engine cycle time and the latency from an event's receipt to the end of the cycle that
    applied it (its payloads built and handed to the sink), seconds."""

    def __init__(self) -> None:
        self.cycle = _Histogram(CYCLE_BUCKETS_S)
        self.latency = _Histogram(LATENCY_BUCKETS_S)

    def observe(self, cycle_s: float, latencies_ns: list[int]) -> None:
        self.cycle.observe(np.array([cycle_s]))
        if latencies_ns:
            self.latency.observe(np.asarray(latencies_ns, dtype=np.float64) / 1e9)


class _Collector:
    """The daemon's counters as Prometheus metrics, read at scrape time."""

    def __init__(self, daemon: Daemon) -> None:
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self._daemon
        received = CounterMetricFamily(
            "riskd_messages", "Messages read off each feed's wire or file.", labels=["feed"]
        )
        events = CounterMetricFamily(
            "riskd_events", "Events each feed handed to the engine.", labels=["feed"]
        )
        dropped = CounterMetricFamily(
            "riskd_dropped_messages",
            "Messages dropped, by feed and reason.",
            labels=["feed", "reason"],
        )
        connected = GaugeMetricFamily(
            "riskd_feed_connected", "1 while the feed is connected.", labels=["feed"]
        )
        for f in d.feeds:
            received.add_metric([f.name], f.stats.received)
            events.add_metric([f.name], f.stats.events)
            connected.add_metric([f.name], 1.0 if f.stats.connected else 0.0)
            for reason, n in f.stats.dropped.items():
                dropped.add_metric([f.name, reason], n)
        yield from (received, events, dropped, connected)
        inbox = d.inbox.inbox
        status = d.portfolio.instrument_status()
        sink = d.sink.stats
        counters: list[tuple[str, str, float]] = [
            ("riskd_coalesced_updates", "Ticks and quotes replaced unread.", inbox.conflated),
            ("riskd_cycles", "Engine cycles.", d.cycles),
            ("riskd_cycle_errors", "Engine cycles that failed.", d.cycle_errors),
            ("riskd_risk_errors", "Risk periods or settlements that failed.", d.risk_errors),
            ("riskd_rejected_fills", "Fills the engine refused (kept).", len(d.rejected_fills)),
            ("riskd_redis_errors", "Failed Redis writes.", sink.errors),
            ("riskd_redis_reconnects", "Redis connections after a failure.", sink.reconnects),
            ("riskd_redis_published", "Payloads written to Redis.", sink.published),
            ("riskd_alerts_published", "Alert transitions written to Redis.", sink.alerts),
            ("riskd_dropped_alerts", "Alert transitions dropped: queue full.", sink.dropped_alerts),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        gauges: list[tuple[str, str, float]] = [
            ("riskd_fill_queue", "Fills waiting for the engine.", inbox.fills_queued),
            ("riskd_sink_pending", "Payload keys waiting for Redis.", sink.pending),
            ("riskd_alert_queue", "Alert transitions waiting for Redis.", sink.queued_alerts),
            ("riskd_stale_instruments", "Held, stale inputs.", status.stale_instruments),
            (
                "riskd_unresolved_fills",
                "Fills kept: instrument unknown.",
                status.unresolved_fills,
            ),
            ("riskd_positions", "Lots (book, instrument) held.", status.lots),
            ("riskd_alerts_active", "Alerts raised now.", len(d.alerts.active())),
            ("riskd_redis_connected", "1 while Redis takes writes.", float(sink.connected)),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        h = d.histograms
        if h is None:  # the endpoint is off: nobody scrapes
            return
        yield h.cycle.family("riskd_cycle_seconds", "Engine cycle time.")
        yield h.latency.family(
            "riskd_latency_seconds", "Receipt of an event to the end of the cycle that applied it."
        )


def readiness(daemon: Daemon) -> dict[str, Any]:
    """The readiness checks and whether all pass (the body of ``/readyz``)."""
    stale = [f for f in daemon.alerts.stale_feeds() if f not in daemon.optional_feeds]
    checks = {
        "kernels_warm": daemon.cycles > 0,
        "feeds_connected": all(
            f.stats.connected or f.stats.finished
            for f in daemon.feeds
            if f.name not in daemon.optional_feeds
        ),
        "redis_reachable": daemon.sink.stats.connected,
        "no_feed_stale": not stale,
    }
    return {"ready": all(checks.values()), "checks": checks, "stale_feeds": stale}


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    ready = readiness(request.app[DAEMON])
    return web.Response(
        status=200 if ready["ready"] else 503,
        body=orjson.dumps(ready),
        content_type="application/json",
    )


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(daemon: Daemon) -> web.Application:
    """The endpoint's application: its routes (``GET``, and ``HEAD`` with them), and the daemon
    and its metrics they read (:data:`DAEMON`, :data:`REGISTRY`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(daemon))
    app = web.Application()
    app[DAEMON] = daemon
    app[REGISTRY] = registry
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


class HttpServer:
    """Serves :func:`build_app`'s routes for ``daemon`` on ``config.address``."""

    def __init__(self, config: HttpConfig, daemon: Daemon) -> None:
        host, _, port = config.address.rpartition(":")
        self._host, self._port = host, int(port)
        self.app = build_app(daemon)
        """The application served; add routes to it before :meth:`run`."""
        self.port = 0
        """The port it listens on, once started (port 0 in the config: the one it got)."""

    async def run(self) -> None:
        """Listen until cancelled, then close the listener and every connection.

        Raises:
            OSError: the address cannot be listened on (in use, or not this host's).
        """
        runner = web.AppRunner(
            self.app,
            handle_signals=False,  # the daemon owns SIGTERM/SIGINT
            access_log=None,  # no line per request; the daemon logs JSON
            logger=_server_logger,
            keepalive_timeout=KEEPALIVE_TIMEOUT_S,
            shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        )
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._port).start()
            self.port = runner.addresses[0][1]
            logger.info("http listening", extra={"host": self._host, "port": self.port})
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            try:
                async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                    await runner.cleanup()
            except TimeoutError:  # the daemon stops anyway: connections close with the process
                logger.warning("http shutdown timed out", extra={"timeout_s": CLEANUP_TIMEOUT_S})
