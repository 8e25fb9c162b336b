"""The ``riskd`` console script, run as a user runs it (a real subprocess)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from numpy.testing import assert_allclose

from engine.daycount import year_fraction
from engine.events import Fill
from engine.greeks import bsm, inverse
from engine.runtime.journal import FillJournal, positions_digest
from tests.servers import RedisServer, free_port

RISKD = Path(sys.executable).with_name("riskd")
DEMO = Path(__file__).parents[2] / "config" / "demo_book.toml"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_demo_prints_every_position_with_units() -> None:
    out = _run("demo")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    for name in ("BTC-27DEC24-100000-C", "ETH-27DEC24-3500-C", "SPX-20DEC24-6000-P", "TOTAL"):
        assert name in text
    assert "vega: USD per vol point" in text
    assert "theta: USD per day" in text
    assert "not priced" not in text


def test_demo_json_figures_match_the_kernel() -> None:
    out = _run("demo", "--json", "-c", str(DEMO))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == 6
    assert all(r["status"] == 0 for r in rows)
    now = int(datetime(2024, 11, 24, 8, tzinfo=UTC).timestamp()) * 10**9
    expiry = int(datetime(2024, 12, 27, 8, tzinfo=UTC).timestamp()) * 10**9
    T = year_fraction(now, expiry)
    btc = rows[0]
    assert btc["instrument"] == "BTC-27DEC24-100000-C"
    g = inverse(True, 98500.0, 100000.0, T, 0.0, 0.58)
    assert_allclose(btc["value"], -25 * float(g.price), rtol=1e-14)
    assert_allclose(btc["vega"], -25 * float(g.vega) / 100, rtol=1e-14)
    assert_allclose(btc["theta"], -25 * float(g.theta) / 365, rtol=1e-14)
    assert_allclose(btc["delta_adj"], -25 * float(g.delta_adj), rtol=1e-14)
    assert btc["units"]["vega"] == "USD per vol point"
    spx = rows[5]
    T_spx = year_fraction(now, int(datetime(2024, 12, 20, 21, tzinfo=UTC).timestamp()) * 10**9)
    gs = bsm(False, 5970.0, 6000.0, T_spx, 0.045, 0.013, 0.14)
    assert_allclose(spx["cash_gamma"], -50 * float(gs.gamma) * 5970.0**2 / 100, rtol=1e-14)
    assert spx["delta_adj"] is None  # only coin-settled options have one


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('strike = "100"', "Expected `float`, got `str` - at `$.positions[0].strike`"),
        ("strike = -5.0", "Expected `float` > 0.0 - at `$.positions[0].strike`"),
        (
            "strike = 100.0\ncolour = 1",
            "Object contains unknown field `colour` - at `$.positions[0]`",
        ),
        ("strike = 100.0\nq = 0.01", "q applies to model 'bsm' only - at `$.positions[0].q`"),
    ],
)
def test_bad_book_exits_2_naming_the_key(tmp_path: Path, text: str, expected: str) -> None:
    book = tmp_path / "book.toml"
    book.write_text(
        "valuation = 2024-11-24T08:00:00Z\n[[positions]]\nbook = 'a'\ninstrument = 'x'\n"
        "model = 'black76'\nis_call = true\nexpiry = 2024-12-27T08:00:00Z\n"
        f"underlying_price = 100.0\nvol = 0.5\nquantity = 1.0\n{text}\n"
    )
    out = _run("demo", "-c", str(book))
    assert out.returncode == 2
    assert expected in out.stderr
    assert out.stdout == ""


def test_missing_and_malformed_files_exit_2(tmp_path: Path) -> None:
    out = _run("demo", "-c", str(tmp_path / "nope.toml"))
    assert out.returncode == 2
    assert "cannot read" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("valuation = [\n")
    out = _run("demo", "-c", str(bad))
    assert out.returncode == 2
    assert "invalid TOML" in out.stderr


def test_help_and_version() -> None:
    out = _run("--help")
    assert out.returncode == 0
    assert "demo" in out.stdout
    out = _run("--version")
    assert out.returncode == 0
    assert out.stdout.startswith("riskd ")
    out = _run()
    assert out.returncode == 2  # a command is required


DAEMON_CONFIG = Path(__file__).parents[2] / "config" / "demo.toml"


def _write_config(tmp_path: Path, body: str, positions: str | None = None) -> Path:
    if positions is not None:
        (tmp_path / "positions.csv").write_text(positions)
    path = tmp_path / "riskd.toml"
    path.write_text(body)
    return path


def test_check_config_accepts_the_demo_and_redacts_secrets(tmp_path: Path) -> None:
    out = _run("check-config", "-c", str(DAEMON_CONFIG))
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["config"]["feeds"][0]["kind"] == "sim"
    assert report["positions"] == 2
    path = _write_config(tmp_path, '[redis]\nurl = "redis://riskd:s3cret@127.0.0.1:6379/0"\n')
    out = _run("check-config", "-c", str(path))
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout
    assert "***" in out.stdout


@pytest.mark.parametrize(
    ("body", "positions", "named"),
    [
        ('[[feeds]]\nkind = "mqtt"\nprot = 1883\n', None, "`$.feeds[0]`"),
        ('[[feeds]]\nkind = "mqtt"\nport = "x"\n', None, "`$.feeds[0].port`"),
        ('[[feeds]]\nkind = "telepathy"\n', None, "`$.feeds[0].kind`"),
        ("[redis]\nmin_interval_ms = -1\n", None, "`$.redis.min_interval_ms`"),
        ("[engine]\nfull_reprice_interval_s = 0\n", None, "`$.engine.full_reprice_interval_s`"),
        ('[[alerts]]\nname = "a"\nmetric = "delta"\nscope = "book"\n', None, "`$.alerts[0]`"),
        ("[portfolio]\nnope = 1\n", None, "`$.portfolio`"),
        ("[portfolio\n", None, "not valid TOML"),
        (
            '[portfolio]\npositions = "positions.csv"\n',
            "book,instrument,quantity\nmain,BTC-PERPETUAL,ten\n",
            "line 2, column quantity",
        ),
        (
            '[portfolio]\npositions = "positions.csv"\n',
            "book,instrument,quantity\nmain,NOT-A-THING,1\n",
            "line 2: unknown instrument",
        ),
        ('[portfolio]\npositions = "missing.csv"\n', None, "missing.csv: cannot read"),
        (
            '[redis]\nurl = "redis://redis.example:6379/0"\nstart_local = true\n',
            None,
            "start_local: only with a redis:// url on 127.0.0.1",
        ),
    ],
)
def test_bad_config_exits_2_naming_the_key(
    tmp_path: Path, body: str, positions: str | None, named: str
) -> None:
    path = _write_config(tmp_path, body, positions)
    for command in ("check-config", "run"):
        out = _run(command, "-c", str(path), *(("--view", "off") if command == "run" else ()))
        assert out.returncode == 2, (command, out.stdout, out.stderr)
        assert named in out.stderr, (command, out.stderr)
        assert "Traceback" not in out.stderr


def _run_until_published(path: Path, client: redis.Redis, key: str, field: str) -> tuple[str, str]:
    """``riskd run -c path`` until ``field`` of ``key`` is in Redis (it may come up later),
    then SIGTERM; its stdout and stderr once it has exited with status 0."""
    proc = subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), "run", "-c", str(path), "--view", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, f"no {key} {field} within 90 s"
            with contextlib.suppress(redis.ConnectionError):
                if client.hget(key, field) is not None:
                    break
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, stderr
    return stdout, stderr


def test_run_publishes_and_stops_cleanly_on_sigterm(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    path = _write_config(
        tmp_path,
        f"""
[redis]
url = "{redis_server.url}"
prefix = "{unique}"
[portfolio]
positions = "positions.csv"
[engine]
full_reprice_interval_s = 0.2
[[feeds]]
kind = "sim"
rate_hz = 500
""",
        "book,instrument,quantity,avg_price\nhedge,BTC-PERPETUAL,-100000,60000\n",
    )
    with contextlib.closing(redis.Redis.from_url(redis_server.url)) as client:
        stdout, _ = _run_until_published(path, client, f"{unique}:snapshot", "hedge:BTC")
    logs = [json.loads(line) for line in stdout.splitlines()]
    messages = [entry["msg"] for entry in logs]
    assert "started" in messages
    assert messages[-1] == "stopped"
    assert any(e["msg"] == "stopping" and e["signal"] == "SIGTERM" for e in logs)


def _demo_config(tmp_path: Path, port: int, *, start_local: bool) -> Path:
    """config/demo.toml (the main job) with its Redis on ``port`` and the files it names."""
    body = (
        DAEMON_CONFIG.read_text()
        .replace("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:{port}/0")
        .replace('address = "127.0.0.1:9464"', 'address = "127.0.0.1:0"')  # any free port
    )
    assert "start_local = true" in body
    if not start_local:
        body = body.replace("start_local = true", "start_local = false")
    for name in ("demo_positions.csv", "demo_history.csv"):
        (tmp_path / name).write_text((DAEMON_CONFIG.parent / name).read_text())
    return _write_config(tmp_path, body)


def test_main_job_starts_a_private_redis_when_none_listens_and_stops_it(tmp_path: Path) -> None:
    """Nothing on the main job's Redis address: riskd starts a redis-server there, says so,
    publishes to it, and stops it on exit; with one listening, it starts none."""
    port = free_port()
    path = _demo_config(tmp_path, port, start_local=True)
    with contextlib.closing(redis.Redis(port=port)) as client:
        stdout, stderr = _run_until_published(path, client, "risk:snapshot", "demo:BTC")
    assert "started a private redis-server there" in stderr
    assert f"127.0.0.1:{port}" in stderr
    messages = [json.loads(line)["msg"] for line in stdout.splitlines()]
    assert "started a private redis-server" in messages
    assert messages[-2:] == ["stopped", "stopped the private redis-server"]
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))  # gone with riskd
    with RedisServer() as server:  # one listens: used as it is
        path = _demo_config(tmp_path, server.port, start_local=True)
        out = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--view", "off", "--duration", "2"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert out.returncode == 0, out.stderr
        assert "private redis-server" not in out.stderr + out.stdout


def test_a_second_ctrl_c_exits_at_once_and_takes_the_private_redis_with_it(
    tmp_path: Path,
) -> None:
    """A second signal while riskd shuts down (its final flush waits on a stopped Redis): the
    forced exit (status 130) skips the orderly end, so it kills the private redis-server
    itself, which would otherwise outlive riskd."""
    port = free_port()
    path = _demo_config(tmp_path, port, start_local=True)
    proc = subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), "run", "-c", str(path), "--view", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None

    def until(message: str) -> None:
        while True:
            line = proc.stdout.readline() if proc.stdout else ""
            assert line, proc.communicate()
            if json.loads(line)["msg"] == message:
                return

    try:
        told = ""
        while "private redis-server there" not in told:
            told = proc.stderr.readline()
            assert told, proc.communicate()
        redis_pid = int(re.search(r"\(pid (\d+)", told)[1])  # type: ignore[index]  # asserted above
        until("started")  # its signal handlers are set by then
        os.kill(redis_pid, signal.SIGSTOP)  # the final flush will wait on it
        proc.send_signal(signal.SIGINT)
        until("stopping")
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGINT
    with socket.socket() as s, pytest.raises(ConnectionRefusedError):
        s.connect(("127.0.0.1", port))


def test_main_job_view_runs_and_says_plainly_when_redis_is_away(tmp_path: Path) -> None:
    """The README's main job on config/demo.toml, with nothing listening where Redis should be:
    the view (on, written to a pipe: its last frame, when riskd stops) draws the demo book and
    says Redis is unreachable; riskd runs on and exits 0."""
    path = _demo_config(tmp_path, free_port(), start_local=False)
    out = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), "run", "-c", str(path), "--view", "on", "--duration", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert out.returncode == 0, out.stderr
    frame = out.stdout
    assert "\x1b[" not in frame  # no terminal: no colours or cursor moves
    assert frame.startswith("riskd  up ")
    assert "NOT REACHABLE" in frame
    assert "vega $/pt" in frame
    rows = [line.split() for line in frame.splitlines()]
    assert ["demo", "BTC"] in [r[:2] for r in rows]
    assert ["hedge", "BTC"] in [r[:2] for r in rows]
    logs = (tmp_path / "riskd.log").read_text().splitlines()
    assert json.loads(logs[-1])["msg"] == "stopped"


def test_the_view_stays_off_when_stdout_is_not_a_terminal(tmp_path: Path) -> None:
    """``view.enabled = "auto"`` (the demo's, and the default) on a pipe: no view, the JSON
    logs on stdout."""
    with RedisServer() as server:
        path = _demo_config(tmp_path, server.port, start_local=False)
        out = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--duration", "2"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert out.returncode == 0, out.stderr
    logs = [json.loads(line) for line in out.stdout.splitlines()]  # every line: JSON
    assert [e["msg"] for e in logs if e["msg"] in ("started", "stopped")] == ["started", "stopped"]
    assert not (tmp_path / "riskd.log").exists()


def test_check_config_leaves_the_journal_and_the_checkpoint_as_they_are(tmp_path: Path) -> None:
    """check-config may run beside a live daemon on the same files: it reads the journal and
    the checkpoint and changes neither, where a start would truncate a line cut short, set
    aside a journal of other positions and an unusable checkpoint."""
    positions = "book,instrument,quantity\nmain,BTC-27DEC30-60000-C,10\n"
    path = _write_config(
        tmp_path,
        '[portfolio]\npositions = "positions.csv"\njournal = "fills.jsonl"\n'
        '[checkpoint]\npath = "book.ckpt"\n',
        positions,
    )
    (tmp_path / "book.ckpt").write_bytes(b"not a checkpoint")
    fill = Fill(book="main", instrument="BTC-27DEC30-60000-C", quantity=1.0, ts_event=1, ts_recv=2)
    for journaled in (positions, "book,instrument,quantity\n"):  # these positions, others
        j = FillJournal(tmp_path / "fills.jsonl", positions_digest(journaled))
        j.open()
        j.append(fill)
        j.close()
        with (tmp_path / "fills.jsonl").open("ab") as f:
            f.write(b'{"book": "main", "instr')  # a line cut short by a crash
        before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
        out = _run("check-config", "-c", str(path))
        assert out.returncode == 0, out.stderr
        assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
        assert "checkpoint unusable" in out.stderr
        (tmp_path / "fills.jsonl").unlink()


def test_replay_file_missing_exits_2(tmp_path: Path) -> None:
    path = _write_config(tmp_path, '[[feeds]]\nkind = "replay"\npath = "nope.jsonl"\n')
    out = _run("check-config", "-c", str(path))
    assert out.returncode == 2
    assert "`$.feeds[0].path`" in out.stderr


def test_a_fatal_redis_error_stops_riskd_with_status_1_and_says_why(tmp_path: Path) -> None:
    with RedisServer(("--requirepass", "s3cret")) as server:
        path = _write_config(tmp_path, f'[redis]\nurl = "{server.url}"\n[[feeds]]\nkind = "sim"\n')
        out = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--view", "off", "--duration", "30"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert out.returncode == 1, out.stderr
    logs = [json.loads(line) for line in out.stdout.splitlines()]
    fatal = [e for e in logs if e["msg"].startswith("fatal error")]
    assert fatal, logs
    assert "Traceback" not in out.stderr
    assert logs[-1]["msg"] == "stopped"


def test_a_first_run_is_told_that_the_kernels_compile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty numba cache is a first run (riskd says it compiles, and how long it takes);
    the checkout's cache, filled by every earlier run, is not."""
    from engine import kernels
    from engine.greeks import bsm
    from engine.runtime.cli import _kernels_compiled

    bsm(True, 100.0, 100.0, 1.0, 0.0, 0.0, 0.2)  # compiled, hence cached, by now
    assert kernels.__file__ is not None
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert _kernels_compiled()
    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    assert not _kernels_compiled()
    path = tmp_path / "absent.toml"  # riskd says it before anything else
    for cache, told in ((tmp_path / "empty", True), (None, False)):
        env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
        if cache is not None:
            env["NUMBA_CACHE_DIR"] = str(cache)
        proc = subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), "run", "-c", str(path), "--view", "off"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()  # the notice, or (warm) the config error
        finally:
            proc.kill()  # no need to wait for a compilation
            proc.communicate()
        notice = "first run: compiling the numba kernels (about a minute" in first
        assert notice is told, first


def test_exit_at_end_without_a_replay_feed_exits_2_naming_it(tmp_path: Path) -> None:
    path = _write_config(tmp_path, '[[feeds]]\nkind = "sim"\n')
    out = _run("run", "-c", str(path), "--view", "off", "--exit-at-end")
    assert out.returncode == 2, out.stderr
    assert "--exit-at-end needs a replay feed - at `$.feeds`" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize("given", [None, "active"])
def test_run_sets_openmp_threads_passive_unless_the_environment_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, given: str | None
) -> None:
    """docs/kernels.md#threads: set before numba loads OpenMP, so ``run`` sets it first thing
    (here it then stops on a missing config file); a value already set is kept."""
    from engine.runtime.cli import EXIT_CONFIG, main

    if given is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", given)
    assert main(["run", "-c", str(tmp_path / "missing.toml"), "--view", "off"]) == EXIT_CONFIG
    assert os.environ["OMP_WAIT_POLICY"] == (given or "passive")


def test_ctrl_c_before_the_daemon_runs_exits_130_with_one_line(tmp_path: Path) -> None:
    """Ctrl-C while riskd still starts (compiling the kernels on a first run, or reading a
    large book) ends it with 130 and one line, not a traceback. Here it waits on a positions
    file that is a named pipe with no writer yet: SIGINT once riskd has opened it."""
    fifo = tmp_path / "positions.csv"
    os.mkfifo(fifo)
    config = tmp_path / "riskd.toml"
    config.write_text('[portfolio]\npositions = "positions.csv"\n')
    proc = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
        [str(RISKD), "run", "-c", str(config), "--view", "off"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while True:  # a writer can open a pipe without blocking only once a reader holds it
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "riskd never opened its positions file"
            time.sleep(0.05)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        os.close(writer)
    assert proc.returncode == 130, err
    assert err.splitlines()[-1] == "riskd: interrupted"
    assert "Traceback" not in err
