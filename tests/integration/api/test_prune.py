"""The API's retention of its leftovers (``services/api/prune.py``): idempotency records stay
for the documented window, so a retry within it is still recognised, and go after it; audit
entries and released legal holds go after theirs."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select, update

from services.api import prune
from services.api.api_keys import Scope
from services.api.settings import ApiSettings
from shared.domain.contract.examples import EXAMPLES
from shared.storage.database import make_engine
from shared.storage.tables.api import AuditEntry, IdempotencyRecord, LegalHold
from shared.storage.tables.table import table_of
from tests.integration.conftest import SECRET, RunningApi

_RECORDS = table_of(IdempotencyRecord)
_AUDIT = table_of(AuditEntry)


def closed_case(**changes: Any) -> dict[str, Any]:
    return {**EXAMPLES["collection_case.closed"], "event_id": str(uuid.uuid4()), **changes}


def accepted_days_ago(db: Engine, event_id: str, days: float) -> None:
    with db.begin() as connection:
        connection.execute(
            update(_RECORDS)
            .where(_RECORDS.c.event_id == uuid.UUID(event_id))
            .values(accepted_at=datetime.now(UTC) - timedelta(days=days))
        )


async def test_a_retry_within_the_window_is_recognised_and_after_it_is_a_new_event(
    api: RunningApi,
) -> None:
    headers = api.key(Scope.EVENTS_WRITE)
    within, past = closed_case(), closed_case()
    for event in (within, past):
        response = await api.client.post("/v1/events", json=event, headers=headers)
        assert response.status_code == 202, response.text
    db = make_engine(api.settings.database_url)
    try:
        window = api.settings.api_idempotency_days
        accepted_days_ago(db, within["event_id"], window - 1)
        accepted_days_ago(db, past["event_id"], window + 1)

        prune.prune(db, api.settings, datetime.now(UTC))

        with db.connect() as connection:
            kept = set(
                connection.execute(
                    select(_RECORDS.c.event_id).where(
                        _RECORDS.c.event_id.in_(
                            [uuid.UUID(within["event_id"]), uuid.UUID(past["event_id"])]
                        )
                    )
                ).scalars()
            )
    finally:
        db.dispose()
    assert kept == {uuid.UUID(within["event_id"])}
    replay = await api.client.post("/v1/events", json=within, headers=headers)
    assert replay.status_code == 200
    assert replay.json()["status"] == "accepted"
    other_body = {**within, "scope": {"case_id": "C-2023-0002"}}
    conflict = await api.client.post("/v1/events", json=other_body, headers=headers)
    assert conflict.status_code == 409
    late = await api.client.post("/v1/events", json=past, headers=headers)
    assert late.status_code == 202  # forgotten: taken for a new event


def test_audit_entries_go_after_their_window(fresh_db: Engine) -> None:
    now = datetime.now(UTC)
    settings = ApiSettings(pseudonym_secret=SECRET, api_audit_days=365)
    with fresh_db.begin() as connection:
        connection.execute(
            insert(_AUDIT),
            [
                {"at": now - timedelta(days=days), "actor": "a", "action": "x", "detail": "{}"}
                for days in (400, 366, 364, 1)
            ],
        )
    pruned = prune.prune(fresh_db, settings, now)
    assert pruned["audit_entry"] == 2
    with fresh_db.connect() as connection:
        ages = sorted((now - at).days for at in connection.execute(select(_AUDIT.c.at)).scalars())
    assert ages == [1, 364]


def test_a_released_hold_goes_from_the_register_after_the_audit_window(fresh_db: Engine) -> None:
    """A standing hold stays however old; a released one goes with its audit entries."""
    now = datetime.now(UTC)
    settings = ApiSettings(pseudonym_secret=SECRET, api_audit_days=365)
    holds = table_of(LegalHold)

    def hold(hold_id: str, released_days_ago: int | None) -> dict[str, Any]:
        released_at = None if released_days_ago is None else now - timedelta(released_days_ago)
        return {
            "hold_id": hold_id,
            "matter": "T 1-26",
            "reason": "enforcement",
            "owner_team": "legal",
            "review_by": (now - timedelta(days=900)).date(),
            "coverage": "subject",
            "subjects": 1,
            "state": "standing" if released_at is None else "released",
            "placed_at": now - timedelta(days=1000),
            "placed_by": "a",
            "released_at": released_at,
            "updated_at": now,
        }

    with fresh_db.begin() as connection:
        connection.execute(
            insert(holds),
            [hold("H-old", 400), hold("H-recent", 364), hold("H-standing", None)],
        )
    pruned = prune.prune(fresh_db, settings, now)
    assert pruned["legal_hold"] == 1
    with fresh_db.connect() as connection:
        kept = set(connection.execute(select(holds.c.hold_id)).scalars())
    assert kept == {"H-recent", "H-standing"}
