"""The fill journal: every fill the daemon accepts, on disk before it is acknowledged, and every
settlement of an expiry, so that a restarted daemon rebuilds exactly the book it had and the P&L
it realised (docs/config.md, ``[portfolio] journal``).

Why a local fsynced file rather than a Redis stream: it needs nothing else to be up when a fill
arrives or when the daemon starts (Redis may be the thing that restarted), and an ``fsync`` per
fill is cheap at the rate fills come (market data is never journaled).

Format: JSON lines. The first line is a header naming the positions file's content
(``{"v": 2, "positions_sha256": ...}``); every other line is one fill as received (msgspec JSON
of :class:`engine.events.Fill`) or one settlement (``{"settlement": {...}}``,
:class:`Settlement`: the expiry and the price it settled at), in the order they happened. A
version 1 journal (fills only) is read the same way. A journal whose header names other
positions (a new start-of-day file) belongs to an earlier day: it is renamed aside
(``.{timestamp}.old``) and a new one begun. A last line cut short by a crash (no newline) is
left out.

A checkpoint (:mod:`engine.runtime.checkpoint`) holds the book as of a byte offset into the
journal and the SHA-256 of the journal up to there: :meth:`FillJournal.open` then returns only
the entries after that offset, once the journal's first bytes are the ones the checkpoint saw.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import IO, TypeVar

import msgspec

from engine.errors import ConfigError
from engine.events import Fill
from engine.risk.settlement import Twap

__all__ = ["FillJournal", "Settlement", "open_journal", "positions_digest", "prefix_sha256"]

_VERSION = 2
_T = TypeVar("_T")


class _Header(msgspec.Struct, frozen=True, kw_only=True):
    v: int
    positions_sha256: str


class Settlement(msgspec.Struct, frozen=True, kw_only=True):
    """An expiry settled: the positions in the instruments on ``index`` expiring at
    ``expiry_ns`` left the book at ``twap.price`` (USD) at ``ts_ns``."""

    index: str
    expiry_ns: int
    ts_ns: int
    twap: Twap


class _SettlementLine(msgspec.Struct, frozen=True):
    settlement: Settlement


_ENCODER = msgspec.json.Encoder()
_FILL = msgspec.json.Decoder(Fill)
_SETTLEMENT = msgspec.json.Decoder(_SettlementLine)
_HEADER = msgspec.json.Decoder(_Header)


def positions_digest(text: str) -> str:
    """The SHA-256 of a positions file's content (empty: no file)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sha256(data: memoryview) -> str:
    return hashlib.sha256(data).hexdigest()


def prefix_sha256(path: Path, size: int) -> str:
    """The SHA-256 of the first ``size`` bytes of the file at ``path``, read in slices (a worker
    thread: reading and hashing release the GIL).

    Raises:
        OSError: the file cannot be read or is shorter than ``size``.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        left = size
        while left > 0:
            chunk = f.read(min(left, 1 << 20))
            if not chunk:
                raise OSError(f"{path} is shorter than {size} bytes")
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


class FillJournal:
    """Append-only, fsynced journal of fills.

    Args:
        path: the journal file.
        positions_sha256: :func:`positions_digest` of the start-of-day positions it extends.
    """

    def __init__(self, path: Path, positions_sha256: str) -> None:
        self.path = path
        self._digest = positions_sha256
        self._file: IO[bytes] | None = None
        self.size = 0
        """Bytes written so far: the offset after the last entry."""
        self.resumed_at = 0
        """Where :meth:`open` began returning entries: the ``start`` it was given when the
        journal's first ``start`` bytes had the SHA-256 given with it, else 0 (every entry)."""

    def open(
        self, start: int = 0, start_sha256: str = "", *, write: bool = True
    ) -> list[Fill | Settlement]:
        """Open for appending; returns the fills and settlements already in it (oldest first)
        when it extends the same positions, else sets the old journal aside and starts a new
        one. With ``start`` (a checkpoint's offset) and the SHA-256 of the journal's first
        ``start`` bytes, only the entries after ``start`` are returned when the journal begins
        with those bytes (:attr:`resumed_at`); otherwise every entry is. Not ``write``: read
        only (``riskd check-config``): the file is left as it is (a line cut short is not
        truncated, a journal of other positions not set aside: none of its entries is
        returned) and not opened for appending.

        Raises:
            OSError: the file cannot be read or written.
            ValueError: a line other than the last is neither a fill nor a settlement (a
                corrupt journal: it is left as it is for the operator).
        """
        fills: list[Fill | Settlement] = []
        self.resumed_at = 0
        if self.path.exists():
            data = self.path.read_bytes()
            cut = len(data) - 1 - data.rfind(b"\n")  # after the last newline: a cut line
            if cut:  # cut short by a crash: not acknowledged, so redelivered; drop it
                data = data[: len(data) - cut]
                if write:
                    os.truncate(self.path, len(data))
            first = data.find(b"\n") + 1
            try:
                header = _HEADER.decode(data[: first - 1]) if first else None
            except msgspec.DecodeError:
                header = None
            if header is not None and header.positions_sha256 == self._digest:
                at_line_end = first <= start <= len(data) and data[start - 1 : start] == b"\n"
                if at_line_end and _sha256(memoryview(data)[:start]) == start_sha256:
                    self.resumed_at = start
                begin = self.resumed_at or first
                lines = data[begin:].split(b"\n")[:-1]
                fills = self._entries(lines, data.count(b"\n", 0, begin) + 1)
            elif write:
                self.path.rename(self.path.with_name(f"{self.path.name}.{time.time_ns()}.old"))
        if not write:
            return fills
        new = not self.path.exists()
        self._file = self.path.open("ab")
        self.size = self._file.tell()
        if new:
            self._write(_ENCODER.encode(_Header(v=_VERSION, positions_sha256=self._digest)))
        return fills

    def _entries(self, lines: list[bytes], first_line: int) -> list[Fill | Settlement]:
        """``lines`` (from line ``first_line`` of the file on), in order: each run of fills
        decoded in one call (``decode_lines``), the (rare) settlements one by one; a run with a
        bad or blank line is decoded line by line, to name the line."""
        settled = [k for k, line in enumerate(lines) if line.startswith(b'{"settlement"')]
        out: list[Fill | Settlement] = []
        start = 0
        for end in [*settled, len(lines)]:
            run = lines[start:end]
            try:
                fills = _FILL.decode_lines(b"\n".join(run)) if run else []
            except msgspec.DecodeError:
                fills = []
            if len(fills) != len(run):  # decode_lines skips blank lines: not a fill either
                fills = [
                    self._decode(_FILL, line, first_line + start + k) for k, line in enumerate(run)
                ]
            out.extend(fills)
            if end < len(lines):
                entry = self._decode(_SETTLEMENT, lines[end], first_line + end)
                out.append(entry.settlement)
            start = end + 1
        return out

    def _decode(self, decoder: msgspec.json.Decoder[_T], line: bytes, k: int) -> _T:
        """Line ``k`` of the file, decoded; ValueError naming its line number."""
        try:
            return decoder.decode(line)
        except msgspec.DecodeError as exc:
            raise ValueError(f"{self.path}, line {k}: not a fill: {exc}") from None

    def append(self, fill: Fill) -> None:
        """Write ``fill`` and fsync it (returns once it is on disk)."""
        self._write(_ENCODER.encode(fill))

    def append_settlement(self, settlement: Settlement) -> None:
        """Write ``settlement`` and fsync it."""
        self._write(_ENCODER.encode(_SettlementLine(settlement)))

    def _write(self, data: bytes) -> None:
        f = self._file
        if f is None:
            raise ValueError("the journal is not open")
        f.write(data + b"\n")
        f.flush()
        os.fsync(f.fileno())
        self.size += len(data) + 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def open_journal(
    path: Path | None,
    positions_sha256: str,
    *,
    resent_fills: bool,
    config_path: Path,
    start: int = 0,
    start_sha256: str = "",
    write: bool = True,
) -> tuple[FillJournal | None, list[Fill | Settlement]]:
    """The fill journal at ``path`` (``portfolio.journal``; None: none) and the fills and
    settlements already in it (after ``start``: :meth:`FillJournal.open`, read only when not
    ``write``); ``positions_sha256`` names the positions file it continues
    (:func:`positions_digest`).

    Raises:
        ConfigError: it cannot be read or written, it is corrupt, or a feed sends its fills
            again at every start (``resent_fills``: a replay or the simulator).
    """
    if path is None:
        return None, []
    if resent_fills:
        raise ConfigError(
            str(config_path),
            "a journal with a replay or sim feed would apply their fills twice after a "
            "restart (the feed sends them again) - at `$.portfolio.journal`",
        )
    journal = FillJournal(path, positions_sha256)
    try:
        return journal, journal.open(start, start_sha256, write=write)
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), f"{exc} - at `$.portfolio.journal`") from exc
