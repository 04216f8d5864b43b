"""Fixtures of the API tests that talk to a served API over HTTP, as tools from outside do."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.api.api_keys import KeyStore, Scope
from services.api.settings import ApiSettings
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.settings import KafkaSettings, RelaySettings
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from shared.webhooks import url_vetting
from tests.integration.api.serving import offline_resolve, serving
from tests.integration.conftest import SEALING_KEY, SECRET


@pytest.fixture
def served_api(
    tmp_path: Path, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, str, ApiSettings]]:
    """The API served by uvicorn on the embedded default (SQLite, the session's broker): its
    base URL, an admin key (admin has every scope) and its settings."""
    monkeypatch.setattr(url_vetting, "_resolve", offline_resolve)
    database_url = f"sqlite:///{tmp_path / 'gallring.db'}"
    upgrade(database_url)
    engine = make_engine(database_url)
    try:
        key = KeyStore(engine).create("served-api-client", {Scope.ADMIN})
    finally:
        engine.dispose()
    settings = ApiSettings(
        pseudonym_secret=SECRET,
        secret_sealing_key=SEALING_KEY,
        database_url=database_url,
        kafka=kafka_settings,
        api_port=free_loopback_port(),
        # Accepted events stay in the outbox: published, they would reach the other tests'
        # consumers of the session broker's lifecycle topic. The relay is tested on its own.
        relay=RelaySettings(enabled=False),
    )
    with serving(settings) as base:
        yield base, key, settings
