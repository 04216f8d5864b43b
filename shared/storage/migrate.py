"""Bringing a database to the current schema with the Alembic migrations in
shared/storage/migrations."""

import logging

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from shared.storage.database import private_sqlite_files

log = logging.getLogger("gallring.migrate")
#: The advisory lock migrations take on PostgreSQL: any number, the same in every release.
MIGRATION_LOCK = 7_346_201_905_118


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "shared.storage:migrations")
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    private_sqlite_files(database_url)  # Alembic's own engine would create it world-readable
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def wait_for_other_migrations(connection: Connection) -> None:
    """On PostgreSQL, in the migration's transaction. Every service migrates at its start,
    several at once in a deployment: the first upgrades, the others wait here (saying so: a
    long migration holds them) and then find the schema current."""
    if connection.execute(text(f"SELECT pg_try_advisory_xact_lock({MIGRATION_LOCK})")).scalar():
        return
    log.info("another process is migrating the database; waiting for it to finish")
    connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
