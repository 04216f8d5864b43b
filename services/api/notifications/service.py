"""Reading the notifier's notifications and attempts, and passing on what the API learns about a
notification (a confirmation, a redelivery request) to the notifier through the outbox: the
notifier owns the rows and applies both."""

import base64
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import ColumnElement, Connection, Engine, and_, or_, select

from services.api.api_keys import Principal
from services.api.notifications.schemas import AttemptView, NotificationState, NotificationView
from services.api.passing_on import pass_on
from shared.domain.contract.notification_messages import (
    NotificationClosed,
    NotificationConfirmed,
    RedeliveryRequested,
)
from shared.messaging import topics
from shared.storage.database import one_of
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import DeliveryAttempt, Notification
from shared.storage.tables.table import table_of

_NOTIFICATIONS = table_of(Notification)
_ATTEMPTS = table_of(DeliveryAttempt)
_RECIPIENTS = table_of(Recipient)


class CursorError(ValueError):
    """The cursor was not one this API handed out."""


@dataclass(frozen=True, slots=True)
class Signers:
    """The secrets (sealed) a recipient's confirmations may be signed with."""

    recipient_id: str
    secrets: list[str]
    confirmed: bool  # already: a repeat changes nothing


def encode_cursor(view: NotificationView) -> str:
    text = f"{view.created_at.isoformat()}|{view.notification_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        created_at, notification_id = base64.urlsafe_b64decode(cursor).decode().split("|")
        return datetime.fromisoformat(created_at), UUID(notification_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise CursorError("not a cursor from a previous page") from error


def page(
    db: Engine,
    *,
    state: NotificationState | None,
    recipient_id: str | None,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[list[NotificationView], bool]:
    """Up to ``limit`` notifications, oldest first, after ``after``, each with its attempts;
    and whether more follow."""
    table = _NOTIFICATIONS
    conditions: list[ColumnElement[bool]] = []
    if state is NotificationState.CONFIRMED:
        conditions.append(table.c.confirmed_at.is_not(None))
    elif state is not None:
        conditions += [table.c.state == state.value, table.c.confirmed_at.is_(None)]
    if recipient_id is not None:
        conditions.append(table.c.recipient_id == recipient_id)
    if after is not None:
        created_at, notification_id = after
        conditions.append(
            or_(
                table.c.created_at > created_at,
                and_(table.c.created_at == created_at, table.c.notification_id > notification_id),
            )
        )
    with db.connect() as connection:
        rows = connection.execute(
            select(table)
            .where(*conditions)
            .order_by(table.c.created_at, table.c.notification_id)
            .limit(limit + 1)
        ).all()
        shown = rows[:limit]
        attempts = _attempts(connection, [row.notification_id for row in shown])
    return [_view(row, attempts[row.notification_id]) for row in shown], len(rows) > limit


def one(db: Engine, notification_id: UUID) -> NotificationView | None:
    with db.connect() as connection:
        row = connection.execute(
            select(_NOTIFICATIONS).where(_NOTIFICATIONS.c.notification_id == notification_id)
        ).first()
        if row is None:
            return None
        return _view(row, _attempts(connection, [notification_id])[notification_id])


def of_erasure(connection: Connection, erasure_id: UUID) -> list[NotificationView]:
    """Every notification an erasure caused, each with its attempts: the art. 19 proof."""
    rows = connection.execute(
        select(_NOTIFICATIONS)
        .where(_NOTIFICATIONS.c.erasure_id == erasure_id)
        .order_by(_NOTIFICATIONS.c.recipient_id, _NOTIFICATIONS.c.notification_id)
    ).all()
    attempts = _attempts(connection, [row.notification_id for row in rows])
    return [_view(row, attempts[row.notification_id]) for row in rows]


def signers(db: Engine, notification_id: UUID, now: datetime) -> Signers | None:
    """Whose secrets may sign a confirmation of the notification; None if there is none."""
    with db.connect() as connection:
        row = connection.execute(
            select(
                _RECIPIENTS.c.recipient_id,
                _RECIPIENTS.c.secret,
                _RECIPIENTS.c.previous_secret,
                _RECIPIENTS.c.previous_secret_expires_at,
                _NOTIFICATIONS.c.confirmed_at,
            )
            .join(_NOTIFICATIONS, _NOTIFICATIONS.c.recipient_id == _RECIPIENTS.c.recipient_id)
            .where(_NOTIFICATIONS.c.notification_id == notification_id)
        ).first()
    if row is None:
        return None
    sealed = [row.secret]
    if row.previous_secret and row.previous_secret_expires_at > now:
        sealed.append(row.previous_secret)
    return Signers(row.recipient_id, sealed, confirmed=row.confirmed_at is not None)


def request_confirmation(db: Engine, notification_id: UUID, recipient_id: str, now: datetime):
    """Pass the recipient's confirmation on to the notifier (which records ``confirmed_at``)."""
    message = NotificationConfirmed(event_id=uuid4(), notification_id=notification_id, at=now)
    actor = Principal(key_id="", name=f"recipient:{recipient_id}", scopes=frozenset())
    _publish(db, message, actor, "notifications.confirmed", now)


def request_redelivery(db: Engine, notification_id: UUID, actor: Principal, now: datetime):
    message = RedeliveryRequested(
        event_id=uuid4(), notification_id=notification_id, at=now, by=actor.name
    )
    _publish(db, message, actor, "notifications.redelivery_requested", now)


def request_close(
    db: Engine, notification_id: UUID, reason: str, actor: Principal, now: datetime
) -> None:
    """Pass the admin's close on to the notifier, which records it with the reason (the audit
    entry names the notification, not the reason: the admin's words stay with the notifier)."""
    message = NotificationClosed(
        event_id=uuid4(), notification_id=notification_id, at=now, by=actor.name, reason=reason
    )
    _publish(db, message, actor, "notifications.close_requested", now)


def _publish(
    db: Engine,
    message: NotificationConfirmed | RedeliveryRequested | NotificationClosed,
    actor: Principal,
    action: str,
    now: datetime,
) -> None:
    notification_id = str(message.notification_id)
    pass_on(
        db,
        topics.NOTIFICATION_COMMANDS,
        notification_id,
        message,
        actor=actor,
        action=action,
        now=now,
        notification_id=notification_id,
    )


def _attempts(connection: Connection, ids: list[UUID]) -> dict[UUID, list[AttemptView]]:
    found: dict[UUID, list[AttemptView]] = {notification_id: [] for notification_id in ids}
    if ids:
        rows = connection.execute(
            select(_ATTEMPTS)
            .where(one_of(connection, _ATTEMPTS.c.notification_id, ids))
            .order_by(_ATTEMPTS.c.attempted_at, _ATTEMPTS.c.id)
        )
        for row in rows:
            found[row.notification_id].append(
                AttemptView(
                    attempted_at=row.attempted_at,
                    status_code=row.status_code,
                    latency_ms=row.latency_ms,
                    error=row.error,
                )
            )
    return found


def _view(row: Any, attempts: list[AttemptView]) -> NotificationView:
    undelivered = row.state in ("pending", "delivering")
    return NotificationView(
        notification_id=row.notification_id,
        erasure_id=row.erasure_id,
        event_id=row.event_id,
        recipient_id=row.recipient_id,
        type=row.type,
        category=row.category,
        scope=json.loads(row.scope),
        state=NotificationState.CONFIRMED if row.confirmed_at is not None else row.state,
        attempts=row.attempts,
        created_at=row.created_at,
        next_attempt_at=row.next_attempt_at if undelivered else None,
        give_up_at=row.give_up_at,
        respond_by=row.respond_by,
        delivered_at=row.delivered_at,
        failed_at=row.failed_at,
        confirmed_at=row.confirmed_at,
        particulars_erased_at=row.particulars_erased_at,
        closed_at=row.closed_at,
        closed_by=row.closed_by,
        close_reason=row.close_reason,
        attempt_log=attempts,
    )
