"""The dashboard's hub: the latest of everything the daemon publishes, pushed to browsers.

The :class:`~engine.runtime.publisher.Publisher` hands the hub every payload and alert
transition beside the Redis sink (:meth:`DashboardHub.publish`, :meth:`DashboardHub.alert`):
the same typed payloads, recorded in O(1), no await, nothing encoded on the engine's path. The
hub's task (:meth:`DashboardHub.run`, ``dashboard`` in the daemon's task group) takes what was
recorded, encodes each payload once (the JSON the sink writes) and offers it to every connected
browser (:class:`Client`), at most once per ``update_interval_ms``:

- it keeps the latest payload of each Redis hash field the sink writes, by the hash's name with
  the prefix and the field (``risk:var:snapshot`` / ``demo``, ``risk:snapshot`` / ``demo:BTC``,
  ``risk:alerts:active`` / an alert id, gone when the alert clears), the last ``ALERT_LOG``
  alert transitions, and each book's VaR and ES over the last ``var_history_s`` (what
  ``{p}:var:stream`` holds; :class:`~engine.outputs.VarHistory`);
- each browser has its own pending set, conflated: the latest value per key and field wins, so
  a browser that reads slowly skips values, and its memory is bounded by the number of keys;
  its alert transitions are a FIFO of ``ALERT_LOG`` (the oldest dropped and counted);
- a browser that connects first gets a :class:`~engine.outputs.Snapshot` of everything.

Sending, and dropping a browser that stalls, is :mod:`engine.runtime.dashboard.routes`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Final

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.clock import Clock
from engine.outputs import (
    AlertPayload,
    Entry,
    FeedState,
    Payload,
    RedisState,
    ServerState,
    Snapshot,
    Update,
    VarHistory,
    VarPayload,
    encode,
)
from engine.runtime.health import Health
from engine.runtime.http import HttpConfig
from engine.runtime.redis_sink import Keys, redact_url
from engine.state import Portfolio

__all__ = [
    "ALERT_LOG",
    "Client",
    "DashboardCounters",
    "DashboardHub",
    "HealthState",
    "TooManyClientsError",
]

logger = logging.getLogger(__name__)

ALERT_LOG: Final = 200
"""Alert transitions the hub keeps for a new browser, and queues for each browser."""
HEALTH_INTERVAL_S: Final = 1.0
"""How often every browser gets the daemon's state."""
_ENCODER: Final = msgspec.json.Encoder()
_NS_PER_S: Final = 1_000_000_000


class TooManyClientsError(Exception):
    """``max_clients`` browsers are connected already."""


class HealthState:
    """The daemon's state as the dashboard shows it (:class:`~engine.outputs.ServerState`).

    Args:
        health: the daemon's :class:`~engine.runtime.health.Health` now (the monitor's).
        clock: the daemon's clock (``now_ns``).
        portfolio: the book (its valuation time: the last full reprice).
        redis_url: the sink's URL (shown redacted).
    """

    def __init__(
        self, health: Callable[[], Health], clock: Clock, portfolio: Portfolio, redis_url: str
    ) -> None:
        self._health = health
        self._clock = clock
        self._portfolio = portfolio
        self._redis_url = redact_url(redis_url)

    def __call__(self) -> ServerState:
        h = self._health()
        s, st = h.sink, h.status
        valuation = self._portfolio.valuation_ns
        return ServerState(
            now_ns=self._clock.now_ns(),
            valuation_ts_ns=valuation or None,
            uptime_s=st.uptime_s,
            ready=h.ready,
            checks=h.checks(),
            cycles=st.cycles,
            positions=st.lots,
            stale_instruments=st.stale_instruments,
            alerts_active=h.alerts_active,
            feeds=[
                FeedState(
                    name=f.name,
                    required=f.required,
                    connected=f.connected,
                    finished=f.finished,
                    stale=f.name in h.stale_feeds,
                    received=f.received,
                    events=f.events,
                    dropped=sum(f.dropped.values()),
                )
                for f in h.feeds
            ],
            redis=RedisState(
                url=self._redis_url,
                connected=s.connected,
                published=s.published,
                errors=s.errors,
                reconnects=s.reconnects,
                pending=s.pending,
                queued_alerts=s.queued_alerts,
                dropped_alerts=s.dropped_alerts,
            ),
        )


class _Offer:
    """What one pass of the hub offers every browser; encoded once, for all the browsers that
    had nothing else waiting (the usual case: all of them but a slow one)."""

    __slots__ = ("_data", "alerts", "entries", "health")

    def __init__(
        self, entries: list[Entry], alerts: list[msgspec.Raw], health: ServerState | None
    ) -> None:
        self.entries = entries
        self.alerts = alerts
        self.health = health
        self._data: bytes | None = None

    def data(self) -> bytes:
        if self._data is None:
            update = Update(entries=self.entries, alerts=self.alerts, health=self.health)
            self._data = _ENCODER.encode(update)
        return self._data


class Client:
    """One browser's pending messages: the latest entry per (key, field) not yet sent, the
    alert transitions not yet sent (a FIFO of ``ALERT_LOG``), the daemon's state when due.
    :attr:`wake` is set whenever there is something to send."""

    __slots__ = (
        "alerts",
        "bytes_sent",
        "conflated",
        "dropped_alerts",
        "entries",
        "health",
        "offered",
        "updates_sent",
        "wake",
    )

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}
        self.alerts: deque[msgspec.Raw] = deque()
        self.health: ServerState | None = None
        self.offered: _Offer | None = None  # one pass's offer, alone: sent as it was encoded
        self.wake = asyncio.Event()
        self.conflated = 0
        """Values replaced before they were sent (the browser skipped them)."""
        self.dropped_alerts = 0
        """Alert transitions dropped unsent: more than ``ALERT_LOG`` were waiting."""
        self.updates_sent = 0
        """Messages sent (the snapshot included)."""
        self.bytes_sent = 0

    def offer(self, offer: _Offer) -> None:
        """Add a pass's entries (replacing any unsent value of the same key and field), alert
        transitions and state."""
        if not (self.entries or self.alerts or self.health or self.offered):
            self.offered = offer  # nothing else waits: the shared encoding will do
        else:
            self._unshare()
            self._add(offer)
        self.wake.set()

    def _unshare(self) -> None:
        if self.offered is not None:
            offered, self.offered = self.offered, None
            self._add(offered)

    def _add(self, offer: _Offer) -> None:
        pending = self.entries
        for e in offer.entries:
            k = (e.key, e.field)
            if k in pending:
                self.conflated += 1
            pending[k] = e
        for a in offer.alerts:
            if len(self.alerts) >= ALERT_LOG:
                self.alerts.popleft()
                self.dropped_alerts += 1
            self.alerts.append(a)
        if offer.health is not None:
            self.health = offer.health

    def take(self) -> bytes | None:
        """The update to send now (encoded), emptying the pending set; None: nothing."""
        if self.offered is not None and not (self.entries or self.alerts or self.health):
            offered, self.offered = self.offered, None
            return offered.data()
        self._unshare()
        if not (self.entries or self.alerts or self.health is not None):
            return None
        update = Update(
            entries=list(self.entries.values()), alerts=list(self.alerts), health=self.health
        )
        self.entries.clear()
        self.alerts.clear()
        self.health = None
        return _ENCODER.encode(update)


@dataclass(slots=True)
class _History:
    """One book's VaR history, oldest first."""

    method: str
    ts_ns: deque[int] = field(default_factory=deque)
    var: deque[float | None] = field(default_factory=deque)
    es: deque[float | None] = field(default_factory=deque)

    def add(self, p: VarPayload, keep_ns: int) -> None:
        if self.ts_ns and p.ts_ns <= self.ts_ns[-1]:  # the same period again (a replay's end)
            return
        self.method = p.method
        self.ts_ns.append(p.ts_ns)
        self.var.append(p.var)
        self.es.append(p.es)
        while self.ts_ns[0] < p.ts_ns - keep_ns:
            self.ts_ns.popleft()
            self.var.popleft()
            self.es.popleft()

    def columns(self) -> VarHistory:
        return VarHistory(
            method=self.method, ts_ns=list(self.ts_ns), var=list(self.var), es=list(self.es)
        )


@dataclass(slots=True)
class DashboardCounters:
    """Browsers' counts: connections accepted and refused, browsers dropped as too slow, and
    what they were sent and skipped."""

    connections: int = 0
    refused: int = 0
    slow_drops: int = 0
    updates_sent: int = 0
    bytes_sent: int = 0
    conflated: int = 0
    dropped_alerts: int = 0

    def add(self, client: Client) -> None:
        """Add what ``client`` was sent and skipped."""
        self.updates_sent += client.updates_sent
        self.bytes_sent += client.bytes_sent
        self.conflated += client.conflated
        self.dropped_alerts += client.dropped_alerts


class DashboardHub:
    """Every payload and alert the daemon publishes, kept and pushed to browsers; implements
    :class:`engine.outputs.Sink`.

    Args:
        config: ``[http]`` (``max_clients``, ``update_interval_ms``, ``stale_after_s``,
            ``var_history_s``).
        prefix: the Redis key prefix (``[redis] prefix``): the keys the page names.
        state: the daemon's state now (:class:`HealthState`).
        periods_s: each family's period, seconds (exposures: the full reprice's), for the
            page's staleness rule.
    """

    def __init__(
        self,
        config: HttpConfig,
        prefix: str,
        state: Callable[[], ServerState],
        periods_s: Mapping[str, float],
    ) -> None:
        self._config = config
        self._prefix = prefix
        self._keys = Keys.under(prefix)
        self._state = state
        self.periods_s = dict(periods_s)
        self._pending: dict[tuple[str, str], Payload] = {}  # (family, field) -> latest
        self._pending_alerts: deque[AlertPayload] = deque(maxlen=ALERT_LOG)  # for the log
        self._pending_active: dict[str, AlertPayload] = {}  # id -> its last transition
        self._latest: dict[tuple[str, str], Entry] = {}  # (hash key, field) -> latest
        self._log: deque[msgspec.Raw] = deque(maxlen=ALERT_LOG)
        self._history: dict[str, _History] = {}
        self._keep_ns = round(config.var_history_s * _NS_PER_S)
        self._wake = asyncio.Event()
        self.clients: set[Client] = set()
        self.bad_payloads = 0
        """Payloads dropped because they could not be encoded (the sink counts them too)."""
        self.gone = DashboardCounters()
        """What the browsers that disconnected were sent and skipped, and the connections
        refused or dropped (:meth:`counters` adds the connected ones)."""

    # ------------------------------------------------------------------ Sink (engine's path)

    def publish(self, key: str, payload: Payload, *, background: bool = False) -> None:
        """Record ``payload`` as the latest under its family and ``key`` (O(1), never
        blocks); ``background`` payloads too: the hub sends every browser the latest of
        each key on its own pace."""
        self._pending[(payload.family, key)] = payload
        self._wake.set()

    def alert(self, payload: AlertPayload) -> None:
        """Record an alert transition, in order (O(1), never blocks). The log of transitions
        keeps the last ``ALERT_LOG`` recorded between two passes of the hub's task; the active
        alerts follow every one."""
        self._pending_alerts.append(payload)
        self._pending_active[payload.id] = payload
        self._wake.set()

    # ------------------------------------------------------------------ browsers

    def connect(self) -> tuple[Client, bytes]:
        """A new browser: its :class:`Client` (registered) and the snapshot to send first.

        Raises:
            TooManyClientsError: ``max_clients`` are connected.
        """
        if len(self.clients) >= self._config.max_clients:
            self.gone.refused += 1
            raise TooManyClientsError
        self.gone.connections += 1
        self.step()  # what was recorded since the last pass: in the snapshot, not after it
        snapshot = Snapshot(
            prefix=self._prefix,
            stale_after_s=self._config.stale_after_s,
            periods_s=self.periods_s,
            entries=list(self._latest.values()),
            alerts=list(self._log),
            var_history={book: h.columns() for book, h in sorted(self._history.items())},
            health=self._state(),
        )
        client = Client()
        self.clients.add(client)
        return client, _ENCODER.encode(snapshot)

    def disconnect(self, client: Client) -> None:
        if client in self.clients:
            self.clients.discard(client)
            self.gone.add(client)

    def counters(self) -> DashboardCounters:
        """Every browser's counts since start, the connected ones' included."""
        total = dataclasses.replace(self.gone)
        for c in self.clients:
            total.add(c)
        return total

    def collect(self) -> Iterator[Metric]:
        """The dashboard's counters for ``/metrics`` (a prometheus-client collector)."""
        c = self.counters()
        yield GaugeMetricFamily(
            "riskd_dashboard_clients", "Dashboard WebSockets connected.", value=len(self.clients)
        )
        counters: list[tuple[str, str, float]] = [
            ("riskd_dashboard_connections", "Dashboard WebSockets accepted.", c.connections),
            ("riskd_dashboard_refused", "Dashboard WebSockets refused: max_clients.", c.refused),
            ("riskd_dashboard_slow_drops", "Browsers dropped: a send timed out.", c.slow_drops),
            ("riskd_dashboard_updates_sent", "Messages sent to browsers.", c.updates_sent),
            ("riskd_dashboard_bytes_sent", "Bytes of messages sent to browsers.", c.bytes_sent),
            (
                "riskd_dashboard_conflated",
                "Values replaced before a browser got them.",
                c.conflated,
            ),
            (
                "riskd_dashboard_dropped_alerts",
                "Alert transitions a browser missed.",
                c.dropped_alerts,
            ),
            (
                "riskd_dashboard_bad_payloads",
                "Payloads the hub could not encode.",
                self.bad_payloads,
            ),
        ]
        for name, doc, value in counters:
            yield CounterMetricFamily(name, doc, value=value)

    # ------------------------------------------------------------------ the hub's task

    async def run(self) -> None:
        """Until cancelled: :meth:`step` whenever something was recorded, at most once per
        ``update_interval_ms``; the daemon's state to every browser once a second."""
        spacing_s = self._config.update_interval_ms / 1000
        next_health = time.monotonic()
        while True:
            wait_s = next_health - time.monotonic()
            if wait_s > 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait_s):
                        await self._wake.wait()
            health = time.monotonic() >= next_health
            if health:
                next_health = time.monotonic() + HEALTH_INTERVAL_S
            self.step(health=health)
            if spacing_s:
                await asyncio.sleep(spacing_s)  # what comes meanwhile goes out together

    def step(self, *, health: bool = False) -> None:
        """Take what was recorded, encode it once and offer it to every browser (with the
        daemon's state, when ``health``)."""
        self._wake.clear()
        entries, alerts = self._drain()
        state = self._state() if health and self.clients else None
        if not (entries or alerts or state is not None):
            return
        offer = _Offer(entries, alerts, state)
        for c in self.clients:
            c.offer(offer)

    def _drain(self) -> tuple[list[Entry], list[msgspec.Raw]]:
        """Move what was recorded into the hub's state; the entries and alert transitions it
        made (encoded), to offer to the browsers."""
        entries: list[Entry] = []
        families = self._keys.families
        pending = self._pending
        for (family, name), payload in pending.items():
            data = self._encode(payload)
            if data is None:
                continue
            if isinstance(payload, VarPayload):
                self._var_point(payload)
            e = Entry(key=families[family][2], field=name, payload=msgspec.Raw(data))
            self._latest[(e.key, name)] = e
            entries.append(e)
        pending.clear()
        alerts: list[msgspec.Raw] = []
        while self._pending_alerts:
            data = self._encode(self._pending_alerts.popleft())
            if data is not None:
                alerts.append(msgspec.Raw(data))
        self._log.extend(alerts)
        active = self._keys.active
        for alert_id, a in self._pending_active.items():
            data = self._encode(a) if a.state == "raised" else None
            e = Entry(
                key=active, field=alert_id, payload=None if data is None else msgspec.Raw(data)
            )
            if e.payload is None:
                self._latest.pop((active, alert_id), None)
            else:
                self._latest[(active, alert_id)] = e
            entries.append(e)
        self._pending_active.clear()
        return entries, alerts

    def _var_point(self, p: VarPayload) -> None:
        h = self._history.get(p.book)
        if h is None:
            h = self._history[p.book] = _History(p.method)
        h.add(p, self._keep_ns)

    def _encode(self, payload: Payload | AlertPayload) -> bytes | None:
        try:
            return encode(payload)
        except (TypeError, ValueError):  # the sink logs it (rate-limited) and counts it too
            self.bad_payloads += 1
            return None
