"""A private ``redis-server`` for a machine that has none running (``[redis] start_local``).

The main job (``scripts/riskd``) should show the whole product on a fresh machine with nothing
else set up. When its Redis URL points at this machine and nothing accepts connections there,
:func:`local_redis` starts Debian's ``redis-server`` on that address (bound to 127.0.0.1, no
persistence, its files in a temporary folder), says so, and stops it when riskd exits. A Redis
that already listens is used as it is, and a remote Redis is never replaced: the configuration
refuses ``start_local`` with a URL that is not on the loopback address
(:class:`~engine.runtime.redis_sink.RedisConfig`).
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from engine.runtime.redis_sink import RedisConfig

__all__ = ["local_redis"]

logger = logging.getLogger(__name__)

_BINARY_PATHS: Final = ("/usr/bin/redis-server", "/usr/local/bin/redis-server")
_START_TIMEOUT_S: Final = 10.0
_STOP_TIMEOUT_S: Final = 5.0


def _accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections on ``host:port`` now."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _binary() -> str | None:
    found = shutil.which("redis-server")
    if found is not None:
        return found
    return next((p for p in _BINARY_PATHS if Path(p).is_file()), None)


def _say(message: str) -> None:
    """A line for the person at the terminal (stderr: stdout may be the view or JSON logs)."""
    print(f"riskd: {message}", file=sys.stderr, flush=True)  # noqa: T201 - meant for a person


@contextlib.contextmanager
def local_redis(config: RedisConfig) -> Iterator[subprocess.Popen[bytes] | None]:
    """Start a private ``redis-server`` for the duration of the block when ``config`` asks for
    one (``start_local``) and nothing listens at its URL; yields its process (None: none
    started), which a forced exit (a second Ctrl-C) kills, since it skips this block's end.

    A missing ``redis-server`` binary or a server that does not come up is logged and said,
    and riskd runs on without Redis (it publishes once one is there).
    """
    if not config.start_local:
        yield None
        return
    parts = urlsplit(config.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    if _accepts(host, port):
        yield None
        return
    binary = _binary()
    if binary is None:
        logger.warning("no redis-server to start", extra={"host": host, "port": port})
        _say(f"nothing listens on {host}:{port} and no redis-server is installed: running "
             "without Redis (scripts/bootstrap installs it)")  # fmt: skip
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="riskd-redis-") as folder:
        proc = subprocess.Popen(  # noqa: S603 - our own argument list, no shell
            [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", folder, "--logfile", str(Path(folder) / "log")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C stops riskd first; riskd stops it after its flush
        )  # fmt: skip
        try:
            deadline = time.monotonic() + _START_TIMEOUT_S
            while not _accepts("127.0.0.1", port) and proc.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.02)
            if proc.poll() is not None or not _accepts("127.0.0.1", port):
                logger.warning("private redis-server did not start", extra={"port": port})
                _say(f"could not start a private redis-server on 127.0.0.1:{port}")
                yield None
                return
            logger.info(
                "started a private redis-server",
                extra={"port": port, "pid": proc.pid, "dir": folder},
            )
            _say(
                f"nothing listened on {host}:{port}: started a private redis-server there "
                f"(pid {proc.pid}, no persistence); it stops when riskd exits"
            )
            yield proc
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=_STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    logger.info("stopped the private redis-server", extra={"pid": proc.pid})
