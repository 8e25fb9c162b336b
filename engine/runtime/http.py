"""The daemon's HTTP endpoint (``[http]``): ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the process runs its event loop.
- ``/readyz``: 200 when the kernels are warm (the start-up cycle ran), every feed is connected,
  Redis took the last write and no feed is stale; else 503. The body (JSON) says which check
  fails.
- ``/metrics``: Prometheus text (prometheus-client), read from the daemon's counters when
  scraped, so the streaming path pays nothing for it but the two histograms
  (:class:`CycleHistograms`, binned once per engine cycle). Every metric is listed in
  docs/config.md (``[http]``).

A minimal HTTP/1.1 server on ``asyncio.start_server``: GET only, one request per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, Final

import msgspec
import numpy as np
import numpy.typing as npt
import orjson
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

if TYPE_CHECKING:
    from engine.runtime.app import Daemon

__all__ = ["CycleHistograms", "HttpConfig", "HttpServer"]

logger = logging.getLogger(__name__)

CYCLE_BUCKETS_S: Final = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)
"""Upper bounds of the cycle-time histogram, seconds."""
LATENCY_BUCKETS_S: Final = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0)
"""Upper bounds of the receipt-to-cycle-end latency histogram, seconds."""


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
            ("riskd_stale_instruments", "Held, stale inputs.", status["stale_instruments"]),
            (
                "riskd_unresolved_fills",
                "Fills kept: instrument unknown.",
                status["unresolved_fills"],
            ),
            ("riskd_positions", "Lots (book, instrument) held.", status["lots"]),
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


class HttpServer:
    """Serves ``/healthz``, ``/readyz`` and ``/metrics`` for ``daemon``."""

    def __init__(self, config: HttpConfig, daemon: Daemon) -> None:
        host, _, port = config.address.rpartition(":")
        self._host, self._port = host, int(port)
        self._daemon = daemon
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Collector(daemon))
        self.port = 0
        """The port it listens on, once started (port 0 in the config: the one it got)."""

    async def run(self, started: Callable[[], None] | None = None) -> None:
        """Listen until cancelled."""
        server = await asyncio.start_server(self._serve, self._host, self._port)
        self.port = server.sockets[0].getsockname()[1]
        logger.info("http listening", extra={"host": self._host, "port": self.port})
        if started is not None:
            started()
        async with server:
            await server.serve_forever()

    def readiness(self) -> dict[str, Any]:
        """The readiness checks and whether all pass."""
        d = self._daemon
        stale = [a["feed"] for a in d.alerts.active() if a["alert"] == "stale_feed"]
        checks = {
            "kernels_warm": d.cycles > 0,
            "feeds_connected": all(f.stats.connected for f in d.feeds),
            "redis_reachable": d.sink.stats.connected,
            "no_feed_stale": not stale,
        }
        return {"ready": all(checks.values()), "checks": checks, "stale_feeds": stale}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5.0):
                request = await reader.readuntil(b"\r\n\r\n")
            method, path, *_ = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
            status, ctype, body = self._respond(method, path.split("?", 1)[0])
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode("latin-1") + body)
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError, asyncio.IncompleteReadError):
            pass  # a bad or slow client: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _respond(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method != "GET":
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        if path == "/healthz":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/readyz":
            ready = self.readiness()
            status = "200 OK" if ready["ready"] else "503 Service Unavailable"
            return status, "application/json", orjson.dumps(ready)
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self._registry)
        return "404 Not Found", "text/plain", b"not found\n"
