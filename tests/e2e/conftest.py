"""Tests of Gallring's processes as an operator runs them: ``gallring up`` and the workers as
real processes, killed, restarted and run side by side, on the session's databases and broker."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from shared.storage.database import make_engine
from tests.integration.conftest import fresh_db

__all__ = ["db", "fresh_db"]


@pytest.fixture
def db(migrated_url: str) -> Iterator[Engine]:
    """The session's database, on PostgreSQL and on SQLite in turn."""
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()
