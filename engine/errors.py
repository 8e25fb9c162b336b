"""The exception hierarchy: every error riskd raises on purpose is a RiskEngineError.

Errors carry fields, not only text. Adapters translate third-party exceptions where they enter
(``raise FeedConnectionError(...) from exc``): nothing from websockets, aiomqtt or redis escapes.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "FeedConnectionError",
    "FeedDecodeError",
    "FeedError",
    "FeedStaleError",
    "RiskEngineError",
    "SinkError",
    "StateError",
]


class RiskEngineError(Exception):
    """Root of riskd's own errors."""


class ConfigError(RiskEngineError):
    """A configuration file is unreadable or invalid.

    Attributes:
        source: the file (or other origin) of the configuration.
        detail: what is wrong, with the key's path where there is one (``$.positions[2].strike``).
    """

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source}: {detail}")
        self.source = source
        self.detail = detail


class FeedError(RiskEngineError):
    """A feed failed. Attributes: ``feed``, the feed's configured name."""

    def __init__(self, feed: str, detail: str) -> None:
        super().__init__(f"feed {feed}: {detail}")
        self.feed = feed
        self.detail = detail


class FeedConnectionError(FeedError):
    """A feed's connection failed or dropped; retried with backoff unless ``retryable`` is False.

    Attributes:
        retryable: False for errors a retry cannot fix (bad credentials, bad address).
    """

    def __init__(self, feed: str, detail: str, *, retryable: bool = True) -> None:
        super().__init__(feed, detail)
        self.retryable = retryable


class FeedDecodeError(FeedError):
    """One message could not be decoded; it is counted and dropped, the feed goes on.

    Attributes:
        reason: a short stable label for counters (``json``, ``schema``, ``unknown_instrument``,
            ``bad_price``, ...).
        payload: the start of the offending message (at most 200 characters), for the log.
    """

    def __init__(self, feed: str, reason: str, detail: str, payload: bytes | str = b"") -> None:
        super().__init__(feed, f"{reason}: {detail}")
        self.reason = reason
        text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
        self.payload = text[:200]


class FeedStaleError(FeedError):
    """A feed went silent for longer than its timeout. Attributes: ``silent_s``."""

    def __init__(self, feed: str, silent_s: float) -> None:
        super().__init__(feed, f"no message for {silent_s:.1f} s")
        self.silent_s = silent_s


class SinkError(RiskEngineError):
    """An output (Redis) failed; the engine keeps computing and the sink reconnects."""


class StateError(RiskEngineError):
    """The engine's state was asked something inconsistent (e.g. an unknown book)."""
