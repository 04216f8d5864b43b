"""A command's writes, run in order; on PostgreSQL sent together, in one round trip.

An erasure's statements (children's rows first, then the parents', then the index's entries)
do not depend on each other's results, only on their order. One at a time, each waits for the
database's answer before the next is sent: on PostgreSQL through psycopg that is a round trip
a statement, and an erasure of four writes spent more time waiting than the bare loop of three
statements took in all (bench/agent_bench.py). psycopg's pipeline mode sends them at once and
reads the answers together; the database runs them in the same order, in the same transaction.

A write that fails in a pipeline leaves those after it unrun (the transaction is aborted, as
after any failed statement): :class:`FailedWrite` names the one that failed, as when they run one
at a time, with the error SQLAlchemy would have raised. Statements psycopg cannot be given as
they are compiled (an expanding ``IN``, a type SQLAlchemy converts before the driver sees it)
and other drivers run one at a time through SQLAlchemy.
"""

import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ClauseElement, Connection, Dialect, Executable
from sqlalchemy.exc import DBAPIError


@dataclass(frozen=True)
class Write:
    """One statement of a command's erasure, and the table it writes (for the reason given
    when it fails)."""

    table: str
    statement: Executable
    parameters: dict[str, Any]


class FailedWrite(Exception):
    """``write`` failed with ``error`` (SQLAlchemy's, whichever way it ran); those after it did
    not run."""

    def __init__(self, write: Write, error: DBAPIError) -> None:
        self.write = write
        self.error = error
        super().__init__(f"writing {write.table} failed")


def run_writes(connection: Connection, writes: Sequence[Write]) -> list[int]:
    """Run ``writes`` in order in the connection's transaction; how many rows each changed."""
    if not writes:
        return []
    compiled = [_driver_statement(connection.dialect, write.statement) for write in writes]
    if connection.dialect.driver != "psycopg" or any(c is None for c in compiled):
        return [_run_one(connection, write) for write in writes]
    return _run_pipelined(connection, writes, [c for c in compiled if c is not None])


def _run_one(connection: Connection, write: Write) -> int:
    try:
        return connection.execute(write.statement, write.parameters).rowcount
    except DBAPIError as error:
        raise FailedWrite(write, error) from None


@dataclass(frozen=True)
class _DriverStatement:
    """A statement as the driver takes it: its SQL, and the parameters it binds by default
    (the ``None`` of a nulled column), to which a write's own are added."""

    sql: str
    defaults: dict[str, Any]


#: Per statement (as long as it is kept) and dialect name.
_COMPILED: "weakref.WeakKeyDictionary[Executable, dict[str, _DriverStatement | None]]" = (
    weakref.WeakKeyDictionary()
)


def _driver_statement(dialect: Dialect, statement: Executable) -> _DriverStatement | None:
    """The statement compiled once for this dialect (kept with the statement, which the erasure
    builds once a table), or ``None`` when it cannot go to the driver as compiled."""
    cache = _COMPILED.setdefault(statement, {})
    if dialect.name in cache:
        return cache[dialect.name]
    compiled: Any = cast(ClauseElement, statement).compile(dialect=dialect)
    # Bound as compiled: no expanding parameter (rendered anew at each execution), no name
    # escaped, no value SQLAlchemy converts before the driver sees it.
    direct = not (
        compiled.post_compile_params or compiled.escaped_bind_names or compiled._bind_processors
    )
    found = _DriverStatement(compiled.string, dict(compiled.params)) if direct else None
    cache[dialect.name] = found
    return found


def _run_pipelined(
    connection: Connection, writes: Sequence[Write], compiled: Sequence[_DriverStatement]
) -> list[int]:
    driver = connection.connection.driver_connection
    assert driver is not None
    cursors = [driver.cursor() for _ in writes]
    try:
        with driver.pipeline():
            for cursor, write, statement in zip(cursors, writes, compiled, strict=True):
                cursor.execute(statement.sql, statement.defaults | write.parameters)
    except connection.dialect.loaded_dbapi.Error as error:
        # The first write without an answer is the one that failed (those after it were not run).
        failed = next(
            (i for i, cursor in enumerate(cursors) if cursor.pgresult is None), len(writes) - 1
        )
        invalidated = connection.dialect.is_disconnect(error, driver, cursors[failed])
        wrapped = DBAPIError.instance(
            compiled[failed].sql,
            writes[failed].parameters,
            error,
            connection.dialect.loaded_dbapi.Error,
            hide_parameters=True,  # the keys of a person's rows: no message carries them
            connection_invalidated=invalidated,
        )
        if invalidated:  # as SQLAlchemy does: this connection, and the others the pool kept
            connection.invalidate(error)
            connection.engine.pool.dispose()
        raise FailedWrite(writes[failed], wrapped) from None  # type: ignore[arg-type]
    else:
        return [cursor.rowcount for cursor in cursors]
    finally:
        for cursor in cursors:
            cursor.close()
