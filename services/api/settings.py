"""``GALLRING_API_…``: settings only the API service reads."""

from pydantic import Field

from shared.settings import GallringSettings


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
