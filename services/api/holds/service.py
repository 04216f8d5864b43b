"""The register of legal holds in the database (``legal_hold``, ``legal_hold_subject``) and what
each change of it sends: the ``legal_hold.placed`` and ``legal_hold.released`` events the purger
applies (on the immediate lane, as an upstream system's would go), a message on
``gallring.holds.v1`` for ops, and an audit entry naming the key — all in the change's own
transaction, through the outbox.

A release takes two keys: one requests it (``holds:write``), another approves it
(``holds:approve``); only the approval sends the release events, to the placements the register
made (``legal_hold_subject``) and to those of the hold's own id upstream events made. The same
key, or another key of the same name, cannot approve its own request: the audit log must name
two. Key names go to the audit log and the register; ``gallring.holds.v1`` carries key ids.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import ColumnElement, Connection, Engine, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from services.api import audit
from services.api.api_keys import Principal
from services.api.holds import standing
from services.api.holds.coverage import Placement, placements
from services.api.holds.schemas import (
    CoversView,
    HoldChange,
    HoldCoverage,
    HoldState,
    HoldView,
    NewHold,
)
from shared.domain.contract.events import (
    LEGAL_HOLD_PLACED,
    LEGAL_HOLD_RELEASED,
    HoldPlacedData,
    HoldReleasedData,
)
from shared.domain.contract.hold_messages import (
    HoldPlaced,
    HoldReleased,
    HoldReleaseRequested,
    ReviewThreshold,
    review_threshold,
)
from shared.domain.contract.lifecycle_message import SCHEMA_VERSION, LifecycleMessage
from shared.domain.contract.vocabulary import WRITTEN_BY_GALLRING, HoldReason
from shared.messaging import topics
from shared.messaging.outbox import outbox_row
from shared.storage.bulk_insert import insert_rows
from shared.storage.database import begin_deciding
from shared.storage.tables.api import LegalHold, LegalHoldSubject
from shared.storage.tables.outbox import OutboxMessage
from shared.storage.tables.table import table_of

_HOLDS = table_of(LegalHold)
_SUBJECTS = table_of(LegalHoldSubject)
_OUTBOX = table_of(OutboxMessage)


class HoldIdConflict(Exception):
    """The hold id is registered already, with other fields than a request asks for (or the
    hold is released); the message says which."""


class PlacedUpstream(Exception):
    """Upstream events placed a hold of this id, and it stands over ``subjects`` subjects: a
    register's hold of the same id would be its latest placement there, and say what it covers
    (less, perhaps) without a second key; nor may the register release it."""

    def __init__(self, hold_id: str, subjects: int) -> None:
        super().__init__(hold_id)
        self.hold_id, self.subjects = hold_id, subjects


#: A release comes after the placements it releases, by at least this: at equal times the engine
#: applies the placement last, so that it would stand (and another replica's clock may be behind).
_AFTER = timedelta(microseconds=1)


class ReleaseRefused(Exception):
    """A release cannot go on as asked; ``status``, ``slug`` and the message say why."""

    def __init__(self, status: int, slug: str, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail


@dataclass(frozen=True, slots=True)
class Filters:
    state: HoldState | None = None
    review_before: date | None = None
    reason: HoldReason | None = None


def create(
    db: Engine,
    new: NewHold,
    subject: str | None,
    *,
    actor: Principal,
    now: datetime,
    today: date,
) -> tuple[HoldView, bool]:
    """Register ``new`` and place it; ``subject``: the pseudonym of the subject it names, if any.
    Idempotent: the same request again (a client retrying a lost answer) places nothing and
    answers the hold as it is, with ``False``: the view, and whether it was created now.

    Raises :class:`HoldIdConflict`, :class:`PlacedUpstream`, and :mod:`coverage`'s exceptions
    for what it cannot reach."""
    covers = new.covers
    try:
        with begin_deciding(db) as connection:
            row = _row(connection, new.hold_id)
            if row is not None:
                _check_same(connection, row, new, subject)
                return _view(row, today), False
            upstream_subjects = standing.placed_on(connection, new.hold_id, None)
            if upstream_subjects:
                raise PlacedUpstream(new.hold_id, len(upstream_subjects))
            placed = placements(connection, new.hold_id, covers, subject)
            subjects = {placement.subject for placement in placed}
            connection.execute(
                insert(_HOLDS).values(
                    hold_id=new.hold_id,
                    matter=new.matter,
                    reason=new.reason.value,
                    reason_text=new.reason_text,
                    owner_team=new.owner_team,
                    review_by=new.review_by,
                    coverage=covers.kind.value,
                    category=covers.category.value if covers.category else None,
                    client_id=covers.client_id,
                    case_ids=_case_ids(new),
                    subjects=len(subjects),
                    state=HoldState.STANDING.value,
                    placed_at=now,
                    placed_by=actor.name,
                    updated_at=now,
                )
            )
            insert_rows(
                connection,
                _SUBJECTS,
                [
                    {"hold_id": new.hold_id, "subject_pseudonym": p.subject, "placement": p.hold_id}
                    for p in placed
                ],
            )
            news = HoldPlaced(
                event_id=uuid.uuid4(),
                hold_id=new.hold_id,
                at=now,
                reason=new.reason,
                owner_team=new.owner_team,
                review_by=new.review_by,
                coverage=covers.kind.value,
                category=covers.category,
                subjects=len(subjects),
                by_key=actor.key_id,
            )
            insert_rows(connection, _OUTBOX, [*_placed_events(placed, now), _news(news, now)])
            audit.record(
                connection,
                actor=actor,
                action="holds.placed",
                at=now,
                hold_id=new.hold_id,
                reason=new.reason.value,
                coverage=covers.kind.value,
                subjects=len(subjects),
                events=len(placed),
            )
    except IntegrityError:
        # Placed meanwhile by another request: the same one retried, or a conflict.
        with db.connect() as connection:
            row = _row(connection, new.hold_id)
            if row is None:
                raise
            _check_same(connection, row, new, subject)
        return _view(row, today), False
    view = one(db, new.hold_id, today=today)
    assert view is not None
    return view, True


def _case_ids(new: NewHold) -> str | None:
    case_ids = new.covers.case_ids
    return " ".join(sorted(set(case_ids))) if case_ids else None


def _check_same(connection: Connection, row: Any, new: NewHold, subject: str | None) -> None:
    """Raise :class:`HoldIdConflict` unless the registered ``row`` is what ``new`` asks for: its
    stored fields, and the subject it names (by pseudonym: the register keeps no one)."""
    if row.state == HoldState.RELEASED.value:
        raise HoldIdConflict(
            f"Hold {row.hold_id} was registered and released on {row.released_at:%Y-%m-%d}; "
            "a new hold takes a new hold_id."
        )
    covers = new.covers
    asked = (
        new.matter,
        new.reason.value,
        new.reason_text,
        new.owner_team,
        new.review_by,
        covers.kind.value,
        covers.category.value if covers.category else None,
        covers.client_id,
        _case_ids(new),
    )
    stored = (
        row.matter,
        row.reason,
        row.reason_text,
        row.owner_team,
        row.review_by,
        row.coverage,
        row.category,
        row.client_id,
        row.case_ids,
    )
    same = asked == stored
    if same and subject is not None:
        same = set(subjects_placed(connection, row.hold_id)) == {subject}
    if not same:
        raise HoldIdConflict(
            f"Hold {row.hold_id} is registered with other fields than these (see GET "
            f"/v1/holds/{row.hold_id}): a request sent again gets the hold back only as it "
            "was sent; a new hold takes a new hold_id, a new review date or owner team goes "
            f"by PATCH /v1/holds/{row.hold_id}."
        )


def one(db: Engine, hold_id: str, *, today: date) -> HoldView | None:
    with db.connect() as connection:
        row = _row(connection, hold_id)
    return _view(row, today) if row is not None else None


def covered(db: Engine, hold_id: str, *, now: datetime) -> list[standing.Covered]:
    """The clocks the hold covers now (:func:`standing.covered`)."""
    with db.connect() as connection:
        return standing.covered(connection, hold_id, subjects_placed(connection, hold_id), now)


def subjects_placed(connection: Connection, hold_id: str) -> list[str]:
    """The subjects (pseudonyms) a registered hold was placed on, until its release."""
    rows = connection.execute(
        select(_SUBJECTS.c.subject_pseudonym).where(_SUBJECTS.c.hold_id == hold_id).distinct()
    )
    return list(rows.scalars())


def listed(db: Engine, filters: Filters, *, now: datetime, today: date) -> list[HoldView]:
    """The register's holds that meet ``filters`` (``standing``: those whose release is requested
    too, for they stand until it is approved), and, unless they ask for what only the
    register knows (a reason, a review date, a release), the holds upstream systems placed by
    events alone; by review date, then id."""
    conditions: list[ColumnElement[bool]] = []
    if filters.state is HoldState.STANDING:  # a hold whose release is requested stands still
        standing_states = (HoldState.STANDING.value, HoldState.RELEASE_REQUESTED.value)
        conditions.append(_HOLDS.c.state.in_(standing_states))
    elif filters.state is not None:
        conditions.append(_HOLDS.c.state == filters.state.value)
    if filters.review_before is not None:
        conditions.append(_HOLDS.c.review_by < filters.review_before)
    if filters.reason is not None:
        conditions.append(_HOLDS.c.reason == filters.reason.value)
    with db.connect() as connection:
        rows = connection.execute(select(_HOLDS).where(*conditions)).all()
        views = [_view(row, today) for row in rows]
        register_only = filters.review_before is not None or filters.reason is not None
        if not register_only and filters.state in (None, HoldState.STANDING):
            registered = set(connection.execute(select(_HOLDS.c.hold_id)).scalars())
            upstream = standing.upstream_holds(connection, registered, now)
            views += [_upstream_view(hold_id, count) for hold_id, count in upstream.items()]
    return sorted(views, key=lambda view: (view.review_by or date.max, view.hold_id))


def upstream(db: Engine, hold_id: str, *, now: datetime) -> HoldView | None:
    """A hold the register does not know that upstream events placed and that stands now."""
    with db.connect() as connection:
        subjects = standing.placed_on(connection, hold_id, now)
    return _upstream_view(hold_id, len(subjects)) if subjects else None


def change(
    db: Engine, hold_id: str, change: HoldChange, *, actor: Principal, now: datetime, today: date
) -> HoldView | None:
    """A new review date starts its reminders again."""
    values: dict[str, Any] = {"updated_at": now}
    if change.review_by is not None:
        values |= {"review_by": change.review_by, "reminded_days": None}
    if change.owner_team is not None:
        values["owner_team"] = change.owner_team
    with db.begin() as connection:
        changed = connection.execute(
            update(_HOLDS)
            .where(_HOLDS.c.hold_id == hold_id, _HOLDS.c.state != HoldState.RELEASED.value)
            .values(**values)
        ).rowcount
        if not changed:
            return None
        audit.record(
            connection,
            actor=actor,
            action="holds.changed",
            at=now,
            hold_id=hold_id,
            fields=sorted(change.model_dump(exclude_none=True)),
        )
    return one(db, hold_id, today=today)


def release(
    db: Engine,
    hold_id: str,
    *,
    actor: Principal,
    may_request: bool,
    may_approve: bool,
    now: datetime,
    today: date,
) -> HoldView:
    """Request the release of a standing hold, or approve one another key requested: what the
    hold's state and the caller's scopes allow (``may_request``: ``holds:write``;
    ``may_approve``: ``holds:approve``). The requesting key asking again changes nothing (a
    retry: the hold as it is, its release requested). Raises :class:`ReleaseRefused` saying
    why not."""
    with begin_deciding(db) as connection:
        row = _row(connection, hold_id, lock=True)
        if row is None:
            raise ReleaseRefused(
                404,
                "hold-not-registered",
                "No such hold in the register",
                f"The register has no hold {hold_id}. A hold placed by upstream events alone is "
                "released by a legal_hold.released event from the system that placed it; the "
                "register does not take it over (POST /v1/holds with its hold_id is refused "
                "while it stands).",
            )
        state = HoldState(row.state)
        if state is HoldState.RELEASED:
            raise ReleaseRefused(
                409,
                "hold-released",
                "The hold is released",
                f"Hold {hold_id} was released on {row.released_at:%Y-%m-%d}, approved by "
                f"{row.released_by}.",
            )
        if state is HoldState.STANDING:
            if not may_request:
                raise ReleaseRefused(
                    403,
                    "forbidden",
                    "The API key lacks a scope",
                    f"Hold {hold_id} stands: its release is requested with the scope "
                    f"'holds:write', then approved by another key with 'holds:approve'; the key "
                    f"'{actor.name}' may not request it.",
                )
            _request(connection, row, actor, now)
        elif actor.key_id != row.release_requested_key:
            _check_approver(row, actor, may_approve)
            _approve(connection, row, actor, now)
        # else: the requesting key asks again (a retry): its request stands, unchanged.
    view = one(db, hold_id, today=today)
    assert view is not None
    return view


def approve(db: Engine, hold_id: str, *, actor: Principal, now: datetime, today: date) -> HoldView:
    """Approve a release another key requested; nothing else."""
    with begin_deciding(db) as connection:
        row = _row(connection, hold_id, lock=True)
        if row is None:
            raise ReleaseRefused(
                404,
                "hold-not-registered",
                "No such hold in the register",
                f"The register has no hold {hold_id}.",
            )
        if row.state != HoldState.RELEASE_REQUESTED.value:
            raise ReleaseRefused(
                409,
                "no-release-requested",
                "No release is requested",
                f"Hold {hold_id} is {row.state}: a release is approved once a key with "
                "'holds:write' has requested it (POST /v1/holds/{hold_id}/release).",
            )
        _check_approver(row, actor, may_approve=True)
        _approve(connection, row, actor, now)
    view = one(db, hold_id, today=today)
    assert view is not None
    return view


def _request(connection: Connection, row: Any, actor: Principal, now: datetime) -> None:
    connection.execute(
        update(_HOLDS)
        .where(_HOLDS.c.hold_id == row.hold_id)
        .values(
            state=HoldState.RELEASE_REQUESTED.value,
            release_requested_at=now,
            release_requested_by=actor.name,
            release_requested_key=actor.key_id,
            updated_at=now,
        )
    )
    news = HoldReleaseRequested(
        event_id=uuid.uuid4(), hold_id=row.hold_id, at=now, by_key=actor.key_id
    )
    insert_rows(connection, _OUTBOX, [_news(news, now)])
    audit.record(
        connection, actor=actor, action="holds.release_requested", at=now, hold_id=row.hold_id
    )


def _check_approver(row: Any, actor: Principal, may_approve: bool) -> None:
    if actor.key_id == row.release_requested_key or actor.name == row.release_requested_by:
        raise ReleaseRefused(
            403,
            "second-key-required",
            "A release needs a second key",
            f"The release of hold {row.hold_id} was requested by the key "
            f"'{row.release_requested_by}'; it is approved by another key, of another name, "
            "with the scope 'holds:approve', so that two people decide it. The hold stands "
            "meanwhile.",
        )
    if not may_approve:
        raise ReleaseRefused(
            403,
            "forbidden",
            "The API key lacks a scope",
            f"The release of hold {row.hold_id} is requested and waits for approval, which "
            f"needs the scope 'holds:approve'; the key '{actor.name}' lacks it.",
        )


def _approve(connection: Connection, row: Any, actor: Principal, now: datetime) -> None:
    """Released: a release of each placement the register made (``legal_hold_subject``, applied
    by the purger or not yet), and of each placement of the hold's own id that upstream events
    made and that stands in the purger's facts; never of another hold's, whatever its id looks
    like. Dated after each of them, should this replica's clock be behind."""
    hold_id = row.hold_id
    targets = {
        (subject, placement)
        for subject, placement in connection.execute(
            select(_SUBJECTS.c.subject_pseudonym, _SUBJECTS.c.placement).where(
                _SUBJECTS.c.hold_id == hold_id
            )
        )
    }
    upstream = standing.placed_on(connection, hold_id, None)
    targets |= {(subject, hold_id) for subject in upstream}
    at = max([now, row.placed_at + _AFTER, *(placed + _AFTER for placed in upstream.values())])
    subjects = len({subject for subject, _ in targets})
    connection.execute(
        update(_HOLDS)
        .where(_HOLDS.c.hold_id == hold_id)
        .values(
            state=HoldState.RELEASED.value,
            released_at=now,
            released_by=actor.name,
            case_ids=None,  # ids that lead to a subject's data go with the hold
            client_id=None,
            updated_at=now,
        )
    )
    connection.execute(delete(_SUBJECTS).where(_SUBJECTS.c.hold_id == hold_id))
    news = HoldReleased(
        event_id=uuid.uuid4(),
        hold_id=hold_id,
        at=now,
        requested_by_key=row.release_requested_key,
        approved_by_key=actor.key_id,
        subjects=subjects,
    )
    released = _released_events(sorted(targets), at, now)
    insert_rows(connection, _OUTBOX, [*released, _news(news, now)])
    audit.record(
        connection,
        actor=actor,
        action="holds.released",
        at=now,
        hold_id=hold_id,
        requested_by=row.release_requested_by,
        approved_by=actor.name,
        subjects=subjects,
        events=len(targets),
    )


def _row(connection: Connection, hold_id: str, *, lock: bool = False) -> Any:
    query = select(_HOLDS).where(_HOLDS.c.hold_id == hold_id)
    if lock and connection.dialect.name == "postgresql":
        query = query.with_for_update()
    return connection.execute(query).first()


def _placed_events(placed: list[Placement], now: datetime) -> list[dict[str, Any]]:
    data: dict[tuple[str, str | None, str | None], HoldPlacedData] = {}
    rows = []
    for placement in placed:
        shape = (placement.hold_id, placement.case_id, placement.category)
        if shape not in data:  # validated once per shape (a category's hold: one for all)
            data[shape] = HoldPlacedData.model_validate(
                {
                    "hold_id": placement.hold_id,
                    "case_id": placement.case_id,
                    "category": placement.category,
                },
                context=WRITTEN_BY_GALLRING,  # a placement's id may hold the separator
            )
        rows.append(_lifecycle(LEGAL_HOLD_PLACED, placement.subject, data[shape], now))
    return rows


def _released_events(
    targets: list[tuple[str, str]], at: datetime, now: datetime
) -> list[dict[str, Any]]:
    return [
        _lifecycle(
            LEGAL_HOLD_RELEASED,
            subject,
            HoldReleasedData.model_validate({"hold_id": placement}, context=WRITTEN_BY_GALLRING),
            now,
            occurred_at=at,
        )
        for subject, placement in targets
    ]


def _lifecycle(
    event_type: str,
    subject: str,
    data: BaseModel,
    now: datetime,
    *,
    occurred_at: datetime | None = None,
) -> dict[str, Any]:
    """The event an upstream system would send, as the intake stores it: pseudonymised, on the
    immediate lane (holds must not wait behind a back-fill), keyed by the pseudonym; it occurred
    ``now`` unless ``occurred_at`` says otherwise."""
    message = LifecycleMessage.model_construct(
        event_id=uuid.uuid4(),
        type=event_type,
        occurred_at=occurred_at or now,
        subject=subject,
        data=data,
    )
    return outbox_row(
        topics.lifecycle_topic(event_type),
        key=subject,
        value=message.to_json(),
        event_type=event_type,
        event_id=message.event_id,
        schema_version=SCHEMA_VERSION,
        now=now,
    )


def _news(
    message: HoldPlaced | HoldReleaseRequested | HoldReleased, now: datetime
) -> dict[str, Any]:
    return outbox_row(
        topics.HOLDS,
        key=message.hold_id,
        value=message.model_dump_json(exclude_none=True),
        event_type=message.type,
        event_id=message.event_id,
        schema_version=message.schema_version,
        now=now,
    )


def _view(row: Any, today: date) -> HoldView:
    state = HoldState(row.state)
    due: ReviewThreshold | None = None
    if state is not HoldState.RELEASED:
        due = review_threshold((row.review_by - today).days)
    return HoldView(
        hold_id=row.hold_id,
        registered=True,
        state=state,
        matter=row.matter,
        reason=HoldReason(row.reason),
        reason_text=row.reason_text,
        owner_team=row.owner_team,
        review_by=row.review_by,
        review_due=due,
        covers=CoversView(
            kind=HoldCoverage(row.coverage),
            category=row.category,
            case_ids=row.case_ids.split() if row.case_ids else None,
            client_id=row.client_id,
        ),
        subjects=row.subjects,
        placed_at=row.placed_at,
        placed_by=row.placed_by,
        release_requested_at=row.release_requested_at,
        release_requested_by=row.release_requested_by,
        released_at=row.released_at,
        released_by=row.released_by,
    )


def _upstream_view(hold_id: str, subjects: int) -> HoldView:
    return HoldView(hold_id=hold_id, registered=False, state=HoldState.STANDING, subjects=subjects)
