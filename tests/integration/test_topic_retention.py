"""How long Gallring's topics keep their messages, against a real Kafka-protocol broker (Tansu):
each broker of its own, so that the session broker's topics, created by other tests, are not
in the way."""

import logging
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.messaging.kafka import ensure_topics, make_admin
from shared.runtime.settings import KafkaSettings

HOUR_MS = 3_600_000


@pytest.fixture
def own_broker() -> Iterator[KafkaSettings]:
    with EmbeddedBroker() as broker:
        yield KafkaSettings(
            bootstrap=broker.bootstrap_servers, enable_idempotence=False, topic_partitions=1
        )


@pytest.fixture
async def admin(own_broker: KafkaSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = make_admin(own_broker)
    await client.start()
    yield client
    await client.close()


async def retention_of(admin: AIOKafkaAdminClient, *names: str) -> dict[str, str | None]:
    [answer] = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    )
    return {
        name: {entry[0]: entry[1] for entry in entries}.get("retention.ms")
        for _, _, _, name, entries, *_ in answer.resources
    }


async def test_every_topic_is_created_with_the_retention_its_setting_gives(
    own_broker: KafkaSettings, admin: AIOKafkaAdminClient
) -> None:
    settings = own_broker.model_copy(
        update={"lifecycle_retention_hours": 5, "dlq_retention_hours": 48}
    )
    await ensure_topics(settings, topics.ALL_TOPICS)

    assert await retention_of(admin, *topics.ALL_TOPICS) == {
        topics.LIFECYCLE: str(5 * HOUR_MS),
        topics.LIFECYCLE_IMMEDIATE: str(5 * HOUR_MS),  # the same events, in their own lane
        topics.ERASURE_COMMANDS: str(14 * 24 * HOUR_MS),
        topics.ERASURES: str(7 * 24 * HOUR_MS),
        topics.ERASURE_CONFIRMATIONS: str(7 * 24 * HOUR_MS),
        topics.NOTIFICATION_COMMANDS: str(7 * 24 * HOUR_MS),
        topics.DEAD_LETTERS: str(48 * HOUR_MS),
        topics.HOLDS: str(14 * 24 * HOUR_MS),
        topics.REVIEWS: str(14 * 24 * HOUR_MS),
    }


async def test_a_topic_that_exists_and_keeps_longer_than_its_setting_is_warned_of(
    own_broker: KafkaSettings, admin: AIOKafkaAdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The cluster's own topics are not changed: whoever runs it is told what to change."""
    await admin.create_topics(
        [
            NewTopic(topics.LIFECYCLE, 1, 1, topic_configs={"retention.ms": "-1"}),
            NewTopic(topics.ERASURES, 1, 1, topic_configs={"retention.ms": str(720 * HOUR_MS)}),
            NewTopic(topics.ERASURE_COMMANDS, 1, 1, topic_configs={"retention.ms": str(HOUR_MS)}),
        ]
    )
    with caplog.at_level(logging.WARNING, logger="shared.messaging.kafka"):
        await ensure_topics(own_broker, topics.ALL_TOPICS)

    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 2, warnings
    lifecycle, erasures = sorted(warnings, key=lambda w: topics.LIFECYCLE not in w)
    assert lifecycle.startswith(
        "the Kafka topic gallring.lifecycle.v1 keeps its messages for ever (retention.ms=-1), "
        "longer than GALLRING_KAFKA_LIFECYCLE_RETENTION_HOURS allows (retention.ms=604800000)"
    )
    assert erasures.startswith(
        "the Kafka topic gallring.erasures.v1 keeps its messages for 720 hours "
        "(retention.ms=2592000000), longer than GALLRING_KAFKA_ERASURES_RETENTION_HOURS allows "
        "(retention.ms=604800000)"
    )
    # Left as they were; the missing ones created with theirs.
    assert await retention_of(admin, topics.LIFECYCLE, topics.DEAD_LETTERS) == {
        topics.LIFECYCLE: "-1",
        topics.DEAD_LETTERS: str(14 * 24 * HOUR_MS),
    }
