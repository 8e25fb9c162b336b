"""Settlement at expiry: the delivery price, a time-weighted average (TWAP) of the index over the
half hour before expiry, and what each position settles for (docs/strategies.md).

Deribit settles options and futures at the time-weighted average of its index over the last
30 minutes before expiry (08:00 UTC), the index being computed every few seconds.

TWAP convention: each index sample's price holds from its timestamp until the next sample's (the
last one until the window's end). The window ``[start, end)`` is ``[expiry - 30 min, expiry)``;
samples at or after ``end`` are ignored. The last sample before ``start`` (if any) holds from
``start`` until the first sample inside; without one, the stretch before the first sample is
left out of the average. A stretch longer than ``max_gap_ns`` without a new sample (counted from
``start``, to ``end``) makes the status :attr:`TwapStatus.GAP`; no sample at all before ``end``
makes it :attr:`TwapStatus.NO_SAMPLES`, with a NaN price.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import numpy as np
import numpy.typing as npt

from engine.instruments import Kind
from engine.outputs import SettledPosition, SettlementPayload
from engine.state import Portfolio, SettledLot, expiry_label

__all__ = [
    "MAX_GAP_NS",
    "SETTLEMENT_UNITS",
    "WINDOW_NS",
    "OnSettle",
    "SettlementEvent",
    "SettlementPnL",
    "Settler",
    "Twap",
    "TwapAccumulator",
    "TwapStatus",
    "intrinsic",
    "settle",
    "settlement_pnl",
    "settlement_twap",
]

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

WINDOW_NS = 30 * 60 * 1_000_000_000
"""Deribit's averaging window: the 30 minutes before expiry, in ns."""
MAX_GAP_NS = 60 * 1_000_000_000
"""Longest stretch of the window without a new index sample before the TWAP is flagged
(:attr:`TwapStatus.GAP`): a minute, where Deribit samples its index every few seconds."""


class TwapStatus(StrEnum):
    """How complete the samples behind a :class:`Twap` are.

    Attributes:
        OK: the price is known from the window's start to its end, and no stretch of it is
            longer than ``max_gap_ns`` without a new sample.
        GAP: some stretch is longer (including the start when no sample precedes it: that
            stretch is left out of the average).
        NO_SAMPLES: no sample before the window's end: the price is NaN.
    """

    OK = "ok"
    GAP = "gap"
    NO_SAMPLES = "no_samples"


@dataclass(frozen=True, slots=True)
class Twap:
    """A time-weighted average of index samples over ``[start_ns, end_ns)`` (int UNIX ns).

    Attributes:
        price: the average, in the index's currency (USD); NaN when ``status`` is NO_SAMPLES.
        n_samples: samples inside the window (not counting the one carried in from before it).
        covered_ns: time of the window whose price is known (the average's denominator).
        longest_gap_ns: the longest stretch of the window without a new sample.
        status: see :class:`TwapStatus`.
        start_ns, end_ns: the window; ``end_ns`` is the expiry once settled.
    """

    price: float
    n_samples: int
    covered_ns: int
    longest_gap_ns: int
    status: TwapStatus
    start_ns: int
    end_ns: int


def _check_window(expiry_ns: int, window_ns: int, max_gap_ns: int) -> None:
    if not isinstance(expiry_ns, int):
        raise ValueError(f"expiry_ns must be an int (UNIX ns), got {expiry_ns!r}")
    for name, v in (("window_ns", window_ns), ("max_gap_ns", max_gap_ns)):
        if not (isinstance(v, int) and v > 0):
            raise ValueError(f"{name} must be an int > 0 (ns), got {v!r}")


def _twap(
    weighted: float, covered: int, longest: int, n: int, start: int, end: int, max_gap: int
) -> Twap:
    if covered == 0:
        status, price = TwapStatus.NO_SAMPLES, math.nan
    else:
        status = TwapStatus.GAP if longest > max_gap else TwapStatus.OK
        price = weighted / covered
    return Twap(price, n, covered, longest, status, start, end)


def settlement_twap(
    ts_ns: npt.ArrayLike,
    price: npt.ArrayLike,
    expiry_ns: int,
    *,
    window_ns: int = WINDOW_NS,
    max_gap_ns: int = MAX_GAP_NS,
) -> Twap:
    """The settlement price: TWAP of index samples over the ``window_ns`` before ``expiry_ns``.

    Args:
        ts_ns: sample times, int UNIX ns, non-decreasing (of equal times the last one counts).
        price: the index at each time, USD, finite and > 0.
        expiry_ns: the expiry, int UNIX ns (Deribit: 08:00 UTC); the window ends there.
        window_ns: length of the window (default 30 minutes).
        max_gap_ns: longest stretch without a sample before the status is GAP.

    Returns:
        The TWAP (module docstring: each sample holds until the next) and its status.

    Raises:
        ValueError: ``ts_ns`` is not 1-D integer and non-decreasing, ``price`` not of its shape
            or not finite and > 0, or a window argument is not a positive int.
    """
    ts = np.asarray(ts_ns)
    p = np.asarray(price, dtype=np.float64)
    _check_window(expiry_ns, window_ns, max_gap_ns)
    if ts.ndim != 1 or ts.dtype.kind not in "iu" or p.shape != ts.shape:
        raise ValueError(
            f"ts_ns must be 1-D integer ns and price of its shape, got {ts.dtype} {ts.shape} "
            f"and {p.shape}"
        )
    ts = ts.astype(np.int64)
    drops = np.flatnonzero(np.diff(ts) < 0)
    if drops.size:
        i = drops[0]
        raise ValueError(f"ts_ns must be non-decreasing, got {ts[i + 1]} after {ts[i]}")
    bad = ~(np.isfinite(p) & (p > 0.0))
    if bad.any():
        raise ValueError(f"price must be finite and > 0, got {float(p[bad][0])!r}")
    start = expiry_ns - window_ns
    n = int(np.searchsorted(ts, expiry_ns, side="left"))  # samples before the expiry
    first = int(np.searchsorted(ts[:n], start, side="left"))  # first sample inside the window
    carry = max(first - 1, 0)  # the last sample before the window, if any, holds from start
    held_from = np.maximum(ts[carry:n], start)
    held_ns = np.append(held_from[1:], expiry_ns) - held_from
    gaps = np.diff(np.concatenate(([start], ts[first:n], [expiry_ns])))
    weighted = float(p[carry:n] @ held_ns.astype(np.float64))
    covered = int(held_ns.sum())
    return _twap(weighted, covered, int(gaps.max()), n - first, start, expiry_ns, max_gap_ns)


class TwapAccumulator:
    """The settlement TWAP of one index and expiry, fed one sample at a time in O(1) memory.

    ``value(expiry_ns)`` equals :func:`settlement_twap` over the samples added; before the
    expiry, ``value(now_ns)`` is the running average over ``[start, now_ns)``.

    Args:
        expiry_ns: the expiry, int UNIX ns.
        window_ns: length of the window (default 30 minutes).
        max_gap_ns: longest stretch without a sample before the status is GAP.
    """

    __slots__ = (
        "_covered",
        "_last_price",
        "_last_ts",
        "_longest",
        "_n",
        "_start",
        "_weighted",
        "expiry_ns",
        "max_gap_ns",
    )

    def __init__(
        self, expiry_ns: int, *, window_ns: int = WINDOW_NS, max_gap_ns: int = MAX_GAP_NS
    ) -> None:
        _check_window(expiry_ns, window_ns, max_gap_ns)
        self.expiry_ns = expiry_ns
        self.max_gap_ns = max_gap_ns
        self._start = expiry_ns - window_ns
        self._last_ts: int | None = None
        self._last_price = math.nan
        self._weighted = 0.0  # Σ price x held ns over the closed stretches
        self._covered = 0
        self._longest = 0
        self._n = 0

    def _since(self) -> int:
        """Where the stretch since the latest sample starts inside the window."""
        return self._start if self._last_ts is None else max(self._last_ts, self._start)

    def add(self, ts_ns: int, price: float) -> bool:
        """Add an index sample (int UNIX ns, USD). Returns False, ignoring it, when it is at or
        after the expiry or older than the latest sample.

        Raises:
            ValueError: ``price`` is not finite and > 0.
        """
        if not (math.isfinite(price) and price > 0.0):
            raise ValueError(f"price must be finite and > 0, got {price!r}")
        if ts_ns >= self.expiry_ns or (self._last_ts is not None and ts_ns < self._last_ts):
            return False
        if ts_ns >= self._start:
            since = self._since()
            if self._last_ts is not None:
                self._weighted += self._last_price * (ts_ns - since)
                self._covered += ts_ns - since
            self._longest = max(self._longest, ts_ns - since)
            self._n += 1
        self._last_ts, self._last_price = ts_ns, price
        return True

    def value(self, now_ns: int) -> Twap:
        """The TWAP over ``[start, min(now_ns, expiry))``: the settlement price once
        ``now_ns >= expiry_ns``.

        Raises:
            ValueError: ``now_ns`` is before the window's start or before the latest sample.
        """
        end = min(now_ns, self.expiry_ns)
        since = self._since()
        if end < since:
            raise ValueError(f"now_ns {now_ns} is before the window's start or the last sample")
        tail = end - since
        weighted, covered = self._weighted, self._covered
        if self._last_ts is not None:
            weighted += self._last_price * tail
            covered += tail
        longest = max(self._longest, tail)
        return _twap(weighted, covered, longest, self._n, self._start, end, self.max_gap_ns)


def intrinsic(S: npt.ArrayLike, K: npt.ArrayLike, is_call: npt.ArrayLike) -> FloatArray:
    """max(S - K, 0) for calls, max(K - S, 0) for puts, in the currency of S and K (USD)."""
    s = np.asarray(S, dtype=np.float64)
    k = np.asarray(K, dtype=np.float64)
    return np.maximum(np.where(np.asarray(is_call, dtype=np.bool_), s - k, k - s), 0.0)


@dataclass(frozen=True, slots=True)
class SettlementPnL:
    """What positions settle for, one element per position (the arguments' broadcast shape).

    Attributes:
        value: settlement value of one unit of the position, in its price currency (that of
            ``avg_price``): coin-settled options max(S - K, 0) / S coin (puts max(K - S, 0) / S),
            linear options max(S - K, 0) in the quote currency, futures S (USD per coin).
        pnl: realised P&L against ``avg_price``, in the settlement currency: coin for
            coin-settled instruments, the quote currency for linear ones. NaN without a cost.
        pnl_usd: ``pnl`` in USD: x S for coin-settled instruments (USDC counts as USD).
    """

    value: FloatArray
    pnl: FloatArray
    pnl_usd: FloatArray


def settlement_pnl(
    price: npt.ArrayLike,
    is_option: npt.ArrayLike,
    inverse: npt.ArrayLike,
    is_call: npt.ArrayLike,
    strike: npt.ArrayLike,
    weight: npt.ArrayLike,
    avg_price: npt.ArrayLike,
    *,
    option_value_usd: npt.ArrayLike | None = None,
) -> SettlementPnL:
    """Settle positions at ``price``; every argument broadcasts (numpy rules).

    P&L per position, with w = ``weight``, S = ``price``, a = ``avg_price``:

    - options: w (value - a), value as in :class:`SettlementPnL` (coin or quote currency);
    - linear futures (and anything else not inverse): w (S - a);
    - inverse futures (w a USD notional): w (1/a - 1/S) coin, Deribit's inverse P&L.

    Args:
        price: the settlement price S, USD (:func:`settlement_twap`), finite and > 0.
        is_option: True for options; other rows settle at S (futures, and perpetuals or spot
            when a payoff diagram values them at S).
        inverse: True for coin-settled instruments (Deribit's BTC and ETH options and futures).
        is_call: True for calls (options only).
        strike: in USD, > 0 for options (ignored otherwise).
        weight: position quantity x contract multiplier (docs/units.md), signed.
        avg_price: entry price in the price currency (coin per option for coin-settled options,
            USD per coin for futures); NaN when the position has no cost. It must be > 0 for
            futures, >= 0 for options.
        option_value_usd: USD value of the option rows at ``price``; default their intrinsic
            value (they expire). Payoff diagrams pass a model value for later expiries.

    Raises:
        ValueError: ``price``, ``strike`` or ``avg_price`` out of its domain (names it).
    """
    S, opt, inv, call, K, w, avg = np.broadcast_arrays(
        np.asarray(price, dtype=np.float64), np.asarray(is_option, dtype=np.bool_),
        np.asarray(inverse, dtype=np.bool_), np.asarray(is_call, dtype=np.bool_),
        np.asarray(strike, dtype=np.float64), np.asarray(weight, dtype=np.float64),
        np.asarray(avg_price, dtype=np.float64),
    )  # fmt: skip
    cost_ok = np.isfinite(avg) & ((avg > 0.0) | (opt & (avg == 0.0)))
    for name, arr, bad in (
        ("price", S, ~(np.isfinite(S) & (S > 0.0))),
        ("strike", K, opt & ~(np.isfinite(K) & (K > 0.0))),
        ("avg_price", avg, ~(np.isnan(avg) | cost_ok)),
        ("weight", w, ~np.isfinite(w)),
    ):
        if bad.any():
            raise ValueError(
                f"{name} out of its domain: {float(arr[bad][0])!r} at {np.argwhere(bad)[0]}"
            )
    usd = intrinsic(S, K, call) if option_value_usd is None else np.asarray(option_value_usd)
    value = np.where(opt, np.where(inv, usd / S, usd), S)
    inv_future = inv & ~opt
    recip = 1.0 / np.where(inv_future, avg, 1.0)  # no division for the other rows
    pnl = w * np.where(inv_future, recip - 1.0 / S, value - avg)
    return SettlementPnL(value=value, pnl=pnl, pnl_usd=np.where(inv, pnl * S, pnl))


@dataclass(frozen=True, slots=True)
class SettlementEvent:
    """One index's settlement at one expiry, and what its positions settled for.

    Attributes:
        twap: the settlement price and how it was computed.
        positions: per position value and realised P&L (:class:`SettlementPnL`).
        pnl_usd_total: the positions' realised P&L in USD; those without a cost count 0.
        n_no_cost: positions without a cost (NaN ``avg_price``, NaN P&L).
    """

    twap: Twap
    positions: SettlementPnL
    pnl_usd_total: float
    n_no_cost: int


def settle(
    twap: Twap,
    is_option: npt.ArrayLike,
    inverse: npt.ArrayLike,
    is_call: npt.ArrayLike,
    strike: npt.ArrayLike,
    weight: npt.ArrayLike,
    avg_price: npt.ArrayLike,
) -> SettlementEvent:
    """Settle the positions of one index and expiry at ``twap.price``.

    Arguments after ``twap`` are those of :func:`settlement_pnl`, one element per position.

    Raises:
        ValueError: the TWAP has no samples (NaN price), or as :func:`settlement_pnl`.
    """
    if twap.status == TwapStatus.NO_SAMPLES:
        raise ValueError(f"twap has no samples before {twap.end_ns}: nothing to settle at")
    res = settlement_pnl(twap.price, is_option, inverse, is_call, strike, weight, avg_price)
    no_cost = np.isnan(res.pnl_usd)
    total = float(res.pnl_usd[~no_cost].sum())
    return SettlementEvent(twap, res, total, int(no_cost.sum()))


# ---------------------------------------------------------------- settling a portfolio's expiries

SETTLEMENT_UNITS: Final = {
    "price": "USD: the time-weighted average of the index over the window (final: the "
    "settlement price; before: running)",
    "quantity": "position quantity (inverse futures: USD)",
    "avg_price": "its price currency: coin per option (coin-settled), else USD",
    "value": "per unit, its price currency: coin-settled options max(S - K, 0) / S coin",
    "pnl": "settlement currency: coin (coin-settled), else USD",
    "pnl_usd": "USD (per book: the sum of its positions')",
    "realised_pnl_usd": "USD, per book: every settlement since the daemon started (with a "
    "fill journal: since the journal began)",
}
"""The unit of each figure of a settlement payload."""

OnSettle = Callable[[str, int, int, Twap], None]
"""Told ``(index, expiry_ns, now_ns, twap)`` before an expiry's positions leave the book (the
runtime journals it first, so that a restart settles it the same)."""


class Settler:
    """Settles a portfolio's expiries as the exchange does (docs/strategies.md): in the 30
    minutes before an expiry it samples the index and publishes the running average; once the
    expiry has passed, its positions leave the book at the window's time-weighted average and
    their realised P&L is recorded and published.

    Attributes:
        realised_pnl_usd: realised P&L of settled positions per book since start, USD.
    """

    def __init__(self) -> None:
        self._twaps: dict[tuple[str, int], TwapAccumulator] = {}  # (index, expiry) in window
        self.realised_pnl_usd: dict[str, float] = {}
        self.settled: dict[str, SettlementPayload] = {}
        """The payload of each expiry settled, by its key ``{index}:{expiry}`` (a checkpoint
        keeps them, to publish them again after a restart as the journal's replay does)."""

    def step(
        self,
        portfolio: Portfolio,
        now_ns: int,
        on_settle: OnSettle | None = None,
        *,
        settle: bool = True,
    ) -> list[SettlementPayload]:
        """Sample each held expiry in its window; settle those that have passed (unless not
        ``settle``: they wait for a later step). Returns the payloads to publish (the running
        averages, and what settled). Call it about once a second."""
        out = []
        for index, expiry_ns in portfolio.held_expiries():
            if now_ns < expiry_ns - WINDOW_NS:
                continue
            key = (index, expiry_ns)
            acc = self._twaps.get(key)
            if acc is None:
                acc = self._twaps[key] = TwapAccumulator(expiry_ns)
            price = portfolio.index_price(index)
            if now_ns < expiry_ns:
                if math.isfinite(price) and price > 0.0:
                    acc.add(now_ns, price)
                if acc.value(now_ns).status != TwapStatus.NO_SAMPLES:
                    out.append(self.payload(index, expiry_ns, acc.value(now_ns), [], now_ns))
                continue
            if not settle:
                continue
            twap = acc.value(now_ns)
            if twap.status == TwapStatus.NO_SAMPLES:  # no index in the window: the latest
                if not (math.isfinite(price) and price > 0.0):
                    continue  # nothing to settle at yet: try again next time
                twap = dataclasses.replace(twap, price=price)
            if on_settle is not None:
                on_settle(index, expiry_ns, now_ns, twap)
            lots = portfolio.settle_expiry(index, expiry_ns)
            del self._twaps[key]
            out.append(self.payload(index, expiry_ns, twap, lots, now_ns))
        return out

    def replay(
        self, portfolio: Portfolio, index: str, expiry_ns: int, twap: Twap, ts_ns: int
    ) -> SettlementPayload:
        """Settle again, at its price, an expiry that settled before a restart (the journal
        says so): its positions leave the book and its P&L is realised as it was."""
        lots = portfolio.settle_expiry(index, expiry_ns)
        return self.payload(index, expiry_ns, twap, lots, ts_ns)

    def payload(
        self, index: str, expiry_ns: int, twap: Twap, lots: list[SettledLot], now_ns: int
    ) -> SettlementPayload:
        """The ``settlement`` payload of one index and expiry: the running average before the
        expiry (``final`` false, no positions), what its positions settled for after it; the
        settled P&L is added to :attr:`realised_pnl_usd`."""
        positions: list[SettledPosition] = []
        by_book: dict[str, float] = {}
        n_no_cost = 0
        if lots:
            avg = np.array([lot.avg_price for lot in lots])
            avg[~np.isnan(avg) & ~(avg >= 0.0)] = math.nan  # a net cost <= 0: no P&L
            event = settle(
                twap,
                [lot.is_option for lot in lots],
                [lot.inverse for lot in lots],
                [lot.is_call for lot in lots],
                [lot.strike if lot.is_option else 1.0 for lot in lots],
                [lot.weight for lot in lots],
                avg,
            )
            n_no_cost = event.n_no_cost
            pos = event.positions
            for k, lot in enumerate(lots):
                pnl_usd = float(pos.pnl_usd[k])
                positions.append(
                    SettledPosition(
                        book=lot.book,
                        instrument=lot.instrument,
                        quantity=lot.quantity,
                        avg_price=float(avg[k]),
                        value=float(pos.value[k]),
                        pnl=float(pos.pnl[k]),
                        pnl_usd=pnl_usd,
                    )
                )
                if math.isfinite(pnl_usd):
                    by_book[lot.book] = by_book.get(lot.book, 0.0) + pnl_usd
                    self.realised_pnl_usd[lot.book] = (
                        self.realised_pnl_usd.get(lot.book, 0.0) + pnl_usd
                    )
            logger.info(
                "settled",
                extra={
                    "index": index,
                    "expiry_ns": expiry_ns,
                    "price": twap.price,
                    "twap_status": twap.status.value,
                    "positions": len(lots),
                    "pnl_usd": event.pnl_usd_total,
                },
            )
        out = SettlementPayload(
            ts_ns=now_ns,
            valuation_ts_ns=None,
            index=index,
            expiry=expiry_label(expiry_ns, Kind.OPTION),
            expiry_ns=expiry_ns,
            final=now_ns >= expiry_ns,
            price=float(twap.price),
            status=twap.status.value,
            n_samples=twap.n_samples,
            covered_ns=twap.covered_ns,
            longest_gap_ns=twap.longest_gap_ns,
            positions=positions,
            pnl_usd=by_book,
            n_no_cost=n_no_cost,
            realised_pnl_usd={b: self.realised_pnl_usd[b] for b in by_book},
            units=SETTLEMENT_UNITS,
        )
        if out.final:
            self.settled[f"{index}:{out.expiry}"] = out
        return out
