"""Alembic environment: migrates the database named by the Alembic config's sqlalchemy.url."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from shared.storage.migrate import wait_for_other_migrations
from shared.storage.tables import metadata

config = context.config


def run_migrations() -> None:
    connectable = engine_from_config(
        config.get_section(config.config_ini_section) or {},
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with connectable.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                wait_for_other_migrations(connection)
            context.run_migrations()


run_migrations()
