"""Reconnecting, in one place for every adapter and the sink: what a failure means (one
classifier shape) and how long to wait before the next attempt (:class:`Backoff`).

Each adapter translates the third-party exceptions of its client where they enter, in one
function of the :data:`Classifier` shape (websockets' ``process_exception``, httpcore's
``map_exceptions``): ``classify(exc, where)`` returns a :class:`Failure`, the typed error to
raise and whether a new attempt may succeed, or None when ``exc`` is not a failure of the
connection at all (a bug: it propagates unchanged). The classifiers are
``feeds.deribit.classify``, ``feeds.mqtt.classify`` and ``engine.runtime.redis_sink.classify``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeAlias, TypeVar

from engine.errors import RiskEngineError

__all__ = ["Backoff", "Classifier", "Failure", "translate"]

E = TypeVar("E", bound=RiskEngineError)
_E_co = TypeVar("_E_co", bound=RiskEngineError, covariant=True)


class Failure(NamedTuple, Generic[_E_co]):
    """What a classifier made of an exception.

    Attributes:
        error: the typed error to raise (``raise failure.error from exc``), naming where it
            happened (the feed, the server's redacted URL).
        retryable: whether reconnecting (after a backoff) may fix it; False for what a retry
            cannot (credentials or a subscription refused, a bad URL, a rejected command).
    """

    error: _E_co
    retryable: bool


Classifier: TypeAlias = Callable[[BaseException, str], Failure[E] | None]
"""``classify(exc, where) -> Failure | None``: an adapter's one place deciding retryable vs fatal.
``where`` names the source in the error (a feed's name, a server's URL); None means ``exc`` is
not the connection's (a bug), to let propagate."""


def translate(classify: Classifier[E], exc: BaseException, where: str) -> E:
    """The typed error ``classify`` makes of ``exc``, to raise ``from exc``.

    Args:
        classify: the adapter's classifier.
        exc: the exception caught where the client was called.
        where: the source to name in the error.

    Raises:
        BaseException: ``exc`` itself, unchanged, when ``classify`` does not recognise it.
    """
    failure = classify(exc, where)
    if failure is None:
        raise exc
    return failure.error


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
