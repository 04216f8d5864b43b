"""The notifier's matching: the handlers of disclosures (``data.disclosed`` lifecycle events),
executed erasures and rectification and restriction notices (``data.rectified``,
``processing.restricted``), and the notifications they owe, worked out once the batch's handlers
ran (``handlers.py``; the API's notification commands are ``commands.py``'s).

An erasure becomes one notification per recipient that was disclosed the subject's data in that
category, in an overlapping scope, before the erasure; a rectification or restriction likewise.
Topics are not ordered against each other, so an erasure is remembered for a while (by a hash of
the pseudonym) and a disclosure read after it still matches (a notice and its disclosures share
the lifecycle topic and its order); after that, the purger's proof of it does
(``proven_erasures.py``). Matching runs over everything stored for the touched
subjects, and notification ids derive from the erasure or notice and the recipient, so a replay
creates nothing new.
"""

import json
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid5

from sqlalchemy import Connection, delete, select

from services.notifier.batch import NotifierBatch
from services.notifier.proven_erasures import proven_erasures
from services.notifier.settings import NotifierSettings
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.pseudonym import subject_hash
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import one_of
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import (
    AWAITING_RECIPIENT,
    Disclosure,
    HeardErasure,
    Notification,
)
from shared.storage.tables.table import table_of

log = logging.getLogger(__name__)
_DISCLOSURES = table_of(Disclosure)
_ERASURES = table_of(HeardErasure)
_NOTIFICATIONS = table_of(Notification)
_RECIPIENTS = table_of(Recipient)
ERASURE_REQUESTED = "erasure.requested"
#: Lifecycle events every recipient of the data hears of too (GDPR art. 19), and how.
NOTICES = {
    "data.rectified": ("rectification.requested", "GDPR art. 19: rectified under art. 16"),
    "processing.restricted": ("restriction.requested", "GDPR art. 19: restricted under art. 18"),
}


@dataclass(frozen=True, slots=True)
class HeardExecuted:
    """An erasure-executed message with its key: the subject pseudonym."""

    subject: str
    message: ErasureExecuted

    @property
    def type(self) -> str:
        return self.message.type


def store_disclosures(batch: NotifierBatch, messages: list[LifecycleMessage]) -> None:
    """``data.disclosed``: who received which of a subject's data, kept until told."""
    batch.subjects.update(message.subject for message in messages)
    _store_disclosures(batch.connection, messages)


def store_erasures(batch: NotifierBatch, heard: list[HeardExecuted]) -> None:
    """``erasure.executed``: remembered a while, so that a disclosure read later still matches."""
    batch.subjects.update(item.subject for item in heard)
    _store_erasures(batch.connection, batch.settings, heard, batch.now)


def hear_notices(batch: NotifierBatch, messages: list[LifecycleMessage]) -> None:
    """``data.rectified``, ``processing.restricted``: told to every recipient of the data."""
    batch.subjects.update(message.subject for message in messages)
    batch.notices.extend(messages)


def notify(batch: NotifierBatch) -> None:
    """After the batch's handlers: the notifications its subjects now owe."""
    if batch.subjects:
        batch.created += _notify(
            batch.connection, batch.settings, sorted(batch.subjects), batch.notices, batch.now
        )


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
    registered = dict(
        connection.execute(
            select(_RECIPIENTS.c.recipient_id, _RECIPIENTS.c.categories).where(
                one_of(connection, _RECIPIENTS.c.recipient_id, recipients)
            )
        ).all()
    )
    rows: dict[UUID, dict[str, Any]] = {}
    for message in messages:
        if message.event_id in known:
            continue  # redelivered
        scope_key, scope_value = message.scope.item or ("", "")
        recipient_id = message.data.recipient_id
        if recipient_id not in registered:
            log.warning(
                "notifier: disclosure %s names recipient %s, which is not registered; kept: "
                "its notifications wait for the registration (until their retry horizon)",
                message.event_id,
                recipient_id,
            )
        elif message.data.category.value not in registered[recipient_id].split():
            log.warning(
                "notifier: disclosure %s gave %s data to recipient %s, which is not registered "
                "for that category; it will be told of erasures all the same",
                message.event_id,
                message.data.category.value,
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


@dataclass(frozen=True, slots=True)
class _Cause:
    """Why recipients are told: an executed erasure, or a rectification or restriction."""

    cause_id: UUID  # names the notifications it makes, with the recipient
    erasure_id: UUID | None
    event_id: UUID | None
    notification_type: str
    category: str
    scope_key: str
    scope_value: str
    at: datetime  # disclosures after this are not concerned
    legal_basis: str
    ends_disclosures: bool  # an erasure ends the disclosures it covers; a notice does not


def _erasure_cause(row: Any) -> _Cause:
    return _Cause(
        cause_id=row.erasure_id,
        erasure_id=row.erasure_id,
        event_id=None,
        notification_type=ERASURE_REQUESTED,
        category=row.category,
        scope_key=row.scope_key,
        scope_value=row.scope_value,
        at=row.executed_at,
        legal_basis=row.legal_basis,
        ends_disclosures=True,
    )


def _notice_cause(message: LifecycleMessage) -> _Cause:
    notification_type, legal_basis = NOTICES[message.type]
    scope_key, scope_value = message.scope.item or ("", "")
    return _Cause(
        cause_id=message.event_id,
        erasure_id=None,
        event_id=message.event_id,
        notification_type=notification_type,
        category=message.data.category.value,
        scope_key=scope_key,
        scope_value=scope_value,
        at=message.occurred_at,
        legal_basis=legal_basis,
        ends_disclosures=False,
    )


def _notify(
    connection: Connection,
    settings: NotifierSettings,
    subjects: list[str],
    notices: list[LifecycleMessage],
    now: datetime,
) -> int:
    """Notifications for every (cause, disclosure) pair of ``subjects`` that match: the
    remembered erasures and this batch's notices. Disclosures an erasure covered completely are
    dropped."""
    disclosures = connection.execute(
        select(_DISCLOSURES).where(one_of(connection, _DISCLOSURES.c.subject_pseudonym, subjects))
    ).all()
    if not disclosures:
        return 0
    hashes = {subject_hash(subject): subject for subject in subjects}
    causes: dict[str, list[_Cause]] = defaultdict(list)
    for row in connection.execute(
        select(_ERASURES).where(one_of(connection, _ERASURES.c.subject_hash, hashes))
    ):
        causes[hashes[row.subject_hash]].append(_erasure_cause(row))
    # Erasures no longer remembered (or not heard yet) are found through the purger's proofs.
    heard = {cause.erasure_id for subject_causes in causes.values() for cause in subject_causes}
    for subject, proven in proven_erasures(connection, hashes, disclosures).items():
        causes[subject] += [_erasure_cause(p) for p in proven if p.erasure_id not in heard]
    for notice in notices:
        causes[notice.subject].append(_notice_cause(notice))
    named = {disclosure.recipient_id for disclosure in disclosures}
    inactive = set(
        connection.execute(
            select(_RECIPIENTS.c.recipient_id).where(
                one_of(connection, _RECIPIENTS.c.recipient_id, named),
                _RECIPIENTS.c.active.is_(False),
            )
        ).scalars()
    )
    wanted: dict[UUID, dict[str, Any]] = {}
    ended: set[UUID] = set()
    for disclosure in disclosures:
        for cause in causes[disclosure.subject_pseudonym]:
            if not _concerns(cause, disclosure):
                continue
            if cause.ends_disclosures and (
                not cause.scope_key or cause.scope_key == disclosure.scope_key
            ):
                ended.add(disclosure.event_id)
            notification = _notification(settings, disclosure, cause, now)
            if disclosure.recipient_id in inactive:
                # Still owed (art. 19): it waits until the recipient is active again or an
                # admin closes it (services/notifier/awaiting.py).
                log.info(
                    "notifier: recipient %s is inactive; %s %s waits for it",
                    disclosure.recipient_id,
                    cause.notification_type,
                    cause.cause_id,
                )
                notification["state"] = AWAITING_RECIPIENT
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
    if ended:
        connection.execute(
            delete(_DISCLOSURES).where(one_of(connection, _DISCLOSURES.c.event_id, ended))
        )
    return created


def _concerns(cause: _Cause, disclosure: Any) -> bool:
    """Same category, disclosed before the cause, and scopes that overlap: equal, or either
    subject-wide."""
    return (
        disclosure.category == cause.category
        and disclosure.disclosed_at <= cause.at
        and (
            not disclosure.scope_key
            or not cause.scope_key
            or (disclosure.scope_key, disclosure.scope_value)
            == (cause.scope_key, cause.scope_value)
        )
    )


def _notification(
    settings: NotifierSettings, disclosure: Any, cause: _Cause, now: datetime
) -> dict[str, Any]:
    scope = {cause.scope_key: cause.scope_value} if cause.scope_key else {}
    return {
        "notification_id": uuid5(
            cause.cause_id, f"{disclosure.recipient_id}\0{disclosure.recipient_ref}"
        ),
        "erasure_id": cause.erasure_id,
        "event_id": cause.event_id,
        "recipient_id": disclosure.recipient_id,
        "type": cause.notification_type,
        "category": cause.category,
        "scope": json.dumps(scope),
        "recipient_ref": disclosure.recipient_ref,
        "legal_basis": cause.legal_basis,
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
