"""Tests for engine.runtime.journal: the fsynced fill journal (what it keeps across a crash)."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from engine.events import Fill
from engine.risk.settlement import Twap, TwapStatus
from engine.runtime.journal import FillJournal, Settlement, positions_digest, prefix_sha256


def fill(qty: float, fill_id: str | None = None) -> Fill:
    return Fill(
        book="main",
        instrument="BTC-PERPETUAL",
        quantity=qty,
        price=60_000.0,
        fill_id=fill_id,
        ts_event=1,
        ts_recv=2,
    )


def read(path: Path, positions: str) -> list[Fill | Settlement]:
    """The fills a daemon starting now would apply again."""
    j = FillJournal(path, positions_digest(positions))
    try:
        return j.open()
    finally:
        j.close()


def test_fills_come_back_in_order_after_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest("book,instrument,quantity\n"))
    assert j.open() == []
    for q in (1.0, -2.0, 3.5):
        j.append(fill(q, f"id{q}"))
    j.close()
    again = FillJournal(path, positions_digest("book,instrument,quantity\n"))
    assert again.open() == [fill(1.0, "id1.0"), fill(-2.0, "id-2.0"), fill(3.5, "id3.5")]
    again.append(fill(4.0))
    again.close()
    assert len(read(path, "book,instrument,quantity\n")) == 4


def test_settlements_come_back_among_the_fills_and_version_1_is_read(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    done = Settlement(
        index="btc_usd",
        expiry_ns=10**18,
        ts_ns=10**18 + 10**9,
        twap=Twap(
            price=71_000.0,
            n_samples=180,
            covered_ns=1_790 * 10**9,
            longest_gap_ns=10 * 10**9,
            status=TwapStatus.OK,
            start_ns=10**18 - 1_800 * 10**9,
            end_ns=10**18,
        ),
    )
    j.append(fill(1.0, "a"))
    j.append_settlement(done)
    j.append(fill(2.0, "b"))
    j.close()
    assert read(path, "") == [fill(1.0, "a"), done, fill(2.0, "b")]
    # a journal written by version 1 (fills only, header v 1) is read as before
    lines = path.read_bytes().split(b"\n")
    old = [lines[0].replace(b'"v":2', b'"v":1'), lines[1], lines[3], b""]
    assert b'"v":1' in old[0]
    path.write_bytes(b"\n".join(old))
    assert read(path, "") == [fill(1.0, "a"), fill(2.0, "b")]


def test_a_line_cut_short_by_a_crash_is_dropped_and_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    j.append(fill(1.0))
    j.close()
    with path.open("ab") as f:
        f.write(b'{"book":"main","instrument":"BTC-PERP')  # the write the crash cut
    j = FillJournal(path, positions_digest(""))
    assert j.open() == [fill(1.0)]
    j.append(fill(2.0))  # lands on a line of its own
    j.close()
    assert read(path, "") == [fill(1.0), fill(2.0)]


def test_a_journal_of_other_positions_is_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest("yesterday"))
    j.open()
    j.append(fill(1.0))
    j.close()
    today = FillJournal(path, positions_digest("today"))
    assert today.open() == []  # a new day's book starts from its own positions
    today.close()
    (old,) = tmp_path.glob("fills.jsonl.*.old")
    assert read(old, "yesterday") == [fill(1.0)]


def test_a_corrupt_line_inside_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    j.close()
    with path.open("ab") as f:
        f.write(b"not json\n")
    with pytest.raises(ValueError, match="line 2: not a fill"):
        read(path, "")


def test_a_journal_with_a_sim_feed_stops_start_up(tmp_path: Path) -> None:
    from engine.errors import ConfigError
    from engine.runtime.app import build
    from engine.runtime.config import load_config

    path = tmp_path / "riskd.toml"
    path.write_text('[portfolio]\njournal = "fills.jsonl"\n[[feeds]]\nkind = "sim"\nname = "sim"\n')
    with pytest.raises(ConfigError, match="replay or sim feed"):
        build(load_config(path), path)


@pytest.mark.parametrize(
    ("bad", "line"),
    [(b"", 4), (b"   ", 4), (b'{"book":"main"}', 4), (b'{"settlement":{}}', 4)],
)
def test_a_blank_or_bad_line_among_many_fills_is_named(
    tmp_path: Path, bad: bytes, line: int
) -> None:
    """Runs of fills are decoded in one call: a blank line (which that call would skip) or a
    bad one still stops the replay, named by its line."""
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    j.append(fill(1.0, "a"))
    j.append(fill(2.0, "b"))
    j.close()
    with path.open("ab") as f:
        f.write(bad + b"\n" + msgspec.json.encode(fill(3.0, "c")) + b"\n")
    with pytest.raises(ValueError, match=f"line {line}: not a fill"):
        read(path, "")


def test_many_fills_and_settlements_come_back_in_order(tmp_path: Path) -> None:
    """Fills between settlements, settlements first and last and side by side: every entry,
    in its order."""
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    twap = Twap(
        price=1.0, n_samples=1, covered_ns=1, longest_gap_ns=0, status=TwapStatus.OK,
        start_ns=0, end_ns=1,
    )  # fmt: skip
    expected: list[Fill | Settlement] = []
    for k in range(40):
        if k % 7 in (0, 1) or k == 39:
            s = Settlement(index="btc_usd", expiry_ns=k, ts_ns=k, twap=twap)
            j.append_settlement(s)
            expected.append(s)
        else:
            j.append(fill(float(k), str(k)))
            expected.append(fill(float(k), str(k)))
    j.close()
    assert read(path, "") == expected


def test_open_from_an_offset_returns_the_tail_only_when_the_prefix_matches(tmp_path: Path) -> None:
    """A checkpoint's offset and the SHA-256 of the journal up to it: the entries after it;
    another prefix (or an offset inside a line) gives every entry, and ``resumed_at`` 0."""
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    for k in range(5):
        j.append(fill(float(k + 1), f"id{k}"))
    offset = j.size
    for k in range(5, 8):
        j.append(fill(float(k + 1), f"id{k}"))
    j.close()
    assert offset == sum(len(line) + 1 for line in path.read_bytes().split(b"\n")[:6])
    digest = prefix_sha256(path, offset)
    again = FillJournal(path, positions_digest(""))
    assert again.open(offset, digest) == [fill(float(k + 1), f"id{k}") for k in range(5, 8)]
    assert again.resumed_at == offset
    assert again.size == path.stat().st_size
    again.close()
    for start, sha in ((offset, "0" * 64), (offset - 3, prefix_sha256(path, offset - 3))):
        other = FillJournal(path, positions_digest(""))
        assert len(other.open(start, sha)) == 8
        assert other.resumed_at == 0
        other.close()


def test_a_bad_line_in_the_tail_is_named_by_its_line_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "fills.jsonl"
    j = FillJournal(path, positions_digest(""))
    j.open()
    for k in range(4):
        j.append(fill(float(k + 1)))
    offset = j.size
    j.close()
    with path.open("ab") as f:
        f.write(b"not json\n")
    again = FillJournal(path, positions_digest(""))
    with pytest.raises(ValueError, match="line 6: not a fill"):
        again.open(offset, prefix_sha256(path, offset))
    again.close()
