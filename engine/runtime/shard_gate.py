"""The shard's gate: what belongs to other shards stops here, counted (docs/scaling.md).

Every feed puts its events into the engine's inbox (:class:`~engine.runtime.intake.AsyncInbox`);
a sharded daemon (``[cluster]``) passes each through :class:`ShardGate` first:

- market data (ticks, quotes, depth, open interest) of an instrument whose underlying is another
  shard's is dropped and counted (``foreign_events``): a feed that cannot subscribe by
  underlying (an MQTT publisher on the old topic layout, a replay file, the simulator) still
  delivers it;
- a fill of another shard's underlying is not applied and not journaled: it belongs to that
  shard, which takes it from its own subscription. It is counted (``foreign_fills``, in the
  heartbeat) and logged at most once per :data:`LOG_INTERVAL_S` with the count, so a fill sent
  to the wrong place is never lost silently;
- rows of the positions file of another shard's underlyings are skipped at load
  (``foreign_positions``).

An instrument the registry cannot name (and a strategy whose text does not parse) passes: its
underlying is unknown, and what the daemon does with it is unchanged (a fill is kept until the
instrument is known, market data is dropped as ``unknown_instrument`` by its codec).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Final

from engine.errors import ConfigError
from engine.events import Depth, Fill, OpenInterest, Quote, Tick
from engine.instruments import InstrumentRegistry
from engine.risk.strategies import parse_strategy
from engine.shards import ClusterConfig, Shard

__all__ = ["LOG_INTERVAL_S", "SETTLEMENT_CURRENCIES", "ShardGate", "shard_gate"]

logger = logging.getLogger(__name__)

LOG_INTERVAL_S: Final = 5.0
"""At most one log line per this many seconds about fills of other shards."""
SETTLEMENT_CURRENCIES: Final = frozenset({"USDC", "USDT"})
"""Deribit currencies that list many underlyings' instruments: every shard keeps them."""


class ShardGate:
    """Lets through what ``shard`` owns; counts the rest.

    Args:
        shard: the underlyings this daemon owns.
        registry: instrument names to underlyings.
        known: the underlyings the configuration names (beside the book's): where an MQTT
            feed of a hashed shard subscribes, and what ``[cluster] underlyings`` may list.

    Attributes:
        foreign_events: market data of other shards' underlyings, dropped.
        foreign_fills: fills of other shards' underlyings, not applied.
        foreign_positions: rows of the positions file skipped at load.
    """

    __slots__ = (
        "_last_log_s",
        "_owned",
        "_registry",
        "_unlogged",
        "foreign_events",
        "foreign_fills",
        "foreign_positions",
        "known",
        "shard",
    )

    def __init__(
        self, shard: Shard, registry: InstrumentRegistry, known: frozenset[str] = frozenset()
    ) -> None:
        self.shard = shard
        self.known = known
        self._registry = registry
        self._owned: dict[str, bool] = {}  # instrument name -> owned, once known
        self.foreign_events = 0
        self.foreign_fills = 0
        self.foreign_positions = 0
        self._last_log_s: float | None = None
        self._unlogged = 0

    def underlying(self, name: str) -> str | None:
        """The underlying of instrument (or strategy) ``name``; None if it is unknown."""
        if ":" in name:  # a strategy's text form: its first leg's
            try:
                strategy = parse_strategy(name, self._registry.get)
            except ValueError:
                return None
            return strategy.legs[0].instrument.underlying if strategy.legs else None
        inst = self._registry.get(name)
        return None if inst is None else inst.underlying

    def owns(self, name: str) -> bool:
        """Whether instrument ``name`` is this shard's (an unknown one is)."""
        owned = self._owned.get(name)
        if owned is None:
            underlying = self.underlying(name)
            if underlying is None:
                return True  # not cached: it may become known
            owned = self._owned[name] = self.shard.owns(underlying)
        return owned

    def check_listed(self, held: Iterable[str], source: str) -> None:
        """Check that each underlying ``[cluster] underlyings`` lists is known: named by the
        configuration or by an instrument of the book (``held``); a typo would make a shard
        that owns nothing.

        Raises:
            ConfigError: an unknown one, named by its key (``$.cluster.underlyings[1]``).
        """
        listed = self.shard.underlyings
        if listed is None:
            return
        known = set(self.known)
        known.update(u for n in held if (u := self.underlying(n)) is not None)
        for k, underlying in enumerate(listed):
            if underlying not in known:
                detail = (
                    f"unknown underlying {underlying!r}: no instrument, position or feed names it"
                )
                raise ConfigError(source, f"{detail} - at `$.cluster.underlyings[{k}]`")

    def market(self, event: Tick | Quote | Depth | OpenInterest) -> bool:
        """Whether ``event`` is this shard's; counts it if not."""
        if self.owns(event.instrument):
            return True
        self.foreign_events += 1
        return False

    def fill(self, fill: Fill) -> bool:
        """Whether ``fill`` is this shard's; counts and logs (rate-limited) it if not."""
        if self.owns(fill.instrument):
            return True
        self.foreign_fills += 1
        now_s = time.monotonic()
        if self._last_log_s is not None and now_s - self._last_log_s < LOG_INTERVAL_S:
            self._unlogged += 1
            return False
        self._last_log_s = now_s
        logger.warning(
            "fill of another shard's underlying not applied",
            extra={
                "book": fill.book,
                "instrument": fill.instrument,
                "underlying": self.underlying(fill.instrument),
                "shard": self.shard.name,
                "foreign_fills": self.foreign_fills,
                "not_logged": self._unlogged,
            },
        )
        self._unlogged = 0
        return False


def shard_gate(
    config: ClusterConfig, registry: InstrumentRegistry, known: frozenset[str]
) -> ShardGate | None:
    """The gate of the shard ``config`` describes (``known``: the underlyings the
    configuration names); None when the daemon is not sharded."""
    shard = Shard.of(config)
    return ShardGate(shard, registry, known) if shard.sharded else None
