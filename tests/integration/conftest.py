"""The API per test on a migrated database (PostgreSQL and SQLite), with a real broker."""

import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from services.api.api_keys import KeyStore, Scope
from services.api.app import create_app
from services.api.settings import ApiSettings
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from tests.conftest import new_postgres_database

SECRET = "test-pseudonym-secret-of-32-chars-or-more"
SEALING_KEY = "test-secret-sealing-key-of-32-chars-or-more"
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RunningApi:
    client: httpx.AsyncClient
    settings: ApiSettings
    keys: KeyStore
    engine: Engine  #: the application's, pooled as its settings say

    def key(self, *scopes: Scope) -> dict[str, str]:
        """Authorization headers for a fresh key with these scopes."""
        key = self.keys.create("test-client", set(scopes))
        return {"Authorization": f"Bearer {key}"}


def relay_settings(**changes: object) -> RelaySettings:
    """Quick rounds and retries; published rows kept a second (an hour in production)."""
    fields: dict = {
        "poll_interval_seconds": 0.05,
        "max_backoff_seconds": 0.5,
        "keep_published_seconds": 1.0,
    }
    return RelaySettings(**(fields | changes))


def forget_the_session_broker(database_url: str) -> None:
    """For a test with a broker of its own on the session's shared database: what the relays
    published to the other broker is no concern of this one (it would be published again)."""
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM published_message"))
            connection.execute(text("DELETE FROM relay_watermark"))
    finally:
        engine.dispose()


def crash(broker: EmbeddedBroker) -> None:
    """The broker gone at once, as a crash or the OOM killer ends it (SIGKILL); ``start()``
    starts it again, as empty as after a stop (it keeps nothing). A stop (SIGTERM) would first
    let Tansu drain its clients' connections: about 5 s while the API or a consumer is
    connected, an outage that begins 5 s late."""
    process = broker._process
    assert process is not None, "not started"
    process.kill()
    process.wait()
    broker.stop()  # forgets the process (ended already: nothing to signal)


@pytest.fixture
def make_api(
    migrated_url: str, kafka_settings: KafkaSettings
) -> Callable[..., AbstractAsyncContextManager[RunningApi]]:
    @contextlib.asynccontextmanager
    async def running(root_path: str = "", **changes: object) -> AsyncIterator[RunningApi]:
        fields: dict = {
            "pseudonym_secret": SECRET,
            "secret_sealing_key": SEALING_KEY,
            "database_url": migrated_url,
            "kafka": kafka_settings,
            "relay": relay_settings(),
            "api_key_cache_seconds": 0,
        }
        fields.update(changes)
        settings = ApiSettings(**fields)
        engine = make_engine(settings.database_url, settings.pool_limits())
        app = create_app(settings, db_engine=engine)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app, root_path=root_path)
                base_url = f"http://api{root_path}"
                async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
                    yield RunningApi(client, settings, app.state.key_store, engine)
        finally:
            engine.dispose()

    return running


@pytest.fixture
async def api(make_api) -> AsyncIterator[RunningApi]:
    async with make_api() as running:
        yield running


@pytest.fixture(params=["postgres", "sqlite"])
def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of its own, for tests of what counts or goes over every row stored: the
    session's shared databases hold other tests' rows."""
    with contextlib.ExitStack() as stack:
        if request.param == "postgres":
            url = stack.enter_context(new_postgres_database())
        else:
            url = f"sqlite:///{tmp_path / 'gallring.db'}"
        upgrade(url)
        engine = make_engine(url)
        yield engine
        engine.dispose()


def start_worker(
    command: str, database_url: str, kafka: KafkaSettings, **settings: str
) -> subprocess.Popen[bytes]:
    """``gallring <command>`` as a real process on the test's database and broker;
    ``settings`` are more ``GALLRING_…`` variables, without the prefix."""
    env = {
        **os.environ,
        "GALLRING_DATABASE_URL": database_url,
        "GALLRING_PSEUDONYM_SECRET": SECRET,
        "GALLRING_SECRET_SEALING_KEY": SEALING_KEY,
        "GALLRING_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "GALLRING_KAFKA_ENABLE_IDEMPOTENCE": "false",
        "GALLRING_KAFKA_SESSION_TIMEOUT_MS": "2000",
        **{f"GALLRING_{name.upper()}": value for name, value in settings.items()},
    }
    return subprocess.Popen(
        [sys.executable, "-m", "services.cli.main", command],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
