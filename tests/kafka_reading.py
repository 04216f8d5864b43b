"""Reading topics in tests: assign() every partition, no consumer group (no join delay)."""

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.runtime.settings import KafkaSettings


async def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    until: Callable[[list[ConsumerRecord]], bool],
    timeout: float = 30.0,
) -> list[ConsumerRecord]:
    """Every record of ``topic`` from the beginning, read until ``until(records)`` holds."""
    deadline = time.monotonic() + timeout
    partitions = await _partitions(settings, topic, deadline)

    async def satisfied(_: AIOKafkaConsumer, records: list[ConsumerRecord]) -> bool:
        return until(records)

    return await _read(settings, topic, partitions, satisfied, deadline)


async def read_to_the_end(settings: KafkaSettings, topic: str) -> list[ConsumerRecord]:
    """Every record ``topic`` holds now: read until each partition's end offset, as it was when
    reading began; an empty list for a topic that does not exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        [description] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if description["error_code"] != 0:
        return []
    ends: dict[TopicPartition, int] = {}

    async def at_the_end(consumer: AIOKafkaConsumer, _: list[ConsumerRecord]) -> bool:
        ends.update(ends or await consumer.end_offsets(list(consumer.assignment())))
        return all([await consumer.position(tp) >= end for tp, end in ends.items()])

    partitions = [p["partition"] for p in description["partitions"]]
    return await _read(settings, topic, partitions, at_the_end, time.monotonic() + 30)


async def _read(
    settings: KafkaSettings,
    topic: str,
    partitions: list[int],
    done: Callable[[AIOKafkaConsumer, list[ConsumerRecord]], Awaitable[bool]],
    deadline: float,
) -> list[ConsumerRecord]:
    """``topic``'s records from the beginning, read with assign() (no group) until ``done``."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        assigned = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        records: list[ConsumerRecord] = []
        while not await done(consumer, records):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gave up on {topic} after {len(records)} records")
            for batch in (await consumer.getmany(*assigned, timeout_ms=300)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def _partitions(settings: KafkaSettings, topic: str, deadline: float) -> list[int]:
    """The topic's partition ids, once it exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        while True:
            [description] = await admin.describe_topics([topic])
            if description["error_code"] == 0 and description["partitions"]:
                return sorted(p["partition"] for p in description["partitions"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"topic {topic} never appeared")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


def event_id_of(record: ConsumerRecord) -> str | None:
    """The ``event_id`` in a record's JSON value; None for the poison messages that DLQ tests
    put on the same session broker."""
    try:
        value = json.loads(record.value)
    except ValueError:
        return None
    return value.get("event_id") if isinstance(value, dict) else None
