"""American options benchmark (issue 18): price + Greeks per second per core at the accurate
scheme beside QuantLib's QdFpAmericanEngine (high-precision scheme) and a 1,000-step binomial
tree in numba, fast-scheme prices/s/core, implied vols/s/core, and the accuracy table against
the converged reference scheme, in one run; targets judged PASS/FAIL.

Run from the repository root::

    .venv/bin/python -m bench.american --out bench/results/$(date -u +%F)-american.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import QuantLib as ql  # noqa: N813  # the name QuantLib's own docs use

from bench.kernels import LoadMeter, machine_lines
from engine import american_kernels as ak

F64 = npt.NDArray[np.float64]
SEED = 20261206
TARGET_FAST_PER_S = 1e6
TARGET_IV_PER_S = 1e5
TARGET_VS_QUANTLIB = 5.0


def grid(n: int, seed: int = SEED) -> tuple[npt.NDArray[np.bool_], F64, F64, F64, F64, F64, F64]:
    """Spot 100, K/S log-uniform 0.5..1.5, T log-uniform 1 day..3 years, vol 5 %..150 %,
    r and q 0..10 %, calls and puts half and half."""
    rng = np.random.default_rng(seed)
    S = np.full(n, 100.0)
    K = S * np.exp(rng.uniform(math.log(0.5), math.log(1.5), n))
    T = np.exp(rng.uniform(math.log(1 / 365), math.log(3.0), n))
    return (rng.random(n) < 0.5, S, K, T, rng.uniform(0, 0.1, n), rng.uniform(0, 0.1, n),
            rng.uniform(0.05, 1.5, n))  # fmt: skip


def per_second(call: Callable[[], object], rows: int, repeats: int = 3) -> float:
    """Rows per second of the median of ``repeats`` timed calls (after one warm-up)."""
    call()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return rows / sorted(times)[len(times) // 2]


def quantlib_price_s(rows: int) -> float:
    """Seconds per price of QuantLib's high-precision QdFp engine (spot moved each time)."""
    today = ql.Date(2, 1, 2025)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    spot = ql.SimpleQuote(100.0)
    process = ql.BlackScholesMertonProcess(
        ql.QuoteHandle(spot),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.02, dc)),
        ql.YieldTermStructureHandle(ql.FlatForward(today, 0.05, dc)),
        ql.BlackVolTermStructureHandle(ql.BlackConstantVol(today, ql.NullCalendar(), 0.3, dc)),
    )
    option = ql.VanillaOption(
        ql.PlainVanillaPayoff(ql.Option.Put, 100.0), ql.AmericanExercise(today, today + 365)
    )
    option.setPricingEngine(
        ql.QdFpAmericanEngine(process, ql.QdFpAmericanEngine.highPrecisionScheme())
    )
    t0 = time.perf_counter()
    for i in range(rows):
        spot.setValue(100.0 + 0.01 * i)
        option.NPV()
    return (time.perf_counter() - t0) / rows


def prices(
    cols: tuple[npt.NDArray[np.bool_], F64, F64, F64, F64, F64, F64], scheme: ak.Scheme
) -> F64:
    out = np.empty(cols[1].shape[0])
    status = np.empty(out.shape[0], dtype=np.int8)
    ak.american_price_kernel(*cols, scheme, out, status)
    return out


def accuracy_rows(n: int) -> list[str]:
    cols = grid(n, SEED + 1)
    ref = prices(cols, ak.REFERENCE)
    T, S = cols[3], cols[1]
    regimes = {"T < 1 month": T < 1 / 12, "1 month <= T < 1 year": (T >= 1 / 12) & (T < 1.0),
               "T >= 1 year": T >= 1.0, "all": np.ones(n, bool)}  # fmt: skip
    lines = ["| scheme | regime | rows | max rel | p99 rel | max abs / S | within target |",
             "|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, scheme, rel_t, abs_t in (("accurate", ak.ACCURATE, 1e-8, 1e-10),
                                       ("fast", ak.FAST, 1e-5, 1e-7)):  # fmt: skip
        err = np.abs(prices(cols, scheme) - ref)
        rel = err / ref
        for label, m in regimes.items():
            ok = int(((rel[m] <= rel_t) | (err[m] <= abs_t * S[m])).sum())
            worst = (err[m] / S[m]).max()
            p99 = np.quantile(rel[m], 0.99)
            lines.append(
                f"| {name} | {label} | {m.sum()} | {rel[m].max():.1e} | {p99:.1e} | "
                f"{worst:.1e} | {ok}/{m.sum()} |"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    started = dt.datetime.now(dt.UTC)
    load = LoadMeter()
    cols = grid(2000)
    is_call, S, K, T, r, q, _ = cols
    block = np.empty((9, 2000))
    status = np.empty(2000, dtype=np.int8)
    sub = tuple(c[:100].copy() for c in cols)
    out = np.empty(100)
    fast_prices = prices(cols, ak.FAST)
    sigma = np.empty(2000)
    few = block[:, :100].copy()

    def greeks() -> None:
        ak.american_kernel(*sub, False, ak.ACCURATE, few, status[:100])  # type: ignore[call-arg,arg-type]  # numba dispatcher

    def tree() -> None:
        ak.binomial_price_kernel(*sub, 1000, out, status[:100])  # type: ignore[call-arg,arg-type]  # numba dispatcher

    def ivs() -> None:
        ak.american_iv_kernel(fast_prices, is_call, S, K, T, r, q, ak.FAST, sigma, status)

    greeks_rate = per_second(greeks, 100)
    price_rate = per_second(lambda: prices(sub, ak.ACCURATE), 100)  # type: ignore[arg-type]
    fast_rate = per_second(lambda: prices(cols, ak.FAST), 2000)
    tree_rate = per_second(tree, 100)
    iv_rate = per_second(ivs, 2000)
    ql_s = quantlib_price_s(20)
    ql_greeks_rate = 1.0 / (7 * ql_s)  # price + the 6 bumped prices our Greeks take
    acc = accuracy_rows(300)
    foreign = load.foreign_share()
    ratio = greeks_rate / ql_greeks_rate
    targets = [
        ("fast-scheme prices /s/core (1e-5 rel)", f"{fast_rate:,.0f}",
         f">= {TARGET_FAST_PER_S:,.0f}", fast_rate >= TARGET_FAST_PER_S),
        ("American IVs /s/core (fast scheme)", f"{iv_rate:,.0f}",
         f">= {TARGET_IV_PER_S:,.0f}", iv_rate >= TARGET_IV_PER_S),
        ("accurate price + Greeks / QuantLib QdFp high precision", f"{ratio:,.1f}x",
         f">= {TARGET_VS_QUANTLIB:g}x", ratio >= TARGET_VS_QUANTLIB),
    ]  # fmt: skip
    lines = [
        "# riskd American options benchmark",
        "",
        f"- Date (UTC): {started:%Y-%m-%d %H:%M:%S}; `python -m bench.american`",
        *machine_lines(),
        f"- Background: load average at start {load.loadavg}; other processes used "
        + ("n/a" if foreign is None else f"{foreign:.0%}") + " of all CPUs during the run "
        "(a shared 2-core machine: figures are low bounds). One core: every path single-threaded.",
        "- Inputs: `grid()` (spot 100, K/S 0.5..1.5, T 1 day..3 years log-uniform, vol 5..150 %, "
        "r, q 0..10 %); rates are rows per second from the median of 3 calls.",
        "", "## Targets", "", "| target | measured | required | result |", "|---|---|---|---|",
        *[f"| {n} | {m} | {t} | {'**PASS**' if ok else '**FAIL**'} |" for n, m, t, ok in targets],
        "", "## Throughput (one core)", "", "| path | rows/s |", "|---|---|",
        f"| accurate price + 9 Greeks (`american_kernel`, 7 prices a row) | {greeks_rate:,.0f} |",
        f"| accurate price alone | {price_rate:,.0f} |",
        f"| fast price alone | {fast_rate:,.0f} |",
        f"| fast implied vol | {iv_rate:,.0f} |",
        f"| binomial tree, 1,000 steps, price alone (numba) | {tree_rate:,.0f} |",
        f"| QuantLib QdFpAmericanEngine high precision, price alone | {1 / ql_s:,.1f} |",
        f"| QuantLib, price + Greeks by the same 7 prices | {ql_greeks_rate:,.1f} |",
        "", "## Accuracy against the reference scheme (64 nodes, 128 points, 40 steps)", "",
        *acc,
    ]  # fmt: skip
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
