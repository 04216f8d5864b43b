"""The delivery loop: claim due notifications, POST each, signed, to its recipient, and record
what came back, batch by batch.

A round claims up to as many again as can run (delivery_slots.py: the concurrency limits, and
the ready claims in the order they fell due): a finished delivery's slot takes the next ready one
at once, while the database records and claims in the background. A stopping notifier gives back
what it claimed and never sent.
No redirect is followed, and every webhook URL is checked again (it may have been repointed at a
metadata address since it was registered; vetted_urls.py); the request goes to an address that
was checked, through a connection pool per recipient and URL (webhook_clients.py), signed with
the recipient's secrets (signing.py).

Deliveries are posted with aiohttp: on this path it costs a fifth of httpx's CPU per request
(bench/notifier_bench.py prints both bare loops).
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import Engine

from services.notifier import awaiting, delivery_store
from services.notifier.delivery_slots import DeliverySlots
from services.notifier.delivery_store import Claimed, Outcome
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from services.notifier.signing import NotificationSigner
from services.notifier.vetted_urls import VettedUrls
from services.notifier.webhook_clients import WebhookClients

log = logging.getLogger(__name__)
HOUSEKEEPING_SECONDS = 10.0
DB_RETRY_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
ROUND_SIZE = 16  # finished deliveries that make the next round start at once
ANSWER_BYTES_READ = 64 * 1024  # of a receiver's answer, read to reuse the connection
ANSWER_READ_SECONDS = 1.0


class DeliveryLoop:
    """Rounds of claim, start, record; housekeeping every ``HOUSEKEEPING_SECONDS``; and at a
    stop, what was claimed and never sent given back."""

    def __init__(self, db: Engine, settings: NotifierSettings, metrics: NotifierMetrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._signer = NotificationSigner(settings)
        self._vetted_urls = VettedUrls(settings)
        self._clients = WebhookClients(settings, self._vetted_urls.addresses)
        self._slots = DeliverySlots(settings, start=self._start, finished=self._finished)
        self._more_due: set[str] = set()  # recipients the last claim gave all they could take
        self._outcomes: list[Outcome] = []
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._last_housekeeping = 0.0

    def wake(self) -> None:
        """Look for due notifications now (new ones were just created)."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        settings = self._settings
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self._housekeep()
                    await self._record_outcomes()
                    await self._give_back()
                    claimed = await self._claim()
                except Exception as error:  # noqa: BLE001 - the database may be back next time
                    log.warning(
                        "notifier: a delivery round failed (%s); trying again in %.0fs",
                        type(error).__name__,
                        DB_RETRY_SECONDS,
                    )
                    await self._pause(DB_RETRY_SECONDS)
                    continue
                self._slots.add(claimed)
                if not self._stopping.is_set():
                    self._slots.dispatch()
                # The next round comes when enough deliveries have finished (one claim and one
                # record per round, not per delivery), when new ones are due, or after a while.
                await self._pause(settings.notifier_poll_interval_seconds)
            # Stopping: deliveries in flight get a grace period, then are cut off (their leases
            # lapse and another notifier sends them again); what finished is recorded.
            if self._slots.running:
                _, cut_off = await asyncio.wait(self._slots.running, timeout=STOP_GRACE_SECONDS)
                for task in cut_off:
                    task.cancel()
                await asyncio.gather(*cut_off, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._record_outcomes()
            self._slots.drop_ready()
            with contextlib.suppress(Exception):  # else their leases lapse
                await self._give_back()
        finally:
            await self._clients.close()
            self._vetted_urls.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim(self) -> list[Claimed]:
        """Claim what can run now and as much again to keep ready, within each limit; note
        the recipients that got all they could take (more of theirs may be due). Ready ones
        whose recipient was deactivated, or whose URL or secret changed since, are given back
        (claimed again, they carry the change)."""
        settings = self._settings
        free, free_slots, per_recipient = self._slots.to_claim()
        waiting = self._slots.waiting()
        if free <= 0 and not waiting:
            return []

        def claim_and_recheck() -> tuple[list[Claimed], dict[str, tuple[str, str]]]:
            claimed = []
            if free > 0:
                claimed = delivery_store.claim(
                    self._db,
                    limit=free,
                    free_slots=free_slots,
                    default_slots=per_recipient,
                    lease=timedelta(seconds=settings.notifier_lease_seconds),
                    now=datetime.now(UTC),
                )
            current = delivery_store.current_senders(self._db, waiting) if waiting else {}
            return claimed, current

        claimed, current = await asyncio.to_thread(claim_and_recheck)
        if waiting and self._slots.drop_changed(waiting, current):
            self._wake.set()  # a round to give them back
        if free <= 0:
            return []
        got = Counter(notification.recipient_id for notification in claimed)
        self._more_due = {r for r, n in got.items() if n >= free_slots.get(r, per_recipient)}
        return claimed

    async def _record_outcomes(self) -> None:
        """Write the outcomes gathered since the last round in one transaction."""
        if not self._outcomes:
            return
        outcomes, self._outcomes = self._outcomes, []
        try:
            gave_up = await asyncio.to_thread(
                delivery_store.record, self._db, outcomes, self._settings, datetime.now(UTC)
            )
        except Exception:
            self._outcomes = outcomes + self._outcomes  # kept for the next round
            raise
        self._metrics.gave_up.inc(gave_up)

    async def _give_back(self) -> None:
        if self._slots.unsent:
            # Taken before the thread runs: a claim set aside meanwhile waits for the next call
            # rather than being forgotten (its lease would lapse first).
            unsent, self._slots.unsent = self._slots.unsent, []
            try:
                await asyncio.to_thread(delivery_store.give_back, self._db, unsent)
            except BaseException:
                self._slots.unsent[:0] = unsent  # given back at the next try
                raise

    async def _housekeep(self) -> None:
        if time.monotonic() - self._last_housekeeping < HOUSEKEEPING_SECONDS:
            return
        # First: what waits for an inactive recipient does not run out its horizon.
        await asyncio.to_thread(
            awaiting.hold_and_release, self._db, self._settings, datetime.now(UTC)
        )
        failed = await asyncio.to_thread(delivery_store.housekeep, self._db, datetime.now(UTC))
        self._last_housekeeping = time.monotonic()
        self._metrics.gave_up.inc(failed)
        await self._clients.close_idle()

    def _start(self, notification: Claimed) -> asyncio.Task[None]:
        client = self._clients.for_url(notification.recipient_id, notification.webhook_url)
        return asyncio.create_task(self._deliver(client, notification))

    def _finished(self, notification: Claimed) -> None:
        """A delivery ended and freed its slot: the next ready one takes it."""
        if not self._stopping.is_set():
            self._slots.dispatch()
        # Enough for a round: a round's worth, or as many as are still running, or a recipient
        # with more due has a free slot and nothing ready for it (slow recipients' deliveries
        # in flight must not hold up the rounds of quick ones).
        recipient_id = notification.recipient_id
        if len(self._outcomes) >= min(ROUND_SIZE, max(1, len(self._slots.running))) or (
            recipient_id in self._more_due and not self._slots.has_ready(recipient_id)
        ):
            self._wake.set()

    async def _deliver(self, client: aiohttp.ClientSession, notification: Claimed) -> None:
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            # The whole attempt within the timeout, the URL's check (a name to resolve) included:
            # the attempt must end well inside the claim's lease.
            async with asyncio.timeout(self._settings.notifier_timeout_seconds):
                refusal = await self._vetted_urls.refusal(notification.webhook_url)
                if refusal is None:
                    status_code, retry_after = await self._post(client, notification, now)
            if refusal is not None:
                outcome = Outcome(notification, now, 0, error=f"webhook URL refused: {refusal}")
            else:
                outcome = Outcome(
                    notification,
                    now,
                    _ms_since(started),
                    status_code=status_code,
                    retry_after=retry_after,
                )
        except Exception as error:  # noqa: BLE001 - every failure is an attempt to record
            outcome = Outcome(notification, now, _ms_since(started), error=_failure(error))
        result = "delivered" if outcome.delivered else "failed"
        self._metrics.deliveries.labels(outcome=result).inc()
        self._outcomes.append(outcome)

    async def _post(
        self, client: aiohttp.ClientSession, notification: Claimed, now: datetime
    ) -> tuple[int, str | None]:
        """POST the signed notification; ``(status code, Retry-After)`` of the answer. The
        connection pool tries the checked addresses in turn until one takes the connection."""
        body, headers = self._signer.signed(notification, now)
        async with client.post(
            notification.webhook_url, data=body.encode(), headers=headers, allow_redirects=False
        ) as response:
            # The status decides. A short answer is read so that the connection carries the next
            # delivery; an answer cut off, or slow to come, only costs the connection.
            if not response.content.at_eof():  # an empty answer (204) is read already
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with asyncio.timeout(ANSWER_READ_SECONDS):
                        read = 0
                        while read < ANSWER_BYTES_READ and (
                            chunk := await response.content.readany()
                        ):
                            read += len(chunk)
            return response.status, response.headers.get("retry-after")


def _failure(error: Exception) -> str:
    """What the attempt log says went wrong, in words rather than a client library's names."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, aiohttp.ClientSSLError):
        return "TLS handshake failed"
    if isinstance(error, aiohttp.ClientConnectorError):
        return "connection failed"
    if isinstance(error, aiohttp.ServerDisconnectedError):
        return "connection closed before the answer"
    return type(error).__name__


def _ms_since(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)
