"""Turning disclosures and erasures into notifications, applied directly (no broker): in either
order, once however often they are replayed, and only for what was disclosed before."""

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from sqlalchemy import Engine, select, update

from services.notifier.apply import HeardExecuted
from services.notifier.handlers import handle_batch
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.notification_messages import (
    NotificationClosed,
    NotificationConfirmed,
    RedeliveryRequested,
)
from shared.domain.contract.vocabulary import Category
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.tables.notifier import Disclosure, Notification
from shared.storage.tables.table import table_of
from tests.integration.notifier.helpers import Subject
from tests.integration.notifier.running import notifier_settings

NOW = datetime.now(UTC)


@pytest.fixture
def db(migrated_url: str):
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


def disclosed(
    subject: Subject, recipient: str, at: datetime, ref: str = "R-1", case_id: str = "C-1"
) -> LifecycleMessage:
    return LifecycleMessage.model_validate(
        {
            "event_id": uuid4(),
            "type": "data.disclosed",
            "occurred_at": at,
            "subject": subject.pseudonym,
            "role": "debtor",
            "scope": {"case_id": case_id},
            "data": {
                "recipient_id": recipient,
                "category": "collection_case",
                "recipient_ref": ref,
            },
        }
    )


def erased(subject: Subject, at: datetime = NOW) -> HeardExecuted:
    return HeardExecuted(
        subject.pseudonym,
        ErasureExecuted(
            event_id=uuid4(),
            erasure_id=uuid4(),
            category=Category.COLLECTION_CASE,
            scope={"case_id": "C-1"},
            rule="collection_case.retention",
            legal_basis="GDPR art. 17(1)(a)",
            due_at=at,
            executed_at=at,
        ),
    )


def notified(db: Engine, recipient: str) -> list[str]:
    table = table_of(Notification)
    with db.connect() as connection:
        return list(
            connection.execute(
                select(table.c.recipient_ref).where(table.c.recipient_id == recipient)
            ).scalars()
        )


@pytest.mark.parametrize("erasure_first", [False, True])
def test_either_order_makes_one_notification_and_replays_make_none(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings, erasure_first: bool
) -> None:
    settings = notifier_settings(migrated_url, kafka_settings)
    subject, recipient = Subject(), f"r-{uuid4().hex[:8]}"
    disclosure, erasure = disclosed(subject, recipient, NOW - timedelta(days=9)), erased(subject)
    batches = [[erasure], [disclosure]] if erasure_first else [[disclosure], [erasure]]
    created = [handle_batch(db, settings, batch, NOW) for batch in batches]
    assert created == [0, 1]
    assert handle_batch(db, settings, [disclosure, erasure], NOW) == 0  # replayed together
    assert notified(db, recipient) == ["R-1"]
    table = table_of(Disclosure)
    with db.connect() as connection:  # the erasure covered the disclosure: it is gone
        assert not connection.execute(
            select(table).where(table.c.subject_pseudonym == subject.pseudonym)
        ).all()


def test_a_disclosure_after_the_erasure_is_not_notified_of_it(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    settings = notifier_settings(migrated_url, kafka_settings)
    subject, recipient = Subject(), f"r-{uuid4().hex[:8]}"
    erasure = erased(subject, at=NOW - timedelta(days=1))
    assert handle_batch(db, settings, [erasure, disclosed(subject, recipient, NOW)], NOW) == 0
    assert notified(db, recipient) == []


def test_recipient_and_reference_are_kept_apart_in_notification_ids(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    settings = notifier_settings(migrated_url, kafka_settings)
    subject, prefix = Subject(), uuid4().hex[:8]
    before = NOW - timedelta(days=9)
    items = [
        disclosed(subject, f"{prefix}/a", before, ref="b"),
        disclosed(subject, prefix, before, ref="a/b"),
        erased(subject),
    ]
    assert handle_batch(db, settings, items, NOW) == 2


def test_a_recipient_confirms_each_of_its_notifications_of_one_erasure(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """One erasure, one recipient that knows the data under two references: two notifications,
    and each confirmation is recorded (a confirmed one no longer holds its reference)."""
    settings = notifier_settings(migrated_url, kafka_settings)
    subject, recipient = Subject(), f"r-{uuid4().hex[:8]}"
    before = NOW - timedelta(days=9)
    items = [
        disclosed(subject, recipient, before, ref="R-1"),
        disclosed(subject, recipient, before, ref="R-2"),
        erased(subject),
    ]
    assert handle_batch(db, settings, items, NOW) == 2
    table = table_of(Notification)
    with db.connect() as connection:
        ids = connection.execute(
            select(table.c.notification_id).where(table.c.recipient_id == recipient)
        ).scalars()
        confirmations = [
            NotificationConfirmed(event_id=uuid4(), notification_id=notification_id, at=NOW)
            for notification_id in ids
        ]
    for confirmation in confirmations:
        handle_batch(db, settings, [confirmation], NOW)
    with db.connect() as connection:
        rows = connection.execute(
            select(table.c.confirmed_at, table.c.recipient_ref).where(
                table.c.recipient_id == recipient
            )
        ).all()
    assert [(confirmed_at is not None, ref) for confirmed_at, ref in rows] == [(True, "")] * 2


def test_commands_of_one_batch_apply_in_the_order_they_came(
    db: Engine, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """A redelivery then a close of one failed notification: the redelivery wins (the close
    finds it pending again), as it would in two batches; grouped by type, the close would."""
    settings = notifier_settings(migrated_url, kafka_settings)
    subject, recipient = Subject(), f"r-{uuid4().hex[:8]}"
    items = [
        disclosed(subject, recipient, NOW - timedelta(days=9), ref="R-1"),
        disclosed(subject, recipient, NOW - timedelta(days=9), ref="R-2"),
        erased(subject),
    ]
    assert handle_batch(db, settings, items, NOW) == 2
    table = table_of(Notification)
    with db.begin() as connection:
        first, second = connection.execute(
            select(table.c.notification_id)
            .where(table.c.recipient_id == recipient)
            .order_by(table.c.recipient_ref)
        ).scalars()
        connection.execute(
            update(table).where(table.c.recipient_id == recipient).values(state="failed")
        )

    def close(notification_id: UUID) -> NotificationClosed:
        reason = "the vendor erased everything at the contract's end"
        return NotificationClosed(
            event_id=uuid4(), notification_id=notification_id, at=NOW, by="dpo", reason=reason
        )

    redeliver = RedeliveryRequested(event_id=uuid4(), notification_id=second, at=NOW, by="ops")
    handle_batch(db, settings, [close(first), redeliver, close(second)], NOW)
    with db.connect() as connection:
        states = dict(
            connection.execute(
                select(table.c.notification_id, table.c.state).where(
                    table.c.recipient_id == recipient
                )
            ).all()
        )
    assert states == {first: "closed", second: "pending"}
