"""Alembic environment: migrates the database named by the Alembic config's sqlalchemy.url."""

from alembic import context
from sqlalchemy import engine_from_config, pool, text

from shared.tables import metadata

config = context.config
#: The advisory lock migrations take on PostgreSQL: any number, the same in every release.
MIGRATION_LOCK = 7_346_201_905_118


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
                # Every service migrates at its start, several at once in a deployment: the
                # first upgrades, the others wait here and then find the schema current.
                connection.execute(text(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
            context.run_migrations()


run_migrations()
