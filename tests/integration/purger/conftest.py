"""The purger's database, on PostgreSQL and on SQLite in turn."""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from shared.database import make_engine
from shared.migrate import upgrade
from tests.conftest import new_postgres_database


@pytest.fixture
def db(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own, for tests of what goes over every subject or clock stored: the
    session's shared databases hold other tests' subjects."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(new_postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'gallring.db'}"
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()
