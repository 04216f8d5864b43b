"""The time arithmetic of the rules page: calendar months in local time, stored as UTC.

"N months after T" is T's local date moved N calendar months at the same wall-clock time; where
that day does not exist, the month's last day (2024-02-29 + 36 months = 2027-02-28). Where the
local time does not exist (the spring DST gap) it lands the length of the gap later; where it
occurs twice (the autumn fold), the first occurrence counts.
"""

from calendar import isleap
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from shared.domain.policy.model import Retention


def add_months(instant: datetime, months: int, zone: ZoneInfo) -> datetime:
    """``instant`` + ``months`` calendar months, counted on ``zone``'s calendar, in UTC."""
    local = instant.astimezone(zone)
    year, month_index = divmod(local.year * 12 + local.month - 1 + months, 12)
    month = month_index + 1
    day = min(local.day, _days_in_month(year, month))
    # The same wall-clock time (fold=0: see _to_utc) with the offset in force on that day.
    wall_clock = datetime(
        year, month, day, local.hour, local.minute, local.second, local.microsecond, zone
    )
    return wall_clock.astimezone(UTC)


def start_of_year(year: int, zone: ZoneInfo) -> datetime:
    """1 January of ``year``, 00:00 local time, in UTC."""
    return _to_utc(datetime(year, 1, 1), zone)  # noqa: DTZ001 - a wall-clock time, zoned below


def start_of_day(day: date, zone: ZoneInfo) -> datetime:
    """``day`` at 00:00 local time, in UTC."""
    return _to_utc(datetime.combine(day, time()), zone)


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    return instant.astimezone(zone).date()


def due_at(retention: Retention, anchor: datetime | date, zone: ZoneInfo) -> datetime:
    """When a clock anchored at ``anchor`` (an instant, or a local date) falls due."""
    if retention.calendar_years_after is not None:
        year = anchor.year if not isinstance(anchor, datetime) else local_date(anchor, zone).year
        return start_of_year(year + retention.calendar_years_after + 1, zone)
    if not isinstance(anchor, datetime):
        anchor = _to_utc(datetime.combine(anchor, time()), zone)
    return add_months(anchor, retention.total_months or 0, zone)


_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _days_in_month(year: int, month: int) -> int:
    # calendar.monthrange() also computes the weekday: a third of this module's time.
    return 29 if month == 2 and isleap(year) else _DAYS_IN_MONTH[month - 1]


def _to_utc(wall_clock: datetime, zone: ZoneInfo) -> datetime:
    # fold=0: for a repeated hour, the first occurrence; for a skipped hour, zoneinfo reads the
    # wall time with the offset before the gap, which lands it the gap's length later.
    return wall_clock.replace(tzinfo=zone, fold=0).astimezone(UTC)
