"""engine.retry: the backoff and the one classifier shape every adapter and the sink share."""

from __future__ import annotations

import random

import pytest

from engine.errors import FeedConnectionError, RiskEngineError, SinkError
from engine.retry import Backoff, Classifier, Failure, translate
from engine.runtime import redis_sink
from feeds import deribit, mqtt

CLASSIFIERS: dict[str, Classifier[RiskEngineError]] = {
    "deribit": deribit.classify,
    "mqtt": mqtt.classify,
    "redis": redis_sink.classify,
}
"""Every adapter's classifier, typed as the one shape (mypy checks each fits)."""


def test_backoff_doubles_up_to_the_cap_with_jitter_and_resets() -> None:
    backoff = Backoff(initial_s=1.0, max_s=8.0, rng=random.Random(7))  # noqa: S311 - jitter
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert backoff.attempt == 6
    backoff.reset()
    assert backoff.next_delay() <= 1.0


def test_backoff_refuses_bad_parameters() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=2.0, max_s=1.0)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=1.5)


@pytest.mark.parametrize("adapter", sorted(CLASSIFIERS))
def test_every_classifier_retries_a_dropped_connection(adapter: str) -> None:
    failure = CLASSIFIERS[adapter](ConnectionResetError(104, "reset by peer"), "the-source")
    assert isinstance(failure, Failure)
    assert failure.retryable is True
    assert isinstance(failure.error, FeedConnectionError | SinkError)
    assert "the-source" in str(failure.error)


@pytest.mark.parametrize("adapter", sorted(CLASSIFIERS))
def test_every_classifier_leaves_a_bug_alone(adapter: str) -> None:
    assert CLASSIFIERS[adapter](KeyError("a bug"), "the-source") is None


def test_translate_returns_the_typed_error() -> None:
    exc = ConnectionRefusedError(111, "refused")
    error = translate(mqtt.classify, exc, "mqtt")
    assert isinstance(error, FeedConnectionError)
    assert error.retryable is True
    assert error.feed == "mqtt"


def test_translate_raises_what_it_does_not_recognise_unchanged() -> None:
    exc = KeyError("a bug")
    with pytest.raises(KeyError) as info:
        translate(mqtt.classify, exc, "mqtt")
    assert info.value is exc
