"""The notifier's consumer: disclosures from ``gallring.lifecycle.v1``, executed erasures from
``gallring.erasures.v1`` and the API's commands from ``gallring.notification-commands.v1``, a
batch per transaction through the shared :class:`ConsumerLoop`."""

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import Engine

from services.notifier.apply import HeardExecuted, Incoming, apply_incoming
from services.notifier.settings import NotifierSettings
from shared.domain.contract.erasure_messages import ERASURE_EVENT, ErasureConfirmed
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.notification_messages import NOTIFICATION_COMMAND
from shared.messaging import topics
from shared.messaging.consumer_loop import ConsumerLoop

_PSEUDONYM = re.compile(rb"^[0-9a-f]{64}$")
TOPICS = (topics.LIFECYCLE, topics.ERASURES, topics.NOTIFICATION_COMMANDS)


def parse(record: ConsumerRecord) -> Incoming:
    if record.topic == topics.LIFECYCLE:
        return LifecycleMessage.from_json(record.value)
    if record.topic == topics.ERASURES:
        event = ERASURE_EVENT.validate_json(record.value)
        if isinstance(event, ErasureConfirmed):
            return event  # for ops; nothing for the notifier to do
        if record.key is None or not _PSEUDONYM.match(record.key):
            raise ValueError("an erasure message must be keyed by the subject pseudonym")
        return HeardExecuted(record.key.decode(), event)
    return NOTIFICATION_COMMAND.validate_json(record.value)


def notifier_consumer(
    db: Engine,
    settings: NotifierSettings,
    *,
    on_new_notifications: Callable[[], None],
    on_dead_letter: Callable[[], None] = lambda: None,
) -> ConsumerLoop[Incoming]:
    async def apply(items: list[Incoming]) -> None:
        created = await asyncio.to_thread(apply_incoming, db, settings, items, datetime.now(UTC))
        if created:
            on_new_notifications()

    return ConsumerLoop(
        "notifier",
        settings.kafka,
        TOPICS,
        group_id=settings.notifier_consumer_group,
        max_records=settings.notifier_max_poll_records,
        parse=parse,
        apply=apply,
        on_dead_letter=on_dead_letter,
    )
