"""The notifier's consumer: disclosures from ``gallring.lifecycle.v1``, executed erasures from
``gallring.erasures.v1`` and the API's commands from ``gallring.notification-commands.v1``, a
batch per transaction through the shared :class:`ConsumerLoop`. A record is decoded by its
topic's schema; what is done with it is the handler table's (``handlers.py``)."""

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import Engine

from services.notifier.apply import HeardExecuted
from services.notifier.handlers import Incoming, handle_batch
from services.notifier.settings import NotifierSettings
from shared.domain.contract.erasure_messages import ERASURE_EVENT, ErasureConfirmed
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.contract.notification_messages import NOTIFICATION_COMMAND
from shared.messaging import topics
from shared.messaging.consumer_loop import ConsumerLoop

_PSEUDONYM = re.compile(rb"^[0-9a-f]{64}$")


def _erasure(record: ConsumerRecord) -> Incoming:
    event = ERASURE_EVENT.validate_json(record.value)
    if isinstance(event, ErasureConfirmed):
        return event  # keyed by the erasure id, not a subject
    if record.key is None or not _PSEUDONYM.match(record.key):
        raise ValueError("an erasure message must be keyed by the subject pseudonym")
    return HeardExecuted(record.key.decode(), event)


#: What each topic's records are.
DECODERS: dict[str, Callable[[ConsumerRecord], Incoming]] = {
    topics.LIFECYCLE: lambda record: LifecycleMessage.from_json(record.value),
    topics.ERASURES: _erasure,
    topics.NOTIFICATION_COMMANDS: lambda record: NOTIFICATION_COMMAND.validate_json(record.value),
}
TOPICS = tuple(DECODERS)


def parse(record: ConsumerRecord) -> Incoming:
    return DECODERS[record.topic](record)


def notifier_consumer(
    db: Engine,
    settings: NotifierSettings,
    *,
    on_new_notifications: Callable[[], None],
    on_dead_letter: Callable[[], None] = lambda: None,
) -> ConsumerLoop[Incoming]:
    async def apply(items: list[Incoming]) -> None:
        created = await asyncio.to_thread(handle_batch, db, settings, items, datetime.now(UTC))
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
