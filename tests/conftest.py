"""Shared test settings.

Under CI (CI=true) hypothesis runs derandomized: the same examples on every run, so a red build
is reproducible and a green one is not luck. Locally every run draws new examples.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import settings

from tests.servers import MosquittoServer, RedisClusterServers, RedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests last: pytest-playwright's sync API runs an event loop of its own from
    its first test to the end of the session, and pytest-asyncio cannot run a test beside it."""
    items.sort(key=lambda item: item.path.parent.name == "browser")


settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One redis-server for the session; tests use their own key prefix. Tests that kill the
    server start their own ``RedisServer`` instead."""
    with RedisServer() as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServers]:
    """A Redis Cluster of three masters for the session; tests use their own key prefix."""
    with RedisClusterServers() as cluster:
        yield cluster


@pytest.fixture(scope="session")
def mosquitto_server() -> Iterator[MosquittoServer]:
    """One mosquitto for the session; tests use their own topic prefix."""
    with MosquittoServer() as server:
        yield server


@pytest.fixture
def unique() -> str:
    """A name unique to this test, for Redis key prefixes and MQTT topic prefixes."""
    return f"t{uuid.uuid4().hex[:12]}"
