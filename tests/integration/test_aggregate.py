"""``riskd aggregate`` against one daemon: two shards and the aggregator publish the ``var``
figures of one daemon holding the whole book, on a real Redis Cluster and on one server.

Every process is a real ``riskd`` subprocess. One daemon (not sharded) and two shards
(``shard_count = 2``: BTC on shard 0, ETH on shard 1) replay the same file on its own clock,
with the same positions (book ``main`` holds BTC and ETH, ``other`` only ETH), the same seeded
history and the same common scenario set (``[risk] scenario_underlyings``). The aggregator
starts before the shards, so it first finds nothing and then partial or moving vectors; once
the shards are done its payloads under the unsharded keys equal the daemon's (every figure to
1e-9 relative, the rest exactly), and so do its books' exposure totals. Stopped and started
again after the shards, with its keys deleted, it publishes the same from what the shards left
in Redis.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import math
import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import orjson
import pytest
from numpy.testing import assert_allclose
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from engine.outputs import StressPayload
from engine.risk.totals import SUMMED
from engine.runtime.aggregator import build
from engine.runtime.config import load_config
from engine.shards import shard_of
from tests.integration.test_redis_cluster import _config, _replay
from tests.integration.test_restart import RISKD
from tests.servers import RedisClusterServers, RedisServer

RISK = """
[risk]
scenario_underlyings = ["ETH", "BTC"]
history = "history.csv"
record_history = false
record_at_utc = "23:00"
mc_scenarios = 2000
var_interval_s = 0.5
method = "monte_carlo"

[[alerts]]
name = "var_hist"
metric = "var_historical"
scope = "book"
above = 0.0

[[alerts]]
name = "stress"
metric = "stress_loss"
scope = "book"
above = 0.0
"""


def _history(path: Path) -> None:
    """60 days of BTC and ETH levels before the replay's day (2024-11-24), with vols."""
    rows = ["date,underlying,price,vol"]
    day0 = dt.date(2024, 11, 24) - dt.timedelta(days=61)
    for i in range(61):
        d = day0 + dt.timedelta(days=i)
        rows.append(
            f"{d},BTC,{90_000 * math.exp(0.03 * math.sin(i * 1.3))},{0.5 + 0.05 * math.cos(i)}"
        )
        rows.append(
            f"{d},ETH,{3_000 * math.exp(0.04 * math.sin(i * 0.7 + 1))},{0.6 + 0.04 * math.sin(i)}"
        )
    path.write_text("\n".join(rows) + "\n")


def _setup(tmp_path: Path, url: str, prefix: str, cluster: bool) -> tuple[Path, list[Path]]:
    """The daemon's and the two shards' configs, on one replay file and one history."""
    _replay(tmp_path / "replay.jsonl")
    paths = []
    for folder, extra in [("one", ""), *((f"s{k}", f"[cluster]\nshard_id = {k}\nshard_count = 2")
                                          for k in (0, 1))]:  # fmt: skip
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "replay.jsonl").write_bytes((tmp_path / "replay.jsonl").read_bytes())
        _history(tmp_path / folder / "history.csv")
        name = f"{prefix}-one" if folder == "one" else f"{prefix}-two"
        path = _config(tmp_path / folder, url, name, extra + "\n" + RISK)
        if not cluster:
            path.write_text(path.read_text().replace("cluster = true\n", ""))
        paths.append(path)
    return paths[0], paths[1:]


def _riskd(path: Path, *args: str) -> subprocess.Popen[bytes]:
    with (path.parent / f"{args[0]}.out").open("ab") as log:
        return subprocess.Popen(  # noqa: S603  # our own console script, fixed arguments
            [str(RISKD), *args[:1], "-c", str(path), *args[1:]],
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _stop(proc: subprocess.Popen[bytes]) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


async def _until(check: Callable[[], Any], what: str, timeout_s: float = 120.0) -> Any:
    """Until the awaitable ``check()`` returns something true; that value."""
    last: Any = None
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                last = check()
                if inspect.isawaitable(last):
                    last = await last
                if last:
                    return last
                await asyncio.sleep(0.05)  # Redis: nothing to await
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def _hash(r: Redis | RedisCluster, key: str) -> dict[str, Any]:
    """A snapshot hash: field -> its payload."""
    raw = await r.hgetall(key)
    return {(k.decode() if isinstance(k, bytes) else k): orjson.loads(v) for k, v in raw.items()}


def _close(a: Any, b: Any) -> bool:
    """Equal, floats (also in lists, at any depth) to 1e-9 relative."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _same(got: dict[str, Any], want: dict[str, Any]) -> list[str]:
    """The fields of two payloads that differ (floats beyond 1e-9 relative), times and the
    aggregator's ``shards`` aside."""
    return [
        f"{k}: {got.get(k)!r} != {want.get(k)!r}"
        for k in set(got) | set(want)
        if k not in ("ts", "ts_ns", "shards") and not _close(got.get(k), want.get(k))
    ]


@pytest.mark.parametrize("cluster", [True, False], ids=["redis-cluster", "one-server"])
async def test_two_shards_and_the_aggregator_publish_one_daemons_var(
    tmp_path: Path,
    redis_cluster: RedisClusterServers,
    redis_server: RedisServer,
    unique: str,
    cluster: bool,
) -> None:
    assert (shard_of("BTC", 2), shard_of("ETH", 2)) == (0, 1)
    url = redis_cluster.url if cluster else redis_server.url
    one, shards = _setup(tmp_path, url, unique, cluster)
    r: Redis | RedisCluster = RedisCluster.from_url(url) if cluster else Redis.from_url(url)
    whole_key = f"{{{unique}-one}}:var:snapshot" if cluster else f"{unique}-one:var:snapshot"
    agg_key = f"{{{unique}-two}}:var:snapshot" if cluster else f"{unique}-two:var:snapshot"
    procs = []
    try:
        daemon = _riskd(one, "run", "--view", "off", "--exit-at-end")
        aggregator = _riskd(shards[0], "aggregate")  # before the shards
        procs += [daemon, aggregator]
        assert daemon.wait(timeout=180) == 0
        whole = await _hash(r, whole_key)
        assert set(whole) == {"main", "other", "*"}
        for payload in whole.values():
            assert payload["status"] == dict.fromkeys(payload["status"], "ok")
            assert payload["history_days"] == 60
            assert payload["var_monte_carlo"] > 0.0
        assert whole["main"]["underlyings"] == ["BTC", "ETH"]
        assert whole["*"]["positions"] == whole["main"]["positions"] + whole["other"]["positions"]

        async def converged() -> dict[str, Any] | None:
            got = await _hash(r, agg_key)
            if set(got) != set(whole):
                return None
            return got if not any(_same(got[k], whole[k]) for k in whole) else None

        s = [_riskd(p, "run", "--view", "off", "--exit-at-end") for p in shards]
        procs += s
        assert [p.wait(timeout=180) for p in s] == [0, 0]
        try:
            await _until(converged, "the aggregator's payloads equal to the daemon's", 30.0)
        except AssertionError:
            seen = await _hash(r, agg_key)
            diffs = {k: _same(seen[k], whole[k]) for k in whole if k in seen}
            raise AssertionError(f"keys {sorted(seen)}, differences {diffs}") from None
        assert _stop(aggregator) == 0
        got = await converged()
        assert got is not None
        assert got["main"]["shards"] == {"0": whole["main"]["valuation_ts_ns"],
                                         "1": whole["main"]["valuation_ts_ns"]}  # fmt: skip
        assert set(got["other"]["shards"]) == {"1"}  # ETH's shard only
        assert got["*"]["scenario_set"] == whole["*"]["scenario_set"]

        # Started again after the shards, from nothing but what they left in Redis.
        await r.delete(agg_key)
        again = _riskd(shards[1], "aggregate")
        procs.append(again)
        await _until(converged, "the restarted aggregator's payloads")
        assert _stop(again) == 0
        final = await _hash(r, agg_key)

        # The books' exposure totals: the daemon's book keys, and the firm's their sum.
        daemon_books = await _hash(r, whole_key.replace(":var:snapshot", ":snapshot"))
        totals = await _hash(r, agg_key.replace(":var:snapshot", ":snapshot"))
        assert set(totals) == {"main", "other", "*"}
        for book in ("main", "other"):
            assert not _same(totals[book], daemon_books[book]), book
        for f in SUMMED:
            want = daemon_books["main"][f] + daemon_books["other"][f]
            assert math.isclose(totals["*"][f], want, rel_tol=1e-12, abs_tol=1e-9), f
        assert totals["*"]["n_positions"] == whole["*"]["positions"]

        # The books' stress grids: the daemon's, cell by cell; the firm's their sum.
        daemon_grids = await _hash(r, whole_key.replace(":var:", ":stress:"))
        grids = await _hash(r, agg_key.replace(":var:", ":stress:"))
        assert set(daemon_grids) == {"main", "other"}
        assert set(grids) == {"main", "other", "*"}
        for book in ("main", "other"):
            assert not _same(grids[book], daemon_grids[book]), book
        cells = np.add(daemon_grids["main"]["pnl"], daemon_grids["other"]["pnl"])
        assert_allclose(grids["*"]["pnl"], cells, rtol=1e-12, atol=1e-9)
        assert grids["*"]["stress_loss"] == pytest.approx(-cells.min(), rel=1e-12)

        # The books' margin: the daemon's, each underlying margined alone and the totals summed.
        daemon_margin = await _hash(r, whole_key.replace(":var:", ":margin:"))
        margin = await _hash(r, agg_key.replace(":var:", ":margin:"))
        assert set(margin) == set(daemon_margin) == {"main", "other"}
        assert margin["main"]["underlyings"] == ["BTC", "ETH"]
        for book in ("main", "other"):
            assert daemon_margin[book]["status"] == "ok", book
            assert daemon_margin[book]["margin_im"] > 0.0, book
            assert not _same(margin[book], daemon_margin[book]), book

        # The books' liquidity: the costs summed, on the whole book's VaR and ES.
        daemon_liq = await _hash(r, whole_key.replace(":var:", ":liquidity:"))
        liq = await _hash(r, agg_key.replace(":var:", ":liquidity:"))
        assert set(liq) == set(daemon_liq) == {"main", "other"}
        for book in ("main", "other"):
            assert daemon_liq[book]["exit_cost_usd"] > 0.0, book  # the options' spreads
            assert daemon_liq[book]["lvar"] > daemon_liq[book]["var"], book
            assert not _same(liq[book], daemon_liq[book]), (book, liq[book], daemon_liq[book])

        # The rules, checked by the aggregator on the whole books' figures: the daemon's alerts
        # (and the firm's stress), each raised by the restarted aggregator at its figure.
        daemon_alerts = await _hash(r, whole_key.replace(":var:snapshot", ":alerts:active"))
        alerts = await _hash(r, agg_key.replace(":var:snapshot", ":alerts:active"))
        assert set(daemon_alerts) == {f"{k}:{b}" for k in ("var_hist", "stress")
                                      for b in ("main", "other", "*")} - {"stress:*"}  # fmt: skip
        assert set(alerts) == set(daemon_alerts) | {"stress:*"}
        for b in ("main", "other", "*"):
            assert alerts[f"var_hist:{b}"]["value"] == final[b]["var_historical"], b
            assert alerts[f"stress:{b}"]["value"] == grids[b]["stress_loss"], b
    finally:
        for p in procs:
            _stop(p)
        await r.aclose()


def test_an_aggregator_without_a_common_scenario_set_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text('[redis]\nprefix = "x"\n\n[risk]\nmc_scenarios = 100\n')
    done = subprocess.run(  # noqa: S603  # our own console script, fixed arguments
        [str(RISKD), "aggregate", "-c", str(path)], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert b"`$.risk.scenario_underlyings`" in done.stderr


async def test_a_shard_payload_that_does_not_decode_is_left_out_and_counted(
    tmp_path: Path, redis_server: RedisServer, unique: str
) -> None:
    """A shard's snapshot holding a payload of another schema (a shard of another version):
    the aggregator reads the others, counts and logs that one, and goes on."""
    path = tmp_path / "agg.toml"
    path.write_text(f'[redis]\nurl = "{redis_server.url}"\nprefix = "{unique}"\n{RISK}')
    agg = build(load_config(path), path)
    r = Redis.from_url(redis_server.url)
    try:
        good = StressPayload(
            ts_ns=1, valuation_ts_ns=1, book="a", underlyings=["BTC"], spot=[0.0], vol=[0.0],
            pnl=[[0.0]], stress_loss=-0.0, excluded=[], units={},
        )  # fmt: skip
        await r.hset(
            f"{unique}:s:stress:snapshot",
            mapping={"a": msgspec.json.encode(good), "b": b'{"book": "b", "pnl": "no grid"}'},
        )
        books = ["a", "b", "c"]
        (raw,) = await agg._snapshots(f"{unique}:s", books, ["stress:"])
        got = agg._decoded(f"{unique}:s", "stress:", books, raw, StressPayload)
        assert got == {"a": good}
        assert agg.unread == 1
    finally:
        await agg.aclose()
        await agg.sink.aclose()
        await r.aclose()
