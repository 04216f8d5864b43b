"""Credentials on every route but health: a bearer API key with the route's scope.

401 without a valid key, 403 with a key that lacks the scope; both as problem+json.
"""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from services.api.api_keys import KeyStore, Principal, Scope
from services.api.problems import Problem

_bearer = HTTPBearer(auto_error=False, description="An API key: `gal_<id>_<secret>`")


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None:
        raise Problem(
            401,
            "unauthenticated",
            "An API key is required",
            "Send 'Authorization: Bearer <key>'; `gallring keys create` makes one.",
        )
    store: KeyStore = request.app.state.key_store
    principal = store.verify_from_cache(credentials.credentials)
    if principal is False:  # not cached: read it, off the event loop
        principal = await run_in_threadpool(store.verify, credentials.credentials)
    if principal is None:
        raise Problem(
            401, "unauthenticated", "The API key is not valid", "The key is unknown or revoked."
        )
    return principal


def require(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that lets the call through only with ``scope`` (or ``admin``)."""

    async def dependency(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if not principal.may(scope):
            raise Problem(
                403,
                "forbidden",
                "The API key lacks a scope",
                f"This call needs the scope '{scope}'; the key '{principal.name}' has "
                f"{', '.join(sorted(principal.scopes)) or 'none'}.",
            )
        return principal

    return dependency
