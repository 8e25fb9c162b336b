"""The header every payload starts with: schema version and times (docs/redis.md)."""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

__all__ = ["NS_PER_MS", "SCHEMA_VERSION", "Header", "Version"]

Version = Literal[4]
"""The type of :data:`SCHEMA_VERSION` (one value: a payload of another version is not ours)."""

SCHEMA_VERSION: Final[Version] = 4
"""Version of every payload's schema; bumped on any incompatible change (docs/redis.md)."""

NS_PER_MS: Final = 1_000_000


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """The fields every payload starts with. Build a payload with ``ts_ns`` (and
    ``valuation_ts_ns``); ``ts`` is derived from ``ts_ns``."""

    v: Annotated[Version, msgspec.Meta(description="schema version")] = SCHEMA_VERSION
    ts: Annotated[
        int,
        msgspec.Meta(
            description="ms since the epoch: when the engine built the payload, on the daemon's "
            "clock (a payload re-published after a Redis outage keeps it)"
        ),
    ] = 0
    ts_ns: Annotated[int, msgspec.Meta(description="the same time in ns since the epoch")]
    valuation_ts_ns: Annotated[
        int | None,
        msgspec.Meta(
            description="ns since the epoch: the time the figures are valued at (times to "
            "expiry count from it; it moves at every full reprice); null for a payload of no "
            "valuation (settlement, stale-feed alert, heartbeat)"
        ),
    ]

    def __post_init__(self) -> None:
        # ts is ts_ns in ms: derived here, so no producer computes it (frozen: force it)
        msgspec.structs.force_setattr(self, "ts", self.ts_ns // NS_PER_MS)
