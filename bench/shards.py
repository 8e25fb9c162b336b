"""One riskd against two shards by underlying on this machine, and a sizing model.

One invocation starts its own ``mosquitto`` and ``redis-server`` (``tests.servers``, free
loopback ports), writes bench/latency.py's book (10,000 positions in 32 books over BTC and ETH
options, ``build_book``), and measures, one after the other, on the same quotes:

- **one daemon**: ``riskd run`` not sharded, owning both underlyings;
- **two shards**: two ``riskd run`` processes with ``[cluster] underlyings``, ``shard0`` owning
  BTC and ``shard1`` ETH, on the same Redis server (their keys under ``{prefix:BTC}`` and
  ``{prefix:ETH}``, docs/redis.md).

Every quote goes out on the shards' topic layout, ``md/quote/{underlying}/{instrument}``
(docs/scaling.md), so each shard receives only its own underlying's; the one daemon subscribes
to that layout too. For each setup:

- **throughput**: the highest rate of a mixed BTC + ETH quote stream (every bulk option, 8
  variants each, in a random order) that the setup keeps up with: the sum of its processes'
  heartbeat counts (``feeds.md.received``) >= 98 % of what was offered over the window
  (bench/latency.py's ``search``);
- **CPU per message** of each process (all its threads and its risk worker) over the window of
  the sustained probe, per message that process read;
- **scenario A latency** (bench/latency.py): one probe quote every 0.2 s on a quiet key, the
  time from its write to the broker to the first payload of its key on Redis pub/sub that
  reflects it (the shards' two channels read by one prober).

The report gives two shards over one daemon as ratios, per-process figures, and a model of what
N shards give for Deribit's options market and the SPX/SPXW and SPY part of OPRA from the
measured CPU per message (docs/scaling.md#sizing-shards).

Run from the repository root::

    .venv/bin/python -m bench.shards --quick                # smoke run, under a minute
    .venv/bin/python -m bench.shards --out bench/results/$(date -u +%F)-shards.md
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import math
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

if not __package__:  # run as a file (python bench/shards.py): make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench.latency import (
    BOOKS,
    KEEP_UP,
    MIN_INTERVAL_MS,
    SEED,
    Book,
    Counter,
    Daemon,
    HeartbeatCounter,
    RateProbe,
    ScenarioRun,
    SearchPlan,
    Throughput,
    _ms,
    _pct,
    _ratio,
    _tree_cpu_s,
    _versions,
    build_book,
    checkout_of,
    default_riskd_cmd,
    drained,
    offered_window,
    probing,
    run_scenario,
    search,
    start_riskd,
    stop_daemon,
    write_stream,
)
from bench.pipeline import Neighbours

TOPICS: Final = "shardbench/"  # both setups read the same stream, one after the other
ONE_PREFIX: Final = "shardbench-one"
TWO_PREFIX: Final = "shardbench-two"
SHARDS: Final = (("shard0", ("BTC",)), ("shard1", ("ETH",)))
HEADROOM: Final = 0.5  # plan a shard at this share of the core its capacity is measured on

# ------------------------------------------------------------------------------ throughput


@dataclass(frozen=True, slots=True)
class PartProbe:
    """One process's share of a rate probe."""

    name: str
    window_s: float  # between its two heartbeats
    messages: int  # messages it read over its window
    cpu_s: float  # its CPU (threads and risk worker) over the window, s

    @property
    def taken(self) -> float:
        """Messages a second it read over its window."""
        return self.messages / self.window_s if self.window_s > 0 else 0.0

    @property
    def core_share(self) -> float:
        """Its CPU over its window, as a share of one core."""
        return self.cpu_s / self.window_s if self.window_s > 0 else math.nan

    @property
    def cpu_us(self) -> float | None:
        """CPU per message read, us (None: it read nothing)."""
        return 1e6 * self.cpu_s / self.messages if self.messages > 0 else None


@dataclass(frozen=True, slots=True)
class SetupProbe(RateProbe):
    """A rate probe of a setup of one or more processes: ``taken`` is the sum of theirs,
    ``cpu_us`` their CPU per message, all processes together."""

    parts: tuple[PartProbe, ...] = ()


class SumCounter:
    """The processes' counts summed: :func:`bench.latency.drained` over a setup."""

    def __init__(self, counters: Sequence[Counter]) -> None:
        self._counters = counters

    async def reading(self) -> tuple[int, int]:
        readings = await asyncio.gather(*(c.reading() for c in self._counters))
        return max(t for t, _ in readings), sum(n for _, n in readings)


async def setup_probe(
    daemons: Sequence[Daemon], redis: Any, port: int, stream: Path, rate: float, plan: SearchPlan
) -> SetupProbe:
    """One probe at ``rate`` of the setup ``daemons``: each process's heartbeat count and CPU
    read at both ends of the window (each process over its own heartbeats' window)."""
    counters = [HeartbeatCounter(redis, d.redis_prefix) for d in daemons]

    async def edge_of(counter: Counter, pid: int) -> tuple[int, int, float]:
        t, n = await counter.reading()
        return t, n, _tree_cpu_s(pid)

    async def edge() -> list[tuple[int, int, float]]:
        return list(
            await asyncio.gather(
                *(edge_of(c, d.child.proc.pid) for c, d in zip(counters, daemons, strict=True))
            )
        )

    offered, first, last = await offered_window(port, stream, rate, plan, edge)
    parts = tuple(
        PartProbe(d.name, (t1 - t0) / 1e9, n1 - n0, c1 - c0)
        for d, (t0, n0, c0), (t1, n1, c1) in zip(daemons, first, last, strict=True)
    )
    await drained(SumCounter(counters))
    messages = sum(p.messages for p in parts)
    cpu_us = 1e6 * sum(p.cpu_s for p in parts) / messages if messages > 0 else None
    return SetupProbe(offered, sum(p.taken for p in parts), cpu_us, parts)


# ------------------------------------------------------------------------------- measuring


@dataclass(frozen=True, slots=True)
class Plan:
    samples: int  # scenario A probes per setup
    search: SearchPlan


FULL: Final = Plan(
    samples=150,
    search=SearchPlan(
        start=8_000.0, growth=1.4, bisect=2, warmup_s=1.0, window_s=3.0, max_probes=8
    ),
)
QUICK: Final = Plan(
    samples=12,
    search=SearchPlan(
        start=1_000.0, growth=1.4, bisect=0, warmup_s=0.5, window_s=0.5, max_probes=1
    ),
)


@dataclass(slots=True)
class Setup:
    """One setup's figures: its processes (their names and underlyings), throughput and
    scenario A."""

    name: str
    processes: list[tuple[str, str]]  # (name, underlyings)
    throughput: Throughput
    latency: ScenarioRun

    @property
    def probe(self) -> RateProbe | None:
        """The probe its figures are read at: the sustained one; when it kept up with none
        (a busy machine), the one it read most at (marked behind in the report)."""
        kept = self.throughput.sustained_probe
        return kept or max(self.throughput.probes, key=lambda p: p.taken, default=None)

    @property
    def rate_cell(self) -> str:
        """The sustained rate, or what it read when it kept up with no probe, msgs/s."""
        p = self.probe
        if p is None:
            return "-"
        return f"{p.offered:,.0f}" if p.kept_up else f"{p.taken:,.0f} (behind at {p.offered:,.0f})"

    @property
    def parts(self) -> tuple[PartProbe, ...]:
        """Each process at :attr:`probe`."""
        return self.probe.parts if isinstance(self.probe, SetupProbe) else ()


async def measure_setup(
    name: str,
    shards: Sequence[tuple[str, Sequence[str]]],
    riskd_cmd: list[str],
    ctx: Context,
) -> Setup:
    """Start the setup's processes (one not sharded when ``shards`` is one entry without
    underlyings), scenario A, the sustained-rate search, stop them."""
    prefix = TWO_PREFIX if len(shards) > 1 else ONE_PREFIX
    daemons: list[Daemon] = []
    try:
        for shard, underlyings in shards:
            ctx.progress(
                f"{name}: starting {shard} ({'+'.join(underlyings) or 'every underlying'})"
            )
            daemons.append(
                await start_riskd(
                    riskd_cmd, ctx.workdir, ctx.broker_port, ctx.redis_url, ctx.redis,
                    name=shard, prefix=prefix, topic_prefix=TOPICS, underlyings=underlyings,
                )
            )  # fmt: skip
        pids = [*(d.child.proc.pid for d in daemons), *ctx.servers]
        async with probing(
            daemons, ctx.book, ctx.broker_port, ctx.redis_port, ctx.progress, by_underlying=True
        ) as prober:
            latency = await run_scenario(
                prober, "A", name, ctx.book.probes, ctx.plan.samples, pids, ctx.progress
            )
        ctx.progress(f"{name}: sustained-rate search")

        async def probe(rate: float) -> RateProbe:
            return await setup_probe(
                daemons, ctx.redis, ctx.broker_port, ctx.stream, rate, ctx.plan.search
            )

        counter = SumCounter([HeartbeatCounter(ctx.redis, d.redis_prefix) for d in daemons])
        throughput = await search(
            name, counter, ctx.broker_port, ctx.stream, ctx.plan.search, pids, ctx.progress,
            probe=probe,
        )  # fmt: skip
    finally:
        for d in daemons:
            await stop_daemon(d)
    processes = [(shard, "+".join(u) or "BTC+ETH") for shard, u in shards]
    return Setup(name, processes, throughput, latency)


@dataclass(slots=True)
class Context:
    """What every setup runs against."""

    plan: Plan
    book: Book
    workdir: Path
    stream: Path
    broker_port: int
    redis_port: int
    redis_url: str
    redis: Any
    servers: list[int]
    progress: Callable[[str], None]


async def measure(
    plan: Plan, riskd_cmd: list[str], progress: Callable[[str], None]
) -> tuple[Book, list[Setup]]:
    """Both setups against servers of their own: one daemon, then two shards."""
    import redis.asyncio as aioredis

    from tests.servers import MosquittoServer, RedisServer

    with (
        MosquittoServer() as broker,
        RedisServer() as redis_server,
        tempfile.TemporaryDirectory(prefix="shardbench-") as tmp,
    ):
        assert broker.proc is not None
        assert redis_server.proc is not None
        workdir = Path(tmp)
        progress("servers up; writing the book")
        book = build_book(time.time_ns())
        book.write_positions(workdir / "positions.csv")
        stream = workdir / "stream.json"
        write_stream(stream, book.bulk, TOPICS, SEED + 20, by_underlying=True)
        redis = aioredis.Redis.from_url(redis_server.url)
        ctx = Context(
            plan, book, workdir, stream, broker.port, redis_server.port, redis_server.url,
            redis, [broker.proc.pid, redis_server.proc.pid], progress,
        )  # fmt: skip
        try:
            one = await measure_setup("one daemon", [("riskd", ())], riskd_cmd, ctx)
            two = await measure_setup("two shards", SHARDS, riskd_cmd, ctx)
        finally:
            await redis.aclose()
    return book, [one, two]


# ---------------------------------------------------------------------------- sizing model


@dataclass(frozen=True, slots=True)
class Load:
    """A market's message rate into riskd, from stated assumptions."""

    market: str
    what: str  # what one shard must take whole (an underlying), unless made of ``parts``
    instruments: int
    per_instrument: float  # msgs/s each, at peak
    source: str  # where the figures come from
    parts: tuple[str, ...] = ()  # the loads (their ``what``) it is made of, each taken whole

    @property
    def rate(self) -> float:
        return self.instruments * self.per_instrument


OPRA_PEAK_PER_SERIES: Final = 25.0  # msgs/s per SPX or SPY series at peak: an assumption
DERIBIT_PER_INSTRUMENT: Final = 10.0  # ticker.{instrument}.100ms: at most one per 100 ms
RATE_LIMITED: Final = 1e3 / MIN_INTERVAL_MS  # one quote per series per min_interval_ms
LOADS: Final = (
    Load("Deribit", "BTC options", 1_000, DERIBIT_PER_INSTRUMENT,
         "assumed ~1,000 listed; `ticker.{instrument}.100ms`: <= 10 msgs/s each"),
    Load("Deribit", "ETH options", 800, DERIBIT_PER_INSTRUMENT,
         "assumed ~800 listed; <= 10 msgs/s each"),
    Load("Deribit", "USDC-settled linear options (SOL, XRP, ...)", 400, DERIBIT_PER_INSTRUMENT,
         "assumed ~400 over several underlyings; <= 10 msgs/s each"),
    Load("Deribit", "the whole options market, by currency", 2_200, DERIBIT_PER_INSTRUMENT,
         "the three rows above",
         ("BTC options", "ETH options", "USDC-settled linear options (SOL, XRP, ...)")),
    Load("OPRA", "SPX + SPXW, at peak", 20_000, OPRA_PEAK_PER_SERIES,
         f"assumed 20,000 series, {OPRA_PEAK_PER_SERIES:g} msgs/s each at peak"),
    Load("OPRA", f"SPX + SPXW, one quote per series per {MIN_INTERVAL_MS} ms", 20_000,
         RATE_LIMITED, "conflated at intake to riskd's rate limit (`min_interval_ms`)"),
    Load("OPRA", "SPX + SPXW, one quote per series per 2 s", 20_000, 0.5,
         "conflated at intake"),
    Load("OPRA", "SPY, at peak", 10_000, OPRA_PEAK_PER_SERIES,
         f"assumed 10,000 series, {OPRA_PEAK_PER_SERIES:g} msgs/s each at peak"),
    Load("OPRA", f"SPY, one quote per series per {MIN_INTERVAL_MS} ms", 10_000, RATE_LIMITED,
         "conflated at intake to riskd's rate limit (`min_interval_ms`)"),
    Load("OPRA", "SPY, one quote per series per 1 s", 10_000, 1.0, "conflated at intake"),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Cost:
    """A shard's CPU as a function of its message rate: ``fixed_cores + rate * us_per_msg``."""

    fixed_cores: float  # cores it uses with no messages (full reprices, risk periods, ...)
    us_per_msg: float  # CPU per message on top, us
    how: str  # how the figures were obtained

    def cores(self, rate: float) -> float:
        """Cores a shard uses at ``rate`` msgs/s."""
        return self.fixed_cores + rate * self.us_per_msg / 1e6

    def capacity(self, share: float) -> float:
        """Msgs/s a shard takes within ``share`` of one core (0 if its fixed cost exceeds
        it)."""
        return max(0.0, share - self.fixed_cores) * 1e6 / self.us_per_msg


def shard_cost(setup: Setup) -> Cost | None:
    """The costliest shard of ``setup``: a least-squares line through its (msgs/s, share of a
    core) at every probe the setup kept up with, when there are 3 or more at distinct rates;
    else its CPU per message at the sustained probe (no fixed part: an upper bound)."""
    kept = [p for p in setup.throughput.probes if p.kept_up and isinstance(p, SetupProbe)]
    costs = []
    for i, (name, _) in enumerate(setup.processes):
        points = [(p.parts[i].taken, p.parts[i].core_share) for p in kept if len(p.parts) > i]
        if len({round(x) for x, _ in points}) >= 3:
            x = np.array([x for x, _ in points])
            y = np.array([y for _, y in points])
            slope, intercept = np.polyfit(x, y, 1).tolist()
            if slope > 0:
                how = f"{name}: line through {len(points)} probes"
                costs.append(Cost(max(0.0, intercept), slope * 1e6, how))
                continue
        part = setup.parts[i] if i < len(setup.parts) else None
        if part is not None and part.cpu_us is not None:
            costs.append(Cost(0.0, part.cpu_us, f"{name}: CPU per message at one probe"))
    return min(costs, key=lambda c: c.capacity(HEADROOM), default=None)


def one_shard(cost: Cost, rate: float) -> str:
    """The verdict for one underlying's ``rate``: one shard within :data:`HEADROOM` of its
    core, one shard above it (little room for bursts), or none (more than one core for one
    event loop)."""
    cores = cost.cores(rate)
    if cores <= HEADROOM:
        return "1"
    if cores <= 1.0:
        return f"1, at {cores:.0%} of its core (over the {HEADROOM:.0%} plan: little headroom)"
    return f"**none**: {cores:.1f} cores for one event loop"


def packed(cost: Cost, loads: Sequence[Load]) -> list[list[Load]]:
    """``loads`` (each taken whole) dealt to shards, largest first, each to the first shard it
    fits within :data:`HEADROOM` (its fixed cost counted once), else to a new one."""
    shards: list[list[Load]] = []
    for load in sorted(loads, key=lambda x: -x.rate):
        for shard in shards:
            if cost.cores(sum(x.rate for x in shard) + load.rate) <= HEADROOM:
                shard.append(load)
                break
        else:
            shards.append([load])
    return shards


def sizing_rows(cost: Cost) -> list[str]:
    """The model's table rows: each load's rate, the cores it takes at ``cost``, and the shards
    it needs (an underlying is never split; a load of several is packed, :func:`packed`)."""
    by_what = {load.what: load for load in LOADS}
    rows = []
    for load in LOADS:
        cores = cost.cores(load.rate)
        if load.parts:
            shards = packed(cost, [by_what[w] for w in load.parts])
            each = "; ".join(
                f"{' + '.join(x.what.split(' (')[0] for x in s)} "
                f"{cost.cores(sum(x.rate for x in s)):.2f}"
                for s in shards
            )
            verdict = f"{len(shards)} ({each} cores)"
        else:
            verdict = one_shard(cost, load.rate)
        rows.append(
            f"| {load.market} | {load.what} | {load.instruments:,} x {load.per_instrument:g} = "
            f"{load.rate:,.0f} | {cores:.2f} | {verdict} | {load.source} |"
        )
    return rows


# ----------------------------------------------------------------------------------- report


@dataclass(slots=True)
class Results:
    started: dt.datetime
    argv: str
    quick: bool
    riskd_cmd: list[str]
    riskd_version: str
    book: Book
    setups: list[Setup]
    elapsed_s: float
    load_start: str
    load_end: str
    others: float | None
    versions: dict[str, str] = field(default_factory=dict)


def _cpu(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def report(r: Results) -> str:
    from bench.kernels import cpu_model  # scipy, numba: the parent only

    one, two = r.setups
    cores = os.cpu_count() or 1
    lines = [
        "# riskd shards benchmark: one daemon against two shards by underlying"
        + (" (quick smoke run)" if r.quick else ""),
        "",
        f"- Date (UTC): {r.started:%Y-%m-%d %H:%M:%S}; `{r.argv}`, {r.elapsed_s:.0f} s",
        f"- Machine: {cpu_model()}, {cores} logical CPUs "
        f"({len(os.sched_getaffinity(0))} usable), {platform.system()} {platform.release()}; "
        f"load average {r.load_start} at the start, {r.load_end} at the end; other processes "
        f"used {_pct(r.others)} of all CPUs over the run",
        f"- Python {platform.python_version()}, numpy {np.__version__}; "
        + ", ".join(f"{k} {v}" for k, v in r.versions.items()),
        f"- riskd: `{shlex.join(r.riskd_cmd)} run` ({r.riskd_version}; {checkout_of(r.riskd_cmd)})",
        f"- Book: {len(r.book.positions):,} positions in {BOOKS} books over {len(r.book.bulk)} "
        f"BTC and ETH options and {len(r.book.probes)} probe options (bench/latency.py's "
        "`build_book`); quotes on the topic layout `md/quote/{underlying}/{instrument}`",
        "- Setups: one daemon (not sharded); two shards, "
        + ", ".join(f"{n} = {'+'.join(u)}" for n, u in SHARDS)
        + " (`[cluster] underlyings`), on the same broker and Redis server",
        "",
        "## One daemon against two shards",
        "",
        f"This machine has {cores} logical CPUs. The two shards share them with each other, "
        "the broker, Redis, the publisher and this harness: the ratios below are what a second "
        "shard gives **on this machine**, not the scaling on a machine with a core per shard.",
        "",
        "| figure | one daemon | two shards | two / one |",
        "|---|---:|---:|---:|",
    ]
    p1, p2 = one.probe, two.probe
    s1 = math.nan if p1 is None else p1.offered if p1.kept_up else p1.taken
    s2 = math.nan if p2 is None else p2.offered if p2.kept_up else p2.taken
    c1 = None if p1 is None else p1.cpu_us
    c2 = None if p2 is None else p2.cpu_us
    a1, a2 = one.latency, two.latency
    lines += [
        f"| sustained quotes/s (sum of the heartbeat counts >= {KEEP_UP:.0%} of offered) "
        f"| {one.rate_cell} | {two.rate_cell} | {_ratio(s2, s1)} |",
        f"| CPU per message, all riskd processes together, us | {_cpu(c1)} | {_cpu(c2)} "
        f"| {_ratio(c2 or math.nan, c1 or math.nan)} |",
        f"| scenario A p50, ms | {_ms(a1.pct(50))} | {_ms(a2.pct(50))} "
        f"| {_ratio(a2.pct(50), a1.pct(50))} |",
        f"| scenario A p99, ms | {_ms(a1.pct(99))} | {_ms(a2.pct(99))} "
        f"| {_ratio(a2.pct(99), a1.pct(99))} |",
        f"| scenario A samples (lost) | {len(a1.samples)} ({a1.lost}) "
        f"| {len(a2.samples)} ({a2.lost}) | |",
    ]
    if r.quick:
        lines += ["", "Quick run: few samples and no rate search; nothing here is a measurement."]
    lines += [
        "",
        "## Per process, at each setup's sustained probe (or the probe it read most at)",
        "",
        "| setup | process | underlyings | msgs/s read | CPU per message us | share of one core |",
        "|---|---|---|---:|---:|---:|",
    ]
    for s in r.setups:
        for (name, underlyings), part in zip(s.processes, s.parts, strict=False):
            lines.append(
                f"| {s.name} | {name} | {underlyings} | {part.taken:,.0f} | {_cpu(part.cpu_us)} "
                f"| {part.core_share:.0%} |"
            )
    lines += [
        "",
        "## Rate probes",
        "",
        "Each probe: a fresh publisher at a fixed rate (QoS 0) of the mixed BTC + ETH stream, "
        "warm-up, then a window between two heartbeats of each process (rewritten every "
        "second). Offered -> read, k msgs/s; a setup keeps up when its processes together read "
        f">= {KEEP_UP:.0%} of what was offered. CPU: each process's threads and its risk "
        "worker over its window.",
        "",
        "| setup | probes: offered -> read (k msgs/s) | sustained msgs/s | others |",
        "|---|---|---:|---:|",
    ]
    for s in r.setups:
        tp = s.throughput
        probes = ", ".join(
            f"{p.offered / 1e3:.1f} -> {p.taken / 1e3:.1f}{'' if p.kept_up else ' (behind)'}"
            for p in tp.probes
        )
        note = " (never fell behind: a lower bound)" if tp.capped else ""
        lines.append(f"| {s.name} | {probes} | {tp.sustained:,.0f}{note} | {_pct(tp.others)} |")
    lines += ["", *sizing_section(shard_cost(two))]
    return "\n".join(lines) + "\n"


def sizing_section(cost: Cost | None) -> list[str]:
    """The sizing model (docs/scaling.md#sizing-shards) at the measured cost of a shard."""
    lines = ["## Sizing model", ""]
    if cost is None:
        return [*lines, "No shard kept up with a probe: no CPU per message to size with."]
    per_core = cost.capacity(1.0)
    planned = cost.capacity(HEADROOM)
    lines += [
        f"**Measured**: a shard's CPU = {cost.fixed_cores:.2f} cores + {cost.us_per_msg:.1f} us "
        f"per message ({cost.how}; all its threads and its risk worker; the costlier shard). "
        f"One core takes **{per_core:,.0f} msgs/s**; planned at {HEADROOM:.0%} of a core for "
        f"bursts, fills and what-if requests, **{planned:,.0f} msgs/s per shard**. A shard's "
        "event loop is one thread: it does not go past one core however many the machine has. "
        f"So one underlying whose load fits in {HEADROOM:.0%} of a core takes one shard; one "
        "that needs more, up to a core, still takes one, with little headroom for bursts; one "
        "that needs more than a core cannot be one shard (conflate its quotes at intake).",
        "",
        "**Assumed** (not measured here): the message rates below. Sharding is by underlying, "
        "so one underlying's whole rate lands on one shard; a market of several underlyings is "
        f"packed, largest first, into shards of at most {HEADROOM:.0%} of a core each (one "
        "shard's fixed cost counted once).",
        "",
        "| market | what one shard takes whole | instruments x msgs/s each = msgs/s | cores "
        "| shards | where the rate comes from |",
        "|---|---|---:|---:|---|---|",
        *sizing_rows(cost),
    ]
    return lines


# -------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (under a minute)")
    parser.add_argument(
        "--riskd-cmd", help="the riskd command to time (default: the riskd beside this Python)"
    )
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    riskd_cmd = shlex.split(args.riskd_cmd) if args.riskd_cmd else default_riskd_cmd()
    # Fixed argv of the command under test, no shell.
    version = subprocess.run(  # noqa: S603
        [*riskd_cmd, "--version"], capture_output=True, text=True, check=False, timeout=60
    ).stdout.strip()
    shown = ["--quick"] if args.quick else []
    if args.riskd_cmd:
        shown += ["--riskd-cmd", args.riskd_cmd]
    started = dt.datetime.now(dt.UTC)
    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    # SIGTERM as Ctrl-C: the servers and the children are stopped on the way out.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    load_start = " ".join(f"{x:.2f}" for x in os.getloadavg())
    whole = Neighbours([])
    book, setups = asyncio.run(measure(plan, riskd_cmd, progress))
    others, _ = whole.shares()
    results = Results(
        started=started,
        argv=shlex.join(["python", "-m", "bench.shards", *shown]),
        quick=args.quick,
        riskd_cmd=riskd_cmd,
        riskd_version=version or "version unknown",
        book=book,
        setups=setups,
        elapsed_s=time.perf_counter() - t_start,
        load_start=load_start,
        load_end=" ".join(f"{x:.2f}" for x in os.getloadavg()),
        others=others,
        versions=_versions(),
    )
    text = report(results)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
