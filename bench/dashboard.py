"""The dashboard's cost and speed: riskd's sustained quote rate with 10 browsers connected to its
dashboard beside the same daemon with none, in one run; and how long a quote takes to show in
the page.

One invocation starts its own ``mosquitto`` and ``redis-server`` (``tests.servers``, free loopback
ports), writes the latency benchmark's book (bench/latency.py: 10,000 positions in 32 books, a
probe option per (book, underlying)), and runs one riskd process (``riskd run -c riskd.toml
--view off``, every setting at its default but the Redis URL and prefix, the MQTT feed, the
positions and ``[http] address``: the dashboard is on in every phase):

1. **Throughput.** The sustained-rate search of bench/latency.py (the highest rate at which
   riskd reads at least 98 % of the quotes offered over the window, its heartbeat's count),
   in turn without a browser and with 10 connected, three rounds (none, 10, none, 10, none,
   10, none), every quote sent once more before each so that none goes stale. The 10 are
   WebSocket clients in a process of their own that read every message and parse it as the
   page does (the JSON, every entry into a store by key and field): on two cores, 10 Chromium
   pages redrawing 5 times a second would take the CPU the daemon needs, and measure the
   machine rather than the daemon's sending. With two CPUs or more, riskd runs on CPU 0 alone
   (one numba thread) and everything else on the last CPU, as browsers on other machines
   would. The ratio is the median rate with the browsers over the median without (target >=
   0.95).
2. **Latency to the page.** Headless Chromium (Debian's) on the dashboard, exposures by expiry,
   the 10 clients still connected, no other load. The probe's row is scrolled into the table's
   view first, as a person watching it would have it (rows out of view take new figures as they
   scroll in: docs/dashboard.md "The page"). A probe quote sets a probe option's forward to a
   value never sent before (bench/latency.py's method: in its key's payload the probe bucket's
   ``delta_usd / delta`` is exactly that forward); a MutationObserver in the page notes when the
   figures of that bucket in the DOM show it (``performance.timeOrigin + performance.now()``,
   the same clock as the harness's ``time.time_ns()``). A sample is that time minus the time
   just before the quote was written to the broker (target p50 <= 250 ms); 3 s without: lost.

Run from the repository root::

    scripts/bench dashboard                                 # full run, about 5 minutes
    .venv/bin/python -m bench.dashboard --quick             # smoke run, about 40 s
    .venv/bin/python -m bench.dashboard --out bench/results/$(date -u +%F)-dashboard.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
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

if not __package__:  # run as a file: make `bench` and `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import orjson

from bench.latency import (
    PROBE_STEP,
    SEED,
    Book,
    Child,
    HeartbeatCounter,
    SearchPlan,
    Throughput,
    build_book,
    checkout_of,
    default_riskd_cmd,
    mqtt_connect,
    search,
    write_stream,
)
from bench.pipeline import Neighbours, _proc_cpu_s, mqtt_publish_packet

ROOT = Path(__file__).resolve().parent.parent
CLIENTS: Final = 10
TARGET_RATIO: Final = 0.95
TARGET_P50_MS: Final = 250.0
PROBE_TIMEOUT_S: Final = 3.0
TOPICS: Final = "dashbench/"
PREFIX: Final = "dashbench"

_RISKD_TOML: Final = """\
# bench/dashboard.py: every setting at its default but these (risk periods on, dashboard on)
[redis]
url = "{redis_url}"
prefix = "{prefix}"

[portfolio]
positions = "positions.csv"

[http]
address = "127.0.0.1:{http_port}"

[[feeds]]
kind = "mqtt"
name = "md"
port = {port}
topic_prefix = "{topic_prefix}"
client_id = "{prefix}"
"""

_OBSERVER_JS: Final = """() => {
  window.__probe = null;
  const panel = document.getElementById('panel-exposures');
  const seen = () => {
    const p = window.__probe;
    if (!p || p.t !== null) return;
    const at = `#panel-exposures [data-key="${p.key}"][data-field="${p.field}"]`;
    for (const c of panel.querySelectorAll(`${at}[data-path^="expiries.expiry."]`)) {
      if (c.dataset.value !== JSON.stringify(p.label)) continue;
      const i = c.dataset.path.split('.')[2];
      const usd = panel.querySelector(`${at}[data-path="expiries.delta_usd.${i}"]`);
      const delta = panel.querySelector(`${at}[data-path="expiries.delta.${i}"]`);
      if (usd && delta
          && Math.abs(Number(usd.dataset.value) / Number(delta.dataset.value) / p.forward - 1)
             <= 1e-9) {
        p.t = performance.timeOrigin + performance.now();
      }
    }
  };
  new MutationObserver(seen).observe(panel, {subtree: true, childList: true});
}"""


# --------------------------------------------------------------------------- the clients


async def run_clients(url: str, n: int) -> None:
    """Child role: ``n`` WebSocket clients of the dashboard; each reads every message, parses it
    and keeps every entry by (key, field), as the page's store does. Prints ``{"ready": n}``
    once all have their snapshot, then ``{"messages", "bytes", "entries"}`` every second."""
    import aiohttp  # children import what they use

    counts = {"messages": 0, "bytes": 0, "entries": 0, "snapshots": 0}

    async def client(session: aiohttp.ClientSession, ready: asyncio.Event) -> None:
        store: dict[tuple[str, str], Any] = {}
        async with session.ws_connect(url, max_msg_size=0) as ws:
            async for msg in ws:
                data = orjson.loads(msg.data)
                if data["type"] == "snapshot":
                    store.clear()
                    counts["snapshots"] += 1
                    if counts["snapshots"] >= n:
                        ready.set()
                for e in data["entries"]:
                    if e["payload"] is None:
                        store.pop((e["key"], e["field"]), None)
                    else:
                        store[(e["key"], e["field"])] = e["payload"]
                counts["messages"] += 1
                counts["bytes"] += len(msg.data)
                counts["entries"] += len(data["entries"])

    ready = asyncio.Event()
    async with aiohttp.ClientSession() as session, asyncio.TaskGroup() as tg:
        for i in range(n):
            tg.create_task(client(session, ready), name=f"client{i}")
        await ready.wait()
        print(json.dumps({"ready": n}), flush=True)
        while True:
            await asyncio.sleep(1.0)
            print(json.dumps({"ts_ns": time.time_ns(), **counts}), flush=True)


# --------------------------------------------------------------------------- the measurements


@dataclass(slots=True)
class Clients:
    """The clients' traffic over the throughput search with them connected."""

    messages_per_s: float = 0.0  # per client
    kib_per_s: float = 0.0  # per client
    entries_per_message: float = 0.0
    snapshots: int = 0


@dataclass(slots=True)
class Usage:
    """CPU over one search: riskd's and the clients' (seconds), the quotes riskd read."""

    wall_s: float = 0.0
    riskd_cpu_s: float = 0.0
    clients_cpu_s: float = 0.0
    quotes: int = 0

    @property
    def riskd_ms_per_1k(self) -> float:
        return 1e6 * self.riskd_cpu_s / self.quotes if self.quotes else math.nan


async def searched(
    name: str,
    counter: HeartbeatCounter,
    port: int,
    stream: Path,
    plan: SearchPlan,
    pids: list[int],
    progress: Callable[[str], None],
) -> tuple[Throughput, Usage]:
    """:func:`bench.latency.search`, with the CPU riskd (``pids[0]``) and the clients
    (``pids[-1]`` when they run) used over it."""
    riskd, clients = pids[0], pids[-1] if name != "riskd" else None
    _, q0 = await counter.reading()
    t0, r0 = time.perf_counter(), _proc_cpu_s(riskd)
    c0 = _proc_cpu_s(clients) if clients else 0.0
    found = await search(name, counter, port, stream, plan, pids, progress)
    _, q1 = await counter.reading()
    return found, Usage(
        wall_s=time.perf_counter() - t0,
        riskd_cpu_s=_proc_cpu_s(riskd) - r0,
        clients_cpu_s=(_proc_cpu_s(clients) - c0) if clients else 0.0,
        quotes=q1 - q0,
    )


@dataclass(frozen=True, slots=True)
class Search:
    """One sustained-rate search, with or without the browsers."""

    browsers: bool
    found: Throughput
    usage: Usage


@dataclass(slots=True)
class Results:
    started: dt.datetime
    argv: str
    quick: bool
    riskd_cmd: list[str]
    riskd_version: str
    book: Book
    searches: list[Search] = field(default_factory=list)  # in the order they ran
    pinned: bool = False  # riskd on CPU 0 alone, the rest on the last CPU
    usable_cpus: int = 0
    clients: Clients = field(default_factory=Clients)
    latencies_ms: list[float] = field(default_factory=list)  # inf: lost
    elapsed_s: float = 0.0
    load_start: str = ""
    load_end: str = ""
    others: float | None = None

    def rates(self, browsers: bool) -> list[float]:
        return [s.found.sustained for s in self.searches if s.browsers == browsers]

    @property
    def ratio(self) -> float:
        """The median rate with the browsers over the median without (a search that a busy
        neighbour spoiled moves a median less than a mean)."""
        base, loaded = self.rates(browsers=False), self.rates(browsers=True)
        if not base or not loaded or not np.median(base):
            return math.nan
        return float(np.median(loaded) / np.median(base))

    def pct(self, q: float) -> float:
        a = np.array(self.latencies_ms)
        if not a.size:
            return math.nan
        return float(np.percentile(a, q, method="higher" if np.isinf(a).any() else "linear"))


@dataclass(frozen=True, slots=True)
class Plan:
    """``rounds`` searches with the browsers, each between two without (none, browsers,
    none, ...): the machine's drift falls on both alike."""

    search: SearchPlan
    samples: int
    rounds: int


FULL: Final = Plan(
    SearchPlan(start=4_000.0, growth=1.25, bisect=3, warmup_s=1.0, window_s=3.0, max_probes=12),
    samples=100,
    rounds=3,
)
QUICK: Final = Plan(
    SearchPlan(start=2_000.0, growth=1.4, bisect=0, warmup_s=0.5, window_s=1.0, max_probes=1),
    samples=10,
    rounds=1,
)


_PIN: Final = (
    "import os, sys; os.sched_setaffinity(0, {0}); os.environ['NUMBA_NUM_THREADS'] = '1'; "
    "os.execvp(sys.argv[1], sys.argv[1:])"
)
"""Runs a command on CPU 0 alone (its threads inherit it), numba on one thread (OpenMP workers
spinning on the one CPU would take it from the event loop)."""


def pinned(cmd: Sequence[str], pin: bool) -> list[str]:
    """``cmd`` run on CPU 0 alone, with ``pin`` (the harness and its other children keep to
    the last CPU: :func:`main`)."""
    return [sys.executable, "-c", _PIN, *cmd] if pin else list(cmd)


async def start_riskd(
    cmd: Sequence[str], workdir: Path, broker: int, redis_url: str, redis: Any, http_port: int
) -> Child:
    """riskd with its dashboard on ``http_port``, ready when its heartbeat says the MQTT feed is
    connected."""
    config = workdir / "riskd.toml"
    config.write_text(
        _RISKD_TOML.format(
            redis_url=redis_url, prefix=PREFIX, port=broker, topic_prefix=TOPICS,
            http_port=http_port,
        ),
        encoding="utf-8",
    )  # fmt: skip
    child = await Child.start(
        [*cmd, "run", "-c", str(config), "--view", "off"], "riskd", workdir / "riskd.log", workdir
    )
    async with asyncio.timeout(300.0):  # a first run compiles the kernels
        while True:
            if child.proc.returncode is not None:
                raise RuntimeError(f"riskd exited ({child.proc.returncode}): see riskd.log")
            raw = await redis.get(f"{PREFIX}:heartbeat")
            if raw is not None and orjson.loads(raw)["feeds"]["md"]["connected"]:
                return child
            await asyncio.sleep(0.05)


async def reading(clients: Child) -> dict[str, Any]:
    """The clients' first counts printed from now on (older lines wait in the pipe)."""
    since = time.time_ns()
    while True:
        line = await clients.line(15.0)
        if line.get("ts_ns", 0) >= since:
            return line


def seed_quotes(book: Book, port: int) -> None:
    """Every option's resting quote and the indices, once, so every figure has a value and
    none is stale (the publisher's stream quotes the bulk options only)."""
    sock = mqtt_connect(port, f"{PREFIX}-seed")
    try:
        for index, price in book.indices:
            data = orjson.dumps({"instrument": index, "price": price, "ts_ns": time.time_ns()})
            sock.sendall(mqtt_publish_packet(f"{TOPICS}md/tick/{index}", data))
        for q in book.quotes:
            msg = {**q.payload(), "ts_ns": time.time_ns()}
            sock.sendall(mqtt_publish_packet(f"{TOPICS}md/quote/{q.instrument}", orjson.dumps(msg)))
        sock.sendall(b"\xe0\x00")
    finally:
        sock.close()


def page_latencies(book: Book, url: str, broker: int, samples: int) -> list[float]:
    """Milliseconds from a probe quote to its figures in the page's DOM (inf: lost)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout
    from playwright.sync_api import expect, sync_playwright

    from tests.browser.conftest import CHROMIUM

    seed_quotes(book, broker)
    out: list[float] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM))
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(url)
        expect(page.locator("#status")).to_contain_text("LIVE", timeout=60_000)
        page.get_by_role("button", name="expiry", exact=True).click()
        first = book.probes[0]
        label = page.locator(
            f'#panel-exposures [data-field="{first.key}"][data-path^="expiries.expiry."]'
            f"[data-value='{json.dumps(first.label)}']"
        )
        expect(label).to_have_count(1, timeout=60_000)
        page.evaluate(_OBSERVER_JS)
        sock = mqtt_connect(broker, f"{PREFIX}-probe")
        try:
            for k in range(samples):
                p = book.probes[k % len(book.probes)]
                forward = p.quote.forward * (1.0 + PROBE_STEP * (1 + k))
                page.evaluate(
                    "(p) => { window.__probe = {...p, t: null}; }",
                    {
                        "key": f"{PREFIX}:snapshot",
                        "field": p.key,
                        "label": p.label,
                        "forward": forward,
                    },
                )
                # the probe's row on screen, as a person watching it would have it: rows
                # scrolled out of the table's view take new figures as they scroll in
                page.locator(
                    f'#panel-exposures [data-field="{p.key}"][data-path^="expiries.expiry."]'
                    f"[data-value='{json.dumps(p.label)}']"
                ).scroll_into_view_if_needed()
                msg = p.quote.payload(forward)
                t_send = time.time_ns()
                msg["ts_ns"] = t_send
                topic = f"{TOPICS}md/quote/{p.quote.instrument}"
                sock.sendall(mqtt_publish_packet(topic, orjson.dumps(msg)))
                try:
                    page.wait_for_function(  # polled on a timer: frames may be few
                        "() => window.__probe.t !== null",
                        polling=20,
                        timeout=PROBE_TIMEOUT_S * 1000,
                    )
                    t_seen = page.evaluate("() => window.__probe.t")
                    out.append(float(t_seen) - t_send / 1e6)
                except PlaywrightTimeout:
                    out.append(math.inf)
        finally:
            sock.close()
            browser.close()
    return out


async def measure(
    plan: Plan, riskd_cmd: list[str], r: Results, progress: Callable[[str], None]
) -> None:
    import redis.asyncio as aioredis

    from tests.servers import MosquittoServer, RedisServer, free_port

    with (
        MosquittoServer() as broker,
        RedisServer() as redis_server,
        tempfile.TemporaryDirectory(prefix="dashbench-") as tmp,
    ):
        assert broker.proc is not None
        assert redis_server.proc is not None
        workdir = Path(tmp)
        r.book.write_positions(workdir / "positions.csv")
        stream = workdir / "all.json"
        write_stream(stream, r.book.bulk, TOPICS, SEED)
        redis = aioredis.Redis.from_url(redis_server.url)
        http_port = free_port()
        url = f"http://127.0.0.1:{http_port}/"
        progress(f"riskd: starting `{shlex.join(riskd_cmd)}`, dashboard at {url}")
        d = await start_riskd(
            pinned(riskd_cmd, r.pinned), workdir, broker.port, redis_server.url, redis, http_port
        )
        pids = [d.proc.pid, broker.proc.pid, redis_server.proc.pid]
        counter = HeartbeatCounter(redis, PREFIX)
        ws_url = url.replace("http", "ws", 1) + "ws"

        async def without() -> None:
            seed_quotes(r.book, broker.port)  # nothing stale: the same work in every search
            progress("no browser: sustained-rate search")
            found, used = await searched(
                "riskd", counter, broker.port, stream, plan.search, pids, progress
            )
            r.searches.append(Search(browsers=False, found=found, usage=used))

        async def with_browsers(first: bool) -> None:
            argv = [sys.executable, "-m", "bench.dashboard", "--role", "clients", "--url", ws_url]
            clients = await Child.start(argv, "clients")
            try:
                await clients.line(120.0)  # every client has its snapshot
                seed_quotes(r.book, broker.port)
                progress(f"{CLIENTS} browsers: sustained-rate search")
                before = await reading(clients)
                found, used = await searched(
                    f"riskd + {CLIENTS} browsers", counter, broker.port, stream, plan.search,
                    [*pids, clients.proc.pid], progress,
                )  # fmt: skip
                r.searches.append(Search(browsers=True, found=found, usage=used))
                after = await reading(clients)
                if first:
                    span_s = (after["ts_ns"] - before["ts_ns"]) / 1e9
                    n = max(after["messages"] - before["messages"], 1)
                    r.clients = Clients(
                        messages_per_s=n / span_s / CLIENTS,
                        kib_per_s=(after["bytes"] - before["bytes"]) / span_s / CLIENTS / 1024,
                        entries_per_message=(after["entries"] - before["entries"]) / n,
                        snapshots=after["snapshots"],
                    )
                    progress(f"latency to the page: {plan.samples} probes (Chromium)")
                    r.latencies_ms = await asyncio.to_thread(
                        page_latencies, r.book, url, broker.port, plan.samples
                    )
            finally:
                await clients.stop()

        try:
            await without()
            for k in range(plan.rounds):
                await with_browsers(first=k == 0)
                await without()
        finally:
            status = await d.stop()
            await redis.aclose()
            if status not in (0, -signal.SIGTERM):
                raise RuntimeError(f"riskd exited with status {status}")


# ------------------------------------------------------------------------------- the report


def _ms(x: float) -> str:
    return "lost" if math.isinf(x) else ("-" if math.isnan(x) else f"{x:,.1f}")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def report(r: Results) -> str:
    from bench.kernels import cpu_model  # scipy, numba: the parent only

    base, loaded = r.rates(browsers=False), r.rates(browsers=True)
    capped = any(s.found.capped for s in r.searches)
    p50 = r.pct(50)
    lost = sum(math.isinf(x) for x in r.latencies_ms)
    ok_ratio = r.ratio >= TARGET_RATIO and not capped
    ok_p50 = p50 <= TARGET_P50_MS
    c = r.clients
    rates = " / ".join(f"{x:,.0f}" for x in base)
    lines = [
        "# riskd dashboard benchmark: throughput with 10 browsers, a quote to the page"
        + (" (quick smoke run)" if r.quick else ""),
        "",
        f"- Date (UTC): {r.started:%Y-%m-%d %H:%M:%S}; `{r.argv}`, {r.elapsed_s:.0f} s",
        f"- Machine: {cpu_model()}, {os.cpu_count()} logical CPUs "
        f"({r.usable_cpus} usable), {platform.system()} {platform.release()}; "
        f"load average {r.load_start} at the start, {r.load_end} at the end; other processes "
        f"used {_pct(r.others)} of all CPUs over the run",
        f"- riskd: `{shlex.join(r.riskd_cmd)} run -c riskd.toml --view off` ({r.riskd_version}; "
        f"{checkout_of(r.riskd_cmd)}), dashboard on (`[http]` defaults: updates at most every "
        "200 ms)",
        "- CPUs: "
        + (
            "riskd on CPU 0 alone (one numba thread); the servers, the publisher, the clients, "
            "the browser and the harness on the last CPU (as browsers on other machines would "
            "be)"
            if r.pinned
            else "not pinned: every process on every CPU"
        ),
        f"- Book: {len(r.book.positions):,} positions in 32 books (bench/latency.py's), "
        f"{len(r.book.probes)} probe options",
        "",
        "## Results",
        "",
        "| measure | riskd, no browser | riskd, 10 browsers | ratio | target | met |",
        "|---|---|---|---:|---|---|",
        f"| sustained quotes/s | {rates} (median {np.median(base) if base else 0.0:,.0f}) | "
        f"{' / '.join(f'{x:,.0f}' for x in loaded)} (median "
        f"{np.median(loaded) if loaded else 0.0:,.0f}) | {r.ratio:.3f}x | >= {TARGET_RATIO}x "
        f"the rate without | **{'met' if ok_ratio else 'not met'}** |",
        "",
        "| measure | p50 | p90 | p99 | max | lost | samples | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|",
        f"| quote to the page's DOM, ms | {_ms(p50)} | {_ms(r.pct(90))} | {_ms(r.pct(99))} | "
        f"{_ms(r.pct(100))} | {lost} | {len(r.latencies_ms)} | p50 <= {TARGET_P50_MS:.0f} ms | "
        f"**{'met' if ok_p50 else 'not met'}** |",
        "",
        f"The 10 clients, over the first search with them: {c.messages_per_s:.1f} messages/s "
        f"and {c.kib_per_s:,.0f} KiB/s each, {c.entries_per_message:.1f} entries a message, "
        f"{c.snapshots} snapshots in all (10: none was dropped and reconnected).",
        "",
        "Sustained rate: the highest rate of a search (bench/latency.py) that riskd read at "
        "least 98 % of over the window. The searches ran in turn, without the browsers and with "
        "them; ratio: the median with over the median without. "
        + ("A search whose every probe was kept up with gives only a bound. " if capped else "")
        + "Each search, in order: its probes (offered / read, msgs/s), riskd's CPU (cores, and "
        "ms per 1,000 quotes read), the clients' (cores), and what other processes (not the "
        "benchmark's) took of all CPUs over it:",
    ]
    lines += [
        "",
        "| search | probes | riskd CPU, cores | ms / 1k quotes | clients' CPU, cores | others |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for s in r.searches:
        u = s.usage
        probes = ", ".join(f"{p.offered:,.0f}/{p.taken:,.0f}" for p in s.found.probes)
        lines.append(
            f"| {'10 browsers' if s.browsers else 'no browser'} | {probes} | "
            f"{u.riskd_cpu_s / u.wall_s if u.wall_s else 0.0:.2f} | {u.riskd_ms_per_1k:.1f} | "
            f"{u.clients_cpu_s / u.wall_s if u.wall_s else 0.0:.2f} | "
            f"{_pct(s.found.others)} |"
        )
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a short smoke run (about 40 s)")
    parser.add_argument("--samples", type=int, help="latency probes (default 100; quick 10)")
    parser.add_argument("--riskd-cmd", help="the riskd command to time (default: this checkout's)")
    parser.add_argument("--out", type=Path, help="also write the markdown report to this file")
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not run riskd on CPU 0 alone and the rest (servers, publisher, clients, "
        "browser) on the last CPU",
    )
    parser.add_argument("--role", choices=("clients",), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "clients":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(run_clients(args.url, CLIENTS))
        return 0
    base = QUICK if args.quick else FULL
    if args.samples is not None and args.samples < 1:
        parser.error("--samples must be >= 1")
    plan = Plan(base.search, args.samples or base.samples, base.rounds)
    riskd_cmd = shlex.split(args.riskd_cmd) if args.riskd_cmd else default_riskd_cmd()
    # Fixed argv of the command under test, no shell.
    version = subprocess.run(  # noqa: S603
        [*riskd_cmd, "--version"], capture_output=True, text=True, check=False, timeout=60
    ).stdout.strip()
    shown = ["--quick"] if args.quick else []
    if args.samples is not None:
        shown += ["--samples", str(args.samples)]
    if args.riskd_cmd:
        shown += ["--riskd-cmd", args.riskd_cmd]
    if args.no_pin:
        shown += ["--no-pin"]
    t_start = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[{time.perf_counter() - t_start:6.1f} s] {msg}", file=sys.stderr, flush=True)

    signal.signal(signal.SIGTERM, signal.default_int_handler)
    r = Results(
        started=dt.datetime.now(dt.UTC),
        argv=shlex.join(["python", "-m", "bench.dashboard", *shown]),
        quick=args.quick,
        riskd_cmd=riskd_cmd,
        riskd_version=version or "version unknown",
        book=build_book(time.time_ns()),
        load_start=" ".join(f"{x:.2f}" for x in os.getloadavg()),
    )
    cpus = sorted(os.sched_getaffinity(0))
    r.usable_cpus = len(cpus)
    r.pinned = not args.no_pin and len(cpus) >= 2 and cpus[0] == 0
    if r.pinned:  # the servers, the publisher, the clients and the browser inherit it
        os.sched_setaffinity(0, {cpus[-1]})
    whole = Neighbours([])
    asyncio.run(measure(plan, riskd_cmd, r, progress))
    r.others, _ = whole.shares()
    r.elapsed_s = time.perf_counter() - t_start
    r.load_end = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(r)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
