"""``[risk] history`` and ``record_history``: the levels the daemon records are appended to the
seed file only when asked (the demos' seed files are part of the checkout)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from engine.risk.vectors import scenario_set
from engine.runtime.app import build
from engine.runtime.config import load_config

HEADER = "date,underlying,price,vol\n"
SEED = HEADER + "2026-12-01,BTC,60000.0,0.5\n2026-12-02,BTC,61000.0,0.5\n"
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


def _shard(tmp_path: Path, name: str, cluster: str, record: bool = True, days: int = 250) -> Path:
    """A daemon's config in its own folder, on the shared history file ``../history.csv``."""
    (tmp_path / name).mkdir()
    path = tmp_path / name / "riskd.toml"
    path.write_text(
        f'{cluster}\n[risk]\nhistory = "../history.csv"\nscenario_underlyings = ["BTC", "ETH"]\n'
        f"record_history = {str(record).lower()}\nwindow_days = {days}\n",
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
        daemon.risk.common_window()  # as read at start
        daemon.risk._record_levels(NOW_NS, [level])
    settings = one.config.risk.var_settings()
    want = scenario_set(one.risk.history, settings)
    assert want.history_days == 2
    assert scenario_set(shards[0].risk.history, settings).history_days == 1  # no ETH yet
    for daemon in shards:
        assert scenario_set(daemon.risk.common_window(), settings).id == want.id
        got = scenario_set(daemon.risk.history, settings)
        assert got.id == want.id
        assert got.history_days == 2
    one.risk.common_window()  # not a shard: its window is its own
    assert one.risk.history.last_day("ETH") == dt.date(2026, 12, 3)


def test_shards_recording_in_memory_only_draw_the_same_common_set(tmp_path: Path) -> None:
    """With ``record_history`` off, each shard's recorded levels stay its own: the common set
    of every shard is drawn from the seed file alone, however differently they record (one
    shard two days of levels, pushing its oldest out of a full window, the other none, as after
    a restart), while the shard's own window keeps its levels."""
    lines = [
        f"2026-11-{d},{u},{p + 10 * d}.0,0.5"
        for d in range(20, 30)
        for u, p in (("BTC", 60000), ("ETH", 3000))
    ]
    (tmp_path / "history.csv").write_text(HEADER + "\n".join(lines) + "\n", encoding="utf-8")
    shards = [
        build(load_config(p), p)
        for p in (
            _shard(tmp_path, "s0", "[cluster]\nshard_id = 0\nshard_count = 2", False, days=10),
            _shard(tmp_path, "s1", "[cluster]\nshard_id = 1\nshard_count = 2", False, days=10),
        )
    ]
    day = 86_400 * 10**9
    shards[0].risk._record_levels(NOW_NS - 3 * day, [("BTC", 60500.0)])  # 2026-11-30
    shards[0].risk._record_levels(NOW_NS - 2 * day, [("BTC", 60600.0)])
    settings = shards[0].config.risk.var_settings()
    got = [scenario_set(d.risk.common_window(), settings) for d in shards]
    assert got[0].id == got[1].id
    assert got[0].history_days == 9  # the seed's ten days
    assert shards[0].risk.history.last_day("BTC") == dt.date(2026, 12, 1)
    assert (tmp_path / "history.csv").read_text(encoding="utf-8").count("\n") == 21


def test_a_level_dated_after_today_is_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A seed file holding a level after today (one a test once wrote from a clock in 2030)
    stops that underlying's recording until then: a warning says so, once, and names the day;
    the other underlyings record as before."""
    (tmp_path / "history.csv").write_text(SEED + "2030-12-27,BTC,60000.0,0.6\n", encoding="utf-8")
    path = tmp_path / "riskd.toml"
    path.write_text('[risk]\nhistory = "history.csv"\nrecord_history = false\n', encoding="utf-8")
    daemon = build(load_config(path), path)

    for _ in range(2):
        daemon.risk._record_levels(NOW_NS, [("BTC", 62000.0), ("ETH", 3100.0)])

    told = [r for r in caplog.records if r.getMessage().startswith("history holds a level")]
    assert [(r.underlying, r.last_day) for r in told] == [("BTC", "2030-12-27")]  # type: ignore[attr-defined]  # logging extras
    assert daemon.risk.history.last_day("ETH") == dt.date(2026, 12, 3)
