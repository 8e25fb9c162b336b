"""The dashboard's routes and WebSocket (engine.runtime.dashboard) on a real aiohttp server, with
real WebSocket clients: a snapshot first, then updates; a browser that stalls is dropped while
the others go on; the limits; the access token (page, static files, WebSocket, login), the
origin check, TLS; the page's files.

The daemon is built (``build``) but not run: payloads are handed to its Publisher by the test
(as the engine and risk tasks would), the hub's task and the HTTP server run as tasks. The page
itself, in a browser against a running daemon, is tests/browser/'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.errors import ConfigError
from engine.outputs import BookExposure, StressPayload
from engine.runtime.app import Daemon, build
from engine.runtime.config import AppConfig, load_config
from engine.runtime.dashboard import COOKIE
from tests.factories import alert, payload
from tests.integration.test_http import documented_metrics
from tests.integration.test_security import Pki, _make_pki
from tests.servers import wait_until

TOKEN_ENV = "RISKD_TEST_DASHBOARD_TOKEN"  # noqa: S105 - a variable's name
TOKEN = "dashboard-secret-7f3a9c"  # noqa: S105 - a test token


@dataclass(slots=True)
class Served:
    daemon: Daemon
    base: str  # http://127.0.0.1:port
    tasks: list[asyncio.Task[None]]

    @property
    def ws(self) -> str:
        return self.base.replace("http", "ws", 1) + "/ws"


@contextlib.asynccontextmanager
async def serving(tmp_path: Path, **http: Any) -> AsyncIterator[Served]:
    """A daemon (one MQTT feed, never connected) whose HTTP endpoint and dashboard hub run."""
    config = msgspec.convert(
        {
            "http": {"address": "127.0.0.1:0", "update_interval_ms": 0, **http},
            "feeds": [{"kind": "mqtt", "name": "md", "port": 1}],
        },
        AppConfig,
    )
    daemon = build(config, tmp_path / "riskd.toml")
    assert daemon.http is not None
    assert daemon.hub is not None
    tasks = [
        asyncio.create_task(daemon.http.run(), name="http"),
        asyncio.create_task(daemon.hub.run(), name="dashboard"),
    ]
    http_server = daemon.http
    await wait_until(lambda: http_server.port > 0 or tasks[0].done())
    scheme = "https" if config.http.tls else "http"
    try:
        yield Served(daemon, f"{scheme}://127.0.0.1:{http_server.port}", tasks)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        await daemon.sink.aclose()


def book(name: str, vega: float) -> BookExposure:
    return payload(BookExposure, book=name, vega=vega)


async def receive(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    async with asyncio.timeout(10):
        msg = await ws.receive()
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data = msgspec.json.decode(msg.data)
    assert isinstance(data, dict)
    return data


async def until(
    ws: aiohttp.ClientWebSocketResponse, key: str, field: str
) -> tuple[dict[str, Any], Any]:
    """The next update carrying ``key``/``field`` (updates of the health alone are skipped)."""
    while True:
        msg = await receive(ws)
        for e in msg["entries"]:
            if (e["key"], e["field"]) == (key, field):
                return msg, e["payload"]


async def metrics(base: str) -> dict[str, float]:
    """``/metrics`` as name -> value (samples without labels)."""
    async with aiohttp.ClientSession() as http, http.get(base + "/metrics") as r:
        text = await r.text()
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serving(tmp_path) as s:
        yield s


async def test_a_browser_gets_a_snapshot_then_what_changes(served: Served) -> None:
    out = served.daemon.out
    out.publish("demo", book("demo", 1.0))
    out.alert(alert("stale:a", "raised", value=3.0))
    async with aiohttp.ClientSession() as http, http.ws_connect(served.ws) as ws:
        snapshot = await receive(ws)
        assert snapshot["type"] == "snapshot"
        got = {(e["key"], e["field"]): e["payload"] for e in snapshot["entries"]}
        assert got[("risk:snapshot", "demo")]["vega"] == 1.0
        assert got[("risk:alerts:active", "stale:a")]["value"] == 3.0
        assert [a["id"] for a in snapshot["alerts"]] == ["stale:a"]
        assert snapshot["health"]["feeds"][0]["name"] == "md"

        out.publish("demo", book("demo", 2.0))
        msg, p = await until(ws, "risk:snapshot", "demo")
        assert msg["type"] == "update"
        assert p["vega"] == 2.0
        out.alert(alert("stale:a", "cleared"))
        msg, p = await until(ws, "risk:alerts:active", "stale:a")
        assert p is None
        assert [a["state"] for a in msg["alerts"]] == ["cleared"]


async def test_a_browser_that_reconnects_gets_the_full_state_again(served: Served) -> None:
    served.daemon.out.publish("demo", book("demo", 1.0))
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(served.ws) as ws:
            await receive(ws)
        served.daemon.out.publish("hedge", book("hedge", 5.0))  # while it is away
        async with http.ws_connect(served.ws) as ws:
            snapshot = await receive(ws)
    fields = {e["field"]: e["payload"]["vega"] for e in snapshot["entries"]}
    assert fields == {"demo": 1.0, "hedge": 5.0}
    await wait_until(lambda: not served.daemon.hub or not served.daemon.hub.clients)


def big_grid(book_name: str, i: int) -> StressPayload:
    """A stress payload of about 200 KB of JSON."""
    return payload(
        StressPayload, book=book_name, pnl=[[float(i)] * 100] * 100, stress_loss=float(i)
    )


async def test_a_stalled_browser_is_dropped_and_the_others_keep_up(tmp_path: Path) -> None:
    """One client completes the handshake and then reads nothing; another reads everything.
    The stalled one's buffer fills, its send times out and it is dropped; the reader has seen
    every key's last value; publishing never waited."""
    async with serving(tmp_path, client_buffer_kib=16, send_timeout_s=0.5) as s:
        hub = s.daemon.hub
        assert hub is not None
        async with aiohttp.ClientSession() as http:
            stalled = await http.ws_connect(s.ws)  # reads nothing from here on
            reader = await http.ws_connect(s.ws)
            await receive(reader)
            await wait_until(lambda: len(hub.clients) == 2)
            last: dict[str, float] = {}
            seen: dict[str, float] = {}

            async def read() -> None:
                for e in (await receive(reader))["entries"]:
                    seen[e["field"]] = e["payload"]["stress_loss"]

            i = 0
            async with asyncio.timeout(60):
                while len(hub.clients) == 2:  # until the stalled one is dropped
                    i += 1
                    name = f"b{i % 20}"
                    s.daemon.out.publish(name, big_grid(name, i))
                    last[name] = float(i)
                    await read()
                while seen != last:  # the reader's last values arrive
                    await read()
            m = await metrics(s.base)
            assert m["riskd_dashboard_clients"] == 1
            assert m["riskd_dashboard_connections_total"] == 2
            assert m["riskd_dashboard_slow_drops_total"] == 1
            assert m["riskd_dashboard_conflated_total"] > 0  # the stalled one skipped values
            assert m["riskd_dashboard_updates_sent_total"] >= i  # each read took one at least
            assert m["riskd_dashboard_bytes_sent_total"] > 16 * 1024
            await stalled.close()
            await reader.close()
        assert i > 5  # it took megabytes to fill the stalled one's buffers


async def test_one_browser_more_than_max_clients_is_refused(tmp_path: Path) -> None:
    async with serving(tmp_path, max_clients=2) as s, aiohttp.ClientSession() as http:
        a = await http.ws_connect(s.ws)
        b = await http.ws_connect(s.ws)
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(s.ws)
        assert refused.value.status == 503
        await a.close()
        await wait_until(lambda: s.daemon.hub is not None and len(s.daemon.hub.clients) == 1)
        c = await http.ws_connect(s.ws)
        m = await metrics(s.base)
        assert (m["riskd_dashboard_refused_total"], m["riskd_dashboard_clients"]) == (1, 2)
        assert m["riskd_dashboard_connections_total"] == 3
        await b.close()
        await c.close()


async def test_the_page_and_its_files_are_served(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(served.base + "/") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/html")
            assert "default-src 'self'" in r.headers["Content-Security-Policy"]
            page = await r.text()
        assert '<script type="module" src="/static/js/main.js">' in page
        async with http.get(served.base + "/static/js/main.js") as r:
            assert r.status == 200
            assert r.headers["Content-Type"].startswith("text/javascript")
            etag = r.headers["ETag"]
        async with http.get(
            served.base + "/static/js/main.js", headers={"If-None-Match": etag}
        ) as r:
            assert r.status == 304
        async with http.get(served.base + "/static/vendor/uPlot.iife.min.js") as r:
            assert r.status == 200
            assert (await r.text()).startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
        for path in ("/static/nope.js", "/static/../http.py", "/static/%2e%2e/hub.py"):
            async with http.get(served.base + path) as r:
                assert r.status == 404, path


async def test_a_websocket_from_another_origin_is_refused(served: Served) -> None:
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(served.ws, origin="http://evil.example")
        assert refused.value.status == 403
        async with http.ws_connect(served.ws, origin=served.base) as ws:
            assert (await receive(ws))["type"] == "snapshot"


# ------------------------------------------------------------------ the access token


@pytest.fixture
async def guarded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Served]:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    async with serving(tmp_path, token_env=TOKEN_ENV) as s:
        yield s


async def test_without_the_token_the_page_is_the_login_form_and_the_websocket_is_refused(
    guarded: Served,
) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(guarded.base + "/") as r:
            assert r.status == 401
            body = await r.text()
        assert 'action="/login"' in body
        assert TOKEN not in body
        async with http.get(guarded.base + "/static/js/main.js") as r:
            assert r.status == 401
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(guarded.ws)
        assert refused.value.status == 401
        async with http.post(
            guarded.base + "/login", data={"token": "wrong"}, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/?refused=1"
            assert COOKIE not in r.cookies
        with pytest.raises(aiohttp.WSServerHandshakeError):
            await http.ws_connect(guarded.ws, headers={"Authorization": "Bearer wrong"})


async def test_the_token_opens_a_session_whose_cookie_is_not_the_token(guarded: Served) -> None:
    jar = aiohttp.CookieJar(unsafe=True)  # unsafe: it takes cookies of an IP address
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        async with http.post(
            guarded.base + "/login", data={"token": TOKEN}, allow_redirects=False
        ) as r:
            assert r.status == 303
            assert r.headers["Location"] == "/"
            cookie = r.cookies[COOKIE]
        assert cookie.value
        assert TOKEN not in cookie.value
        assert cookie["httponly"]
        assert cookie["samesite"] == "Strict"
        async with http.get(guarded.base + "/") as r:  # the session sends the cookie
            assert r.status == 200
            assert TOKEN not in await r.text()
        async with http.ws_connect(guarded.ws) as ws:
            assert (await receive(ws))["type"] == "snapshot"
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(guarded.ws, headers={"Authorization": f"Bearer {TOKEN}"}) as ws,
    ):
        assert (await receive(ws))["type"] == "snapshot"


async def test_the_dashboard_metrics_docs_config_lists_are_served(served: Served) -> None:
    served_names = {m.removesuffix("_total") for m in await metrics(served.base)}
    listed = {m.removesuffix("_total") for m in documented_metrics()}
    dashboard = {m for m in listed if m.startswith("riskd_dashboard_")}
    assert dashboard
    assert dashboard == {m for m in served_names if m.startswith("riskd_dashboard_")}


async def test_health_and_metrics_need_no_token(guarded: Served) -> None:
    async with aiohttp.ClientSession() as http:
        for path in ("/healthz", "/metrics"):
            async with http.get(guarded.base + path) as r:
                assert r.status == 200, path


# ------------------------------------------------------------------ TLS and configuration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


async def test_tls_serves_the_page_and_the_websocket(tmp_path: Path, pki: Pki) -> None:
    async with serving(
        tmp_path, tls_cert_file=pki["server.crt"], tls_key_file=pki["server.key"]
    ) as s:
        trust = ssl.create_default_context(cafile=pki["ca.crt"])
        async with aiohttp.ClientSession() as http:
            async with http.get(s.base + "/", ssl=trust) as r:
                assert r.status == 200
            async with http.ws_connect(s.ws, ssl=trust) as ws:
                assert (await receive(ws))["type"] == "snapshot"
            with pytest.raises(aiohttp.ClientConnectorCertificateError):
                await http.get(s.base + "/", ssl=ssl.create_default_context())


async def test_with_tls_ca_file_a_client_certificate_is_required(tmp_path: Path, pki: Pki) -> None:
    async with serving(
        tmp_path,
        tls_cert_file=pki["server.crt"],
        tls_key_file=pki["server.key"],
        tls_ca_file=pki["ca.crt"],
    ) as s:
        anonymous = ssl.create_default_context(cafile=pki["ca.crt"])
        known = ssl.create_default_context(cafile=pki["ca.crt"])
        known.load_cert_chain(pki["client.crt"], pki["client.key"])
        async with aiohttp.ClientSession() as http:
            async with http.get(s.base + "/", ssl=known) as r:
                assert r.status == 200
            with pytest.raises(aiohttp.ClientError):
                async with http.get(s.base + "/", ssl=anonymous) as r:
                    await r.read()


@pytest.mark.parametrize(
    ("http", "message"),
    [
        (
            'token_env = "RISKD_TEST_UNSET_TOKEN"',
            "RISKD_TEST_UNSET_TOKEN is not set - at `$.http.token_env`",
        ),
        ('token_file = "missing.txt"', "- at `$.http.token_file`"),
        ('token_env = "A"\ntoken_file = "b"', "set token_env or token_file, not both"),
        ('tls_key_file = "k.pem"', "tls_key_file: only with tls_cert_file"),
        ('tls_cert_file = "bad.pem"', "not a usable PEM certificate or key: "),
        ("max_clients = 0", "Expected `int` >= 1 - at `$.http.max_clients`"),
    ],
)
def test_a_bad_http_key_is_a_config_error_naming_it(
    tmp_path: Path, http: str, message: str
) -> None:
    (tmp_path / "bad.pem").write_text("not a certificate\n")
    path = tmp_path / "riskd.toml"
    path.write_text(f'[http]\naddress = "127.0.0.1:0"\n{http}\n')
    with pytest.raises(ConfigError, match=None) as error:
        load_config(path)
    assert message in str(error.value)
