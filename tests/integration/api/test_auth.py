"""Credentials and scopes: 401 without a valid key, 403 without the scope, health open to all."""

import pytest

from services.api.api_keys import Scope
from shared.domain.contract.examples import EXAMPLES
from tests.integration.conftest import RunningApi

EVENT = EXAMPLES["marketing.contact"]
LOOKUP = {"ref": "crm:4711"}


async def test_no_key_is_401_with_a_problem_saying_what_to_send(api: RunningApi) -> None:
    response = await api.client.post("/v1/events", json=EVENT)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in response.json()["detail"]


@pytest.mark.parametrize(
    "presented", ["nonsense", "gal_0000000000000000_secret", "Basic dXNlcjpwYXNz"]
)
async def test_an_unknown_key_is_401(api: RunningApi, presented: str) -> None:
    response = await api.client.post(
        "/v1/events", json=EVENT, headers={"Authorization": f"Bearer {presented}"}
    )
    assert response.status_code == 401


async def test_a_known_key_id_with_a_wrong_secret_is_401(api: RunningApi) -> None:
    key = api.keys.create("wrong-secret", {Scope.EVENTS_WRITE})
    tampered = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    response = await api.client.post(
        "/v1/events", json=EVENT, headers={"Authorization": f"Bearer {tampered}"}
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("path", "body", "scope"),
    [
        ("/v1/events", EVENT, Scope.EVENTS_WRITE),
        ("/v1/events/batch", [EVENT], Scope.EVENTS_WRITE),
        ("/v1/subjects/lookup", LOOKUP, Scope.SUBJECTS_READ),
    ],
)
async def test_each_route_needs_its_scope(
    api: RunningApi, path: str, body: object, scope: Scope
) -> None:
    other = next(s for s in (Scope.SUBJECTS_READ, Scope.EVENTS_WRITE) if s != scope)
    refused = await api.client.post(path, json=body, headers=api.key(other))
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:gallring:problem:forbidden"
    assert f"'{scope}'" in refused.json()["detail"]
    assert (await api.client.post(path, json=body, headers=api.key(scope))).status_code < 300
    assert (await api.client.post(path, json=body, headers=api.key(Scope.ADMIN))).status_code < 300


async def test_data_subject_requests_need_dsr_write(api: RunningApi) -> None:
    request = EXAMPLES["dsr.erasure_requested"]
    refused = await api.client.post("/v1/events", json=request, headers=api.key(Scope.EVENTS_WRITE))
    assert refused.status_code == 403
    allowed = await api.client.post(
        "/v1/events", json=request, headers=api.key(Scope.EVENTS_WRITE, Scope.DSR_WRITE)
    )
    assert allowed.status_code in (200, 202)


async def test_a_revoked_key_is_refused(api: RunningApi) -> None:
    key = api.keys.create("soon-revoked", {Scope.EVENTS_WRITE})
    headers = {"Authorization": f"Bearer {key}"}
    assert (await api.client.post("/v1/events", json=EVENT, headers=headers)).status_code < 300
    assert api.keys.revoke("soon-revoked") == 1
    assert (await api.client.post("/v1/events", json=EVENT, headers=headers)).status_code == 401


async def test_keys_are_stored_only_as_hashes(api: RunningApi) -> None:
    key = api.keys.create("hashed", {Scope.EVENTS_WRITE})
    secret = key.split("_", 2)[2]
    [stored] = [k for k in api.keys.list_keys() if k.name == "hashed"]
    assert secret not in stored.secret_hash
    assert len(stored.secret_hash) == 64


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
async def test_health_and_metrics_need_no_key(api: RunningApi, path: str) -> None:
    assert (await api.client.get(path)).status_code == 200


async def test_a_route_that_does_not_exist_needs_a_key_too(api: RunningApi) -> None:
    # Checked before routing: without a key nothing, not even which routes exist, is told.
    assert (await api.client.get("/v1/no-such-route")).status_code == 401
    with_key = await api.client.get("/v1/no-such-route", headers=api.key(Scope.EVENTS_WRITE))
    assert with_key.status_code == 404


async def test_the_api_documents_say_which_routes_need_a_key(api: RunningApi) -> None:
    assert (await api.client.get("/docs")).status_code == 200
    document = (await api.client.get("/openapi.json")).json()
    assert document["components"]["securitySchemes"]["apiKey"]["scheme"] == "bearer"
    assert document["security"] == [{"apiKey": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    confirm = document["paths"]["/v1/notifications/{notification_id}/confirm"]["post"]
    assert confirm["security"] == []
    assert "security" not in document["paths"]["/v1/events"]["post"]  # the document's holds


async def test_only_the_method_of_a_public_route_is_public(api: RunningApi) -> None:
    # /healthz answers GET to anyone; another method on the same path still needs a key.
    assert (await api.client.post("/healthz")).status_code == 401
    answer = await api.client.post("/healthz", headers=api.key(Scope.ADMIN))
    assert answer.status_code == 405 and answer.headers["allow"] == "GET"


async def test_behind_a_path_prefix_the_public_routes_stay_public(make_api) -> None:
    # A proxy mounts the API under /gallring (uvicorn --root-path /gallring).
    async with make_api(root_path="/gallring") as api:
        assert (await api.client.get("/healthz")).status_code == 200
        assert (await api.client.get("/docs")).status_code == 200
        assert (await api.client.post("/v1/events", json=EVENT)).status_code == 401
