"""Reading erasures from the purger's tables (clocks not yet executed, proofs of those that were,
the systems each expects and their confirmations) and passing on to the purger, which owns
erasures, what the company's systems and admins say of them: a confirmation, a request for an
erasure's command again for one system.

An executed erasure's state (``schemas.ErasureState``) is computed when it is read, from the
systems it expects (recorded at execution) and the time: ``overdue`` once one of them is late.

A page is ordered by ``(due_at, erasure_id)`` and continues after a cursor holding the last
pair, so that pages stay stable while the sweep moves clocks into proofs.
"""

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from sqlalchemy import Connection, Engine, and_, exists, not_, or_, select, tuple_

from services.api.api_keys import Principal
from services.api.erasures.schemas import (
    ErasureProofView,
    ErasureState,
    ErasureView,
    ExpectedSystem,
)
from services.api.notifications import service as notifications
from services.api.passing_on import pass_on
from shared.domain.contract.erasure_messages import CommandRequested, ConfirmationReported
from shared.domain.pseudonym import subject_hash
from shared.messaging import topics
from shared.storage.tables.api import CompanySystem
from shared.storage.tables.purger import (
    AWAITING_REVIEW,
    SWEPT_STATES,
    UNCONFIRMED,
    ErasureConfirmation,
    ErasureExpectedSystem,
    ErasureProof,
    StoredClock,
)
from shared.storage.tables.table import table_of

_CLOCKS = table_of(StoredClock)
_PROOFS = table_of(ErasureProof)
_CONFIRMATIONS = table_of(ErasureConfirmation)
_EXPECTED = table_of(ErasureExpectedSystem)
_SYSTEMS = table_of(CompanySystem)
_PROOF_STATES = (
    ErasureState.EXECUTED,
    ErasureState.PARTIALLY_CONFIRMED,
    ErasureState.CONFIRMED,
    ErasureState.OVERDUE,
)
_CLOCK_STATES = {
    ErasureState.SCHEDULED: SWEPT_STATES,
    ErasureState.HELD: ("held",),
    ErasureState.AWAITING_REVIEW: (AWAITING_REVIEW,),
}
#: A clock's erasure state by the clock's own (the others are scheduled).
_CLOCK_STATE_OF = {"held": ErasureState.HELD, AWAITING_REVIEW: ErasureState.AWAITING_REVIEW}


class CursorError(ValueError):
    """The cursor was not one this API handed out."""


@dataclass(frozen=True, slots=True)
class Filters:
    state: ErasureState | None = None
    category: str | None = None
    due_before: datetime | None = None
    system: str | None = None  # only the executed erasures this system has yet to confirm


def encode_cursor(view: ErasureView) -> str:
    assert view.due_at is not None
    text = f"{view.due_at.isoformat()}|{view.erasure_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        due_at, erasure_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|")
        return datetime.fromisoformat(due_at), UUID(erasure_id)
    except (ValueError, UnicodeDecodeError) as error:
        raise CursorError("not a cursor from a previous page") from error


def page(
    db: Engine,
    filters: Filters,
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
    now: datetime,
) -> tuple[list[ErasureView], bool]:
    """Up to ``limit`` erasures after ``after``, in their states at ``now``; and whether more
    follow."""
    with db.connect() as connection:
        views = []
        if filters.state in (None, *_CLOCK_STATES) and filters.system is None:
            views += _scheduled(connection, filters, after, limit + 1)
        if filters.state in (None, *_PROOF_STATES):
            views += _executed(connection, filters, after, limit + 1, now)
    views.sort(key=lambda view: (view.due_at, view.erasure_id))
    return views[:limit], len(views) > limit


def encode_proof_cursor(view: ErasureProofView) -> str:
    text = f"{view.executed_at.isoformat()}|{view.erasure_id}"
    return base64.urlsafe_b64encode(text.encode()).decode()


def proofs_since(
    db: Engine,
    executed_since: datetime,
    categories: Sequence[str],
    *,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> tuple[list[ErasureProofView], bool]:
    """Up to ``limit`` proofs of erasures executed at or after ``executed_since`` (of these
    categories; all if none), in ``(executed_at, erasure_id)`` order after ``after``; and whether
    more follow. No index serves ``executed_at``: it is read after a backup restore, rarely, and
    an index would cost every erasure."""
    conditions = [_PROOFS.c.executed_at >= executed_since]
    if categories:
        conditions.append(_PROOFS.c.category.in_(categories))
    if after is not None:
        conditions.append(tuple_(_PROOFS.c.executed_at, _PROOFS.c.erasure_id) > after)
    query = (
        select(
            _PROOFS.c.erasure_id,
            _PROOFS.c.category,
            _PROOFS.c.subject_hash,
            _PROOFS.c.clock_hash,
            _PROOFS.c.executed_at,
        )
        .where(*conditions)
        .order_by(_PROOFS.c.executed_at, _PROOFS.c.erasure_id)
        .limit(limit + 1)
    )
    with db.connect() as connection:
        rows = connection.execute(query).all()
    views = [ErasureProofView.model_validate(row._mapping) for row in rows[:limit]]
    return views, len(rows) > limit


def one(db: Engine, erasure_id: UUID, now: datetime) -> ErasureView | None:
    with db.connect() as connection:
        clock = connection.execute(
            select(_CLOCKS).where(_CLOCKS.c.erasure_id == erasure_id)
        ).first()
        if clock is not None:
            return _clock_view(clock)
        proof = connection.execute(
            select(_PROOFS).where(_PROOFS.c.erasure_id == erasure_id)
        ).first()
        if proof is None:
            return None
        [view] = _proof_views(connection, [proof], now)
        view.notifications = notifications.of_erasure(connection, erasure_id)
        return view


def of_subject(connection: Connection, pseudonym: str, now: datetime) -> list[ErasureView]:
    """The proofs of a subject's executed erasures, oldest first: found through the hash of the
    pseudonym they keep, which only someone who holds the identifier can compute."""
    rows = connection.execute(
        select(_PROOFS)
        .where(_PROOFS.c.subject_hash == subject_hash(pseudonym))
        .order_by(_PROOFS.c.executed_at, _PROOFS.c.erasure_id)
    ).all()
    return _proof_views(connection, rows, now)


def confirmed_at(db: Engine, erasure_id: UUID, system: str) -> datetime | None:
    """When the purger recorded this system's confirmation, if it has."""
    with db.connect() as connection:
        return connection.execute(
            select(_CONFIRMATIONS.c.confirmed_at).where(
                _CONFIRMATIONS.c.erasure_id == erasure_id, _CONFIRMATIONS.c.system == system
            )
        ).scalar_one_or_none()


def report_confirmation(
    db: Engine, erasure_id: UUID, system: str, *, actor: Principal, now: datetime
) -> None:
    """Pass a system's confirmation on to the purger, which owns erasures, through the outbox."""
    message = ConfirmationReported(
        event_id=uuid4(),
        erasure_id=erasure_id,
        system=system,
        reported_at=now,
        reported_by=actor.name,
    )
    pass_on(
        db,
        topics.ERASURE_CONFIRMATIONS,
        str(erasure_id),
        message,
        actor=actor,
        action="erasures.confirmation_reported",
        now=now,
        erasure_id=str(erasure_id),
        system=system,
    )


def request_command(
    db: Engine, erasure_id: UUID, system: str, *, actor: Principal, now: datetime
) -> None:
    """Ask the purger, which owns erasures and alone publishes their commands, to publish an
    executed erasure's command again for ``system``, through the outbox."""
    message = CommandRequested(
        event_id=uuid4(),
        erasure_id=erasure_id,
        system=system,
        requested_at=now,
        requested_by=actor.name,
    )
    pass_on(
        db,
        topics.ERASURE_CONFIRMATIONS,
        str(erasure_id),
        message,
        actor=actor,
        action="erasures.command_requested",
        now=now,
        erasure_id=str(erasure_id),
        system=system,
    )


def _after(table: Any, after: tuple[datetime, UUID] | None) -> Any:
    if after is None:
        return True
    # A row comparison, which an index on (due_at, erasure_id) serves as a range; the same
    # condition spelled with OR is read row by row.
    return tuple_(table.c.due_at, table.c.erasure_id) > after


def _common_filters(table: Any, filters: Filters, after: tuple[datetime, UUID] | None) -> list:
    conditions = [table.c.due_at.is_not(None), _after(table, after)]
    if filters.category is not None:
        conditions.append(table.c.category == filters.category)
    if filters.due_before is not None:
        conditions.append(table.c.due_at < filters.due_before)
    return conditions


def _scheduled(
    connection: Connection, filters: Filters, after: tuple[datetime, UUID] | None, limit: int
) -> list[ErasureView]:
    states = (
        _CLOCK_STATES[filters.state] if filters.state else (*SWEPT_STATES, "held", AWAITING_REVIEW)
    )
    rows = connection.execute(
        select(_CLOCKS)
        .where(_CLOCKS.c.state.in_(states), *_common_filters(_CLOCKS, filters, after))
        .order_by(_CLOCKS.c.due_at, _CLOCKS.c.erasure_id)
        .limit(limit)
    )
    return [_clock_view(row) for row in rows]


def _executed(
    connection: Connection,
    filters: Filters,
    after: tuple[datetime, UUID] | None,
    limit: int,
    now: datetime,
) -> list[ErasureView]:
    conditions = _common_filters(_PROOFS, filters, after)
    if filters.state is not None:
        conditions.append(_in_state(filters.state, now))
    if filters.system is not None:  # what it owes; overdue: what it is itself late with
        owes = [
            _EXPECTED.c.erasure_id == _PROOFS.c.erasure_id,
            _EXPECTED.c.system == filters.system,
        ]
        if filters.state is ErasureState.OVERDUE:
            owes.append(_EXPECTED.c.due_by <= now)
        conditions.append(exists().where(*owes, UNCONFIRMED))
    rows = connection.execute(
        select(_PROOFS)
        .where(*conditions)
        .order_by(_PROOFS.c.due_at, _PROOFS.c.erasure_id)
        .limit(limit)
    ).all()
    return _proof_views(connection, rows, now)


def _in_state(state: ErasureState, now: datetime) -> Any:
    """An executed erasure's state as a condition on its proof: :func:`_state` in SQL."""
    expected = _EXPECTED.c
    of_proof = expected.erasure_id == _PROOFS.c.erasure_id
    waiting = exists().where(of_proof, UNCONFIRMED)
    late = exists().where(of_proof, UNCONFIRMED, expected.due_by <= now)
    some_expected_confirmed = exists().where(of_proof, expected.confirmed_at.is_not(None))
    any_confirmation = exists().where(_CONFIRMATIONS.c.erasure_id == _PROOFS.c.erasure_id)
    if state is ErasureState.CONFIRMED:
        return and_(not_(waiting), any_confirmation)
    if state is ErasureState.OVERDUE:
        return late
    if state is ErasureState.PARTIALLY_CONFIRMED:
        return and_(waiting, not_(late), some_expected_confirmed)
    assert state is ErasureState.EXECUTED
    return and_(not_(late), not_(some_expected_confirmed), or_(waiting, not_(any_confirmation)))


def _state(expected: list[ExpectedSystem], confirmed_by: list[str], now: datetime) -> ErasureState:
    """Confirmed when every expected system confirmed; overdue while one is late; partially
    confirmed when some did, in time. Expecting none: confirmed by any system's confirmation."""
    if not expected:
        return ErasureState.CONFIRMED if confirmed_by else ErasureState.EXECUTED
    waiting = [e for e in expected if e.confirmed_at is None]
    if not waiting:
        return ErasureState.CONFIRMED
    if any(e.due_by <= now for e in waiting):
        return ErasureState.OVERDUE
    if len(waiting) < len(expected):
        return ErasureState.PARTIALLY_CONFIRMED
    return ErasureState.EXECUTED


def _proof_views(connection: Connection, rows: Sequence[Any], now: datetime) -> list[ErasureView]:
    ids = [row.erasure_id for row in rows]
    confirmed_by = _confirmed_by(connection, ids)
    expected = _expected(connection, ids)
    confirmers = {system for systems in confirmed_by.values() for system in systems}
    registered = _registered(connection, confirmers)
    return [
        _proof_view(
            row,
            confirmed_by.get(row.erasure_id, []),
            expected.get(row.erasure_id, []),
            registered,
            now,
        )
        for row in rows
    ]


def _confirmed_by(connection: Connection, erasure_ids: list[UUID]) -> dict[UUID, list[str]]:
    systems: dict[UUID, list[str]] = {}
    if erasure_ids:
        rows = connection.execute(
            select(_CONFIRMATIONS.c.erasure_id, _CONFIRMATIONS.c.system)
            .where(_CONFIRMATIONS.c.erasure_id.in_(erasure_ids))
            .order_by(_CONFIRMATIONS.c.system)
        )
        for erasure_id, system in rows:
            systems.setdefault(erasure_id, []).append(system)
    return systems


def _expected(connection: Connection, erasure_ids: list[UUID]) -> dict[UUID, list[ExpectedSystem]]:
    expected: dict[UUID, list[ExpectedSystem]] = {}
    if erasure_ids:
        rows = connection.execute(
            select(_EXPECTED)
            .where(_EXPECTED.c.erasure_id.in_(erasure_ids))
            .order_by(_EXPECTED.c.system)
        )
        for row in rows:
            expected.setdefault(row.erasure_id, []).append(
                ExpectedSystem(system=row.system, due_by=row.due_by, confirmed_at=row.confirmed_at)
            )
    return expected


def _registered(connection: Connection, systems: set[str]) -> set[str]:
    if not systems:
        return set()
    return set(
        connection.execute(
            select(_SYSTEMS.c.system_id).where(_SYSTEMS.c.system_id.in_(systems))
        ).scalars()
    )


def _clock_view(row: Any) -> ErasureView:
    return ErasureView(
        erasure_id=row.erasure_id,
        state=_CLOCK_STATE_OF.get(row.state, ErasureState.SCHEDULED),
        category=row.category,
        scope={row.scope_key: row.scope_value} if row.scope_key else {},
        rule=row.rule,
        legal_basis=row.legal_basis,
        due_at=row.due_at,
    )


def _proof_view(
    row: Any,
    confirmed_by: list[str],
    expected: list[ExpectedSystem],
    registered: set[str],
    now: datetime,
) -> ErasureView:
    return ErasureView(
        erasure_id=row.erasure_id,
        state=_state(expected, confirmed_by, now),
        category=row.category,
        scope=None,
        rule=row.rule,
        legal_basis=row.legal_basis,
        due_at=row.due_at,
        executed_at=row.executed_at,
        confirmed_by=confirmed_by,
        expected_systems=expected,
        unregistered_confirmations=[s for s in confirmed_by if s not in registered],
    )
