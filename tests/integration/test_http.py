"""The HTTP endpoint (engine.runtime.http) on a real socket: its routes, methods and status
codes, keep-alive, bad and concurrent clients, and its stop.

The daemon behind it is built (``build``) but not run: no feed, no Redis, no cycle yet, so
``/readyz`` answers 503 and the counters are zero. The endpoint in a running daemon is tested in
test_daemon.py (``test_health_readiness_and_metrics_over_http``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import msgspec
import orjson
import pytest
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from engine.errors import ConfigError
from engine.runtime.app import Daemon, build
from engine.runtime.config import AppConfig
from engine.runtime.http import HEALTH, HttpServer
from tests.servers import http_get, wait_until

DOCS = Path(__file__).parents[2] / "docs"


@dataclass(slots=True)
class Endpoint:
    server: HttpServer
    task: asyncio.Task[None]
    daemon: Daemon

    @property
    def port(self) -> int:
        return self.server.port


@contextlib.asynccontextmanager
async def serving(server: HttpServer, daemon: Daemon) -> AsyncIterator[Endpoint]:
    """``server`` running as a task until it listens; stopped (cancelled) on leaving."""
    task = asyncio.create_task(server.run(), name="http")
    await wait_until(lambda: server.port > 0 or task.done())
    assert not task.done()
    try:
        yield Endpoint(server, task, daemon)
    finally:
        task.cancel()
        async with asyncio.timeout(5):
            with pytest.raises(asyncio.CancelledError):
                await task
        await daemon.sink.aclose()


def built(tmp_path: Path) -> tuple[HttpServer, Daemon]:
    """A daemon (one MQTT feed, never connected) and its HttpServer on a free loopback port, as
    ``build`` made it (the notifier's metrics registered), without the dashboard."""
    config = msgspec.convert(
        {
            "http": {"address": "127.0.0.1:0", "dashboard": False},
            "feeds": [{"kind": "mqtt", "name": "md", "port": 1}],
        },
        AppConfig,
    )
    daemon = build(config, tmp_path / "riskd.toml")
    assert daemon.http is not None
    return daemon.http, daemon


@pytest.fixture
async def endpoint(tmp_path: Path) -> AsyncIterator[Endpoint]:
    async with serving(*built(tmp_path)) as e:
        yield e


@dataclass(slots=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-case
    body: bytes


class Connection:
    """One raw TCP connection to the endpoint: requests written by hand, answers read by
    Content-Length (so several can go over one connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> Connection:
        return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, method: str, path: str, extra: str = "") -> Answer:
        await self.send(f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode())
        return await self.answer(head_only=method == "HEAD")

    async def answer(self, head_only: bool = False) -> Answer:
        async with asyncio.timeout(5):
            head = await self.reader.readuntil(b"\r\n\r\n")
            status_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            headers = {}
            for line in lines:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            length = 0 if head_only else int(headers.get("content-length", "0"))
            body = await self.reader.readexactly(length)
        return Answer(int(status_line.split(" ", 2)[1]), headers, body)

    async def closed_by_server(self) -> bool:
        """Whether the server closes the connection (EOF) with nothing more sent."""
        async with asyncio.timeout(5):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


@pytest.fixture
async def conn(endpoint: Endpoint) -> AsyncIterator[Connection]:
    c = await Connection.open(endpoint.port)
    try:
        yield c
    finally:
        await c.close()


async def test_each_endpoint_answers_as_documented(conn: Connection) -> None:
    """/healthz: ok; /readyz: 503 with each check named (no cycle, no Redis yet); /metrics:
    Prometheus text with its content type."""
    healthz = await conn.request("GET", "/healthz")
    assert (healthz.status, healthz.body) == (200, b"ok\n")
    assert healthz.headers["content-type"].startswith("text/plain")
    readyz = await conn.request("GET", "/readyz?verbose=1")  # a query string changes nothing
    assert readyz.status == 503
    assert readyz.headers["content-type"] == "application/json"
    assert orjson.loads(readyz.body) == {
        "ready": False,
        "checks": {
            "kernels_warm": False,
            "feeds_connected": False,
            "redis_reachable": False,
            "no_feed_stale": True,
        },
        "stale_feeds": [],
    }
    metrics = await conn.request("GET", "/metrics")
    assert metrics.status == 200
    assert metrics.headers["content-type"] == CONTENT_TYPE_LATEST
    assert 'riskd_feed_connected{feed="md"} 0.0' in metrics.body.decode()


async def test_metrics_serves_every_metric_docs_config_lists(conn: Connection) -> None:
    """Every metric of docs/config.md's ``[http]`` table is served (and nothing unlisted); the
    dashboard's only with the dashboard (tests/integration/test_dashboard.py)."""
    listed = {m for m in documented_metrics() if not m.startswith("riskd_dashboard_")}
    text = (await conn.request("GET", "/metrics")).body.decode()
    served = set(re.findall(r"^# TYPE (riskd_[a-z_]+)", text, re.MULTILINE))
    assert listed == served


def documented_metrics() -> set[str]:
    """The metrics docs/config.md's ``[http]`` section lists."""
    section = (DOCS / "config.md").read_text().split("## `[http]`", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"`(riskd_[a-z_]+)", section))


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_head_answers_as_get_without_a_body(conn: Connection, path: str) -> None:
    get = await conn.request("GET", path)
    head = await conn.request("HEAD", path)  # on the same connection: nothing was left unread
    assert head.status == get.status
    assert head.headers["content-type"] == get.headers["content-type"]
    assert head.body == b""
    assert (await conn.request("GET", "/healthz")).body == b"ok\n"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_another_method_is_405(conn: Connection, method: str) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        answer = await conn.request(method, path, extra="Content-Length: 0\r\n")
        assert answer.status == 405, (method, path)
        assert set(answer.headers["allow"].split(",")) == {"GET", "HEAD"}


@pytest.mark.parametrize("path", ["/", "/nope", "/healthz/", "/metrics/x", "/HEALTHZ"])
async def test_an_unknown_path_is_404(conn: Connection, path: str) -> None:
    assert (await conn.request("GET", path)).status == 404
    assert (await conn.request("POST", path, extra="Content-Length: 0\r\n")).status == 404


async def test_requests_share_a_connection_until_the_client_closes_it(conn: Connection) -> None:
    """HTTP/1.1 keep-alive: many requests on one connection, pipelined too; closed by the
    server after the one that says ``Connection: close``."""
    for _ in range(3):
        assert (await conn.request("GET", "/healthz")).status == 200
    await conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" * 3)  # pipelined
    for _ in range(3):
        assert (await conn.answer()).body == b"ok\n"
    assert (await conn.request("GET", "/readyz", extra="Connection: close\r\n")).status == 503
    assert await conn.closed_by_server()


BAD_REQUESTS = [
    pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(64), id="tls-hello"),
    pytest.param(b"GARBAGE\r\n\r\n", id="no-http-version"),
    pytest.param(b"GET /healthz HTTP/1.1\r\nno colon here\r\n\r\n", id="bad-header"),
    pytest.param(b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", id="bad-version"),
    pytest.param(b"GET /" + b"x" * 20_000 + b" HTTP/1.1\r\n\r\n", id="line-too-long"),
    pytest.param(
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n", id="bad-length"
    ),
]


@pytest.mark.parametrize("garbage", BAD_REQUESTS)
async def test_a_malformed_request_is_answered_400_and_closed(
    endpoint: Endpoint, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """... and not logged: the client's fault (aiohttp would log a traceback at ERROR)."""
    caplog.set_level(logging.INFO)
    bad = await Connection.open(endpoint.port)
    try:
        await bad.send(garbage)
        assert (await bad.answer()).status == 400
        assert await bad.closed_by_server()
    finally:
        await bad.close()
    assert await http_get(endpoint.port, "/healthz") == (200, b"ok\n")
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


async def test_clients_that_stall_or_leave_half_way_do_not_hurt_the_server(
    endpoint: Endpoint,
) -> None:
    """Clients that send nothing, half a request line, headers without their end, or a body
    shorter than announced, then stall or hang up: the others are served meanwhile and after."""
    halves = [
        b"",
        b"GET /heal",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n",
        b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nshort",
    ]
    stalled = [await Connection.open(endpoint.port) for _ in halves]
    for c, half in zip(stalled, halves, strict=True):
        await c.send(half)
    assert await http_get(endpoint.port, "/healthz") == (200, b"ok\n")  # while they stall
    for c in stalled:
        c.writer.transport.abort()  # hung up half-way (RST)
    leavers = [await Connection.open(endpoint.port) for _ in halves]
    for c, half in zip(leavers, halves, strict=True):
        await c.send(half)
        await c.close()  # hung up half-way (FIN)
    assert await http_get(endpoint.port, "/healthz") == (200, b"ok\n")
    assert not endpoint.task.done()


async def test_many_concurrent_clients_are_all_served(endpoint: Endpoint) -> None:
    """100 clients at once, each on its own connection, and 10 connections of 10 requests."""
    answers = await asyncio.gather(
        *(http_get(endpoint.port, ("/healthz", "/readyz", "/metrics")[i % 3]) for i in range(100))
    )
    assert [status for status, _ in answers] == [(200, 503, 200)[i % 3] for i in range(100)]
    assert len({body for status, body in answers if status == 503}) == 1

    async def ten(port: int) -> list[int]:
        c = await Connection.open(port)
        try:
            return [(await c.request("GET", "/metrics")).status for _ in range(10)]
        finally:
            await c.close()

    assert await asyncio.gather(*(ten(endpoint.port) for _ in range(10))) == [[200] * 10] * 10


async def test_stopping_closes_the_listener_and_idle_connections(endpoint: Endpoint) -> None:
    idle = await Connection.open(endpoint.port)
    try:
        assert (await idle.request("GET", "/healthz")).status == 200  # kept alive
        endpoint.task.cancel()
        async with asyncio.timeout(5):
            with pytest.raises(asyncio.CancelledError):
                await endpoint.task
        assert await idle.closed_by_server()
    finally:
        await idle.close()
    with pytest.raises(ConnectionRefusedError):
        await http_get(endpoint.port, "/healthz")


async def test_an_address_in_use_fails_the_task_naming_the_key(endpoint: Endpoint) -> None:
    """A fatal error of the daemon (status 1), not a traceback."""
    config = msgspec.convert({"http": {"address": f"127.0.0.1:{endpoint.port}"}}, AppConfig)
    d = endpoint.daemon
    with pytest.raises(ConfigError, match=r"in use - at `\$\.http\.address`"):
        await HttpServer(config.http, d.monitor.health, d.histograms).run()


async def test_a_route_added_before_run_is_served_and_its_failure_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """How the next routes come in: added to ``server.app`` before ``run()``, reading the
    daemon from ``request.app[HEALTH]``. A handler that raises answers 500 and is logged."""

    async def feeds(request: web.Request) -> web.Response:
        return web.json_response([f.name for f in request.app[HEALTH]().feeds])

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug in a handler")

    server, daemon = built(tmp_path)
    server.app.router.add_get("/feeds", feeds)
    server.app.router.add_get("/broken", broken)
    async with serving(server, daemon) as e:
        assert await http_get(e.port, "/feeds") == (200, b'["md"]')
        assert (await http_get(e.port, "/broken"))[0] == 500
        assert (await http_get(e.port, "/healthz")) == (200, b"ok\n")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], RuntimeError)
