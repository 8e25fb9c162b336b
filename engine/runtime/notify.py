"""Alert transitions to chat and paging services (Slack, Telegram, e-mail, PagerDuty, ...)
through Apprise (``[[notify]]``, docs/alerts.md).

Each ``[[notify]]`` table is a *target*: an Apprise URL (given in the file, or, when it holds a
secret, read from an environment variable or a file), the severities it takes, and its retry
policy. :class:`Notifier` is what the daemon wires: :meth:`Notifier.offer` takes every alert
transition the publisher makes (raised or cleared) on the event loop and only queues it; the
``notify`` task (:meth:`Notifier.run`) delivers them, each target on its own, the Apprise call
in a worker thread. Delivery never holds the engine back:

- each target has a bounded queue; a transition that finds it full is dropped and counted
  (``riskd_dropped_notifications``), with a warning at most every 10 s;
- a transition already offered (the same alert id, state and ``ts_ns``) is not sent again: the
  key de-duplicates as the alert bot's does (examples/alert_bot.py), over the last 1024;
- a failed delivery (Apprise says it was not sent, or it took longer than ``timeout_s``) is
  retried up to ``retries`` times after a capped, jittered exponential backoff
  (:class:`engine.retry.Backoff`), then given up (logged ``notification failed``), and the
  target goes on with the next.

Secrets: the URL of a target is read with :func:`engine.credentials.read_secret` and never
logged: logs, ``check-config`` and the metrics name a target by its ``name`` and show its URL
as Apprise's privacy form (tokens and passwords elided). Apprise's own log records can hold a
URL whole ("Unparseable URL ..."), so its logger is kept out of riskd's.

Transitions still queued when riskd stops are not sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final, Literal

import msgspec
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from engine.constraints import NonEmptyStr, NonNegativeInt, PositiveFloat, PositiveInt
from engine.credentials import read_secret
from engine.errors import ConfigError
from engine.outputs import AlertPayload, Severity
from engine.retry import Backoff

if TYPE_CHECKING:
    import apprise

__all__ = [
    "DRAIN_TIMEOUT_S",
    "Notifier",
    "NotifyConfig",
    "Target",
    "check_targets",
    "message",
    "privacy_url",
]

logger = logging.getLogger(__name__)

DRAIN_TIMEOUT_S: Final = 10.0
"""At shutdown, how long the transitions still queued may take to be sent (docs/alerts.md)."""

SEEN_MAX: Final = 1024
"""Transitions remembered for de-duplication."""
DROP_LOG_INTERVAL_S: Final = 10.0
"""A target's full queue is logged at most this often (every drop is counted)."""
_SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")

Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_.\-]+$")]


class NotifyConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[[notify]]``: one service alert transitions are sent to, through Apprise.

    Attributes:
        name: the target's name in logs and metrics: letters, digits, ``_``, ``.``, ``-``;
            unique among the targets.
        url: the Apprise URL (``json://host:port/path``, ``mailto://...``), when it holds no
            secret: it is printed by ``check-config`` (in Apprise's privacy form).
        url_env: the name of an environment variable holding the URL (with its tokens).
        url_file: a file holding the URL (relative to the config file; line breaks at its end
            are dropped). Exactly one of ``url``, ``url_env`` and ``url_file``.
        severities: the severities sent; the others are not.
        clears: whether ``cleared`` transitions are sent too.
        queue: transitions waiting to be sent, at most; one more is dropped and counted.
        retries: attempts after a failed one, before the transition is given up.
        backoff_initial_s: the first retry's delay; it doubles, with jitter ...
        backoff_max_s: ... up to this.
        timeout_s: an attempt that takes longer has failed (Apprise's own connect and read
            timeouts apply within it).
    """

    name: Name
    url: NonEmptyStr | None = None
    url_env: NonEmptyStr | None = None
    url_file: NonEmptyStr | None = None
    severities: Annotated[list[Severity], msgspec.Meta(min_length=1)] = msgspec.field(
        default_factory=lambda: list(_SEVERITIES)
    )
    clears: bool = True
    queue: PositiveInt = 1000
    retries: NonNegativeInt = 5
    backoff_initial_s: PositiveFloat = 1.0
    backoff_max_s: PositiveFloat = 60.0
    timeout_s: PositiveFloat = 30.0

    def __post_init__(self) -> None:
        given = [k for k in ("url", "url_env", "url_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"notify target {self.name!r}: set exactly one of url, url_env, url_file"
            )
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError(f"notify target {self.name!r}: backoff_initial_s > backoff_max_s")

    def __repr__(self) -> str:  # a literal url may still carry a password: never shown
        fields = ", ".join(
            f"{name}={'***' if name == 'url' and self.url else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"NotifyConfig({fields})"

    def secret_url(self) -> str:
        """The Apprise URL, read now (from the variable or file when so configured).

        Raises:
            ValueError: the variable is unset or empty, the file unreadable or empty (named,
                never the URL).
        """
        url = self.url if self.url is not None else read_secret(self.url_env, self.url_file)
        if url is None:  # __post_init__ lets no target without one through
            raise ValueError(f"notify target {self.name!r}: no url")
        return url


def _quiet_apprise(name: str) -> None:
    """Keep Apprise's logger (``name``) and urllib3's (its HTTP client's) out of riskd's: their
    records can hold a URL's secrets ("Unparseable URL ...", a webhook's path)."""
    for logger_name in (name, "urllib3"):
        log = logging.getLogger(logger_name)
        log.propagate = False
        if not log.handlers:
            log.addHandler(logging.NullHandler())  # else Python's last-resort handler prints


def _instantiate(url: str) -> apprise.Apprise | None:
    """An Apprise client for ``url``, or None when Apprise does not know the URL."""
    import apprise

    client = apprise.Apprise()
    with _loading(apprise.LOGGER_NAME):
        return client if client.add(url) else None


def privacy_url(url: str) -> str:
    """``url`` as Apprise shows it safely (tokens and passwords elided), or ``***`` when
    Apprise cannot parse it."""
    import apprise

    with _loading(apprise.LOGGER_NAME):
        plugin = apprise.Apprise.instantiate(url)
    if plugin is None:
        return "***"
    return str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]  # apprise: unannotated


@contextlib.contextmanager
def _loading(logger_name: str) -> Iterator[None]:
    """Around a call that may load Apprise's plugins (the first, about 0.5 s; on the thread
    that builds the daemon): its logger kept out of riskd's, and its plugins' deprecation
    warnings at import (``imghdr``, Python 3.11) not shown to riskd's users."""
    _quiet_apprise(logger_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


def check_targets(targets: Sequence[NotifyConfig], config_path: Path) -> list[NotifyConfig]:
    """The ``[[notify]]`` tables with their ``url_file`` resolved against the config file's
    folder, once it is known that each URL can be read and that Apprise knows it.

    Raises:
        ConfigError: a duplicate name, an unset variable, an unreadable file, a URL Apprise
            does not know; named by its key (``$.notify[0].url_env``), never by the URL.
    """
    source = str(config_path)
    names = [t.name for t in targets]
    out = []
    for i, t in enumerate(targets):
        where = f"$.notify[{i}]"
        if names.index(t.name) != i:
            raise ConfigError(source, f"duplicate notify name {t.name!r} - at `{where}.name`")
        if t.url_file is not None and not Path(t.url_file).is_absolute():
            t = msgspec.structs.replace(t, url_file=str(config_path.parent / t.url_file))
        key = "url" if t.url is not None else "url_env" if t.url_env is not None else "url_file"
        try:
            url = t.secret_url()
        except ValueError as exc:
            raise ConfigError(source, f"{exc} - at `{where}.{key}`") from None
        if _instantiate(url) is None:
            detail = "not a URL Apprise knows (see its list of services)"
            raise ConfigError(source, f"{detail} - at `{where}.{key}`")
        out.append(t)
    return out


def message(p: AlertPayload) -> tuple[str, str, str]:
    """The notification of a transition: title, body (plain text) and Apprise's notify type
    (a raise: ``failure`` when critical, else ``warning`` or ``info``; a clear: ``success``)."""
    raised = p.state == "raised"
    title = f"riskd {p.severity} alert {'RAISED' if raised else 'cleared'}: {p.id}"
    figure = f"{p.metric} {_number(p.value)} {p.unit}"
    if p.threshold is not None:
        limit = f"{p.direction} {_number(p.threshold)} {p.unit}"
        figure += f", {limit}" if raised else f", back within the limit (raised {limit})"
    scope = [
        f"{name} {value}"
        for name, value in (
            ("feed", p.feed if isinstance(p.feed, str) else None),
            ("book", p.book),
            ("underlying", p.underlying),
            ("expiry", p.expiry),
            ("strategy", p.strategy),
        )
        if value is not None
    ]
    at = datetime.fromtimestamp(p.ts_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    body = "\n".join([figure, ", ".join(scope), f"at {at}", f"alert {p.alert}, id {p.id}"])
    kind = {"critical": "failure", "warning": "warning", "info": "info"}[p.severity]
    return title, body, kind if raised else "success"


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.4g}"


@dataclass(slots=True)
class Target:
    """One ``[[notify]]`` target while the daemon runs: its queue, client and counters."""

    config: NotifyConfig
    client: apprise.Apprise
    shown_url: str  # Apprise's privacy form, for logs
    queue: asyncio.Queue[AlertPayload] = field(init=False)
    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    _drop_logged: float = -1e9

    def __post_init__(self) -> None:
        self.queue = asyncio.Queue(self.config.queue)

    def put(self, p: AlertPayload) -> None:
        """Queue ``p``; a full queue drops it (counted, logged at most every 10 s)."""
        try:
            self.queue.put_nowait(p)
        except asyncio.QueueFull:
            self.dropped += 1
            now = time.monotonic()
            if now - self._drop_logged >= DROP_LOG_INTERVAL_S:
                self._drop_logged = now
                logger.warning(
                    "notification dropped: queue full",
                    extra={"target": self.config.name, "alert": p.id, "dropped": self.dropped},
                )

    async def run(self) -> None:
        """Deliver the queued transitions, in order, until cancelled."""
        while True:
            p = await self.queue.get()
            try:
                await self.deliver(p)
            finally:
                self.queue.task_done()

    async def deliver(self, p: AlertPayload) -> bool:
        """Send ``p``, retrying with backoff; whether it was sent."""
        cfg = self.config
        title, body, kind = message(p)
        backoff = Backoff(cfg.backoff_initial_s, cfg.backoff_max_s)
        extra = {"target": cfg.name, "url": self.shown_url, "alert": p.id, "state": p.state}
        for attempt in range(1, cfg.retries + 2):
            if await self._attempt(title, body, kind):
                self.sent += 1
                return True
            if attempt > cfg.retries:
                break
            delay_s = backoff.next_delay()
            self.retried += 1
            logger.warning(
                "notification attempt failed, retrying",
                extra={**extra, "attempt": attempt, "delay_s": round(delay_s, 3)},
            )
            await asyncio.sleep(delay_s)
        self.failed += 1
        logger.error("notification failed", extra={**extra, "attempts": cfg.retries + 1})
        return False

    async def _attempt(self, title: str, body: str, kind: str) -> bool:
        try:
            async with asyncio.timeout(self.config.timeout_s):
                sent = await asyncio.to_thread(
                    self.client.notify, body=body, title=title, notify_type=kind
                )
        except TimeoutError:  # the thread ends on Apprise's own timeouts
            return False
        except Exception:  # a plugin's bug: this attempt failed, the target goes on
            logger.exception("notification error", extra={"target": self.config.name})
            return False
        return bool(sent)


class Notifier:
    """Every ``[[notify]]`` target (module docstring); :meth:`offer` is the publisher's hook.

    Args:
        configs: the targets, as :func:`check_targets` returned them.

    Raises:
        ConfigError: a target's URL cannot be read or is not Apprise's (as in
            :func:`check_targets`).
    """

    def __init__(self, configs: Sequence[NotifyConfig]) -> None:
        self.targets: list[Target] = []
        self.duplicates = 0
        self._seen: OrderedDict[tuple[str, str, int], None] = OrderedDict()
        for i, cfg in enumerate(configs):  # read again: a variable or file may have changed
            try:
                url = cfg.secret_url()
            except ValueError as exc:
                raise ConfigError("[[notify]]", f"{exc} - at `$.notify[{i}]`") from None
            client = _instantiate(url)
            if client is None:
                raise ConfigError("[[notify]]", f"not a URL Apprise knows - at `$.notify[{i}]`")
            self.targets.append(Target(cfg, client, privacy_url(url)))

    def offer(self, p: AlertPayload) -> None:
        """Queue ``p`` for each target that takes it (on the event loop; never waits)."""
        if not self.targets:
            return
        key = (p.id, p.state, p.ts_ns)
        if key in self._seen:
            self.duplicates += 1
            return
        self._seen[key] = None
        if len(self._seen) > SEEN_MAX:
            self._seen.popitem(last=False)
        for t in self.targets:
            if p.severity in t.config.severities and (p.state == "raised" or t.config.clears):
                t.put(p)

    async def run(self) -> None:
        """Deliver to every target, each on its own task, until cancelled."""
        if not self.targets:
            return
        async with asyncio.TaskGroup() as tg:
            for t in self.targets:
                tg.create_task(t.run(), name=f"notify:{t.config.name}")

    async def drain(self, timeout_s: float) -> None:
        """At shutdown (:meth:`run` still running): wait until every transition queued has
        been delivered or given up, at most ``timeout_s``; log what is left unsent."""
        try:
            async with asyncio.timeout(timeout_s):
                for t in self.targets:
                    await t.queue.join()
        except TimeoutError:
            left = {t.config.name: t.queue.qsize() for t in self.targets if t.queue.qsize()}
            logger.warning(
                "notifications not sent at shutdown",
                extra={"timeout_s": timeout_s, "left": left},
            )

    def collect(self) -> Iterator[Metric]:
        """The targets' counters, for ``/metrics`` (a prometheus-client collector)."""
        families: list[tuple[str, str, Literal["counter", "gauge"]]] = [
            ("riskd_notifications_sent", "Alert transitions sent, by target.", "counter"),
            ("riskd_notifications_failed", "Transitions given up after retries.", "counter"),
            ("riskd_notification_retries", "Attempts that failed and were retried.", "counter"),
            ("riskd_dropped_notifications", "Transitions dropped: queue full.", "counter"),
            ("riskd_notification_queue", "Transitions waiting to be sent.", "gauge"),
        ]
        for name, doc, kind in families:
            family = (CounterMetricFamily if kind == "counter" else GaugeMetricFamily)(
                name, doc, labels=["target"]
            )
            for t in self.targets:
                family.add_metric([t.config.name], _figure(t, name))
            yield family


def _figure(t: Target, metric: str) -> float:
    return {
        "riskd_notifications_sent": t.sent,
        "riskd_notifications_failed": t.failed,
        "riskd_notification_retries": t.retried,
        "riskd_dropped_notifications": t.dropped,
        "riskd_notification_queue": t.queue.qsize(),
    }[metric]
