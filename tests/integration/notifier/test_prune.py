"""What a notification keeps of an erasure, and for how long (``services/notifier/prune.py``):
its particulars — the scope's values and the recipient's reference — go at the confirmation, or
once it was delivered or failed longer than the window ago; what is still to be sent keeps
them; a failed one whose particulars went can no longer be redelivered. Remembered erasures go
after the late-disclosure window."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert, select

from services.api.api_keys import Scope
from services.notifier import prune
from services.notifier.handlers import handle_batch
from services.notifier.settings import NotifierSettings
from shared.domain.contract.notification_messages import NotificationConfirmed, RedeliveryRequested
from shared.storage.database import make_engine
from shared.storage.tables.notifier import HeardErasure, Notification
from shared.storage.tables.table import table_of
from tests.integration.conftest import SECRET, RunningApi
from tests.integration.notifier import test_metrics

_NOTIFICATIONS = table_of(Notification)
_ERASURES = table_of(HeardErasure)
NOW = datetime.now(UTC)
SETTINGS = NotifierSettings(pseudonym_secret=SECRET, notifier_keep_particulars_days=30)
LONG_AGO, LATELY = NOW - timedelta(days=31), NOW - timedelta(days=29)


def notification(recipient_id: str, state: str, now: datetime, **changes: Any) -> dict[str, Any]:
    """A notification row with every column (rows inserted together must name the same)."""
    fields = {"failed_at": None, "particulars_erased_at": None, **changes}
    return test_metrics.notification(recipient_id, state, now, **fields)


def store(db: Engine, *rows: dict[str, Any]) -> list[uuid.UUID]:
    with db.begin() as connection:
        connection.execute(insert(_NOTIFICATIONS), list(rows))
    return [row["notification_id"] for row in rows]


def particulars(db: Engine, notification_id: uuid.UUID) -> tuple[dict[str, str], str, bool]:
    """(scope, recipient_ref, whether particulars_erased_at is set)."""
    with db.connect() as connection:
        row = connection.execute(
            select(
                _NOTIFICATIONS.c.scope,
                _NOTIFICATIONS.c.recipient_ref,
                _NOTIFICATIONS.c.particulars_erased_at,
            ).where(_NOTIFICATIONS.c.notification_id == notification_id)
        ).one()
    return json.loads(row.scope), row.recipient_ref, row.particulars_erased_at is not None


KEPT = ({"case_id": "C-1"}, "PV-1", False)
BLANKED = ({"case_id": ""}, "", True)


def test_a_confirmation_blanks_the_scope_and_the_reference(fresh_db: Engine) -> None:
    (delivered,) = store(fresh_db, notification("vendor", "delivered", NOW, delivered_at=NOW))
    confirmation = NotificationConfirmed(event_id=uuid.uuid4(), notification_id=delivered, at=NOW)

    handle_batch(fresh_db, SETTINGS, [confirmation], NOW)

    assert particulars(fresh_db, delivered) == BLANKED


def test_finished_notifications_keep_their_particulars_for_the_window_only(
    fresh_db: Engine,
) -> None:
    ids = store(
        fresh_db,
        notification("vendor", "failed", NOW, failed_at=LONG_AGO),
        notification("vendor", "delivered", NOW, delivered_at=LONG_AGO),
        # confirmed before confirmations blanked the scope
        notification("vendor", "delivered", NOW, delivered_at=LATELY, confirmed_at=LATELY),
        notification("vendor", "failed", NOW, failed_at=LATELY),
        notification("vendor", "delivered", NOW, delivered_at=LATELY),
        # still to be sent, however old: the webhook body needs them
        notification("vendor", "pending", NOW, created_at=LONG_AGO - timedelta(days=400)),
        notification("vendor", "delivering", NOW, created_at=LONG_AGO, attempts=3),
    )

    pruned = prune.prune(fresh_db, SETTINGS, NOW)

    assert pruned["notification"] == 3
    assert [particulars(fresh_db, i) for i in ids] == [BLANKED] * 3 + [KEPT] * 4
    assert prune.prune(fresh_db, SETTINGS, NOW)["notification"] == 0  # blanked once


def test_particulars_are_blanked_in_bounded_batches(fresh_db: Engine, tmp_path) -> None:
    ids = store(
        fresh_db,
        *(notification("vendor", "failed", NOW, failed_at=LONG_AGO) for _ in range(5)),
    )
    finished_before = NOW - timedelta(days=30)
    assert prune.blank_particulars(fresh_db, finished_before, NOW, batch_size=2) == 5
    assert [particulars(fresh_db, i) for i in ids] == [BLANKED] * 5
    if fresh_db.dialect.name == "sqlite":  # its log would keep the values blanked
        assert (tmp_path / "gallring.db-wal").stat().st_size == 0


def test_a_failed_notification_without_its_particulars_is_not_redelivered(
    fresh_db: Engine,
) -> None:
    old, recent = store(
        fresh_db,
        notification("vendor", "failed", NOW, failed_at=LONG_AGO),
        notification("vendor", "failed", NOW, failed_at=LATELY),
    )
    prune.prune(fresh_db, SETTINGS, NOW)
    requests = [
        RedeliveryRequested(event_id=uuid.uuid4(), notification_id=i, at=NOW, by="ops")
        for i in (old, recent)
    ]

    handle_batch(fresh_db, SETTINGS, requests, NOW)

    with fresh_db.connect() as connection:
        states = dict(
            connection.execute(
                select(_NOTIFICATIONS.c.notification_id, _NOTIFICATIONS.c.state).where(
                    _NOTIFICATIONS.c.notification_id.in_([old, recent])
                )
            ).all()
        )
    assert states == {old: "failed", recent: "pending"}


async def test_the_api_refuses_to_redeliver_a_notification_without_its_particulars(
    api: RunningApi,
) -> None:
    db = make_engine(api.settings.database_url)
    try:
        (blanked,) = store(
            db,
            notification("vendor", "failed", NOW, failed_at=LONG_AGO, particulars_erased_at=NOW),
        )
    finally:
        db.dispose()

    response = await api.client.post(
        f"/v1/notifications/{blanked}/redeliver", headers=api.key(Scope.ADMIN)
    )

    assert response.status_code == 409
    assert response.json()["type"].endswith("notification-particulars-erased")


def test_remembered_erasures_go_after_the_late_disclosure_window(fresh_db: Engine) -> None:
    def heard(forget_after: datetime) -> dict[str, Any]:
        return {
            "erasure_id": uuid.uuid4(),
            "subject_hash": "ab" * 32,
            "category": "collection_case",
            "scope_key": "case_id",
            "scope_value": "C-1",
            "legal_basis": "GDPR art. 17(1)(a)",
            "executed_at": forget_after - timedelta(days=7),
            "forget_after": forget_after,
        }

    past, future = heard(NOW - timedelta(minutes=1)), heard(NOW + timedelta(minutes=1))
    with fresh_db.begin() as connection:
        connection.execute(insert(_ERASURES), [past, future])

    assert prune.prune(fresh_db, SETTINGS, NOW)["heard_erasure"] == 1
    with fresh_db.connect() as connection:
        left = set(connection.execute(select(_ERASURES.c.erasure_id)).scalars())
    assert left == {future["erasure_id"]}
