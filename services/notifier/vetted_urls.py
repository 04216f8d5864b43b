"""Webhook URLs vetted again before deliveries use them, and the addresses each check vetted.

A URL was vetted when it was registered, but its name may since have been repointed (at a
metadata address, say): before a delivery, the notifier checks it again once its last check is
``URL_CHECK_SECONDS`` old, and its connections go only to the addresses that check vetted
(checked_addresses.py).
"""

import asyncio
import functools
import time
from concurrent.futures import ThreadPoolExecutor

from services.notifier.settings import NotifierSettings
from shared.webhooks.url_vetting import UnsafeWebhookUrl, check_webhook_url

URL_CHECK_SECONDS = 60.0
URL_CHECK_THREADS = 16  # webhook URLs checked at once: threads that mostly wait on DNS
_Checked = tuple[float, str | None, list[str]]  # a webhook URL's check: when, refusal, addresses


class VettedUrls:
    """Each webhook URL's latest check: whether it may be used, and the addresses to send to."""

    def __init__(self, settings: NotifierSettings) -> None:
        self._settings = settings
        # url -> (when checked, refusal, addresses to send to)
        self._checked: dict[str, _Checked] = {}
        self._checks: dict[str, asyncio.Future[_Checked]] = {}  # in progress
        self._checkers = ThreadPoolExecutor(URL_CHECK_THREADS, "webhook-url-check")

    async def refusal(self, url: str) -> str | None:
        """Why the URL may not be used, or None; checked again after ``URL_CHECK_SECONDS``.
        The addresses the check vetted are then the only ones the URL's connections go to.

        Deliveries to a URL in flight together wait for one check, and checks have threads of
        their own: a resolver that hangs holds one thread per URL, never the threads that claim
        and record deliveries."""
        checked = self._checked.get(url)
        if checked is None or time.monotonic() - checked[0] > URL_CHECK_SECONDS:
            check = self._checks.get(url)
            if check is None:
                check = self._checks[url] = asyncio.ensure_future(self._check(url))
                check.add_done_callback(lambda done: self._forget_check(url, done))
            checked = await asyncio.shield(check)  # a caller timed out: the check goes on
        return checked[1]

    def addresses(self, url: str) -> list[str]:
        """The addresses the URL's latest check vetted; none before its first check."""
        checked = self._checked.get(url)
        return checked[2] if checked else []

    def close(self) -> None:
        """Checks not started are dropped; one stuck in the resolver ends when it gives up."""
        self._checkers.shutdown(wait=False, cancel_futures=True)

    def _forget_check(self, url: str, done: asyncio.Future[_Checked]) -> None:
        if self._checks.get(url) is done:
            del self._checks[url]

    async def _check(self, url: str) -> _Checked:
        refusal, addresses = None, []
        try:
            addresses = await asyncio.get_running_loop().run_in_executor(
                self._checkers,
                functools.partial(
                    check_webhook_url, url, allow_loopback=self._settings.webhook_allow_loopback
                ),
            )
        except UnsafeWebhookUrl as error:
            refusal = str(error)
        checked = self._checked[url] = (time.monotonic(), refusal, addresses)
        return checked
