"""Prometheus metrics of one API process. Labels are route templates, event types, the ids of
the register's systems and review thresholds: never a URL with an id in it, never anything
personal."""

import math
import time
from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.domain.contract import EVENT_TYPES
from shared.domain.contract.hold_messages import THRESHOLD_DAYS
from shared.messaging.outbox import OutboxMetrics
from shared.storage.pruning import PruneMetrics

REVIEW_THRESHOLDS = tuple(THRESHOLD_DAYS)


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gallring_api_requests_total",
            "HTTP requests by route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gallring_api_request_duration_seconds",
            "HTTP request latency by route template.",
            ["method", "route"],
            registry=self.registry,
        )
        events_accepted = Counter(
            "gallring_api_events_accepted_total",
            "Events accepted (stored and queued for Kafka), by event type.",
            ["type"],
            registry=self.registry,
        )
        #: Per event type, made at start: every type shows in /metrics from the first scrape,
        #: and the intake skips prometheus_client's label lookup.
        self.events_accepted = {t: events_accepted.labels(t) for t in EVENT_TYPES}
        self.outbox_backlog = Gauge(
            "gallring_outbox_backlog",
            "Messages in the outbox not yet acknowledged by the broker.",
            registry=self.registry,
        )
        self.outbox = OutboxMetrics(self.registry)
        self.pruned = PruneMetrics(self.registry, "api")
        # Read from the database at scrape time (services/api/health.py): every replica reports
        # the same. One series per system of the register (admins register them: few).
        self.unconfirmed_erasures = Gauge(
            "gallring_api_unconfirmed_erasures",
            "Executed erasures that expect the system's confirmation and have not had it.",
            ["system"],
            registry=self.registry,
        )
        self.overdue_erasures = Gauge(
            "gallring_api_overdue_erasures",
            "Of those, the ones past the time the system had to confirm them by.",
            ["system"],
            registry=self.registry,
        )
        self.oldest_unconfirmed = Gauge(
            "gallring_api_oldest_unconfirmed_erasure_seconds",
            "How long ago the oldest erasure the system has not confirmed was executed (0: none).",
            ["system"],
            registry=self.registry,
        )
        # Read at scrape time too. Named for the register, not the process: every replica
        # reports the same, and alerts go by it.
        self.holds_review_due = Gauge(
            "gallring_holds_review_due",
            "Standing legal holds whose review is due, by how close: within 30d, 7d or 1d of "
            "review_by, or past it (each hold at its most urgent threshold).",
            ["threshold"],
            registry=self.registry,
        )

    def show_holds_review_due(self, due: Mapping[str, int] | None) -> None:
        """Standing holds per review threshold; ``None`` (the database did not answer): NaN."""
        for threshold in REVIEW_THRESHOLDS:
            count = math.nan if due is None else due.get(threshold, 0)
            self.holds_review_due.labels(threshold).set(count)

    def show_system_debts(self, debts: dict[str, tuple[int, int, float]] | None) -> None:
        """Per system, what it owes; ``None`` (the database did not answer): every system's
        figures unknown (NaN), not zero."""
        gauges = (self.unconfirmed_erasures, self.overdue_erasures, self.oldest_unconfirmed)
        if debts is None:
            for gauge in gauges:
                for (system,) in list(gauge._metrics):
                    gauge.labels(system).set(math.nan)
            return
        for gauge in gauges:
            gauge.clear()
        for system, figures in debts.items():
            for gauge, figure in zip(gauges, figures, strict=True):
                gauge.labels(system).set(figure)


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics
        # Each label combination's counter and histogram, looked up once: prometheus_client's
        # labels() validates and locks on every call.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            labels = (scope["method"], getattr(scope.get("route"), "path", "unmatched"), status)
            children = self._children.get(labels)
            if children is None:
                method, route, _ = labels
                children = self._children[labels] = (
                    self.metrics.requests.labels(method, route, str(status)),
                    self.metrics.latency.labels(method, route),
                )
            requests, latency = children
            requests.inc()
            latency.observe(time.perf_counter() - started)
