"""Payload parts of US listed options (docs/us-options.md, docs/margin.md, docs/redis.md): the
US margin of a book (inside the ``margin`` payload) and the implied forwards of each chain (the
``forwards`` family). Money is USD for the whole position; a figure that cannot be computed is
null and ``status`` says why."""

from __future__ import annotations

from typing import ClassVar

import msgspec

from engine.outputs.figures import Family
from engine.outputs.header import Header

__all__ = ["CmeSpan", "ForwardsPayload", "RegTLine", "UsMargin"]


class RegTLine(msgspec.Struct, frozen=True, kw_only=True):
    """One margined piece of a book under the strategy-based (Reg T / Cboe) rules.

    Attributes:
        underlying: its class (``SPX``, ``SPY``, ``XSP``).
        rule: ``naked``, ``long``, ``spread``, ``straddle``, ``covered``, ``protective`` or
            ``stock``.
        strategy: the desk's strategy it margins (its text form), or null: paired from the
            flat book as a broker does.
        instruments: its option legs.
        units: units of the piece (contracts per leg: the legs' own signs); 0 for stock.
        shares: shares of stock in it (signed).
        requirement_usd: initial requirement (short options' value included where the rule
            does, long options' cost, Reg T initial on stock).
        maintenance_usd: maintenance requirement.
        deposit_usd: the requirement less the short options' proceeds.
    """

    underlying: str
    rule: str
    strategy: str | None
    instruments: list[str]
    units: float
    shares: float
    requirement_usd: float
    maintenance_usd: float
    deposit_usd: float


class CmeSpan(msgspec.Struct, frozen=True, kw_only=True):
    """CME SPAN of the book's E-mini S&P 500 futures and options (one combined commodity),
    each contract's risk array recomputed by riskd (docs/margin.md#cme-span)."""

    instruments: list[str]
    scenario_losses_usd: list[float]
    scan_risk_usd: float
    spreads: float
    intra_spread_charge_usd: float
    short_option_minimum_usd: float
    risk_requirement_usd: float
    net_option_value_usd: float
    total_usd: float


class UsMargin(msgspec.Struct, frozen=True, kw_only=True):
    """A book's US margin (docs/margin.md#us-margin-in-the-daemon). Lists per class are in the
    order of ``classes``.

    Attributes:
        classes: the option classes margined by Reg T and portfolio margin (the underlyings:
            ``SPX``, ``XSP``, ``SPY``).
        class_kinds: each one's kind: ``broad_index`` (15 %, -8 %/+6 %) or ``equity`` (ETFs:
            20 %, +-15 %).
        reg_t_requirement_usd, reg_t_maintenance_usd, reg_t_deposit_usd: strategy-based
            margin per class.
        reg_t_lines: its pieces, the desk's strategies first.
        pm_worst_loss_usd: Cboe portfolio margin: the worst loss of each class over its
            valuation points.
        pm_minimum_usd: its minimum ($0.375 x multiplier per option contract).
        pm_class_usd: each class's requirement, max(worst loss, minimum).
        pm_groups: the class groups (classes offsetting each other).
        pm_group_usd: each group's requirement.
        span: CME SPAN of the E-mini futures and options (null: none held).
        excluded: positions no rule could value (no vol, no price).
    """

    classes: list[str]
    class_kinds: list[str]
    reg_t_requirement_usd: list[float]
    reg_t_maintenance_usd: list[float]
    reg_t_deposit_usd: list[float]
    reg_t_lines: list[RegTLine]
    pm_worst_loss_usd: list[float]
    pm_minimum_usd: list[float]
    pm_class_usd: list[float]
    pm_groups: list[list[str]]
    pm_group_usd: list[float]
    span: CmeSpan | None
    excluded: list[str]


class ForwardsPayload(Header, frozen=True, kw_only=True):
    """The forward, dividend yield and PV of dividends each expiry of one option chain implies
    by put-call parity over its quotes (:mod:`engine.forwards`). Lists are per expiry, nearest
    first. Key: the chain (``SPX``, ``SPY``, ``XSP``; options on E-mini futures by their
    future, ``ESH7``).

    Attributes:
        underlying: the chain's name (the key).
        spot_index: the index or spot its dividends are measured against (SPX, SPY); for
            options on a future, that future (``ESH7``: no dividends).
        spot: its price now, USD (null: none yet).
        exercise: ``european`` or ``american``: American parity is only an inequality, the
            forward implied from it is approximate (docs/units.md#implied-forwards).
        method: how each forward was estimated (``median`` or ``cboe``).
        expiries, expiry_ns: each expiry, its label and instant (int UNIX ns).
        tte_years: years to it (ACT/365).
        rate: the zero rate discounting it, continuously compounded decimal.
        discount_factor: exp(-rate x tte_years).
        forward: the implied forward, USD (null: no strike quoted on both sides).
        dividend_yield: q of F = S exp((r - q) T), continuously compounded decimal.
        dividend_pv: S - DF F, USD per unit of the underlying.
        residual: weighted RMS of the strikes' parity forwards about it, USD.
        strikes_used: strikes it rests on.
        pivot_strike: the strike of smallest |C - P|, USD.
        status: ``ok``, or why some expiry has no forward.
    """

    family: ClassVar[Family] = "forwards"
    underlying: str
    spot_index: str
    spot: float | None
    exercise: str
    method: str
    expiries: list[str]
    expiry_ns: list[int]
    tte_years: list[float]
    rate: list[float]
    discount_factor: list[float]
    forward: list[float | None]
    dividend_yield: list[float | None]
    dividend_pv: list[float | None]
    residual: list[float | None]
    strikes_used: list[int]
    pivot_strike: list[float | None]
    status: str
    units: dict[str, str]
