"""``GALLRING_NOTIFIER_…``: settings only the notifier reads."""

from pydantic import Field, model_validator

from shared.runtime.settings import GallringSettings

DAY = 24 * 3600.0


class NotifierSettings(GallringSettings):
    notifier_consumer_group: str = "gallring-notifier"
    notifier_max_poll_records: int = Field(default=500, ge=1)
    notifier_concurrency: int = Field(default=64, ge=1, description="deliveries in flight")
    notifier_recipient_concurrency: int = Field(
        default=4, ge=1, description="deliveries in flight to one recipient"
    )
    notifier_timeout_seconds: float = Field(
        default=10.0, gt=0, description="a recipient answering slower counts as a failure"
    )
    notifier_retry_base_seconds: float = Field(
        default=5.0, gt=0, description="the first retry's wait; doubled per attempt, jittered"
    )
    notifier_retry_max_seconds: float = Field(
        default=6 * 3600.0, gt=0, description="the longest wait between two attempts"
    )
    notifier_retry_horizon_seconds: float = Field(
        default=3 * DAY, gt=0, description="after this long without a 2xx: failed"
    )
    notifier_failing_after: int = Field(
        default=5, ge=1, description="consecutive failures that mark a recipient failing"
    )
    notifier_respond_within_days: int = Field(
        default=30, ge=1, description="respond_by in a notification: GDPR's one month"
    )
    notifier_late_disclosure_days: float = Field(
        default=7.0,
        gt=0,
        description="how long an erasure is remembered for a disclosure read after it",
    )
    notifier_keep_particulars_days: float = Field(
        default=30.0,
        ge=1,
        le=3_650,
        description="how long a delivered or failed notification keeps its scope's values and "
        "the recipient's reference (a failed one can be redelivered until then); a confirmed "
        "one gives them up at once",
    )
    notifier_poll_interval_seconds: float = Field(default=0.5, gt=0)
    notifier_public_api_url: str = Field(
        default="http://127.0.0.1:8000",
        description="where recipients reach the API; their confirm_url starts with it",
    )
    notifier_metrics_host: str = "127.0.0.1"
    notifier_metrics_port: int = Field(
        default=9102, ge=0, le=65_535, description="GET /metrics here; 0: no metrics server"
    )

    @property
    def notifier_lease_seconds(self) -> float:
        """How long a claimed notification is ours: a wait for a free slot (at most one
        attempt's time), its attempt, and time to record it. A dead notifier's claims lapse
        after it."""
        return self.notifier_timeout_seconds * 2 + 10

    @model_validator(mode="after")
    def _waits_fit(self) -> "NotifierSettings":
        if self.notifier_retry_base_seconds > self.notifier_retry_max_seconds:
            raise ValueError(
                "GALLRING_NOTIFIER_RETRY_BASE_SECONDS exceeds GALLRING_NOTIFIER_RETRY_MAX_SECONDS"
            )
        return self
