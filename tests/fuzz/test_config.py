"""Fuzzing the configuration loaders (engine.runtime.config): the TOML file and the positions
CSV.

Inputs: the daemon configs of ``config/`` and one that sets every section and feed kind, as
TOML data with keys deleted, values retyped or out of range (NaN, infinities, 2**70, empty,
non-ASCII, dates), unknown keys, values nested wrongly; written back as TOML, then maybe cut,
spliced, given invalid UTF-8 or a line twice. The positions files of ``config/`` get the CSV
treatment of :mod:`tests.fuzz.strategies`. ``load_config`` and ``load_positions`` must return
their result or raise :class:`~engine.errors.ConfigError` naming a key path (``$.feeds[0]...``),
a key, or a place in the file (line and column, byte position).
"""

from __future__ import annotations

import copy
import math
import re
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Final

import hypothesis
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from engine.errors import ConfigError, RiskEngineError
from engine.runtime.config import AppConfig, load_config, load_positions
from engine.runtime.positions import PositionColumns, read_positions
from tests.fuzz.checks import outcome
from tests.fuzz.strategies import csv_rows, damaged, fuzz_settings

CONFIG: Final = Path(__file__).parents[2] / "config"
FULL: Final[dict[str, Any]] = {
    "redis": {"url": "redis://127.0.0.1:6379/0", "prefix": "risk", "heartbeat_ttl_s": 5.0},
    "feeds": [
        {
            "kind": "deribit",
            "name": "deribit",
            "url": "wss://test.deribit.com/ws/api/v2",
            "instruments": ["BTC-PERPETUAL", "BTC-27DEC24-60000-C"],
            "indices": ["btc_usd"],
            "interval": "100ms",
            "heartbeat_s": 10,
            "backoff_initial_s": 0.5,
            "backoff_max_s": 30.0,
        },
        {"kind": "mqtt", "name": "mqtt", "host": "127.0.0.1", "port": 1883, "qos": 1},
        {"kind": "replay", "name": "replay", "path": "chain.csv", "format": "tardis", "speed": 0},
    ],
    "portfolio": {"positions": "", "underlyings": {"SPX": {"rate": 0.04, "dividend_yield": 0.01}}},
    "engine": {"cycle_interval_ms": 50, "min_cycle_interval_ms": 5.0, "fill_queue": 1000},
    "risk": {
        "method": "monte_carlo",
        "confidence": 0.99,
        "record_at_utc": "08:00",
        "stress_spot": [-0.1, 0.0, 0.1],
        "stress_vol": [0.0, 0.25],
        "margin_pm": {"BTC": {"price_range": 0.2, "buckets": 4}},
        "margin_standard": {"ETH": {"option_im": 0.1}},
        "margin_span": {"price_scan": 0.1},
        "hedge_future": {"BTC": "BTC-PERPETUAL"},
        "hedge_options": {"BTC": ["BTC-27DEC24-60000-C"]},
        "equity_usd": {"main": 1_000_000.0},
    },
    "http": {"address": "127.0.0.1:0"},
    "log": {"level": "INFO"},
    "view": {"enabled": "off", "refresh_s": 0.5},
    "instruments": [
        {
            "name": "SPX-21MAR25-5000-C",
            "kind": "option",
            "underlying": "SPX",
            "index": "SPX",
            "expiry": datetime(2025, 3, 21, 20, 0, tzinfo=UTC),
            "strike": 5000.0,
            "is_call": True,
            "multiplier": 100.0,
            "venue": "cboe",
        }
    ],
    "alerts": [
        {
            "name": "delta",
            "metric": "delta_adj",
            "scope": "underlying",
            "underlying": "BTC",
            "above": 25.0,
            "below": -25.0,
            "hysteresis": 2.0,
        }
    ],
}
BASES: Final = [
    *(tomllib.loads((CONFIG / name).read_text()) for name in ("demo.toml", "replay.toml")),
    tomllib.loads((CONFIG / "docker.toml").read_text()),
    FULL,
]
POSITION_ROWS: Final = [
    line
    for name in ("demo_positions.csv", "replay_positions.csv")
    for line in (CONFIG / name).read_text().splitlines()
    if line and not line.startswith(("#", "book,"))
]

MAX_NESTING: Final = 40
"""How deep the generated values nest. Deeper (~500) makes tomllib raise RecursionError,
which load_config turns into a ConfigError: the regression example below covers it."""

NAMED: Final = re.compile(
    r"`\$[^`]*`"  # a key path: `$.feeds[0].port`
    r"|unknown field `[^`]*`"  # msgspec names an unknown top-level key without a path
    r"|\(at line \d+, column \d+\)|\(at end of document\)"  # tomllib
    r"|in position \d+"  # not UTF-8
    r"|line \d+"  # the positions file
    r"|empty file"
    r"|nested too deeply"  # tomllib cannot say where: RecursionError
)
"""How a ConfigError's detail says where the problem is."""


# ---------------------------------------------------------------- TOML, written by hand


def _toml_str(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """``value`` as a TOML value; tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return _toml_str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = ", ".join(f"{_toml_str(k)} = {toml_value(v)}" for k, v in value.items())
        return "{ " + pairs + " }"
    raise TypeError(f"no TOML for {value!r}")


def toml_document(data: dict[str, Any]) -> str:
    return "".join(f"{_toml_str(k)} = {toml_value(v)}\n" for k, v in data.items())


# ---------------------------------------------------------------- mutations of TOML data

_OFFSETS: Final = [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=23, minutes=59))]
_SCALARS: Final = st.one_of(
    st.sampled_from(
        (
            *(0, -1, 1, 2**63, -(2**63) - 1, 2**70, 0.0, -0.0, 1e308, -1e308, 5e-324),
            *(math.inf, -math.inf, math.nan, "", " ", "\u00e9", "\x00", "a/../b", "redis://"),
            *("sim", "deribit", "mqtt", "replay", "BTC-PERPETUAL", "delta", "book", True, False),
        )
    ),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.datetimes(timezones=st.sampled_from([None, *_OFFSETS])),
    st.dates(),
    st.times(),
)
_VALUES: Final = st.one_of(
    _SCALARS,
    _SCALARS,
    st.recursive(
        _SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
        max_leaves=5,
    ),
    st.integers(1, MAX_NESTING).map(lambda n: _nested(n)),
)


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def _slots(data: Any) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """Every (container, key or index) of the data: the places an edit can go."""
    out: list[tuple[dict[str, Any] | list[Any], Any]] = []
    stack = [data]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            out += [(current, k) for k in current]
            stack += current.values()
        elif isinstance(current, list):
            out += [(current, i) for i in range(len(current))]
            stack += current
    return out


@st.composite
def toml_data(draw: st.DrawFn, max_edits: int = 4) -> dict[str, Any]:
    """A base config's data after up to ``max_edits`` edits."""
    root: dict[str, Any] = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, max_edits))):
        container, key = draw(st.sampled_from([(root, None), *_slots(root)]))
        edit = draw(st.sampled_from(("delete", "replace", "replace", "wrap", "unknown")))
        if key is None or edit == "unknown":
            if isinstance(container, dict):
                container[draw(st.text(max_size=8))] = draw(_VALUES)
            else:
                container.insert(key or 0, draw(_VALUES))
        elif edit == "delete":
            del container[key]
        elif edit == "wrap":
            container[key] = draw(st.sampled_from(([container[key]], {"x": container[key]})))
        else:
            container[key] = draw(_VALUES)
    return root


@st.composite
def toml_files(draw: st.DrawFn) -> bytes:
    """Mutated config data as TOML text, maybe with a line twice, cut, spliced or not UTF-8."""
    lines = toml_document(draw(toml_data())).splitlines(keepends=True)
    if lines and draw(st.sampled_from((False,) * 9 + (True,))):  # a key given twice
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(lines)))
    return draw(damaged("".join(lines).encode("utf-8")))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for the module; every example overwrites its file."""
    return tmp_path_factory.mktemp("config-fuzz")


def check_named(error: ConfigError, path: Path) -> None:
    """The file, and where in it (:data:`NAMED`)."""
    hypothesis.event("ConfigError")
    assert error.source == str(path)
    assert NAMED.search(error.detail), error.detail


@pytest.mark.parametrize("index", range(len(BASES)))
def test_bases_are_valid(folder: Path, index: int) -> None:
    """The mutations start from configs that load."""
    path = folder / "base.toml"
    path.write_text(toml_document(BASES[index]), encoding="utf-8")
    assert isinstance(load_config(path), AppConfig)


@fuzz_settings(400)
@given(content=toml_files())
@example(content=b'"risk" = { "margin_span" = { "extreme_multiple" = inf } }\n')
@example(content=b'"engine" = { "fill_queue" = 1180591620717411303424 }\n')
@example(content=b'"nonsense" = 1\n')
@example(content=b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n")  # RecursionError in tomllib
@example(content=b'[redis]\npassword_file = "\\u0000"\n')  # a NUL in a path
def test_load_config_raises_only_config_error(folder: Path, content: bytes) -> None:
    """A config file loads or raises a ConfigError saying where the problem is."""
    path = folder / "riskd.toml"
    path.write_bytes(content)
    result = outcome(lambda: load_config(path))
    if isinstance(result, ConfigError):
        check_named(result, path)
        return
    hypothesis.event("loaded")
    assert isinstance(result, AppConfig), result


# ---------------------------------------------------------------- positions


_ODD_LINES: Final = (b"", b"#", b" # x", b'"a,b",c,1', b'a,"b\nc",1', b'a,"b', b"\xef\xbb\xbf")


@st.composite
def positions_files(draw: st.DrawFn) -> bytes:
    """Positions files: maybe a comment, the header (mostly intact), rows (mutated, odd)."""
    header = draw(st.sampled_from((b"book,instrument,quantity,avg_price",) * 4 + (b"",)))
    if not header:
        header = draw(csv_rows(["book,instrument,quantity,avg_price"], focus=(0, 1, 2, 3)))
    rows = draw(
        st.lists(
            st.one_of(csv_rows(POSITION_ROWS, focus=(0, 1, 2, 3)), st.sampled_from(_ODD_LINES)),
            max_size=6,
        )
    )
    comment = draw(st.sampled_from((b"", b"# book,instrument,quantity\n")))
    return comment + b"\n".join([header, *rows])


@fuzz_settings(400)
@given(content=positions_files())
@example(content=b"book,instrument,quantity\nmain,BTC-PERPETUAL,1e999\n")
@example(content=b"book,instrument,quantity\nmain,BTC-PERPETUAL," + b"9" * 400)  # inf
@example(content=b"book,instrument,quantity\nmain," + b"x" * 200_000 + b",1\n")  # csv limit
def test_load_positions_raises_only_config_error(folder: Path, content: bytes) -> None:
    """A positions file gives positions with finite quantities and prices > 0, or a
    ConfigError naming the line (or saying the file is empty or not UTF-8)."""
    path = folder / "positions.csv"
    path.write_bytes(content)
    positions = outcome(lambda: load_positions(path))
    if isinstance(positions, ConfigError):
        check_named(positions, path)
        return
    assert not isinstance(positions, RiskEngineError), positions
    hypothesis.event(f"positions: {len(positions)}")
    for position in positions:
        assert position.book
        assert position.instrument
        assert math.isfinite(position.quantity)
        assert position.avg_price is None or (
            math.isfinite(position.avg_price) and position.avg_price > 0.0
        )
        assert position.line >= 1


@fuzz_settings(400)
@given(content=positions_files())
@example(content=b"book,instrument,quantity\nmain,BTC-PERPETUAL,1_0\n\nx,y,-0\n")
@example(content=b"book,instrument,quantity\nmain,BTC-PERPETUAL," + b"9" * 400)
def test_column_reader_reads_what_the_row_reader_reads(folder: Path, content: bytes) -> None:
    """The positions file read as columns (numpy) holds exactly the row reader's rows, or
    raises exactly its error."""
    path = folder / "positions.csv"
    path.write_bytes(content)
    rows = outcome(lambda: load_positions(path))
    columns = outcome(lambda: read_positions(path))
    if isinstance(rows, RiskEngineError):
        assert isinstance(columns, RiskEngineError)
        assert str(columns) == str(rows)
        return
    assert not isinstance(columns, RiskEngineError), columns
    expected = PositionColumns.from_rows(rows)
    assert (columns.books, columns.instruments) == (expected.books, expected.instruments)
    for name in ("book", "instrument", "quantity", "avg_price", "line"):
        got, want = getattr(columns, name), getattr(expected, name)
        assert repr(got.tolist()) == repr(want.tolist()), name  # -0.0 and NaN compared too
