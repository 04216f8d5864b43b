"""The purger's database, on PostgreSQL and on SQLite in turn."""

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from shared.storage.database import make_engine


@pytest.fixture
def db(migrated_url: str) -> Iterator[Engine]:
    engine = make_engine(migrated_url)
    yield engine
    engine.dispose()
