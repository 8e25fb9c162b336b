"""Open-interest and dealer-gamma payloads (docs/redis.md "positioning", docs/positioning.md).

Open interest and volume are in underlying units (BTC for BTC options), prices and levels in
USD, gamma exposure in USD of dealer delta per 1 % move of the underlying; a figure that cannot
be computed is null and ``status`` says why."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.outputs.figures import Family
from engine.outputs.header import Header

__all__ = ["GammaProfile", "PositioningPayload", "StrikeFigures"]


class StrikeFigures(msgspec.Struct, frozen=True, kw_only=True):
    """Per strike, ascending (lists in the order of ``strike``)."""

    strike: list[float]
    call_oi: list[float]
    put_oi: list[float]
    call_volume: list[float]
    put_volume: list[float]
    gex: list[float]
    oi_change_session: list[float]


class GammaProfile(msgspec.Struct, frozen=True, kw_only=True):
    """Total dealer GEX with the spot (and every forward with it) at each ``level``, vols,
    strikes and times held."""

    level: list[float]
    gex: list[float | None]


class PositioningPayload(Header, frozen=True, kw_only=True):
    """One underlying's open interest and dealer gamma, for one expiry or (``expiry`` "all")
    every expiry together. Key: ``{underlying}:{expiry}``."""

    family: ClassVar[Family] = "positioning"
    underlying: str
    expiry: str
    expiry_ns: int | None
    dealer: str
    spot: float | None
    options: int
    unpriced: int
    call_oi: float
    put_oi: float
    oi_total: float
    call_volume: float | None
    put_volume: float | None
    put_call_oi: float | None
    put_call_volume: float | None
    max_pain: float | None
    max_pain_payout_usd: float | None
    gex_calls: float
    gex_puts: float
    gex_total: float
    zero_gamma: float | None
    spot_minus_zero_gamma: float | None
    strikes: StrikeFigures
    profile: GammaProfile
    session_start_ns: int
    window_start_ns: int
    oi_change_session: float
    oi_change_window: float
    gex_change_session: float | None
    gex_change_window: float | None
    zero_gamma_move_session: float | None
    zero_gamma_move_window: float | None
    status: str
    units: dict[str, str]
