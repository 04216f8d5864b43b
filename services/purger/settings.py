"""``GALLRING_PURGER_…``: settings only the purger reads."""

from typing import Self

from pydantic import Field, model_validator

from shared.runtime.settings import GallringSettings


class PurgerSettings(GallringSettings):
    purger_consumer_group: str = "gallring-purger"
    purger_sweep_interval_seconds: float = Field(
        default=60.0, gt=0, description="how often the sweep looks for clocks that fell due"
    )
    purger_sweep_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="clocks erased per transaction"
    )
    purger_metrics_host: str = "127.0.0.1"
    purger_metrics_port: int = Field(
        default=9101, ge=0, le=65_535, description="GET /metrics here; 0: no metrics server"
    )
    purger_max_poll_records: int = Field(
        default=500, ge=1, description="lifecycle messages applied per transaction"
    )
    purger_consumed_event_days: float = Field(
        default=30.0,
        ge=1,
        le=3_650,
        description="how long a consumed event's id is kept for the dedupe; at least the "
        "lifecycle topic's retention",
    )

    @model_validator(mode="after")
    def _dedupe_outlasts_the_lifecycle_topic(self) -> Self:
        """A consumer group reset to the topic's start reads every message the topic keeps
        again: the dedupe must remember at least as long, or events about subjects still kept
        would count twice (a hold placed again, with nothing left to release it)."""
        if self.purger_consumed_event_days * 24 < self.kafka.lifecycle_retention_hours:
            raise ValueError(
                "GALLRING_PURGER_CONSUMED_EVENT_DAYS must be at least the lifecycle topic's "
                "retention, GALLRING_KAFKA_LIFECYCLE_RETENTION_HOURS, in days"
            )
        return self
