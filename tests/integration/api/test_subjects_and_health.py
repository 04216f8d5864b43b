"""The subject lookup, readiness and metrics."""

import asyncio
import socket
import uuid

import pytest
from opentelemetry import trace

from services.api.api_keys import Scope
from shared.domain.contract.events import INTERNAL_EVENT_TYPES
from shared.domain.contract.examples import EXAMPLES
from shared.messaging.embedded_broker import free_loopback_port
from tests.integration.conftest import RunningApi, relay_settings
from tests.integration.purger.running import running_purger
from tests.polling import eventually


async def test_lookup_evaluates_the_subjects_clocks_from_its_events(
    api: RunningApi, kafka_settings
) -> None:
    subject = {"ref": f"crm:{uuid.uuid4().hex[:8]}"}
    writer = api.key(Scope.EVENTS_WRITE)
    # Two marketing contacts: the later one starts the clock, which runs 36 months.
    for occurred_at in ("2026-01-10T08:15:00+01:00", "2026-03-10T08:15:00+01:00"):
        event = {
            **EXAMPLES["marketing.contact"],
            "event_id": str(uuid.uuid4()),
            "subject": subject,
            "occurred_at": occurred_at,
        }
        assert (await api.client.post("/v1/events", json=event, headers=writer)).status_code == 202

    reader = api.key(Scope.SUBJECTS_READ)

    async def both_consumed() -> dict | None:  # until the purger has consumed both
        response = await api.client.post("/v1/subjects/lookup", json=subject, headers=reader)
        assert response.status_code == 200
        body = response.json()
        return body if body.get("events") == 2 else None

    async with running_purger(api.settings.database_url, kafka_settings):
        body = await eventually(both_consumed, timeout=30, interval=0.2)
    assert len(body["subject"]) == 64 and subject["ref"] not in body["subject"]
    [clock] = body["clocks"]
    assert (clock["category"], clock["state"], clock["rule"]) == (
        "marketing",
        "pending",
        "marketing.retention",
    )
    assert clock["due_at"] == "2029-03-10T07:15:00Z"


async def test_lookup_of_an_unknown_subject_has_no_clocks(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/subjects/lookup", json={"ref": "crm:nobody"}, headers=api.key(Scope.SUBJECTS_READ)
    )
    assert (response.status_code, response.json()["clocks"]) == (200, [])


async def test_lookup_validates_the_identifier(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/subjects/lookup",
        json={"national_id": "19811218-9875"},
        headers=api.key(Scope.SUBJECTS_READ),
    )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "national_id", "message": "the check digit (the last digit) does not match"}
    ]
    assert "19811218" not in response.text


async def test_ready_when_database_and_broker_answer(api: RunningApi) -> None:
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_not_ready_without_the_broker(make_api, kafka_settings) -> None:
    gone = kafka_settings.model_copy(update={"bootstrap": f"127.0.0.1:{free_loopback_port()}"})
    async with make_api(kafka=gone) as api:
        response = await api.client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "ok", "broker": "unreachable"}


async def test_without_the_database_ready_says_so_and_metrics_still_answer(make_api) -> None:
    gone = f"postgresql+psycopg://postgres@127.0.0.1:{free_loopback_port()}/gone"
    async with make_api(database_url=gone, relay=relay_settings(enabled=False)) as api:
        ready = await api.client.get("/readyz")
        metrics = await api.client.get("/metrics")
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unreachable"
    assert metrics.status_code == 200
    assert "gallring_outbox_backlog NaN" in metrics.text  # unknown, not zero


# The API's database is the silent host's, not the session's: once is enough.
@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_metrics_answer_within_seconds_while_the_database_does_not(make_api) -> None:
    # A host that takes the connection and never answers, as a hung server or a dropped route.
    silent = socket.create_server(("127.0.0.1", 0))
    url = f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/silent"
    try:
        async with make_api(database_url=url, relay=relay_settings(enabled=False)) as api:
            try:
                async with asyncio.timeout(10):  # not for as long as a connection may hang
                    metrics = await api.client.get("/metrics")
            finally:
                # The count's connection attempt then ends, before the API stops: its engine
                # would otherwise wait out the attempt's connect_timeout (10 s) at dispose.
                silent.close()
    finally:
        silent.close()
    assert metrics.status_code == 200
    assert "gallring_outbox_backlog NaN" in metrics.text


async def test_metrics_count_requests_by_route_and_events_by_type(api: RunningApi) -> None:
    for _ in range(2):
        event = {**EXAMPLES["marketing.contact"], "event_id": str(uuid.uuid4())}
        await api.client.post("/v1/events", json=event, headers=api.key(Scope.EVENTS_WRITE))
    text = (await api.client.get("/metrics")).text
    assert 'gallring_api_events_accepted_total{type="marketing.contact"} 2.0' in text
    assert 'gallring_api_events_accepted_total{type="legal_hold.placed"} 0.0' in text  # none yet
    assert 'gallring_api_requests_total{method="POST",route="/v1/events",status="202"} 2.0' in text
    count = 'gallring_api_request_duration_seconds_count{method="POST",route="/v1/events"} 2.0'
    assert count in text
    assert "gallring_outbox_backlog" in text
    assert "crm:4711" not in text


async def test_the_openapi_document_has_an_example_of_every_event_type(api: RunningApi) -> None:
    """Of every type a system may send: not of Gallring's own, which the intake refuses."""
    document = (await api.client.get("/openapi.json")).json()
    body = document["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == set(EXAMPLES) - set(INTERNAL_EVENT_TYPES)
    assert "LifecycleEvent" in document["components"]["schemas"]


async def test_the_openapi_document_gives_the_batch_limit_the_api_enforces(make_api) -> None:
    async with make_api(api_max_batch_events=50) as api:
        document = (await api.client.get("/openapi.json")).json()
    batch = document["paths"]["/v1/events/batch"]["post"]["requestBody"]["content"]
    assert batch["application/json"]["schema"]["maxItems"] == 50


async def test_a_lookup_that_is_not_json_names_no_byte_offset(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/subjects/lookup",
        content=b'{"ref": ',
        headers={**api.key(Scope.SUBJECTS_READ), "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == ""


@pytest.mark.parametrize("opentelemetry", [False, True])
async def test_requests_look_for_opentelemetry_only_when_it_is_switched_on(
    make_api, monkeypatch: pytest.MonkeyPatch, opentelemetry: bool
) -> None:
    asked: list[object] = []
    real = trace.get_tracer_provider

    def recording() -> object:
        asked.append(None)
        return real()

    monkeypatch.setattr(trace, "get_tracer_provider", recording)
    async with make_api(api_opentelemetry=opentelemetry) as api:
        assert (await api.client.get("/healthz")).status_code == 200
    assert bool(asked) is opentelemetry
