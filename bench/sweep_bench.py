"""Sweep throughput against a bare ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED
LIMIT n)`` loop on the same table, both on PostgreSQL, in the same run. Target (issue 5): the
sweep at least 50 % of the bare loop. The sweep runs in a process of its own, whose peak RSS is
reported: it must stay flat from 100k to 1M clocks.

Each seeded subject has one due clock, fed by one fact, as the consumer stores them. They are
settled, so the sweep erases them in SQL (``services/purger/settled_erasure.py``). The data looks
like a back-fill's: pseudonyms are HMACs, as random as the consumer's, and the cases closed over
a year, one after the other. (Sequential pseudonyms would spare both loops the random index work
real ones cost: the bare loop the more, as each of its updates adds an entry to the index on the
subject's key.) With ``--general-road`` the clocks are seeded as a release before policy
digests stored them, and every subject is evaluated again from its facts: the road subjects with
holds or other clocks take. With ``--systems N``, N systems of the register hold the category, so
each erasure also records N expected confirmations (``erasure_expected_system``).

Beside the rates it prints what each loop wrote, per clock: WAL bytes, and rows inserted,
updated and deleted by table (``pg_stat_user_tables``). The bare loop changes one row a clock;
the sweep must also record the erasure's proof, its command to the company's systems (outbox)
and what it no longer keeps: what it writes beyond the bare loop bounds the ratio it can reach.

    .venv/bin/python -m bench.sweep_bench [--clocks 1000000] [--batch 500] [--general-road]
                                          [--systems 2]
"""

import argparse
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from dateutil.relativedelta import relativedelta

from bench.api_bench import bench_database
from bench.pg_writes import written
from shared.domain.contract.examples import EXAMPLES
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.domain.engine import RetentionEngine
from shared.domain.policy import load_default_policy
from shared.domain.pseudonym import Pseudonymiser
from shared.storage.migrate import upgrade

ROOT = Path(__file__).resolve().parents[1]
SWEEPER = """
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from services.purger.sweep import sweep
from shared.storage.database import make_engine
from shared.domain.engine import RetentionEngine
from shared.runtime.gc_tuning import tune_garbage_collection
from bench.unbraked_policy import unbraked_policy
# The sweep's own speed: without the review limits it would erase max_per_day of the clocks.
engine, retention = make_engine(sys.argv[1]), RetentionEngine(unbraked_policy())
tune_garbage_collection()  # as `gallring purger` does once started
started = time.perf_counter()
erased = sweep(engine, retention, datetime.now(UTC), batch_size=int(sys.argv[2]))
seconds = time.perf_counter() - started
# Peak RSS of this program only: getrusage's would count the bench's own, from before exec.
status = Path("/proc/self/status").read_text()
peak_kib = re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)
print(erased, seconds, peak_kib)
"""
BARE_LOOP = """
UPDATE retention_clock SET state = 'erased'
WHERE id IN (
    SELECT id FROM retention_clock
    WHERE state IN ('pending', 'due', 'erase_now') AND due_at <= %(now)s
    ORDER BY due_at LIMIT %(batch)s FOR UPDATE SKIP LOCKED
)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clocks", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--general-road", action="store_true", help="no clock is settled")
    parser.add_argument(
        "--systems", type=int, default=0, help="systems of the register holding the category"
    )
    args = parser.parse_args()
    policy_digest = None if args.general_road else RetentionEngine(load_default_policy()).digest

    with bench_database() as url:
        upgrade(url)
        conninfo = url.replace("postgresql+psycopg://", "postgresql://")
        register_systems(conninfo, args.systems)
        seed(conninfo, args.clocks, policy_digest)
        before = written(conninfo)
        sweeper = subprocess.run(
            [sys.executable, "-c", SWEEPER, url, str(args.batch)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        erased_text, seconds_text, peak_rss_kib = sweeper.stdout.split()
        erased, sweep_seconds = int(erased_text), float(seconds_text)  # the sweep, not start-up
        peak_rss_mib = int(peak_rss_kib) / 1024
        sweep_wrote = written(conninfo) - before

        seed(conninfo, args.clocks, policy_digest)
        before = written(conninfo)
        bare_seconds = bare_loop(conninfo, args.batch)
        bare_wrote = written(conninfo) - before

    sweep_rate, bare_rate = erased / sweep_seconds, args.clocks / bare_seconds
    road = "general road: every subject evaluated" if args.general_road else "settled, in SQL"
    print(f"due clocks:       {args.clocks:>12,}  ({road}; {args.systems} systems expected)")
    print(f"purger sweep:     {sweep_rate:>12,.0f} clocks/s  ({erased:,} erased)")
    print(f"bare UPDATE loop: {bare_rate:>12,.0f} clocks/s")
    print(f"  ratio: {sweep_rate / bare_rate:.2f} (target >= 0.80, issue 23)")
    print(f"sweeper peak RSS: {peak_rss_mib:>12,.0f} MiB")
    print("what each wrote per clock (the sweep's own clocks; the bare loop's):")
    for name, wrote in (("sweep", sweep_wrote), ("bare loop", bare_wrote)):
        print(f"  {name}:")
        print("\n".join(wrote.report(args.clocks, "clock")))


def register_systems(conninfo: str, count: int) -> None:
    """``count`` active systems holding collection_case, as ``POST /v1/systems`` stores them."""
    now = datetime.now(UTC)
    with psycopg.connect(conninfo) as connection:
        for n in range(count):
            connection.execute(
                "INSERT INTO company_system (system_id, name, categories, confirm_within_seconds,"
                " active, created_at, updated_at) VALUES (%s, %s, %s, %s, true, %s, %s)",
                (f"system-{n}", f"System {n}", "collection_case", 7 * 86400, now, now),
            )


def seed(conninfo: str, count: int, policy_digest: str | None) -> None:
    """``count`` subjects, each with a case closed 37 to 49 months ago: a fact and a due clock.
    Subjects are seeded in the order their cases closed, as a back-fill sends them."""
    last_closed = datetime.now(UTC) - relativedelta(months=37)
    apart = timedelta(days=365) / count
    closed = [last_closed - (count - n) * apart for n in range(count)]
    pseudonymiser = Pseudonymiser(b"bench-secret-bench-secret-bench-secret")
    pseudonyms = [pseudonymiser.pseudonym("ref", f"CUST-{n}") for n in range(count)]
    template = LifecycleMessage.model_validate(
        {
            **EXAMPLES["collection_case.closed"],
            "subject": "0" * 64,
            "occurred_at": last_closed,
        }
    )
    with psycopg.connect(conninfo) as connection:
        connection.execute("TRUNCATE retention_clock, subject_fact")
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY subject_fact (event_id, subject_pseudonym, event_type, message) FROM STDIN"
            ) as facts:
                for n in range(count):
                    event_id = uuid.uuid4()
                    message = template.model_copy(
                        update={
                            "event_id": event_id,
                            "subject": pseudonyms[n],
                            "occurred_at": closed[n],
                        }
                    )
                    facts.write_row((event_id, pseudonyms[n], message.type, message.to_json()))
            with cursor.copy(
                "COPY retention_clock (erasure_id, subject_pseudonym, category, scope_key, "
                "scope_value, state, due_at, rule, legal_basis, reason, policy_digest, "
                "updated_at) FROM STDIN"
            ) as clocks:
                for n in range(count):
                    clocks.write_row(
                        (
                            uuid.uuid4(),
                            pseudonyms[n],
                            "collection_case",
                            "case_id",
                            "C-2023-0001",
                            "due",
                            closed[n] + relativedelta(months=36),
                            "collection_case.retention",
                            "basis",
                            "seeded",
                            policy_digest,
                            closed[n],
                        )
                    )
        connection.execute("ANALYZE retention_clock, subject_fact")


def bare_loop(conninfo: str, batch: int) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    with psycopg.connect(conninfo) as connection:
        while True:
            with connection.transaction():
                updated = connection.execute(BARE_LOOP, {"now": now, "batch": batch}).rowcount
            if updated == 0:
                elapsed = time.perf_counter() - started
                connection.execute("SELECT pg_stat_force_next_flush()")  # its counts, now
                connection.commit()
                return elapsed


if __name__ == "__main__":
    main()
