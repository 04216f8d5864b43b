"""The agent's erasures per second against a bare loop of the same statements, both on
PostgreSQL, in the same run; and the index's first build in rows/s. Target (issue 22): the agent
at least 50 % of the bare loop.

The sample collection system (``services/agent/sample.py``) is seeded by ``COPY``: per debtor two
cases, each with two letters and a payment (nine rows a debtor), and the references indexed
(``letters.case_id``, ``payments.case_id``, ``cases.debtor_id``), as a company would have them:
the sample schema declares none, and without them each case deleted has PostgreSQL read every
letter and payment to check the foreign keys, in both loops alike, which hides what the agent
itself costs (``--unindexed-references`` measures it so). The first of every so many
debtors' cases is due: one erasure command each, ``SubjectScope(pseudonym, {"case_id": …})``,
applied as the consumer applies it (``services/agent/consumer.py``): one transaction on the
system's database per command, the index in the same database, ``erase()`` as the consumer calls
it (no Kafka, no API: the confirmation is not timed). The bare loop runs on a copy of the same
data made before the index was built (``CREATE DATABASE … TEMPLATE``): per command, in one
transaction, the case's letters deleted by primary key, its payment's case and payer nulled, the
case deleted, with psycopg, the keys known in advance. The two loops take turns, 500 commands
each, so that a stretch in which the machine is busy with something else weighs on both alike.

The index's first build (``index.index_pass`` on an empty index) is timed on a database of its
own seeded with ``--index-rows`` rows (the agent's copy's first build is printed too).

    .venv/bin/python -m bench.agent_bench [--debtors 100000] [--commands 10000]
                                          [--index-rows 1000000] [--profile FILE]
                                          [--unindexed-references]
"""

import argparse
import contextlib
import cProfile
import functools
import math
import time
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import psycopg
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from bench.api_bench import POSTGRES_ADMIN_URL, bench_database
from services.agent import index
from services.agent.database import again_if_reconnected, open_database
from services.agent.dataset_file import parse_dataset
from services.agent.erase import ErasureCounts, SubjectScope, erase_in_transactions_of_its_own
from services.agent.sample import (
    CASES,
    LETTERS,
    PAYMENTS,
    SAMPLE_DATASET,
    SEEDED_AT,
    create_sample,
    with_check_digit,
)
from services.agent.schema import BoundDataset, bind
from shared.domain.national_id import normalise_national_id
from shared.domain.pseudonym import Pseudonymiser

PSEUDONYMISER = Pseudonymiser(b"agent-bench-pseudonym-secret-of-32-bytes")
CATEGORY = "collection_case"
ROWS_PER_DEBTOR = 9  # a debtor, two cases, four letters, two payments
FIRST_BIRTHDAY = date(1950, 1, 1)
REFERENCES = (("letters", "case_id"), ("payments", "case_id"), ("cases", "debtor_id"))
EXPECTED = {"letters": 2, "payments": 1, "cases": 1, "debtors": 0}  # rows erased a command
TURN = 500  # commands each loop runs before the other's turn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debtors", type=int, default=100_000)
    parser.add_argument("--commands", type=int, default=10_000)
    parser.add_argument("--index-rows", type=int, default=1_000_000)
    parser.add_argument("--profile", help="write the agent loop's cProfile stats to this file")
    parser.add_argument(
        "--unindexed-references", action="store_true", help="the sample schema as it is"
    )
    args = parser.parse_args()
    if args.commands > args.debtors:
        parser.error("--commands must not exceed --debtors (one due case per debtor at most)")

    build_rows, build_seconds = index_build(math.ceil(args.index_rows / ROWS_PER_DEBTOR))
    print(
        f"index first build: {build_rows:,} rows in {build_seconds:.1f} s, "
        f"{build_rows / build_seconds:,.0f} rows/s"
    )

    with bench_database() as agent_url:
        seed(agent_url, args.debtors, index_references=not args.unindexed_references)
        with copy_of(agent_url) as bare_url:
            system = open_database(agent_url)
            try:
                bound = bound_dataset(system)
                index.create_index_tables(system)
                started = time.perf_counter()
                indexed = index.index_pass(
                    bound, system=system, index=system, pseudonymiser=PSEUDONYMISER
                )
                seconds = time.perf_counter() - started
                rows = sum(indexed.read.values())
                print(
                    f"seeded {args.debtors:,} debtors ({rows:,} rows); the agent's index built "
                    f"in {seconds:.1f} s, {rows / seconds:,.0f} rows/s"
                )
                due = due_debtors(args.debtors, args.commands)
                (agent_seconds, agent_cpu), (bare_seconds, bare_cpu) = take_turns(
                    bound, system, bare_url, due, args.profile
                )
                check(system, args.debtors, len(due))
            finally:
                system.dispose()

    agent_rate, bare_rate = len(due) / agent_seconds, len(due) / bare_seconds
    # This process's own CPU per erasure: what the client side (SQLAlchemy, the agent's code)
    # costs, apart from waiting for the database.
    print(
        f"agent:     {len(due):,} erasures in {agent_seconds:.1f} s, {agent_rate:,.0f} /s; "
        f"client CPU {agent_cpu / len(due) * 1e3:.2f} ms/erasure"
    )
    print(
        f"bare loop: {len(due):,} erasures in {bare_seconds:.1f} s, {bare_rate:,.0f} /s; "
        f"client CPU {bare_cpu / len(due) * 1e3:.2f} ms/erasure"
    )
    print(f"agent vs bare loop: {agent_rate / bare_rate:.2f} (target >= 0.50)")


def national_id(debtor: int) -> str:
    """A personnummer valid in form, one per debtor: a thousand serials a birthday."""
    born = FIRST_BIRTHDAY + timedelta(days=(debtor - 1) // 1000)
    return "19" + with_check_digit(f"{born:%y%m%d}{(debtor - 1) % 1000:03d}")


def seed(url: str, debtors: int, *, index_references: bool = True) -> None:
    """The sample schema and, by COPY, ``debtors`` debtors with two cases each; each case two
    letters and a payment. Debtor d's cases are 2d-1 and 2d; case c's letters 2c-1 and 2c, its
    payment c."""
    engine = open_database(url)
    try:
        with engine.begin() as connection:
            create_sample(connection)
    finally:
        engine.dispose()
    stamp = SEEDED_AT
    with psycopg.connect(conninfo(url)) as seeding, seeding.cursor() as cursor:
        with cursor.copy(
            "COPY debtors (id, national_id, name, address, phone, updated_at) FROM STDIN"
        ) as copy:
            for d in range(1, debtors + 1):
                copy.write_row(
                    (d, national_id(d), f"Debtor {d}", f"Gatan {d}, Lund", "+46 70 000", stamp)
                )
        with cursor.copy(
            "COPY cases (id, case_number, debtor_id, amount_ore, status, updated_at) FROM STDIN"
        ) as copy:
            for c in range(1, 2 * debtors + 1):
                status = "closed" if c % 2 else "open"
                copy.write_row((c, case_number(c), (c + 1) // 2, 10_000 + c, status, stamp))
        with cursor.copy("COPY letters (id, case_id, kind, body, updated_at) FROM STDIN") as copy:
            for letter in range(1, 4 * debtors + 1):
                case = (letter + 1) // 2
                copy.write_row((letter, case, "demand", f"Dear debtor, case {case}", stamp))
        with cursor.copy(
            "COPY payments (id, case_id, amount_ore, payer_name, updated_at) FROM STDIN"
        ) as copy:
            for c in range(1, 2 * debtors + 1):
                copy.write_row((c, c, 5_000, f"Debtor {(c + 1) // 2}", stamp))
        if index_references:
            for table, column in REFERENCES:
                cursor.execute(f"CREATE INDEX {table}_{column} ON {table} ({column})")
        seeding.commit()
        seeding.autocommit = True
        cursor.execute("ANALYZE")


def case_number(case: int) -> str:
    return f"C-{case:09d}"


@contextlib.contextmanager
def copy_of(url: str) -> Iterator[str]:
    """A database made from this one as its template (no connection to it may be open)."""
    admin = conninfo(POSTGRES_ADMIN_URL)
    source = make_url(url).database
    name = f"gallring_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    try:
        yield make_url(url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def bound_dataset(system: Engine) -> BoundDataset:
    dataset = parse_dataset(SAMPLE_DATASET, source="sample")
    with system.connect() as connection:
        return bind(dataset, connection, source="sample")


def index_build(debtors: int) -> tuple[int, float]:
    """Rows read and seconds of a first index pass over ``debtors`` debtors' rows."""
    with bench_database() as url:
        seed(url, debtors)
        system = open_database(url)
        try:
            bound = bound_dataset(system)
            index.create_index_tables(system)
            started = time.perf_counter()
            done = index.index_pass(bound, system=system, index=system, pseudonymiser=PSEUDONYMISER)
            seconds = time.perf_counter() - started
        finally:
            system.dispose()
    return sum(done.read.values()), seconds


def due_debtors(debtors: int, commands: int) -> list[int]:
    """The debtors whose first case is due: spread evenly over all of them."""
    step = debtors // commands
    return [1 + i * step for i in range(commands)]


def take_turns(
    bound: BoundDataset, system: Engine, bare_url: str, due: list[int], profile: str | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Seconds and client CPU of the agent's loop and of the bare loop over the same due
    debtors, taking turns a block of commands each (the first of each pair alternating): a
    stretch in which the machine is busier with something else weighs on both alike."""
    targets = [
        SubjectScope(
            PSEUDONYMISER.pseudonym("national_id", normalise_national_id(national_id(d))),
            {"case_id": case_number(2 * d - 1)},
        )
        for d in due
    ]
    profiler = cProfile.Profile() if profile else None
    agent, bare = [0.0, 0.0], [0.0, 0.0]
    with psycopg.connect(conninfo(bare_url), autocommit=True) as bare_connection:
        for turn, start in enumerate(range(0, len(due), TURN)):
            block = slice(start, start + TURN)
            loops = [
                (agent, functools.partial(agent_loop, bound, system, targets[block], profiler)),
                (bare, functools.partial(bare_loop, bare_connection, due[block])),
            ]
            for spent, loop in loops[:: 1 if turn % 2 == 0 else -1]:
                seconds, cpu = loop()
                spent[0] += seconds
                spent[1] += cpu
    if profiler and profile:
        profiler.dump_stats(profile)
    return (agent[0], agent[1]), (bare[0], bare[1])


def agent_loop(
    bound: BoundDataset,
    system: Engine,
    targets: list[SubjectScope],
    profiler: cProfile.Profile | None,
) -> tuple[float, float]:
    """Seconds and client CPU to apply one erasure command per target, as the consumer does:
    the pseudonym is the message's key, the scope the case; one transaction each, the index in
    it."""

    def erase_alone(target: SubjectScope) -> ErasureCounts:  # as the consumer's _erase
        return erase_in_transactions_of_its_own(
            bound, system, system, category=CATEGORY, target=target, pseudonymiser=PSEUDONYMISER
        )

    started, cpu = time.perf_counter(), time.process_time()
    if profiler:
        profiler.enable()
    for target in targets:
        counts = again_if_reconnected(functools.partial(erase_alone, target))
        assert counts.tables == EXPECTED, counts.tables
    if profiler:
        profiler.disable()
    return time.perf_counter() - started, time.process_time() - cpu


def check(system: Engine, debtors: int, erased: int) -> None:
    """The due cases are gone, with their letters; their payments are kept, unlinked."""
    with system.connect() as connection:
        cases = connection.scalar(select(func.count()).select_from(CASES))
        letters = connection.scalar(select(func.count()).select_from(LETTERS))
        unlinked = connection.scalar(
            select(func.count()).select_from(PAYMENTS).where(PAYMENTS.c.case_id.is_(None))
        )
    assert cases == 2 * debtors - erased, cases
    assert letters == 4 * debtors - 2 * erased, letters
    assert unlinked == erased, unlinked


def bare_loop(bare: psycopg.Connection[Any], due: list[int]) -> tuple[float, float]:
    """Seconds and client CPU for the same rows' statements by primary key, one transaction per
    command."""
    started, cpu = time.perf_counter(), time.process_time()
    for d in due:
        case = 2 * d - 1
        with bare.transaction():
            bare.execute("DELETE FROM letters WHERE id IN (%s, %s)", (2 * case - 1, 2 * case))
            bare.execute(
                "UPDATE payments SET case_id = NULL, payer_name = NULL WHERE id = %s", (case,)
            )
            bare.execute("DELETE FROM cases WHERE id = %s", (case,))
    return time.perf_counter() - started, time.process_time() - cpu


def conninfo(database_url: str) -> str:
    """psycopg's connection string for a SQLAlchemy database URL."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


if __name__ == "__main__":
    main()
