"""Security against real servers: Redis AUTH as the least-privilege ACL user of
docs/security.md over TLS with client certificates, MQTT with a password over TLS with client
certificates, secrets from environment variables and files and never shown.

The CA and the certificates are generated here with the ``openssl`` command; redis-server and
mosquitto are Debian's. Every secret is random, so finding it anywhere is a leak.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiomqtt
import msgspec
import orjson
import pytest
import redis.asyncio as aioredis

from engine.clock import ManualClock
from engine.errors import ConfigError, FeedConnectionError, SinkError
from engine.instruments import InstrumentRegistry
from engine.outputs import SCHEMA_VERSION, BookExposure
from engine.runtime.clock import LiveClock
from engine.runtime.config import load_config, redacted
from engine.runtime.logs import JsonFormatter
from engine.runtime.redis_sink import RedisConfig, RedisSink
from feeds.mqtt import MqttFeed, MqttFeedConfig
from tests.factories import payload
from tests.servers import MosquittoServer, RedisServer, http_get, running_daemon, wait_until

ROOT = Path(__file__).parents[2]
RISKD = Path(sys.executable).with_name("riskd")
TS = 1_732_400_000_123  # ms
ADMIN_PASSWORD = "admin-" + secrets.token_hex(8)  # the test's own Redis user, not the daemon's
PUBLISHER_PASSWORD = "publisher-" + secrets.token_hex(8)  # the test's MQTT publisher
REDIS_ENV = "RISKD_TEST_REDIS_PASSWORD"  # the names of variables
MQTT_ENV = "RISKD_TEST_MQTT_PASSWORD"
MQTT_WRONG_ENV = "RISKD_TEST_MQTT_WRONG"


# ------------------------------------------------------------------ certificates


@dataclass(frozen=True)
class Pki:
    """A CA, certificates it signed, and a second CA nobody trusts."""

    dir: Path

    def __getitem__(self, name: str) -> str:
        """``pki["ca.crt"]``: the path of a file, as a string."""
        return str(self.dir / name)


def _openssl(cwd: Path, *args: str) -> None:
    binary = shutil.which("openssl")
    if binary is None:
        raise RuntimeError("openssl not found: apt install openssl")
    subprocess.run([binary, *args], cwd=cwd, check=True, capture_output=True)  # noqa: S603


def _make_pki(d: Path) -> Pki:
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    for ca in ("ca", "other-ca"):
        _openssl(
            d, "req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.crt", "-days", "2",
            "-subj", f"/CN=riskd test {ca}",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip
    leaves = {
        "server": "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth",
        "elsewhere": "subjectAltName=DNS:elsewhere.invalid\nextendedKeyUsage=serverAuth",
        "client": "extendedKeyUsage=clientAuth",
    }
    for name, ext in leaves.items():
        (d / f"{name}.ext").write_text(
            f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}\n"
        )
        _openssl(d, "req", "-new", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=riskd test {name}")  # fmt: skip
        _openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-days", "2", "-out", f"{name}.crt",
                 "-extfile", f"{name}.ext")  # fmt: skip
    return Pki(d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return _make_pki(tmp_path_factory.mktemp("pki"))


# ------------------------------------------------------------------ servers


def _doc_block(first: Callable[[str], bool]) -> list[str]:
    """The lines of a code block of docs/security.md, from the one line ``first`` selects to
    the end of its block: the tests run under the documented ACLs."""
    lines = (ROOT / "docs" / "security.md").read_text(encoding="utf-8").splitlines()
    (i,) = [i for i, line in enumerate(lines) if first(line)]
    return lines[i : i + lines[i:].index("```")]


def _redis_acl_line() -> str:
    (line,) = _doc_block(lambda line: line.startswith("user riskd reset "))
    return line


def daemon_acl(prefix: str, password: str) -> str:
    """The Redis ACL line of docs/security.md for ``prefix`` and ``password``."""
    line = _redis_acl_line()
    assert " >PASSWORD " in line
    assert line.count("risk:*") == 2
    return line.replace(">PASSWORD", f">{password}").replace("risk:*", f"{prefix}:*")


def acl_commands() -> set[str]:
    """The commands the documented ACL grants."""
    return {rule[1:] for rule in _redis_acl_line().split() if rule.startswith("+")}


class TlsRedis(RedisServer):
    """redis-server on a TLS port only (client certificates required), users from an ACL
    file: ``default`` off, ``admin`` (the test's) allowed everything, and ``users``."""

    def __init__(self, pki: Pki, users: list[str], server: str = "server") -> None:
        super().__init__()
        self.pki = pki
        self.server = server
        acl = ["user default off", f"user admin on >{ADMIN_PASSWORD} ~* &* +@all", *users]
        (self.dir / "users.acl").write_text("\n".join(acl) + "\n")

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        p = self.pki
        return [
            *super()._argv(),
            "--port", "0",  # no plain TCP: the last --port wins
            "--tls-port", str(self.port),
            "--tls-cert-file", p[f"{self.server}.crt"],
            "--tls-key-file", p[f"{self.server}.key"],
            "--tls-ca-cert-file", p["ca.crt"],
            "--tls-auth-clients", "yes",
            "--aclfile", str(self.dir / "users.acl"),
        ]  # fmt: skip

    def admin(self) -> aioredis.Redis:
        """A client as ``admin``, over TLS with the client certificate."""
        return aioredis.Redis.from_url(
            self.url,
            username="admin",
            password=ADMIN_PASSWORD,
            ssl_ca_certs=self.pki["ca.crt"],
            ssl_certfile=self.pki["client.crt"],
            ssl_keyfile=self.pki["client.key"],
        )


class TlsMosquitto(MosquittoServer):
    """mosquitto with one TLS listener (client certificates required), a password file and
    an ACL file: ``riskd`` with the documented ACL below ``prefix``, ``publisher`` may write
    there."""

    def __init__(self, pki: Pki, prefix: str, riskd_password: str) -> None:
        super().__init__()
        self.pki = pki
        passwd = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        if not Path(passwd).exists():
            raise RuntimeError("mosquitto_passwd not found: apt install mosquitto")
        for i, (user, password) in enumerate(
            [("riskd", riskd_password), ("publisher", PUBLISHER_PASSWORD)]
        ):
            create = ("-c",) if i == 0 else ()
            subprocess.run(  # noqa: S603 - fixed argv of a Debian binary
                [passwd, *create, "-b", str(self.dir / "passwd"), user, password],
                check=True,
                capture_output=True,
            )
        riskd = [
            line.replace("desk1/", f"{prefix}/")
            for line in _doc_block(lambda line: line == "user riskd")
        ]
        (self.dir / "acl").write_text(
            "\n".join([*riskd, "user publisher", f"topic write {prefix}/#"]) + "\n"
        )

    def _argv(self) -> list[str]:
        argv = super()._argv()
        p = self.pki
        conf = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous false",
            "persistence false",
            f"password_file {self.dir / 'passwd'}",
            f"acl_file {self.dir / 'acl'}",
            f"cafile {p['ca.crt']}",
            f"certfile {p['server.crt']}",
            f"keyfile {p['server.key']}",
            "require_certificate true",
        ]
        if os.geteuid() == 0:  # else mosquitto drops to its own user, who cannot read the keys
            conf.append("user root")
        (self.dir / "mosquitto.conf").write_text("\n".join(conf) + "\n")
        return argv

    def tls(self) -> aiomqtt.TLSParameters:
        p = self.pki
        return aiomqtt.TLSParameters(
            ca_certs=p["ca.crt"], certfile=p["client.crt"], keyfile=p["client.key"]
        )


async def _publish(broker: TlsMosquitto, messages: list[tuple[str, dict[str, Any]]]) -> None:
    async with aiomqtt.Client(
        "127.0.0.1",
        broker.port,
        username="publisher",
        password=PUBLISHER_PASSWORD,
        tls_params=broker.tls(),
    ) as client:
        for topic, payload in messages:
            await client.publish(topic, orjson.dumps(payload), qos=1)


# ------------------------------------------------------------------ helpers


def _assert_absent(where: str, text: str, *secrets_: str) -> None:
    for secret in secrets_:
        assert secret not in text, f"a secret in {where}"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every captured record as the daemon writes it (JSON) and with all its attributes."""
    formatter = JsonFormatter()
    return "\n".join(f"{formatter.format(r)} {r.__dict__!r}" for r in caplog.records)


async def _eventually(check: Callable[[], Any], what: str, timeout_s: float = 20.0) -> Any:
    """Poll the coroutine function ``check`` until it returns something true; return that."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            while not (last := await check()):  # noqa: ASYNC110 - polls Redis: no event
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"{what}: never happened (last: {last!r})") from None
    return last


def _copy_tls(pki: Pki, dest: Path) -> None:
    dest.mkdir()
    for name in ("ca.crt", "client.crt", "client.key", "other-ca.crt"):
        shutil.copy(pki[name], dest / name)


# ------------------------------------------------------------------ end to end


async def test_daemon_under_the_acl_over_tls_publishes_and_takes_a_fill(
    pki: Pki,
    tmp_path: Path,
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The daemon authenticates to Redis as the documented ACL user (password from the
    environment) over TLS with a client certificate, and to mosquitto with a password (from a
    file) over TLS with a client certificate. It runs a full cycle: exposures, risk families,
    an alert raised before the first connection (so the active-alerts hash is rebuilt with
    RENAME), an alert raised and cleared (HSET, HDEL), the heartbeat, /readyz. Redis refuses
    nothing (ACL LOG empty) and every command the ACL grants is used; no secret shows in the
    logs, the heartbeat, /metrics, /readyz, the config's repr or check-config."""
    redis_password = "redis-" + secrets.token_hex(12)
    mqtt_password = "mqtt-" + secrets.token_hex(12)
    monkeypatch.setenv(REDIS_ENV, redis_password)
    (tmp_path / "mqtt-password").write_text(mqtt_password + "\n")  # a final newline is dropped
    _copy_tls(pki, tmp_path / "tls")
    (tmp_path / "positions.csv").write_text(
        "book,instrument,quantity,avg_price\nmain,BTC-PERPETUAL,-100000,60000\n"
    )
    redis_server = TlsRedis(pki, [daemon_acl(unique, redis_password)])
    broker = TlsMosquitto(pki, unique, mqtt_password)
    path = tmp_path / "riskd.toml"
    path.write_text(
        f"""
[redis]
url = "{redis_server.url}"
prefix = "{unique}"
username = "riskd"
password_env = "RISKD_TEST_REDIS_PASSWORD"
tls_ca_file = "tls/ca.crt"
tls_cert_file = "tls/client.crt"
tls_key_file = "tls/client.key"
min_interval_ms = 20
backoff_initial_s = 0.05
backoff_max_s = 0.5

[portfolio]
positions = "positions.csv"

[engine]
cycle_interval_ms = 10
full_reprice_interval_s = 0.2
feed_stale_after_s = 60

[risk]
var_interval_s = 0.2
stress_interval_s = 0.2
margin_interval_s = 0.2

[http]
address = "127.0.0.1:0"

[view]
enabled = "off"

[[feeds]]
kind = "mqtt"
name = "md"
port = {broker.port}
topic_prefix = "{unique}/"
client_id = "{unique}-riskd"
backoff_initial_s = 0.05
backoff_max_s = 0.5
username = "riskd"
password_file = "mqtt-password"
tls = true
tls_ca_file = "tls/ca.crt"
tls_cert_file = "tls/client.crt"
tls_key_file = "tls/client.key"

[[alerts]]
name = "held"
metric = "n_positions"
scope = "book"
above = 0

[[alerts]]
name = "short"
metric = "delta_usd"
scope = "book"
below = -50000.0
"""
    )
    caplog.set_level(logging.DEBUG)
    with redis_server, broker:
        admin = redis_server.admin()
        try:
            async with running_daemon(path) as daemon:
                await wait_until(lambda: daemon.sink.stats.connected, timeout_s=30)
                await wait_until(lambda: daemon.feeds[0].stats.connected, timeout_s=30)
                # raised by the start-up cycle, before the sink's first connection
                active = f"{unique}:alerts:active"
                assert await _eventually(lambda: admin.hexists(active, "held:main"), "held")

                tick = {"instrument": "btc_usd", "price": 60000.0, "ts": TS}
                perp = {"instrument": "BTC-PERPETUAL", "price": 60000.0, "ts": TS}
                await _publish(
                    broker,
                    [
                        (f"{unique}/md/tick/btc_usd", tick),
                        (f"{unique}/md/tick/BTC-PERPETUAL", perp),
                    ],
                )

                async def book(want: float) -> bool:
                    raw = await admin.hget(f"{unique}:snapshot", "main")
                    return raw is not None and orjson.loads(raw)["delta_usd"] == want

                await _eventually(lambda: book(-100000.0), "the book's delta")
                await _eventually(lambda: admin.hexists(active, "short:main"), "short raised")

                fill = {"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 100000.0}
                fill |= {"price": 60000.0, "id": f"{unique}-f1", "ts": TS}
                await _publish(broker, [(f"{unique}/fills/main", fill)])
                await _eventually(lambda: book(0.0), "the fill applied")
                await _eventually(
                    lambda: _not(admin.hexists(active, "short:main")), "short cleared"
                )
                for family in ("var", "stress", "margin"):
                    snapshot = f"{unique}:{family}:snapshot"
                    await _eventually(functools.partial(admin.hexists, snapshot, "main"), family)

                assert daemon.http is not None
                status, ready = await http_get(daemon.http.port, "/readyz")
                assert status == 200, ready
                _, metrics = await http_get(daemon.http.port, "/metrics")
                heartbeat = await admin.get(f"{unique}:heartbeat")
                assert isinstance(heartbeat, bytes)
                assert orjson.loads(heartbeat)["v"] == SCHEMA_VERSION

                # sufficient: nothing refused; minimal: every command granted was used (by
                # the daemon: the commands of the test's own client prove nothing)
                assert await admin.acl_log() == []
                stats = await admin.info("commandstats")
                ours = {"hexists", "hget", "acl|log"}  # only the test's client sends these
                own_calls = {"get": 1, "info": 0}  # the test's client's of commands both send

                def used(c: str) -> bool:
                    calls = int(stats.get(f"cmdstat_{c}", {}).get("calls", 0))
                    return c not in ours and calls > own_calls.get(c, 0)

                unused = {c for c in acl_commands() if not used(c)}
                assert not unused, f"granted but not shown to be used: {unused}"
                assert daemon.sink.stats.errors == 0
                assert daemon.feeds[0].stats.events >= 3
        finally:
            await admin.aclose()

    config = load_config(path)
    logs = _logged(caplog)
    assert "redis sink connected" in logs
    for where, text in [
        ("the logs", logs),
        ("the heartbeat", heartbeat.decode()),
        ("/metrics", metrics.decode()),
        ("/readyz", ready.decode()),
        ("repr(config)", repr(config)),
        ("the redacted config", json.dumps(redacted(config), default=str)),
    ]:
        _assert_absent(where, text, redis_password, mqtt_password)
    out = await asyncio.to_thread(
        subprocess.run,
        [str(RISKD), "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    _assert_absent("check-config", out.stdout + out.stderr, redis_password, mqtt_password)
    shown = json.loads(out.stdout)["config"]
    assert shown["redis"]["password_env"] == REDIS_ENV
    assert shown["feeds"][0]["password_file"] == str(tmp_path / "mqtt-password")
    assert shown["redis"]["tls_ca_file"] == str(tmp_path / "tls" / "ca.crt")


async def _not(awaitable: Any) -> bool:
    return not await awaitable


# ------------------------------------------------------------------ Redis failures


def _sink(url: str, prefix: str, **overrides: Any) -> RedisSink:
    fields: dict[str, Any] = {
        "url": url,
        "prefix": prefix,
        "heartbeat_ttl_s": 2.0,
        "timeout_s": 1.0,
        "backoff_initial_s": 0.02,
        "backoff_max_s": 0.1,
    }
    fields.update(overrides)
    return RedisSink(RedisConfig(**fields), LiveClock())


@pytest.fixture
def acl_redis(pki: Pki, unique: str) -> Iterator[tuple[TlsRedis, str]]:
    """A TLS Redis with the daemon's ACL user for prefix ``unique``, and its password."""
    password = "redis-" + secrets.token_hex(12)
    with TlsRedis(pki, [daemon_acl(unique, password)]) as server:
        yield server, password


async def test_a_wrong_password_is_fatal_and_not_shown(
    pki: Pki,
    acl_redis: tuple[TlsRedis, str],
    unique: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, password = acl_redis
    wrong = "wrong-" + secrets.token_hex(12)
    (tmp_path / "pw").write_text(wrong)
    tls = {"tls_ca_file": pki["ca.crt"], "tls_cert_file": pki["client.crt"]}
    tls["tls_key_file"] = pki["client.key"]
    sink = _sink(server.url, unique, username="riskd", password_file=str(tmp_path / "pw"), **tls)
    sink.publish("main", payload(BookExposure, book="main", ts_ns=TS * 1_000_000))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(SinkError, match="AuthenticationError") as info:
            async with asyncio.timeout(10):
                await sink.run()
    finally:
        await sink.aclose()
    _assert_absent("the error", str(info.value), wrong)
    _assert_absent("the logs", _logged(caplog), wrong)
    assert "invalid username-password pair" in str(info.value)

    (tmp_path / "pw").write_text(password + "\n")
    good = _sink(server.url, unique, username="riskd", password_file=str(tmp_path / "pw"), **tls)
    good.publish("main", payload(BookExposure, book="main", ts_ns=TS * 1_000_000))
    try:
        await good.flush()  # raises SinkError if refused
    finally:
        await good.aclose()
    assert good.stats.connected


@pytest.mark.parametrize(
    ("tls", "cause"),
    [
        # the server's CA is not the one riskd trusts
        (
            {"tls_ca_file": "other-ca.crt", "tls_cert_file": "client.crt"},
            "CERTIFICATE_VERIFY_FAILED",
        ),
        # no CA file: the system's CAs, which do not include the test's
        ({"tls_cert_file": "client.crt"}, "CERTIFICATE_VERIFY_FAILED"),
        # no client certificate: the server drops the connection after the handshake
        ({"tls_ca_file": "ca.crt"}, "ConnectionError"),
    ],
    ids=["untrusted-ca", "system-cas", "no-client-cert"],
)
async def test_a_tls_failure_is_retried_and_logged_without_the_secret(
    pki: Pki,
    acl_redis: tuple[TlsRedis, str],
    unique: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    tls: dict[str, str],
    cause: str,
) -> None:
    server, password = acl_redis
    monkeypatch.setenv(REDIS_ENV, password)
    files = {k: pki[v] for k, v in tls.items()}
    if "tls_cert_file" in files:
        files["tls_key_file"] = pki["client.key"]
    sink = _sink(server.url, unique, username="riskd", password_env=REDIS_ENV, **files)
    sink.publish("main", payload(BookExposure, book="main", ts_ns=TS * 1_000_000))
    caplog.set_level(logging.DEBUG)
    task = asyncio.create_task(sink.run())
    try:
        await wait_until(lambda: sink.stats.errors >= 3 or task.done())
        assert not task.done(), "a TLS failure must not stop the sink"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sink.aclose()
    retries = [
        r for r in caplog.records if r.getMessage() == "redis sink write failed, reconnecting"
    ]
    assert retries
    assert cause in str(retries[0].__dict__["error"])
    assert not sink.stats.connected
    _assert_absent("the logs", _logged(caplog), password)


async def test_host_names_are_checked_unless_tls_verify_is_off(
    pki: Pki, unique: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate for another host is refused; ``tls_verify = false`` accepts it (and any)."""
    password = "redis-" + secrets.token_hex(12)
    monkeypatch.setenv(REDIS_ENV, password)
    with TlsRedis(pki, [daemon_acl(unique, password)], server="elsewhere") as server:
        common = {
            "tls_cert_file": pki["client.crt"],
            "tls_key_file": pki["client.key"],
            "username": "riskd",
            "password_env": REDIS_ENV,
        }
        checked = _sink(server.url, unique, tls_ca_file=pki["ca.crt"], **common)
        unchecked = _sink(server.url, unique, tls_verify=False, **common)
        try:
            caplog.set_level(logging.WARNING)
            checked.publish("main", payload(BookExposure, book="main", ts_ns=TS * 1_000_000))
            task = asyncio.create_task(checked.run())
            await wait_until(lambda: checked.stats.errors >= 1)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            assert "IP address mismatch" in _logged(caplog)
            assert not checked.stats.connected
            unchecked.publish("main", payload(BookExposure, book="main", ts_ns=TS * 1_000_000))
            await unchecked.flush()  # raises SinkError if refused
            assert unchecked.stats.connected
        finally:
            await checked.aclose()
            await unchecked.aclose()


# ------------------------------------------------------------------ MQTT failures


def _feed(broker: TlsMosquitto, prefix: str, **overrides: Any) -> MqttFeed:
    fields: dict[str, Any] = {
        "kind": "mqtt",
        "port": broker.port,
        "topic_prefix": f"{prefix}/",
        "client_id": f"{prefix}-riskd",
        "timeout_s": 2.0,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "username": "riskd",
        "tls": True,
        "tls_ca_file": broker.pki["ca.crt"],
        "tls_cert_file": broker.pki["client.crt"],
        "tls_key_file": broker.pki["client.key"],
    }
    fields.update(overrides)
    config = msgspec.convert(fields, MqttFeedConfig)
    return MqttFeed(config, InstrumentRegistry(), ManualClock(TS * 1_000_000))


class _Sink:
    """An EventSink keeping what it gets."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    def put(self, event: Any) -> None:
        self.events.append(event)

    async def put_fill(self, fill: Any) -> None:
        self.events.append(fill)


# paho 2.2 leaves the socket of a failed TLS handshake to the garbage collector
# (Client._ssl_wrap_socket does not close it), which closes it and warns.
@pytest.mark.filterwarnings("ignore:unclosed <ssl.SSLSocket:ResourceWarning")
async def test_mqtt_password_and_tls(
    pki: Pki,
    unique: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With the password and the CA: connected, subscribed, a fill arrives. A wrong password is
    fatal; ``tls_verify = false`` connects without the CA; an untrusted CA or plain TCP is
    retried; no password shows in the logs."""
    password = "mqtt-" + secrets.token_hex(12)
    wrong = "wrong-" + secrets.token_hex(12)
    monkeypatch.setenv(MQTT_ENV, password)
    monkeypatch.setenv(MQTT_WRONG_ENV, wrong)
    caplog.set_level(logging.DEBUG)
    with TlsMosquitto(pki, unique, password) as broker:
        feed = _feed(broker, unique, password_env=MQTT_ENV)
        sink = _Sink()
        task = asyncio.create_task(feed.run(sink))
        try:
            await wait_until(lambda: feed.stats.connected or task.done())
            fill = {"book": "main", "instrument": "BTC-PERPETUAL", "quantity": 10.0}
            fill["price"] = 60000.0
            await _publish(broker, [(f"{unique}/fills/main", {**fill, "id": "f1", "ts": TS})])
            await wait_until(lambda: len(sink.events) == 1 or task.done())
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        refused = _feed(broker, unique, password_env=MQTT_WRONG_ENV)
        with pytest.raises(FeedConnectionError, match="Not authorized") as info:
            async with asyncio.timeout(10):
                await refused.run(_Sink())
        assert info.value.retryable is False

        # tls_verify = false: no CA given, the test's CA unknown to the system, yet connected
        unverified = _feed(
            broker, unique, password_env=MQTT_ENV, tls_ca_file=None, tls_verify=False
        )
        task = asyncio.create_task(unverified.run(_Sink()))
        try:
            await wait_until(lambda: unverified.stats.connected or task.done())
            assert not task.done()
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        plain = {"tls": False, "tls_ca_file": None, "tls_cert_file": None, "tls_key_file": None}
        cases: list[tuple[dict[str, Any], str]] = [
            ({"tls_ca_file": pki["other-ca.crt"]}, "CERTIFICATE_VERIFY_FAILED"),
            (plain, ""),  # plain MQTT to the TLS listener
        ]
        for overrides, cause in cases:
            caplog.clear()
            untrusted = _feed(broker, unique, password_env=MQTT_ENV, **overrides)
            retries = await _retrying(untrusted, caplog)
            assert cause in str(retries[0].__dict__["detail"])
            assert untrusted.stats.connects == 0
    _assert_absent("the logs", _logged(caplog), password, wrong)


async def _retrying(feed: MqttFeed, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Run ``feed`` until it has logged two reconnections, and return those log records; fail
    if it stops instead."""

    def retries() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "feed reconnecting"]

    task = asyncio.create_task(feed.run(_Sink()))
    try:
        await wait_until(lambda: len(retries()) >= 2 or task.done())
        assert not task.done(), "a connection failure must not stop the feed"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    return retries()


# ------------------------------------------------------------------ start-up checks


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "riskd.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize(
    ("body", "files", "named", "says"),
    [
        (
            '[redis]\npassword_env = "RISKD_TEST_UNSET"\n',
            {},
            "`$.redis.password_env`",
            "environment variable RISKD_TEST_UNSET is not set",
        ),
        (
            '[redis]\npassword_env = "RISKD_TEST_EMPTY"\n',
            {},
            "`$.redis.password_env`",
            "environment variable RISKD_TEST_EMPTY is empty",
        ),
        ('[redis]\npassword_file = "nope"\n', {}, "`$.redis.password_file`", "cannot read"),
        ('[redis]\npassword_file = "pw"\n', {"pw": "\n"}, "`$.redis.password_file`", "empty"),
        (
            '[redis]\nurl = "rediss://h/0"\ntls_ca_file = "ca.crt"\n',
            {},
            "`$.redis.tls_ca_file`",
            "No such file",
        ),
        (
            '[redis]\nurl = "rediss://h/0"\ntls_ca_file = "ca.crt"\n',
            {"ca.crt": "not a certificate\n"},
            "`$.redis.tls_ca_file`",
            "not a usable PEM certificate",
        ),
        (
            '[redis]\nurl = "rediss://h/0"\ntls_cert_file = "c.crt"\ntls_key_file = "k.key"\n',
            {"c.crt": "-", "k.key": "-"},
            "`$.redis.tls_cert_file`",
            "not a usable PEM certificate or key",
        ),
        (
            '[[feeds]]\nkind = "mqtt"\nusername = "u"\npassword_file = "pw"\n',
            {},
            "`$.feeds[0].password_file`",
            "cannot read",
        ),
        (
            '[[feeds]]\nkind = "mqtt"\ntls = true\ntls_cert_file = "c.crt"\n',
            {},
            "`$.feeds[0].tls_cert_file`",
            "cannot read",
        ),
    ],
)
def test_an_unreadable_secret_or_certificate_stops_start_up_naming_the_key(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    body: str,
    files: dict[str, str],
    named: str,
    says: str,
) -> None:
    monkeypatch.delenv("RISKD_TEST_UNSET", raising=False)
    monkeypatch.setenv("RISKD_TEST_EMPTY", "")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(_write(tmp_path, body))
    assert named in info.value.detail
    assert says in info.value.detail


def test_an_encrypted_client_key_is_refused(pki: Pki, tmp_path: Path) -> None:
    """It would prompt for its passphrase on the terminal (paho, redis-py): refused at start."""
    _openssl(
        tmp_path, "pkey", "-in", pki["client.key"], "-out", "enc.key", "-aes256",
        "-passout", "pass:" + secrets.token_hex(8),
    )  # fmt: skip
    body = (
        f'[redis]\nurl = "rediss://h/0"\ntls_cert_file = "{pki["client.crt"]}"\n'
        'tls_key_file = "enc.key"\n'
    )
    with pytest.raises(ConfigError, match=r"`\$\.redis\.tls_cert_file`"):
        load_config(_write(tmp_path, body))


def test_riskd_run_without_its_secret_exits_2_naming_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path, '[redis]\npassword_env = "RISKD_TEST_UNSET"\n')
    env = {k: v for k, v in os.environ.items() if k != "RISKD_TEST_UNSET"}
    for command in ("run", "check-config"):
        out = subprocess.run(  # noqa: S603 - our own console script, fixed arguments
            [str(RISKD), command, "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env=env,
        )
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert "`$.redis.password_env`" in out.stderr
        assert "RISKD_TEST_UNSET is not set" in out.stderr
        assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    ("redis", "says"),
    [
        ({"password_env": "A", "password_file": "b"}, "not both"),
        ({"url": "redis://:s3cr3t@h/0", "password_env": "A"}, "url holds a password"),
        ({"url": "redis://h/0?password=s3cr3t", "password_file": "b"}, "url holds a password"),
        ({"url": "redis://u@h/0", "username": "v"}, "url names a user"),
        ({"tls_ca_file": "ca.crt"}, "only with a rediss:// url"),
        ({"tls_verify": False}, "only with a rediss:// url"),
        ({"url": "rediss://h/0", "tls_key_file": "k"}, "tls_key_file needs tls_cert_file"),
        ({"url": "rediss://h/0?ssl_cert_reqs=none"}, "use the tls_* keys"),
        ({"password_env": ""}, "length"),
    ],
)
def test_redis_credential_keys_are_checked(redis: dict[str, Any], says: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=r"at `\$") as info:
        msgspec.convert({"redis": redis}, type=_RedisOnly)
    assert says in str(info.value)
    assert "s3cr3t" not in str(info.value)


class _RedisOnly(msgspec.Struct, forbid_unknown_fields=True):
    redis: RedisConfig


@pytest.mark.parametrize(
    ("feed", "says"),
    [
        ({"username": "u", "password_env": "A", "password_file": "b"}, "not both"),
        ({"password_env": "A"}, "a password needs a username"),
        ({"tls_ca_file": "ca.crt"}, "only with tls = true"),
        ({"tls_verify": False}, "only with tls = true"),
        ({"tls": True, "tls_key_file": "k"}, "tls_key_file needs tls_cert_file"),
    ],
)
def test_mqtt_credential_keys_are_checked(feed: dict[str, Any], says: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=says):
        msgspec.convert({"kind": "mqtt", **feed}, MqttFeedConfig)


def test_repr_and_check_config_redact_a_password_in_the_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Still allowed, and never shown: not in repr(config), nor in the redacted config."""
    secret = "url-" + secrets.token_hex(12)
    path = _write(tmp_path, f'[redis]\nurl = "rediss://riskd:{secret}@h:6380/0"\n')
    config = load_config(path)
    _assert_absent("repr(config)", repr(config), secret)
    _assert_absent("str(config)", str(config), secret)
    _assert_absent("the redacted config", json.dumps(redacted(config)), secret)
    assert redacted(config)["redis"]["url"] == "rediss://riskd:***@h:6380/0"
