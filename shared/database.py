"""Database engines for PostgreSQL (production) and SQLite (the embedded default)."""

from sqlalchemy import Engine, event
from sqlmodel import create_engine


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys and WAL so that it behaves like a server."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            cursor = connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        return engine
    # As many connections as request threads may want at once, recycled before servers or
    # proxies drop them (a pre-ping per checkout would cost a round trip per request).
    return create_engine(url, pool_size=20, max_overflow=20, pool_recycle=1800)
