"""The Redis sink's link to the server: its key names, its client (one server or a Redis
Cluster), and what a new connection learns about the server.

Key layout (docs/redis.md#redis-cluster-and-shards). Every key of one daemon starts with its
*base*:

- a daemon that is not sharded, on one server: the prefix (``risk``), as always;
- on a Redis Cluster (``[redis] cluster = true``): the prefix as a hash tag, ``{risk}``;
- a shard (``[cluster]``), on one server or a cluster: ``{risk:NAME}`` with the shard's name.

Within a base every key hashes to one slot (the tag), so a shard's keys live on one node:
its scripts, its ``RENAME`` and its pipelines never span slots, and its restart marker
(``{base}:writer``) sits on the node that holds its data. A tagged daemon also lists itself in
the directory hash ``{prefix}:shards`` (field: the shard's name, ``all`` when not sharded;
value: its base as a JSON string), rewritten with every heartbeat, so a consumer finds every
shard's keys from the prefix alone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import redis.asyncio as aioredis
from redis import exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engine.credentials import read_secret
from engine.errors import ConfigError
from engine.outputs import FAMILIES

if TYPE_CHECKING:
    from engine.runtime.redis_sink import RedisConfig

__all__ = ["UNSHARDED", "Keys", "ServerInfo", "connection_kwargs", "key_base", "make_client"]

UNSHARDED: Final = "all"
"""The directory's field of a tagged daemon that is not sharded (one on a Redis Cluster)."""

Client = aioredis.Redis | RedisCluster
ConnectHook = Callable[[AbstractConnection], Awaitable[None]]


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
    active_tmp: str
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
            active_tmp=f"{p}:alerts:active:rebuild",
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
