"""The recipient registry: admins only, webhook URLs checked, the signing secret shown once and
rotatable with a grace period."""

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from services.api.api_keys import Scope
from shared.database import make_engine
from shared.recipient_secrets import SecretBox, SecretUnreadable
from shared.tables.api import Recipient
from tests.integration.conftest import SEALING_KEY, SECRET, RunningApi


def _new(**changes: Any) -> dict[str, Any]:
    return {
        "recipient_id": f"agent-{uuid.uuid4().hex[:8]}",
        "name": "Inkasso GmbH",
        "kind": "processor",
        "country": "DE",
        "webhook_url": "https://93.184.215.14/gallring",
        "categories": ["collection_case", "aml"],
        **changes,
    }


async def test_an_admin_registers_a_recipient_and_sees_its_secret_once(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    created = await api.client.post("/v1/recipients", json=_new(), headers=admin)
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
    table = Recipient.__table__  # type: ignore[attr-defined]
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
        "/v1/recipients", json=_new(recipient_id=body["recipient_id"]), headers=admin
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
        "/v1/recipients", json=_new(webhook_url=url), headers=api.key(Scope.ADMIN)
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [error] = response.json()["errors"]
    assert error["field"] == "webhook_url" and says in error["message"]


async def test_only_admins_manage_recipients(api: RunningApi) -> None:
    response = await api.client.post(
        "/v1/recipients", json=_new(), headers=api.key(Scope.EVENTS_WRITE)
    )
    assert response.status_code == 403
    assert (await api.client.get("/v1/recipients")).status_code == 401


async def test_a_recipient_is_changed_deactivated_and_its_secret_rotated(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    recipient_id = (await api.client.post("/v1/recipients", json=_new(), headers=admin)).json()[
        "recipient_id"
    ]
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


async def test_a_405_names_every_method_the_path_takes(api: RunningApi) -> None:
    admin = api.key(Scope.ADMIN)
    refused = await api.client.delete("/v1/recipients", headers=admin)
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET, POST"  # FastAPI routes take no HEAD
