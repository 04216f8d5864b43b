"""The embedded default's sample collection system: the company's side of an erasure, on this
machine.

``gallring up`` makes a small collection system's database (SQLite, ``var/collection.db``: the
schema of :mod:`services.agent.sample`, empty until ``gallring demo`` writes its debtors into it),
writes the dataset file that describes it (``var/collection-dataset.yaml``), registers it as the
system ``collection`` (holding collection cases and the newsletter list), and runs one agent
against it with a key of the scope ``erasures:confirm`` alone, made at each start (the previous
one revoked; it is handed to the agent in its environment and kept nowhere else). The tour then
shows an overdue case's rows disappear from that database and the erasure confirmed by it.
"""

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine

from services.agent.database import open_database
from services.agent.sample import SAMPLE_DATASET, create_sample
from services.api.api_keys import KeyStore, Principal, Scope
from services.api.systems import service as systems
from services.api.systems.schemas import NewSystem
from shared.domain.contract.vocabulary import Category
from shared.storage.database import make_engine, private_sqlite_files

SYSTEM_ID = "collection"
SYSTEM_NAME = "Collection system (sample, var/collection.db)"
AGENT_KEY_NAME = "collection-agent"
#: The variable the dataset file names for the database URL (``url_env``).
DATABASE_URL_VARIABLE = "COLLECTION_DATABASE_URL"
#: Gallring's own secrets, which an agent has no use for.
NOT_FOR_AGENTS = frozenset({"GALLRING_DATABASE_URL", "GALLRING_SECRET_SEALING_KEY"})
#: Who registered the system, in the audit log.
_GALLRING_UP = Principal(key_id="gallring-up", name="gallring up", scopes=frozenset({Scope.ADMIN}))


@dataclass(frozen=True)
class CollectionSystem:
    """Where the sample system's files are, under ``gallring up``'s state directory."""

    state_dir: Path

    @property
    def database(self) -> Path:
        return self.state_dir / "collection.db"

    @property
    def dataset_file(self) -> Path:
        return self.state_dir / "collection-dataset.yaml"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database}"

    def engine(self) -> Engine:
        """An engine on the sample database, as the agent opens it (foreign keys enforced)."""
        return open_database(self.database_url)


def prepare(system: CollectionSystem, gallring_database_url: str) -> dict[str, str]:
    """The database (created once, schema only), the dataset file, the register's entry (made
    once: an admin's later changes stay) and a fresh agent key; the agent's environment."""
    private_sqlite_files(system.database_url)
    engine = system.engine()
    try:
        with engine.begin() as connection:
            create_sample(connection)  # creates only the tables that are missing
    finally:
        engine.dispose()
    if not system.dataset_file.exists():
        system.dataset_file.touch(mode=0o600)
        system.dataset_file.write_text(SAMPLE_DATASET)
    gallring = make_engine(gallring_database_url)
    try:
        if not systems.exists(gallring, SYSTEM_ID):
            new = NewSystem(
                system_id=SYSTEM_ID,
                name=SYSTEM_NAME,
                categories=[Category.COLLECTION_CASE, Category.MARKETING],
            )
            systems.create(gallring, new, actor=_GALLRING_UP, now=datetime.now(UTC))
        keys = KeyStore(gallring)
        keys.revoke(AGENT_KEY_NAME)
        key = keys.create(AGENT_KEY_NAME, {Scope.ERASURES_CONFIRM})
    finally:
        gallring.dispose()
    # What the operator set wins (an API URL, a status port), but for Gallring's own database
    # and sealing key: the agent, like one beside a company's database, never gets them.
    inherited = {name: value for name, value in os.environ.items() if name not in NOT_FOR_AGENTS}
    return {
        "GALLRING_AGENT_DATASET_FILE": str(system.dataset_file),
        "GALLRING_AGENT_API_KEY": key,
        DATABASE_URL_VARIABLE: system.database_url,
        **inherited,
    }
