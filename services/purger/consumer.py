"""The purger's consumer: ``gallring.lifecycle.v1`` messages become facts and clocks (see
``apply``), and systems' confirmations from ``gallring.erasure-confirmations.v1`` are recorded
(see ``confirmations``), a batch per transaction, through the shared :class:`ConsumerLoop`
(offsets committed after the transaction, invalid messages to the dead-letter topic)."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import Engine

from services.purger.apply import apply_messages
from services.purger.confirmations import record_confirmations
from services.purger.settings import PurgerSettings
from shared.domain.contract.erasure_messages import ConfirmationReported
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.messaging import topics
from shared.messaging.consumer_loop import ConsumerLoop

Incoming = LifecycleMessage | ConfirmationReported
TOPICS = (topics.LIFECYCLE, topics.ERASURE_CONFIRMATIONS)


def parse(record: ConsumerRecord) -> Incoming:
    if record.topic == topics.ERASURE_CONFIRMATIONS:
        return ConfirmationReported.model_validate_json(record.value)
    return LifecycleMessage.from_json(record.value)


def lifecycle_consumer(
    db: Engine,
    retention: RetentionEngine,
    settings: PurgerSettings,
    *,
    on_erasable: Callable[[], None],
    on_dead_letter: Callable[[], None] = lambda: None,
) -> ConsumerLoop[Incoming]:
    """``on_erasable`` is called when a batch made a clock due or erasable at once."""

    async def apply(items: list[Incoming]) -> None:
        now = datetime.now(UTC)
        messages = [item for item in items if isinstance(item, LifecycleMessage)]
        reports = [item for item in items if isinstance(item, ConfirmationReported)]
        if reports:
            await asyncio.to_thread(record_confirmations, db, reports, now)
        if messages:
            applied = await asyncio.to_thread(apply_messages, db, retention, messages, now)
            if applied.erasable_clocks:
                on_erasable()

    return ConsumerLoop(
        "purger",
        settings.kafka,
        TOPICS,
        group_id=settings.purger_consumer_group,
        max_records=settings.purger_max_poll_records,
        parse=parse,
        apply=apply,
        on_dead_letter=on_dead_letter,
    )
