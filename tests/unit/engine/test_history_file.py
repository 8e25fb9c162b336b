"""``[risk] history`` and ``record_history``: the levels the daemon records are appended to the
seed file only when asked (the demos' seed files are part of the checkout)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

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
