"""The checkpoint file: the book as of an offset into the fill journal (``[checkpoint]``,
docs/operations.md "Checkpoints"), so that a restart opens it and replays only the journal's
tail after that offset instead of the whole journal.

Layout, written atomically (a temporary file beside it, fsynced, renamed over it, the folder
fsynced)::

    b"RISKDCKP"  u32 little-endian n  header (n bytes of JSON, :class:`Header`)
    payload: a zip of .npy members (numpy's .npz; stored, not compressed)
    SHA-256 of everything before it (32 bytes)

The header names the format's version, the *identity* of what the book was built from
(:func:`identity`: the positions file's content, the configured instruments, the kinds of
feed), the journal offset and the SHA-256 of the journal's bytes up to it. The payload holds
the lots as columns (books, instruments and fill ids as one UTF-8 blob plus lengths each, no
Python object per row) and the few other things as one msgpack member.

:func:`read_checkpoint` returns the header and payload of a whole, intact checkpoint of the
same identity, or raises :class:`CheckpointError` saying why not; the caller sets such a file
aside (:func:`set_aside`) and replays the journal in full.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

import msgspec
import numpy as np
import numpy.typing as npt

from engine.errors import RiskEngineError
from engine.events import Fill
from engine.outputs import SettlementPayload
from engine.state import LotState

__all__ = [
    "BookState",
    "CheckpointError",
    "Header",
    "HoldingRow",
    "identity",
    "read_checkpoint",
    "set_aside",
    "write_checkpoint",
]

MAGIC: Final = b"RISKDCKP"
VERSION: Final = 1
_SLICE: Final = 1 << 20  # bytes of an array written at a time
_STRINGS: Final = 8192  # strings encoded at a time (the GIL is let go between slices)
_U32: Final = struct.Struct("<I")


class CheckpointError(RiskEngineError):
    """A checkpoint that cannot be used: missing, cut short, corrupt, of another version or of
    another book. ``reason`` says which, for the one log line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Header(msgspec.Struct, frozen=True, kw_only=True):
    """What a checkpoint is of: its format version, the book's :func:`identity`, and the fill
    journal's first ``journal_offset`` bytes (their SHA-256) that it holds the effect of."""

    v: int
    identity: str
    journal_offset: int
    journal_sha256: str
    created_ns: int
    lots: int


class HoldingRow(msgspec.Struct, frozen=True, kw_only=True):
    """A strategy holding (:class:`engine.risk.strategies.StrategyHolding`) as kept."""

    book: str
    text: str
    quantity: float
    cost: float
    has_cost: bool


class _Rest(msgspec.Struct, frozen=True, kw_only=True):
    """The payload's small part (msgpack: NaN survives)."""

    duplicate_fills: int
    unresolved: list[Fill]
    rejected: list[Fill]
    holdings: list[HoldingRow]
    realised_pnl_usd: dict[str, float]
    settled: list[SettlementPayload]


@dataclass(frozen=True, slots=True)
class BookState:
    """What a checkpoint holds beside its header.

    Attributes:
        lots: every lot (:class:`engine.state.LotState`).
        fill_ids: the ids of the fills applied, oldest first (redeliveries are recognised).
        duplicate_fills: redelivered fills ignored so far.
        unresolved: fills kept until their instrument is known.
        rejected: fills the engine refused (kept for the operator).
        holdings: strategy holdings.
        realised_pnl_usd: realised P&L of settled positions per book, USD.
        settled: the payload of each expiry settled (published again at a restart).
    """

    lots: LotState
    fill_ids: list[str]
    duplicate_fills: int
    unresolved: list[Fill]
    rejected: list[Fill]
    holdings: list[HoldingRow]
    realised_pnl_usd: dict[str, float]
    settled: list[SettlementPayload]


def identity(positions_sha256: str, instruments: object, feed_kinds: Iterable[str]) -> str:
    """The SHA-256 naming what a book is built from: the positions file's content, the
    configured instruments (``[[instruments]]`` as plain data) and the set of feed kinds (the
    venues whose definitions the registry takes). A checkpoint of another is foreign."""
    text = msgspec.json.encode([positions_sha256, instruments, sorted(set(feed_kinds))])
    return hashlib.sha256(text).hexdigest()


class _Hashing(io.RawIOBase):
    """A write-only file that hashes what goes through it (zipfile writes it as a stream)."""

    def __init__(self, f: IO[bytes]) -> None:
        self._f = f
        self.sha = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]  # RawIOBase takes any buffer
        self.sha.update(data)
        self._f.write(data)
        return len(data) if not isinstance(data, memoryview) else data.nbytes


def _put_array(z: zipfile.ZipFile, name: str, arr: npt.NDArray[np.generic]) -> None:
    """``arr`` as member ``{name}.npy``, its bytes written in slices (each lets the GIL go)."""
    arr = np.ascontiguousarray(arr)
    with z.open(f"{name}.npy", "w", force_zip64=True) as m:
        np.lib.format.write_array_header_1_0(m, np.lib.format.header_data_from_array_1_0(arr))
        raw = arr.reshape(-1).view(np.uint8).data
        for a in range(0, raw.nbytes, _SLICE):
            m.write(raw[a : a + _SLICE])


def _put_strings(z: zipfile.ZipFile, name: str, strings: Sequence[str]) -> None:
    """``strings`` as ``{name}_utf8`` (their UTF-8 bytes, one after another) and
    ``{name}_len`` (each one's length in bytes), encoded in slices."""
    blobs, lengths = [], []
    for a in range(0, len(strings), _STRINGS):
        encoded = [s.encode("utf-8") for s in strings[a : a + _STRINGS]]
        lengths.append(np.fromiter(map(len, encoded), np.int64, len(encoded)))
        blobs.append(b"".join(encoded))
    _put_array(z, f"{name}_len", np.concatenate(lengths) if lengths else np.empty(0, np.int64))
    total = sum(map(len, blobs))
    with z.open(f"{name}_utf8.npy", "w", force_zip64=True) as m:
        header = {"descr": "|u1", "fortran_order": False, "shape": (total,)}
        np.lib.format.write_array_header_1_0(m, header)
        for blob in blobs:
            m.write(blob)


def _strings(members: dict[str, npt.NDArray[np.generic]], name: str) -> list[str]:
    """The strings :func:`_put_strings` wrote."""
    lengths = members[f"{name}_len"].astype(np.int64)
    blob = members[f"{name}_utf8"].tobytes()
    ends = np.cumsum(lengths)
    if lengths.size and (int(lengths.min()) < 0 or int(ends[-1]) != len(blob)):
        raise CheckpointError(f"{name}: lengths do not match the text")
    starts = (ends - lengths).tolist()
    text = blob.decode("utf-8")
    if len(text) == len(blob):  # ASCII: characters are bytes
        return [text[a:b] for a, b in zip(starts, ends.tolist(), strict=True)]
    return [blob[a:b].decode("utf-8") for a, b in zip(starts, ends.tolist(), strict=True)]


def write_checkpoint(path: Path, header: Header, state: BookState) -> int:
    """Write ``state`` with ``header`` to ``path`` atomically (a worker thread runs it);
    returns the file's size in bytes.

    Raises:
        OSError: it cannot be written (the previous checkpoint, if any, stays).
    """
    tmp = path.with_name(f"{path.name}.tmp")
    rest = _Rest(
        duplicate_fills=state.duplicate_fills,
        unresolved=state.unresolved,
        rejected=state.rejected,
        holdings=state.holdings,
        realised_pnl_usd=state.realised_pnl_usd,
        settled=state.settled,
    )
    lots = state.lots
    with tmp.open("wb") as f:
        out = _Hashing(f)
        head = msgspec.json.encode(header)
        out.write(MAGIC + _U32.pack(len(head)) + head)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            _put_array(z, "lot_book", lots.book)
            _put_array(z, "lot_instrument", lots.instrument)
            _put_array(z, "lot_quantity", lots.quantity)
            _put_array(z, "lot_cost", lots.cost)
            _put_array(z, "lot_has_cost", lots.has_cost)
            _put_strings(z, "books", lots.books)
            _put_strings(z, "instruments", lots.instruments)
            _put_strings(z, "fill_ids", state.fill_ids)
            _put_array(z, "rest", np.frombuffer(msgspec.msgpack.encode(rest), np.uint8))
        f.write(out.sha.digest())
        f.flush()
        os.fsync(f.fileno())
        size = f.tell()
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return size


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A checkpoint read whole and checked: its header, and its payload to decode."""

    header: Header
    payload: bytes

    def state(self) -> BookState:
        """The book it holds.

        Raises:
            CheckpointError: a member is missing or malformed.
        """
        try:
            with np.load(io.BytesIO(self.payload), allow_pickle=False) as npz:
                members = {name: npz[name] for name in npz.files}
            rest = msgspec.msgpack.decode(members["rest"].tobytes(), type=_Rest)
            lots = LotState(
                books=_strings(members, "books"),
                book=members["lot_book"].astype(np.int64, copy=False),
                instruments=_strings(members, "instruments"),
                instrument=members["lot_instrument"].astype(np.int64, copy=False),
                quantity=members["lot_quantity"].astype(np.float64, copy=False),
                cost=members["lot_cost"].astype(np.float64, copy=False),
                has_cost=members["lot_has_cost"].astype(np.bool_, copy=False),
            )
            fill_ids = _strings(members, "fill_ids")
        except (KeyError, ValueError, OSError, zipfile.BadZipFile, msgspec.DecodeError) as exc:
            raise CheckpointError(f"its payload cannot be read: {exc}") from None
        if lots.quantity.size != self.header.lots:
            raise CheckpointError("its payload does not hold the lots its header counts")
        return BookState(
            lots, fill_ids, rest.duplicate_fills, rest.unresolved, rest.rejected,
            rest.holdings, rest.realised_pnl_usd, rest.settled,
        )  # fmt: skip


def read_checkpoint(path: Path, book_identity: str) -> Checkpoint:
    """The checkpoint at ``path``, read whole and checked: its magic bytes, its SHA-256, its
    version and that it is of ``book_identity``.

    Raises:
        CheckpointError: there is none, or it is cut short, corrupt, of another version or
            foreign (its ``reason`` says which).
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"cannot be read: {exc.strerror or exc}") from None
    start = len(MAGIC) + _U32.size
    if len(data) < start + 32 or not data.startswith(MAGIC):
        raise CheckpointError("not a riskd checkpoint, or cut short")
    body = memoryview(data)[:-32]
    if hashlib.sha256(body).digest() != data[-32:]:
        raise CheckpointError("checksum mismatch: corrupt or cut short")
    (n,) = _U32.unpack_from(data, len(MAGIC))
    try:
        header = msgspec.json.decode(data[start : start + n], type=Header)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"bad header: {exc}") from None
    if header.v != VERSION:
        raise CheckpointError(f"format version {header.v}, this riskd reads {VERSION}")
    if header.identity != book_identity:
        raise CheckpointError(
            "foreign: taken of another book (positions file, instruments or feeds differ)"
        )
    return Checkpoint(header, bytes(body[start + n :]))


def set_aside(path: Path) -> Path | None:
    """Rename the checkpoint at ``path`` aside (``{name}.{time_ns}.bad``), keeping it for the
    operator; the new name, None if there was none to rename."""
    aside = path.with_name(f"{path.name}.{time.time_ns()}.bad")
    try:
        path.rename(aside)
    except FileNotFoundError:
        return None
    return aside
