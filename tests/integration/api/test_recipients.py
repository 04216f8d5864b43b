"""The recipient registry: admins only, webhook URLs checked, the signing secret shown once and
rotatable with a grace period."""

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select

from services.api.api_keys import Scope
from shared.storage.database import make_engine
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import Disclosure
from shared.storage.tables.table import table_of
from shared.webhooks.signing_secrets import SecretBox, SecretUnreadable
from tests.builders import recipient_body
from tests.integration.conftest import SEALING_KEY, SECRET, RunningApi


async def test_an_admin_registers_a_recipient_and_sees_its_secret_once(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    created = await api.client.post("/v1/recipients", json=recipient_body(), headers=admin)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["signing_secret"].startswith("whsec_")
    assert body["active"] is True and body["health"] is None

    shown = await api.client.get(f"/v1/recipients/{body['recipient_id']}", headers=admin)
    assert shown.status_code == 200
    assert "signing_secret" not in shown.json()
    assert shown.json()["categories"] == ["aml", "collection_case"]
    listed = await api.client.get("/v1/recipients", headers=admin)
    assert body["recipient_id"] in [r["recipient_id"] for r in listed.json()]

    # Stored sealed: the database alone does not give the secret away.
    table = table_of(Recipient)
    db = make_engine(api.settings.database_url)
    with db.connect() as connection:
        stored = connection.execute(
            select(table.c.secret).where(table.c.recipient_id == body["recipient_id"])
        ).one()
    db.dispose()
    assert body["signing_secret"] not in stored.secret
    assert SecretBox(SEALING_KEY.encode()).open(stored.secret) == body["signing_secret"]
    with pytest.raises(SecretUnreadable):  # the pseudonym secret alone opens none
        SecretBox(SECRET.encode()).open(stored.secret)

    again = await api.client.post(
        "/v1/recipients", json=recipient_body(recipient_id=body["recipient_id"]), headers=admin
    )
    assert again.status_code == 409
    assert again.json()["type"].endswith("recipient-exists")


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://93.184.215.14/hook", "https"),
        ("https://169.254.169.254/latest/meta-data/", "metadata"),
        ("https://127.0.0.1/hook", "loopback"),
    ],
)
async def test_an_unsafe_webhook_url_is_refused_with_the_reason(
    api: RunningApi, url: str, says: str
) -> None:
    response = await api.client.post(
        "/v1/recipients", json=recipient_body(webhook_url=url), headers=api.key(Scope.ADMIN)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "webhook_url" and says in error["message"]


async def test_only_admins_manage_recipients(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/recipients", json=recipient_body(), headers=api.key(Scope.EVENTS_WRITE)
    )
    assert response.status_code == 403
    assert (await api.client.get("/v1/recipients")).status_code == 401


async def test_a_recipient_is_changed_deactivated_and_its_secret_rotated(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    recipient_id = (
        await api.client.post("/v1/recipients", json=recipient_body(), headers=admin)
    ).json()["recipient_id"]
    changed = await api.client.patch(
        f"/v1/recipients/{recipient_id}",
        json={"active": False, "categories": ["marketing"]},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    assert (changed.json()["active"], changed.json()["categories"]) == (False, ["marketing"])
    unsafe = await api.client.patch(
        f"/v1/recipients/{recipient_id}",
        json={"webhook_url": "https://169.254.169.254/"},
        headers=admin,
    )
    assert unsafe.status_code == 422

    rotated = await api.client.post(
        f"/v1/recipients/{recipient_id}/secret-rotations", json={"grace_hours": 2}, headers=admin
    )
    assert rotated.status_code == 201, rotated.text
    assert rotated.json()["signing_secret"].startswith("whsec_")
    shown = await api.client.get(f"/v1/recipients/{recipient_id}", headers=admin)
    assert (
        shown.json()["previous_secret_valid_until"] == rotated.json()["previous_secret_valid_until"]
    )

    missing = await api.client.patch("/v1/recipients/nobody", json={}, headers=admin)
    assert missing.status_code == 404


async def test_a_second_rotation_within_the_grace_period_is_refused_saying_until_when(
    api: RunningApi, migrated_url: str
) -> None:
    """Ending the first secret at once would make the recipient reject deliveries it was told
    it could verify for the whole grace period; a grace of zero still ends everything now."""
    admin = api.key(Scope.ADMIN)
    recipient_id = (
        await api.client.post("/v1/recipients", json=recipient_body(), headers=admin)
    ).json()["recipient_id"]
    path = f"/v1/recipients/{recipient_id}/secret-rotations"
    first = await api.client.post(path, json={"grace_hours": 24}, headers=admin)
    assert first.status_code == 201, first.text
    until = first.json()["previous_secret_valid_until"]
    db = make_engine(migrated_url)
    try:

        def stored() -> tuple:
            with db.connect() as connection:
                return connection.execute(
                    select(Recipient.secret, Recipient.previous_secret).where(
                        Recipient.recipient_id == recipient_id
                    )
                ).one()

        before = stored()
        second = await api.client.post(path, json={"grace_hours": 1}, headers=admin)
        assert second.status_code == 409
        assert second.headers["content-type"] == "application/problem+json"
        assert second.json()["type"] == "urn:gallring:problem:secret-rotation-in-grace"
        assert until.replace("Z", "+00:00") in second.json()["detail"]
        assert stored() == before  # both secrets still sign
        shown = await api.client.get(f"/v1/recipients/{recipient_id}", headers=admin)
        assert shown.json()["previous_secret_valid_until"] == until

        at_once = await api.client.post(path, json={"grace_hours": 0}, headers=admin)
        assert at_once.status_code == 201, at_once.text
        assert stored()[1] == before[0]  # ends now, and the first secret is gone
        shown = await api.client.get(f"/v1/recipients/{recipient_id}", headers=admin)
        assert shown.json()["previous_secret_valid_until"] is None
        after = await api.client.post(path, json={"grace_hours": 1}, headers=admin)
        assert after.status_code == 201, after.text  # no grace left to cut short
    finally:
        db.dispose()


async def test_unregistered_recipients_come_in_pages_that_a_cursor_chains(
    api: RunningApi, migrated_url: str
) -> None:
    prefix = f"ghost-{uuid.uuid4().hex[:8]}"
    ghosts = [f"{prefix}-{n}" for n in range(3)]
    db = make_engine(migrated_url)
    try:
        with db.begin() as connection:
            connection.execute(
                insert(table_of(Disclosure)),
                [
                    {
                        "event_id": uuid.uuid4(),
                        "subject_pseudonym": "ab" * 32,
                        "recipient_id": ghost,
                        "category": "collection_case",
                        "scope_key": "",
                        "scope_value": "",
                        "recipient_ref": "X-1",
                        "disclosed_at": datetime.now(UTC),
                    }
                    for ghost in ghosts
                    for _ in range(2)
                ],
            )
    finally:
        db.dispose()
    admin = api.key(Scope.ADMIN)
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:  # other tests' unregistered recipients share the database: every page
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = await api.client.get("/v1/unregistered-recipients", params=params, headers=admin)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["unregistered_recipients"]) <= 2
        seen += page["unregistered_recipients"]
        if (cursor := page["next_cursor"]) is None:
            break
        assert len(page["unregistered_recipients"]) == 2
    ids = [entry["recipient_id"] for entry in seen]
    assert ids == sorted(set(ids))  # each once, in order
    mine = [entry for entry in seen if entry["recipient_id"].startswith(prefix)]
    assert [entry["recipient_id"] for entry in mine] == ghosts
    assert {entry["disclosures_kept"] for entry in mine} == {2}
    bad = await api.client.get(
        "/v1/unregistered-recipients", params={"cursor": "%%%"}, headers=admin
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["field"] == "cursor"


async def test_a_405_names_every_method_the_path_takes(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    refused = await api.client.delete("/v1/recipients", headers=admin)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST"  # FastAPI routes take no HEAD
