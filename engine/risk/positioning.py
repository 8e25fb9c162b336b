"""Open interest and dealer gamma, on plain arrays (docs/positioning.md).

One expiry's (or one underlying's) options as columns: strike, call or put, forward, years to
expiry, vol, open interest and volume (underlying units). From them:

- open interest and volume by strike, calls and puts apart, and the put/call ratios;
- max pain: the strike at which the options' holders would be paid least at expiry;
- dealer gamma exposure (GEX): the dealers' position (an assumption, :data:`Dealer`) times each
  option's cash gamma, USD of delta per 1 % move, by strike and in total;
- the gamma profile: total GEX with the spot (every forward with it) moved over a grid, and the
  zero-gamma level where it changes sign;
- :class:`Session`: their changes since the session started and over a recent window.

Nothing here reads a clock: times come in as ``now_ns``.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Final, Literal

import msgspec
import numpy as np
import numpy.typing as npt

from engine.constraints import PositiveFloat
from engine.gamma_kernels import gamma_profile_kernel, option_gex_kernel

__all__ = [
    "DEALERS",
    "Dealer",
    "OptionInterest",
    "PositioningConfig",
    "Session",
    "Snapshot",
    "by_strike",
    "dealer_position",
    "gamma_profile",
    "gamma_profile_numpy",
    "max_pain",
    "option_gex",
    "put_call_ratio",
    "zero_gamma",
]

F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

Dealer = Literal["long_calls_short_puts", "short_calls_long_puts", "book"]
"""Who holds the other side of the open interest (docs/positioning.md, "Dealer positions"):

- ``long_calls_short_puts``: the usual convention: customers sell calls (overwriting) and buy
  puts (protection), so dealers are long the calls' and short the puts' open interest;
- ``short_calls_long_puts``: its opposite (customers buy calls and sell puts);
- ``book``: dealers are positioned as the desk's own books are, option by option: the sign of
  the desk's net position in each option times its open interest (options the desk does not
  hold count 0)."""

DEALERS: Final[tuple[Dealer, ...]] = ("long_calls_short_puts", "short_calls_long_puts", "book")


class PositioningConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``[risk.positioning]``: the ``positioning`` family (docs/config.md).

    Attributes:
        enabled: compute and publish it (nothing is published while no feed carries open
            interest).
        interval_s: its period.
        dealer: the dealer-position assumption (:data:`Dealer`).
        books: with ``dealer = "book"``, the books that make the desk (empty: every book).
        levels: spot levels of the gamma profile.
        range_pct: the profile's levels run from ``-range_pct`` to ``+range_pct`` percent of
            the spot.
        window_s: the recent window of the change signals (``*_change_window``).
    """

    enabled: bool = True
    interval_s: PositiveFloat = 10.0
    dealer: Dealer = "long_calls_short_puts"
    books: list[str] = []
    levels: Annotated[int, msgspec.Meta(ge=3, le=10_000)] = 200
    range_pct: Annotated[float, msgspec.Meta(gt=0.0, lt=100.0)] = 20.0
    window_s: PositiveFloat = 900.0

    def __post_init__(self) -> None:
        if self.books and self.dealer != "book":
            raise ValueError(
                f"risk.positioning.books: only with dealer = 'book' (dealer is {self.dealer!r})"
            )

    def moves(self) -> F64:
        """The profile's levels as multiples of the spot, ascending (1.0 among them when
        ``levels`` is odd)."""
        r = self.range_pct / 100.0
        return np.linspace(1.0 - r, 1.0 + r, self.levels)


@dataclass(frozen=True, slots=True)
class OptionInterest:
    """Options with their open interest, one row each (one expiry, or one underlying's).

    Attributes:
        strike: USD. is_call: calls (else puts).
        forward: the option's expiry forward, USD. T: years to expiry. sigma: vol (decimal;
            NaN: none, the option counts in open interest but not in gamma).
        oi: open interest, underlying units. volume: 24-hour volume, underlying units (NaN:
            not known).
        desk: the desk's net position, underlying units (0: none held).
    """

    strike: F64
    is_call: Bools
    forward: F64
    T: F64
    sigma: F64
    oi: F64
    volume: F64
    desk: F64

    def take(self, rows: npt.NDArray[np.intp]) -> OptionInterest:
        """The options at ``rows``."""
        return OptionInterest(*(np.ascontiguousarray(getattr(self, f)[rows]) for f in _FIELDS))


_FIELDS: Final = ("strike", "is_call", "forward", "T", "sigma", "oi", "volume", "desk")


def dealer_position(opts: OptionInterest, dealer: Dealer) -> F64:
    """The dealers' assumed position in each option, underlying units (:data:`Dealer`)."""
    if dealer == "book":
        return np.sign(opts.desk) * opts.oi
    sign = np.where(opts.is_call, 1.0, -1.0)
    return sign * opts.oi if dealer == "long_calls_short_puts" else -sign * opts.oi


def _contiguous(*arrays: F64) -> list[F64]:
    out = [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]
    if len({a.shape for a in out}) != 1 or out[0].ndim != 1:
        raise ValueError("positioning columns must be 1-D and of one length")
    return out


def option_gex(opts: OptionInterest) -> F64:
    """Each option's cash gamma per unit of underlying at its forward, USD per 1 % move
    (:mod:`engine.gamma_kernels`); NaN where it cannot be computed (no vol, bad input)."""
    strike, forward, T, sigma = _contiguous(opts.strike, opts.forward, opts.T, opts.sigma)
    out = np.empty_like(strike)
    option_gex_kernel(strike, forward, T, sigma, out, np.empty(strike.shape, np.int8))
    return out


def gamma_profile(opts: OptionInterest, weight: F64, moves: F64) -> F64:
    """Total dealer GEX with every forward at ``moves[k]`` times its own (vols held), USD per
    1 % move, one per move (:func:`engine.gamma_kernels.gamma_profile_kernel`); options that
    cannot be valued count 0."""
    strike, forward, T, sigma, w = _contiguous(
        opts.strike, opts.forward, opts.T, opts.sigma, weight
    )
    m = np.ascontiguousarray(moves, dtype=np.float64)
    out = np.empty_like(m)
    gamma_profile_kernel(strike, forward, T, sigma, w, m, out, np.empty(strike.shape, np.int8))
    return out


def gamma_profile_numpy(opts: OptionInterest, weight: F64, moves: F64) -> F64:
    """:func:`gamma_profile` in plain numpy (one (levels, options) matrix): the reference the
    tests and the benchmark compare the kernel with."""
    ok = (
        np.isfinite(opts.sigma) & (opts.sigma > 0) & (opts.T > 0) & (opts.forward > 0)
        & (opts.strike > 0) & np.isfinite(weight)
    )  # fmt: skip
    K, F, T, s, w = (a[ok] for a in (opts.strike, opts.forward, opts.T, opts.sigma, weight))
    sd = s * np.sqrt(T)
    Fm = F[None, :] * moves[:, None]
    d1 = np.log(Fm / K) / sd + 0.5 * sd
    cash = np.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi) * Fm / sd / 100.0
    result: F64 = cash @ w
    return result


def zero_gamma(levels: F64, profile: F64, spot: float) -> float | None:
    """The spot level where the profile changes sign, interpolated linearly between the two
    grid levels around it; of several, the one nearest ``spot``; None when it keeps one sign
    (or is all NaN). A level where the profile is exactly 0 between levels of opposite signs
    is itself the crossing."""
    best: float | None = None
    y = profile
    for k in range(len(levels) - 1):
        a, b = y[k], y[k + 1]
        if not (math.isfinite(a) and math.isfinite(b)):
            continue
        if a == 0.0 or (a > 0.0) == (b > 0.0) or b == 0.0:
            continue  # no strict sign change in (k, k+1]; a zero is handled below
        x = levels[k] + (levels[k + 1] - levels[k]) * a / (a - b)
        if best is None or abs(x - spot) < abs(best - spot):
            best = float(x)
    for k in range(1, len(levels) - 1):
        if y[k] == 0.0 and y[k - 1] * y[k + 1] < 0.0:
            x = float(levels[k])
            if best is None or abs(x - spot) < abs(best - spot):
                best = x
    return best


def max_pain(strike: F64, is_call: Bools, oi: F64) -> tuple[float | None, float | None]:
    """The strike (of those listed) that minimises what the holders of the open interest are
    paid at expiry if the underlying settles there, and that payment, USD:

        payout(S) = sum over calls of oi * max(S - K, 0) + sum over puts of oi * max(K - S, 0)

    The lowest such strike on a tie; (None, None) without open interest."""
    if strike.size == 0 or not np.nansum(oi) > 0.0:
        return None, None
    candidates = np.unique(strike)
    s = candidates[:, None]
    intrinsic = np.where(is_call, np.maximum(s - strike, 0.0), np.maximum(strike - s, 0.0))
    payout = np.nan_to_num(intrinsic * oi).sum(axis=1)
    best = int(np.argmin(payout))
    return float(candidates[best]), float(payout[best])


def by_strike(strike: F64, *columns: F64) -> tuple[F64, list[F64]]:
    """The distinct strikes, ascending, and each column summed per strike (NaN counts 0)."""
    strikes, inverse = np.unique(strike, return_inverse=True)
    sums = [
        np.bincount(inverse, np.nan_to_num(c), len(strikes)).astype(np.float64) for c in columns
    ]
    return strikes, sums


def put_call_ratio(puts: float, calls: float) -> float | None:
    """``puts / calls``; None when calls are 0 or either is not finite."""
    if not (math.isfinite(puts) and math.isfinite(calls)) or calls <= 0.0:
        return None
    return puts / calls


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The figures a :class:`Session` follows, at one time."""

    ts_ns: int
    oi_total: float
    gex_total: float | None
    zero_gamma: float | None


@dataclass(frozen=True, slots=True)
class Changes:
    """Changes of the followed figures (None: one end is not known)."""

    session_start_ns: int
    window_start_ns: int
    oi_session: float
    oi_window: float
    gex_session: float | None
    gex_window: float | None
    zero_gamma_session: float | None
    zero_gamma_window: float | None
    oi_by_strike_session: dict[float, float]


def _diff(now: float | None, then: float | None) -> float | None:
    return None if now is None or then is None else now - then


@dataclass(slots=True)
class _Track:
    first: Snapshot
    first_oi: dict[float, float]
    recent: deque[Snapshot] = field(default_factory=deque)


class Session:
    """The followed figures of every key (an underlying and expiry) since the session started
    (the first time the key was seen) and over the last ``window_s``.

    The window's change compares with the latest snapshot at least ``window_s`` old, or, in a
    session younger than that, with the first.
    """

    __slots__ = ("_tracks", "window_ns")

    def __init__(self, window_s: float) -> None:
        self.window_ns = round(window_s * 1e9)
        self._tracks: dict[str, _Track] = {}

    def update(self, key: str, snap: Snapshot, oi_by_strike: dict[float, float]) -> Changes:
        """Record ``snap`` (and the open interest by strike) for ``key``; the changes since."""
        t = self._tracks.get(key)
        if t is None:
            t = self._tracks[key] = _Track(snap, dict(oi_by_strike))
        for strike, oi in oi_by_strike.items():
            t.first_oi.setdefault(strike, oi)  # a strike seen later starts from then
        cutoff = snap.ts_ns - self.window_ns
        recent = t.recent
        while len(recent) >= 2 and recent[1].ts_ns <= cutoff:
            recent.popleft()
        base = recent[0] if recent and recent[0].ts_ns <= cutoff else t.first
        recent.append(snap)
        first = t.first
        return Changes(
            session_start_ns=first.ts_ns,
            window_start_ns=base.ts_ns,
            oi_session=snap.oi_total - first.oi_total,
            oi_window=snap.oi_total - base.oi_total,
            gex_session=_diff(snap.gex_total, first.gex_total),
            gex_window=_diff(snap.gex_total, base.gex_total),
            zero_gamma_session=_diff(snap.zero_gamma, first.zero_gamma),
            zero_gamma_window=_diff(snap.zero_gamma, base.zero_gamma),
            oi_by_strike_session={k: v - t.first_oi[k] for k, v in oi_by_strike.items()},
        )
