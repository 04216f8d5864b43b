"""Every date and instant of the contract: ISO-8601 text, from 1900-01-01 to 2199-12-31."""

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from shared.domain.contract import parse_event
from shared.domain.contract.errors import describe
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.lifecycle_message import LifecycleMessage

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PSEUDONYM = "ab" * 32


def errors_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        parse_event(raw, now=NOW)
    return [str(problem) for problem in describe(refused.value)]


def bookkeeping(fiscal_year_end: object) -> dict[str, Any]:
    return {**EXAMPLES["bookkeeping.recorded"], "data": {"fiscal_year_end": fiscal_year_end}}


def contact(occurred_at: object) -> dict[str, Any]:
    return {**EXAMPLES["marketing.contact"], "occurred_at": occurred_at}


@pytest.mark.parametrize(
    "occurred_at",
    ["0001-01-01T00:00:00+14:00", "1899-12-31T23:59:59+00:00", "1900-01-01T00:00:00+01:00"],
)
def test_an_occurred_at_before_1900_is_refused_naming_the_range(occurred_at: str) -> None:
    assert errors_of(contact(occurred_at)) == [
        "occurred_at: must lie between 1900-01-01 and 2199-12-31 (UTC)"
    ]


def test_the_range_of_occurred_at_starts_at_1900_utc() -> None:
    assert parse_event(contact("1900-01-01T00:00:00Z"), now=NOW).occurred_at.year == 1900
    assert parse_event(contact("1900-01-01T00:30:00-01:00"), now=NOW).occurred_at.year == 1900


@pytest.mark.parametrize(
    "fiscal_year_end", ["9999-12-31", "2200-01-01", "1899-12-31", "0001-01-01"]
)
def test_a_fiscal_year_end_outside_the_range_is_refused(fiscal_year_end: str) -> None:
    assert errors_of(bookkeeping(fiscal_year_end)) == [
        "data.fiscal_year_end: must lie between 1900-01-01 and 2199-12-31"
    ]


@pytest.mark.parametrize("fiscal_year_end", ["1900-01-01", "2199-12-31"])
def test_a_fiscal_year_end_at_either_end_of_the_range_is_taken(fiscal_year_end: str) -> None:
    event = parse_event(bookkeeping(fiscal_year_end), now=NOW)
    assert event.data.fiscal_year_end == date.fromisoformat(fiscal_year_end)


@pytest.mark.parametrize("fiscal_year_end", [0, 1703980800, "0", "20231231", "2023-12-31T00:00:00"])
def test_a_fiscal_year_end_is_a_date_in_text_not_unix_time(fiscal_year_end: object) -> None:
    assert errors_of(bookkeeping(fiscal_year_end)) == [
        "data.fiscal_year_end: expected an ISO-8601 date, YYYY-MM-DD"
    ]


def test_the_range_is_in_the_json_schema_descriptions() -> None:
    from shared.domain.contract import event_json_schema

    text = str(event_json_schema())
    assert "between 1900-01-01 and 2199-12-31" in text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
        (
            {"type": "bookkeeping.recorded", "data": {"fiscal_year_end": "9999-12-31"}},
            "fiscal_year_end",
        ),
    ],
)
def test_a_lifecycle_message_out_of_range_is_refused_by_its_consumers(
    changes: dict[str, Any], field: str
) -> None:
    """A lifecycle message holds the range like an event (the intake writes none outside it)."""
    message = {
        "schema_version": 1,
        "event_id": "c0a8012e-7f3a-4b8e-9d2a-1b2c3d4e5f60",
        "type": "marketing.contact",
        "occurred_at": "2023-03-15T10:00:00+01:00",
        "subject": PSEUDONYM,
        "data": {},
        **changes,
    }
    with pytest.raises(ValidationError) as refused:
        LifecycleMessage.model_validate(message)
    [problem] = describe(refused.value)
    assert problem.field.endswith(field)
    assert "between 1900-01-01 and 2199-12-31" in problem.message


def test_a_message_stored_before_the_range_was_set_still_reads() -> None:
    """The purger reloads every stored fact of a subject for each new event: one accepted before
    the range (a pre-1900 bookkeeping year, say) must not make the subject unreadable."""
    stored = {
        "schema_version": 1,
        "event_id": "c0a8012e-7f3a-4b8e-9d2a-1b2c3d4e5f60",
        "type": "bookkeeping.recorded",
        "occurred_at": "1899-12-31T10:00:00+01:00",
        "subject": PSEUDONYM,
        "data": {"fiscal_year_end": "1899-12-31"},
    }
    message = LifecycleMessage.from_json(json.dumps(stored))
    assert message.occurred_at.year == 1899
    assert message.data.fiscal_year_end == date(1899, 12, 31)
    with pytest.raises(ValidationError):
        LifecycleMessage.model_validate(stored)  # anyone else's message: refused
