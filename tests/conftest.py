"""Session fixtures that every test layer reuses: real PostgreSQL, SQLite and a real broker.

Each is a session's own (a database created under a fresh name, a file in the session's tmp
directory, a broker on a free port), so that pytest-xdist's workers, each a session, share
nothing (``make test`` runs a worker per CPU)."""

import contextlib
import functools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from shared.messaging.embedded_broker import EmbeddedBroker
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.migrate import alembic_config, upgrade

#: The machine's PostgreSQL cluster (trust auth); each session creates and drops its own database.
POSTGRES_ADMIN_URL = os.environ.get(
    "GALLRING_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@contextlib.contextmanager
def new_postgres_database() -> Iterator[str]:
    """The URL of an empty database on the machine's cluster, dropped afterwards."""
    admin = make_url(POSTGRES_ADMIN_URL)
    name = f"gallring_test_{uuid.uuid4().hex[:12]}"
    conninfo = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    path: Path = tmp_path_factory.mktemp("sqlite") / "gallring.db"
    return f"sqlite:///{path}"


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each database test runs once on PostgreSQL and once on SQLite."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def migrated_url(database_url: str) -> str:
    """The session's database at the current schema: upgraded unless it is there already (as
    upgrade() would find, but without reading every migration script first, for each of some
    340 tests; tests/integration/test_migrations.py takes it down to base and back)."""
    if _revision_of(database_url) != _head_revision():
        upgrade(database_url)
    return database_url


@functools.cache
def _head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _revision_of(database_url: str) -> str | None:
    """The database's Alembic revision; None before its first migration."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:  # no alembic_version table
        return None
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker() as broker:
        yield broker


@pytest.fixture(scope="session")
def kafka_settings(kafka_broker: EmbeddedBroker) -> KafkaSettings:
    """Settings for the test broker: Tansu refuses idempotence; short sessions join fast."""
    return KafkaSettings(
        bootstrap=kafka_broker.bootstrap_servers,
        client_id="gallring-tests",
        enable_idempotence=False,
        session_timeout_ms=2_000,
        heartbeat_interval_ms=500,
    )
