"""Kafka clients built from :class:`KafkaSettings`, so every service talks to the broker alike.

Offsets are never auto-committed: consumers commit after their work is durable.
"""

from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import RequestTimedOutError, TopicAlreadyExistsError, for_code
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
            refused = topics_refused(await admin.create_topics(missing))
            if refused:
                raise TopicsNotCreated(
                    "the broker refused to create Kafka topics ("
                    + "; ".join(refused)
                    + "): check GALLRING_KAFKA_TOPIC_PARTITIONS and "
                    "GALLRING_KAFKA_TOPIC_REPLICATION_FACTOR against the cluster, or create them"
                )
    finally:
        await admin.close()


#: Created; created meanwhile by another service; or still being created when the answer came
#: (the next start lists the topics again).
_NO_REFUSAL = (0, TopicAlreadyExistsError.errno, RequestTimedOutError.errno)


class TopicsNotCreated(Exception):
    """Without its topics Gallring would wait silently for messages that never come."""


def topics_refused(response: Any) -> list[str]:
    """``topic: reason`` for each topic a CreateTopics answer refused. The admin client raises
    for none of them; a topic created meanwhile by another service is no refusal."""
    refused = []
    for topic, code, *rest in response.topic_errors:
        if code not in _NO_REFUSAL:
            message = rest[0] if rest and rest[0] else for_code(code).__name__
            refused.append(f"{topic}: {message}")
    return refused
