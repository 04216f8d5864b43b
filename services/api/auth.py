"""Credentials on every route but the public ones: a bearer API key, then the route's scope.

:class:`Authentication` checks the key of every request before routing, so a new route cannot
forget it: 401 without a valid key. Each route then names its scope: 403 with a key that lacks
it. Both answer problem+json.

A route whose body FastAPI validates asks for its scope with the :func:`require` dependency, so
that a caller without the scope hears 403 before any 422. The event intake reads its bodies
itself and calls :func:`authorize` first thing: a FastAPI dependency costs about a tenth of a
millisecond per request, as much as the rest of that route's own work.
"""

import re
from collections.abc import Awaitable, Callable, Iterable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from services.api.api_keys import KeyStore, Principal
from services.api.api_keys import Scope as KeyScope
from services.api.problems import Problem, problem_response
from services.api.route_path import route_path

_BEARER = re.compile(r"^Bearer +(\S+) *$", re.IGNORECASE)
#: The OpenAPI security scheme every route but the public ones requires.
SECURITY_SCHEME = {
    "type": "http",
    "scheme": "bearer",
    "description": "An API key: `gal_<id>_<secret>`; `gallring keys create` makes one.",
}


class Authentication:
    """Lets a request through only with a valid API key, unless its route is public; puts the
    key's :class:`Principal` into the request state for :func:`authorize`."""

    def __init__(self, app: ASGIApp, *, public: Iterable[BaseRoute], public_paths: Iterable[str]):
        self.app = app
        self._public_routes = [route for route in public if isinstance(route, Route)]
        self._public_paths = frozenset(public_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_public(scope):
            await self.app(scope, receive, send)
            return
        try:
            principal = await _authenticated(scope)
        except Problem as problem:
            await problem_response(problem, Request(scope))(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

    def _is_public(self, scope: Scope) -> bool:
        """A document path, or a request a public route takes (path and method); paths as the
        routes see them, without the ``root_path`` a proxy may mount the API under."""
        path = route_path(scope)
        return path in self._public_paths or any(
            route.path_regex.match(path) and route.matches(scope)[0] is Match.FULL
            for route in self._public_routes
        )


def authorize(request: Request, scope: KeyScope) -> Principal:
    """The caller, if its key has ``scope`` (or ``admin``); else 403."""
    principal: Principal = request.state.principal
    if not principal.may(scope):
        raise Problem(
            403,
            "forbidden",
            "The API key lacks a scope",
            f"This call needs the scope '{scope}'; the key '{principal.name}' has "
            f"{', '.join(sorted(principal.scopes)) or 'none'}.",
        )
    return principal


def require(scope: KeyScope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets the call through only with ``scope`` (or ``admin``)."""

    async def dependency(request: Request) -> Principal:
        return authorize(request, scope)

    return dependency


def require_any(*scopes: KeyScope) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that lets the call through with any one of ``scopes`` (or ``admin``): a
    register's readers are also those who write it and those who approve its changes."""

    async def dependency(request: Request) -> Principal:
        principal: Principal = request.state.principal
        if not any(principal.may(scope) for scope in scopes):
            raise Problem(
                403,
                "forbidden",
                "The API key lacks a scope",
                f"This call needs one of the scopes {', '.join(map(repr, map(str, scopes)))}; "
                f"the key '{principal.name}' has {', '.join(sorted(principal.scopes)) or 'none'}.",
            )
        return principal

    return dependency


async def _authenticated(scope: Scope) -> Principal:
    authorization = next((v for k, v in scope["headers"] if k == b"authorization"), b"")
    match = _BEARER.match(authorization.decode("latin-1"))
    if match is None:
        raise Problem(
            401,
            "unauthenticated",
            "An API key is required",
            "Send 'Authorization: Bearer <key>'; `gallring keys create` makes one.",
        )
    key = match.group(1)
    store: KeyStore = scope["app"].state.key_store
    cached = store.verify_from_cache(key)
    # False: not cached, so read it, off the event loop.
    principal = await run_in_threadpool(store.verify, key) if cached is False else cached
    if principal is None:
        raise Problem(
            401, "unauthenticated", "The API key is not valid", "The key is unknown or revoked."
        )
    return principal
