"""Shards by underlying (engine.shards): the assignment a consumer can compute, its properties,
and ``[cluster]``'s checks, each naming its key."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.errors import ConfigError
from engine.runtime.config import load_config
from engine.shards import ClusterConfig, Shard, shard_of

names = st.text(
    alphabet=st.characters(blacklist_characters="/+#:", blacklist_categories=("Cs", "Zs", "Cc")),
    min_size=1,
    max_size=12,
)


def reference(underlying: str, n: int) -> int:
    """docs/scaling.md's recipe, written out: SHA-256 of "s:u", its first 8 bytes as a
    big-endian number, the largest wins."""
    weights = [
        int(hashlib.sha256(f"{s}:{underlying}".encode()).hexdigest()[:16], 16) for s in range(n)
    ]
    return weights.index(max(weights))


def test_the_documented_assignment() -> None:
    # The values docs/scaling.md quotes, for a consumer to check its own implementation.
    assert [shard_of(u, 2) for u in ("BTC", "ETH", "SOL", "SPX", "SPY")] == [0, 1, 1, 1, 0]
    assert [shard_of(u, 3) for u in ("BTC", "ETH", "SOL", "SPX", "SPY")] == [0, 1, 2, 1, 2]


@given(names, st.integers(1, 40))
def test_shard_of_is_the_recipe(underlying: str, n: int) -> None:
    assert shard_of(underlying, n) == reference(underlying, n)


@given(st.lists(names, min_size=1, max_size=50, unique=True), st.integers(1, 20))
def test_a_new_shard_takes_underlyings_only_for_itself(underlyings: list[str], n: int) -> None:
    # Rendezvous hashing: from n to n + 1 shards an underlying stays or moves to the new one.
    for u in underlyings:
        assert shard_of(u, n + 1) in (shard_of(u, n), n)


def test_the_shards_share_the_underlyings_evenly() -> None:
    counts = Counter(shard_of(f"U{i}", 4) for i in range(8000))
    assert set(counts) == {0, 1, 2, 3}
    assert all(1800 <= c <= 2200 for c in counts.values())  # 2000 each, 4.5 sigma
    # A new fifth shard takes about a fifth, from every old one.
    moved = [i for i in range(8000) if shard_of(f"U{i}", 5) != shard_of(f"U{i}", 4)]
    assert 1400 <= len(moved) <= 1800
    assert all(shard_of(f"U{i}", 5) == 4 for i in moved)


def test_one_shard_owns_everything() -> None:
    shard = Shard.of(ClusterConfig(shard_id=0, shard_count=1))
    assert shard.sharded
    assert shard.name == "0"
    assert all(shard.owns(u) for u in ("BTC", "ETH", "SPX"))
    assert not Shard().sharded
    assert Shard().owns("BTC")


def test_a_listed_shard_owns_its_list() -> None:
    shard = Shard.of(ClusterConfig(underlyings=["SPY", "SPX"]))
    assert shard.name == "SPX-SPY"
    assert (shard.owns("SPX"), shard.owns("SPY"), shard.owns("BTC")) == (True, True, False)
    assert Shard.of(ClusterConfig(underlyings=["BTC"], name="crypto")).name == "crypto"


def test_a_hashed_shard_owns_its_hash() -> None:
    shards = [Shard.of(ClusterConfig(shard_id=k, shard_count=3)) for k in range(3)]
    for u in ("BTC", "ETH", "SOL", "SPX", "SPY", "XRP"):
        assert [s.owns(u) for s in shards].count(True) == 1
        assert shards[shard_of(u, 3)].owns(u)


@pytest.mark.parametrize(
    ("table", "key", "words"),
    [
        ("shard_id = 2\nshard_count = 2", "shard_id", "below shard_count"),
        ("shard_id = 0", "shard_id", "needs shard_count"),
        ("shard_count = 2", "shard_count", "needs shard_id"),
        ('shard_id = 0\nshard_count = 2\nunderlyings = ["BTC"]', "underlyings", "not both"),
        ("underlyings = []", "underlyings", "owns nothing"),
        ('underlyings = ["BTC", "ETH", "BTC"]', "underlyings[2]", "listed twice"),
        ('name = "x"', "name", "needs"),
        ("shard_id = -1\nshard_count = 2", "shard_id", ">= 0"),
        ("shard_id = 0\nshard_count = 0", "shard_count", ">= 1"),
        ('underlyings = ["BTC/USD"]', "underlyings[0]", "match"),
        ('name = "a b"\nunderlyings = ["BTC"]', "name", "match"),
        ("shards = 2", "shards", "unknown field"),
    ],
)
def test_a_bad_cluster_table_names_its_key(
    tmp_path: Path, table: str, key: str, words: str
) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text(f"[cluster]\n{table}\n")
    with pytest.raises(ConfigError) as exc_info:
        load_config(path)
    message = str(exc_info.value)
    assert f"`$.cluster.{key}`" in message or (key == "shards" and "`$.cluster`" in message)
    assert words in message


def test_a_redis_cluster_url_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "riskd.toml"
    for redis, words in (
        ('url = "unix:///tmp/r.sock"\ncluster = true', "redis:// or rediss://"),
        ('url = "redis://127.0.0.1:7000/2"\ncluster = true', "database 0"),
        ('url = "redis://127.0.0.1:7000"\ncluster = true\nstart_local = true', "start_local"),
    ):
        path.write_text(f"[redis]\n{redis}\n")
        with pytest.raises(ConfigError, match=words):
            load_config(path)
    path.write_text('[redis]\nurl = "redis://127.0.0.1:7000/0"\ncluster = true\n')
    assert load_config(path).redis.cluster


ONE_FILE = """\
[cluster]
shard_id = 0
shard_count = 3

[portfolio]
journal = "fills-{shard_id}.jsonl"

[[feeds]]
kind = "mqtt"
name = "mqtt"
client_id = "riskd-{shard_id}"
"""


def test_one_file_serves_every_shard(tmp_path: Path) -> None:
    """``--shard-id N`` (load_config's shard_id) overrides ``[cluster] shard_id``, and
    {shard_id} in the file's strings reads N; without it, the file's own id."""
    path = tmp_path / "riskd.toml"
    path.write_text(ONE_FILE)
    for shard in range(3):
        config = load_config(path, shard)
        assert config.cluster.shard_id == shard
        assert config.portfolio.journal == f"fills-{shard}.jsonl"
        assert [f.client_id for f in config.feeds] == [f"riskd-{shard}"]  # type: ignore[union-attr]  # an MQTT feed
    assert load_config(path).portfolio.journal == "fills-0.jsonl"


@pytest.mark.parametrize(
    ("text", "shard_id", "key", "words"),
    [
        (ONE_FILE.replace("shard_id = 0\nshard_count = 3\n", ""), None, "$.portfolio.journal",
         "needs [cluster] shard_id or --shard-id"),
        (ONE_FILE.replace("shard_id = 0\nshard_count = 3\n", ""), 1, "$.cluster.shard_id",
         "needs shard_count"),
        (ONE_FILE, 3, "$.cluster.shard_id", "below shard_count (3)"),
        ('cluster = "x"\n', 0, "$.cluster", "--shard-id needs [cluster] to be a table"),
        (ONE_FILE.replace("shard_id = 0", 'shard_id = "a"'), None, "$.cluster.shard_id", "int"),
    ],
)  # fmt: skip
def test_a_shard_id_that_cannot_be_placed_names_its_key(
    tmp_path: Path, text: str, shard_id: int | None, key: str, words: str
) -> None:
    path = tmp_path / "riskd.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc_info:
        load_config(path, shard_id)
    message = str(exc_info.value)
    assert f"`{key}`" in message, message
    assert words in message, message
