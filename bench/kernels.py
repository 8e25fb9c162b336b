"""Throughput and accuracy of the pricing and implied-vol kernels, against plain numpy.

One process times, for N = 1e3, 1e5 and 1e6 random options: ``engine.greeks.bsm`` single-threaded
and threaded, the kernel called directly on preallocated buffers (so the wrapper's cost shows),
and the numpy + ``scipy.special.ndtr`` baseline of :mod:`bench.baseline`; then implied vol the same
way; then accuracy against the 50-digit closed forms of ``tests.oracle``. It prints one markdown
report with the machine, every figure and each target of the requirement judged PASS/FAIL from
the measured numbers.

Run from the repository root::

    .venv/bin/python -m bench.kernels                  # full run (about a minute)
    .venv/bin/python -m bench.kernels --quick          # smoke run, a few seconds
    .venv/bin/python bench/kernels.py --out bench/results/$(date -u +%F)-kernels.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import importlib.metadata
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

if not __package__:  # run as a file (python bench/kernels.py): make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numba
import numpy as np
import numpy.typing as npt
import scipy

from bench import baseline
from engine import greeks, iv, kernels
from engine.arguments import PARALLEL_MIN_ROWS
from engine.status import Status
from tests.oracle import ref_bsm

F64 = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

ROOT = Path(__file__).resolve().parent.parent
SEED = 20261124
SPOT = 100.0

# The requirement's targets.
TARGET_N = 1_000_000
TARGET_SINGLE_MOPS = 15.0  # M options/s, greeks.bsm(parallel=False) at N = 1e6
TARGET_VS_NUMPY = 2.0  # single thread / numpy baseline, same run
TARGET_THREAD_SPEEDUP = 1.8  # parallel=True / parallel=False at N = 1e6
TARGET_IV_MOPS_PER_CORE = 2.0  # M implied-vol solves/s per core
TARGET_REL = 1e-11  # a value passes if within TARGET_REL relative ...
TARGET_ABS_PER_SPOT = 1e-13  # ... or within TARGET_ABS_PER_SPOT * S absolute

ACCURACY_FIELDS = ("price", "delta", "gamma", "vega", "theta", "rho")
# The target names price and the first-order Greeks; gamma (second order) is reported beside them.
TARGET_FIELDS = ("price", "delta", "vega", "theta", "rho")


# ------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True, slots=True)
class Book:
    """A batch of European options as contiguous columns (the kernels' input layout)."""

    is_call: BoolArray
    S: F64
    K: F64
    T: F64
    r: F64
    q: F64
    sigma: F64

    def __len__(self) -> int:
        return int(self.S.shape[0])

    def take(self, rows: npt.NDArray[np.intp]) -> Book:
        """The given rows, as a new contiguous book."""
        return Book(
            is_call=self.is_call[rows],
            S=self.S[rows],
            K=self.K[rows],
            T=self.T[rows],
            r=self.r[rows],
            q=self.q[rows],
            sigma=self.sigma[rows],
        )

    @staticmethod
    def concat(books: Sequence[Book]) -> Book:
        """The books one after the other."""
        return Book(
            is_call=np.concatenate([b.is_call for b in books]),
            S=np.concatenate([b.S for b in books]),
            K=np.concatenate([b.K for b in books]),
            T=np.concatenate([b.T for b in books]),
            r=np.concatenate([b.r for b in books]),
            q=np.concatenate([b.q for b in books]),
            sigma=np.concatenate([b.sigma for b in books]),
        )


def normal_book(n: int, rng: np.random.Generator) -> Book:
    """Realistic random options: spot 100, K/S = exp(N(0, 0.3)) clipped to [0.5, 2], T uniform
    in [1 day, 2 years], sigma uniform in [0.1, 1.5], r in [0, 6%], q in [0, 4%], calls and puts
    half and half."""
    S = np.full(n, SPOT)
    K = S * np.clip(np.exp(rng.normal(0.0, 0.3, n)), 0.5, 2.0)
    T = rng.uniform(1.0 / 365.0, 2.0, n)
    sigma = rng.uniform(0.1, 1.5, n)
    r = rng.uniform(0.0, 0.06, n)
    q = rng.uniform(0.0, 0.04, n)
    is_call = rng.random(n) < 0.5
    return Book(is_call=is_call, S=S, K=K, T=T, r=r, q=q, sigma=sigma)


def short_dated_book(n: int, rng: np.random.Generator) -> Book:
    """:func:`normal_book` with T log-uniform in [1 day, 2 years] (a listed chain's mix of
    weeklies and quarterlies): |d1| is larger, and libm's erfc slower there."""
    b = normal_book(n, rng)
    T = np.exp(rng.uniform(math.log(1.0 / 365.0), math.log(2.0), n))
    return Book(is_call=b.is_call, S=b.S, K=b.K, T=T, r=b.r, q=b.q, sigma=b.sigma)


def hard_book(n: int, rng: np.random.Generator) -> Book:
    """Hard cases for implied vol, out of the money, a third each:
    deep OTM (K/S or S/K in [2, 4], T in [1 week, 2 y], sigma in [0.1, 0.6]),
    1-hour expiries (|ln K/S| <= 3%, sigma in [0.1, 1.5]),
    300% vols (sigma in [2, 3], T in [3 months, 2 y], K/S in [0.5, 2])."""
    kind = rng.integers(0, 3, n)
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)
    log_m = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(math.log(2.0), math.log(4.0), n), rng.uniform(0.0, 0.03, n)],
        rng.uniform(0.0, math.log(2.0), n),
    )
    T = np.select(
        [kind == 0, kind == 1],
        [np.exp(rng.uniform(math.log(7.0 / 365.0), math.log(2.0), n)), np.full(n, 1.0 / 8760.0)],
        rng.uniform(0.25, 2.0, n),
    )
    sigma = np.select(
        [kind == 0, kind == 1],
        [rng.uniform(0.1, 0.6, n), rng.uniform(0.1, 1.5, n)],
        rng.uniform(2.0, 3.0, n),
    )
    S = np.full(n, SPOT)
    K = S * np.exp(side * log_m)
    return Book(
        is_call=side > 0.0,  # OTM: calls above spot, puts below
        S=S,
        K=K,
        T=T,
        r=rng.uniform(0.0, 0.06, n),
        q=rng.uniform(0.0, 0.04, n),
        sigma=sigma,
    )


@dataclass(frozen=True, slots=True)
class Quotes:
    """Option prices with the volatilities that made them, for implied-vol runs."""

    book: Book
    price: F64
    drawn: int  # rows drawn to keep len(book) of them


def quotes(
    n: int,
    rng: np.random.Generator,
    draw: Callable[[int, np.random.Generator], Book],
    min_price_per_spot: float,
) -> Quotes:
    """``n`` prices from ``draw``'s distribution that determine sigma in double precision.

    Kept: price >= ``min_price_per_spot`` * S, and condition number P / (sigma * vega) <= 1e6,
    so a correctly rounded price pins sigma to about 1e-10 (deep-ITM rows whose time value is
    lost in rounding are not solvable by anyone and are left out).
    """
    parts: list[Book] = []
    prices: list[F64] = []
    kept = drawn = 0
    while kept < n:
        book = draw(max(n, 1024), rng)
        g = greeks.bsm(book.is_call, book.S, book.K, book.T, book.r, book.q, book.sigma)
        ok = (g.price >= min_price_per_spot * book.S) & (book.sigma * g.vega >= 1e-6 * g.price)
        rows = np.flatnonzero(ok)[: n - kept]
        parts.append(book.take(rows))
        prices.append(g.price[rows])
        kept += rows.size
        drawn += len(book)
    return Quotes(book=Book.concat(parts), price=np.concatenate(prices), drawn=drawn)


# ------------------------------------------------------------------------------------ timing


@dataclass(slots=True)
class Timing:
    """Wall-clock samples of one callable on ``rows`` rows."""

    rows: int
    samples_ns: list[int] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        return statistics.median(self.samples_ns) / 1e9

    @property
    def best_s(self) -> float:
        return min(self.samples_ns) / 1e9

    @property
    def rate(self) -> float:
        """Rows per second, from the median run."""
        return self.rows / self.median_s

    @property
    def best_rate(self) -> float:
        return self.rows / self.best_s


def time_interleaved(
    cases: dict[str, Callable[[], object]],
    rows: int,
    repeats: int,
    warmup: int = 2,
    pause_s: float = 0.0,
) -> dict[str, Timing]:
    """Time each case ``repeats`` times, in rounds that run every case once.

    Interleaving spreads any background noise over all cases alike. The order is shuffled
    each round, so every case follows every other equally often: a call that follows the numpy
    baseline can find that the allocator has just returned memory to the OS, and must fault in
    fresh pages for its output. The garbage collector is off while timing, and a call's result
    is released after its clock stops. ``pause_s`` > 0 sleeps (untimed) before each call.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    timings = {name: Timing(rows) for name in names}
    shuffle = np.random.default_rng(SEED)
    gc_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(repeats):
            for j in shuffle.permutation(len(names)):
                name = names[j]
                call = cases[name]
                if pause_s > 0.0:
                    time.sleep(pause_s)
                t0 = time.perf_counter_ns()
                result = call()
                t1 = time.perf_counter_ns()
                del result
                timings[name].samples_ns.append(t1 - t0)
    finally:
        if gc_enabled:
            gc.enable()
    return timings


def repeats_for(n: int, budget_rows: float, low: int, high: int) -> int:
    """Runs per case: ``budget_rows / n`` clamped to [low, high]."""
    return max(low, min(high, round(budget_rows / n)))


# ------------------------------------------------------------------------------- measurements


@dataclass(frozen=True, slots=True)
class PricingRun:
    n: int
    timings: dict[str, Timing]
    book: str = "normal"  # which input distribution (normal_book or short_dated_book)


PRICING_PATHS: dict[str, tuple[str, str]] = {
    # key: (what is called, outputs)
    "bsm_1t": ("`greeks.bsm(parallel=False)`", "9"),
    "bsm_2t": ("`greeks.bsm(parallel=True)`", "9"),
    "bsm_1t_out": ("`greeks.bsm(parallel=False, out=block)`, block reused", "9"),
    "bsm_2t_out": ("`greeks.bsm(parallel=True, out=block)`, block reused", "9"),
    "kernel_1t": ("`bsm_kernel`, preallocated out", "9"),
    "kernel_2t": ("`bsm_parallel_kernel`, preallocated out", "9"),
    "kernel_1t_fresh": ("`bsm_kernel`, new `np.empty` out per call", "9"),
    "numpy": ("numpy + `ndtr` baseline", "5"),
}


def run_pricing(
    n: int,
    rng: np.random.Generator,
    repeats: int,
    draw: Callable[[int, np.random.Generator], Book] = normal_book,
    book: str = "normal",
) -> PricingRun:
    """Time every pricing path on the same ``n`` random options from ``draw``."""
    b = draw(n, rng)
    c, S, K, T, r, q, v = b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma
    out = np.empty((len(kernels.GREEK_FIELDS), n))
    status = np.empty(n, dtype=np.int8)
    nrows = len(kernels.GREEK_FIELDS)
    block = np.empty((nrows, n))  # the engine keeps its Greeks columns and reprices into them

    def fresh() -> None:
        kernels.bsm_kernel(c, S, K, T, r, q, v, np.empty((nrows, n)), np.empty(n, np.int8))

    cases: dict[str, Callable[[], object]] = {
        "bsm_1t": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=False),
        "bsm_2t": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=True),
        "bsm_1t_out": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=False, out=block),
        "bsm_2t_out": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=True, out=block),
        "kernel_1t": lambda: kernels.bsm_kernel(c, S, K, T, r, q, v, out, status),
        "kernel_2t": lambda: kernels.bsm_parallel_kernel(c, S, K, T, r, q, v, out, status),
        "kernel_1t_fresh": fresh,
        "numpy": lambda: baseline.bsm_numpy(c, S, K, T, r, q, v),
    }
    return PricingRun(n=n, timings=time_interleaved(cases, n, repeats), book=book)


@dataclass(frozen=True, slots=True)
class CrossoverRun:
    n: int
    timings: dict[str, Timing]  # 1t, 2t back to back; 1t_idle, 2t_idle after a pause


CROSSOVER_PAUSE_S = 0.01


def run_crossover(n: int, rng: np.random.Generator, repeats: int) -> CrossoverRun:
    """greeks.bsm single vs threaded at small N: where threading starts to pay.

    Timed twice: back to back (numba's OpenMP workers still spinning from the last call), and
    after :data:`CROSSOVER_PAUSE_S` idle, as in the daemon where a recompute follows a tick and
    the workers have gone to sleep.
    """
    b = normal_book(n, rng)
    c, S, K, T, r, q, v = b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma
    cases: dict[str, Callable[[], object]] = {
        "1t": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=False),
        "2t": lambda: greeks.bsm(c, S, K, T, r, q, v, parallel=True),
    }
    busy = time_interleaved(cases, n, repeats)
    idle = time_interleaved(cases, n, max(21, repeats // 10), pause_s=CROSSOVER_PAUSE_S)
    return CrossoverRun(
        n=n,
        timings={
            "1t": busy["1t"],
            "2t": busy["2t"],
            "1t_idle": idle["1t"],
            "2t_idle": idle["2t"],
        },
    )


@dataclass(frozen=True, slots=True)
class IvRun:
    label: str
    n: int
    drawn: int
    timings: dict[str, Timing]
    failed: dict[str, int]  # rows without a converged, finite sigma
    worst_rel: dict[str, float]  # worst |sigma_hat / sigma - 1| over the solved rows
    worst_residual: dict[str, float]  # worst |price(sigma_hat) - price| / S over the solved rows


IV_PATHS: dict[str, str] = {
    "iv_1t": "`iv.implied_vol(parallel=False)`",
    "iv_2t": "`iv.implied_vol(parallel=True)`",
    "kernel_1t": "`implied_vol_kernel`, F and df given",
    "numpy": "numpy Newton + bisection baseline",
}


def run_iv(label: str, qs: Quotes, repeats: int) -> IvRun:
    """Time the implied-vol paths on ``qs`` and check the recovered sigmas."""
    b, p = qs.book, qs.price
    c, S, K, T, r, q = b.is_call, b.S, b.K, b.T, b.r, b.q
    n = len(b)
    fwd = S * np.exp((r - q) * T)
    df = np.exp(-r * T)
    sig_out = np.empty(n)
    status = np.empty(n, dtype=np.int8)
    cases: dict[str, Callable[[], object]] = {
        "iv_1t": lambda: iv.implied_vol(p, c, S, K, T, r, q, parallel=False),
        "iv_2t": lambda: iv.implied_vol(p, c, S, K, T, r, q, parallel=True),
        "kernel_1t": lambda: kernels.implied_vol_kernel(p, c, fwd, K, T, df, sig_out, status),
        "numpy": lambda: baseline.implied_vol_numpy(p, c, S, K, T, r, q),
    }
    timings = time_interleaved(cases, n, repeats, warmup=1)

    solved = iv.implied_vol_status(p, c, S, K, T, r, q, parallel=False)
    ours_ok = (solved.status == Status.OK) & np.isfinite(solved.sigma)
    np_sigma, np_converged = baseline.implied_vol_numpy(p, c, S, K, T, r, q)
    np_ok = np_converged & np.isfinite(np_sigma)
    failed: dict[str, int] = {}
    worst: dict[str, float] = {}
    residual: dict[str, float] = {}
    for name, sig, ok in (("ours", solved.sigma, ours_ok), ("numpy", np_sigma, np_ok)):
        failed[name] = int(n - np.count_nonzero(ok))
        if not ok.any():
            worst[name] = residual[name] = math.nan
            continue
        worst[name] = float(np.max(np.abs(sig[ok] / b.sigma[ok] - 1.0)))
        back = greeks.bsm(c[ok], S[ok], K[ok], T[ok], r[ok], q[ok], sig[ok]).price
        residual[name] = float(np.max(np.abs(back - p[ok]) / S[ok]))
    return IvRun(label, n, qs.drawn, timings, failed, worst, residual)


@dataclass(frozen=True, slots=True)
class FieldError:
    worst_rel: float
    worst_abs_per_spot: float
    outside: int  # values beyond both the relative and the absolute tolerance


@dataclass(frozen=True, slots=True)
class AccuracyRun:
    label: str
    rows: int
    ours: dict[str, FieldError]
    numpy: dict[str, FieldError]
    oracle_s: float


def _field_error(value: F64, ref: F64, spot: F64) -> FieldError:
    diff = np.abs(value - ref)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(diff == 0.0, 0.0, diff / np.abs(ref))
    rel = np.where(np.isnan(value), np.inf, rel)
    abs_spot = np.where(np.isnan(value), np.inf, diff / spot)
    outside = (rel > TARGET_REL) & (abs_spot > TARGET_ABS_PER_SPOT)
    return FieldError(float(rel.max()), float(abs_spot.max()), int(np.count_nonzero(outside)))


def run_accuracy(label: str, book: Book) -> AccuracyRun:
    """Kernel and numpy baseline against ``tests.oracle.ref_bsm`` (50 digits) on ``book``."""
    t0 = time.perf_counter()
    refs = [
        ref_bsm(
            bool(book.is_call[i]),
            float(book.S[i]),
            float(book.K[i]),
            float(book.T[i]),
            float(book.r[i]),
            float(book.q[i]),
            float(book.sigma[i]),
        )
        for i in range(len(book))
    ]
    oracle_s = time.perf_counter() - t0
    ref = {name: np.array([getattr(x, name) for x in refs]) for name in ACCURACY_FIELDS}
    b = book
    ours = greeks.bsm(b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma, parallel=False)
    base = baseline.bsm_numpy(b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma)
    ours_err = {f: _field_error(getattr(ours, f), ref[f], b.S) for f in ACCURACY_FIELDS}
    base_err = {
        f: _field_error(getattr(base, f), ref[f], b.S) for f in ACCURACY_FIELDS if f != "rho"
    }
    return AccuracyRun(label, len(book), ours_err, base_err, oracle_s)


# ------------------------------------------------------------------------------------ machine


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo), or the platform's word for it."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _hypervisor() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return "virtual machine" if " hypervisor" in f.read() else "bare metal"
    except OSError:
        return "unknown"


def git(*args: str, where: Path = ROOT) -> str | None:
    """Output of a read-only git command in the repository (or the checkout at ``where``), or
    None without git."""
    exe = shutil.which("git")
    if exe is None:
        return None
    try:
        # Fixed argv from this module, no shell.
        done = subprocess.run(  # noqa: S603
            [exe, "-C", str(where), *args], capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    # rstrip, not strip: a porcelain line starts with its status columns (" M path").
    return done.stdout.rstrip()


def revision(*paths: str) -> str:
    """HEAD's commit, and which files of the code under test (``paths``) differ from it."""
    commit = git("rev-parse", "--short=12", "HEAD")
    if commit is None:
        return "unknown (no git)"
    changed = git("status", "--porcelain", "--", *paths)
    if changed:
        files = ", ".join(line[3:] for line in changed.splitlines())
        return f"{commit} + uncommitted changes to {files}"
    return commit


def _cpu_busy_s() -> float | None:
    """Seconds of CPU time all processes have used since boot (/proc/stat), or None."""
    try:
        with open("/proc/stat", encoding="utf-8") as f:
            fields = [int(x) for x in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal: busy is all but idle and iowait
    busy = sum(fields) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class LoadMeter:
    """CPU used by other processes while the benchmark runs (a share of all CPUs)."""

    wall0: float = field(default_factory=time.perf_counter)
    own0: float = field(default_factory=time.process_time)
    busy0: float | None = field(default_factory=_cpu_busy_s)
    loadavg: str = field(default_factory=lambda: " ".join(f"{x:.2f}" for x in os.getloadavg()))

    def foreign_share(self) -> float | None:
        busy1 = _cpu_busy_s()
        if self.busy0 is None or busy1 is None:
            return None
        wall = time.perf_counter() - self.wall0
        own = time.process_time() - self.own0
        cpus = os.cpu_count() or 1
        return max(0.0, (busy1 - self.busy0 - own) / (wall * cpus))


def _threading_layer() -> str:
    """The threading layer numba chose (valid once a parallel kernel has run)."""
    # numba exposes threading_layer() at top level without listing it in __all__.
    return str(numba.threading_layer())  # type: ignore[attr-defined]


def machine_lines() -> list[str]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env_threads = os.environ.get("NUMBA_NUM_THREADS", "unset")
    # Thread-pool settings that change the threaded figures (OpenMP layer), when set.
    tuning = [
        f"{name}={os.environ[name]}"
        for name in (
            "NUMBA_THREADING_LAYER",
            "OMP_PROC_BIND",
            "OMP_PLACES",
            "OMP_WAIT_POLICY",
            "GOMP_SPINCOUNT",
        )
        if name in os.environ
    ]
    return [
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs ({usable} usable), "
        f"{platform.system()} {platform.release()}, {_hypervisor()}",
        f"- Python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, numba {numba.__version__} "
        f"(llvmlite {importlib.metadata.version('llvmlite')})",
        f"- NUMBA_NUM_THREADS={env_threads}, numba.get_num_threads()={numba.get_num_threads()}, "
        f"threading layer {_threading_layer()}"
        + (f" ({', '.join(tuning)})" if tuning else "; no OpenMP environment settings"),
        f"- riskd commit {revision('engine')}; `engine.arguments.PARALLEL_MIN_ROWS` = "
        f"{PARALLEL_MIN_ROWS:,}",
    ]


# ------------------------------------------------------------------------------------ report


def _n(n: int) -> str:
    """1e6 for powers of ten from 1000 up, 20,000 otherwise."""
    exp = round(math.log10(n))
    return f"1e{exp}" if n >= 1000 and 10**exp == n else f"{n:,}"


def _label(run: PricingRun) -> str:
    return _n(run.n) if run.book == "normal" else f"{_n(run.n)}, {run.book}"


def _mops(rate: float) -> str:
    return f"{rate / 1e6:.2f}"


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.1 else f"{seconds * 1e3:.1f}"


def _sci(x: float) -> str:
    return "0" if x == 0.0 else f"{x:.1e}"


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**FAIL**"


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    measured: str
    threshold: str
    ok: bool


def targets(
    pricing: list[PricingRun], ivs: list[IvRun], acc: AccuracyRun, cpus: int
) -> list[Target]:
    """Each target of the requirement, judged on the median timings of the largest N run."""
    top = max((p for p in pricing if p.book == "normal"), key=lambda p: p.n)
    at = f"N = {_n(top.n)}" + ("" if top.n == TARGET_N else " (quick run, not the target N)")
    t = top.timings
    # Judged on the public API as the engine calls it: into its own, reused Greeks block.
    single, threaded, base = t["bsm_1t_out"].rate, t["bsm_2t_out"].rate, t["numpy"].rate
    iv_top = max((x for x in ivs if x.label == "normal"), key=lambda x: x.n)
    iv1, iv2 = iv_top.timings["iv_1t"].rate, iv_top.timings["iv_2t"].rate
    at_iv = f"N = {_n(iv_top.n)}"
    worst = {f: acc.ours[f] for f in TARGET_FIELDS}
    outside = sum(e.outside for e in worst.values())
    worst_rel = max(e.worst_rel for e in worst.values())
    worst_abs = max(e.worst_abs_per_spot for e in worst.values())
    return [
        Target(
            f"single thread, `greeks.bsm(parallel=False, out=block)`, {at}",
            f"{_mops(single)} M/s",
            f">= {TARGET_SINGLE_MOPS:g} M/s",
            single >= TARGET_SINGLE_MOPS * 1e6,
        ),
        Target(
            f"single thread / numpy baseline, {at}",
            f"{single / base:.2f}x",
            f">= {TARGET_VS_NUMPY:g}x",
            single >= TARGET_VS_NUMPY * base,
        ),
        Target(
            f"threaded / single thread, `greeks.bsm(out=block)`, {at}, {cpus} CPUs",
            f"{threaded / single:.2f}x",
            f">= {TARGET_THREAD_SPEEDUP:g}x",
            threaded >= TARGET_THREAD_SPEEDUP * single,
        ),
        Target(
            f"implied vol, single thread (one core), {at_iv}",
            f"{_mops(iv1)} M/s",
            f">= {TARGET_IV_MOPS_PER_CORE:g} M/s",
            iv1 >= TARGET_IV_MOPS_PER_CORE * 1e6,
        ),
        Target(
            f"implied vol, threaded, per core ({cpus} CPUs), {at_iv}",
            f"{_mops(iv2 / cpus)} M/s",
            f">= {TARGET_IV_MOPS_PER_CORE:g} M/s",
            iv2 >= TARGET_IV_MOPS_PER_CORE * 1e6 * cpus,
        ),
        Target(
            f"accuracy of {', '.join(TARGET_FIELDS)} vs 50 digits, {acc.rows} {acc.label} rows",
            f"worst rel {_sci(worst_rel)}, worst abs/S {_sci(worst_abs)}; {outside} outside",
            f"each value <= {TARGET_REL:g} rel or <= {TARGET_ABS_PER_SPOT:g} abs/S",
            outside == 0,
        ),
    ]


def _header(started: dt.datetime, quick: bool, load: LoadMeter, elapsed_s: float) -> list[str]:
    foreign = load.foreign_share()
    cmd = "python -m bench.kernels" + (" --quick" if quick else "")
    lines = [
        "# riskd pricing-kernel benchmark" + (" (quick smoke run)" if quick else ""),
        "",
        f"- Date (UTC): {started:%Y-%m-%d %H:%M:%S}; `{cmd}`, {elapsed_s:.0f} s",
        *machine_lines(),
        "- Method: one process; `time.perf_counter_ns` around each call; 2 warm-up rounds (1 for "
        "implied vol) after numba has loaded or compiled every kernel; then R rounds that each "
        "run every path once, in a new random order each round, GC off. **M/s is from the median "
        "run** (targets are judged on it); the best run is shown beside it.",
        f"- Background: load average at start {load.loadavg}; other processes used "
        + ("n/a" if foreign is None else f"{foreign:.1%}")
        + " of all CPUs during the run.",
    ]
    if foreign is not None and foreign > 0.05:
        lines.append(
            f"- **Warning**: other processes used {foreign:.0%} of the CPUs during the run; "
            "the throughput figures are likely low. Re-run on a quiet machine."
        )
    return lines


def _targets_section(tgts: list[Target]) -> list[str]:
    lines = ["", "## Targets", "", "| target | measured | required | result |", "|---|---|---|---|"]
    lines += [f"| {t.name} | {t.measured} | {t.threshold} | {_verdict(t.ok)} |" for t in tgts]
    return lines


def _pricing_section(pricing: list[PricingRun]) -> list[str]:
    lines = [
        "",
        "## Price + Greeks throughput",
        "",
        "Random options (`normal_book`: spot 100, K/S lognormal in [0.5, 2], T uniform from 1 day "
        "to 2 years, sigma 0.1 to 1.5, r <= 6%, q <= 4%, calls and puts). The *short-dated* rows "
        "draw T log-uniform over the same range instead (a listed chain's mix of weeklies and "
        "quarterlies; larger |d1|, where libm's erfc is slower); targets use the first. "
        "riskd's kernel writes "
        "**9 outputs** per option (price, delta, gamma, vega, theta, rho, vanna, volga, charm) "
        "and a status byte; the numpy baseline computes **5** (price, delta, gamma, vega, theta) "
        "and checks nothing.",
        "",
        "| N | path | outputs | runs | median ms | M options/s (median) | M/s (best) | x numpy |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for run in pricing:
        base = run.timings["numpy"].rate
        for key, (what, outputs) in PRICING_PATHS.items():
            t = run.timings[key]
            lines.append(
                f"| {_label(run)} | {what} | {outputs} | {len(t.samples_ns)} | {_ms(t.median_s)} "
                f"| {_mops(t.rate)} | {_mops(t.best_rate)} | {t.rate / base:.2f} |"
            )
    lines += [
        "",
        "Ratios (medians). Wrapper overhead = `greeks.bsm` minus the kernel on preallocated "
        "buffers; allocation = the kernel on fresh `np.empty` buffers minus preallocated "
        "(first-touch page faults of the 9 x N output block).",
        "",
        "| N | 1T / numpy | 2T / 1T (`greeks.bsm`) | 2T / 1T (kernel) "
        "| wrapper overhead 1T, us/call | of which allocation, us | overhead, % of 1T call |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in pricing:
        tm = run.timings
        over = tm["bsm_1t"].median_s - tm["kernel_1t"].median_s
        alloc = tm["kernel_1t_fresh"].median_s - tm["kernel_1t"].median_s
        lines.append(
            f"| {_label(run)} | {tm['bsm_1t'].rate / tm['numpy'].rate:.2f} "
            f"| {tm['bsm_2t'].rate / tm['bsm_1t'].rate:.2f} "
            f"| {tm['kernel_2t'].rate / tm['kernel_1t'].rate:.2f} "
            f"| {over * 1e6:.1f} | {alloc * 1e6:.1f} | {over / tm['bsm_1t'].median_s:.0%} |"
        )
    return lines


def _crossover_section(crossover: list[CrossoverRun]) -> list[str]:
    lines = [
        "",
        "## Where threading starts to pay (`greeks.bsm`, medians)",
        "",
        f"`parallel=None` picks the threaded kernel from {PARALLEL_MIN_ROWS:,} rows. *Busy*: "
        "calls back to back, numba's OpenMP workers still spinning from the previous call. "
        f"*After idle*: {CROSSOVER_PAUSE_S * 1e3:g} ms sleep before each call, so the workers "
        "must be woken (the daemon's case: one recompute per tick).",
        "",
        "| N | 1T us/call | 2T us/call | 2T / 1T busy | 1T us after idle | 2T us after idle "
        "| 2T / 1T after idle |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for x in crossover:
        t = x.timings
        lines.append(
            f"| {x.n:,} | {t['1t'].median_s * 1e6:.1f} | {t['2t'].median_s * 1e6:.1f} "
            f"| {t['2t'].rate / t['1t'].rate:.2f} | {t['1t_idle'].median_s * 1e6:.1f} "
            f"| {t['2t_idle'].median_s * 1e6:.1f} | {t['2t_idle'].rate / t['1t_idle'].rate:.2f} |"
        )
    return lines


def _iv_section(ivs: list[IvRun], cpus: int) -> list[str]:
    lines = [
        "",
        "## Implied volatility",
        "",
        "Prices made by `greeks.bsm` from known sigmas, then solved back. *normal*: the pricing "
        "distribution, keeping quotes with price >= 1e-6 S and P / (sigma vega) <= 1e6 (sigma "
        "determined to ~1e-10 by a double price; deep-ITM rows whose time value is lost in "
        "rounding are left out). *hard*: out of the money only, a third each deep OTM "
        "(K/S or S/K in [2, 4]), 1-hour expiries, 300% vols; prices down to 1e-30 S. "
        "Failed = no converged finite sigma (riskd: status != OK; numpy: NaN or 100 iterations "
        "used up). Over the solved rows: worst sigma error max |sigma_hat / sigma - 1| (bounded "
        "by the conditioning of the quote, not only by the solver), and worst residual "
        "max |price(sigma_hat) - price| / S (the solver's own error; a few 1e-16 is exact).",
        "",
        "| set | N (kept of drawn) | path | runs | median ms | M solves/s (median) | M/s (best) "
        "| per core | x numpy | failed | worst sigma error | worst residual / S |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in ivs:
        base = run.timings["numpy"].rate
        for key, what in IV_PATHS.items():
            t = run.timings[key]
            cores = cpus if key == "iv_2t" else 1
            check = "numpy" if key == "numpy" else "ours"
            acc_cols = (
                f"{run.failed[check]} | {_sci(run.worst_rel[check])} "
                f"| {_sci(run.worst_residual[check])}"
                if key in ("iv_1t", "numpy")
                else "same | same | same"
            )
            lines.append(
                f"| {run.label} | {_n(run.n)} ({run.drawn:,}) | {what} | {len(t.samples_ns)} "
                f"| {_ms(t.median_s)} | {_mops(t.rate)} | {_mops(t.best_rate)} "
                f"| {_mops(t.rate / cores)} | {t.rate / base:.2f} | {acc_cols} |"
            )
    return lines


def _accuracy_section(accuracy: list[AccuracyRun]) -> list[str]:
    lines = [
        "",
        "## Accuracy against 50-digit closed forms (`tests.oracle.ref_bsm`, mpmath)",
        "",
        f"Target: each value within {TARGET_REL:g} relative or {TARGET_ABS_PER_SPOT:g} x S "
        "absolute. Worst relative error is over values whose reference is not 0. Outside = "
        "values that miss both. The target covers price and the first-order Greeks; gamma is "
        "shown beside them. The numpy baseline has no rho.",
        "",
        "| sample | field | riskd worst rel | riskd worst abs/S | riskd outside "
        "| numpy worst rel | numpy worst abs/S | numpy outside |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for acc in accuracy:
        for f in ACCURACY_FIELDS:
            o = acc.ours[f]
            b = acc.numpy.get(f)
            base_cols = (
                f"{_sci(b.worst_rel)} | {_sci(b.worst_abs_per_spot)} | {b.outside}"
                if b is not None
                else "- | - | -"
            )
            lines.append(
                f"| {acc.label}, {acc.rows} rows | {f} | {_sci(o.worst_rel)} "
                f"| {_sci(o.worst_abs_per_spot)} | {o.outside} | {base_cols} |"
            )
    oracle_s = sum(a.oracle_s for a in accuracy)
    lines += ["", f"(mpmath reference: {oracle_s:.1f} s for all samples.)", ""]
    return lines


def report(
    *,
    started: dt.datetime,
    quick: bool,
    pricing: list[PricingRun],
    crossover: list[CrossoverRun],
    ivs: list[IvRun],
    accuracy: list[AccuracyRun],
    load: LoadMeter,
    elapsed_s: float,
) -> str:
    """The whole markdown report."""
    cpus = numba.get_num_threads()
    lines = _header(started, quick, load, elapsed_s)
    lines += _targets_section(targets(pricing, ivs, accuracy[0], cpus))
    lines += _pricing_section(pricing)
    lines += _crossover_section(crossover)
    lines += _iv_section(ivs, cpus)
    lines += _accuracy_section(accuracy)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------ main


@dataclass(frozen=True, slots=True)
class Plan:
    sizes: tuple[int, ...]
    crossover: tuple[int, ...]
    iv_sizes: tuple[int, ...]
    iv_hard: int
    sample: int
    price_budget: float
    iv_budget: float


FULL = Plan(
    sizes=(1_000, 100_000, 1_000_000),
    crossover=(100, 300, 1_000, 3_000, 10_000, 30_000, 100_000),
    iv_sizes=(1_000, 100_000, 1_000_000),
    iv_hard=100_000,
    sample=300,
    price_budget=1e7,
    iv_budget=3e6,
)
QUICK = Plan(
    sizes=(1_000, 10_000),
    crossover=(100, 1_000),
    iv_sizes=(1_000, 10_000),
    iv_hard=10_000,
    sample=30,
    price_budget=2e5,
    iv_budget=5e4,
)


def warm_up() -> None:
    """Load (or compile) every kernel used and start numba's thread pool before any timing."""
    rng = np.random.default_rng(0)
    b = normal_book(64, rng)
    g = greeks.bsm(b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma, parallel=False)
    greeks.bsm(b.is_call, b.S, b.K, b.T, b.r, b.q, b.sigma, parallel=True)
    for parallel in (False, True):
        iv.implied_vol(g.price, b.is_call, b.S, b.K, b.T, b.r, b.q, parallel=parallel)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kernels", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, few runs: a smoke run")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument("--seed", type=int, default=SEED, help=f"random seed (default {SEED})")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL

    started = dt.datetime.now(dt.UTC)
    load = LoadMeter()
    t_start = time.perf_counter()
    warm_up()
    rng = np.random.default_rng(args.seed)

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    pricing = []
    for n in plan.sizes:
        progress(f"pricing, N = {n:,}")
        reps = repeats_for(n, plan.price_budget, 5 if args.quick else 11, 301)
        pricing.append(run_pricing(n, rng, reps))
    n = plan.sizes[-1]
    progress(f"pricing, short-dated book, N = {n:,}")
    reps = repeats_for(n, plan.price_budget, 5 if args.quick else 11, 301)
    pricing.append(run_pricing(n, rng, reps, short_dated_book, "short-dated"))
    crossover = []
    for n in plan.crossover:
        progress(f"threading crossover, N = {n:,}")
        crossover.append(run_crossover(n, rng, repeats_for(n, plan.price_budget, 11, 501)))
    ivs = []
    for n in plan.iv_sizes:
        progress(f"implied vol, normal, N = {n:,}")
        qs = quotes(n, rng, normal_book, 1e-6)
        ivs.append(run_iv("normal", qs, repeats_for(n, plan.iv_budget, 5, 101)))
    progress(f"implied vol, hard, N = {plan.iv_hard:,}")
    qs = quotes(plan.iv_hard, rng, hard_book, 1e-30)
    ivs.append(run_iv("hard", qs, repeats_for(plan.iv_hard, plan.iv_budget, 5, 101)))
    progress(f"accuracy, {plan.sample} + {plan.sample} rows against mpmath")
    big = normal_book(plan.sample, rng)
    hard = quotes(plan.sample, rng, hard_book, 1e-30).book
    accuracy = [run_accuracy("normal", big), run_accuracy("hard", hard)]

    text = report(
        started=started,
        quick=args.quick,
        pricing=pricing,
        crossover=crossover,
        ivs=ivs,
        accuracy=accuracy,
        load=load,
        elapsed_s=time.perf_counter() - t_start,
    )
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
