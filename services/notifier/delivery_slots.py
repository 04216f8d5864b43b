"""Which claimed deliveries run, and when: the delivery loop's slots.

Deliveries run concurrently up to ``notifier_concurrency``, and at most
``notifier_recipient_concurrency`` to one recipient, so a slow vendor holds only its own slots.
Claimed deliveries wait ready in the order they fell due, and a finished delivery's slot takes
the next ready one at once, passing over those whose recipient has no free slot: the slots do
not wait for the database, which records and claims in rounds of its own (delivery_loop.py).
"""

import asyncio
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from services.notifier.delivery_store import Claimed
from services.notifier.settings import NotifierSettings

LEASE_MARGIN_SECONDS = 5.0  # left of a lease after an attempt's timeout, to record it


class DeliverySlots:
    """The deliveries running, and those claimed and ready to run, in the order they fell due.

    ``start`` starts a delivery as a task; ``finished`` is told of each that ended, once its
    slot is free. Claims not to be sent after all gather in ``unsent``, for the loop to give
    back."""

    def __init__(
        self,
        settings: NotifierSettings,
        start: Callable[[Claimed], asyncio.Task[None]],
        finished: Callable[[Claimed], None],
    ) -> None:
        self._settings = settings
        self._start_delivery = start
        self._tell_finished = finished
        self.running: set[asyncio.Task[None]] = set()
        self.unsent: list[Claimed] = []  # claimed, but too late to send: to give back
        self._in_flight: dict[str, int] = defaultdict(int)
        self._ready: deque[Claimed] = deque()  # claimed, waiting for a slot, in due order
        self._ready_by_recipient: Counter[str] = Counter()

    def to_claim(self) -> tuple[int, dict[str, int], int]:
        """How many to claim: what can run now and as much again to keep ready. In all; for
        each recipient with deliveries running or ready; and for any other recipient."""
        settings = self._settings
        free = 2 * settings.notifier_concurrency - len(self.running) - len(self._ready)
        per_recipient = 2 * settings.notifier_recipient_concurrency
        held = self._ready_by_recipient + Counter(self._in_flight)
        free_slots = {r: per_recipient - n for r, n in held.items()}
        return free, free_slots, per_recipient

    def waiting(self) -> set[str]:
        """The recipients with claims ready."""
        return set(self._ready_by_recipient)

    def has_ready(self, recipient_id: str) -> bool:
        return recipient_id in self._ready_by_recipient

    def add(self, claimed: list[Claimed]) -> None:
        """Claims to run when their turn comes (claimed in the order they fell due)."""
        self._ready_by_recipient.update(n.recipient_id for n in claimed)
        self._ready.extend(claimed)

    def drop_changed(self, rechecked: set[str], current: dict[str, tuple[str, str]]) -> bool:
        """Move ready claims of ``rechecked`` recipients whose webhook URL and secret are no
        longer ``current`` to the unsent (claimed again, they carry the change); whether any
        were."""
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
                self.unsent.append(notification)
        dropped = len(kept) < len(self._ready)
        self._ready = kept
        return dropped

    def drop_ready(self) -> None:
        """Move every ready claim to the unsent (the loop is stopping)."""
        self.unsent += self._ready
        self._ready.clear()
        self._ready_by_recipient.clear()

    def dispatch(self) -> None:
        """Start ready deliveries in the free slots, in the order they fell due, passing over
        those whose recipient has no free slot. One whose lease would run out before its
        attempt could end and be recorded goes to the unsent instead."""
        settings = self._settings
        if not self._ready or len(self.running) >= settings.notifier_concurrency:
            return
        per_recipient = settings.notifier_recipient_concurrency
        send_by = datetime.now(UTC) + timedelta(
            seconds=settings.notifier_timeout_seconds + LEASE_MARGIN_SECONDS
        )
        passed_over: deque[Claimed] = deque()
        try:
            while self._ready and len(self.running) < settings.notifier_concurrency:
                notification = self._ready.popleft()
                if self._in_flight.get(notification.recipient_id, 0) >= per_recipient:
                    passed_over.append(notification)
                    continue
                self._forget_ready(notification.recipient_id)
                if notification.lease_until > send_by:
                    self._start(notification)
                else:
                    self.unsent.append(notification)
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
        task = self._start_delivery(notification)
        self.running.add(task)
        task.add_done_callback(lambda done: self._finished(done, notification))

    def _finished(self, task: asyncio.Task[None], notification: Claimed) -> None:
        self.running.discard(task)
        self._in_flight[notification.recipient_id] -= 1
        if not self._in_flight[notification.recipient_id]:
            del self._in_flight[notification.recipient_id]
        self._tell_finished(notification)
