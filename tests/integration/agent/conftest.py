"""The agent against real company databases: PostgreSQL, MariaDB and SQLite, each test on the
sample collection system (services/agent/sample.py), seeded and indexed afresh."""

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pymysql
import pytest
from sqlalchemy import Engine, make_url, text

from services.agent import index
from services.agent.database import open_database
from services.agent.dataset import Dataset
from services.agent.dataset_file import parse_dataset
from services.agent.sample import SAMPLE_DATASET, create_sample, drop_sample, seed
from services.agent.schema import BoundDataset, bind
from shared.domain.pseudonym import Pseudonymiser
from tests.conftest import new_postgres_database

#: The machine's MariaDB (root, no password); each session creates and drops its own database.
MARIADB_ADMIN_URL = os.environ.get(
    "GALLRING_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test"
)
PSEUDONYMISER = Pseudonymiser(b"agent-test-pseudonym-secret-of-32-bytes")


@contextlib.contextmanager
def new_mariadb_database() -> Iterator[str]:
    url = make_url(MARIADB_ADMIN_URL)
    name = f"gallring_agent_{uuid.uuid4().hex[:12]}"
    admin = {
        "host": url.host,
        "port": url.port or 3306,
        "user": url.username,
        "password": url.password or "",
    }
    with contextlib.closing(pymysql.connect(**admin, autocommit=True)) as connection:
        connection.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with contextlib.closing(pymysql.connect(**admin, autocommit=True)) as connection:
            connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")


@pytest.fixture(scope="session")
def agent_postgres_url() -> Iterator[str]:
    with new_postgres_database() as url:
        yield url


@pytest.fixture(scope="session")
def agent_mariadb_url() -> Iterator[str]:
    with new_mariadb_database() as url:
        yield url


def close_other_sessions(engine: Engine) -> None:
    """What the other clients of the database see of a restart: the server closes their
    connections (ended here from one of ``engine``'s, which stays)."""
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            return
        others = connection.scalars(
            text(
                "SELECT id FROM information_schema.processlist "
                "WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
        ).all()
        assert others, "no other session to close"
        for session in others:
            connection.execute(text(f"KILL CONNECTION {int(session)}"))


def company_engine(url: str) -> Engine:
    """The engine the agent opens (SQLite: foreign keys on, the journal left as it is)."""
    return open_database(url)


@pytest.fixture(params=["postgres", "mariadb", "sqlite"])
def company_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collection.db'}"
    return request.getfixturevalue(f"agent_{request.param}_url")


@pytest.fixture
def company_db(company_url: str) -> Iterator[Engine]:
    """The sample system, seeded, with an empty index, dropped afterwards."""
    engine = company_engine(company_url)
    with engine.begin() as connection:
        index.INDEX_METADATA.drop_all(connection)
        drop_sample(connection)
        create_sample(connection)
        seed(connection)
    index.create_index_tables(engine)
    yield engine
    with engine.begin() as connection:
        index.INDEX_METADATA.drop_all(connection)
        drop_sample(connection)
    engine.dispose()


@dataclass
class Agent:
    """The agent's library on one database: the bound dataset, its engine, the index's."""

    bound: BoundDataset
    system: Engine
    index: Engine

    def index_pass(self, **options: object) -> index.IndexPass:
        return index.index_pass(
            self.bound,
            system=self.system,
            index=self.index,
            pseudonymiser=PSEUDONYMISER,
            **options,
        )


def sample_dataset(text: str = SAMPLE_DATASET) -> Dataset:
    return parse_dataset(text, source="sample.yaml")


def bound_on(engine: Engine, dataset: Dataset | None = None) -> BoundDataset:
    with engine.connect() as connection:
        return bind(dataset or sample_dataset(), connection)


@pytest.fixture
def agent(company_db: Engine) -> Agent:
    """The sample's agent with its index built (a first pass)."""
    running = Agent(bound_on(company_db), company_db, company_db)
    running.index_pass()
    return running
