"""Capped, jittered exponential backoff for reconnecting feeds and sinks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Backoff"]


@dataclass(slots=True)
class Backoff:
    """Delays ``initial_s * factor**n``, capped at ``max_s``, each drawn uniformly from
    ``[(1 - jitter) * d, d]`` ("equal jitter" when jitter = 0.5) so that many clients do not
    reconnect in step. :meth:`reset` after a successful connection.
    """

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0
    jitter: float = 0.5
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def __post_init__(self) -> None:
        if not (0.0 < self.initial_s <= self.max_s):
            raise ValueError("need 0 < initial_s <= max_s")
        if self.factor < 1.0 or not (0.0 <= self.jitter <= 1.0):
            raise ValueError("need factor >= 1 and 0 <= jitter <= 1")

    def next_delay(self) -> float:
        """The delay before the next attempt, in seconds; advances the attempt count."""
        ceiling = min(self.max_s, self.initial_s * self.factor ** min(self.attempt, 64))
        self.attempt += 1
        return ceiling * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a successful connection)."""
        self.attempt = 0
