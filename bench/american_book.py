"""American options in the portfolio (issue 18): a full chain of 20k options, half American
SPY-like (BSM on spot with a dividend yield, engine.american_kernels' fast scheme), half European
SPX weeklies, repriced with all Greeks through ``Portfolio.cycle(now, full=True)`` on 2 numba
threads, against the issue's 50 ms target; beside it the same book all European (the cost of
the American half) and the American half with its vols implied from marks.

The engine.american_kernels kernels alone are measured by bench/american.py.

Run from the repository root::

    .venv/bin/python -m bench.american_book              # about a minute
    .venv/bin/python -m bench.american_book --quick      # smoke run
    .venv/bin/python -m bench.american_book --out bench/results/$(date -u +%F)-american-book.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import math
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

if not __package__:  # run as a file: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba

from bench.kernels import LoadMeter, machine_lines
from engine import american_kernels as _ak
from engine.american import american
from engine.events import Quote, Tick
from engine.instruments import InstrumentRegistry
from engine.listed import format_osi_compact
from engine.state import Portfolio, UnderlyingParams

TARGET_MS = 50.0
BEFORE_TIERS_MS = 597.0
"""The mixed chain's full reprice before the fast scheme was tiered (2026-12-06, commit
252d76f, quiet VM): the "before" this run's figure is set against."""
THREADS = 2
SPY, SPX = 545.0, 5450.0
RATE, YIELD = 0.05, 0.013
VALUATION = dt.datetime(2024, 7, 1, 14, tzinfo=dt.UTC)


def _fridays(n: int) -> list[dt.date]:
    first = VALUATION.date() + dt.timedelta(days=(4 - VALUATION.weekday()) % 7 or 7)
    return [first + dt.timedelta(weeks=w) for w in range(n)]


def chain(n: int, american_half: bool = True) -> tuple[list[str], list[float]]:
    """``n`` option names (half SPY, half SPXW; SPY as SPXW when not ``american_half``): calls
    and puts on weekly expiries, strikes 0.8 to 1.2 of spot; and each one's quoted vol."""
    expiries = _fridays(25)
    per_side = max(1, n // 2 // (2 * len(expiries)))
    names: list[str] = []
    vols: list[float] = []
    halves = (("SPY", SPY, 0.0), ("SPXW", SPX, 0.0))
    if not american_half:  # the SPY half as SPX weeklies of strikes of their own
        halves = (("SPXW", SPX, 2.5), ("SPXW", SPX, 0.0))
    for root, spot, offset in halves:
        step = 0.4 * spot / per_side
        for day in expiries:
            for j in range(per_side):
                strike = round(0.8 * spot + j * step, 1 if root == "SPY" else 0) + offset
                for is_call in (True, False):
                    names.append(format_osi_compact(root, day, is_call, strike))
                    vols.append(0.12 + 0.1 * abs(j / per_side - 0.5))
    return names, vols


def portfolio(names: list[str], vols: list[float], from_marks: bool) -> Portfolio:
    """One lot of each of ``names``, quoted with their vols (or with the American price at
    that vol as a mark, when ``from_marks``), and fully priced once."""
    now = int(VALUATION.timestamp()) * 1_000_000_000
    params = {"SPY": UnderlyingParams(RATE, YIELD), "SPX": UnderlyingParams(RATE, YIELD)}
    p = Portfolio(InstrumentRegistry(), params)
    p.apply_tick(Tick(instrument="SPY", price=SPY, ts_event=now, ts_recv=now))
    p.apply_tick(Tick(instrument="SPX", price=SPX, ts_event=now, ts_recv=now))
    quotes = []
    for k, (name, vol) in enumerate(zip(names, vols, strict=True)):
        p.add_position(f"book{k % 4}", name, 1.0 + k % 7)
        mark: float | None = None
        iv: float | None = vol
        inst = p.registry.get(name)
        if from_marks and inst is not None and inst.underlying == "SPY":
            t = ((inst.expiry_ns or 0) - now) / (365.0 * 86_400e9)
            g = american(inst.is_call, SPY, inst.strike, t, RATE, YIELD, vol, accuracy="fast")
            mark, iv = float(g.price), None
        quotes.append(Quote(instrument=name, mark=mark, iv=iv, ts_event=now, ts_recv=now))
    p.apply_quotes(quotes)
    p.cycle(now, full=True)
    return p


def full_reprice_ms(p: Portfolio, repeats: int, cold: str) -> float:
    """Median ms of ``Portfolio.cycle(now, full=True)`` on :data:`THREADS` threads, GC off,
    each after a tick: SPY and SPX moved by 0.1 % (up, then down) and the clock by a second.
    ``cold``: "memo": each option's memo of boundaries emptied first (as after a change of
    every vol: the boundaries interpolated from the tables); "all": the tables too (every
    boundary solved, as at a start); "": read back (the live path)."""
    now = p.valuation_ns
    samples = []
    memo = p._market.memos.arrays["memo"]
    tables = p._market.tables
    gc.disable()
    try:
        for k in range(repeats):
            now += 1_000_000_000
            move = 1.001 if k % 2 == 0 else 1.0
            for name, spot in (("SPY", SPY), ("SPX", SPX)):
                p.apply_tick(Tick(instrument=name, price=spot * move, ts_event=now, ts_recv=now))
            if cold:
                memo[:] = math.nan
            if cold == "all":
                tables[:] = _ak.boundary_tables(_ak.FAST, tables.shape[0])
            t0 = time.perf_counter()
            p.cycle(now, full=True)
            samples.append((time.perf_counter() - t0) * 1e3)
    finally:
        gc.enable()
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.american_book", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2k options, 3 repeats")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    n, repeats = (2_000, 3) if args.quick else (20_000, 11)
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))  # type: ignore[attr-defined]  # numba.config is untyped
    meter = LoadMeter()
    names, vols = chain(n)
    mixed = portfolio(names, vols, from_marks=False)
    marks = portfolio(names, vols, from_marks=True)
    euro = portfolio(*chain(n, american_half=False), from_marks=False)
    rows = []
    for label, p, cold in (
        ("half American SPY, half European SPX; vols quoted", mixed, ""),
        ("the same, each option's memo emptied (every vol changed: boundaries interpolated "
         "from the tables)", mixed, "memo"),
        ("the same, memo and tables emptied (a start: every table solved)", mixed, "all"),
        ("the same, the American vols implied from marks", marks, ""),
        ("all European (the American half as SPX weeklies)", euro, ""),
    ):  # fmt: skip
        status = p.instrument_status()
        ms = full_reprice_ms(p, repeats, cold)
        rows.append((label, p.lot_count, status.stale_instruments, ms))
    share = meter.foreign_share()
    lines = [
        f"# American options in the portfolio, {dt.datetime.now(dt.UTC):%Y-%m-%d}",
        "",
        *machine_lines(),
        f"- other processes' CPU share during the run: "
        f"{'n/a' if share is None else f'{100 * share:.0f} %'}; numba threads: "
        f"{numba.get_num_threads()}",
        "",
        "`Portfolio.cycle(now, full=True)` (every instrument priced with all its Greeks, every "
        f"sum rebuilt) after a tick (SPY and SPX moved 0.1 %, the clock 1 s), median of "
        f"{repeats}, ms. American boundaries are read back from the last reprice while an "
        "option's vol and rates hold and its time left stays within 1 % "
        "(engine.american_kernels' memo), and each is interpolated in vol from a table of "
        "its expiry, rates and vol octave (the tables); the second row empties the memo "
        "first, the third the tables too:",
        "",
        "| book | options | unpriced (no vol: a mark at intrinsic value) | full reprice, ms |",
        "|---|---|---|---|",
        *(f"| {label} | {n_opt} | {bad} | {ms:.1f} |" for label, n_opt, bad, ms in rows),
        "",
        f"Target: {TARGET_MS:.0f} ms for the mixed chain of {n} options: "
        f"**{'PASS' if rows[0][3] <= TARGET_MS else 'FAIL'}** ({rows[0][3]:.1f} ms; before the "
        f"fast scheme was tiered, {BEFORE_TIERS_MS:.0f} ms on 20,000 options, "
        f"{BEFORE_TIERS_MS / rows[0][3]:.1f}x this run's time).",
    ]
    lines.append(
        f"Every boundary found again, from the tables (the second row): "
        f"**{'PASS' if rows[1][3] <= TARGET_MS else 'FAIL'}** ({rows[1][3]:.1f} ms); every "
        f"table solved (the third): **{'PASS' if rows[2][3] <= TARGET_MS else 'FAIL'}** "
        f"({rows[2][3]:.1f} ms)."
    )
    report = "\n".join(lines) + "\n"
    sys.stdout.write(report)
    if args.out:
        args.out.write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
