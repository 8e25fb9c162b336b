"""What one redraw of the terminal view costs, with 10,000 positions, beside the engine's full
reprice of the same book.

The book of ``bench/latency.py`` (10,000 positions in 32 books, BTC and ETH options, hedges in
the perpetuals) is built into a daemon (``engine.runtime.app.build``, no feed, no Redis), given
its quotes and index levels, repriced in full and taken through one period of every risk family,
so that the view has what it has in a running daemon: 96 exposure rows, VaR and ES, margin and
hedges of 32 books, and alerts (rules on vega and USD delta that some keys break). Then, each
timed ``--repeats`` times (median, best):

- ``frame``: :meth:`TerminalView.frame`, the part of a redraw on the event loop;
- ``draw``: building the tables of that frame and writing them to a 160 x 50 terminal
  (``rich.live.Live``, as the view's worker thread does);
- ``full reprice``: ``EngineLoop.cycle(full=True)``, what the engine does every second (every
  position repriced, every key's payload built and handed to the sink), the baseline of the
  same run.

Run from the repository root::

    .venv/bin/python -m bench.view              # about 30 s (most of it building the book)
    .venv/bin/python -m bench.view --repeats 5  # quicker
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.live import Live

from bench.kernels import cpu_model, revision
from bench.latency import BOOKS, POSITIONS, build_book
from engine.clock import ManualClock
from engine.events import Quote, Tick
from engine.runtime.app import Daemon, build
from engine.runtime.config import load_config
from engine.runtime.panels import render
from engine.runtime.view import TerminalView

NOW_NS = 1_780_000_000 * 10**9
WIDTH, HEIGHT = 160, 50
EQUITY = ", ".join(f"book{b:02d} = 5e6" for b in range(BOOKS))
CONFIG = f"""\
[redis]
url = "redis://127.0.0.1:1/0"
[portfolio]
positions = "positions.csv"
[risk]
hedge_future = {{ BTC = "BTC-PERPETUAL", ETH = "ETH-PERPETUAL" }}
equity_usd = {{ {EQUITY} }}
[[alerts]]
name = "book_vega"
metric = "vega"
scope = "book"
above = 0.0
severity = "critical"
[[alerts]]
name = "btc_delta"
metric = "delta_usd"
scope = "underlying"
below = 0.0
"""


def _daemon(workdir: Path) -> Daemon:
    """The benchmark book in a daemon, every figure computed once."""
    book = build_book(NOW_NS)
    book.write_positions(workdir / "positions.csv")
    (workdir / "riskd.toml").write_text(CONFIG)
    clock = ManualClock(NOW_NS)
    daemon = build(load_config(workdir / "riskd.toml"), workdir / "riskd.toml", clock=clock)
    for name, level in book.indices:
        daemon.inbox.put(Tick(instrument=name, price=level, ts_event=NOW_NS, ts_recv=NOW_NS))
    for q in book.quotes:
        mark = q.mark
        daemon.inbox.put(
            Quote(
                instrument=q.instrument,
                bid=mark * 0.98,
                ask=mark * 1.02,
                mark=mark,
                iv=q.iv,
                underlying_price=q.forward,
                ts_event=NOW_NS,
                ts_recv=NOW_NS,
            )
        )
    daemon.engine.cycle(full=True)  # the alert rules raise on some books
    asyncio.run(daemon.risk.safe_period(list(daemon.risk.periods())))
    gc.collect()  # as the daemon does once started: its start state is no garbage
    gc.freeze()
    return daemon


def _times(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each (default 30)")
    args = parser.parse_args(argv)
    # As riskd does (engine/runtime/cli.py): OpenMP threads sleep between parallel regions.
    # Read when the first parallel kernel loads OpenMP, below.
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    with tempfile.TemporaryDirectory() as tmp:
        print("building the book and its risk...", file=sys.stderr)
        daemon = _daemon(Path(tmp))
    view = TerminalView(
        daemon.monitor.health, daemon.out, "redis://127.0.0.1:1/0", 0.5, daemon.clock, None
    )
    console = Console(
        file=io.StringIO(), force_terminal=True, width=WIDTH, height=HEIGHT, color_system="256"
    )
    live = Live(console=console, auto_refresh=False, vertical_overflow="ellipsis")
    live.start()
    frame = view.frame()
    rows = {
        "frame (event loop)": _times(view.frame, args.repeats),
        "draw (worker thread)": _times(
            lambda: live.update(render(frame), refresh=True), args.repeats
        ),
        "full reprice (baseline)": _times(lambda: daemon.engine.cycle(full=True), args.repeats),
    }
    live.stop()
    base = statistics.median(rows["full reprice (baseline)"])
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"# Terminal view redraw ({day}, {cpu_model()}, {os.cpu_count()} cores, riskd "
        f"{revision('engine', 'feeds')})\n"
    )
    print(
        f"{POSITIONS:,} positions in {BOOKS} books "
        f"({len(frame.exposures)} exposure rows, {len(frame.var)} VaR, {len(frame.margin)} "
        f"margin, {len(frame.hedges)} hedge payloads, {len(frame.active)} active alerts), "
        f"{WIDTH} x {HEIGHT} terminal, {args.repeats} runs each\n"
    )
    print("| step | median ms | best ms | median / full reprice |")
    print("|---|---:|---:|---:|")
    for name, times in rows.items():
        median = statistics.median(times)
        print(f"| {name} | {median * 1e3:.3f} | {min(times) * 1e3:.3f} | {median / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
