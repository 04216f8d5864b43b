"""``/v1/systems``: the register of the company's own systems and the categories each holds, so
that an erasure waits for every one of them (scope ``admin``)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.dependencies import DbEngine
from services.api.problems import PROBLEM_RESPONSE, STORE_UNAVAILABLE_RESPONSES, Problem, Responses
from services.api.systems import service
from services.api.systems.schemas import NewSystem, SystemChange, SystemView
from shared.domain.contract.vocabulary import SystemId

router = APIRouter(prefix="/v1/systems", tags=["systems"], responses=STORE_UNAVAILABLE_RESPONSES)
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}
_NOT_FOUND: Responses = {**_ERRORS, 404: PROBLEM_RESPONSE}
SystemIdPath = Annotated[SystemId, Path(description="as it was registered")]
_EXPECTATION = (
    "An erasure of a category expects a confirmation from every active system that holds the "
    "category when the erasure is executed; a later change here does not change what erasures "
    "executed before expect."
)


@router.post(
    "",
    status_code=201,
    response_model=SystemView,
    summary="Register one of the company's systems and the categories it holds",
    description=_EXPECTATION,
    responses={**_ERRORS, 409: PROBLEM_RESPONSE},
)
def create_system(new: NewSystem, db: DbEngine, principal: Admin) -> SystemView:
    try:
        return service.create(db, new, actor=principal, now=datetime.now(UTC))
    except service.SystemExists:
        raise Problem(
            409,
            "system-exists",
            "The system exists",
            f"A system {new.system_id} is registered already; change it with PATCH.",
        ) from None


@router.get(
    "",
    response_model=list[SystemView],
    summary="Every registered system, with what it owes",
    responses=_ERRORS,
)
def list_systems(db: DbEngine, _: Admin) -> list[SystemView]:
    return service.all_systems(db, now=datetime.now(UTC))


@router.get("/{system_id}", response_model=SystemView, summary="One system", responses=_NOT_FOUND)
def get_system(system_id: SystemIdPath, db: DbEngine, _: Admin) -> SystemView:
    view = service.one(db, system_id, now=datetime.now(UTC))
    if view is None:
        raise system_not_found(system_id)
    return view


@router.patch(
    "/{system_id}",
    response_model=SystemView,
    summary="Change a system (deactivate it with active: false)",
    description=_EXPECTATION,
    responses=_NOT_FOUND,
)
def change_system(
    system_id: SystemIdPath, change: SystemChange, db: DbEngine, principal: Admin
) -> SystemView:
    view = service.change(db, system_id, change, actor=principal, now=datetime.now(UTC))
    if view is None:
        raise system_not_found(system_id)
    return view


def system_not_found(system_id: str) -> Problem:
    return Problem(
        404,
        "system-not-found",
        "No such system",
        f"There is no system {system_id}; GET /v1/systems lists them.",
    )
