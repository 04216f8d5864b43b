"""Which of the company's systems an erasure waits for: every active system of the register
(``company_system``, the API's table, read here) that holds the erasure's category when the
erasure is executed. Recorded in ``erasure_expected_system`` with the proof, in its transaction,
each with the time its confirmation is due by (execution + the system's ``confirm_within``); a
later change of the register does not rewrite it. An erasure of a category no active system holds
expects none (and is ``confirmed`` by any system's confirmation, as before the register).

The SQL road (``settled_erasure.py``) records the same rows in its statement."""

from collections.abc import Iterable
from datetime import datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, select

from shared.storage.bulk_insert import insert_rows
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.purger import ErasureExpectedSystem
from shared.storage.tables.table import table_of

_SYSTEMS = table_of(CompanySystem)
EXPECTED = table_of(ErasureExpectedSystem)


def record_expected(
    connection: Connection, erasures: Iterable[tuple[UUID, str]], executed_at: datetime
) -> int:
    """For each executed ``(erasure_id, category)``, the active systems holding the category;
    how many rows were recorded."""
    holders: dict[str, list[tuple[str, timedelta]]] = {}
    for system_id, categories, seconds in connection.execute(
        select(
            _SYSTEMS.c.system_id, _SYSTEMS.c.categories, _SYSTEMS.c.confirm_within_seconds
        ).where(_SYSTEMS.c.active.is_(True))
    ):
        for category in categories.split():
            holders.setdefault(category, []).append((system_id, timedelta(seconds=seconds)))
    if not holders:
        return 0
    rows = [
        {"erasure_id": erasure_id, "system": system_id, "due_by": executed_at + within}
        for erasure_id, category in erasures
        for system_id, within in holders.get(category, ())
    ]
    insert_rows(connection, EXPECTED, rows)
    return len(rows)
