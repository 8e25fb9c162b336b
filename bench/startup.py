"""Start-up: time to ready and peak memory of the daemon on 1M-position books, beside another
tree's code (main's, before the vectorised start) in the same run.

Two books, written as positions CSV files (``book,instrument,quantity,avg_price``):

- **options**: 1,000,000 rows over 2,000 Deribit options in 500 books (rows of the same book
  and instrument merge: about 632k lots);
- **distinct**: 1,000,000 rows over 1,000,000 distinct Deribit options in 500 books.

Each start runs in a fresh process: ``load_config`` + ``engine.runtime.app.build`` (positions
and journal loaded) + the daemon's start (``_start``: the first full reprice with every kernel
warm, the garbage collector's sweep). *Ready* is the wall time from the process's start
(interpreter, imports included) to the end of that start; the child reports its phases too.
Peak memory is the child's ``VmHWM`` (``/proc/self/status``). Before the measured starts, one
start per tree on a small book fills numba's cache (kernels are then loaded, not compiled).
Starts alternate between the trees, ``--repeats`` each; the report gives the median.

Run from the repository root::

    git worktree add /tmp/riskd-main main            # the code to compare with
    .venv/bin/python -m bench.startup --baseline /tmp/riskd-main \\
        --out bench/results/$(date -u +%F)-startup.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import universe

ROWS: Final = 1_000_000
BOOKS: Final = 500
OPTIONS: Final = 2_000
SEED: Final = 19
TARGETS: Final = {"options": (2.0, 400.0), "distinct": (6.0, 1000.0)}  # ready s, peak MB

# Run in the child, in the tree under test (its own `engine`): prints one JSON line.
_CHILD: Final = """
import time
t0 = time.perf_counter()
import asyncio, gc, json, sys
from pathlib import Path
import engine
from engine.runtime.app import _start, build
from engine.runtime.config import load_config
t_import = time.perf_counter()
path = Path(sys.argv[1])

async def main() -> dict[str, float]:
    config = load_config(path)
    daemon = build(config, path)
    t_build = time.perf_counter()
    await _start(daemon)
    t_ready = time.perf_counter()
    if daemon.portfolio.valuation_ns == 0:
        raise SystemExit("the first full reprice did not run")
    status = daemon.portfolio.instrument_status()
    return {"import_s": t_import - t0, "build_s": t_build - t_import,
            "start_s": t_ready - t_build, "lots": status.lots,
            "instruments": status.instruments, "engine": engine.__file__}

out = asyncio.run(main())
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        out["peak_mb"] = int(line.split()[1]) / 1024
print(json.dumps(out), flush=True)
"""


@dataclass(frozen=True, slots=True)
class Start:
    """One measured start."""

    ready_s: float  # process start to ready, seen from outside
    cpu_s: float  # the child's user + system CPU time (less sensitive to a loaded machine)
    import_s: float
    build_s: float
    start_s: float
    peak_mb: float
    lots: int


def write_book(path: Path, kind: str, now_ns: int, rows: int = ROWS) -> None:
    """The positions CSV of book ``kind`` (``options`` or ``distinct``)."""
    rng = np.random.default_rng(SEED)
    u = universe(OPTIONS if kind == "options" else rows, now_ns)
    inst = rng.integers(0, len(u), rows) if kind == "options" else rng.permutation(rows)
    book = rng.integers(0, BOOKS, rows)
    qty = rng.integers(1, 51, rows) * np.where(rng.random(rows) < 0.5, 1, -1)
    price = u.mark[inst] * rng.uniform(0.9, 1.1, rows)
    names = np.asarray(u.names, dtype=object)[inst]
    with path.open("w", encoding="utf-8") as f:
        f.write("book,instrument,quantity,avg_price\n")
        f.writelines(
            f"b{b:03d},{n},{q},{p:.8g}\n"
            for b, n, q, p in zip(book.tolist(), names, qty.tolist(), price.tolist(), strict=True)
        )


def write_config(folder: Path, positions: Path) -> Path:
    """A daemon config on ``positions``: no feeds, a Redis never contacted, no HTTP."""
    path = folder / f"{positions.stem}.toml"
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:9/0"\n'
        f'[portfolio]\npositions = "{positions.name}"\n[risk]\nenabled = false\n'
    )
    return path


def start(tree: Path, config: Path) -> Start:
    """One start of the daemon of ``tree`` on ``config``, in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0, cpu0 = time.perf_counter(), _children_cpu_s()
    done = subprocess.run(  # noqa: S603 (our interpreter, our script)
        [sys.executable, "-c", _CHILD, str(config)],
        cwd=tree, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    ready_s, cpu_s = time.perf_counter() - t0, _children_cpu_s() - cpu0
    if done.returncode != 0:
        raise RuntimeError(f"start of {tree} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    if not out["engine"].startswith(str(tree)):
        raise RuntimeError(f"the child imported {out['engine']}, not {tree}'s engine")
    return Start(
        ready_s, cpu_s, out["import_s"], out["build_s"], out["start_s"], out["peak_mb"],
        out["lots"],
    )  # fmt: skip


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(starts: list[Start]) -> Start:
    best = sorted(starts, key=lambda s: s.ready_s)[len(starts) // 2]
    return Start(
        statistics.median(s.ready_s for s in starts),
        statistics.median(s.cpu_s for s in starts),
        statistics.median(s.import_s for s in starts),
        statistics.median(s.build_s for s in starts),
        statistics.median(s.start_s for s in starts),
        statistics.median(s.peak_mb for s in starts),
        best.lots,
    )


def report(results: dict[tuple[str, str], list[Start]], trees: dict[str, Path]) -> str:
    """The markdown report: targets, both trees, ratios."""
    load = os.getloadavg()
    lines = [
        "# Start-up: 1M-position books (issue 19, item 1)",
        "",
        f"{dt.datetime.now(tz=dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, load average after the run "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. Trees: "
        + ", ".join(f"`{name}` = `{path}`" for name, path in trees.items()),
        "",
        "Median of the starts; *ready*: process start to the end of the daemon's start "
        "(imports, config, positions, journal, first full reprice with warm kernels); "
        "*CPU*: the start's user + system CPU time (all threads).",
        "",
        "| book | tree | ready s | CPU s | imports s | build s | start s | peak MB | lots "
        "| target |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for book, (ready_t, peak_t) in TARGETS.items():
        for name in trees:
            s = _median(results[(book, name)])
            ok = s.ready_s <= ready_t and s.peak_mb <= peak_t
            verdict = f"<= {ready_t:g} s, <= {peak_t:g} MB: {'PASS' if ok else 'FAIL'}"
            lines.append(
                f"| {book} | {name} | {s.ready_s:.2f} | {s.cpu_s:.2f} | {s.import_s:.2f} | "
                f"{s.build_s:.2f} | "
                f"{s.start_s:.2f} | {s.peak_mb:.0f} | {s.lots:,} | {verdict} |"
            )
    if len(trees) == 2:
        base, ours = list(trees)
        lines += ["", f"Ratios, `{base}` / `{ours}`:", ""]
        for book in TARGETS:
            b, o = _median(results[(book, base)]), _median(results[(book, ours)])
            lines.append(
                f"- {book}: ready {b.ready_s / o.ready_s:.1f}x faster, "
                f"CPU {b.cpu_s / o.cpu_s:.1f}x less, "
                f"peak memory {b.peak_mb / o.peak_mb:.1f}x smaller"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__)
    parser.add_argument("--baseline", type=Path, help="another tree to compare (main's)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    trees = {"this": Path(__file__).resolve().parent.parent}
    if args.baseline is not None:
        trees = {"baseline": args.baseline.resolve(), **trees}
    now_ns = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="riskd-startup-") as tmp:
        folder = Path(tmp)
        configs = {}
        for book in (*TARGETS, "warm"):
            rows = 2_000 if book == "warm" else args.rows
            write_book(folder / f"{book}.csv", "options" if book == "warm" else book, now_ns, rows)
            configs[book] = write_config(folder, folder / f"{book}.csv")
        for tree in trees.values():
            start(tree, configs["warm"])  # numba's cache filled: kernels load, not compile
        results: dict[tuple[str, str], list[Start]] = {}
        for _ in range(args.repeats):
            for book in TARGETS:
                for name, tree in trees.items():
                    s = start(tree, configs[book])
                    results.setdefault((book, name), []).append(s)
                    print(f"{book:9} {name:9} {s}", file=sys.stderr, flush=True)
    text = report(results, trees)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
