"""Opening the book at start (from the checkpoint and the journal's tail, or from the positions
file and the whole journal) and the ``checkpoint`` task that writes checkpoints.

:func:`open_book` reads the checkpoint (``[checkpoint] path``) when there is one; if it is whole,
intact, of this book and its journal prefix is the journal's, the portfolio, strategies and
fill ids are restored from it and only the journal's entries after its offset are returned for
replay. Otherwise it is renamed aside (``.{time_ns}.bad``) with one warning line saying why, and
the book is built from the positions file and the whole journal, as without checkpoints.

:class:`Checkpointer` takes a checkpoint every ``interval_s``. The capture runs while the engine
is between two cycles (its ``cycling`` lock) and no expiry is settling (``valuing``), and only
when no journaled fill waits in the inbox: the state is then exactly the journal's first
``size`` bytes applied, and that offset is recorded. The columns are copied in a worker thread
(numpy copies let the GIL go; Python lists are copied in slices), and written by another
worker thread after the engine has gone on, so the event loop is never held for long: a fill
that arrives meanwhile is journaled after the offset, and replayed from the tail at a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import msgspec

from engine.events import Fill
from engine.risk.settlement import Settler
from engine.risk.strategies import StrategyBook, parse_strategy
from engine.runtime.checkpoint import (
    VERSION,
    BookState,
    Checkpoint,
    CheckpointError,
    Header,
    HoldingRow,
    identity,
    read_checkpoint,
    set_aside,
    write_checkpoint,
)
from engine.runtime.config import AppConfig, config_relative, load_book
from engine.runtime.engine_loop import EngineLoop
from engine.runtime.journal import (
    FillJournal,
    Settlement,
    open_journal,
    positions_digest,
    prefix_sha256,
)
from engine.runtime.shard_gate import ShardGate
from engine.state import Portfolio

__all__ = ["Checkpointer", "OpenedBook", "book_identity", "capture", "open_book", "restore"]

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class OpenedBook:
    """The book as :func:`open_book` opened it.

    Attributes:
        strategies: the strategy holdings.
        journal: the fill journal (None: none configured).
        entries: the journal's entries still to apply: its tail after the checkpoint's
            offset, or all of it.
        restored: what the checkpoint held beyond the portfolio and strategies (rejected fills,
            realised P&L, settled expiries: :meth:`EngineLoop.replay` takes them); None when
            the book was built from the positions file.
        identity: the book's :func:`book_identity` (its checkpoints carry it).
    """

    strategies: StrategyBook
    journal: FillJournal | None
    entries: list[Fill | Settlement]
    restored: BookState | None
    identity: str


def book_identity(config: AppConfig, positions_sha256: str) -> str:
    """The identity of the book ``config`` builds on the positions of ``positions_sha256``
    (:func:`engine.runtime.checkpoint.identity`; with ``[[instruments]]`` and ``[cluster]``,
    whose shard takes only its underlyings' positions and fills)."""
    built = msgspec.to_builtins([config.instruments, config.cluster])
    kinds = (str(type(f).__struct_config__.tag) for f in config.feeds)
    return identity(positions_sha256, built, kinds)


def open_book(
    config: AppConfig,
    config_path: Path,
    portfolio: Portfolio,
    gate: ShardGate | None = None,
    *,
    resent_fills: bool,
    write: bool = True,
) -> OpenedBook:
    """The book at start: from the checkpoint and the journal's tail when the checkpoint can be
    used, else from the positions file (the rows of ``gate``'s shard) and the whole journal
    (module docstring). Not ``write`` (``riskd check-config``): every file is left as it is
    (an unusable checkpoint is only logged, the journal read only: :meth:`FillJournal.open`).

    Raises:
        ConfigError: a bad positions file, an unreadable or corrupt journal (not a checkpoint:
            an unusable one is set aside).
    """
    positions = config_relative(config.portfolio.positions, config_path)
    try:
        text = positions.read_text(encoding="utf-8") if positions is not None else ""
    except (OSError, UnicodeDecodeError):
        # the positions reader raises the ConfigError that names the file
        load_book(positions, portfolio, portfolio.registry, gate)
        raise
    digest = positions_digest(text)
    ident = book_identity(config, digest)
    path = config_relative(config.checkpoint.path, config_path)
    found = _read(path, ident, write) if path is not None else None
    start = found.header.journal_offset if found is not None else 0
    journal, entries = open_journal(
        config_relative(config.portfolio.journal, config_path),
        digest,
        resent_fills=resent_fills,
        config_path=config_path,
        start=start,
        start_sha256=found.header.journal_sha256 if found is not None else "",
        write=write,
    )
    strategies = StrategyBook(portfolio.registry.get)
    if found is not None and path is not None:
        try:
            if journal is None or journal.resumed_at != start:
                raise CheckpointError("its journal offset is not this journal's")
            state = found.state()
            restore(state, portfolio, strategies)
        except CheckpointError as exc:
            _set_aside(path, exc.reason, write)
        else:
            logger.info(
                "checkpoint loaded",
                extra={"path": str(path), "lots": found.header.lots, "journal_offset": start,
                       "tail_entries": len(entries)},
            )  # fmt: skip
            return OpenedBook(strategies, journal, entries, state, ident)
        if journal is not None and journal.resumed_at:  # the tail only: read it all
            journal.close()
            journal, entries = open_journal(
                journal.path, digest, resent_fills=resent_fills, config_path=config_path,
                write=write,
            )  # fmt: skip
    strategies = load_book(positions, portfolio, portfolio.registry, gate)
    return OpenedBook(strategies, journal, entries, None, ident)


def _read(path: Path, ident: str, write: bool) -> Checkpoint | None:
    """The checkpoint at ``path`` if there is one and it is usable; one set aside (logged)
    otherwise (only logged when not ``write``)."""
    if not path.exists():
        return None
    try:
        return read_checkpoint(path, ident)
    except CheckpointError as exc:
        _set_aside(path, exc.reason, write)
        return None


def _set_aside(path: Path, reason: str, write: bool) -> None:
    if not write:
        logger.warning(
            "checkpoint unusable: a start would set it aside and replay the journal in full: %s",
            reason,
            extra={"path": str(path)},
        )
        return
    aside = set_aside(path)
    logger.warning(
        "checkpoint set aside, replaying the journal in full: %s",
        reason,
        extra={"path": str(path), "moved_to": str(aside)},
    )


def restore(state: BookState, portfolio: Portfolio, strategies: StrategyBook) -> None:
    """Restore the portfolio's lots, fill ids and kept fills and the strategy holdings of
    ``state`` (into an empty portfolio). Everything is checked before anything changes.

    Raises:
        CheckpointError: an instrument or strategy unknown here, or bad columns.
    """
    try:
        parsed = [(h, parse_strategy(h.text, strategies.lookup)) for h in state.holdings]
        portfolio.restore_lots(state.lots)
    except ValueError as exc:
        raise CheckpointError(f"its book cannot be restored: {exc}") from None
    portfolio.restore_fill_ids(state.fill_ids, state.duplicate_fills)
    portfolio.unresolved_fills.extend(state.unresolved)
    for row, strategy in parsed:
        holding = strategies.holding(row.book, strategy)
        holding.quantity, holding.cost, holding.has_cost = row.quantity, row.cost, row.has_cost


def capture(engine: EngineLoop, settler: Settler) -> BookState:
    """Copies of everything a checkpoint holds (a worker thread runs it while nothing writes
    the book: :class:`Checkpointer`)."""
    portfolio = engine.portfolio
    return BookState(
        lots=portfolio.lot_state(),
        fill_ids=portfolio.fill_ids(),
        duplicate_fills=portfolio.duplicate_fills,
        unresolved=list(portfolio.unresolved_fills),
        rejected=list(engine.rejected_fills),
        holdings=[
            HoldingRow(
                book=h.book, text=h.text, quantity=h.quantity, cost=h.cost, has_cost=h.has_cost
            )
            for h in engine.strategies.holdings.values()
        ],
        realised_pnl_usd=dict(settler.realised_pnl_usd),
        settled=list(settler.settled.values()),
    )


class Checkpointer:
    """The ``checkpoint`` task: a checkpoint every ``interval_s`` (module docstring).

    Args:
        path: the checkpoint file.
        interval_s: time between two checkpoints.
        ident: the book's :func:`book_identity`.
        journal: the fill journal whose offset a checkpoint records.
        engine: the engine loop (the book, its ``cycling`` lock, its inbox).
        settler: the settled expiries and realised P&L.
        valuing: held while expiries settle (and while the engine reprices in a thread).

    Attributes:
        written: checkpoints written; ``errors``: checkpoints that failed (logged).
        last: the header of the last checkpoint written.
    """

    def __init__(
        self,
        path: Path,
        interval_s: float,
        ident: str,
        journal: FillJournal,
        engine: EngineLoop,
        settler: Settler,
        valuing: asyncio.Lock,
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self.identity = ident
        self.journal = journal
        self.engine = engine
        self.settler = settler
        self.valuing = valuing
        self.written = 0
        self.errors = 0
        self.last: Header | None = None
        self._writing = asyncio.Lock()  # one checkpoint at a time (the periodic and the last)

    async def run(self, stop: asyncio.Event) -> None:
        """A checkpoint every ``interval_s`` until ``stop``."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval_s):
                    await stop.wait()
            if not stop.is_set():
                await self.safe_checkpoint()

    async def safe_checkpoint(self, timeout_s: float | None = None) -> None:
        """:meth:`checkpoint` (within ``timeout_s``), logging and counting a failure instead of
        raising it (the journal still holds everything: a restart replays more of it)."""
        try:
            async with asyncio.timeout(timeout_s):
                await self.checkpoint()
        except Exception:
            self.errors += 1
            logger.exception("checkpoint failed", extra={"errors": self.errors})

    async def checkpoint(self) -> Header:
        """Capture the book at a journal offset and write it (module docstring)."""
        async with self._writing:
            return await self._checkpoint()

    async def _checkpoint(self) -> Header:
        t0 = time.perf_counter()
        offset, state = await self._capture()
        captured_s = time.perf_counter() - t0
        header = Header(
            v=VERSION,
            identity=self.identity,
            journal_offset=offset,
            journal_sha256=await asyncio.to_thread(prefix_sha256, self.journal.path, offset),
            created_ns=time.time_ns(),
            lots=state.lots.quantity.size,
        )
        size = await asyncio.to_thread(write_checkpoint, self.path, header, state)
        self.written += 1
        self.last = header
        logger.info(
            "checkpoint written",
            extra={"lots": header.lots, "journal_offset": offset, "bytes": size,
                   "capture_s": round(captured_s, 4),
                   "total_s": round(time.perf_counter() - t0, 4)},
        )  # fmt: skip
        return header

    async def _capture(self) -> tuple[int, BookState]:
        """The journal offset and the book as of it, taken between two engine cycles, outside a
        settlement, with no journaled fill waiting in the inbox."""
        engine = self.engine
        while True:
            async with engine.cycling, self.valuing:
                if engine.inbox.inbox.fills_queued == 0:
                    offset = self.journal.size
                    return offset, await asyncio.to_thread(capture, engine, self.settler)
                engine.drained.clear()
            await engine.drained.wait()  # the engine's next cycle takes the waiting fills
