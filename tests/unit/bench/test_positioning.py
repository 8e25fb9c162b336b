"""bench/positioning.py: a quick run reports the kernel's profile beside the plain numpy one,
and their figures agree."""

from __future__ import annotations

import re

import pytest

from bench import positioning


def test_a_quick_run_reports_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert positioning.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Dealer gamma profile (")
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", out, re.MULTILINE)
    assert [r[0].split(" (")[0] for r in rows] == [
        "gamma profile, numba kernel",
        "same profile, plain numpy",
        "every positioning payload of the chain",
    ]
    diff = re.search(r"relative to the profile's largest: ([\d.e+-]+)", out)
    assert diff is not None
    assert float(diff[1]) < 1e-10
