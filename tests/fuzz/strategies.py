"""Hypothesis strategies shared by the fuzz tests, and their settings.

Two kinds of input reach every decoder:

- garbage: random bytes, random text, random JSON of the wrong shape;
- mutations of valid inputs: a JSON document is held as a tree (:class:`Obj` keeps its pairs in
  a list, so a key can appear twice; :class:`Tok` is raw JSON text, so ``NaN``, ``1e999`` and
  numbers past 64 bits can be written), a few edits are applied at random places (delete,
  retype, duplicate a key, nest wrongly, add an unknown key, misspell a key), then the text may
  be cut at a random byte, spliced with random bytes or given invalid UTF-8 inside a string.
  CSV rows get the same treatment field by field.

:func:`fuzz_settings` scales every test's examples by the profile named in the environment
variable ``HYPOTHESIS_PROFILE``: ``ci`` (the default) or ``long`` (200 times as many).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from hypothesis import settings
from hypothesis import strategies as st

__all__ = [
    "EVIL_FIELDS",
    "EVIL_NUMBERS",
    "EVIL_TOKENS",
    "FUZZ_PROFILE",
    "Arr",
    "Node",
    "Obj",
    "Tok",
    "csv_rows",
    "damaged",
    "dump",
    "evil_values",
    "fuzz_settings",
    "garbage",
    "json_documents",
    "mutated",
    "to_node",
]

FUZZ_PROFILE: Final = os.environ.get("HYPOTHESIS_PROFILE", "ci")
"""``ci`` (default) or ``long``: how many examples each fuzz test runs."""
_FACTORS: Final = {"ci": 1, "long": 200}


def fuzz_settings(max_examples: int) -> settings:
    """Settings of one fuzz test: ``max_examples`` under the ``ci`` profile, 200 times as many
    under ``long``. No deadline: CI shares two cores, and time is not what these tests check."""
    if FUZZ_PROFILE not in _FACTORS:
        raise ValueError(f"HYPOTHESIS_PROFILE must be one of {sorted(_FACTORS)}: {FUZZ_PROFILE!r}")
    return settings(max_examples=max_examples * _FACTORS[FUZZ_PROFILE], deadline=None)


# ---------------------------------------------------------------- JSON documents as trees


@dataclass(slots=True)
class Tok:
    """A leaf: raw JSON text (possibly not JSON at all: ``NaN``)."""

    text: str


@dataclass(slots=True)
class Arr:
    """A JSON array."""

    items: list[Node]


@dataclass(slots=True)
class Obj:
    """A JSON object; its pairs are a list, so a key may repeat."""

    pairs: list[tuple[str, Node]]


Node = Tok | Arr | Obj


def to_node(value: Any) -> Node:
    """The tree of a plain JSON value (as ``json.loads`` gives it)."""
    if isinstance(value, dict):
        return Obj([(str(k), to_node(v)) for k, v in value.items()])
    if isinstance(value, list):
        return Arr([to_node(v) for v in value])
    return Tok(json.dumps(value))


def dump(node: Node, *, ascii_only: bool = True) -> str:
    """The JSON text of a tree (keys repeated as they are)."""
    if isinstance(node, Tok):
        return node.text
    if isinstance(node, Arr):
        return "[" + ",".join(dump(n, ascii_only=ascii_only) for n in node.items) + "]"
    return (
        "{"
        + ",".join(
            f"{json.dumps(k, ensure_ascii=ascii_only)}:{dump(v, ascii_only=ascii_only)}"
            for k, v in node.pairs
        )
        + "}"
    )


EVIL_NUMBERS: Final = (
    "0",
    "-0",
    "-1",
    "0.0",
    "-0.0",
    "1e308",
    "-1e308",
    "1e309",
    "1e999",
    "-1e999",
    "5e-324",
    "1e-400",
    "NaN",
    "Infinity",
    "-Infinity",
    "nan",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-9223372036854775809",
    "9" * 40,
    "1732400000123",
    "1732400000123000000",
)
"""JSON (and not quite JSON) numbers that make decoders stumble."""

EVIL_TOKENS: Final = (
    *EVIL_NUMBERS,
    "null",
    "true",
    "false",
    '""',
    '" "',
    '"0.5"',
    '"NaN"',
    '"\\ud800"',
    '"\\u0000"',
    '"BTC-PERPETUAL"',
    '"BTC-27DEC24-60000-C"',
    '"BTC-27DEC24-' + "9" * 400 + '-C"',
    '"btc_usd"',
    '"main:x"',
    "[]",
    "{}",
    "[1]",
    '{"a": 1}',
)
"""JSON (and not quite JSON) texts that make decoders stumble."""

_NUMBERS: Final = st.one_of(
    st.sampled_from(EVIL_NUMBERS),
    st.integers().map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
).map(Tok)
_SCALARS: Final = st.one_of(
    _NUMBERS,
    st.sampled_from(EVIL_TOKENS).map(Tok),
    st.text(max_size=12).map(lambda s: Tok(json.dumps(s))),
)

_TREES: Final = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(Arr),
        st.lists(st.tuples(st.text(max_size=8), inner), max_size=3).map(Obj),
    ),
    max_leaves=6,
)

_DEEP: Final = st.one_of(
    st.integers(1, 3000).map(lambda n: Tok("[" * n + "]" * n)),
    st.integers(1, 3000).map(lambda n: Tok('{"a":' * n + "0" + "}" * n)),
)


@st.composite
def evil_values(draw: st.DrawFn) -> Node:
    """A value to put in place of a valid one: mostly an odd number (most fields are numbers),
    else an odd scalar, a random tree or deep nesting."""
    kind = draw(st.sampled_from(("number",) * 4 + ("scalar", "scalar", "tree", "deep")))
    if kind == "number":
        return draw(_NUMBERS)
    if kind == "scalar":
        return draw(_SCALARS)
    return draw(_TREES if kind == "tree" else _DEEP)


def _slots(node: Node) -> list[tuple[Arr | Obj, int]]:
    """Every (container, index) of the tree: the places an edit can go, the deepest first (the
    payload's fields, rather than its envelope)."""
    out: list[tuple[int, Arr | Obj, int]] = []
    stack: list[tuple[int, Node]] = [(0, node)]
    while stack:
        depth, current = stack.pop()
        if isinstance(current, Arr):
            out += [(depth, current, i) for i in range(len(current.items))]
            stack += [(depth + 1, v) for v in current.items]
        elif isinstance(current, Obj):
            out += [(depth, current, i) for i in range(len(current.pairs))]
            stack += [(depth + 1, v) for _, v in current.pairs]
    out.sort(key=lambda slot: -slot[0])
    return [(container, i) for _, container, i in out]


_MOSTLY: Final = st.sampled_from((True, True, True, False))
"""True three times in four. Hypothesis draws the first choice of a strategy more often than the
others (it is the simplest), so the choice that reaches deeper comes first: here, and in every
``sampled_from`` and ``one_of`` of this module."""

_EDITS: Final = ("replace", "replace", "delete", "duplicate", "wrap", "unknown", "rekey")


def _focused(
    slots: list[tuple[Arr | Obj, int]], focus: frozenset[str]
) -> list[tuple[Arr | Obj, int]]:
    return [(c, i) for c, i in slots if isinstance(c, Obj) and c.pairs[i][0] in focus]


@st.composite
def mutated(
    draw: st.DrawFn, base: Any, focus: frozenset[str] = frozenset(), max_edits: int = 3
) -> Node:
    """The tree of ``base`` after up to ``max_edits`` random edits, most of them on the values
    of keys in ``focus`` (the ones the decoder reads) where there are any."""
    root = to_node(base)
    for _ in range(draw(st.integers(0, max_edits))):
        slots = _slots(root)
        if not slots:
            break
        focused = _focused(slots, focus)
        if draw(_MOSTLY) and focused:
            slots = focused
        container, i = draw(st.sampled_from(slots))
        edit = draw(st.sampled_from(_EDITS))
        if isinstance(container, Arr):
            if edit == "delete":
                del container.items[i]
            elif edit == "wrap":
                container.items[i] = Arr([container.items[i]])
            elif edit == "unknown":
                container.items.insert(i, draw(evil_values()))
            else:
                container.items[i] = draw(evil_values())
            continue
        key, value = container.pairs[i]
        if edit == "delete":
            del container.pairs[i]
        elif edit == "replace":
            container.pairs[i] = (key, draw(evil_values()))
        elif edit == "duplicate":  # the same key again, before or after, with another value
            at = draw(st.integers(0, len(container.pairs)))
            container.pairs.insert(at, (key, draw(evil_values())))
        elif edit == "wrap":
            wrappers: list[Node] = [Arr([value]), Obj([(key, value)])]
            wrapped = draw(st.sampled_from(wrappers))
            container.pairs[i] = (key, wrapped)
        elif edit == "unknown":
            container.pairs.insert(i, (draw(st.text(max_size=8)), draw(evil_values())))
        else:
            variants = [key.upper(), f"{key} ", key[:-1], f"{key}\u0301", ""]
            container.pairs[i] = (draw(st.sampled_from(variants)), value)
    return root


_BAD_UTF8: Final = (b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe2\x82", b"\xc0\xaf", b"\x80")


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` as it is, cut at a random byte, spliced with random bytes, or with invalid
    UTF-8 just inside a string (where a JSON decoder has to decode it)."""
    how = draw(st.sampled_from(("intact",) * 9 + ("truncate", "splice", "bad_utf8")))
    if how == "truncate":
        return data[: draw(st.integers(0, len(data)))]
    if how == "splice":
        at = draw(st.integers(0, len(data)))
        cut = draw(st.integers(0, 8))
        return data[:at] + draw(st.binary(max_size=8)) + data[at + cut :]
    if how == "bad_utf8":
        quotes = [i + 1 for i, b in enumerate(data) if b == ord('"')] or [0]
        at = draw(st.sampled_from(quotes))
        return data[:at] + draw(st.sampled_from(_BAD_UTF8)) + data[at:]
    return data


def garbage() -> st.SearchStrategy[bytes]:
    """Random bytes, random text, random JSON of any shape."""
    return st.one_of(
        st.binary(max_size=200),
        st.text(max_size=100).map(lambda s: s.encode("utf-8")),
        _TREES.map(lambda n: dump(n).encode("utf-8")),
    )


@st.composite
def _mutated_document(draw: st.DrawFn, bases: Sequence[Any], focus: frozenset[str]) -> bytes:
    node = draw(mutated(draw(st.sampled_from(bases)), focus))
    text = dump(node, ascii_only=draw(st.booleans()))
    return draw(damaged(text.encode("utf-8")))


@st.composite
def json_documents(
    draw: st.DrawFn, bases: Sequence[Any], focus: frozenset[str] = frozenset()
) -> bytes:
    """Mostly (3 in 4) mutations of ``bases`` (plain JSON values; edits mostly on the keys in
    ``focus``), else garbage."""
    if draw(_MOSTLY):
        return draw(_mutated_document(bases, focus))
    return draw(garbage())


# ---------------------------------------------------------------- CSV rows

EVIL_FIELDS: Final = (
    "",
    "0",
    "-0",
    "-1",
    "0.5",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "-1e999",
    "1e-400",
    "5e-324",
    " 1",
    "1 ",
    "1_000",
    "0x10",
    "\u0661\u0662\u0663",  # Arabic-Indic digits: int() and float() take them
    "\u00bd",
    "9" * 30,
    "9" * 5000,  # past int()'s 4300 digits
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "1732406400000000",
    "1.5",
    "\u00e9",
    "\x00",
    '"1"',
    "\r",
    "BTC-27DEC24-60000-C",
    "BTC-31FEB25-100000-C",
    "BTC-27DEC24-" + "9" * 400 + "-C",
    "btc_usd",
    "BTC-PERPETUAL",
)
"""CSV fields that make number and name parsers stumble."""

_FIELDS: Final = st.one_of(
    st.sampled_from(EVIL_FIELDS),
    st.sampled_from(EVIL_FIELDS),
    st.integers().map(str),
    st.floats().map(repr),
    st.text(max_size=10),
)

_ROW_EDITS: Final = ("replace",) * 8 + ("swap", "delete", "insert")


@st.composite
def csv_rows(
    draw: st.DrawFn, bases: Sequence[str], focus: Sequence[int] = (), max_edits: int = 3
) -> bytes:
    """A CSV row: one of ``bases`` (no line ending) after up to ``max_edits`` field edits (most
    of them on the columns in ``focus``, the ones the decoder reads), maybe damaged like a JSON
    document, with ``\\n``, ``\\r\\n`` or no line ending; or garbage."""
    if not draw(_MOSTLY):
        return draw(garbage())
    fields = draw(st.sampled_from(bases)).split(",")
    for _ in range(draw(st.integers(0, max_edits))):
        if draw(_MOSTLY) and focus:
            i = min(draw(st.sampled_from(focus)), max(len(fields) - 1, 0))
        else:
            i = draw(st.integers(0, len(fields) - 1)) if fields else 0
        edit = draw(st.sampled_from(_ROW_EDITS))
        if edit == "delete" and fields:
            del fields[i]
        elif edit == "insert":
            fields.insert(i, draw(_FIELDS))
        elif edit == "swap" and fields:
            j = draw(st.integers(0, len(fields) - 1))
            fields[i], fields[j] = fields[j], fields[i]
        elif fields:
            fields[i] = draw(_FIELDS)
    row = draw(damaged(",".join(fields).encode("utf-8")))
    return row + draw(st.sampled_from((b"\n", b"\r\n", b"")))
