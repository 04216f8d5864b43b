"""Kafka clients built from :class:`KafkaSettings`, so every service talks to the broker alike.

Offsets are never auto-committed: consumers commit after their work is durable.
"""

import contextlib
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from murmurhash2 import murmurhash2

from shared.settings import KafkaSettings

_MURMUR2_SEED = 0x9747B28C  # Kafka's


def make_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        enable_idempotence=settings.enable_idempotence,
        acks="all",
        request_timeout_ms=settings.request_timeout_ms,
        linger_ms=5,
        # aiokafka's 16 KiB default made a produce request of every few dozen messages: the
        # relay sends thousands a second.
        max_batch_size=settings.max_batch_bytes,
    )


def partition_for(key: bytes, partitions: Sequence[int]) -> int:
    """The partition Kafka's default partitioner (Java's, and aiokafka's) sends ``key`` to, among
    a topic's ``partitions`` in ascending order: murmur2 of the key, made positive, modulo their
    number. In C, where aiokafka's murmur2 is pure Python and thirty times slower."""
    return partitions[(murmurhash2(key, _MURMUR2_SEED) & 0x7FFFFFFF) % len(partitions)]


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )


async def ensure_topics(settings: KafkaSettings, topics: tuple[str, ...]) -> None:
    """Create the topics that are missing, with partitions and replication from settings."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
            )
            for topic in topics
            if topic not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # created meanwhile elsewhere
                await admin.create_topics(missing)
    finally:
        await admin.close()
