"""Running the purger: ``gallring purger`` (settings from the environment)."""

from services.purger.bootstrap import Purger
from services.purger.consumer import LANES
from services.purger.settings import PurgerSettings
from shared.runtime import worker_process


def serve(settings: PurgerSettings) -> None:
    """Bring the database schema up to date, then run until SIGINT or SIGTERM."""
    worker_process.serve(
        settings,
        lambda db: Purger(settings, db),
        "purger: consuming "
        + "; ".join(
            f"{', '.join(lane_topics)} as group {settings.purger_consumer_group}{suffix}"
            for lane_topics, suffix in LANES.values()
        )
        + f", sweeping every {settings.purger_sweep_interval_seconds:.0f}s; "
        f"Kafka at {settings.kafka.bootstrap}",
    )
