"""The relay picks partitions itself: it must pick the ones Kafka's default partitioner would,
or a subject's events would split between the relay's partition and any other producer's."""

import random

import pytest
from aiokafka.partitioner import DefaultPartitioner

from shared.messaging.kafka import partition_for


@pytest.mark.parametrize("partition_count", [1, 3, 6, 12, 100])
def test_keys_go_where_kafkas_default_partitioner_sends_them(partition_count: int) -> None:
    generator = random.Random(partition_count)
    partitions = list(range(partition_count))
    # Every tail length (murmur2 mixes the last 1 to 3 bytes apart), pseudonym-sized keys, and
    # bytes above 0x7f (Java hashes signed bytes).
    keys = [generator.randbytes(length) for length in range(70) for _ in range(20)]
    keys += ["björn:4711".encode(), b"\xff" * 9]
    expected = [DefaultPartitioner()(key, partitions, partitions) for key in keys]
    assert [partition_for(key, partitions) for key in keys] == expected
