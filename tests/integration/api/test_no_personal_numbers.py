"""A personal identity number typed into an id or a free-text field is refused at the API with
a 422 that names the field and never repeats the number: nothing of it is stored or published."""

import uuid
from typing import Any

import pytest

from services.api.api_keys import Scope
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.vocabulary import NATIONAL_ID_REFUSED
from tests.builders import recipient_body
from tests.integration.conftest import RunningApi

PERSONAL_NUMBER = "19811218-9876"
#: Every shape of it that may come back: as given, normalised, without century.
SHAPES = ("19811218-9876", "198112189876", "811218-9876", "8112189876", "9876")


def refused(response: Any, field: str) -> None:
    """A 422 problem naming ``field``, with no trace of the number anywhere in the answer."""
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {"field": field, "message": NATIONAL_ID_REFUSED} in response.json()["errors"]
    assert not any(shape in response.text for shape in SHAPES), response.text


def closed_case(case_id: str) -> dict[str, Any]:
    return {
        **EXAMPLES["collection_case.closed"],
        "event_id": str(uuid.uuid4()),
        "subject": {"ref": "crm:4711"},  # the subject's own number is not under test here
        "scope": {"case_id": case_id},
    }


async def test_an_event_with_a_personal_number_as_case_id_is_refused(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    response = await api.client.post(
        "/v1/events", json=closed_case(f"C-{PERSONAL_NUMBER}"), headers=headers
    )
    refused(response, "scope.case_id")


async def test_a_batch_marks_just_that_event_invalid(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    batch = [closed_case("C-2023-0001"), closed_case(PERSONAL_NUMBER)]
    response = await api.client.post("/v1/events/batch", json=batch, headers=headers)
    assert response.status_code == 200, response.text
    first, second = response.json()["results"]
    assert first["status"] == "accepted"
    assert second["status"] == "invalid"
    assert second["errors"] == [{"field": "scope.case_id", "message": NATIONAL_ID_REFUSED}]
    assert not any(shape in response.text for shape in SHAPES)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("recipient_id", PERSONAL_NUMBER),
        ("name", f"Debtor {PERSONAL_NUMBER} Inkasso"),
        ("name", "Ombud för 811218 9876"),  # typed with a space, as people do
        ("webhook_url", f"https://93.184.215.14/hooks/{PERSONAL_NUMBER}"),
    ],
)
async def test_a_recipient_is_not_registered_under_a_personal_number(
    api: RunningApi, field: str, value: str
) -> None:
    admin = api.key(Scope.ADMIN)
    response = await api.client.post(
        "/v1/recipients", json=recipient_body(**{field: value}), headers=admin
    )
    refused(response, field)


async def test_a_recipient_is_not_renamed_to_a_personal_number(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    new = recipient_body()
    assert (await api.client.post("/v1/recipients", json=new, headers=admin)).is_success
    response = await api.client.patch(
        f"/v1/recipients/{new['recipient_id']}", json={"name": PERSONAL_NUMBER}, headers=admin
    )
    refused(response, "name")


async def test_a_personal_number_in_a_url_is_refused_and_not_repeated(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN, Scope.ERASURES_READ)
    one = await api.client.get(f"/v1/recipients/{PERSONAL_NUMBER}", headers=admin)
    refused(one, "path.recipient_id")
    listed = await api.client.get(
        "/v1/notifications", params={"recipient_id": PERSONAL_NUMBER}, headers=admin
    )
    refused(listed, "query.recipient_id")


async def test_a_confirmation_from_a_system_named_by_a_personal_number_is_refused(
    api: RunningApi,
) -> None:
    response = await api.client.post(
        f"/v1/erasures/{uuid.uuid4()}/confirmations",
        json={"system": PERSONAL_NUMBER},
        headers=api.key(Scope.ERASURES_CONFIRM),
    )
    refused(response, "system")
