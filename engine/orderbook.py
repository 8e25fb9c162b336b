"""An order book of price levels, sans-I/O, and what walking it costs (docs/hedging.md
"Slippage").

:class:`OrderBook` keeps the best ``max_levels`` levels of each side of one instrument and
applies Deribit's ``book.{instrument}.{interval}`` notifications: a ``snapshot`` (every level,
each ``["new", price, amount]``), then ``change`` messages of ``[action, price, amount]`` with
``action`` ``new``, ``change`` or ``delete``; every message has a ``change_id`` and each one
after the snapshot a ``prev_change_id``, equal to the ``change_id`` before it unless messages
were lost. On a gap :meth:`OrderBook.apply` clears the book and returns False: the caller
subscribes again, which brings a new snapshot. The book is bounded: a level beyond the
``max_levels`` best of its side is dropped, so after deletions at the top the book may hold
fewer levels than the market until the next snapshot; a walk past what it holds says so.

Units: prices in the instrument's quote currency (USD for Deribit's futures and perpetuals);
amounts as the venue gives them (Deribit's futures and perpetuals: USD of contracts).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "DEFAULT_MAX_LEVELS",
    "BookWalk",
    "HedgeSlippage",
    "Level",
    "OrderBook",
    "Side",
    "hedge_slippage",
    "slippage_usd",
    "walk",
]

DEFAULT_MAX_LEVELS: Final = 100
"""Levels kept per side unless told otherwise."""

Side = Literal["buy", "sell"]
"""Which side of the book a trade takes: a buy walks the asks, a sell the bids."""

Level = tuple[float, float]
"""(price, amount) of one level."""


class OrderBook:
    """The best levels of one instrument's book (module docstring).

    Args:
        max_levels: levels kept per side.

    Attributes:
        change_id: of the last message applied (None: no snapshot yet, or after a gap).
        gaps: gaps seen (a ``prev_change_id`` that is not the last ``change_id``).
        ts_ms: the last message's ``timestamp`` (ms), 0 before any.
    """

    def __init__(self, max_levels: int = DEFAULT_MAX_LEVELS) -> None:
        if max_levels < 1:
            raise ValueError("max_levels must be at least 1")
        self.max_levels = max_levels
        self.change_id: int | None = None
        self.gaps = 0
        self.ts_ms = 0
        # keys sorted best first: bids by -price, asks by price
        self._keys: dict[Side, list[float]] = {"sell": [], "buy": []}
        self._amounts: dict[Side, dict[float, float]] = {"sell": {}, "buy": {}}

    def clear(self) -> None:
        """Forget every level and the sequence (a snapshot must come next)."""
        for side in ("buy", "sell"):
            self._keys[side].clear()
            self._amounts[side].clear()
        self.change_id = None

    def apply(
        self,
        kind: str,
        bids: Iterable[Sequence[object]],
        asks: Iterable[Sequence[object]],
        change_id: int,
        prev_change_id: int | None = None,
        ts_ms: int = 0,
    ) -> bool:
        """Apply one notification; False on a gap (the book is cleared: subscribe again), or on
        a ``change`` before any snapshot (ignored).

        Raises:
            ValueError: an unknown ``kind`` or action, or a level that is not
                ``[action, price, amount]`` with a finite price and amount >= 0.
        """
        if kind == "snapshot":
            self.clear()
        elif kind != "change":
            raise ValueError(f"unknown book message type {kind!r}")
        elif self.change_id is None:
            return False
        elif prev_change_id != self.change_id:
            self.gaps += 1
            self.clear()
            return False
        sides: tuple[tuple[Side, Iterable[Sequence[object]]], ...] = (("sell", bids), ("buy", asks))
        for side, levels in sides:
            for level in levels:
                self._update(side, *_level(level))
        self.change_id = change_id
        self.ts_ms = ts_ms
        return True

    def _update(self, side: Side, action: str, price: float, amount: float) -> None:
        """One level: ``new`` or ``change`` sets its amount (0 removes it), ``delete`` removes
        it; beyond ``max_levels`` the worst level of the side is dropped."""
        keys, amounts = self._keys[side], self._amounts[side]
        key = -price if side == "sell" else price
        if action == "delete" or amount == 0.0:
            if price in amounts:
                del amounts[price]
                keys.pop(bisect.bisect_left(keys, key))
            return
        if action not in ("new", "change"):
            raise ValueError(f"unknown book action {action!r}")
        if price not in amounts:
            if len(keys) >= self.max_levels and key >= keys[-1]:
                return  # worse than every level kept: out of bounds
            bisect.insort(keys, key)
            if len(keys) > self.max_levels:
                dropped = keys.pop()
                del amounts[-dropped if side == "sell" else dropped]
        amounts[price] = amount

    def levels(self, side: Side) -> list[Level]:
        """The levels a trade on ``side`` takes, best first: the asks for a buy, the bids for
        a sell."""
        sign = -1.0 if side == "sell" else 1.0
        amounts = self._amounts[side]
        return [(sign * k, amounts[sign * k]) for k in self._keys[side]]

    @property
    def bids(self) -> list[Level]:
        """The bids, best (highest) first."""
        return self.levels("sell")

    @property
    def asks(self) -> list[Level]:
        """The asks, best (lowest) first."""
        return self.levels("buy")

    @property
    def mid(self) -> float:
        """The mid of the best bid and ask (NaN: a side is empty)."""
        bids, asks = self._keys["sell"], self._keys["buy"]
        return 0.5 * (asks[0] - bids[0]) if bids and asks else math.nan


def _level(level: Sequence[object]) -> tuple[str, float, float]:
    """``[action, price, amount]`` checked."""
    if len(level) != 3:
        raise ValueError(f"a book level is [action, price, amount], got {level!r}")
    action, price, amount = level
    if not isinstance(action, str) or not isinstance(price, int | float):
        raise ValueError(f"bad book level {level!r}")
    if not isinstance(amount, int | float) or not (math.isfinite(price) and amount >= 0.0):
        raise ValueError(f"bad book level {level!r}")
    return action, float(price), float(amount)


@dataclass(frozen=True, slots=True)
class BookWalk:
    """A market order walked through the levels.

    Attributes:
        filled: the amount the levels held (at most the amount asked).
        average_price: the amount-weighted price of what filled (NaN: nothing did).
        complete: the whole amount filled.
        levels: levels the fill reached.
    """

    filled: float
    average_price: float
    complete: bool
    levels: int


def walk(levels: Sequence[Level], amount: float, inverse: bool = False) -> BookWalk:
    """Fill ``amount`` (> 0) from ``levels``, best first (:meth:`OrderBook.levels`). The
    average price is amount-weighted, or, for an inverse instrument (amounts in USD of
    contracts), the harmonic mean ``filled / sum(amount_i / price_i)``, the price at which the
    same USD amount buys the same coin (as Deribit reports an inverse fill's average)."""
    filled, cost, used = 0.0, 0.0, 0
    for price, size in levels:
        if filled >= amount:
            break
        take = min(size, amount - filled)
        cost += take / price if inverse else take * price
        filled += take
        used += 1
    average = math.nan
    if filled > 0.0:
        average = filled / cost if inverse else cost / filled
    return BookWalk(filled=filled, average_price=average, complete=filled >= amount, levels=used)


def slippage_usd(
    side: Side, filled: float, average_price: float, mid: float, inverse: bool
) -> float:
    """What filling ``filled`` at ``average_price`` costs beside the ``mid``, USD (>= 0 for a
    walk through a book whose levels are on their side of the mid).

    A linear instrument (amount in units of the underlying, price in USD): a buy costs
    ``filled x (average_price - mid)``, a sell ``filled x (mid - average_price)``. An inverse
    one (Deribit's futures and perpetuals: amount in USD of contracts, P&L in coin): a long of
    ``Q`` USD bought at ``p`` is worth ``Q x (1/p - 1/m)`` coin at the mid ``m``, that is
    ``Q x (m/p - 1)`` USD, so a buy costs ``Q x (1 - m/p)`` and a sell ``Q x (m/p - 1)``.
    """
    sign = 1.0 if side == "buy" else -1.0
    if inverse:
        return sign * filled * (1.0 - mid / average_price)
    return sign * filled * (average_price - mid)


@dataclass(frozen=True, slots=True)
class HedgeSlippage:
    """The expected cost of trading a suggested hedge at once against the book.

    Attributes:
        side: ``buy`` (a positive hedge quantity) or ``sell``.
        amount: the hedge's size in the book's amount unit (Deribit's futures and perpetuals:
            USD of contracts; linear ones: coin).
        filled: how much of it the book's levels hold.
        average_price: of the fill (harmonic for inverse instruments; NaN: nothing filled).
        mid: the book's mid (NaN: a side is empty).
        slippage_usd: the fill's cost beside the mid, USD (:func:`slippage_usd`; NaN without
            a mid or a fill).
        complete: the whole amount filled within the levels held.
        levels: levels reached.
    """

    side: Side
    amount: float
    filled: float
    average_price: float
    mid: float
    slippage_usd: float
    complete: bool
    levels: int


def hedge_slippage(book: OrderBook, quantity: float, inverse: bool) -> HedgeSlippage:
    """Walk ``book`` for a hedge of ``quantity`` (signed, positive buys; the hedge payload's
    ``quantity``, in the book's amount unit) and price the fill against the mid."""
    side: Side = "buy" if quantity >= 0.0 else "sell"
    amount = abs(quantity)
    mid = book.mid
    got = walk(book.levels(side), amount, inverse) if amount > 0.0 else walk([], 0.0)
    cost = math.nan
    if amount == 0.0:
        cost = 0.0
    elif got.filled > 0.0 and math.isfinite(mid):
        cost = slippage_usd(side, got.filled, got.average_price, mid, inverse)
    return HedgeSlippage(
        side=side,
        amount=amount,
        filled=got.filled,
        average_price=got.average_price,
        mid=mid,
        slippage_usd=cost,
        complete=got.complete,
        levels=got.levels,
    )
