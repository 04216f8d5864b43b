"""A client generated from the served OpenAPI document by openapi-python-client, as an
integrator would make one, posts an event, looks its subject up and reads the erasure the purger
scheduled from it, against the running API (uvicorn on loopback, SQLite, the session's broker).

The generator must read the whole document without a warning: a warning means a schema or an
answer it could not make code of, and so a call the generated client cannot make or parse."""

import importlib
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import select

from services.api.settings import ApiSettings
from services.purger.handlers import handle_batch
from shared.domain.contract import LifecycleEvent
from shared.domain.contract.lifecycle_message import LifecycleMessage
from shared.storage.database import make_engine
from shared.storage.tables.purger import StoredClock
from shared.storage.tables.table import table_of
from tests.builders import event
from tests.integration.purger.helpers import RETENTION

GENERATOR = str(Path(sys.executable).parent / "openapi-python-client")
PACKAGE = "gallring_api_client"  # the generator's name for the package of "Gallring API"
GENERATE_LIMIT_SECONDS = 120  # a guard against a hung run only; it takes a few seconds


@pytest.fixture
def running_api(served_api: tuple[str, str, ApiSettings]) -> tuple[str, str, ApiSettings]:
    """The API's base URL, an admin key and its settings (``served_api``)."""
    return served_api


@pytest.fixture
def generated_client(
    running_api: tuple[str, str, ApiSettings], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """The generated package, imported from tmp_path (nothing is installed)."""
    base, _, _ = running_api
    config = tmp_path / "generator.yaml"
    config.write_text("post_hooks: []\n")  # no formatting of the generated code: not needed here
    output = tmp_path / "client"
    result = subprocess.run(
        [
            GENERATOR,
            "generate",
            f"--url={base}/openapi.json",
            f"--output-path={output}",
            f"--config={config}",
            "--fail-on-warning",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=GENERATE_LIMIT_SECONDS,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-10_000:] + result.stderr[-5_000:]
    monkeypatch.syspath_prepend(str(output))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


def test_a_generated_client_posts_an_event_looks_its_subject_up_and_reads_its_erasure(
    running_api: tuple[str, str, ApiSettings], generated_client: Any
) -> None:
    base, key, settings = running_api
    api = importlib.import_module(f"{PACKAGE}.api")
    models = importlib.import_module(f"{PACKAGE}.models")
    importlib.import_module(f"{PACKAGE}.api.events.post_event")
    importlib.import_module(f"{PACKAGE}.api.subjects.lookup_subject")
    importlib.import_module(f"{PACKAGE}.api.erasures.get_erasure")
    identity = {"ref": "crm:generated-client"}
    closed = event(
        "collection_case.closed",
        (datetime.now(UTC) - relativedelta(months=2)).isoformat(),
        {"case_id": "C-1"},
        subject=identity,
    )

    with generated_client.AuthenticatedClient(base_url=base, token=key) as client:
        accepted = api.events.post_event.sync(
            client=client,
            body=models.CollectionCaseClosed.from_dict(closed.model_dump(mode="json")),
        )
        assert isinstance(accepted, models.EventAccepted)
        assert str(accepted.event_id) == str(closed.event_id)

        # The purger consumes it (the relay is off here: it is tested on its own).
        pseudonym = closed.subject.pseudonym(settings.pseudonymiser())
        erasure_id = _consumed_by_the_purger(settings.database_url, closed, pseudonym)

        clocks = api.subjects.lookup_subject.sync(
            client=client, body=models.Subject.from_dict(identity)
        )
        assert isinstance(clocks, models.SubjectClocks)
        assert (clocks.subject, clocks.events) == (pseudonym, 1)
        [clock] = clocks.clocks
        assert (clock.category, clock.state) == ("collection_case", models.ClockState.PENDING)
        assert str(clock.trigger_event_id) == str(closed.event_id)
        erasure = api.erasures.get_erasure.sync(erasure_id, client=client)
        assert isinstance(erasure, models.ErasureView)
        assert str(erasure.erasure_id) == erasure_id
        assert erasure.state == models.ErasureState.SCHEDULED
        assert erasure.scope.to_dict() == {"case_id": "C-1"}


def _consumed_by_the_purger(database_url: str, closed: LifecycleEvent, pseudonym: str) -> str:
    """Applies the event as the purger does; the id of the erasure it scheduled."""
    db = make_engine(database_url)
    try:
        message = LifecycleMessage.from_event(closed, pseudonym)
        handle_batch(db, RETENTION, [message], datetime.now(UTC))
        clocks = table_of(StoredClock)
        with db.connect() as connection:
            return str(
                connection.execute(
                    select(clocks.c.erasure_id).where(clocks.c.subject_pseudonym == pseudonym)
                ).scalar_one()
            )
    finally:
        db.dispose()
