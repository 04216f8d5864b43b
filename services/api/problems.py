"""RFC 9457 problem details: every error the API returns has this one shape, made here."""

import logging
import time
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sqlalchemy_errors
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.domain.contract.errors import FieldError, describe_errors
from shared.domain.national_id import redact_national_ids

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
#: For a route's ``responses``: says in the OpenAPI document that errors are problem+json.
#: A route's or router's ``responses`` as FastAPI types them (status code -> OpenAPI response).
Responses = dict[int | str, dict[str, Any]]
PROBLEM_RESPONSE: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
_TYPE_BASE = "urn:gallring:problem:"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
#: What a 503 for an unavailable database asks the client to wait before sending again.
STORE_RETRY_AFTER_SECONDS = 5
#: For a router's ``responses`` (``APIRouter(responses=...)``), so that each of its routes, now
#: and later, declares it: the 503 :class:`StoreUnavailableMiddleware` answers on any route that
#: reads or writes the database (every authenticated one: keys are read from it) when it cannot
#: be reached or no connection is free in time. A generated client then knows to wait and retry.
STORE_UNAVAILABLE_RESPONSES: Responses = {
    503: {
        "description": "The database is unavailable just now (store-unavailable): nothing was "
        "stored for this request; send it again, unchanged, after the time Retry-After gives",
        "headers": {
            "Retry-After": {
                "description": "How many seconds to wait before sending the request again",
                "required": True,
                "schema": {"type": "integer"},
            }
        },
        **PROBLEM_RESPONSE,
    }
}


class Problem(Exception):
    """Raise to answer with a problem document; ``slug`` names its type."""

    def __init__(self, status: int, slug: str, title: str, detail: str, **extensions: Any) -> None:
        super().__init__(detail)
        self.status, self.slug, self.title, self.detail = status, slug, title, detail
        self.extensions = extensions


def problem_response(
    problem: Problem, request: Request, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    body = {
        "type": f"{_TYPE_BASE}{problem.slug}",
        "title": problem.title,
        "status": problem.status,
        "detail": problem.detail,
        # A path may carry what a field refused (GET /v1/recipients/<a personnummer>).
        "instance": redact_national_ids(request.url.path),
        **problem.extensions,
    }
    if problem.status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(body, status_code=problem.status, media_type=PROBLEM_JSON, headers=headers)


def validation_problem(errors: list[FieldError]) -> Problem:
    return Problem(
        422,
        "validation-error",
        "The request is not valid",
        f"{len(errors)} field(s) are not as expected; see errors.",
        errors=[{"field": e.field, "message": e.message} for e in errors],
    )


def _sender_location(detail: dict[str, Any]) -> tuple[Any, ...]:
    """The field as the sender wrote it: FastAPI puts "body" first, and a JSON syntax error's
    location is a byte offset, not a field."""
    if detail["type"] == "json_invalid":
        return ()
    location = tuple(detail["loc"])
    return location[1:] if location[:1] == ("body",) else location


def _sender_detail(detail: dict[str, Any]) -> dict[str, Any]:
    """FastAPI's error detail as :func:`describe_errors` takes it; a JSON syntax error says
    what is wrong and where, as the event intake's do (its ``msg`` is only "JSON decode
    error"; its ``ctx`` has the decoder's message, which never repeats the body)."""
    if detail["type"] == "json_invalid" and "error" in detail.get("ctx", {}):
        position = detail["loc"][-1]
        message = f"Invalid JSON: {detail['ctx']['error']} at character {position}"
        return {**detail, "loc": (), "msg": message}
    return {**detail, "loc": _sender_location(detail)}


def unreadable_body(cause: BaseException | None) -> Problem | None:
    """422 for a body FastAPI could not read as JSON for a reason other than its syntax, which
    it answers 400 ("There was an error parsing the body"); the API answers every body that is
    not JSON alike, 422, as its OpenAPI document says. ``None`` if ``cause`` is not that."""
    if isinstance(cause, UnicodeDecodeError):
        message = f"Invalid JSON: not UTF-8 at byte {cause.start}"
    elif isinstance(cause, RecursionError):
        message = "Invalid JSON: nested too deeply"
    elif isinstance(cause, ValueError):  # a number past Python's limit on digits, mostly
        digits = "digits" in str(cause)
        message = f"Invalid JSON: {'a number has too many digits' if digits else 'unreadable'}"
    else:
        return None
    return validation_problem([FieldError("", message)])


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route takes on the request's path. Starlette's own 405 names only the
    first route matching the path, and a path such as /v1/recipients has two (GET and POST)."""
    routes = request.app.routes
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


def store_unavailable(error: BaseException) -> bool:
    """Whether ``error`` says the database could not be reached or used just now, rather than
    that the request or the code is wrong: a refused, dropped or timed-out connection, a server
    shutting down or out of connections, SQLite's lock held past its busy timeout
    (``OperationalError``, from SQLAlchemy or from the intake writer's own psycopg connection),
    a connection SQLAlchemy found broken, or no free connection in the pool in time."""
    if isinstance(error, sqlalchemy_errors.DBAPIError):
        return error.connection_invalidated or isinstance(error, sqlalchemy_errors.OperationalError)
    return isinstance(error, sqlalchemy_errors.TimeoutError | psycopg.OperationalError)


STORE_UNAVAILABLE = Problem(
    503,
    "store-unavailable",
    "The database is unavailable",
    "The database could not be reached just now, so nothing was stored for this request. It "
    "is safe to send it again, unchanged, after the time Retry-After gives.",
)


class StoreOutages:
    """Says once when the database becomes unavailable and once when it answers again, with
    how many requests were answered 503 meanwhile: during an outage every request fails alike,
    and a line (or traceback) per request would bury everything else in the log.

    The outage ends with the first request that got past authentication, which reads the
    database or trusts a key it read recently, and was answered without a database error;
    public requests (health, metrics) may not touch the database and do not count."""

    def __init__(self) -> None:
        self.since: float | None = None  # time.monotonic() at the outage's first failure
        self.refused = 0

    def failed(self, error: BaseException) -> None:
        if self.since is None:
            self.since, self.refused = time.monotonic(), 0
            log.warning(
                "database unavailable (%s); answering 503 with Retry-After until it answers",
                type(error).__name__,
            )
        self.refused += 1

    def answered(self) -> None:
        if self.since is not None:
            log.warning(
                "database back after %.1f s; %d request(s) were answered 503 meanwhile",
                time.monotonic() - self.since,
                self.refused,
            )
            self.since = None


class StoreUnavailableMiddleware:
    """Answers a request that failed for want of the database (:func:`store_unavailable`) with
    503, ``Retry-After`` and :data:`STORE_UNAVAILABLE`, whichever route or middleware inside it
    met the error, and logs the outage once (:class:`StoreOutages`), without a traceback.

    Added outside :class:`~services.api.auth.Authentication`, which reads API keys from the
    database before any route runs. Starlette's handler for ``Exception`` would answer and
    then re-raise, so that the server logs the traceback again."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.outages = StoreOutages()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as error:
            if started or not store_unavailable(error):
                raise
            self.outages.failed(error)
            headers = {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)}
            response = problem_response(STORE_UNAVAILABLE, Request(scope), headers)
            await response(scope, receive, send)
            return
        if "principal" in scope.get("state", {}):
            self.outages.answered()


def install(app: FastAPI) -> None:
    """Route every error through :func:`problem_response`."""

    async def on_problem(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, Problem)
        return problem_response(error, request)

    async def on_validation(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        details = [_sender_detail(detail) for detail in error.errors()]
        return problem_response(validation_problem(describe_errors(details)), request)

    async def on_http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if error.status_code == 400 and (unreadable := unreadable_body(error.__cause__)):
            return problem_response(unreadable, request)
        slug = {404: "not-found", 405: "method-not-allowed"}.get(error.status_code, "http-error")
        title = str(error.detail) if isinstance(error.detail, str) else "HTTP error"
        problem = Problem(error.status_code, slug, title, title)
        headers = dict(error.headers or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem_response(problem, request, headers)

    async def on_unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception(
            "unexpected error on %s %s", request.method, redact_national_ids(request.url.path)
        )
        problem = Problem(
            500,
            "internal-error",
            "Something went wrong on our side",
            "Nothing was stored for this request unless it said so; it is safe to send again.",
        )
        return problem_response(problem, request)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(Exception, on_unexpected)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
