"""What a relay reports to the Prometheus registry of the process it runs in."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class OutboxMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.published = Counter(
            "gallring_outbox_published_total",
            "Outbox messages this process's relay published (the broker acknowledged), by "
            "topic. The relay holding the lease publishes every service's outbox: the API's "
            "may count the purger's erasure messages, and the purger's nothing.",
            ["topic"],
            registry=registry,
        )
        self.republished = Counter(
            "gallring_outbox_republished_total",
            "Published outbox messages this process's relay marked to publish again because the "
            "broker lost them after acknowledging them, by topic.",
            ["topic"],
            registry=registry,
        )
        self.publish_failures = Counter(
            "gallring_outbox_publish_failures_total",
            "Outbox publishing rounds that failed (the broker unreachable or refusing).",
            registry=registry,
        )
        self.buckets_held = Gauge(
            "gallring_outbox_relay_buckets",
            "Outbox buckets whose messages this process's relay publishes, when relays share "
            "the publishing (GALLRING_RELAY_SHARDED; 64 in all): 0 in every process means none "
            "is published.",
            registry=registry,
        )
