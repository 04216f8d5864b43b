"""The outbox relay's publishing rate on PostgreSQL: N rows in the outbox, one relay, an embedded
broker; how long until the broker acknowledged them all, in messages per second and the relay's
CPU per message.

Published rows are moved to a table of kept copies (a broker can lose what it acknowledged),
where they were once deleted; this shows what that costs. Run it at two commits to compare:

    .venv/bin/python bench/relay_bench.py [--messages 200000] [--rounds 3]
"""

import argparse
import asyncio
import os
import statistics
import time
import uuid

import orjson
import psycopg
from prometheus_client import CollectorRegistry

from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.messaging.outbox import OutboxRelay
from shared.messaging.outbox.metrics import OutboxMetrics
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade

POSTGRES_ADMIN = os.environ.get("BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3, help="medians are printed")
    args = parser.parse_args()
    rates, cpus = [], []
    with EmbeddedBroker() as broker:
        for _ in range(args.rounds):
            rate, cpu = asyncio.run(one_round(broker, args.messages))
            rates.append(rate)
            cpus.append(cpu)
            print(f"  {rate:,.0f} messages/s, {cpu:.1f} µs of relay CPU per message")
    print(f"relay publishing (median of {args.rounds}): {statistics.median(rates):,.0f} messages/s")
    print(f"relay CPU per message (median): {statistics.median(cpus):.1f} µs")


async def one_round(broker: EmbeddedBroker, messages: int) -> tuple[float, float]:
    name = f"relay_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        upgrade(url)
        fill(name, messages)
        engine = make_engine(url)
        kafka = KafkaSettings(bootstrap=broker.bootstrap_servers, enable_idempotence=False)
        relay = OutboxRelay(engine, kafka, RelaySettings(), OutboxMetrics(CollectorRegistry()))
        task = asyncio.create_task(relay.run())
        started, cpu_started = time.monotonic(), time.process_time()
        with psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}") as watch:
            while watch.execute("SELECT count(*) FROM outbox_message").fetchone() != (0,):
                watch.commit()
                await asyncio.sleep(0.05)
        elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
        relay.stop()
        await task
        engine.dispose()
        return messages / elapsed, cpu / messages * 1e6
    finally:
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def fill(database: str, messages: int) -> None:
    """``messages`` lifecycle-sized rows over 10,000 keys, as a back-fill leaves them."""
    value = orjson.dumps({"type": "collection_case.closed", "padding": "x" * 300}).decode()
    headers = orjson.dumps({"event-type": "collection_case.closed", "event-id": ""}).decode()
    with psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{database}") as connection:
        with connection.cursor().copy(
            "COPY outbox_message (event_id, topic, message_key, value, headers, created_at) "
            "FROM STDIN"
        ) as copy:
            for number in range(messages):
                copy.write_row(
                    (
                        uuid.uuid4(),
                        topics.LIFECYCLE,
                        f"key-{number % 10_000}",
                        value,
                        headers,
                        "2026-12-07T00:00:00Z",
                    )
                )
        connection.commit()


if __name__ == "__main__":
    main()
