"""``[risk] history`` and ``record_history``: the levels the daemon records are appended to the
seed file only when asked (the demos' seed files are part of the checkout)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.risk.vectors import scenario_set
from engine.runtime.app import build
from engine.runtime.config import load_config

SEED = "date,underlying,price,vol\n2026-12-01,BTC,60000.0,0.5\n2026-12-02,BTC,61000.0,0.5\n"
NOW_NS = int(dt.datetime(2026, 12, 3, 9, 0, tzinfo=dt.UTC).timestamp()) * 1_000_000_000


@pytest.mark.parametrize("record", [True, False])
def test_a_recorded_level_is_appended_only_when_record_history(
    tmp_path: Path, record: bool
) -> None:
    (tmp_path / "history.csv").write_text(SEED, encoding="utf-8")
    path = tmp_path / "riskd.toml"
    path.write_text(
        f'[risk]\nhistory = "history.csv"\nrecord_history = {str(record).lower()}\n',
        encoding="utf-8",
    )
    daemon = build(load_config(path), path)

    daemon.risk._record_levels(NOW_NS, [("BTC", 62000.0)])

    assert daemon.risk.history.last_day("BTC") == dt.date(2026, 12, 3)  # kept in memory
    written = (tmp_path / "history.csv").read_text(encoding="utf-8")
    assert written == (SEED + "2026-12-03,BTC,62000.0,\n" if record else SEED)


def _shard(tmp_path: Path, name: str, cluster: str) -> Path:
    """A daemon's config in its own folder, on the shared history file ``../history.csv``."""
    (tmp_path / name).mkdir()
    path = tmp_path / name / "riskd.toml"
    path.write_text(
        f'{cluster}\n[risk]\nhistory = "../history.csv"\nscenario_underlyings = ["BTC", "ETH"]\n',
        encoding="utf-8",
    )
    return path


def test_shards_on_one_history_file_read_each_others_levels(tmp_path: Path) -> None:
    """Each shard records its own underlying's level of the day; once each has re-read the
    shared file, both hold the window one daemon recording both levels holds."""
    seed = SEED + SEED.replace("BTC,6", "ETH,3").split("\n", 1)[1]
    (tmp_path / "history.csv").write_text(seed, encoding="utf-8")
    (tmp_path / "one.csv").write_text(seed, encoding="utf-8")
    shards = [
        build(load_config(p), p)
        for p in (
            _shard(tmp_path, "s0", "[cluster]\nshard_id = 0\nshard_count = 2"),
            _shard(tmp_path, "s1", "[cluster]\nshard_id = 1\nshard_count = 2"),
        )
    ]
    one_path = _shard(tmp_path, "one", "")
    one_path.write_text(one_path.read_text().replace("../history.csv", "../one.csv"))
    one = build(load_config(one_path), one_path)
    levels = [("BTC", 62000.0), ("ETH", 3100.0)]
    one.risk._record_levels(NOW_NS, levels)
    for daemon, level in zip(shards, levels, strict=True):
        daemon.risk.shared_history()  # as read at start
        daemon.risk._record_levels(NOW_NS, [level])
    settings = one.config.risk.var_settings()
    want = scenario_set(one.risk.history, settings)
    assert want.history_days == 2
    assert scenario_set(shards[0].risk.history, settings).history_days == 1  # no ETH yet
    for daemon in shards:
        daemon.risk.shared_history()
        got = scenario_set(daemon.risk.history, settings)
        assert got.id == want.id
        assert got.history_days == 2
    one.risk.shared_history()  # not a shard: its window is its own
    assert one.risk.history.last_day("ETH") == dt.date(2026, 12, 3)
