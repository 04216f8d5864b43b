"""What ops see of the notifier on /metrics, counted from the database: notifications by state,
the retry backlog, how long each recipient has left a delivered notification unconfirmed, failing
recipients, and recipients named in disclosures but never registered."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from services.notifier.metrics import NotifierMetrics
from shared.storage.tables.notifier import Disclosure, Notification, RecipientHealth
from shared.storage.tables.table import table_of


def notification(recipient_id: str, state: str, now: datetime, **changes: Any) -> dict[str, Any]:
    return {
        "notification_id": uuid.uuid4(),
        "erasure_id": uuid.uuid4(),
        "recipient_id": recipient_id,
        "type": "erasure.requested",
        "category": "collection_case",
        "scope": json.dumps({"case_id": "C-1"}),
        "recipient_ref": "PV-1",
        "legal_basis": "GDPR art. 17(1)(a)",
        "respond_by": now + timedelta(days=30),
        "state": state,
        "attempts": 0,
        "next_attempt_at": now,
        "give_up_at": now + timedelta(days=3),
        "created_at": now - timedelta(hours=3),
        "delivered_at": None,
        "confirmed_at": None,
        **changes,
    }


def test_the_figures_count_what_the_database_holds(fresh_db: Engine) -> None:
    now = datetime.now(UTC)
    two_hours_ago, an_hour_ago = now - timedelta(hours=2), now - timedelta(hours=1)
    rows = [
        notification("print-vendor", "pending", now),
        notification("print-vendor", "delivering", now, attempts=2),
        notification("print-vendor", "delivered", now, attempts=1, delivered_at=two_hours_ago),
        notification("print-vendor", "delivered", now, attempts=1, delivered_at=an_hour_ago),
        notification(
            "agent-abroad",
            "delivered",
            now,
            attempts=1,
            delivered_at=two_hours_ago,
            confirmed_at=an_hour_ago,
        ),
    ]
    with fresh_db.begin() as connection:
        connection.execute(insert(table_of(Notification)), rows)
        connection.execute(
            insert(table_of(RecipientHealth)),
            [
                {"recipient_id": "print-vendor", "consecutive_failures": 5, "failing_since": now},
                {"recipient_id": "agent-abroad", "consecutive_failures": 0, "failing_since": None},
            ],
        )
        connection.execute(
            insert(table_of(Disclosure)),
            [
                {
                    "event_id": uuid.uuid4(),
                    "subject_pseudonym": "ab" * 32,
                    "recipient_id": "never-registered",
                    "category": "collection_case",
                    "scope_key": "case_id",
                    "scope_value": "C-1",
                    "recipient_ref": "X-1",
                    "disclosed_at": now,
                }
            ],
        )

    registry = NotifierMetrics(fresh_db).registry

    def figure(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    states = ("pending", "delivering", "delivered", "confirmed")
    assert [figure("gallring_notifier_notifications", state=s) for s in states] == [1, 1, 2, 1]
    assert figure("gallring_notifier_retry_backlog") == 1  # tried, not yet delivered
    unconfirmed = "gallring_notifier_oldest_unconfirmed_seconds"
    waited = figure(unconfirmed, recipient_id="print-vendor")
    since_then = (datetime.now(UTC) - two_hours_ago).total_seconds()  # read after the figure
    assert waited is not None and 2 * 3600 <= waited <= since_then
    assert figure(unconfirmed, recipient_id="agent-abroad") is None  # it confirmed
    assert figure("gallring_notifier_recipients_failing") == 1
    # Nobody is registered here. Named in a disclosure: never-registered; owed an undelivered
    # notification: print-vendor (agent-abroad's are all delivered).
    assert figure("gallring_notifier_unregistered_recipients") == 2
