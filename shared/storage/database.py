"""Database engines for PostgreSQL (production) and SQLite (the embedded default)."""

import logging
import os
import sqlite3
import stat
from collections.abc import Collection, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
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

log = logging.getLogger(__name__)

#: The files SQLite keeps a database in, in WAL mode: the database, its write-ahead log and the
#: log's shared-memory index. Each holds rows, erased ones too until they are overwritten.
SQLITE_FILE_SUFFIXES = ("", "-wal", "-shm")
PRIVATE_FILE_MODE = 0o600
SQLITE_BUSY_TIMEOUT_S = 30
CHECKPOINT_WAIT_MS = 5_000


@dataclass(frozen=True)
class PoolLimits:
    """How many connections an engine keeps open (``size``), how many more it may open at a
    peak (``overflow``), and how long a caller waits for one when all are in use before
    ``sqlalchemy.exc.TimeoutError`` (the API answers that 503 with ``Retry-After``).

    Every process has one engine; its ``size + overflow`` is what it may ask PostgreSQL for
    (deploy/README.md, *Connection pools*, adds them up over the replicas)."""

    size: int = 5
    overflow: int = 5
    timeout_seconds: float = 10.0


def make_engine(url: str, pool: PoolLimits = PoolLimits()) -> Engine:
    """An engine for ``url`` with at most ``pool``'s connections; SQLite gets foreign keys and
    WAL so that it behaves like a server, files only their owner can read, and erased rows
    overwritten (``secure_delete``)."""
    pooling = {
        "pool_size": pool.size,
        "max_overflow": pool.overflow,
        "pool_timeout": pool.timeout_seconds,
    }
    if url.startswith("sqlite"):
        private_sqlite_files(url)
        name = make_url(url).database
        in_memory = not name or name == ":memory:" or "mode=memory" in url
        # Writers that decide on what they read hold the write lock for a whole batch
        # (begin_deciding): the others wait for it longer than the driver's 5 s.
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
            **({} if in_memory else pooling),  # a memory database lives in one connection
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection: sqlite3.Connection, _record: object) -> None:
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            # WAL stays in the file once set: asking first spares every later connection the
            # switch, which takes the write lock without waiting for it ("database is locked"
            # while another connection writes).
            (mode,) = cursor.execute("PRAGMA journal_mode").fetchone()
            if mode not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode=WAL")
            # Deleted rows are overwritten with zeros, not left in free pages for anyone who
            # reads the file: an erasure must not leave the data behind. Some builds have it
            # on by default (Debian's), the upstream default is off: say it, every connection.
            cursor.execute("PRAGMA secure_delete=ON")
            cursor.close()

        return engine
    # As many connections as the settings allow (PoolLimits), recycled before servers or
    # proxies drop them, and tried before use, so that a database restart costs no request
    # (the round trip is paid per transaction; the event intake keeps its own connections).
    # A database that accepts connections but never answers must not hold a request, a probe
    # or a sweep forever: libpq waits without end unless told (a URL's own setting wins).
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    engine = create_engine(
        url,
        **pooling,
        pool_recycle=1800,
        pool_pre_ping=True,
        connect_args=connect_args,
    )

    @event.listens_for(engine, "connect")
    def _binary_arrays(connection: psycopg.Connection[Any], _record: object) -> None:
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


def checkpoint_wal(engine: Engine) -> bool:
    """Copy SQLite's write-ahead log into the database and truncate it to nothing, so that the
    log keeps no page image of rows just erased; whether it could (a reader of an older
    snapshot holds it back, past the busy timeout). Nothing to do on PostgreSQL (its WAL is the
    operator's: deploy/README.md)."""
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        # It holds writers off while it waits for readers: a few seconds, not the 30 s writers
        # wait for one another; the connection goes back to the pool as it came.
        connection.exec_driver_sql(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        try:
            busy, _frames, _copied = connection.exec_driver_sql(
                "PRAGMA wal_checkpoint(TRUNCATE)"
            ).one()
        finally:
            connection.exec_driver_sql(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
    return busy == 0


def private_sqlite_files(url: str) -> None:
    """For a SQLite file database, before anything opens it (an engine, the migrations): the
    database created empty with mode 0600, as SQLite then gives its WAL and shared-memory files
    the database file's mode, and would create the database with 0644 (umask permitting) next to
    the pseudonym secret. Files of an older run are narrowed. Anything else is left alone."""
    name = make_url(url).database
    if not url.startswith("sqlite") or not name or name == ":memory:" or name.startswith("file:"):
        return
    database = Path(name)
    if not database.exists() and database.parent.is_dir():
        os.close(os.open(database, os.O_CREAT | os.O_WRONLY, PRIVATE_FILE_MODE))
        # Born in WAL mode: otherwise the first connections of the services that open it at
        # once race to switch it, and a switch that finds another reader fails at once.
        with closing(sqlite3.connect(database)) as born:
            born.execute("PRAGMA journal_mode=WAL")
    for suffix in SQLITE_FILE_SUFFIXES:
        path = database.with_name(database.name + suffix)
        try:
            if stat.S_IMODE(path.stat().st_mode) & 0o077:
                path.chmod(PRIVATE_FILE_MODE)
        except FileNotFoundError:
            continue
        except OSError as error:  # not ours to change: say so, and go on
            log.warning("cannot make %s readable by its owner alone (%s)", path, error.strerror)


def database_answers(engine: Engine) -> bool:
    """Whether the database answers a trivial query now: what readiness probes ask."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
