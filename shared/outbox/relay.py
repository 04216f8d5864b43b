"""The outbox relay: publishes accepted events to Kafka, at least once, in order per subject.

Runs as a task in every process that writes the outbox (API and purger), but only the holder of
a lease publishes: parallel relays would each send their share of a subject's events and
reorder them. A relay that dies loses its lease with it (:mod:`shared.outbox.lease`) and another
takes over within a round, sending again what is still in the outbox: consumers dedupe by event
id. A row is deleted only after the broker acknowledged it (acks=all); while the broker is away
the relay backs off and retries, and the services keep writing to the outbox.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import Engine, delete, select

from shared import topics
from shared.database import one_of
from shared.kafka import TopicsNotCreated, ensure_topics, make_producer, partition_for
from shared.outbox.lease import PublishingLease
from shared.outbox.metrics import OutboxMetrics
from shared.settings import KafkaSettings, RelaySettings
from shared.tables.outbox import OutboxMessage

log = logging.getLogger(__name__)
PRODUCER_STOP_SECONDS = 5.0
_outbox = OutboxMessage.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _Pending:
    id: int
    topic: str
    key: str
    value: str
    headers: str


class PublishError(Exception):
    """Some messages of a round were not acknowledged; they are sent again later."""


class OutboxRelay:
    def __init__(
        self,
        db_engine: Engine,
        kafka: KafkaSettings,
        settings: RelaySettings,
        metrics: OutboxMetrics,
        *,
        holder: str | None = None,
    ) -> None:
        self._db = db_engine
        self._kafka = kafka
        self._settings = settings
        self._metrics = metrics
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._lease = PublishingLease(db_engine, self.holder, settings.lease_seconds)
        self._producer: AIOKafkaProducer | None = None
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Publish until :meth:`stop`, backing off while the broker cannot be reached."""
        backoff = self._settings.poll_interval_seconds
        try:
            while not self._stopping.is_set():
                try:
                    published = await self.publish_once()
                except Exception as error:  # noqa: BLE001 - the relay must outlive any failure
                    self._metrics.publish_failures.inc()
                    log.warning(
                        "outbox relay: publishing failed (%s); retrying in %.1fs",
                        # Only the type of an error that could carry a message's content.
                        error if isinstance(error, TopicsNotCreated) else type(error).__name__,
                        backoff,
                    )
                    await self._drop_producer()
                    await self._pause(backoff)
                    backoff = min(backoff * 2, self._settings.max_backoff_seconds)
                    continue
                backoff = self._settings.poll_interval_seconds
                if published < self._settings.batch_size:
                    await self._pause(self._settings.poll_interval_seconds)
        finally:
            await self.close()

    def stop(self) -> None:
        """Finish the current round, then leave :meth:`run`, handing the lease on."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop the producer and hand the lease on, as :meth:`run` does when it leaves (for a
        relay driven by :meth:`publish_once`; a running :meth:`run` is stopped by :meth:`stop`)."""
        await self._drop_producer()
        await asyncio.to_thread(self._release_lease)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def publish_once(self) -> int:
        """One round: publish the next batch if this relay holds the lease; how many were sent."""
        if not await asyncio.to_thread(self._hold_lease):
            return 0
        producer = self._producer
        if producer is None:
            producer = await self._start_producer()  # and create missing topics
            # That may have taken longer than the lease (a slow broker): another relay may hold
            # it now, and the round below must start with the lease fresh.
            if not await asyncio.to_thread(self._hold_lease):
                await self._drop_producer()  # a relay without the lease holds no connection
                return 0
        pending = await asyncio.to_thread(self._next_batch)
        if not pending:
            return 0
        # A round must end well within the lease, or another relay could take over and send
        # the same rows while ours are still in flight.
        async with asyncio.timeout(self._settings.lease_seconds / 2):
            return await self._publish(producer, pending)

    async def _publish(self, producer: AIOKafkaProducer, pending: list[_Pending]) -> int:
        sends = await _send_in_batches(producer, pending)
        results = await asyncio.gather(*(sent for _, sent in sends), return_exceptions=True)
        # No message of a key in a failed batch is marked, not even one acknowledged, so they are
        # all sent again, in order. (Without idempotence a retried batch may still land after a
        # later one of the same partition; with it, as on a real cluster, Kafka keeps the order.)
        failed_keys = {
            message.key
            for (messages, _), result in zip(sends, results, strict=True)
            if isinstance(result, BaseException)
            for message in messages
        }
        published = [message for message in pending if message.key not in failed_keys]
        acknowledged = [message.id for message in published]
        log.debug(
            "outbox relay: %d sent, %d acknowledged, %d key(s) failed",
            len(pending),
            len(acknowledged),
            len(failed_keys),
        )
        if acknowledged:
            await asyncio.to_thread(self._delete_published, acknowledged)
            for topic, count in Counter(message.topic for message in published).items():
                self._metrics.published.labels(topic).inc(count)
        if failed_keys:
            raise PublishError(f"{len(pending) - len(acknowledged)} message(s) not acknowledged")
        return len(pending)

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = make_producer(self._kafka)
        await producer.start()
        self._producer = producer
        await ensure_topics(self._kafka, topics.ALL_TOPICS)
        return producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), timeout=PRODUCER_STOP_SECONDS)
            except Exception:  # noqa: BLE001 - it is being thrown away
                log.debug("outbox relay: stopping a failed producer failed too")

    def _hold_lease(self) -> bool:
        return self._lease.hold()

    def _release_lease(self) -> None:
        self._lease.release()

    def _next_batch(self) -> list[_Pending]:
        with self._db.connect() as connection:
            rows = connection.execute(
                select(
                    _outbox.c.id,
                    _outbox.c.topic,
                    _outbox.c.message_key,
                    _outbox.c.value,
                    _outbox.c.headers,
                )
                .order_by(_outbox.c.id)
                .limit(self._settings.batch_size)
            ).all()
            return [_Pending(*row) for row in rows]

    def _delete_published(self, ids: list[int]) -> None:
        """Published rows go: they carry event payloads, which must not outlive their use."""
        with self._db.begin() as connection:
            connection.execute(delete(_outbox).where(one_of(connection, _outbox.c.id, ids)))


@dataclass(slots=True)
class _Batch:
    topic: str
    partition: int
    builder: BatchBuilder
    messages: list[_Pending]


async def _send_in_batches(
    producer: AIOKafkaProducer, pending: list[_Pending]
) -> list[tuple[list[_Pending], "asyncio.Future[object]"]]:
    """Hand ``pending`` to the producer as whole batches rather than message by message (a
    message then costs a tenth as much), in outbox order within each partition. Keys go to the
    partitions the producer's own partitioner would pick."""
    batches: dict[tuple[str, int], list[_Batch]] = {}
    partitions_of: dict[str, list[int]] = {}
    for message in pending:
        if message.topic not in partitions_of:
            partitions_of[message.topic] = sorted(await producer.partitions_for(message.topic))
        partitions = partitions_of[message.topic]
        partition = partition_for(message.key.encode(), partitions)
        queue = batches.setdefault((message.topic, partition), [])
        record = _record(message)
        if not queue or queue[-1].builder.append(**record) is None:  # none yet, or full
            queue.append(_Batch(message.topic, partition, producer.create_batch(), []))
            queue[-1].builder.append(**record)  # the first record of a batch always fits
        queue[-1].messages.append(message)
    # A partition's next batch is taken only once its last one is acknowledged: the first
    # batch of every partition goes first, so that those waits overlap. A batch the producer
    # refuses (an earlier one of its partition failed) fails with the rest of its partition,
    # unsent: a later batch must not overtake it.
    sends = []
    refused: dict[tuple[str, int], Exception] = {}
    for wave in itertools.zip_longest(*batches.values()):
        for batch in wave:
            if batch is None:
                continue
            where = (batch.topic, batch.partition)
            sent: asyncio.Future[object] = asyncio.get_running_loop().create_future()
            if where in refused:
                sent.set_exception(refused[where])
            else:
                try:
                    sent = await producer.send_batch(
                        batch.builder, batch.topic, partition=batch.partition
                    )
                except KafkaError as error:
                    refused[where] = error
                    sent.set_exception(error)
            sends.append((batch.messages, sent))
    return sends


def _record(message: _Pending) -> dict[str, Any]:
    headers = orjson.loads(message.headers)
    return {
        "key": message.key.encode(),
        "value": message.value.encode(),
        "timestamp": None,
        "headers": [(name, value.encode()) for name, value in headers.items()],
    }
