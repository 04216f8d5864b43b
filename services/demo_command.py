"""``gallring demo``: the key it calls the API with, and its errors as a person reads them."""

import asyncio
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import make_url

from services.api.api_keys import KeyStore, Scope
from services.demo.walkthrough import DemoFailed, walk_through
from shared.database import make_engine

DEMO_KEY_NAME = "demo"


def run_demo(
    api_url: str,
    api_key: str | None,
    database_url: str,
    *,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    try:
        if api_key is None:
            api_key = _demo_key(database_url)
            print(f"The demo's admin API key (also for {api_url}/docs):\n  {api_key}\n", file=out)
        return asyncio.run(walk_through(api_url, api_key, out, timeout=timeout))
    except DemoFailed as failure:
        print(f"gallring demo: {failure}", file=err)
        return 1


def _demo_key(database_url: str) -> str:
    """A fresh admin key named ``demo`` in the database ``gallring up`` uses; the previous
    run's is revoked, so demo keys do not pile up."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite" and not Path(url.database or "").exists():
        raise DemoFailed(
            f"no Gallring database at {url.database}: start Gallring in this directory first "
            "(`make run`), or give an admin key with --api-key"
        )
    engine = make_engine(database_url)
    try:
        keys = KeyStore(engine)
        keys.revoke(DEMO_KEY_NAME)
        return keys.create(DEMO_KEY_NAME, {Scope.ADMIN})
    finally:
        engine.dispose()
