"""How the outbox relay hands messages to the producer, against the real broker."""

import asyncio
import uuid

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import DefaultPartitioner

from shared.messaging import topics
from shared.messaging.kafka import ensure_topics
from shared.messaging.outbox.relay import _Pending, _send_in_batches
from shared.runtime.settings import KafkaSettings


class RefusingProducer(AIOKafkaProducer):
    """Refuses the second batch of one partition, as aiokafka does once the first failed."""

    victim = -1
    handed_over: list[int]

    async def send_batch(self, batch, topic, *, partition):
        if partition == self.victim and self.handed_over.count(partition) == 1:
            raise KafkaTimeoutError()
        self.handed_over.append(partition)
        return await super().send_batch(batch, topic, partition=partition)


async def test_a_refused_batch_fails_the_rest_of_its_partition_unsent(
    kafka_settings: KafkaSettings,
) -> None:
    await ensure_topics(kafka_settings, (topics.LIFECYCLE,))
    producer = RefusingProducer(bootstrap_servers=kafka_settings.bootstrap, acks="all")
    producer.handed_over = []
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topics.LIFECYCLE))
        keys = [uuid.uuid4().hex * 2 for _ in range(6)]
        partition_of = {key: DefaultPartitioner()(key.encode(), partitions, []) for key in keys}
        producer.victim = partition_of[keys[0]]
        # Five 3 KB messages fill a 16 KiB batch: each key's twelve take three batches at least.
        pending = [
            _Pending(n, topics.LIFECYCLE, key, "x" * 3000, f'{{"event-id": "{n}"}}')
            for n, key in enumerate(keys * 12)
        ]
        sends = await _send_in_batches(producer, pending)
        outcomes = await asyncio.gather(*(sent for _, sent in sends), return_exceptions=True)
    finally:
        await producer.stop()

    sent_ids = sorted(message.id for messages, _ in sends for message in messages)
    assert sent_ids == list(range(len(pending)))  # each message in exactly one batch
    victim = [
        not isinstance(outcome, BaseException)
        for (messages, _), outcome in zip(sends, outcomes, strict=True)
        if partition_of[messages[0].key] == producer.victim
    ]
    assert len(victim) >= 3 and victim == [True] + [False] * (len(victim) - 1)
    assert producer.handed_over.count(producer.victim) == 1  # the rest never went out
    others = [
        outcome
        for (messages, _), outcome in zip(sends, outcomes, strict=True)
        if partition_of[messages[0].key] != producer.victim
    ]
    assert not any(isinstance(outcome, BaseException) for outcome in others)
