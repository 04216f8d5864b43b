"""The HTTP clients deliveries are posted with: one connection pool per recipient and webhook
URL, so that a slow vendor holds only its own connections, and connections made for a URL's old
name never carry a delivery to its new one.

Each pool connects only to the addresses the URL's latest check vetted (vetted_urls.py,
checked_addresses.py), follows no proxy from the environment and keeps no cookies. A pool
unused far longer than any delivery takes (its recipient moved, or went) is closed.
"""

import time
from collections.abc import Callable

import aiohttp

from services.notifier.checked_addresses import CheckedResolver, checked_socket_factory
from services.notifier.settings import NotifierSettings

IDLE_CLIENT_SECONDS = 600.0
USER_AGENT = "Gallring-Notifier"


class WebhookClients:
    """The connection pools of the webhook URLs deliveries go to, by recipient and URL."""

    def __init__(
        self, settings: NotifierSettings, checked_addresses: Callable[[str], list[str]]
    ) -> None:
        self._settings = settings
        self._checked_addresses = checked_addresses  # a URL's vetted addresses, at each connection
        self._clients: dict[tuple[str, str], aiohttp.ClientSession] = {}
        self._used: dict[tuple[str, str], float] = {}  # when each pool last got work

    def for_url(self, recipient_id: str, url: str) -> aiohttp.ClientSession:
        """One connection pool per recipient and URL, as large as its concurrency: recipients
        do not share connections, nor does a URL a recipient had before (its connections went
        to the addresses checked for the old name). New connections go only to the addresses
        the URL's latest check vetted."""
        key = (recipient_id, url)
        self._used[key] = time.monotonic()
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

    async def close_idle(self) -> None:
        """Close the pools of URLs no longer delivered to (a recipient moved, or went): far
        longer unused than any delivery can take, so nothing is in flight on them."""
        idle_after = max(IDLE_CLIENT_SECONDS, 2 * self._settings.notifier_lease_seconds)
        for key, used in list(self._used.items()):
            if time.monotonic() - used > idle_after:
                del self._used[key]
                await self._clients.pop(key).close()

    async def close(self) -> None:
        for client in self._clients.values():
            await client.close()
