"""A naive per-quote risk daemon: the baseline of ``bench/latency.py``.

It takes market data as riskd's MQTT feed does (aiomqtt, each message decoded by
``feeds.json_codec.JsonCodec`` in paho's message callback, topics ``{prefix}md/quote/+`` and
``{prefix}md/tick/+`` at QoS 1) and, for **every** quote, in the order received:

1. stores the quote's ``underlying_price`` and ``iv`` for its instrument;
2. reprices the **whole** book at the current time with riskd's own kernel
   (``engine.greeks.black76``, one vectorised call over every position) and sums the figures per
   (book, underlying) and per (book, underlying, expiry) with ``numpy.bincount``;
3. writes the payload of every (book, underlying) that holds the quoted instrument to Redis at
   once: ``PUBLISH {p}:exposure`` + ``HSET {p}:snapshot`` in one pipeline, awaited before the
   next quote.

No conflation, no rate limit, no timers, no risk periods.

With ``--relay`` it reprices nothing: for each quote it writes, for every key holding the
instrument, a payload that carries only what the harness reads (the quoted instrument's expiry
bucket, ``delta`` 1 and ``delta_usd`` the quote's forward). That is the floor of any daemon with
this intake and this Redis client on the machine: MQTT in, one pipeline out, no engine.

The payloads (without ``--relay``) have the shape of riskd's underlying-scope exposure payloads
(docs/redis.md) with the same figures and units, so the latency harness checks both the same way.
Options only, on a forward (Black-76, coin-settled or linear), r = 0 as on Deribit; ticks are read
and ignored.

Run by ``bench/latency.py``::

    python -m bench.naive --mqtt-port P --topic-prefix X/ --redis-url URL --prefix P --positions F

prints ``{"event": "ready"}`` once subscribed and connected to Redis, and on SIGTERM a last line
``{"event": "stats", ...}`` (quotes handled, median and p99 ms of the reprice and of the write).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

if not __package__:  # run as a file (python bench/naive.py): make `engine` and `feeds` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np
import numpy.typing as npt
import orjson

from engine import greeks
from engine.errors import FeedDecodeError
from engine.events import Quote
from engine.instruments import Instrument, InstrumentRegistry, Kind, parse_deribit_name
from engine.outputs import METRICS, SCHEMA_VERSION, UNITS

__all__ = ["NaiveBook", "main"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

NS_PER_YEAR: Final = 365.0 * 86_400e9  # ACT/365, as engine.daycount
FIGURES: Final = METRICS
"""The twelve figures of an exposure payload, in its order (docs/redis.md)."""


def _expiry_label(expiry_ns: int) -> str:
    return datetime.fromtimestamp(expiry_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(slots=True)
class _Key:
    """One (book, underlying): its name, and its expiry buckets (group rows, labels)."""

    book: str
    underlying: str
    groups: I64
    labels: list[str]


class NaiveBook:
    """A positions file as position-level columns; :meth:`reprice` values all of it.

    Args:
        rows: ``(book, instrument, quantity, avg_price)``; avg_price in the quote currency
            (coin for coin-settled options), NaN when absent.

    Raises:
        ValueError: an instrument that is not a Deribit option name.
    """

    def __init__(self, rows: list[tuple[str, str, float, float]]) -> None:
        defs: dict[str, Instrument] = {}
        inst_of: list[int] = []
        names: list[str] = []
        for _, name, _, _ in rows:
            if name not in defs:
                inst = parse_deribit_name(name)
                if inst is None or inst.kind != Kind.OPTION or inst.expiry_ns is None:
                    raise ValueError(f"{name}: the naive daemon prices Deribit options only")
                defs[name] = inst
                names.append(name)
        self.index = {name: i for i, name in enumerate(names)}
        self.registry = InstrumentRegistry(defs.values())
        insts = [defs[n] for n in names]
        self.strike = np.array([i.strike or 0.0 for i in insts])
        self.expiry_ns = np.array([i.expiry_ns or 0 for i in insts], dtype=np.int64)
        self.is_call = np.array([bool(i.is_call) for i in insts])
        self.inverse = np.array([i.is_inverse for i in insts])
        self.mult = np.array([i.multiplier for i in insts])
        self.forward = np.full(len(insts), np.nan)
        self.iv = np.full(len(insts), np.nan)
        keys: dict[tuple[str, str], int] = {}
        groups: dict[tuple[int, int], int] = {}
        key_of: list[int] = []
        group_of: list[int] = []
        for book, name, _, _ in rows:
            inst = defs[name]
            k = keys.setdefault((book, inst.underlying), len(keys))
            key_of.append(k)
            group_of.append(groups.setdefault((k, inst.expiry_ns or 0), len(groups)))
            inst_of.append(self.index[name])
        self.pos_inst = np.array(inst_of, dtype=np.int64)
        self.pos_key = np.array(key_of, dtype=np.int64)
        self.pos_group = np.array(group_of, dtype=np.int64)
        self.qty = np.array([r[2] for r in rows])
        avg = np.array([r[3] for r in rows])
        self.has_cost = np.isfinite(avg)
        self.cost = np.where(self.has_cost, self.qty * avg, 0.0)
        self.n_groups = len(groups)
        by_key: dict[int, list[tuple[int, int]]] = {}
        for (k, expiry), g in groups.items():
            by_key.setdefault(k, []).append((expiry, g))
        self.keys: list[_Key] = []
        for (book, und), k in keys.items():
            buckets = sorted(by_key[k])
            self.keys.append(
                _Key(
                    book,
                    und,
                    np.array([g for _, g in buckets], dtype=np.int64),
                    [_expiry_label(e) for e, _ in buckets],
                )
            )
        holders: dict[int, set[int]] = {}
        for i, k in zip(inst_of, key_of, strict=True):
            holders.setdefault(i, set()).add(k)
        self.keys_of = [sorted(holders[i]) for i in range(len(insts))]
        """Instrument -> the (book, underlying) keys holding it."""
        column = np.arange(14, dtype=np.int64)[:, None]
        # the bin of (column c, position i) in one bincount over all 14 columns: c x n + key
        self._key_bins = (column * len(self.keys) + self.pos_key).ravel()
        self._group_bins = (column * self.n_groups + self.pos_group).ravel()

    @classmethod
    def from_csv(cls, path: Path) -> NaiveBook:
        """A positions file of riskd's format (``book,instrument,quantity,avg_price``)."""
        with path.open(encoding="utf-8", newline="") as f:
            rows = [
                (
                    r["book"],
                    r["instrument"],
                    float(r["quantity"]),
                    float(r["avg_price"]) if r.get("avg_price") else float("nan"),
                )
                for r in csv.DictReader(f)
            ]
        return cls(rows)

    def apply(self, quote: Quote) -> int | None:
        """Store a quote's forward and vol; the instrument's row, None if not held."""
        i = self.index.get(quote.instrument)
        if i is None:
            return None
        if quote.underlying_price is not None:
            self.forward[i] = quote.underlying_price
        if quote.iv is not None:
            self.iv[i] = quote.iv
        return i

    def reprice(self, now_ns: int) -> tuple[F64, F64]:
        """Every position valued at ``now_ns``: the sums per key, (n_keys, 14), and per expiry
        bucket, (n_groups, 14): the twelve figures, positions held, positions not priced."""
        p = self.pos_inst
        F = self.forward[p]
        T = (self.expiry_ns[p] - now_ns) / NS_PER_YEAR
        g = greeks.black76(self.is_call[p], F, self.strike[p], T, 0.0, self.iv[p], parallel=False)
        m = self.mult[p]
        q = self.qty
        bad = ~np.isfinite(g.price)
        cols = np.empty((14, p.size))
        cols[0] = q * m * g.delta
        cols[1] = cols[0] * F
        cols[2] = np.where(self.inverse[p], q * m * (g.delta - g.price / F), cols[0])
        cols[3] = q * m * g.gamma
        cols[4] = cols[3] * F * F * 0.01
        cols[5] = q * m * g.vega * 0.01
        cols[6] = q * m * g.theta / 365.0
        cols[7] = q * m * g.rho * 0.01
        cols[8] = q * m * g.vanna * 0.01
        cols[9] = q * m * g.volga * 1e-4
        cols[10] = q * m * g.price
        # cost in the quote currency: coin for coin-settled options, converted at the forward
        paid = np.where(self.inverse[p], self.cost * F, self.cost)
        cols[11] = np.where(self.has_cost, cols[10] - m * paid, 0.0)
        cols[:12, bad] = 0.0  # a position that cannot be priced contributes nothing
        cols[12] = q != 0.0
        cols[13] = bad
        flat = cols.ravel()
        n_keys = len(self.keys)
        # with weights, bincount sums float64 (numpy's stubs say intp)
        per_key = np.asarray(np.bincount(self._key_bins, flat, 14 * n_keys), np.float64)
        per_group = np.asarray(np.bincount(self._group_bins, flat, 14 * self.n_groups), np.float64)
        return per_key.reshape(14, n_keys).T, per_group.reshape(14, self.n_groups).T

    def relay_payload(self, k: int, i: int, now_ns: int) -> dict[str, Any]:
        """Key ``k``'s payload in ``--relay`` mode: instrument ``i``'s expiry bucket with delta 1
        and USD delta its forward (what the harness checks), every other bucket 1 and 1."""
        key = self.keys[k]
        label = _expiry_label(int(self.expiry_ns[i]))
        forward = float(self.forward[i])
        return {
            "v": SCHEMA_VERSION,
            "ts": now_ns // 1_000_000,
            "ts_ns": now_ns,
            "valuation_ts_ns": now_ns,
            "scope": "underlying",
            "book": key.book,
            "underlying": key.underlying,
            "expiries": {
                "expiry": key.labels,
                "delta": [1.0] * len(key.labels),
                "delta_usd": [forward if x == label else 1.0 for x in key.labels],
            },
        }

    def payload(self, k: int, per_key: F64, per_group: F64, now_ns: int) -> dict[str, Any]:
        """Key ``k``'s exposure payload (riskd's underlying scope, docs/redis.md)."""
        key = self.keys[k]
        row = per_key[k].tolist()
        buckets = per_group[key.groups].T
        out: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "ts": now_ns // 1_000_000,
            "ts_ns": now_ns,
            "valuation_ts_ns": now_ns,
            "scope": "underlying",
            "book": key.book,
            "underlying": key.underlying,
        }
        out.update(zip(FIGURES, row[:12], strict=True))
        out["n_positions"] = round(row[12])
        out["n_stale"] = round(row[13])
        expiries: dict[str, Any] = {"expiry": key.labels}
        expiries.update(zip(FIGURES, buckets[:12].tolist(), strict=True))
        expiries["n_positions"] = np.rint(buckets[12]).astype(np.int64).tolist()
        expiries["n_stale"] = np.rint(buckets[13]).astype(np.int64).tolist()
        out["expiries"] = expiries
        out["units"] = UNITS
        return out


async def run(args: argparse.Namespace) -> int:
    """Intake, reprice and write until SIGTERM; the stats line on the way out."""
    import aiomqtt  # the child alone needs the clients
    import redis.asyncio as aioredis

    from feeds.json_codec import JsonCodec

    book = NaiveBook.from_csv(args.positions)
    codec = JsonCodec(book.registry, feed="naive", topic_prefix=args.topic_prefix)
    work: asyncio.Queue[Quote | None] = asyncio.Queue()  # unbounded: every quote is handled
    counts = {"received": 0, "dropped": 0, "ticks": 0}

    class Intake(asyncio.Queue[aiomqtt.Message]):
        """aiomqtt's message queue, replaced: each message is decoded in paho's callback."""

        def put_nowait(self, item: aiomqtt.Message) -> None:
            counts["received"] += 1
            try:
                event = codec.decode_market(item.topic.value, item.payload, time.time_ns())
            except FeedDecodeError:
                counts["dropped"] += 1
                return
            if isinstance(event, Quote):
                work.put_nowait(event)
            else:
                counts["ticks"] += 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    reprice_ns: list[int] = []
    write_ns: list[int] = []
    channel = f"{args.prefix}:exposure"
    snapshot = f"{args.prefix}:snapshot"
    r = aioredis.Redis.from_url(args.redis_url)

    async def worker() -> None:
        # Stopped by the flag, not by cancelling it: cancelled inside a Redis pipeline's
        # execute, it never finished (the process hung at SIGTERM).
        while not stop.is_set():
            quote = await work.get()
            if quote is None:
                break
            i = book.apply(quote)
            if i is None:
                continue
            t0 = time.perf_counter_ns()
            now = time.time_ns()
            if not args.relay:
                per_key, per_group = book.reprice(now)
            pipe = r.pipeline(transaction=False)
            for k in book.keys_of[i]:
                key = book.keys[k]
                payload = (
                    book.relay_payload(k, i, now)
                    if args.relay
                    else book.payload(k, per_key, per_group, now)
                )
                data = orjson.dumps(payload)
                pipe.publish(channel, data)
                pipe.hset(snapshot, f"{key.book}:{key.underlying}", data)
            t1 = time.perf_counter_ns()
            await pipe.execute()
            reprice_ns.append(t1 - t0)
            write_ns.append(time.perf_counter_ns() - t1)

    try:
        await r.ping()
        async with aiomqtt.Client(
            "127.0.0.1", args.mqtt_port, identifier=f"naive-{os.getpid()}", queue_type=Intake
        ) as client:
            for topic in ("md/quote/+", "md/tick/+"):
                await client.subscribe(f"{args.topic_prefix}{topic}", qos=1)
            print(json.dumps({"event": "ready"}), flush=True)
            async with asyncio.TaskGroup() as tg:
                tg.create_task(worker(), name="naive-worker")
                await stop.wait()
                work.put_nowait(None)  # wakes an idle worker; a busy one sees `stop`
    finally:
        await r.aclose()

    def pct(ns: list[int], q: float) -> float | None:
        return float(np.percentile(ns, q)) / 1e6 if ns else None

    print(
        json.dumps(
            {
                "event": "stats",
                **counts,
                "handled": len(reprice_ns),
                "backlog": work.qsize(),
                "reprice_ms_p50": pct(reprice_ns, 50),
                "reprice_ms_p99": pct(reprice_ns, 99),
                "write_ms_p50": pct(write_ns, 50),
                "write_ms_p99": pct(write_ns, 99),
            }
        ),
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.naive", description=__doc__)
    parser.add_argument("--mqtt-port", type=int, required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True, help="Redis key prefix")
    parser.add_argument("--positions", type=Path, required=True, help="riskd's positions CSV")
    parser.add_argument(
        "--relay", action="store_true", help="reprice nothing: the I/O floor (see above)"
    )
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        return asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
