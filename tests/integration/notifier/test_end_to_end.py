"""The whole way: events posted to the API, the purger erasing, the notifier telling the
recipient, and the erasure's view showing who was told, every attempt, and the confirmation."""

import json
import uuid
from datetime import UTC, datetime

import httpx
from dateutil.relativedelta import relativedelta
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from services.api.api_keys import Scope
from shared.messaging.embedded_broker import free_loopback_port
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from tests.integration.conftest import RunningApi
from tests.integration.notifier.helpers import Subject, confirm, disclose, register
from tests.integration.notifier.running import running_notifier
from tests.integration.purger.running import running_purger
from tests.polling import eventually
from tests.webhook_receiver import webhook_receiver

NOTIFIER_TABLES = ("disclosure", "heard_erasure", "notification", "delivery_attempt")


async def test_a_case_erased_after_36_months_reaches_its_recipients_and_the_erasure_shows_it(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    metrics_port = free_loopback_port()
    async with (
        webhook_receiver() as receiver,
        running_purger(migrated_url, kafka_settings),
        running_notifier(migrated_url, kafka_settings, notifier_metrics_port=metrics_port),
    ):
        vendor = await register(api, receiver)
        agent = await register(api, receiver)  # a collection agent abroad, down at first
        receiver.endpoints[agent].script = [500]
        subject = Subject()
        closed = datetime.now(UTC) - relativedelta(months=37)
        await disclose(api, subject, vendor, case_id="C-2023-0001", recipient_ref="PV-88-1234")
        await disclose(api, subject, agent, case_id="C-2023-0001", recipient_ref="AG-7")
        response = await api.client.post(
            "/v1/events",
            json={
                "event_id": str(uuid.uuid4()),
                "type": "collection_case.closed",
                "occurred_at": closed.isoformat(),
                "subject": {"ref": subject.ref},
                "role": "debtor",
                "scope": {"case_id": "C-2023-0001"},
            },
            headers=api.key(Scope.EVENTS_WRITE),
        )
        assert response.status_code == 202, response.text

        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: endpoint.acted_on, timeout=30)
        [(notification_id, payload)] = endpoint.acted_on.items()
        erasure_id = payload["data"]["erasure_id"]

        body = json.dumps({"notification_id": notification_id})
        confirmed = await confirm(api, notification_id, body, endpoint.secret)
        assert confirmed.status_code == 202

        async def erasure_view() -> dict | None:
            response = await api.client.get(
                f"/v1/erasures/{erasure_id}", headers=api.key(Scope.ERASURES_READ)
            )
            view = response.json()
            states = {n["recipient_id"]: n["state"] for n in view.get("notifications") or []}
            return view if states == {vendor: "confirmed", agent: "delivered"} else None

        view = await eventually(erasure_view)
        async with httpx.AsyncClient() as client:
            metrics = (await client.get(f"http://127.0.0.1:{metrics_port}/metrics")).text

    assert view["state"] == "executed"
    told = {n["recipient_id"]: n for n in view["notifications"]}
    assert told[vendor]["confirmed_at"] is not None and told[agent]["confirmed_at"] is None
    assert [a["status_code"] for a in told[vendor]["attempt_log"]] == [200]
    assert [a["status_code"] for a in told[agent]["attempt_log"]] == [500, 200]
    for attempt in told[vendor]["attempt_log"] + told[agent]["attempt_log"]:
        assert attempt["error"] is None and attempt["latency_ms"] >= 0 and attempt["attempted_at"]
    deliveries = {
        sample.labels["outcome"]: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "gallring_notifier_deliveries_total"
    }
    # At least these (the test database may hold other tests' notifications).
    assert deliveries["delivered"] >= 2 and deliveries["failed"] >= 1
    assert "gallring_notifier_retry_backlog" in metrics
    assert "gallring_notifier_oldest_unconfirmed_seconds" in metrics
    assert "gallring_notifier_unregistered_recipients" in metrics

    # What the notifier keeps afterwards names neither the subject nor its pseudonym.
    db = make_engine(migrated_url)
    with db.connect() as connection:
        for table in NOTIFIER_TABLES:
            for row in connection.execute(text(f"SELECT * FROM {table}")):
                assert subject.pseudonym not in str(tuple(row)), table
                assert subject.ref not in str(tuple(row)), table
    db.dispose()
