"""Instruments: explicit fields for everything riskd prices, and the registry that holds them.

Deribit's names parse into an :class:`Instrument` (:func:`parse_deribit_name`):

=============================  ==============================================================
``BTC-27DEC24-60000-C``        option on BTC, coin-settled (inverse), strike 60 000 USD, call
``MATIC_USDC-9MAR24-1d02-C``   option on MATIC, linear in USDC, strike 1.02 (``d`` = point)
``BTC-27DEC24``                future on BTC expiring 27 Dec 2024, coin-settled
``BTC-PERPETUAL``              perpetual future on BTC, coin-settled
``BTC_USDC-PERPETUAL``         perpetual, linear in USDC
``BTC_USDC``                   spot pair, linear
``btc_usd``                    Deribit's price index (``deribit_price_index.btc_usd``)
=============================  ==============================================================

Every Deribit expiry is 08:00 UTC on the date in the name. The registry can also be filled from
config and from Deribit's ``public/get_instruments`` (:func:`from_deribit_instrument`).

Position units (``multiplier`` turns one unit of position quantity into exposure):

- options, spot and linear futures: quantity x multiplier = units of the underlying
  (Deribit's option amounts are in coin: multiplier 1);
- inverse (coin-settled) futures and perpetuals: quantity is the USD notional, as Deribit's
  ``amount``; quantity x multiplier = USD.
"""

from __future__ import annotations

import calendar
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec

__all__ = [
    "DERIBIT",
    "Instrument",
    "InstrumentRegistry",
    "Kind",
    "Settlement",
    "deribit_expiry_ns",
    "from_deribit_instrument",
    "parse_deribit_name",
]

DERIBIT = "deribit"
"""Venue name of Deribit's instruments."""

_MONTHS = {name.upper(): i for i, name in enumerate(calendar.month_abbr) if name}
_NAME = re.compile(
    r"^(?P<base>[A-Z0-9]+)(?:_(?P<quote>[A-Z0-9]+))?"
    r"(?:-(?P<rest>PERPETUAL|(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
    r"(?:-(?P<strike>\d+(?:d\d+)?)-(?P<cp>[CP]))?))?\Z",
    re.ASCII,  # \d: 0-9 only; \Z: no trailing newline (found by fuzzing)
)
_INDEX = re.compile(r"^(?P<base>[a-z0-9]+)_(?P<quote>[a-z0-9]+)\Z", re.ASCII)


class Kind(StrEnum):
    """What an instrument is."""

    OPTION = "option"
    FUTURE = "future"
    PERPETUAL = "perpetual"
    SPOT = "spot"
    INDEX = "index"


class Settlement(StrEnum):
    """How an instrument settles: in coin (inverse, Deribit BTC/ETH) or in the quote currency."""

    COIN = "coin"
    LINEAR = "linear"


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One tradable (or index) instrument.

    Attributes:
        name: unique name (Deribit's ``instrument_name`` for Deribit instruments).
        kind: option, future, perpetual, spot or index.
        underlying: the base asset (``BTC``, ``MATIC``, ``SPX``).
        quote_currency: currency of prices and strikes (``USD``, ``USDC``).
        settlement: coin (inverse) or linear.
        index: name of the price index (or spot tick) that gives the underlying's price.
        expiry_ns: expiry, int UNIX ns; None for perpetuals, spot and indices.
        strike: in the quote currency; options only.
        is_call: True for calls, False for puts; options only.
        multiplier: position quantity x multiplier = underlying units (options, spot, linear
            futures) or USD (inverse futures and perpetuals).
        venue: ``deribit`` for Deribit's instruments; any other venue's options are priced with
            BSM on spot.
    """

    name: str
    kind: Kind
    underlying: str
    quote_currency: str = "USD"
    settlement: Settlement = Settlement.LINEAR
    index: str
    expiry_ns: int | None = None
    strike: float | None = None
    is_call: bool | None = None
    multiplier: float = 1.0
    venue: str = DERIBIT

    def __post_init__(self) -> None:
        # == rather than `is`: a plain string ("option") is as good as the enum member.
        if self.kind == Kind.OPTION:
            if self.expiry_ns is None or self.strike is None or self.is_call is None:
                raise ValueError(f"option {self.name!r} needs expiry_ns, strike and is_call")
            if not 0.0 < self.strike < math.inf:
                raise ValueError(
                    f"option {self.name!r}: strike must be finite and > 0, got {self.strike}"
                )
        if self.kind == Kind.FUTURE and self.expiry_ns is None:
            raise ValueError(f"future {self.name!r} needs expiry_ns")
        if not self.multiplier > 0.0:
            raise ValueError(f"{self.name!r}: multiplier must be > 0, got {self.multiplier}")

    @property
    def is_inverse(self) -> bool:
        """True for coin-settled instruments whose prices are quoted in coin (options) or
        whose quantity is a USD notional (futures)."""
        return self.settlement == Settlement.COIN


def deribit_expiry_ns(day: int, month: int, year: int) -> int:
    """08:00 UTC on the given date, in int UNIX ns (Deribit's expiry time)."""
    return int(calendar.timegm((year, month, day, 8, 0, 0))) * 1_000_000_000


def parse_deribit_name(name: str) -> Instrument | None:
    """Parse a Deribit instrument or index name; None if it is not one (see module docstring)."""
    m = _NAME.match(name)
    if m is None:
        im = _INDEX.match(name)
        if im is None:
            return None
        return Instrument(
            name=name,
            kind=Kind.INDEX,
            underlying=im["base"].upper(),
            quote_currency=im["quote"].upper(),
            settlement=Settlement.LINEAR,
            index=name,
        )
    base, quote, rest = m["base"], m["quote"], m["rest"]
    settlement = Settlement.COIN if quote is None else Settlement.LINEAR
    quote_ccy = "USD" if quote is None else quote
    index = f"{base.lower()}_{quote_ccy.lower()}"
    common: dict[str, Any] = {
        "name": name,
        "underlying": sys.intern(base),
        "quote_currency": sys.intern(quote_ccy),
        "settlement": settlement,
        "index": sys.intern(index),
    }
    if rest is None:
        if quote is None:
            return None  # a bare currency ("BTC") is not an instrument
        return Instrument(kind=Kind.SPOT, **common)
    if rest == "PERPETUAL":
        return Instrument(kind=Kind.PERPETUAL, **common)
    month = _MONTHS.get(m["mon"])
    if month is None:
        return None
    try:
        expiry_ns = deribit_expiry_ns(int(m["day"]), month, 2000 + int(m["yy"]))
        datetime(2000 + int(m["yy"]), month, int(m["day"]), tzinfo=UTC)  # rejects 31FEB
    except ValueError:
        return None
    if m["strike"] is None:
        return Instrument(kind=Kind.FUTURE, expiry_ns=expiry_ns, **common)
    strike = float(m["strike"].replace("d", "."))
    if not 0.0 < strike < math.inf:  # 400 digits overflow to inf (found by fuzzing)
        return None
    return Instrument(
        kind=Kind.OPTION, expiry_ns=expiry_ns, strike=strike, is_call=m["cp"] == "C", **common
    )


def from_deribit_instrument(info: Mapping[str, Any]) -> Instrument:
    """An :class:`Instrument` from one entry of Deribit's ``public/get_instruments`` result.

    Raises:
        ValueError: a required field is missing or has the wrong type.
    """
    try:
        name = info["instrument_name"]
        if not isinstance(name, str) or not name:
            raise ValueError(f"instrument_name must be a non-empty string, got {name!r}")
        kind_s = str(info["kind"])
        base = str(info["base_currency"])
        quote = str(info.get("counter_currency") or info["quote_currency"])
        inverse = info.get("instrument_type") == "reversed" or (
            info.get("settlement_currency") == base and quote == "USD"
        )
        index = str(info.get("price_index") or f"{base.lower()}_{quote.lower()}")
        perpetual = info.get("settlement_period") == "perpetual"
        if kind_s == "option":
            kind = Kind.OPTION
        elif kind_s == "future":  # not "future_combo": a spread is no forward
            kind = Kind.PERPETUAL if perpetual else Kind.FUTURE
        elif kind_s == "spot":
            kind = Kind.SPOT
        else:
            raise ValueError(f"unsupported kind {kind_s!r}")
        expiry_ns: int | None = None
        if kind in (Kind.OPTION, Kind.FUTURE):
            expiry_ms = int(info["expiration_timestamp"])
            if expiry_ms <= 0:
                raise ValueError(f"{name}: expiration_timestamp must be > 0, got {expiry_ms}")
            expiry_ns = expiry_ms * 1_000_000
        # Inverse futures trade in USD amounts; options and linear contracts in the base asset.
        size = 1.0
        return Instrument(
            name=name,
            kind=kind,
            # interned: a venue lists thousands of instruments over a handful of these
            underlying=sys.intern(base),
            quote_currency=sys.intern(quote),
            settlement=Settlement.COIN if inverse else Settlement.LINEAR,
            index=sys.intern(index),
            expiry_ns=expiry_ns,
            strike=float(info["strike"]) if kind == Kind.OPTION else None,
            is_call=(info["option_type"] == "call") if kind == Kind.OPTION else None,
            multiplier=size,
            venue=DERIBIT,
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"bad get_instruments entry: {exc!r}") from exc


class InstrumentRegistry:
    """Name -> :class:`Instrument`. Names not yet known are parsed as Deribit names on lookup.

    Instruments added (configuration, the venue's definitions) stay. Parsed names are cached,
    but at most ``parsed_kept`` of them, the oldest forgotten first: a feed that sends every
    name under the sun (an MQTT topic, a replay file) must not grow the registry without bound.
    A forgotten name parses again on its next lookup; what the book holds keeps its own
    reference.
    """

    __slots__ = ("_by_name", "_parsed", "_parsed_kept")

    def __init__(self, instruments: Iterable[Instrument] = (), parsed_kept: int = 10_000) -> None:
        self._by_name: dict[str, Instrument] = {}
        self._parsed: dict[str, Instrument] = {}  # insertion order: the oldest first
        self._parsed_kept = parsed_kept
        for inst in instruments:
            self.add(inst)

    def add(self, instrument: Instrument) -> None:
        """Add or replace an instrument (config and ``get_instruments`` take precedence over
        parsed names)."""
        self._by_name[instrument.name] = instrument
        self._parsed.pop(instrument.name, None)

    def get(self, name: str) -> Instrument | None:
        """The instrument called ``name``, parsing Deribit names on first sight; None if unknown."""
        inst = self._by_name.get(name)
        if inst is None:
            inst = self._parsed.get(name)
            if inst is None:
                inst = parse_deribit_name(name)
                if inst is not None:
                    parsed = self._parsed
                    if len(parsed) >= self._parsed_kept:
                        del parsed[next(iter(parsed))]
                    parsed[name] = inst
        return inst

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Instrument]:
        return iter([*self._by_name.values(), *self._parsed.values()])

    def __len__(self) -> int:
        return len(self._by_name) + len(self._parsed)
