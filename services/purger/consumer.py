"""The purger's consumer: ``gallring.lifecycle.v1`` messages become facts and clocks (see
``apply``), a batch per transaction, through the shared :class:`ConsumerLoop` (offsets committed
after the transaction, invalid messages to the dead-letter topic)."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import Engine

from services.purger.apply import apply_messages
from services.purger.settings import PurgerSettings
from shared import topics
from shared.consumer_loop import ConsumerLoop
from shared.contract.lifecycle_message import LifecycleMessage
from shared.engine import RetentionEngine


def lifecycle_consumer(
    db: Engine,
    retention: RetentionEngine,
    settings: PurgerSettings,
    *,
    on_erasable: Callable[[], None],
    on_dead_letter: Callable[[], None] = lambda: None,
) -> ConsumerLoop[LifecycleMessage]:
    """``on_erasable`` is called when a batch made a clock due or erasable at once."""

    def parse(record: ConsumerRecord) -> LifecycleMessage:
        return LifecycleMessage.model_validate_json(record.value)

    async def apply(messages: list[LifecycleMessage]) -> None:
        applied = await asyncio.to_thread(
            apply_messages, db, retention, messages, datetime.now(UTC)
        )
        if applied.erasable_clocks:
            on_erasable()

    return ConsumerLoop(
        "purger",
        settings.kafka,
        (topics.LIFECYCLE,),
        group_id=settings.purger_consumer_group,
        max_records=settings.purger_max_poll_records,
        parse=parse,
        apply=apply,
        on_dead_letter=on_dead_letter,
    )
