"""Kafka clients built from :class:`KafkaSettings`, so every service talks to the broker alike.

Offsets are never auto-committed: consumers commit after their work is durable.
"""

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from shared.settings import KafkaSettings


def make_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        enable_idempotence=settings.enable_idempotence,
        acks="all",
    )


def make_consumer(settings: KafkaSettings, *topics: str, group_id: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        *topics,
        bootstrap_servers=settings.bootstrap_servers,
        client_id=settings.client_id,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
