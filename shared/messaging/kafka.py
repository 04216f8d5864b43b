"""Kafka clients built from :class:`KafkaSettings`, so every service talks to the broker alike,
and Gallring's topics, created with the retention the settings give each.

Offsets are never auto-committed: consumers commit after their work is durable.
"""

import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaClient, AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, RequestTimedOutError, TopicAlreadyExistsError, for_code
from murmurhash2 import murmurhash2

from shared.runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

_MURMUR2_SEED = 0x9747B28C  # Kafka's


def security_options(settings: KafkaSettings) -> dict[str, Any]:
    """How every client reaches a secured cluster: TLS (SSL, SASL_SSL) and SASL's credentials."""
    options: dict[str, Any] = {
        "security_protocol": settings.security_protocol,
        "ssl_context": settings.ssl_context(),
    }
    if settings.sasl_mechanism and settings.sasl_password:
        options |= {
            "sasl_mechanism": settings.sasl_mechanism,
            "sasl_plain_username": settings.sasl_username,
            "sasl_plain_password": settings.sasl_password.get_secret_value(),
        }
    return options


def make_producer(settings: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        **security_options(settings),
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


def make_consumer(
    settings: KafkaSettings,
    *topics: str,
    group_id: str,
    listener: ConsumerRebalanceListener | None = None,
) -> AIOKafkaConsumer:
    """A consumer of ``topics`` in ``group_id``; ``listener`` hears of the partitions the group
    takes from it and gives it (a consumer that commits by hand must drop what it held for a
    partition another member now reads)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=settings.client_id,
        **security_options(settings),
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=settings.session_timeout_ms,
        heartbeat_interval_ms=settings.heartbeat_interval_ms,
    )
    if topics:
        # Subscribed after construction: the constructor takes no listener.
        consumer.subscribe(topics=list(topics), listener=listener)
    return consumer


def make_offsets_reader(settings: KafkaSettings) -> AIOKafkaConsumer:
    """A consumer in no group that reads nothing: it asks where partitions begin and end."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-offsets",
        **security_options(settings),
        enable_auto_commit=False,
        request_timeout_ms=settings.request_timeout_ms,
    )


def make_admin(settings: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-admin",
        request_timeout_ms=settings.request_timeout_ms,
        **security_options(settings),
    )


def make_client(settings: KafkaSettings, *, purpose: str) -> AIOKafkaClient:
    """A bare client, for asking the cluster only (the API's readiness check)."""
    return AIOKafkaClient(
        bootstrap_servers=settings.bootstrap,
        client_id=f"{settings.client_id}-{purpose}",
        **security_options(settings),
    )


async def ensure_topics(settings: KafkaSettings, topics: tuple[str, ...]) -> None:
    """Create the topics that are missing, with partitions, replication and retention from
    settings; warn of those that exist and keep their messages longer than settings say."""
    admin = make_admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                name=topic,
                num_partitions=settings.topic_partitions,
                replication_factor=settings.topic_replication_factor,
                topic_configs={"retention.ms": str(settings.retention_ms(topic))},
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
        present = [topic for topic in topics if topic in existing]
        if present:
            await _warn_of_longer_retention(admin, settings, present)
    finally:
        await admin.close()


async def _warn_of_longer_retention(
    admin: AIOKafkaAdminClient, settings: KafkaSettings, topics: list[str]
) -> None:
    """Topics that were there before (created by hand, by an older Gallring, or by a cluster
    that applied its own defaults) are not changed: whoever runs the cluster decides."""
    try:
        # Every config of each topic: asking for retention.ms alone makes Tansu drop the
        # connection, and Kafka answers both alike.
        answers = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
        )
    except KafkaError as error:
        log.warning(
            "could not read the retention of the Kafka topics %s (%s): check by hand that none "
            "keeps its messages longer than its GALLRING_KAFKA_…_RETENTION_HOURS",
            ", ".join(topics),
            type(error).__name__,
        )
        return
    for warning in retention_warnings(settings, answers):
        log.warning(warning)


def retention_warnings(settings: KafkaSettings, answers: list[Any]) -> list[str]:
    """What to tell of each topic in DescribeConfigs ``answers`` that keeps its messages longer
    than ``settings`` say (``retention.ms`` -1 or a compacted topic: for ever), or whose
    retention the broker did not tell. Names topics and settings only."""
    warnings = []
    for answer in answers:
        for code, _, _, topic, entries, *_ in answer.resources:
            wanted = settings.retention_ms(topic)
            variable = settings.retention_variable(topic)
            if code != 0:
                warnings.append(
                    f"could not read the retention of the Kafka topic {topic} "
                    f"({for_code(code).__name__}): check by hand that it keeps its messages "
                    f"no longer than {variable} (retention.ms={wanted})"
                )
                continue
            configs = {entry[0]: entry[1] for entry in entries}
            warning = _longer_retention(topic, configs, wanted, variable)
            if warning:
                warnings.append(warning)
    return warnings


def _longer_retention(
    topic: str, configs: dict[str, str | None], wanted: int, variable: str
) -> str | None:
    """The warning for a topic whose ``configs`` keep messages longer than ``wanted`` ms."""
    retention = configs.get("retention.ms")
    # A compacted topic keeps each key's last message for ever, whatever its retention.ms.
    compacted = "delete" not in (configs.get("cleanup.policy") or "delete").split(",")
    if compacted:
        kept = "for ever"
    elif retention is None:
        return (
            f"the broker did not tell the retention.ms of the Kafka topic {topic}: check by "
            f"hand that it keeps its messages no longer than {variable} (retention.ms={wanted})"
        )
    elif int(retention) < 0:
        kept = "for ever"
    elif int(retention) > wanted:
        kept = f"for {int(retention) / 3_600_000:g} hours"
    else:
        return None
    told = ", ".join(f"{name}={configs[name]}" for name in _TOLD if name in configs)
    change = f"retention.ms={wanted}" + ",cleanup.policy=delete" * compacted
    return (
        f"the Kafka topic {topic} keeps its messages {kept} ({told}), longer than {variable} "
        f"allows (retention.ms={wanted}): erased subjects' pseudonymous messages stay readable "
        "that long. Change the topic with kafka-configs.sh --bootstrap-server … --alter "
        f"--entity-type topics --entity-name {topic} --add-config {change}"
    )


_TOLD = ("retention.ms", "cleanup.policy")


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
