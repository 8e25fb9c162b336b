"""Fuzzing the US name parsers (engine.listed, engine.instruments.parse_us_name).

Inputs: valid OSI symbols (padded, unpadded, compact) and CME Globex names of every root,
mutated one character at a time (replaced, deleted, inserted, doubled, case flipped), and
random text over the names' alphabet. Every input must either parse into an instrument that
satisfies the parser's promises or give None; nothing raises.
"""

from __future__ import annotations

from datetime import date
from typing import Final

from hypothesis import example, given
from hypothesis import strategies as st

from engine.daycount import NS_PER_DAY
from engine.instruments import Instrument, Kind, parse_name, parse_us_name
from engine.listed import OCC_ROOTS, format_osi, format_osi_compact
from tests.fuzz.strategies import fuzz_settings

ALPHABET: Final = "SPXWYESDABC0123456789 .CPFGHJKMNQUVZ-_\n\t\x00é"
SEEDS: Final = [
    "SPXW  241220P05900000",
    "SPX   250417C05000000",
    "XSP   250620C00600000",
    "SPY   241220C00595500",
    "SPXW241220P05900000",
    "SPY241220C595.5",
    "ESZ4",
    "ESZ24",
    "ESZ4 C5900",
    "EW1F5 P5800",
    "E3CH5 C5700",
    "EWH4 C5000",
]


@st.composite
def mutated_names(draw: st.DrawFn) -> str:
    name = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(name)))
        c = draw(st.sampled_from(ALPHABET))
        edit = draw(st.sampled_from(["replace", "delete", "insert", "double", "case"]))
        if edit == "replace":
            name = name[:i] + c + name[i + 1 :]
        elif edit == "delete":
            name = name[:i] + name[i + 1 :]
        elif edit == "insert":
            name = name[:i] + c + name[i:]
        elif edit == "double":
            name = name[:i] + name[i:] + name[i:]
        else:
            name = name.swapcase()
    return name


def check(inst: Instrument | None, name: str) -> None:
    if inst is None:
        return
    assert inst.kind in (Kind.OPTION, Kind.FUTURE, Kind.INDEX, Kind.SPOT), name
    if inst.kind in (Kind.OPTION, Kind.FUTURE):
        assert inst.expiry_ns is not None
        assert inst.expiry_ns % NS_PER_DAY != 0, name
        assert inst.settle_timing is not None
        assert inst.multiplier in (50.0, 100.0)
    if inst.kind == Kind.OPTION:
        assert inst.strike is not None
        assert 0.0 < inst.strike < 1e6
        assert parse_us_name(inst.name) == inst, name  # the canonical name parses back
        assert inst.name.isascii()
        assert "\n" not in inst.name


@fuzz_settings(2000)
@given(st.one_of(mutated_names(), st.text(ALPHABET, max_size=25)))
@example("SPXW  241220P05900000\n")
@example("SPXW241220P99999.999")
@example("SPXW241220P0.001")
@example("ESZ99 C999999")
def test_mutated_and_random_names_parse_or_give_none(name: str) -> None:
    check(parse_us_name(name), name)
    check(parse_name(name) if "-" not in name and "_" not in name else None, name)


@fuzz_settings(300)
@given(
    root=st.sampled_from(sorted(OCC_ROOTS)),
    expiry=st.dates(date(2000, 1, 1), date(2099, 12, 31)),
    is_call=st.booleans(),
    milli=st.integers(1, 99_999_999),
)
def test_every_valid_osi_name_of_a_known_root_parses(
    root: str, expiry: date, is_call: bool, milli: int
) -> None:
    for name in (
        format_osi(root, expiry, is_call, milli / 1000),
        format_osi_compact(root, expiry, is_call, milli / 1000),
    ):
        inst = parse_us_name(name)
        assert inst is not None, name
        check(inst, name)
