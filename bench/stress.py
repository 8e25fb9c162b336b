"""CPU of the risk period's stress grids and margin (riskd issues 15 and 19): every book's grid
in one revaluation per distinct instrument (``engine.risk.stress.stress_grids``, what the daemon
runs) against full revaluation position by position, one book at a time (the daemon's path
before, kept here as the reference), in the same run, with the figures of both compared; the
same for margin.

The book is the latency benchmark's (``bench.latency.build_book``): 10,000 positions in 32 books
over 448 Deribit-like coin-settled options on BTC and ETH (each book holds about 310 of the 384
bulk options and its own two probe options), loaded into a ``Portfolio``, quoted, repriced,
and read with ``books_risk()`` as the risk task reads it. Timed in process CPU time
(``time.process_time()``: every thread of this process, so the numba threads too), the two
paths alternating, ``--rounds`` times each:

- *stress*: the ``stress`` payloads of all 32 books;
- *margin*: the ``margin`` payloads of all 32 books at once, each distinct instrument revalued
  once (``engine.risk.book_margin.margin_payloads``), against each book's portfolio margin,
  SPAN and standard margin by the pure functions revaluing position by position, book by book
  (the daemon's path before);
- *period*: ``risk_payloads`` of the families ``var``, ``stress`` and ``margin`` (the old path:
  ``var`` by ``risk_payloads``, then the old stress payloads and the old margins).

The attribution and capital payloads (``attribution_payloads``, every 60 s by default) are timed
once with ``--attribution`` (tens of seconds of CPU on this book): stress does not change them.

Run from the repository root::

    .venv/bin/python -m bench.stress                  # about a minute after the kernels compile
    .venv/bin/python -m bench.stress --quick          # 3 rounds
    .venv/bin/python -m bench.stress --out bench/results/$(date -u +%F)-stress.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.kernels import LoadMeter, machine_lines
from bench.latency import UNDERLYINGS, build_book
from engine.events import Quote
from engine.instruments import InstrumentRegistry
from engine.outputs import StressPayload
from engine.risk import margin
from engine.risk.book_margin import margin_payloads
from engine.risk.breakdown import attribution_payloads
from engine.risk.history import MoveHistory
from engine.risk.report import RiskConfig, risk_payloads, stress_payloads
from engine.risk.scenarios import ScenarioBook, ScenarioPnL, scenario_pnl
from engine.state import BookRisk, Portfolio

HISTORY_DAYS = 60


def portfolio(now_ns: int) -> tuple[list[BookRisk], int]:
    """The latency benchmark's book in a Portfolio, every option quoted with its index price,
    repriced at ``now_ns``; its books as the risk task copies them, and their instruments."""
    b = build_book(now_ns)
    p = Portfolio(InstrumentRegistry())
    for book, name, qty, avg in b.positions:
        p.add_position(book, name, qty, avg)
    index = {u.name: u.spot for u in UNDERLYINGS}
    p.apply_quotes(
        Quote(
            instrument=q.instrument,
            bid=q.mark * 0.98,
            ask=q.mark * 1.02,
            mark=q.mark,
            iv=q.iv,
            underlying_price=q.forward,
            index_price=index[q.underlying],
            ts_event=now_ns,
            ts_recv=now_ns,
        )
        for q in b.quotes
    )
    p.cycle(now_ns, True)
    return list(p.books_risk().values()), len(b.quotes)


def history(seed: int = 1) -> MoveHistory:
    """40 days of moves of BTC and ETH (3 % daily, vol moves of 5 %)."""
    h = MoveHistory(HISTORY_DAYS)
    rng = np.random.default_rng(seed)
    for d in range(40):
        day = dt.date(2026, 10, 1) + dt.timedelta(days=d)
        for u in UNDERLYINGS:
            price = u.spot * math.exp(0.03 * rng.standard_normal())
            h.record(day, u.name, price, u.atm_vol * (1.0 + 0.05 * rng.standard_normal()))
    return h


def full_revaluation_payloads(
    books: Sequence[BookRisk], cfg: RiskConfig, now_ns: int
) -> list[StressPayload]:
    """The stress payloads as the daemon made them before: each book revalued position by
    position (``scenario_pnl``), one book at a time."""
    spot, vol = np.asarray(cfg.stress_spot), np.asarray(cfg.stress_vol)
    ret = np.repeat(np.log1p(spot), vol.size)
    dvol = np.tile(vol, spot.size)
    out = []
    for br in books:
        n_und = max(len(br.underlyings), 1)
        res = scenario_pnl(
            br.positions,
            np.repeat(ret[:, None], n_und, axis=1),
            np.repeat(dvol[:, None], n_und, axis=1),
            0.0,
        )
        pnl = res.pnl.reshape(spot.size, vol.size)
        out.append(
            StressPayload(
                ts_ns=now_ns,
                valuation_ts_ns=br.valuation_ns,
                book=br.book,
                underlyings=br.underlyings,
                spot=spot.tolist(),
                vol=vol.tolist(),
                pnl=pnl.tolist(),
                stress_loss=float(-pnl.min()),
                excluded=[br.instrument(i) for i in res.excluded.tolist()],
                units={},
            )
        )
    return out


def per_position(book: ScenarioBook, ret: Any, dvol: Any, horizon_days: float) -> ScenarioPnL:
    """``scenario_pnl`` under another name: ``pnl_by_underlying`` then revalues each
    underlying position by position (its path before distinct instruments were shared)."""
    return scenario_pnl(book, ret, dvol, horizon_days)


def margins_book_by_book(books: Sequence[BookRisk], cfg: RiskConfig) -> list[tuple[float, ...]]:
    """Each book's portfolio-margin IM, SPAN requirement and standard IM (USD), position by
    position and book by book: the daemon's margin path before (the reference)."""
    out: list[tuple[float, ...]] = []
    for br in books:
        unds = br.underlyings
        pm = margin.deribit_portfolio_margin(
            br.positions, br.prices, [cfg.pm_params(u) for u in unds], revalue=per_position
        )
        span = margin.span_margin(br.positions, len(unds), cfg.span_params(), revalue=per_position)
        std = margin.deribit_standard_margin(
            br.positions, len(unds), [cfg.standard_params(u) for u in unds]
        )
        out.append((pm.margin.initial_usd.sum(), span.requirement.sum(), std.initial_usd.sum()))
    return out


def margins_together(
    books: Sequence[BookRisk], cfg: RiskConfig, now: int
) -> list[tuple[float, ...]]:
    """The same figures of the margin payloads of all books at once (what the daemon runs)."""
    return [
        (m.margin_im or math.nan, m.margin_span or math.nan, m.margin_standard_im or math.nan)
        for m in margin_payloads(books, cfg, now)
    ]


def gross_value_usd(br: BookRisk) -> float:
    """Sum of |weight| x max(X, K) over the book's options: the scale of the figures' rounding."""
    b = br.positions
    return float(np.sum(np.abs(b.weight) * np.maximum(b.X, b.strike)))


def compare(new: Sequence[StressPayload], old: Sequence[StressPayload], books: Sequence[BookRisk]
            ) -> tuple[float, float, float, bool]:  # fmt: skip
    """Largest |new - old| of a grid cell relative to the cell's |old| and to the book's gross
    value, of ``stress_loss`` relative to itself, and whether the excluded names agree."""
    cell = gross = loss = 0.0
    same = True
    for n, o, br in zip(new, old, books, strict=True):
        a, b = np.asarray(n.pnl), np.asarray(o.pnl)
        cell = max(cell, float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300))))
        gross = max(gross, float(np.max(np.abs(a - b))) / gross_value_usd(br))
        loss = max(loss, abs(n.stress_loss - o.stress_loss) / abs(o.stress_loss))
        same = same and n.excluded == o.excluded and n.book == o.book
    return cell, gross, loss, same


def cpu_s(fn: Callable[[], object]) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def alternate(pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]], rounds: int
              ) -> dict[str, tuple[list[float], list[float]]]:  # fmt: skip
    """Each (new, old) pair timed ``rounds`` times, new and old alternating (old first on odd
    rounds), after one warm-up call of each."""
    out: dict[str, tuple[list[float], list[float]]] = {k: ([], []) for k in pairs}
    for new, old in pairs.values():
        new(), old()
    for r in range(rounds):
        for name, (new, old) in pairs.items():
            if r % 2:
                t_old, t_new = cpu_s(old), cpu_s(new)
            else:
                t_new, t_old = cpu_s(new), cpu_s(old)
            out[name][0].append(t_new)
            out[name][1].append(t_old)
        print(f"round {r + 1}/{rounds}", file=sys.stderr)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    ap.add_argument("--attribution", action="store_true", help="time attribution once too")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rounds = 3 if args.quick else args.rounds
    meter = LoadMeter()
    started = dt.datetime.now(dt.UTC)
    now = time.time_ns()
    books, n_inst = portfolio(now)
    h, cfg = history(), RiskConfig()
    n_pos = sum(br.positions.kind.size for br in books)
    new_stress = stress_payloads(books, cfg, now)
    old_stress = full_revaluation_payloads(books, cfg, now)
    cell, gross, loss, same = compare(new_stress, old_stress, books)

    def period_new() -> object:
        return risk_payloads(books, {}, [], h, cfg, ["var", "stress", "margin"], now, now)

    def period_old() -> object:
        out: list[Any] = risk_payloads(books, {}, [], h, cfg, ["var"], now, now)
        return [*out, *full_revaluation_payloads(books, cfg, now), margins_book_by_book(books, cfg)]

    new_margin, old_margin = margins_together(books, cfg, now), margins_book_by_book(books, cfg)
    margin_rel = max(
        abs(a - b) / abs(b) for m, o in zip(new_margin, old_margin, strict=True)
        for a, b in zip(m, o, strict=True)
    )  # fmt: skip

    times = alternate(
        {
            "stress payloads, 32 books": (
                lambda: stress_payloads(books, cfg, now),
                lambda: full_revaluation_payloads(books, cfg, now),
            ),
            "margin payloads, 32 books": (
                lambda: margin_payloads(books, cfg, now),
                lambda: margins_book_by_book(books, cfg),
            ),
            "risk period: var + stress + margin": (period_new, period_old),
        },
        rounds,
    )
    att_s = None
    if args.attribution:
        att_s = cpu_s(lambda: attribution_payloads(books, h, cfg, ["attribution", "capital"],
                                                   now, now))  # fmt: skip
    foreign = meter.foreign_share()
    lines = [
        "# Stress grids of every book in one per-instrument revaluation (issues 15 and 19)",
        "",
        f"- Date (UTC): {started:%Y-%m-%d %H:%M} to {dt.datetime.now(dt.UTC):%H:%M}",
        *machine_lines(),
        f"- Load: other processes used "
        f"{'?' if foreign is None else f'{100 * foreign:.0f} %'} of all CPUs while it ran "
        f"(load average at the start {meter.loadavg})",
        f"- Book: {n_pos:,} positions in {len(books)} books over {n_inst} options "
        f"(bench.latency.build_book); grid {len(cfg.stress_spot)} x {len(cfg.stress_vol)}; "
        f"VaR {cfg.mc_scenarios:,} Monte Carlo scenarios and {HISTORY_DAYS}-day window",
        f"- Process CPU time per call, {rounds} alternating rounds (new, old), medians",
        "",
        "| | new (per instrument, all books at once) | old (per position, book by book) | "
        "old / new |",
        "|---|---|---|---|",
    ]
    for name, (t_new, t_old) in times.items():
        m_new, m_old = statistics.median(t_new), statistics.median(t_old)
        lines.append(f"| {name} | {1e3 * m_new:.1f} ms | {1e3 * m_old:.1f} ms | "
                     f"{m_old / m_new:.2f}x |")  # fmt: skip
    lines += [
        "",
        "Every round, CPU ms (new / old): "
        + "; ".join(
            f"{name}: " + ", ".join(f"{1e3 * a:.0f}/{1e3 * b:.0f}" for a, b in zip(*t, strict=True))
            for name, t in times.items()
        ),
        "",
        f"Figures, new against old, the {len(books)} books: largest difference of a grid cell "
        f"{cell:.1e} of the cell, {gross:.1e} of the book's gross option value "
        f"(sum of |weight| x max(X, K)); of stress_loss {loss:.1e} of itself; excluded "
        f"instruments {'the same' if same else 'DIFFERENT'}. Margin (each book's portfolio-"
        f"margin IM, SPAN requirement and standard IM), new against old: largest relative "
        f"difference {margin_rel:.1e}.",
    ]
    if att_s is not None:
        lines.append(
            f"\nattribution + capital payloads (once, not changed here): {att_s:.1f} s CPU"
        )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        args.out.write_text(report, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
