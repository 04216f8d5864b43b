"""The register of legal holds through the API, on PostgreSQL and SQLite: placing a hold sends the
``legal_hold.placed`` events the engine understands and keeps no one in the register; the list and
its filters; the clocks a hold covers and what its release would erase; a release that takes two
keys; holds upstream events placed; review reminders on ``gallring.holds.v1``.

Where the purger's part matters (facts and clocks), the events the API stored are applied by the
purger's own handlers, as its consumer would apply them (the process itself, with the broker,
is in tests/integration/purger/test_hold_register.py)."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine, select, text

from services.api.api_keys import Principal, Scope
from services.api.holds import reminders, service, standing
from services.purger.handlers import handle_batch
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.hold_messages import HOLD_MESSAGE, HoldReleased, HoldReviewDue
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.domain.policy import load_default_policy
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.messaging import topics
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of
from tests.integration.conftest import SECRET, RunningApi, relay_settings
from tests.kafka_reading import read_topic

PSEUDONYMS = Pseudonymiser(SECRET.encode())
RETENTION = RetentionEngine(load_default_policy())
ZONE = RETENTION.zone
NATIONAL_ID = "19811218-9876"
#: How the personal identity number could be written: searched for whole, for its last four digits
#: may well occur by chance in the shared database's pseudonyms, uuids and timestamps.
IDENTITY_FORMS = ("198112189876", "19811218-9876", "8112189876", "811218-9876")


@pytest.fixture
async def api(make_api) -> AsyncIterator[RunningApi]:
    """The API with its relay off: the events it stores stay in the outbox, where the tests
    read them and hand them to the purger's handlers."""
    async with make_api(relay=relay_settings(enabled=False)) as running:
        yield running


def new_hold_id() -> str:
    return f"H-{uuid.uuid4().hex[:10]}"


def a_subject() -> tuple[dict[str, str], str]:
    ref = f"crm:{uuid.uuid4().hex}"
    return {"ref": ref}, PSEUDONYMS.pseudonym("ref", ref)


def hold_body(hold_id: str, covers: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "hold_id": hold_id,
        "matter": "T 1234-26",
        "reason": "disputed_claim",
        "owner_team": "legal",
        "review_by": (date.today() + timedelta(days=90)).isoformat(),
        "covers": covers,
        **changes,
    }


def keys(api: RunningApi, name: str, *scopes: Scope) -> dict[str, str]:
    """Headers for a fresh key of this name (a role's, never a person's: the audit log names
    it): a release's two keys must differ in name."""
    return {"Authorization": f"Bearer {api.keys.create(name, set(scopes))}"}


def key_id_of(headers: dict[str, str]) -> str:
    """The id of the key in ``headers`` (``gal_<id>_<secret>``), as ``gallring keys list`` shows
    it."""
    return headers["Authorization"].removeprefix("Bearer ").split("_")[1]


def lifecycle_event(
    pseudonym: str, event_type: str, occurred_at: datetime | None = None, **fields: Any
) -> LifecycleMessage:
    """An event about ``pseudonym`` as the purger receives it: a fresh event id, occurred now
    unless ``occurred_at`` says otherwise, and ``fields`` (scope, data, role) as sent."""
    return LifecycleMessage.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "type": event_type,
            "occurred_at": (occurred_at or datetime.now(UTC)).isoformat(),
            "subject": pseudonym,
            **fields,
        }
    )


def upstream_hold(pseudonym: str, hold_id: str, **data: str) -> LifecycleMessage:
    """A ``legal_hold.placed`` an upstream system sent, as the purger applies it."""
    return lifecycle_event(pseudonym, "legal_hold.placed", data={"hold_id": hold_id, **data})


def outbox(db: Engine, key: str, topic: str) -> list[Any]:
    table = table_of(OutboxMessage)
    with db.connect() as connection:
        return connection.execute(
            select(table)
            .where(table.c.message_key == key, table.c.topic == topic)
            .order_by(table.c.id)
        ).all()


def events_to(db: Engine, pseudonym: str) -> list[LifecycleMessage]:
    return [
        LifecycleMessage.from_json(row.value)
        for row in outbox(db, pseudonym, topics.LIFECYCLE_IMMEDIATE)
    ]


def as_the_purger(db: Engine, *messages: LifecycleMessage) -> None:
    handle_batch(db, RETENTION, messages, datetime.now(UTC))


def closed_case(pseudonym: str, case_id: str, months_ago: int) -> LifecycleMessage:
    occurred_at = datetime.now(UTC) - relativedelta(months=months_ago)
    return lifecycle_event(
        pseudonym, "collection_case.closed", occurred_at, scope={"case_id": case_id}
    )


def status_and_problem(response: Any) -> tuple[int, str]:
    """The response's status and its RFC 9457 problem type, the two a client tells errors by."""
    return response.status_code, response.json()["type"]


def audit_entries(db: Engine, action: str) -> list[tuple[str, dict[str, Any]]]:
    with db.connect() as connection:
        rows = connection.execute(
            text("SELECT actor, detail FROM audit_entry WHERE action = :action ORDER BY id"),
            {"action": action},
        ).all()
    return [(actor, json.loads(detail)) for actor, detail in rows]


async def test_a_hold_on_a_subject_is_placed_as_the_engine_understands_and_names_no_one(
    api: RunningApi,
) -> None:
    hold_id = new_hold_id()
    pseudonym = PSEUDONYMS.pseudonym("national_id", "198112189876")
    writer = keys(api, "legal-desk", Scope.HOLDS_WRITE)

    response = await api.client.post(
        "/v1/holds",
        json=hold_body(hold_id, {"subject": {"national_id": NATIONAL_ID}}),
        headers=writer,
    )

    assert response.status_code == 201, response.text
    hold = response.json()
    assert (hold["state"], hold["registered"], hold["subjects"]) == ("standing", True, 1)
    assert hold["covers"] == {
        "kind": "subject",
        "category": None,
        "case_ids": None,
        "client_id": None,
    }
    assert hold["placed_by"] == "legal-desk"
    assert not [form for form in IDENTITY_FORMS if form in response.text]
    [placed] = events_to(api.engine, pseudonym)
    assert (placed.type, placed.subject, placed.data.hold_id) == (
        "legal_hold.placed",
        pseudonym,
        hold_id,
    )
    assert (placed.data.case_id, placed.data.category) == (None, None)
    [news] = outbox(api.engine, hold_id, topics.HOLDS)
    message = HOLD_MESSAGE.validate_json(news.value)
    assert (message.type, getattr(message, "by_key", None)) == ("hold.placed", key_id_of(writer))
    assert "legal-desk" not in news.value  # the key's id on the topic, its name in the audit log
    # Nowhere in the database but as its pseudonym: not in the register, not in its messages.
    with api.engine.connect() as connection:
        for table in ("legal_hold", "legal_hold_subject", "outbox_message", "audit_entry"):
            rows = connection.execute(text(f"SELECT * FROM {table}")).all()
            found = [form for row in rows for form in IDENTITY_FORMS if form in str(tuple(row))]
            assert not found, table
    [(actor, detail)] = [
        e for e in audit_entries(api.engine, "holds.placed") if e[1]["hold_id"] == hold_id
    ]
    assert (actor, detail["subjects"], detail["reason"]) == ("legal-desk", 1, "disputed_claim")

    # Sent again (its 201 lost): the same hold, placed once.
    body = hold_body(hold_id, {"subject": {"national_id": NATIONAL_ID}})
    retried = await api.client.post("/v1/holds", json=body, headers=writer)
    assert (retried.status_code, retried.json()) == (200, hold)
    assert len(events_to(api.engine, pseudonym)) == 1
    assert len(outbox(api.engine, hold_id, topics.HOLDS)) == 1
    # The same id for another hold: refused, whatever differs (the subject by its pseudonym).
    for other in (
        hold_body(hold_id, {"subject": {"ref": "crm:1"}}),
        {**body, "matter": "T 9999-26"},
        {**body, "covers": {"subject": {"national_id": NATIONAL_ID}, "category": "aml"}},
    ):
        again = await api.client.post("/v1/holds", json=other, headers=writer)
        assert status_and_problem(again) == (409, "urn:gallring:problem:hold-id-conflict")
        assert f"GET /v1/holds/{hold_id}" in again.json()["detail"]
    assert len(events_to(api.engine, pseudonym)) == 1


@pytest.mark.parametrize(
    ("reason_text", "found"),
    [
        ("the debtor 811218-9876 disputes it", "personal identity or coordination number"),
        ("asked by anna.svensson@example.se", "e-mail address"),
    ],
)
async def test_other_reasons_text_is_refused_when_it_holds_personal_data(
    api: RunningApi, reason_text: str, found: str
) -> None:
    subject, _ = a_subject()
    body = hold_body(new_hold_id(), {"subject": subject}, reason="other", reason_text=reason_text)

    response = await api.client.post(
        "/v1/holds", json=body, headers=keys(api, "legal", Scope.HOLDS_WRITE)
    )

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "reason_text"
    assert found in error["message"] and "write about the matter" in error["message"]
    assert "9876" not in response.text and "svensson" not in response.text


async def test_a_hold_is_refused_what_it_cannot_be(api: RunningApi) -> None:
    subject, _ = a_subject()
    writer = keys(api, "legal", Scope.HOLDS_WRITE)

    async def refused(body: dict[str, Any], headers: dict[str, str] = writer) -> tuple[int, Any]:
        response = await api.client.post("/v1/holds", json=body, headers=headers)
        return response.status_code, response.json()

    status, problem = await refused(hold_body(new_hold_id(), {"subject": subject}, reason="other"))
    assert (status, problem["errors"][0]["message"]) == (
        422,
        "reason_text goes with reason 'other', and only with it",
    )
    status, problem = await refused(
        hold_body(new_hold_id(), {"subject": subject, "client_id": "K-1"})
    )
    assert status == 422 and "give one of: subject;" in problem["errors"][0]["message"]
    yesterday = (datetime.now(ZONE).date() - timedelta(days=1)).isoformat()
    status, problem = await refused(
        hold_body(new_hold_id(), {"subject": subject}, review_by=yesterday)
    )
    assert (status, problem["errors"][0]["field"]) == (422, "review_by")
    for hold_id, character in (("H#1", "'#'"), ("H/1", "'/'"), ("H~1", "'~'")):
        # '/' and '#' would not reach the hold in a URL path; '~' separates its placements.
        status, problem = await refused(hold_body(hold_id, {"subject": subject}))
        [error] = problem["errors"]
        assert (status, error["field"]) == (422, "hold_id")
        assert f"must not contain {character}" in error["message"]
    status, problem = await refused(hold_body(new_hold_id(), {"case_ids": ["C-never-seen"]}))
    assert (status, problem["type"], problem["case_ids"]) == (
        409,
        "urn:gallring:problem:cases-unknown",
        ["C-never-seen"],
    )
    status, problem = await refused(
        hold_body(new_hold_id(), {"subject": subject}), keys(api, "x", Scope.EVENTS_WRITE)
    )
    assert status == 403
    status, problem = await refused(
        hold_body(new_hold_id(), {"subject": subject}), keys(api, "x", Scope.HOLDS_APPROVE)
    )
    assert status == 403 and "holds:write" in problem["detail"]


async def test_cases_a_category_and_a_client_are_placed_on_the_subjects_gallring_keeps(
    api: RunningApi,
) -> None:
    (_, debtor), (_, co_debtor) = a_subject(), a_subject()
    case, other_case = f"C-{uuid.uuid4().hex[:8]}", f"C-{uuid.uuid4().hex[:8]}"
    as_the_purger(
        api.engine,
        closed_case(debtor, case, 2),
        closed_case(debtor, other_case, 2),
        closed_case(co_debtor, case, 2),
    )
    writer = keys(api, "legal", Scope.HOLDS_WRITE)

    hold_id = new_hold_id()
    response = await api.client.post(
        "/v1/holds", json=hold_body(hold_id, {"case_ids": [case, other_case]}), headers=writer
    )

    assert (response.status_code, response.json()["subjects"]) == (201, 2)
    # The debtor has both cases: one placement per case (a hold id covers one case at most).
    assert sorted(
        (e.data.hold_id, e.data.case_id) for e in events_to(api.engine, debtor)
    ) == sorted([(f"{hold_id}~{case}", case), (f"{hold_id}~{other_case}", other_case)])
    assert [(e.data.hold_id, e.data.case_id) for e in events_to(api.engine, co_debtor)] == [
        (hold_id, case)
    ]

    client = f"K-{uuid.uuid4().hex[:8]}"
    as_the_purger(
        api.engine,
        lifecycle_event(co_debtor, "customer_relationship.ended", scope={"client_id": client}),
    )
    client_hold = new_hold_id()
    response = await api.client.post(
        "/v1/holds", json=hold_body(client_hold, {"client_id": client}), headers=writer
    )
    assert (response.status_code, response.json()["subjects"]) == (201, 1)
    assert [
        (e.data.hold_id, e.data.category)
        for e in events_to(api.engine, co_debtor)
        if e.data.hold_id == client_hold
    ] == [(client_hold, "customer_relationship")]

    response = await api.client.post(
        "/v1/holds",
        json=hold_body(new_hold_id(), {"client_id": f"K-{uuid.uuid4().hex[:8]}"}),
        headers=writer,
    )
    assert status_and_problem(response) == (409, "urn:gallring:problem:nothing-to-hold")


async def test_a_category_hold_is_placed_on_every_subject_with_a_clock_of_it(
    make_api, fresh_db: Engine
) -> None:
    """On a database of its own: a category's hold reaches every subject with a clock of it."""
    url = fresh_db.url.render_as_string(hide_password=False)
    async with make_api(database_url=url, relay=relay_settings(enabled=False)) as api:
        (_, debtor), (_, co_debtor), (_, reader_of_news) = a_subject(), a_subject(), a_subject()
        as_the_purger(
            api.engine,
            closed_case(debtor, "C-cat-1", 37),
            closed_case(co_debtor, "C-cat-2", 2),
            lifecycle_event(reader_of_news, "marketing.contact", role="newsletter_recipient"),
        )
        writer = keys(api, "legal-desk", Scope.HOLDS_WRITE)
        hold_id = new_hold_id()

        response = await api.client.post(
            "/v1/holds", json=hold_body(hold_id, {"category": "collection_case"}), headers=writer
        )

        assert response.status_code == 201, response.text
        hold = response.json()
        assert (hold["subjects"], hold["covers"]["kind"], hold["covers"]["category"]) == (
            2,
            "category",
            "collection_case",
        )
        for pseudonym in (debtor, co_debtor):
            assert [
                (e.type, e.data.hold_id, e.data.case_id, e.data.category)
                for e in events_to(api.engine, pseudonym)
            ] == [("legal_hold.placed", hold_id, None, "collection_case")]
        assert events_to(api.engine, reader_of_news) == []
        as_the_purger(api.engine, *events_to(api.engine, debtor), *events_to(api.engine, co_debtor))
        reader = keys(api, "dashboard", Scope.HOLDS_READ)
        detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
        assert sorted(c["scope"]["case_id"] for c in detail["clocks"]) == ["C-cat-1", "C-cat-2"]
        impact = (await api.client.get(f"/v1/holds/{hold_id}/impact", headers=reader)).json()
        assert impact["at_once"] == [{"category": "collection_case", "clocks": 1}]

        nothing = await api.client.post(
            "/v1/holds", json=hold_body(new_hold_id(), {"category": "aml"}), headers=writer
        )
        assert status_and_problem(nothing) == (409, "urn:gallring:problem:nothing-to-hold")


async def test_a_hold_holds_the_clocks_and_its_impact_says_what_its_release_would_erase(
    api: RunningApi,
) -> None:
    """The golden case as the engine decides it: a case closed 37 months ago is due; placed under
    the hold, its clock is held; the impact says it would be erased at once, and a case closed
    10 months ago later, in the month it falls due."""
    subject, pseudonym = a_subject()
    overdue, running = "C-overdue-1", "C-running-1"
    as_the_purger(
        api.engine, closed_case(pseudonym, overdue, 37), closed_case(pseudonym, running, 10)
    )
    hold_id = new_hold_id()
    response = await api.client.post(
        "/v1/holds",
        json=hold_body(hold_id, {"subject": subject, "category": "collection_case"}),
        headers=keys(api, "legal", Scope.HOLDS_WRITE),
    )
    assert response.status_code == 201
    reader = keys(api, "dashboard", Scope.HOLDS_READ)
    # Not applied by the purger yet: it covers nothing yet.
    detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
    assert detail["clocks_total"] == 0

    as_the_purger(api.engine, *events_to(api.engine, pseudonym))

    detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
    assert detail["clocks_total"] == 2
    assert [(c["scope"], c["subject_hash"]) for c in detail["clocks"]] == [
        ({"case_id": overdue}, subject_hash(pseudonym)),
        ({"case_id": running}, subject_hash(pseudonym)),
    ]
    lookup = await api.client.post(
        "/v1/subjects/lookup", json=subject, headers=keys(api, "dpo", Scope.SUBJECTS_READ)
    )
    assert {c["scope"]["case_id"]: c["state"] for c in lookup.json()["clocks"]} == {
        overdue: "held",
        running: "held",
    }
    impact = (await api.client.get(f"/v1/holds/{hold_id}/impact", headers=reader)).json()
    falls_due = datetime.fromisoformat(detail["clocks"][1]["due_at"]).astimezone(ZONE)
    assert (impact["clocks"], impact["at_once"], impact["later"]) == (
        2,
        [{"category": "collection_case", "clocks": 1}],
        [{"month": falls_due.strftime("%Y-%m"), "category": "collection_case", "clocks": 1}],
    )
    assert (impact["still_held"], impact["not_scheduled"]) == ([], [])

    # A second hold over the same case: releasing the first would leave it held.
    upstream_id = f"UP-{uuid.uuid4().hex[:6]}"
    as_the_purger(
        api.engine,
        upstream_hold(pseudonym, upstream_id, case_id=overdue),
    )
    impact = (await api.client.get(f"/v1/holds/{hold_id}/impact", headers=reader)).json()
    assert impact["at_once"] == []
    assert impact["still_held"] == [{"category": "collection_case", "clocks": 1}]
    detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
    assert detail["clocks"][0]["also_held_by"] == [upstream_id]


async def test_a_hold_upstream_events_placed_shows_in_the_register(api: RunningApi) -> None:
    _, pseudonym = a_subject()
    upstream_id = f"UP-{uuid.uuid4().hex[:6]}"
    as_the_purger(
        api.engine,
        closed_case(pseudonym, "C-1", 37),
        upstream_hold(pseudonym, upstream_id),
    )
    reader = keys(api, "dashboard", Scope.HOLDS_READ)

    listed = (await api.client.get("/v1/holds?state=standing", headers=reader)).json()
    [hold] = [h for h in listed if h["hold_id"] == upstream_id]
    assert (hold["registered"], hold["state"], hold["subjects"], hold["reason"]) == (
        False,
        "standing",
        1,
        None,
    )
    detail = (await api.client.get(f"/v1/holds/{upstream_id}", headers=reader)).json()
    assert [c["scope"] for c in detail["clocks"]] == [{"case_id": "C-1"}]
    # Filters only the register can answer leave it out.
    listed = (await api.client.get("/v1/holds?reason=disputed_claim", headers=reader)).json()
    assert upstream_id not in [h["hold_id"] for h in listed]
    # Released by its own event, it is gone.
    as_the_purger(
        api.engine,
        lifecycle_event(pseudonym, "legal_hold.released", data={"hold_id": upstream_id}),
    )
    response = await api.client.get(f"/v1/holds/{upstream_id}", headers=reader)
    assert status_and_problem(response) == (404, "urn:gallring:problem:hold-not-found")


async def test_releasing_a_hold_releases_no_other_hold_whose_id_begins_with_it(
    api: RunningApi,
) -> None:
    """An upstream system's hold ``<id>#court`` keeps a due case of another subject: the
    register's hold ``<id>`` is neither listed in its place nor covers its clocks, and its
    release sends nothing to that subject, whose case stays held."""
    hold_id = new_hold_id()
    court_hold = f"{hold_id}#court"  # '#' is an upstream id's character like any other
    other, other_pseudonym = a_subject()
    as_the_purger(
        api.engine,
        closed_case(other_pseudonym, "C-court-1", 37),
        upstream_hold(other_pseudonym, court_hold),
    )
    subject, pseudonym = a_subject()
    as_the_purger(api.engine, closed_case(pseudonym, "C-mine-1", 37))
    writer = keys(api, "legal-desk", Scope.HOLDS_WRITE)
    response = await api.client.post(
        "/v1/holds", json=hold_body(hold_id, {"subject": subject}), headers=writer
    )
    assert response.status_code == 201, response.text
    as_the_purger(api.engine, *events_to(api.engine, pseudonym))
    reader = keys(api, "dashboard", Scope.HOLDS_READ)

    listed = (await api.client.get("/v1/holds?state=standing", headers=reader)).json()
    assert {h["hold_id"]: h["registered"] for h in listed if h["hold_id"].startswith(hold_id)} == {
        hold_id: True,
        court_hold: False,
    }
    detail = (await api.client.get(f"/v1/holds/{hold_id}", headers=reader)).json()
    assert [c["scope"] for c in detail["clocks"]] == [{"case_id": "C-mine-1"}]
    await api.client.post(f"/v1/holds/{hold_id}/release", headers=writer)
    approved = await api.client.post(
        f"/v1/holds/{hold_id}/approve", headers=keys(api, "dpo", Scope.HOLDS_APPROVE)
    )

    assert (approved.status_code, approved.json()["subjects"]) == (200, 1)
    assert events_to(api.engine, other_pseudonym) == []
    assert [(e.type, e.data.hold_id) for e in events_to(api.engine, pseudonym)] == [
        ("legal_hold.placed", hold_id),
        ("legal_hold.released", hold_id),
    ]
    as_the_purger(api.engine, *events_to(api.engine, pseudonym))
    lookup = await api.client.post(
        "/v1/subjects/lookup", json=other, headers=keys(api, "dpo", Scope.SUBJECTS_READ)
    )
    assert {c["scope"]["case_id"]: c["state"] for c in lookup.json()["clocks"]} == {
        "C-court-1": "held"
    }
    listed = (await api.client.get("/v1/holds?state=standing", headers=reader)).json()
    assert court_hold in [h["hold_id"] for h in listed]


async def test_an_upstream_systems_hold_id_with_the_registers_separator_is_refused(
    api: RunningApi,
) -> None:
    """'~' separates the register's placement ids (``<hold>~<case>``): an upstream system
    cannot send one, so none of its holds is ever taken for the register's, nor releases one;
    '#' it may send, as before."""
    sender = keys(api, "collection-system", Scope.EVENTS_WRITE)

    async def sent(hold_id: str) -> Any:
        event = {
            **EXAMPLES["legal_hold.placed"],
            "event_id": str(uuid.uuid4()),
            "occurred_at": datetime.now(UTC).isoformat(),
            "subject": {"ref": f"crm:{uuid.uuid4().hex}"},
            "data": {"hold_id": hold_id},
        }
        return await api.client.post("/v1/events", json=event, headers=sender)

    refused = await sent("H-1~C-1")
    assert refused.status_code == 422
    [error] = refused.json()["errors"]
    assert error["field"] == "data.hold_id" and "should match pattern" in error["message"]
    assert (await sent("H-1#C-1")).status_code == 202


async def test_the_id_of_a_hold_upstream_events_placed_is_not_taken_by_the_register(
    api: RunningApi,
) -> None:
    """A register's hold of an upstream hold's id would be that hold's latest placement on its
    subjects, and could hold less (the clocks it no longer covers erased at the next sweep)
    without a second key: refused while the upstream hold stands."""
    upstream_id = f"UP-{uuid.uuid4().hex[:8]}"
    _, held = a_subject()
    as_the_purger(api.engine, closed_case(held, "C-up-1", 37), upstream_hold(held, upstream_id))
    subject, pseudonym = a_subject()
    writer = keys(api, "legal-desk", Scope.HOLDS_WRITE)
    body = hold_body(upstream_id, {"subject": subject})

    response = await api.client.post("/v1/holds", json=body, headers=writer)

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert (problem["type"], problem["subjects"]) == (
        "urn:gallring:problem:hold-placed-upstream",
        1,
    )
    assert "legal_hold.released" in problem["detail"]
    assert events_to(api.engine, pseudonym) == [] and events_to(api.engine, held) == []
    assert outbox(api.engine, upstream_id, topics.HOLDS) == []
    # Nor does the register release it, and it says so without advising to register it.
    release = await api.client.post(f"/v1/holds/{upstream_id}/release", headers=writer)
    assert status_and_problem(release) == (404, "urn:gallring:problem:hold-not-registered")
    assert "is refused while it stands" in release.json()["detail"]

    # Released by the system that placed it, its id is free.
    as_the_purger(
        api.engine,
        lifecycle_event(
            held,
            "legal_hold.released",
            datetime.now(UTC) + timedelta(seconds=1),
            data={"hold_id": upstream_id},
        ),
    )
    assert (await api.client.post("/v1/holds", json=body, headers=writer)).status_code == 201


async def test_a_release_comes_after_the_placements_it_releases(api: RunningApi) -> None:
    """Approved on a replica whose clock is behind the one that placed the hold, and over a
    placement of the hold's id an upstream system dated ahead (the intake allows 5 minutes):
    each release is dated after the placement it releases, or the engine would apply the
    placement last and the hold would stand."""
    subject, pseudonym = a_subject()
    _, other = a_subject()
    hold_id = new_hold_id()
    placed = await api.client.post(
        "/v1/holds",
        json=hold_body(hold_id, {"subject": subject}),
        headers=keys(api, "legal-desk", Scope.HOLDS_WRITE),
    )
    placed_at = datetime.fromisoformat(placed.json()["placed_at"])
    ahead = datetime.now(UTC) + timedelta(minutes=2)
    upstream = upstream_hold(other, hold_id).model_copy(update={"occurred_at": ahead})
    as_the_purger(api.engine, *events_to(api.engine, pseudonym), upstream)
    await api.client.post(
        f"/v1/holds/{hold_id}/release", headers=keys(api, "legal-desk", Scope.HOLDS_WRITE)
    )

    behind = placed_at - timedelta(seconds=30)
    approver = Principal("0123456789abcdef", "dpo", frozenset({Scope.HOLDS_APPROVE}))
    service.approve(api.engine, hold_id, actor=approver, now=behind, today=date.today())

    _, released = events_to(api.engine, pseudonym)
    assert released.type == "legal_hold.released"
    assert released.occurred_at > placed_at
    [released_upstream] = events_to(api.engine, other)
    assert released_upstream.type == "legal_hold.released"
    assert released_upstream.occurred_at > ahead
    as_the_purger(api.engine, released, released_upstream)
    with api.engine.connect() as connection:
        assert standing.placed_on(connection, hold_id, None) == {}  # once all has happened


async def test_the_register_is_listed_by_state_reason_and_review_date(api: RunningApi) -> None:
    writer = keys(api, "legal", Scope.HOLDS_WRITE)
    approver = keys(api, "dpo", Scope.HOLDS_APPROVE)
    today = datetime.now(ZONE).date()
    placed = {}
    for reason, days in (
        ("enforcement", 10),
        ("court_proceedings", 40),
        ("enforcement", 400),
        ("police_request", 500),
    ):
        subject, _ = a_subject()
        hold_id = new_hold_id()
        body = hold_body(
            hold_id,
            {"subject": subject},
            reason=reason,
            review_by=(today + timedelta(days=days)).isoformat(),
        )
        assert (await api.client.post("/v1/holds", json=body, headers=writer)).status_code == 201
        placed[hold_id] = (reason, days)
    first, second, third, fourth = placed
    await api.client.post(f"/v1/holds/{third}/release", headers=writer)
    assert (await api.client.post(f"/v1/holds/{third}/approve", headers=approver)).is_success
    # Its release requested, not approved: it stands still.
    assert (await api.client.post(f"/v1/holds/{fourth}/release", headers=writer)).is_success

    async def listed(query: str) -> list[str]:
        response = await api.client.get(
            f"/v1/holds?{query}", headers=keys(api, "dashboard", Scope.HOLDS_READ)
        )
        assert response.status_code == 200, response.text
        return [hold["hold_id"] for hold in response.json() if hold["hold_id"] in placed]

    assert await listed("") == [first, second, third, fourth]  # by review date
    assert await listed("state=standing") == [first, second, fourth]
    assert await listed("state=release_requested") == [fourth]
    assert await listed("state=released") == [third]
    assert await listed("reason=enforcement") == [first, third]
    review_before = (today + timedelta(days=41)).isoformat()
    assert await listed(f"review_before={review_before}") == [first, second]
    assert await listed(f"state=standing&reason=enforcement&review_before={review_before}") == [
        first
    ]
    response = await api.client.get("/v1/holds", headers=keys(api, "x", Scope.EVENTS_WRITE))
    assert response.status_code == 403
    first_view = (
        await api.client.get(f"/v1/holds/{first}", headers=keys(api, "w", Scope.HOLDS_WRITE))
    ).json()
    assert (first_view["review_due"], first_view["reason"]) == ("30d", "enforcement")


async def test_a_release_is_refused_with_one_key_and_done_with_a_second(api: RunningApi) -> None:
    subject, pseudonym = a_subject()
    hold_id = new_hold_id()
    # One person's key with both scopes still cannot release alone.
    alone = keys(api, "legal-desk", Scope.HOLDS_WRITE, Scope.HOLDS_APPROVE)
    response = await api.client.post(
        "/v1/holds", json=hold_body(hold_id, {"subject": subject}), headers=alone
    )
    assert response.status_code == 201
    as_the_purger(api.engine, *events_to(api.engine, pseudonym))

    requested = await api.client.post(f"/v1/holds/{hold_id}/release", headers=alone)
    assert requested.status_code == 202
    assert (requested.json()["state"], requested.json()["release_requested_by"]) == (
        "release_requested",
        "legal-desk",
    )
    # Asked again (its 202 lost): the request stands as it was, recorded once.
    retried = await api.client.post(f"/v1/holds/{hold_id}/release", headers=alone)
    assert (retried.status_code, retried.json()) == (202, requested.json())
    refused = await api.client.post(f"/v1/holds/{hold_id}/approve", headers=alone)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    problem = refused.json()
    assert problem["type"] == "urn:gallring:problem:second-key-required"
    assert "legal-desk" in problem["detail"] and "another key" in problem["detail"]
    same_name = keys(api, "legal-desk", Scope.HOLDS_APPROVE)  # the same role's second key
    for path in ("release", "approve"):
        refused = await api.client.post(f"/v1/holds/{hold_id}/{path}", headers=same_name)
        assert refused.json()["type"] == "urn:gallring:problem:second-key-required"
    without_scope = keys(api, "legal-assistant", Scope.HOLDS_WRITE)
    refused = await api.client.post(f"/v1/holds/{hold_id}/release", headers=without_scope)
    assert refused.status_code == 403 and "holds:approve" in refused.json()["detail"]
    # Nothing was released meanwhile.
    assert [e.type for e in events_to(api.engine, pseudonym)] == ["legal_hold.placed"]

    dpo = keys(api, "dpo", Scope.HOLDS_APPROVE)
    approved = await api.client.post(f"/v1/holds/{hold_id}/release", headers=dpo)

    assert approved.status_code == 200, approved.text
    view = approved.json()
    assert (view["state"], view["release_requested_by"], view["released_by"]) == (
        "released",
        "legal-desk",
        "dpo",
    )
    released = events_to(api.engine, pseudonym)[-1]
    assert (released.type, released.data.hold_id) == ("legal_hold.released", hold_id)
    rows = outbox(api.engine, hold_id, topics.HOLDS)
    news = [HOLD_MESSAGE.validate_json(row.value) for row in rows]
    assert [n.type for n in news] == ["hold.placed", "hold.release_requested", "hold.released"]
    # On the topic, the keys by their ids; their names only in the audit log.
    assert [getattr(n, "by_key", None) for n in news[:2]] == [key_id_of(alone)] * 2
    assert isinstance(news[2], HoldReleased)
    assert (news[2].requested_by_key, news[2].approved_by_key) == (key_id_of(alone), key_id_of(dpo))
    assert not [row for row in rows if "legal-desk" in row.value or '"dpo"' in row.value]
    assert [
        (actor, detail)
        for actor, detail in audit_entries(api.engine, "holds.released")
        if detail["hold_id"] == hold_id
    ] == [
        (
            "dpo",
            {
                "hold_id": hold_id,
                "requested_by": "legal-desk",
                "approved_by": "dpo",
                "subjects": 1,
                "events": 1,
            },
        )
    ]
    assert [
        actor
        for actor, detail in audit_entries(api.engine, "holds.release_requested")
        if detail["hold_id"] == hold_id
    ] == ["legal-desk"]
    with api.engine.connect() as connection:
        assert (
            connection.execute(
                text("SELECT count(*) FROM legal_hold_subject WHERE hold_id = :id"), {"id": hold_id}
            ).scalar_one()
            == 0
        )

    again = await api.client.post(f"/v1/holds/{hold_id}/approve", headers=alone)
    assert status_and_problem(again) == (409, "urn:gallring:problem:no-release-requested")


async def test_a_release_approved_before_the_purger_applied_the_placement_still_reaches_it(
    api: RunningApi,
) -> None:
    subject, pseudonym = a_subject()
    hold_id = new_hold_id()
    await api.client.post(
        "/v1/holds",
        json=hold_body(hold_id, {"subject": subject}),
        headers=keys(api, "legal", Scope.HOLDS_WRITE),
    )
    await api.client.post(
        f"/v1/holds/{hold_id}/release", headers=keys(api, "legal", Scope.HOLDS_WRITE)
    )
    approved = await api.client.post(
        f"/v1/holds/{hold_id}/approve", headers=keys(api, "dpo", Scope.HOLDS_APPROVE)
    )
    assert approved.status_code == 200
    assert [(e.type, e.data.hold_id) for e in events_to(api.engine, pseudonym)] == [
        ("legal_hold.placed", hold_id),
        ("legal_hold.released", hold_id),
    ]


async def test_a_review_is_changed_and_its_reminders_start_again(api: RunningApi) -> None:
    """Reviews 45 days and more away, so that the API's own check (at its start, on the real
    clock) has nothing to publish for this hold; the test's checks are 40 and 60 days on."""
    subject, _ = a_subject()
    hold_id = new_hold_id()
    writer = keys(api, "legal", Scope.HOLDS_WRITE)
    today = datetime.now(ZONE).date()
    body = hold_body(
        hold_id, {"subject": subject}, review_by=(today + timedelta(days=45)).isoformat()
    )
    await api.client.post("/v1/holds", json=body, headers=writer)
    noon = datetime.combine(today, datetime.min.time(), ZONE) + timedelta(hours=12)

    def reminded_at(now: datetime) -> list[str]:
        return [
            r.threshold for r in mine(reminders.remind(api.engine, now=now, zone=ZONE), hold_id)
        ]

    assert reminded_at(noon + timedelta(days=40)) == ["7d"]
    assert reminded_at(noon + timedelta(days=40)) == []

    later = (today + timedelta(days=90)).isoformat()
    response = await api.client.patch(
        f"/v1/holds/{hold_id}",
        json={"review_by": later, "owner_team": "legal-north"},
        headers=writer,
    )

    assert (response.status_code, response.json()["review_by"], response.json()["owner_team"]) == (
        200,
        later,
        "legal-north",
    )
    assert reminded_at(noon + timedelta(days=60)) == ["30d"]
    [(actor, detail)] = [
        entry
        for entry in audit_entries(api.engine, "holds.changed")
        if entry[1]["hold_id"] == hold_id
    ]
    assert (actor, detail["fields"]) == ("legal", ["owner_team", "review_by"])


def mine(sent: list[HoldReviewDue], hold_id: str) -> list[HoldReviewDue]:
    return [reminder for reminder in sent if reminder.hold_id == hold_id]


async def test_review_reminders_go_on_the_topic_once_per_threshold_at_the_right_days(
    make_api, kafka_settings
) -> None:
    """The reminder check with an injected clock, day by day from 40 days before the review to
    two days after: 30 days before, 7, 1, and the day after; nothing more, however often it
    looks. The relay publishes them, keyed by the hold id; the gauge counts the hold."""
    async with make_api() as api:
        subject, _ = a_subject()
        hold_id = new_hold_id()
        today = datetime.now(ZONE).date()
        review_by = today + timedelta(days=40)
        body = hold_body(hold_id, {"subject": subject}, review_by=review_by.isoformat())
        response = await api.client.post(
            "/v1/holds", json=body, headers=keys(api, "legal", Scope.HOLDS_WRITE)
        )
        assert response.status_code == 201

        days_before = {}
        for day in range(-40, 3):
            at = datetime.combine(review_by + timedelta(days=day), datetime.min.time(), ZONE)
            for hour in (1, 13):  # twice a day: once per threshold all the same
                now = (at + timedelta(hours=hour)).astimezone(UTC)
                for reminder in mine(reminders.remind(api.engine, now=now, zone=ZONE), hold_id):
                    days_before[reminder.threshold] = -day

        assert days_before == {"30d": 30, "7d": 7, "1d": 1, "past": -1}
        records = await read_topic(
            kafka_settings,
            topics.HOLDS,
            until=lambda records: sum(r.key == hold_id.encode() for r in records) >= 5,
        )
        published = [
            HOLD_MESSAGE.validate_json(r.value) for r in records if r.key == hold_id.encode()
        ]
        assert [m.type for m in published] == ["hold.placed"] + ["hold.review_due"] * 4
        due = [m for m in published if isinstance(m, HoldReviewDue)]
        assert [(m.threshold, m.days_left, m.review_by) for m in due] == [
            ("30d", 30, review_by),
            ("7d", 7, review_by),
            ("1d", 1, review_by),
            ("past", -1, review_by),
        ]
        headers = dict(next(r for r in records if r.key == hold_id.encode()).headers)
        assert headers["event-type"] == b"hold.placed"
        assert all("crm:" not in r.value.decode() for r in records)


async def test_the_gauge_counts_standing_holds_at_their_most_urgent_threshold(
    make_api, fresh_db: Engine
) -> None:
    """On a database of its own: the gauge counts every hold of the register."""
    url = fresh_db.url.render_as_string(hide_password=False)
    async with make_api(database_url=url, relay=relay_settings(enabled=False)) as api:
        writer = keys(api, "legal", Scope.HOLDS_WRITE)
        approver = keys(api, "dpo", Scope.HOLDS_APPROVE)
        today = datetime.now(ZONE).date()
        hold_ids = []
        for days in (0, 5, 6, 20, 45):
            subject, _ = a_subject()
            hold_ids.append(new_hold_id())
            body = hold_body(
                hold_ids[-1],
                {"subject": subject},
                review_by=(today + timedelta(days=days)).isoformat(),
            )
            assert (
                await api.client.post("/v1/holds", json=body, headers=writer)
            ).status_code == 201
        await api.client.post(f"/v1/holds/{hold_ids[2]}/release", headers=writer)
        await api.client.post(f"/v1/holds/{hold_ids[2]}/approve", headers=approver)

        metrics = (await api.client.get("/metrics")).text

    assert [
        line for line in metrics.splitlines() if line.startswith("gallring_holds_review_due")
    ] == [
        'gallring_holds_review_due{threshold="30d"} 1.0',
        'gallring_holds_review_due{threshold="7d"} 1.0',  # the released one is not counted
        'gallring_holds_review_due{threshold="1d"} 1.0',
        'gallring_holds_review_due{threshold="past"} 0.0',
    ]
