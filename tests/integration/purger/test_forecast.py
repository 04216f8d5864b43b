"""The forecast of erasures per month and category, from the CLI and from the API."""

from collections import Counter
from datetime import UTC, date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import shared.domain.policy
from services.api.api_keys import Scope
from services.cli.main import main
from services.purger.handlers import handle_batch
from shared.storage.clock_forecast import forecast
from shared.storage.database import make_engine
from shared.storage.migrate import upgrade
from tests.integration.conftest import RunningApi
from tests.integration.purger.helpers import RETENTION, Subject, utc_at

STOCKHOLM = ZoneInfo("Europe/Stockholm")


def closed_cases(db, *closings: str, held: bool = False) -> None:
    messages = []
    for at in closings:
        person = Subject()
        messages.append(person.message("collection_case.closed", utc_at(at), {"case_id": "C-1"}))
        if held:
            messages.append(person.message("legal_hold.placed", utc_at(at), data={"hold_id": "H"}))
    handle_batch(db, RETENTION, messages, datetime.now(UTC))


def test_the_cli_prints_erasures_due_per_month_and_category(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'forecast.db'}"
    upgrade(url)
    db = make_engine(url)
    try:
        # Due 36 months later, in Stockholm time: 31 March 23:30 UTC is already April there.
        closed_cases(db, "2025-03-31T23:30:00+00:00", "2025-04-15T10:00:00+00:00")
        closed_cases(db, "2025-05-01T10:00:00+00:00")
        closed_cases(db, "2025-04-20T10:00:00+00:00", held=True)  # held: not counted
    finally:
        db.dispose()
    monkeypatch.setenv("GALLRING_DATABASE_URL", url)

    assert main(["forecast", "--until", "2028-04-30"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["2028-04", "collection_case", "2"]
    assert lines[-1].split() == ["total", "2"]  # May falls after --until


async def test_the_api_forecast_counts_what_falls_due(api: RunningApi) -> None:
    db = make_engine(api.settings.database_url)
    try:
        before = Counter(forecast(db, date(2099, 1, 1), STOCKHOLM))
        closed_cases(db, "2025-06-10T10:00:00+00:00", "2025-06-11T10:00:00+00:00")
    finally:
        db.dispose()

    response = await api.client.get(
        "/v1/erasures/forecast",
        params={"until": "2099-01-01"},
        headers=api.key(Scope.ERASURES_READ),
    )

    assert response.status_code == 200
    after = Counter({(r["month"], r["category"]): r["erasures"] for r in response.json()})
    assert after - before == Counter({("2028-06", "collection_case"): 2})


def test_the_cli_counts_months_in_the_zone_of_the_policy_file(tmp_path, monkeypatch, capsys):
    """With GALLRING_POLICY_FILE set, the forecast failed ('str' has no 'read_text')."""
    url = f"sqlite:///{tmp_path / 'forecast.db'}"
    upgrade(url)
    db = make_engine(url)
    try:
        closed_cases(db, "2025-03-31T23:30:00+00:00")  # already April in Stockholm, not in UTC
    finally:
        db.dispose()
    default = (Path(shared.domain.policy.__file__).parent / "default_policy.yaml").read_text()
    policy_file = tmp_path / "policy.yaml"
    policy_file.write_text(default.replace("timezone: Europe/Stockholm", "timezone: UTC"))
    monkeypatch.setenv("GALLRING_DATABASE_URL", url)
    monkeypatch.setenv("GALLRING_POLICY_FILE", str(policy_file))

    assert main(["forecast", "--until", "2028-04-30"]) == 0

    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["2028-03", "collection_case", "1"]
