"""The dashboard's WebSocket messages (docs/dashboard.md "Protocol"): what the daemon pushes to
a browser. Payloads travel inside them as the JSON the Redis sink writes (``msgspec.Raw``,
encoded once); the daemon's state (:class:`ServerState`) is typed here.

A browser first gets a :class:`Snapshot` (everything the daemon holds), then :class:`Update`
messages (what changed since its last message; the latest value per key and field). The
protocol's JSON Schema is :func:`dashboard_schema` (docs/schema/dashboard-messages.json).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec

from engine.outputs.wire import _nullable_numbers

__all__ = [
    "PROTOCOL_VERSION",
    "DashboardMessage",
    "Entry",
    "FeedState",
    "RedisState",
    "ServerState",
    "Snapshot",
    "Update",
    "VarHistory",
    "dashboard_schema",
]

PROTOCOL_VERSION: Final = 1
"""Version of the dashboard protocol (a browser reloads the page on another)."""


class FeedState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One feed, now: its state and counters (messages read, events, bad messages dropped)."""

    name: str
    required: bool
    connected: bool
    finished: bool
    stale: bool
    received: int
    events: int
    dropped: int


class RedisState(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The Redis sink, now: its URL (password redacted), whether the last write succeeded, its
    counters and queues."""

    url: str
    connected: bool
    published: int
    errors: int
    reconnects: int
    pending: int
    queued_alerts: int
    dropped_alerts: int


class ServerState(msgspec.Struct, frozen=True, kw_only=True):
    """The daemon now (its health): sent with every snapshot and once a second.

    ``now_ns`` is the daemon's clock (a replay's: the data's time), against which the page
    measures the age of each payload (``now_ns - ts_ns``); ``valuation_ts_ns`` is the engine's
    last full reprice (null before the first)."""

    now_ns: int
    valuation_ts_ns: int | None
    uptime_s: float
    ready: bool
    checks: dict[str, bool]
    cycles: int
    positions: int
    stale_instruments: int
    alerts_active: int
    feeds: list[FeedState]
    redis: RedisState


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """One Redis hash field: ``key`` (the hash, with the prefix, e.g. ``risk:var:snapshot``),
    ``field`` (e.g. ``demo``) and its latest ``payload`` (the JSON Redis holds); ``payload`` null:
    the field is gone (a cleared alert)."""

    key: str
    field: str
    payload: msgspec.Raw | None


class VarHistory(msgspec.Struct, frozen=True, kw_only=True):
    """A book's headline VaR and ES (its ``method``'s ``var`` and ``es``, USD) over the last
    ``[http] var_history_s``, one point per VaR payload: the data of ``{p}:var:stream``, kept in
    memory."""

    method: str
    ts_ns: list[int]
    var: list[float | None]
    es: list[float | None]


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, tag="snapshot", tag_field="type"):
    """The first message on a connection: every key and field the daemon holds, the last alert
    transitions (oldest first), each book's VaR history and the daemon's state; with the
    page's staleness rule: a payload of family ``f`` is stale when it is older than
    ``stale_after_s + 2 * periods_s[f]`` (by ``health.now_ns``)."""

    protocol: int = PROTOCOL_VERSION
    prefix: str
    stale_after_s: float
    periods_s: dict[str, float]
    entries: list[Entry]
    alerts: list[msgspec.Raw]
    var_history: dict[str, VarHistory]
    health: ServerState


class Update(msgspec.Struct, frozen=True, kw_only=True, tag="update", tag_field="type"):
    """What changed since the connection's last message: the latest payload of each key and
    field that changed, the alert transitions in order, and the daemon's state when due."""

    entries: list[Entry]
    alerts: list[msgspec.Raw]
    health: ServerState | None


DashboardMessage = Snapshot | Update
"""A message of the dashboard's WebSocket (``"type"``: ``snapshot`` or ``update``)."""


def dashboard_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the dashboard's messages; ``payload`` and ``alerts`` hold
    payloads of docs/schema/riskd-payloads.json; a number may be null (not finite)."""
    schema: dict[str, Any] = msgspec.json.schema(DashboardMessage)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = f"riskd dashboard messages, protocol {PROTOCOL_VERSION}"
    nullable: dict[str, Any] = _nullable_numbers(schema)  # msgspec writes NaN as null
    return nullable
