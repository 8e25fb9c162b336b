"""MQTT feed: ticks, quotes and fills from a broker, in riskd's JSON contract
(:mod:`feeds.json_codec`).

Fills must never be lost, so the feed keeps a persistent session: a fixed ``client_id``,
``clean_session=False`` and subscriptions at QoS 1. While the daemon is away the broker queues
the QoS 1 messages of its subscriptions and delivers them on reconnection. Each message is
acknowledged (PUBACK) only once it has been handed to the engine (a fill queued by
``put_fill``), so a message in flight when the feed stops or the connection drops is delivered
again: fills arrive at least once, and a fill ``id`` lets the engine recognise a redelivery.

Market data (ticks and quotes) is decoded and handed over in paho's message callback, so it
costs no task per message; fills, which may have to wait for room in the engine's queue, are
awaited in the feed's own loop.

The session lives as long as the broker keeps it (a broker without persistence forgets it on a
restart); the feed resubscribes after every reconnection anyway.

Errors: :func:`classify` maps aiomqtt's and the OS's exceptions to
:class:`~engine.errors.FeedConnectionError`, retryable or fatal (refused credentials, a refused
subscription). Retryable ones are retried with capped, jittered backoff; fatal ones end
:meth:`MqttFeed.run`. Bad messages are counted by reason, logged (rate-limited) and dropped.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Iterable
from typing import Annotated, Any, Final

import aiomqtt
import msgspec
from aiomqtt.exceptions import MqttConnectError

from engine.clock import Clock
from engine.constraints import NonEmptyStr, Port, PositiveFloat, PositiveInt
from engine.credentials import read_secret
from engine.errors import FeedConnectionError, FeedDecodeError
from engine.events import EventSink, Fill
from engine.instruments import InstrumentRegistry
from engine.retry import Backoff, Failure, translate
from feeds.base import DropLog, FeedStats
from feeds.json_codec import BOOK_TOPIC, FILL_TOPIC, QUOTE_TOPIC, TICK_TOPIC, JsonCodec

__all__ = ["DEFAULT_TOPICS", "MqttFeed", "MqttFeedConfig", "classify", "shard_topics"]

logger = logging.getLogger(__name__)

DEFAULT_TOPICS: Final = (
    f"{TICK_TOPIC}/#",
    f"{QUOTE_TOPIC}/#",
    f"{BOOK_TOPIC}/#",
    f"{FILL_TOPIC}/#",
)
"""Topic filters subscribed by default (below ``topic_prefix``): both layouts,
``md/quote/{instrument}`` and ``md/quote/{underlying}/{instrument}``."""


def shard_topics(underlyings: Iterable[str]) -> list[str]:
    """The topic filters of a shard that owns ``underlyings`` (docs/scaling.md): each one's
    topics of the underlying layout, and the old layout's (one level: what comes there for
    other shards is dropped by the shard's gate, counted)."""
    kinds = (TICK_TOPIC, QUOTE_TOPIC, BOOK_TOPIC, FILL_TOPIC)
    return [
        *(f"{kind}/+" for kind in kinds),
        *(f"{kind}/{u}/+" for u in sorted(underlyings) for kind in kinds),
    ]


# CONNACK reason codes a retry cannot fix (MQTT 5 numbering, which paho also uses for MQTT
# 3.1.1's return codes): unsupported protocol, client id rejected, bad user name or password,
# not authorised, banned, bad authentication method.
_FATAL_CONNACK: Final = frozenset({0x84, 0x85, 0x86, 0x87, 0x8A, 0x8C})
_SUBACK_FAILURE: Final = 0x80


class MqttFeedConfig(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    forbid_unknown_fields=True,
    tag_field="kind",
    tag="mqtt",
):
    """Configuration of an :class:`MqttFeed` (``kind = "mqtt"``).

    Attributes:
        name: the feed's name in logs, stats and errors.
        required: the daemon is not ready (``/readyz``) while this feed is disconnected or
            stale. False: an optional feed (fills or data that may never come); it counts for
            nothing in readiness, and it raises a stale-feed alert only once it has received
            something.
        host: broker host name or address.
        port: broker TCP port.
        topic_prefix: prepended to every topic and filter (``"desk1/"``); empty by default.
        topics: topic filters to subscribe to, below ``topic_prefix``.
        client_id: MQTT client identifier; fixed, so the broker keeps the session (and queues
            fills) while the daemon is away. Unique per daemon.
        qos: subscription QoS; 1 (at least once) or 2. Fills need at least 1.
        keepalive_s: MQTT keepalive; the connection is dropped after 1.5 x this of silence
            from the broker.
        timeout_s: limit of each connect, subscribe and disconnect.
        silence_timeout_s: reconnect when no message arrived for this long; None: never.
        backoff_initial_s: first reconnection delay.
        backoff_max_s: largest reconnection delay.
        username: user name; None connects anonymously.
        password_env: name of the environment variable holding the password (never the
            password itself); None: no password.
        password_file: file holding the password (line breaks at its end are dropped); at
            most one of ``password_env`` and ``password_file``, and only with ``username``.
        tls: connect over TLS (the broker's TLS listener: set ``port``, usually 8883).
        tls_ca_file: CA certificates (PEM) to verify the broker with, instead of the
            system's; ``tls`` only, like every ``tls_*`` key.
        tls_cert_file: client certificate (PEM), for brokers that require one.
        tls_key_file: the client certificate's private key (PEM, unencrypted).
        tls_verify: verify the broker's certificate and that it names ``host``; False
            encrypts without knowing whom to (tests only).

    Raises:
        ValueError: two password sources, a password without ``username``, ``tls_*`` keys
            without ``tls``, or ``tls_key_file`` without ``tls_cert_file``
            (``msgspec.ValidationError`` from ``msgspec.convert``).
    """

    name: str = "mqtt"
    required: bool = True
    host: str = "127.0.0.1"
    port: Port = 1883
    topic_prefix: str = ""
    topics: list[str] = msgspec.field(default_factory=lambda: list(DEFAULT_TOPICS))
    client_id: NonEmptyStr = "riskd"
    qos: Annotated[int, msgspec.Meta(ge=1, le=2)] = 1
    keepalive_s: PositiveInt = 30
    timeout_s: PositiveFloat = 10.0
    silence_timeout_s: PositiveFloat | None = None
    backoff_initial_s: PositiveFloat = 0.5
    backoff_max_s: PositiveFloat = 30.0
    username: str | None = None
    password_env: NonEmptyStr | None = None
    password_file: NonEmptyStr | None = None
    tls: bool = False
    tls_ca_file: NonEmptyStr | None = None
    tls_cert_file: NonEmptyStr | None = None
    tls_key_file: NonEmptyStr | None = None
    tls_verify: bool = True

    def __post_init__(self) -> None:
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("set password_env or password_file, not both")
        if (self.password_env is not None or self.password_file is not None) and (
            self.username is None
        ):
            raise ValueError("a password needs a username")
        tls = [
            k
            for k in ("tls_ca_file", "tls_cert_file", "tls_key_file")
            if getattr(self, k) is not None
        ]
        if not self.tls_verify:
            tls.append("tls_verify")
        if tls and not self.tls:
            raise ValueError(f"{', '.join(tls)}: only with tls = true")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file")


def classify(exc: BaseException, feed: str) -> Failure[FeedConnectionError] | None:
    """The :class:`~engine.errors.FeedConnectionError` for an exception of a session: the
    feed's :data:`engine.retry.Classifier`.

    The one place that decides retryable vs fatal. Fatal: a CONNACK refusing the client
    (credentials, authorisation, client id, protocol). Everything else from aiomqtt or the
    network (refused or dropped TCP connections, timeouts, a broker that went away) is
    retryable.

    Args:
        exc: what the session raised.
        feed: the feed's name.

    Returns:
        The error and whether to retry (the error's ``retryable`` says the same); None for an
        exception that is none of these (a bug: let it propagate).
    """
    retryable = True
    if isinstance(exc, MqttConnectError):
        rc = exc.rc
        code = rc if isinstance(rc, int) else getattr(rc, "value", None)
        retryable = code not in _FATAL_CONNACK
        detail = f"connection refused: {exc}"
    elif isinstance(exc, TimeoutError):  # before OSError: TimeoutError is one
        detail = f"timed out: {exc or 'no answer'}"
    elif isinstance(exc, aiomqtt.MqttError | OSError):
        detail = f"{type(exc).__name__}: {exc}"
    else:
        return None
    return Failure(FeedConnectionError(feed, detail, retryable=retryable), retryable)


class MqttFeed:
    """Reads ticks, quotes and fills from an MQTT broker into an
    :class:`~engine.events.EventSink`; implements :class:`feeds.base.Feed`.

    Args:
        config: this feed's configuration.
        registry: instruments messages may name.
        clock: receipt times (``ts_recv``) and the drop log's rate limit.
    """

    def __init__(self, config: MqttFeedConfig, registry: InstrumentRegistry, clock: Clock) -> None:
        self.name = config.name
        self.stats = FeedStats()
        self._config = config
        self._clock = clock
        self._codec = JsonCodec(registry, feed=config.name, topic_prefix=config.topic_prefix)
        self._fill_prefix = f"{config.topic_prefix}{FILL_TOPIC}/"
        self._drops = DropLog(self.stats, clock, logger)
        self._backoff = Backoff(config.backoff_initial_s, config.backoff_max_s)

    async def run(self, sink: EventSink) -> None:
        """Connect, subscribe and hand every message to ``sink`` until cancelled, reconnecting
        with backoff whenever the connection fails.

        Raises:
            FeedConnectionError: a fatal error (``retryable`` False), e.g. refused credentials.
        """
        while True:
            try:
                await self._session(sink)
            except FeedConnectionError as exc:
                if not exc.retryable:
                    logger.error("feed failed", extra={"feed": self.name, "detail": exc.detail})
                    raise
                delay_s = self._backoff.next_delay()
                logger.warning(
                    "feed reconnecting",
                    extra={
                        "feed": self.name,
                        "detail": exc.detail,
                        "delay_s": round(delay_s, 3),
                        "attempt": self._backoff.attempt,
                    },
                )
                await asyncio.sleep(delay_s)

    async def _session(self, sink: EventSink) -> None:
        """One connection: connect, subscribe, read until it fails.

        Market data is decoded and handed to ``sink`` in paho's message callback, through
        aiomqtt's own queue (its ``queue_type``): aiomqtt's message iterator costs a task and
        an ``asyncio.wait`` per message, several times the decoding. Fills, which may have to
        wait for room in the engine's queue, go through that queue to this loop."""
        cfg = self._config
        fills = self._fill_prefix
        market_data = self._market_data(sink)

        class Intake(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                topic = item.topic.value
                if topic.startswith(fills):
                    super().put_nowait(item)
                else:
                    market_data(topic, item, paho)

        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            identifier=cfg.client_id,
            clean_session=False,
            keepalive=cfg.keepalive_s,
            timeout=cfg.timeout_s,
            username=cfg.username,
            password=self._password(),
            queue_type=Intake,
            tls_params=self._tls(),
            # Hostname checking: on with verification (paho's default), off without.
            tls_insecure=not cfg.tls_verify if cfg.tls else None,
        )
        # Acknowledge each message only once the engine has it (module docstring). aiomqtt
        # does not expose paho's manual acknowledgement, so it is set on paho's client.
        paho = client._client
        paho.manual_ack_set(True)
        try:
            async with client:
                await self._subscribe(client)
                self._backoff.reset()
                self.stats.connects += 1
                self.stats.connected = True
                logger.info(
                    "feed connected",
                    extra={"feed": self.name, "host": cfg.host, "port": cfg.port},
                )
                messages = client.messages.__aiter__()
                silence_s = cfg.silence_timeout_s
                wait_s = silence_s
                while True:
                    try:
                        async with asyncio.timeout(wait_s):  # None: no limit
                            message = await anext(messages)
                    except TimeoutError:
                        quiet_s = (self._clock.now_ns() - self.stats.last_recv_ns) / 1e9
                        if silence_s is None or quiet_s >= silence_s:
                            raise FeedConnectionError(
                                self.name, f"no message for {silence_s} s"
                            ) from None
                        wait_s = silence_s - quiet_s  # market data came meanwhile
                        continue
                    wait_s = silence_s
                    fill = self._fill(message.topic.value, message.payload)
                    if fill is not None:
                        await sink.put_fill(fill)
                        self.stats.events += 1
                    paho.ack(message.mid, message.qos)
        except (aiomqtt.MqttError, OSError) as exc:
            raise translate(classify, exc, self.name) from exc
        finally:
            self.stats.connected = False

    def _market_data(self, sink: EventSink) -> Callable[[str, aiomqtt.Message, Any], None]:
        """The handler of a tick or quote, run in paho's callback (one per session, with what
        it needs bound: it runs for every message): decode, hand to ``sink``, acknowledge (QoS
        1 and 2; QoS 0 has nothing to acknowledge). Never raises (paho's read loop runs it): an
        unexpected error drops the message like a bad one, counted and logged (rate-limited)
        under the reason ``internal``."""
        stats = self.stats
        now_ns = self._clock.now_ns
        decode = self._codec.decode_market
        put = sink.put
        drop = self._drops.drop
        name = self.name

        def handle(topic: str, message: aiomqtt.Message, paho: Any) -> None:
            now = now_ns()
            stats.received += 1
            stats.last_recv_ns = now
            try:
                put(decode(topic, message.payload, now))
                stats.events += 1
            except FeedDecodeError as exc:
                drop(exc)
            except Exception as exc:
                detail = f"unexpected {type(exc).__name__}: {exc}"
                drop(FeedDecodeError(name, "internal", detail, message.payload))
            if message.qos:
                paho.ack(message.mid, message.qos)

        return handle

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        cfg = self._config
        for topic_filter in cfg.topics:
            granted = await client.subscribe(f"{cfg.topic_prefix}{topic_filter}", qos=cfg.qos)
            codes = [c if isinstance(c, int) else c.value for c in granted]
            if any(code >= _SUBACK_FAILURE for code in codes):
                raise FeedConnectionError(
                    self.name, f"subscription to {topic_filter!r} refused", retryable=False
                )
            if any(code < cfg.qos for code in codes):  # the broker caps QoS: fills may be lost
                logger.warning(
                    "subscription granted a lower QoS",
                    extra={"feed": self.name, "topic": topic_filter, "granted": codes},
                )

    def _fill(self, topic: str, payload: bytes) -> Fill | None:
        """Decode a message of a fill topic; None when it is bad (counted, logged)."""
        now = self._clock.now_ns()
        self.stats.received += 1
        self.stats.last_recv_ns = now
        try:
            return self._codec.decode_fill(topic, payload, now)
        except FeedDecodeError as exc:
            self._drops.drop(exc)
            return None

    def _password(self) -> str | None:
        """The password, read again for every connection (a rotated file is picked up).

        Raises:
            FeedConnectionError: the variable is unset or empty (fatal), the file cannot be
                read or is empty (retried: it may be being replaced).
        """
        cfg = self._config
        try:
            return read_secret(cfg.password_env, cfg.password_file)
        except ValueError as exc:
            # An unset variable stays unset; a file may be being replaced.
            fatal = cfg.password_env is not None
            raise FeedConnectionError(self.name, str(exc), retryable=not fatal) from None

    def _tls(self) -> aiomqtt.TLSParameters | None:
        """paho's TLS settings; None: plain TCP."""
        cfg = self._config
        if not cfg.tls:
            return None
        return aiomqtt.TLSParameters(
            ca_certs=cfg.tls_ca_file,  # None: the system's CA certificates
            certfile=cfg.tls_cert_file,
            keyfile=cfg.tls_key_file,
            cert_reqs=ssl.CERT_REQUIRED if cfg.tls_verify else ssl.CERT_NONE,
        )
