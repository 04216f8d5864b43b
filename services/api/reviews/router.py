"""``GET /v1/reviews``, ``GET /v1/reviews/{id}`` and ``POST /v1/reviews/{id}/decision``: the
disposition reviews of sweeps that would have erased past the policy's review limits, and a
DPO's decision on one (scope ``reviews:decide``; reading also with ``erasures:read``)."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from services.api.api_keys import Principal, Scope
from services.api.auth import authorize, require
from services.api.dependencies import DbEngine
from services.api.problems import (
    PROBLEM_RESPONSE,
    STORE_UNAVAILABLE_RESPONSES,
    Problem,
    Responses,
    validation_problem,
)
from services.api.reviews import service
from services.api.reviews.schemas import DecisionRequest, ReviewState, ReviewView

router = APIRouter(prefix="/v1/reviews", tags=["reviews"], responses=STORE_UNAVAILABLE_RESPONSES)
Decider = Annotated[Principal, Depends(require(Scope.REVIEWS_DECIDE))]
_ERRORS: Responses = {401: PROBLEM_RESPONSE, 403: PROBLEM_RESPONSE, 422: PROBLEM_RESPONSE}
_NOT_FOUND: Responses = {**_ERRORS, 404: PROBLEM_RESPONSE}
#: Ids as the database keeps them (a signed 64-bit integer).
ReviewIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="as GET /v1/reviews lists")]


async def _reader(request: Request) -> Principal:
    """Who decides reviews reads them; so does who reads erasures (a review holds erasures)."""
    principal: Principal = request.state.principal
    if principal.may(Scope.REVIEWS_DECIDE):
        return principal
    return authorize(request, Scope.ERASURES_READ)


Reader = Annotated[Principal, Depends(_reader)]


@router.get(
    "",
    response_model=list[ReviewView],
    summary="Disposition reviews, the newest first (?state=open: those waiting for a decision)",
    responses=_ERRORS,
)
def list_reviews(
    db: DbEngine,
    _: Reader,
    state: ReviewState | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[ReviewView]:
    return service.reviews(db, state, limit)


@router.get("/{review_id}", response_model=ReviewView, summary="One review", responses=_NOT_FOUND)
def get_review(review_id: ReviewIdPath, db: DbEngine, _: Reader) -> ReviewView:
    view = service.one(db, review_id)
    if view is None:
        raise review_not_found(review_id)
    return view


@router.post(
    "/{review_id}/decision",
    status_code=202,
    response_model=ReviewView,
    summary="Decide a review: approve, extend or hold",
    description="Recorded at once, with the key and the reason in the audit log, and applied by "
    "the purger: an approval at its next sweep, which erases the review's clocks; an extension "
    "or a hold through the events it sends (retention.extended per clock, legal_hold.placed per "
    "subject and case), which keep them. One decision per review.",
    responses={**_NOT_FOUND, 409: PROBLEM_RESPONSE},
)
def decide_review(
    review_id: ReviewIdPath,
    decision: DecisionRequest,
    request: Request,
    db: DbEngine,
    principal: Decider,
) -> ReviewView:
    today = datetime.now(request.app.state.retention_engine.zone).date()
    if problems := decision.problems(today):
        raise validation_problem(problems)
    try:
        return service.decide(db, review_id, decision, actor=principal, now=datetime.now(UTC))
    except service.ReviewNotFound:
        raise review_not_found(review_id) from None
    except service.AlreadyDecided as decided:
        earlier = decided.view.decision
        told = (
            f"it was decided ({earlier.decision}) at {earlier.decided_at.isoformat()}"
            if earlier is not None
            else "it is not open"
        )
        raise Problem(
            409,
            "review-decided",
            "The review is decided",
            f"Review {review_id} takes one decision, and {told}.",
            state=decided.view.state.value,
        ) from None


def review_not_found(review_id: int) -> Problem:
    return Problem(
        404,
        "review-not-found",
        "No such review",
        f"There is no review {review_id}; GET /v1/reviews lists them.",
    )
