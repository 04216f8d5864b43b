"""What Gallring makes of the broker's answer when it creates its topics: the admin client
raises for no refused topic, so a refusal would otherwise pass unseen."""

from aiokafka.protocol.admin import CreateTopicsResponse_v3

from shared.kafka import topics_refused


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
