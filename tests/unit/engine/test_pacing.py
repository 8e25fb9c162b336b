"""The engine's cycle pacing under load (engine.runtime.engine_loop.CyclePacing)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.runtime.engine_loop import CyclePacing


def test_a_first_event_is_taken_at_once() -> None:
    assert CyclePacing(0.002, 0.25).wait_s(123.0) < 0


def test_a_quick_cycle_is_followed_after_the_spacing_from_its_start() -> None:
    pacing = CyclePacing(0.002, 0.25)
    pacing.took_events(10.0, 10.0001)  # 0.1 ms: its share rule asks for 0.3 ms after it
    assert pacing.wait_s(10.0001) == pytest.approx(0.0019)


def test_a_slow_cycle_leaves_the_loop_three_times_its_length_at_a_quarter() -> None:
    pacing = CyclePacing(0.002, 0.25)
    pacing.took_events(10.0, 10.004)  # 4 ms
    assert pacing.wait_s(10.004) == pytest.approx(0.012)


def test_after_a_quiet_spell_the_next_event_is_taken_at_once() -> None:
    pacing = CyclePacing(0.002, 0.25)
    pacing.took_events(10.0, 10.004)
    assert pacing.wait_s(10.017) < 0


@given(
    spacing=st.floats(0.0, 0.05),
    share=st.floats(0.01, 1.0),
    durations=st.lists(st.floats(0.0, 0.1), min_size=1, max_size=50),
)
def test_back_to_back_cycles_never_take_more_than_their_share(
    spacing: float, share: float, durations: list[float]
) -> None:
    """Cycles started as soon as the pacing allows take at most ``share`` of the time from the
    first start to the end of the last one's wait, and start ``spacing`` apart at least."""
    pacing = CyclePacing(spacing, share)
    now = 0.0
    busy = 0.0
    starts = []
    for d in durations:
        now = max(now, now + pacing.wait_s(now))
        starts.append(now)
        pacing.took_events(now, now + d)
        busy += d
        now += d
    end = max(now, pacing.next_s)
    assert busy <= share * end + 1e-9 * len(durations)
    assert all(b - a >= spacing - 1e-12 for a, b in itertools.pairwise(starts))
    assert math.isfinite(pacing.next_s)
