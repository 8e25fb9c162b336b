"""Shared test settings.

Under CI (CI=true) hypothesis runs derandomized: the same examples on every run, so a red build
is reproducible and a green one is not luck. Locally every run draws new examples.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from tests.servers import MosquittoServer, RedisClusterServers, RedisServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests last: pytest-playwright's sync API runs an event loop of its own from
    its first test to the end of the session, and pytest-asyncio cannot run a test beside it."""
    items.sort(key=lambda item: item.path.parent.name == "browser")


SHIPPED = Path(__file__).parents[1] / "config"


def _shipped() -> dict[str, str]:
    """The digest of every file of config/ but logs (the README's main job writes riskd.log)."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in SHIPPED.iterdir()
        if p.suffix != ".log"
    }


@pytest.fixture(scope="session")
def shipped_config() -> dict[str, str]:
    """The digest of every file in config/ when the session started."""
    return _shipped()


@pytest.fixture(autouse=True)
def _config_left_alone(shipped_config: dict[str, str]) -> Iterator[None]:
    """A test that changes or deletes a file of the checkout's config/ (a daemon appending its
    recorded levels to the shipped seed file, say) errors, naming the files: it would leave
    the next run, and the next commit, something else than what was shipped."""
    yield
    now = _shipped()
    changed = sorted(n for n, digest in shipped_config.items() if now.get(n) != digest)
    assert not changed, f"this test changed config/: {changed}"


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
