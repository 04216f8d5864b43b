import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from jsonschema import Draft202012Validator
from pydantic import BaseModel, ValidationError

from shared.domain.contract import EVENT_TYPES, event_json_schema, parse_event
from shared.domain.contract.erasure_messages import ErasureCommand, ErasureExecuted
from shared.domain.contract.errors import describe
from shared.domain.contract.events import HoldPlacedData, NoData
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.scope import Scope
from shared.domain.contract.topic_messages import topic_json_schema
from shared.messaging import topics

SCHEMA_FILE = Path(__file__).parents[2] / "docs" / "event-contract.v1.schema.json"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def errors_of(raw: dict[str, Any], now: datetime = NOW) -> list[str]:
    with pytest.raises(ValidationError) as refused:
        parse_event(raw, now=now)
    return [str(problem) for problem in describe(refused.value)]


def with_changes(event_type: str, **changes: Any) -> dict[str, Any]:
    return {**EXAMPLES[event_type], **changes}


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_every_event_type_has_a_valid_example(event_type: str) -> None:
    event = parse_event(EXAMPLES[event_type], now=NOW)
    assert event.type == event_type


def test_the_issue_example_parses_and_normalises_the_national_id() -> None:
    event = parse_event(EXAMPLES["collection_case.closed"], now=NOW)
    assert event.subject.national_id == "198112189876"
    assert event.scope.item == ("case_id", "C-2023-0001")
    assert event.occurred_at == datetime(2023, 3, 15, 9, 0, tzinfo=UTC)


def test_unknown_type_lists_the_known_ones() -> None:
    [problem] = errors_of(with_changes("marketing.contact", type="case.closed"))
    assert problem.startswith("type: unknown event type; expected one of:")
    assert "collection_case.closed" in problem


def test_subject_needs_exactly_one_identifier() -> None:
    both = with_changes("marketing.contact", subject={"national_id": "19811218-9876", "ref": "a"})
    assert errors_of(both) == ["subject: give exactly one of 'national_id' or 'ref'"]
    assert errors_of(with_changes("marketing.contact", subject={})) == [
        "subject: give exactly one of 'national_id' or 'ref'"
    ]


def test_a_bad_national_id_is_named_without_echoing_it() -> None:
    bad = with_changes("marketing.contact", subject={"national_id": "19811218-9875"})
    with pytest.raises(ValidationError) as refused:
        parse_event(bad, now=NOW)
    assert [str(p) for p in describe(refused.value)] == [
        "subject.national_id: the check digit (the last digit) does not match"
    ]
    assert "9875" not in str(refused.value)


@pytest.mark.parametrize(
    ("event_type", "scope", "expected"),
    [
        ("collection_case.closed", {}, "scope: collection_case.closed needs scope.case_id"),
        (
            "collection_case.closed",
            {"client_id": "K-1"},
            "scope: scope.client_id does not apply to collection_case.closed; expected "
            "scope.case_id",
        ),
        (
            "marketing.contact",
            {"case_id": "C-1"},
            "scope: marketing.contact applies to the whole subject; leave scope empty",
        ),
        (
            "aml.measure_performed",
            {},
            "scope: aml.measure_performed needs scope.measure_id or scope.relationship_id",
        ),
        (
            "controller.erasure_instructed",
            {},
            "scope: controller.erasure_instructed needs scope.client_id",
        ),
    ],
)
def test_each_type_says_which_scope_it_needs(
    event_type: str, scope: dict[str, str], expected: str
) -> None:
    assert errors_of(with_changes(event_type, scope=scope)) == [expected]


def test_a_scope_names_at_most_one_key() -> None:
    [problem] = errors_of(
        with_changes("data.outdated", scope={"case_id": "C-1", "client_id": "K-1"})
    )
    assert problem.startswith("scope: give at most one scope key")


def test_a_lifecycle_message_reads_its_data_by_its_type_and_names_the_bad_field() -> None:
    """What a consumer decodes: the data as its type's model (empty when left out), and a
    dead letter's reason that names a field of the data as ``data.…``."""
    message = {
        "schema_version": 1,
        "subject": "a" * 64,
        "event_id": str(uuid4()),
        "type": "legal_hold.placed",
        "occurred_at": "2024-01-02T03:04:05+00:00",
        "scope": {"hold_id": "H-1"},
    }
    placed = LifecycleMessage.from_json(json.dumps({**message, "data": {"hold_id": "H-1"}}))
    assert isinstance(placed.data, HoldPlacedData)
    assert placed.data.hold_id == "H-1"
    closed = {**message, "type": "collection_case.closed", "scope": {"case_id": "C-1"}}
    assert isinstance(LifecycleMessage.from_json(json.dumps(closed)).data, NoData)
    with pytest.raises(ValidationError) as refused:
        LifecycleMessage.from_json(json.dumps({**message, "data": {}}))
    assert [problem.field for problem in describe(refused.value)] == ["data.hold_id"]


def test_a_scope_names_its_key_and_a_changed_copy_its_own() -> None:
    """The engine routes an event by ``scope.item``, worked out once while validating: a copy
    with another key must not keep the original's."""
    scope = Scope.model_validate_json('{"case_id": "C-1"}')
    assert scope.item == ("case_id", "C-1")
    assert Scope().item is None
    assert scope.model_copy(update={"case_id": "C-2"}).item == ("case_id", "C-2")
    moved = scope.model_copy(update={"case_id": None, "client_id": "K-1"})
    assert moved.item == ("client_id", "K-1")
    assert scope.model_copy().item == ("case_id", "C-1")


def test_ids_cannot_carry_free_text() -> None:
    [problem] = errors_of(
        with_changes("collection_case.closed", scope={"case_id": "Anna Svensson"})
    )
    assert problem.startswith("scope.case_id: String should match pattern")


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("bookkeeping.recorded", {}, "data.fiscal_year_end: Field required"),
        (
            "bookkeeping.recorded",
            {"fiscal_year_end": "2024-13-01"},
            "data.fiscal_year_end: Input should be a valid date or datetime, month value is "
            "outside expected range of 1-12",
        ),
        ("data.outdated", {}, "data.category: Field required"),
        ("legal_hold.placed", {"case_id": "C-1"}, "data.hold_id: Field required"),
        (
            "data.disclosed",
            {"recipient_id": "x", "category": "collection_case"},
            "data.recipient_ref: Field required",
        ),
        ("marketing.contact", {"name": "Anna"}, "data.name: unknown field; remove it"),
    ],
)
def test_each_type_validates_its_own_data(
    event_type: str, data: dict[str, Any], expected: str
) -> None:
    assert expected in errors_of(with_changes(event_type, data=data))


def test_unknown_category_lists_the_categories() -> None:
    [problem] = errors_of(with_changes("data.outdated", data={"category": "secrets"}))
    assert problem.startswith("data.category: Input should be 'collection_case'")


def test_hold_ids_in_scope_and_data_must_agree() -> None:
    placed = with_changes("legal_hold.placed", scope={"hold_id": "H-1"})
    assert errors_of(placed) == ["scope.hold_id and data.hold_id name different holds"]
    agreeing = with_changes("legal_hold.placed", scope={"hold_id": "H-77"})
    assert parse_event(agreeing, now=NOW).data.hold_id == "H-77"


def test_unknown_top_level_fields_are_refused() -> None:
    extra = with_changes("marketing.contact", email="anna@example.com")
    assert errors_of(extra) == ["email: unknown field; remove it"]


def test_occurred_at_needs_a_utc_offset() -> None:
    naive = with_changes("marketing.contact", occurred_at="2024-05-02T14:30:00")
    assert errors_of(naive) == ["occurred_at: Input should have timezone info"]


def test_occurred_at_may_lie_at_most_five_minutes_ahead() -> None:
    soon = (NOW + timedelta(minutes=4, seconds=59)).isoformat()
    assert parse_event(with_changes("marketing.contact", occurred_at=soon), now=NOW)
    later = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    [problem] = errors_of(with_changes("marketing.contact", occurred_at=later))
    assert problem.startswith("occurred_at: lies more than 5 minutes in the future")


def test_json_text_is_validated_too() -> None:
    text = json.dumps(EXAMPLES["marketing.contact"])
    assert parse_event(text, now=NOW).type == "marketing.contact"
    with pytest.raises(ValidationError) as refused:
        parse_event("{not json", now=NOW)
    assert describe(refused.value)[0].message.startswith("Invalid JSON")


def test_the_committed_json_schema_is_the_generated_one() -> None:
    committed = json.loads(SCHEMA_FILE.read_text())
    assert committed == event_json_schema(), "run `make schema` and commit docs/"


def test_the_json_schema_covers_every_type_and_example() -> None:
    schema = event_json_schema()
    assert set(schema["discriminator"]["mapping"]) == set(EVENT_TYPES)
    assert len(schema["examples"]) == len(EVENT_TYPES)


def test_an_unknown_key_that_is_not_a_field_name_is_not_repeated() -> None:
    leaky = with_changes("marketing.contact", subject={"ref": "crm:1", "198112189876": "x"})
    assert errors_of(leaky) == ["subject.(unknown field): unknown field; remove it"]


@pytest.mark.parametrize("occurred_at", [1700000000, "1700000000", "198112189876"])
def test_occurred_at_is_iso_8601_text_not_unix_time(occurred_at: object) -> None:
    [problem] = errors_of(with_changes("marketing.contact", occurred_at=occurred_at))
    assert problem == (
        "occurred_at: expected an ISO-8601 date and time with a UTC offset, "
        "e.g. 2023-03-15T10:00:00+01:00"
    )


def test_no_repr_of_a_subject_shows_its_identifier() -> None:
    event = parse_event(EXAMPLES["collection_case.closed"], now=NOW)
    assert "198112189876" not in repr(event)
    assert "198112189876" not in str(list(event.subject.__repr_args__()))


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_intakes_message_json_is_the_messages_own(event_type: str) -> None:
    pseudonym = "ab" * 32
    for document in (EXAMPLES[event_type], {**EXAMPLES[event_type], "role": None}):
        event = parse_event(document)
        fast = LifecycleMessage.json_of(LifecycleMessage.fields_of(event), pseudonym)
        assert json.loads(fast) == json.loads(
            LifecycleMessage.from_event(event, pseudonym).to_json()
        )
        assert LifecycleMessage.model_validate_json(fast).subject == pseudonym


TOPICS_SCHEMA_FILE = SCHEMA_FILE.parent / "topics.v1.schema.json"


def test_the_committed_topic_schemas_match_the_code_and_cover_every_topic() -> None:
    assert json.loads(TOPICS_SCHEMA_FILE.read_text()) == topic_json_schema(), (
        "run `make schema` and commit docs/"
    )
    assert set(topic_json_schema()["properties"]) == set(topics.ALL_TOPICS)


def test_messages_as_published_are_valid_by_their_topics_schema() -> None:
    schema = topic_json_schema()

    def problems(topic: str, message: BaseModel) -> list[str]:
        validator = Draft202012Validator({"$defs": schema["$defs"], **schema["properties"][topic]})
        return [
            error.message for error in validator.iter_errors(json.loads(message.model_dump_json()))
        ]

    erasure = {
        "event_id": uuid4(),
        "erasure_id": uuid4(),
        "category": "collection_case",
        "scope": {"case_id": "C-1"},
        "rule": "collection_case.retention",
        "legal_basis": "GDPR art. 17(1)(a)",
        "due_at": NOW,
    }
    executed = ErasureExecuted(**erasure, executed_at=NOW)
    assert problems(topics.ERASURES, executed) == []
    assert problems(topics.ERASURE_COMMANDS, ErasureCommand(**erasure)) == []
    assert problems(topics.ERASURE_COMMANDS, executed) != []  # an executed is no command


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_lifecycle_messages_as_the_intake_publishes_them_are_valid_by_the_topic_schema(
    event_type: str,
) -> None:
    """The intake writes the message's JSON itself (``json_of``), leaving empty fields out."""
    schema = topic_json_schema()
    validator = Draft202012Validator(
        {"$defs": schema["$defs"], **schema["properties"][topics.LIFECYCLE]}
    )
    event = parse_event(EXAMPLES[event_type], now=NOW)
    published = LifecycleMessage.json_of(LifecycleMessage.fields_of(event), "a" * 64)
    assert [e.message for e in validator.iter_errors(json.loads(published))] == []
