"""The outbox relay's publishing rate on PostgreSQL: N rows in the outbox, one relay, an embedded
broker; how long until the broker acknowledged them all, in messages per second and the relay's
CPU per message.

Published rows are moved to a table of kept copies (a broker can lose what it acknowledged),
where they were once deleted; this shows what that costs. Run it at two commits to compare:

    .venv/bin/python -m bench.relay_bench [--messages 200000] [--rounds 3]

``--relays K`` (K > 1) runs K relays sharing the publishing (``GALLRING_RELAY_SHARDED``), each in
a process of its own as API replicas run them, and prints their rate beside one relay's of the
same run: the ceiling a deployment's intake meets, and how far sharding lifts it on this machine
(whose CPUs the relays share with PostgreSQL and the broker).
"""

import argparse
import asyncio
import multiprocessing
import os
import statistics
import time
import uuid
from typing import Any

import orjson
import psycopg
from prometheus_client import CollectorRegistry

from bench.cpu_budget import CpuMeter, command_seconds, process_tree_seconds
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
    parser.add_argument("--relays", type=int, default=1, help="sharing relays, one per process")
    args = parser.parse_args()
    counts = sorted({1, args.relays})
    rates: dict[int, list[float]] = {count: [] for count in counts}
    cpus: dict[int, list[float]] = {count: [] for count in counts}
    with EmbeddedBroker() as broker:
        for _ in range(args.rounds):
            for count in counts:  # taking turns, so that the machine's noise hits both alike
                rate, cpu = one_round(broker, args.messages, count)
                rates[count].append(rate)
                cpus[count].append(cpu)
                print(
                    f"  {count} relay(s): {rate:,.0f} messages/s, "
                    f"{cpu:.1f} µs of relay CPU per message"
                )
    for count in counts:
        print(
            f"{count} relay(s) publishing (median of {args.rounds}): "
            f"{statistics.median(rates[count]):,.0f} messages/s, "
            f"{statistics.median(cpus[count]):.1f} µs of relay CPU per message"
        )
    if args.relays > 1:
        ratio = statistics.median(rates[args.relays]) / statistics.median(rates[1])
        print(f"{args.relays} sharing relays / one relay: {ratio:.2f}")


def one_round(broker: EmbeddedBroker, messages: int, relays: int) -> tuple[float, float]:
    """``relays`` relays, each in a process of its own (sharing the publishing if more than
    one), started and holding their leases before the outbox is filled; their rate, and their
    CPU per message while they published."""
    name = f"relay_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    spawn = multiprocessing.get_context("spawn")
    stop = spawn.Event()
    cpu_seconds = [spawn.Value("d", 0.0) for _ in range(relays)]
    processes = [
        spawn.Process(
            target=_relay_process, args=(url, broker.bootstrap_servers, relays > 1, stop, cpu)
        )
        for cpu in cpu_seconds
    ]
    try:
        upgrade(url)
        for process in processes:
            process.start()
        with psycopg.connect(POSTGRES_ADMIN.rsplit("/", 1)[0] + f"/{name}") as watch:
            _wait_for_leases(watch, relays)
            fill(name, messages)  # in one transaction: the relays see it all at its commit
            meter = CpuMeter(
                {
                    "relays": lambda: sum(cpu.value for cpu in cpu_seconds),
                    "PostgreSQL": lambda: command_seconds("postgres"),
                    "broker": lambda: process_tree_seconds(broker.pid or 0),
                }
            )
            started = time.monotonic()
            meter.start(started)
            while watch.execute("SELECT count(*) FROM outbox_message").fetchone() != (0,):
                watch.commit()
                time.sleep(0.05)
            elapsed = time.monotonic() - started
            time.sleep(0.2)  # the relays' next reports of their CPU
            budget = meter.stop(started + elapsed)
        print(f"  CPU per message, by component ({relays} relay(s)):")
        print("\n".join(budget.report(messages, target_rate=messages / elapsed)[:-1]))
        return messages / elapsed, budget.seconds["relays"] / messages * 1e6
    finally:
        stop.set()
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
        with psycopg.connect(POSTGRES_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _wait_for_leases(watch: psycopg.Connection, relays: int) -> None:
    """Until the one relay holds the lease, or every sharing relay holds some buckets."""
    if relays == 1:
        query = "SELECT count(*) = 1 FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 1"
    else:
        query = (
            "SELECT count(*) = 64 AND count(DISTINCT pid) = %s FROM pg_locks "
            "WHERE locktype = 'advisory' AND objsubid = 2 AND granted"
        )
    deadline = time.monotonic() + 60
    while not watch.execute(query, (relays,) if relays > 1 else ()).fetchone()[0]:  # type: ignore[index]
        watch.commit()
        if time.monotonic() > deadline:
            raise TimeoutError("the relays did not take their leases within a minute")
        time.sleep(0.05)
    watch.commit()


def _relay_process(url: str, bootstrap: str, sharded: bool, stop: Any, cpu: Any) -> None:
    async def run() -> None:
        engine = make_engine(url)
        kafka = KafkaSettings(bootstrap=bootstrap, enable_idempotence=False)
        relay = OutboxRelay(
            engine, kafka, RelaySettings(sharded=sharded), OutboxMetrics(CollectorRegistry())
        )
        task = asyncio.create_task(relay.run())
        while not stop.is_set():
            cpu.value = time.process_time()
            await asyncio.sleep(0.05)
        relay.stop()
        await task
        engine.dispose()

    asyncio.run(run())


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
