"""``/v1/holds``: place a legal hold (``holds:write``), list and read the register with the clocks
each hold covers and what its release would erase (``holds:read``, or either other holds scope),
and release a hold with two keys: one requests (``holds:write``), another approves
(``holds:approve``)."""

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.api.api_keys import Principal, Scope
from services.api.auth import require, require_any
from services.api.dependencies import DbEngine
from services.api.holds import coverage, service
from services.api.holds.impact import impact
from services.api.holds.schemas import (
    HeldClock,
    HoldChange,
    HoldDetail,
    HoldImpact,
    HoldState,
    HoldView,
    NewHold,
)
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    Responses,
    validation_problem,
)
from shared.domain.contract.dates import RANGE_TEXT, ContractDate
from shared.domain.contract.errors import FieldError
from shared.domain.contract.vocabulary import HoldReason, Identifier

router = APIRouter(prefix="/v1/holds", tags=["holds"], responses=STORE_UNAVAILABLE_RESPONSES)
Reader = Annotated[
    Principal, Depends(require_any(Scope.HOLDS_READ, Scope.HOLDS_WRITE, Scope.HOLDS_APPROVE))
]
Writer = Annotated[Principal, Depends(require(Scope.HOLDS_WRITE))]
Approver = Annotated[Principal, Depends(require(Scope.HOLDS_APPROVE))]
Releaser = Annotated[Principal, Depends(require_any(Scope.HOLDS_WRITE, Scope.HOLDS_APPROVE))]
HoldIdPath = Annotated[
    Identifier, Path(description="the register's, or one upstream events placed")
]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}
_NOT_FOUND: Responses = {**_ERRORS, 404: PROBLEM_RESPONSE}
_RELEASE = (
    "A release takes two keys. The first call, by a key with `holds:write`, records the "
    "request (202, `release_requested`): the hold stands meanwhile. A call by another key, of "
    "another name, with `holds:approve` approves it (200, `released`): only then are the "
    "`legal_hold.released` events sent, and the clocks it held run again. The key that "
    "requested it cannot approve it (403 `second-key-required`); asking again, it gets the "
    "hold back as it is (202)."
)


def existing_hold(hold_id: HoldIdPath, request: Request, db: DbEngine) -> HoldView:
    """The hold ``hold_id`` names, in the register or placed by upstream events and standing;
    or 404. A plain ``def``: FastAPI runs it in its thread pool, as it reads the database."""
    now = datetime.now(UTC)
    view = service.one(db, hold_id, today=_today(request)) or service.upstream(db, hold_id, now=now)
    if view is None:
        raise Problem(
            404,
            "hold-not-found",
            "No such hold",
            f"Neither the register nor a standing legal_hold.placed event knows a hold "
            f"{hold_id}; GET /v1/holds lists them.",
        )
    return view


ExistingHold = Annotated[HoldView, Depends(existing_hold)]


@router.post(
    "",
    status_code=201,
    response_model=HoldView,
    summary="Place a legal hold",
    responses={
        200: {"description": "The same hold was placed before (a retried request): as it is"},
        **_ERRORS,
        409: PROBLEM_RESPONSE,
    },
)
def place_hold(
    new: NewHold, request: Request, response: Response, db: DbEngine, principal: Writer
) -> HoldView:
    """Registers the hold and sends the `legal_hold.placed` events the purger applies, one per
    subject it covers: a subject is pseudonymised at once and named nowhere in the register.
    Cases, a category or a client (without a subject) reach the subjects Gallring keeps clocks
    of now; data of other subjects that arrives later is not held by it.

    Idempotent: the same request again answers 200 with the hold and places nothing; the id of a
    registered hold with another body is refused (409 `hold-id-conflict`), and so is the id of a
    hold upstream events placed that stands (409 `hold-placed-upstream`)."""
    today = _today(request)
    _not_past(new.review_by, today)
    state = request.app.state
    subject = new.covers.subject.pseudonym(state.pseudonymiser) if new.covers.subject else None
    try:
        view, created = service.create(
            db, new, subject, actor=principal, now=datetime.now(UTC), today=today
        )
    except service.HoldIdConflict as conflict:
        raise Problem(
            409, "hold-id-conflict", "The hold id is registered for another hold", str(conflict)
        ) from None
    except service.PlacedUpstream as upstream:
        raise Problem(
            409,
            "hold-placed-upstream",
            "Upstream events placed a hold of this id",
            f"A hold {upstream.hold_id} that legal_hold.placed events placed stands over "
            f"{upstream.subjects} subject(s): the register does not take it over, for its "
            "placement would replace theirs (and could hold less) without a second key. Give "
            "the register's hold a hold_id of its own; the system that placed that one releases "
            "it with legal_hold.released.",
            subjects=upstream.subjects,
        ) from None
    except coverage.UnknownCases as unknown:
        raise Problem(
            409,
            "cases-unknown",
            "Cases unknown",
            f"Gallring keeps no clock of the case(s) {', '.join(unknown.case_ids)}: give the "
            "subject with them (covers.subject), so that they are held when they arrive.",
            case_ids=unknown.case_ids,
        ) from None
    except coverage.NothingToHold as nothing:
        raise Problem(409, "nothing-to-hold", "Nothing to hold", str(nothing)) from None
    if not created:
        response.status_code = 200
    return view


@router.get(
    "",
    response_model=list[HoldView],
    summary="The register: holds by review date",
    responses=_ERRORS,
)
def list_holds(
    request: Request,
    db: DbEngine,
    _: Reader,
    state: HoldState | None = None,
    review_before: Annotated[
        ContractDate | None,
        Query(description=f"holds to be reviewed before this day, YYYY-MM-DD, {RANGE_TEXT}"),
    ] = None,
    reason: HoldReason | None = None,
) -> list[HoldView]:
    """With the holds upstream systems placed by events alone (`registered: false`), unless a
    filter asks for what only the register knows (a reason, a review date, a release).
    `state=standing` lists every hold that stands, those whose release is requested too (they
    stand until it is approved); `state=release_requested` only those."""
    filters = service.Filters(state, review_before, reason)
    return service.listed(db, filters, now=datetime.now(UTC), today=_today(request))


@router.get(
    "/{hold_id}",
    response_model=HoldDetail,
    summary="One hold, with the clocks it covers now",
    responses=_NOT_FOUND,
)
def get_hold(
    db: DbEngine,
    _: Reader,
    hold: ExistingHold,
    limit: Annotated[int, Query(ge=1, le=1000, description="clocks listed at most")] = 100,
) -> HoldDetail:
    """The clocks are those the purger keeps `held` that the hold's placements cover, by due
    time (the time they fall due without any hold); the subject only as the hash of its
    pseudonym. A hold the purger has not applied yet covers none."""
    now = datetime.now(UTC)
    clocks = service.covered(db, hold.hold_id, now=now)
    return HoldDetail(
        **hold.model_dump(),
        evaluated_at=now,
        clocks_total=len(clocks),
        clocks=[
            HeldClock(
                subject_hash=clock.subject_hash,
                category=clock.category,
                scope=clock.scope,
                due_at=clock.due_at,
                also_held_by=clock.also_held_by,
            )
            for clock in clocks[:limit]
        ],
    )


@router.get(
    "/{hold_id}/impact",
    response_model=HoldImpact,
    summary="What the hold's release would erase at once, and what later",
    responses=_NOT_FOUND,
)
def get_hold_impact(request: Request, db: DbEngine, _: Reader, hold: ExistingHold) -> HoldImpact:
    """The clocks it covers now, counted as the erasure forecast counts them: due already (erased
    at the next sweep after the release), by the month they fall due in (the policy's time
    zone), still held by another hold, or waiting for a trigger."""
    now = datetime.now(UTC)
    clocks = service.covered(db, hold.hold_id, now=now)
    return impact(hold.hold_id, clocks, now=now, zone=request.app.state.retention_engine.zone)


@router.patch(
    "/{hold_id}",
    response_model=HoldView,
    summary="Change a hold's review date or owner team",
    responses=_NOT_FOUND,
)
def change_hold(
    hold_id: HoldIdPath, change: HoldChange, request: Request, db: DbEngine, principal: Writer
) -> HoldView:
    """After a review: a new `review_by` starts its reminders again. A released hold is not
    changed (404)."""
    today = _today(request)
    if change.review_by is not None:
        _not_past(change.review_by, today)
    view = service.change(db, hold_id, change, actor=principal, now=datetime.now(UTC), today=today)
    if view is None:
        raise _not_registered(hold_id)
    return view


@router.post(
    "/{hold_id}/release",
    response_model=HoldView,
    summary="Request a hold's release, or approve one another key requested",
    description=_RELEASE,
    responses={
        200: {"description": "Approved: the hold is released"},
        202: {"description": "Requested: the hold stands until another key approves"},
        **_NOT_FOUND,
        409: PROBLEM_RESPONSE,
    },
)
def release_hold(
    hold_id: HoldIdPath,
    request: Request,
    response: Response,
    db: DbEngine,
    principal: Releaser,
) -> HoldView:
    view = _released(
        lambda now, today: service.release(
            db,
            hold_id,
            actor=principal,
            may_request=principal.may(Scope.HOLDS_WRITE),
            may_approve=principal.may(Scope.HOLDS_APPROVE),
            now=now,
            today=today,
        ),
        request,
    )
    response.status_code = 200 if view.state is HoldState.RELEASED else 202
    return view


@router.post(
    "/{hold_id}/approve",
    response_model=HoldView,
    summary="Approve the release another key requested",
    description=_RELEASE,
    responses={**_NOT_FOUND, 409: PROBLEM_RESPONSE},
)
def approve_hold_release(
    hold_id: HoldIdPath, request: Request, db: DbEngine, principal: Approver
) -> HoldView:
    return _released(
        lambda now, today: service.approve(db, hold_id, actor=principal, now=now, today=today),
        request,
    )


def _released(act: Callable[[datetime, date], HoldView], request: Request) -> HoldView:
    try:
        return act(datetime.now(UTC), _today(request))
    except service.ReleaseRefused as refused:
        raise Problem(refused.status, refused.slug, refused.title, refused.detail) from None


def _not_registered(hold_id: str) -> Problem:
    return Problem(
        404,
        "hold-not-registered",
        "No such hold in the register",
        f"The register has no standing hold {hold_id}; GET /v1/holds lists them.",
    )


def _today(request: Request) -> date:
    """Today in the policy's time zone, as review dates are meant."""
    return datetime.now(request.app.state.retention_engine.zone).date()


def _not_past(review_by: date, today: date) -> None:
    if review_by < today:
        raise validation_problem(
            [FieldError("review_by", f"lies in the past; give {today.isoformat()} or later")]
        )
