"""What Gallring makes of the broker's answers when it creates its topics: the admin client
raises for no refused topic, so a refusal would otherwise pass unseen; and of the configs of
topics that were there already, some of which may keep their messages too long."""

from aiokafka.protocol.admin import CreateTopicsResponse_v3, DescribeConfigsResponse_v2

from shared.messaging import topics
from shared.messaging.kafka import retention_warnings, topics_refused
from shared.runtime.settings import KafkaSettings


def answer(*topic_errors: tuple[str, int, str | None]) -> CreateTopicsResponse_v3:
    return CreateTopicsResponse_v3(throttle_time_ms=0, topic_errors=list(topic_errors))


def test_created_topics_and_topics_another_service_created_meanwhile_are_no_refusal() -> None:
    assert topics_refused(answer(("a", 0, None), ("b", 36, "Topic already exists."))) == []


def test_a_topic_still_being_created_when_the_broker_answered_is_no_refusal() -> None:
    assert topics_refused(answer(("c", 7, "Request timed out."))) == []


def test_each_refused_topic_is_named_with_the_brokers_reason_or_the_errors_name() -> None:
    refused = answer(
        ("gallring.lifecycle.v1", 38, "Replication factor: 3 larger than available brokers: 1."),
        ("gallring.erasures.v1", 29, None),
    )
    assert topics_refused(refused) == [
        "gallring.lifecycle.v1: Replication factor: 3 larger than available brokers: 1.",
        "gallring.erasures.v1: TopicAuthorizationFailedError",
    ]


def described(*resources: tuple[str, int, dict[str, str]]) -> DescribeConfigsResponse_v2:
    """A DescribeConfigs answer: per topic its error code and the configs the broker told."""
    return DescribeConfigsResponse_v2(
        throttle_time_ms=0,
        resources=[
            (code, None, 2, topic, [(n, v, False, 5, False, []) for n, v in configs.items()])
            for topic, code, configs in resources
        ],
    )


def test_every_topic_has_a_retention_of_its_own_setting() -> None:
    settings = KafkaSettings(lifecycle_retention_hours=2)
    assert settings.retention_ms(topics.LIFECYCLE) == 7_200_000
    assert {settings.retention_variable(topic) for topic in topics.ALL_TOPICS} == {
        "GALLRING_KAFKA_LIFECYCLE_RETENTION_HOURS",
        "GALLRING_KAFKA_ERASURE_COMMANDS_RETENTION_HOURS",
        "GALLRING_KAFKA_ERASURES_RETENTION_HOURS",
        "GALLRING_KAFKA_ERASURE_CONFIRMATIONS_RETENTION_HOURS",
        "GALLRING_KAFKA_NOTIFICATION_COMMANDS_RETENTION_HOURS",
        "GALLRING_KAFKA_DLQ_RETENTION_HOURS",
        "GALLRING_KAFKA_HOLDS_RETENTION_HOURS",
        "GALLRING_KAFKA_REVIEWS_RETENTION_HOURS",
    }


def test_topics_that_keep_no_longer_than_their_setting_are_not_warned_of() -> None:
    settings = KafkaSettings()
    answer = described(
        (topics.LIFECYCLE, 0, {"retention.ms": "604800000", "cleanup.policy": "delete"}),
        (topics.ERASURES, 0, {"retention.ms": "3600000", "cleanup.policy": "compact,delete"}),
    )
    assert retention_warnings(settings, [answer]) == []


def test_a_compacted_topic_keeps_for_ever_whatever_its_retention() -> None:
    [warning] = retention_warnings(
        KafkaSettings(),
        [described((topics.DEAD_LETTERS, 0, {"retention.ms": "1", "cleanup.policy": "compact"}))],
    )
    assert warning.startswith(
        "the Kafka topic gallring.dlq.v1 keeps its messages for ever (retention.ms=1, "
        "cleanup.policy=compact), longer than GALLRING_KAFKA_DLQ_RETENTION_HOURS allows"
    )
    assert warning.endswith("--add-config retention.ms=1209600000,cleanup.policy=delete")


def test_a_retention_the_broker_would_not_tell_is_to_be_checked_by_hand() -> None:
    """An ACL that refuses DescribeConfigs, or a broker that omits the config."""
    warnings = retention_warnings(
        KafkaSettings(),
        [described((topics.LIFECYCLE, 29, {}), (topics.ERASURES, 0, {}))],
    )
    assert warnings == [
        "could not read the retention of the Kafka topic gallring.lifecycle.v1 "
        "(TopicAuthorizationFailedError): check by hand that it keeps its messages no longer "
        "than GALLRING_KAFKA_LIFECYCLE_RETENTION_HOURS (retention.ms=604800000)",
        "the broker did not tell the retention.ms of the Kafka topic gallring.erasures.v1: "
        "check by hand that it keeps its messages no longer than "
        "GALLRING_KAFKA_ERASURES_RETENTION_HOURS (retention.ms=604800000)",
    ]
