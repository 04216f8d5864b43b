"""What the system register's endpoints take and answer."""

import re
from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from shared.domain.contract.vocabulary import Category, NoNationalId, SystemId

DEFAULT_CONFIRM_WITHIN = timedelta(days=7)
MIN_CONFIRM_WITHIN = timedelta(minutes=1)
MAX_CONFIRM_WITHIN = timedelta(days=365)
#: An ISO 8601 duration in weeks, days, hours, minutes and seconds: ``P7D``, ``PT36H``, ``P1W``,
#: ``P2DT12H``. Years and months are refused: their length depends on the calendar.
_DURATION = re.compile(r"^P(?=\d|T\d)(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?$")
_DURATION_TEXT = (
    "an ISO 8601 duration in weeks, days, hours, minutes or seconds (P7D, PT36H, P2DT12H; no "
    "years or months), from PT1M to P365D"
)


def _iso_duration(value: Any) -> Any:
    """Only the ISO 8601 text: Pydantic alone would also read a number as seconds, and ``P1M``
    as 30 days."""
    if not isinstance(value, str) or not _DURATION.match(value):
        raise ValueError(f"must be {_DURATION_TEXT}")
    return value


def _within_bounds(value: timedelta) -> timedelta:
    if not MIN_CONFIRM_WITHIN <= value <= MAX_CONFIRM_WITHIN:
        raise ValueError("must be from PT1M (a minute) to P365D")
    return value


ConfirmWithin = Annotated[
    timedelta,
    BeforeValidator(_iso_duration),
    AfterValidator(_within_bounds),
    Field(
        description=f"how long after an erasure's execution the system has to confirm it: "
        f"{_DURATION_TEXT}",
        examples=["P7D"],
    ),
]
Name = Annotated[str, Field(min_length=1, max_length=200), *NoNationalId]
#: true or false, nothing else: Pydantic alone would read 0, 1, "no" and "off" as booleans.
Active = Annotated[bool, Field(strict=True)]
Categories = Annotated[
    list[Category], Field(min_length=1, description="the categories of personal data it holds")
]


class NewSystem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_id: Annotated[
        SystemId,
        Field(description='as it confirms erasures, e.g. "collection", "crm", "ledger"'),
    ]
    name: Name
    categories: Categories
    confirm_within: ConfirmWithin = DEFAULT_CONFIRM_WITHIN
    active: Active = True


class SystemChange(BaseModel):
    """Only the fields given change. Erasures executed before keep the systems they expected."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    categories: Categories | None = None
    confirm_within: ConfirmWithin | None = None
    active: Active | None = None


class SystemView(BaseModel):
    system_id: str
    name: str
    categories: list[Category]
    confirm_within: timedelta = Field(description="an ISO 8601 duration, e.g. P7D")
    active: bool
    created_at: datetime
    updated_at: datetime
    unconfirmed_erasures: int = Field(description="executed erasures it has not confirmed yet")
    overdue_erasures: int = Field(description="of those, past the time it had to confirm")
