"""``GET /v1/erasures``, ``GET /v1/erasures/proofs``, ``GET /v1/erasures/{id}``,
``POST /v1/erasures/{id}/confirmations`` and ``POST /v1/erasures/{id}/commands/{system}``."""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.dependencies import DbEngine, ExistingErasure, existing_erasure
from services.api.erasures import service
from services.api.erasures.schemas import (
    CommandRequestAccepted,
    Confirmation,
    Confirmed,
    ErasurePage,
    ErasureProofPage,
    ErasureState,
    ErasureView,
    ForecastRow,
)
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    Responses,
    validation_problem,
)
from services.api.systems import service as systems
from services.api.systems.router import system_not_found
from shared.domain.contract.dates import RANGE_TEXT, ContractDate, ContractInstant
from shared.domain.contract.errors import FieldError
from shared.domain.contract.vocabulary import Category, SystemId
from shared.storage.clock_forecast import forecast

router = APIRouter(prefix="/v1/erasures", tags=["erasures"], responses=STORE_UNAVAILABLE_RESPONSES)
Reader = Annotated[Principal, Depends(require(Scope.ERASURES_READ))]
Confirmer = Annotated[Principal, Depends(require(Scope.ERASURES_CONFIRM))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}


@router.get("", response_model=ErasurePage, summary="Erasures by due time", responses=_ERRORS)
def list_erasures(
    db: DbEngine,
    _: Reader,
    state: ErasureState | None = None,
    category: Category | None = None,
    due_before: Annotated[
        ContractInstant | None,
        Query(description=f"ISO 8601 with a UTC offset, {RANGE_TEXT} (UTC)"),
    ] = None,
    system: Annotated[
        SystemId | None,
        Query(description="only the executed erasures this system has yet to confirm"),
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ErasurePage:
    """Scheduled and held erasures come from the clocks, executed ones (`executed`,
    `partially_confirmed`, `confirmed`, `overdue`) from the proofs; every page is ordered by due
    time. An executed erasure expects a confirmation from every active system that held its
    category when it was executed (`expected_systems`): it is `confirmed` once all of them
    confirmed, `partially_confirmed` while some did, `overdue` once one is past its `due_by`.
    With none expected (no system registered for the category), the first confirmation of any
    system confirms it. `system` lists what that system still owes (with `state=overdue`, what it
    is itself late with)."""
    try:
        after = service.decode_cursor(cursor) if cursor else None
    except service.CursorError as error:
        raise validation_problem([FieldError("cursor", str(error))]) from None
    filters = service.Filters(state, category.value if category else None, due_before, system)
    views, more = service.page(db, filters, after=after, limit=limit, now=datetime.now(UTC))
    return ErasurePage(
        erasures=views, next_cursor=service.encode_cursor(views[-1]) if more else None
    )


@router.get(
    "/forecast",
    response_model=list[ForecastRow],
    summary="How many erasures fall due per month and category",
    responses=_ERRORS,
)
def get_erasure_forecast(
    db: DbEngine,
    request: Request,
    _: Reader,
    until: Annotated[ContractDate, Query(description=f"a day, YYYY-MM-DD, {RANGE_TEXT}")],
) -> list[ForecastRow]:
    """Scheduled erasures (not held) due up to the end of ``until``, by the month they fall due
    in the policy's time zone; overdue ones in the month they fell due."""
    counts = forecast(db, until, request.app.state.retention_engine.zone)
    return [
        ForecastRow(month=month, category=category, erasures=count)
        for (month, category), count in counts.items()
    ]


@router.get(
    "/proofs",
    response_model=ErasureProofPage,
    summary="Proofs of the erasures executed since a time, for re-applying after a restore",
    responses=_ERRORS,
)
def list_erasure_proofs(
    db: DbEngine,
    _: Confirmer,
    executed_since: Annotated[
        ContractInstant,
        Query(description=f"ISO 8601 with a UTC offset, {RANGE_TEXT} (UTC)"),
    ],
    category: Annotated[
        list[Category] | None,
        Query(description="only these categories (repeat the parameter); all if none"),
    ] = None,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> ErasureProofPage:
    """The proofs of the erasures executed at or after `executed_since`, ordered by execution
    time: what a system of the company re-applies after restoring a backup taken then (`gallring
    agent restore-check`). A proof names the subject by the hash of the pseudonym and the erased
    data by the clock hash (pseudonym, category and scope), never by an identifier or a scope:
    a system finds its rows by them only if it holds the person's data. The scope
    `erasures:confirm`, which an agent's key has, reads them."""
    try:
        after = service.decode_cursor(cursor) if cursor else None
    except service.CursorError as error:
        raise validation_problem([FieldError("cursor", str(error))]) from None
    categories = sorted({item.value for item in category or []})
    proofs, more = service.proofs_since(db, executed_since, categories, after=after, limit=limit)
    return ErasureProofPage(
        proofs=proofs, next_cursor=service.encode_proof_cursor(proofs[-1]) if more else None
    )


@router.get(
    "/{erasure_id}",
    response_model=ErasureView,
    summary="One erasure",
    responses={**_ERRORS, 404: PROBLEM_RESPONSE},
)
def get_erasure(_: Reader, erasure: ExistingErasure) -> ErasureView:
    # The path's erasure_id is declared by the dependency alone: declared twice, a malformed one
    # would be reported twice. (A comment, not a docstring: that would describe the operation.)
    return erasure


@router.post(
    "/{erasure_id}/confirmations",
    status_code=202,
    response_model=Confirmed,
    summary="A system of the company confirms it erased its copy",
    description="The confirmation is passed on to the purger, which records it (it then shows "
    "in `confirmed_by`) and publishes `erasure.confirmed` on `gallring.erasures.v1`.",
    responses={
        **_ERRORS,
        200: {"description": "This system's confirmation was recorded before"},
        404: PROBLEM_RESPONSE,
        409: {"description": "The erasure is not executed yet", **PROBLEM_RESPONSE},
    },
)
def confirm_erasure(
    erasure_id: UUID,
    confirmation: Confirmation,
    db: DbEngine,
    response: Response,
    principal: Confirmer,
) -> Confirmed:
    # Looked up here, not as a dependency: an invalid body is answered 422 before a 404.
    view = existing_erasure(erasure_id, db)
    if view.state in (ErasureState.SCHEDULED, ErasureState.HELD):
        raise Problem(
            409,
            "erasure-not-executed",
            "The erasure has not been executed",
            f"Erasure {erasure_id} is {view.state.value}; confirm it after its erasure "
            "command has been published.",
        )
    system = confirmation.system
    recorded = service.confirmed_at(db, erasure_id, system)
    if recorded is not None:
        response.status_code = 200
        return Confirmed(
            erasure_id=erasure_id, system=system, status="confirmed", confirmed_at=recorded
        )
    service.report_confirmation(db, erasure_id, system, actor=principal, now=datetime.now(UTC))
    return Confirmed(erasure_id=erasure_id, system=system, status="reported", confirmed_at=None)


@router.post(
    "/{erasure_id}/commands/{system}",
    status_code=202,
    response_model=CommandRequestAccepted,
    summary="Publish an executed erasure's command again, for one system",
    description="Passed on to the purger, which owns erasures and publishes their commands: it "
    "puts an `erasure.command` addressed to the system (`system` set) on "
    "`gallring.erasure-commands.v1`. The proof keeps neither scope nor pseudonym, so the command "
    "has `scope: null`, is keyed by the subject hash, and carries the proof's `subject_hash` and "
    "`clock_hash`, by which the system finds its rows.",
    responses={
        **_ERRORS,
        404: {"description": "No such erasure, or no such system", **PROBLEM_RESPONSE},
        409: {"description": "The erasure is not executed yet", **PROBLEM_RESPONSE},
    },
)
def request_erasure_command(
    erasure_id: UUID,
    system: Annotated[SystemId, Path(description="a system of the register")],
    db: DbEngine,
    principal: Admin,
) -> CommandRequestAccepted:
    view = existing_erasure(erasure_id, db)
    if view.state in (ErasureState.SCHEDULED, ErasureState.HELD):
        raise Problem(
            409,
            "erasure-not-executed",
            "The erasure has not been executed",
            f"Erasure {erasure_id} is {view.state.value}; its command is published when it is "
            "executed.",
        )
    if not systems.exists(db, system):
        raise system_not_found(system)
    service.request_command(db, erasure_id, system, actor=principal, now=datetime.now(UTC))
    return CommandRequestAccepted(erasure_id=erasure_id, system=system, status="requested")
