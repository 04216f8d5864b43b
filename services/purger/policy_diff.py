"""What a new policy would do to the clocks the purger holds, before it is applied.

``gallring policy diff --database NEW``: every subject with clocks is evaluated under NEW from
its stored facts, as the policy refresh (:mod:`services.purger.policy_refresh`) would once NEW
runs, and its new clocks are compared with the stored ones (:mod:`shared.domain.engine.clock_diff`).
The old side is what the purger holds, whatever policy reached it, so no copy of the old policy
is needed. A clock awaiting a disposition review counts as due: it is, stopped by the review,
and a new policy that still makes it due does not make it due at once.

Nothing is written: each batch is read in a transaction the database itself keeps from writing
(``READ ONLY`` on PostgreSQL, ``query_only`` on SQLite) and from one snapshot of it, so a
subject's clocks and facts agree. Subjects are walked in batches by pseudonym, as the refresh
walks them, so that a million clocks are never in memory at once. Subjects with facts but no
clocks are left out, as the refresh leaves them.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

from sqlalchemy import Connection, Engine, select

from services.purger import subject_clocks
from shared.domain.engine import ClockState, RetentionEngine
from shared.domain.engine.clock_diff import ClockDiff, ClockId, Verdict, verdicts
from shared.storage.database import one_of
from shared.storage.tables.purger import AWAITING_REVIEW

_CLOCKS = subject_clocks.CLOCKS
BATCH_SUBJECTS = 1_000


def diff_stored_clocks(
    db: Engine, retention: RetentionEngine, now: datetime, batch_size: int = BATCH_SUBJECTS
) -> ClockDiff:
    """The stored clocks against ``retention``'s verdicts as of ``now``, by category."""
    diff = ClockDiff()
    after = ""
    while True:
        with read_only_snapshot(db) as connection:
            subjects = _subjects_after(connection, after, batch_size)
            if not subjects:
                break
            stored = _stored_verdicts(connection, subjects)
            facts_of = subject_clocks.load_facts_of(connection, subjects)
        for subject in subjects:
            new = verdicts(retention.evaluate(subject, facts_of[subject], now))
            diff.add_subject(stored.get(subject, {}), new, now)
        after = subjects[-1]
    return diff


@contextmanager
def read_only_snapshot(db: Engine) -> Iterator[Connection]:
    """A transaction that reads one snapshot and cannot write, rolled back at the end."""
    with db.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.exec_driver_sql("PRAGMA query_only = ON")
            # The driver begins no transaction for reads: without one, each query would read
            # what was committed by then.
            connection.exec_driver_sql("BEGIN")
        else:
            connection.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        try:
            yield connection
        finally:
            connection.rollback()
            if sqlite:
                connection.exec_driver_sql("PRAGMA query_only = OFF")


def _subjects_after(connection: Connection, after: str, limit: int) -> list[str]:
    query = (
        select(_CLOCKS.c.subject_pseudonym)
        .where(_CLOCKS.c.subject_pseudonym > after)
        .group_by(_CLOCKS.c.subject_pseudonym)
        .order_by(_CLOCKS.c.subject_pseudonym)
        .limit(limit)
    )
    return list(connection.execute(query).scalars())


def _stored_verdicts(
    connection: Connection, subjects: list[str]
) -> dict[str, dict[ClockId, Verdict]]:
    rows = connection.execute(
        select(
            _CLOCKS.c.subject_pseudonym,
            _CLOCKS.c.category,
            _CLOCKS.c.scope_key,
            _CLOCKS.c.scope_value,
            _CLOCKS.c.state,
            _CLOCKS.c.due_at,
        ).where(one_of(connection, _CLOCKS.c.subject_pseudonym, subjects))
    )
    stored: dict[str, dict[ClockId, Verdict]] = {}
    for subject, category, scope_key, scope_value, state, due_at in rows:
        verdict = Verdict(ClockState.DUE if state == AWAITING_REVIEW else ClockState(state), due_at)
        stored.setdefault(subject, {})[(category, scope_key, scope_value)] = verdict
    return stored
