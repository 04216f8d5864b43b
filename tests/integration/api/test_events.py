"""POST /v1/events and /v1/events/batch against real databases and a real broker."""

import asyncio
import json
import uuid
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from services.api.api_keys import Scope
from services.api.events.schemas import BatchResult
from shared.domain.contract.events import HOLD_EVENT_TYPES, INTERNAL_EVENT_TYPES
from shared.domain.contract.examples import EXAMPLES
from shared.domain.policy.model import IMMEDIATE_EVENT_TYPES
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.storage.database import make_engine
from shared.storage.tables.api import IdempotencyRecord
from shared.storage.tables.table import table_of
from tests.integration.conftest import SECRET, RunningApi
from tests.kafka_reading import event_id_of, read_topic

#: Every way the examples' identifiers could show up in clear text.
RAW_IDENTIFIERS = ["19811218-9876", "198112189876", "8112189876", "811218-9876", "crm:4711"]


#: What systems may send: Gallring's own types are refused at the intake.
PUBLIC_TYPES = [t for t in EXAMPLES if t not in INTERNAL_EVENT_TYPES]


def fresh(event_type: str, **changes: Any) -> dict[str, Any]:
    """An example event with a new id, so tests sharing a database do not collide."""
    return {**EXAMPLES[event_type], "event_id": str(uuid.uuid4()), **changes}


def idempotency_records_of(api: RunningApi, event_id: str) -> int:
    """How many idempotency records the API's database holds of the event: 1 once it was
    accepted, 0 when it was refused (and so not stored)."""
    engine = make_engine(api.settings.database_url)
    try:
        with engine.connect() as connection:
            records = table_of(IdempotencyRecord)
            return connection.execute(
                select(func.count())
                .select_from(records)
                .where(records.c.event_id == uuid.UUID(event_id))
            ).scalar_one()
    finally:
        engine.dispose()


async def test_every_event_type_is_accepted_and_published_without_raw_identifiers(
    api: RunningApi,
) -> None:
    headers = api.key(Scope.EVENTS_WRITE, Scope.DSR_WRITE)
    sent = {}
    for event_type in PUBLIC_TYPES:
        event = fresh(event_type)
        response = await api.client.post("/v1/events", json=event, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["status"] == "accepted"
        assert response.json()["event_id"] == event["event_id"]
        sent[event["event_id"]] = event

    # Each in its lane: what the notice promises at once in the immediate one, the rest after.
    immediate = {i for i, event in sent.items() if event["type"] in topics.IMMEDIATE_LANE}
    assert {sent[i]["type"] for i in immediate} == {*IMMEDIATE_EVENT_TYPES, *HOLD_EVENT_TYPES}
    records = [
        *await read_topic(
            api.settings.kafka,
            topics.LIFECYCLE,
            until=lambda rs: set(sent) - immediate <= {event_id_of(r) for r in rs},
        ),
        *await read_topic(
            api.settings.kafka,
            topics.LIFECYCLE_IMMEDIATE,
            until=lambda rs: immediate <= {event_id_of(r) for r in rs},
        ),
    ]
    pseudonymiser = Pseudonymiser(SECRET.encode())
    mine = [r for r in records if event_id_of(r) in sent]
    assert len(mine) == len(sent)
    for record in mine:
        value = json.loads(record.value)
        original = sent[value["event_id"]]
        lane = topics.LIFECYCLE_IMMEDIATE if value["event_id"] in immediate else topics.LIFECYCLE
        assert record.topic == lane, original["type"]
        kind, identifier = next(iter(original["subject"].items()))
        expected = pseudonymiser.pseudonym(
            kind, identifier.replace("-", "") if kind == "national_id" else identifier
        )
        assert record.key.decode() == expected == value["subject"]
        assert dict(record.headers) == {
            topics.HEADER_EVENT_TYPE: original["type"].encode(),
            topics.HEADER_SCHEMA_VERSION: b"1",
            topics.HEADER_EVENT_ID: original["event_id"].encode(),
        }
        assert value["type"] == original["type"]
        assert value["scope"] == original.get("scope", {})
        everything = record.key + record.value + b"".join(v for _, v in record.headers)
        for raw in RAW_IDENTIFIERS:
            assert raw.encode() not in everything


async def test_a_closure_and_the_hold_sent_with_it_stay_together_in_the_immediate_lane(
    api: RunningApi,
) -> None:
    """Otherwise the closure, due on arrival, could be applied and swept before its hold."""
    held, other = {"ref": f"crm:{uuid.uuid4().hex}"}, {"ref": f"crm:{uuid.uuid4().hex}"}
    case = {"case_id": "C-2023-0042"}
    batch = [
        fresh("collection_case.closed", subject=held, scope=case),
        fresh("legal_hold.placed", subject=held, data={"hold_id": "H-1", **case}),
        fresh("collection_case.closed", subject=other, scope=case),
    ]
    headers = api.key(Scope.EVENTS_WRITE)
    assert (await api.client.post("/v1/events/batch", json=batch, headers=headers)).is_success
    ids = [event["event_id"] for event in batch]
    immediate = await read_topic(
        api.settings.kafka,
        topics.LIFECYCLE_IMMEDIATE,
        until=lambda rs: set(ids[:2]) <= {event_id_of(r) for r in rs},
    )
    assert [event_id_of(r) for r in immediate if event_id_of(r) in ids] == ids[:2]  # in order
    lifecycle = await read_topic(
        api.settings.kafka,
        topics.LIFECYCLE,
        until=lambda rs: ids[2] in {event_id_of(r) for r in rs},
    )
    assert [event_id_of(r) for r in lifecycle if event_id_of(r) in ids] == ids[2:]


async def test_no_table_holds_a_raw_identifier(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE, Scope.DSR_WRITE)
    for event_type in PUBLIC_TYPES:
        response = await api.client.post("/v1/events", json=fresh(event_type), headers=headers)
        assert response.status_code == 202
    engine = make_engine(api.settings.database_url)
    try:
        with engine.connect() as connection:
            for table in inspect(engine).get_table_names():
                for row in connection.execute(text(f'SELECT * FROM "{table}"')):
                    dumped = " ".join(str(value) for value in row)
                    for raw in RAW_IDENTIFIERS:
                        assert raw not in dumped, f"{raw} found in table {table}"
    finally:
        engine.dispose()


async def test_the_same_event_again_is_an_idempotent_replay(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    event = fresh("collection_case.closed")
    first = await api.client.post("/v1/events", json=event, headers=headers)
    # The same event, written differently: other key order, the short personnummer form.
    rewritten = {**dict(reversed(list(event.items()))), "subject": {"national_id": "811218-9876"}}
    again = await api.client.post("/v1/events", json=rewritten, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()


async def test_a_replay_answers_in_utc_whatever_the_database_zone(make_api) -> None:
    async with make_api() as api:
        url = make_url(api.settings.database_url)
        if url.get_backend_name() != "postgresql":
            pytest.skip("SQLite keeps no session time zone")
        conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE \"{url.database}\" SET timezone = 'Europe/Stockholm'")
        try:
            async with make_api() as zoned:  # its connections open in that zone
                headers = zoned.key(Scope.EVENTS_WRITE)
                event = fresh("marketing.contact")
                first = await zoned.client.post("/v1/events", json=event, headers=headers)
                again = await zoned.client.post("/v1/events", json=event, headers=headers)
        finally:
            with psycopg.connect(conninfo, autocommit=True) as admin:
                admin.execute(f'ALTER DATABASE "{url.database}" RESET timezone')
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json() == first.json()


@pytest.mark.parametrize(
    "change",
    [{"scope": {"case_id": "C-other"}}, {"subject": {"ref": "crm:4711"}}, {"role": "obligor"}],
    ids=["scope", "subject", "role"],
)
async def test_the_same_event_id_with_another_body_is_a_conflict(
    api: RunningApi, change: dict[str, Any]
) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    event = fresh("collection_case.closed")
    assert (await api.client.post("/v1/events", json=event, headers=headers)).status_code == 202
    other = {**event, **change}
    response = await api.client.post("/v1/events", json=other, headers=headers)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:gallring:problem:event-id-conflict"
    assert problem["status"] == 409
    assert event["event_id"] in problem["detail"]


async def test_invalid_events_get_a_problem_listing_each_field(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    bad = fresh(
        "collection_case.closed",
        scope={},
        occurred_at="2023-03-15T10:00:00",
        subject={"national_id": "19811218-9875"},
    )
    response = await api.client.post("/v1/events", json=bad, headers=headers)
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "urn:gallring:problem:validation-error"
    assert problem["errors"] == [
        {"field": "occurred_at", "message": "Input should have timezone info"},
        {
            "field": "subject.national_id",
            "message": "the check digit (the last digit) does not match",
        },
        {"field": "scope", "message": "collection_case.closed needs scope.case_id"},
    ]
    assert "19811218" not in response.text


async def test_a_body_that_is_not_json_is_a_validation_problem(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/events", content=b"{not json", headers=api.key(Scope.EVENTS_WRITE)
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["message"].startswith("Invalid JSON")


async def test_bodies_over_the_limit_are_refused_with_413(make_api) -> None:
    async with make_api(api_max_body_bytes=2048) as api:
        headers = api.key(Scope.EVENTS_WRITE)
        big = fresh("marketing.contact", padding="x" * 3000)
        response = await api.client.post("/v1/events", json=big, headers=headers)
        assert response.status_code == 413
        assert response.json()["type"] == "urn:gallring:problem:body-too-large"

        # Without a Content-Length header too (chunked upload).
        streamed = await api.client.post(
            "/v1/events", content=in_chunks(json.dumps(big).encode()), headers=headers
        )
        assert streamed.status_code == 413
        # Also where FastAPI parses the body itself; and a chunked body within the limit passes.
        lookup = {"ref": "crm:4711", "padding": "x" * 3000}
        refused = await api.client.post(
            "/v1/subjects/lookup",
            content=in_chunks(json.dumps(lookup).encode()),
            headers=api.key(Scope.SUBJECTS_READ),
        )
        assert refused.status_code == 413
        small = fresh("marketing.contact")
        passed = await api.client.post(
            "/v1/events", content=in_chunks(json.dumps(small).encode()), headers=headers
        )
        assert passed.status_code == 202, passed.text


async def in_chunks(body: bytes):
    """``body`` as a chunked upload (no Content-Length), in pieces of 100 bytes."""
    for start in range(0, len(body), 100):
        yield body[start : start + 100]


async def test_behind_a_path_prefix_a_batch_still_gets_the_batch_limit(make_api) -> None:
    # A proxy mounts the API under /gallring (uvicorn --root-path /gallring).
    async with make_api(root_path="/gallring", api_max_body_bytes=2048) as api:
        batch = [fresh("marketing.contact") for _ in range(20)]
        assert len(json.dumps(batch)) > 2048
        response = await api.client.post(
            "/v1/events/batch", json=batch, headers=api.key(Scope.EVENTS_WRITE)
        )
        assert response.status_code == 200, response.text
        assert {r["status"] for r in response.json()["results"]} == {"accepted"}


async def test_a_batch_reports_each_event_and_stores_the_valid_ones(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    earlier = fresh("marketing.contact")
    assert (await api.client.post("/v1/events", json=earlier, headers=headers)).status_code == 202
    new = fresh("collection_case.closed")
    batch = [
        new,
        fresh("collection_case.closed", scope={}),  # invalid
        earlier,  # accepted before: a duplicate
        {**earlier, "occurred_at": "2024-06-01T00:00:00+02:00"},  # same id, other body
        new,  # twice in one batch
        "not an object",
        fresh("dsr.erasure_requested"),  # the key lacks dsr:write
        {**new, "occurred_at": "2024-06-01T00:00:00+02:00"},  # in this batch with another body
    ]
    response = await api.client.post("/v1/events/batch", json=batch, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    # The answer is encoded by hand: it must still be exactly what the response model would say.
    expected = BatchResult.model_validate_json(response.content).model_dump_json()
    assert response.content == expected.encode()
    assert [r["status"] for r in result["results"]] == [
        "accepted",
        "invalid",
        "duplicate",
        "conflict",
        "duplicate",
        "invalid",
        "invalid",
        "conflict",
    ]
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (1, 2, 5)
    assert result["results"][1]["errors"] == [
        {"field": "scope", "message": "collection_case.closed needs scope.case_id"}
    ]
    assert result["results"][6]["errors"][0]["message"] == (
        "dsr.erasure_requested needs the scope 'dsr:write'."
    )

    assert idempotency_records_of(api, new["event_id"]) == 1


async def test_a_batch_of_valid_events_gets_the_same_verdicts(api: RunningApi) -> None:
    # No invalid document: the batch is parsed in one pass, and must say what the
    # one-by-one pass says.
    headers = api.key(Scope.EVENTS_WRITE)
    earlier = fresh("marketing.contact")
    assert (await api.client.post("/v1/events", json=earlier, headers=headers)).status_code == 202
    new = fresh("collection_case.closed")
    batch = [
        new,
        earlier,
        {**earlier, "occurred_at": "2024-06-01T00:00:00+02:00"},
        new,
        fresh("dsr.erasure_requested"),
    ]
    response = await api.client.post("/v1/events/batch", json=batch, headers=headers)
    assert response.status_code == 200, response.text
    result = response.json()
    assert [(r["status"], r["event_id"]) for r in result["results"]] == [
        ("accepted", new["event_id"]),
        ("duplicate", earlier["event_id"]),
        ("conflict", earlier["event_id"]),
        ("duplicate", new["event_id"]),
        ("invalid", batch[4]["event_id"]),
    ]
    assert (result["accepted"], result["duplicates"], result["rejected"]) == (1, 2, 2)


async def test_events_are_still_accepted_after_the_database_dropped_connections(
    api: RunningApi,
) -> None:
    if not api.settings.database_url.startswith("postgresql"):
        pytest.skip("only a database server drops its clients' connections")
    headers = api.key(Scope.EVENTS_WRITE)
    event = fresh("marketing.contact")
    assert (await api.client.post("/v1/events", json=event, headers=headers)).status_code == 202
    conninfo = make_url(api.settings.database_url).set(drivername="postgresql")
    with psycopg.connect(conninfo.render_as_string(hide_password=False)) as admin:
        dropped = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert dropped is not None and dropped[0] >= 1  # the intake's own connection among them
    response = await api.client.post("/v1/events", json=fresh("marketing.contact"), headers=headers)
    assert response.status_code == 202, response.text
    replay = await api.client.post("/v1/events", json=event, headers=headers)
    assert replay.status_code == 200


async def test_a_batch_over_the_event_limit_is_refused_whole(make_api) -> None:
    async with make_api(api_max_batch_events=3) as api:
        batch = [fresh("marketing.contact") for _ in range(4)]
        response = await api.client.post(
            "/v1/events/batch", json=batch, headers=api.key(Scope.EVENTS_WRITE)
        )
        assert response.status_code == 422
        assert response.json()["errors"] == [
            {"field": "", "message": "at most 3 events per batch; got 4"}
        ]


async def test_every_accepted_event_is_audited_by_key_name(api: RunningApi) -> None:
    event = fresh("marketing.contact")
    await api.client.post("/v1/events", json=event, headers=api.key(Scope.EVENTS_WRITE))
    engine = make_engine(api.settings.database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT actor, action, detail FROM audit_entry ORDER BY id DESC LIMIT 1")
            ).all()
    finally:
        engine.dispose()
    [(actor, action, detail)] = rows
    assert (actor, action) == ("test-client", "events.accepted")
    assert json.loads(detail) == {"count": 1, "first_event_ids": [event["event_id"]]}


async def test_concurrent_overlapping_batches_store_each_event_once(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    events = [fresh("collection_case.closed") for _ in range(200)]
    batches = [events if n % 2 == 0 else list(reversed(events)) for n in range(6)]
    responses = await asyncio.gather(
        *(api.client.post("/v1/events/batch", json=batch, headers=headers) for batch in batches)
    )
    assert [r.status_code for r in responses] == [200] * 6
    accepted = sum(r.json()["accepted"] for r in responses)
    duplicates = sum(r.json()["duplicates"] for r in responses)
    assert (accepted, duplicates) == (200, 1000)


async def test_a_lookup_is_audited_without_naming_the_subject(api: RunningApi) -> None:
    await api.client.post(
        "/v1/subjects/lookup", json={"ref": "crm:4711"}, headers=api.key(Scope.SUBJECTS_READ)
    )
    engine = make_engine(api.settings.database_url)
    try:
        with engine.connect() as connection:
            action, detail = connection.execute(
                text("SELECT action, detail FROM audit_entry ORDER BY id DESC LIMIT 1")
            ).one()
    finally:
        engine.dispose()
    assert action == "subjects.lookup"
    assert "crm:4711" not in detail
    assert set(json.loads(detail)) == {"events", "clocks", "erasures"}


async def test_a_batch_body_over_its_limit_is_refused_with_413(make_api) -> None:
    async with make_api(api_max_body_bytes=1024) as api:
        batch = [fresh("marketing.contact") for _ in range(1000)]  # about 200 KB: over 64 KiB
        response = await api.client.post(
            "/v1/events/batch", json=batch, headers=api.key(Scope.EVENTS_WRITE)
        )
        assert response.status_code == 413


async def test_the_intake_answers_other_methods_with_405(api: RunningApi) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    for path in ("/v1/events", "/v1/events/batch"):
        response = await api.client.get(path, headers=headers)
        assert response.status_code == 405, response.text
        assert response.headers["allow"] == "POST"


async def test_no_system_may_send_a_retention_extension(api: RunningApi) -> None:
    """An extension keeps data past its period: only a DPO's extend decision on a review sends
    one, through Gallring's outbox. Any key, whatever its scopes, is refused, alone or in a
    batch, and nothing of it is stored."""
    headers = api.key(Scope.EVENTS_WRITE, Scope.DSR_WRITE)
    extension = fresh("retention.extended")
    refused = await api.client.post("/v1/events", json=extension, headers=headers)
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "urn:gallring:problem:gallring-internal-event"

    other = fresh("marketing.contact")
    batch = await api.client.post("/v1/events/batch", json=[extension, other], headers=headers)
    assert [(r["status"], [e["field"] for e in r["errors"]]) for r in batch.json()["results"]] == [
        ("invalid", ["type"]),
        ("accepted", []),
    ]
    assert idempotency_records_of(api, extension["event_id"]) == 0
