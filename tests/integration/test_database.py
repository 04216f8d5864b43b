"""The database plumbing against both real databases."""

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select, text
from sqlalchemy.exc import OperationalError

from shared.database import make_engine
from shared.tables.types import UtcDateTime

# Not on the schema's metadata: this table exists only for the test.
probe_metadata = MetaData()
probe = Table(
    "probe_record",
    probe_metadata,
    Column("id", Integer, primary_key=True),
    Column("label", String(20)),
    Column("recorded_at", UtcDateTime()),
)


def test_timestamps_round_trip_as_aware_utc_on_each_database(database_url: str) -> None:
    engine = make_engine(database_url)
    probe_metadata.create_all(engine)
    try:
        stockholm_noon = datetime.fromisoformat("2026-07-01T12:00:00+02:00")
        with engine.begin() as connection:
            connection.execute(probe.insert().values(label="hello", recorded_at=stockholm_noon))
        with engine.connect() as connection:
            label, recorded_at = connection.execute(
                select(probe.c.label, probe.c.recorded_at)
            ).one()
        assert label == "hello"
        assert recorded_at == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
        assert recorded_at.tzinfo is UTC
    finally:
        probe_metadata.drop_all(engine)
        engine.dispose()


def test_sqlite_enforces_foreign_keys(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_each_session_gets_its_own_postgres_database(postgres_url: str) -> None:
    engine = make_engine(postgres_url)
    with engine.connect() as connection:
        name = connection.execute(text("SELECT current_database()")).scalar()
    engine.dispose()
    assert name.startswith("gallring_test_")


def test_a_transaction_does_not_write_on_what_changed_since_it_read(tmp_path: Path) -> None:
    """On SQLite, a transaction's reads share one snapshot, and writing after another connection
    changed the data fails: the sweep cannot erase a clock held after it read it."""
    path = tmp_path / "gallring.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE clock (id INTEGER PRIMARY KEY, state TEXT)"))
        connection.execute(text("INSERT INTO clock VALUES (1, 'due')"))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    try:
        with pytest.raises(OperationalError, match="locked"), engine.begin() as connection:
            assert connection.execute(text("SELECT state FROM clock")).scalar_one() == "due"
            other.execute("UPDATE clock SET state = 'held' WHERE id = 1")  # readers do not block
            connection.execute(text("DELETE FROM clock WHERE id = 1"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT state FROM clock")).scalar_one() == "held"
    finally:
        other.close()
        engine.dispose()
