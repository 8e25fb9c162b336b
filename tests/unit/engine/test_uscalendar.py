"""Tests for engine.uscalendar: holidays and early closes against NYSE's published calendars,
Easter against published dates, and New York instants across daylight saving time.

The expected instants are written as UTC wall-clock times by hand (EST = UTC-5, EDT = UTC-4),
not computed through zoneinfo.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.uscalendar import (
    close_ns,
    early_closes,
    easter,
    holidays,
    is_trading_day,
    last_trading_day_of_month,
    nth_weekday,
    open_ns,
    previous_trading_day,
    roll_back,
    third_friday,
)

# NYSE Group, "NYSE Group Announces 2022, 2023 and 2024 Holiday and Early Closings Calendar"
# (27 Dec 2021), "... 2025, 2026 and 2027 ..." (8 Nov 2024) and "... 2026, 2027 and 2028 ..."
# (23 Dec 2025). Quoted: 2022 "New Year's Day —* (No holiday observed, pursuant to NYSE Rule
# 7.2)", "Juneteenth ... Monday, June 20", "Christmas Day Monday, December 26"; 2026
# "Independence Day Friday, July 3 (Independence Day observed)"; 2027 "Juneteenth ... Friday,
# June 18 (... observed)", "Christmas Day Friday, December 24 (Christmas Day observed)"; 2028
# "Because the holiday falls on Saturday, January 1, 2028, no New Year's Day holiday is
# observed". Early closes "at 1:00 p.m. (1:15 p.m. for eligible options)".
NYSE_HOLIDAYS = {
    2022: "01-17 02-21 04-15 05-30 06-20 07-04 09-05 11-24 12-26",
    2023: "01-02 01-16 02-20 04-07 05-29 06-19 07-04 09-04 11-23 12-25",
    2024: "01-01 01-15 02-19 03-29 05-27 06-19 07-04 09-02 11-28 12-25",
    2025: "01-01 01-20 02-17 04-18 05-26 06-19 07-04 09-01 11-27 12-25",
    2026: "01-01 01-19 02-16 04-03 05-25 06-19 07-03 09-07 11-26 12-25",
    2027: "01-01 01-18 02-15 03-26 05-31 06-18 07-05 09-06 11-25 12-24",
    2028: "01-17 02-21 04-14 05-29 06-19 07-04 09-04 11-23 12-25",
}
NYSE_EARLY_CLOSES = {
    2022: "11-25",
    2023: "07-03 11-24",
    2024: "07-03 11-29 12-24",
    2025: "07-03 11-28 12-24",
    2026: "11-27 12-24",
    2027: "11-26",
    2028: "07-03 11-24",
}


def _dates(year: int, days: str) -> set[date]:
    return {date(year, int(d[:2]), int(d[3:])) for d in days.split()}


def utc_ns(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=UTC).timestamp()) * 1_000_000_000


@pytest.mark.parametrize("year", sorted(NYSE_HOLIDAYS))
def test_holidays_match_nyse_published_calendar(year: int) -> None:
    assert set(holidays(year)) == _dates(year, NYSE_HOLIDAYS[year])


@pytest.mark.parametrize("year", sorted(NYSE_EARLY_CLOSES))
def test_early_closes_match_nyse_published_calendar(year: int) -> None:
    # 2023's Christmas Eve was a Sunday; NYSE's 2022-2024 release lists only 3 July and 24
    # November for 2023 (footnotes ** and ***)
    assert set(early_closes(year)) == _dates(year, NYSE_EARLY_CLOSES[year])


def test_juneteenth_only_from_2022() -> None:
    assert date(2021, 6, 18) not in holidays(2021)  # Saturday 19 June 2021: not yet a holiday
    assert date(2021, 6, 21) not in holidays(2021)
    assert holidays(2022)[date(2022, 6, 20)].startswith("Juneteenth")


@pytest.mark.parametrize(
    ("year", "expected"),
    [  # published Western Easter Sundays
        (1961, date(1961, 4, 2)),
        (2000, date(2000, 4, 23)),
        (2008, date(2008, 3, 23)),
        (2011, date(2011, 4, 24)),
        (2019, date(2019, 4, 21)),
        (2038, date(2038, 4, 25)),
        (2285, date(2285, 3, 22)),  # the earliest possible date
    ],
)
def test_easter_against_published_dates(year: int, expected: date) -> None:
    assert easter(year) == expected


@given(st.integers(1900, 2200))
def test_every_holiday_is_a_weekday_and_there_are_nine_to_ten(year: int) -> None:
    days = holidays(year)
    assert all(d.weekday() < 5 and d.year == year for d in days)
    assert 8 <= len(days) <= 10
    assert easter(year).weekday() == 6
    assert all(d.weekday() < 5 and is_trading_day(d) for d in early_closes(year))


@given(st.dates(date(1990, 1, 1), date(2100, 12, 31)))
def test_roll_back_gives_the_latest_trading_day_on_or_before(day: date) -> None:
    rolled = roll_back(day)
    assert is_trading_day(rolled)
    assert rolled <= day
    assert all(
        not is_trading_day(rolled + timedelta(days=k)) for k in range(1, (day - rolled).days + 1)
    )
    assert previous_trading_day(day) < day


def test_calendar_helpers() -> None:
    assert third_friday(2024, 12) == date(2024, 12, 20)
    assert third_friday(2025, 4) == date(2025, 4, 18)  # Good Friday
    assert roll_back(third_friday(2025, 4)) == date(2025, 4, 17)
    assert nth_weekday(2025, 3, 0, 5) == date(2025, 3, 31)
    assert nth_weekday(2025, 2, 0, 5) is None
    assert nth_weekday(2024, 5, 0, -1) == date(2024, 5, 27)
    assert last_trading_day_of_month(2024, 3) == date(2024, 3, 28)  # 29th: Good Friday
    assert last_trading_day_of_month(2024, 12) == date(2024, 12, 31)
    assert is_trading_day(date(2024, 12, 24))
    assert not is_trading_day(date(2024, 12, 24), extra_holidays={date(2024, 12, 24)})
    assert previous_trading_day(date(2025, 1, 2)) == date(2024, 12, 31)
    # New Year's Day on a Saturday: the Friday before stays open (NYSE Rule 7.2)
    assert is_trading_day(date(2021, 12, 31))
    assert is_trading_day(date(2027, 12, 31))


@pytest.mark.parametrize(
    ("instant", "expected"),
    [
        # EST (UTC-5) and EDT (UTC-4) on either side of 10 March 2024 and 3 November 2024
        (open_ns(date(2024, 3, 8)), utc_ns(2024, 3, 8, 14, 30)),
        (open_ns(date(2024, 3, 11)), utc_ns(2024, 3, 11, 13, 30)),
        (close_ns(date(2024, 3, 8)), utc_ns(2024, 3, 8, 21)),
        (close_ns(date(2024, 3, 11)), utc_ns(2024, 3, 11, 20)),
        (close_ns(date(2024, 11, 1)), utc_ns(2024, 11, 1, 20)),
        (close_ns(date(2024, 11, 4)), utc_ns(2024, 11, 4, 21)),
        (close_ns(date(2024, 11, 1), late=True), utc_ns(2024, 11, 1, 20, 15)),
        # early closes: 13:00 ET, 13:15 for the late-closing options
        (close_ns(date(2024, 12, 24)), utc_ns(2024, 12, 24, 18)),
        (close_ns(date(2024, 12, 24), late=True), utc_ns(2024, 12, 24, 18, 15)),
        (close_ns(date(2024, 7, 3)), utc_ns(2024, 7, 3, 17)),
        (close_ns(date(2024, 11, 29)), utc_ns(2024, 11, 29, 18)),
    ],
)
def test_new_york_instants_across_daylight_saving(instant: int, expected: int) -> None:
    assert instant == expected
