"""Shards by underlying: which daemon of a cluster owns which underlying (``[cluster]``).

A shard owns a set of underlyings (``BTC``, ``SPX``) and takes only their market data, fills
and positions (docs/scaling.md). The set is given one of two ways:

- ``shard_id`` and ``shard_count``: the shard owns every underlying ``u`` with
  ``shard_of(u, shard_count) == shard_id``, by rendezvous (highest random weight) hashing:

  .. code-block:: text

      weight(s, u) = first 8 bytes, big-endian, of SHA-256(UTF-8 of f"{s}:{u}")
      shard_of(u, n) = the s in 0..n-1 of the largest weight (the smallest s on a tie)

  Every process (and a consumer in any language) computes the same assignment, with no
  table to share. Going from n to n + 1 shards moves only the underlyings the new shard wins
  (about 1 / (n + 1) of them); the others stay where they were.
- ``underlyings``: an explicit list.

Pure: no I/O. The shard's name (``name``, default ``{shard_id}`` or the listed underlyings
joined by ``-``) names its Redis keys (docs/redis.md#redis-cluster-and-shards).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Final

import msgspec

from engine.constraints import PositiveInt

__all__ = ["ClusterConfig", "Shard", "check_cluster", "shard_of", "weight"]

ShardName = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")]
Underlying = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=r"^[^/+#:\s]+$")]
_WEIGHT_BYTES: Final = 8


class ClusterConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[cluster]``: this daemon as one shard of several (docs/scaling.md).

    Attributes:
        shard_id: this shard's number, 0 to ``shard_count - 1``; with ``shard_count``.
        shard_count: how many shards share the underlyings by hash; with ``shard_id``.
        underlyings: the underlyings this shard owns, instead of ``shard_id``/``shard_count``.
        name: the shard's name in its Redis keys; default ``shard_id``, or the listed
            underlyings joined by ``-``.

    Without any of them the daemon is not sharded (it owns every underlying). The checks that
    name a key are in :func:`check_cluster`.
    """

    shard_id: Annotated[int, msgspec.Meta(ge=0)] | None = None
    shard_count: PositiveInt | None = None
    underlyings: list[Underlying] | None = None
    name: ShardName | None = None


def check_cluster(config: ClusterConfig) -> tuple[str, str] | None:
    """What is wrong with ``config``: (the key's path below ``$.cluster``, the message); None
    when nothing is."""
    hashed = config.shard_id is not None or config.shard_count is not None
    if hashed and config.underlyings is not None:
        return "underlyings", "give shard_id and shard_count, or underlyings, not both"
    if config.shard_id is not None and config.shard_count is None:
        return "shard_id", "shard_id needs shard_count"
    if config.shard_count is not None and config.shard_id is None:
        return "shard_count", "shard_count needs shard_id"
    if (
        config.shard_id is not None
        and config.shard_count is not None
        and config.shard_id >= config.shard_count
    ):
        return "shard_id", f"shard_id must be below shard_count ({config.shard_count})"
    if config.underlyings is not None:
        if not config.underlyings:
            return "underlyings", "an empty list owns nothing"
        seen: set[str] = set()
        for i, u in enumerate(config.underlyings):
            if u in seen:
                return f"underlyings[{i}]", f"{u!r} is listed twice"
            seen.add(u)
    if config.name is not None and not (hashed or config.underlyings is not None):
        return "name", "a name needs shard_id and shard_count, or underlyings"
    return None


def weight(shard: int, underlying: str) -> int:
    """The rendezvous weight of ``underlying`` on shard number ``shard`` (module docstring)."""
    digest = hashlib.sha256(f"{shard}:{underlying}".encode()).digest()
    return int.from_bytes(digest[:_WEIGHT_BYTES], "big")


def shard_of(underlying: str, shard_count: int) -> int:
    """The shard, of ``shard_count``, that owns ``underlying`` (module docstring).

    Raises:
        ValueError: ``shard_count < 1``.
    """
    if shard_count < 1:
        raise ValueError(f"shard_count must be >= 1, got {shard_count}")
    best, best_weight = 0, -1
    for s in range(shard_count):
        w = weight(s, underlying)
        if w > best_weight:
            best, best_weight = s, w
    return best


@dataclass(frozen=True, slots=True)
class Shard:
    """Which underlyings this daemon owns.

    Attributes:
        name: the shard's name (its Redis keys); None when the daemon is not sharded.
        shard_id, shard_count: the hash assignment, or None.
        underlyings: the explicit list (in its order), or None.
    """

    name: str | None = None
    shard_id: int | None = None
    shard_count: int | None = None
    underlyings: tuple[str, ...] | None = None

    @classmethod
    def of(cls, config: ClusterConfig) -> Shard:
        """The shard ``config`` describes (checked by :func:`check_cluster`)."""
        if config.underlyings is not None:
            listed = tuple(config.underlyings)
            return cls(name=config.name or "-".join(sorted(listed)), underlyings=listed)
        if config.shard_id is not None and config.shard_count is not None:
            name = config.name or str(config.shard_id)
            return cls(name=name, shard_id=config.shard_id, shard_count=config.shard_count)
        return cls()

    @property
    def sharded(self) -> bool:
        """Whether this daemon owns only part of the underlyings."""
        return self.name is not None

    def owns(self, underlying: str) -> bool:
        """Whether ``underlying`` is this shard's."""
        if self.underlyings is not None:
            return underlying in self.underlyings
        if self.shard_count is None:
            return True
        return shard_of(underlying, self.shard_count) == self.shard_id
