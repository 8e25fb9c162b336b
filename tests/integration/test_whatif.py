"""What-if over HTTP and from the CLI against a running daemon (engine.runtime.whatif): a real
daemon (sim feed, real Redis, moves from the demo history) answers ``POST /what-if``."""

from __future__ import annotations

import asyncio
import socket
import ssl
from pathlib import Path

import aiohttp
import pytest

from engine.outputs import Trade
from engine.runtime.cli import main
from engine.runtime.whatif import parse_trade, post_what_if
from tests.integration.test_schema import CALL, EXPIRING, _config
from tests.integration.test_security import _make_pki
from tests.servers import RedisServer, running_daemon, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_what_if_over_http_and_from_the_cli(
    tmp_path: Path, redis_server: RedisServer, unique: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _config(tmp_path, redis_server.url, unique)
    address = f"127.0.0.1:{free_port()}"
    path.write_text(path.read_text() + f'\n[http]\naddress = "{address}"\n')
    async with running_daemon(path) as daemon:
        await wait_until(lambda: daemon.http is not None and daemon.http.port > 0)
        await wait_until(lambda: bool(daemon.portfolio.priced([CALL]).ok.all()))
        none = [Trade(book="main", instrument=CALL, quantity=0.0)]
        status, got = await asyncio.to_thread(post_what_if, address, none)
        assert status == 200, got
        assert [s["book"] for s in got["scopes"]] == ["main", "*"]
        for scope in got["scopes"]:
            for r in scope["risk"]:
                assert r["status"] == "ok", r
                assert r["incremental_var"] == 0.0
                assert r["incremental_es"] == 0.0
            assert scope["incremental_margin_im"] == 0.0
        sell = [Trade(book="main", instrument=CALL, quantity=-5.0),
                Trade(book="new", instrument=EXPIRING, quantity=1.0)]  # fmt: skip
        status, got = await asyncio.to_thread(post_what_if, address, sell)
        assert status == 200, got
        assert [s["book"] for s in got["scopes"]] == ["main", "new", "*"]
        assert got["scopes"][1]["risk"][0]["var_before"] == 0.0
        assert got["scopes"][0]["risk"][2]["incremental_var"] != 0.0
        status, got = await asyncio.to_thread(post_what_if, address, [])  # no trades: refused
        assert status == 400
        assert "trades" in got["error"]

        code = await asyncio.to_thread(
            main, ["what-if", "-c", str(path), "--trade", f"main:{CALL}:0"]
        )
        assert code == 0
        assert '"incremental_var": 0.0' in capsys.readouterr().out
    assert main(["what-if", "-c", str(path), "--trade", "main:no-qty"]) == 2
    assert main(["what-if", "-c", str(path), "--trade", f"main:{CALL}:1"]) == 1  # no daemon


async def test_what_if_needs_the_token_and_speaks_tls(
    tmp_path: Path,
    redis_server: RedisServer,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With ``[http] token_env`` the daemon answers only the token (the dashboard's); the CLI
    sends it from the same config, over HTTPS trusting the daemon's certificate."""
    pki = _make_pki(tmp_path_factory.mktemp("pki"))
    monkeypatch.setenv("RISKD_TEST_WHATIF_TOKEN", "s3cret-token")
    path = _config(tmp_path, redis_server.url, unique)
    address = f"127.0.0.1:{free_port()}"
    path.write_text(
        path.read_text()
        + f'\n[http]\naddress = "{address}"\ntoken_env = "RISKD_TEST_WHATIF_TOKEN"\n'
        + f'tls_cert_file = "{pki["server.crt"]}"\ntls_key_file = "{pki["server.key"]}"\n'
    )
    url = f"https://{address}/what-if"
    trust = ssl.create_default_context(cafile=pki["ca.crt"])
    body = {"trades": [{"book": "main", "instrument": CALL, "quantity": 0.0}]}
    async with running_daemon(path) as daemon, aiohttp.ClientSession() as http:
        await wait_until(lambda: daemon.http is not None and daemon.http.port > 0)
        await wait_until(lambda: bool(daemon.portfolio.priced([CALL]).ok.all()))
        async with http.post(url, json=body, ssl=trust) as r:
            assert r.status == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = {"Authorization": "Bearer not-the-token"}
        async with http.post(url, json=body, ssl=trust, headers=wrong) as r:
            assert r.status == 401
        bearer = {"Authorization": "Bearer s3cret-token"}
        async with http.post(url, data=b"trades=x", ssl=trust, headers=bearer) as r:
            assert r.status == 415  # what a cross-site form could send
        async with http.post(url, json=body, ssl=trust, headers=bearer) as r:
            assert r.status == 200
            assert (await r.json())["scopes"][0]["book"] == "main"
        code = await asyncio.to_thread(
            main, ["what-if", "-c", str(path), "--trade", f"main:{CALL}:0"]
        )
        assert code == 0, capsys.readouterr().err
        assert '"incremental_var": 0.0' in capsys.readouterr().out
        monkeypatch.setenv("RISKD_TEST_WHATIF_TOKEN", "another")  # the CLI's token is wrong
        code = await asyncio.to_thread(
            main, ["what-if", "-c", str(path), "--trade", f"main:{CALL}:0"]
        )
        assert code == 1
        assert "access token" in capsys.readouterr().out


def test_a_trade_parses_from_the_right() -> None:
    assert parse_trade("desk:BTC-PERPETUAL:-1.5") == Trade(
        book="desk", instrument="BTC-PERPETUAL", quantity=-1.5
    )
    with pytest.raises(ValueError, match="BOOK:INSTRUMENT:QTY"):
        parse_trade("desk:1")
    with pytest.raises(ValueError, match="finite"):
        parse_trade("desk:X:nan")
