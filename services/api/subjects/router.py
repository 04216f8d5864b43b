"""``POST /v1/subjects/lookup``: identifiers travel in the body, never in a URL."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from services.api.api_keys import Principal, Scope
from services.api.auth import require
from services.api.dependencies import DbEngine
from services.api.problems import PROBLEM_RESPONSE, STORE_UNAVAILABLE_RESPONSES
from services.api.subjects import service
from services.api.subjects.schemas import ClockView, SubjectClocks
from shared.domain.contract import Subject

router = APIRouter(prefix="/v1/subjects", tags=["subjects"], responses=STORE_UNAVAILABLE_RESPONSES)
Reader = Annotated[Principal, Depends(require(Scope.SUBJECTS_READ))]


@router.post(
    "/lookup",
    response_model=SubjectClocks,
    summary="A subject's pseudonym, retention clocks and executed erasures",
    responses={401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE},
)
def lookup_subject(
    subject: Subject,
    request: Request,
    db: DbEngine,
    principal: Reader,
) -> SubjectClocks:
    """Evaluated now by the engine from the events Gallring holds; nothing is stored."""
    state = request.app.state
    pseudonym = subject.pseudonym(state.pseudonymiser)
    now = datetime.now(UTC)
    count, clocks, erased = service.clocks_of(
        db, state.retention_engine, pseudonym, actor=principal, now=now
    )
    return SubjectClocks(
        subject=pseudonym,
        evaluated_at=now,
        events=count,
        clocks=[ClockView.of(c) for c in clocks],
        erasures=erased,
    )
