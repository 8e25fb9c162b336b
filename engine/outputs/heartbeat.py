"""The heartbeat: the daemon's and its Redis sink's counters (docs/redis.md "Heartbeat
payload"). On the wire it is one flat object: :class:`EngineStatus`'s fields, then
:class:`Heartbeat`'s (:func:`engine.outputs.wire.encode_heartbeat`)."""

from __future__ import annotations

import msgspec

from engine.outputs.header import Header

__all__ = ["EngineStatus", "FeedStatus", "Heartbeat", "PortfolioStatus"]


class PortfolioStatus(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """The portfolio's counts (:meth:`engine.state.Portfolio.instrument_status`)."""

    instruments: int
    lots: int
    groups: int
    stale_instruments: int
    unresolved_fills: int
    duplicate_fills: int


class FeedStatus(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One feed: connected now, messages received, bad messages dropped (all reasons)."""

    connected: bool
    received: int
    dropped: int


class EngineStatus(PortfolioStatus, frozen=True, kw_only=True):
    """The daemon's counters (the heartbeat's first part, and the statistics log line)."""

    uptime_s: float
    cycles: int
    events: int
    conflated: int
    unknown_instrument: int
    rejected_fills: int
    cycle_errors: int
    risk_errors: int
    feeds: dict[str, FeedStatus]
    foreign_events: int = 0
    """A shard's (``[cluster]``): market data of other shards' underlyings, dropped."""
    foreign_fills: int = 0
    """A shard's: fills of other shards' underlyings, not applied (docs/scaling.md)."""
    foreign_positions: int = 0
    """A shard's: rows of the positions file of other shards' underlyings, skipped."""


class Heartbeat(Header, frozen=True, kw_only=True, gc=False):
    """The Redis sink's counters (``{p}:heartbeat``, with a TTL), after the engine's."""

    published: int
    alerts: int
    pipelines: int
    errors: int
    reconnects: int
    resyncs: int
    server_changes: int
    dropped_alerts: int
    bad_payloads: int
    pending: int
    queued_alerts: int
