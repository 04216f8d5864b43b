"""The outbox relay: publishes accepted events to Kafka, at least once, in order per subject.

Runs as a task in every process that writes the outbox (API and purger), but only the holder of
a lease publishes: parallel relays would each send their share of a subject's events and
reorder them. A relay that dies loses its lease with it (:mod:`shared.messaging.outbox.lease`)
and another takes over within a round, sending again what is still in the outbox: consumers
dedupe by event id. With ``GALLRING_RELAY_SHARDED`` (PostgreSQL) the relays share the
publishing instead, each holding the leases of some buckets of keys
(:mod:`shared.messaging.outbox.bucket_lease`), so that a subject's messages still go out through
one relay at a time. While the broker is away the relay backs off and retries, and the services
keep writing to the outbox.

A row the broker acknowledged (acks=all) moves from the outbox to ``published_message``, where
it is kept for ``keep_published_seconds`` before it is deleted: a broker can lose what it
acknowledged (the embedded broker keeps nothing on disk and forgets all at a restart; a real
cluster after an unclean leader election). The relay knows, per partition, the offset of a
message the broker acknowledged (``relay_watermark``: the first of the last batch); a partition
that ends at or before it, a topic that is gone, or a new batch put at or below it means the
broker lost messages, and the relay moves the kept rows of that topic back into the outbox under
their own ids, so that they are published again, oldest first, ahead of newer ones. Consumers
see some twice and skip them by event id. What the broker lost that was older than the window
is not kept: choose it longer than consumers may lag.
"""

import asyncio
import contextlib
import itertools
import logging
import os
import socket
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.structs import RecordMetadata
from sqlalchemy import (
    ARRAY,
    BigInteger,
    Engine,
    Integer,
    bindparam,
    case,
    delete,
    func,
    insert,
    literal,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

from shared.messaging import topics
from shared.messaging.kafka import (
    TopicsNotCreated,
    ensure_topics,
    make_offsets_reader,
    make_producer,
    partition_for,
)
from shared.messaging.outbox.bucket_lease import BUCKET_LOCK_CLASS, BucketLeases
from shared.messaging.outbox.lease import PublishingLease
from shared.messaging.outbox.metrics import OutboxMetrics
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import one_of
from shared.storage.pruning import delete_in_batches
from shared.storage.tables.outbox import (
    URGENT,
    OutboxMessage,
    PublishedMessage,
    RelayWatermark,
    bucket_of,
)
from shared.storage.tables.table import table_of
from shared.storage.tables.types import UtcDateTime

log = logging.getLogger(__name__)
PRODUCER_STOP_SECONDS = 5.0
_outbox = table_of(OutboxMessage)
_published = table_of(PublishedMessage)
_watermark = table_of(RelayWatermark)
#: What moves between the outbox and the kept published messages.
_MOVED = ["id", "event_id", "topic", "message_key", "value", "headers", "created_at"]
PRUNE_EVERY_SECONDS = 60.0  # published rows past the window go, by the lease holder
#: The next messages to publish, oldest first.
_NEXT = (
    select(_outbox.c.id, _outbox.c.topic, _outbox.c.message_key, _outbox.c.value, _outbox.c.headers)
    .order_by(_outbox.c.id)
    .limit(bindparam("limit"))
)
_IN_BUCKETS = bucket_of(_outbox.c.message_key).in_(bindparam("buckets", expanding=True))
#: Sharing relays: the oldest messages of each of the buckets held after the id given with it,
#: up to ``each`` a bucket (an index range per bucket: ``ix_outbox_message_bucket``).
_bucket = (
    func.unnest(
        bindparam("buckets", type_=ARRAY(Integer)), bindparam("after", type_=ARRAY(BigInteger))
    )
    .table_valued("bucket", "after")
    .render_derived()
    .alias("held")
)
_of_bucket = (
    _NEXT.where(
        bucket_of(_outbox.c.message_key) == _bucket.c.bucket, _outbox.c.id > _bucket.c.after
    )
    .limit(bindparam("each"))
    .lateral("of_bucket")
)
_NEXT_OF_BUCKETS = (
    select(*_of_bucket.c, _bucket.c.bucket)
    .select_from(_bucket.join(_of_bucket, true()))
    .order_by(_of_bucket.c.id)
)
#: A transaction's lock: relays that found the broker lost messages move them back one at a time.
_MOVING_BACK = func.pg_advisory_xact_lock(BUCKET_LOCK_CLASS, -1)


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
        self._buckets: BucketLeases | None = None  # sharing the publishing: the buckets held
        if settings.sharded and db_engine.dialect.name == "postgresql":
            self._buckets = BucketLeases(db_engine, self.holder, settings.lease_seconds)
        elif settings.sharded:
            log.warning(
                "outbox relay: GALLRING_RELAY_SHARDED is for PostgreSQL; on %s one relay "
                "publishes the whole outbox",
                db_engine.dialect.name,
            )
        self._producer: AIOKafkaProducer | None = None
        self._offsets: AIOKafkaConsumer | None = None  # asks the broker where partitions end
        # Per partition, the offset of a message the broker acknowledged (as in
        # relay_watermark); read from the database whenever this relay starts publishing.
        self._acknowledged: dict[TopicPartition, int] = {}
        self._next_loss_check = 0.0
        self._holding = False  # held the lease at the last round
        self._last_round_failed = False
        self._next_prune = 0.0
        self._pruning: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._prune_halt = threading.Event()  # read by the prune's thread

    async def run(self) -> None:
        """Publish until :meth:`stop`, backing off while the broker cannot be reached."""
        backoff = self._settings.poll_interval_seconds
        try:
            while not self._stopping.is_set():
                try:
                    published = await self.publish_once()
                except Exception as error:  # noqa: BLE001 - the relay must outlive any failure
                    self._last_round_failed = True
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
                self._last_round_failed = False
                backoff = self._settings.poll_interval_seconds
                await self._prune_when_due()
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
        self._prune_halt.set()
        if self._pruning is not None:
            await asyncio.gather(self._pruning, return_exceptions=True)
        await self._drop_producer()
        await asyncio.to_thread(self._release_lease)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)

    async def publish_once(self) -> int:
        """One round: publish the next batch if this relay holds the lease; how many were sent."""
        if not await asyncio.to_thread(self._hold_lease):
            self._holding = False
            return 0
        producer = self._producer
        if producer is None:
            producer = await self._start_producer()  # and create missing topics
            # The lease may have gone while the producer started (its connection broke): the
            # round below must start with it held.
            if not await asyncio.to_thread(self._hold_lease):
                self._holding = False
                await self._drop_producer()  # a relay without the lease holds no connection
                return 0
            self._holding = False  # a new connection: read the watermarks, check for losses
        if not self._holding:
            # Another relay may have published since this one last did: its watermarks count.
            self._acknowledged = await asyncio.to_thread(self._read_watermarks)
            self._next_loss_check = 0.0
            self._holding = True
        # A round ends within a bound, so that a relay whose lease went meanwhile stops soon.
        async with asyncio.timeout(self._settings.lease_seconds / 2):
            if time.monotonic() >= self._next_loss_check:
                await self._republish_what_the_broker_lost(producer)
                self._next_loss_check = time.monotonic() + self._settings.loss_check_seconds
            pending = await asyncio.to_thread(self._next_batch)
            if not pending:
                return 0
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
        # Per partition, the messages the broker took and the offset of its last batch.
        placed: dict[TopicPartition, list[_Pending]] = {}
        offsets: dict[TopicPartition, int] = {}
        lost: dict[TopicPartition, int] = {}
        for (messages, _), result in zip(sends, results, strict=True):
            if not isinstance(result, RecordMetadata) or messages[0].key in failed_keys:
                continue
            where = TopicPartition(result.topic, result.partition)
            if result.offset <= self._acknowledged.get(where, -1):
                # The broker put this batch where it had put one it acknowledged: it lost that.
                lost[where] = result.offset
            placed.setdefault(where, []).extend(messages)
            offsets[where] = max(offsets.get(where, -1), result.offset)
        log.debug(
            "outbox relay: %d sent, %d acknowledged, %d key(s) failed",
            len(pending),
            len(published),
            len(failed_keys),
        )
        if placed:
            await asyncio.to_thread(self._mark_published, placed, offsets)
            for topic, count in Counter(message.topic for message in published).items():
                self._metrics.published.labels(topic).inc(count)
        if lost and self._finds_losses:
            await self._publish_again(lost)
        elif lost:  # the holder of bucket 0 finds it by the watermarks, in its next check
            for where in lost:
                self._acknowledged.pop(where, None)
        if failed_keys:
            raise PublishError(f"{len(pending) - len(published)} message(s) not acknowledged")
        return len(pending)

    async def _republish_what_the_broker_lost(self, producer: AIOKafkaProducer) -> None:
        """Ask the broker where each partition the relays published to ends; mark the kept rows
        of those that end at or before a message it acknowledged to be published again. Sharing
        relays: the holder of bucket 0 alone, by what they all acknowledged (the watermarks),
        so that a loss is moved back once, not once by each relay that saw it."""
        if self._buckets is not None:
            if not self._finds_losses:
                return
            self._acknowledged = await asyncio.to_thread(self._read_watermarks)
        if not self._acknowledged:
            return
        # All topics, without naming any: asking for a topic by name creates it where the
        # broker creates topics on demand (Tansu does, with its own partition count).
        cluster = await producer.client.fetch_all_metadata()
        present = {
            where
            for where in self._acknowledged
            if where.partition in (cluster.partitions_for_topic(where.topic) or ())
        }
        if any(where.topic not in cluster.topics() for where in self._acknowledged):
            await ensure_topics(self._kafka, topics.ALL_TOPICS)  # as Gallring makes them
        ends: dict[TopicPartition, int] = {}
        if present:
            if self._offsets is None:
                self._offsets = make_offsets_reader(self._kafka)
                await self._offsets.start()
            ends = await self._offsets.end_offsets(sorted(present))
        lost = {
            where: ends.get(where, 0)
            for where, acknowledged in self._acknowledged.items()
            if ends.get(where, 0) <= acknowledged
        }
        if lost:
            await self._publish_again(lost)

    async def _publish_again(self, lost: dict[TopicPartition, int]) -> None:
        """The broker lost acknowledged messages of the partitions ``lost`` (the offset where it
        stands now in each): their kept rows are published again, and with a fresh producer,
        whose idea of the topics' partitions is the broker's of now."""
        again = await asyncio.to_thread(self._mark_unpublished, list(lost))
        for topic, count in again.items():
            partitions = sorted(where.partition for where in lost if where.topic == topic)
            if count is None:
                log.info(
                    "outbox relay: the broker lost messages of %s (partition(s) %s); another "
                    "relay has already moved them back to be published again",
                    topic,
                    ", ".join(map(str, partitions)),
                )
                continue
            log.warning(
                "outbox relay: the broker lost messages of %s it had acknowledged (partition(s) "
                "%s end at or before them); publishing again the %d message(s) of the topic the "
                "relay kept",
                topic,
                ", ".join(map(str, partitions)),
                count,
            )
            self._metrics.republished.labels(topic).inc(count)
        self._acknowledged = {
            where: offset
            for where, offset in self._acknowledged.items()
            if where.topic not in again
        }
        await self._drop_producer()

    async def _start_producer(self) -> AIOKafkaProducer:
        producer = make_producer(self._kafka)
        await producer.start()
        self._producer = producer
        await ensure_topics(self._kafka, topics.ALL_TOPICS)
        return producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        offsets, self._offsets = self._offsets, None
        for client in (producer, offsets):
            if client is not None:
                try:
                    await asyncio.wait_for(client.stop(), timeout=PRODUCER_STOP_SECONDS)
                except Exception:  # noqa: BLE001 - it is being thrown away
                    log.debug("outbox relay: stopping a failed client failed too")

    @property
    def _finds_losses(self) -> bool:
        """Whether this relay moves back what the broker lost: the one publishing, or among
        sharing relays the holder of bucket 0."""
        return self._buckets is None or 0 in self._buckets.held

    def _hold_lease(self) -> bool:
        if self._buckets is None:
            return self._lease.hold()
        # A failed round's producer may still deliver: its buckets stay until a round succeeds.
        held = self._buckets.hold(now=time.monotonic(), may_hand_on=not self._last_round_failed)
        self._metrics.buckets_held.set(len(held))
        return bool(held)

    def _release_lease(self) -> None:
        if self._buckets is None:
            self._lease.release()
            return
        self._buckets.release()
        self._metrics.buckets_held.set(0)

    def _next_batch(self) -> list[_Pending]:
        """The oldest urgent messages, then the oldest of all (up to a batch of each): an
        unsubscribe goes out in the next round however long the backlog ahead of it is. Each
        topic keeps its order: urgent topics' messages are all urgent, and the urgent ones among
        the oldest of all are among the oldest urgent ones, taken first."""
        limit = self._settings.batch_size
        with self._db.connect() as connection:
            if self._buckets is None:
                urgent = connection.execute(_NEXT.where(URGENT), {"limit": limit})
                pending = [_Pending(*row) for row in urgent]
                oldest = [_Pending(*row) for row in connection.execute(_NEXT, {"limit": limit})]
            else:
                buckets = sorted(self._buckets.held)
                urgent = connection.execute(
                    _NEXT.where(URGENT, _IN_BUCKETS), {"limit": limit, "buckets": buckets}
                )
                pending = [_Pending(*row) for row in urgent]
                oldest = _oldest_of_buckets(connection, buckets, limit)
            taken = {message.id for message in pending}
            pending += [message for message in oldest if message.id not in taken]
            return pending

    def _mark_published(
        self, placed: dict[TopicPartition, list[_Pending]], offsets: dict[TopicPartition, int]
    ) -> None:
        """Rows the broker acknowledged move from the outbox to the kept published messages
        (in the database, not through here); each partition's watermark moves to its last
        batch's offset."""
        ids = [message.id for messages in placed.values() for message in messages]
        now = datetime.now(UTC)
        with self._db.begin() as connection:
            chosen = one_of(connection, _outbox.c.id, ids)
            outbox_columns = [_outbox.c[column] for column in _MOVED]
            connection.execute(
                insert(_published).from_select(
                    [*_MOVED, "published_at"],
                    select(*outbox_columns, literal(now, UtcDateTime())).where(chosen),
                )
            )
            connection.execute(delete(_outbox).where(chosen))
            # In one order, as sharing relays write the same partitions' rows at once. This
            # batch's offset, not this relay's highest: after a loss another relay may have
            # reset the watermark, and a mark from before it would make the loss seem new.
            for where, offset in sorted(offsets.items()):
                _set_watermark(connection, where, offset)
                self._acknowledged[where] = max(offset, self._acknowledged.get(where, -1))

    def _mark_unpublished(self, lost: list[TopicPartition]) -> dict[str, int | None]:
        """The kept messages of the topics of the ``lost`` partitions go back into the outbox
        under their own ids (ahead of newer rows), to be published again; how many per topic
        (None: another relay had moved them back already). Whole topics: which partition a kept
        message went to is not recorded (it would cost every round a write per partition), and
        consumers skip what they had by event id."""
        again: dict[str, int | None] = {}
        with self._db.begin() as connection:
            if self._buckets is not None:  # sharing relays that saw the loss, one at a time
                connection.execute(select(_MOVING_BACK))
            for topic in sorted({where.topic for where in lost}):
                if self._moved_back_by_another(connection, [w for w in lost if w.topic == topic]):
                    again[topic] = None
                    continue
                again[topic] = _move_back(connection, topic)
                connection.execute(delete(_watermark).where(_watermark.c.topic == topic))
        return again

    def _moved_back_by_another(self, connection: Any, lost: list[TopicPartition]) -> bool:
        """Whether another relay moved these partitions' kept messages back since this one
        learned their watermarks: it deleted them, and watermarks never go down otherwise."""
        for where in lost:
            stored = connection.execute(
                select(_watermark.c.acknowledged_offset).where(
                    _watermark.c.topic == where.topic,
                    _watermark.c.kafka_partition == where.partition,
                )
            ).scalar_one_or_none()
            known = self._acknowledged.get(where)
            if known is not None and (stored is None or stored < known):
                return True
        return False

    def _read_watermarks(self) -> dict[TopicPartition, int]:
        with self._db.connect() as connection:
            rows = connection.execute(select(_watermark)).all()
        return {TopicPartition(topic, partition): end for topic, partition, end in rows}

    async def _prune_when_due(self) -> None:
        """The lease holder deletes published rows past the window (they carry event payloads,
        which must not outlive their use), beside its rounds: after a back-fill that can be
        a million rows."""
        if not self._holding or time.monotonic() < self._next_prune:
            return
        if self._buckets is not None and 0 not in self._buckets.held:
            return  # sharing relays: the holder of the first bucket prunes
        if self._pruning is not None and not self._pruning.done():
            return
        # Every minute, or as often as the window if it is shorter.
        every = min(PRUNE_EVERY_SECONDS, max(self._settings.keep_published_seconds, 0.1))
        self._next_prune = time.monotonic() + every
        self._pruning = asyncio.create_task(self._prune(), name="outbox-prune")

    async def _prune(self) -> None:
        cutoff = datetime.now(UTC) - timedelta(seconds=self._settings.keep_published_seconds)
        try:
            pruned = await asyncio.to_thread(
                delete_in_batches,
                self._db,
                _published,
                _published.c.published_at < cutoff,
                order_by=_published.c.published_at,
                halt=self._prune_halt,
            )
        except Exception as error:  # noqa: BLE001 - the next prune tries again
            log.warning(
                "outbox relay: pruning published messages failed (%s)", type(error).__name__
            )
            return
        if pruned:
            log.debug("outbox relay: deleted %d published message(s) past the window", pruned)


def _oldest_of_buckets(connection: Any, buckets: list[int], limit: int) -> list[_Pending]:
    """About ``limit`` of the oldest messages of ``buckets``, each bucket's oldest first (so
    every key's share is the oldest of its own): an even share of each, then more of those
    that had more, so that a backlog in a few buckets still fills the batch."""
    pending: list[_Pending] = []
    after = dict.fromkeys(buckets, 0)  # per bucket still to read, the last id read of it
    while after and len(pending) < limit:
        each = -(-(limit - len(pending)) // len(after))
        rows = connection.execute(
            _NEXT_OF_BUCKETS, {"buckets": list(after), "after": list(after.values()), "each": each}
        )
        read: Counter[int] = Counter()
        for *message, bucket in rows:
            pending.append(_Pending(*message))
            read[bucket] += 1
            after[bucket] = message[0]  # ids ascend within a bucket
        # Only a bucket that gave all it was asked for may have more.
        after = {bucket: last for bucket, last in after.items() if read[bucket] == each}
    return pending


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


def _move_back(connection: Any, topic: str) -> int:
    """The kept messages of ``topic`` back into the outbox, urgent again if the topic is (read
    ahead of the others: a kept message left behind would be overtaken by its subject's newer
    ones); how many. On PostgreSQL in one statement, so that rows another relay marks published
    meanwhile are neither moved nor deleted."""
    of_topic = _published.c.topic == topic
    urgent = literal(topic in topics.URGENT)
    if connection.dialect.name == "postgresql":
        moved = delete(_published).where(of_topic).returning(*_published.c[*_MOVED]).cte("moved")
        back = insert(_outbox).from_select(
            [*_MOVED, "urgent"], select(*moved.c, urgent).order_by(moved.c.id)
        )
        return len(connection.execute(back.returning(_outbox.c.id)).all())
    # SQLite: the first write takes the database's one write lock, which the delete still holds.
    connection.execute(
        insert(_outbox).from_select(
            [*_MOVED, "urgent"],
            select(*_published.c[*_MOVED], urgent).where(of_topic).order_by(_published.c.id),
        )
    )
    # Counted by the delete: an INSERT … SELECT's rowcount is -1 with psycopg.
    return int(connection.execute(delete(_published).where(of_topic)).rowcount)


def _set_watermark(connection: Any, where: TopicPartition, offset: int) -> None:
    """Raise the partition's watermark to ``offset`` (never lower it: sharing relays write it
    in the order their transactions commit, not in their batches' order)."""
    insert = postgresql.insert if connection.dialect.name == "postgresql" else sqlite.insert
    upsert = insert(_watermark).values(
        topic=where.topic, kafka_partition=where.partition, acknowledged_offset=offset
    )
    stored = _watermark.c.acknowledged_offset
    connection.execute(
        upsert.on_conflict_do_update(
            index_elements=[_watermark.c.topic, _watermark.c.kafka_partition],
            set_={"acknowledged_offset": case((stored > offset, stored), else_=offset)},
        )
    )
