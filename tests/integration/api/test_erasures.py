"""The erasure views and confirmations, over clocks and proofs the purger made."""

from datetime import UTC, datetime

from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from services.api.api_keys import Scope
from services.purger.handlers import handle_batch
from services.purger.sweep import sweep
from shared.domain.contract.erasure_messages import ErasureConfirmed
from shared.messaging import topics
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.tables.purger import StoredClock
from shared.storage.tables.table import table_of
from tests.integration.conftest import RunningApi
from tests.integration.purger.helpers import RETENTION, Subject, ago, proofs_of
from tests.integration.purger.running import running_purger
from tests.kafka_reading import read_topic
from tests.polling import eventually

CASE = {"case_id": "C-1"}


def erasure_id_of(db, person: Subject) -> str:
    clocks = table_of(StoredClock)
    with db.connect() as connection:
        found = connection.execute(
            select(clocks.c.erasure_id).where(clocks.c.subject_pseudonym == person.pseudonym)
        ).scalar_one_or_none()
    return str(found) if found else str(proofs_of(db, person)[0].erasure_id)


async def test_erasures_are_seen_scheduled_held_executed_and_confirmed(
    api: RunningApi, kafka_settings: KafkaSettings
) -> None:
    db = make_engine(api.settings.database_url)
    executed, held, scheduled = Subject(), Subject(), Subject()
    try:
        handle_batch(
            db,
            RETENTION,
            [
                executed.message("collection_case.closed", ago(months=37), CASE),
                held.message("collection_case.closed", ago(months=37), CASE),
                held.message("legal_hold.placed", ago(days=1), data={"hold_id": "H-1"}),
                scheduled.message("collection_case.closed", ago(months=2), CASE),
            ],
            datetime.now(UTC),
        )
        sweep(db, RETENTION, datetime.now(UTC), batch_size=100)
        ids = {
            name: erasure_id_of(db, p)
            for name, p in (("executed", executed), ("held", held), ("scheduled", scheduled))
        }
    finally:
        db.dispose()
    reader = api.key(Scope.ERASURES_READ)

    views = {
        name: (await api.client.get(f"/v1/erasures/{erasure_id}", headers=reader)).json()
        for name, erasure_id in ids.items()
    }
    assert {name: view["state"] for name, view in views.items()} == {
        "executed": "executed",
        "held": "held",
        "scheduled": "scheduled",
    }
    assert views["scheduled"]["scope"] == CASE
    assert views["executed"]["scope"] is None  # the proof keeps no scope

    async def every_page(**params: object) -> list[dict]:
        seen, cursor = [], None
        while True:
            if cursor:
                params["cursor"] = cursor
            page = (await api.client.get("/v1/erasures", params=params, headers=reader)).json()
            seen += page["erasures"]
            cursor = page["next_cursor"]
            if cursor is None:
                return seen

    # Every held collection-case erasure, page by page, in due order.
    seen = await every_page(state="held", category="collection_case", limit=2)
    assert ids["held"] in [view["erasure_id"] for view in seen]
    assert {view["state"] for view in seen} == {"held"}
    assert [view["due_at"] for view in seen] == sorted(view["due_at"] for view in seen)
    assert len({view["erasure_id"] for view in seen}) == len(seen)  # no page repeats another

    # What falls due before a date: the scheduled case's erasure is 34 months away.
    in_33_months = datetime.now(UTC) + relativedelta(months=33)
    in_35_months = datetime.now(UTC) + relativedelta(months=35)
    soon = await every_page(state="scheduled", due_before=in_33_months.isoformat(), limit=1000)
    later = await every_page(state="scheduled", due_before=in_35_months.isoformat(), limit=1000)
    assert ids["scheduled"] not in [view["erasure_id"] for view in soon]
    assert ids["scheduled"] in [view["erasure_id"] for view in later]
    assert all(datetime.fromisoformat(view["due_at"]) < in_33_months for view in soon)

    # A system confirms: the API passes it on, the purger records it and tells the topic.
    confirmer = api.key(Scope.ERASURES_CONFIRM)
    url = f"/v1/erasures/{ids['executed']}/confirmations"
    first = await api.client.post(url, json={"system": "ledger"}, headers=confirmer)
    assert first.status_code == 202, first.text
    assert (first.json()["status"], first.json()["confirmed_at"]) == ("reported", None)

    async def confirmed() -> dict | None:
        view = (await api.client.get(f"/v1/erasures/{ids['executed']}", headers=reader)).json()
        return view if view["confirmed_by"] else None

    async with running_purger(api.settings.database_url, kafka_settings):
        view = await eventually(confirmed)
        records = await read_topic(
            kafka_settings,
            topics.ERASURES,
            until=lambda rs: any(r.key == ids["executed"].encode() for r in rs),
        )
    assert (view["state"], view["confirmed_by"]) == ("confirmed", ["ledger"])
    [told] = [r for r in records if r.key == ids["executed"].encode()]
    message = ErasureConfirmed.model_validate_json(told.value)
    assert (str(message.erasure_id), message.system) == (ids["executed"], "ledger")
    again = await api.client.post(url, json={"system": "ledger"}, headers=confirmer)
    assert again.status_code == 200
    assert again.json()["status"] == "confirmed"
    assert datetime.fromisoformat(again.json()["confirmed_at"]) == message.confirmed_at

    early = await api.client.post(
        f"/v1/erasures/{ids['scheduled']}/confirmations",
        json={"system": "ledger"},
        headers=confirmer,
    )
    assert early.status_code == 409
    assert early.headers["content-type"] == "application/problem+json"


async def test_erasure_calls_need_their_scopes_and_valid_input(api: RunningApi) -> None:
    unknown = "/v1/erasures/00000000-0000-4000-8000-000000000000"
    reader = api.key(Scope.ERASURES_READ)
    assert (await api.client.get(unknown, headers=reader)).status_code == 404
    assert (
        await api.client.get("/v1/erasures", headers=api.key(Scope.EVENTS_WRITE))
    ).status_code == 403
    confirm = await api.client.post(
        f"{unknown}/confirmations", json={"system": "ledger"}, headers=reader
    )
    assert confirm.status_code == 403  # reading is not confirming
    too_long = await api.client.post(
        f"{unknown}/confirmations",
        json={"system": "s" * 101},
        headers=api.key(Scope.ERASURES_CONFIRM),
    )
    assert too_long.status_code == 422  # the purger keeps system names of up to 100
    assert too_long.json()["errors"][0]["field"] == "system"
    bad_cursor = await api.client.get("/v1/erasures", params={"cursor": "nonsense"}, headers=reader)
    assert bad_cursor.status_code == 422
    assert bad_cursor.json()["errors"][0]["field"] == "cursor"
    naive = await api.client.get(
        "/v1/erasures", params={"due_before": "2027-01-01T00:00:00"}, headers=reader
    )
    assert naive.status_code == 422
