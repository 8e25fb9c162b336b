"""The README's Python example runs and says what the code does."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time
from pathlib import Path

import numpy as np
import pytest
import redis

from tests.servers import RedisServer

README = Path(__file__).parents[2] / "README.md"


def test_readme_python_example_runs_and_round_trips() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102  # our own README
    g = namespace["g"]
    c = namespace["c"]
    implied_vol = namespace["implied_vol"]
    assert callable(implied_vol)
    iv = implied_vol(g.price, True, 100.0, [90.0, 100.0, 110.0], 0.5, 0.04, q=0.01)  # type: ignore[attr-defined]  # names from the README
    np.testing.assert_allclose(iv, 0.25, rtol=1e-13)
    iv_coin = implied_vol(c.price_coin, True, 98500.0, 100000.0, 33 / 365, 0.0, model="inverse")  # type: ignore[attr-defined]  # names from the README
    np.testing.assert_allclose(iv_coin, 0.58, rtol=1e-13)


def test_readme_names_the_two_commands_ci_runs() -> None:
    text = README.read_text()
    assert "scripts/riskd          # the main job" in text
    assert "scripts/test" in text
    ci = (README.parent / ".ci" / "run").read_text()
    assert "exec scripts/test\n" in ci


# ---------------------------------------------------------------- the README's commands, as written

ROOT = README.parent


def _readme_commands() -> list[str]:
    """Every command line of the README's shell blocks, without its comment."""
    blocks = re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.DOTALL)
    return [line.split("#", 1)[0].strip() for b in blocks for line in b.splitlines() if line]


def _spawn(command: str, *, tty: bool) -> tuple[subprocess.Popen[bytes], int]:
    """``command`` run by bash in the checkout, as a user types it; its output on a pseudo
    terminal when ``tty`` (the main job's view draws only on a terminal), else on a pipe."""
    master, slave = pty.openpty() if tty else os.pipe()
    if tty:  # a terminal window of 50 rows of 160 columns
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 160, 0, 0))
    proc = subprocess.Popen(  # noqa: S603  # the README's own commands
        ["/bin/bash", "-c", command],  # bash as the user runs it
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    return proc, master


def _read_until(fd: int, proc: subprocess.Popen[bytes], want: bytes, timeout_s: float) -> bytes:
    """What ``fd`` gives until ``want`` appears in it (fails after ``timeout_s``)."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while want not in out:
        assert time.monotonic() < deadline, out[-3000:].decode(errors="replace")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # the terminal closed: the process is gone
                chunk = b""
            assert chunk or proc.poll() is None, out[-3000:].decode(errors="replace")
            out += chunk
    return out


def _interrupt(proc: subprocess.Popen[bytes], fd: int) -> int:
    """Ctrl-C, as at the terminal; the exit status."""
    proc.send_signal(signal.SIGINT)
    try:
        return proc.wait(timeout=60)
    finally:
        os.close(fd)


def test_the_readme_commands_are_the_ones_tested_here() -> None:
    assert _readme_commands() == [
        "scripts/riskd",
        "scripts/test",  # CI runs it (.ci/run); a test cannot run the suite it is part of
        "scripts/riskd --us",
        "scripts/riskd run -c config/replay.toml",
        "scripts/riskd run -c config/replay.toml --exit-at-end",
        "scripts/riskd run -c FILE --view off",
        "scripts/riskd check-config -c FILE",
        "scripts/riskd demo",
        "scripts/riskd schema",
        # against a running daemon: tests/integration/test_whatif.py runs it through main()
        "scripts/riskd what-if -c FILE --trade BOOK:INSTRUMENT:QTY",
        # against shards: tests/integration/test_aggregate.py runs it as a process
        "scripts/riskd aggregate -c FILE",
    ]


def _screen_lines(out: bytes) -> list[str]:
    """The lines a terminal was sent, without colours and cursor moves (every frame)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.decode(errors="replace"))
    return text.replace("\r", "\n").splitlines()


def test_the_main_job_draws_the_demo_book_and_stops_on_ctrl_c() -> None:
    proc, fd = _spawn("scripts/riskd", tty=True)
    out = _read_until(fd, proc, b"vega $/pt", 180)
    out += _read_until(fd, proc, b"Hedges", 30)  # a whole frame, risk included
    assert _interrupt(proc, fd) == 0
    rows = [line.split()[:2] for line in _screen_lines(out)]
    assert ["demo", "BTC"] in rows, out[-3000:]
    assert ["hedge", "ETH"] in rows, out[-3000:]
    assert b"Traceback" not in out


def test_the_replay_quick_start_says_it_finished_and_holds_the_state_until_ctrl_c() -> None:
    proc, fd = _spawn("scripts/riskd run -c config/replay.toml", tty=True)
    out = _read_until(fd, proc, b"the final state is held; Ctrl-C exits", 180)
    assert any(line.startswith("feed replay: finished") for line in _screen_lines(out))
    assert _interrupt(proc, fd) == 0


def test_the_replay_with_exit_at_end_publishes_var_and_exits() -> None:
    with contextlib.ExitStack() as stack:
        if not _accepts(6379):  # where config/replay.toml publishes: keep one to read after
            server = RedisServer()
            server.port = 6379
            stack.enter_context(server)
        proc, fd = _spawn("scripts/riskd run -c config/replay.toml --exit-at-end", tty=False)
        _read_until(fd, proc, b"replay finished: stopping (--exit-at-end)", 180)
        assert proc.wait(timeout=60) == 0
        os.close(fd)
        client = stack.enter_context(contextlib.closing(redis.Redis(port=6379)))
        raw = client.hget("risk-replay:var:snapshot", "replay")
    assert raw is not None
    var = json.loads(raw)
    assert var["history_days"] >= 250
    assert var["var_historical"] > 0.0


def _accepts(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.parametrize(
    "command",
    [
        "scripts/riskd run -c config/demo.toml --view off --duration 3",  # FILE: the demo's
        "scripts/riskd --us --view off --duration 3",
        "scripts/riskd check-config -c config/demo.toml",
        "scripts/riskd demo",
        "scripts/riskd schema",  # docs/schema/riskd-payloads.json (tests/unit/engine/test_outputs)
    ],
)
def test_the_other_readme_commands_exit_0(command: str) -> None:
    out = subprocess.run(  # noqa: S603  # the README's own commands
        ["/bin/bash", "-c", command],  # bash as the user runs it
        cwd=ROOT,
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    assert b"Traceback" not in out.stderr
