"""Tests for engine.risk.totals: a book's exposure payloads from shards, summed."""

from __future__ import annotations

import math
import typing

from engine.outputs import UNITS, BookExposure
from engine.risk.totals import SUMMED, book_totals, exposure_totals


def _part(book: str, x: float, n: int, valuation: int) -> BookExposure:
    return BookExposure(
        ts_ns=1,
        valuation_ts_ns=valuation,
        book=book,
        n_positions=n,
        n_stale=n // 2,
        units=UNITS,
        **{f: x * (k + 1) for k, f in enumerate(SUMMED)},  # type: ignore[arg-type]  # floats
    )


def test_summed_are_the_book_payloads_float_figures() -> None:
    hints = typing.get_type_hints(BookExposure)
    floats = {f for f in BookExposure.__struct_fields__ if hints[f] is float}
    assert set(SUMMED) == floats


def test_parts_add_up_exactly_rounded_with_the_oldest_valuation() -> None:
    parts = [_part("main", 0.1, 3, 20), _part("main", 1e16, 4, 10), _part("main", -1e16, 1, 30)]
    got = book_totals("main", parts, 99)
    for k, f in enumerate(SUMMED):
        assert getattr(got, f) == math.fsum([0.1 * (k + 1), 1e16 * (k + 1), -1e16 * (k + 1)])
    assert got.delta_usd == 0.1  # a plain left-to-right sum gives 0.0 or 2.0
    assert (got.n_positions, got.n_stale, got.valuation_ts_ns, got.ts_ns) == (8, 3, 10, 99)


def test_the_firm_is_every_book_of_every_shard() -> None:
    s0 = {"main": _part("main", 1.0, 2, 5)}
    s1 = {"main": _part("main", 2.0, 3, 6), "other": _part("other", 4.0, 1, 7)}
    out = dict(exposure_totals([s0, s1], 9))
    assert list(out) == ["main", "other", "*"]
    assert out["main"].delta_usd == 3.0
    assert out["other"].delta_usd == 4.0
    assert out["*"].delta_usd == 7.0
    assert out["*"].n_positions == 6
    assert out["*"].valuation_ts_ns == 5
    assert exposure_totals([], 9) == []
