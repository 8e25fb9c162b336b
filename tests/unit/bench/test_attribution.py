"""bench/attribution.py: a quick run reports each step beside the VaR, and riskd's figures agree
with the plain numpy attribution's."""

from __future__ import annotations

import re

import pytest

from bench import attribution


def test_a_quick_run_reports_every_step(capsys: pytest.CaptureFixture[str]) -> None:
    assert attribution.main(["--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# Risk attribution (")
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([\d.]+) \|$", out, re.MULTILINE)
    assert [r[0].split(" (")[0] for r in rows] == [
        "Monte Carlo VaR",
        "attribution by underlying, expiry, position, strategy",
        "attribution by position, plain numpy",
        "incremental + standalone by underlying and expiry",
        "incremental + standalone by strategy",
    ]
    sums = re.search(r"components sum to them: (.+)$", out, re.MULTILINE)
    assert sums is not None
    assert [x.split()[0] for x in sums[1].split("; ")] == [
        "underlying",
        "expiry",
        "position",
        "strategy",
    ]
    diff = re.search(r"component ES ([\d.e+-]+) USD, component VaR ([\d.e+-]+) USD", out)
    assert diff is not None
    assert float(diff[1]) < 1e-6
    assert float(diff[2]) < 1e-6
