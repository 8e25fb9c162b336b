"""US listed options and futures on the S&P 500: symbology, roots and contract terms.

This module only reads and writes names and knows each root's terms; turning a name into an
:class:`engine.instruments.Instrument` is :func:`engine.instruments.parse_us_name`.

**OCC / OSI option symbols** (OCC's Options Symbology Initiative, 2010): 21 characters, the root
left-justified and padded with spaces to 6, the expiry date ``YYMMDD``, ``C`` or ``P``, and the
strike times 1000 in 8 digits: ``SPXW  241220P05900000`` is the SPXW put of 20 Dec 2024 struck at
5900. Databento writes OPRA's instruments under this padded form (its ``raw_symbol``). Also read:
the same without the padding (``SPXW241220P05900000``) and the compact form with a decimal
strike (``SPXW241220P5900``, ``SPY241220C595.5``). The date is the expiry date (since 2015 the
Friday of a monthly, not the Saturday after; a holiday expiry carries the day before).

**CME Globex** (as Databento's ``GLBX.MDP3`` ``raw_symbol``): a future is the product code, the
month code (``H`` Mar, ``M`` Jun, ``U`` Sep, ``Z`` Dec; ``F G J K N Q V X`` for the others) and
the last digit of the year: ``ESZ4``. An option adds a space, ``C`` or ``P`` and the strike in
index points: ``ESZ4 C5900``, ``EW1F5 P5800``, ``E3CH5 C5700``. A two-digit year (``ESZ24``)
is read too; a one-digit year is read in the decade from ``year_from`` (2020 by default), and
names are written with one digit in that decade, two outside it.

Roots (:data:`OCC_ROOTS`, :data:`CME_OPTION_CODES`):

======  ====  ========  ========  =====  =============================  ======================
root    mult  exercise  delivery  settle expiry                         last trade (ET)
======  ====  ========  ========  =====  =============================  ======================
SPX     100   European  cash      AM     third Friday (SOQ, 09:30)      16:15 the day before
SPXW    100   European  cash      PM     any weekday (0DTE), 16:00      16:00 on the day
XSP     100   European  cash      PM     any weekday, 16:00             16:00 on the day
SPY     100   American  physical  PM     any weekday, 16:00 close       16:15 on the day
ES      50    American  future    AM     third Friday, Mar/Jun/Sep/Dec  09:30 on the day
EW1-4   50    European  future    PM     first..fourth Friday, 16:00    16:00 on the day
EW      50    European  future    PM     last trading day of month      16:00 on the day
E1A-E5A 50    European  future    PM     first..fifth Monday            16:00 on the day
E1B-E5B 50    European  future    PM     Tuesdays                       16:00 on the day
E1C-E5C 50    European  future    PM     Wednesdays                     16:00 on the day
E1D-E5D 50    European  future    PM     Thursdays                      16:00 on the day
======  ====  ========  ========  =====  =============================  ======================

An early-close day moves 16:00 to 13:00 and 16:15 to 13:15 (:mod:`engine.uscalendar`). An
E-mini option is exercised into the nearest quarterly ES future that has not expired at the
option's expiry: the quarterly options into the future of their month (both end at the same
Special Opening Quotation), every other option into the next one (CME's FAQ: "a September
expiry contract would deliver a December futures position, as the September futures expired
at 9:30 a.m. ET that day"). ES futures expire at the SOQ of the third Friday of their month.
A computed expiry on a holiday moves to the trading day before.

Sources: OCC, "Options Symbology Initiative"; Cboe SPX/SPXW and XSP product specifications;
CME Group, "E-mini S&P 500 Options Contract Specs", "Weekly & End-of-Month (EOM) Options on
E-mini S&P 500 Futures FAQ", "E-mini S&P 500 Tuesday and Thursday options FAQ", "E-mini S&P 500
options Bloomberg cheat sheet" (Globex codes ES, EW, EW1-EW4, E1A-E5A, E1C-E5C) and "E-mini S&P
500 quarterly PM options FAQ" (the deliverable future); Databento, "Options on futures:
Introduction" (``raw_symbol`` such as ``OZSH4 C1520``) and "Equity options: Introduction" (OCC
symbology for OPRA). Not covered: CME's quarterly PM options (``EYC``), S&P 500 (big) and Micro
E-mini options, options on other indices, and adjusted (corporate-action) OCC roots.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from engine.uscalendar import (
    close_ns,
    last_trading_day_of_month,
    nth_weekday,
    open_ns,
    previous_trading_day,
    roll_back,
    third_friday,
)

__all__ = [
    "CME_OPTION_CODES",
    "ES_FUTURE",
    "MONTH_CODES",
    "OCC_ROOTS",
    "CmeOption",
    "Delivery",
    "Exercise",
    "LastTrade",
    "ListedFuture",
    "OccOption",
    "RootSpec",
    "SettleTiming",
    "format_cme_future",
    "format_cme_option",
    "format_osi",
    "format_osi_compact",
    "parse_cme_future",
    "parse_cme_option",
    "parse_osi",
    "settlement_ns",
]


class Exercise(StrEnum):
    """When an option may be exercised: only at expiry, or on any business day before."""

    EUROPEAN = "european"
    AMERICAN = "american"


class Delivery(StrEnum):
    """What exercise delivers: cash, or the underlying itself (shares; for an option on a
    future, a position in the future)."""

    CASH = "cash"
    PHYSICAL = "physical"


class SettleTiming(StrEnum):
    """When a US contract's final value is fixed on its expiry day: AM, on the Special Opening
    Quotation (computed from the opening prices, timed here at the 09:30 ET open); PM, at the
    close (16:00 ET, or 13:00 on an early-close day)."""

    AM = "am"
    PM = "pm"


class LastTrade(StrEnum):
    """When an expiring series last trades."""

    DAY_BEFORE_LATE_CLOSE = "day_before_late_close"  # SPX AM: 16:15 the trading day before
    CLOSE = "close"  # 16:00 on the expiry day (13:00 early)
    LATE_CLOSE = "late_close"  # 16:15 on the expiry day (13:15 early)
    OPEN = "open"  # 09:30 on the expiry day (the SOQ products on CME)


@dataclass(frozen=True, slots=True)
class RootSpec:
    """The terms every contract of one root (or CME product code) shares."""

    root: str
    underlying: str
    index: str
    multiplier: float
    exercise: Exercise
    delivery: Delivery
    timing: SettleTiming
    last_trade: LastTrade
    venue: str

    def settlement_ns(self, expiry: date) -> int:
        """The settlement instant of the contract expiring on ``expiry`` (int UNIX ns)."""
        return settlement_ns(expiry, self.timing)

    def last_trade_ns(self, expiry: date) -> int:
        """When the series expiring on ``expiry`` last trades (int UNIX ns)."""
        day = roll_back(expiry)
        match self.last_trade:
            case LastTrade.DAY_BEFORE_LATE_CLOSE:
                return close_ns(previous_trading_day(day), late=True)
            case LastTrade.CLOSE:
                return close_ns(day)
            case LastTrade.LATE_CLOSE:
                return close_ns(day, late=True)
            case LastTrade.OPEN:
                return open_ns(day)


def settlement_ns(expiry: date, timing: SettleTiming) -> int:
    """The settlement instant on ``expiry`` (rolled back to a trading day): the 09:30 ET open
    for AM settlement, the close (16:00 ET, 13:00 on an early-close day) for PM."""
    day = roll_back(expiry)
    return open_ns(day) if timing == SettleTiming.AM else close_ns(day)


_EU, _AM_ = Exercise.EUROPEAN, Exercise.AMERICAN
OCC_ROOTS: dict[str, RootSpec] = {
    "SPX": RootSpec(
        "SPX", "SPX", "SPX", 100.0, _EU, Delivery.CASH, SettleTiming.AM,
        LastTrade.DAY_BEFORE_LATE_CLOSE, "cboe",
    ),
    "SPXW": RootSpec(
        "SPXW", "SPX", "SPX", 100.0, _EU, Delivery.CASH, SettleTiming.PM, LastTrade.CLOSE, "cboe"
    ),
    "XSP": RootSpec(
        "XSP", "XSP", "XSP", 100.0, _EU, Delivery.CASH, SettleTiming.PM, LastTrade.CLOSE, "cboe"
    ),
    "SPY": RootSpec(
        "SPY", "SPY", "SPY", 100.0, _AM_, Delivery.PHYSICAL, SettleTiming.PM,
        LastTrade.LATE_CLOSE, "opra",
    ),
}  # fmt: skip
"""OCC option roots riskd knows, by root."""

ES_FUTURE = RootSpec(
    "ES", "SPX", "SPX", 50.0, _EU, Delivery.CASH, SettleTiming.AM, LastTrade.OPEN, "cme"
)
"""E-mini S&P 500 futures: cash-settled at the SOQ of the third Friday (exercise is moot)."""


def _es_option(code: str, exercise: Exercise, timing: SettleTiming, last: LastTrade) -> RootSpec:
    return RootSpec(code, "SPX", "SPX", 50.0, exercise, Delivery.PHYSICAL, timing, last, "cme")


_WEEKDAY_LETTERS = {"A": 0, "B": 1, "C": 2, "D": 3}  # Monday .. Thursday
CME_OPTION_CODES: dict[str, tuple[RootSpec, int, int]] = {
    "ES": (_es_option("ES", _AM_, SettleTiming.AM, LastTrade.OPEN), 4, 3),
    "EW": (_es_option("EW", _EU, SettleTiming.PM, LastTrade.CLOSE), -1, -1),
    **{
        f"EW{n}": (_es_option(f"EW{n}", _EU, SettleTiming.PM, LastTrade.CLOSE), 4, n)
        for n in range(1, 5)
    },
    **{
        f"E{n}{letter}": (_es_option(f"E{n}{letter}", _EU, SettleTiming.PM, LastTrade.CLOSE), wd, n)
        for letter, wd in _WEEKDAY_LETTERS.items()
        for n in range(1, 6)
    },
}
"""E-mini S&P 500 option product codes -> (terms, weekday (Monday = 0), n-th of the month);
(-1, -1): the month's last trading day (EW, end of month)."""

MONTH_CODES = "FGHJKMNQUVXZ"
"""CME month codes, January to December."""
_QUARTER_MONTHS = (3, 6, 9, 12)


@dataclass(frozen=True, slots=True)
class OccOption:
    """An OCC option symbol's parts: root, expiry date, call or put, strike (USD)."""

    root: str
    expiry: date
    is_call: bool
    strike: float


_OSI = re.compile(
    r"(?P<root>[A-Z]{1,6}) *(?P<date>\d{6})(?P<cp>[CP])"
    r"(?P<strike>\d{8}|[1-9]\d{0,4}(?:\.\d{1,3})?|0\.\d{1,3})",
    re.ASCII,
)


def parse_osi(symbol: str) -> OccOption | None:
    """Parse an OSI symbol (padded, unpadded, or compact with a decimal strike); None if it is
    not one. A padded root must fill exactly 6 characters; an 8-digit strike is in thousandths.
    """
    m = _OSI.fullmatch(symbol)
    if m is None:
        return None
    root, digits, strike_s = m["root"], m["date"], m["strike"]
    if " " in symbol and len(symbol) != 21:  # padding only to the full 6 characters
        return None
    try:
        expiry = date(2000 + int(digits[:2]), int(digits[2:4]), int(digits[4:]))
    except ValueError:
        return None
    strike = int(strike_s) / 1000 if len(strike_s) == 8 and "." not in strike_s else float(strike_s)
    if not 0.0 < strike < math.inf:
        return None
    return OccOption(root=root, expiry=expiry, is_call=m["cp"] == "C", strike=strike)


def _thousandths(strike: float) -> int:
    milli = round(strike * 1000)
    if not 0 < milli < 100_000_000 or abs(milli - strike * 1000) > 1e-6 * max(1.0, strike):
        raise ValueError(f"strike {strike} is not a positive multiple of 0.001 below 100 000")
    return milli


def format_osi(root: str, expiry: date, is_call: bool, strike: float) -> str:
    """The 21-character OSI symbol (``SPXW  241220P05900000``).

    Raises:
        ValueError: a root that is not 1-6 letters, a year outside 2000-2099, a strike that
            is not a multiple of 0.001 in (0, 100 000).
    """
    if not (1 <= len(root) <= 6 and root.isascii() and root.isalpha() and root.isupper()):
        raise ValueError(f"OSI root must be 1-6 capital letters, got {root!r}")
    if not 2000 <= expiry.year <= 2099:
        raise ValueError(f"OSI expiry year must be 2000-2099, got {expiry.year}")
    cp = "C" if is_call else "P"
    return f"{root:<6}{expiry:%y%m%d}{cp}{_thousandths(strike):08d}"


def format_osi_compact(root: str, expiry: date, is_call: bool, strike: float) -> str:
    """The compact form (``SPXW241220P5900``, ``SPY241220C595.5``). Raises as
    :func:`format_osi`."""
    format_osi(root, expiry, is_call, strike)  # validates
    whole, frac = divmod(_thousandths(strike), 1000)
    strike_s = f"{whole}" if frac == 0 else f"{whole}.{frac:03d}".rstrip("0")
    return f"{root}{expiry:%y%m%d}{'C' if is_call else 'P'}{strike_s}"


@dataclass(frozen=True, slots=True)
class ListedFuture:
    """A CME future: product code, contract month and year."""

    code: str
    year: int
    month: int


@dataclass(frozen=True, slots=True)
class CmeOption:
    """A CME option: product code, contract month and year, call or put, strike (points)."""

    code: str
    year: int
    month: int
    is_call: bool
    strike: float


_CME = re.compile(
    r"(?P<code>[A-Z][A-Z0-9]{1,2}?)(?P<mon>[FGHJKMNQUVXZ])(?P<yy>\d{1,2})"
    r"(?: (?P<cp>[CP])(?P<strike>[1-9]\d{0,5}))?",
    re.ASCII,
)


def _cme_year(yy: str, year_from: int) -> int:
    if len(yy) == 2:
        return 2000 + int(yy)
    return year_from + (int(yy) - year_from) % 10


def parse_cme_future(symbol: str, year_from: int = 2020) -> ListedFuture | None:
    """Parse an ES future (``ESZ4``, ``ESZ24``); None if it is not one."""
    m = _CME.fullmatch(symbol)
    if m is None or m["cp"] is not None or m["code"] != ES_FUTURE.root:
        return None
    month = MONTH_CODES.index(m["mon"]) + 1
    if month not in _QUARTER_MONTHS:
        return None
    return ListedFuture(code=m["code"], year=_cme_year(m["yy"], year_from), month=month)


def parse_cme_option(symbol: str, year_from: int = 2020) -> CmeOption | None:
    """Parse an E-mini S&P 500 option (``ESZ4 C5900``, ``EW1F5 P5800``); None if it is not one
    (unknown code, quarterly ES in a non-quarterly month, a fifth weekday the month lacks)."""
    m = _CME.fullmatch(symbol)
    if m is None or m["cp"] is None or m["code"] not in CME_OPTION_CODES:
        return None
    option = CmeOption(
        code=m["code"],
        year=_cme_year(m["yy"], year_from),
        month=MONTH_CODES.index(m["mon"]) + 1,
        is_call=m["cp"] == "C",
        strike=float(m["strike"]),
    )
    return option if cme_option_expiry(option) is not None else None


def cme_option_expiry(option: CmeOption) -> date | None:
    """The expiry date of an E-mini option (a holiday moves it to the trading day before);
    None when the code names a day the month lacks."""
    spec, weekday, n = CME_OPTION_CODES[option.code]
    if spec.root == "ES" and option.month not in _QUARTER_MONTHS:
        return None
    if n == -1:
        return last_trading_day_of_month(option.year, option.month)
    day = nth_weekday(option.year, option.month, weekday, n)
    return None if day is None else roll_back(day)


def es_future_expiry(year: int, month: int) -> date:
    """The last trading day of an ES future: the third Friday, or the trading day before."""
    return roll_back(third_friday(year, month))


def es_future_for(settle_ns: int, year: int, month: int) -> ListedFuture:
    """The nearest quarterly ES future not yet expired at ``settle_ns``, searching from the
    quarter of (``year``, ``month``)."""
    q_year, q_month = year, next(m for m in _QUARTER_MONTHS if m >= month)
    while open_ns(es_future_expiry(q_year, q_month)) < settle_ns:
        q_year, q_month = (q_year + 1, 3) if q_month == 12 else (q_year, q_month + 3)
    return ListedFuture(code=ES_FUTURE.root, year=q_year, month=q_month)


def _year_code(year: int, year_from: int) -> str:
    if year_from <= year < year_from + 10:
        return str(year % 10)
    if 2000 <= year <= 2099:
        return f"{year % 100:02d}"
    raise ValueError(f"CME contract year must be 2000-2099, got {year}")


def format_cme_future(future: ListedFuture, year_from: int = 2020) -> str:
    """``ESZ4``: code, month code, last digit of the year (Databento's ``raw_symbol``); two
    digits (``ESZ34``) for a year outside the decade from ``year_from``, so that the name
    parses back to the same contract."""
    return f"{future.code}{MONTH_CODES[future.month - 1]}{_year_code(future.year, year_from)}"


def format_cme_option(option: CmeOption, year_from: int = 2020) -> str:
    """``EW1F5 P5800`` (the year as in :func:`format_cme_future`). Raises ValueError for a
    strike that is not a whole number of points."""
    if not (option.strike.is_integer() and 0 < option.strike < 1e6):
        raise ValueError(f"CME index option strikes are whole points, got {option.strike}")
    cp = "C" if option.is_call else "P"
    month = MONTH_CODES[option.month - 1]
    return f"{option.code}{month}{_year_code(option.year, year_from)} {cp}{int(option.strike)}"
