"""``gallring up``'s sample collection system: made once, registered once, its agent given a
fresh key that may only confirm, and none of Gallring's own secrets."""

from pathlib import Path

import pytest
from sqlalchemy import inspect

from services.agent.dataset_file import load_dataset
from services.api.api_keys import KeyStore, Scope
from services.api.systems import service as systems
from services.cli.collection_system import CollectionSystem, prepare
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade


def test_the_sample_system_is_made_once_and_its_agent_gets_a_fresh_confirming_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gallring_url = f"sqlite:///{tmp_path / 'gallring.db'}"
    upgrade(gallring_url)
    monkeypatch.setenv("GALLRING_DATABASE_URL", gallring_url)
    monkeypatch.setenv("GALLRING_SECRET_SEALING_KEY", "a-sealing-key-the-agent-never-needs")
    system = CollectionSystem(tmp_path)

    first = prepare(system, gallring_url)
    second = prepare(system, gallring_url)  # the next start

    assert "GALLRING_DATABASE_URL" not in second
    assert "GALLRING_SECRET_SEALING_KEY" not in second
    dataset = load_dataset(Path(second["GALLRING_AGENT_DATASET_FILE"]))
    assert dataset.database.url(second) == system.database_url
    company = make_engine(system.database_url)
    assert {"debtors", "cases", "letters"} <= set(inspect(company).get_table_names())
    company.dispose()
    gallring = make_engine(gallring_url)
    keys = KeyStore(gallring, cache_seconds=0)
    assert keys.verify(first["GALLRING_AGENT_API_KEY"]) is None  # revoked at the restart
    agent = keys.verify(second["GALLRING_AGENT_API_KEY"])
    assert agent is not None and agent.scopes == frozenset({Scope.ERASURES_CONFIRM})
    assert systems.exists(gallring, "collection")
    gallring.dispose()
