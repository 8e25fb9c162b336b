"""Tests for engine.runtime.checkpoint and engine.runtime.resume: a checkpoint of the book and
the journal's tail rebuild exactly the book a full replay of the journal rebuilds, which is the
book the daemon had; an unusable checkpoint is set aside and the journal replayed in full.

Real files and the daemon's own build (``engine.runtime.app.build``); fills go through the
inbox (journaled, then drained by the engine's cycle) as a feed's do."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import ConfigError
from engine.risk.settlement import Twap, TwapStatus
from engine.runtime.app import build
from engine.runtime.checkpoint import MAGIC, VERSION, Header, write_checkpoint
from engine.runtime.config import load_config
from engine.runtime.daemon import Daemon
from engine.runtime.journal import Settlement, prefix_sha256
from engine.runtime.resume import capture
from tests.factories import BTC_CALL, BTC_FUTURE, BTC_INDEX, BTC_PERPETUAL, T0_NS, fill, quote, tick

FUTURE_EXPIRY_NS = 1_735_286_400_000_000_000  # BTC-27DEC24: 2024-12-27 08:00 UTC
ETH_CALL = "ETH-27DEC24-3000-C"
STRADDLE = "straddle:BTC-27DEC24-60000-C/P"
POSITIONS = (
    "book,instrument,quantity,avg_price\n"
    f"main,{BTC_CALL},10,0.05\n"
    f"main,{BTC_PERPETUAL},-100000,60000\n"
    f"hedge,{BTC_FUTURE},5000,61000\n"
    f"main,{STRADDLE},2,0.1\n"
    f"alt,{ETH_CALL},-3,0.07\n"
)


def write_config(folder: Path, positions: str = POSITIONS, extra: str = "") -> Path:
    (folder / "positions.csv").write_text(positions)
    path = folder / "riskd.toml"
    path.write_text(
        '[redis]\nurl = "redis://127.0.0.1:9/0"\n[risk]\nenabled = false\n'
        '[portfolio]\npositions = "positions.csv"\njournal = "fills.jsonl"\n'
        f'[checkpoint]\npath = "book.ckpt"\ninterval_s = 3600\n{extra}'
    )
    return path


_STARTED: list[Daemon] = []


@pytest.fixture(autouse=True)
def _close_journals() -> Iterator[None]:
    yield
    while _STARTED:
        journal = _STARTED.pop().inbox.journal
        if journal is not None:
            journal.close()


def start(path: Path) -> Daemon:
    daemon = build(load_config(path), path)
    _STARTED.append(daemon)
    return daemon


def twap(price: float) -> Twap:
    return Twap(
        price=price, n_samples=3, covered_ns=1, longest_gap_ns=0, status=TwapStatus.OK,
        start_ns=FUTURE_EXPIRY_NS - 1, end_ns=FUTURE_EXPIRY_NS,
    )  # fmt: skip


async def trade(daemon: Daemon, first: int, n: int) -> None:
    """``n`` fills numbered from ``first`` through the inbox (journaled), then a cycle: new
    lots, existing ones, a strategy, a fill without a price, a redelivery, one refused (bad
    book) and one of an instrument unknown here."""
    rng = np.random.default_rng(first)
    names = [BTC_CALL, BTC_PERPETUAL, BTC_FUTURE, ETH_CALL, "BTC-27DEC24-70000-P"]
    for k in range(first, first + n):
        name = names[int(rng.integers(len(names)))]
        price = None if k % 11 == 5 else float(rng.uniform(0.01, 0.2))
        if name in (BTC_PERPETUAL, BTC_FUTURE):
            price = None if price is None else 60_000 + 1000 * price
        qty = float(rng.integers(-50, 51)) / 4
        book = ["main", "hedge", f"b{k % 5}"][k % 3]
        await daemon.inbox.put_fill(fill(name, qty, price, book=book, fill_id=f"f{k}"))
    await daemon.inbox.put_fill(fill(STRADDLE, 1.5, 0.12, fill_id=f"s{first}"))
    await daemon.inbox.put_fill(fill(BTC_CALL, 3.0, 0.06, fill_id=f"f{first}"))  # redelivered
    await daemon.inbox.put_fill(fill(BTC_CALL, 1.0, 0.06, book="bad:book", fill_id=f"r{first}"))
    await daemon.inbox.put_fill(fill("NOPE-1", 1.0, 1.0, fill_id=f"u{first}"))
    daemon.engine.cycle()


def settle_future(daemon: Daemon) -> None:
    """Settle the BTC future's expiry as the monitor does: journaled, then settled."""
    s = Settlement(index=BTC_INDEX, expiry_ns=FUTURE_EXPIRY_NS, ts_ns=FUTURE_EXPIRY_NS,
                   twap=twap(65_000.0))  # fmt: skip
    assert daemon.inbox.journal is not None
    daemon.inbox.journal.append_settlement(s)
    p = daemon.settler.replay(daemon.portfolio, s.index, s.expiry_ns, s.twap, s.ts_ns)
    assert p.positions


def state(daemon: Daemon) -> dict[str, Any]:
    """Everything a restart must give back, and the figures after a full cycle on the same
    market data."""
    p = daemon.portfolio
    lots = p.lot_state()
    for event in (tick(BTC_INDEX, 61_000.0), tick(BTC_PERPETUAL, 61_050.0),
                  tick(BTC_FUTURE, 61_200.0), tick("eth_usd", 3_100.0)):  # fmt: skip
        p.apply_tick(event)
    p.apply_quotes([quote(BTC_CALL, mark=0.07, iv=0.55), quote(ETH_CALL, mark=0.09, iv=0.6)])
    p.cycle(T0_NS, full=True)
    return {
        "books": list(lots.books),
        "lot_book": lots.book.tolist(),
        "lot_instrument": [lots.instruments[i] for i in lots.instrument.tolist()],
        "quantity": lots.quantity.tobytes(),  # to the bit
        "cost": lots.cost.tobytes(),
        "has_cost": lots.has_cost.tolist(),
        "groups": p.group_keys(),
        "values": p.group_values().tobytes(),
        "fill_ids": p.fill_ids(),
        "duplicates": p.duplicate_fills,
        "unresolved": list(p.unresolved_fills),
        "rejected": list(daemon.engine.rejected_fills),
        "holdings": [
            (h.book, h.text, h.quantity, h.cost, h.has_cost)
            for h in daemon.engine.strategies.holdings.values()
        ],
        "realised": dict(daemon.settler.realised_pnl_usd),
        "settled": sorted(daemon.settler.settled),
    }


async def live_book(folder: Path) -> tuple[Daemon, int]:
    """A daemon that traded, settled an expiry and traded again, then checkpointed, then
    traded more (the journal's tail); the checkpoint's offset."""
    daemon = start(write_config(folder))
    await trade(daemon, 0, 40)
    settle_future(daemon)
    await trade(daemon, 100, 30)
    assert daemon.checkpointer is not None
    header = await daemon.checkpointer.checkpoint()
    await trade(daemon, 200, 25)
    return daemon, header.journal_offset


async def test_a_checkpoint_round_trip_is_the_book_exactly(tmp_path: Path) -> None:
    daemon = start(write_config(tmp_path))
    await trade(daemon, 0, 60)
    settle_future(daemon)
    await trade(daemon, 100, 20)
    assert daemon.checkpointer is not None
    header = await daemon.checkpointer.checkpoint()
    assert (tmp_path / "book.ckpt").read_bytes().startswith(MAGIC)
    before = state(daemon)
    assert before["realised"]
    assert before["unresolved"]
    assert before["rejected"]
    assert before["duplicates"] == 2  # a redelivered fill and a redelivered strategy's legs
    again = start(tmp_path / "riskd.toml")
    assert again.inbox.journal is not None
    assert again.inbox.journal.resumed_at == header.journal_offset > 0
    assert state(again) == before


async def test_checkpoint_and_tail_equal_full_replay_equal_the_book(tmp_path: Path) -> None:
    daemon, offset = await live_book(tmp_path)
    before = state(daemon)
    resumed = start(tmp_path / "riskd.toml")
    assert resumed.inbox.journal is not None
    assert resumed.inbox.journal.resumed_at == offset
    assert state(resumed) == before
    (tmp_path / "book.ckpt").rename(tmp_path / "elsewhere.ckpt")
    replayed = start(tmp_path / "riskd.toml")
    assert replayed.inbox.journal is not None
    assert replayed.inbox.journal.resumed_at == 0
    assert state(replayed) == before


def flip_a_byte(path: Path, _: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def cut_short(path: Path, _: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])


def foreign_book(path: Path, folder: Path) -> None:
    """A checkpoint of another book (other positions) in its place."""
    other = folder / "other"
    other.mkdir()
    daemon = start(write_config(other, POSITIONS.replace("-100000", "-90000")))
    cp = daemon.checkpointer
    assert cp is not None
    offset = cp.journal.size
    header = Header(
        v=VERSION, identity=cp.identity, journal_offset=offset,
        journal_sha256=prefix_sha256(cp.journal.path, offset), created_ns=0,
        lots=daemon.portfolio.lot_count,
    )  # fmt: skip
    write_checkpoint(path, header, capture(daemon.engine, daemon.settler))


def set_aside_files(folder: Path) -> list[int]:
    """The sizes of the checkpoints set aside in ``folder``; raises if one is still in place."""
    if (folder / "book.ckpt").exists():
        raise AssertionError("the checkpoint was not set aside")
    return [p.stat().st_size for p in folder.glob("book.ckpt.*.bad")]


def another_journal(_: Path, folder: Path) -> None:
    """The journal is not the one the checkpoint was taken on (a byte of its prefix)."""
    journal = folder / "fills.jsonl"
    data = journal.read_bytes()
    k = data.index(b'"quantity":', data.index(b"\n") + 1) + len(b'"quantity":')
    journal.write_bytes(data[:k] + (b"7" if data[k : k + 1] != b"7" else b"8") + data[k + 1 :])


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (flip_a_byte, "checksum mismatch"),
        (cut_short, "checksum mismatch"),
        (foreign_book, "foreign"),
        (another_journal, "not this journal's"),
    ],
)
async def test_an_unusable_checkpoint_is_set_aside_and_the_journal_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, spoil: Any, reason: str
) -> None:
    daemon, _ = await live_book(tmp_path)
    before = state(daemon)
    path = tmp_path / "book.ckpt"
    spoil(path, tmp_path)
    with caplog.at_level(logging.WARNING, logger="engine.runtime.resume"):
        replay = start(tmp_path / "riskd.toml")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "engine.runtime.resume"]
    assert line.startswith("checkpoint set aside, replaying the journal in full: ")
    assert reason in line
    assert replay.inbox.journal is not None
    assert replay.inbox.journal.resumed_at == 0
    (kept,) = set_aside_files(tmp_path)  # renamed aside, not deleted
    assert kept > 0
    if spoil is another_journal:  # another journal: the book is its full replay's
        before = state(start(tmp_path / "riskd.toml"))
    assert state(replay) == before


async def test_a_fill_arriving_during_the_checkpoint_is_replayed_from_the_tail(
    tmp_path: Path,
) -> None:
    daemon = start(write_config(tmp_path))
    await trade(daemon, 0, 30)
    assert daemon.checkpointer is not None
    assert daemon.inbox.journal is not None
    writing = asyncio.ensure_future(daemon.checkpointer.checkpoint())
    await asyncio.sleep(0)  # it has taken the offset and copies the book in a worker thread
    late = fill(BTC_CALL, 7.0, 0.09, book="late", fill_id="late")
    await daemon.inbox.put_fill(late)  # journaled while the checkpoint is being written
    header = await writing
    assert header.journal_offset < daemon.inbox.journal.size
    daemon.engine.cycle()
    before = state(daemon)
    resumed = start(tmp_path / "riskd.toml")
    assert resumed.inbox.journal is not None
    assert resumed.inbox.journal.resumed_at == header.journal_offset
    after = state(resumed)
    assert "late" in after["books"]
    assert after == before


async def test_a_checkpoint_waits_for_fills_journaled_but_not_yet_applied(
    tmp_path: Path,
) -> None:
    """A fill journaled and still in the inbox when a checkpoint begins: the capture waits for
    the engine's next cycle, so the offset is after it and the state holds it."""
    daemon = start(write_config(tmp_path))
    await trade(daemon, 0, 10)
    assert daemon.checkpointer is not None
    assert daemon.inbox.journal is not None
    await daemon.inbox.put_fill(fill(BTC_CALL, 2.0, 0.09, book="queued", fill_id="queued"))
    writing = asyncio.ensure_future(daemon.checkpointer.checkpoint())
    await asyncio.sleep(0)
    assert not writing.done()
    async with daemon.engine.cycling:
        daemon.engine.cycle()
    header = await writing
    assert header.journal_offset == daemon.inbox.journal.size
    resumed = start(tmp_path / "riskd.toml")
    assert resumed.inbox.journal is not None
    assert resumed.inbox.journal.resumed_at == header.journal_offset
    assert "queued" in state(resumed)["books"]


@pytest.mark.parametrize(
    ("table", "journal", "detail"),
    [
        (
            'path = "book.ckpt"',
            "",
            "needs [portfolio] journal (it replays the journal's tail) - at `$.checkpoint.path`",
        ),
        (
            'path = "fills.jsonl"',
            "fills.jsonl",
            "is also [portfolio] journal - at `$.checkpoint.path`",
        ),
        (
            'path = "positions.csv"',
            "fills.jsonl",
            "is also [portfolio] positions - at `$.checkpoint.path`",
        ),
        ('path = "no/such/book.ckpt"', "fills.jsonl", "- at `$.checkpoint.path`"),
        ('path = "book.ckpt"\ninterval_s = 0', "fills.jsonl", "- at `$.checkpoint.interval_s`"),
        ('path = "book.ckpt"\nevery_s = 1', "fills.jsonl", "- at `$.checkpoint`"),
    ],
)
def test_a_bad_checkpoint_table_names_its_key(
    tmp_path: Path, table: str, journal: str, detail: str
) -> None:
    (tmp_path / "positions.csv").write_text(POSITIONS)
    path = tmp_path / "riskd.toml"
    path.write_text(
        f'[portfolio]\npositions = "positions.csv"\njournal = "{journal}"\n[checkpoint]\n{table}\n'
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert str(error.value).endswith(detail)
