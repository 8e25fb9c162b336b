"""The US equity and equity-options trading calendar, by rule, for any year.

Full-day holidays of the NYSE (and of Cboe's options markets, which follow it), computed from
NYSE Rule 7.2 and the holidays it names:

==========================  =================================================================
New Year's Day              1 January; a Sunday moves to Monday 2 January; a Saturday is not
                            observed (the Friday before closes a year: it stays open)
Martin Luther King, Jr.     third Monday of January
Washington's Birthday       third Monday of February
Good Friday                 two days before Western (Gregorian) Easter
Memorial Day                last Monday of May
Juneteenth                  19 June, from 2022 on (first observed 20 June 2022)
Independence Day            4 July
Labor Day                   first Monday of September
Thanksgiving                fourth Thursday of November
Christmas                   25 December
==========================  =================================================================

A fixed-date holiday (Juneteenth, Independence Day, Christmas) on a Saturday is observed on
the Friday before, on a Sunday on the Monday after.

Early closes at 13:00 ET (13:15 for the options that trade to 16:15, e.g. SPX and SPY): the day
after Thanksgiving; 24 December and 3 July when they fall Monday to Thursday (on a Friday they
are the observed holiday; on a weekend there is nothing to shorten).

Out of scope: one-off closures (national days of mourning such as 9 January 2025, the
September 2001 and October 2012 closures, blizzard days), holidays before the current rules
(Juneteenth before 2022, MLK day before 1998) and exchanges' unscheduled changes. Callers that
need them list such a date in ``extra_holidays``.

The trading day opens at 09:30 and closes at 16:00 ET. Instants are int UNIX ns, computed in
the ``America/New_York`` zone (IANA tz data, so daylight saving time is applied as in force).
Sources: NYSE Group's holiday and early-closings calendars for 2022-2024 (announced 27 December
2021), 2025-2027 (8 November 2024) and 2026-2028 (23 December 2025).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "CLOSE",
    "EARLY_CLOSE",
    "LATE_CLOSE",
    "LATE_EARLY_CLOSE",
    "NEW_YORK",
    "OPEN",
    "close_ns",
    "early_closes",
    "easter",
    "holidays",
    "is_trading_day",
    "last_trading_day_of_month",
    "new_york_ns",
    "nth_weekday",
    "open_ns",
    "previous_trading_day",
    "roll_back",
    "third_friday",
]

NEW_YORK = ZoneInfo("America/New_York")
"""The exchanges' time zone."""
OPEN = time(9, 30)
CLOSE = time(16, 0)
LATE_CLOSE = time(16, 15)
"""Close of the options that trade 15 minutes past the equity close (SPX, SPY, XSP)."""
EARLY_CLOSE = time(13, 0)
LATE_EARLY_CLOSE = time(13, 15)
JUNETEENTH_FROM = 2022
_MONDAY, _THURSDAY, _FRIDAY, _SATURDAY, _SUNDAY = 0, 3, 4, 5, 6


def easter(year: int) -> date:
    """Western (Gregorian) Easter Sunday, by the anonymous Gregorian algorithm (Meeus/Jones/
    Butcher), valid for every Gregorian year."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    g = (b - (b + 8) // 25 + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_shift = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_shift) // 451
    month, day = divmod(h + weekday_shift - 7 * m + 114, 31)
    return date(year, month, day + 1)


def nth_weekday(year: int, month: int, weekday: int, n: int) -> date | None:
    """The ``n``-th (1-based) ``weekday`` (Monday = 0) of the month; ``n = -1``: the last.
    None when the month has no such day (a fifth Monday)."""
    if n == -1:
        nxt = date(year + month // 12, month % 12 + 1, 1)
        last = nxt - timedelta(days=1)
        return last - timedelta(days=(last.weekday() - weekday) % 7)
    first = date(year, month, 1)
    day = first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))
    return day if day.month == month else None


def third_friday(year: int, month: int) -> date:
    """The third Friday of the month (the standard monthly and quarterly expiry date)."""
    return _on_or_after(date(year, month, 15), _FRIDAY)


def _on_or_after(day: date, weekday: int) -> date:
    return day + timedelta(days=(weekday - day.weekday()) % 7)


def _observed(day: date, *, saturday_to_friday: bool = True) -> date | None:
    if day.weekday() == _SUNDAY:
        return day + timedelta(days=1)
    if day.weekday() == _SATURDAY:
        return day - timedelta(days=1) if saturday_to_friday else None
    return day


@functools.lru_cache(maxsize=512)
def holidays(year: int) -> dict[date, str]:
    """Full-day closures observed in ``year``, date -> holiday name (see the module docstring)."""
    out: dict[date, str] = {}

    def add(day: date | None, name: str) -> None:
        if day is not None and day.year == year:
            out[day] = name

    add(_observed(date(year, 1, 1), saturday_to_friday=False), "New Year's Day")
    add(nth_weekday(year, 1, _MONDAY, 3), "Martin Luther King, Jr. Day")
    add(nth_weekday(year, 2, _MONDAY, 3), "Washington's Birthday")
    add(easter(year) - timedelta(days=2), "Good Friday")
    add(nth_weekday(year, 5, _MONDAY, -1), "Memorial Day")
    if year >= JUNETEENTH_FROM:
        add(_observed(date(year, 6, 19)), "Juneteenth National Independence Day")
    add(_observed(date(year, 7, 4)), "Independence Day")
    add(nth_weekday(year, 9, _MONDAY, 1), "Labor Day")
    add(nth_weekday(year, 11, _THURSDAY, 4), "Thanksgiving Day")
    add(_observed(date(year, 12, 25)), "Christmas Day")
    return out


@functools.lru_cache(maxsize=512)
def early_closes(year: int) -> frozenset[date]:
    """Days of ``year`` the market closes at 13:00 ET (see the module docstring)."""
    thanksgiving = _on_or_after(date(year, 11, 22), _THURSDAY)  # the fourth Thursday
    out = {thanksgiving + timedelta(days=1)}
    for eve in (date(year, 7, 3), date(year, 12, 24)):
        if eve.weekday() <= _THURSDAY:
            out.add(eve)
    return frozenset(out)


def is_trading_day(day: date, extra_holidays: Collection[date] = ()) -> bool:
    """True on a weekday that is not a holiday (nor one of ``extra_holidays``)."""
    return day.weekday() < _SATURDAY and day not in holidays(day.year) and day not in extra_holidays


def roll_back(day: date, extra_holidays: Collection[date] = ()) -> date:
    """``day`` if it is a trading day, else the trading day before it (the US expiry rule:
    an expiry on a holiday or weekend moves to the preceding business day)."""
    while not is_trading_day(day, extra_holidays):
        day -= timedelta(days=1)
    return day


def previous_trading_day(day: date, extra_holidays: Collection[date] = ()) -> date:
    """The last trading day strictly before ``day``."""
    return roll_back(day - timedelta(days=1), extra_holidays)


def last_trading_day_of_month(year: int, month: int, extra_holidays: Collection[date] = ()) -> date:
    """The month's last trading day (the end-of-month expiry)."""
    return roll_back(
        date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1), extra_holidays
    )


def new_york_ns(day: date, at: time) -> int:
    """int UNIX ns of the New York wall-clock time ``at`` on ``day`` (daylight saving applied).

    Whole seconds only: the exchange times here carry no fractions.
    """
    local = datetime.combine(day, at, tzinfo=NEW_YORK)
    return int(local.timestamp()) * 1_000_000_000


def open_ns(day: date) -> int:
    """The regular open, 09:30 ET, of ``day`` (the AM settlement's Special Opening Quotation
    is computed from the opening prices of that day)."""
    return new_york_ns(day, OPEN)


def close_ns(day: date, *, late: bool = False) -> int:
    """The regular close of ``day``: 16:00 ET, 13:00 on an early-close day; with ``late``, the
    close of the options that trade 15 minutes longer (16:15, or 13:15)."""
    early = day in early_closes(day.year)
    if late:
        return new_york_ns(day, LATE_EARLY_CLOSE if early else LATE_CLOSE)
    return new_york_ns(day, EARLY_CLOSE if early else CLOSE)
