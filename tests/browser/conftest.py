"""Browser tests of the dashboard: Playwright (pytest-playwright) driving Debian's chromium,
never a downloaded browser, against riskd run as a real process.

``scripts/bootstrap`` installs ``chromium`` with apt-get; a missing binary fails the tests (they
never skip). Each daemon runs ``riskd run -c riskd.toml --view off`` in a folder of its own,
publishing to the session's redis-server under a key prefix of its own, its dashboard on a free
loopback port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port, wait_port

CHROMIUM = Path("/usr/bin/chromium")
RISKD = Path(sys.executable).with_name("riskd")
START_TIMEOUT_S = 120.0  # a first run compiles the kernels


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """pytest-playwright's browser: Debian's chromium (scripts/bootstrap installs it)."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found: run scripts/test (it installs chromium)")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


@pytest.fixture(scope="session")
def base_url() -> None:
    """No base URL (each test has its daemon's): replaces pytest-base-url's fixture, whose
    definition pytest 9 warns about (the warnings are errors here)."""
    return


@dataclass
class Riskd:
    """riskd run as a process on ``config`` (its dashboard at :attr:`url`), logging to
    ``riskd.log`` beside it; :meth:`start` again after :meth:`stop` (same port)."""

    config: Path
    port: int
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log(self) -> Path:
        return self.config.with_name("riskd.log")

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - our own console script
                [str(RISKD), "run", "-c", str(self.config), "--view", "off"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.config.parent,
                env={**os.environ, **self.env},
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"riskd exited {self.proc.returncode}: see {self.log}")
            with contextlib.suppress(TimeoutError):
                wait_port(self.port, timeout_s=0.5)
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"riskd's dashboard did not listen: see {self.log}")

    def logged(self, message: str, timeout_s: float = 60.0) -> None:
        """Wait until riskd has logged ``message`` (a JSON log line's ``msg``)."""
        needle = f'"msg":"{message}"'.encode()
        deadline = time.monotonic() + timeout_s
        while needle not in self.log.read_bytes():
            if self.proc is None or self.proc.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(f"riskd did not log {message!r}: see {self.log}")
            time.sleep(0.05)  # a file to poll: there is nothing to wait on

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(timeout=30) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()


@contextlib.contextmanager
def riskd(config: Path, port: int, env: dict[str, str] | None = None) -> Iterator[Riskd]:
    daemon = Riskd(config, port, env or {})
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.stop()


__all__ = ["Riskd", "free_port", "riskd"]
