"""DBN file bytes -> Databento records, sans-I/O: bytes in, ``databento_dbn`` records out.

A DBN file (Databento Binary Encoding, https://databento.com/docs/standards-and-conventions/
databento-binary-encoding) is a metadata header followed by fixed-layout records, often
compressed with Zstandard (``.dbn.zst``). Decoding is ``databento_dbn.DBNDecoder``'s, Databento's
own decoder; this module adds what a replay needs around it:

- the compression is told by the first bytes (the zstd magic ``28 B5 2F FD``), not the name;
- a file that ends early says so, with the offset: an uncompressed file whose last record is
  incomplete (the decoder holds the bytes of a partial record at the end), and a compressed
  one that ends inside a zstd frame. The decoder alone yields nothing for a frame cut short
  and raises nothing, so :class:`ZstdFrames` walks the frames' structure (RFC 8878: frame
  header, block headers, checksum) over the compressed bytes as they pass, without
  decompressing them, and knows whether the stream ended between two frames;
- corrupt data (an impossible record length, an unknown record type, a zstd checksum that does
  not match) is a :class:`DbnFileError` naming the file and the byte range of the chunk in
  which the decoder failed. The decoder cannot resynchronise after that (DBN has no sync
  marker), so the rest of that file is not read, and the records it had decoded from that same
  chunk are lost with it (at most one chunk, :data:`CHUNK_BYTES`).
"""

from __future__ import annotations

from typing import Final

import databento_dbn as dbn

from engine.errors import FeedDecodeError

__all__ = ["CHUNK_BYTES", "ZSTD_MAGIC", "DbnFileError", "DbnReader", "ZstdFrames"]

CHUNK_BYTES: Final = 64 * 1024
"""Bytes read from a file at a time (the most a corrupt chunk loses)."""
ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
"""The first four bytes of a Zstandard frame (0xFD2FB528, little-endian)."""
_ZSTD_FRAME: Final = 0xFD2FB528
_SKIPPABLE_LO: Final = 0x184D2A50  # skippable frames: 0x184D2A50 .. 0x184D2A5F
_SKIPPABLE_HI: Final = 0x184D2A5F
_FCS_BYTES: Final = (0, 2, 4, 8)  # Frame_Content_Size field by its flag (0: 1 if single segment)
_DID_BYTES: Final = (0, 1, 2, 4)  # Dictionary_ID field by its flag


class DbnFileError(FeedDecodeError):
    """A DBN file that cannot be read on: truncated or corrupt. The rest of the file is
    skipped; the feed goes on with its other files.

    Attributes:
        path: the file.
        offset: where in the file (bytes from its start) the problem lies or begins.
        reason: ``truncated`` or ``corrupt``.
    """

    def __init__(self, feed: str, reason: str, path: str, offset: int, detail: str) -> None:
        super().__init__(feed, reason, f"{path}: {detail} (at byte {offset})")
        self.path = path
        self.offset = offset


class ZstdFrames:
    """Follows the frame structure of a Zstandard stream fed in pieces, to tell a stream that
    ended between frames from one cut short. Only headers are read; block contents are
    skipped by their stated sizes.

    Raises (from :meth:`feed`):
        ValueError: bytes that are no zstd frame (bad magic, reserved bits or block type).
    """

    __slots__ = ("_buf", "_checksum", "_frame_start", "_frames", "_pos", "_skip", "_state", "_want")

    def __init__(self) -> None:
        self._pos = 0  # bytes fed so far
        self._buf = bytearray()  # the header field being gathered
        self._want = 4
        self._state = "magic"
        self._skip = 0  # content bytes still to pass over
        self._checksum = False
        self._frame_start = 0
        self._frames = 0

    def feed(self, data: bytes) -> None:
        """Follow ``data``, the next bytes of the stream."""
        i, n = 0, len(data)
        while i < n:
            if self._skip:
                step = min(self._skip, n - i)
                self._skip -= step
                i += step
                continue
            if self._state == "magic" and not self._buf:
                self._frame_start = self._pos + i
            step = min(self._want - len(self._buf), n - i)
            self._buf += data[i : i + step]
            i += step
            if len(self._buf) == self._want:
                field = bytes(self._buf)
                self._buf.clear()
                self._next(field)
        self._pos += n

    def _next(self, field: bytes) -> None:
        value = int.from_bytes(field, "little")
        match self._state:
            case "magic":
                if value == _ZSTD_FRAME:
                    self._state, self._want = "descriptor", 1
                elif _SKIPPABLE_LO <= value <= _SKIPPABLE_HI:
                    self._state, self._want = "skippable", 4
                else:
                    raise ValueError(f"no zstd frame starts at byte {self._frame_start}")
            case "descriptor":
                if value & 0x08:
                    raise ValueError(f"reserved bit set in the zstd frame at {self._frame_start}")
                single = bool(value & 0x20)
                self._checksum = bool(value & 0x04)
                fcs = _FCS_BYTES[value >> 6] or (1 if single else 0)
                rest = (0 if single else 1) + _DID_BYTES[value & 0x03] + fcs
                self._state, self._want = ("header", rest) if rest else ("block", 3)
            case "header":
                self._state, self._want = "block", 3
            case "block":
                block_type = (value >> 1) & 0x03
                if block_type == 3:
                    raise ValueError(
                        f"reserved zstd block type in the frame at {self._frame_start}"
                    )
                self._skip = 1 if block_type == 1 else value >> 3  # RLE: one byte
                if not value & 0x01:  # not the last block
                    self._want = 3
                elif self._checksum:
                    self._state, self._want = "checksum", 4
                else:
                    self._end_frame()
            case "checksum":
                self._end_frame()
            case "skippable":
                self._skip = value
                self._end_frame()

    def _end_frame(self) -> None:
        self._state, self._want = "magic", 4
        self._frames += 1

    @property
    def complete(self) -> bool:
        """Whether the bytes so far end exactly after a whole frame."""
        return self._frames > 0 and self._state == "magic" and not self._buf and not self._skip

    @property
    def frame_start(self) -> int:
        """Where the frame now being read (or the last one) starts, bytes from the start."""
        return self._frame_start


class DbnReader:
    """Decodes one DBN file fed in chunks: its :class:`databento_dbn.Metadata` first, then
    its records (older DBN versions upgraded to the current one by the decoder).

    Args:
        feed: the feed's name, for errors.
        path: the file's name, for errors.
    """

    __slots__ = ("_decoder", "_feed", "_frames", "_head", "_path", "_read", "metadata", "records")

    def __init__(self, feed: str, path: str) -> None:
        self._feed = feed
        self._path = path
        self._decoder: dbn.DBNDecoder | None = None  # made once the first bytes tell the kind
        self._frames: ZstdFrames | None = None
        self._head = bytearray()  # the first bytes, until they tell the kind of file
        self._read = 0
        self.metadata: dbn.Metadata | None = None
        self.records = 0
        """Records decoded so far."""

    @property
    def compressed(self) -> bool:
        """Whether the file is Zstandard-compressed (known after its first bytes)."""
        return self._frames is not None

    def feed(self, chunk: bytes) -> list[dbn.DBNRecord]:
        """The records completed by ``chunk``, the file's next bytes (the metadata is kept in
        :attr:`metadata`, not returned).

        Raises:
            DbnFileError: ``corrupt``: the bytes are no DBN (or no zstd) data.
        """
        start = self._read
        self._read += len(chunk)
        if self._decoder is None:
            self._head += chunk
            if len(self._head) < len(ZSTD_MAGIC):
                return []  # the kind of file is not known yet
            chunk, start = bytes(self._head), 0
            self._decoder = self._open(zstd=chunk.startswith(ZSTD_MAGIC))
        try:
            if self._frames is not None:
                self._frames.feed(chunk)
            decoded = self._decoder.write_and_decode(chunk)
        except (dbn.DBNError, ValueError) as exc:
            detail = (
                f"corrupt data in bytes {start}-{self._read} after {self.records} records: {exc}"
            )
            raise DbnFileError(self._feed, "corrupt", self._path, start, detail) from exc
        if decoded and isinstance(decoded[0], dbn.Metadata):
            self.metadata = decoded[0]
            decoded = decoded[1:]
        self.records += len(decoded)
        return decoded  # type: ignore[return-value]  # the metadata comes first, and only once

    def _open(self, zstd: bool) -> dbn.DBNDecoder:
        self._frames = ZstdFrames() if zstd else None
        # from_str: the stubs type the members as str
        compression = dbn.Compression.from_str("zstd" if zstd else "none")
        return dbn.DBNDecoder(compression=compression)

    def end(self) -> None:
        """Check that the file ended cleanly (call after its last chunk).

        Raises:
            DbnFileError: ``truncated``: no metadata, a partial record, or a zstd frame cut
                short.
        """
        pending = len(self._decoder.buffer()) if self._decoder is not None else 0
        if self._frames is not None and not self._frames.complete:
            start = self._frames.frame_start
            detail = f"ends inside the zstd frame that starts at byte {start} ({self._read} read)"
            raise DbnFileError(self._feed, "truncated", self._path, start, detail)
        if self.metadata is None:
            detail = f"no complete DBN metadata header in {self._read} bytes"
            raise DbnFileError(self._feed, "truncated", self._path, 0, detail)
        if pending:
            where = "of the decompressed stream" if self.compressed else "read"
            offset = self._read - pending if not self.compressed else self._read
            detail = (
                f"the last record is incomplete: {pending} bytes {where} after "
                f"{self.records} whole records"
            )
            raise DbnFileError(self._feed, "truncated", self._path, offset, detail)
