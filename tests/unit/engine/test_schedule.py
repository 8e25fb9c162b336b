"""engine.schedule.PublishSchedule: leading edge, at most once per interval, trailing edge."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.schedule import PublishSchedule

MS = 1_000_000
INTERVAL = 100 * MS


def test_a_quiet_key_goes_out_at_once_a_busy_one_after_its_interval() -> None:
    s: PublishSchedule[str] = PublishSchedule(INTERVAL)
    s.changed(["a"], 0)
    assert s.due(0) == ["a"]  # leading edge: never published
    s.changed(["a"], 10 * MS)
    assert s.due(10 * MS) == []  # busy: 100 ms since the last one, not 10
    assert s.next_due_ns() == INTERVAL
    s.changed(["a"], 50 * MS)  # changed again meanwhile: one publication covers both
    assert len(s) == 1
    assert s.due(INTERVAL - 1) == []
    assert s.due(INTERVAL) == ["a"]  # trailing edge
    assert s.next_due_ns() == math.inf
    s.changed(["a"], 350 * MS)  # quiet for longer than the interval: at once again
    assert s.due(350 * MS) == ["a"]


def test_flush_takes_every_changed_key_and_no_interval_means_every_change() -> None:
    s: PublishSchedule[str] = PublishSchedule(INTERVAL)
    s.changed(["a", "b"], 0)
    assert s.due(0) == ["a", "b"]
    s.changed(["b", "c"], MS)
    assert s.due(MS) == ["c"]
    assert s.flush(2 * MS) == ["b"]
    assert len(s) == 0
    free: PublishSchedule[str] = PublishSchedule(0)
    for t in range(3):
        free.changed(["a"], t)
        assert free.due(t) == ["a"]
    with pytest.raises(ValueError, match="min_interval_ns"):
        PublishSchedule(-1)


@given(
    interval=st.integers(0, 50),
    changes=st.lists(st.tuples(st.integers(0, 30), st.sampled_from("abc")), max_size=60),
)
def test_every_change_goes_out_once_per_interval_at_most_and_none_is_lost(
    interval: int, changes: list[tuple[int, str]]
) -> None:
    """A driver that calls ``due`` at every change and whenever ``next_due_ns`` says: each key
    goes out no sooner than ``interval`` after its previous publication, only after a change,
    at once when quiet, and its last change always goes out, within an interval."""
    s: PublishSchedule[str] = PublishSchedule(interval)
    published: dict[str, list[int]] = {k: [] for k in "abc"}
    changed_at: dict[str, list[tuple[int, int]]] = {k: [] for k in "abc"}  # (time, out before)
    now = 0

    def run_until(t: float) -> None:
        while s.next_due_ns() <= t and len(s):
            at = int(s.next_due_ns())
            for k in s.due(at):
                published[k].append(at)

    for gap, key in changes:
        run_until(now + gap)
        now += gap
        quiet = not published[key] or now - published[key][-1] >= interval
        pending = len(s)
        s.changed([key], now)
        changed_at[key].append((now, len(published[key])))
        for k in s.due(now):
            published[k].append(now)
        if quiet and len(s) <= pending:  # was not waiting already: out at once
            assert published[key][-1] == now
    run_until(math.inf)
    assert len(s) == 0
    for k in "abc":
        times = published[k]
        assert all(b - a >= interval for a, b in itertools.pairwise(times))
        if changed_at[k]:
            last_change, out_before = changed_at[k][-1]
            assert len(times) > out_before  # the last change went out
            covering = times[out_before]
            previous = times[out_before - 1] if out_before else None
            bound = last_change if previous is None else max(last_change, previous + interval)
            assert last_change <= covering <= bound
            assert len(times) <= len(changed_at[k])  # never without a change
        else:
            assert times == []


def test_a_refresh_goes_out_at_once_unless_waiting_and_holds_no_change_back() -> None:
    s: PublishSchedule[str] = PublishSchedule(INTERVAL)
    s.changed(["busy"], 0)
    assert s.due(0) == ["busy"]
    s.changed(["busy"], MS)  # waits for its interval
    assert s.refresh(["busy", "quiet"]) == ["quiet"]  # the waiting one goes when due
    s.changed(["quiet"], 2 * MS)  # right after its refresh: at once, as a quiet key
    assert s.due(2 * MS) == ["quiet"]
    assert s.due(INTERVAL) == ["busy"]
