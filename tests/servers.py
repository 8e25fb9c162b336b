"""Real servers for the tests: Debian's ``redis-server`` and ``mosquitto`` on free loopback ports.

A missing binary fails the test (``scripts/bootstrap`` installs both); nothing is skipped.
Servers can be killed (SIGKILL) and started again on the same port, to inject faults for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Self

from engine.clock import Clock
from engine.runtime.app import Daemon, build, run
from engine.runtime.config import load_config

__all__ = [
    "ClusterNode",
    "MosquittoServer",
    "RedisClusterServers",
    "RedisServer",
    "free_port",
    "http_get",
    "running_daemon",
    "wait_port",
    "wait_until",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    """Wait until something accepts TCP connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on 127.0.0.1:{port}") from None
            time.sleep(0.02)


async def wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> None:
    """Poll ``predicate`` (counters of a feed or server: nothing to await) until it holds."""
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - the state polled has no event to wait on
            await asyncio.sleep(0.01)


async def http_get(port: int, path: str, timeout_s: float = 5.0) -> tuple[int, bytes]:
    """``GET path`` from 127.0.0.1:``port`` (the daemon's HTTP endpoint), on a connection of
    its own (``Connection: close``: the body ends where the server closes): (status, body).

    Raises:
        OSError: refused or reset; TimeoutError (an OSError) after ``timeout_s``.
    """
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()
        finally:
            writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


@contextlib.asynccontextmanager
async def running_daemon(path: Path, clock: Clock | None = None) -> AsyncIterator[Daemon]:
    """riskd built from the config file ``path`` (on ``clock``, default the wall clock),
    running in this event loop; stopped (and checked to exit 0) on leaving."""
    daemon = build(load_config(path), path, clock=clock)
    task = asyncio.create_task(run(daemon))
    try:
        yield daemon
    finally:
        daemon.stop.set()
        async with asyncio.timeout(20):
            assert await task == 0


def _binary(name: str, *fallbacks: str) -> str:
    for candidate in (shutil.which(name), *fallbacks):
        if candidate and Path(candidate).exists():
            return candidate
    raise RuntimeError(f"{name} not found: run scripts/test (it installs it) or apt install it")


class _Server:
    """A child process listening on ``port``; ``kill()`` and ``start()`` again on that port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix=f"riskd-{type(self).__name__.lower()}-"))
        self.proc: subprocess.Popen[bytes] | None = None

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        """Start the server (again) and wait until it accepts connections."""
        if self.proc is not None and self.proc.poll() is None:
            return
        log = (self.dir / "server.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603 - fixed argv of a Debian binary
            self._argv(), stdout=log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        log.close()
        wait_port(self.port)

    def kill(self) -> None:
        """SIGKILL the server and wait for it to die: an abrupt outage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Terminate the server."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(_Server):
    """``redis-server`` without persistence on a free port; ``args`` are added to its command
    line (e.g. ``("--requirepass", "s3cret")``)."""

    def __init__(self, args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.args = args

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [
            _binary("redis-server", "/usr/bin/redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.dir),
            *self.args,
        ]  # fmt: skip


def free_cluster_port() -> int:
    """A free port P on 127.0.0.1 whose cluster bus port, P + 10000, is free too."""
    while True:
        port = free_port()
        if port + 10_000 > 65_535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class ClusterNode(RedisServer):
    """One ``redis-server --cluster-enabled yes`` of a :class:`RedisClusterServers`."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_cluster_port()

    def _argv(self) -> list[str]:
        return [
            *super()._argv(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self.dir / "nodes.conf"),
            "--cluster-node-timeout", "2000",
        ]  # fmt: skip

    def cli(self, *args: str) -> str:
        """``redis-cli`` against this node; its output."""
        argv = [_binary("redis-cli", "/usr/bin/redis-cli"), "-p", str(self.port), *args]
        done = subprocess.run(argv, capture_output=True, check=True, timeout=30)  # noqa: S603
        return done.stdout.decode()


class RedisClusterServers:
    """A Redis Cluster on loopback ports: ``masters`` masters with ``replicas`` replicas each
    (``redis-cli --cluster create``), every slot covered before the fixture hands it over."""

    def __init__(self, masters: int = 3, replicas: int = 0) -> None:
        self.nodes = [ClusterNode() for _ in range(masters * (1 + replicas))]
        self.replicas = replicas

    @property
    def url(self) -> str:
        """A URL of one node: the cluster client finds the others."""
        return f"redis://127.0.0.1:{self.nodes[0].port}/0"

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        self.nodes[0].cli(
            "--cluster", "create",
            *(f"127.0.0.1:{n.port}" for n in self.nodes),
            "--cluster-replicas", str(self.replicas),
            "--cluster-yes",
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self, timeout_s: float = 30.0) -> None:
        """Wait until every node says the cluster is ok and knows every other node, and every
        replica's link to its master is up (a manual failover needs a replica in sync)."""
        deadline = time.monotonic() + timeout_s
        for node in self.nodes:
            while True:
                info = node.cli("cluster", "info")
                known = node.cli("cluster", "nodes").count("connected")
                replication = node.cli("info", "replication")
                synced = "role:master" in replication or "master_link_status:up" in replication
                if "cluster_state:ok" in info and known >= len(self.nodes) and synced:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"cluster not ok on {node.port}: {info}")
                time.sleep(0.05)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MosquittoServer(_Server):
    """``mosquitto`` allowing anonymous clients on a free port."""

    def _argv(self) -> list[str]:
        conf = self.dir / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        )
        return [_binary("mosquitto", "/usr/sbin/mosquitto"), "-c", str(conf)]
