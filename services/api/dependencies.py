"""What routes ask FastAPI for, rather than each fetching it: the database engine, and the erasure
or notification a path names, or a 404 problem.

Why dependencies: a route then says in its signature what it works on, the lookup and its 404 are
written once, and a test may override one (``app.dependency_overrides``) instead of patching
``app.state``. They are ``Annotated`` aliases (FastAPI's recommended style), so a parameter reads
``db: DbEngine``.

Order matters where a route also takes a body: FastAPI solves dependencies before it validates
the body, so a dependency's 404 would come before the body's 422. Those routes call
``existing_erasure`` or ``existing_notification`` themselves, after validation, as they always did.
"""

from datetime import UTC, datetime
from typing import Annotated
from uuid import UUID

from fastapi import Depends, Request
from sqlalchemy import Engine

from services.api.erasures import service as erasures
from services.api.erasures.schemas import ErasureView
from services.api.notifications import service as notifications
from services.api.notifications.schemas import NotificationView
from services.api.problems import Problem


async def db_engine(request: Request) -> Engine:
    """The engine the lifespan made, once per process. ``async``: it only reads ``app.state``,
    so it need not take a thread of the pool as a plain ``def`` dependency would."""
    engine: Engine = request.app.state.db_engine
    return engine


DbEngine = Annotated[Engine, Depends(db_engine)]


def existing_erasure(erasure_id: UUID, db: DbEngine) -> ErasureView:
    """The erasure ``erasure_id`` names, or 404. A plain ``def``: FastAPI runs it in its thread
    pool, as it reads the database."""
    view = erasures.one(db, erasure_id, datetime.now(UTC))
    if view is None:
        raise Problem(
            404, "erasure-not-found", "No such erasure", f"There is no erasure {erasure_id}."
        )
    return view


def existing_notification(notification_id: UUID, db: DbEngine) -> NotificationView:
    """The notification ``notification_id`` names, or 404 (a plain ``def``, as above)."""
    view = notifications.one(db, notification_id)
    if view is None:
        raise Problem(
            404,
            "notification-not-found",
            "No such notification",
            f"There is no notification {notification_id}.",
        )
    return view


ExistingErasure = Annotated[ErasureView, Depends(existing_erasure)]
ExistingNotification = Annotated[NotificationView, Depends(existing_notification)]
