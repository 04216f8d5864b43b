"""The OpenAPI document's operation ids: the endpoint function's name (``post_event``,
``lookup_subject``, ``get_erasure``), which a client generated from the document makes its
method names. FastAPI's default appends path and method (``post_event_v1_events_post``).

So endpoint functions are named for the people who call them, and no two share a name across
the API (tests/integration/api/test_openapi_document.py checks)."""

from fastapi.routing import APIRoute


def operation_id(route: APIRoute) -> str:
    """A route's operation id: its name, the endpoint function's unless the route names one."""
    return route.name
