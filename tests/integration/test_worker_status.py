"""The purger's and notifier's status port as probes and Prometheus see it: metrics for the
scrape, and cheap health and readiness answers that run none of the metrics' queries."""

import json
import urllib.error
import urllib.request
from pathlib import Path

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from shared.database import make_engine
from shared.embedded_broker import free_loopback_port
from shared.worker_process import status_server


class CountingCollector:
    """Stands in for the services' collectors, which count rows at every scrape."""

    def __init__(self) -> None:
        self.collected = 0

    def collect(self):  # type: ignore[no-untyped-def]
        self.collected += 1
        yield GaugeMetricFamily("gallring_rows", "rows counted", value=1)


def get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_probes_answer_without_running_the_metrics_queries(tmp_path: Path) -> None:
    registry, collector = CollectorRegistry(), CountingCollector()
    registry.register(collector)
    collector.collected = 0  # registering collects once, to learn the names
    db = make_engine(f"sqlite:///{tmp_path / 'gallring.db'}")
    port = free_loopback_port()
    try:
        with status_server("127.0.0.1", port, registry, db):
            assert get(port, "/healthz") == (200, '{"status":"ok"}')
            assert get(port, "/readyz") == (200, '{"status":"ready"}')
            assert collector.collected == 0
            status, page = get(port, "/metrics")
            assert status == 200 and "gallring_rows 1.0" in page
            assert collector.collected == 1
            assert get(port, "/anything")[0] == 404
    finally:
        db.dispose()


def test_a_worker_whose_database_is_away_is_alive_but_not_ready() -> None:
    refusing = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_loopback_port()}/x")
    port = free_loopback_port()
    try:
        with status_server("127.0.0.1", port, CollectorRegistry(), refusing):
            assert get(port, "/healthz")[0] == 200
            status, body = get(port, "/readyz")
            assert (status, json.loads(body)) == (503, {"status": "database unreachable"})
    finally:
        refusing.dispose()
