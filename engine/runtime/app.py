"""The composition root: the one place that wires feeds -> inbox -> portfolio -> Redis.

:func:`run` builds every component from an :class:`~engine.runtime.config.AppConfig` and runs
them as named tasks of one ``asyncio.TaskGroup``:

- ``feed:{name}``: each feed adapter; it reconnects by itself. An unexpected exception is logged
  with its traceback and the feed restarted after a capped backoff; a fatal connection error
  (bad credentials, bad address) stops that feed and is logged as an error.
- ``engine``: waits for events (at most ``cycle_interval_ms``), drains the inbox into the
  portfolio, reprices what changed (everything every ``full_reprice_interval_s``, in a worker
  thread so that the other tasks go on meanwhile), hands the changed exposures to the sink and
  evaluates the alert rules on them.
- ``sink``: the Redis writer (batched, rate-limited per key, reconnecting).
- ``risk``: on the ``[risk]`` periods, copies each book and computes its VaR/ES, stress grid,
  margin, hedges, skew fits and strategies in a worker thread (the kernels release the GIL, so the
  streaming path goes on meanwhile), publishes them and evaluates the alert rules on them; it
  also records each underlying's daily level into the window of moves.
- ``monitor``: stale-feed alerts, settlement of expiries (each second), and the statistics log
  line every ``stats_interval_s``.
- ``view``: the live terminal view, when on.

SIGTERM/SIGINT stop the feeds, run a last full cycle, publish the final snapshot, flush and
close Redis. A second signal exits at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import gc
import logging
import math
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import msgspec
import numpy as np

from engine.alerts import AlertEngine
from engine.clock import Clock, ManualClock
from engine.errors import ConfigError, RiskEngineError
from engine.events import Fill, Quote, Tick
from engine.inbox import Inbox
from engine.instruments import InstrumentRegistry, Kind
from engine.outputs import (
    AlertPayload,
    EngineStatus,
    Exposure,
    FeedStatus,
    Payload,
    SettledPosition,
    SettlementPayload,
    SmilePayload,
    TermStructurePayload,
)
from engine.risk.hedge import DERIBIT_INVERSE_CONTRACT_USD
from engine.risk.history import MoveHistory
from engine.risk.report import (
    HedgeInputs,
    RiskConfig,
    hedge_payloads,
    margin_payload,
    skew_payloads,
    strategy_payload,
    stress_payload,
    var_payload,
)
from engine.risk.settlement import WINDOW_NS, Twap, TwapAccumulator, TwapStatus, settle
from engine.risk.strategies import StrategyBook, StrategyHolding
from engine.runtime.clock import LiveClock
from engine.runtime.config import AppConfig, config_relative, load_positions
from engine.runtime.http import CycleHistograms, HttpServer
from engine.runtime.intake import AsyncInbox, Intake, build_feed
from engine.runtime.journal import FillJournal, Settlement, positions_digest
from engine.runtime.redis_sink import RedisSink
from engine.state import (
    BookRisk,
    Portfolio,
    Priced,
    SettledLot,
    UnderlyingParams,
    expiry_label,
)
from feeds.base import Feed
from feeds.replay import ReplayFeedConfig
from feeds.sim import SimFeedConfig

__all__ = ["AsyncInbox", "Daemon", "build", "run"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Step:
    """A cycle between its parts (:meth:`Daemon.cycle`)."""

    t0: float  # perf_counter at its start
    now: int  # its valuation or publication time, on the daemon's clock
    full: bool
    events: tuple[list[Tick], list[Quote], list[Fill]]


class Daemon:
    """Every component of a running riskd, built by :func:`build`."""

    def __init__(
        self,
        config: AppConfig,
        clock: Clock,
        registry: InstrumentRegistry,
        portfolio: Portfolio,
        feeds: list[Feed],
        history: MoveHistory | None = None,
        strategies: StrategyBook | None = None,
        journal: FillJournal | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.registry = registry
        self.portfolio = portfolio
        self.feeds = feeds
        self.history = history or MoveHistory(config.risk.window_days)
        """Daily levels per underlying: the moves of historical VaR and the covariance."""
        self.history_file: Path | None = None
        """``risk.history``: each level recorded is appended to it, so a restart keeps it."""
        self.risk_errors = 0
        self.histograms = CycleHistograms() if config.http.address else None
        """Cycle time and latency for ``/metrics`` (only with the HTTP endpoint on)."""
        self.http: HttpServer | None = None
        """The HTTP endpoint while it runs (``[http] address``)."""
        self._smile_quotes: dict[str, int] = {}  # option -> when it last got its smile's vol
        self._vol_levels: dict[str, float] = {}  # underlying -> its latest ATM vol level
        self._twaps: dict[tuple[str, int], TwapAccumulator] = {}  # (index, expiry) in window
        self.realised_pnl_usd: dict[str, float] = {}
        """Realised P&L of settled positions per book since start, USD."""
        self.strategies = strategies or StrategyBook(registry.get)
        """Strategy holdings by (book, text form), from the positions file and fills."""
        self._valuing = asyncio.Lock()  # held while a worker thread reprices the portfolio
        self.inbox = AsyncInbox(Inbox(config.engine.fill_queue), journal)
        self.alerts = AlertEngine(config.alerts)
        self.sink = RedisSink(config.redis, clock, status=self.status)
        self.latest: dict[str, Exposure] = {}
        """Latest exposure payload per key, for the terminal view."""
        self.recent_alerts: deque[AlertPayload] = deque(maxlen=8)
        self.stop = asyncio.Event()
        self.intake = Intake(feeds, registry, self.inbox, on_end=self.stop.set)
        self.cycles = 0
        self.cycle_s: deque[float] = deque(maxlen=2048)
        self.latency_ns: deque[int] = deque(maxlen=4096)
        self.unknown = 0
        self.cycle_errors = 0
        self._dirty: dict[tuple[str, str | None], int] = {}
        """Payloads changed since they were last built -> when they may be built again
        (monotonic ns: the last build + ``redis.min_interval_ms``). A payload is a (book,
        underlying) pair or, with underlying None, a book."""
        self._next_due_ns: float = math.inf  # the earliest of those: no scan until then
        self._built_ns: dict[tuple[str, str | None], int] = {}
        self._publish_interval_ns = config.redis.min_interval_ms * 1_000_000
        self._lots_seen = portfolio.lot_count
        self.rejected_fills: list[Fill] = []
        """Fills the engine refused (bad book name or numbers): kept for the operator, logged."""
        self._next_full_ns = 0
        self._full_interval_ns = round(config.engine.full_reprice_interval_s * 1e9)
        self._start_ns = 0  # the monitor's start: a feed silent since then is stale too
        self.optional_feeds = frozenset(fc.name for fc in config.feeds if not fc.required)
        """Feeds with ``required = false``: they count for nothing in readiness."""
        self._started = time.monotonic()

    # ------------------------------------------------------------------ engine
    def cycle(self, *, full: bool = False, flush: bool = False) -> int:
        """Drain the inbox, reprice, hand the sink the payloads of what changed; returns how
        many payloads were built.

        Payloads are built per (book, underlying) at most every ``redis.min_interval_ms`` (the
        sink's own per-key limit): a key that changes again sooner stays dirty and is built
        when due, so a burst of quotes costs repricing, not JSON. ``flush`` builds every dirty
        key now (shutdown).
        """
        step = self._begin(full)
        return self._end(step, self.portfolio.cycle(step.now, step.full), flush)

    async def acycle(self) -> int:
        """:meth:`cycle`, except that a full reprice runs in a worker thread: the kernels
        release the GIL, so feeds and the sink go on meanwhile instead of waiting for a large
        book's reprice. Nothing else touches the portfolio until it returns (the engine loop
        is its only writer)."""
        step = self._begin(False)
        if step.full:
            async with self._valuing:  # the risk task copies books only outside a reprice
                changed = await asyncio.to_thread(self.portfolio.cycle, step.now, True)
        else:
            changed = self.portfolio.cycle(step.now, False)
        return self._end(step, changed, False)

    def _begin(self, full: bool) -> _Step:
        """A cycle's first part: drain the inbox into the portfolio; decide whether it is a
        full reprice."""
        t0 = time.perf_counter()
        ticks, quotes, fills = self.inbox.drain()
        p = self.portfolio
        for t in ticks:
            if not p.apply_tick(t):
                self.unknown += 1
        self.unknown += p.apply_quotes(quotes)
        for f in fills:
            self.apply_fill(f)
        if p.lot_count != self._lots_seen:
            self._subscribe_new()
        now = self.clock.now_ns()
        # Due, or the clock was stepped back (the next reprice further than one interval away):
        # else the valuation time would stay ahead, every input stale, until the clock caught up.
        full = full or not 0 < self._next_full_ns - now <= self._full_interval_ns
        if full and p.unresolved_fills:  # their instruments may be known by now
            p.retry_unresolved()
        return _Step(t0, now, full, (ticks, quotes, fills))

    def _end(self, step: _Step, changed: set[tuple[str, str]], flush: bool) -> int:
        """A cycle's last part, after the reprice: payloads of what is due, alerts, timings."""
        p = self.portfolio
        now = step.now
        if step.full:
            self._next_full_ns = now + self._full_interval_ns
            changed = set(p.bu_keys())
        due = self._due(changed, flush)
        payloads: list[tuple[str, Exposure]] = []
        if due:
            pairs = [(b, u) for b, u in due if u is not None]
            books = [b for b, u in due if u is None]
            payloads = p.exposure_payloads(pairs, now, books)
        for key, payload in payloads:
            self.sink.publish(key, payload)
            self.latest[key] = payload
            self._check(payload)
        done = self.clock.now_ns()
        latencies = [done - ev.ts_recv for events in step.events for ev in events]
        self.latency_ns.extend(latencies)
        self.cycles += 1
        cycle_s = time.perf_counter() - step.t0
        self.cycle_s.append(cycle_s)
        if self.histograms is not None:
            self.histograms.observe(cycle_s, latencies)
        return len(payloads)

    def _subscribe_new(self) -> None:
        """Market data for instruments new to the book (a fill brought them in)."""
        new = self.portfolio.lot_instruments(self._lots_seen)
        self._lots_seen = self.portfolio.lot_count
        self.intake.subscribe(new)

    def _check(self, payload: Payload) -> None:
        """Evaluate the alert rules on ``payload``; publish and log the transitions."""
        for t in self.alerts.check(payload):
            self._emit_alert(t)

    def _emit_alert(self, payload: AlertPayload) -> None:
        self.sink.alert(payload)
        self.recent_alerts.append(payload)
        logger.warning(
            "alert %s", payload.state, extra={"alert": payload.id, "value": payload.value}
        )

    def _due(self, changed: Iterable[tuple[str, str]], flush: bool) -> list[tuple[str, str | None]]:
        """Mark the ``changed`` (book, underlying) pairs and their books dirty; take the dirty
        payloads that may be built now (all of them when ``flush``), each at most every
        ``redis.min_interval_ms``. The dirty payloads are scanned only when one is due."""
        dirty = self._dirty
        built = self._built_ns
        limit = self._publish_interval_ns
        for book, und in changed:
            pair: tuple[str, str | None] = (book, und)
            for k in (pair, (book, None)):
                if k not in dirty:
                    at = built.get(k, -limit) + limit
                    dirty[k] = at
                    if at < self._next_due_ns:
                        self._next_due_ns = at
        mono = time.monotonic_ns()
        if not flush and mono < self._next_due_ns:
            return []
        due = [k for k, at in dirty.items() if flush or at <= mono]
        for k in due:
            del dirty[k]
            built[k] = mono
        self._next_due_ns = min(dirty.values(), default=math.inf)
        return due

    def next_due_s(self) -> float:
        """Seconds until the first dirty key may be built (0 when one is due)."""
        return max(self._next_due_ns - time.monotonic_ns(), 0) / 1e9

    async def engine_loop(self) -> None:
        """Cycle when events arrive, at most every ``min_cycle_interval_ms`` (events arriving
        meanwhile are taken together), and at least every ``cycle_interval_ms``."""
        idle_s = self.config.engine.cycle_interval_ms / 1000
        spacing_s = self.config.engine.min_cycle_interval_ms / 1000
        last = time.monotonic()
        while not self.stop.is_set():
            await self.inbox.wait(min(idle_s, self.next_due_s()))
            gap = spacing_s - (time.monotonic() - last)
            if gap > 0:
                await asyncio.sleep(gap)
            last = time.monotonic()
            with self._contained():
                await self.acycle()

    def safe_cycle(self, *, full: bool = False, flush: bool = False) -> None:
        """:meth:`cycle`, logging and counting an exception instead of raising it."""
        with self._contained():
            self.cycle(full=full, flush=flush)

    @contextlib.contextmanager
    def _contained(self) -> Iterator[None]:
        """Log and count an exception of a cycle instead of raising it: a bug in one cycle must
        not stop the daemon (each fill is applied, or kept, before anything else)."""
        try:
            yield
        except Exception:
            self.cycle_errors += 1
            logger.exception("engine cycle failed", extra={"errors": self.cycle_errors})

    # ------------------------------------------------------------------ risk
    async def risk_loop(self) -> None:
        """Publish the risk payloads on their periods (``[risk]``, :meth:`risk_period`); an
        error is logged and counted, and the next period tries again."""
        periods = self._risk_periods()
        due = dict.fromkeys(periods, time.monotonic())
        while not self.stop.is_set():
            await asyncio.sleep(max(min(due.values()) - time.monotonic(), 0.0))
            mono = time.monotonic()
            families = [f for f, at in due.items() if at <= mono]
            for f in families:
                due[f] = mono + periods[f]
            try:
                await self.risk_period(families)
            except Exception:
                self.risk_errors += 1
                logger.exception("risk computation failed", extra={"errors": self.risk_errors})

    def _risk_periods(self) -> dict[str, float]:
        """Each risk family published, and its period in seconds (``[risk]``)."""
        cfg = self.config.risk
        periods = {
            "var": cfg.var_interval_s,
            "stress": cfg.stress_interval_s,
            "margin": cfg.margin_interval_s,
            "skew": cfg.skew_interval_s,
            "strategy": cfg.strategy_interval_s,
        }
        if cfg.hedge_future:
            periods["hedge"] = cfg.hedge_interval_s
        return periods

    async def final_risk(self) -> None:
        """Every risk family once more, on the final state (``--exit-at-end``: a replay's
        end comes sooner than the periods); an error is logged and counted."""
        try:
            await self.risk_period(list(self._risk_periods()))
        except Exception:
            self.risk_errors += 1
            logger.exception("risk computation failed", extra={"errors": self.risk_errors})

    async def risk_period(self, families: list[str]) -> None:
        """The due ``families`` of risk payloads: what they need is copied on the event loop,
        outside a full reprice, and valued in a worker thread; then published, and the alert
        rules checked on them."""
        cfg = self.config.risk
        async with self._valuing:
            now = self.clock.now_ns()
            books = list(self.portfolio.books_risk().values())
            hedges = self._hedge_inputs() if "hedge" in families else {}
            chains = self.portfolio.chains() if "skew" in families else []
            held = self.strategies.priced(self.portfolio) if "strategy" in families else []
            valuation = self.portfolio.valuation_ns
        self.record_levels(now, books)
        out = await asyncio.to_thread(
            _risk_payloads, books, hedges, held, self.history, cfg, families, now, valuation
        )
        for key, payload in out:
            self.sink.publish(key, payload)
            self._check(payload)
        if chains:
            skews, smile = await asyncio.to_thread(
                skew_payloads, chains, self._smile_quotes, now, valuation
            )
            self._publish_skew(skews, smile, now)

    def _publish_skew(
        self,
        payloads: list[tuple[str, SmilePayload | TermStructurePayload]],
        smile: list[tuple[str, float, float]],
        now: int,
    ) -> None:
        """Publish the skew payloads, check the expiry-scope rules on them (a market figure:
        book ``*``), and hand the smile vols to the engine as quotes (``[risk] smile_vols``)."""
        for key, payload in payloads:
            self.sink.publish(key, payload)
            if isinstance(payload, TermStructurePayload):
                level = _vol_level(payload)
                if level is not None:
                    self._vol_levels[payload.underlying] = level
            self._check(payload)
        if not self.config.risk.smile_vols:
            return
        for name, vol, forward in smile:
            if math.isfinite(vol) and vol > 0.0 and math.isfinite(forward) and forward > 0.0:
                self.inbox.put(
                    Quote(
                        instrument=name, iv=vol, underlying_price=forward, ts_event=now, ts_recv=now
                    )
                )
                self._smile_quotes[name] = now

    def _hedge_inputs(self) -> dict[str, HedgeInputs]:
        """Each configured hedge's instruments, priced now (``[risk] hedge_future``)."""
        cfg = self.config.risk
        out = {}
        for und, future in cfg.hedge_future.items():
            names = [future, *cfg.hedge_options.get(und, [])]
            priced = self.portfolio.priced(names)
            inst = self.registry.get(future)
            if inst is None:  # build() checked every hedge instrument
                raise AssertionError(future)
            contract = (
                cfg.hedge_contract_usd.get(und, DERIBIT_INVERSE_CONTRACT_USD.get(und, 10.0))
                if inst.is_inverse
                else inst.multiplier
            )
            out[und] = HedgeInputs(
                und, names, priced.units, priced.positions.X, inst.is_inverse, contract
            )
        return out

    def record_levels(self, now_ns: int, books: Iterable[BookRisk]) -> None:
        """Record each held underlying's level of the day, once the day's
        ``risk.record_at_utc`` has passed and unless it is recorded already: its index price,
        and its vol level from the skew fits (:func:`_vol_level`; none yet: unknown)."""
        at = dt.datetime.fromtimestamp(now_ns / 1e9, dt.UTC)
        hh, mm = map(int, self.config.risk.record_at_utc.split(":"))
        if (at.hour, at.minute) < (hh, mm):
            return
        day = at.date()
        for br in books:
            for und, price in zip(br.underlyings, br.prices.tolist(), strict=True):
                last = self.history.last_day(und)
                if (last is None or last < day) and math.isfinite(price) and price > 0.0:
                    vol = self._vol_levels.get(und)
                    self.history.record(day, und, price, vol)
                    if self.history_file is not None:
                        self._append_level(self.history_file, f"{day},{und},{price!r},{vol or ''}")

    @staticmethod
    def _append_level(path: Path, row: str) -> None:
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
            logger.warning(
                "history level not written", extra={"path": str(path), "error": str(exc)}
            )

    def apply_fill(self, f: Fill) -> None:
        """Apply a fill to the book (a strategy's: to its legs and holding); a fill the engine
        refuses is kept (:attr:`rejected_fills`) and logged, one of an unknown instrument is
        kept until it is known."""
        try:
            if ":" in f.instrument:  # a strategy's text form: its legs
                self.strategies.apply_fill(self.portfolio, f)
                return
            applied = self.portfolio.apply_fill(f)
        except Exception as exc:  # decoders check fills; this is the engine's own guard
            self.rejected_fills.append(f)
            logger.error("fill rejected: %s", exc, extra={"fill": f"{f!r}"[:300]})
            return
        if not applied:
            logger.error(
                "fill for unknown instrument kept until it is known",
                extra={"book": f.book, "instrument": f.instrument, "quantity": f.quantity},
            )

    # ------------------------------------------------------------------ settlement
    def settle_due(self, now_ns: int) -> int:
        """Sample the index of each held expiry in its settlement window (the 30 minutes
        before it) and publish the running average; settle the expiries that have passed:
        their positions leave the book at the window's time-weighted average of the index and
        their realised P&L is recorded and published (docs/strategies.md). Returns how many
        positions settled. Called once a second (the monitor)."""
        settled = 0
        for index, expiry_ns in self.portfolio.held_expiries():
            if now_ns < expiry_ns - WINDOW_NS:
                continue
            key = (index, expiry_ns)
            acc = self._twaps.get(key)
            if acc is None:
                acc = self._twaps[key] = TwapAccumulator(expiry_ns)
            price = self.portfolio.index_price(index)
            if now_ns < expiry_ns:
                if math.isfinite(price) and price > 0.0:
                    acc.add(now_ns, price)
                if acc.value(now_ns).status != TwapStatus.NO_SAMPLES:
                    self._publish_settlement(index, expiry_ns, acc.value(now_ns), [], now_ns)
                continue
            twap = acc.value(now_ns)
            if twap.status == TwapStatus.NO_SAMPLES:  # no index in the window: the latest
                if not (math.isfinite(price) and price > 0.0):
                    continue  # nothing to settle at yet: try again next second
                twap = dataclasses.replace(twap, price=price)
            if self.inbox.journal is not None:  # first on disk: a restart settles it the same
                self.inbox.journal.append_settlement(
                    Settlement(index=index, expiry_ns=expiry_ns, ts_ns=now_ns, twap=twap)
                )
            lots = self.portfolio.settle_expiry(index, expiry_ns)
            del self._twaps[key]
            self._publish_settlement(index, expiry_ns, twap, lots, now_ns)
            settled += len(lots)
        return settled

    def replay_settlement(self, s: Settlement) -> None:
        """Settle again, at its price, an expiry the journal says settled before a restart:
        its positions leave the book and its P&L is realised as it was."""
        lots = self.portfolio.settle_expiry(s.index, s.expiry_ns)
        self._publish_settlement(s.index, s.expiry_ns, s.twap, lots, s.ts_ns)

    def _publish_settlement(
        self, index: str, expiry_ns: int, twap: Twap, lots: list[SettledLot], now_ns: int
    ) -> None:
        """The ``settlement`` payload of one index and expiry: the running average before the
        expiry (``final`` false, no positions), what its positions settled for after it."""
        final = now_ns >= expiry_ns
        positions: list[SettledPosition] = []
        by_book: dict[str, float] = {}
        n_no_cost = 0
        if lots:
            avg = np.array([lot.avg_price for lot in lots])
            avg[~np.isnan(avg) & ~(avg >= 0.0)] = math.nan  # a net cost <= 0: no P&L
            event = settle(
                twap,
                [lot.is_option for lot in lots],
                [lot.inverse for lot in lots],
                [lot.is_call for lot in lots],
                [lot.strike if lot.is_option else 1.0 for lot in lots],
                [lot.weight for lot in lots],
                avg,
            )
            n_no_cost = event.n_no_cost
            pos = event.positions
            for k, lot in enumerate(lots):
                pnl_usd = float(pos.pnl_usd[k])
                positions.append(
                    SettledPosition(
                        book=lot.book,
                        instrument=lot.instrument,
                        quantity=lot.quantity,
                        avg_price=float(avg[k]),
                        value=float(pos.value[k]),
                        pnl=float(pos.pnl[k]),
                        pnl_usd=pnl_usd,
                    )
                )
                if math.isfinite(pnl_usd):
                    by_book[lot.book] = by_book.get(lot.book, 0.0) + pnl_usd
                    self.realised_pnl_usd[lot.book] = (
                        self.realised_pnl_usd.get(lot.book, 0.0) + pnl_usd
                    )
            logger.info(
                "settled",
                extra={
                    "index": index,
                    "expiry_ns": expiry_ns,
                    "price": twap.price,
                    "twap_status": twap.status.value,
                    "positions": len(lots),
                    "pnl_usd": event.pnl_usd_total,
                },
            )
        expiry = expiry_label(expiry_ns, Kind.OPTION)
        payload = SettlementPayload(
            ts_ns=now_ns,
            valuation_ts_ns=None,
            index=index,
            expiry=expiry,
            expiry_ns=expiry_ns,
            final=final,
            price=float(twap.price),
            status=twap.status.value,
            n_samples=twap.n_samples,
            covered_ns=twap.covered_ns,
            longest_gap_ns=twap.longest_gap_ns,
            positions=positions,
            pnl_usd=by_book,
            n_no_cost=n_no_cost,
            realised_pnl_usd={b: self.realised_pnl_usd[b] for b in by_book},
            units=_SETTLEMENT_UNITS,
        )
        self.sink.publish(f"{index}:{expiry}", payload)

    # ------------------------------------------------------------------ monitor
    def status(self) -> EngineStatus:
        """Counters for the heartbeat and the statistics log line."""
        return EngineStatus(
            **msgspec.structs.asdict(self.portfolio.instrument_status()),
            uptime_s=round(time.monotonic() - self._started, 1),
            cycles=self.cycles,
            events=self.inbox.inbox.received,
            conflated=self.inbox.inbox.conflated,
            unknown_instrument=self.unknown,
            rejected_fills=len(self.rejected_fills),
            cycle_errors=self.cycle_errors,
            risk_errors=self.risk_errors,
            feeds={
                f.name: FeedStatus(
                    connected=f.stats.connected,
                    received=f.stats.received,
                    dropped=sum(f.stats.dropped.values()),
                )
                for f in self.feeds
            },
        )

    def check_feeds(self) -> None:
        """Raise or clear the stale-feed alert of each feed."""
        now = self.clock.now_ns()
        limit_ns = self.config.engine.feed_stale_after_s * 1e9
        for f in self.feeds:
            if f.stats.finished:  # a replay at its end: silent, as it should be
                continue
            if f.name in self.optional_feeds and not f.stats.received:
                continue  # an optional feed that never spoke: nothing has stopped
            last = f.stats.last_recv_ns
            silent_ns = now - last if last else now - self._start_ns
            stale = silent_ns > limit_ns
            for t in self.alerts.feed_stale(f.name, stale, silent_ns / 1e9, now):
                self._emit_alert(t)

    def log_stats(self) -> None:
        cyc = np.asarray(self.cycle_s) * 1e3
        lat = np.asarray(self.latency_ns) / 1e6
        logger.info(
            "stats",
            extra={
                **msgspec.to_builtins(self.status()),
                "cycle_ms_p50": round(float(np.percentile(cyc, 50)), 3) if cyc.size else None,
                "cycle_ms_p99": round(float(np.percentile(cyc, 99)), 3) if cyc.size else None,
                "latency_ms_p50": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
                "latency_ms_p99": round(float(np.percentile(lat, 99)), 3) if lat.size else None,
                "redis_connected": self.sink.stats.connected,
                "redis_published": self.sink.stats.published,
            },
        )

    async def monitor(self) -> None:
        self._start_ns = self.clock.now_ns()
        next_stats = time.monotonic() + self.config.engine.stats_interval_s
        while True:
            await asyncio.sleep(1.0)
            self.check_feeds()
            try:
                async with self._valuing:
                    self.settle_due(self.clock.now_ns())
            except Exception:  # a bug in settling must not stop the monitor (or the daemon)
                self.risk_errors += 1
                logger.exception("settlement failed", extra={"errors": self.risk_errors})
            if time.monotonic() >= next_stats:
                next_stats += self.config.engine.stats_interval_s
                self.log_stats()


def build(config: AppConfig, config_path: Path, clock: Clock | None = None) -> Daemon:
    """Every component, ready to run: registry, positions, feeds, sink, alerts.

    ``clock`` defaults to the wall clock, or to a ManualClock moved by the data when a replay
    feed is configured; tests inject their own.

    Raises:
        ConfigError: an unreadable or bad positions file, an unknown instrument in it, or a
            feed that cannot be built from its configuration.
    """
    if clock is None:
        replay = any(isinstance(f, ReplayFeedConfig) for f in config.feeds)
        clock = ManualClock() if replay else LiveClock()
    registry = InstrumentRegistry(i.to_instrument() for i in config.instruments)
    params = {
        name: UnderlyingParams(u.rate, u.dividend_yield)
        for name, u in config.portfolio.underlyings.items()
    }
    portfolio = Portfolio(registry, params, round(config.portfolio.stale_after_s * 1e9))
    path = config_relative(config.portfolio.positions, config_path)
    strategies = StrategyBook(registry.get)
    if path is not None:
        for pos in load_positions(path):
            try:
                if ":" in pos.instrument:  # a strategy's text form
                    strategies.add_position(
                        portfolio, pos.book, pos.instrument, pos.quantity, pos.avg_price
                    )
                else:
                    portfolio.add_position(pos.book, pos.instrument, pos.quantity, pos.avg_price)
            except ValueError as exc:
                raise ConfigError(str(path), f"line {pos.line}: {exc}") from exc
    feeds: list[Feed] = []
    for i, fc in enumerate(config.feeds):
        if isinstance(fc, ReplayFeedConfig):
            # like the positions file: relative to the config file
            replay_path = config_path.parent / fc.path
            if not replay_path.is_file():
                raise ConfigError(
                    str(config_path), f"no such file: {replay_path} - at `$.feeds[{i}].path`"
                )
            fc = msgspec.structs.replace(fc, path=str(replay_path))
        try:
            feeds.append(build_feed(fc, registry, clock, portfolio.instruments()))
        except ValueError as exc:
            raise ConfigError(str(config_path), f"{exc} - at `$.feeds[{i}]`") from exc
    risk = config.risk
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
    journal, journaled = _open_journal(config, config_path, path)
    daemon = Daemon(
        config,
        clock,
        registry,
        portfolio,
        feeds,
        load_history(config, config_path),
        strategies,
        journal,
    )
    daemon.history_file = config_relative(config.risk.history, config_path)
    for entry in journaled:  # since the positions file, in order: the book the daemon had
        if isinstance(entry, Settlement):
            daemon.replay_settlement(entry)
        else:
            daemon.apply_fill(entry)
    if journaled:
        n_settled = sum(isinstance(entry, Settlement) for entry in journaled)
        logger.info(
            "journal replayed",
            extra={"fills": len(journaled) - n_settled, "settlements": n_settled},
        )
    return daemon


def _open_journal(
    config: AppConfig, config_path: Path, positions: Path | None
) -> tuple[FillJournal | None, list[Fill | Settlement]]:
    """The fill journal (``portfolio.journal``) and the fills and settlements already in it.

    Raises:
        ConfigError: it cannot be read or written, or it is corrupt.
    """
    path = config_relative(config.portfolio.journal, config_path)
    if path is None:
        return None, []
    if any(isinstance(f, ReplayFeedConfig | SimFeedConfig) for f in config.feeds):
        raise ConfigError(
            str(config_path),
            "a journal with a replay or sim feed would apply their fills twice after a "
            "restart (the feed sends them again) - at `$.portfolio.journal`",
        )
    text = positions.read_text(encoding="utf-8") if positions is not None else ""
    journal = FillJournal(path, positions_digest(text))
    try:
        return journal, journal.open()
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), f"{exc} - at `$.portfolio.journal`") from exc


def load_history(config: AppConfig, config_path: Path) -> MoveHistory:
    """The window of moves, seeded from ``risk.history`` when set.

    Raises:
        ConfigError: the file cannot be read or has a bad header or row.
    """
    history = MoveHistory(config.risk.window_days)
    path = config_relative(config.risk.history, config_path)
    if path is not None:
        try:
            history.load_csv(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(str(path), f"cannot read: {exc} - at `$.risk.history`") from exc
        except ValueError as exc:
            raise ConfigError(str(path), str(exc)) from exc
    return history


VOL_LEVEL_DAYS = 7.0
"""The vol level of an underlying is the ATM vol of its first fitted expiry at least this many
days away (else of its last): short expiries' vols jump as they near expiry."""


_SETTLEMENT_UNITS: Final = {
    "price": "USD: the time-weighted average of the index over the window (final: the "
    "settlement price; before: running)",
    "quantity": "position quantity (inverse futures: USD)",
    "avg_price": "its price currency: coin per option (coin-settled), else USD",
    "value": "per unit, its price currency: coin-settled options max(S - K, 0) / S coin",
    "pnl": "settlement currency: coin (coin-settled), else USD",
    "pnl_usd": "USD (per book: the sum of its positions')",
    "realised_pnl_usd": "USD, per book: every settlement since the daemon started (with a "
    "fill journal: since the journal began)",
}


def _vol_level(term: TermStructurePayload) -> float | None:
    """An underlying's vol level from its ATM term structure payload (None: no fit)."""
    pairs = [
        (t, v)
        for t, v in zip(term.tte_years, term.atm_vol, strict=True)
        if math.isfinite(v) and v > 0.0
    ]
    if not pairs:
        return None
    far = [v for t, v in pairs if t * 365.0 >= VOL_LEVEL_DAYS]
    return far[0] if far else pairs[-1][1]


def _risk_payloads(
    books: list[BookRisk],
    hedges: dict[str, HedgeInputs],
    held: list[tuple[StrategyHolding, Priced, float]],
    history: MoveHistory,
    cfg: RiskConfig,
    families: list[str],
    now: int,
    valuation: int,
) -> list[tuple[str, Payload]]:
    """The due risk payloads of every book and strategy held, each with its key (run in a
    worker thread)."""
    out: list[tuple[str, Payload]] = [
        (f"{h.book}:{h.text}", strategy_payload(h, legs, px, cfg, now, valuation_ns=valuation))
        for h, legs, px in held
    ]
    for br in books:
        out += [(f"{br.book}:{h.underlying}", h) for h in hedge_payloads(br, hedges, cfg, now)]
        if "var" in families:
            out.append((br.book, var_payload(br, history, cfg, now)))
        if "stress" in families:
            out.append((br.book, stress_payload(br, cfg, now)))
        if "margin" in families:
            out.append((br.book, margin_payload(br, cfg, now)))
    return out


async def run(
    daemon: Daemon,
    *,
    duration_s: float | None = None,
    view: Callable[[Daemon], Coroutine[Any, Any, None]] | None = None,
) -> int:
    """Run ``daemon`` until SIGTERM/SIGINT (or ``duration_s``); returns the exit status."""
    loop = asyncio.get_running_loop()
    signals = 0

    def on_signal(sig: signal.Signals) -> None:
        nonlocal signals
        signals += 1
        if signals > 1:
            logger.warning("second signal: exiting now", extra={"signal": sig.name})
            os._exit(128 + sig.value)
        logger.info("stopping", extra={"signal": sig.name})
        daemon.stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    await daemon.intake.load_instruments()
    daemon.portfolio.retry_unresolved()
    daemon.safe_cycle(full=True)  # warm-up: loads every kernel, publishes the start state
    # The start state (instruments, positions, kernels) lives as long as the daemon: keep it out
    # of the garbage collector, whose full collections would otherwise traverse all of it.
    gc.collect()
    gc.freeze()
    logger.info(
        "started",
        extra={
            "feeds": [f.name for f in daemon.feeds],
            **msgspec.structs.asdict(daemon.portfolio.instrument_status()),
        },
    )
    status = 0
    try:
        async with asyncio.TaskGroup() as tg:
            feed_tasks = [
                tg.create_task(daemon.intake.run(f), name=f"feed:{f.name}") for f in daemon.feeds
            ]
            engine = tg.create_task(daemon.engine_loop(), name="engine")
            aux = [
                tg.create_task(daemon.sink.run(), name="sink"),
                tg.create_task(daemon.monitor(), name="monitor"),
            ]
            if daemon.config.risk.enabled:
                aux.append(tg.create_task(daemon.risk_loop(), name="risk"))
            if daemon.config.http.address:
                daemon.http = HttpServer(daemon.config.http, daemon)
                aux.append(tg.create_task(daemon.http.run(), name="http"))
            if view is not None:
                aux.append(tg.create_task(view(daemon), name="view"))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(duration_s):
                    await daemon.stop.wait()
            # Shutdown: feeds first, then the engine's last full cycle, then Redis.
            for t in feed_tasks:
                t.cancel()
            daemon.stop.set()
            await engine
            daemon.safe_cycle(full=True, flush=True)
            if daemon.intake.ended and daemon.config.risk.enabled:
                await daemon.final_risk()
            try:
                async with asyncio.timeout(daemon.config.redis.timeout_s * 2):
                    await daemon.sink.flush()
            except Exception as exc:  # shutdown goes on without Redis
                logger.warning("final snapshot not published: %r", exc)
            for t in aux:
                t.cancel()
    except* RiskEngineError as group:  # fatal: bad credentials, a command Redis refuses
        for error in group.exceptions:
            logger.error("fatal error: %s", error, extra={"error": type(error).__name__})
        status = 1
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await daemon.sink.aclose()
        if daemon.inbox.journal is not None:
            daemon.inbox.journal.close()
    logger.info("stopped", extra={"cycles": daemon.cycles, "status": status})
    return status


def stdout_is_terminal() -> bool:
    """Whether the live view can draw on stdout."""
    return sys.stdout.isatty()
