"""The path a request's route sees: a proxy may mount the API under a prefix (``root_path``),
which Starlette's routing strips and middleware must strip too before comparing paths."""

from starlette.types import Scope


def route_path(scope: Scope) -> str:
    """``path`` without ``root_path``."""
    path: str = scope["path"]
    root_path: str = scope.get("root_path", "")
    if root_path and path.startswith(root_path + "/"):
        return path[len(root_path) :]
    return path
