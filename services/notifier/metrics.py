"""The notifier's Prometheus metrics. Notification figures are read from the database at scrape
time, so every replica reports the same truth; counters are per process. Recipients appear by
id (a company, never a person)."""

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, case, exists, func, select, union

from shared.storage.pruning import PruneMetrics
from shared.storage.tables.api import Recipient
from shared.storage.tables.notifier import (
    AWAITING,
    UNDELIVERED_STATES,
    Disclosure,
    Notification,
    RecipientHealth,
)
from shared.storage.tables.table import table_of

_NOTIFICATIONS = table_of(Notification)
_HEALTH = table_of(RecipientHealth)
_DISCLOSURES = table_of(Disclosure)
_RECIPIENTS = table_of(Recipient)


class NotifierMetrics:
    def __init__(self, db: Engine) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "gallring_notifier_deliveries_total",
            "Delivery attempts by outcome: delivered (2xx) or failed (anything else).",
            ["outcome"],
            registry=self.registry,
        )
        self.gave_up = Counter(
            "gallring_notifier_failed_notifications_total",
            "Notifications that got no 2xx within their retry horizon.",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "gallring_notifier_dead_letters_total",
            "Consumed messages that were not valid and went to the dead-letter topic.",
            registry=self.registry,
        )
        self.pruned = PruneMetrics(self.registry, "notifier")
        self.registry.register(_NotificationCollector(db))
        self.registry.register(_AwaitingCollector(db))


class _NotificationCollector(Collector):
    def __init__(self, db: Engine) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        table = _NOTIFICATIONS
        state = case((table.c.confirmed_at.is_not(None), "confirmed"), else_=table.c.state)
        with self._db.connect() as connection:
            by_state = connection.execute(select(state, func.count()).group_by(state)).all()
            retrying = connection.execute(
                select(func.count()).where(
                    table.c.state.in_(UNDELIVERED_STATES), table.c.attempts > 0
                )
            ).scalar_one()
            unconfirmed = connection.execute(
                select(table.c.recipient_id, func.min(table.c.delivered_at))
                .where(table.c.state == "delivered", table.c.confirmed_at.is_(None))
                .group_by(table.c.recipient_id)
            ).all()
            failing = connection.execute(
                select(func.count()).where(_HEALTH.c.failing_since.is_not(None))
            ).scalar_one()
            # Named in a disclosure, or owed a notification: an erasure turns the one into the
            # other, and the recipient is still as unknown.
            named = union(
                select(_DISCLOSURES.c.recipient_id),
                select(table.c.recipient_id).where(table.c.state.in_(UNDELIVERED_STATES)),
            ).subquery()
            unregistered = connection.execute(
                select(func.count())
                .where(~exists().where(_RECIPIENTS.c.recipient_id == named.c.recipient_id))
                .select_from(named)
            ).scalar_one()
        notifications = GaugeMetricFamily(
            "gallring_notifier_notifications", "Notifications by state.", labels=["state"]
        )
        for name, count in by_state:
            notifications.add_metric([name], count)
        yield notifications
        yield GaugeMetricFamily(
            "gallring_notifier_retry_backlog",
            "Notifications tried at least once and still waiting for a 2xx.",
            value=retrying,
        )
        oldest = GaugeMetricFamily(
            "gallring_notifier_oldest_unconfirmed_seconds",
            "Per recipient: how long its oldest delivered, unconfirmed notification has waited.",
            labels=["recipient_id"],
        )
        for recipient_id, delivered_at in unconfirmed:
            if delivered_at.tzinfo is None:
                delivered_at = delivered_at.replace(tzinfo=UTC)  # SQLite's MIN() is naive
            oldest.add_metric([recipient_id], (now - delivered_at).total_seconds())
        yield oldest
        yield GaugeMetricFamily(
            "gallring_notifier_recipients_failing",
            "Recipients whose deliveries keep failing (see GET /v1/recipients).",
            value=failing,
        )
        yield GaugeMetricFamily(
            "gallring_notifier_unregistered_recipients",
            "Recipients named in disclosures or owed notifications, but not registered: their "
            "notifications wait.",
            value=unregistered,
        )


class _AwaitingCollector(Collector):
    """Notifications waiting for an inactive recipient: how many recipients, and the oldest
    one's age (an alert's figure: art. 19 has no exception for a paused contract). No
    recipient label: ``GET /v1/notifications?state=awaiting_recipient`` names them."""

    def __init__(self, db: Engine) -> None:
        self._db = db

    def collect(self) -> Iterator[GaugeMetricFamily]:
        table = _NOTIFICATIONS
        with self._db.connect() as connection:
            recipients, oldest = connection.execute(
                select(
                    func.count(table.c.recipient_id.distinct()), func.min(table.c.created_at)
                ).where(AWAITING)
            ).one()
        yield GaugeMetricFamily(
            "gallring_notifier_recipients_awaited",
            "Inactive recipients that notifications wait for (until active again, or closed).",
            value=recipients,
        )
        waited = 0.0
        if oldest is not None:
            if oldest.tzinfo is None:
                oldest = oldest.replace(tzinfo=UTC)  # SQLite's MIN() is naive
            waited = (datetime.now(UTC) - oldest).total_seconds()
        yield GaugeMetricFamily(
            "gallring_notifier_oldest_awaiting_seconds",
            "Age of the oldest notification waiting for an inactive recipient (0: none waits).",
            value=waited,
        )
