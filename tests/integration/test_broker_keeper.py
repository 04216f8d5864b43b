"""``gallring up``'s embedded broker kept running: a real Tansu broker, killed as the OOM killer
or a stray ``kill -9`` would, is listening again on its port with Gallring's topics; one that
keeps dying is given up on, loudly."""

import asyncio
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from shared.messaging import topics
from shared.messaging.broker_keeper import BrokerKeeper
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.messaging.kafka import make_admin
from shared.runtime.settings import KafkaSettings
from tests.polling import wait_until

WAIT_SECONDS = 20


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    broker = EmbeddedBroker(ends_with_us=True)
    broker.start()
    yield broker
    broker.stop()


def kafka_of(broker: EmbeddedBroker) -> KafkaSettings:
    # 3 partitions: neither the settings' default nor Tansu's own (4), so that a topic Tansu
    # created by itself would show.
    return KafkaSettings(
        bootstrap=broker.bootstrap_servers, enable_idempotence=False, topic_partitions=3
    )


def kill_and_wait_for_the_next(broker: EmbeddedBroker) -> int:
    """SIGKILL to the broker's process; the pid of the one listening on its port after it."""
    killed = broker.pid
    assert killed is not None
    os.kill(killed, signal.SIGKILL)

    def started_again() -> bool:
        return broker.pid != killed and broker.poll() is None and listening(broker.port)

    wait_until(started_again, timeout=WAIT_SECONDS)
    assert broker.pid is not None
    return broker.pid


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def partitions_of_each_topic(kafka: KafkaSettings) -> dict[str, int]:
    admin = make_admin(kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics.ALL_TOPICS))
    finally:
        await admin.close()
    return {topic["topic"]: len(topic["partitions"]) for topic in described}


def test_a_killed_broker_listens_again_on_its_port_with_gallrings_topics(
    broker: EmbeddedBroker,
) -> None:
    said: list[str] = []
    kafka = kafka_of(broker)
    keeper = BrokerKeeper(broker, kafka, on_give_up=lambda: None, tell=said.append)
    keeper.start()
    try:
        port = broker.port
        kill_and_wait_for_the_next(broker)
        assert broker.port == port
        wait_until(lambda: said, timeout=WAIT_SECONDS)  # said once the topics are made
        assert said == [
            "gallring: the embedded broker stopped (killed by SIGKILL); started it again on "
            f"127.0.0.1:{port} — it keeps nothing on disk, so Gallring republishes what it still "
            "holds"
        ]
        assert asyncio.run(partitions_of_each_topic(kafka)) == dict.fromkeys(topics.ALL_TOPICS, 3)
        assert not keeper.gave_up
    finally:
        keeper.stop()
    assert broker.poll() is None and broker.pid is None  # stopped with its keeper
    assert not listening(port)


def test_a_broker_that_keeps_dying_is_given_up_on(broker: EmbeddedBroker) -> None:
    said: list[str] = []
    gave_up = threading.Event()
    keeper = BrokerKeeper(
        broker, kafka_of(broker), on_give_up=gave_up.set, tell=said.append, max_restarts=1
    )
    keeper.start()
    try:
        kill_and_wait_for_the_next(broker)
        os.kill(broker.pid, signal.SIGKILL)
        wait_until(gave_up.is_set, timeout=WAIT_SECONDS)
        assert keeper.gave_up
        assert said[-1] == (
            "gallring: the embedded broker stopped (killed by SIGKILL) 2 times within 60 s; not "
            "starting it again. Stopping Gallring: run `gallring up` again, or set "
            "GALLRING_KAFKA_BOOTSTRAP to a broker of your own."
        )
        time.sleep(1)  # several checks more: it stays given up
        assert broker.poll() == -signal.SIGKILL
        assert len(said) == 2
    finally:
        keeper.stop()
