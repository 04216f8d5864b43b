"""Notifications that wait for their recipient.

A recipient inactive when an erasure is executed (or deactivated while a notification to it is
undelivered) is still owed the notification: GDPR art. 19 has no exception for a paused
contract. The notification waits in ``awaiting_recipient``, neither sent nor running out its
retry horizon, until the recipient is active again (it is then pending with a fresh horizon and
delivered as usual) or an admin closes it with a reason (``POST /v1/notifications/{id}/close``,
passed on as a ``notification.closed`` command). Housekeeping moves notifications between the
two as recipients are deactivated and reactivated: the API owns recipients, the notifier its
notifications.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, or_, select, update

from services.notifier.prune import without_particulars
from services.notifier.settings import NotifierSettings
from shared.domain.contract.notification_messages import NotificationClosed
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import (
    AWAITING,
    AWAITING_RECIPIENT,
    CLOSABLE_STATES,
    CLOSED,
    UNDELIVERED,
    Notification,
)
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_NOTIFICATIONS = table_of(Notification)
_RECIPIENTS = table_of(Recipient)


@dataclass(frozen=True, slots=True)
class Moved:
    held: int  # undelivered notifications of recipients deactivated since: now waiting
    released: int  # waiting notifications of recipients active again: now pending


def hold_and_release(db: Engine, settings: NotifierSettings, now: datetime) -> Moved:
    """Let the notifications of inactive recipients wait (those not claimed right now: a claim
    in flight is recorded first), and make those of recipients active again due at once, with
    a fresh retry horizon and a fresh ``respond_by``."""
    table = _NOTIFICATIONS
    recipients = _RECIPIENTS.c
    with db.begin() as connection:
        held = connection.execute(
            update(table)
            .where(
                UNDELIVERED,
                table.c.recipient_id.in_(
                    select(recipients.recipient_id).where(recipients.active.is_(False))
                ),
                or_(table.c.lease_until.is_(None), table.c.lease_until < now),
            )
            .values(state=AWAITING_RECIPIENT, lease_until=None)
        ).rowcount
        released = connection.execute(
            update(table)
            .where(
                AWAITING,
                table.c.recipient_id.in_(
                    select(recipients.recipient_id).where(recipients.active.is_(True))
                ),
            )
            .values(
                state="pending",
                next_attempt_at=now,
                give_up_at=now + timedelta(seconds=settings.notifier_retry_horizon_seconds),
                # The recipient's month to respond runs from when it can be told.
                respond_by=now + timedelta(days=settings.notifier_respond_within_days),
            )
        ).rowcount
    if held or released:
        log.info(
            "notifier: %d notification(s) wait for their inactive recipient; %d of recipients "
            "active again are due",
            held,
            released,
        )
    return Moved(held, released)


def close(connection: Connection, command: NotificationClosed) -> None:
    """An admin closed the notification: recorded with the reason, if it still waits or failed
    (a recipient reactivated meanwhile gets it delivered instead). Its reference for the
    subject's data is no longer needed: its particulars (the scope's values, the reference) go,
    as at a confirmation."""
    table = _NOTIFICATIONS
    closable = (
        table.c.notification_id == command.notification_id,
        table.c.state.in_(CLOSABLE_STATES),
    )
    scope = connection.execute(select(table.c.scope).where(*closable)).scalar()
    closed = 0
    if scope is not None:
        closed = connection.execute(
            update(table)
            .where(*closable)
            .values(
                state=CLOSED,
                closed_at=command.at,
                closed_by=command.by,
                close_reason=command.reason,
                lease_until=None,
                **without_particulars(scope, command.at),
            )
        ).rowcount
    if closed:
        log.info("notifier: notification %s closed by %s", command.notification_id, command.by)
    else:
        log.info(
            "notifier: notification %s not closed: it no longer waits and has not failed",
            command.notification_id,
        )
