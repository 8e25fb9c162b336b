"""The shards benchmark end to end (``python -m bench.shards --quick``): one riskd and two
shards (BTC, ETH) as real processes against real servers, and a report with every row.
Nothing here judges a figure: they depend on the machine (bench/README.md)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NUMBER = r"[\d,]*[1-9][\d,]*(?:\.\d+)?|0\.\d*[1-9]\d*"  # a positive figure


def _positive(pattern: str, text: str) -> list[str]:
    """The groups of ``pattern`` in ``text``; fails if it is absent."""
    found = re.search(pattern, text)
    assert found is not None, pattern
    return list(found.groups())


def test_quick_run_reports_one_daemon_beside_two_shards(tmp_path: Path) -> None:
    out = tmp_path / "shards.md"
    # Fixed argv of the benchmark, no shell.
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "bench.shards", "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    text = out.read_text(encoding="utf-8")
    assert done.stdout == text
    assert re.search(r"- Date \(UTC\): \d{4}-\d\d-\d\d ", text)
    assert re.search(r"- Machine: .+, \d+ logical CPUs", text)
    assert re.search(r"riskd: .* at [0-9a-f]{12}", text)
    assert re.search(r"This machine has \d+ logical CPUs\. The two shards share them", text)
    n = rf"({NUMBER})"
    # Both setups measured, each figure positive, with its ratio.
    # A setup that fell behind at every probe (a busy machine) shows what it read.
    rate = rf"{n}(?: \(behind at (?:{NUMBER})\))?"
    _positive(rf"\| sustained quotes/s .* \| {rate} \| {rate} \| {n}x \|", text)
    _positive(
        rf"\| CPU per message, all riskd processes together, us \| {n} \| {n} \| {n}x \|", text
    )
    _positive(rf"\| scenario A p50, ms \| {n} \| {n} \| {n}x \|", text)
    _positive(rf"\| scenario A p99, ms \| {n} \| {n} \| {n}x \|", text)
    assert re.search(r"\| scenario A samples \(lost\) \| 12 \(\d+\) \| 12 \(\d+\) \|", text)
    # Each process: the one daemon and both shards, with their underlyings.
    for setup, process, underlyings in (
        ("one daemon", "riskd", r"BTC\+ETH"),
        ("two shards", "shard0", "BTC"),
        ("two shards", "shard1", "ETH"),
    ):
        _positive(rf"\| {setup} \| {process} \| {underlyings} \| {n} \| {n} \| {n}% \|", text)
    for setup in ("one daemon", "two shards"):
        _positive(rf"\| {setup} \| {n} -> {n}", text)
    # The sizing model: the measured cost, then every market's rows from its assumptions.
    _positive(rf"\*\*Measured\*\*: a shard's CPU = ([\d.]+) cores \+ {n} us per message", text)
    for row in (
        r"Deribit \| BTC options",
        r"Deribit \| ETH options",
        r"OPRA \| SPX \+ SPXW, at peak",
        r"OPRA \| SPY, at peak",
    ):
        _positive(rf"\| {row} \| {n} x {n} = {n} \| {n} \| ", text)
