"""Alert transitions: an alert raised or cleared (docs/redis.md "Alert payload")."""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, UnsetType

from engine.outputs.figures import Scope, Severity
from engine.outputs.header import Header

__all__ = ["AlertPayload", "AlertScope", "AlertState", "Direction"]

AlertScope = Scope | Literal["feed"]
"""A rule's scope, or ``feed`` for the stale-feed alert."""

AlertState = Literal["raised", "cleared"]

Direction = Literal["above", "below"]


class AlertPayload(Header, frozen=True, kw_only=True, gc=False):
    """An alert raised or cleared (``{p}:alerts``; while raised, ``{p}:alerts:active`` holds
    its latest ``raised`` payload under ``id``). ``feed`` is present on stale-feed alerts only;
    ``reason`` only on the ``cleared`` transitions a restarted riskd sends for the alerts its
    predecessor left active (``restart``)."""

    id: str
    alert: str
    state: AlertState
    severity: Severity
    metric: str
    scope: AlertScope
    feed: str | UnsetType = UNSET
    book: str | None
    underlying: str | None
    expiry: str | None
    strategy: str | None
    value: float
    threshold: float | None
    direction: Direction
    unit: str
    reason: Literal["restart"] | UnsetType = UNSET
