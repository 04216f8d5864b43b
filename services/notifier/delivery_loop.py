"""The delivery loop: claim due notifications, POST each, signed, to its recipient, and record
what came back, batch by batch.

Deliveries run concurrently up to ``notifier_concurrency``, and at most
``notifier_recipient_concurrency`` to one recipient, so a slow vendor holds only its own slots.
A round claims up to as many again as can run, kept ready in the order they fell due: a
finished delivery's slot takes the next ready one at once, while the database records and claims
in the background. A stopping notifier gives back what it claimed and never sent.
No redirect is followed, and every webhook URL is checked again (it may have been repointed at a
metadata address since it was registered); the request goes to an address that was checked.

Deliveries are posted with aiohttp: on this path it costs a fifth of httpx's CPU per request
(bench/notifier_bench.py prints both bare loops).
"""

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections import Counter, defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import aiohttp
from sqlalchemy import Engine
from standardwebhooks import Webhook

from services.notifier import awaiting, delivery_store
from services.notifier.checked_addresses import CheckedResolver, checked_socket_factory
from services.notifier.delivery_store import Claimed, Outcome
from services.notifier.metrics import NotifierMetrics
from services.notifier.settings import NotifierSettings
from services.notifier.webhook import notification_body, signed_headers
from shared.webhooks.signing_secrets import SecretBox
from shared.webhooks.url_vetting import UnsafeWebhookUrl, check_webhook_url

log = logging.getLogger(__name__)
URL_CHECK_SECONDS = 60.0
URL_CHECK_THREADS = 16  # webhook URLs checked at once: threads that mostly wait on DNS
HOUSEKEEPING_SECONDS = 10.0
DB_RETRY_SECONDS = 1.0
STOP_GRACE_SECONDS = 5.0
IDLE_CLIENT_SECONDS = 600.0
ROUND_SIZE = 16  # finished deliveries that make the next round start at once
LEASE_MARGIN_SECONDS = 5.0  # left of a lease after an attempt's timeout, to record it
ANSWER_BYTES_READ = 64 * 1024  # of a receiver's answer, read to reuse the connection
ANSWER_READ_SECONDS = 1.0
USER_AGENT = "Gallring-Notifier"
_Checked = tuple[float, str | None, list[str]]  # a webhook URL's check: when, refusal, addresses


class DeliveryLoop:
    def __init__(self, db: Engine, settings: NotifierSettings, metrics: NotifierMetrics) -> None:
        self._db = db
        self._settings = settings
        self._metrics = metrics
        self._box: SecretBox = settings.secret_box()
        self._signers: dict[str, Webhook] = {}  # sealed secret -> signer
        # url -> (when checked, refusal, addresses to send to)
        self._url_checked: dict[str, _Checked] = {}
        self._url_checks: dict[str, asyncio.Future[_Checked]] = {}  # in progress
        self._url_checkers = ThreadPoolExecutor(URL_CHECK_THREADS, "webhook-url-check")
        self._in_flight: dict[str, int] = defaultdict(int)
        self._ready: deque[Claimed] = deque()  # claimed, waiting for a slot, in due order
        self._ready_by_recipient: Counter[str] = Counter()
        self._unsent: list[Claimed] = []  # claimed, but too late to send: to give back
        self._more_due: set[str] = set()  # recipients the last claim gave all they could take
        self._tasks: set[asyncio.Task[None]] = set()
        self._clients: dict[tuple[str, str], aiohttp.ClientSession] = {}
        self._client_used: dict[tuple[str, str], float] = {}  # when each pool last got work
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
                self._ready.extend(claimed)
                if not self._stopping.is_set():
                    self._dispatch()
                # The next round comes when enough deliveries have finished (one claim and one
                # record per round, not per delivery), when new ones are due, or after a while.
                await self._pause(settings.notifier_poll_interval_seconds)
            # Stopping: deliveries in flight get a grace period, then are cut off (their leases
            # lapse and another notifier sends them again); what finished is recorded.
            if self._tasks:
                _, cut_off = await asyncio.wait(self._tasks, timeout=STOP_GRACE_SECONDS)
                for task in cut_off:
                    task.cancel()
                await asyncio.gather(*cut_off, return_exceptions=True)
            with contextlib.suppress(Exception):
                await self._record_outcomes()
            self._unsent += self._ready
            self._ready.clear()
            self._ready_by_recipient.clear()
            with contextlib.suppress(Exception):  # else their leases lapse
                await self._give_back()
        finally:
            for client in self._clients.values():
                await client.close()
            # Checks not started are dropped; one stuck in the resolver ends when it gives up.
            self._url_checkers.shutdown(wait=False, cancel_futures=True)

    def _client(self, recipient_id: str, url: str) -> aiohttp.ClientSession:
        """One connection pool per recipient and URL, as large as its concurrency: recipients
        do not share connections, nor does a URL a recipient had before (its connections went
        to the addresses checked for the old name). New connections go only to the addresses
        the URL's latest check vetted."""
        key = (recipient_id, url)
        self._client_used[key] = time.monotonic()
        client = self._clients.get(key)
        if client is None:
            timeout = self._settings.notifier_timeout_seconds
            client = self._clients[key] = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(
                    limit=self._settings.notifier_recipient_concurrency,
                    resolver=CheckedResolver(lambda: self._checked_addresses(url)),
                    socket_factory=checked_socket_factory(lambda: self._checked_addresses(url)),
                    use_dns_cache=False,
                ),
                # Connecting gets a third of the time, so another address can still be tried.
                timeout=aiohttp.ClientTimeout(sock_connect=timeout / 3, sock_read=timeout),
                headers={"user-agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),  # a receiver's cookies are not sent back
                trust_env=False,  # no proxy from the environment between the check and the host
            )
        return client

    def _checked_addresses(self, url: str) -> list[str]:
        checked = self._url_checked.get(url)
        return checked[2] if checked else []

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _claim(self) -> list[Claimed]:
        """Claim what can run now and as much again to keep ready, within each limit; note
        the recipients that got all they could take (more of theirs may be due). Ready ones
        whose recipient was deactivated, or whose URL or secret changed since, are given back
        (claimed again, they carry the change)."""
        settings = self._settings
        free = 2 * settings.notifier_concurrency - len(self._tasks) - len(self._ready)
        per_recipient = 2 * settings.notifier_recipient_concurrency
        held = self._ready_by_recipient + Counter(self._in_flight)
        free_slots = {r: per_recipient - n for r, n in held.items()}
        waiting = set(self._ready_by_recipient)
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
        if waiting:
            self._give_back_changed(waiting, current)
        if free <= 0:
            return []
        got = Counter(notification.recipient_id for notification in claimed)
        self._ready_by_recipient.update(got)
        self._more_due = {r for r, n in got.items() if n >= free_slots.get(r, per_recipient)}
        return claimed

    def _give_back_changed(self, rechecked: set[str], current: dict[str, tuple[str, str]]) -> None:
        """Move ready claims of ``rechecked`` recipients that no longer match ``current`` to
        the unsent, and start a round to give them back (and claim them again, changed)."""
        kept: deque[Claimed] = deque()
        for notification in self._ready:
            recipient_id = notification.recipient_id
            if recipient_id not in rechecked or current.get(recipient_id) == (
                notification.webhook_url,
                notification.secret,
            ):
                kept.append(notification)
            else:
                self._forget_ready(recipient_id)
                self._unsent.append(notification)
        if len(kept) < len(self._ready):
            self._wake.set()
        self._ready = kept

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
        if self._unsent:
            await asyncio.to_thread(delivery_store.give_back, self._db, self._unsent)
            self._unsent = []

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
        # Pools of URLs no longer delivered to (a recipient moved, or went): far longer unused
        # than any delivery can take, so nothing is in flight on them.
        idle_after = max(IDLE_CLIENT_SECONDS, 2 * self._settings.notifier_lease_seconds)
        for key, used in list(self._client_used.items()):
            if time.monotonic() - used > idle_after:
                del self._client_used[key]
                await self._clients.pop(key).close()

    def _dispatch(self) -> None:
        """Start ready deliveries in the free slots, in the order they fell due, passing over
        those whose recipient has no free slot. One whose lease would run out before its
        attempt could end and be recorded is given back instead."""
        settings = self._settings
        if not self._ready or len(self._tasks) >= settings.notifier_concurrency:
            return
        per_recipient = settings.notifier_recipient_concurrency
        send_by = datetime.now(UTC) + timedelta(
            seconds=settings.notifier_timeout_seconds + LEASE_MARGIN_SECONDS
        )
        passed_over: deque[Claimed] = deque()
        try:
            while self._ready and len(self._tasks) < settings.notifier_concurrency:
                notification = self._ready.popleft()
                if self._in_flight.get(notification.recipient_id, 0) >= per_recipient:
                    passed_over.append(notification)
                    continue
                self._forget_ready(notification.recipient_id)
                if notification.lease_until > send_by:
                    self._start(notification)
                else:
                    self._unsent.append(notification)
        finally:
            if passed_over:
                passed_over.extend(self._ready)
                self._ready = passed_over

    def _forget_ready(self, recipient_id: str) -> None:
        if left := self._ready_by_recipient[recipient_id] - 1:
            self._ready_by_recipient[recipient_id] = left
        else:
            del self._ready_by_recipient[recipient_id]

    def _start(self, notification: Claimed) -> None:
        self._in_flight[notification.recipient_id] += 1
        client = self._client(notification.recipient_id, notification.webhook_url)
        task = asyncio.create_task(self._deliver(client, notification))
        self._tasks.add(task)
        task.add_done_callback(lambda done: self._finished(done, notification))

    def _finished(self, task: asyncio.Task[None], notification: Claimed) -> None:
        self._tasks.discard(task)
        self._in_flight[notification.recipient_id] -= 1
        if not self._in_flight[notification.recipient_id]:
            del self._in_flight[notification.recipient_id]
        if not self._stopping.is_set():
            self._dispatch()
        # Enough for a round: a round's worth, or as many as are still running, or a recipient
        # with more due has a free slot and nothing ready for it (slow recipients' deliveries
        # in flight must not hold up the rounds of quick ones).
        recipient_id = notification.recipient_id
        if len(self._outcomes) >= min(ROUND_SIZE, max(1, len(self._tasks))) or (
            recipient_id in self._more_due and recipient_id not in self._ready_by_recipient
        ):
            self._wake.set()

    async def _deliver(self, client: aiohttp.ClientSession, notification: Claimed) -> None:
        now = datetime.now(UTC)
        started = time.perf_counter()
        try:
            # The whole attempt within the timeout, the URL's check (a name to resolve) included:
            # the attempt must end well inside the claim's lease.
            async with asyncio.timeout(self._settings.notifier_timeout_seconds):
                refusal = await self._vetted(notification.webhook_url)
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
        body = self._body(notification, now)
        signers = self._signers_of(notification, now)
        headers = signed_headers(str(notification.notification_id), body, signers, now)
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

    def _body(self, notification: Claimed, now: datetime) -> str:
        return notification_body(
            notification_type=notification.type,
            notification_id=notification.notification_id,
            erasure_id=notification.erasure_id,
            event_id=notification.event_id,
            category=notification.category,
            scope=json.loads(notification.scope),
            recipient_ref=notification.recipient_ref,
            legal_basis=notification.legal_basis,
            respond_by=notification.respond_by,
            public_api_url=self._settings.notifier_public_api_url,
            now=now,
        )

    def _signers_of(self, notification: Claimed, now: datetime) -> list[Webhook]:
        sealed = [notification.secret]
        expires = notification.previous_secret_expires_at
        if notification.previous_secret and expires is not None and expires > now:
            sealed.append(notification.previous_secret)
        signers = []
        for secret in sealed:
            if secret not in self._signers:
                self._signers[secret] = Webhook(self._box.open(secret))
            signers.append(self._signers[secret])
        return signers

    async def _vetted(self, url: str) -> str | None:
        """Why the URL may not be used, or None; checked again after ``URL_CHECK_SECONDS``.
        The addresses the check vetted are then the only ones the URL's connections go to.

        Deliveries to a URL in flight together wait for one check, and checks have threads of
        their own: a resolver that hangs holds one thread per URL, never the threads that claim
        and record deliveries."""
        checked = self._url_checked.get(url)
        if checked is None or time.monotonic() - checked[0] > URL_CHECK_SECONDS:
            check = self._url_checks.get(url)
            if check is None:
                check = self._url_checks[url] = asyncio.ensure_future(self._check(url))
                check.add_done_callback(lambda done: self._forget_check(url, done))
            checked = await asyncio.shield(check)  # a caller timed out: the check goes on
        return checked[1]

    def _forget_check(self, url: str, done: asyncio.Future[_Checked]) -> None:
        if self._url_checks.get(url) is done:
            del self._url_checks[url]

    async def _check(self, url: str) -> _Checked:
        refusal, addresses = None, []
        try:
            addresses = await asyncio.get_running_loop().run_in_executor(
                self._url_checkers,
                functools.partial(
                    check_webhook_url, url, allow_loopback=self._settings.webhook_allow_loopback
                ),
            )
        except UnsafeWebhookUrl as error:
            refusal = str(error)
        checked = self._url_checked[url] = (time.monotonic(), refusal, addresses)
        return checked


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
