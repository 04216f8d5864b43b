"""The agent's engines on the company's database (and on its own, for the index)."""

import sqlite3
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError

Result = TypeVar("Result")


def open_database(url: str) -> Engine:
    """An engine on the database at ``url`` (a dataset's ``DatabaseSource.url()``).

    Connections are not tried before use (a ``SELECT 1`` before every command was one round
    trip in eight): the consumer's transactions run through :func:`again_if_reconnected`
    instead, so that a database restart still costs no command.

    On SQLite, each connection enforces foreign keys (off by default there: a dataset's order
    would go unchecked) and overwrites what it deletes (``secure_delete``: erased rows are not
    left in free pages of the file). The file's journal mode is the company's, left as it is."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_recycle=1800)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: sqlite3.Connection, _record: object) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine


def again_if_reconnected(work: Callable[[], Result]) -> Result:
    """``work`` (transactions that may be run twice: an erasure, a check), and once more if a
    connection it took from the pool was found closed, as after a database restart: SQLAlchemy
    then discards every connection the pool held, so the second try connects anew. A database
    still away fails the second try too, and that is raised (an outage: the batch is read
    again later)."""
    try:
        return work()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return work()
