"""The time arithmetic of the rules page, case by case."""

from datetime import date
from zoneinfo import ZoneInfo

import pytest

from shared.domain.engine.periods import add_months, due_at
from shared.domain.policy import Retention
from tests.builders import utc

STOCKHOLM = ZoneInfo("Europe/Stockholm")


@pytest.mark.parametrize(
    ("start", "months", "due"),
    [
        # The rules page's own examples (local 10:00, winter time, UTC+1).
        ("2023-02-28T10:00+01:00", 36, "2026-02-28T09:00Z"),
        ("2024-02-29T10:00+01:00", 36, "2027-02-28T09:00Z"),
        ("2023-01-31T10:00+01:00", 1, "2023-02-28T09:00Z"),
        # Into a leap year the 29th exists.
        ("2021-02-28T10:00+01:00", 36, "2024-02-28T09:00Z"),
        ("2023-03-31T10:00+02:00", 11, "2024-02-29T09:00Z"),
        # Month-end clamping to 30-day months.
        ("2023-05-31T12:00+02:00", 1, "2023-06-30T10:00Z"),
        # Same local time across DST: closed in winter (UTC+1), due in summer (UTC+2).
        ("2023-01-15T12:00+01:00", 6, "2023-07-15T10:00Z"),
        ("2023-07-15T12:00+02:00", 6, "2024-01-15T11:00Z"),
        # 23:30 UTC on 31 January is 1 February locally: the local date is what counts.
        ("2023-01-31T23:30Z", 1, "2023-02-28T23:30Z"),
    ],
)
def test_months_are_calendar_months_in_stockholm_time(start: str, months: int, due: str) -> None:
    assert add_months(utc(start), months, STOCKHOLM) == utc(due)


def test_a_local_time_in_the_spring_gap_lands_after_the_gap() -> None:
    # 2026-03-29 02:30 does not exist in Stockholm: clocks jump from 02:00 to 03:00.
    assert add_months(utc("2026-01-29T02:30+01:00"), 2, STOCKHOLM) == utc("2026-03-29T01:30Z")


def test_a_local_time_in_the_autumn_fold_takes_its_first_occurrence() -> None:
    # 2026-10-25 02:30 happens twice; the first time is still summer time (UTC+2).
    assert add_months(utc("2026-09-25T02:30+02:00"), 1, STOCKHOLM) == utc("2026-10-25T00:30Z")


def test_years_are_twelve_months_with_the_same_clamping() -> None:
    five_years = Retention(years=5)
    assert due_at(five_years, utc("2024-02-29T10:00+01:00"), STOCKHOLM) == utc("2029-02-28T09:00Z")


@pytest.mark.parametrize(
    ("fiscal_year_end", "due"),
    [
        (date(2024, 12, 31), "2032-01-01T00:00+01:00"),
        (date(2025, 6, 30), "2033-01-01T00:00+01:00"),
        (date(2024, 1, 1), "2032-01-01T00:00+01:00"),
    ],
)
def test_bookkeeping_is_kept_through_the_seventh_year_after_the_fiscal_year(
    fiscal_year_end: date, due: str
) -> None:
    bookkeeping = Retention(calendar_years_after=7, anchor="fiscal_year_end")
    assert due_at(bookkeeping, fiscal_year_end, STOCKHOLM) == utc(due)
