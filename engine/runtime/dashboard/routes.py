"""The dashboard's routes on the daemon's HTTP endpoint (docs/dashboard.md):

- ``GET /``: the page (``static/index.html``); ``GET /static/{path}``: its modules, styles and
  the vendored charting library, served from memory (read once from the package).
- ``GET /ws``: the WebSocket. First a snapshot, then updates (:mod:`.hub`); the browser sends
  nothing (anything it sends is ignored). A send that waits longer than ``send_timeout_s`` drops
  the browser (close code 1013); the page reconnects and gets a snapshot again.
- ``POST /login``: with an access token configured, the login form's target: the right token
  sets a session cookie (HttpOnly, SameSite=Strict; Secure over TLS) holding a value derived from
  the token, never the token, and redirects to ``/``.

Read-only: no route changes anything in the daemon. With a token, ``/``, ``/static/*`` and
``/ws`` need the session cookie or ``Authorization: Bearer <token>``
(:mod:`engine.runtime.access`); without either the page is
the login form (401) and the WebSocket is refused (401). A WebSocket whose ``Origin`` is not the
page's own host is refused (403): another site cannot read the dashboard with the browser's
cookie. ``/healthz``, ``/readyz`` and ``/metrics`` stay open (counters only).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Final
from urllib.parse import urlsplit

from aiohttp import WSCloseCode, WSMsgType, web

from engine.runtime.access import ACCESS, COOKIE
from engine.runtime.dashboard.hub import Client, DashboardHub, TooManyClientsError
from engine.runtime.http import HttpConfig

__all__ = ["COOKIE", "add_routes"]

logger = logging.getLogger(__name__)

_TYPES: Final = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    "": "text/plain; charset=utf-8",  # LICENSE
}
_CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS: Final = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_CLOSE_TIMEOUT_S: Final = 1.0
_LOGIN_FILES: Final = frozenset({"app.css", "js/login.js", "favicon.svg"})
"""What the login form needs: served without the token."""


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True, slots=True)
class _Dashboard:
    """What the handlers read: the hub, the limits, the files."""

    hub: DashboardHub
    config: HttpConfig
    files: dict[str, _File]


_DASHBOARD: Final = web.AppKey("dashboard", _Dashboard)


def add_routes(app: web.Application, hub: DashboardHub, config: HttpConfig) -> None:
    """Add the dashboard's routes to ``app`` (before it runs; its access check is
    ``app[ACCESS]``)."""
    app[_DASHBOARD] = _Dashboard(hub, config, _static_files())
    app.router.add_get("/", _index)
    app.router.add_get("/static/{path:.+}", _static)
    app.router.add_post("/login", _login)
    app.router.add_get("/ws", _websocket)


def _static_files() -> dict[str, _File]:
    """Every file under ``static/``, by its path there (``js/main.js``)."""
    files: dict[str, _File] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = f"{prefix}{child.name}"
            if child.is_dir():
                walk(child, f"{name}/")
            elif not child.name.startswith("."):
                body = child.read_bytes()
                suffix = "." + child.name.rpartition(".")[2] if "." in child.name else ""
                etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
                files[name] = _File(body, _TYPES.get(suffix, "application/octet-stream"), etag)

    walk(resources.files("engine.runtime.dashboard") / "static", "")
    return files


def _file(request: web.Request, f: _File, status: int = 200) -> web.Response:
    if status == 200 and request.headers.get("If-None-Match") == f.etag:
        return web.Response(status=304, headers={**_HEADERS, "ETag": f.etag})
    return web.Response(
        status=status,
        body=f.body,
        headers={**_HEADERS, "Content-Type": f.content_type, "ETag": f.etag},
    )


async def _index(request: web.Request) -> web.Response:
    d = request.app[_DASHBOARD]
    if not request.app[ACCESS].allowed(request):
        return _file(request, d.files["login.html"], status=401)
    return _file(request, d.files["index.html"])


async def _static(request: web.Request) -> web.Response:
    d = request.app[_DASHBOARD]
    f = d.files.get(request.match_info["path"])
    if f is None:
        raise web.HTTPNotFound
    path = request.match_info["path"]
    if path not in _LOGIN_FILES and not request.app[ACCESS].allowed(request):
        raise web.HTTPUnauthorized
    return _file(request, f)


async def _login(request: web.Request) -> web.Response:
    d = request.app[_DASHBOARD]
    access = request.app[ACCESS]
    form = await request.post()
    given = form.get("token")
    if access.session is None:
        raise web.HTTPSeeOther("/")
    if not isinstance(given, str) or not access.is_token(given):
        logger.warning("dashboard login refused", extra={"remote": request.remote})
        raise web.HTTPSeeOther("/?refused=1", headers=_HEADERS)
    response = web.Response(status=303, headers={**_HEADERS, "Location": "/"})
    response.set_cookie(
        COOKIE, access.session, httponly=True, samesite="Strict", secure=d.config.tls, path="/"
    )
    return response


async def _websocket(request: web.Request) -> web.StreamResponse:
    d = request.app[_DASHBOARD]
    if not request.app[ACCESS].allowed(request):
        raise web.HTTPUnauthorized
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        logger.warning("dashboard websocket refused: foreign origin", extra={"origin": origin})
        raise web.HTTPForbidden
    try:
        client, snapshot = d.hub.connect()
    except TooManyClientsError:
        raise web.HTTPServiceUnavailable(text="too many dashboard clients\n") from None
    ws = web.WebSocketResponse(
        heartbeat=max(d.config.send_timeout_s, 1.0),
        compress=False,  # deflate per browser would cost the daemon's loop CPU
        writer_limit=d.config.client_buffer_kib * 1024,
        max_msg_size=4096,  # the browser sends nothing
        timeout=_CLOSE_TIMEOUT_S,
    )
    try:
        await ws.prepare(request)
        await _serve(ws, client, snapshot, d.config.send_timeout_s)
    except* ConnectionError:  # the browser went away mid-send
        pass
    except* TimeoutError:
        d.hub.gone.slow_drops += 1
        logger.info(
            "dashboard client dropped: send timed out",
            extra={"remote": request.remote, "timeout_s": d.config.send_timeout_s},
        )
        await _close(ws, request)
    finally:
        d.hub.disconnect(client)
    return ws


async def _serve(
    ws: web.WebSocketResponse, client: Client, snapshot: bytes, timeout_s: float
) -> None:
    """Send the snapshot, then updates as they come, until the browser goes."""
    async with asyncio.TaskGroup() as tg:
        sender = tg.create_task(_send(ws, client, snapshot, timeout_s), name="dashboard:send")
        async for _ in ws:  # reads close, ping and pong frames; the browser sends no data
            pass
        sender.cancel()


async def _send(ws: web.WebSocketResponse, client: Client, first: bytes, timeout_s: float) -> None:
    data: bytes | None = first
    while True:
        if data is not None:
            async with asyncio.timeout(timeout_s):
                await ws.send_frame(data, WSMsgType.TEXT)
            client.updates_sent += 1
            client.bytes_sent += len(data)
        await client.wake.wait()
        client.wake.clear()
        data = client.take()


async def _close(ws: web.WebSocketResponse, request: web.Request) -> None:
    """Close a stalled browser's WebSocket; abort the connection if even that stalls."""
    try:
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await ws.close(code=WSCloseCode.TRY_AGAIN_LATER, message=b"too slow")
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
