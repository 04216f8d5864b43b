"""How every Gallring process logs: one line format, Gallring's own INFO lines, and, where
``GALLRING_QUIET_LIBRARIES`` is true (``gallring up`` without ``--verbose``), none of the lines
libraries write per request or per scheduled run (uvicorn's access log, APScheduler's "Running
job"), which would scroll a newcomer's first admin key away within a minute."""

import logging
import os

QUIET_VARIABLE = "GALLRING_QUIET_LIBRARIES"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def quiet_libraries() -> bool:
    return os.environ.get(QUIET_VARIABLE, "").strip().lower() in ("1", "true", "yes", "on")


def configure_logging() -> None:
    """Once per process, at its entry point."""
    logging.basicConfig(level=logging.INFO, format=_FORMAT)
    if quiet_libraries():
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
