"""A recipient inactive when an erasure is executed is still owed its notification (GDPR
art. 19): it waits, visible, until the recipient is active again (then it is delivered as
usual) or an admin closes it with a reason."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from uuid import uuid4

from sqlalchemy import Engine, insert, select, update

from services.api.api_keys import Scope
from services.notifier import awaiting, delivery_loop
from services.notifier.delivery_store import housekeep
from services.notifier.handlers import handle_batch
from services.notifier.metrics import NotifierMetrics
from shared.domain.contract.notification_messages import NotificationClosed
from shared.messaging import topics
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import Notification
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of
from tests.integration.conftest import RunningApi
from tests.integration.notifier.helpers import (
    Subject,
    announce_erasure,
    disclose,
    notification,
    register,
)
from tests.integration.notifier.running import notifier_settings, running_notifier
from tests.integration.notifier.test_apply import disclosed, erased
from tests.polling import eventually
from tests.webhook_receiver import webhook_receiver

NOW = datetime.now(UTC)
_NOTIFICATIONS = table_of(Notification)
_RECIPIENTS = table_of(Recipient)


def _url(db: Engine) -> str:
    return db.url.render_as_string(hide_password=False)


def _recipient(db: Engine, *, active: bool) -> str:
    recipient_id = f"vendor-{uuid.uuid4().hex[:8]}"
    with db.begin() as connection:
        connection.execute(
            insert(_RECIPIENTS).values(
                recipient_id=recipient_id,
                name="Print & Post AB",
                kind="processor",
                country="SE",
                webhook_url="https://print.example/hooks",
                categories="collection_case",
                active=active,
                secret="sealed",
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return recipient_id


def _set_active(db: Engine, recipient_id: str, active: bool) -> None:
    with db.begin() as connection:
        connection.execute(
            update(_RECIPIENTS)
            .where(_RECIPIENTS.c.recipient_id == recipient_id)
            .values(active=active)
        )


def _rows(db: Engine, recipient_id: str) -> list:
    with db.connect() as connection:
        return connection.execute(
            select(_NOTIFICATIONS).where(_NOTIFICATIONS.c.recipient_id == recipient_id)
        ).all()


def test_a_notification_waits_for_its_inactive_recipient_past_its_horizon_and_goes_out_after(
    fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    db = fresh_db
    settings = notifier_settings(_url(db), kafka_settings, notifier_retry_horizon_seconds=60.0)
    recipient, subject = _recipient(db, active=False), Subject()
    items = [disclosed(subject, recipient, NOW - timedelta(days=9)), erased(subject)]
    assert handle_batch(db, settings, items, NOW) == 1
    [row] = _rows(db, recipient)
    assert row.state == "awaiting_recipient"

    # A day later, far past its horizon, the recipient still inactive: it waits, not failed.
    later = NOW + timedelta(days=1)
    assert awaiting.hold_and_release(db, settings, later) == awaiting.Moved(0, 0)
    assert housekeep(db, later) == 0
    [row] = _rows(db, recipient)
    assert row.state == "awaiting_recipient"

    # Active again: due at once, with a fresh horizon.
    _set_active(db, recipient, True)
    assert awaiting.hold_and_release(db, settings, later) == awaiting.Moved(0, 1)
    [row] = _rows(db, recipient)
    assert (row.state, row.next_attempt_at) == ("pending", later)
    assert row.give_up_at == later + timedelta(seconds=60)
    assert row.respond_by == later + timedelta(days=settings.notifier_respond_within_days)

    # Deactivated before it went out: it waits again rather than running out its horizon.
    _set_active(db, recipient, False)
    assert awaiting.hold_and_release(db, settings, later) == awaiting.Moved(1, 0)
    assert housekeep(db, later + timedelta(days=1)) == 0
    [row] = _rows(db, recipient)
    assert row.state == "awaiting_recipient"

    registry = NotifierMetrics(db).registry
    assert registry.get_sample_value("gallring_notifier_recipients_awaited") == 1
    age = registry.get_sample_value("gallring_notifier_oldest_awaiting_seconds")
    assert age is not None and age >= 0
    assert registry.get_sample_value("gallring_notifier_notifications", {"state": row.state}) == 1


def test_a_close_is_recorded_with_its_reason_only_on_a_waiting_or_failed_notification(
    fresh_db: Engine, kafka_settings: KafkaSettings
) -> None:
    db = fresh_db
    settings = notifier_settings(_url(db), kafka_settings)
    waiting, active = _recipient(db, active=False), _recipient(db, active=True)
    subject = Subject()
    items = [
        disclosed(subject, waiting, NOW - timedelta(days=9)),
        disclosed(subject, active, NOW - timedelta(days=9)),
        erased(subject),
    ]
    assert handle_batch(db, settings, items, NOW) == 2
    [owed], [pending] = _rows(db, waiting), _rows(db, active)

    def closing(notification_id: uuid.UUID) -> NotificationClosed:
        return NotificationClosed(
            event_id=uuid4(),
            notification_id=notification_id,
            at=NOW,
            by="dpo",
            reason="the contract ended; the vendor erased all our data at its end",
        )

    handle_batch(db, settings, [closing(owed.notification_id)], NOW)
    handle_batch(db, settings, [closing(pending.notification_id)], NOW)  # being delivered
    [owed], [pending] = _rows(db, waiting), _rows(db, active)
    assert (owed.state, owed.closed_at, owed.closed_by) == ("closed", NOW, "dpo")
    assert owed.close_reason.startswith("the contract ended")
    # Its particulars go, as at a confirmation: the recipient's reference, the scope's values.
    assert (owed.recipient_ref, owed.particulars_erased_at) == ("", NOW)
    assert json.loads(owed.scope) == {"case_id": ""}
    assert (pending.state, pending.closed_at) == ("pending", None)
    # Closed, it stays closed: a reactivated recipient is not sent it.
    _set_active(db, waiting, True)
    assert awaiting.hold_and_release(db, settings, NOW) == awaiting.Moved(0, 0)


async def test_an_inactive_recipient_is_told_once_active_again_and_an_admin_closes_another(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings, monkeypatch
) -> None:
    monkeypatch.setattr(delivery_loop, "HOUSEKEEPING_SECONDS", 0.1)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        paused = await register(api, receiver, active=False)
        gone = await register(api, receiver, active=False)
        subject = Subject()
        await disclose(api, subject, paused, recipient_ref="PV-1")
        await disclose(api, subject, gone, recipient_ref="GO-1")
        await announce_erasure(kafka_settings, subject)

        async def waiting() -> list:
            response = await api.client.get(
                "/v1/notifications",
                params={"state": "awaiting_recipient"},
                headers=api.key(Scope.ERASURES_READ),
            )
            assert response.status_code == 200, response.text
            mine = {paused, gone}
            listed = [n for n in response.json()["notifications"] if n["recipient_id"] in mine]
            return listed if len(listed) == 2 else []

        listed = await eventually(waiting)
        assert {n["next_attempt_at"] for n in listed} == {None}
        [closable] = [n for n in listed if n["recipient_id"] == gone]
        closable_id = closable["notification_id"]

        # Closing takes the admin scope and a reason.
        path = f"/v1/notifications/{closable_id}/close"
        reason = {"reason": "vendor bankrupt; its estate confirmed the data was destroyed"}
        denied = await api.client.post(path, json=reason, headers=api.key(Scope.ERASURES_READ))
        assert denied.status_code == 403
        for body in ({}, {"reason": "  "}, {"reason": "x" * 501}):
            refused = await api.client.post(path, json=body, headers=api.key(Scope.ADMIN))
            assert refused.status_code == 422, body
            assert refused.headers["content-type"] == "application/problem+json"
        unknown = await api.client.post(
            f"/v1/notifications/{uuid4()}/close", json=reason, headers=api.key(Scope.ADMIN)
        )
        assert unknown.status_code == 404
        closed = await api.client.post(path, json=reason, headers=api.key(Scope.ADMIN))
        assert closed.status_code == 202, closed.text
        shown = await eventually(lambda: _in_state(api, closable_id, "closed"))
        assert shown["close_reason"] == reason["reason"]
        assert shown["closed_by"] == "test-client" and shown["closed_at"] is not None

        # The other recipient is active again: told as usual.
        resumed = await api.client.patch(
            f"/v1/recipients/{paused}", json={"active": True}, headers=api.key(Scope.ADMIN)
        )
        assert resumed.status_code == 200, resumed.text
        endpoint = receiver.endpoints[paused]
        await eventually(lambda: endpoint.acted_on)
        [(webhook_id, payload)] = endpoint.acted_on.items()
        assert payload["data"]["recipient_ref"] == "PV-1"
        await eventually(lambda: _in_state(api, webhook_id, "delivered"))
        not_closable = await api.client.post(
            f"/v1/notifications/{webhook_id}/close", json=reason, headers=api.key(Scope.ADMIN)
        )
        assert not_closable.status_code == 409
        assert not_closable.headers["content-type"] == "application/problem+json"

        for recipient in (paused, gone):
            await api.client.patch(
                f"/v1/recipients/{recipient}", json={"active": False}, headers=api.key(Scope.ADMIN)
            )


async def test_the_close_goes_to_the_notifier_as_a_command_through_the_outbox(
    api: RunningApi, migrated_url: str
) -> None:
    """The API does not write the notifier's tables: it publishes a command."""
    db = make_engine(migrated_url)
    try:
        notification_id = uuid4()
        with db.begin() as connection:
            connection.execute(
                insert(_NOTIFICATIONS).values(
                    notification_id=notification_id,
                    recipient_id="print-vendor",
                    type="erasure.requested",
                    category="collection_case",
                    scope="{}",
                    recipient_ref="PV-1",
                    legal_basis="GDPR art. 17",
                    respond_by=NOW,
                    state="failed",
                    attempts=3,
                    next_attempt_at=NOW,
                    give_up_at=NOW,
                    created_at=NOW,
                    failed_at=NOW,
                )
            )
        response = await api.client.post(
            f"/v1/notifications/{notification_id}/close",
            json={"reason": "the vendor's endpoint is gone for good; told by letter"},
            headers=api.key(Scope.ADMIN),
        )
        assert response.status_code == 202, response.text
        outbox = table_of(OutboxMessage)
        with db.connect() as connection:
            [value] = connection.execute(
                select(outbox.c.value).where(
                    outbox.c.topic == topics.NOTIFICATION_COMMANDS,
                    outbox.c.message_key == str(notification_id),
                )
            ).scalars()
            state = connection.execute(
                select(_NOTIFICATIONS.c.state).where(
                    _NOTIFICATIONS.c.notification_id == notification_id
                )
            ).scalar_one()
        assert '"type":"notification.closed"' in value.replace(" ", "")
        assert state == "failed"  # the notifier applies it, not the API
    finally:
        db.dispose()


async def _in_state(api: RunningApi, notification_id: str, state: str):
    shown = await notification(api, notification_id)
    return shown if shown["state"] == state else None
