"""The live risk dashboard (docs/dashboard.md): a hub fed by the Publisher beside the Redis
sink (:mod:`.hub`), the page and its WebSocket on the daemon's HTTP endpoint (:mod:`.routes`),
the page's files (``static/``: plain HTML, CSS and ES modules, the vendored charting library)."""

from engine.runtime.dashboard.hub import (
    ALERT_LOG,
    Client,
    DashboardHub,
    HealthState,
    TooManyClientsError,
)
from engine.runtime.dashboard.routes import COOKIE, add_routes

__all__ = [
    "ALERT_LOG",
    "COOKIE",
    "Client",
    "DashboardHub",
    "HealthState",
    "TooManyClientsError",
    "add_routes",
]
