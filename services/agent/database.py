"""The agent's engines on the company's database (and on its own, for the index)."""

import sqlite3

from sqlalchemy import Engine, create_engine, event


def open_database(url: str) -> Engine:
    """An engine on the database at ``url`` (a dataset's ``DatabaseSource.url()``). Connections
    are tried before use, so that a database restart costs no command.

    On SQLite, each connection enforces foreign keys (off by default there: a dataset's order
    would go unchecked) and overwrites what it deletes (``secure_delete``: erased rows are not
    left in free pages of the file). The file's journal mode is the company's, left as it is."""
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_recycle=1800)
    engine = create_engine(url)

    @event.listens_for(engine, "connect")
    def _pragmas(connection: sqlite3.Connection, _record: object) -> None:
        cursor = connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA secure_delete=ON")
        cursor.close()

    return engine
