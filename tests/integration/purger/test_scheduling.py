"""Clocks live in the database, not in the scheduler: however many there are, the purger's
APScheduler holds one sweep job, one policy-refresh job and one prune job."""

from datetime import UTC, datetime

from services.purger.bootstrap import PRUNE_JOB, REFRESH_JOB, SWEEP_JOB
from services.purger.handlers import handle_batch
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.purger.helpers import RETENTION, Subject, ago
from tests.integration.purger.running import running_purger
from tests.polling import eventually

CLOCKS = 500


async def test_many_clocks_are_still_one_sweep_job(
    migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    db = make_engine(migrated_url)
    try:
        closed = [
            Subject().message("collection_case.closed", ago(months=1), {"case_id": "C-1"})
            for _ in range(CLOCKS)
        ]
        handle_batch(db, RETENTION, closed, datetime.now(UTC))
    finally:
        db.dispose()

    async with running_purger(migrated_url, kafka_settings) as purger:
        sweeps = "gallring_purger_sweep_duration_seconds_count"
        await eventually(  # swept with those clocks stored, twice
            lambda: (purger.metrics.registry.get_sample_value(sweeps) or 0) >= 2,
            timeout=30,
            interval=0.1,
        )
        jobs = [job.id for job in purger._scheduler.get_jobs()]

    assert sorted(jobs) == sorted([SWEEP_JOB, REFRESH_JOB, PRUNE_JOB])
