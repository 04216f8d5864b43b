"""The database schema, one module per owning service; Alembic migrations in
shared/storage/migrations.

Each service writes only its own tables (the API: ``api.py``, the purger: ``purger.py``, the
notifier: ``notifier.py``); every service writes the outbox (``outbox.py``). Importing this
package registers every table on :data:`metadata`, which the migrations are checked against.
"""

from sqlmodel import SQLModel

metadata = SQLModel.metadata
# Explicit constraint and index names, so that migrations name them the same on every database.
metadata.naming_convention = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

from shared.storage.tables import api, notifier, outbox, purger  # noqa: E402, F401 - registers the tables
