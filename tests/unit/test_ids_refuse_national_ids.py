"""Every id of the event contract refuses a personal identity number, naming the field and never
repeating the value; messages Gallring wrote before the check still read."""

import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from pydantic import ValidationError

from shared.domain.contract import parse_event
from shared.domain.contract.errors import describe
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.vocabulary import NATIONAL_ID_REFUSED

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
#: As upstream systems write them: with and without century and separator, and inside an id.
PERSONAL_NUMBERS = ["19811218-9876", "198112189876", "811218-9876", "C-8112189876"]

#: (event type, where the id goes, the field named in the answer)
ID_FIELDS = [
    ("collection_case.closed", ("scope", "case_id"), "scope.case_id"),
    ("customer_relationship.ended", ("scope", "client_id"), "scope.client_id"),
    ("aml.relationship_ended", ("scope", "relationship_id"), "scope.relationship_id"),
    ("aml.measure_performed", ("scope", "measure_id"), "scope.measure_id"),
    ("legal_hold.placed", ("data", "hold_id"), "data.hold_id"),
    ("legal_hold.placed", ("data", "case_id"), "data.case_id"),
    ("legal_hold.released", ("data", "hold_id"), "data.hold_id"),
    ("data.disclosed", ("data", "recipient_id"), "data.recipient_id"),
    ("data.disclosed", ("data", "recipient_ref"), "data.recipient_ref"),
]


def event_with(event_type: str, where: tuple[str, str], value: str) -> dict[str, Any]:
    event = {**EXAMPLES[event_type], "event_id": str(uuid4())}
    part, key = where
    if part == "scope":
        event["scope"] = {key: value}
    else:
        event["data"] = {**event["data"], key: value}
    return event


@pytest.mark.parametrize(("event_type", "where", "field"), ID_FIELDS)
@pytest.mark.parametrize("personal_number", PERSONAL_NUMBERS)
def test_an_id_field_refuses_a_personal_number_and_says_so_without_repeating_it(
    event_type: str, where: tuple[str, str], field: str, personal_number: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        parse_event(event_with(event_type, where, personal_number), now=NOW)
    [problem] = describe(refused.value)
    assert (problem.field, problem.message) == (field, NATIONAL_ID_REFUSED)
    assert "9876" not in str(problem)


@pytest.mark.parametrize(("event_type", "where", "field"), ID_FIELDS)
def test_an_ordinary_id_in_the_same_field_is_accepted(
    event_type: str, where: tuple[str, str], field: str
) -> None:
    event = parse_event(event_with(event_type, where, "C-2023-0001"), now=NOW)
    assert event.type == event_type


def test_a_message_written_before_the_check_still_reads() -> None:
    """The purger reloads a subject's stored messages for every new event: one accepted before
    the check must not make the subject unreadable."""
    stored = json.dumps(
        {
            "schema_version": 1,
            "event_id": str(uuid4()),
            "type": "data.disclosed",
            "occurred_at": "2024-01-01T00:00:00Z",
            "subject": "a" * 64,
            "scope": {"case_id": "811218-9876"},
            "data": {
                "recipient_id": "print-vendor",
                "category": "collection_case",
                "recipient_ref": "811218-9876",
            },
        }
    )
    message = LifecycleMessage.from_json(stored)
    assert message.scope.case_id == "811218-9876"
    assert message.data.recipient_ref == "811218-9876"
