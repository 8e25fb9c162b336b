"""The daemon's ``positioning`` payloads: open interest and dealer gamma per underlying and
expiry, from the latest open interest of every option (docs/positioning.md).

The risk task copies the inbox's open interest (:meth:`engine.inbox.Inbox.interest`) on the
event loop; :meth:`Positioning.payloads` does the rest in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np

from engine.daycount import year_fraction
from engine.events import OpenInterest, Quote
from engine.instruments import Instrument, Kind
from engine.lots import expiry_label
from engine.outputs import GammaProfile, PositioningPayload, StrikeFigures
from engine.outputs.header import NS_PER_MS
from engine.risk import positioning as pos
from engine.state import BookRisk

__all__ = ["ALL_EXPIRIES", "Positioning"]

ALL_EXPIRIES: Final = "all"
"""The ``expiry`` of the payload of every expiry of an underlying together."""

UNITS: Final = {
    "oi": "underlying units",
    "volume": "underlying units per 24 h",
    "put_call": "ratio",
    "max_pain": "USD",
    "max_pain_payout_usd": "USD",
    "gex": "USD per 1% move",
    "spot": "USD",
    "zero_gamma": "USD",
    "profile.level": "USD",
    "profile.gex": "USD per 1% move",
    "oi_change": "underlying units",
    "zero_gamma_move": "USD",
}

Interest = Quote | OpenInterest


@dataclass(frozen=True, slots=True)
class _Row:
    expiry_ns: int
    strike: float
    is_call: bool
    forward: float
    T: float
    sigma: float
    oi: float
    volume: float
    desk: float


def _underlying(inst: Instrument) -> str:
    """The underlying as option chains name it (``BTC``; linear options ``BTC_USDC``)."""
    return inst.underlying if inst.is_inverse else f"{inst.underlying}_{inst.quote_currency}"


def _num(x: float | None) -> float:
    return math.nan if x is None else x


def _opt(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


class Positioning:
    """Builds the ``positioning`` payloads and keeps the session's figures for their changes.

    Args:
        config: ``[risk.positioning]``.
    """

    __slots__ = ("config", "session")

    def __init__(self, config: pos.PositioningConfig) -> None:
        self.config = config
        self.session = pos.Session(config.window_s)

    def payloads(
        self,
        interest: Mapping[str, Interest],
        lookup: Callable[[str], Instrument | None],
        books: list[BookRisk],
        now: int,
        valuation: int,
    ) -> list[tuple[str, PositioningPayload]]:
        """One payload per underlying and expiry with open interest, and one per underlying of
        all its expiries, keyed ``{underlying}:{expiry}``.

        Args:
            interest: the latest open interest per option (:meth:`engine.inbox.Inbox.interest`).
            lookup: the instrument of a name (the registry's ``get``).
            books: the books (for ``dealer = "book"``: the desk's positions).
            now: the payloads' time, int UNIX ns. valuation: the valuation time.
        """
        desk = self._desk(books)
        chains: dict[str, list[_Row]] = {}
        spots: dict[str, tuple[int, float]] = {}
        for name, e in interest.items():
            inst = lookup(name)
            if inst is None or inst.kind != Kind.OPTION or e.open_interest is None:
                continue
            expiry_ns = inst.expiry_ns or 0
            if expiry_ns <= valuation:
                continue
            und = _underlying(inst)
            if e.index_price is not None and e.ts_event >= spots.get(und, (-1, 0.0))[0]:
                spots[und] = (e.ts_event, e.index_price)
            chains.setdefault(und, []).append(
                _Row(
                    expiry_ns=expiry_ns,
                    strike=float(inst.strike or math.nan),
                    is_call=bool(inst.is_call),
                    forward=_num(e.underlying_price),
                    T=year_fraction(valuation, expiry_ns),
                    sigma=_num(e.iv),
                    oi=e.open_interest,
                    volume=_num(e.volume),
                    desk=desk.get(name, 0.0),
                )
            )
        out = []
        for und, rows in sorted(chains.items()):
            opts, expiry = _columns(rows)
            spot = spots[und][1] if und in spots else _front_forward(opts, expiry)
            expiries = sorted(set(expiry.tolist()))
            for exp_ns in expiries:
                at = np.flatnonzero(expiry == exp_ns)
                label = expiry_label(exp_ns, Kind.OPTION)
                out.append(self._one(und, label, exp_ns, opts.take(at), spot, now, valuation))
            out.append(self._one(und, ALL_EXPIRIES, None, opts, spot, now, valuation))
        return [(f"{p.underlying}:{p.expiry}", p) for p in out]

    def _desk(self, books: list[BookRisk]) -> dict[str, float]:
        """The desk's net position per option, underlying units (``dealer = "book"`` only)."""
        if self.config.dealer != "book":
            return {}
        wanted = set(self.config.books)
        desk: dict[str, float] = {}
        for br in books:
            if wanted and br.book not in wanted:
                continue
            for name, w in zip(br.instruments, br.positions.weight.tolist(), strict=True):
                desk[name] = desk.get(name, 0.0) + w
        return desk

    def _one(
        self,
        und: str,
        expiry: str,
        expiry_ns: int | None,
        opts: pos.OptionInterest,
        spot: float,
        now: int,
        valuation: int,
    ) -> PositioningPayload:
        cfg = self.config
        calls = opts.is_call
        weight = pos.dealer_position(opts, cfg.dealer)
        gex = weight * pos.option_gex(opts)
        priced = np.isfinite(gex)
        gex = np.where(priced, gex, 0.0)
        moves = cfg.moves()
        profile = pos.gamma_profile(opts, weight, moves)
        levels = spot * moves
        zero = pos.zero_gamma(levels, profile, spot) if math.isfinite(spot) else None
        call_oi, put_oi = np.where(calls, opts.oi, 0.0), np.where(calls, 0.0, opts.oi)
        call_vol = np.where(calls, opts.volume, 0.0)
        put_vol = np.where(calls, 0.0, opts.volume)
        strikes, (c_oi, p_oi, c_vol, p_vol, s_gex) = pos.by_strike(
            opts.strike, call_oi, put_oi, call_vol, put_vol, gex
        )
        has_volume = bool(np.isfinite(opts.volume).any())
        vols = (float(np.nansum(call_vol)), float(np.nansum(put_vol))) if has_volume else None
        pain, payout = (
            pos.max_pain(opts.strike, calls, opts.oi) if expiry_ns is not None else (None, None)
        )
        gex_total = float(gex.sum())
        oi_total = float(opts.oi.sum())
        changes = self.session.update(
            f"{und}:{expiry}",
            pos.Snapshot(now, oi_total, gex_total, zero),
            dict(zip(strikes.tolist(), (c_oi + p_oi).tolist(), strict=True)),
        )
        unpriced = int((~priced).sum())
        return PositioningPayload(
            ts_ns=now,
            ts=now // NS_PER_MS,
            valuation_ts_ns=valuation,
            underlying=und,
            expiry=expiry,
            expiry_ns=expiry_ns,
            dealer=cfg.dealer,
            spot=_opt(spot),
            options=len(opts.oi),
            unpriced=unpriced,
            call_oi=float(call_oi.sum()),
            put_oi=float(put_oi.sum()),
            oi_total=oi_total,
            call_volume=None if vols is None else vols[0],
            put_volume=None if vols is None else vols[1],
            put_call_oi=pos.put_call_ratio(float(put_oi.sum()), float(call_oi.sum())),
            put_call_volume=None if vols is None else pos.put_call_ratio(vols[1], vols[0]),
            max_pain=pain,
            max_pain_payout_usd=payout,
            gex_calls=float(gex[calls].sum()),
            gex_puts=float(gex[~calls].sum()),
            gex_total=gex_total,
            zero_gamma=zero,
            spot_minus_zero_gamma=None if zero is None else spot - zero,
            strikes=StrikeFigures(
                strike=strikes.tolist(),
                call_oi=c_oi.tolist(),
                put_oi=p_oi.tolist(),
                call_volume=c_vol.tolist(),
                put_volume=p_vol.tolist(),
                gex=s_gex.tolist(),
                oi_change_session=[changes.oi_by_strike_session[k] for k in strikes.tolist()],
            ),
            profile=GammaProfile(level=levels.tolist(), gex=[_opt(x) for x in profile.tolist()]),
            session_start_ns=changes.session_start_ns,
            window_start_ns=changes.window_start_ns,
            oi_change_session=changes.oi_session,
            oi_change_window=changes.oi_window,
            gex_change_session=changes.gex_session,
            gex_change_window=changes.gex_window,
            zero_gamma_move_session=changes.zero_gamma_session,
            zero_gamma_move_window=changes.zero_gamma_window,
            status=_status(len(opts.oi), unpriced, spot),
            units=UNITS,
        )


def _columns(rows: list[_Row]) -> tuple[pos.OptionInterest, np.ndarray]:
    """The rows as columns (a missing forward: the median of its expiry's), and each row's
    expiry."""
    expiry = np.array([r.expiry_ns for r in rows], dtype=np.int64)
    forward = np.array([r.forward for r in rows])
    for e in np.unique(expiry):
        at = expiry == e
        known = forward[at & np.isfinite(forward)]
        if known.size:
            forward[at & ~np.isfinite(forward)] = float(np.median(known))
    opts = pos.OptionInterest(
        strike=np.array([r.strike for r in rows]),
        is_call=np.array([r.is_call for r in rows], dtype=np.bool_),
        forward=forward,
        T=np.array([r.T for r in rows]),
        sigma=np.array([r.sigma for r in rows]),
        oi=np.array([r.oi for r in rows]),
        volume=np.array([r.volume for r in rows]),
        desk=np.array([r.desk for r in rows]),
    )
    return opts, expiry


def _front_forward(opts: pos.OptionInterest, expiry: np.ndarray) -> float:
    """The forward of the nearest expiry that has one (the spot when no index came); NaN."""
    for e in np.unique(expiry):
        known = opts.forward[(expiry == e) & np.isfinite(opts.forward)]
        if known.size:
            return float(np.median(known))
    return math.nan


def _status(options: int, unpriced: int, spot: float) -> str:
    if not math.isfinite(spot):
        return "no spot: no index price or forward came with the open interest"
    if unpriced:
        return (
            f"partial: {unpriced} of {options} options without a vol or forward count in open "
            "interest only"
        )
    return "ok"
