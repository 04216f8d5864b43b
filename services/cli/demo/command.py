"""``gallring demo``: the key it calls the API with, and its failures as a person reads them."""

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from aiohttp import ClientError, InvalidURL
from sqlalchemy.engine import make_url

from services.api.api_keys import KeyStore, Scope
from services.cli.demo.walkthrough import DemoFailed, check_reachable, walk_through
from services.cli.up import COLLECTION_SYSTEM
from shared.storage.database import make_engine

DEMO_KEY_NAME = "gallring-demo"


def run_demo(
    api_url: str,
    api_key: str | None,
    database_url: Callable[[], str],
    *,
    timeout: float,
    out: TextIO,
    err: TextIO,
) -> int:
    """``database_url`` is read only when the demo makes its own key."""
    try:
        asyncio.run(check_reachable(api_url))
        if api_key is None:
            api_key = _demo_key(database_url())
            print(f"The demo's admin API key (also for {api_url}/docs):\n  {api_key}\n", file=out)
        # The sample collection system of `gallring up`, when the demo runs where it does.
        collection = COLLECTION_SYSTEM if COLLECTION_SYSTEM.database.exists() else None
        return asyncio.run(
            walk_through(api_url, api_key, out, timeout=timeout, collection=collection)
        )
    except DemoFailed as failure:
        print(f"gallring demo: {failure}", file=err)
    except InvalidURL:
        print(f"gallring demo: --api {api_url} is no URL; e.g. http://127.0.0.1:8000", file=err)
    except (ClientError, TimeoutError) as failure:
        print(f"gallring demo: the API stopped answering ({failure!r}); is Gallring up?", file=err)
    except KeyboardInterrupt:
        print("gallring demo: interrupted", file=err)
        return 130  # as a shell reports a command Ctrl-C stopped
    return 1


def _demo_key(database_url: str) -> str:
    """A fresh admin key in the SQLite database of ``gallring up`` (never another one: a demo
    has no business in a deployment's database); the previous run's key is revoked."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise DemoFailed(
            "the demo makes a key of its own only in `gallring up`'s SQLite database; "
            "against another deployment, give an admin key with --api-key"
        )
    if not Path(url.database or "").exists():
        raise DemoFailed(
            f"no Gallring database at {url.database}: run the demo in the directory where "
            "`make run` runs, or give an admin key with --api-key"
        )
    engine = make_engine(database_url)
    try:
        keys = KeyStore(engine)
        keys.revoke(DEMO_KEY_NAME)
        return keys.create(DEMO_KEY_NAME, {Scope.ADMIN})
    finally:
        engine.dispose()
