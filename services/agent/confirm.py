"""Confirming an erasure through Gallring's API: ``POST /v1/erasures/{id}/confirmations`` with
``{"system": …}`` and a key with the scope ``erasures:confirm``.

A 2xx is done (200: confirmed before, 202: reported now). The API away, slow, a 5xx, a 429, a
409 (not executed yet) or a 401/403 (a key revoked or short of its scope: an operator fixes it)
may change: :class:`ApiUnavailable`, an outage to the consumer, which reads the batch again
later. Any other 4xx (404: no such erasure, 422: a system the register lacks) will not change:
:class:`ConfirmationRefused`."""

import logging
from uuid import UUID

import aiohttp
from pydantic import SecretStr

log = logging.getLogger(__name__)
USER_AGENT = "Gallring-Agent"
#: Answers that may change without the command changing.
_PASSING = frozenset({401, 403, 408, 409, 425, 429})


class ApiUnavailable(ConnectionError):
    """The confirmation could not be given now; the command is applied again later."""


class ConfirmationRefused(Exception):
    """The API refused the confirmation for good (its status code)."""

    def __init__(self, status: int) -> None:
        self.status = status
        super().__init__(f"the API refused the confirmation with {status}")


class Confirmer:
    def __init__(self, api_url: str, api_key: SecretStr, system: str, timeout: float) -> None:
        self._base = api_url.rstrip("/")
        self._key = api_key
        self._system = system
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout),
                headers={"user-agent": USER_AGENT},
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def confirm(self, erasure_id: UUID) -> int:
        """The API's 2xx status; :class:`ApiUnavailable` or :class:`ConfirmationRefused`."""
        url = f"{self._base}/v1/erasures/{erasure_id}/confirmations"
        headers = {"authorization": f"Bearer {self._key.get_secret_value()}"}
        try:
            async with self._client().post(
                url, json={"system": self._system}, headers=headers, allow_redirects=False
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ApiUnavailable(f"the API did not answer ({type(error).__name__})") from None
        if 200 <= status < 300:
            return status
        if status in (401, 403):
            log.error(
                "agent: the API refused its key (%d): give it a key with the scope "
                "erasures:confirm (gallring keys create --name agent-%s --scope erasures:confirm)",
                status,
                self._system,
            )
        if status >= 500 or status in _PASSING:
            raise ApiUnavailable(f"the API answered {status}")
        raise ConfirmationRefused(status)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
