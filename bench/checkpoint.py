"""Restart from a checkpoint against a full journal replay (issue 19, item 3): a 1M-position
book (``bench.startup``'s *options* book: 1,000,000 rows over 2,000 Deribit options in 500
books) with a 100,000-fill journal, both kinds of start in one run.

Set-up (not timed as a start): the positions file; the journal, 100k fills over the book's
instruments (new lots and existing ones, some with no price, each with an id); a checkpoint
taken by the daemon's own :class:`~engine.runtime.resume.Checkpointer` after replaying the
journal's first ``100k - tail`` fills, the rest (``--tail``) then appended. While that
checkpoint is written, a probe task on the event loop records how late its 0.5 ms sleeps wake:
the longest the loop was held.

Each measured start runs in a fresh process: ``load_config`` + ``build`` (positions or
checkpoint, journal) + the daemon's start (first full reprice, kernels warm). *Ready*: from the
process's start to the end of that. The starts alternate between the two configurations
(``--repeats`` each; the report gives medians), and each child reports a SHA-256 of its lots
(books, instruments, quantities and costs to the bit): both kinds of start must give the same.

Run from the repository root::

    .venv/bin/python -m bench.checkpoint --out bench/results/$(date -u +%F)-checkpoint.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

import msgspec
import numpy as np

if not __package__:  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pipeline import universe
from bench.startup import BOOKS, OPTIONS, ROWS, write_book
from engine.events import Fill

FILLS: Final = 100_000
TAIL: Final = 10_000
TARGET_S: Final = 3.0
SEED: Final = 23
ROOT: Final = Path(__file__).resolve().parent.parent

# Run in the child: one start, then a digest of the lots. Prints one JSON line.
_CHILD: Final = """
import time
t0 = time.perf_counter()
import asyncio, hashlib, json, sys
from pathlib import Path
from engine.runtime.app import _start, build
from engine.runtime.config import load_config
t_import = time.perf_counter()
path = Path(sys.argv[1])

async def main() -> dict[str, object]:
    daemon = build(load_config(path), path)
    t_build = time.perf_counter()
    await _start(daemon)
    t_ready = time.perf_counter()
    lots = daemon.portfolio.lot_state()
    h = hashlib.sha256(json.dumps([list(lots.books), list(lots.instruments)]).encode())
    for column in (lots.book, lots.instrument, lots.quantity, lots.cost, lots.has_cost):
        h.update(column.tobytes())
    journal = daemon.inbox.journal
    return {"import_s": t_import - t0, "build_s": t_build - t_import,
            "start_s": t_ready - t_build, "lots": int(lots.quantity.size),
            "resumed_at": journal.resumed_at if journal else 0, "state": h.hexdigest()}

out = asyncio.run(main())
for line in Path("/proc/self/status").read_text().splitlines():
    if line.startswith("VmHWM:"):
        out["peak_mb"] = int(line.split()[1]) / 1024
print(json.dumps(out), flush=True)
"""

# Run in a child: replay the journal's head, write a checkpoint with the loop probed.
_MAKER: Final = """
import asyncio, hashlib, json, sys, time
from pathlib import Path
from engine.runtime.app import _start, build
from engine.runtime.config import load_config
path = Path(sys.argv[1])

async def probe(late: list[float], done: asyncio.Event) -> None:
    while not done.is_set():
        t = time.perf_counter()
        await asyncio.sleep(0.0005)
        late.append(time.perf_counter() - t - 0.0005)

async def probed(work, seconds: float = 0.0) -> tuple[list[float], object]:
    late: list[float] = []
    done = asyncio.Event()
    task = asyncio.ensure_future(probe(late, done))
    await asyncio.sleep(0.01)
    late.clear()
    out = await work() if work else await asyncio.sleep(seconds)
    done.set()
    await task
    return late, out

async def main() -> dict[str, float]:
    daemon = build(load_config(path), path)
    await _start(daemon)  # as the daemon: first full cycle, GIL switch interval, gc.freeze
    t = time.perf_counter()
    late, header = await probed(daemon.checkpointer.checkpoint)
    total = time.perf_counter() - t
    quiet, _ = await probed(None, total)  # the same time, no checkpoint: the machine's own

    def spin() -> None:  # a worker as busy, that never holds the GIL (sha256 of 8 MB lets go)
        data, end = bytes(8 << 20), time.perf_counter() + total
        while time.perf_counter() < end:
            hashlib.sha256(data)

    control, _ = await probed(lambda: asyncio.to_thread(spin))
    size = Path(daemon.checkpointer.path).stat().st_size

    def p(xs: list[float], q: float) -> float:
        return sorted(xs)[min(int(len(xs) * q), len(xs) - 1)] * 1e3

    return {"write_s": total, "loop_max_late_ms": p(late, 1.0), "loop_p99_late_ms": p(late, 0.99),
            "quiet_max_late_ms": p(quiet, 1.0), "quiet_p99_late_ms": p(quiet, 0.99),
            "control_max_late_ms": p(control, 1.0), "control_p99_late_ms": p(control, 0.99),
            "probes": len(late), "bytes": size, "offset": header.journal_offset}

print(json.dumps(asyncio.run(main())), flush=True)
"""


def write_journal(positions: Path, now_ns: int, n: int) -> list[bytes]:
    """The journal's header line and ``n`` fill lines over the book's instruments."""
    from engine.runtime.journal import positions_digest  # the daemon's own digest

    rng = np.random.default_rng(SEED)
    u = universe(OPTIONS, now_ns)
    inst = rng.integers(0, len(u), n)
    book = rng.integers(0, BOOKS + 50, n)  # some books new to the file
    qty = rng.integers(1, 21, n) * np.where(rng.random(n) < 0.5, 1, -1)
    price = u.mark[inst] * rng.uniform(0.9, 1.1, n)
    no_price = rng.random(n) < 0.02
    names = np.asarray(u.names, dtype=object)[inst]
    encode = msgspec.json.Encoder().encode
    digest = positions_digest(positions.read_text(encoding="utf-8"))
    lines = [encode({"v": 2, "positions_sha256": digest})]
    for k, (b, name, q, p, none) in enumerate(
        zip(book.tolist(), names, qty.tolist(), price.tolist(), no_price.tolist(), strict=True)
    ):
        fill = Fill(book=f"b{b:03d}", instrument=name, quantity=float(q),
                    price=None if none else float(f"{p:.8g}"), fill_id=f"f{k}",
                    ts_event=now_ns, ts_recv=now_ns)  # fmt: skip
        lines.append(encode(fill))
    return lines


def write_configs(folder: Path) -> tuple[Path, Path]:
    """Two daemon configs on the same positions and journal: with and without a checkpoint."""
    base = (
        '[redis]\nurl = "redis://127.0.0.1:9/0"\n[risk]\nenabled = false\n'
        '[portfolio]\npositions = "options.csv"\njournal = "fills.jsonl"\n'
    )
    replay = folder / "replay.toml"
    replay.write_text(base)
    resume = folder / "resume.toml"
    resume.write_text(base + '[checkpoint]\npath = "book.ckpt"\ninterval_s = 3600\n')
    return resume, replay


def child(script: str, config: Path) -> dict[str, object]:
    """Run ``script`` on ``config`` in a fresh process of this tree; its JSON line, and the
    wall time from its start to its end as ``ready_s``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(  # noqa: S603 (our interpreter, our script)
        [sys.executable, "-c", script, str(config)],
        cwd=ROOT, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"child failed:\n{done.stderr[-3000:]}")
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    out["ready_s"] = wall
    return out


def report(
    made: dict[str, object], runs: dict[str, list[dict[str, object]]], args: argparse.Namespace
) -> str:
    load = os.getloadavg()

    def med(kind: str, key: str) -> float:
        return statistics.median(float(str(r[key])) for r in runs[kind])

    lines = [
        "# Restart from a checkpoint: 1M-position book, 100k-fill journal (issue 19, item 3)",
        "",
        f"{dt.datetime.now(tz=dt.UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
        f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, load average after the run "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}.",
        "",
        f"Book: {args.rows:,} rows over {OPTIONS:,} options in {BOOKS} books; journal: "
        f"{args.fills:,} fills; checkpoint after the first {args.fills - args.tail:,}, tail "
        f"{args.tail:,}. Median of "
        f"{len(runs['checkpoint'])} starts each, alternating; *ready*: process start to the "
        "end of the daemon's start (imports, config, book, journal, first full reprice).",
        "",
        "| start | ready s | imports s | build s | start s | peak MB | lots | target |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for kind in ("checkpoint", "full replay"):
        ready = med(kind, "ready_s")
        verdict = f"<= {TARGET_S:g} s: {'PASS' if ready <= TARGET_S else 'FAIL'}"
        lines.append(
            f"| {kind} + {'tail' if kind == 'checkpoint' else 'journal'} | {ready:.2f} | "
            f"{med(kind, 'import_s'):.2f} | {med(kind, 'build_s'):.2f} | "
            f"{med(kind, 'start_s'):.2f} | {med(kind, 'peak_mb'):.0f} | "
            f"{int(med(kind, 'lots')):,} | {verdict if kind == 'checkpoint' else ''} |"
        )
    states = {str(r["state"]) for rs in runs.values() for r in rs}
    ratio = med("full replay", "ready_s") / med("checkpoint", "ready_s")
    build_ratio = med("full replay", "build_s") / med("checkpoint", "build_s")
    lines += [
        "",
        f"- Ready {ratio:.1f}x faster from the checkpoint (build: {build_ratio:.1f}x).",
        f"- Same lots from both (SHA-256 of books, instruments, quantities, costs): "
        f"{'yes' if len(states) == 1 else 'NO'}.",
        f"- The checkpoint: {int(str(made['bytes'])) / 1e6:.1f} MB, written in "
        f"{float(str(made['write_s'])):.2f} s (capture + journal prefix hash + write + fsync); "
        f"the event loop's longest stall meanwhile {float(str(made['loop_max_late_ms'])):.2f} ms "
        f"(p99 {float(str(made['loop_p99_late_ms'])):.2f} ms over {made['probes']} probes of "
        "0.5 ms sleeps). Over as long a time just after: with nothing else running, longest "
        f"{float(str(made['quiet_max_late_ms'])):.2f} ms, p99 "
        f"{float(str(made['quiet_p99_late_ms'])):.2f} ms; with a worker thread as busy that "
        "never holds the GIL (SHA-256 of 8 MB buffers), longest "
        f"{float(str(made['control_max_late_ms'])):.2f} ms, p99 "
        f"{float(str(made['control_p99_late_ms'])):.2f} ms: what a second busy thread costs "
        "the loop on this machine without any GIL held.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.checkpoint", description=__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--fills", type=int, default=FILLS)
    parser.add_argument("--tail", type=int, default=TAIL)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    now_ns = time.time_ns()
    with tempfile.TemporaryDirectory(prefix="riskd-checkpoint-") as tmp:
        folder = Path(tmp)
        positions = folder / "options.csv"
        write_book(positions, "options", now_ns, args.rows)
        lines = write_journal(positions, now_ns, args.fills)
        head = len(lines) - args.tail
        (folder / "fills.jsonl").write_bytes(b"\n".join(lines[:head]) + b"\n")
        resume, replay = write_configs(folder)
        made = child(_MAKER, resume)  # replays the head (numba's cache filled too)
        with (folder / "fills.jsonl").open("ab") as f:
            f.write(b"\n".join(lines[head:]) + b"\n")
        print(f"checkpoint made: {made}", file=sys.stderr, flush=True)
        runs: dict[str, list[dict[str, object]]] = {"checkpoint": [], "full replay": []}
        for _ in range(args.repeats):
            for kind, config in (("checkpoint", resume), ("full replay", replay)):
                r = child(_CHILD, config)
                runs[kind].append(r)
                print(f"{kind:12} {r}", file=sys.stderr, flush=True)
        for r in runs["checkpoint"]:
            if r["resumed_at"] != made["offset"]:
                raise RuntimeError(f"a start did not resume from the checkpoint: {r}")
    text = report(made, runs, args)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
