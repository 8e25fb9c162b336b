"""bench/view.py: a short run reports each step of a redraw beside the full reprice."""

from __future__ import annotations

import re

import pytest

from bench import view


def test_a_short_run_reports_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert view.main(["--repeats", "2"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Terminal view redraw (")
    assert "10,000 positions in 32 books (96 exposure rows, 32 VaR, 32 margin, 64 hedge" in out
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|$", out, re.MULTILINE)
    assert [r[0] for r in rows] == [
        "frame (event loop)",
        "draw (worker thread)",
        "full reprice (baseline)",
    ]
    assert rows[-1][3] == "1.000"
    active = int(re.search(r"(\d+) active alerts", out)[1])  # type: ignore[index]  # printed
    assert active > 0
