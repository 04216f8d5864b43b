"""The register of the company's systems (``/v1/systems``) and the completeness of erasures: an
erasure waits for every active system that held its category when it was executed, is
``partially_confirmed``, ``confirmed`` or ``overdue`` accordingly, and ops see per system what it
owes. Each test has a database of its own: a system registered in the session's shared one would
change what every other test's erasures expect."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from services.api.api_keys import Scope
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import ErasureCommand
from shared.messaging import topics
from shared.runtime.settings import KafkaSettings
from shared.storage.tables.api import AuditEntry
from shared.storage.tables.table import table_of
from tests.integration.conftest import RunningApi
from tests.integration.purger.helpers import RETENTION, Subject, ago, proofs_of
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_topic
from tests.polling import eventually

CASE = {"case_id": "C-1"}


@pytest.fixture
def migrated_url(fresh_db: Engine) -> str:
    """The API's database (``make_api``): one of its own, PostgreSQL and SQLite in turn."""
    return fresh_db.url.render_as_string(hide_password=False)


def system_body(**changes: object) -> dict:
    body: dict = {
        "system_id": "collection",
        "name": "Collection",
        "categories": ["collection_case"],
    }
    return body | changes


def execute_a_case_erasure(db: Engine, at: datetime) -> str:
    """A case closed 37 months ago, erased by a sweep at ``at``: its erasure id."""
    person = Subject()
    handle_batch(
        db, RETENTION, [person.message("collection_case.closed", ago(months=37), CASE)], at
    )
    sweep(db, RETENTION, at, batch_size=100)
    [proof] = proofs_of(db, person)
    return str(proof.erasure_id)


async def test_an_admin_registers_lists_and_changes_systems(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    created = await api.client.post("/v1/systems", json=system_body(), headers=admin)
    assert created.status_code == 201, created.text
    assert created.json() | {"created_at": None, "updated_at": None} == {
        "system_id": "collection",
        "name": "Collection",
        "categories": ["collection_case"],
        "confirm_within": "P7D",  # the default, as an ISO 8601 duration
        "active": True,
        "created_at": None,
        "updated_at": None,
        "unconfirmed_erasures": 0,
        "overdue_erasures": 0,
    }
    crm = system_body(system_id="crm", name="CRM", categories=["marketing", "collection_case"]) | {
        "confirm_within": "PT36H"
    }
    assert (await api.client.post("/v1/systems", json=crm, headers=admin)).status_code == 201

    listed = (await api.client.get("/v1/systems", headers=admin)).json()
    assert [(s["system_id"], s["categories"], s["confirm_within"]) for s in listed] == [
        ("collection", ["collection_case"], "P7D"),
        ("crm", ["collection_case", "marketing"], "P1DT12H"),
    ]
    changed = await api.client.patch(
        "/v1/systems/crm",
        json={"categories": ["marketing"], "confirm_within": "P1W", "active": False},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["categories"], changed.json()["confirm_within"]) == (
        ["marketing"],
        "P7D",
    )
    assert changed.json()["active"] is False
    shown = (await api.client.get("/v1/systems/crm", headers=admin)).json()
    assert shown == changed.json()

    again = await api.client.post("/v1/systems", json=system_body(), headers=admin)
    assert again.status_code == 409
    assert again.json()["type"].endswith("system-exists")
    for missing in (
        await api.client.get("/v1/systems/ledger", headers=admin),
        await api.client.patch("/v1/systems/ledger", json={"active": False}, headers=admin),
    ):
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"

    audit = table_of(AuditEntry)
    with api.engine.connect() as connection:
        actions = connection.execute(
            select(audit.c.action, audit.c.detail).where(audit.c.action.like("systems.%"))
        ).all()
    assert [(a, json.loads(d)["system_id"]) for a, d in actions] == [
        ("systems.created", "collection"),
        ("systems.created", "crm"),
        ("systems.changed", "crm"),
    ]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (system_body(system_id="crm-8112189876"), "system_id"),  # a personal identity number
        (system_body(system_id="the crm"), "system_id"),
        (system_body(system_id="s" * 101), "system_id"),
        (system_body(name=""), "name"),
        (system_body(categories=[]), "categories"),
        (system_body(categories=["gossip"]), "categories.0"),
        (system_body(confirm_within=604800), "confirm_within"),  # seconds: not a duration
        (system_body(confirm_within="P1M"), "confirm_within"),  # a month has no one length
        (system_body(confirm_within="PT30S"), "confirm_within"),  # under a minute
        (system_body(confirm_within="P366D"), "confirm_within"),  # over a year
        (system_body(confirm_within="7 days"), "confirm_within"),
        (system_body(active="yes"), "active"),
        (system_body(owner="someone"), "owner"),
    ],
)
async def test_a_system_is_refused_with_the_field_that_is_wrong(
    api: RunningApi, body: dict, field: str
) -> None:
    response = await api.client.post("/v1/systems", json=body, headers=api.key(Scope.ADMIN))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in response.json()["errors"]]
    assert "8112189876" not in response.text


async def test_only_admins_keep_the_register(api: RunningApi) -> None:
    reader = api.key(Scope.ERASURES_READ, Scope.ERASURES_CONFIRM)
    assert (await api.client.get("/v1/systems", headers=reader)).status_code == 403
    posted = await api.client.post("/v1/systems", json=system_body(), headers=reader)
    assert posted.status_code == 403
    invalid_id = await api.client.get("/v1/systems/8112189876", headers=api.key(Scope.ADMIN))
    assert invalid_id.status_code == 422


async def system_figures(api: RunningApi, name: str) -> dict[str, float]:
    """``name``'s value per system label on the API's /metrics."""
    text = (await api.client.get("/metrics")).text
    figures = {}
    for line in text.splitlines():
        if line.startswith(f'{name}{{system="'):
            labels, value = line.rsplit(" ", 1)
            figures[labels.split('"')[1]] = float(value)
    return figures


async def test_an_erasure_waits_for_every_system_holding_its_category(
    api: RunningApi, fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    admin, reader = api.key(Scope.ADMIN), api.key(Scope.ERASURES_READ)
    confirmer = api.key(Scope.ERASURES_CONFIRM)
    for system_id, within in (("collection", "P7D"), ("crm", "P30D")):
        body = system_body(system_id=system_id, name=system_id.upper(), confirm_within=within)
        assert (await api.client.post("/v1/systems", json=body, headers=admin)).status_code == 201
    now = datetime.now(UTC)
    late = execute_a_case_erasure(fresh_db, now - timedelta(days=8))  # collection: 7 days
    erasure = execute_a_case_erasure(fresh_db, now)

    async def view(erasure_id: str) -> dict:
        response = await api.client.get(f"/v1/erasures/{erasure_id}", headers=reader)
        assert response.status_code == 200, response.text
        return response.json()

    async def listed(**params: str) -> list[str]:
        page = await api.client.get("/v1/erasures", params=params, headers=reader)
        assert page.status_code == 200, page.text
        return [e["erasure_id"] for e in page.json()["erasures"]]

    fresh = await view(erasure)
    assert fresh["state"] == "executed"
    assert [(e["system"], e["confirmed_at"]) for e in fresh["expected_systems"]] == [
        ("collection", None),
        ("crm", None),
    ]
    assert datetime.fromisoformat(fresh["expected_systems"][0]["due_by"]) == now + timedelta(days=7)
    assert (await view(late))["state"] == "overdue"
    assert await listed(state="overdue") == [late]
    assert await listed(state="executed") == [erasure]
    assert set(await listed(system="crm")) == {late, erasure}
    # What one system is itself late with: collection is, crm (30 days to confirm) is not.
    assert await listed(state="overdue", system="collection") == [late]
    assert await listed(state="overdue", system="crm") == []

    # Ops see what each system owes: two erasures each, the oldest 8 days old, which is overdue
    # for collection only.
    async def figures_known() -> dict | None:
        overdue = await system_figures(api, "gallring_api_overdue_erasures")
        return overdue if overdue == {"collection": 1.0, "crm": 0.0} else None

    await eventually(figures_known, timeout=5)
    assert await system_figures(api, "gallring_api_unconfirmed_erasures") == {
        "collection": 2.0,
        "crm": 2.0,
    }
    oldest = await system_figures(api, "gallring_api_oldest_unconfirmed_erasure_seconds")
    assert all(8 * 86400 <= age < 8 * 86400 + 600 for age in oldest.values()), oldest

    # The register changes after the execution: what the erasure expects does not.
    await api.client.patch("/v1/systems/crm", json={"active": False}, headers=admin)
    ledger = system_body(system_id="ledger", name="Ledger")
    assert (await api.client.post("/v1/systems", json=ledger, headers=admin)).status_code == 201
    assert [e["system"] for e in (await view(erasure))["expected_systems"]] == ["collection", "crm"]
    after_the_change = execute_a_case_erasure(fresh_db, datetime.now(UTC))
    expected_now = (await view(after_the_change))["expected_systems"]
    assert [e["system"] for e in expected_now] == ["collection", "ledger"]

    async def confirm(erasure_id: str, system: str) -> None:
        url = f"/v1/erasures/{erasure_id}/confirmations"
        response = await api.client.post(url, json={"system": system}, headers=confirmer)
        assert response.status_code == 202, response.text

    async def in_state(erasure_id: str, state: str) -> dict:
        async def reached() -> dict | None:
            seen = await view(erasure_id)
            return seen if seen["state"] == state else None

        found: dict = await eventually(reached, timeout=30)
        return found

    async with running_purger(api.settings.database_url, kafka_settings):
        await confirm(erasure, "collection")
        partly = await in_state(erasure, "partially_confirmed")
        assert await listed(state="partially_confirmed") == [erasure]
        assert erasure in await listed(system="crm")  # what crm still owes
        assert erasure not in await listed(system="collection")
        assert partly["unregistered_confirmations"] == []

        # A system nobody registered: kept, flagged, and no stand-in for an expected one.
        await confirm(erasure, "mystery-system")
        await confirm(erasure, "crm")
        done = await in_state(erasure, "confirmed")
        assert done["confirmed_by"] == ["collection", "crm", "mystery-system"]
        assert done["unregistered_confirmations"] == ["mystery-system"]
        assert all(e["confirmed_at"] for e in done["expected_systems"])
        assert erasure in await listed(state="confirmed")
        assert erasure not in await listed(system="crm")

        # A late confirmation ends the overdue state too.
        await confirm(late, "collection")
        await confirm(late, "crm")
        await in_state(late, "confirmed")

    async def all_paid() -> dict | None:
        overdue = await system_figures(api, "gallring_api_overdue_erasures")
        return overdue if overdue == {"collection": 0.0, "crm": 0.0, "ledger": 0.0} else None

    await eventually(all_paid, timeout=5)


async def test_with_no_system_registered_for_the_category_any_confirmation_confirms(
    api: RunningApi, fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    erasure = execute_a_case_erasure(fresh_db, datetime.now(UTC))
    reader = api.key(Scope.ERASURES_READ)
    viewed = (await api.client.get(f"/v1/erasures/{erasure}", headers=reader)).json()
    assert (viewed["state"], viewed["expected_systems"]) == ("executed", [])
    await api.client.post(
        f"/v1/erasures/{erasure}/confirmations",
        json={"system": "ledger"},
        headers=api.key(Scope.ERASURES_CONFIRM),
    )

    async def confirmed() -> dict | None:
        seen = (await api.client.get(f"/v1/erasures/{erasure}", headers=reader)).json()
        return seen if seen["state"] == "confirmed" else None

    async with running_purger(api.settings.database_url, kafka_settings):
        seen = await eventually(confirmed, timeout=30)
    assert seen["unregistered_confirmations"] == ["ledger"]  # known to no register: flagged


async def test_an_admin_has_an_erasures_command_published_again_for_one_system(
    api: RunningApi, fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    admin = api.key(Scope.ADMIN)
    crm = system_body(system_id="crm", name="CRM")
    assert (await api.client.post("/v1/systems", json=crm, headers=admin)).status_code == 201
    person = Subject()
    handle_batch(
        fresh_db,
        RETENTION,
        [
            person.message("collection_case.closed", ago(months=37), CASE),
            person.message("collection_case.closed", ago(months=2), {"case_id": "C-2"}),
        ],
        datetime.now(UTC),
    )
    sweep(fresh_db, RETENTION, datetime.now(UTC), batch_size=100)
    [proof] = proofs_of(fresh_db, person)
    erasure = str(proof.erasure_id)

    url = f"/v1/erasures/{erasure}/commands/crm"
    denied = await api.client.post(url, headers=api.key(Scope.ERASURES_READ))
    assert denied.status_code == 403
    unknown = await api.client.post(f"/v1/erasures/{erasure}/commands/nowhere", headers=admin)
    assert unknown.status_code == 404
    assert unknown.json()["type"].endswith("system-not-found")
    scheduled = (
        await api.client.get(
            "/v1/erasures", params={"state": "scheduled"}, headers=api.key(Scope.ERASURES_READ)
        )
    ).json()["erasures"]
    assert len(scheduled) == 1  # the case closed two months ago
    early = await api.client.post(
        f"/v1/erasures/{scheduled[0]['erasure_id']}/commands/crm", headers=admin
    )
    assert early.status_code == 409

    requested = await api.client.post(url, headers=admin)
    assert requested.status_code == 202, requested.text
    assert requested.json() == {"erasure_id": erasure, "system": "crm", "status": "requested"}

    def published_again(records: list) -> bool:
        return any(r.key == proof.subject_hash.encode() for r in records)

    async with running_purger(api.settings.database_url, kafka_settings):
        records = await read_topic(kafka_settings, topics.ERASURE_COMMANDS, until=published_again)
    [record] = [r for r in records if r.key == proof.subject_hash.encode()]
    command = ErasureCommand.model_validate_json(record.value)
    assert (str(command.erasure_id), command.system, command.scope) == (erasure, "crm", None)
    assert (command.subject_hash, command.clock_hash) == (proof.subject_hash, proof.clock_hash)
    assert dict(record.headers)[topics.HEADER_EVENT_TYPE] == b"erasure.command"
    # The sweep's own command went out unaddressed, keyed by the pseudonym, with the same hashes.
    [original] = [
        ErasureCommand.model_validate_json(r.value)
        for r in records
        if r.key == person.pseudonym.encode()
        and ErasureCommand.model_validate_json(r.value).erasure_id == proof.erasure_id
    ]
    assert (original.system, original.scope) == (None, CASE)
    assert (original.subject_hash, original.clock_hash) == (proof.subject_hash, proof.clock_hash)
