"""What ops see of the notifier on /metrics, counted from the database: notifications by state,
the retry backlog, how long each recipient has left a delivered notification unconfirmed, failing
recipients, and recipients named in disclosures but never registered."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from services.notifier.metrics import NotifierMetrics
from shared.tables.notifier import Disclosure, Notification, RecipientHealth

NOW = datetime.now(UTC)


def hours_ago(hours: int) -> datetime:
    return NOW - timedelta(hours=hours)


def notification(recipient_id: str, state: str, **changes: Any) -> dict[str, Any]:
    return {
        "notification_id": uuid.uuid4(),
        "erasure_id": uuid.uuid4(),
        "recipient_id": recipient_id,
        "type": "erasure.requested",
        "category": "collection_case",
        "scope": json.dumps({"case_id": "C-1"}),
        "recipient_ref": "PV-1",
        "legal_basis": "GDPR art. 17(1)(a)",
        "respond_by": NOW + timedelta(days=30),
        "state": state,
        "attempts": 0,
        "next_attempt_at": NOW,
        "give_up_at": NOW + timedelta(days=3),
        "created_at": hours_ago(3),
        "delivered_at": None,
        "confirmed_at": None,
        **changes,
    }


def test_the_figures_count_what_the_database_holds(fresh_db: Engine) -> None:
    rows = [
        notification("print-vendor", "pending"),
        notification("print-vendor", "delivering", attempts=2),
        notification(
            "print-vendor", "delivered", attempts=1, delivered_at=NOW - timedelta(hours=2)
        ),
        notification(
            "print-vendor", "delivered", attempts=1, delivered_at=NOW - timedelta(hours=1)
        ),
        notification(
            "agent-abroad",
            "delivered",
            attempts=1,
            delivered_at=hours_ago(2),
            confirmed_at=hours_ago(1),
        ),
    ]
    with fresh_db.begin() as connection:
        connection.execute(insert(Notification.__table__), rows)  # type: ignore[attr-defined]
        connection.execute(
            insert(RecipientHealth.__table__),  # type: ignore[attr-defined]
            [
                {"recipient_id": "print-vendor", "consecutive_failures": 5, "failing_since": NOW},
                {"recipient_id": "agent-abroad", "consecutive_failures": 0, "failing_since": None},
            ],
        )
        connection.execute(
            insert(Disclosure.__table__),  # type: ignore[attr-defined]
            [
                {
                    "event_id": uuid.uuid4(),
                    "subject_pseudonym": "ab" * 32,
                    "recipient_id": "never-registered",
                    "category": "collection_case",
                    "scope_key": "case_id",
                    "scope_value": "C-1",
                    "recipient_ref": "X-1",
                    "disclosed_at": NOW,
                }
            ],
        )

    registry = NotifierMetrics(fresh_db).registry

    def figure(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    states = ("pending", "delivering", "delivered", "confirmed")
    assert [figure("gallring_notifier_notifications", state=s) for s in states] == [1, 1, 2, 1]
    assert figure("gallring_notifier_retry_backlog") == 1  # tried, not yet delivered
    waited = figure("gallring_notifier_oldest_unconfirmed_seconds", recipient_id="print-vendor")
    assert waited is not None and 2 * 3600 <= waited < 2 * 3600 + 60
    assert (
        figure("gallring_notifier_oldest_unconfirmed_seconds", recipient_id="agent-abroad") is None
    )
    assert figure("gallring_notifier_recipients_failing") == 1
    assert figure("gallring_notifier_unregistered_recipients") == 1
