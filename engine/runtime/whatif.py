"""``POST /what-if`` on the daemon's HTTP server, and the ``riskd what-if`` client that calls it
(docs/risk.md#what-if): the incremental VaR, ES and margin of proposed trades against the
running daemon's book and moves. Read-only: nothing is filled or published."""

from __future__ import annotations

import asyncio
import json
import math
import ssl
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any, Final, cast

import msgspec
from aiohttp import web

from engine.outputs import Trade, WhatIfPayload, WhatIfRequest
from engine.risk.whatif import Added, what_if
from engine.runtime.access import ACCESS

if TYPE_CHECKING:
    from engine.runtime.http import HttpConfig
    from engine.runtime.risk_task import RiskTask

__all__ = ["WHAT_IF_PATH", "add_what_if", "client_tls", "parse_trade", "post_what_if"]

WHAT_IF_PATH: Final = "/what-if"
_DECODER: Final = msgspec.json.Decoder(WhatIfRequest)
_RISK: Final = web.AppKey("risk", object)


async def run_what_if(risk: RiskTask, trades: list[Trade]) -> WhatIfPayload:
    """Copy the books and price the trades' instruments on the event loop (outside a full
    reprice), compute in a worker thread.

    Raises:
        ValueError: an instrument that is an index (it cannot be held).
    """
    p = risk.portfolio
    async with risk.valuing:
        now = risk.clock.now_ns()
        books = p.books_risk()
        names = [t.instrument for t in trades]
        priced = p.priced(names)
        insts = [risk.registry.get(n) for n in names]
        unds = [i.underlying if i else "" for i in insts]
        index = [p.index_price(i.index) if i else math.nan for i in insts]
        valuation = p.valuation_ns
    added = Added(trades, priced, unds, index)
    return await asyncio.to_thread(what_if, books, added, risk.history, risk.config, now, valuation)


async def _handler(request: web.Request) -> web.Response:
    if not request.app[ACCESS].allowed(request):
        return web.json_response(
            {"error": "the [http] access token is required (Authorization: Bearer <token>)"},
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="riskd"'},
        )
    if request.content_type != "application/json":  # a cross-site form cannot send JSON
        return web.json_response({"error": "send Content-Type: application/json"}, status=415)
    risk = cast("RiskTask", request.app[_RISK])
    try:
        body = _DECODER.decode(await request.read())
        payload = await run_what_if(risk, body.trades)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.Response(body=msgspec.json.encode(payload), content_type="application/json")


def add_what_if(app: web.Application, risk: RiskTask) -> None:
    """Serve ``POST /what-if`` on ``app``: JSON ``{"trades": [{"book", "instrument",
    "quantity"}, ...]}`` in, a :class:`~engine.outputs.WhatIfPayload` out; ``{"error": ...}``
    with 400 on a bad request, 401 without the ``[http]`` access token when one is set
    (:mod:`engine.runtime.access`), 415 when the body is not declared JSON."""
    app[_RISK] = risk
    app.router.add_post(WHAT_IF_PATH, _handler)


def client_tls(config: HttpConfig) -> ssl.SSLContext | None:
    """How ``riskd what-if`` reaches a daemon serving HTTPS (None: plain HTTP): the usual
    certificate checks, trusting the daemon's own ``tls_cert_file`` as well as the system's
    authorities (a self-signed certificate is enough). A daemon that asks for a client
    certificate (``tls_ca_file``) cannot be reached this way."""
    if config.tls_cert_file is None:
        return None
    context = ssl.create_default_context(cafile=config.tls_cert_file)
    context.load_default_certs()
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # trust the leaf it serves
    return context


def parse_trade(text: str) -> Trade:
    """``BOOK:INSTRUMENT:QTY`` as a trade (the instrument may hold ``:``, the book not).

    Raises:
        ValueError: not of that form, or QTY not a finite number.
    """
    book, sep, rest = text.partition(":")
    instrument, sep2, qty = rest.rpartition(":")
    if not (sep and sep2 and book and instrument):
        raise ValueError(f"--trade {text!r}: expected BOOK:INSTRUMENT:QTY")
    quantity = float(qty)
    if not math.isfinite(quantity):
        raise ValueError(f"--trade {text!r}: QTY must be a finite number")
    return Trade(book=book, instrument=instrument, quantity=quantity)


def post_what_if(
    address: str,
    trades: list[Trade],
    token: str | None = None,
    tls: ssl.SSLContext | None = None,
    timeout_s: float = 60.0,
) -> tuple[int, Any]:
    """POST the trades to a running daemon's ``[http] address`` (with its access ``token``;
    over HTTPS with ``tls``); its status and JSON answer."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(  # noqa: S310  # http or https only
        f"{'https' if tls else 'http'}://{address}{WHAT_IF_PATH}",
        data=msgspec.json.encode(WhatIfRequest(trades=trades)),
        headers=headers,
        method="POST",
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout_s, context=tls) as resp:  # noqa: S310
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")
