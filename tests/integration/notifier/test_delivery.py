"""From an erasure-executed message to a signed webhook each recipient verifies with the
official ``standardwebhooks`` library, and back to the recipient's signed confirmation."""

import asyncio
import contextlib
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import Engine, select
from standardwebhooks import Webhook

from services.api.api_keys import Scope
from services.notifier.webhook import signed_headers
from shared.runtime.settings import KafkaSettings
from shared.storage.database import make_engine
from shared.storage.tables.notifier import Notification
from shared.webhooks import url_vetting
from shared.webhooks.signing_secrets import new_signing_secret
from tests.integration.conftest import RunningApi
from tests.integration.notifier.helpers import (
    Subject,
    announce_erasure,
    confirm,
    disclose,
    notification,
    notifications_of,
    register,
)
from tests.integration.notifier.running import running_notifier
from tests.polling import eventually
from tests.webhook_receiver import HANG, WebhookReceiver, webhook_receiver


async def test_each_recipient_that_received_the_category_is_told_once_and_can_confirm(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        marketing_only = await register(api, receiver, categories=("marketing",))
        inactive = await register(api, receiver, active=False)
        subject = Subject()
        await disclose(api, subject, vendor, recipient_ref="PV-88-1234")
        await disclose(api, subject, marketing_only, category="marketing", case_id=None)
        await disclose(api, subject, inactive)
        erasure_id = await announce_erasure(kafka_settings, subject)

        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: endpoint.acted_on)
        [(webhook_id, payload)] = endpoint.acted_on.items()
        assert payload["type"] == "erasure.requested"
        data = payload["data"]
        assert data["notification_id"] == webhook_id
        assert data["erasure_id"] == str(erasure_id)
        assert (data["category"], data["scope"]) == ("collection_case", {"case_id": "C-1"})
        assert data["recipient_ref"] == "PV-88-1234"
        assert data["legal_basis"].startswith("GDPR art. 17")
        assert datetime.fromisoformat(data["respond_by"]) > datetime.now(UTC) + timedelta(days=29)
        assert data["confirm_url"].endswith(f"/v1/notifications/{webhook_id}/confirm")
        assert endpoint.rejected == 0
        assert subject.ref.encode() not in endpoint.received[0].body

        # The erasure again (a redelivery): nothing new is created or sent.
        await announce_erasure(kafka_settings, subject, erasure_id=erasure_id)
        listed = await eventually(lambda: notifications_of(api, vendor))
        assert [n["state"] for n in listed] == ["delivered"]
        assert await notifications_of(api, marketing_only) == []
        [waiting] = await notifications_of(api, inactive)  # owed: it waits for the recipient
        assert waiting["state"] == "awaiting_recipient"
        assert not receiver.endpoints[marketing_only].received
        assert not receiver.endpoints[inactive].received
        assert len(endpoint.received) == 1

        shown = await notification(api, webhook_id)
        [attempt] = shown["attempt_log"]
        assert attempt["status_code"] == 200 and attempt["error"] is None
        erasure = await api.client.get(
            f"/v1/erasures/{erasure_id}", headers=api.key(Scope.ERASURES_READ)
        )
        # The erasure views come from the purger's proofs; no purger ran here.
        assert erasure.status_code == 404

        # The recipient confirms, signing with its own secret.
        secret = endpoint.secret
        body = json.dumps({"notification_id": webhook_id})
        tampered = await confirm(api, webhook_id, body, secret, tamper=True)
        assert tampered.status_code == 401
        assert tampered.headers["content-type"] == "application/problem+json"
        other = await confirm(api, webhook_id, json.dumps({"notification_id": "x"}), secret)
        assert other.status_code == 422
        unknown = str(uuid.uuid4())
        probe = await confirm(api, unknown, json.dumps({"notification_id": unknown}), secret)
        assert probe.status_code == 401  # as for a bad signature: ids are not for probing
        confirmed = await confirm(api, webhook_id, body, secret)
        assert confirmed.status_code == 202, confirmed.text
        shown = await eventually(lambda: _if_confirmed(api, webhook_id), timeout=20)
        assert shown["state"] == "confirmed"
        repeated = await confirm(api, webhook_id, body, secret)
        assert repeated.status_code == 202


async def test_during_a_secret_rotation_either_secret_verifies_and_after_it_only_the_new_one(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async def rotate(vendor: str, grace_hours: float) -> str:
        response = await api.client.post(
            f"/v1/recipients/{vendor}/secret-rotations",
            json={"grace_hours": grace_hours},
            headers=api.key(Scope.ADMIN),
        )
        assert response.status_code == 201, response.text
        return response.json()["signing_secret"]

    async def erase_one(vendor: str) -> None:
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)

    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        endpoint = receiver.endpoints[vendor]
        first_secret = endpoint.secret
        second_secret = await rotate(vendor, grace_hours=2)
        await erase_one(vendor)  # the receiver still knows only the first secret
        await eventually(lambda: len(endpoint.acted_on) == 1)
        endpoint.secret = second_secret
        await erase_one(vendor)
        await eventually(lambda: len(endpoint.acted_on) == 2)
        assert endpoint.rejected == 0
        signed_with = zip(endpoint.acted_on, [first_secret, second_secret], strict=True)
        for webhook_id, secret in signed_with:
            body = json.dumps({"notification_id": webhook_id})
            assert (await confirm(api, webhook_id, body, secret)).status_code == 202
        body = json.dumps({"notification_id": webhook_id})
        stranger = new_signing_secret()  # never this recipient's
        assert (await confirm(api, webhook_id, body, stranger)).status_code == 401

        third_secret = await rotate(vendor, grace_hours=0)  # the second one stops signing
        await erase_one(vendor)
        await eventually(lambda: endpoint.rejected > 0)  # signed with the third one only
        endpoint.secret = third_secret
        await eventually(lambda: len(endpoint.acted_on) == 3)


async def test_a_webhook_host_name_is_resolved_once_and_the_checked_address_used(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A name only Gallring's check can resolve stands for one that is repointed after the
    check (DNS rebinding): the delivery must go to the address the check vetted."""
    resolve = url_vetting._resolve

    def only_the_check_knows(host: str, port: int | None):
        return resolve("127.0.0.1" if host == "vendor.gallring.test" else host, port)

    monkeypatch.setattr(url_vetting, "_resolve", only_the_check_knows)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver, host="vendor.gallring.test")
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: endpoint.acted_on)
    assert endpoint.received[0].headers["host"] == f"vendor.gallring.test:{receiver.port}"


async def test_a_webhook_name_that_takes_too_long_to_resolve_is_an_attempt_timed_out(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check before a delivery resolves the name again; a resolver that hangs must not keep
    the attempt past its timeout (and the claim's lease)."""
    resolve, hang_once = url_vetting._resolve, threading.Event()

    def hangs_once(host: str, port: int | None):
        if host == "slow.gallring.test" and hang_once.is_set():
            hang_once.clear()
            time.sleep(2)  # longer than the notifier's 1 s timeout
        return resolve("127.0.0.1" if host == "slow.gallring.test" else host, port)

    monkeypatch.setattr(url_vetting, "_resolve", hangs_once)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver, host="slow.gallring.test")
        hang_once.set()  # the notifier's check before the first delivery, not the API's
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        endpoint = receiver.endpoints[vendor]
        [listed] = await eventually(lambda: _delivered(api, vendor, 1), timeout=30)
    log = listed["attempt_log"]
    assert [(a["status_code"], a["error"]) for a in log] == [(None, "timeout"), (200, None)]
    assert len(endpoint.received) == 1  # the timed-out attempt sent nothing
    assert log[0]["latency_ms"] < 1_900


async def test_deliveries_to_a_url_in_flight_together_wait_for_one_check_of_it(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A resolver that hangs for one recipient holds one check, not a thread per delivery (the
    threads that claim and record deliveries for everyone else would run out)."""
    resolve, hanging, released = url_vetting._resolve, threading.Event(), threading.Event()
    lookups: list[str] = []

    def hangs_until_released(host: str, port: int | None):
        if host == "stuck.gallring.test" and hanging.is_set():
            lookups.append(host)
            released.wait(timeout=30)
        return resolve("127.0.0.1" if host == "stuck.gallring.test" else host, port)

    monkeypatch.setattr(url_vetting, "_resolve", hangs_until_released)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver, host="stuck.gallring.test")
        hanging.set()
        for _ in range(4):  # as many as the notifier sends to one recipient at once
            subject = Subject()
            await disclose(api, subject, vendor)
            await announce_erasure(kafka_settings, subject)
        await eventually(lambda: lookups)
        await asyncio.sleep(1.5)  # the attempts time out and are tried again meanwhile
        assert lookups == ["stuck.gallring.test"]
        released.set()
        await eventually(lambda: _delivered(api, vendor, 4), timeout=30)


async def test_a_webhook_name_repointed_at_a_metadata_address_is_refused_before_sending(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve, repointed = url_vetting._resolve, threading.Event()

    def rebinding(host: str, port: int | None):
        if host != "rebind.gallring.test":
            return resolve(host, port)
        return resolve("169.254.169.254" if repointed.is_set() else "127.0.0.1", port)

    monkeypatch.setattr(url_vetting, "_resolve", rebinding)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver, host="rebind.gallring.test")
        repointed.set()  # after the check at registration
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)

        attempt = await _first_attempt_then_deactivate(api, vendor)
    assert attempt["status_code"] is None
    assert attempt["error"].startswith("webhook URL refused:")
    assert "169.254.169.254" in attempt["error"]
    assert not receiver.endpoints[vendor].received


async def test_a_delivery_connects_to_no_address_but_the_checked_ones_even_for_a_literal_ip(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The HTTP client does not resolve an address written in the URL; the connection itself
    must still go only where the check allowed (here the check vetted another address)."""
    resolve = url_vetting._resolve

    def elsewhere(host: str, port: int | None):
        return resolve("127.0.0.2" if host == "127.0.0.1" else host, port)

    monkeypatch.setattr(url_vetting, "_resolve", elsewhere)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)

        attempt = await _first_attempt_then_deactivate(api, vendor)
    assert (attempt["status_code"], attempt["error"]) == (None, "connection failed")
    assert not receiver.endpoints[vendor].received


async def test_an_address_that_refuses_the_connection_is_passed_over_for_the_next(
    api: RunningApi,
    migrated_url: str,
    kafka_settings: KafkaSettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolve = url_vetting._resolve

    def dead_address_first(host: str, port: int | None):
        if host == "two.gallring.test":  # 127.0.0.2 is loopback, but nobody listens there
            return resolve("127.0.0.2", port) + resolve("127.0.0.1", port)
        return resolve(host, port)

    monkeypatch.setattr(url_vetting, "_resolve", dead_address_first)
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver, host="two.gallring.test")
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: endpoint.acted_on)
        [listed] = await notifications_of(api, vendor)
        shown = await notification(api, listed["notification_id"])
    assert [a["status_code"] for a in shown["attempt_log"]] == [200]  # in the first attempt


async def test_a_stopping_notifier_gives_back_at_once_what_it_claimed_but_never_sent(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """A notifier claims more than it can send at once, to keep its slots busy. Stopped, it
    gives back what it never sent, for the next notifier to send now, not when leases lapse."""
    db = make_engine(migrated_url)

    def leases() -> dict[str, datetime | None]:
        return _leases(db, vendor)

    async with webhook_receiver() as receiver:
        vendor = await register(api, receiver)
        endpoint = receiver.endpoints[vendor]
        endpoint.script = [HANG, HANG]  # the first two hold both of the vendor's slots
        async with running_notifier(
            migrated_url,
            kafka_settings,
            notifier_recipient_concurrency=2,
            notifier_timeout_seconds=30.0,  # leases of 70 s
        ):
            for _ in range(4):
                subject = Subject()
                await disclose(api, subject, vendor)
                await announce_erasure(kafka_settings, subject)
            # Two in flight, two claimed and waiting.
            await eventually(lambda: len(endpoint.received) == 2)
            await eventually(lambda: len(leases()) == 4 and None not in leases().values())
        hung = {received.webhook_id for received in endpoint.received}
        async with running_notifier(migrated_url, kafka_settings):
            await eventually(lambda: len(endpoint.acted_on) == 2, timeout=15)
            assert set(endpoint.acted_on) == set(leases()) - hung
            # The two cut off in flight may have reached the receiver: theirs lapse.
            assert all(leases()[webhook_id] is not None for webhook_id in hung)
    db.dispose()


async def test_a_recipient_deactivated_while_its_notifications_wait_is_sent_no_more(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """A notifier claims ahead; what it claimed for a recipient deactivated since is not sent."""
    async with _one_sent_one_waiting(api, migrated_url, kafka_settings) as (receiver, vendor, db):
        endpoint = receiver.endpoints[vendor]
        [waiting] = set(_leases(db, vendor)) - {endpoint.received[0].webhook_id}
        stopped = await api.client.patch(
            f"/v1/recipients/{vendor}", json={"active": False}, headers=api.key(Scope.ADMIN)
        )
        assert stopped.status_code == 200, stopped.text
        await eventually(lambda: _leases(db, vendor)[waiting] is None)  # given back
        await asyncio.sleep(4.5)  # the first attempt times out; its slot is free
        assert len(endpoint.received) == 1


async def test_a_recipient_that_moves_its_webhook_while_notifications_wait_gets_them_there(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """What was claimed ahead for the old URL goes to the new one."""
    async with _one_sent_one_waiting(api, migrated_url, kafka_settings) as (receiver, vendor, _):
        old = receiver.endpoints[vendor]
        moved = await api.client.patch(
            f"/v1/recipients/{vendor}",
            json={"webhook_url": receiver.url("moved")},
            headers=api.key(Scope.ADMIN),
        )
        assert moved.status_code == 200, moved.text
        new = receiver.endpoints["moved"]
        new.secret = old.secret
        await eventually(lambda: len(new.acted_on) == 2, timeout=15)  # the hung one retried
        assert len(old.received) == 1


@contextlib.asynccontextmanager
async def _one_sent_one_waiting(
    api: RunningApi, database_url: str, kafka_settings: KafkaSettings
) -> AsyncIterator[tuple[WebhookReceiver, str, Engine]]:
    """A running notifier and a new recipient with one slot: its first notification hangs in
    the slot for 3 s, the second is claimed and waits for it. Yields the receiver, the
    recipient's id and an engine on the database."""
    db = make_engine(database_url)
    try:
        async with webhook_receiver() as receiver:
            vendor = await register(api, receiver)
            receiver.endpoints[vendor].script = [HANG]
            async with running_notifier(
                database_url,
                kafka_settings,
                notifier_recipient_concurrency=1,
                notifier_timeout_seconds=3.0,
            ):
                for _ in range(2):
                    subject = Subject()
                    await disclose(api, subject, vendor)
                    await announce_erasure(kafka_settings, subject)
                await eventually(lambda: len(receiver.endpoints[vendor].received) == 1)
                await eventually(lambda: len(_leases(db, vendor)) == 2)
                await eventually(lambda: None not in _leases(db, vendor).values())
                yield receiver, vendor, db
    finally:
        db.dispose()


def _leases(db: Engine, recipient_id: str) -> dict[str, datetime | None]:
    """Each of the recipient's notifications, by id, and its lease (None: not claimed)."""
    with db.connect() as connection:
        rows = connection.execute(
            select(Notification.notification_id, Notification.lease_until).where(
                Notification.recipient_id == recipient_id
            )
        ).all()
    return {str(notification_id): lease for notification_id, lease in rows}


async def test_a_tampered_or_stale_delivery_does_not_verify(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    """The receiver (the standardwebhooks library) takes the notifier's delivery as sent, and
    refuses it altered or signed an hour ago."""
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: endpoint.acted_on)
        delivered = endpoint.received[0]
        signature = {k: v for k, v in delivered.headers.items() if k.startswith("webhook-")}
        body = delivered.body.decode()
        an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
        stale = signed_headers(delivered.webhook_id, body, [Webhook(endpoint.secret)], an_hour_ago)
        tampered = delivered.body.replace(b'"collection_case"', b'"marketing"')
        assert tampered != delivered.body
        async with httpx.AsyncClient() as client:
            url = receiver.url(vendor)
            answers = [
                (await client.post(url, content=content, headers=headers)).status_code
                for content, headers in (
                    (tampered, signature),
                    (delivered.body, stale),
                    (delivered.body, signature),  # as sent
                )
            ]
    assert answers == [401, 401, 200]
    assert endpoint.rejected == 2


async def test_a_flaky_receiver_gets_each_notification_in_the_end_with_every_attempt_logged(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        endpoint = receiver.endpoints[vendor]
        endpoint.script = [500, (429, {"Retry-After": "1"}), HANG, 503]
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)
        [listed] = await eventually(lambda: _delivered(api, vendor, 1), timeout=30)
        shown = await notification(api, listed["notification_id"])
    assert shown["state"] == "delivered"
    log = shown["attempt_log"]
    assert [a["status_code"] for a in log] == [500, 429, None, 503, 200]
    assert log[2]["error"] == "timeout"
    after_429 = datetime.fromisoformat(log[2]["attempted_at"]) - datetime.fromisoformat(
        log[1]["attempted_at"]
    )
    assert after_429 >= timedelta(seconds=0.95)  # Retry-After: 1 honoured
    assert len(endpoint.acted_on) == 1
    assert {r.webhook_id for r in endpoint.received} == {listed["notification_id"]}
    stamps = [int(r.headers["webhook-timestamp"]) for r in endpoint.received]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # each try signed when sent


async def test_a_receiver_down_for_a_while_is_marked_failing_then_catches_up(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with webhook_receiver() as receiver, running_notifier(migrated_url, kafka_settings):
        vendor = await register(api, receiver)
        await receiver.stop()
        subjects = [Subject() for _ in range(3)]
        for subject in subjects:
            await disclose(api, subject, vendor)
            await announce_erasure(kafka_settings, subject)

        async def failing() -> bool:
            response = await api.client.get(
                f"/v1/recipients/{vendor}", headers=api.key(Scope.ADMIN)
            )
            health = response.json()["health"]
            return health is not None and health["failing"]

        async def each_tried() -> bool:
            """Every notification attempted while the receiver is down: on a slow machine the
            recipient can be failing from one notification's retries before the others exist."""
            response = await api.client.get(
                "/v1/notifications",
                params={"recipient_id": vendor},
                headers=api.key(Scope.ERASURES_READ),
            )
            shown = response.json()["notifications"]
            return len(shown) == 3 and all(n["attempt_log"] for n in shown)

        await eventually(failing)
        await eventually(each_tried)
        await receiver.start()
        endpoint = receiver.endpoints[vendor]
        await eventually(lambda: _delivered(api, vendor, 3))
        await eventually(lambda: _not(failing))
        assert len(endpoint.acted_on) == 3

        # The list shows each notification's attempts; one page at a time here.
        listed, cursor = [], None
        while True:
            params = {"recipient_id": vendor, "state": "delivered", "limit": 2}
            response = await api.client.get(
                "/v1/notifications",
                params={**params, **({"cursor": cursor} if cursor else {})},
                headers=api.key(Scope.ERASURES_READ),
            )
            assert response.status_code == 200, response.text
            listed += response.json()["notifications"]
            cursor = response.json()["next_cursor"]
            if cursor is None:
                break
    assert len({n["notification_id"] for n in listed}) == 3
    for shown in listed:
        errors = [attempt["error"] for attempt in shown["attempt_log"]]
        assert errors[0] == "connection failed" and errors[-1] is None
        assert (
            shown["attempt_log"]
            == (await notification(api, shown["notification_id"]))["attempt_log"]
        )


async def test_past_its_horizon_a_notification_fails_and_an_admin_redelivers_it(
    api: RunningApi, migrated_url: str, kafka_settings: KafkaSettings
) -> None:
    async with (
        webhook_receiver() as receiver,
        running_notifier(migrated_url, kafka_settings, notifier_retry_horizon_seconds=1.0),
    ):
        vendor = await register(api, receiver)
        endpoint = receiver.endpoints[vendor]
        endpoint.script = [500] * 1000
        subject = Subject()
        await disclose(api, subject, vendor)
        await announce_erasure(kafka_settings, subject)

        async def failed() -> list:
            return [n for n in await notifications_of(api, vendor) if n["state"] == "failed"]

        [gone] = await eventually(failed)
        notification_id = gone["notification_id"]
        assert gone["failed_at"] is not None
        denied = await api.client.post(
            f"/v1/notifications/{notification_id}/redeliver",
            headers=api.key(Scope.ERASURES_READ),
        )
        assert denied.status_code == 403

        endpoint.script = []
        response = await api.client.post(
            f"/v1/notifications/{notification_id}/redeliver", headers=api.key(Scope.ADMIN)
        )
        assert response.status_code == 202, response.text
        await eventually(lambda: endpoint.acted_on)
        shown = await eventually(lambda: _in_state(api, notification_id, "delivered"))
        assert shown["attempt_log"][-1]["status_code"] == 200
        again = await api.client.post(
            f"/v1/notifications/{notification_id}/redeliver", headers=api.key(Scope.ADMIN)
        )
        assert again.status_code == 409


async def _if_confirmed(api: RunningApi, notification_id: str):
    shown = await notification(api, notification_id)
    return shown if shown["confirmed_at"] else None


async def _first_attempt_then_deactivate(api: RunningApi, recipient_id: str) -> dict:
    """The first attempt to the recipient, once there is one; the recipient is then deactivated
    so that no later test's notifier tries again."""

    async def attempted() -> list:
        listed = await notifications_of(api, recipient_id)
        return listed[0]["attempt_log"] if listed else []

    [attempt, *_] = await eventually(attempted)
    stopped = await api.client.patch(
        f"/v1/recipients/{recipient_id}", json={"active": False}, headers=api.key(Scope.ADMIN)
    )
    assert stopped.status_code == 200, stopped.text
    return attempt


async def _delivered(api: RunningApi, recipient_id: str, count: int) -> list | None:
    """The recipient's notifications once ``count`` of them are recorded as delivered."""
    listed = await notifications_of(api, recipient_id)
    delivered = [n for n in listed if n["state"] == "delivered"]
    return listed if len(delivered) == count else None


async def _in_state(api: RunningApi, notification_id: str, state: str):
    shown = await notification(api, notification_id)
    return shown if shown["state"] == state else None


async def _not(check) -> bool:
    return not await check()
