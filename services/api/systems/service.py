"""The register of the company's systems in the database (``company_system``), and what each owes:
the erasures that expect its confirmation (the purger's ``erasure_expected_system``, read here)."""

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.api import audit
from services.api.api_keys import Principal
from services.api.systems.schemas import NewSystem, SystemChange, SystemView
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.purger import UNCONFIRMED, ErasureExpectedSystem, ErasureProof
from shared.storage.tables.table import table_of

_SYSTEMS = table_of(CompanySystem)
_EXPECTED = table_of(ErasureExpectedSystem)
_PROOFS = table_of(ErasureProof)


class SystemExists(Exception):
    pass


def create(db: Engine, new: NewSystem, *, actor: Principal, now: datetime) -> SystemView:
    values = {
        "system_id": new.system_id,
        "name": new.name,
        "categories": _categories(new.categories),
        "confirm_within_seconds": int(new.confirm_within.total_seconds()),
        "active": new.active,
        "created_at": now,
        "updated_at": now,
    }
    try:
        with db.begin() as connection:
            connection.execute(insert(_SYSTEMS).values(**values))
            audit.record(
                connection, actor=actor, action="systems.created", at=now, system_id=new.system_id
            )
    except IntegrityError:
        raise SystemExists(new.system_id) from None
    view = one(db, new.system_id, now=now)
    assert view is not None
    return view


def all_systems(db: Engine, *, now: datetime) -> list[SystemView]:
    with db.connect() as connection:
        rows = connection.execute(select(_SYSTEMS).order_by(_SYSTEMS.c.system_id)).all()
        owed = _owed(connection, now)
    return [_view(row, owed) for row in rows]


def one(db: Engine, system_id: str, *, now: datetime) -> SystemView | None:
    with db.connect() as connection:
        row = connection.execute(select(_SYSTEMS).where(_SYSTEMS.c.system_id == system_id)).first()
        owed = _owed(connection, now, system_id) if row is not None else {}
    return _view(row, owed) if row is not None else None


def exists(db: Engine, system_id: str) -> bool:
    with db.connect() as connection:
        found = connection.execute(
            select(_SYSTEMS.c.system_id).where(_SYSTEMS.c.system_id == system_id)
        ).first()
    return found is not None


def change(
    db: Engine, system_id: str, change: SystemChange, *, actor: Principal, now: datetime
) -> SystemView | None:
    """Only what is given changes; the erasures executed before keep what they expect."""
    given: dict[str, Any] = change.model_dump(exclude_unset=True, exclude_none=True)
    values: dict[str, Any] = {}
    if change.name is not None:
        values["name"] = change.name
    if change.categories is not None:
        values["categories"] = _categories(change.categories)
    if change.confirm_within is not None:
        values["confirm_within_seconds"] = int(change.confirm_within.total_seconds())
    if change.active is not None:
        values["active"] = change.active
    with db.begin() as connection:
        updated = connection.execute(
            update(_SYSTEMS)
            .where(_SYSTEMS.c.system_id == system_id)
            .values(updated_at=now, **values)
        ).rowcount
        if not updated:
            return None
        audit.record(
            connection,
            actor=actor,
            action="systems.changed",
            at=now,
            system_id=system_id,
            fields=sorted(given),
        )
    return one(db, system_id, now=now)


def owed_by_system(connection: Connection, now: datetime) -> dict[str, tuple[int, int, Any]]:
    """Per system, its unconfirmed expected erasures: how many, how many overdue, and when the
    oldest of them was executed. From the partial index of unconfirmed rows."""
    overdue = func.count().filter(_EXPECTED.c.due_by <= now)
    rows = connection.execute(
        select(_EXPECTED.c.system, func.count(), overdue, func.min(_PROOFS.c.executed_at))
        .join(_PROOFS, _PROOFS.c.erasure_id == _EXPECTED.c.erasure_id)
        .where(UNCONFIRMED)
        .group_by(_EXPECTED.c.system)
    )
    return {system: (count, late, first) for system, count, late, first in rows}


def _owed(
    connection: Connection, now: datetime, system_id: str | None = None
) -> dict[str, tuple[int, int, Any]]:
    if system_id is None:
        return owed_by_system(connection, now)
    count, late = connection.execute(
        select(func.count(), func.count().filter(_EXPECTED.c.due_by <= now)).where(
            UNCONFIRMED, _EXPECTED.c.system == system_id
        )
    ).one()
    return {system_id: (count, late, None)}


def _categories(categories: list[Any]) -> str:
    return " ".join(sorted({category.value for category in categories}))


def _view(row: Any, owed: dict[str, tuple[int, int, Any]]) -> SystemView:
    count, late, _ = owed.get(row.system_id, (0, 0, None))
    return SystemView(
        system_id=row.system_id,
        name=row.name,
        categories=row.categories.split(),
        confirm_within=row.confirm_within_seconds,
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        unconfirmed_erasures=count,
        overdue_erasures=late,
    )
