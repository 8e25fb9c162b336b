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

US listed names parse too (:func:`parse_us_name`; symbology and terms in :mod:`engine.listed`):

=============================  ==============================================================
``SPXW  241220P05900000``      OCC/OSI option (also ``SPXW241220P05900000``, ``SPXW241220P5900``)
``ESZ4``                       E-mini S&P 500 future, December 2024
``EW1F5 P5800``                E-mini S&P 500 option (CME Globex code, month, year, strike)
``SPX``, ``XSP``               the index; ``SPY``: the ETF's shares (spot)
=============================  ==============================================================

A US option's ``expiry_ns`` is its settlement instant in New York (:mod:`engine.uscalendar`):
09:30 ET on the expiry day for AM settlement, the close (16:00 ET, or an early close) for PM.
Its name is the canonical form (the padded OSI symbol; the CME code with a one-digit year),
whichever form it was looked up by.

Position units (``multiplier`` turns one unit of position quantity into exposure):

- options, spot and linear futures: quantity x multiplier = units of the underlying
  (Deribit's option amounts are in coin: multiplier 1);
- inverse (coin-settled) futures and perpetuals: quantity is the USD notional, as Deribit's
  ``amount``; quantity x multiplier = USD.
"""

from __future__ import annotations

import calendar
import functools
import math
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import msgspec
from msgspec.structs import replace

from engine.listed import (
    CME_OPTION_CODES,
    ES_FUTURE,
    OCC_ROOTS,
    Delivery,
    Exercise,
    ListedFuture,
    SettleTiming,
    cme_option_expiry,
    es_future_expiry,
    es_future_for,
    format_cme_future,
    format_cme_option,
    format_osi,
    parse_cme_future,
    parse_cme_option,
    parse_osi,
)

__all__ = [
    "DERIBIT",
    "Delivery",
    "Exercise",
    "Instrument",
    "InstrumentRegistry",
    "Kind",
    "SettleTiming",
    "Settlement",
    "deribit_expiry_ns",
    "from_deribit_instrument",
    "parse_deribit_name",
    "parse_name",
    "parse_names",
    "parse_us_name",
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


_OPTION, _FUTURE, _EUROPEAN, _INF = Kind.OPTION, Kind.FUTURE, Exercise.EUROPEAN, math.inf


class Instrument(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
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
        venue: ``deribit`` for Deribit's instruments; ``cboe``, ``opra``, ``cme`` for the US
            listed ones (:func:`parse_us_name`). Options of ``deribit`` and options on futures
            are priced with Black-76 on the forward, other options with BSM on spot
            (:attr:`on_forward`).
        exercise: European (every Deribit option, SPX, the E-mini weeklies) or American (SPY,
            quarterly E-mini options); options only.
        delivery: what exercise (or expiry) delivers: cash, or the underlying (shares; the
            future, for an option on a future).
        settle_timing: AM (on the Special Opening Quotation) or PM (on the close) for US
            contracts, whose ``expiry_ns`` is then that instant; None: ``expiry_ns`` as the
            venue states it (Deribit: 08:00 UTC).
        underlying_future: for an option on a future, the future's name (``ESH5``); None for
            an option on spot or an index.
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
    exercise: Exercise = Exercise.EUROPEAN
    delivery: Delivery = Delivery.CASH
    settle_timing: SettleTiming | None = None
    underlying_future: str | None = None

    def __post_init__(self) -> None:
        # == rather than `is`: a plain string ("option") is as good as the enum member.
        # Module constants rather than Kind.OPTION: a big book builds a million of these.
        kind = self.kind
        if kind == _OPTION:
            strike = self.strike
            if self.expiry_ns is None or strike is None or self.is_call is None:
                raise ValueError(f"option {self.name!r} needs expiry_ns, strike and is_call")
            if not 0.0 < strike < _INF:
                raise ValueError(
                    f"option {self.name!r}: strike must be finite and > 0, got {strike}"
                )
        elif kind == _FUTURE and self.expiry_ns is None:
            raise ValueError(f"future {self.name!r} needs expiry_ns")
        if not self.multiplier > 0.0:
            raise ValueError(f"{self.name!r}: multiplier must be > 0, got {self.multiplier}")
        if kind != _OPTION:
            if self.exercise != _EUROPEAN:
                raise ValueError(f"{self.name!r}: exercise applies to options only")
            if self.underlying_future is not None:
                raise ValueError(f"{self.name!r}: underlying_future applies to options only")
        elif self.underlying_future == "":
            raise ValueError(f"option {self.name!r}: underlying_future must not be empty")

    @property
    def on_forward(self) -> bool:
        """True when the instrument is priced on a forward (Black-76 for options): Deribit's
        instruments other than spot, and options on futures."""
        if self.underlying_future is not None:
            return True
        return self.venue == DERIBIT and self.kind != Kind.SPOT

    @property
    def is_inverse(self) -> bool:
        """True for coin-settled instruments whose prices are quoted in coin (options) or
        whose quantity is a USD notional (futures)."""
        return self.settlement == Settlement.COIN


def deribit_expiry_ns(day: int, month: int, year: int) -> int:
    """08:00 UTC on the given date, in int UNIX ns (Deribit's expiry time)."""
    return int(calendar.timegm((year, month, day, 8, 0, 0))) * 1_000_000_000


@functools.lru_cache(maxsize=4096)  # few distinct expiries; a big book parses many names
def _deribit_expiry(day: int, month: int, yy: int) -> int | None:
    """:func:`deribit_expiry_ns` of a name's date; None for a date that does not exist."""
    try:
        datetime(2000 + yy, month, day, tzinfo=UTC)  # rejects 31FEB
        return deribit_expiry_ns(day, month, 2000 + yy)
    except ValueError:
        return None


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
    expiry_ns = None if month is None else _deribit_expiry(int(m["day"]), month, int(m["yy"]))
    if expiry_ns is None:
        return None
    if m["strike"] is None:
        return Instrument(kind=Kind.FUTURE, expiry_ns=expiry_ns, **common)
    strike = float(m["strike"].replace("d", "."))
    if not 0.0 < strike < math.inf:  # 400 digits overflow to inf (found by fuzzing)
        return None
    return Instrument(
        kind=Kind.OPTION, expiry_ns=expiry_ns, strike=strike, is_call=m["cp"] == "C", **common
    )


_US_INDICES = ("SPX", "XSP")
_US_ETFS = ("SPY",)


def parse_us_name(name: str, year_from: int = 2020) -> Instrument | None:
    """Parse a US listed name (see the module docstring and :mod:`engine.listed`); None if it
    is not one of the roots riskd knows. ``year_from``: the decade a CME one-digit year is
    read in."""
    occ = parse_osi(name)
    if occ is not None:
        spec = OCC_ROOTS.get(occ.root)
        if spec is None:
            return None
        return Instrument(
            name=format_osi(occ.root, occ.expiry, occ.is_call, occ.strike),
            kind=Kind.OPTION,
            underlying=spec.underlying,
            index=spec.index,
            expiry_ns=spec.settlement_ns(occ.expiry),
            strike=occ.strike,
            is_call=occ.is_call,
            multiplier=spec.multiplier,
            venue=spec.venue,
            exercise=spec.exercise,
            delivery=spec.delivery,
            settle_timing=spec.timing,
        )
    future = parse_cme_future(name, year_from)
    if future is not None:
        return _es_future(future, year_from)
    option = parse_cme_option(name, year_from)
    if option is not None:
        spec = CME_OPTION_CODES[option.code][0]
        expiry = cme_option_expiry(option)
        if expiry is None:  # parse_cme_option refuses these already
            return None
        settle_ns = spec.settlement_ns(expiry)
        return Instrument(
            name=format_cme_option(option, year_from),
            kind=Kind.OPTION,
            underlying=spec.underlying,
            index=spec.index,
            expiry_ns=settle_ns,
            strike=option.strike,
            is_call=option.is_call,
            multiplier=spec.multiplier,
            venue=spec.venue,
            exercise=spec.exercise,
            delivery=spec.delivery,
            settle_timing=spec.timing,
            underlying_future=format_cme_future(
                es_future_for(settle_ns, option.year, option.month)
            ),
        )
    if name in _US_INDICES:
        return Instrument(name=name, kind=Kind.INDEX, underlying=name, index=name, venue="cboe")
    if name in _US_ETFS:
        return Instrument(name=name, kind=Kind.SPOT, underlying=name, index=name, venue="opra")
    return None


def _es_future(future: ListedFuture, year_from: int) -> Instrument:
    expiry = es_future_expiry(future.year, future.month)
    return Instrument(
        name=format_cme_future(future, year_from),
        kind=Kind.FUTURE,
        underlying=ES_FUTURE.underlying,
        index=ES_FUTURE.index,
        expiry_ns=ES_FUTURE.settlement_ns(expiry),
        multiplier=ES_FUTURE.multiplier,
        venue=ES_FUTURE.venue,
        settle_timing=ES_FUTURE.timing,
    )


def parse_name(name: str) -> Instrument | None:
    """A Deribit name (:func:`parse_deribit_name`) or else a US listed one
    (:func:`parse_us_name`); None if neither."""
    return parse_deribit_name(name) or parse_us_name(name)


def parse_names(names: Iterable[str]) -> list[Instrument | None]:
    """:func:`parse_name` of each of ``names``: the same instruments, Deribit's options parsed
    once per prefix (``BTC-27DEC26``, which a book's options share) and strike, then put
    together. Any name that is not such an option goes to :func:`parse_name`."""
    options: dict[str, Instrument | None] = {}  # prefix -> an option of it, None: not one
    strikes: dict[str, float | None] = {}  # strike text -> its value, None if it is not one
    out: list[Instrument | None] = []
    for name in names:
        parts = name.split("-")
        if len(parts) == 4 and ((cp := parts[3]) == "C" or cp == "P"):
            prefix = f"{parts[0]}-{parts[1]}"
            option = options.get(prefix, _UNSEEN)
            if option is _UNSEEN:
                option = options[prefix] = _option_of(prefix)
            strike = strikes.get(text := parts[2], _UNSEEN)
            if strike is _UNSEEN:
                strike = strikes[text] = _strike(text)
            if option is not None and strike is not None:
                out.append(replace(option, name=name, strike=strike, is_call=cp == "C"))
                continue
        out.append(parse_name(name))
    return out


_UNSEEN: Any = object()


def _option_of(prefix: str) -> Instrument | None:
    """An option of the Deribit future ``prefix`` names (strike 1, a call; the rest as
    :func:`parse_deribit_name` gives its options); None if ``prefix`` names no future."""
    future = parse_deribit_name(prefix)
    if future is None or future.kind != Kind.FUTURE:
        return None
    return replace(future, kind=Kind.OPTION, strike=1.0, is_call=True)


def _strike(text: str) -> float | None:
    """The strike ``text`` is in a Deribit option's name (``\\d+(?:d\\d+)?``, ASCII; finite and
    > 0), None if it is not one."""
    whole, d, part = text.partition("d")
    if not (whole.isascii() and whole.isdigit() and (not d or (part.isascii() and part.isdigit()))):
        return None
    value = float(text.replace("d", "."))
    return value if 0.0 < value < math.inf else None


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
    """Name -> :class:`Instrument`. Names not yet known are parsed on lookup (:func:`parse_name`:
    Deribit's names, then US listed ones).

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
        """The instrument called ``name``, parsing Deribit and US names on first sight; None if
        unknown."""
        inst = self._by_name.get(name)
        if inst is None:
            inst = self._parsed.get(name)
            if inst is None:
                inst = parse_name(name)
                if inst is not None:
                    parsed = self._parsed
                    if len(parsed) >= self._parsed_kept:
                        del parsed[next(iter(parsed))]
                    parsed[name] = inst
        return inst

    def resolve(self, names: Iterable[str]) -> list[Instrument | None]:
        """:meth:`get` of each of ``names``, keeping parsed names only while fewer than
        ``parsed_kept`` are: a positions file may name far more instruments than that, and
        forgetting the oldest one by one costs more than parsing (the portfolio keeps the
        instruments it holds)."""
        by_name, parsed, kept = self._by_name, self._parsed, self._parsed_kept
        names = list(names)
        out = [by_name.get(name) or parsed.get(name) for name in names]
        unknown = [k for k, inst in enumerate(out) if inst is None]
        found = parse_names([names[k] for k in unknown])
        if len(found) == len(out):
            out = found
        else:
            for k, inst in zip(unknown, found, strict=True):
                out[k] = inst
        for k, inst in zip(unknown, found, strict=True):
            if len(parsed) >= kept:
                break
            if inst is not None:
                parsed[names[k]] = inst
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Instrument]:
        return iter([*self._by_name.values(), *self._parsed.values()])

    def __len__(self) -> int:
        return len(self._by_name) + len(self._parsed)
