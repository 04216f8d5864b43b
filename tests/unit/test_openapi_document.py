"""The OpenAPI document as a client generator reads it: every schema it makes a class of has a
name of its own, and every operation an id of its own that reads as a method name."""

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from services.api.app import create_app
from services.api.settings import ApiSettings

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
# A method name a person would write: lower-case words joined by underscores, no path in it.
READABLE_ID = re.compile(r"[a-z]+(_[a-z]+)*")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = ApiSettings(
        pseudonym_secret="test-pseudonym-secret-of-32-chars-or-more",
        secret_sealing_key="test-secret-sealing-key-of-32-chars-or-more",
        database_url="sqlite://",  # the document is built without a connection
    )
    return create_app(settings).openapi()


def _class_name(text: str) -> str:
    """The name a generator makes of a schema's title: its letters and digits, case aside."""
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield method.upper(), path, operation


def test_no_two_component_schemas_share_a_name_or_a_title(document: dict[str, Any]) -> None:
    # Two models titled Accepted (events and notifications) made openapi-python-client drop one
    # of them, and with it the answers of redelivery, closing and confirmation.
    schemas = document["components"]["schemas"]
    names = Counter(_class_name(schema.get("title", key)) for key, schema in schemas.items())
    assert [name for name, count in names.items() if count > 1] == []
    # FastAPI names a component by its module only when two models share a class name.
    assert [key for key in schemas if "__" in key] == []


def test_every_operation_has_an_id_of_its_own_that_reads_as_a_method(
    document: dict[str, Any],
) -> None:
    ids = {
        (method, path): operation.get("operationId")
        for method, path, operation in _operations(document)
    }
    assert [where for where, found in ids.items() if not found] == []
    repeated = Counter(ids.values())
    assert [found for found, count in repeated.items() if count > 1] == []
    # FastAPI's default appends the path and method: post_event_v1_events_post.
    unreadable = [
        found
        for (method, path), found in ids.items()
        if not READABLE_ID.fullmatch(found) or found.endswith(f"_{method.lower()}")
    ]
    assert unreadable == []


def test_the_calls_a_client_makes_most_are_named_for_what_they_do(
    document: dict[str, Any],
) -> None:
    ids = {
        (method, path): operation["operationId"]
        for method, path, operation in _operations(document)
    }
    assert ids[("POST", "/v1/events")] == "post_event"
    assert ids[("POST", "/v1/events/batch")] == "post_event_batch"
    assert ids[("POST", "/v1/subjects/lookup")] == "lookup_subject"
    assert ids[("GET", "/v1/erasures/{erasure_id}")] == "get_erasure"
    assert ids[("POST", "/v1/erasures/{erasure_id}/confirmations")] == "confirm_erasure"
    assert ids[("POST", "/v1/notifications/{notification_id}/confirm")] == "confirm_notification"
    assert ids[("POST", "/v1/erasures/{erasure_id}/commands/{system}")] == (
        "request_erasure_command"
    )
    assert ids[("POST", "/v1/systems")] == "create_system"
    assert ids[("GET", "/v1/systems")] == "list_systems"
    assert ids[("GET", "/v1/systems/{system_id}")] == "get_system"
    assert ids[("PATCH", "/v1/systems/{system_id}")] == "change_system"


#: The operations that never need the database: liveness, metrics (its backlog figure is NaN
#: when the database is away) and readiness (it says itself, 503 not-ready, what it cannot reach).
WITHOUT_THE_DATABASE = {("GET", "/healthz"), ("GET", "/metrics"), ("GET", "/readyz")}


def test_every_operation_that_needs_the_database_declares_its_503_with_retry_after(
    document: dict[str, Any],
) -> None:
    # Any route that reads or writes the database (every authenticated one: the API key is read
    # from it) answers 503 store-unavailable with Retry-After when it cannot be reached, or
    # when no connection is free in time: a client generated from the document must expect it,
    # and know when to send again.
    undeclared = []
    for method, path, operation in _operations(document):
        if (method, path) in WITHOUT_THE_DATABASE:
            continue
        declared = operation["responses"].get("503", {})
        retry_after = declared.get("headers", {}).get("Retry-After", {})
        if not (
            list(declared.get("content", {})) == ["application/problem+json"]
            and "Retry-After" in declared.get("description", "")
            and retry_after.get("required") is True
            and retry_after.get("schema") == {"type": "integer"}
            and "seconds" in retry_after.get("description", "")
        ):
            undeclared.append(f"{method} {path}")
    assert undeclared == []
    # As every problem the API declares: the media type, and no JSON body beside it.
    lookup = document["paths"]["/v1/subjects/lookup"]["post"]["responses"]
    assert set(lookup["503"]["content"]) == set(lookup["401"]["content"])
