"""The dashboard benchmark end to end (``python -m bench.dashboard --quick``): riskd as a real
process with 10 WebSocket clients and a Chromium page, real servers, and a report with every
row. Nothing here judges a figure: they depend on the machine (bench/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]+(?:\.\d+)?"


def test_quick_run_reports_throughput_with_and_without_browsers_and_latency(
    tmp_path: Path,
) -> None:
    out = tmp_path / "dashboard.md"
    # Fixed argv of the benchmark, no shell.
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.dashboard", "--quick", "--samples", "5", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    assert done.stdout == text
    assert re.search(r"- Date \(UTC\): \d{4}-\d\d-\d\d ", text)
    assert re.search(r"- Machine: .+, \d+ logical CPUs", text)
    assert re.search(
        rf"\| sustained quotes/s \| {NUMBER} / {NUMBER} \(median {NUMBER}\) \| {NUMBER} \(median "
        rf"{NUMBER}\) \| {NUMBER}x \| >= 0\.95x .*\| \*\*(not )?met\*\* \|",
        text,
    )
    rows = re.findall(r"^\| (no browser|10 browsers) \| .* \|$", text, re.MULTILINE)
    assert rows == ["no browser", "10 browsers", "no browser"]
    assert re.search(
        rf"\| quote to the page's DOM, ms \| {NUMBER} \| .* \| 5 \| p50 <= 250 ms \| "
        r"\*\*(not )?met\*\* \|",
        text,
    )
    assert re.search(rf"{NUMBER} messages/s and {NUMBER} KiB/s each", text)
