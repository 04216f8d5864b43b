"""The API's notification commands (``gallring.notification-commands.v1``): a recipient's
confirmation, an admin's redelivery of a failed notification, an admin's close.

They are applied one by one in the order they came, not grouped by type: a close and a
redelivery of the same failed notification do not commute (whichever comes first wins).
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, select, update

from services.notifier import awaiting
from services.notifier.batch import NotifierBatch
from services.notifier.prune import without_particulars
from services.notifier.settings import NotifierSettings
from shared.domain.contract.notification_messages import (
    NOTIFICATION_CLOSED,
    NOTIFICATION_CONFIRMED,
    REDELIVERY_REQUESTED,
    NotificationClosed,
    NotificationConfirmed,
    RedeliveryRequested,
)
from shared.storage.tables.notifier import Notification
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_NOTIFICATIONS = table_of(Notification)

Command = NotificationConfirmed | RedeliveryRequested | NotificationClosed


def apply_commands(batch: NotifierBatch, commands: list[Command]) -> None:
    """The notifier's handler of every notification command, each in its turn."""
    for command in commands:
        _EFFECTS[command.type](batch, command)


def _confirm(connection: Connection, command: NotificationConfirmed, now: datetime) -> None:
    """The recipient confirmed: it evidently got the notification, whatever we had recorded.
    Its particulars — the scope's values and its reference for the subject's data — are no
    longer needed, and go (the scope keeps its keys: what kind of data went)."""
    table = _NOTIFICATIONS
    scope = connection.execute(
        select(table.c.scope).where(
            table.c.notification_id == command.notification_id, table.c.confirmed_at.is_(None)
        )
    ).scalar()
    if scope is None:
        return  # unknown, or confirmed before
    connection.execute(
        update(table)
        .where(table.c.notification_id == command.notification_id, table.c.confirmed_at.is_(None))
        .values(
            confirmed_at=command.at,
            state="delivered",
            delivered_at=func.coalesce(table.c.delivered_at, command.at),
            failed_at=None,
            lease_until=None,
            **without_particulars(scope, now),
        )
    )


def _redeliver(
    connection: Connection, settings: NotifierSettings, command: RedeliveryRequested, now: datetime
) -> None:
    """A failed notification starts over with a fresh horizon; in any other state the request
    has nothing to do (the API accepts it only for failed ones, but it may arrive late), nor
    once its particulars were blanked: there is nothing right to send."""
    table = _NOTIFICATIONS
    redelivered = connection.execute(
        update(table)
        .where(
            and_(
                table.c.notification_id == command.notification_id,
                table.c.state == "failed",
                table.c.particulars_erased_at.is_(None),
            )
        )
        .values(
            state="pending",
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.notifier_retry_horizon_seconds),
            failed_at=None,
            lease_until=None,
        )
    ).rowcount
    if redelivered:
        log.info(
            "notifier: notification %s redelivered at %s's request",
            command.notification_id,
            command.by,
        )
    else:
        log.warning(
            "notifier: notification %s not redelivered at %s's request: it is not failed, or "
            "its scope and reference are no longer kept",
            command.notification_id,
            command.by,
        )


def _confirmed(batch: NotifierBatch, command: Any) -> None:
    _confirm(batch.connection, command, batch.now)


def _redelivery_requested(batch: NotifierBatch, command: Any) -> None:
    _redeliver(batch.connection, batch.settings, command, batch.now)


def _closed(batch: NotifierBatch, command: Any) -> None:
    awaiting.close(batch.connection, command)


_EFFECTS: dict[str, Callable[[NotifierBatch, Any], None]] = {
    NOTIFICATION_CONFIRMED: _confirmed,
    REDELIVERY_REQUESTED: _redelivery_requested,
    NOTIFICATION_CLOSED: _closed,
}
