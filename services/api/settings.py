"""``GALLRING_API_…``: settings only the API service reads."""

from pydantic import Field

from shared.runtime.settings import GallringSettings


class ApiSettings(GallringSettings):
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65_535)
    api_max_body_bytes: int = Field(default=64 * 1024, ge=1_024)
    api_max_batch_events: int = Field(default=1_000, ge=1)
    api_key_cache_seconds: float = Field(
        default=30.0, ge=0, description="how long a verified key is trusted before re-reading it"
    )
    api_opentelemetry: bool = Field(
        default=False,
        description="let FastAPI trace requests with the OpenTelemetry providers set up globally "
        "(e.g. by opentelemetry-instrument); off, requests skip looking for them",
    )
    api_idempotency_days: float = Field(
        default=30.0,
        ge=1,
        le=3_650,
        description="how long an accepted event's id and body digest are kept, so a retry of "
        "it is recognised (200, or 409 for another body); longer than any upstream retries",
    )
    api_hold_reminder_interval_seconds: float = Field(
        default=3_600.0,
        gt=0,
        description="how often the API looks for legal holds whose review is due within 30, 7 "
        "or 1 days, or past, to publish each reminder once on gallring.holds.v1",
    )
    api_audit_days: float = Field(
        default=365.0,
        ge=1,
        le=3_650,
        description="how long audit entries (key names, counts, event ids) are kept, and "
        "released legal holds in the register",
    )
