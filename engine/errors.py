"""The exception hierarchy: every error riskd raises on purpose is a RiskEngineError."""

from __future__ import annotations

__all__ = ["ConfigError", "RiskEngineError"]


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
