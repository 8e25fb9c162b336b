"""Tests for engine.runtime.positions and Portfolio.add_positions: the positions file read as
columns and loaded in bulk gives exactly the state of the row-by-row load, and a bad file
stops with the row reader's error, naming its line and column."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.events import Quote
from engine.instruments import Instrument, InstrumentRegistry
from engine.runtime.positions import (
    PositionColumns,
    _plain,
    load_book,
    load_positions,
    read_positions,
)
from engine.state import Portfolio, PositionBulk, PositionsError
from tests.fuzz.checks import outcome

NAMES = (
    "BTC-27DEC24-60000-C",
    "BTC-27DEC24-60000-P",
    "BTC-27DEC24-70000-C",
    "BTC-28MAR25-60000-C",
    "ETH-27DEC24-3000-P",
    "SOL_USDC-27DEC24-150-C",
    "BTC-27DEC24",  # an inverse future: its cost is quantity / price
    "BTC-PERPETUAL",
    "BTC_USDC",  # spot
)
BOOKS = ("desk", "b", "hedge book")
NOW_NS = 1_730_000_000 * 10**9


def row_by_row(path: Path, portfolio: Portfolio, rows: int | None = None) -> None:
    """The daemon's load before the bulk path: each row through add_position."""
    for pos in load_positions(path)[:rows]:
        portfolio.add_position(pos.book, pos.instrument, pos.quantity, pos.avg_price)


def state(p: Portfolio, dirty: bool) -> dict[str, Any]:
    """Everything the portfolio holds: every column of every table, the keys, the lookups."""
    market, lots, groups = p._market, p._lots, p._groups
    out: dict[str, Any] = {}
    for name, table in (
        ("market", market.cols),
        ("lots", lots.cols),
        ("groups", groups.groups),
        ("pairs", groups.pairs),
        ("books", groups.books),
        ("spots", market.spots.cols),
        ("fwds", market.fwds.cols),
    ):
        out[f"{name}.n"] = table.n
        for col, values in table.arrays.items():
            out[f"{name}.{col}"] = values[: table.n].tolist()
    out["defs"] = [i.name for i in market.defs]
    out["spots"] = (market.spots.ids, market.spots.dependents)
    out["fwds"] = (market.fwds.ids, market.fwds.dependents)
    out["keys"] = groups.keys
    out["pair_keys"] = groups.pair_keys
    out["pair_rows"] = groups.pair_rows
    out["book_rows"] = groups.book_rows
    out["pair_groups"] = {k: list(v) for k, v in groups._pair_groups.items()}
    out["book_names"] = lots.book_names
    out["positions"] = p.positions()
    out["lot_of"] = {(b, i): lots.row(b, market.row(known(p, i))) for b, i, _ in p.positions()}
    if dirty:  # before the first cycle, the bulk marks none (the cycle reprices all)
        out["dirty"] = (sorted(market.dirty), sorted(lots.dirty))
    return out


def known(p: Portfolio, name: str) -> Instrument:
    inst = p.registry.get(name)
    assert inst is not None, name
    return inst


def assert_same(a: Portfolio, b: Portfolio, dirty: bool = False) -> None:
    sa, sb = state(a, dirty), state(b, dirty)
    for key in sa:
        # NaN != NaN: compare the columns' text (float repr is exact)
        assert repr(sa[key]) == repr(sb[key]), key


def cell(x: float) -> str:
    return repr(x) if not x.is_integer() or abs(x) > 1e15 else str(int(x))


rows_st = st.lists(
    st.tuples(
        st.sampled_from(BOOKS),
        st.sampled_from(NAMES),
        st.one_of(
            st.integers(-50, 50).map(float),
            st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
        ),
        st.one_of(st.none(), st.floats(1e-4, 1e5, allow_nan=False)),
    ),
    max_size=40,
)


def write(folder: Path, rows: list[tuple[str, str, float, float | None]], prices: bool) -> Path:
    path = folder / "positions.csv"
    lines = ["book,instrument,quantity" + (",avg_price" if prices else "")]
    for book, name, qty, price in rows:
        text = f"{book},{name},{cell(qty)}"
        if prices:
            text += "," + ("" if price is None else repr(price))
        lines.append(text)
    path.write_text("\n".join(lines) + "\n")
    return path


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=rows_st, prices=st.booleans(), split=st.integers(0, 40))
def test_bulk_load_is_the_row_by_row_state(
    tmp_path: Path, rows: list[tuple[str, str, float, float | None]], prices: bool, split: int
) -> None:
    """On random files (merges of a book's rows in one instrument, zero quantities, several
    books, rows with and without a price), the bulk load makes exactly the state the row by
    row load makes: every column, the sums after a full reprice, every key; also when rows
    were added before (row by row) and the bulk adds to their lots."""
    path = write(tmp_path, rows, prices)
    assert same_columns(read_positions(path), PositionColumns.from_rows(load_positions(path)))
    by_rows = Portfolio(InstrumentRegistry())
    row_by_row(path, by_rows)
    bulk = Portfolio(InstrumentRegistry())
    load_book(path, bulk, bulk.registry)
    assert_same(by_rows, bulk)
    by_rows.cycle(NOW_NS, full=True)
    bulk.cycle(NOW_NS, full=True)
    np.testing.assert_array_equal(by_rows.group_values(), bulk.group_values())

    # some rows first, then the rest in one bulk (after a cycle: the bulk marks them dirty)
    before, after = Portfolio(InstrumentRegistry()), Portfolio(InstrumentRegistry())
    row_by_row(path, before, split)
    row_by_row(path, after, split)
    before.cycle(NOW_NS, full=True)
    after.cycle(NOW_NS, full=True)
    row_by_row_rest(path, before, split)
    columns = read_positions(path)
    tail = slice(split, None)
    after.add_positions(
        PositionBulk(
            columns.books, columns.book[tail], [known(after, n) for n in columns.instruments],
            columns.instrument[tail], columns.quantity[tail], columns.avg_price[tail],
        )
    )  # fmt: skip
    assert_same(before, after, dirty=True)


def same_columns(a: PositionColumns, b: PositionColumns) -> bool:
    """Equal columns (NaN equal to NaN)."""
    return (
        a.books == b.books
        and a.instruments == b.instruments
        and all(
            np.array_equal(getattr(a, f), getattr(b, f), equal_nan=f == "avg_price")
            and getattr(a, f).dtype == getattr(b, f).dtype
            for f in ("book", "instrument", "quantity", "avg_price", "line")
        )
    )


def row_by_row_rest(path: Path, portfolio: Portfolio, start: int) -> None:
    for pos in load_positions(path)[start:]:
        portfolio.add_position(pos.book, pos.instrument, pos.quantity, pos.avg_price)


def test_bulk_figures_after_quotes_equal_row_by_row(tmp_path: Path) -> None:
    """Priced (quotes for every option held), the two loads publish the same sums."""
    rows = [
        ("desk", "BTC-27DEC24-60000-C", 2.0, 0.05),
        ("b", "BTC-27DEC24-60000-C", -1.0, None),
        ("desk", "BTC-27DEC24-60000-C", 3.0, 0.06),
        ("desk", "ETH-27DEC24-3000-P", 5.0, 0.02),
        ("desk", "BTC-27DEC24", 1000.0, 95_000.0),
    ]
    path = write(tmp_path, rows, prices=True)
    loaded = []
    for bulk in (False, True):
        p = Portfolio(InstrumentRegistry())
        if bulk:
            load_book(path, p, p.registry)
        else:
            row_by_row(path, p)
        for name in ("BTC-27DEC24-60000-C", "ETH-27DEC24-3000-P"):
            p.apply_quote(
                Quote(
                    instrument=name, ts_event=NOW_NS, ts_recv=NOW_NS, bid=0.04, ask=0.05,
                    mark=0.045, iv=0.6, underlying_price=90_000.0 if "BTC" in name else 3000.0,
                )
            )  # fmt: skip
        p.cycle(NOW_NS, full=True)
        loaded.append(p)
    np.testing.assert_array_equal(loaded[0].group_values(), loaded[1].group_values())
    assert loaded[0].positions() == loaded[1].positions()
    assert loaded[1].positions()[0] == ("desk", "BTC-27DEC24-60000-C", 5.0)
    assert np.any(loaded[1].group_values() != 0.0)


def test_strategy_rows_become_their_legs_in_place(tmp_path: Path) -> None:
    """A strategy's row adds its legs where it stands (so the lots open in the same order as
    row by row) and its holding."""
    path = tmp_path / "positions.csv"
    path.write_text(
        "book,instrument,quantity,avg_price\n"
        "desk,BTC-27DEC24-70000-C,1,0.01\n"
        "desk,vertical:BTC-27DEC24-60000-C/70000,2,0.03\n"
        "desk,BTC-27DEC24-60000-C,-1,0.05\n"
    )
    by_rows = Portfolio(InstrumentRegistry())
    from engine.risk.strategies import StrategyBook

    strategies = StrategyBook(by_rows.registry.get)
    for pos in load_positions(path):
        if ":" in pos.instrument:
            strategies.add_position(by_rows, pos.book, pos.instrument, pos.quantity, pos.avg_price)
        else:
            by_rows.add_position(pos.book, pos.instrument, pos.quantity, pos.avg_price)
    bulk = Portfolio(InstrumentRegistry())
    held = load_book(path, bulk, bulk.registry)
    assert_same(by_rows, bulk)
    assert list(held.holdings) == list(strategies.holdings)
    assert bulk.positions() == [
        ("desk", "BTC-27DEC24-70000-C", -1.0),
        ("desk", "BTC-27DEC24-60000-C", 1.0),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file: needs the header book,instrument,quantity"),
        ("book,instrument\n", "line 1: header must be book,instrument,quantity[,avg_price]"),
        ("book,instrument,quantity\ndesk,BTC-PERPETUAL\n", "line 2: 2 columns, expected 3"),
        ("book,instrument,quantity\n\ndesk,BTC-PERPETUAL,x\n", "line 3, column quantity: not"),
        ("book,instrument,quantity\n,BTC-PERPETUAL,1\n", "line 2, column book: empty"),
        ("book,instrument,quantity\nd,,1\n", "line 2, column instrument: empty"),
        ("book,instrument,quantity\nd,BTC-PERPETUAL,inf\n", "line 2, column quantity: not fin"),
        ("book,instrument,quantity,avg_price\nd,BTC-PERPETUAL,1,0\n", "avg_price: must be > 0"),
        ("book,instrument,quantity,avg_price\nd,BTC-PERPETUAL,1,nan\n", "avg_price: not finite"),
        (
            "book,instrument,quantity\nd,BTC-PERPETUAL,1\nd,NOPE,1\nd,btc_usd,1\n",
            "line 3: unknown instrument 'NOPE'",
        ),
        ("book,instrument,quantity\nd,BTC-PERPETUAL,1\nd,btc_usd,1\n", "line 3: an index (btc"),
        ("book,instrument,quantity\nd,BTC-PERPETUAL,1\na:b,BTC-PERPETUAL,1\n", "line 3: a book"),
        ("book,instrument,quantity\nd,vertical:BTC-27DEC24-60000-C,1\n", "line 2: "),
    ],
)
def test_a_bad_file_names_its_line_and_column(tmp_path: Path, content: str, message: str) -> None:
    """Every error of the row-by-row load, with its message: a bad file stops start-up."""
    path = tmp_path / "positions.csv"
    path.write_text(content)
    p = Portfolio(InstrumentRegistry())
    with pytest.raises(ConfigError) as caught:
        load_book(path, p, p.registry)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


@pytest.mark.parametrize(
    "content",
    [
        "book,instrument,quantity\n# a comment\ndesk,BTC-PERPETUAL,1\n",
        'book,instrument,quantity\n"desk",BTC-PERPETUAL,1\n',
        "book, instrument, quantity\r\n desk , BTC-PERPETUAL , 1_000 \r\n",
        "book,instrument,quantity\nbüro,BTC-PERPETUAL,1\n",
        "\n\nbook,instrument,quantity\n\n\ndesk,BTC-PERPETUAL,+1e3\n\n",
    ],
)
def test_any_file_the_row_reader_takes_reads_the_same(tmp_path: Path, content: str) -> None:
    """Comments, quoting, padding, CRLF, UTF-8 and blank lines: the same rows either way."""
    path = tmp_path / "positions.csv"
    path.write_bytes(content.encode())
    columns = read_positions(path)
    assert same_columns(columns, PositionColumns.from_rows(load_positions(path)))
    assert columns.quantity.size == 1


def test_a_plain_file_is_read_by_the_column_reader(tmp_path: Path) -> None:
    """A plain file (blank lines, a price left empty, names repeated out of order, thousands
    of rows) never goes to the row reader: the column reader takes it, with the row reader's
    columns and line numbers."""
    rng = np.random.default_rng(7)
    rows = "".join(
        f"b{rng.integers(40)},{NAMES[rng.integers(len(NAMES))]},{rng.integers(-9, 10)},"
        f"{'' if rng.random() < 0.3 else rng.uniform(0.01, 2)}\n"
        + ("\n" if rng.random() < 0.1 else "")
        for _ in range(5000)
    )
    path = tmp_path / "positions.csv"
    path.write_text("book,instrument,quantity,avg_price\n\n" + rows)
    fast = _plain(path.read_bytes())
    assert fast is not None
    assert same_columns(fast, PositionColumns.from_rows(load_positions(path)))


@settings(max_examples=200)
@given(
    cells=st.lists(
        st.one_of(
            st.floats(allow_nan=False, allow_infinity=False).map(repr),
            st.integers(-(10**20), 10**20).map(str),
            st.from_regex(r"\A[+-]?[0-9_]{0,4}\.?[0-9_]{0,4}([eE][+-]?[0-9]{1,3})?\Z"),
            st.sampled_from(["1_0", "+.5", "-0", "1e999", "nan", "0x10", "1d", "\u0661"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_numbers_read_as_python_reads_them(cells: list[str]) -> None:
    """The column reader's numbers are Python's float() of each cell, or the file goes to the
    row reader (which then takes it or names the bad cell)."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "positions.csv"
        path.write_text("book,instrument,quantity\n" + "".join(f"d,X,{c}\n" for c in cells))
        expected = outcome(lambda: PositionColumns.from_rows(load_positions(path)))
        got = outcome(lambda: read_positions(path))
        fast = _plain(path.read_bytes())  # the column reader's own answer, when it has one
        if fast is not None:
            assert isinstance(expected, PositionColumns)
            assert same_columns(fast, expected)
        if not isinstance(expected, PositionColumns):
            assert not isinstance(got, PositionColumns)
            assert str(got) == str(expected)
            return
        assert isinstance(got, PositionColumns)
        assert same_columns(got, expected)
        assert [math.copysign(1.0, q) for q in got.quantity.tolist()] == [
            math.copysign(1.0, q) for q in expected.quantity.tolist()
        ]


def test_add_positions_refuses_a_bad_row_and_adds_nothing() -> None:
    """The bulk refuses what add_position refuses, naming the first such row; nothing added."""
    p = Portfolio(InstrumentRegistry())
    insts = [known(p, "BTC-PERPETUAL"), known(p, "btc_usd")]
    book, inst = np.array([0, 0, 0]), np.array([0, 0, 1])

    def bulk(quantity: npt.NDArray[np.float64], price: npt.NDArray[np.float64]) -> PositionBulk:
        return PositionBulk(["d"], book, insts, inst, quantity, price)

    with pytest.raises(PositionsError, match="quantity must be finite") as caught:
        p.add_positions(bulk(np.array([1.0, math.inf, 1.0]), np.full(3, math.nan)))
    assert caught.value.row == 1
    with pytest.raises(PositionsError, match=r"an index \(btc_usd\)") as caught:
        p.add_positions(bulk(np.ones(3), np.full(3, math.nan)))
    assert caught.value.row == 2
    with pytest.raises(PositionsError, match="price must be finite and > 0"):
        p.add_positions(bulk(np.ones(3), np.array([1.0, -1.0, 1.0])))
    assert p.lot_count == 0
    assert p.instruments() == []
