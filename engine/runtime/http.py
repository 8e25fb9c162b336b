"""The daemon's HTTP endpoint (``[http]``): ``/healthz``, ``/readyz`` and ``/metrics``.

- ``/healthz``: 200 while the process runs its event loop.
- ``/readyz``: 200 when the kernels are warm (the start-up cycle ran), every required feed is
  connected (or, a replay, finished), Redis took the last write and no required feed is stale;
  else 503. Feeds with ``required = false`` count for nothing. The body (JSON) says which
  check fails.
- ``/metrics``: Prometheus text (prometheus-client), read from the daemon's
  :class:`~engine.runtime.health.Health` when scraped, so the streaming path pays nothing for
  it but the two histograms (:class:`~engine.runtime.timings.CycleHistograms`, binned once per
  engine cycle). Every metric is listed in docs/config.md (``[http]``).

Each answers ``GET`` and ``HEAD``; another method is 405, another path 404. The server is
aiohttp's (HTTP/1.1 with keep-alive), run in the daemon's own event loop by :class:`HttpServer`,
a named task of the daemon's task group: no signal handlers or loop of its own, no access log.
:func:`build_app` declares the routes; a handler finds the daemon it reads in
``request.app[HEALTH]``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterator
from typing import Annotated, Any, Final

import msgspec
import orjson
from aiohttp import web
from aiohttp.http import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)

from engine.constraints import NonEmptyStr, NonNegativeInt, PositiveFloat, PositiveInt
from engine.errors import ConfigError
from engine.runtime.access import ACCESS, Access
from engine.runtime.health import Health
from engine.runtime.timings import CycleHistograms

__all__ = [
    "HEALTH",
    "REGISTRY",
    "HttpConfig",
    "HttpServer",
    "build_app",
    "readiness",
    "tls_context",
]

logger = logging.getLogger(__name__)

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

HealthSource = Callable[[], Health]
"""Reads the daemon's state now (:meth:`engine.runtime.monitor.Monitor.health`)."""
HEALTH: Final[web.AppKey[HealthSource]] = web.AppKey("health")
"""The application's source of the daemon's state, which the handlers read."""
REGISTRY: Final = web.AppKey("registry", CollectorRegistry)
"""The daemon's metrics (:class:`_Collector`), which ``/metrics`` serves."""


class HttpConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[http]``: where the endpoint listens, and the dashboard it serves (docs/config.md).

    Attributes:
        address: ``host:port`` to listen on (e.g. ``127.0.0.1:9464``; port 0: any free one);
            empty: no endpoint.
        dashboard: serve the live risk dashboard at ``/`` and its WebSocket at ``/ws``.
        token_env: name of the environment variable holding the dashboard's access token;
            at most one of ``token_env`` and ``token_file``; neither: no token.
        token_file: file holding the token (line breaks at its end are dropped).
        tls_cert_file: serve HTTPS with this certificate (PEM; it may hold the key too).
        tls_key_file: its private key (PEM, unencrypted).
        tls_ca_file: CA certificates (PEM): require a client certificate signed by one of
            them (mutual TLS).
        max_clients: dashboard WebSocket connections at once; one more is refused (503).
        client_buffer_kib: a browser's unsent bytes beyond which sending to it waits.
        send_timeout_s: a browser whose send waits longer than this is dropped (it
            reconnects and gets a full snapshot).
        update_interval_ms: the shortest time between two updates to a browser; what
            changes meanwhile goes out together, the latest value of each key (0: at once).
        stale_after_s: the page marks a payload stale when it is older than this plus twice
            its family's period (by the daemon's clock).
        var_history_s: how much of each book's VaR and ES the dashboard keeps to chart.
    """

    address: Annotated[str, msgspec.Meta(pattern=r"^$|^[^:\s]+:\d{1,5}$")] = ""
    dashboard: bool = True
    token_env: NonEmptyStr | None = None
    token_file: NonEmptyStr | None = None
    tls_cert_file: NonEmptyStr | None = None
    tls_key_file: NonEmptyStr | None = None
    tls_ca_file: NonEmptyStr | None = None
    max_clients: PositiveInt = 32
    client_buffer_kib: PositiveInt = 1024
    send_timeout_s: PositiveFloat = 10.0
    update_interval_ms: NonNegativeInt = 200
    stale_after_s: PositiveFloat = 10.0
    var_history_s: PositiveFloat = 3600.0

    def __post_init__(self) -> None:
        if self.token_env is not None and self.token_file is not None:
            raise ValueError("http: set token_env or token_file, not both")
        if self.tls_cert_file is None:
            keys = [k for k in ("tls_key_file", "tls_ca_file") if getattr(self, k) is not None]
            if keys:
                raise ValueError(f"http {', '.join(keys)}: only with tls_cert_file")

    @property
    def tls(self) -> bool:
        """Whether the endpoint serves HTTPS."""
        return self.tls_cert_file is not None


class _Collector:
    """The daemon's :class:`~engine.runtime.health.Health` as Prometheus metrics, read at
    scrape time, and the engine's histograms."""

    def __init__(self, health: HealthSource, histograms: CycleHistograms | None) -> None:
        self._health = health
        self._histograms = histograms

    def collect(self) -> Iterator[Metric]:
        h = self._health()
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
        for f in h.feeds:
            received.add_metric([f.name], f.received)
            events.add_metric([f.name], f.events)
            connected.add_metric([f.name], 1.0 if f.connected else 0.0)
            for reason, n in f.dropped.items():
                dropped.add_metric([f.name, reason], n)
        yield from (received, events, dropped, connected)
        st, sink = h.status, h.sink
        counters: list[tuple[str, str, float]] = [
            ("riskd_coalesced_updates", "Ticks and quotes replaced unread.", st.conflated),
            ("riskd_cycles", "Engine cycles.", st.cycles),
            ("riskd_cycle_errors", "Engine cycles that failed.", st.cycle_errors),
            ("riskd_risk_errors", "Risk periods or settlements that failed.", st.risk_errors),
            ("riskd_rejected_fills", "Fills the engine refused (kept).", st.rejected_fills),
            ("riskd_redis_errors", "Failed Redis writes.", sink.errors),
            ("riskd_redis_reconnects", "Redis connections after a failure.", sink.reconnects),
            ("riskd_redis_published", "Payloads written to Redis.", sink.published),
            ("riskd_alerts_published", "Alert transitions written to Redis.", sink.alerts),
            ("riskd_dropped_alerts", "Alert transitions dropped: queue full.", sink.dropped_alerts),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)
        gauges: list[tuple[str, str, float]] = [
            ("riskd_fill_queue", "Fills waiting for the engine.", h.fill_queue),
            ("riskd_sink_pending", "Payload keys waiting for Redis.", sink.pending),
            ("riskd_alert_queue", "Alert transitions waiting for Redis.", sink.queued_alerts),
            ("riskd_stale_instruments", "Held, stale inputs.", st.stale_instruments),
            ("riskd_unresolved_fills", "Fills kept: instrument unknown.", st.unresolved_fills),
            ("riskd_positions", "Lots (book, instrument) held.", st.lots),
            ("riskd_alerts_active", "Alerts raised now.", h.alerts_active),
            ("riskd_redis_connected", "1 while Redis takes writes.", float(sink.connected)),
        ]
        for name, doc, value in gauges:
            yield GaugeMetricFamily(name, doc, value=value)
        hist = self._histograms
        if hist is None:  # the endpoint is off: nobody scrapes
            return
        yield hist.cycle.family("riskd_cycle_seconds", "Engine cycle time.")
        yield hist.latency.family(
            "riskd_latency_seconds", "Receipt of an event to the end of the cycle that applied it."
        )


def readiness(health: Health) -> dict[str, Any]:
    """The readiness checks and whether all pass (the body of ``/readyz``)."""
    checks = health.checks()
    return {"ready": all(checks.values()), "checks": checks, "stale_feeds": health.stale_feeds}


async def _healthz(request: web.Request) -> web.Response:
    return web.Response(text="ok\n")


async def _readyz(request: web.Request) -> web.Response:
    ready = readiness(request.app[HEALTH]())
    return web.Response(
        status=200 if ready["ready"] else 503,
        body=orjson.dumps(ready),
        content_type="application/json",
    )


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def build_app(
    health: HealthSource, histograms: CycleHistograms | None, access: Access
) -> web.Application:
    """The endpoint's application: its routes (``GET``, and ``HEAD`` with them), and the
    daemon's health and metrics they read (:data:`HEALTH`, :data:`REGISTRY`), and the access
    check the private routes added later read (:data:`~engine.runtime.access.ACCESS`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(health, histograms))
    app = web.Application()
    app[HEALTH] = health
    app[REGISTRY] = registry
    app[ACCESS] = access
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/metrics", _metrics)
    return app


class HttpServer:
    """Serves :func:`build_app`'s routes on ``config.address``, over TLS with
    ``tls_cert_file``."""

    def __init__(
        self, config: HttpConfig, health: HealthSource, histograms: CycleHistograms | None
    ) -> None:
        host, _, port = config.address.rpartition(":")
        self._host, self._port = host, int(port)
        self._config = config
        self._ssl = tls_context(config) if config.tls else None
        self.app = build_app(health, histograms, Access.read(config.token_env, config.token_file))
        """The application served; add routes to it before :meth:`run`."""
        self.port = 0
        """The port it listens on, once started (port 0 in the config: the one it got)."""

    @property
    def dashboard_url(self) -> str | None:
        """The dashboard's URL once listening (without any token); None before, or when
        ``[http] dashboard`` is off."""
        if not (self.port and self._config.dashboard):
            return None
        scheme = "https" if self._ssl is not None else "http"
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"{scheme}://{host}:{self.port}/"

    async def run(self) -> None:
        """Listen until cancelled, then close the listener and every connection.

        Raises:
            ConfigError: the address cannot be listened on (in use, or not this host's): a
                fatal error of the daemon (exit status 1), naming ``$.http.address``.
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
            try:
                await web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl).start()
            except OSError as exc:
                detail = f"cannot listen on {self._host}:{self._port}: {exc.strerror or exc}"
                raise ConfigError("[http]", f"{detail} - at `$.http.address`") from exc
            self.port = runner.addresses[0][1]
            logger.info(
                "http listening",
                extra={"host": self._host, "port": self.port, "dashboard": self.dashboard_url},
            )
            await asyncio.get_running_loop().create_future()  # until cancelled
        finally:
            try:
                async with asyncio.timeout(CLEANUP_TIMEOUT_S):
                    await runner.cleanup()
            except TimeoutError:  # the daemon stops anyway: connections close with the process
                logger.warning("http shutdown timed out", extra={"timeout_s": CLEANUP_TIMEOUT_S})


def tls_context(config: HttpConfig) -> ssl.SSLContext:
    """The server's TLS context: ``tls_cert_file`` (and ``tls_key_file``), TLS 1.2 at least;
    with ``tls_ca_file``, a client certificate signed by one of its CAs is required.

    Raises:
        ssl.SSLError: a certificate or key that does not load (the configuration checks them
            when it is loaded); OSError: a file that cannot be read.
    """
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.tls_cert_file is None:
        raise ValueError("http: TLS without tls_cert_file")
    # An encrypted key would prompt on the terminal: refuse it instead.
    context.load_cert_chain(config.tls_cert_file, config.tls_key_file, password=b"")
    if config.tls_ca_file is not None:
        context.load_verify_locations(cafile=config.tls_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    return context
