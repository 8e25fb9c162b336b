"""bench/shards.py's sizing rule: the shards a market's message rate needs at a shard's
measured cost."""

from __future__ import annotations

from bench.shards import LOADS, Cost, Load, one_shard, packed, sizing_rows


def test_the_sizing_rule_gives_each_load_its_shards() -> None:
    """One shard per underlying up to a core (over the 50 % plan, said so), none beyond; a
    market of several underlyings packed largest first, a shard's fixed cost counted once."""
    cost = Cost(0.2, 50.0, "given")  # a core: 16,000 msgs/s; the plan (50 %): 6,000
    assert one_shard(cost, 6_000) == "1"
    assert one_shard(cost, 10_000) == "1, at 70% of its core (over the 50% plan: little headroom)"
    assert one_shard(cost, 20_000) == "**none**: 1.2 cores for one event loop"
    small = [Load("m", name, 100, rate, "") for name, rate in (("a", 30), ("b", 20), ("c", 10))]
    # a alone is 0.35 cores; b joins it at 0.45; c would make 0.5: within the plan, it joins
    assert [[x.what for x in s] for s in packed(cost, small)] == [["a", "b", "c"]]
    assert [[x.what for x in s] for s in packed(cost, [*small, Load("m", "d", 100, 40, "")])] == [
        ["d", "b"],  # d 0.4, with b 0.5; a 0.35 and c 0.4
        ["a", "c"],
    ]
    rows = sizing_rows(cost)
    assert len(rows) == len(LOADS)
    whole = next(r for r in rows if "the whole options market" in r)
    assert (
        "| 3 (BTC options 0.70; ETH options 0.60; USDC-settled linear options 0.40 cores) |"
        in whole
    )
