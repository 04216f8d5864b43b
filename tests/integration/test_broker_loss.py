"""A broker that forgets everything while Gallring works: nothing accepted is lost.

The embedded broker keeps nothing on disk, so killing it and starting it again on the same port
is a broker that lost every message and offset it had acknowledged (a real cluster can do the
same to some partitions after an unclean leader election). Under a steady load of events and
confirmations, with the API, the purger and the notifier running, the broker is killed and
restarted; then every subject accepted must be erased and its recipient told exactly once, and
every confirmation answered 202 recorded.
"""

import asyncio
import contextlib
import json
import signal
import uuid
from datetime import UTC, datetime, timedelta

from dateutil.relativedelta import relativedelta

from services.api.api_keys import Scope
from shared.messaging.embedded_broker import EmbeddedBroker
from shared.runtime.settings import KafkaSettings
from tests.integration.conftest import RunningApi, forget_the_session_broker, relay_settings
from tests.integration.notifier.helpers import Subject, confirm, register
from tests.integration.notifier.running import running_notifier
from tests.integration.purger.running import running_purger
from tests.polling import eventually
from tests.webhook_receiver import WebhookReceiver, webhook_receiver

SUBJECTS_PER_BATCH = 10
PAUSE_BETWEEN_BATCHES = 0.1


def subject_events(subject: Subject, recipient_id: str, number: int) -> list[dict]:
    """A case disclosed to ``recipient_id`` and closed 37 months ago: erasable at once."""
    case = {"case_id": f"C-{number}"}
    common = {"subject": {"ref": subject.ref}, "role": "debtor", "scope": case}
    closed = datetime.now(UTC) - relativedelta(months=37)
    return [
        {
            **common,
            "event_id": str(uuid.uuid4()),
            "type": "data.disclosed",
            "occurred_at": (closed - timedelta(days=400)).isoformat(),
            "data": {
                "recipient_id": recipient_id,
                "category": "collection_case",
                "recipient_ref": f"R-{number}",
            },
        },
        {
            **common,
            "event_id": str(uuid.uuid4()),
            "type": "collection_case.closed",
            "occurred_at": closed.isoformat(),
        },
    ]


class Load:
    """Posts subjects' events in batches and confirms each notification that arrives, until
    stopped; remembers what the API accepted."""

    def __init__(self, api: RunningApi, receiver: WebhookReceiver, recipient_id: str) -> None:
        self._api = api
        self._receiver = receiver
        self._recipient_id = recipient_id
        self._headers = api.key(Scope.EVENTS_WRITE)
        self.accepted: set[str] = set()  # recipient references of the subjects accepted
        self.confirmed: set[str] = set()  # notification ids whose confirmation got 202
        self.refused = 0
        self._stopping = asyncio.Event()

    async def post(self) -> None:
        number = 0
        while not self._stopping.is_set():
            batch, refs = [], []
            for _ in range(SUBJECTS_PER_BATCH):
                number += 1
                batch += subject_events(Subject(), self._recipient_id, number)
                refs.append(f"R-{number}")
            response = await self._api.client.post(
                "/v1/events/batch", json=batch, headers=self._headers
            )
            if response.status_code == 200 and {
                result["status"] for result in response.json()["results"]
            } == {"accepted"}:
                self.accepted.update(refs)
            else:
                self.refused += 1  # not accepted: a client would retry; not counted here
            await asyncio.sleep(PAUSE_BETWEEN_BATCHES)

    async def confirm(self) -> None:
        endpoint = self._receiver.endpoints[self._recipient_id]
        while True:
            for notification_id in list(endpoint.acted_on):
                if notification_id in self.confirmed:
                    continue
                body = json.dumps({"notification_id": notification_id})
                answer = await confirm(self._api, notification_id, body, endpoint.secret)
                if answer.status_code == 202:
                    self.confirmed.add(notification_id)
            await asyncio.sleep(0.05)

    def stop(self) -> None:
        self._stopping.set()


async def test_a_broker_that_forgets_what_it_acknowledged_loses_nothing(
    make_api, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    forget_the_session_broker(migrated_url)
    broker = EmbeddedBroker()
    broker.start()
    kafka = kafka_settings.model_copy(
        update={"bootstrap": broker.bootstrap_servers, "consumer_stall_seconds": 5.0}
    )
    groups = uuid.uuid4().hex[:8]
    try:
        async with (
            make_api(
                kafka=kafka,
                relay=relay_settings(keep_published_seconds=300),
                webhook_allow_loopback=True,
            ) as api,
            webhook_receiver() as receiver,
            running_purger(migrated_url, kafka, purger_consumer_group=f"purger-{groups}") as p,
            running_notifier(
                migrated_url, kafka, notifier_consumer_group=f"notifier-{groups}"
            ) as notifier,
        ):
            vendor = await register(api, receiver)
            load = Load(api, receiver, vendor)
            posting = asyncio.create_task(load.post())
            confirming = asyncio.create_task(load.confirm())
            endpoint = receiver.endpoints[vendor]
            try:
                # Under way: some subjects erased and told, more in every stage behind.
                await eventually(lambda: len(endpoint.acted_on) >= 20, timeout=30)
                assert broker._process is not None
                broker._process.send_signal(signal.SIGKILL)
                broker._process.wait()
                await asyncio.sleep(1.0)  # the API keeps accepting meanwhile
                broker = EmbeddedBroker(broker.port)
                broker.start()  # empty: every topic, message and offset is gone
                await asyncio.sleep(2.0)
            finally:
                load.stop()
                await posting

            def everyone_told() -> bool:
                told = {payload["data"]["recipient_ref"] for payload in endpoint.acted_on.values()}
                return told >= load.accepted

            await eventually(
                everyone_told, timeout=120
            )  # bounded; seconds unless the machine is loaded
            with contextlib.suppress(AssertionError):  # the last ones are confirmed just now
                await eventually(lambda: load.confirmed >= set(endpoint.acted_on), timeout=10)
            confirming.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await confirming

            async def every_confirmation_recorded() -> bool:
                response = await api.client.get(
                    "/v1/notifications",
                    params={"recipient_id": vendor, "limit": 1000},
                    headers=api.key(Scope.ERASURES_READ),
                )
                notifications = response.json()["notifications"]
                states = {n["notification_id"]: n["state"] for n in notifications}
                return all(states.get(n) == "confirmed" for n in load.confirmed)

            await eventually(every_confirmation_recorded, timeout=30)
            assert not any(c.stalled() for c in p.consumers) and not notifier.consumer.stalled()
    finally:
        broker.stop()
        forget_the_session_broker(migrated_url)  # nor this broker's of the session's

    assert len(load.accepted) >= 100 and load.refused == 0
    told = [payload["data"]["recipient_ref"] for payload in endpoint.acted_on.values()]
    assert sorted(told) == sorted(set(told)), "a subject's recipient told twice"
    assert len(endpoint.received) == len(endpoint.acted_on), "a webhook delivered twice"
