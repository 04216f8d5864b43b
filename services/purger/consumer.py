"""Consuming ``gallring.lifecycle.v1``: each batch of messages is applied in one database
transaction, and its offsets are committed only after that transaction committed.

A crash between the two redelivers the batch, which the dedupe on event ids absorbs; a rebalance
does the same. A message that is not a valid v1 lifecycle message goes to ``gallring.dlq.v1``
(the original bytes, the reason in a header) before its offset is committed, and consumption goes
on with the next one.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError
from pydantic import ValidationError
from sqlalchemy import Engine

from services.purger.apply import apply_messages
from services.purger.settings import PurgerSettings
from shared import topics
from shared.contract.errors import describe
from shared.contract.lifecycle_message import LifecycleMessage
from shared.engine import RetentionEngine
from shared.kafka import ensure_topics, make_consumer, make_producer

log = logging.getLogger(__name__)
HEADER_REASON = "reason"
HEADER_SOURCE = "source"  # topic/partition/offset of the original
RETRY_SECONDS = 1.0


class LifecycleConsumer:
    def __init__(
        self,
        db: Engine,
        retention: RetentionEngine,
        settings: PurgerSettings,
        *,
        on_erasable: Callable[[], None],
        on_dead_letter: Callable[[], None] = lambda: None,
    ) -> None:
        self._db = db
        self._retention = retention
        self._settings = settings
        self._on_erasable = on_erasable
        self._on_dead_letter = on_dead_letter
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, then leave :meth:`run`."""
        self._stopping.set()

    async def run(self) -> None:
        kafka = self._settings.kafka
        await ensure_topics(kafka, topics.ALL_TOPICS)
        consumer = make_consumer(
            kafka, topics.LIFECYCLE, group_id=self._settings.purger_consumer_group
        )
        producer = make_producer(kafka)
        await consumer.start()
        try:
            await producer.start()
            try:
                while not self._stopping.is_set():
                    batch = await consumer.getmany(
                        timeout_ms=500, max_records=self._settings.purger_max_poll_records
                    )
                    if batch:
                        await self._handle(consumer, producer, batch)
            finally:
                await producer.stop()
        finally:
            await consumer.stop()

    async def _handle(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
    ) -> None:
        messages: list[LifecycleMessage] = []
        try:
            for records in batch.values():
                for record in records:
                    message = await self._parse_or_dead_letter(producer, record)
                    if message is not None:
                        messages.append(message)
            applied = None
            if messages:
                applied = await asyncio.to_thread(
                    apply_messages, self._db, self._retention, messages, datetime.now(UTC)
                )
        except Exception as error:  # noqa: BLE001 - retried: nothing is committed, nothing lost
            log.warning(
                "purger: applying %d message(s) failed (%s); reading them again in %.0fs",
                sum(len(records) for records in batch.values()),
                type(error).__name__,
                RETRY_SECONDS,
            )
            for partition, records in batch.items():
                consumer.seek(partition, records[0].offset)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), RETRY_SECONDS)
            return
        try:
            await consumer.commit(
                {partition: records[-1].offset + 1 for partition, records in batch.items()}
            )
        except CommitFailedError:
            # A rebalance took the partitions away; their next owner reads the batch again and
            # the dedupe skips what we applied.
            log.info("purger: offsets not committed after a rebalance; the batch is redelivered")
        if applied is not None and applied.erasable_clocks:
            self._on_erasable()

    async def _parse_or_dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord
    ) -> LifecycleMessage | None:
        try:
            if record.value is None:
                raise ValueError("the message has no value")
            return LifecycleMessage.model_validate_json(record.value)
        except (ValidationError, ValueError) as error:
            reason = (
                "; ".join(str(problem) for problem in describe(error))
                if isinstance(error, ValidationError)
                else str(error)
            )
        source = f"{record.topic}/{record.partition}/{record.offset}"
        # Awaited: the bad message must be on the DLQ before its offset is committed.
        await (
            await producer.send(
                topics.DEAD_LETTERS,
                value=record.value,
                key=record.key,
                headers=[(HEADER_REASON, reason.encode()), (HEADER_SOURCE, source.encode())],
            )
        )
        log.warning(
            "purger: message %s is not a v1 lifecycle message (%s); sent to %s",
            source,
            reason,
            topics.DEAD_LETTERS,
        )
        self._on_dead_letter()
        return None
