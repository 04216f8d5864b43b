"""Running the notifier: ``gallring notifier`` (settings from the environment)."""

from services.notifier.bootstrap import Notifier
from services.notifier.consumer import TOPICS
from services.notifier.settings import NotifierSettings
from shared.runtime import worker_process


def serve(settings: NotifierSettings) -> None:
    """Bring the database schema up to date, then run until SIGINT or SIGTERM."""
    worker_process.serve(
        settings,
        lambda db: Notifier(settings, db),
        f"notifier: consuming {', '.join(TOPICS)} as group {settings.notifier_consumer_group}; "
        f"Kafka at {settings.kafka.bootstrap}",
    )
