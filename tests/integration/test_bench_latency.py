"""The latency benchmark end to end (``python -m bench.latency --quick``): riskd as a real
process, the naive daemon, the relay and the bare consumer against real servers, and a report
with every row. Nothing here judges a figure: they depend on the machine (bench/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_quick_run_reports_every_scenario_beside_the_naive_daemon(tmp_path: Path) -> None:
    out = tmp_path / "latency.md"
    # Fixed argv of the benchmark, no shell.
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.latency", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    assert done.stdout == text
    assert re.search(r"- Date \(UTC\): \d{4}-\d\d-\d\d ", text)
    assert re.search(r"- Machine: .+, \d+ logical CPUs", text)
    ms = rf"{NUMBER} / {NUMBER} / {NUMBER}"
    # A: the three daemons measured (each took its probes), the target judged.
    assert re.search(
        rf"\| A: one probe quote every 0\.2 s \| {ms} \| {ms} \| {ms} \| {NUMBER}x \|", text
    )
    assert re.search(r"\| A: .*\| riskd p50 <= 1 ms and p99 <= 3 ms \| \*\*(not )?met\*\* \|", text)
    # B: riskd measured; the naive daemon may fall behind the background load (lost probes).
    assert re.search(
        rf"\| B: probes on quiet ETH keys, .* \| {ms} \| .* \| \*\*(not )?met\*\* \|", text
    )
    assert re.search(rf"\| C: sustained quotes/s .* \| {NUMBER}/s \| bare: {NUMBER}/s \| \|", text)
    for scenario in ("A", "B"):
        for daemon in ("riskd", "naive", "relay"):
            assert re.search(rf"\| {scenario} \| {daemon} \| 12 \| \d+ \|", text), (
                scenario,
                daemon,
            )
    assert re.search(r"The naive daemon handled [\d,]+ quotes", text)
    for consumer in ("bare consumer", "riskd"):
        assert re.search(rf"\| {consumer} \| {NUMBER} -> {NUMBER}", text), consumer
