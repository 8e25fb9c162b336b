"""Dealer gamma profile benchmark (issue 17): the gamma profile of a 2,000-option chain over 200
spot levels (target <= 50 ms), beside a plain numpy implementation of the same profile in the
same run, with the figures of both compared; the whole positioning payload of the chain is
timed too.

Run from the repository root::

    .venv/bin/python -m bench.positioning             # full run, a few seconds
    .venv/bin/python -m bench.positioning --quick     # smoke run
    .venv/bin/python -m bench.positioning --out bench/results/$(date -u +%F)-positioning.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bench.kernels import LoadMeter, machine_lines
from bench.risk import SEED, median_s
from engine.events import Quote
from engine.instruments import InstrumentRegistry
from engine.risk import positioning as pos
from engine.risk.posreport import Positioning

TARGET_S = 0.050
NOW_NS = 1_732_406_400_000_000_000  # 2024-11-24 00:00 UTC
EXPIRIES = ("29NOV24", "6DEC24", "13DEC24", "27DEC24", "31JAN25", "28FEB25", "28MAR25",
            "27JUN25", "26SEP25", "26DEC25")  # fmt: skip


def chain(n: int) -> tuple[pos.OptionInterest, dict[str, Quote]]:
    """``n`` BTC options over 10 expiries, calls and puts on strikes 40 % to 200 % of a spot of
    95,000 USD, with a skewed smile, a forward per expiry and open interest peaked at the money
    (seeded): as columns, and as the quotes the daemon's inbox would hold."""
    rng = np.random.default_rng(SEED)
    per = n // (2 * len(EXPIRIES))
    rows: dict[str, Quote] = {}
    strikes = np.round(np.linspace(0.4, 2.0, per) * 95_000.0 / 100.0) * 100.0
    for j, code in enumerate(EXPIRIES):
        forward = 95_000.0 * (1.0 + 0.01 * j)
        for K in strikes:
            k = np.log(K / forward)
            iv = 0.55 - 0.1 * k + 0.3 * k * k
            for cp in "CP":
                oi = float(np.round(rng.gamma(2.0, 200.0) * np.exp(-k * k / 0.1), 1))
                name = f"BTC-{code}-{int(K)}-{cp}"
                rows[name] = Quote(instrument=name, mark=0.01, iv=iv, underlying_price=forward,
                                   index_price=95_000.0, open_interest=oi, volume=oi / 10.0,
                                   ts_event=NOW_NS, ts_recv=NOW_NS)  # fmt: skip
    registry = InstrumentRegistry()
    opts: list[tuple[float, ...]] = []
    for name, q in rows.items():
        inst = registry.get(name)
        assert inst is not None
        assert inst.expiry_ns is not None
        assert inst.strike is not None
        T = (inst.expiry_ns - NOW_NS) / (365 * 86_400 * 1e9)
        assert q.iv is not None
        assert q.underlying_price is not None
        assert q.open_interest is not None
        opts.append((inst.strike, float(bool(inst.is_call)), q.underlying_price, T, q.iv,
                     q.open_interest))  # fmt: skip
    a = np.array(opts)
    columns = pos.OptionInterest(
        strike=a[:, 0].copy(),
        is_call=a[:, 1] > 0.5,
        forward=a[:, 2].copy(),
        T=a[:, 3].copy(),
        sigma=a[:, 4].copy(),
        oi=a[:, 5].copy(),
        volume=a[:, 5] / 10.0,
        desk=np.zeros(len(a)),
    )
    return columns, rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.positioning", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    load = LoadMeter()
    runs = 5 if args.quick else 50
    opts, quotes = chain(2_000)
    n = opts.strike.size
    cfg = pos.PositioningConfig(levels=200, range_pct=20.0)
    moves = cfg.moves()
    weight = pos.dealer_position(opts, cfg.dealer)
    kernel_s = median_s(lambda: pos.gamma_profile(opts, weight, moves), runs)
    numpy_s = median_s(lambda: pos.gamma_profile_numpy(opts, weight, moves), runs)
    ours = pos.gamma_profile(opts, weight, moves)
    ref = pos.gamma_profile_numpy(opts, weight, moves)
    rel = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
    builder = Positioning(cfg)
    registry = InstrumentRegistry()
    payload_s = median_s(lambda: builder.payloads(quotes, registry.get, [], NOW_NS, NOW_NS),
                         max(runs // 5, 1))  # fmt: skip
    out = dict(builder.payloads(quotes, registry.get, [], NOW_NS, NOW_NS))
    every = out["BTC:all"]
    ok = kernel_s <= TARGET_S
    lines = [
        f"# Dealer gamma profile ({started:%Y-%m-%d}, {n:,} options, {moves.size} spot levels)",
        "",
        *machine_lines(),
        f"- Date (UTC): {started:%Y-%m-%d %H:%M:%S}",
        f"- Other processes' share of the CPUs during the run: "
        f"{'unknown' if (s := load.foreign_share()) is None else f'{s:.0%}'}",
        f"- Chain: {len(EXPIRIES)} expiries, strikes 40 % to 200 % of 95,000 USD, calls and "
        f"puts; profile over +-{cfg.range_pct:g} %; median of {runs} runs",
        "",
        "| step | median ms | / plain numpy |",
        "|---|---:|---:|",
        f"| gamma profile, numba kernel (riskd) | {kernel_s * 1e3:.3f} "
        f"| {kernel_s / numpy_s:.3f} |",
        f"| same profile, plain numpy | {numpy_s * 1e3:.3f} | 1.000 |",
        f"| every positioning payload of the chain (riskd: {len(out)} payloads) | "
        f"{payload_s * 1e3:.3f} | {payload_s / numpy_s:.3f} |",
        "",
        f"- Target: the profile <= {TARGET_S * 1e3:.0f} ms: {'met' if ok else 'NOT met'} "
        f"({kernel_s * 1e3:.2f} ms); numpy / riskd = {numpy_s / kernel_s:.1f}x",
        f"- Largest |riskd - numpy| relative to the profile's largest: {rel:.3g}",
        f"- The chain's total GEX {every.gex_total:,.0f} USD per 1 % move, zero gamma "
        f"{'none' if every.zero_gamma is None else f'{every.zero_gamma:,.0f} USD'}",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
