"""The purger's Prometheus metrics. Clock figures are read from the database at scrape time, so
every replica reports the same truth; counters and the sweep histogram are per process."""

from collections.abc import Iterator
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from shared.domain.contract.vocabulary import Category
from shared.messaging.outbox import OutboxMetrics
from shared.storage.pruning import PruneMetrics
from shared.storage.tables.purger import SWEPT_STATES, DispositionReview, StoredClock
from shared.storage.tables.table import table_of

_CLOCKS = table_of(StoredClock)
_REVIEWS = table_of(DispositionReview)


class PurgerMetrics:
    def __init__(self, db: Engine, policy_digest: str) -> None:
        self.registry = CollectorRegistry()
        self.outbox = OutboxMetrics(self.registry)
        self.pruned = PruneMetrics(self.registry, "purger")
        self.sweep_duration = Histogram(
            "gallring_purger_sweep_duration_seconds",
            "How long a sweep took, from the first due clock to the last.",
            registry=self.registry,
        )
        self.erased = Counter(
            "gallring_purger_erasures_total",
            "Clocks erased (erasure command and proof written).",
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "gallring_purger_dead_letters_total",
            "Lifecycle messages that were not valid and went to the dead-letter topic.",
            registry=self.registry,
        )
        self.unregistered_confirmations = Counter(
            "gallring_purger_unregistered_system_confirmations_total",
            "Confirmations of erasures recorded from systems the register (/v1/systems) does "
            "not know: recorded all the same, and flagged in the erasure's view.",
            registry=self.registry,
        )
        self.registry.register(_ClockCollector(db, policy_digest))


class _ClockCollector(Collector):
    def __init__(self, db: Engine, policy_digest: str) -> None:
        self._db = db
        self._policy_digest = policy_digest

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = datetime.now(UTC)
        overdue = (_CLOCKS.c.state.in_(SWEPT_STATES), _CLOCKS.c.due_at <= now)
        with self._db.connect() as connection:
            under_another_policy = func.count().filter(
                _CLOCKS.c.policy_digest != self._policy_digest
            )
            by_state = connection.execute(
                select(_CLOCKS.c.state, func.count(), under_another_policy).group_by(
                    _CLOCKS.c.state
                )
            ).all()
            backlog, oldest = connection.execute(
                select(func.count(), func.min(_CLOCKS.c.due_at)).where(*overdue)
            ).one()
            open_reviews: dict[str, int] = dict(
                connection.execute(
                    select(_REVIEWS.c.category, func.count())
                    .where(_REVIEWS.c.state == "open")
                    .group_by(_REVIEWS.c.category)
                ).all()
            )
        clocks = GaugeMetricFamily(
            "gallring_purger_clocks", "Stored retention clocks by state.", labels=["state"]
        )
        for state, count, _ in by_state:
            clocks.add_metric([state], count)
        yield clocks
        yield GaugeMetricFamily(
            "gallring_purger_clocks_under_another_policy",
            "Clocks whose verdict was reached under another policy or engine revision: the "
            "policy refresh brings them up to date, so this should fall to 0 after a change.",
            value=sum(stale for _, _, stale in by_state),
        )
        yield GaugeMetricFamily(
            "gallring_purger_due_backlog", "Clocks due now and not yet erased.", value=backlog
        )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # SQLite's MIN() comes back as text-typed naive
        yield GaugeMetricFamily(
            "gallring_purger_oldest_overdue_seconds",
            "How long the longest-waiting due clock has been due (0: none waits).",
            value=(now - oldest).total_seconds() if oldest is not None else 0.0,
        )
        reviews = GaugeMetricFamily(
            "gallring_purger_reviews_open",
            "Disposition reviews waiting for a DPO's decision (POST /v1/reviews/{id}/decision), "
            "by category: a sweep stopped erasures past the policy's review limits, or a policy "
            "change made more clocks due at once than max_per_day. Alert on > 0; their clocks "
            'are gallring_purger_clocks{state="awaiting_review"}.',
            labels=["category"],
        )
        for category in Category:  # every category, 0 included: an alert needs a series
            reviews.add_metric([category.value], open_reviews.get(category.value, 0))
        yield reviews
