"""Alert delivery through Apprise (``[[notify]]``), to a real HTTP receiver run here: Apprise's
``json://`` service posts each notification to it, so the tests see exactly what a service
would be sent, and the receiver answers as told (500 once, held answers for a full queue)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest

from engine.clock import ManualClock
from engine.outputs import AlertPayload
from engine.runtime.logs import JsonFormatter
from engine.runtime.notify import Notifier, NotifyConfig
from tests.integration.test_demo import START_NS, demo_config
from tests.servers import RedisServer, http_get, running_daemon, wait_until

RISKD = Path(sys.executable).with_name("riskd")
TS_NS = 1_780_000_020_575_000_000


class Notification(msgspec.Struct, frozen=True):
    """What Apprise's ``json://`` service posts."""

    version: str
    title: str
    message: str
    type: str
    attachments: list[object]


class Receiver:
    """An HTTP server on 127.0.0.1 that records each POST and answers ``statuses`` in turn
    (then 200); while ``gate`` is clear it holds its answers."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.received: list[Notification] = []
        self.authorization: list[str | None] = []
        self.answered: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()
        self.port = 0

    async def _handle(self, request: web.Request) -> web.Response:
        self.received.append(msgspec.json.decode(await request.read(), type=Notification))
        self.authorization.append(request.headers.get("Authorization"))
        await self.gate.wait()
        status = self.statuses.pop(0) if self.statuses else 200
        self.answered.append(status)
        return web.Response(status=status)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[Receiver]:
        app = web.Application()
        app.router.add_post("/alerts", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.port = runner.addresses[0][1]
        try:
            yield self
        finally:
            self.gate.set()
            await runner.cleanup()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/alerts"


def target(url: str, **kw: object) -> NotifyConfig:
    fields = {"name": "desk", "url": url, "backoff_initial_s": 0.01, "backoff_max_s": 0.05}
    return msgspec.convert({**fields, **kw}, NotifyConfig)


def loss(state: str = "raised", ts_ns: int = TS_NS, **kw: object) -> AlertPayload:
    """The demo's loss alert, as the engine makes it."""
    fields: dict[str, object] = {
        "ts_ns": ts_ns,
        "valuation_ts_ns": ts_ns,
        "id": "demo_loss:demo",
        "alert": "demo_loss",
        "state": state,
        "severity": "critical",
        "metric": "pnl",
        "scope": "book",
        "book": "demo",
        "underlying": None,
        "expiry": None,
        "strategy": None,
        "value": -67528.2 if state == "raised" else -302.2,
        "threshold": -25000.0,
        "direction": "below",
        "unit": "USD",
    }
    return msgspec.convert({**fields, **kw}, AlertPayload)


@contextlib.asynccontextmanager
async def delivering(notifier: Notifier) -> AsyncIterator[Notifier]:
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_raise_and_a_clear_are_sent_once_each_a_repeat_is_not() -> None:
    async with Receiver().serving() as receiver:
        notifier = Notifier([target(receiver.url)])
        async with delivering(notifier):
            notifier.offer(loss())
            notifier.offer(loss())  # the same transition again
            notifier.offer(loss("cleared", TS_NS + 20 * 10**9))
            await wait_until(lambda: notifier.targets[0].sent == 2)
    assert receiver.received == [
        Notification(
            version="1.0",
            title="riskd critical alert RAISED: demo_loss:demo",
            message="pnl -67,528 USD, below -25,000 USD\nbook demo\n"
            "at 2026-05-28 20:27:00 UTC\nalert demo_loss, id demo_loss:demo",
            type="failure",
            attachments=[],
        ),
        Notification(
            version="1.0",
            title="riskd critical alert cleared: demo_loss:demo",
            message="pnl -302 USD, back within the limit (raised below -25,000 USD)\n"
            "book demo\nat 2026-05-28 20:27:20 UTC\nalert demo_loss, id demo_loss:demo",
            type="success",
            attachments=[],
        ),
    ]  # in order, the repeat (queued before the clear) never sent
    assert notifier.duplicates == 1
    desk = notifier.targets[0]
    assert (desk.sent, desk.failed, desk.retried, desk.dropped) == (2, 0, 0, 0)


async def test_at_shutdown_what_is_queued_is_sent_first(caplog: pytest.LogCaptureFixture) -> None:
    """drain(): the transitions queued when the daemon stops reach the target; one that cannot
    be sent within the time allowed is logged as left, and shutdown goes on."""
    async with Receiver().serving() as receiver:
        notifier = Notifier([target(receiver.url)])
        async with delivering(notifier):
            notifier.offer(loss())
            notifier.offer(loss("cleared", TS_NS + 20 * 10**9))
            await notifier.drain(10.0)  # nothing waited for delivery before this
            assert [n.type for n in receiver.received] == ["failure", "success"]
            assert notifier.targets[0].sent == 2
            receiver.gate.clear()  # the target stops answering
            notifier.offer(loss(ts_ns=TS_NS + 40 * 10**9))
            notifier.offer(loss("cleared", TS_NS + 60 * 10**9))
            await notifier.drain(0.2)
    left = next(r for r in caplog.records if r.msg == "notifications not sent at shutdown")
    assert left.left == {"desk": 1}  # type: ignore[attr-defined]  # extra=; one in flight


async def test_a_failed_delivery_is_retried_after_a_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Receiver([500]).serving() as receiver:
        notifier = Notifier([target(receiver.url)])
        async with delivering(notifier):
            notifier.offer(loss())
            await wait_until(lambda: notifier.targets[0].sent == 1)
    assert receiver.answered == [500, 200]
    assert receiver.received[0] == receiver.received[1]  # the same notification, again
    desk = notifier.targets[0]
    assert (desk.sent, desk.failed, desk.retried) == (1, 0, 1)
    retry = next(r for r in caplog.records if r.msg == "notification attempt failed, retrying")
    assert (retry.target, retry.alert, retry.attempt) == ("desk", "demo_loss:demo", 1)  # type: ignore[attr-defined]  # extra=
    assert 0.005 <= retry.delay_s <= 0.01  # type: ignore[attr-defined]  # the first backoff, jittered


async def test_a_target_gives_up_after_its_retries_and_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with Receiver([500, 503, 500]).serving() as receiver:
        notifier = Notifier([target(receiver.url, retries=2)])
        async with delivering(notifier):
            notifier.offer(loss())
            notifier.offer(loss("cleared", TS_NS + 1))
            desk = notifier.targets[0]
            await wait_until(lambda: desk.sent + desk.failed == 2)
    assert receiver.answered == [500, 503, 500, 200]
    assert [n.type for n in receiver.received] == ["failure"] * 3 + ["success"]
    assert (desk.sent, desk.failed, desk.retried) == (1, 1, 2)
    failed = [r for r in caplog.records if r.msg == "notification failed"]
    assert [(r.alert, r.attempts) for r in failed] == [("demo_loss:demo", 3)]  # type: ignore[attr-defined]  # extra=


async def test_a_full_queue_drops_and_counts_without_waiting() -> None:
    async with Receiver().serving() as receiver:
        notifier = Notifier([target(receiver.url, queue=1)])
        receiver.gate.clear()  # the first delivery is held at the receiver
        async with delivering(notifier):
            notifier.offer(loss(ts_ns=TS_NS))
            await wait_until(lambda: len(receiver.received) == 1)
            notifier.offer(loss("cleared", TS_NS + 1))  # queued
            notifier.offer(loss(ts_ns=TS_NS + 2))  # the queue is full: dropped
            desk = notifier.targets[0]
            assert (desk.dropped, desk.queue.qsize()) == (1, 1)
            registry = CollectorRegistry(auto_describe=False)
            registry.register(notifier)
            metrics = generate_latest(registry).decode()
            receiver.gate.set()
            await wait_until(lambda: notifier.targets[0].sent == 2)
    assert 'riskd_dropped_notifications_total{target="desk"} 1.0' in metrics
    assert 'riskd_notification_queue{target="desk"} 1.0' in metrics
    assert [n.type for n in receiver.received] == ["failure", "success"]


async def test_severities_and_clears_choose_what_a_target_is_sent() -> None:
    async with Receiver().serving() as receiver:
        pager = target(receiver.url, name="pager", severities=["critical"], clears=False)
        notifier = Notifier([pager])
        async with delivering(notifier):
            notifier.offer(loss(severity="warning"))
            notifier.offer(loss("cleared", TS_NS + 1))
            notifier.offer(loss(ts_ns=TS_NS + 2))
            await wait_until(lambda: notifier.targets[0].sent == 1)
            assert notifier.targets[0].queue.qsize() == 0
    assert [n.title for n in receiver.received] == ["riskd critical alert RAISED: demo_loss:demo"]


async def test_a_secret_url_comes_from_the_environment_and_never_reaches_the_logs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The URL (with a password) is read from a variable; riskd's log, at DEBUG (where Apprise
    and urllib3 log URLs), shows Apprise's privacy form of it only."""
    lines = io.StringIO()
    handler = logging.StreamHandler(lines)  # as riskd's log (engine.runtime.logs)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        async with Receiver([500]).serving() as receiver:
            secret = f"json://riskd:S3cr3tPw@127.0.0.1:{receiver.port}/alerts"
            monkeypatch.setenv("RISKD_TEST_NOTIFY_URL", secret)
            fields = {"name": "desk", "url_env": "RISKD_TEST_NOTIFY_URL", "backoff_initial_s": 0.01}
            notifier = Notifier([msgspec.convert(fields, NotifyConfig)])
            async with delivering(notifier):
                notifier.offer(loss())
                await wait_until(lambda: notifier.targets[0].sent == 1)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert receiver.authorization == ["Basic cmlza2Q6UzNjcjN0UHc="] * 2  # riskd:S3cr3tPw
    log = [msgspec.json.decode(line) for line in lines.getvalue().splitlines()]
    retry = next(e for e in log if e["msg"] == "notification attempt failed, retrying")
    assert retry["url"].startswith(f"json://riskd:****@127.0.0.1:{receiver.port}/alerts?")
    assert "S3cr3tPw" not in lines.getvalue()
    assert not [e for e in log if e["logger"].startswith(("apprise", "urllib3"))]


# ---------------------------------------------------------------- configuration, from the CLI


def _riskd(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, **(env or {})},
    )


UNKNOWN = "not a URL Apprise knows (see its list of services)"


@pytest.mark.parametrize(
    ("table", "env", "named"),
    [
        ('url_env = "UNSET_X"', {}, "UNSET_X is not set - at `$.notify[0].url_env`"),
        ('url_file = "no.url"', {}, "no.url: No such file or directory - at `$.notify[0].url_fi"),
        ('url = "nope://tok3n-s3cret"', {}, f"{UNKNOWN} - at `$.notify[0].url`"),
        ('url_env = "X"', {"X": "nope://tok3n-s3cret"}, f"{UNKNOWN} - at `$.notify[0].url_env`"),
        ('url = "json://h/x"\nurl_env = "X"', {}, "set exactly one of url, url_env, url_file"),
        ('url = "json://h/x"\nseverities = ["loud"]', {}, "`$.notify[0].severities[0]`"),
        ('url = "json://h/x"\n[[notify]]\nname = "desk"\nurl = "json://h/y"', {},
         "duplicate notify name 'desk' - at `$.notify[1].name`"),
    ],
)  # fmt: skip
def test_a_bad_target_stops_start_up_naming_its_key_never_the_url(
    tmp_path: Path, table: str, env: dict[str, str], named: str
) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text(f'[[notify]]\nname = "desk"\n{table}\n')
    out = _riskd("check-config", "-c", str(path), env=env)  # `run` loads it the same way
    assert out.returncode == 2, out.stderr
    assert named in out.stderr, out.stderr
    assert "tok3n-s3cret" not in out.stderr + out.stdout
    assert "Traceback" not in out.stderr


def test_run_with_a_target_whose_variable_is_unset_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text('[[notify]]\nname = "desk"\nurl_env = "RISKD_TEST_UNSET"\n')
    out = _riskd("run", "-c", str(path), "--view", "off")
    assert out.returncode == 2, out.stderr
    assert "RISKD_TEST_UNSET is not set - at `$.notify[0].url_env`" in out.stderr


def test_check_config_shows_targets_without_their_secrets(tmp_path: Path) -> None:
    (tmp_path / "pager.url").write_text("json://riskd:FileS3cret@127.0.0.1:9/page\n")
    path = tmp_path / "riskd.toml"
    path.write_text(
        '[[notify]]\nname = "chat"\nurl = "json://riskd:InlineS3cret@127.0.0.1:9/chat"\n'
        '[[notify]]\nname = "desk"\nurl_env = "RISKD_TEST_URL"\nseverities = ["critical"]\n'
        '[[notify]]\nname = "pager"\nurl_file = "pager.url"\n'
    )
    out = _riskd("check-config", "-c", str(path), env={"RISKD_TEST_URL": "json://u:EnvS3cret@h/x"})
    assert out.returncode == 0, out.stderr
    report = msgspec.json.decode(out.stdout)
    chat, desk, pager = report["config"]["notify"]
    assert chat["url"].startswith("json://riskd:****@127.0.0.1:9/chat")
    assert (desk["url_env"], desk["severities"]) == ("RISKD_TEST_URL", ["critical"])
    assert pager["url_file"] == str(tmp_path / "pager.url")
    assert "S3cret" not in out.stdout + out.stderr
    inline = target("json://riskd:InlineS3cret@127.0.0.1:9/chat")
    assert "InlineS3cret" not in repr(inline)
    assert "url='***'" in repr(inline)


# ---------------------------------------------------------------- the daemon, end to end


async def test_the_demo_notifies_its_alerts_raise_and_clear(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """config/demo.toml with a ``[[notify]]`` target and the HTTP endpoint: the scripted rally's
    alert is sent raised, then cleared, and /metrics counts both."""
    async with Receiver().serving() as receiver:
        path = demo_config(tmp_path, redis_server.url, unique)
        target = f'[[notify]]\nname = "desk"\nurl = "{receiver.url}"\n'
        path.write_text(f"{path.read_text()}\n{target}")  # its [http] serves /metrics
        clock = ManualClock(START_NS)
        async with running_daemon(path, clock) as daemon:
            await wait_until(lambda: daemon.notifier.targets[0].sent == 2, timeout_s=120)
            assert daemon.http is not None
            status, body = await http_get(daemon.http.port, "/metrics")
    assert [n.title for n in receiver.received] == [
        "riskd critical alert RAISED: demo_loss:demo",
        "riskd critical alert cleared: demo_loss:demo",
    ]
    assert receiver.received[0].message.startswith("pnl -")
    assert status == 200
    assert b'riskd_notifications_sent_total{target="desk"} 2.0' in body
    assert b'riskd_dropped_notifications_total{target="desk"} 0.0' in body
