"""The database plumbing against both real databases."""

from datetime import UTC, datetime

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, exc, select, text

from shared.runtime.settings import DatabaseSettings
from shared.storage.database import PoolLimits, make_engine, one_of
from shared.storage.tables.types import UtcDateTime

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


def test_one_of_matches_whole_values_only(database_url: str) -> None:
    # On PostgreSQL the values travel as one array cast to the column's type: a VARCHAR(20)[]
    # cast would cut a longer value down until it matched.
    engine = make_engine(database_url)
    probe_metadata.create_all(engine)
    try:
        with engine.begin() as connection:
            connection.execute(probe.delete())
            connection.execute(probe.insert().values(id=1, label="a" * 20))
            connection.execute(probe.insert().values(id=2, label="b"))
        with engine.connect() as connection:
            found = connection.execute(
                select(probe.c.id).where(one_of(connection, probe.c.label, ["a" * 25, "b"]))
            ).scalars()
            assert list(found) == [2]
    finally:
        probe_metadata.drop_all(engine)
        engine.dispose()


def test_a_process_opens_no_more_connections_than_its_settings_allow(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GALLRING_DATABASE_POOL_SIZE", "1")
    monkeypatch.setenv("GALLRING_DATABASE_MAX_OVERFLOW", "1")
    monkeypatch.setenv("GALLRING_DATABASE_POOL_TIMEOUT_SECONDS", "0.1")
    settings = DatabaseSettings(database_url=database_url)
    engine = make_engine(settings.database_url, settings.pool_limits())
    try:
        # A third caller waits, then hears TimeoutError: the API answers it 503, Retry-After.
        with engine.connect(), engine.connect(), pytest.raises(exc.TimeoutError):
            engine.connect()
    finally:
        engine.dispose()


def test_by_default_a_process_asks_for_at_most_ten_connections() -> None:
    # Six replicas of 40 each asked for 240 of PostgreSQL's default 100 (deploy/README.md).
    limits = DatabaseSettings().pool_limits()
    assert limits == PoolLimits(size=5, overflow=5, timeout_seconds=10.0)
    assert make_engine("postgresql+psycopg://gallring@127.0.0.1/unused").pool.size() == 5
