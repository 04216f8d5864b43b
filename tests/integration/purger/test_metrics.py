"""What ops see of the purger on /metrics: every figure is there, and the clock figures count
what the database holds."""

from datetime import UTC, datetime

import httpx
from dateutil.relativedelta import relativedelta
from sqlalchemy import Engine

from services.purger.handlers import handle_batch
from services.purger.metrics import PurgerMetrics
from shared.messaging.embedded_broker import free_loopback_port
from tests.integration.purger.helpers import RETENTION, Subject, ago
from tests.integration.purger.running import running_purger
from tests.polling import eventually

CASE = {"case_id": "C-1"}


async def test_the_purger_reports_clocks_backlog_and_sweeps_on_metrics(
    migrated_url: str, kafka_settings
) -> None:
    port = free_loopback_port()
    async with (
        running_purger(migrated_url, kafka_settings, purger_metrics_port=port),
        httpx.AsyncClient() as client,
    ):

        async def swept_once() -> str | None:  # the first sweep runs at start
            text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
            return text if "gallring_purger_sweep_duration_seconds_count 1" in text else None

        text = await eventually(swept_once, timeout=10, interval=0.1)
    for family in (
        "gallring_purger_clocks gauge",
        "gallring_purger_due_backlog gauge",
        "gallring_purger_oldest_overdue_seconds gauge",
        "gallring_purger_erasures_total counter",
        "gallring_purger_dead_letters_total counter",
        "gallring_outbox_published_total counter",
    ):
        assert f"\n# TYPE {family}\n" in text


def test_the_clock_figures_count_what_the_database_holds(fresh_db: Engine) -> None:
    overdue_since = datetime.now(UTC) - relativedelta(months=2)
    closed_long_ago = overdue_since - relativedelta(months=36)
    messages = [
        Subject().message("collection_case.closed", closed_long_ago, CASE) for _ in range(2)
    ]
    messages.append(Subject().message("collection_case.closed", ago(months=1), CASE))
    handle_batch(fresh_db, RETENTION, messages, datetime.now(UTC))

    registry = PurgerMetrics(fresh_db, RETENTION.digest).registry

    def figure(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert figure("gallring_purger_clocks", state="due") == 2
    assert figure("gallring_purger_clocks", state="pending") == 1
    assert figure("gallring_purger_due_backlog") == 2
    assert figure("gallring_purger_clocks_under_another_policy") == 0
    overdue_seconds = figure("gallring_purger_oldest_overdue_seconds")
    assert overdue_seconds is not None
    assert abs(overdue_seconds - (datetime.now(UTC) - overdue_since).total_seconds()) < 2 * 86_400
