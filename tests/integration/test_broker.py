"""The Kafka plumbing against a real Kafka-protocol broker (Tansu)."""

import asyncio
import uuid

from aiokafka import TopicPartition

from shared.messaging.kafka import make_consumer, make_producer
from shared.runtime.settings import KafkaSettings


async def test_a_message_goes_through_the_broker_to_a_consumer_group(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"smoke-{uuid.uuid4().hex[:8]}"
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic,
            b'{"hello": "broker"}',
            key=b"subject-pseudonym",
            headers=[("event-type", b"smoke")],
        )
    finally:
        await producer.stop()

    group = f"smoke-group-{uuid.uuid4().hex[:8]}"
    consumer = make_consumer(kafka_settings, topic, group_id=group)
    await consumer.start()
    try:
        message = await asyncio.wait_for(consumer.getone(), timeout=30)
        assert (message.key, message.value) == (b"subject-pseudonym", b'{"hello": "broker"}')
        assert dict(message.headers) == {"event-type": b"smoke"}
        partition = TopicPartition(topic, message.partition)
        await consumer.commit({partition: message.offset + 1})
        assert await consumer.committed(partition) == message.offset + 1
    finally:
        await consumer.stop()
