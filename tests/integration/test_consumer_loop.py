"""The consume → apply → commit loop on the real broker: a message that cannot be applied is
found and set aside on the dead-letter topic; an outage is waited out, never dead-lettered."""

import asyncio
import contextlib
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import NewTopic
from sqlalchemy.exc import OperationalError

from shared.messaging import topics
from shared.messaging.consumer_loop import HEADER_REASON, ConsumerLoop, Unappliable
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.messaging.kafka import make_admin, make_producer
from shared.runtime.settings import KafkaSettings
from tests.integration.conftest import crash
from tests.kafka_reading import read_topic
from tests.polling import eventually


async def _produce(kafka: KafkaSettings, topic: str, values: list[bytes]) -> None:
    producer = make_producer(kafka)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=b"k")  # one partition, in order
    finally:
        await producer.stop()


async def _run_until(loop: ConsumerLoop, done, timeout: float = 30) -> None:
    task = asyncio.create_task(loop.run())
    try:
        await eventually(done, timeout=timeout)
    finally:
        loop.stop()
        await task


def _loop(
    kafka: KafkaSettings, topic: str, apply, dead: list[int], group_id: str | None = None
) -> ConsumerLoop[str]:
    def parse(record: ConsumerRecord) -> str:
        if record.value.startswith(b"unparseable"):
            raise ValueError("not a message")
        return record.value.decode()

    return ConsumerLoop(
        "test",
        kafka,
        (topic,),
        group_id=group_id or f"loop-test-{uuid.uuid4().hex[:8]}",
        max_records=100,
        parse=parse,
        apply=apply,
        on_dead_letter=lambda: dead.append(1),
    )


async def test_a_consumer_that_dies_while_applying_leaves_its_batch_to_the_next_one(
    kafka_settings: KafkaSettings,
) -> None:
    topic, group = f"loop-test-{uuid.uuid4().hex[:8]}", f"loop-test-{uuid.uuid4().hex[:8]}"
    await _produce(kafka_settings, topic, [b"m-1", b"m-2"])
    applying = asyncio.Event()

    async def never_finishes(messages: list[str]) -> None:
        applying.set()
        await asyncio.Event().wait()  # the database transaction never commits

    first = asyncio.create_task(_loop(kafka_settings, topic, never_finishes, [], group).run())
    async with asyncio.timeout(30):
        await applying.wait()
    first.cancel()  # dies mid-batch
    with contextlib.suppress(asyncio.CancelledError):
        await first

    applied: list[str] = []

    async def apply(messages: list[str]) -> None:
        applied.extend(messages)

    await _run_until(_loop(kafka_settings, topic, apply, [], group), lambda: len(applied) >= 2)
    assert applied == ["m-1", "m-2"]  # nothing was committed for them: nothing skipped


async def test_a_restarted_consumer_goes_on_after_what_was_applied(
    kafka_settings: KafkaSettings,
) -> None:
    topic, group = f"loop-test-{uuid.uuid4().hex[:8]}", f"loop-test-{uuid.uuid4().hex[:8]}"
    await _produce(kafka_settings, topic, [b"m-1", b"m-2"])
    applied: list[str] = []

    async def apply(messages: list[str]) -> None:
        applied.extend(messages)

    await _run_until(_loop(kafka_settings, topic, apply, [], group), lambda: len(applied) >= 2)
    await _produce(kafka_settings, topic, [b"m-3"])
    await _run_until(_loop(kafka_settings, topic, apply, [], group), lambda: "m-3" in applied)
    assert applied == ["m-1", "m-2", "m-3"]  # each once: m-1 and m-2 would have come first


async def test_a_message_that_cannot_be_applied_goes_to_the_dlq_and_the_rest_are_applied(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"loop-test-{uuid.uuid4().hex[:8]}"
    poison = f"poison-{uuid.uuid4()}"
    await _produce(kafka_settings, topic, [b"good-1", poison.encode(), b"good-2"])
    applied: list[str] = []

    async def apply(messages: list[str]) -> None:
        if poison in messages:
            raise ValueError("this one cannot be stored")
        applied.extend(messages)

    dead: list[int] = []
    await _run_until(_loop(kafka_settings, topic, apply, dead), lambda: "good-2" in applied)
    assert applied == ["good-1", "good-2"]
    assert len(dead) == 1
    records = await read_topic(
        kafka_settings,
        topics.DEAD_LETTERS,
        until=lambda rs: any(r.value == poison.encode() for r in rs),
    )
    [dead] = [r for r in records if r.value == poison.encode()]
    assert dict(dead.headers)[HEADER_REASON].startswith(b"could not be applied (ValueError)")


async def test_a_message_apply_calls_unappliable_goes_to_the_dlq_at_once_with_its_reason(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"loop-test-{uuid.uuid4().hex[:8]}"
    poison = f"poison-{uuid.uuid4()}"
    await _produce(kafka_settings, topic, [b"good-1", poison.encode(), b"good-2"])
    applied: list[str] = []
    batches: list[list[str]] = []

    async def apply(messages: list[str]) -> None:
        batches.append(list(messages))
        for message in messages:
            if message == poison:
                raise Unappliable("table letters is missing")
        applied.extend(messages)

    dead: list[int] = []
    await _run_until(_loop(kafka_settings, topic, apply, dead), lambda: "good-2" in applied)
    assert applied == ["good-1", "good-2"]
    assert len(dead) == 1
    # No retry rounds: the batch once, then each message alone.
    assert [len(batch) for batch in batches] == [3, 1, 1, 1]
    records = await read_topic(
        kafka_settings,
        topics.DEAD_LETTERS,
        until=lambda rs: any(r.value == poison.encode() for r in rs),
    )
    [dead_letter] = [r for r in records if r.value == poison.encode()]
    assert dict(dead_letter.headers)[HEADER_REASON] == b"table letters is missing"


async def test_an_outage_is_waited_out_and_nothing_is_dead_lettered(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"loop-test-{uuid.uuid4().hex[:8]}"
    marker = f"m-{uuid.uuid4()}"
    await _produce(kafka_settings, topic, [marker.encode()])
    calls, applied = 0, []

    async def apply(messages: list[str]) -> None:
        nonlocal calls
        calls += 1
        if calls <= 4:
            raise OperationalError("SELECT 1", None, ConnectionError("database away"))
        applied.extend(messages)

    dead: list[int] = []
    await _run_until(_loop(kafka_settings, topic, apply, dead), lambda: applied)
    assert applied == [marker]
    assert calls == 5 and dead == []


async def test_each_bad_message_reaches_the_dlq_once_even_when_an_outage_interrupts(
    kafka_settings: KafkaSettings,
) -> None:
    topic = f"loop-test-{uuid.uuid4().hex[:8]}"
    values = [b"unparseable", b"good-1", b"poison", b"flaky", b"good-2"]
    await _produce(kafka_settings, topic, values)
    applied: list[str] = []
    outage_left = 1

    async def apply(messages: list[str]) -> None:
        nonlocal outage_left
        if "poison" in messages:
            raise ValueError("this one cannot be stored")
        if messages == ["flaky"] and outage_left:
            outage_left -= 1  # the database goes away while the bad one is being looked for
            raise OperationalError("SELECT 1", None, ConnectionError("database away"))
        applied.extend(messages)

    dead: list[int] = []
    await _run_until(_loop(kafka_settings, topic, apply, dead), lambda: "good-2" in applied)
    assert set(applied) == {"good-1", "flaky", "good-2"}
    assert len(dead) == 2  # "unparseable" and "poison", each once


async def test_a_loop_with_messages_waiting_that_applies_none_says_it_is_stalled(
    kafka_settings: KafkaSettings,
) -> None:
    kafka = kafka_settings.model_copy(update={"consumer_stall_seconds": 1.0})
    waiting, idle = f"loop-test-{uuid.uuid4().hex[:8]}", f"loop-test-{uuid.uuid4().hex[:8]}"
    await _produce(kafka, waiting, [b"m-1"])
    await _produce(kafka, idle, [b"m-1"])
    applied: list[str] = []

    async def stuck(messages: list[str]) -> None:
        await asyncio.Event().wait()  # a transaction that never ends

    async def apply(messages: list[str]) -> None:
        applied.extend(messages)

    stalled_loop, idle_loop = _loop(kafka, waiting, stuck, []), _loop(kafka, idle, apply, [])
    tasks = [asyncio.create_task(stalled_loop.run()), asyncio.create_task(idle_loop.run())]
    try:
        await eventually(lambda: stalled_loop.stalled() and applied, timeout=30, interval=0.1)
        await asyncio.sleep(kafka.consumer_stall_seconds + 0.5)  # nothing more to read
        assert stalled_loop.stalled() and not idle_loop.stalled()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_every_loop_of_a_group_joins_it_even_one_given_no_partition(
    kafka_settings: KafkaSettings,
) -> None:
    """Two loops of one group on a topic of one partition: one reads it, the other is given
    nothing, and both say they joined (the one given nothing must not look unready forever)."""
    topic, group = f"loop-test-{uuid.uuid4().hex[:8]}", f"loop-test-{uuid.uuid4().hex[:8]}"
    admin = make_admin(kafka_settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    applied: list[str] = []

    async def apply(messages: list[str]) -> None:
        applied.extend(messages)

    loops = [_loop(kafka_settings, topic, apply, [], group) for _ in range(2)]
    assert not any(loop.joined() for loop in loops)  # not before its consumer joined
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        await eventually(lambda: all(loop.joined() for loop in loops), timeout=30)
        await _produce(kafka_settings, topic, [b"m-1"])
        # And the one partition is read by one of them.
        await eventually(lambda: applied == ["m-1"], timeout=30)
    finally:
        for loop in loops:
            loop.stop()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)


async def test_a_loop_stops_promptly_while_its_broker_is_gone(
    kafka_settings: KafkaSettings,
) -> None:
    broker = EmbeddedBroker()
    broker.start()
    kafka = kafka_settings.model_copy(update={"bootstrap": broker.bootstrap_servers})
    topic = f"loop-test-{uuid.uuid4().hex[:8]}"
    await _produce(kafka, topic, [b"m-1", b"m-2"])
    applied: list[str] = []

    async def apply(messages: list[str]) -> None:
        applied.extend(messages)

    loop = _loop(kafka, topic, apply, [])
    task = asyncio.create_task(loop.run())
    try:
        await eventually(lambda: len(applied) >= 2, timeout=30)
        crash(broker)  # gone, and with it the group's coordinator
        await asyncio.sleep(2.0)
        loop.stop()
        # Within the ten seconds an orchestrator gives before it kills (STOP_SECONDS is 15).
        async with asyncio.timeout(10):
            await task
    finally:
        task.cancel()
        broker.stop()


async def test_a_loop_that_loses_partitions_to_a_rebalance_drops_their_state_and_commits_none(
    kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first loop holds failures and a dead letter for every partition, with a batch in
    hand, when a second loop of its group takes some partitions away."""
    topic, group = f"loop-test-{uuid.uuid4().hex[:8]}", f"loop-test-{uuid.uuid4().hex[:8]}"
    partitions = range(4)
    admin = make_admin(kafka_settings)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, len(partitions), 1)])
    finally:
        await admin.close()
    producer = make_producer(kafka_settings)
    await producer.start()
    try:
        for p in partitions:
            for value in (f"unparseable-{p}", f"m-{p}-1", f"m-{p}-2"):
                await producer.send_and_wait(topic, value.encode(), partition=p)
    finally:
        await producer.stop()
    expected = {f"m-{p}-{i}" for p in partitions for i in (1, 2)}

    asked: list[tuple[str, set[TopicPartition]]] = []  # (client id, partitions) per commit
    commit = AIOKafkaConsumer.commit

    async def spied_commit(self: AIOKafkaConsumer, offsets=None):
        asked.append((self._client._client_id, set(offsets or ())))
        return await commit(self, offsets)

    monkeypatch.setattr(AIOKafkaConsumer, "commit", spied_commit)

    applied: set[str] = set()
    first_calls, holding, release = 0, asyncio.Event(), asyncio.Event()

    async def first_apply(messages: list[str]) -> None:
        nonlocal first_calls
        first_calls += 1
        if first_calls <= 2:  # fewer failures than MAX_BATCH_FAILURES: held, not dead-lettered
            raise ValueError("cannot be stored yet")
        if first_calls == 3:
            holding.set()
            await release.wait()  # the batch in hand while the rebalance takes partitions
        applied.update(messages)

    async def second_apply(messages: list[str]) -> None:
        applied.update(messages)

    first = _loop(
        kafka_settings.model_copy(update={"client_id": "first"}), topic, first_apply, [], group
    )
    second = _loop(
        kafka_settings.model_copy(update={"client_id": "second"}), topic, second_apply, [], group
    )
    everything = {TopicPartition(topic, p) for p in partitions}
    tasks = [asyncio.create_task(first.run())]
    try:
        async with asyncio.timeout(30):
            await holding.wait()
        # What the first loop holds (read directly: no behaviour shows it before it goes wrong).
        assert set(first._failures) == everything
        assert {TopicPartition(t, p) for t, p, _ in first._dead_lettered} == everything

        since = len(asked)
        tasks.append(asyncio.create_task(second.run()))
        await eventually(  # the second loop commits: the rebalance is done
            lambda: any(client == "second" for client, _ in asked[since:]), timeout=30
        )
        lost = set().union(*(parts for client, parts in asked[since:] if client == "second"))
        assert lost and lost < everything
        assert not lost & set(first._failures)
        assert not lost & {TopicPartition(t, p) for t, p, _ in first._dead_lettered}

        release.set()
        # No message lost: each applied by one or the other.
        await eventually(lambda: expected <= applied, timeout=30)
        committed_by_first = [parts for client, parts in asked[since:] if client == "first"]
        assert not any(parts & lost for parts in committed_by_first)
    finally:
        first.stop()
        second.stop()
        release.set()
        async with asyncio.timeout(30):
            await asyncio.gather(*tasks)
