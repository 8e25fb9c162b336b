"""The Redis sink's link to the server: its settings (``[redis]``, :class:`RedisConfig`), its
key names, its client (one server or a Redis Cluster), and what a new connection learns about
the server.

Key layout (docs/redis.md#redis-cluster-and-shards). Every key of one daemon starts with its
*base*:

- a daemon that is not sharded, on one server: the prefix (``risk``), as always;
- on a Redis Cluster (``[redis] cluster = true``): the prefix as a hash tag, ``{risk}``;
- a shard (``[cluster]``), on one server or a cluster: ``{risk:NAME}`` with the shard's name.

Within a base every key hashes to one slot (the tag), so a shard's keys live on one node:
its scripts and its pipelines never span slots, and its restart marker
(``{base}:writer``) sits on the node that holds its data. A tagged daemon also lists itself in
the directory hash ``{prefix}:shards`` (field: the shard's name, ``all`` when not sharded;
value: its base as a JSON string), rewritten with every heartbeat, so a consumer finds every
shard's keys from the prefix alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit

import msgspec
import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engine.constraints import NonEmptyStr, NonNegativeInt, PositiveFloat, PositiveInt
from engine.credentials import read_secret
from engine.errors import ConfigError
from engine.outputs import FAMILIES

__all__ = [
    "UNSHARDED",
    "Keys",
    "RedisConfig",
    "ServerInfo",
    "connection_kwargs",
    "key_base",
    "make_client",
    "redact_url",
]

UNSHARDED: Final = "all"
"""The directory's field of a tagged daemon that is not sharded (one on a Redis Cluster)."""

Client = aioredis.Redis | RedisCluster
ConnectHook = Callable[[AbstractConnection], Awaitable[None]]


Prefix = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-:]+$")]
_SCHEMES: Final = ("redis", "rediss", "unix")
_SECRET_QUERY_KEYS: Final = frozenset({"password", "pass", "auth", "token"})
_TLS_KEYS: Final = ("tls_ca_file", "tls_cert_file", "tls_key_file")


def redact_url(url: str) -> str:
    """``url`` with any password (in the userinfo or the query string) replaced by ``***``.

    Args:
        url: a Redis URL (``redis://user:password@host:port/db?...``).

    Returns:
        The same URL, safe to print and log. An unparsable URL is replaced whole.
    """
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:***@{hostport}" if colon else f"{userinfo}@{hostport}"
            if not colon and userinfo and parts.scheme in ("redis", "rediss"):
                # redis://secret@host: redis-py reads a lone userinfo as a username, but some
                # clients read it as a password; never print it.
                netloc = f"***@{hostport}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            query = urlencode(
                [(k, "***" if k.lower() in _SECRET_QUERY_KEYS else v) for k, v in pairs],
                safe="*",
            )
        # Rebuilt by hand: urlunsplit drops the "//" of unix:///path (its netloc is empty).
        redacted = f"{parts.scheme}://{netloc}{parts.path}"
        return f"{redacted}?{query}" if query else redacted
    except ValueError:
        return "<unparsable redis url>"


def _url_credentials(url: str) -> tuple[bool, bool]:
    """Whether ``url`` names a user and whether it carries a password (redis-py reads both
    from the userinfo and from ``username`` / ``password`` query parameters)."""
    parts = urlsplit(url)
    query = {k.lower() for k, _ in parse_qsl(parts.query, keep_blank_values=True)}
    return bool(parts.username) or "username" in query, (
        parts.password is not None or "password" in query
    )


class RedisConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Configuration of :class:`RedisSink` (the ``[redis]`` table).

    Attributes:
        url: the server, ``redis://[[user]:password@]host:port/db`` (or ``rediss://`` for
            TLS, ``unix://``). It may carry a password (``repr`` and the logs redact it), but
            ``password_env`` or ``password_file`` keep it out of the file.
        username: the ACL user to authenticate as; None: the URL's, else ``default``.
        password_env: name of the environment variable holding the password (not the
            password); at most one of ``password_env``, ``password_file`` and a password in
            ``url``.
        password_file: file holding the password (line breaks at its end are dropped).
        tls_ca_file: CA certificates (PEM) to verify the server with, instead of the
            system's; ``rediss://`` only, like every ``tls_*`` key.
        tls_cert_file: client certificate (PEM), for servers that require one; it may hold
            the key too.
        tls_key_file: the client certificate's private key (PEM, unencrypted).
        tls_verify: verify the server's certificate and that it names the URL's host; False
            encrypts without knowing whom to (tests only).
        prefix: the first part of every key and channel name.
        min_interval_ms: the publish schedule of exposure keys (:mod:`engine.schedule`): a key
            quiet for this long goes out at once, a busy one at most once per this interval,
            its last value always (0: every change).
        stream_maxlen: approximate length the streams are trimmed to (``XADD MAXLEN ~``).
        heartbeat_interval_s: how often the heartbeat key is written.
        heartbeat_ttl_s: its time to live; more than ``heartbeat_interval_s``, so it expires
            only when the daemon (or its link to Redis) stops.
        timeout_s: the limit on every network wait (connect, pipeline, close).
        backoff_initial_s: first reconnection delay (capped, jittered, exponential).
        backoff_max_s: the cap of the reconnection delay.
        alert_queue: alert transitions held while Redis is away; beyond, the oldest is dropped.
        start_local: when nothing listens at ``url`` at start, start a private ``redis-server``
            there for as long as riskd runs (``engine.runtime.localredis``); only for a
            ``redis://`` URL on 127.0.0.1 or localhost.
        cluster: ``url`` names a node of a Redis Cluster (``redis://`` or ``rediss://``, db 0):
            write through redis-py's cluster client, keys hash-tagged (docs/redis.md).

    Raises:
        ValueError: an unsupported URL scheme, ``heartbeat_ttl_s <= heartbeat_interval_s``,
            ``backoff_initial_s > backoff_max_s``, two sources of a password or of a user name,
            ``tls_*`` keys without ``rediss://``, ``tls_key_file`` without ``tls_cert_file``,
            or ``ssl_*`` parameters in the URL (``msgspec.ValidationError`` from
            ``msgspec.convert``). Whether the variable is set and the files can be read is
            checked when the configuration is loaded (``engine.runtime.config``).
    """

    url: str = "redis://127.0.0.1:6379/0"
    username: NonEmptyStr | None = None
    password_env: NonEmptyStr | None = None
    password_file: NonEmptyStr | None = None
    tls_ca_file: NonEmptyStr | None = None
    tls_cert_file: NonEmptyStr | None = None
    tls_key_file: NonEmptyStr | None = None
    tls_verify: bool = True
    prefix: Prefix = "risk"
    min_interval_ms: NonNegativeInt = 100
    stream_maxlen: PositiveInt = 10_000
    heartbeat_interval_s: PositiveFloat = 1.0
    heartbeat_ttl_s: PositiveFloat = 5.0
    timeout_s: PositiveFloat = 2.0
    backoff_initial_s: PositiveFloat = 0.2
    backoff_max_s: PositiveFloat = 5.0
    alert_queue: PositiveInt = 10_000
    start_local: bool = False
    cluster: bool = False

    def __post_init__(self) -> None:
        scheme = self.url.partition("://")[0] if "://" in self.url else ""
        if scheme not in _SCHEMES:
            raise ValueError(
                f"redis url {redact_url(self.url)!r}: scheme must be one of {', '.join(_SCHEMES)}"
            )
        if self.heartbeat_ttl_s <= self.heartbeat_interval_s:
            raise ValueError("redis heartbeat_ttl_s must exceed heartbeat_interval_s")
        if self.backoff_initial_s > self.backoff_max_s:
            raise ValueError("redis backoff_initial_s must not exceed backoff_max_s")
        url_user, url_password = _url_credentials(self.url)
        if self.password_env is not None and self.password_file is not None:
            raise ValueError("redis: set password_env or password_file, not both")
        if url_password and (self.password_env is not None or self.password_file is not None):
            raise ValueError("redis url holds a password: drop it or password_env/password_file")
        if url_user and self.username is not None:
            raise ValueError("redis url names a user: drop it or username")
        query = parse_qsl(urlsplit(self.url).query, keep_blank_values=True)
        if any(k.lower().startswith("ssl") for k, _ in query):
            raise ValueError("redis url: ssl_* parameters are not supported, use the tls_* keys")
        tls = [k for k in _TLS_KEYS if getattr(self, k) is not None]
        if not self.tls_verify:
            tls.append("tls_verify")
        if tls and scheme != "rediss":
            raise ValueError(f"redis {', '.join(tls)}: only with a rediss:// url")
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("redis tls_key_file needs tls_cert_file")
        if self.start_local and (
            scheme != "redis" or urlsplit(self.url).hostname not in ("127.0.0.1", "localhost")
        ):
            raise ValueError("redis start_local: only with a redis:// url on 127.0.0.1")
        if self.cluster:
            if scheme == "unix" or self.start_local:
                raise ValueError("redis cluster: a redis:// or rediss:// url, no start_local")
            if urlsplit(self.url).path.strip("/") not in ("", "0"):
                raise ValueError("redis cluster: a cluster has database 0 only")

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{name}={redact_url(self.url) if name == 'url' else getattr(self, name)!r}"
            for name in self.__struct_fields__
        )
        return f"RedisConfig({fields})"


def key_base(prefix: str, shard: str | None, cluster: bool) -> str:
    """The first part of every key of a daemon (module docstring)."""
    if shard is not None:
        return f"{{{prefix}:{shard}}}"
    return f"{{{prefix}}}" if cluster else prefix


@dataclass(frozen=True, slots=True)
class Keys:
    """The Redis names under one base (:func:`key_base`)."""

    families: dict[str, tuple[str, str, str]]  # family -> (channel, stream, snapshot hash)
    alerts: str
    alerts_stream: str
    active: str
    heartbeat: str
    writer: str
    directory: str | None  # {prefix}:shards, for a tagged base

    @classmethod
    def under(cls, p: str, directory: str | None = None) -> Keys:
        """The names under base ``p`` (docs/redis.md); ``directory``: the directory hash a
        tagged daemon lists itself in."""
        return cls(
            families={
                f: (
                    f"{p}:{f}",
                    f"{p}:{f}:stream",
                    f"{p}:snapshot" if f == "exposure" else f"{p}:{f}:snapshot",
                )
                for f in FAMILIES
            },
            alerts=f"{p}:alerts",
            alerts_stream=f"{p}:alerts:stream",
            active=f"{p}:alerts:active",
            heartbeat=f"{p}:heartbeat",
            writer=f"{p}:writer",
            directory=directory,
        )


def connection_kwargs(config: RedisConfig) -> dict[str, Any]:
    """redis-py's keyword arguments for the credentials and TLS settings of ``config``.

    Raises:
        ConfigError: the password's variable or file is gone since the configuration was
            loaded (named by its key).
    """
    kwargs: dict[str, Any] = {}
    if config.username is not None:
        kwargs["username"] = config.username
    try:
        password = read_secret(config.password_env, config.password_file)
    except ValueError as exc:
        key = "password_env" if config.password_env is not None else "password_file"
        raise ConfigError("[redis]", f"{exc} - at `$.redis.{key}`") from None
    if password is not None:
        kwargs["password"] = password
    if config.url.startswith("rediss://"):
        kwargs.update(
            ssl_ca_certs=config.tls_ca_file,
            ssl_certfile=config.tls_cert_file,
            ssl_keyfile=config.tls_key_file,
            ssl_cert_reqs="required" if config.tls_verify else "none",
            ssl_check_hostname=config.tls_verify,
        )
    return kwargs


def make_client(config: RedisConfig, on_connect: ConnectHook) -> Client:
    """The client of ``config``: ``redis.asyncio.Redis`` on one server,
    ``redis.asyncio.cluster.RedisCluster`` with ``cluster`` (the URL names any node; the others
    are discovered). ``on_connect`` runs on every new connection, to every node.

    Raises:
        ConfigError: as :func:`connection_kwargs`.
    """
    common: dict[str, Any] = {
        "socket_timeout": config.timeout_s,
        "socket_connect_timeout": config.timeout_s,
        # Our own loop reconnects with backoff; the client's retries would resend a
        # half-written pipeline and stall this loop.
        "retry": Retry(NoBackoff(), 0),
        **connection_kwargs(config),
    }
    if not config.cluster:
        return aioredis.Redis.from_url(config.url, redis_connect_func=on_connect, **common)
    client = RedisCluster.from_url(config.url, **common)
    # RedisCluster takes no connect hook of its own: set it where redis-py itself sets its
    # per-connection settings, the template of nodes found later and each startup node.
    hook = {"redis_connect_func": on_connect}
    client.nodes_manager.connection_kwargs.update(hook)
    for node in client.nodes_manager.startup_nodes.values():
        node.connection_kwargs.update(hook)
    return client


@dataclass(frozen=True, slots=True)
class ServerInfo:
    """What a new connection found.

    Attributes:
        run_id: the server's ``run_id`` (a restart changes it).
        major: the server's major version (7: sharded pub/sub).
        token: the value of ``{base}:writer``; None if absent.
        owner: whether this node holds the base's slot (always, on one server); only its
            ``run_id`` and ``token`` say whether the sink's keys are there.
    """

    run_id: str
    major: int
    token: bytes | None
    owner: bool


async def probe(conn: AbstractConnection, writer: str) -> ServerInfo:
    """Authenticate a new connection, then ask who the server is and read ``writer``."""
    await conn.on_connect()
    await conn.send_command("INFO", "server")
    info = _fields(await conn.read_response())
    await conn.send_command("GET", writer)
    try:
        token = await conn.read_response()
        owner = True
    except rexc.ResponseError:  # MOVED: another node of the cluster holds the key
        token, owner = None, False
    version = info.get("redis_version", "0").partition(".")[0]
    return ServerInfo(
        run_id=info.get("run_id", ""),
        major=int(version) if version.isdigit() else 0,
        token=token if isinstance(token, bytes) else None,
        owner=owner,
    )


def _fields(info: Any) -> dict[str, str]:
    """The ``name:value`` lines of an ``INFO`` reply (text or bytes)."""
    text = info.decode() if isinstance(info, bytes) else str(info)
    return dict(line.split(":", 1) for line in text.splitlines() if ":" in line and line[0] != "#")
