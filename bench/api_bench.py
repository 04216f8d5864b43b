"""API intake throughput against PostgreSQL, compared with a bare FastAPI hello-world.

Both servers run as uvicorn processes with the same settings (``--workers``, default one; no
access log); the same load generator (bench/load.py) drives both from a second process on
loopback, with the same number of connections. That number (64) keeps both servers busy: the API
answers an event only once its group has committed, so it needs more requests in flight than
hello-world does to be measured at capacity rather than at its latency (at 16 connections it sat
idle a fifth of the time, while hello-world's rate is the same at 16 and at 64). Each round
prints how busy each server was. The API runs as in production (FastAPI's OpenTelemetry
lookup off unless configured, the garbage collector tuned once started); the hello-world is
FastAPI as installed. Only successful answers count: 200 from hello-world, 202 for a single
event, and for batches the events stored, as the database counts them. Targets (issue 4):
single-event POST at least 40 % of hello-world; batch intake at least 20,000 events/s.

Before those rounds, a latency phase (issue 23): what an upstream system sending single events
at a steady rate feels. One purger process (``gallring purger``, as in production) consumes
beside the API what the API's relay publishes to the embedded Tansu broker (topics created
first, as the settings make them). For each of ``--latency-rates`` (default 500 and 2,000/s)
bench/load.py posts single events open-loop for ``--latency-seconds``: request i is due at
start + i/rate, whatever the server does, and its latency runs from that due time to its answer,
so a stall of the API shows in full in every request due during it, not only in the few in
flight (timed from the send, it would be hidden: coordinated omission). Per rate it prints
p50/p95/p99/max (target at 2,000/s: p99 <= 10 ms), how many of the requests were answered, how
many the generator itself handed over late (more than a few and the run is void), and how long
after the last request the purger had applied every event (whether it kept up). A warm-up of 2 s
at the first rate comes first, uncounted; between rates the purger catches up. The purger is
stopped before the throughput rounds, which run as before (the latency phase's events stay in
the database). ``--latency-rates ""`` skips the phase.

After each round's batch phase, the limit of batch intake (issue 23: target at least 0.50 of
it): a bare psycopg COPY of the rows a batch must write, with nothing else. For as many events
as the batch phase stored (in whole transactions of 1,000), each transaction copies 1,000
``idempotency_record`` and 1,000 ``outbox_message`` rows and inserts one ``audit_entry`` row,
as the API stores a batch of 1,000 from one key, into the same tables of the same database, over
as many connections as the batch phase's clients (:data:`BATCH_CONNECTIONS`). The rows are the
API's own: events like the batch phase's (fresh ids, so nothing conflicts), parsed and
pseudonymised by the intake's code (:class:`services.api.events.service.Intake`), and encoded
for COPY before the clock starts, so the client's share is sending bytes. No HTTP, no
validation, no pseudonymising, no JSON document to unpack on the server: what is left is what
the database must do for the rows themselves. Each transaction is rolled back, not committed: a
committed outbox row is published by the running API's relay at once (it runs in the API's
process and holds the publishing lease for as long as it runs, so the bench cannot pause it),
and publishing moves every row again (an insert into ``published_message``, a delete from the
outbox) beside the COPY, which would measure the relay along with the rows. Rolled back, the
timing includes the COPY and the inserts into the tables and their indexes, WAL included, but
not the commit's WAL flush, which the API pays once per 1,000 events: if anything the limit
is high, so the ratio errs low, never flattering (committing the same COPY into a database with
no relay beside it, on this machine, moved the rate by less than the noise between runs, which
was a third either way under load; presumably the other connection's COPY overlaps the
flush). Nothing is left to publish or to empty; the three tables are vacuumed afterwards (not
timed), so that the next round's intake does not step over the rolled-back rows.

    .venv/bin/python -m bench.api_bench [--seconds 10] [--connections 64] [--workers 1] [--rounds 3]
                                        [--latency-rates 500,2000] [--latency-seconds 10]
"""

import argparse
import asyncio
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, LiteralString

import psycopg
from sqlalchemy.engine import make_url

from bench.cpu_budget import CpuMeter, command_seconds, process_tree_seconds
from services.api.api_keys import KeyStore, Principal, Scope
from services.api.events.service import Intake
from shared.domain.contract import parse_events
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.lifecycle_message import SCHEMA_VERSION
from shared.domain.pseudonym import Pseudonymiser
from shared.messaging import topics
from shared.messaging.embedded_broker import EmbeddedBroker, free_loopback_port
from shared.messaging.kafka import ensure_topics
from shared.messaging.outbox.message import message_headers
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "GALLRING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
UVICORN_FLAGS = ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
PURGER_COMMAND = [sys.executable, "-m", "services.cli.main", "purger"]
LATENCY_TARGET_MS = 10.0  # p99 at 2,000 single events/s (issue 23)
WARM_UP_SECONDS = 2.0
CATCH_UP_TIMEOUT_SECONDS = 300.0
BATCH_EVENTS = 1000  # events in a batch request, and in a transaction of the bare COPY
BATCH_CONNECTIONS = 2  # the batch phase's clients, and the bare COPY's connections
COPY_TARGET = 0.50  # batch intake against the bare COPY (issue 23)
BENCH_SECRET = "bench-secret-bench-secret-bench-secret"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3, help="medians are printed")
    parser.add_argument(
        "--latency-rates",
        type=_rates,
        default=_rates("500,2000"),
        help='single events/s, comma-separated, for the latency phase ("" skips it)',
    )
    parser.add_argument("--latency-seconds", type=float, default=10.0, help="at each rate")
    args = parser.parse_args()

    with bench_database() as database_url, EmbeddedBroker() as broker:
        upgrade(database_url)
        key = create_key(database_url)
        kafka = KafkaSettings(bootstrap=broker.bootstrap_servers, enable_idempotence=False)
        asyncio.run(ensure_topics(kafka, topics.ALL_TOPICS))  # before the relay and the purger
        hello_port, api_port = free_loopback_port(), free_loopback_port()
        env = {
            **os.environ,
            "GALLRING_DATABASE_URL": database_url,
            "GALLRING_PSEUDONYM_SECRET": BENCH_SECRET,
            "GALLRING_SECRET_SEALING_KEY": "bench-sealing-key-bench-sealing-key",
            "GALLRING_KAFKA_BOOTSTRAP": broker.bootstrap_servers,
            "GALLRING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        }
        servers = [
            start_server(["bench.hello_app:app"], hello_port, env, args.workers),
            start_server(
                ["--factory", "services.api.app:app_from_environment"], api_port, env, args.workers
            ),
        ]
        try:
            latencies = (
                latency_phase(args, key, api_port, servers[1].pid, broker, env, database_url)
                if args.latency_rates
                else []
            )
            rounds = [
                run_round(args, key, hello_port, api_port, servers, database_url)
                for _ in range(args.rounds)
            ]
        finally:
            for server in servers:
                server.terminate()
                server.wait(timeout=10)

    if latencies:
        print(
            f"latency: single events open-loop, {args.latency_seconds:g} s at each rate, one "
            "purger consuming beside the API; from each request's due time to its answer"
        )
    for figures in latencies:
        ms = figures["latency_ms"]
        print(
            f"latency at {figures['rate']:,.0f}/s: p50 {ms['p50']:.1f} ms, p95 {ms['p95']:.1f} ms, "
            f"p99 {ms['p99']:.1f} ms (target p99 <= {LATENCY_TARGET_MS:g} ms), max "
            f"{ms['max']:.1f} ms; answered {figures['requests']:,} of {figures['sent']:,}, late "
            f"{figures['late']:,} (over {figures['late_ms']:g} ms; at most "
            f"{figures['most_behind_ms']:.1f} ms); the purger had applied every event "
            f"{figures['caught_up_seconds']:.1f} s after the last answer"
        )
        budget = figures["budget"]
        print(f"  CPU while they were sent ({budget.elapsed:.1f} s), by component:")
        print("\n".join(budget.report(figures["sent"], target_rate=figures["rate"])))
    print(f"uvicorn workers: {args.workers} each; {args.rounds} round(s) of {args.seconds:g} s")
    for number, figures in enumerate(rounds, 1):
        print(
            f"round {number}: hello-world {figures['hello']:,.0f} req/s, single event "
            f"{figures['single']:,.0f} req/s (ratio {figures['ratio']:.2f}), batch "
            f"{figures['batch']:,.0f} events/s; server CPU: hello-world "
            f"{figures['hello_cpu']:,.0f} us/request, single event {figures['single_cpu']:,.0f} "
            f"us/request (ratio {figures['cpu_ratio']:.2f}), batch {figures['batch_cpu']:,.0f} "
            f"us/event; server busy: hello-world {figures['hello_busy']:.0%}, single event "
            f"{figures['single_busy']:.0%}, batch {figures['batch_busy']:.0%}; left in the "
            f"outbox, then published: {figures['single_left']:,.0f} after single events, "
            f"{figures['batch_left']:,.0f} after batches"
        )
        print(f"round {number}: {_against_copy(figures['batch'], figures['copy'])}")
    if not rounds:
        return  # --rounds 0: the latency phase alone
    # Throughput moves with whatever else the machine runs; the median of the rounds moves less,
    # and the servers' own CPU time per request less still, so both are printed.
    ratio, batch = _median(rounds, "ratio"), _median(rounds, "batch")
    print(f"single-event POST vs hello-world (median): {ratio:.2f} (target >= 0.75)")
    print(f"  by server CPU per request (median):       {_median(rounds, 'cpu_ratio'):.2f}")
    print(
        f"batch intake (median): {batch:,.0f} events/s, {batch / 20_000:.2f} of the target 20,000"
    )
    print(f"median: {_against_copy(batch, _median(rounds, 'copy'))}")


def _against_copy(batch: float, copy: float) -> str:
    return (
        f"batch intake {batch:,.0f} events/s vs bare COPY {copy:,.0f} events/s: ratio "
        f"{batch / copy:.2f} (target >= {COPY_TARGET:.2f})"
    )


def run_round(
    args, key: str, hello_port: int, api_port: int, servers, database_url: str
) -> dict[str, float]:
    """Hello-world, single events and batches of 1,000, one after the other, with new event ids.

    After each intake phase the relay is let publish what that phase left in the outbox (the
    figure is printed), so that no phase pays for an earlier one's relaying. Then the bare COPY
    of as many events as the batches stored (:func:`copy_phase`)."""
    with tempfile.TemporaryDirectory() as scratch:
        hello = drive(
            "/hello",
            hello_port,
            bodies(scratch, "hello", ["{}"] * 400_000),
            args,
            server=servers[0],
        )
        single = drive(
            "/v1/events",
            api_port,
            bodies(scratch, "events", (event_json() for _ in range(150_000))),
            args,
            key,
            server=servers[1],
        )
        single_left = drain_outbox(database_url)
        batches = (batch_json() for _ in range(400))
        stored_before = stored_events(database_url)
        batch = drive(
            "/v1/events/batch",
            api_port,
            bodies(scratch, "batches", batches),
            args,
            key,
            connections=BATCH_CONNECTIONS,
            server=servers[1],
        )
        batch_left = drain_outbox(database_url)
    # Only what succeeded counts: hello-world's 200s, single events' 202s (accepted), and the
    # events the batches stored, as the database counts them.
    hello_ok, single_ok = _answered(hello, "200"), _answered(single, "202")
    batch_events = stored_events(database_url) - stored_before
    copy = copy_phase(database_url, batch_events)
    hello_cpu = hello["server_cpu"] / max(hello_ok, 1)
    single_cpu = single["server_cpu"] / max(single_ok, 1)
    figures = {
        "hello": hello_ok / hello["seconds"],
        "single": single_ok / single["seconds"],
        "batch": batch_events / batch["seconds"],
        "hello_cpu": hello_cpu * 1e6,
        "single_cpu": single_cpu * 1e6,
        "cpu_ratio": hello_cpu / single_cpu,
        "hello_busy": hello["server_cpu"] / hello["seconds"],
        "single_busy": single["server_cpu"] / single["seconds"],
        "batch_busy": batch["server_cpu"] / batch["seconds"],
        "batch_cpu": batch["server_cpu"] / max(batch_events, 1) * 1e6,
        "single_left": single_left,
        "batch_left": batch_left,
        "copy": copy,
    }
    figures["ratio"] = figures["single"] / figures["hello"]
    return figures


def copy_phase(database_url: str, events: int) -> float:
    """Events/s of the bare COPY (the module's docstring says what it holds and why it is rolled
    back): ``events`` rounded up to whole transactions, over :data:`BATCH_CONNECTIONS`."""
    now = datetime.now(UTC)
    pseudonymiser, actor = Pseudonymiser(BENCH_SECRET.encode()), Principal("", "bench", frozenset())
    transactions = [
        copy_transaction(pseudonymiser, actor, now)
        for _ in range(max(1, math.ceil(events / BATCH_EVENTS)))
    ]
    seconds = asyncio.run(_copy_all(_conninfo(database_url), transactions))
    with psycopg.connect(_conninfo(database_url), autocommit=True) as connection:
        connection.execute("VACUUM idempotency_record, outbox_message, audit_entry")
    return len(transactions) * BATCH_EVENTS / seconds


@dataclass(frozen=True, slots=True)
class CopyTransaction:
    """One transaction of the bare COPY: its rows in COPY's text format (the columns of
    :data:`_COPY_RECORDS` and :data:`_COPY_OUTBOX`), and its audit entry's values."""

    records: bytes
    outbox: bytes
    audit: tuple[datetime, str, str, str]


def copy_transaction(
    pseudonymiser: Pseudonymiser, actor: Principal, now: datetime
) -> CopyTransaction:
    """The rows the API stores for one batch like the batch phase's (:func:`batch_json`), its
    events turned into intakes by the API's own code, so keys, values and headers are the API's."""
    intakes = [Intake.of(event, pseudonymiser, actor) for event in parse_events(batch_json())]
    at = now.isoformat()
    records, outbox = [], []
    for intake in sorted(intakes, key=lambda intake: intake.event_id):  # as the API inserts them
        records.append(_copy_line(intake.event_id, intake.body_digest, at))
    for intake in intakes:  # in the order they came; all of one type, so in its type's lane
        topic = topics.lifecycle_topic(intake.event.type)
        headers = message_headers(intake.event.type, intake.event_id, SCHEMA_VERSION)
        urgent = "t" if topic in topics.URGENT else "f"
        outbox.append(
            _copy_line(
                intake.event_id, topic, intake.pseudonym, intake.message_json, headers, at, urgent
            )
        )
    detail = json.dumps(
        {"count": len(intakes), "first_event_ids": [str(i.event_id) for i in intakes[:10]]}
    )
    return CopyTransaction(
        "".join(records).encode(),
        "".join(outbox).encode(),
        (now, actor.name, "events.accepted", detail),
    )


def _copy_line(*values: object) -> str:
    """One row in COPY's text format: tab-separated, backslashes and control characters escaped."""
    return "\t".join(str(value).translate(_COPY_ESCAPES) for value in values) + "\n"


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


async def _copy_all(conninfo: str, transactions: list[CopyTransaction]) -> float:
    """Seconds to run ``transactions``, each rolled back, over :data:`BATCH_CONNECTIONS`
    connections opened before the clock starts; each connection takes the next one left."""
    connections = [
        await psycopg.AsyncConnection.connect(conninfo) for _ in range(BATCH_CONNECTIONS)
    ]
    left = iter(transactions)

    async def run(connection: psycopg.AsyncConnection[Any]) -> None:
        for transaction in left:
            async with connection.transaction(force_rollback=True), connection.cursor() as cursor:
                async with cursor.copy(_COPY_RECORDS) as copy:
                    await copy.write(transaction.records)
                async with cursor.copy(_COPY_OUTBOX) as copy:
                    await copy.write(transaction.outbox)
                await cursor.execute(_INSERT_AUDIT, transaction.audit)

    try:
        started = time.perf_counter()
        await asyncio.gather(*(run(connection) for connection in connections))
        return time.perf_counter() - started
    finally:
        for connection in connections:
            await connection.close()


_COPY_RECORDS = "COPY idempotency_record (event_id, body_digest, accepted_at) FROM STDIN"
_COPY_OUTBOX = (
    "COPY outbox_message (event_id, topic, message_key, value, headers, created_at, urgent)"
    " FROM STDIN"
)
_INSERT_AUDIT = "INSERT INTO audit_entry (at, actor, action, detail) VALUES (%s, %s, %s, %s)"


def latency_phase(
    args: argparse.Namespace,
    key: str,
    api_port: int,
    api_pid: int,
    broker: EmbeddedBroker,
    env: dict[str, str],
    database_url: str,
) -> list[dict[str, Any]]:
    """Single events at each of ``args.latency_rates``, open-loop, with one purger consuming
    beside the API; the load generator's figures per rate, and how long the purger took after
    each to apply every event stored so far, and the CPU every component spent while the events
    were sent (``bench/cpu_budget.py``). The outbox is drained and the purger stopped after the
    last rate: the throughput rounds run without one beside them, as before."""
    logs = Path(tempfile.mkdtemp(prefix="api-bench-"))
    purger, status_port = start_purger(
        {**env, "GALLRING_QUIET_LIBRARIES": "true"}, logs / "purger.log"
    )
    results = []
    try:
        wait_until_ready(purger, status_port, time.monotonic() + 90, logs)
        with tempfile.TemporaryDirectory() as scratch:
            first = args.latency_rates[0]
            warm_up = drive_at_rate(
                api_port,
                bodies(scratch, "warm-up", single_events(first * WARM_UP_SECONDS)),
                key,
                rate=first,
                seconds=WARM_UP_SECONDS,
            )
            _answered(warm_up, "202")
            wait_for_purger(database_url)
            meter = CpuMeter(
                {
                    "API": lambda: process_tree_seconds(api_pid),
                    "purger": lambda: process_tree_seconds(purger.pid),
                    "PostgreSQL": lambda: command_seconds("postgres"),
                    "broker": lambda: process_tree_seconds(broker.pid or 0),
                    "load": _ended_children_seconds,  # bench/load.py, once it ended
                }
            )
            for rate in args.latency_rates:
                events = bodies(scratch, f"at-{rate:g}", single_events(rate * args.latency_seconds))
                meter.start(time.monotonic())
                figures = drive_at_rate(
                    api_port, events, key, rate=rate, seconds=args.latency_seconds
                )
                figures["budget"] = meter.stop(time.monotonic())
                _answered(figures, "202")  # warns of any other answer
                figures["caught_up_seconds"] = wait_for_purger(database_url)
                results.append(figures)
        drain_outbox(database_url)
    finally:
        purger.terminate()
        purger.wait(timeout=60)
    return results


def _ended_children_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def single_events(count: float) -> Iterator[str]:
    return (event_json() for _ in range(math.ceil(count)))


def drive_at_rate(port: int, bodies_file: str, key: str, *, rate: float, seconds: float) -> dict:
    """bench/load.py open-loop: single events due at ``rate`` a second for ``seconds``."""
    command = [
        *(sys.executable, str(ROOT / "bench" / "load.py"), "/v1/events", str(port), bodies_file),
        *("64", str(seconds), key, "--rate", str(rate)),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(result.stdout)


def wait_for_purger(database_url: str) -> float:
    """Seconds until the purger has applied every event the API stored (``consumed_event``
    has a row for each event it applied, ``idempotency_record`` one for each event stored)."""
    started = time.monotonic()
    with psycopg.connect(_conninfo(database_url), autocommit=True) as connection:
        stored = _count(connection, "SELECT count(*) FROM idempotency_record")
        while _count(connection, "SELECT count(*) FROM consumed_event") < stored:
            if time.monotonic() - started > CATCH_UP_TIMEOUT_SECONDS:
                raise RuntimeError(f"the purger did not apply {stored:,} events in time")
            time.sleep(0.1)
    return time.monotonic() - started


def start_purger(
    env: dict[str, str], log: Path, command: list[str] = PURGER_COMMAND
) -> tuple[subprocess.Popen[bytes], int]:
    """``gallring purger`` (or ``command``, which runs it) with a status port of its own, its
    lines to ``log``: the process, and that port (its /readyz tells it has joined its group)."""
    port = free_loopback_port()
    with log.open("wb") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**env, "GALLRING_PURGER_METRICS_PORT": str(port)},
            stdout=out,
            stderr=out,
        )
    return process, port


def wait_until_ready(
    purger: subprocess.Popen[bytes], status_port: int, deadline: float, logs: Path
) -> None:
    """Until the purger has joined its group (rebalances over before a clock starts)."""
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{status_port}/readyz", timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline or purger.poll() is not None:
                raise RuntimeError(f"a purger did not become ready (its log: {logs})") from None
            time.sleep(0.3)


def _rates(text: str) -> list[float]:
    """``--latency-rates``: "500,2000" -> [500.0, 2000.0]; "" -> none."""
    return [float(rate) for rate in text.split(",") if rate.strip()]


def _answered(run: dict, status: str) -> int:
    """How many requests of ``run`` got ``status``; any other answer is reported."""
    others = {code: count for code, count in run["statuses"].items() if code != status}
    if others:
        print(f"warning: answers other than {status}: {others}", file=sys.stderr)
    return run["statuses"].get(status, 0)


def _median(rounds: list[dict[str, float]], name: str) -> float:
    return statistics.median(figures[name] for figures in rounds)


class bench_database:  # noqa: N801 - used as a context manager, reads as a phrase
    """A PostgreSQL database created for this run and dropped after it."""

    def __enter__(self) -> str:
        admin = make_url(POSTGRES_ADMIN_URL)
        self.name = f"gallring_bench_{uuid.uuid4().hex[:8]}"
        self.conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{self.name}"')
        return admin.set(database=self.name).render_as_string(hide_password=False)

    def __exit__(self, *_: object) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def drain_outbox(database_url: str, timeout_seconds: float = 300.0) -> int:
    """Wait until the API's relay has published the whole outbox; how many rows it held."""
    with psycopg.connect(_conninfo(database_url), autocommit=True) as connection:
        left = count = _count(connection, "SELECT count(*) FROM outbox_message")
        deadline = time.monotonic() + timeout_seconds
        while count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the relay left {count} outbox rows unpublished")
            time.sleep(0.2)
            count = _count(connection, "SELECT count(*) FROM outbox_message")
    return left


def stored_events(database_url: str) -> int:
    """Events the API has stored so far (each has its idempotency record)."""
    with psycopg.connect(_conninfo(database_url)) as connection:
        return _count(connection, "SELECT count(*) FROM idempotency_record")


def _count(connection: psycopg.Connection[Any], query: LiteralString) -> int:
    """The one number a ``SELECT count(*)`` answers."""
    row = connection.execute(query).fetchone()
    assert row is not None  # an aggregate without GROUP BY answers one row
    return int(row[0])


def _conninfo(database_url: str) -> str:
    """psycopg's connection string for a SQLAlchemy database URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def create_key(database_url: str) -> str:
    engine = make_engine(database_url)
    try:
        return KeyStore(engine).create("bench", {Scope.EVENTS_WRITE})
    finally:
        engine.dispose()


def start_server(
    target: list[str], port: int, env: dict[str, str], workers: int
) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", *target, "--port", str(port), *UVICORN_FLAGS),
            *("--workers", str(workers)),
        ],
        cwd=ROOT,
        env=env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=1)
            return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise RuntimeError(f"server on port {port} did not start")


def batch_json() -> str:
    """A batch request's body: :data:`BATCH_EVENTS` events, each new (:func:`event_json`)."""
    return "[" + ",".join(event_json() for _ in range(BATCH_EVENTS)) + "]"


def event_json() -> str:
    event = {**EXAMPLES["collection_case.closed"], "event_id": str(uuid.uuid4())}
    # Not ten random hex digits: one in a hundred such ids is ten decimal digits, and some of
    # those are valid personal identity numbers, which the intake refuses.
    event["scope"] = {"case_id": f"C-{uuid.uuid4()}"}
    return json.dumps(event)


def bodies(scratch: str, name: str, lines) -> str:
    path = Path(scratch) / f"{name}.jsonl"
    with path.open("w") as out:
        for line in lines:
            out.write(line + "\n")
    return str(path)


def drive(path, port, bodies_file, args, key="", connections=None, *, server) -> dict:
    """Run the load generator; its figures, and the CPU seconds ``server`` spent meanwhile."""
    command = [
        sys.executable,
        str(ROOT / "bench" / "load.py"),
        path,
        str(port),
        bodies_file,
        str(connections or args.connections),
        str(args.seconds),
    ] + ([key] if key else [])
    cpu_before = process_tree_seconds(server.pid)
    result = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT)
    return {
        **json.loads(result.stdout),
        "server_cpu": process_tree_seconds(server.pid) - cpu_before,
    }


if __name__ == "__main__":
    main()
