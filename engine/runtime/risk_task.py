"""The ``risk`` task: portfolio risk on its periods (``[risk]``), off the event loop.

Each period copies what its families need from the portfolio on the event loop (outside a full
reprice), computes the payloads in a worker thread (the kernels release the GIL, so the
streaming path goes on meanwhile; the skew fits, which hold it, in a worker process), publishes
them and checks the alert rules on them. It also records each underlying's daily level into the
window of moves (and the history file), and, with ``[risk] smile_vols``, hands the smile fits'
vols to the engine as quotes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numba

from engine.clock import Clock
from engine.curves import ZeroCurve
from engine.errors import ConfigError
from engine.events import Quote
from engine.instruments import Instrument, InstrumentRegistry, Kind
from engine.outputs import (
    HedgePayload,
    LiquidityPayload,
    Payload,
    SmilePayload,
    TermStructurePayload,
    VarPayload,
)
from engine.risk.breakdown import attribution_payloads
from engine.risk.crossreport import cross_inputs, cross_payloads
from engine.risk.history import MoveHistory
from engine.risk.liquidity import (
    FloatArray,
    SpreadHistory,
    liquidity_payloads,
    slippage_payload,
)
from engine.risk.parity import forward_inputs, forwards_payloads, implied_carries
from engine.risk.posreport import Positioning
from engine.risk.report import (
    RiskConfig,
    family_periods,
    hedge_inputs,
    risk_payloads,
    skew_payloads,
    var_payload,
    vol_level,
)
from engine.risk.strategies import StrategyBook
from engine.risk.vectors import CommonVectors, common_vectors, encode_vectors
from engine.runtime.config import config_relative
from engine.runtime.intake import AsyncInbox
from engine.runtime.publisher import Publisher
from engine.runtime.shard_gate import ShardGate
from engine.runtime.worker import WorkerProcess
from engine.state import BookRisk, Portfolio

__all__ = [
    "RiskTask",
    "VectorsOut",
    "check_hedges",
    "load_history",
    "read_history",
    "shard_vectors",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VectorsOut:
    """Where a shard's P&L vectors go, with each ``var`` period (docs/scaling.md).

    Attributes:
        shard: its name.
        owns: whether it owns an underlying.
        write: takes the fields of its ``{base}:vectors`` hash (the sink's ``hashes.replace``).
    """

    shard: str
    owns: Callable[[str], bool]
    write: Callable[[dict[str, bytes]], None]


def shard_vectors(
    config: RiskConfig, gate: ShardGate | None, replace: Callable[[str, dict[str, bytes]], None]
) -> VectorsOut | None:
    """Where a shard on the common scenario set (``[risk] scenario_underlyings``) writes its
    P&L vectors: its ``vectors`` hash, through the sink's ``replace`` (None: not a shard, or
    no common set)."""
    if gate is None or not config.scenario_underlyings:
        return None
    return VectorsOut(str(gate.shard.name), gate.shard.owns, functools.partial(replace, "vectors"))


class RiskTask:
    """VaR/ES, stress grids, margin, hedges, skew fits, strategies, liquidity, attribution,
    capital and positioning, each on its period (:data:`engine.risk.report.FAMILY_PERIODS`).

    Args:
        config: ``[risk]``.
        portfolio: the book (read only, outside full reprices).
        registry: the hedge instruments' definitions.
        strategies: the strategy holdings.
        history: the window of moves; ``history_file``: the file that seeded it (``[risk]
            history``), where each level recorded is appended when ``record_history``.
        out: the sink and the alert rules.
        inbox: where smile vols go as quotes (``smile_vols``).
        clock: the daemon's clock.
        valuing: held while the engine reprices the portfolio in a worker thread.
        curves: each underlying's rate curve (``[portfolio.underlyings]``), discounting the
            implied forwards (none: a zero rate).
        vectors: a shard's: where its books' vectors on the common scenario set go
            (``[risk] scenario_underlyings``); None: not written. Such a shard that appends to
            ``history_file`` also takes the levels other shards append (:meth:`common_window`).

    Attributes:
        errors: periods that failed (logged; the next period tries again).
        worker: the process the skew fits run in (:mod:`engine.runtime.worker`).
        spreads: the relative spreads sampled on the liquidity period (``[risk.liquidity]``).
        positioning: the positioning payloads' builder and its session (``[risk.positioning]``).
    """

    def __init__(
        self,
        config: RiskConfig,
        portfolio: Portfolio,
        registry: InstrumentRegistry,
        strategies: StrategyBook,
        history: MoveHistory,
        history_file: Path | None,
        out: Publisher,
        inbox: AsyncInbox,
        clock: Clock,
        valuing: asyncio.Lock,
        curves: dict[str, ZeroCurve] | None = None,
        vectors: VectorsOut | None = None,
    ) -> None:
        self.config = config
        self.vectors = vectors
        self._history_seen: tuple[int, int] | None = None  # the file's (mtime, size) read
        self._common: MoveHistory | None = None  # the history file's window, as last read
        self._ahead: set[str] = set()  # underlyings told of a level dated after today
        self.curves = curves or {}
        self.portfolio = portfolio
        self.registry = registry
        self.strategies = strategies
        self.history = history
        self.history_file = history_file
        self.out = out
        self.inbox = inbox
        self.clock = clock
        self.valuing = valuing
        self.errors = 0
        self.smile_quotes: dict[str, int] = {}  # option -> when it last got its smile's vol
        self._vol_levels: dict[str, float] = {}  # underlying -> its latest ATM vol level
        self.spreads = SpreadHistory(config.liquidity.window)
        self.worker = WorkerProcess()
        self.positioning = Positioning(config.positioning)
        cores = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]  # untyped
        self.threads = min(config.threads, cores) if config.threads else max(cores - 1, 1)
        """The kernel threads of the periods' computations (``[risk] threads``)."""

    def periods(self) -> dict[str, float]:
        """Each family published, and its period in seconds."""
        return family_periods(self.config)

    async def run(self, stop: asyncio.Event) -> None:
        """Each family on its period until ``stop``."""
        periods = self.periods()
        due = dict.fromkeys(periods, time.monotonic())
        try:
            while not stop.is_set():
                await asyncio.sleep(max(min(due.values()) - time.monotonic(), 0.0))
                mono = time.monotonic()
                families = [f for f, at in due.items() if at <= mono]
                for f in families:
                    due[f] = mono + periods[f]
                await self.safe_period(families)
        finally:
            self.worker.close()

    async def safe_period(self, families: list[str]) -> None:
        """:meth:`period`, logging and counting an error instead of raising it."""
        try:
            await self.period(families)
        except Exception:
            self.errors += 1
            logger.exception("risk computation failed", extra={"errors": self.errors})

    async def period(self, families: list[str]) -> None:
        """The ``families`` due: copied on the event loop, valued in a worker thread, then
        published with the alert rules checked on them."""
        p = self.portfolio
        async with self.valuing:
            now = self.clock.now_ns()
            books = list(p.books_risk().values())
            hedges = hedge_inputs(self.config, p, self.registry.get) if "hedge" in families else {}
            depth = self.inbox.inbox.depth(list(self.config.hedge_future.values()))
            chains = p.chains() if {"skew", "forwards"} & set(families) else []
            parity = (
                forward_inputs(chains, self.registry.get, self._price)
                if "forwards" in families
                else []
            )
            if "skew" not in families:
                chains = []
            held = self.strategies.priced(p) if "strategy" in families else []
            quotes = {br.book: p.quotes(br.rows) for br in books} if "liquidity" in families else {}
            interest = self.inbox.inbox.interest() if "positioning" in families else None
            cross = (
                cross_inputs(self.config, p, self.registry.get)
                if "crosshedge" in families
                else None
            )
            valuation = p.valuation_ns
            holdings = self.strategies.held() if {"attribution", "margin"} & set(families) else []
        levels = [lv for br in books for lv in zip(br.underlyings, br.prices.tolist(), strict=True)]
        self._record_levels(now, levels + (cross.levels if cross is not None else []))
        common = None
        if "var" in families and self.config.scenario_underlyings:
            common = await self._off_loop(
                common_vectors, books, self.common_window(), self.config.var_settings()
            )
            self._write_vectors(common, now, valuation)
        out = await self._off_loop(
            risk_payloads,
            books,
            hedges,
            held,
            self.history,
            self.config,
            families,
            now,
            valuation,
            holdings,
            common,
        )
        if parity:
            forwards = await self._off_loop(
                forwards_payloads, parity, self.curves, self.config.forwards, now, valuation
            )
            for _, chain in forwards:  # the engine prices on them where configured
                for carry in implied_carries(chain):
                    self.inbox.put_carry(carry)
            out += forwards
        if quotes:
            out += await self._off_loop(self._liquidity, books, quotes, out, now)
        if hedges:
            out += [
                (key, slippage_payload(h, depth.get(h.future), hedges[h.underlying].inverse, now))
                for key, h in out
                if isinstance(h, HedgePayload)
            ]  # a walk of at most the levels of one book per hedge: light
        if interest:  # the registry only grows: read from the worker
            out += await self._off_loop(
                self.positioning.payloads, interest, self.registry.get, books, now, valuation
            )
        for key, payload in out:
            self.out.publish(key, payload, background=True)
        if cross is not None or "cpt" in families:
            for key, extra in await self._off_loop(
                cross_payloads, books, cross, self.history, self.config, families, now
            ):
                self.out.publish(key, extra, background=True)
        if "attribution" in families or "capital" in families:
            shares = await self._off_loop(
                attribution_payloads,
                books,
                self.history,
                self.config,
                families,
                now,
                valuation,
                holdings,
            )
            for key, share in shares:
                self.out.publish(key, share, background=True)
        if chains:  # the fits hold the GIL (SciPy's Nelder-Mead): in a process of their own
            skews, smile = await self.worker.run(
                skew_payloads, chains, self.smile_quotes, now, valuation
            )
            self._publish_skew(skews, smile, now)

    async def _off_loop(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, its kernels on at most ``[risk] threads`` threads."""
        return await asyncio.to_thread(_on_threads, self.threads, fn, *args)

    def common_window(self) -> MoveHistory:
        """The window of moves the common scenario set is drawn from (``[risk]
        scenario_underlyings``): the history file as last read, read again whenever it changes.

        Every shard of a deployment reads the same file, so their common sets agree. Shards that
        append to one file (``record_history``) read each others' levels from it, and each then
        holds, as its own window too, the window one daemon holding every underlying would. A
        level recorded in memory only (``record_history`` off) never enters the common window:
        no other shard could see it, and a restart would forget it. No history file: this
        process's own window. A file that cannot be read again is logged; the window last read
        stays.
        """
        path = self.history_file
        if path is None:
            return self.history
        try:
            stat = path.stat()
            seen = (stat.st_mtime_ns, stat.st_size)
            if seen != self._history_seen:
                window = read_history(path, self.config.window_days)
                self._history_seen, self._common = seen, window
                if self.config.record_history and self.vectors is not None:
                    self.history = window
        except (OSError, ValueError) as exc:
            logger.warning(
                "history file not read again", extra={"path": str(path), "error": str(exc)}
            )
        return self.history if self._common is None else self._common

    def _write_vectors(self, common: CommonVectors, now: int, valuation: int) -> None:
        """A shard's vectors out to its ``{base}:vectors`` hash."""
        v = self.vectors
        if v is None:
            return
        owned = [u for u in common.sset.underlyings if v.owns(u)]
        settings = self.config.var_settings()
        v.write(encode_vectors(v.shard, owned, common.sset, settings, common.books, now, valuation))

    def _price(self, inst: Instrument) -> float:
        """The latest price of an index, or of a tradable instrument (a share, a future)."""
        if inst.kind == Kind.INDEX:
            return self.portfolio.index_price(inst.index)
        return float(self.portfolio.priced([inst.name]).positions.X[0])

    def _liquidity(
        self,
        books: list[BookRisk],
        quotes: dict[str, tuple[FloatArray, FloatArray]],
        out: list[tuple[str, Payload]],
        now: int,
    ) -> list[tuple[str, LiquidityPayload]]:
        """The books' ``liquidity`` payloads (in a worker thread), on the ``var`` payloads of
        this period when it computed them, else on new ones."""
        have = {p.book: p for _, p in out if isinstance(p, VarPayload)}

        def var_of(br: BookRisk) -> VarPayload:
            return have.get(br.book) or var_payload(br, self.history, self.config, now)

        return liquidity_payloads(books, quotes, var_of, self.spreads, self.config.liquidity, now)

    def _publish_skew(
        self,
        payloads: list[tuple[str, SmilePayload | TermStructurePayload]],
        smile: list[tuple[str, float, float]],
        now: int,
    ) -> None:
        """Publish the skew payloads (the expiry-scope rules are checked on them: a market
        figure, book ``*``), keep each underlying's vol level, and hand the smile vols to the
        engine as quotes (``smile_vols``)."""
        for key, payload in payloads:
            self.out.publish(key, payload, background=True)
            if isinstance(payload, TermStructurePayload):
                level = vol_level(payload)
                if level is not None:
                    self._vol_levels[payload.underlying] = level
        if not self.config.smile_vols:
            return
        for name, vol, forward in smile:
            if math.isfinite(vol) and vol > 0.0 and math.isfinite(forward) and forward > 0.0:
                self.inbox.put(
                    Quote(
                        instrument=name, iv=vol, underlying_price=forward, ts_event=now, ts_recv=now
                    )
                )
                self.smile_quotes[name] = now

    def _record_levels(self, now_ns: int, prices: list[tuple[str, float]]) -> None:
        """The day's levels into the window of moves, and each into the history file. An
        underlying whose window already holds a level dated after today (a seed file from
        another clock) gets none until then: said once per underlying."""
        recorded = self.history.record_due(
            now_ns, self.config.record_at_utc, prices, self._vol_levels
        )
        today = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC).date()
        for und, _ in prices:
            last = self.history.last_day(und)
            if last is not None and last > today and und not in self._ahead:
                self._ahead.add(und)
                logger.warning(
                    "history holds a level after today: none recorded until then",
                    extra={"underlying": und, "last_day": last.isoformat(),
                           "today": today.isoformat(), "path": str(self.history_file)},
                )  # fmt: skip
        if self.history_file is not None and self.config.record_history:
            for day, und, price, vol in recorded:
                _append_line(self.history_file, f"{day},{und},{price!r},{vol or ''}")


def _on_threads(threads: int, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` with numba's parallel kernels on ``threads`` threads (a setting of the
    calling thread only: the executor's thread gets its own back)."""
    before = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return fn(*args)
    finally:
        numba.set_num_threads(before)


def _append_line(path: Path, row: str) -> None:
    """Append ``row`` to the history file (on a line of its own); a failure is logged, the
    level stays recorded in memory."""
    try:
        with path.open("a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    f.write(b"\n")
            f.write(row.encode() + b"\n")
    except OSError as exc:
        logger.warning("history level not written", extra={"path": str(path), "error": str(exc)})


def check_hedges(risk: RiskConfig, registry: InstrumentRegistry, config_path: Path) -> None:
    """Each hedge instrument is a future (or perpetual) or an option of its underlying; each
    cross-hedge instrument a future or perpetual, and the benchmark a known instrument.

    Raises:
        ConfigError: one is not, named by its key.
    """
    cross = risk.cross_hedge
    for book, name in cross.hedge.items():
        inst = registry.get(name)
        if inst is None or inst.kind not in (Kind.FUTURE, Kind.PERPETUAL):
            raise ConfigError(
                str(config_path),
                f"{name!r} is not a future or perpetual - at `$.risk.cross_hedge.hedge.{book}`",
            )
    if cross.benchmark and registry.get(cross.benchmark) is None:
        raise ConfigError(
            str(config_path),
            f"unknown instrument {cross.benchmark!r} - at `$.risk.cross_hedge.benchmark`",
        )
    for und, future in risk.hedge_future.items():
        for i, name in enumerate([future, *risk.hedge_options.get(und, [])]):
            inst = registry.get(name)
            where = f"hedge_future.{und}" if i == 0 else f"hedge_options.{und}[{i - 1}]"
            want = (Kind.FUTURE, Kind.PERPETUAL) if i == 0 else (Kind.OPTION,)
            if inst is None or inst.kind not in want or inst.underlying != und:
                raise ConfigError(
                    str(config_path),
                    f"{name!r} is not a {' or '.join(want)} of {und} - at `$.risk.{where}`",
                )


def load_history(config: RiskConfig, config_path: Path) -> MoveHistory:
    """The window of moves, seeded from ``risk.history`` when set.

    Raises:
        ConfigError: the file cannot be read or has a bad header or row.
    """
    path = config_relative(config.history, config_path)
    if path is None:
        return MoveHistory(config.window_days)
    try:
        return read_history(path, config.window_days)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), f"cannot read: {exc} - at `$.risk.history`") from exc
    except ValueError as exc:
        raise ConfigError(str(path), str(exc)) from exc


def read_history(path: Path, window_days: int) -> MoveHistory:
    """The window of ``window_days`` moves of the history file at ``path``.

    Raises:
        OSError, UnicodeDecodeError: the file cannot be read.
        ValueError: a bad header or row (named by its line).
    """
    history = MoveHistory(window_days)
    history.load_csv(path.read_text(encoding="utf-8"), str(path))
    return history
