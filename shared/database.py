"""Database engines for PostgreSQL (production) and SQLite (the embedded default)."""

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from typing import Any

from psycopg.types.array import ListBinaryDumper
from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Enum,
    String,
    any_,
    bindparam,
    event,
    make_url,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import create_engine


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and WAL so that it behaves like a server."""
    if url.startswith("sqlite"):
        # Writers that decide on what they read hold the write lock for a whole batch
        # (begin_deciding): the others wait for it longer than the driver's 5 s.
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # As many connections as request threads may want at once, recycled before servers or
    # proxies drop them, and tried before use, so that a database restart costs no request
    # (the round trip is paid per transaction; the event intake keeps its own connections).
    # A database that accepts connections but never answers must not hold a request, a probe
    # or a sweep forever: libpq waits without end unless told (a URL's own setting wins).
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    engine = create_engine(
        url,
        pool_size=20,
        max_overflow=20,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args=connect_args,
    )

    @event.listens_for(engine, "connect")
    def _binary_arrays(connection, _record) -> None:  # type: ignore[no-untyped-def]
        # Arrays (one_of's) in binary: psycopg's text format escapes each element with a
        # regular expression, which made a 500-id ANY(...) seven times slower to send.
        connection.adapters.register_dumper(list, ListBinaryDumper)

    return engine


def one_of(
    connection: Connection, column: ColumnElement[Any], values: Collection[Any]
) -> ColumnElement[bool]:
    """``column IN (values)``; on PostgreSQL ``column = ANY(:array)``, one parameter however many
    values, so a batch statement is compiled once instead of rendering hundreds of placeholders
    every time (a third of the sweep's time went there)."""
    if connection.dialect.name == "postgresql":
        element = column.type
        if isinstance(element, String) and not isinstance(element, Enum) and element.length:
            element = String()  # a cast to VARCHAR(n)[] would cut longer values to match
        return column == any_(bindparam(None, list(values), type_=ARRAY(element)))
    return column.in_(values)


@contextmanager
def begin_deciding(engine: Engine) -> Iterator[Connection]:
    """A transaction that writes what it decides on what it read. SQLite's driver begins a
    transaction only at the first write, and another writer may commit before it: here SQLite's
    write lock is taken at once (``BEGIN IMMEDIATE``), so nothing read changes before the
    commit. On PostgreSQL such a transaction locks the rows it decides on."""
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


def database_answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query now: what readiness probes ask."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
