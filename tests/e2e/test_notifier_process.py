"""A real notifier process (``gallring notifier``) killed with SIGKILL while deliveries are in
flight, and started again: every notification is delivered, none lost, and the receiver, which
dedupes by ``webhook-id``, acts on each exactly once."""

import asyncio
import signal
import subprocess
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from services.api.api_keys import Principal
from services.api.recipients import service as recipients
from services.api.recipients.schemas import NewRecipient
from services.notifier.apply import HeardExecuted
from services.notifier.handlers import handle_batch
from shared.domain.contract.erasure_messages import ErasureExecuted
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.vocabulary import Category
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.tables.notifier import Notification
from shared.storage.tables.table import table_of
from tests.integration.conftest import start_worker
from tests.integration.notifier.helpers import Subject
from tests.integration.notifier.running import notifier_settings
from tests.polling import eventually
from tests.webhook_receiver import HANG, webhook_receiver

NOTIFICATIONS = 30


def notifier_process(database_url: str, kafka: KafkaSettings) -> subprocess.Popen[bytes]:
    return start_worker(
        "notifier",
        database_url,
        kafka,
        webhook_allow_loopback="true",
        notifier_consumer_group=f"notifier-test-{uuid.uuid4().hex[:8]}",
        notifier_timeout_seconds="2",
        notifier_retry_base_seconds="0.1",
        notifier_retry_max_seconds="0.5",
        notifier_poll_interval_seconds="0.05",
        notifier_metrics_port="0",
    )


async def test_a_notifier_killed_mid_delivery_loses_nothing(
    migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    settings = notifier_settings(migrated_url, kafka_settings)
    db = make_engine(migrated_url)
    async with webhook_receiver() as receiver:
        recipient_id = f"vendor-{uuid.uuid4().hex[:8]}"
        created = recipients.create(
            db,
            NewRecipient(
                recipient_id=recipient_id,
                name="Print & Post AB",
                kind="processor",
                country="SE",
                webhook_url=receiver.url(recipient_id),
                categories=[Category.COLLECTION_CASE],
            ),
            settings.secret_box(),
            actor=Principal("k", "test", frozenset()),
            now=datetime.now(UTC),
        )
        endpoint = receiver.endpoints[recipient_id]
        endpoint.secret = created.signing_secret
        endpoint.script = [HANG] * 4  # four deliveries (all its slots) in flight at the kill
        handle_batch(db, settings, _disclosed_and_erased(recipient_id), datetime.now(UTC))

        first = notifier_process(migrated_url, kafka_settings)
        try:
            await eventually(lambda: len(endpoint.received) >= 4, timeout=30)
            first.send_signal(signal.SIGKILL)
            first.wait()
        finally:
            first.kill()
        assert not endpoint.acted_on  # killed with every claimed delivery still in flight

        second = notifier_process(migrated_url, kafka_settings)
        try:
            await eventually(lambda: len(endpoint.acted_on) == NOTIFICATIONS, timeout=60)
            table = table_of(Notification)

            async def all_recorded() -> bool:
                with db.connect() as connection:
                    states = dict(
                        connection.execute(
                            select(table.c.state, func.count())
                            .where(table.c.recipient_id == recipient_id)
                            .group_by(table.c.state)
                        ).all()
                    )
                return states == {"delivered": NOTIFICATIONS}

            await eventually(all_recorded, timeout=30)
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.to_thread(second.wait, 20)
    db.dispose()
    assert len({r.webhook_id for r in endpoint.received}) == NOTIFICATIONS


def _disclosed_and_erased(recipient_id: str) -> list:
    items: list = []
    now = datetime.now(UTC)
    for n in range(NOTIFICATIONS):
        subject = Subject()
        items.append(
            LifecycleMessage.model_validate(
                {
                    "event_id": uuid.uuid4(),
                    "type": "data.disclosed",
                    "occurred_at": now - timedelta(days=400),
                    "subject": subject.pseudonym,
                    "role": "debtor",
                    "scope": {"case_id": f"C-{n}"},
                    "data": {
                        "recipient_id": recipient_id,
                        "category": "collection_case",
                        "recipient_ref": f"PV-{n}",
                    },
                }
            )
        )
        items.append(
            HeardExecuted(
                subject.pseudonym,
                ErasureExecuted(
                    event_id=uuid.uuid4(),
                    erasure_id=uuid.uuid4(),
                    category=Category.COLLECTION_CASE,
                    scope={"case_id": f"C-{n}"},
                    rule="collection_case.retention",
                    legal_basis="GDPR art. 17(1)(a)",
                    due_at=now,
                    executed_at=now,
                ),
            )
        )
    return items
