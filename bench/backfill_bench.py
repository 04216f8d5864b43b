"""A back-fill through the whole pipeline on PostgreSQL: the API's intake rate, the rate at which
the purger applies what it took (end to end), and how long an unsubscribe posted behind the
back-fill waits for its erasure. Targets (issue 23), at ``--events 1000000``: end to end at
least half the intake rate of the same run (and at least 10,000 events/s), the purger at most
100 µs of CPU per event with its memory flat from 100k to 1M events, and the unsubscribe erased
within 10 s whatever the backlog.

The API (uvicorn, one worker, as bench/api_bench.py runs it), ``--purgers`` purger processes in
one consumer group (``gallring purger``) and an embedded Tansu broker (idempotence off, as for
the tests) run as processes of their own; the topics are created first with the settings'
partition count (6), so up to six purgers share the work. ``--clients`` concurrent clients post
the events in batches of ``--batch``; every event is about a subject of its own. The events are:

* one ``marketing.contact`` for a dedicated subject, first of the back-fill;
* ``collection_case.closed`` for everyone else: ``--old-share`` of them (default 10 %) closed 37
  to 48 months ago, so their clocks are due on arrival and the sweep erases them meanwhile (as a
  back-fill of old cases does); the rest closed within the last 35 months (pending clocks).

Intake rate: events / time from the first post until the last batch answered. Right after that
the dedicated subject's ``newsletter.unsubscribed`` is posted; its latency runs until its
marketing erasure's proof is stored (``erasure`` row by subject hash). End to end: events /
time from the first post until the purger recorded every event as consumed (``consumed_event``,
one row per applied event in the batch's transaction; its ``count(*)`` scans the table, so it
is polled once a second). The purgers consume from the start, so the intake shares the machine
with them, as it would in a real back-fill. The purger's CPU is utime + stime from
``/proc/<pid>/stat`` of every purger process, from before the first post until the last event
applied: applying, and the sweep erasing the due clocks and its relay publishing them. Its
memory: VmRSS as the applied count crosses each tenth of the back-fill, VmHWM (peak) at the end.
What PostgreSQL wrote, per event: WAL bytes and rows by table (``bench/pg_writes.py``).
Over the same time the CPU of every component (the API, the purgers, PostgreSQL, the broker, this
bench's clients) and of the whole machine (``bench/cpu_budget.py``): what an event costs in all,
and the rate this machine's CPUs allow at that cost. Run it alone: other work on the machine
counts in its busy time (and other databases' sessions in PostgreSQL's).

With ``--profile DIR`` each purger runs under cProfile (only here, not in the product): one
profile of the event loop's thread (the consumer loop, aiokafka) and one of the batches applied
in the worker thread (``handle_batch``, which ``asyncio.to_thread`` runs), written to
``DIR/purger-<n>-{loop,apply}.prof`` when the purger stops on SIGTERM; the top functions are
printed. Profiling slows the purger: its rates and CPU are not comparable then.

    .venv/bin/python -m bench.backfill_bench [--events 100000] [--batch 1000] [--clients 4]
                                             [--purgers 1] [--old-share 0.1] [--profile DIR]

On a 2-CPU machine one purger applies about 3,700 events/s at 100,000 events and 4,850 at
300,000 (a run of about one and two minutes); 1,000,000 takes about four minutes, plus ~25 s to
build the bodies (250 MB, held in memory so that building them is not timed).
"""

import argparse
import asyncio
import json
import os
import pstats
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import psycopg
from dateutil.relativedelta import relativedelta

from bench import api_bench
from bench.api_bench import (
    PURGER_COMMAND,
    _conninfo,
    _count,
    bench_database,
    create_key,
    start_server,
)
from bench.cpu_budget import Budget, CpuMeter, command_seconds, process_tree_seconds
from bench.pg_writes import Written, written
from bench.unbraked_policy import unbraked_policy_file
from shared.domain.contract import Subject
from shared.domain.pseudonym import Pseudonymiser, subject_hash
from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker, free_loopback_port
from shared.messaging.kafka import ensure_topics
from shared.runtime.settings import KafkaSettings
from shared.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
SECRET = "bench-secret-bench-secret-bench-secret"
UNSUBSCRIBER_REF = "bench-unsubscriber"
POLL_SECONDS = 1.0
LOG_DIRECTORY = Path(tempfile.mkdtemp(prefix="backfill-bench-"))
STATUS_PORTS: dict[int, int] = {}  # each purger's /readyz, by its number
APPLY_TIMEOUT_SECONDS = 3 * 3600.0
# The purger under cProfile: one profiler for the event loop's thread, one enabled around each
# batch applied in the worker thread (cProfile sees only the thread it is enabled in). The
# purger stops on SIGTERM by returning from main(), so both are written.
PROFILED_PURGER = """
import cProfile
import sys
import services.purger.consumer as consumer
from services.cli.main import main

loop_profile, apply_profile = cProfile.Profile(), cProfile.Profile()
handle_batch = consumer.handle_batch

def profiled_handle_batch(*args, **kwargs):
    apply_profile.enable()
    try:
        return handle_batch(*args, **kwargs)
    finally:
        apply_profile.disable()

consumer.handle_batch = profiled_handle_batch
loop_profile.enable()
try:
    main(["purger"])
finally:
    loop_profile.disable()
    loop_profile.dump_stats(sys.argv[1] + "-loop.prof")
    apply_profile.dump_stats(sys.argv[1] + "-apply.prof")
"""


@dataclass
class Run:
    """What the back-fill measured, in seconds from its first post."""

    intake_seconds: float = 0.0
    applied_seconds: float = 0.0
    unsubscribe_seconds: float = 0.0  # from its post, not from the first
    #: Where the unsubscribe waited: seconds from its post to each stage, as the tables say.
    unsubscribe_stages: dict[str, float] = field(default_factory=dict)
    accepted: int = 0
    purger_cpu_seconds: float = 0.0
    rss_mib_by_tenth: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    budget: Budget | None = None  # from the first post until every event was applied
    wrote: Written | None = None  # what PostgreSQL wrote meanwhile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events of the back-fill")
    parser.add_argument("--batch", type=int, default=1000, help="events per POST")
    parser.add_argument("--clients", type=int, default=4, help="concurrent posting clients")
    parser.add_argument("--purgers", type=int, default=1, help="purger processes, one group")
    parser.add_argument(
        "--old-share", type=float, default=0.1, help="cases closed long enough ago to be due"
    )
    parser.add_argument("--profile", type=Path, help="run the purgers under cProfile, here")
    args = parser.parse_args()

    print(f"building {args.events:,} events ...", file=sys.stderr)
    bodies = batch_bodies(args.events, args.batch, args.old_share)
    with bench_database() as database_url, EmbeddedBroker() as broker:
        upgrade(database_url)
        key = create_key(database_url)
        kafka = KafkaSettings(bootstrap=broker.bootstrap_servers, enable_idempotence=False)
        asyncio.run(ensure_topics(kafka, topics.ALL_TOPICS))
        env = {
            **os.environ,
            "GALLRING_DATABASE_URL": database_url,
            "GALLRING_PSEUDONYM_SECRET": SECRET,
            "GALLRING_SECRET_SEALING_KEY": "bench-sealing-key-bench-sealing-key",
            "GALLRING_KAFKA_BOOTSTRAP": broker.bootstrap_servers,
            "GALLRING_KAFKA_ENABLE_IDEMPOTENCE": "false",
            "GALLRING_QUIET_LIBRARIES": "true",
            # Every due case erased, as before disposition review: with the default policy's
            # review limits the sweep would erase 10,000 a day and stop the rest for a review.
            "GALLRING_POLICY_FILE": str(unbraked_policy_file(LOG_DIRECTORY)),
        }
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        api_port = free_loopback_port()
        api = start_server(
            ["--factory", "services.api.app:app_from_environment"], api_port, env, workers=1
        )
        purgers = [start_purger(env, number, args.profile) for number in range(args.purgers)]
        try:
            wait_until_ready(purgers)
            meter = CpuMeter(
                {
                    "API": lambda: process_tree_seconds(api.pid),
                    "purger(s)": lambda: sum(process_tree_seconds(p.pid) for p in purgers),
                    "PostgreSQL": lambda: command_seconds("postgres"),
                    "broker": lambda: process_tree_seconds(broker.pid or 0),
                    "clients": time.process_time,  # this bench's posting
                }
            )
            run = asyncio.run(backfill(args, bodies, key, api_port, database_url, purgers, meter))
        finally:
            for process in [*purgers, api]:
                process.terminate()
            for process in [*purgers, api]:
                process.wait(timeout=60)
    report(args, run)
    print(f"purger logs: {LOG_DIRECTORY}")
    if args.profile:
        for number in range(args.purgers):
            print_profile(args.profile / f"purger-{number}")


def batch_bodies(events: int, batch: int, old_share: float) -> list[bytes]:
    """The back-fill's POST bodies, built before the clock starts."""
    now = datetime.now(UTC)
    randomness = random.Random(23)
    run = uuid.uuid4().hex[:8]  # subjects of their own in each run

    def event(n: int) -> dict[str, object]:
        if n == 0:
            return {
                "event_id": str(uuid.uuid4()),
                "type": "marketing.contact",
                "occurred_at": (now - timedelta(days=30)).isoformat(),
                "subject": {"ref": UNSUBSCRIBER_REF},
                "role": "newsletter_recipient",
            }
        old = randomness.random() < old_share
        closed = now - relativedelta(months=37 if old else 0) - timedelta(days=1)
        closed -= timedelta(seconds=randomness.uniform(0, (330 if old else 1050) * 86400))
        # Subject refs and case ids of at most nine digits: ten or twelve could be a valid
        # personnummer, which the intake refuses.
        return {
            "event_id": str(uuid.uuid4()),
            "type": "collection_case.closed",
            "occurred_at": closed.isoformat(),
            "subject": {"ref": f"bench-{run}-{n}"},
            "role": "debtor",
            "scope": {"case_id": f"C-{n}"},
            "data": {},
        }

    return [
        json.dumps([event(n) for n in range(start, min(start + batch, events))]).encode()
        for start in range(0, events, batch)
    ]


def unsubscribe_body(event_id: uuid.UUID) -> bytes:
    return json.dumps(
        {
            "event_id": str(event_id),
            "type": "newsletter.unsubscribed",
            "occurred_at": datetime.now(UTC).isoformat(),
            "subject": {"ref": UNSUBSCRIBER_REF},
            "role": "newsletter_recipient",
        }
    ).encode()


async def backfill(
    args: argparse.Namespace,
    bodies: list[bytes],
    key: str,
    port: int,
    database_url: str,
    purgers: list[subprocess.Popen[bytes]],
    meter: CpuMeter,
) -> Run:
    """Post the back-fill, then the unsubscribe, and wait for both to be applied."""
    run = Run()
    refused: Counter[tuple[str, str]] = Counter()  # answers other than accepted, and why
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    base = f"http://127.0.0.1:{port}"
    pending: Iterator[bytes] = iter(bodies)
    cpu_before = sum(process_tree_seconds(p.pid) for p in purgers)

    async def client(session: aiohttp.ClientSession) -> None:
        for body in pending:  # shared: each client takes the next batch
            async with session.post(f"{base}/v1/events/batch", data=body) as answer:
                answer.raise_for_status()
                result = await answer.json()
                run.accepted += result["accepted"]
                for item in result["results"]:
                    if item["status"] != "accepted":
                        refused[(item["status"], json.dumps(item["errors"])[:300])] += 1

    async with aiohttp.ClientSession(headers=headers) as session:
        before = written(_conninfo(database_url))
        started = time.perf_counter()
        meter.start(started)
        await asyncio.gather(*(client(session) for _ in range(args.clients)))
        run.intake_seconds = time.perf_counter() - started
        posted, posted_at = time.perf_counter(), datetime.now(UTC)
        unsubscribe = uuid.uuid4()
        async with session.post(f"{base}/v1/events", data=unsubscribe_body(unsubscribe)) as answer:
            answer.raise_for_status()
    if run.accepted != args.events:
        raise RuntimeError(
            f"the API accepted {run.accepted:,} of {args.events:,} events; the others: {refused}"
        )

    pseudonym = Subject(ref=UNSUBSCRIBER_REF).pseudonym(Pseudonymiser(SECRET.encode()))
    unsubscriber = subject_hash(pseudonym)
    expected = args.events + 1  # the back-fill and the unsubscribe
    tenths = [args.events * n // 10 for n in range(1, 11)]
    with psycopg.connect(_conninfo(database_url), autocommit=True) as connection:
        deadline = time.monotonic() + APPLY_TIMEOUT_SECONDS
        counted_at = 0.0
        while not run.applied_seconds or not run.unsubscribe_seconds:
            if time.monotonic() > deadline:
                raise RuntimeError("the purger did not apply the back-fill in time")
            # The unsubscribe's proof is one hash-index lookup: asked ten times a second.
            if (
                not run.unsubscribe_seconds
                and connection.execute(
                    "SELECT 1 FROM erasure WHERE subject_hash = %s AND category = 'marketing'",
                    (unsubscriber,),
                ).fetchone()
            ):
                run.unsubscribe_seconds = time.perf_counter() - posted
            # Counting the consumed events scans them: once a second.
            if not run.applied_seconds and time.monotonic() - counted_at >= POLL_SECONDS:
                counted_at = time.monotonic()
                applied = _count(connection, "SELECT count(*) FROM consumed_event")
                while tenths and applied >= tenths[0]:
                    tenths.pop(0)
                    run.rss_mib_by_tenth.append(sum(_status_mib(p.pid, "VmRSS") for p in purgers))
                if applied >= expected:
                    run.budget = meter.stop(time.perf_counter())
                    run.applied_seconds = time.perf_counter() - started
                    run.purger_cpu_seconds = (
                        sum(process_tree_seconds(p.pid) for p in purgers) - cpu_before
                    )
                    run.peak_rss_mib = [_status_mib(p.pid, "VmHWM") for p in purgers]
            await asyncio.sleep(0.1)
        run.unsubscribe_stages = unsubscribe_stages(
            connection, unsubscribe, unsubscriber, posted_at
        )
    # An idle session reports its last counts within ten seconds (PostgreSQL 15).
    await asyncio.sleep(11.0)
    run.wrote = written(_conninfo(database_url)) - before
    return run


def unsubscribe_stages(
    connection: psycopg.Connection, event_id: uuid.UUID, hashed_subject: str, posted_at: datetime
) -> dict[str, float]:
    """Seconds from the unsubscribe's post until it was in the outbox, published by the API's
    relay, consumed by the purger, and its erasure executed: where it waited."""
    stages = {}
    for stage, query, parameter in (
        ("in the outbox", "SELECT created_at FROM published_message WHERE event_id = %s", event_id),
        ("published", "SELECT published_at FROM published_message WHERE event_id = %s", event_id),
        ("consumed", "SELECT consumed_at FROM consumed_event WHERE event_id = %s", event_id),
        (
            "erased",
            "SELECT executed_at FROM erasure WHERE subject_hash = %s AND category = 'marketing'",
            hashed_subject,
        ),
    ):
        row = connection.execute(query, (parameter,)).fetchone()
        if row is not None:
            stages[stage] = (row[0] - posted_at).total_seconds()
    return stages


def report(args: argparse.Namespace, run: Run) -> None:
    intake = args.events / run.intake_seconds
    end_to_end = args.events / run.applied_seconds
    cpu_us = run.purger_cpu_seconds / args.events * 1e6
    print(
        f"back-fill: {args.events:,} events in batches of {args.batch:,} from {args.clients} "
        f"clients; {args.purgers} purger(s); {args.old_share:.0%} of cases due on arrival"
    )
    print(f"intake:     {intake:>10,.0f} events/s  ({run.intake_seconds:,.1f} s)")
    print(
        f"end to end: {end_to_end:>10,.0f} events/s  ({run.applied_seconds:,.1f} s; "
        f"ratio {end_to_end / intake:.2f}, target >= 0.50 and >= 10,000 events/s)"
    )
    print(
        f"purger CPU: {cpu_us:>10,.0f} us/event  ({run.purger_cpu_seconds:,.1f} s in all; "
        f"target <= 100)"
    )
    print(
        "purger RSS at each tenth applied (MiB, all purgers): "
        + ", ".join(f"{mib:,.0f}" for mib in run.rss_mib_by_tenth)
    )
    print("purger peak RSS (MiB): " + ", ".join(f"{mib:,.0f}" for mib in run.peak_rss_mib))
    print(
        f"unsubscribe after the last batch: erased {run.unsubscribe_seconds:,.1f} s later "
        f"(target <= 10)"
    )
    print(
        "  seconds from its post: "
        + ", ".join(f"{stage} {seconds:,.1f}" for stage, seconds in run.unsubscribe_stages.items())
    )
    if run.budget is not None:
        print("CPU from the first post until every event was applied, by component:")
        print("\n".join(run.budget.report(args.events, target_rate=10_000)))
    if run.wrote is not None:
        print("what PostgreSQL wrote meanwhile (the intake, the relays, the purger, its sweep):")
        print("\n".join(run.wrote.report(args.events, "event")))


def start_purger(env: dict[str, str], number: int, profile: Path | None) -> subprocess.Popen[bytes]:
    """``gallring purger``, under cProfile with ``profile``; its lines (a sweep's every few
    hundred ms) go to a file of its own, not between the figures."""
    command = (
        [sys.executable, "-c", PROFILED_PURGER, str(profile / f"purger-{number}")]
        if profile
        else PURGER_COMMAND
    )
    purger, STATUS_PORTS[number] = api_bench.start_purger(
        env, LOG_DIRECTORY / f"purger-{number}.log", command
    )
    return purger


def wait_until_ready(purgers: list[subprocess.Popen[bytes]]) -> None:
    """Every purger has joined the group: the rebalances are over before the clock starts."""
    deadline = time.monotonic() + 90
    for number, purger in enumerate(purgers):
        api_bench.wait_until_ready(purger, STATUS_PORTS[number], deadline, LOG_DIRECTORY)


def _status_mib(pid: int, name: str) -> float:
    """A ``/proc/<pid>/status`` memory figure (``VmRSS``, ``VmHWM``) in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    raise LookupError(name)


def print_profile(prefix: Path) -> None:
    """The top functions of a purger's profiles, by cumulative and by own time."""
    for part in ("apply", "loop"):
        path = Path(f"{prefix}-{part}.prof")
        if not path.exists():
            print(f"no profile at {path}")
            continue
        print(f"\n=== {path} ===")
        stats = pstats.Stats(str(path)).strip_dirs()
        stats.sort_stats("cumulative").print_stats(30)
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
