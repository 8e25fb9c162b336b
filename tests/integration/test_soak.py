"""The fault soak, short (about a minute of faults; ``scripts/soak`` runs it longer): a real
riskd under kill -9 of Redis, a broker restart, websocket cuts mid-frame, a tenfold burst,
malformed floods and a clock jump never exits, stays within its memory, loses no fill and
publishes a final snapshot equal to a from-scratch recompute (tests/soak.py)."""

from __future__ import annotations

import math

from tests.soak import _diff, soak


async def test_the_daemon_survives_the_fault_plan_and_stays_exact() -> None:
    result = await soak(duration_s=45.0, seed=11)
    print(result.table())  # noqa: T201 - the summary, shown with -s or on failure
    assert result.failures == [], result.table()
    for fault in result.faults.values():
        assert fault.injected >= 1, fault.name
        assert fault.recovered == fault.injected, fault.name
    assert result.fills_sent > 100
    assert result.fills_journaled == result.fills_sent
    assert result.keys_compared >= 4
    assert result.max_rel_diff <= 1e-9


def test_the_snapshot_comparison_sees_any_difference() -> None:
    """The final check itself: a changed figure, a missing field, a list of another length."""
    want = {"ts": 1, "delta": 1.0, "expiries": {"vega": [1.0, 2.0]}, "book": "main"}
    failures: list[str] = []
    assert _diff("k", {**want, "ts": 2}, want, failures) == 0.0
    assert failures == []
    assert _diff("k", {**want, "delta": 1.0 + 1e-6}, want, failures) > 1e-9
    assert _diff("k", {**want, "expiries": {"vega": [1.0]}}, want, failures) == math.inf
    assert _diff("k", {k: v for k, v in want.items() if k != "book"}, want, failures) == 0.0
    assert _diff("k", {**want, "book": "alt"}, want, failures) == 0.0
    assert len(failures) == 4
