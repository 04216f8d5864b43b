"""Applying what the notifier consumes, a batch per transaction: disclosures (from
``data.disclosed`` lifecycle events), executed erasures, and the API's notification commands.

An erasure becomes one notification per recipient that was disclosed the subject's data in that
category, in an overlapping scope, before the erasure. Topics are not ordered against each other,
so the erasure is remembered for a while (by a hash of the pseudonym) and a disclosure read
after it still matches. Matching
runs over everything stored for the touched subjects, and notification ids derive from the
erasure and the recipient, so a replay creates nothing new.
"""

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from sqlalchemy import Connection, Engine, and_, delete, func, select, text, update

from services.notifier.settings import NotifierSettings
from shared.bulk_insert import insert_rows
from shared.contract.erasure_messages import ErasureExecuted
from shared.contract.lifecycle_message import LifecycleMessage
from shared.contract.notification_messages import NotificationConfirmed, RedeliveryRequested
from shared.database import one_of
from shared.pseudonym import subject_hash
from shared.tables.api import Recipient
from shared.tables.notifier import Disclosure, HeardErasure, Notification

log = logging.getLogger(__name__)
_DISCLOSURES = Disclosure.__table__  # type: ignore[attr-defined]
_ERASURES = HeardErasure.__table__  # type: ignore[attr-defined]
_NOTIFICATIONS = Notification.__table__  # type: ignore[attr-defined]
_RECIPIENTS = Recipient.__table__  # type: ignore[attr-defined]
ERASURE_REQUESTED = "erasure.requested"


@dataclass(frozen=True, slots=True)
class HeardExecuted:
    """An erasure-executed message with its key: the subject pseudonym."""

    subject: str
    message: ErasureExecuted


Incoming = LifecycleMessage | HeardExecuted | NotificationConfirmed | RedeliveryRequested


def apply_incoming(
    db: Engine, settings: NotifierSettings, items: list[Incoming], now: datetime
) -> int:
    """Store the batch; how many notifications it created."""
    disclosures = [i for i in items if isinstance(i, LifecycleMessage) and _is_disclosure(i)]
    erasures = [i for i in items if isinstance(i, HeardExecuted)]
    subjects = sorted({d.subject for d in disclosures} | {e.subject for e in erasures})
    with db.begin() as connection:
        if connection.dialect.name == "postgresql":
            # A disclosure and its erasure may be applied by two replicas at once (different
            # topics, different partitions): serialise per subject so neither misses the other.
            for subject in subjects:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:subject, 0))"),
                    {"subject": subject},
                )
        _store_disclosures(connection, disclosures)
        _store_erasures(connection, settings, erasures, now)
        created = _notify(connection, settings, subjects, now) if subjects else 0
        for item in items:
            if isinstance(item, NotificationConfirmed):
                _confirm(connection, item)
            elif isinstance(item, RedeliveryRequested):
                _redeliver(connection, settings, item, now)
    return created


def _is_disclosure(message: LifecycleMessage) -> bool:
    return message.type == "data.disclosed"


def _store_disclosures(connection: Connection, messages: list[LifecycleMessage]) -> None:
    if not messages:
        return
    ids = {message.event_id for message in messages}
    known = set(
        connection.execute(
            select(_DISCLOSURES.c.event_id).where(one_of(connection, _DISCLOSURES.c.event_id, ids))
        ).scalars()
    )
    recipients = {message.data.recipient_id for message in messages}
    registered = set(
        connection.execute(
            select(_RECIPIENTS.c.recipient_id).where(
                one_of(connection, _RECIPIENTS.c.recipient_id, recipients)
            )
        ).scalars()
    )
    rows: dict[UUID, dict[str, Any]] = {}
    for message in messages:
        if message.event_id in known:
            continue  # redelivered
        scope_key, scope_value = message.scope.item or ("", "")
        recipient_id = message.data.recipient_id
        if recipient_id not in registered:
            log.warning(
                "notifier: disclosure %s names recipient %s, which is not registered; kept, "
                "and its notifications wait until it is",
                message.event_id,
                recipient_id,
            )
        rows[message.event_id] = {
            "event_id": message.event_id,
            "subject_pseudonym": message.subject,
            "recipient_id": recipient_id,
            "category": message.data.category.value,
            "scope_key": scope_key,
            "scope_value": scope_value,
            "recipient_ref": message.data.recipient_ref,
            "disclosed_at": message.occurred_at,
            "recipient_known": recipient_id in registered,
        }
    insert_rows(connection, _DISCLOSURES, list(rows.values()))


def _store_erasures(
    connection: Connection, settings: NotifierSettings, heard: list[HeardExecuted], now: datetime
) -> None:
    if not heard:
        return
    ids = {item.message.erasure_id for item in heard}
    known = set(
        connection.execute(
            select(_ERASURES.c.erasure_id).where(one_of(connection, _ERASURES.c.erasure_id, ids))
        ).scalars()
    )
    forget_after = now + timedelta(days=settings.notifier_late_disclosure_days)
    rows: dict[UUID, dict[str, Any]] = {}
    for item in heard:
        message = item.message
        if message.erasure_id in known:
            continue
        scope_key, scope_value = next(iter(message.scope.items()), ("", ""))
        rows[message.erasure_id] = {
            "erasure_id": message.erasure_id,
            "subject_hash": subject_hash(item.subject),
            "category": message.category.value,
            "scope_key": scope_key,
            "scope_value": scope_value,
            "legal_basis": message.legal_basis,
            "executed_at": message.executed_at,
            "forget_after": forget_after,
        }
    insert_rows(connection, _ERASURES, list(rows.values()))


def _notify(
    connection: Connection, settings: NotifierSettings, subjects: list[str], now: datetime
) -> int:
    """Notifications for every (erasure, disclosure) pair of ``subjects`` that match; the
    disclosures an erasure covered completely are dropped."""
    disclosures = connection.execute(
        select(_DISCLOSURES).where(one_of(connection, _DISCLOSURES.c.subject_pseudonym, subjects))
    ).all()
    hashes = {subject_hash(subject): subject for subject in subjects}
    erasures = connection.execute(
        select(_ERASURES).where(one_of(connection, _ERASURES.c.subject_hash, hashes))
    ).all()
    if not disclosures or not erasures:
        return 0
    inactive = set(
        connection.execute(
            select(_RECIPIENTS.c.recipient_id).where(
                one_of(
                    connection, _RECIPIENTS.c.recipient_id, {d.recipient_id for d in disclosures}
                ),
                _RECIPIENTS.c.active.is_(False),
            )
        ).scalars()
    )
    by_subject: dict[str, list[Any]] = defaultdict(list)
    for erasure in erasures:
        by_subject[hashes[erasure.subject_hash]].append(erasure)
    wanted: dict[UUID, dict[str, Any]] = {}
    covered: set[UUID] = set()
    for disclosure in disclosures:
        for erasure in by_subject[disclosure.subject_pseudonym]:
            if not _matches(disclosure, erasure):
                continue
            if not erasure.scope_key or erasure.scope_key == disclosure.scope_key:
                covered.add(disclosure.event_id)
            if disclosure.recipient_id in inactive:
                log.info(
                    "notifier: recipient %s is inactive; erasure %s is not sent to it",
                    disclosure.recipient_id,
                    erasure.erasure_id,
                )
                continue
            notification = _notification(settings, disclosure, erasure, now)
            wanted[notification["notification_id"]] = notification
    created = 0
    if wanted:
        existing = set(
            connection.execute(
                select(_NOTIFICATIONS.c.notification_id).where(
                    one_of(connection, _NOTIFICATIONS.c.notification_id, wanted)
                )
            ).scalars()
        )
        new = [row for notification_id, row in wanted.items() if notification_id not in existing]
        insert_rows(connection, _NOTIFICATIONS, new)
        created = len(new)
    if covered:
        connection.execute(
            delete(_DISCLOSURES).where(one_of(connection, _DISCLOSURES.c.event_id, covered))
        )
    return created


def _matches(disclosure: Any, erasure: Any) -> bool:
    """Same category, disclosed before the erasure, and scopes that overlap: equal, or either
    subject-wide."""
    return (
        disclosure.category == erasure.category
        and disclosure.disclosed_at <= erasure.executed_at
        and (
            not disclosure.scope_key
            or not erasure.scope_key
            or (disclosure.scope_key, disclosure.scope_value)
            == (erasure.scope_key, erasure.scope_value)
        )
    )


def _notification(
    settings: NotifierSettings, disclosure: Any, erasure: Any, now: datetime
) -> dict[str, Any]:
    scope = {erasure.scope_key: erasure.scope_value} if erasure.scope_key else {}
    return {
        "notification_id": uuid5(
            erasure.erasure_id, f"{disclosure.recipient_id}/{disclosure.recipient_ref}"
        ),
        "erasure_id": erasure.erasure_id,
        "recipient_id": disclosure.recipient_id,
        "type": ERASURE_REQUESTED,
        "category": erasure.category,
        "scope": json.dumps(scope),
        "recipient_ref": disclosure.recipient_ref,
        "legal_basis": erasure.legal_basis,
        "respond_by": now + timedelta(days=settings.notifier_respond_within_days),
        "state": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "give_up_at": now + timedelta(seconds=settings.notifier_retry_horizon_seconds),
        "created_at": now,
        "delivered_at": None,
        "failed_at": None,
        "confirmed_at": None,
    }


def _confirm(connection: Connection, command: NotificationConfirmed) -> None:
    """The recipient confirmed: it evidently got the notification, whatever we had recorded."""
    table = _NOTIFICATIONS
    connection.execute(
        update(table)
        .where(table.c.notification_id == command.notification_id, table.c.confirmed_at.is_(None))
        .values(
            confirmed_at=command.at,
            state="delivered",
            delivered_at=func.coalesce(table.c.delivered_at, command.at),
            failed_at=None,
            lease_until=None,
        )
    )


def _redeliver(
    connection: Connection, settings: NotifierSettings, command: RedeliveryRequested, now: datetime
) -> None:
    """A failed notification starts over with a fresh horizon; in any other state the request
    has nothing to do (the API accepts it only for failed ones, but it may arrive late)."""
    table = _NOTIFICATIONS
    connection.execute(
        update(table)
        .where(and_(table.c.notification_id == command.notification_id, table.c.state == "failed"))
        .values(
            state="pending",
            next_attempt_at=now,
            give_up_at=now + timedelta(seconds=settings.notifier_retry_horizon_seconds),
            failed_at=None,
            lease_until=None,
        )
    )
    log.info(
        "notifier: notification %s redelivered at %s's request", command.notification_id, command.by
    )
