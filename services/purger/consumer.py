"""The purger's consumers: lifecycle messages become facts and clocks, and what the API passes
on through ``gallring.erasure-confirmations.v1`` (systems' confirmations, an admin's request for
a command again) is applied, a batch per transaction through the shared :class:`ConsumerLoop`
(offsets committed after the transaction, invalid messages to the dead-letter topic). A record
is decoded by its topic's schema; what is done with it is the handler table's (``handlers.py``).

Two consumers, each in a group of its own (:data:`LANES`): one for
``gallring.lifecycle-immediate.v1``, the events the notice promises to act on at once, and one
for everything else, so that an unsubscribe is applied (and its erasure swept) within a batch
or two however long a back-fill queued on ``gallring.lifecycle.v1`` is."""

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from sqlalchemy import Engine

from services.purger.handlers import Incoming, handle_batch
from services.purger.settings import PurgerSettings
from services.purger.sweep import sweep_subjects
from shared.domain.contract.erasure_messages import ERASURE_REQUEST
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.messaging import topics
from shared.messaging.consumer_loop import ConsumerLoop

#: What each topic's records are.
DECODERS: dict[str, Callable[[bytes], Incoming]] = {
    topics.LIFECYCLE: LifecycleMessage.from_json,
    topics.LIFECYCLE_IMMEDIATE: LifecycleMessage.from_json,
    topics.ERASURE_CONFIRMATIONS: ERASURE_REQUEST.validate_json,
}
TOPICS = tuple(DECODERS)
#: The purger's consumers: their topics, and what their group is called after the purger's own.
LANES: dict[str, tuple[tuple[str, ...], str]] = {
    "purger": ((topics.LIFECYCLE, topics.ERASURE_CONFIRMATIONS), ""),
    "purger-immediate": ((topics.LIFECYCLE_IMMEDIATE,), "-immediate"),
}


def parse(record: ConsumerRecord) -> Incoming:
    return DECODERS[record.topic](record.value)


def lifecycle_consumers(
    db: Engine,
    retention: RetentionEngine,
    settings: PurgerSettings,
    *,
    on_erasable: Callable[[], None],
    on_erased: Callable[[int], None] = lambda _: None,
    on_dead_letter: Callable[[], None] = lambda: None,
    on_unregistered_confirmations: Callable[[int], None] = lambda _: None,
) -> list[ConsumerLoop[Incoming]]:
    """One consumer per lane (:data:`LANES`). ``on_erasable`` is called when a batch made a
    clock due or erasable at once; ``on_erased`` with how many clocks the immediate lane erased
    itself; ``on_unregistered_confirmations`` with how many confirmations from systems the
    register does not know a batch recorded, when it recorded any."""

    async def apply_immediate(items: list[Incoming]) -> None:
        """As :func:`apply`, then the batch's own subjects swept at once: a sweep under way may
        be working through a back-fill's due clocks, which come before an unsubscribe's."""
        now = datetime.now(UTC)
        applied = await asyncio.to_thread(handle_batch, db, retention, items, now)
        if applied.erasable_clocks:
            subjects = {item.subject for item in items if isinstance(item, LifecycleMessage)}
            on_erased(await asyncio.to_thread(sweep_subjects, db, retention, now, subjects))
            on_erasable()  # what it could not take (held by another transaction) the sweep does

    async def apply(items: list[Incoming]) -> None:
        applied = await asyncio.to_thread(handle_batch, db, retention, items, datetime.now(UTC))
        if applied.erasable_clocks:
            on_erasable()
        if applied.unregistered_confirmations:
            on_unregistered_confirmations(applied.unregistered_confirmations)

    return [
        ConsumerLoop(
            name,
            settings.kafka,
            lane_topics,
            group_id=settings.purger_consumer_group + group_suffix,
            max_records=settings.purger_max_poll_records,
            parse=parse,
            apply=apply_immediate if topics.LIFECYCLE_IMMEDIATE in lane_topics else apply,
            on_dead_letter=on_dead_letter,
        )
        for name, (lane_topics, group_suffix) in LANES.items()
    ]
