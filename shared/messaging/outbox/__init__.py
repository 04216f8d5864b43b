"""The transactional outbox: what a service stores for Kafka in the same transaction as its own
changes (:func:`outbox_row`), and the relay that publishes it (:class:`OutboxRelay`)."""

from shared.messaging.outbox.message import outbox_row
from shared.messaging.outbox.metrics import OutboxMetrics
from shared.messaging.outbox.relay import OutboxRelay

__all__ = ["OutboxMetrics", "OutboxRelay", "outbox_row"]
