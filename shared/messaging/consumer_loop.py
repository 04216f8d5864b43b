"""The consuming loop every Gallring consumer runs: each batch is applied in one database
transaction, and its offsets are committed only after that transaction committed.

A crash between the two redelivers the batch, which the consumer's dedupe absorbs; a rebalance
does the same: what a loop held for a partition the group took from it (its failures, the
messages it set aside) is dropped, and a batch in hand commits no offset of such a partition
(its new owner reads it again from the last commit; a late commit would skip messages under
the new owner's feet).

A message that cannot be parsed goes to ``gallring.dlq.v1`` (the original bytes, the reason and
the source in headers) before its offset is committed, and consumption goes on.
A batch whose work fails is read again after a pause: nothing is committed, nothing lost. If a
partition's batches fail again and again, and not because the database is away, the messages
are applied one at a time and the one that cannot be applied goes to the dead-letter topic too;
a message set aside is not sent there again when its batch is read once more. ``apply`` may say
at once that a message can never be applied, and why, by raising :class:`Unappliable`: the batch
is then applied one message at a time straight away (no retry rounds), and the message that raises
it alone goes to the dead-letter topic with that reason.

A broker can lose what it held (the embedded broker forgets everything at a restart; a cluster
after an unclean leader election): a partition that ends before the position reached is read
again from its beginning (the dedupe skips what was applied; the relay publishes again what the
broker lost), and a commit the broker does not take within ``COMMIT_SECONDS`` (its topics gone)
ends the consumer: a new one starts, with the topics created again. A loop that has messages
waiting and applies none for ``KafkaSettings.consumer_stall_seconds`` says so (:meth:`stalled`),
and the process is then not ready. A stop is prompt: a commit under way gets
``CLIENT_STOP_SECONDS`` to finish and a dead letter under way is given up (the batch is then
read again at the next start); the clients get ``CLIENT_STOP_SECONDS`` to leave the broker.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.domain.contract.errors import describe
from shared.messaging import topics
from shared.messaging.kafka import ensure_topics, make_consumer, make_producer
from shared.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)
HEADER_REASON = "reason"
HEADER_SOURCE = "source"  # topic/partition/offset of the original
RETRY_SECONDS = 1.0
MAX_BATCH_FAILURES = 3  # then the batch is applied a message at a time to find the bad one
COMMIT_SECONDS = 10.0  # a commit that takes longer: the broker lost the topics or the group
CLIENT_STOP_SECONDS = 5.0  # a client leaving a broker that is gone waits no longer
Parsed = TypeVar("Parsed")
_Result = TypeVar("_Result")


class Unappliable(Exception):
    """Raised by ``apply``: a message of the batch can never be applied, for :attr:`reason` (no
    personal data: it goes into the dead-letter header). Raise it only for a message's own fault;
    the messages applied before it in the batch are applied again, one at a time."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class _ConsumerLost(Exception):
    """The broker would not take what this consumer asked: a new consumer starts."""


class _Stopped(BaseException):  # not an Exception: no handler of failures takes it
    """A stop came while waiting for the broker."""


class ConsumerLoop(Generic[Parsed]):
    """Reads ``topic_names`` as ``group_id``; ``parse`` turns a record into what ``apply`` takes
    (raising ``ValueError`` or ``ValidationError`` for a dead letter), ``apply`` makes a batch
    durable."""

    def __init__(
        self,
        name: str,
        kafka: KafkaSettings,
        topic_names: tuple[str, ...],
        *,
        group_id: str,
        max_records: int,
        parse: Callable[[ConsumerRecord], Parsed],
        apply: Callable[[list[Parsed]], Awaitable[None]],
        on_dead_letter: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = name
        self._kafka = kafka
        self._topic_names = topic_names
        self._group_id = group_id
        self._max_records = max_records
        self._parse_record = parse
        self._apply = apply
        self._on_dead_letter = on_dead_letter
        self._stopping = asyncio.Event()
        # Per partition: its batches failed in a row, not counting outages.
        self._failures: dict[TopicPartition, int] = {}
        self._dead_lettered: set[tuple[str, int, int]] = set()  # not yet committed past
        # The partitions of the batch in hand that the group has not taken away meanwhile.
        self._in_hand: set[TopicPartition] = set()
        # When it last applied a batch or found nothing waiting (monotonic seconds).
        self._progressed_at = time.monotonic()
        self._joined = False  # the current consumer has been given its share of the group

    @property
    def name(self) -> str:
        """What its log lines call it: ``purger``, ``notifier``, ``agent``…"""
        return self._name

    def stop(self) -> None:
        """Finish the batch in hand, then leave :meth:`run`."""
        self._stopping.set()

    def stalled(self) -> bool:
        """Whether messages have waited ``consumer_stall_seconds`` without one applied."""
        return time.monotonic() - self._progressed_at > self._kafka.consumer_stall_seconds

    def joined(self) -> bool:
        """Whether the current consumer has joined its group and been given its partitions:
        before that it reads nothing. Its share may be none (more members than partitions):
        joined all the same, since the group has decided."""
        return self._joined

    async def run(self) -> None:
        """Consume until :meth:`stop`, with a new consumer whenever the broker lost track."""
        while not self._stopping.is_set():
            try:
                await self._consume()
            except (_ConsumerLost, KafkaError, OSError) as error:
                log.warning(
                    "%s: the broker lost track of this consumer (%s); starting another in %.0fs",
                    self._name,
                    error,
                    RETRY_SECONDS,
                )
                await self._pause(RETRY_SECONDS)
            except _Stopped:
                return

    async def _consume(self) -> None:
        self._joined = False  # a new consumer joins the group anew
        await self._until_stopped(ensure_topics(self._kafka, topics.ALL_TOPICS), None)
        consumer = make_consumer(
            self._kafka, *self._topic_names, group_id=self._group_id, listener=_Rebalances(self)
        )
        producer = make_producer(self._kafka)
        try:
            await self._until_stopped(consumer.start(), None)
            await self._until_stopped(producer.start(), None)
            while not self._stopping.is_set():
                # Bounded by a stop too: while the group rebalances, getmany waits for the new
                # assignment past its timeout, for ever if the broker is gone.
                batch = await self._until_stopped(
                    consumer.getmany(timeout_ms=500, max_records=self._max_records), None
                )
                if batch:
                    await self._handle(consumer, producer, batch)
                else:
                    await self._note_idle(consumer)
        finally:
            # Both at once, bounded: leaving a group whose coordinator is gone can take long.
            stopping = [asyncio.ensure_future(client.stop()) for client in (producer, consumer)]
            _, unfinished = await asyncio.wait(stopping, timeout=CLIENT_STOP_SECONDS)
            for task in unfinished:
                task.cancel()
                task.add_done_callback(lambda task: task.cancelled() or task.exception())
            if unfinished:
                log.info("%s: left the broker without waiting for its answer", self._name)

    def _forget(self, partitions: set[TopicPartition]) -> None:
        """Drop what was held for ``partitions``: their failures and the messages set aside.
        Called for partitions revoked (another member reads them now, from the last commit)
        and for partitions assigned (whatever was held for them is from an older owner's
        time: they are read again from the last commit)."""
        self._in_hand -= partitions
        for partition in partitions:
            self._failures.pop(partition, None)
        self._dead_lettered = {
            position
            for position in self._dead_lettered
            if TopicPartition(position[0], position[1]) not in partitions
        }

    async def _note_idle(self, consumer: AIOKafkaConsumer) -> None:
        """After a poll that brought nothing: read again from the beginning any partition that
        now ends before the position reached (the broker lost messages), and count the loop as
        moving if nothing waits."""
        waiting = False
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            try:
                position = await asyncio.wait_for(consumer.position(partition), 1.0)
            except (TimeoutError, KafkaError):
                waiting = True  # its position is still being reset
                continue
            if end is None:
                waiting = True  # not fetched yet
            elif position > end:
                log.warning(
                    "%s: %s partition %d ends at %d, before the position %d reached: the broker "
                    "lost messages; reading the partition again from its beginning",
                    self._name,
                    partition.topic,
                    partition.partition,
                    end,
                    position,
                )
                await consumer.seek_to_beginning(partition)
                waiting = True
            elif position < end:
                waiting = True
        if not waiting:
            self._progressed_at = time.monotonic()

    async def _until_stopped(
        self, awaitable: Awaitable[_Result], seconds: float | None, *, grace: float = 0.0
    ) -> _Result:
        """``awaitable``'s result; :class:`_Stopped` if a stop comes first (it is given up
        ``grace`` seconds later if still not done), TimeoutError after ``seconds``."""
        work = asyncio.ensure_future(awaitable)
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            done, _ = await asyncio.wait(
                {work, stopping}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopping.cancel()
        if work not in done and self._stopping.is_set() and grace:
            done, _ = await asyncio.wait({work}, timeout=grace)
        if work in done:
            return work.result()
        work.cancel()
        with contextlib.suppress(BaseException):
            await work
        if self._stopping.is_set():
            raise _Stopped
        raise TimeoutError

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _handle(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
    ) -> None:
        parsed: list[tuple[ConsumerRecord, Parsed]] = []
        self._in_hand = set(batch)  # shrinks if a rebalance revokes partitions meanwhile
        try:
            for records in batch.values():
                for record in records:
                    if self._dead_lettered and _position(record) in self._dead_lettered:
                        continue  # set aside in an earlier round of this batch
                    # Parsed without a coroutine of its own per record (issue 23): only a
                    # dead letter waits for the broker.
                    message, reason = self._parse(record)
                    if reason is None:
                        parsed.append((record, message))
                    else:
                        await self._dead_letter(producer, record, reason)
        except Exception as error:  # noqa: BLE001 - the DLQ is unreachable: nothing committed
            await self._read_again(consumer, batch, error)
            return
        try:
            if parsed:
                await self._apply([message for _, message in parsed])
        except Exception as error:  # noqa: BLE001 - retried: nothing is committed, nothing lost
            if _transient(error):
                self._failures.clear()
                await self._read_again(consumer, batch, error)
                return
            for partition in self._in_hand:
                self._failures[partition] = self._failures.get(partition, 0) + 1
            failures = (self._failures[partition] for partition in self._in_hand)
            unappliable = isinstance(error, Unappliable)  # no use trying the batch again
            if not unappliable and max(failures, default=0) < MAX_BATCH_FAILURES:
                await self._read_again(consumer, batch, error)
                return
            # Batches keep failing, and not for want of a database: find the message that
            # cannot be applied, one at a time, and set it aside on the dead-letter topic.
            try:
                await self._apply_one_by_one(producer, parsed)
            except Exception as isolating_error:  # noqa: BLE001 - an outage meanwhile
                self._failures.clear()
                await self._read_again(consumer, batch, isolating_error)
                return
        for partition in batch:
            self._failures.pop(partition, None)
        committed = {
            partition: records[-1].offset + 1
            for partition, records in batch.items()
            if partition in self._in_hand
        }
        try:
            # A stop lets a commit under way finish (fewer messages read twice), for a while.
            if committed:
                await self._until_stopped(
                    consumer.commit(committed), COMMIT_SECONDS, grace=CLIENT_STOP_SECONDS
                )
        except CommitFailedError:
            # A rebalance took the partitions away; their next owner reads the batch again and
            # the dedupe skips what we applied.
            log.info("%s: offsets not committed after a rebalance; redelivered", self._name)
        except (TimeoutError, KafkaError) as error:
            # Applied but not committed: read again by the next consumer, skipped by the dedupe.
            raise _ConsumerLost(f"offsets not committed: {type(error).__name__}") from error
        self._progressed_at = time.monotonic()
        self._dead_lettered = {
            (topic, partition, offset)
            for topic, partition, offset in self._dead_lettered
            if offset >= committed.get(TopicPartition(topic, partition), 0)
        }

    async def _apply_one_by_one(
        self, producer: AIOKafkaProducer, parsed: list[tuple[ConsumerRecord, Parsed]]
    ) -> None:
        """Apply each message alone; one that fails for a reason other than an outage goes to
        the dead-letter topic (with :class:`Unappliable`'s reason when it raised one). An outage
        is raised: the batch is read again."""
        for record, message in parsed:
            try:
                await self._apply([message])
            except Exception as error:
                if _transient(error):
                    raise
                reason = (
                    error.reason
                    if isinstance(error, Unappliable)
                    else f"could not be applied ({type(error).__name__}), "
                    f"{MAX_BATCH_FAILURES} times in a row"
                )
                await self._dead_letter(producer, record, reason)

    async def _read_again(
        self,
        consumer: AIOKafkaConsumer,
        batch: dict[TopicPartition, list[ConsumerRecord]],
        error: Exception,
    ) -> None:
        log.warning(
            "%s: applying %d message(s) failed (%s); reading them again in %.0fs",
            self._name,
            sum(len(records) for records in batch.values()),
            type(error).__name__,
            RETRY_SECONDS,
        )
        for partition, records in batch.items():
            if partition in self._in_hand:  # a revoked one is read again by its new owner
                consumer.seek(partition, records[0].offset)
        await self._pause(RETRY_SECONDS)

    def _parse(self, record: ConsumerRecord) -> tuple[Any, str | None]:
        """The record parsed and None, or None and why it goes to the dead-letter topic."""
        try:
            if record.value is None:
                raise ValueError("the message has no value")
            return self._parse_record(record), None
        except (ValidationError, ValueError) as error:
            reason = (
                "; ".join(str(problem) for problem in describe(error))
                if isinstance(error, ValidationError)
                else str(error)
            )
        return None, reason

    async def _dead_letter(
        self, producer: AIOKafkaProducer, record: ConsumerRecord, reason: str
    ) -> None:
        source = f"{record.topic}/{record.partition}/{record.offset}"
        # Awaited: the bad message must be on the DLQ before its offset is committed.
        sent = await self._until_stopped(
            producer.send(
                topics.DEAD_LETTERS,
                value=record.value,
                key=record.key,
                headers=[(HEADER_REASON, reason.encode()), (HEADER_SOURCE, source.encode())],
            ),
            None,
        )
        await self._until_stopped(sent, None)
        log.warning(
            "%s: message %s is not valid (%s); sent to %s",
            self._name,
            source,
            reason,
            topics.DEAD_LETTERS,
        )
        if TopicPartition(record.topic, record.partition) in self._in_hand:
            self._dead_lettered.add(_position(record))  # else: dropped with its partition
        self._on_dead_letter()


class _Rebalances(ConsumerRebalanceListener):
    """Tells the loop of the partitions the group takes from its consumer and gives it."""

    def __init__(self, loop: ConsumerLoop[Any]) -> None:
        self._loop = loop

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._loop._forget(set(revoked))

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._loop._forget(set(assigned))
        self._loop._joined = True  # called after every join, with an empty set too


def _position(record: ConsumerRecord) -> tuple[str, int, int]:
    return (record.topic, record.partition, record.offset)


def _transient(error: Exception) -> bool:
    """An outage (the database or the network), not a fault of the messages."""
    return isinstance(
        error, (OperationalError, InterfaceError, PoolTimeoutError, OSError, TimeoutError)
    )
