"""Inputs a careless or hostile caller sends: each is a 422 problem document that says what is
wrong and where, never a 500, a 400 or a value read some other way than it was meant."""

import json
import uuid
from typing import Any

import pytest

from services.api.api_keys import Scope
from tests.builders import recipient_body
from tests.integration.api.test_events import fresh
from tests.integration.conftest import RunningApi

HUGE_NUMBER = "7" * 5000  # past Python's 4,300 digits for int(str)
PROBLEM_JSON = "application/problem+json"


def assert_validation_problem(response: Any) -> list[dict[str, str]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM_JSON
    problem = response.json()
    assert problem["type"] == "urn:gallring:problem:validation-error"
    return problem["errors"]


def with_huge_number(document: dict[str, Any]) -> bytes:
    """``document`` with one more field whose value is a 5,000-digit integer."""
    return json.dumps(document)[:-1].encode() + b', "n": ' + HUGE_NUMBER.encode() + b"}"


async def test_a_5000_digit_number_in_a_batch_is_a_422_that_says_where(api: RunningApi) -> None:
    headers = {**api.key(Scope.EVENTS_WRITE), "Content-Type": "application/json"}
    body = b"[" + json.dumps(fresh("marketing.contact")).encode() + b",\n"
    body += with_huge_number(fresh("marketing.contact")) + b"]"
    response = await api.client.post("/v1/events/batch", content=body, headers=headers)
    [error] = assert_validation_problem(response)
    assert error["field"] == ""
    assert error["message"].startswith("Invalid JSON: ")
    assert "at line 2 column" in error["message"]
    assert "7777" not in response.text


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"data": {"fiscal_year_end": "9999-12-31"}}, "data.fiscal_year_end"),
        ({"occurred_at": "0001-01-01T00:00:00+14:00"}, "occurred_at"),
    ],
)
async def test_dates_out_of_range_are_refused_at_intake(
    api: RunningApi, changes: dict[str, Any], field: str
) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    event = fresh("bookkeeping.recorded", **changes)
    response = await api.client.post("/v1/events", json=event, headers=headers)
    errors = assert_validation_problem(response)
    assert errors == [{"field": field, "message": errors[0]["message"]}]
    assert "between 1900-01-01 and 2199-12-31" in errors[0]["message"]

    # In a batch, just that item is invalid.
    good = fresh("bookkeeping.recorded")
    batch = await api.client.post("/v1/events/batch", json=[good, event], headers=headers)
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert [r["status"] for r in results] == ["accepted", "invalid"]
    assert [e["field"] for e in results[1]["errors"]] == [field]


@pytest.mark.parametrize(
    ("path", "query", "field"),
    [
        ("/v1/erasures/forecast", {"until": "9999-12-31"}, "until"),  # was a 500 (OverflowError)
        ("/v1/erasures/forecast", {"until": "0"}, "until"),  # was read as 1970-01-01
        ("/v1/erasures/forecast", {"until": "1899-12-31"}, "until"),
        ("/v1/erasures/forecast", {"until": "2030-12-31T00:00:00Z"}, "until"),
        ("/v1/erasures", {"due_before": "0.5"}, "due_before"),  # was read as Unix time
        ("/v1/erasures", {"due_before": "1700000000"}, "due_before"),
        ("/v1/erasures", {"due_before": "2030-01-01"}, "due_before"),
        ("/v1/erasures", {"due_before": "9999-12-31T23:59:59+14:00"}, "due_before"),
    ],
)
async def test_erasure_queries_take_iso_8601_text_in_the_range(
    api: RunningApi, path: str, query: dict[str, str], field: str
) -> None:
    response = await api.client.get(path, params=query, headers=api.key(Scope.ERASURES_READ))
    [error] = assert_validation_problem(response)
    assert error["field"] == f"query.{field}"


#: How the OpenAPI document describes a time, and what the 422 must say is expected.
_TIME_FORMATS = {"date-time": "ISO-8601 date and time with a UTC offset", "date": "ISO-8601 date"}


def _time_query_parameters(document: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(path, parameter, format) of every query parameter the document describes as a time."""
    found = []
    for path, item in document["paths"].items():
        for parameter in item.get("get", {}).get("parameters", []):
            schema = parameter["schema"]
            for option in [schema, *schema.get("anyOf", [])]:
                if parameter["in"] == "query" and option.get("format") in _TIME_FORMATS:
                    found.append((path, parameter["name"], option["format"]))
    return found


@pytest.mark.parametrize("number", ["0.5", "1700000000", "-1"])
async def test_every_time_query_parameter_takes_iso_8601_text_only(
    api: RunningApi, number: str
) -> None:
    """Pydantic would read a number as Unix time; every time in a query is refused unless it is
    ISO 8601 text, with a 422 naming the parameter and the form expected. The parameters are
    found in the OpenAPI document, which must go on describing them as strings of a date
    format."""
    document = (await api.client.get("/openapi.json")).json()
    parameters = _time_query_parameters(document)
    assert {(path, name) for path, name, _ in parameters} >= {
        ("/v1/erasures", "due_before"),
        ("/v1/erasures/forecast", "until"),
    }
    for path, name, time_format in parameters:
        response = await api.client.get(path, params={name: number}, headers=api.key(Scope.ADMIN))
        errors = assert_validation_problem(response)
        [message] = [e["message"] for e in errors if e["field"] == f"query.{name}"]
        assert _TIME_FORMATS[time_format] in message, (path, name, message)


@pytest.mark.parametrize(
    ("method", "path", "field"),
    [
        ("GET", "/v1/erasures/nonsense", "erasure_id"),
        ("GET", "/v1/notifications/nonsense", "notification_id"),
        ("POST", "/v1/notifications/nonsense/redeliver", "notification_id"),
    ],
)
async def test_a_malformed_id_in_a_path_is_one_error(
    api: RunningApi, method: str, path: str, field: str
) -> None:
    response = await api.client.request(method, path, headers=api.key(Scope.ADMIN))
    [error] = assert_validation_problem(response)
    assert error["field"] == f"path.{field}"


async def test_erasure_queries_in_the_range_are_answered(api: RunningApi) -> None:
    reader = api.key(Scope.ERASURES_READ)
    forecast = await api.client.get(
        "/v1/erasures/forecast", params={"until": "2199-12-31"}, headers=reader
    )
    assert forecast.status_code == 200, forecast.text
    listed = await api.client.get(
        "/v1/erasures", params={"due_before": "2199-12-31T23:59:59Z"}, headers=reader
    )
    assert listed.status_code == 200, listed.text


async def test_a_boolean_is_not_a_number_of_grace_hours(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    body = recipient_body()
    recipient_id = body["recipient_id"]
    created = await api.client.post("/v1/recipients", json=body, headers=admin)
    assert created.status_code == 201, created.text
    rotations = f"/v1/recipients/{recipient_id}/secret-rotations"
    for grace_hours in (False, True, "24"):
        response = await api.client.post(
            rotations, json={"grace_hours": grace_hours}, headers=admin
        )
        [error] = assert_validation_problem(response)
        assert error["field"] == "grace_hours"
    # Nothing was rotated: the first secret is the only one, with no grace period running.
    shown = await api.client.get(f"/v1/recipients/{recipient_id}", headers=admin)
    assert shown.json()["previous_secret_valid_until"] is None
    # Nor is a number a boolean.
    for active in (0, "no"):
        response = await api.client.patch(
            f"/v1/recipients/{recipient_id}", json={"active": active}, headers=admin
        )
        [error] = assert_validation_problem(response)
        assert error["field"] == "active"
    shown = await api.client.get(f"/v1/recipients/{recipient_id}", headers=admin)
    assert shown.json()["active"] is True


BODY_ROUTES = [
    ("POST", "/v1/events"),
    ("POST", "/v1/events/batch"),
    ("POST", "/v1/subjects/lookup"),
    ("POST", "/v1/recipients"),
    ("PATCH", "/v1/recipients/agent-1"),
    ("POST", "/v1/recipients/agent-1/secret-rotations"),
    ("POST", f"/v1/erasures/{uuid.UUID(int=1)}/confirmations"),
]
MALFORMED = {
    "syntax": b'{"ref": ',
    "not UTF-8": b'{"ref": "\xff"}',
    "a 5,000-digit number": with_huge_number({"ref": "crm:4711"}),
}


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES)
async def test_a_body_that_is_not_json_is_a_422_problem_on_every_route(
    api: RunningApi, method: str, path: str
) -> None:
    headers = {**api.key(Scope.ADMIN), "Content-Type": "application/json"}
    for kind, body in MALFORMED.items():
        response = await api.client.request(method, path, content=body, headers=headers)
        [error] = assert_validation_problem(response)
        assert error["field"] == "", kind
        assert error["message"].startswith("Invalid JSON: "), kind
        assert "7777" not in response.text


async def test_the_openapi_document_says_what_metrics_and_batches_are(api: RunningApi) -> None:
    document = (await api.client.get("/openapi.json")).json()
    metrics = document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    batch = document["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]
    items = batch["application/json"]["schema"]["items"]
    # Any item may come: an invalid one is answered in its result, not by refusing the batch.
    assert {"$ref": "#/components/schemas/LifecycleEvent"} in items["anyOf"]
    assert any(
        "$ref" not in alternative and "type" not in alternative for alternative in items["anyOf"]
    )
    until = document["paths"]["/v1/erasures/forecast"]["get"]["parameters"][0]
    assert "between 1900-01-01 and 2199-12-31" in until["description"]
