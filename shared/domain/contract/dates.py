"""The dates and instants the contract takes: ISO 8601 text only, within one documented range.

Every date or instant an upstream system sends lies between 1900-01-01 and 2199-12-31 (UTC for
an instant; an instant must also carry its UTC offset). Why these bounds:

- Nothing Gallring keeps is about data older than 1900 or about a day after 2199: a date
  outside them is a typo (``0001-01-01``, ``9999-12-31``), and taking it would not be harmless.
  The engine counts retention periods from these dates in the policy's time zone; from year 1
  with a ``+14:00`` offset, or up to year 9999, that arithmetic leaves what Python's datetime can
  hold, and the purger could only dead-letter the event after the API had accepted it.
- From 2199-12-31, a retention of a hundred years (ten times the longest statutory one, the
  Bookkeeping Act's seven calendar years) still ends before 2300, far inside every calendar the
  engine, Python and both databases keep.

Text only: Pydantic would also read a number, or a string of digits, as Unix time (``0`` as
1970-01-01), which is never what a sender of ``"until": 0`` meant.
"""

import re
from datetime import UTC, date, datetime
from typing import Annotated

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, ValidationInfo

from shared.domain.contract.vocabulary import written_by_gallring

EARLIEST_DATE = date(1900, 1, 1)
LATEST_DATE = date(2199, 12, 31)
EARLIEST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(2199, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
RANGE_TEXT = f"between {EARLIEST_DATE} and {LATEST_DATE}"

_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATE_TIME_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}")


def _date_text(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _DATE_TEXT.fullmatch(value):
        return value
    raise ValueError("expected an ISO-8601 date, YYYY-MM-DD")


def _date_time_text(value: object) -> object:
    if isinstance(value, datetime) or (isinstance(value, str) and _DATE_TIME_TEXT.match(value)):
        return value
    raise ValueError(
        "expected an ISO-8601 date and time with a UTC offset, e.g. 2023-03-15T10:00:00+01:00"
    )


def _date_in_range(value: date, info: ValidationInfo) -> date:
    # A message Gallring stored before the range was set must still read (its subject's clocks
    # are computed from all its facts); an intake has refused it since.
    if written_by_gallring(info):
        return value
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"must lie {RANGE_TEXT}")
    return value


def _instant_in_range(value: datetime, info: ValidationInfo) -> datetime:
    if EARLIEST_INSTANT.year < value.year < LATEST_INSTANT.year:
        return value  # nearly every instant, told by its year alone: the intake's hot path
    if written_by_gallring(info):
        return value
    # Aware datetimes compare by their UTC instants, without converting (which could overflow).
    if not EARLIEST_INSTANT <= value <= LATEST_INSTANT:
        raise ValueError(f"must lie {RANGE_TEXT} (UTC)")
    return value


#: A calendar day: ``YYYY-MM-DD``, 1900-01-01 to 2199-12-31.
ContractDate = Annotated[
    date,
    BeforeValidator(_date_text),
    AfterValidator(_date_in_range),
    Field(description=f"A day, YYYY-MM-DD, {RANGE_TEXT}."),
]

#: An instant: ISO 8601 with a UTC offset, from 1900-01-01T00:00:00Z to 2199-12-31T23:59:59Z.
ContractInstant = Annotated[
    AwareDatetime,
    BeforeValidator(_date_time_text),
    AfterValidator(_instant_in_range),
    Field(description=f"ISO 8601 with a UTC offset, {RANGE_TEXT} (UTC)."),
]
