"""Every payload riskd publishes goes through one :class:`Publisher`: to the sink (and the
dashboard's hub), with the alert rules checked on it, and its transitions published, notified
and logged in turn."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable

from engine.alerts import AlertEngine
from engine.outputs import AlertPayload, Exposure, Payload, Sink

__all__ = ["Publisher"]

logger = logging.getLogger(__name__)


class Publisher:
    """The sink and the alert rules, together.

    Args:
        sink: where payloads and alert transitions go (Redis).
        alerts: the rules, evaluated on every payload published.
        notify: also given every alert transition (the notifier's queue: must not wait).

    Attributes:
        latest: the latest payload of each family and key, for the terminal view.
        recent_alerts: the last transitions, for the terminal view.
        dashboard: a second sink that gets everything the first does (the dashboard's hub,
            :class:`~engine.runtime.dashboard.DashboardHub`); None: none.
    """

    __slots__ = ("alerts", "dashboard", "latest", "notify", "recent_alerts", "sink")

    def __init__(
        self,
        sink: Sink,
        alerts: AlertEngine,
        notify: Callable[[AlertPayload], None] | None = None,
    ) -> None:
        self.sink = sink
        self.dashboard: Sink | None = None
        self.alerts = alerts
        self.notify = notify
        self.latest: dict[tuple[str, str], Payload] = {}
        self.recent_alerts: deque[AlertPayload] = deque(maxlen=8)

    def publish(self, key: str, payload: Payload, *, background: bool = False) -> None:
        """Hand ``payload`` to the sink under ``key`` (``background``: a periodic payload,
        :meth:`engine.outputs.Sink.publish`); evaluate the rules on it."""
        self.sink.publish(key, payload, background=background)
        if self.dashboard is not None:
            self.dashboard.publish(key, payload)
        self.latest[(payload.family, key)] = payload
        for t in self.alerts.check(payload):
            self.alert(t)

    def exposures(self) -> dict[str, Exposure]:
        """The latest exposure payload of each key."""
        return {k: p for (_, k), p in self.latest.items() if isinstance(p, Exposure)}

    def alert(self, payload: AlertPayload) -> None:
        """Publish and log an alert transition."""
        self.sink.alert(payload)
        if self.dashboard is not None:
            self.dashboard.alert(payload)
        if self.notify is not None:
            self.notify(payload)
        self.recent_alerts.append(payload)
        logger.warning(
            "alert %s", payload.state, extra={"alert": payload.id, "value": payload.value}
        )
